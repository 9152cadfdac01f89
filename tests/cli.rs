//! The `itbot` binary as a newcomer and an operator meet it: the sandbox driven from a pipe,
//! configuration errors that say what to fix, and the one-shot commands (`explain`, `doctor`,
//! `report`) against the simulated workspace.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_itbot");

/// Runs `itbot` with `args`, a clean environment plus `env`, and `stdin`; kills it at the deadline.
fn itbot(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("itbot starts");
    child.stdin.take().expect("stdin is piped").write_all(stdin.as_bytes()).expect("script written");
    // Read both pipes while the child runs, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait works") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("itbot {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The lines of the sandbox transcript that belong to thread `n`.
fn thread_lines(out: &str, n: usize) -> String {
    let tag = format!("[thread {n}]");
    let mut keep = false;
    let mut lines = Vec::new();
    for line in out.lines() {
        if line.contains("[thread ") {
            keep = line.contains(&tag);
        }
        if keep {
            lines.push(line);
        }
    }
    lines.join("\n")
}

#[test]
fn a_piped_script_gets_threaded_relevant_answers_for_vpn_and_okta() {
    let script = "My VPN won't connect, the AWS VPN client keeps spinning\n\
                  /as erin\n\
                  Okta Verify stopped sending push notifications after I got a new phone\n";

    let out = itbot(&["sandbox"], &[], script);

    let stdout = text(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, text(&out.stderr));
    let vpn = thread_lines(&stdout, 1);
    let okta = thread_lines(&stdout, 2);
    assert!(vpn.contains("└ [thread 1] itbot:"), "no threaded answer for the VPN ticket:\n{stdout}");
    assert!(vpn.contains("AWS VPN Client"), "the VPN answer is not about the VPN:\n{vpn}");
    assert!(okta.contains("└ [thread 2] itbot:"), "no threaded answer for the Okta ticket:\n{stdout}");
    assert!(okta.contains("Okta Verify"), "the Okta answer is not about Okta Verify:\n{okta}");
    assert!(!okta.contains("AWS VPN"), "the Okta ticket got the VPN answer:\n{okta}");
}

#[test]
fn the_demo_plays_without_input_and_exits_cleanly() {
    let out = itbot(&["sandbox", "--demo"], &[], "");

    let stdout = text(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{}", out.status, text(&out.stderr));
    assert!(stdout.contains("different approach"), "no follow-up in the demo:\n{stdout}");
    assert!(stdout.contains("Access requests are provisioned by IT"), "no access ack:\n{stdout}");
    assert!(stdout.contains("I'll stop guessing"), "no escalation offer after two failures:\n{stdout}");
    assert_eq!(stdout.matches("could you take this one?").count(), 2, "escalations:\n{stdout}");
    assert!(stdout.contains("glad that sorted it"), "no closing reply:\n{stdout}");
    assert!(stdout.contains("Thanks for the feedback"), "the 👍 was not acknowledged:\n{stdout}");
    assert_eq!(stdout.matches("Possible outage").count(), 1, "outage pings:\n{stdout}");
    assert!(stdout.contains("This looks like a known issue"), "no known-issue answer:\n{stdout}");
    assert!(stdout.contains("*IT report*") && stdout.contains("*Outages:* 1 (3 tickets)"), "{stdout}");
    // Posts that are not tickets: a pointer under the question, nothing under the thanks.
    assert!(stdout.contains("leave it to the IT team to answer here"), "no pointer:\n{stdout}");
    assert!(stdout.contains("(not a ticket: itbot stays out of it)"), "{stdout}");
    assert!(!stdout.contains("did not answer in time"), "{stdout}");
}

#[test]
fn run_without_a_bot_token_says_which_variable_and_where_to_get_it() {
    let out = itbot(&["run"], &[("SLACK_APP_TOKEN", "xapp-1-A1-1-x")], "");

    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SLACK_BOT_TOKEN is not set"), "{stderr}");
    assert!(stderr.contains("OAuth & Permissions"), "{stderr}");
}

#[test]
fn swapped_tokens_are_caught_before_connecting() {
    let out = itbot(
        &["run"],
        &[
            ("SLACK_BOT_TOKEN", "xapp-1-A1-1-abcdef"),
            ("SLACK_APP_TOKEN", "xoxb-1-2-abcdef"),
            // Unreachable on purpose: the check must fail before any connection is tried.
            ("SLACK_API_URL", "http://127.0.0.1:9/api/"),
        ],
        "",
    );

    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SLACK_BOT_TOKEN: holds an app-level token"), "{stderr}");
    assert!(!stderr.contains("abcdef"), "a token was printed: {stderr}");
}

#[test]
fn a_bad_value_in_the_config_file_names_the_file_key_and_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("itbot.toml");
    std::fs::write(&path, "[threads]\nidle_secs = \"a day\"\n").expect("file written");

    let out = itbot(&["run"], &[("ITBOT_CONFIG", path.to_str().expect("utf-8 path"))], "");

    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}: [threads] idle_secs: invalid type", path.display())), "{stderr}");
}

#[test]
fn explain_shows_kind_confidence_why_redaction_and_articles() {
    let out = itbot(&["explain", "I can't access Figma, email me at a@b.co"], &[], "");

    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("kind:     technical ("), "{stdout}");
    assert!(stdout.contains("% sure"), "{stdout}");
    assert!(stdout.contains("why:      "), "{stdout}");
    assert!(stdout.contains("rules:    can't"), "{stdout}");
    assert!(stdout.contains("[email]") && !stdout.contains("a@b.co"), "{stdout}");
}

#[actix_rt::test]
async fn explain_with_history_shows_the_past_tickets_it_would_use() {
    use itbot_fakes::workspace::{Workspace, WorkspaceOptions};
    let ws = Workspace::start(WorkspaceOptions::default()).await.expect("workspace");
    let (alice, dana) = (ws.user_id("alice"), ws.user_id("dana"));
    let root = ws.seed(Some(&alice), "it", "AWS VPN client stuck on connecting from home", None, 3.0, None);
    ws.seed(
        Some(&dana),
        "it",
        "Your VPN profile was outdated, I pushed the new one from Self Service",
        Some(&root),
        2.9,
        None,
    );
    ws.seed(Some(&alice), "it", "that worked, thanks!", Some(&root), 2.8, None);
    let env: Vec<(String, String)> = vec![
        ("SLACK_BOT_TOKEN".into(), ws.bot_token().into()),
        ("SLACK_APP_TOKEN".into(), ws.app_token().into()),
        ("SLACK_API_URL".into(), ws.api_url()),
        ("ITBOT__HISTORY__BACKFILL_PACE_MS".into(), "0".into()),
    ];

    // The binary blocks; run it off the runtime so the workspace keeps serving.
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        itbot(&["explain", "--history", "50", "my aws vpn is stuck connecting"], &env, "")
    })
    .await
    .expect("explain ran");

    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("past tickets:"), "{stdout}");
    assert!(stdout.contains("PersonResolved  AWS VPN client stuck on connecting"), "{stdout}");
    assert!(stdout.contains("fix: Your VPN profile was outdated"), "{stdout}");
}

/// A workspace whose #it holds three tickets from the last week and one older: a VPN ticket the
/// bot resolved (with a 👍), an Okta ticket IT staff fixed, and an unanswered access request.
/// Returns it with the environment `itbot report` needs.
async fn workspace_with_a_week_of_tickets() -> (itbot_fakes::workspace::Workspace, Vec<(String, String)>) {
    use itbot_fakes::workspace::{Workspace, WorkspaceOptions};
    use serde_json::json;
    let ws = Workspace::start(WorkspaceOptions::default()).await.expect("workspace");
    let (alice, bob, dana, erin) =
        (ws.user_id("alice"), ws.user_id("bob"), ws.user_id("dana"), ws.user_id("erin"));
    let state = |phase: &str, article: &str, llm: Option<(u64, u64, f64)>| {
        let mut payload = json!({
            "v": 1, "phase": phase, "category": "technical", "ticket": null, "assignee": null, "attempts": 0,
            "escalated": false, "resolved": phase == "resolved", "article": article,
            "gave_alternative": false, "tried": [],
        });
        if let Some((prompt, completion, cost)) = llm {
            payload["llm"] = json!({
                "model": "gpt-4o-mini", "prompt_tokens": prompt, "cached_tokens": 0,
                "completion_tokens": completion, "cost_usd": cost,
            });
        }
        Some(json!({"event_type": "itbot_thread_state", "event_payload": payload}))
    };
    let second = 1.0 / 86_400.0;

    let vpn = ws.seed(
        Some(&alice),
        "it",
        "zebra VPN won't connect, the AWS VPN client keeps spinning",
        None,
        3.0,
        None,
    );
    let answer = ws.seed(
        None,
        "it",
        "kumquat: reinstall the VPN profile from Self Service",
        Some(&vpn),
        3.0 - 10.0 * second,
        state("helping", "aws-client-vpn", Some((1000, 100, 0.0002))),
    );
    ws.react(&alice, "it", &answer, "+1");
    ws.seed(Some(&alice), "it", "that worked, thanks!", Some(&vpn), 2.99, None);
    ws.seed(
        None,
        "it",
        "Great, glad that sorted it!",
        Some(&vpn),
        2.98,
        state("resolved", "aws-client-vpn", None),
    );

    let okta = ws.seed(Some(&bob), "it", "quokka Okta says my account is locked", None, 2.0, None);
    ws.seed(
        None,
        "it",
        "Wait 15 minutes, then reset your password",
        Some(&okta),
        2.0 - 20.0 * second,
        state("helping", "okta-sso", Some((2000, 200, 0.0004))),
    );
    ws.seed(
        Some(&dana),
        "it",
        "Your account was locked after 5 failed attempts; I unlocked it",
        Some(&okta),
        1.99,
        None,
    );

    ws.seed(Some(&erin), "it", "I need access to Snowflake please", None, 1.0, None);
    ws.seed(Some(&bob), "it", "Printer on floor 3 jammed again", None, 10.0, None);

    let env = vec![
        ("SLACK_BOT_TOKEN".into(), ws.bot_token().into()),
        ("SLACK_APP_TOKEN".into(), ws.app_token().into()),
        ("SLACK_API_URL".into(), ws.api_url()),
        ("ITBOT__HISTORY__BACKFILL_PACE_MS".into(), "0".into()),
        ("ITBOT__ESCALATION__IT_STAFF".into(), dana),
        ("ITBOT__REPORT__TIMEZONE".into(), "Europe/Berlin".into()),
    ];
    (ws, env)
}

/// Runs `itbot` off the runtime, so the workspace keeps serving while the binary blocks.
async fn itbot_beside(args: &[&str], env: &[(String, String)]) -> Output {
    let (args, env): (Vec<String>, Vec<(String, String)>) =
        (args.iter().map(|a| a.to_string()).collect(), env.to_vec());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        itbot(&args, &env, "")
    })
    .await
    .expect("itbot ran")
}

#[actix_rt::test]
async fn report_json_gives_the_weeks_figures_from_the_channel() {
    let (_ws, env) = workspace_with_a_week_of_tickets().await;

    let out = itbot_beside(&["report", "--days", "7", "--json"], &env).await;

    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(r["tickets"], 3, "the ticket from ten days ago is outside the period: {r:#}");
    assert_eq!(r["by_category"], serde_json::json!({"technical": 2, "access": 1, "change": 0}));
    assert_eq!(r["answered_by_bot"], 2);
    assert_eq!(r["resolved_by_bot"], 1);
    assert_eq!(r["resolved_by_person"], 1);
    assert_eq!(r["escalated"], 0);
    assert_eq!(r["human_takeovers"], 1);
    assert_eq!((r["feedback"]["up"].as_u64(), r["feedback"]["down"].as_u64()), (Some(1), Some(0)));
    assert_eq!(r["llm"]["calls"], 2);
    assert_eq!(r["llm"]["prompt_tokens"], 3000);
    assert_eq!(r["llm"]["completion_tokens"], 300);
    assert_eq!(r["llm"]["cost_usd"], 0.0006);
    assert_eq!(r["top_problems"].as_array().map(Vec::len), Some(2));
    assert_eq!(r["other_problems"], 1);
    assert_eq!(r["period"]["timezone"], "Europe/Berlin");
    let days = r["by_day"].as_array().map_or(0, Vec::len);
    assert!((7..=8).contains(&days), "7 × 24 h back from now touches 8 local days (7 at midnight): {days}");
    // Seeded 10 s and 20 s after their roots (to the microsecond, give or take the seeding).
    let median = r["first_response"]["median_secs"].as_f64().expect("a median");
    let p90 = r["first_response"]["p90_secs"].as_f64().expect("a p90");
    assert!((median - 10.0).abs() < 0.5 && (p90 - 20.0).abs() < 0.5, "{median} {p90}");
}

#[actix_rt::test]
async fn the_report_shows_no_message_text_and_no_user_ids() {
    let (ws, env) = workspace_with_a_week_of_tickets().await;

    let json = itbot_beside(&["report", "--json"], &env).await;
    let table = itbot_beside(&["report"], &env).await;

    for out in [&json, &table] {
        let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{shown}");
        for word in ["zebra", "kumquat", "quokka", "Snowflake", "unlocked", "Self Service"] {
            assert!(!shown.contains(word), "`{word}` from a message appears:\n{shown}");
        }
        for name in ["alice", "bob", "dana", "erin"] {
            assert!(!shown.contains(&ws.user_id(name)), "{name}'s user id appears:\n{shown}");
        }
        assert!(!shown.contains(ws.bot_user_id()), "the bot's user id appears:\n{shown}");
    }
    assert!(text(&table.stdout).contains("Resolved by the bot"), "{}", text(&table.stdout));
}

#[actix_rt::test]
async fn report_refuses_a_period_out_of_range_and_a_bad_token_clearly() {
    let (_ws, mut env) = workspace_with_a_week_of_tickets().await;

    for days in ["0", "91"] {
        let out = itbot_beside(&["report", "--days", days], &env).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("is not in 1..=90"), "{stderr}");
    }

    env.retain(|(k, _)| k != "SLACK_BOT_TOKEN");
    env.push(("SLACK_BOT_TOKEN".into(), "xoxb-not-the-right-one".into()));
    let out = itbot_beside(&["report"], &env).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("SLACK_BOT_TOKEN was refused by Slack") && stderr.contains("invalid_auth"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-right-one"), "the token was printed: {stderr}");
    assert!(out.stdout.is_empty(), "a failed report printed: {}", text(&out.stdout));
}

/// Runs `itbot doctor` against a simulated workspace (and a fake LLM) set up as given.
async fn doctor(
    options: itbot_fakes::workspace::WorkspaceOptions,
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
    use itbot_fakes::workspace::Workspace;
    let ws = Workspace::start(options).await.expect("workspace");
    let llm = FakeOpenAi::start(FakeOpenAiOptions::default()).await.expect("fake llm");
    let mut vars: Vec<(String, String)> = vec![
        ("SLACK_BOT_TOKEN".into(), ws.bot_token().into()),
        ("SLACK_APP_TOKEN".into(), ws.app_token().into()),
        ("SLACK_API_URL".into(), ws.api_url()),
        ("OPENAI_API_KEY".into(), "sk-test-key".into()),
        ("OPENAI_BASE_URL".into(), llm.base_url()),
    ];
    for (k, v) in env {
        vars.retain(|(key, _)| key != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let out = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        itbot(&["doctor"], &env, "")
    })
    .await
    .expect("doctor ran");
    (out.status.code(), text(&out.stdout))
}

#[actix_rt::test]
async fn doctor_passes_a_good_set_up_and_says_so() {
    let (code, out) = doctor(Default::default(), &[]).await;

    println!("{out}");
    assert_eq!(code, Some(0), "{out}");
    for check in [
        "config",
        "knowledge base",
        "articles",
        "company facts",
        "slack tokens",
        "bot token",
        "scopes",
        "app token",
        "channel",
        "llm",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with("ok") && l.contains(check)),
            "no passing `{check}` line:\n{out}"
        );
    }
    assert!(out.contains("all 10 checks passed"), "{out}");
    // The shipped config leaves the sign-in page unset: doctor names the key to set.
    let facts = out.lines().find(|l| l.contains("company facts")).unwrap_or_default();
    assert!(facts.contains("[company] sign_in_url (used by "), "{out}");
}

#[actix_rt::test]
async fn doctor_names_what_to_fix_in_a_broken_set_up() {
    let options = itbot_fakes::workspace::WorkspaceOptions {
        bot_in_channel: false,
        scopes: "chat:write,channels:history,channels:read".into(),
        ..Default::default()
    };
    let (code, out) = doctor(options, &[("OPENAI_MODEL", "gpt-9-imaginary")]).await;

    println!("{out}");
    assert_eq!(code, Some(1), "{out}");
    let line = |name: &str| out.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(line("scopes").starts_with("FAIL") && line("scopes").contains("app_mentions:read"), "{out}");
    assert!(line("channel").starts_with("FAIL") && line("channel").contains("/invite @itbot"), "{out}");
    assert!(line("llm").starts_with("FAIL") && line("llm").contains("gpt-9-imaginary"), "{out}");
    assert!(out.contains("3 of 10 checks failed"), "{out}");
}

#[actix_rt::test]
async fn doctor_reports_a_refused_bot_token_and_a_bad_config_without_exiting_early() {
    let (code, out) = doctor(Default::default(), &[("SLACK_BOT_TOKEN", "xoxb-not-the-right-one")]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("FAIL") && l.contains("bot token") && l.contains("invalid_auth")),
        "{out}"
    );
    assert!(!out.contains("xoxb-not-the-right-one"), "the token was printed: {out}");

    let (code, out) = doctor(Default::default(), &[("ITBOT__SLACK__CONNECTIONS", "50")]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("FAIL config"), "{out}");
}

#[actix_rt::test]
async fn doctor_checks_redis_when_it_is_set_and_never_prints_its_password() {
    let server = itbot_fakes::redis_server::RedisServer::start().expect("redis-server starts");
    let (code, out) = doctor(Default::default(), &[("REDIS_URL", &server.url())]).await;
    assert_eq!(code, Some(0), "{out}");
    let line = out.lines().find(|l| l.contains("redis")).unwrap_or_default();
    assert!(line.starts_with("ok") && line.contains("version") && line.contains("round trip"), "{out}");
    assert!(out.contains("all 11 checks passed"), "{out}");

    // Nothing listens there: the check fails, names the fix, and keeps the password to itself.
    let gone = format!("redis://:s3cr3t-pw@{}", server.url().trim_start_matches("redis://"));
    drop(server);
    let (code, out) = doctor(Default::default(), &[("REDIS_URL", &gone)]).await;
    assert_eq!(code, Some(1), "{out}");
    let line = out.lines().find(|l| l.contains("redis")).unwrap_or_default();
    assert!(line.starts_with("FAIL") && line.contains("unset REDIS_URL"), "{out}");
    assert!(!out.contains("s3cr3t-pw"), "the password was printed: {out}");

    let (code, out) = doctor(Default::default(), &[("REDIS_URL", "https://example.invalid")]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("FAIL config") && out.contains("REDIS_URL"), "{out}");
}

#[test]
fn a_whole_sandbox_session_logs_no_message_text_or_token_even_at_trace_level() {
    // Feedback, an outage (three people, the same VPN problem) and a report run too.
    let script = "my zebra kumquat vpn won't connect, my password is Hunter2xyz!\n\
                  /good\n\
                  > zebra still broken\n\
                  > kumquat, get me a human\n\
                  /as dana\n\
                  > quokka I'm on it\n\
                  /as bob\n\
                  quokka my AWS VPN client won't connect either\n\
                  /bad\n\
                  /as carol\n\
                  zebra the VPN is down for me too\n\
                  /as erin\n\
                  @itbot report\n";

    let out = itbot(&["sandbox"], &[("RUST_LOG", "trace")], script);

    let logs = text(&out.stderr);
    assert!(out.status.success(), "{logs}");
    assert!(logs.lines().count() > 100, "trace logging did not run: {logs}");
    for secret in ["zebra", "kumquat", "quokka", "Hunter2", "xoxb-", "xapp-"] {
        assert!(!logs.contains(secret), "`{secret}` appeared in the logs");
    }
    let stdout = text(&out.stdout);
    assert!(stdout.contains("zebra"), "the conversation itself was not shown");
    assert!(stdout.contains("Possible outage") && stdout.contains("*IT report*"), "{stdout}");
    for logged in ["feedback", "outage detected", "report requested"] {
        assert!(logs.contains(logged), "`{logged}` was not logged: the session missed a path");
    }
}

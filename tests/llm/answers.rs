//! What the employee sees from the LLM path: streamed and posted answers, the fallback when the
//! LLM fails, mentions that cannot ping, long answers split, and a prompt that fits its budget.

use std::time::Duration;

use itbot::compose::{AI_UNAVAILABLE_NOTE, HOW_TO_CONTINUE};
use itbot::config::Settings;
use itbot::prompt::{PromptBuilder, SHIPPED_PROMPT};
use itbot_fakes::workspace::WorkspaceOptions;
use serde_json::Value;

use crate::helpers::{spawn, wait_for, Setup};

/// A word joiner: how streamed Markdown breaks mention syntax invisibly.
const WORD_JOINER: char = '\u{2060}';

fn long_answer() -> String {
    let steps: Vec<String> = (1..=12)
        .map(|i| format!("{i}. In **AWS VPN Client** open `File > Manage Profiles` and check profile number {i} carefully before you reconnect."))
        .collect();
    format!("Let's get the VPN back, <!here> style pings won't work.\n\n{}", steps.join("\n"))
}

#[actix_rt::test]
async fn when_the_llm_keeps_failing_the_employee_gets_offline_steps_a_note_and_a_way_to_a_human() {
    let app = spawn(Setup::default()).await;
    for _ in 0..3 {
        app.llm.fail_next(503, "server_is_overloaded", None);
    }
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "My VPN won't connect from home, AWS VPN Client spins", None);
    let reply = app.wait_bot_replies(&root, 1).await.remove(0);

    assert!(
        reply.text.starts_with(AI_UNAVAILABLE_NOTE),
        "no note that the AI is unavailable: {}",
        reply.text
    );
    assert!(reply.text.contains("AWS VPN Client") && reply.text.contains("1. "), "no offline steps");
    assert!(reply.text.contains("human") && reply.text.contains(":-1:"), "no way to reach a person");
    assert_eq!(app.llm.requests().len(), 3, "one attempt and the configured two retries");
    assert_eq!(reply.metadata.as_ref().map(|m| m["event_type"].clone()), Some("itbot_thread_state".into()));
}

#[actix_rt::test]
async fn an_answer_is_streamed_while_it_is_written_and_ends_with_the_footer_and_the_thread_state() {
    let app =
        spawn(Setup { tweak: Some(Box::new(|c| c.settings.openai.timeout_secs = 20)), ..Setup::default() })
            .await;
    let answer = long_answer();
    app.llm.set_reply(Some(answer.clone()));
    app.llm.set_chunk_delay(Duration::from_millis(35));
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "My VPN won't connect from home", None);
    let reply = app.wait_bot_replies(&root, 1).await.remove(0);

    let start = app.calls("chat.startStream");
    assert_eq!(start.len(), 1, "not streamed");
    assert_eq!(start[0].params["thread_ts"], root.as_str());
    assert_eq!(start[0].params["recipient_user_id"], alice.as_str());
    assert_eq!(start[0].params["recipient_team_id"], app.ws.team_id());
    let appends = app.calls("chat.appendStream");
    let chunks = answer.split_whitespace().count() / 3;
    assert!(appends.len() < chunks / 2, "{} appends for {chunks} chunks: not buffered", appends.len());
    let stop = app.calls("chat.stopStream");
    assert_eq!(stop.len(), 1);
    let blocks = stop[0].params["blocks"].to_string();
    assert!(blocks.contains("Reply in this thread"), "the footer is not attached at stop: {blocks}");
    assert_eq!(stop[0].params["metadata"]["event_type"], "itbot_thread_state");
    assert_eq!(reply.text.replace(WORD_JOINER, ""), answer, "the streamed text is not the answer");
    assert!(!reply.text.contains("<!here>"), "a broadcast survived in the stream");
    assert!(app
        .calls("chat.postMessage")
        .iter()
        .all(|c| c.params.get("thread_ts") != Some(&Value::from(root.as_str()))));
}

#[actix_rt::test]
async fn when_the_workspace_refuses_streaming_the_answer_is_posted_once_and_streaming_stops() {
    let app = spawn(Setup {
        workspace: Some(WorkspaceOptions { streaming: false, ..WorkspaceOptions::default() }),
        ..Setup::default()
    })
    .await;
    app.llm.set_reply(Some(long_answer()));
    app.llm.set_chunk_delay(Duration::from_millis(40));
    let alice = app.ws.user_id("alice");

    let first = app.ws.post(&alice, &app.it(), "My VPN won't connect from home", None);
    let reply = app.wait_bot_replies(&first, 1).await.remove(0);
    let second = app.ws.post(&alice, &app.it(), "Zoom can't find my camera", None);
    app.wait_bot_replies(&second, 1).await;

    assert_eq!(app.calls("chat.startStream").len(), 1, "streaming was tried again after a refusal");
    assert_eq!(app.bot_replies(&first).len(), 1, "posted more than once");
    assert!(reply.text.contains("*AWS VPN Client*"), "not converted to mrkdwn: {}", reply.text);
    assert!(reply.text.ends_with(HOW_TO_CONTINUE));
}

#[actix_rt::test]
async fn with_stream_replies_off_answers_are_posted_whole() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| c.settings.slack.stream_replies = false)),
        ..Setup::default()
    })
    .await;
    app.llm.set_chunk_delay(Duration::from_millis(40));
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "Okta Verify isn't sending push notifications", None);
    app.wait_bot_replies(&root, 1).await;

    assert!(app.calls("chat.startStream").is_empty());
    assert!(app.llm.requests()[0].get("stream").is_none(), "asked the LLM for a stream");
}

#[actix_rt::test]
async fn a_long_answer_is_split_at_paragraphs_with_the_state_on_the_last_part() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| {
            c.settings.slack.stream_replies = false;
            c.settings.openai.max_completion_tokens = 4000;
        })),
        ..Setup::default()
    })
    .await;
    let paragraphs: Vec<String> = (1..=4)
        .map(|i| format!("Paragraph {i}: {}", "check the dock cable and the monitor input. ".repeat(25)))
        .collect();
    app.llm.set_reply(Some(paragraphs.join("\n\n")));
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "Zoom audio is crackling in every meeting", None);
    let replies = app.wait_bot_replies(&root, 1).await;

    assert!(replies.len() >= 2, "not split");
    for (i, r) in replies.iter().enumerate() {
        assert!(r.text.chars().count() <= 3_500, "part {i} is too long");
        assert!(r.text.trim_start().starts_with("Paragraph"), "part {i} does not start at a paragraph");
        let state = r.metadata.as_ref().is_some_and(|m| m["event_type"] == "itbot_thread_state");
        assert_eq!(state, i == replies.len() - 1, "thread state on part {i}");
    }
}

#[actix_rt::test]
async fn mentions_and_broadcasts_written_by_the_llm_cannot_ping() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| c.settings.slack.stream_replies = false)),
        ..Setup::default()
    })
    .await;
    app.llm.set_reply(Some(
        "Ask <@U0SOMEONE> or <!subteam^S0123|it-team>, or shout <!channel> and @here.".into(),
    ));
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "who can fix the printer on floor 3?", None);
    let reply = app.wait_bot_replies(&root, 1).await.remove(0);

    for ping in ["<@U0SOMEONE>", "<!subteam", "<!channel>", "@here"] {
        assert!(!reply.text.contains(ping), "{ping} survived: {}", reply.text);
    }
    let post = app.calls("chat.postMessage").into_iter().find(|c| c.params["thread_ts"] == root.as_str());
    assert_eq!(post.expect("posted").params["link_names"], false);
}

#[actix_rt::test]
async fn a_long_thread_is_trimmed_to_the_token_budget_keeping_the_newest_turns() {
    let budget = 1000;
    let app = spawn(Setup {
        tweak: Some(Box::new(move |c| {
            c.settings.slack.stream_replies = false;
            c.settings.openai.max_prompt_tokens = budget;
        })),
        ..Setup::default()
    })
    .await;
    let alice = app.ws.user_id("alice");
    let root = app.ws.post(&alice, &app.it(), "FIRST-TURN my laptop fan is very loud", None);
    app.wait_bot_replies(&root, 1).await;

    for i in 1..=5 {
        let detail = format!(
            "DETAIL-{i} here is more about it: {}",
            "the fan spins up when I open the browser and many tabs. ".repeat(8)
        );
        app.ws.post(&alice, &app.it(), &detail, Some(&root));
        app.wait_bot_replies(&root, i + 1).await;
    }

    let requests = app.llm.requests();
    let last: Vec<(String, String)> = requests.last().expect("requests")["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (m["role"].as_str().unwrap_or("").to_string(), m["content"].as_str().unwrap_or("").to_string())
        })
        .collect();
    let (role, content) = last.last().expect("a turn");
    assert_eq!(role, "user");
    assert!(content.starts_with("DETAIL-5"), "the newest turn is not last");
    assert!(!last.iter().any(|(_, c)| c.contains("FIRST-TURN")), "the oldest turn was kept over budget");
    let kept: Vec<usize> = last
        .iter()
        .filter_map(|(_, c)| c.strip_prefix("DETAIL-").and_then(|r| r[..1].parse().ok()))
        .collect();
    assert!(kept.len() >= 2, "only {kept:?} kept: more than the oldest turns were dropped");
    let newest: Vec<usize> = (6 - kept.len()..=5).collect();
    assert_eq!(kept, newest, "the kept turns are not the newest ones");
    let s = Settings::shipped();
    let counter = PromptBuilder::new(SHIPPED_PROMPT, &s.company, "gpt-4o-mini", budget);
    let tokens: u64 = 3 + last.iter().map(|(_, c)| 4 + counter.count(c)).sum::<u64>();
    assert!(tokens <= u64::from(budget), "{tokens} tokens over a budget of {budget}");
}

#[actix_rt::test]
async fn operators_see_llm_calls_tokens_and_cost_at_metrics() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let root = app.ws.post(&alice, &app.it(), "gmail is not loading my emails", None);
    app.wait_bot_replies(&root, 1).await;

    let client = awc::Client::default();
    let url = format!("http://{}/metrics", app.bot.http_addr);
    let body = wait_for("the call to be counted", || {
        let client = client.clone();
        let url = url.clone();
        async move {
            let mut resp = client.get(url).send().await.ok()?;
            let body = String::from_utf8(resp.body().await.ok()?.to_vec()).ok()?;
            body.contains("itbot_llm_calls_total 1").then_some(body)
        }
    })
    .await;

    assert!(body.contains("itbot_llm_tokens_total{kind=\"prompt\"}"), "{body}");
    assert!(body.contains("itbot_llm_seconds_count 1"), "no latency histogram: {body}");
    let cost: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("itbot_llm_cost_usd_total "))
        .and_then(|v| v.parse().ok())
        .expect("a cost line");
    assert!(cost > 0.0, "{body}");
}

#[actix_rt::test]
async fn when_the_llm_breaks_off_mid_stream_the_stream_is_closed_and_the_offline_steps_follow() {
    let app =
        spawn(Setup { tweak: Some(Box::new(|c| c.settings.openai.timeout_secs = 20)), ..Setup::default() })
            .await;
    app.llm.set_reply(Some(long_answer()));
    app.llm.set_chunk_delay(Duration::from_millis(35));
    app.llm.break_next_stream_after(40);
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "My VPN won't connect from home", None);
    let replies = app.wait_bot_replies(&root, 2).await;

    assert_eq!(app.llm.requests().len(), 1, "a stream that already showed text was retried");
    let stop = app.calls("chat.stopStream");
    assert_eq!(stop.len(), 1);
    assert!(stop[0].params["markdown_text"].as_str().unwrap_or("").contains("stopped mid-answer"));
    assert!(replies[1].text.starts_with(AI_UNAVAILABLE_NOTE), "no fallback after the broken stream");
    assert!(replies[1].text.contains("AWS VPN Client"));
}

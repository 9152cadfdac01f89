//! The pure work the bot does on every event and every turn: reading a Socket Mode envelope,
//! triage, reading a follow-up, redaction, retrieval (knowledge base and past tickets) and
//! turning an LLM answer into Slack mrkdwn; and per new ticket, outage detection; and per report,
//! reading a thread and the figures of 10,000 tickets. Inputs are shaped like what the bot really
//! sees.
//! Run: `cargo bench --bench hot_paths`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use itbot::config::Config;
use itbot::knowledge::KnowledgeBase;
use itbot::outage::OutageTracker;
use itbot::redact::{redact, redact_with, Member, People};
use itbot::report::{Report, TicketSummary};
use itbot::slack::events::HistoryMessage;
use itbot::slack::format::markdown_to_mrkdwn;
use itbot::slack::socket::{parse_frame, Frame};
use itbot::slack::UserId;
use itbot::slack::{events, Ts};
use itbot::telemetry::UserText;
use itbot::tickets::{Ending, PastTicket, TicketIndex};
use itbot::triage::Rules;

/// New posts as they arrive in `#it`: technical, access and change, short and long.
const POSTS: &[&str] = &[
    "My VPN won't connect from home, the AWS VPN Client just spins on connecting",
    "I need access to Snowflake for the finance dashboards",
    "please add me to the design group in Google",
    "got a new phone and Okta Verify isn't sending me push notifications",
    "I can't access Figma anymore, it says I need permission from the owner",
    "Hi team! Since this morning my laptop won't join the office Wi-Fi. I tried forgetting the \
     network and rejoining, restarting, and it still says 'unable to join'. It works on my phone. \
     Is it just me? I have a customer call at 2pm so it's a bit urgent, thanks!",
];

/// Follow-ups in a thread.
const REPLIES: &[&str] = &[
    "still not working, same thing after a restart",
    "that fixed it, thanks!",
    "can a human help? I've tried everything",
    "it says error 809 now, does that mean anything?",
    "thanks, but it's still broken",
];

/// An LLM answer as the model writes it: Markdown with a heading, bold, lists, a link and code.
const ANSWER: &str = "### Let's get your VPN connected\n\n\
Thanks for the details. Based on our guide **AWS Client VPN**, try these steps:\n\n\
1. Quit the **AWS VPN Client** completely (menu bar icon → *Quit*), then reopen it.\n\
2. Check that your profile is the current one: *File → Manage Profiles*, and that it says \
`acme-prod-vpn`.\n\
3. If it still spins, reset the network stack:\n\
   - on a Mac, run `sudo ifconfig utun0 down` in Terminal\n\
   - on Windows, run `ipconfig /flushdns` in an admin prompt\n\
4. Make sure Okta Verify approved the sign-in on your phone.\n\n\
If none of that helps, see the [VPN troubleshooting page](https://wiki.acme.example/vpn) and \
reply here with the exact error (e.g. __error 809__ or ~~timeout~~ *certificate expired*).\n\n\
```\nAWS VPN Client 3.12.1 - connection failed: TLS handshake timeout\n```\n";

/// A Socket Mode `events_api` envelope of a human post, as the simulated workspace (and Slack)
/// sends it: rich-text blocks, authorizations, event context.
const MESSAGE_ENVELOPE: &str = r#"{"envelope_id":"5f6a2d1c-8b3e-4c0f-9a7d-1e2b3c4d5e6f","payload":{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","team_id":"T0AB12CD3","api_app_id":"A0AB12CD4","event":{"type":"message","client_msg_id":"f0582a78-72db-4feb-b2f3-1e47d66365c8","text":"My VPN won't connect from home, the AWS VPN Client just spins on connecting <@U0AB12CD5>","user":"U0AB12CD6","ts":"1717171717.000200","team":"T0AB12CD3","blocks":[{"type":"rich_text","block_id":"Sesm1","elements":[{"type":"rich_text_section","elements":[{"type":"text","text":"My VPN won't connect from home, the AWS VPN Client just spins on connecting "},{"type":"user","user_id":"U0AB12CD5"}]}]}],"channel":"C0AB12CD7","event_ts":"1717171717.000200","channel_type":"channel"},"type":"event_callback","event_id":"Ev0AB12CD8","event_time":1717171717,"authorizations":[{"enterprise_id":null,"team_id":"T0AB12CD3","user_id":"U0AB12CD5","is_bot":true,"is_enterprise_install":false}],"is_ext_shared_channel":false,"event_context":"4-message-T0AB12CD3-C0AB12CD7"},"type":"events_api","accepts_response_payload":false,"retry_attempt":0,"retry_reason":""}"#;

/// Assist's ticket card in the thread: a bot message with a section block.
const ASSIST_ENVELOPE: &str = r#"{"envelope_id":"6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d","payload":{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","team_id":"T0AB12CD3","api_app_id":"A0AB12CD4","event":{"type":"message","text":"Ticket IT-1042 created.\nAssignee: <@U0AB12CD9>","user":"U0AB12CDA","ts":"1717171718.000300","bot_id":"B0AB12CDB","app_id":"A0AB12CDC","bot_profile":{"id":"B0AB12CDB","deleted":false,"name":"Assist","updated":1700000000,"app_id":"A0AB12CDC","icons":{"image_36":"https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},"team_id":"T0AB12CD3"},"team":"T0AB12CD3","blocks":[{"type":"section","block_id":"Xy7Zq","text":{"type":"mrkdwn","text":"Ticket IT-1042 created.\nAssignee: <@U0AB12CD9>","verbatim":false}}],"thread_ts":"1717171717.000200","parent_user_id":"U0AB12CD6","channel":"C0AB12CD7","event_ts":"1717171718.000300","channel_type":"channel"},"type":"event_callback","event_id":"Ev0AB12CDD","event_time":1717171718,"authorizations":[{"enterprise_id":null,"team_id":"T0AB12CD3","user_id":"U0AB12CD5","is_bot":true,"is_enterprise_install":false}],"is_ext_shared_channel":false,"event_context":"4-message-T0AB12CD3-C0AB12CD7"},"type":"events_api","accepts_response_payload":false,"retry_attempt":0,"retry_reason":""}"#;

/// A 👎 on one of the bot's messages.
const REACTION_ENVELOPE: &str = r#"{"envelope_id":"7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e","payload":{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","team_id":"T0AB12CD3","api_app_id":"A0AB12CD4","event":{"type":"reaction_added","user":"U0AB12CD6","reaction":"-1","item":{"type":"message","channel":"C0AB12CD7","ts":"1717171719.000400"},"item_user":"U0AB12CD5","event_ts":"1717171720.000500"},"type":"event_callback","event_id":"Ev0AB12CDE","event_time":1717171720,"authorizations":[{"enterprise_id":null,"team_id":"T0AB12CD3","user_id":"U0AB12CD5","is_bot":true,"is_enterprise_install":false}],"is_ext_shared_channel":false,"event_context":"4-reaction_added-T0AB12CD3-C0AB12CD7"},"type":"events_api","accepts_response_payload":false,"retry_attempt":0,"retry_reason":""}"#;

fn shipped_rules() -> Rules {
    let config = Config::load(|k| {
        (k == "ITBOT_CONFIG").then(|| concat!(env!("CARGO_MANIFEST_DIR"), "/config/itbot.toml").to_string())
    })
    .expect("shipped config loads");
    Rules::new(&config.settings.triage, &config.settings.followup).expect("rules compile")
}

/// `n` past tickets from the fixture channel (as `benches/past_tickets.rs` builds them).
fn past_tickets(n: usize) -> TicketIndex {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/past_tickets.jsonl");
    let fixture: Vec<serde_json::Value> = std::fs::read_to_string(path)
        .expect("fixture present")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mut index = TicketIndex::new(n);
    for i in 0..n {
        let t = &fixture[i % fixture.len()];
        let fix =
            t["replies"].as_array().and_then(|r| r.last()).and_then(|r| r["text"].as_str()).unwrap_or("");
        index.upsert(PastTicket {
            thread: Ts(format!("{}.{:06}", 1_600_000_000 + i, i % 1_000_000)),
            question: UserText::new(format!("{} (#{i})", t["question"].as_str().unwrap_or(""))),
            ending: [Ending::BotResolved, Ending::PersonResolved, Ending::Escalated][i % 3],
            resolution: Some(UserText::new(fix)),
        });
    }
    index
}

/// The socket's path for one frame: parse it, then read the event inside.
fn read_envelope(text: &str) -> Option<events::Event> {
    match parse_frame(text) {
        Ok(Frame::EventsApi(envelope)) => events::parse(envelope.payload).ok().map(|(_, e)| e),
        _ => None,
    }
}

/// A ticket thread as `conversations.replies` returns it: the post, the bot's answer with its
/// state, feedback and LLM usage, the requester's "that worked" and the bot's closing reply.
fn thread_json(i: usize) -> Vec<serde_json::Value> {
    let at = 1_790_000_000 + i as i64 * 60;
    let articles = ["aws-client-vpn", "okta-sso", "zoom", "wifi-network", "gmail-google-workspace"];
    let category = ["technical", "technical", "technical", "access", "change"][i % 5];
    let state = |phase: &str, extra: serde_json::Value| {
        let mut payload = serde_json::json!({
            "v": 1, "phase": phase, "category": category, "resolved": phase == "resolved",
            "escalated": false, "attempts": 0, "article": articles[i % articles.len()],
        });
        payload.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::json!({"event_type": "itbot_thread_state", "event_payload": payload})
    };
    let usage = serde_json::json!({
        "llm": {"model": "gpt-4o-mini", "prompt_tokens": 1050, "cached_tokens": 0, "completion_tokens": 220, "cost_usd": 0.00029},
        "feedback": {"up": 1, "down": 0},
    });
    serde_json::json!([
        {"type": "message", "user": format!("U{:08}", i % 300), "text": POSTS[i % POSTS.len()], "ts": format!("{at}.000100"), "reply_count": 3},
        {"type": "message", "user": "UBOT", "bot_id": "BBOT", "text": ANSWER, "ts": format!("{}.000200", at + 4),
         "thread_ts": format!("{at}.000100"), "metadata": state("helping", usage),
         "reactions": [{"name": "+1", "users": ["U1"], "count": 1}]},
        {"type": "message", "user": format!("U{:08}", i % 300), "text": "that worked, thanks!", "ts": format!("{}.000300", at + 40),
         "thread_ts": format!("{at}.000100")},
        {"type": "message", "user": "UBOT", "bot_id": "BBOT", "text": "Great, glad that sorted it!", "ts": format!("{}.000400", at + 41),
         "thread_ts": format!("{at}.000100"), "metadata": state("resolved", serde_json::json!({}))},
    ])
    .as_array()
    .unwrap()
    .clone()
}

fn bench(c: &mut Criterion) {
    for (name, frame) in
        [("message", MESSAGE_ENVELOPE), ("assist card", ASSIST_ENVELOPE), ("reaction", REACTION_ENVELOPE)]
    {
        assert!(read_envelope(frame).is_some(), "{name} envelope parses");
        c.bench_function(&format!("envelope: parse_frame + events::parse ({name})"), |b| {
            b.iter(|| black_box(read_envelope(black_box(frame))))
        });
    }
    c.bench_function("envelope: parse_frame only (message)", |b| {
        b.iter(|| black_box(parse_frame(black_box(MESSAGE_ENVELOPE)).is_ok()))
    });

    let rules = shipped_rules();
    c.bench_function("triage: Rules::classify (a new post)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(rules.classify(black_box(POSTS[i % POSTS.len()])))
        })
    });
    c.bench_function("outcome: Rules::outcome (a follow-up)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(rules.outcome(black_box(REPLIES[i % REPLIES.len()])))
        })
    });

    let personal = "ask <@U0123ABC> or mail jane.doe@acme.com, my ip is 10.1.2.3, call +1 415 555 0100 \
                    about the VPN client that won't connect";
    c.bench_function("redaction: redact (a post with personal data)", |b| {
        b.iter(|| black_box(redact(black_box(personal))))
    });
    c.bench_function("redaction: redact (a plain post)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(redact(black_box(POSTS[i % POSTS.len()])))
        })
    });

    // A long paste: a log, a config with keys and a password, names, numbers (issue 16: well
    // under a millisecond for 4,000 characters), with a directory of 1,000 members.
    let paragraph = "Dana Whitfield says the deploy fails since 9:15, log below.\n\
        2026-12-05T09:15:02Z ERROR auth: token refresh failed for svc-build (401), retry 3/5\n\
        DB_PASSWORD=s3cr3t-Pr0d-DB\nAPI_KEY = \"951bc382db9abad29c68634761dd6e19\"\n\
        secret_key: ${SECRET_KEY}\ncall me on +44 7700 900123 or mail dana.w@acme.com, \
        card 4111 1111 1111 1111, host 10.20.30.40, ticket IT-1042, build 16.0.17328.20162\n";
    let long: String = paragraph.chars().cycle().take(4_000).collect();
    let members: Vec<Member> = (0..1_000)
        .map(|i| Member { real_name: format!("Person{i} Surname{i}"), display_name: format!("person.{i}") })
        .chain([Member { real_name: "Dana Whitfield".into(), display_name: "dana.w".into() }])
        .collect();
    let people = People::new(&members);
    c.bench_function("redaction: redact_with (4,000 characters, 1,000 members)", |b| {
        b.iter(|| black_box(redact_with(black_box(&long), Some(&people))))
    });
    c.bench_function("redaction: redact (4,000 characters of plain text)", |b| {
        let plain: String = POSTS.iter().cycle().flat_map(|p| p.chars().chain([' '])).take(4_000).collect();
        b.iter(|| black_box(redact(black_box(&plain))))
    });

    let kb = KnowledgeBase::shipped();
    c.bench_function("retrieval: KnowledgeBase::search (top 2 articles)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(kb.search(black_box(POSTS[i % POSTS.len()]), 2).len())
        })
    });
    let index = past_tickets(2000);
    c.bench_function("retrieval: TicketIndex::similar (top 3 of 2,000)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(index.similar(black_box(POSTS[i % POSTS.len()]), 3, None))
        })
    });

    c.bench_function("mrkdwn: markdown_to_mrkdwn (a 1 KB answer)", |b| {
        b.iter(|| black_box(markdown_to_mrkdwn(black_box(ANSWER))))
    });

    // The first answer's prompt: the system prompt, the best articles and the question, counted
    // with the model's tokenizer (loaded before timing).
    let config = Config::load(|k| {
        (k == "ITBOT_CONFIG").then(|| concat!(env!("CARGO_MANIFEST_DIR"), "/config/itbot.toml").to_string())
    })
    .expect("shipped config");
    let template =
        itbot::prompt::PromptBuilder::load_template(&config.env.config_path).expect("prompt template");
    let builder = itbot::prompt::PromptBuilder::new(&template, &config.settings.company, "gpt-4o-mini", 3000);
    builder.warm_up();
    c.bench_function("prompt: PromptBuilder::build (a first answer)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let post = POSTS[i % POSTS.len()];
            let articles = itbot::compose::articles_for(&kb, post);
            let turns: Vec<itbot::prompt::Turn> =
                itbot::prompt::Turn::from_slack(itbot::prompt::Speaker::Requester, post)
                    .into_iter()
                    .collect();
            let input = itbot::prompt::PromptInput {
                articles: &articles,
                past_tickets: &[],
                turns: &turns,
                second_approach: false,
            };
            black_box(builder.build(&input).tokens)
        })
    });

    // A steady stream of reports on 15 symptoms from 300 people, one a minute: no outage.
    c.bench_function("outage: OutageTracker::report (a new ticket)", |b| {
        let mut tracker = OutageTracker::new(3, 600);
        let users: Vec<UserId> = (0..300).map(|u| UserId::from(format!("U{u:08}").as_str())).collect();
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            let at = i as f64 * 60.0;
            let thread = Ts::from(format!("{at}.000000").as_str());
            black_box(tracker.report(&format!("article-{}", i % 15), &thread, &users[i % 300], at))
        })
    });

    let bot = UserId::from("UBOT");
    let channel = itbot::slack::ChannelId::from("C0IT");
    let threads: Vec<Vec<HistoryMessage>> = (0..10_000)
        .map(|i| thread_json(i).iter().filter_map(|m| HistoryMessage::parse(m, &channel)).collect())
        .collect();
    c.bench_function("report: TicketSummary::from_thread (a 4-message thread)", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(TicketSummary::from_thread(black_box(&threads[i % threads.len()]), &bot, &rules, &[]))
        })
    });
    let summaries: Vec<TicketSummary> =
        threads.iter().filter_map(|t| TicketSummary::from_thread(t, &bot, &rules, &[])).collect();
    assert_eq!(summaries.len(), 10_000, "every synthetic thread is a ticket");
    let (since, until) = (1_790_000_000, 1_790_000_000 + 7 * 86_400);
    c.bench_function("report: Report::build (10,000 tickets, Europe/Berlin)", |b| {
        b.iter(|| black_box(Report::build(black_box(&summaries), since, until, "Europe/Berlin", &kb)))
    });
    let report = Report::build(&summaries, since, until, "Europe/Berlin", &kb);
    c.bench_function("report: Report::to_mrkdwn", |b| b.iter(|| black_box(report.to_mrkdwn())));
}

criterion_group!(benches, bench);
criterion_main!(benches);

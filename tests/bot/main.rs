//! The bot end to end against the simulated workspace (and the fake LLM where noted).

mod budget;
#[path = "../common/mod.rs"]
mod common;
mod feedback;
mod helpers;
mod history;
mod lifecycle;
mod metrics;
mod not_ticket;
mod outage;
mod redis;
mod replicas;
mod report;

use std::time::Duration;

use common::wait_on;
use helpers::{spawn, wait_for, Setup, TestApp};
use itbot_fakes::workspace::WorkspaceOptions;

fn position(app: &TestApp, thread: &str, ts: &str) -> usize {
    app.ws.thread(&app.it(), thread).iter().position(|p| p.ts == ts).expect("message is in the thread")
}

#[actix_rt::test]
async fn a_new_ticket_is_acked_and_answered_once_in_its_thread_after_assist() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "My VPN won't connect from home, AWS VPN Client spins", None);
    let replies = app.wait_bot_replies(&root, 1).await;

    let thread = app.ws.thread(&app.it(), &root);
    let assist = thread
        .iter()
        .find(|p| p.bot_id.as_deref() == Some(app.ws.assist_bot_id()))
        .expect("assist posted its card");
    assert!(
        position(&app, &root, &replies[0].ts) > position(&app, &root, &assist.ts),
        "answered before Assist"
    );
    assert_eq!(replies[0].thread_ts.as_deref(), Some(root.as_str()));
    assert!(replies[0].text.contains("AWS VPN Client"), "not a VPN answer");
    wait_for("every envelope to be acked", || {
        let done = app.ws.envelopes_acked() >= app.ws.envelopes_sent();
        async move { done.then_some(()) }
    })
    .await;
    // Nothing else arrives: a later ticket's answer proves the first thread is finished.
    let bob = app.ws.user_id("bob");
    let second = app.ws.post(&bob, &app.it(), "I forgot my password", None);
    app.wait_bot_replies(&second, 1).await;
    assert_eq!(app.bot_replies(&root).len(), 1, "the ticket got more than one answer");
}

#[actix_rt::test]
async fn other_channels_bots_and_strangers_replies_open_no_ticket() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let bob = app.ws.user_id("bob");

    let elsewhere = app.ws.post(&alice, app.ws.other_channel(), "my vpn is broken", None);
    let by_bot = app.ws.post_as_other_bot(&app.it(), "Deploy finished: my vpn is broken", None);
    let root = app.ws.post(&alice, &app.it(), "Zoom says my microphone is not working", None);
    app.wait_bot_replies(&root, 1).await;
    let stranger_reply = app.ws.post(&bob, &app.it(), "same for me, my vpn is broken", Some(&root));
    // A control ticket after all of the above: once it is answered, everything before was routed.
    let control = app.ws.post(&bob, &app.it(), "Okta Verify isn't sending push notifications", None);
    app.wait_bot_replies(&control, 1).await;

    assert_eq!(app.bot.live_threads().await, 2, "only the two real tickets hold a thread");
    assert!(app.ws.thread(app.ws.other_channel(), &elsewhere).len() == 1);
    assert!(app.bot_replies(&by_bot).is_empty());
    assert_eq!(app.bot_replies(&root).len(), 1, "a stranger's reply got an answer");
    let _ = stranger_reply;
    // The bot's own messages came back as events and opened nothing either.
    assert!(app
        .ws
        .messages(&app.it())
        .iter()
        .all(|p| p.thread_ts.is_some() || p.user.as_deref() != Some(app.ws.bot_user_id())));
}

#[actix_rt::test]
async fn an_access_request_is_acknowledged_naming_the_assignee() {
    let app = spawn(Setup::default()).await;
    let dana = app.ws.user_id("dana");
    let bob = app.ws.user_id("bob");

    let root = app.ws.post(&bob, &app.it(), "I need access to Snowflake for the finance dashboards", None);
    let reply = &app.wait_bot_replies(&root, 1).await[0];

    assert!(reply.text.contains(&format!("<@{dana}>")), "assignee not named");
    assert!(reply.text.contains("IT-"), "ticket key missing");
    assert!(!reply.text.contains("1. "), "troubleshooting steps in an access acknowledgement");
}

#[actix_rt::test]
async fn a_change_request_thanks_and_names_the_assignee() {
    let app = spawn(Setup::default()).await;
    let carol = app.ws.user_id("carol");
    let dana = app.ws.user_id("dana");

    let root = app.ws.post(&carol, &app.it(), "please add me to the design group in Google", None);
    let reply = &app.wait_bot_replies(&root, 1).await[0];

    assert!(reply.text.starts_with(&format!("Thank you! <@{dana}> is working on this")), "wrong ack");
}

#[actix_rt::test]
async fn without_assist_the_answer_comes_when_the_wait_runs_out() {
    let app = spawn(Setup {
        workspace: Some(WorkspaceOptions { assist_enabled: false, ..WorkspaceOptions::default() }),
        tweak: Some(Box::new(|c| c.settings.assist.wait_secs = 1)),
        ..Setup::default()
    })
    .await;
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), "gmail is not loading my emails", None);
    let reply = &app.wait_bot_replies(&root, 1).await[0];

    assert!(reply.text.to_lowercase().contains("gmail"), "not a Gmail answer");
}

#[actix_rt::test]
async fn follow_ups_get_a_different_approach_then_a_closing_reply() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let root = app.ws.post(&alice, &app.it(), "My VPN won't connect from home", None);
    let first = app.wait_bot_replies(&root, 1).await[0].text.clone();

    app.ws.post(&alice, &app.it(), "still not working, same error", Some(&root));
    let second = app.wait_bot_replies(&root, 2).await[1].text.clone();
    app.ws.post(&alice, &app.it(), "that worked, thanks!", Some(&root));
    let third = app.wait_bot_replies(&root, 3).await[2].text.clone();

    assert_ne!(first, second);
    assert!(second.contains("different approach"), "second answer is not a new approach");
    assert!(third.contains("glad that sorted it"), "no closing reply");
    let meta = app.bot_replies(&root)[2].metadata.clone().expect("state metadata on the reply");
    assert_eq!(meta["event_type"], "itbot_thread_state");
    assert_eq!(meta["event_payload"]["resolved"], true);
    assert_eq!(meta["event_payload"]["attempts"], 1);
}

#[actix_rt::test]
async fn thumbs_down_by_the_requester_pings_the_assignee_once() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let bob = app.ws.user_id("bob");
    let dana = app.ws.user_id("dana");
    let root = app.ws.post(&alice, &app.it(), "Okta keeps looping when I open Salesforce", None);
    let answer = app.wait_bot_replies(&root, 1).await[0].ts.clone();

    app.ws.react(&bob, &app.it(), &answer, "-1");
    app.ws.react(&alice, &app.it(), &answer, "-1");
    let escalation = app.wait_bot_replies(&root, 2).await[1].text.clone();
    app.ws.react(&alice, &app.it(), &answer, "thumbsdown");
    // A later message from the requester is not answered once escalated, and nothing pings again.
    app.ws.post(&alice, &app.it(), "hello?", Some(&root));
    let control = app.ws.post(&bob, &app.it(), "zoom camera not working", None);
    app.wait_bot_replies(&control, 1).await;

    assert_eq!(escalation.matches(&format!("<@{dana}>")).count(), 1);
    assert!(escalation.contains("*Symptom:*") && escalation.contains("*Tried:*"));
    assert_eq!(app.bot_replies(&root).len(), 2, "escalated twice or answered after escalation");
}

#[actix_rt::test]
async fn the_assignee_writing_in_the_thread_makes_the_bot_go_quiet() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let dana = app.ws.user_id("dana");
    let root = app.ws.post(&alice, &app.it(), "my macbook won't turn on", None);
    app.wait_bot_replies(&root, 1).await;

    app.ws.post(&dana, &app.it(), "I'll come by your desk", Some(&root));
    app.ws.post(&alice, &app.it(), "still not working", Some(&root));
    let control = app.ws.post(&alice, &app.it(), "slack notifications stopped", None);
    app.wait_bot_replies(&control, 1).await;

    assert_eq!(app.bot_replies(&root).len(), 1, "the bot talked over the assignee");
}

#[actix_rt::test]
async fn with_an_llm_the_answer_comes_from_it_and_nothing_identifying_is_sent() {
    let app = spawn(Setup { llm: true, ..Setup::default() }).await;
    let alice = app.ws.user_id("alice");
    let llm = app.llm.clone().expect("llm");
    llm.set_reply(Some("1. Quit the **AWS VPN Client**\n2. Reconnect <!channel>".into()));

    let root = app.ws.post(
        &alice,
        &app.it(),
        &format!("VPN fails for me and <@{alice}>, mail jane.doe@acme.com or call +1 415 555 0100"),
        None,
    );
    let first = app.wait_bot_replies(&root, 1).await;
    println!("the bot's first replies: {:#?}", first.iter().map(|r| &r.text).collect::<Vec<_>>());
    // A streamed answer whose append Slack refused ends in a second message with the rest.
    let reply = wait_on(&app.ws, "the LLM's answer, markdown converted", || {
        let replies = app.bot_replies(&root);
        let done = !replies.iter().any(|p| app.ws.is_streaming(&p.ts));
        let answer = replies.into_iter().rev().find(|r| r.text.contains("*AWS VPN Client*"));
        async move { answer.filter(|_| done) }
    })
    .await;
    let texts: Vec<String> = app.bot_replies(&root).into_iter().map(|r| r.text).collect();
    assert!(!texts.iter().any(|t| t.contains("<!channel>")), "a broadcast from the LLM survived: {texts:#?}");
    let reply = app.bot_replies(&root).into_iter().find(|r| r.metadata.is_some()).unwrap_or(reply);
    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    let body = requests[0].to_string();
    for leak in [alice.as_str(), "jane.doe", "acme.com", "555 0100"] {
        assert!(!body.contains(leak), "{leak} reached the LLM");
    }
    assert!(requests[0].get("user").is_none());
    assert!(requests[0]["max_completion_tokens"].as_u64().is_some());
    // What the answer cost is written on it, for `itbot report`.
    let llm = &reply.metadata.as_ref().expect("state on the answer")["event_payload"]["llm"];
    assert!(llm["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{llm}");
    assert!(llm["completion_tokens"].as_u64().unwrap_or(0) > 0, "{llm}");
    assert!(llm["cost_usd"].as_f64().unwrap_or(0.0) > 0.0, "{llm}");
}

#[actix_rt::test]
async fn a_message_with_a_password_is_never_sent_to_the_llm_and_the_requester_is_warned() {
    let app = spawn(Setup { llm: true, ..Setup::default() }).await;
    let alice = app.ws.user_id("alice");
    let mut posted = app.ws.subscribe();

    let root = app.ws.post(&alice, &app.it(), "okta locks me out, my password is Hunter2!x", None);
    let reply = &app.wait_bot_replies(&root, 1).await[0];

    let warning = wait_for("the ephemeral warning", || {
        let found = loop {
            match posted.try_recv() {
                Ok(p) if p.ephemeral_to.is_some() => break Some(p),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        async move { found }
    })
    .await;
    assert_eq!(warning.ephemeral_to.as_deref(), Some(alice.as_str()));
    assert!(warning.text.contains("delete"));
    assert!(app.llm.as_ref().expect("llm").requests().iter().all(|r| !r.to_string().contains("Hunter2")));
    assert!(!reply.text.is_empty());
}

#[actix_rt::test]
async fn a_mention_outside_a_ticket_gets_the_help_text() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let bob = app.ws.user_id("bob");
    let root = app.ws.post(&alice, &app.it(), "zoom audio broken", None);
    app.wait_bot_replies(&root, 1).await;

    // A stranger mentions the bot in someone else's thread that the bot does not hold: use an
    // old thread that started before the bot (posted by another bot, so never a ticket).
    let old = app.ws.post_as_other_bot(&app.it(), "Weekly maintenance tonight", None);
    let mention = format!("<@{}> what can you do?", app.ws.bot_user_id());
    app.ws.post(&bob, &app.it(), &mention, Some(&old));
    let help = &app.wait_bot_replies(&old, 1).await[0];

    assert!(help.text.contains("IT helper"), "no help text");
}

#[actix_rt::test]
async fn an_edited_root_is_answered_in_its_edited_form_and_a_deleted_one_not_at_all() {
    let app = spawn(Setup {
        workspace: Some(WorkspaceOptions {
            assist_delay: Duration::from_millis(800),
            ..WorkspaceOptions::default()
        }),
        ..Setup::default()
    })
    .await;
    let alice = app.ws.user_id("alice");

    let edited = app.ws.post(&alice, &app.it(), "help", None);
    app.ws.edit(&app.it(), &edited, "zoom can't hear anyone, microphone not working");
    let deleted = app.ws.post(&alice, &app.it(), "my vpn won't connect", None);
    app.ws.delete(&app.it(), &deleted);
    let reply = &app.wait_bot_replies(&edited, 1).await[0];
    let control = app.ws.post(&alice, &app.it(), "I forgot my password", None);
    app.wait_bot_replies(&control, 1).await;

    assert!(reply.text.contains("Zoom"), "answered the old text");
    assert!(app.bot_replies(&deleted).is_empty(), "answered a deleted post");
}

#[actix_rt::test]
async fn health_and_readiness_are_served() {
    let app = spawn(Setup::default()).await;
    let client = awc::Client::default();
    let base = format!("http://{}", app.bot.http_addr);

    let health = client.get(format!("{base}/healthz")).send().await.expect("healthz");
    let ready = client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(ready.status().as_u16(), 200);

    app.bot.stop().await;
    assert!(!app.bot.health.is_ready(), "still ready after stop");
}

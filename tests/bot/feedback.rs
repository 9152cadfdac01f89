//! Feedback on answers: Slack's 👍/👎 buttons and reactions, counted per category, written into
//! the answer's metadata (Slack keeps no count) so `itbot report` can read them back.

use serde_json::Value;

use crate::helpers::{metric_value as value, spawn, wait_for, Setup, TestApp};

const ESCALATION: &str = "could you take this one?";

async fn ticket(app: &TestApp, who: &str, text: &str) -> (String, String) {
    let user = app.ws.user_id(who);
    let root = app.ws.post(&user, &app.it(), text, None);
    let answer = app.wait_bot_replies(&root, 1).await[0].ts.clone();
    (root, answer)
}

/// The answer's `feedback` counts once they reach `up`/`down`.
async fn wait_counts(app: &TestApp, root: &str, answer: &str, up: u64, down: u64) -> Value {
    wait_for(&format!("feedback {up}/{down} on the answer"), || {
        let meta = app
            .bot_replies(root)
            .into_iter()
            .find(|p| p.ts == answer)
            .and_then(|p| p.metadata)
            .unwrap_or(Value::Null);
        let f = &meta["event_payload"]["feedback"];
        let reached = f["up"].as_u64() == Some(up) && f["down"].as_u64() == Some(down);
        async move { reached.then_some(meta) }
    })
    .await
}

#[actix_rt::test]
async fn answers_carry_feedback_buttons_and_votes_count_once_per_person() {
    let app = spawn(Setup::default()).await;
    let (root, answer) = ticket(&app, "alice", "AWS VPN client says authentication failed").await;
    let before = app.bot_replies(&root)[0].clone();
    let [bob, carol, erin] = ["bob", "carol", "erin"].map(|n| app.ws.user_id(n));
    let mut posted = app.ws.subscribe();

    assert!(app.ws.click_feedback(&bob, &app.it(), &answer, true), "the answer has no feedback buttons");
    assert!(app.ws.click_feedback(&carol, &app.it(), &answer, true));
    assert!(app.ws.click_feedback(&bob, &app.it(), &answer, true), "a repeated vote");
    assert!(app.ws.click_feedback(&erin, &app.it(), &answer, false));
    let meta = wait_counts(&app, &root, &answer, 2, 1).await;
    // Someone else's 👎 is feedback only; voters are thanked privately.
    let mut thanked = Vec::new();
    let mut drain = |thanked: &mut Vec<String>| {
        thanked.extend(
            std::iter::from_fn(|| posted.try_recv().ok())
                .filter(|p| p.text.contains("feedback"))
                .filter_map(|p| p.ephemeral_to),
        );
    };
    wait_for("three private thanks", || {
        drain(&mut thanked);
        let n = thanked.len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    app.control().await;
    drain(&mut thanked);

    let after = app.bot_replies(&root)[0].clone();
    assert_eq!(after.text, before.text, "the answer's text changed");
    assert_eq!(after.blocks, before.blocks, "the answer's buttons changed");
    assert_eq!(meta["event_type"], "itbot_thread_state", "the state was lost");
    assert_eq!(meta["event_payload"]["phase"], "helping");
    assert_eq!(app.bot_replies(&root).len(), 1, "feedback from others escalated");
    thanked.sort();
    let mut voters = vec![bob.clone(), carol.clone(), erin.clone()];
    voters.sort();
    assert_eq!(thanked, voters, "each voter thanked once, privately");
    let page = app.metrics().await;
    let up = r#"itbot_feedback_total{category="technical",vote="up",via="button"}"#;
    let down = r#"itbot_feedback_total{category="technical",vote="down",via="button"}"#;
    assert_eq!(value(&page, up), 2.0, "{page}");
    assert_eq!(value(&page, down), 1.0);
}

#[actix_rt::test]
async fn the_requesters_thumbs_down_button_escalates_once() {
    let app = spawn(Setup::default()).await;
    let (root, answer) = ticket(&app, "alice", "Okta keeps looping when I open Salesforce").await;
    let alice = app.ws.user_id("alice");

    assert!(app.ws.click_feedback(&alice, &app.it(), &answer, false));
    let escalation = app.wait_bot_replies(&root, 2).await[1].clone();
    wait_counts(&app, &root, &answer, 0, 1).await;
    // Changing the vote and back neither escalates again nor counts twice.
    assert!(app.ws.click_feedback(&alice, &app.it(), &answer, true));
    wait_counts(&app, &root, &answer, 1, 0).await;
    assert!(app.ws.click_feedback(&alice, &app.it(), &answer, false));
    wait_counts(&app, &root, &answer, 0, 1).await;
    app.control().await;

    assert!(escalation.text.contains(ESCALATION), "{}", escalation.text);
    assert!(escalation.text.contains("did not help"), "{}", escalation.text);
    assert_eq!(app.bot_replies_with(&root, ESCALATION), 1, "escalated twice");
}

#[actix_rt::test]
async fn votes_after_a_restart_add_to_the_counts_slack_holds() {
    let mut app = spawn(Setup::default()).await;
    let (root, answer) = ticket(&app, "alice", "gmail is not loading my emails").await;
    let [bob, carol] = ["bob", "carol"].map(|n| app.ws.user_id(n));
    assert!(app.ws.click_feedback(&bob, &app.it(), &answer, true));
    wait_counts(&app, &root, &answer, 1, 0).await;

    app.restart(None).await;
    assert!(app.ws.click_feedback(&carol, &app.it(), &answer, true));

    wait_counts(&app, &root, &answer, 2, 0).await;
}

#[actix_rt::test]
async fn thumbs_reactions_on_answers_count_as_feedback_by_category() {
    let app = spawn(Setup::default()).await;
    let (root, answer) = ticket(&app, "alice", "zoom can't share my screen").await;
    let [bob, carol] = ["bob", "carol"].map(|n| app.ws.user_id(n));
    // People react once they see the answer: by then the bot has heard of its own post (a
    // reaction within milliseconds could overtake that event, and a 👍 is not looked up).
    crate::common::wait_on(&app.ws, "the bot to hear of its answer", || {
        let idle = app.ws.pending_deliveries() == 0 && app.ws.queued_events() == 0;
        async move { idle.then_some(()) }
    })
    .await;

    app.ws.react(&bob, &app.it(), &answer, "+1");
    app.ws.react(&carol, &app.it(), &answer, "-1");
    app.ws.react(&carol, &app.it(), &root, "+1");
    app.control().await;

    let page = app.metrics().await;
    let up = r#"itbot_feedback_total{category="technical",vote="up",via="reaction"}"#;
    let down = r#"itbot_feedback_total{category="technical",vote="down",via="reaction"}"#;
    assert_eq!(value(&page, up), 1.0, "a 👍 on the question counted, or the one on the answer did not");
    assert_eq!(value(&page, down), 1.0);
    assert_eq!(app.bot_replies(&root).len(), 1);
}

#[actix_rt::test]
async fn a_feedback_click_with_an_unreadable_value_changes_nothing_and_breaks_nothing() {
    let app = spawn(Setup::default()).await;
    let (root, answer) = ticket(&app, "alice", "gmail is not loading my emails").await;
    let bob = app.ws.user_id("bob");

    for value in ["", "sideways:1.0", "up:not-a-ts", "down:<@U1>"] {
        assert!(app.ws.click_button(&bob, &app.it(), &answer, itbot::compose::FEEDBACK_ACTION, value));
    }
    app.control().await;

    let meta = app.bot_replies(&root)[0].metadata.clone().unwrap_or(Value::Null);
    assert!(meta["event_payload"].get("feedback").is_none(), "{meta}");
    assert_eq!(app.bot_replies(&root).len(), 1);
    let page = app.metrics().await;
    assert_eq!(value(&page, r#"itbot_feedback_total{category="technical",vote="up",via="button"}"#), 0.0);
}

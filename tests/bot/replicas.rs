//! Two bot processes on one workspace, as two replicas would run: Slack spreads events over
//! all their sockets, and each ticket still gets one answer per turn and at most one escalation.

use futures_util::future::join_all;

use itbot_fakes::workspace::{RateLimits, WorkspaceOptions};

use crate::helpers::{spawn, start_bot, wait_for, Setup, TestApp, Tweak};

const ESCALATION: &str = "could you take this one?";

fn quick_assist_wait() -> Tweak {
    Box::new(|c| c.settings.assist.wait_secs = 1)
}

/// One ticket's whole life: two failures, the offer, the request for a person, one more ask.
async fn lifecycle(app: &TestApp, who: String, problem: &str) -> String {
    let user = app.ws.user_id(&who);
    let root = app.ws.post(&user, &app.it(), problem, None);
    app.wait_bot_replies(&root, 1).await;
    app.ws.post(&user, &app.it(), "didn't help", Some(&root));
    app.wait_bot_replies(&root, 2).await;
    app.ws.post(&user, &app.it(), "still the same error", Some(&root));
    app.wait_bot_replies(&root, 3).await;
    app.ws.post(&user, &app.it(), "please get me a human", Some(&root));
    app.wait_bot_replies(&root, 4).await;
    app.ws.post(&user, &app.it(), "can someone from IT help?", Some(&root));
    root
}

#[actix_rt::test]
async fn two_replicas_answer_each_turn_once_and_escalate_each_ticket_once() {
    // Without a shared budget each replica paces itself to Slack's whole limit, so together they
    // may spend twice it: the workspace allows that here, since this test is about answers and
    // escalations, not the budget (the load generator measures what two replicas cost).
    let workspace = WorkspaceOptions { rate_limits: RateLimits::Relaxed(2), ..WorkspaceOptions::default() };
    let app =
        spawn(Setup { tweak: Some(quick_assist_wait()), workspace: Some(workspace), ..Setup::default() })
            .await;
    let second = start_bot(&app.ws, None, Some(quick_assist_wait())).await;
    assert_eq!(app.ws.open_connections(), 4, "both replicas hold two sockets");
    // The second replica heard from Slack's `hello` that the app holds more sockets than its own.
    // The first hears it at its next socket refresh (Slack refreshes every few hours): from then
    // on both read a thread from Slack before acting on it.
    assert!(second.health.peers_seen(), "the second replica did not notice the first");
    assert!(!app.bot.health.peers_seen(), "the first replica cannot know yet");
    app.ws.send_disconnect_all("refresh_requested");
    wait_for("the first replica to notice the second", || {
        let seen = app.bot.health.peers_seen();
        async move { seen.then_some(()) }
    })
    .await;

    // Few tickets: Slack's pace of about one post a second per channel holds for each replica.
    let problems =
        ["my vpn won't connect from home", "okta verify push not arriving", "zoom microphone not working"];
    let roots =
        join_all(problems.iter().enumerate().map(|(i, p)| lifecycle(&app, format!("person{i}"), p))).await;
    app.control().await;

    for root in &roots {
        let replies = app.bot_replies(root);
        assert_eq!(replies.len(), 4, "a turn was answered twice or not at all in {root}");
        assert_eq!(app.bot_replies_with(root, ESCALATION), 1, "escalations in {root}");
        assert!(replies[2].text.contains("I'll stop guessing"), "the attempt count was lost across replicas");
    }
    let live = app.bot.live_threads().await + second.live_threads().await;
    assert!(live >= problems.len(), "threads were dropped: {live}");
}

#[actix_rt::test]
async fn one_replica_reads_nothing_from_slack_on_the_common_path() {
    let app = spawn(Setup { tweak: Some(quick_assist_wait()), ..Setup::default() }).await;

    let root = lifecycle(&app, "person0".into(), "my vpn won't connect from home").await;
    app.control().await;

    assert_eq!(app.bot_replies_with(&root, ESCALATION), 1);
    assert!(!app.bot.health.peers_seen(), "one replica took itself for two");
    assert_eq!(app.ws.calls_of("conversations.replies"), 0, "a thread was read back");
}

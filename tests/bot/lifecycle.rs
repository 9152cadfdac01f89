//! The ticket lifecycle as the requester, the assignee and the channel see it (DESIGN §2).

use itbot::compose::GET_HUMAN_ACTION;
use itbot_fakes::workspace::{Fault, Posted};

use crate::helpers::{spawn, wait_for, Setup, TestApp};

const ESCALATION: &str = "could you take this one?";

/// The "Get a human" button of a bot message, if it has one.
fn button_value(p: &Posted) -> Option<String> {
    p.blocks.as_ref()?.as_array()?.iter().find_map(|b| {
        let e = &b["elements"][0];
        (e["action_id"] == GET_HUMAN_ACTION).then(|| e["value"].as_str().unwrap_or_default().to_string())
    })
}

async fn ticket(app: &TestApp, who: &str, text: &str) -> (String, String) {
    let user = app.ws.user_id(who);
    let root = app.ws.post(&user, &app.it(), text, None);
    app.wait_bot_replies(&root, 1).await;
    (user, root)
}

#[actix_rt::test]
async fn thumbs_down_from_someone_else_does_not_escalate() {
    let app = spawn(Setup::default()).await;
    let (_, root) = ticket(&app, "alice", "Okta keeps looping when I open Salesforce").await;
    let answer = app.bot_replies(&root)[0].ts.clone();
    let bob = app.ws.user_id("bob");

    app.ws.react(&bob, &app.it(), &answer, "-1");
    app.control().await;

    assert_eq!(app.bot_replies(&root).len(), 1, "someone else's thumbs-down escalated");
}

#[actix_rt::test]
async fn two_failed_attempts_offer_a_person_and_the_next_failure_escalates() {
    let app = spawn(Setup::default()).await;
    let (alice, root) = ticket(&app, "alice", "AWS VPN client says authentication failed").await;

    app.ws.post(&alice, &app.it(), "didn't help", Some(&root));
    app.wait_bot_replies(&root, 2).await;
    app.ws.post(&alice, &app.it(), "still the same error", Some(&root));
    let offer = app.wait_bot_replies(&root, 3).await[2].clone();
    app.ws.post(&alice, &app.it(), "nope, still broken", Some(&root));
    let escalation = app.wait_bot_replies(&root, 4).await[3].text.clone();

    assert!(offer.text.contains("I'll stop guessing"), "no offer: {}", offer.text);
    assert!(button_value(&offer).is_some(), "the offer has no Get a human button");
    assert!(escalation.contains(ESCALATION), "no escalation: {escalation}");
    assert!(escalation.contains(&format!("<@{}>", app.ws.user_id("dana"))));
    assert!(escalation.contains("after 3 attempts"), "{escalation}");
}

#[actix_rt::test]
async fn with_auto_escalation_the_last_allowed_failure_pings_the_assignee() {
    let app =
        spawn(Setup { tweak: Some(Box::new(|c| c.settings.escalation.auto = true)), ..Setup::default() })
            .await;
    let (alice, root) = ticket(&app, "alice", "gmail is not loading my emails").await;

    app.ws.post(&alice, &app.it(), "didn't work", Some(&root));
    app.wait_bot_replies(&root, 2).await;
    app.ws.post(&alice, &app.it(), "still not working", Some(&root));
    let escalation = app.wait_bot_replies(&root, 3).await[2].text.clone();

    assert!(escalation.contains(ESCALATION), "{escalation}");
}

#[actix_rt::test]
async fn asking_for_a_human_escalates_at_once_with_a_brief() {
    let app = spawn(Setup::default()).await;
    let (alice, root) =
        ticket(&app, "alice", "URGENT: zoom can't share my screen, client demo in 10 min").await;

    app.ws.post(&alice, &app.it(), "can a human help please?", Some(&root));
    let escalation = app.wait_bot_replies(&root, 2).await[1].text.clone();

    assert!(escalation.contains(ESCALATION));
    assert!(escalation.contains("*Symptom:* URGENT: zoom can't share my screen"), "{escalation}");
    assert!(escalation.contains("*Tried:* steps from *Zoom"), "{escalation}");
    assert!(escalation.contains("*Urgency:* high"), "{escalation}");
}

#[actix_rt::test]
async fn the_brief_leaves_out_a_message_that_held_a_password_as_the_requester_was_told() {
    let app = spawn(Setup::default()).await;
    let (alice, root) =
        ticket(&app, "alice", "my VPN fails, my password is Hunter2!xyz and it still says denied").await;

    app.ws.post(&alice, &app.it(), "can a human help?", Some(&root));
    let escalation = app.wait_bot_replies(&root, 2).await[1].text.clone();

    assert!(escalation.contains(ESCALATION), "{escalation}");
    assert!(!escalation.contains("Hunter2"), "the brief reposted the password: {escalation}");
    assert!(escalation.contains("not quoted"), "{escalation}");
}

#[actix_rt::test]
async fn the_get_a_human_button_escalates_once_and_only_for_the_requester() {
    let app = spawn(Setup::default()).await;
    let (alice, root) = ticket(&app, "alice", "1Password won't unlock on my new laptop").await;
    let answer = app.bot_replies(&root)[0].clone();
    let value = button_value(&answer).expect("the answer has a Get a human button");
    let bob = app.ws.user_id("bob");
    let mut posted = app.ws.subscribe();

    assert!(app.ws.click_button(&bob, &app.it(), &answer.ts, GET_HUMAN_ACTION, &value));
    let note = wait_for("a private note to bob", || {
        let found = std::iter::from_fn(|| posted.try_recv().ok())
            .find(|p| p.ephemeral_to.as_deref() == Some(bob.as_str()));
        async move { found }
    })
    .await;
    assert!(app.ws.click_button(&alice, &app.it(), &answer.ts, GET_HUMAN_ACTION, &value));
    app.wait_bot_replies(&root, 2).await;
    assert!(app.ws.click_button(&alice, &app.it(), &answer.ts, GET_HUMAN_ACTION, &value));
    app.control().await;

    assert!(note.text.contains("Only"), "{}", note.text);
    assert_eq!(app.bot_replies_with(&root, ESCALATION), 1, "escalated more than once");
    assert_eq!(app.bot_replies(&root).len(), 2);
}

#[actix_rt::test]
async fn without_an_assignee_the_fallback_mention_is_pinged() {
    let app = spawn(Setup {
        workspace: Some(itbot_fakes::workspace::WorkspaceOptions {
            assist_enabled: false,
            ..Default::default()
        }),
        tweak: Some(Box::new(|c| {
            c.settings.assist.wait_secs = 1;
            c.settings.escalation.fallback_mention = "<!subteam^S0ITTEAM>".into();
        })),
        ..Setup::default()
    })
    .await;
    let (alice, root) = ticket(&app, "alice", "the office wifi won't connect").await;

    app.ws.post(&alice, &app.it(), "I need a human", Some(&root));
    let escalation = app.wait_bot_replies(&root, 2).await[1].text.clone();

    assert!(escalation.starts_with("<!subteam^S0ITTEAM>, could you take this one?"), "{escalation}");
}

#[actix_rt::test]
async fn an_it_staff_member_writing_silences_the_bot_until_the_requester_mentions_it() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| c.settings.escalation.it_staff = vec!["U0STAFF01".into()])),
        ..Setup::default()
    })
    .await;
    let (alice, root) = ticket(&app, "alice", "slack notifications stopped on desktop").await;

    app.ws.post("U0STAFF01", &app.it(), "looking at this now", Some(&root));
    app.ws.post(&alice, &app.it(), "still nothing", Some(&root));
    app.control().await;
    assert_eq!(app.bot_replies(&root).len(), 1, "the bot talked over IT staff");

    let mention = format!("<@{}> still no notifications, any other idea?", app.ws.bot_user_id());
    app.ws.post(&alice, &app.it(), &mention, Some(&root));
    app.wait_bot_replies(&root, 2).await;
}

#[actix_rt::test]
async fn after_an_access_acknowledgement_the_requesters_thanks_gets_no_reply() {
    let app = spawn(Setup::default()).await;
    let (bob, root) = ticket(&app, "bob", "I need access to Snowflake for the finance dashboards").await;

    app.ws.post(&bob, &app.it(), "thanks!", Some(&root));
    app.control().await;

    assert_eq!(app.bot_replies(&root).len(), 1);
}

#[actix_rt::test]
async fn restart_mid_thread_keeps_the_attempt_count() {
    let mut app = spawn(Setup::default()).await;
    let (alice, root) = ticket(&app, "alice", "my vpn won't connect from home").await;
    app.ws.post(&alice, &app.it(), "didn't help", Some(&root));
    app.wait_bot_replies(&root, 2).await;

    app.restart(None).await;
    app.ws.post(&alice, &app.it(), "still not working", Some(&root));
    let offer = app.wait_bot_replies(&root, 3).await[2].clone();

    assert!(offer.text.contains("I've suggested 2 fixes"), "the count was lost: {}", offer.text);
    let meta = offer.metadata.expect("state on the reply");
    assert_eq!(meta["event_payload"]["attempts"], 2);
    assert_eq!(meta["event_payload"]["ticket"].as_str().map(|t| t.starts_with("IT-")), Some(true));
}

#[actix_rt::test]
async fn a_restart_never_escalates_twice() {
    let mut app = spawn(Setup::default()).await;
    let (alice, root) = ticket(&app, "alice", "github push gives 403").await;
    let answer = app.bot_replies(&root)[0].ts.clone();
    app.ws.post(&alice, &app.it(), "please escalate", Some(&root));
    app.wait_bot_replies(&root, 2).await;

    app.restart(None).await;
    app.ws.react(&alice, &app.it(), &answer, "-1");
    app.ws.post(&alice, &app.it(), "can someone from IT help?", Some(&root));
    app.control().await;

    assert_eq!(app.bot_replies_with(&root, ESCALATION), 1);
}

#[actix_rt::test]
async fn a_thumbs_down_on_an_answer_from_before_a_restart_still_escalates() {
    let mut app = spawn(Setup::default()).await;
    let (alice, root) = ticket(&app, "alice", "zoom microphone not working").await;
    let answer = app.bot_replies(&root)[0].ts.clone();

    app.restart(None).await;
    app.ws.react(&alice, &app.it(), &answer, "-1");
    let escalation = app.wait_bot_replies(&root, 2).await[1].text.clone();

    assert!(escalation.contains(ESCALATION));
    assert!(escalation.contains("reacted :-1:"), "{escalation}");
}

#[actix_rt::test]
async fn an_idle_thread_stops_and_resumes_on_the_next_reply() {
    let app =
        spawn(Setup { tweak: Some(Box::new(|c| c.settings.threads.idle_secs = 1)), ..Setup::default() })
            .await;
    let (alice, root) = ticket(&app, "alice", "I forgot my password").await;
    wait_for("the thread to stop when idle", || {
        let live = app.bot.live_threads();
        async move { (live.await == 0).then_some(()) }
    })
    .await;

    app.ws.post(&alice, &app.it(), "that worked, thanks!", Some(&root));
    let closing = app.wait_bot_replies(&root, 2).await[1].text.clone();

    assert!(closing.contains("glad that sorted it"), "{closing}");
}

#[actix_rt::test]
async fn the_live_thread_cap_stops_the_least_recent_thread() {
    let app =
        spawn(Setup { tweak: Some(Box::new(|c| c.settings.threads.max_live = 2)), ..Setup::default() }).await;

    ticket(&app, "alice", "zoom audio broken").await;
    ticket(&app, "bob", "vpn won't connect").await;
    ticket(&app, "carol", "okta verify push not arriving").await;

    assert_eq!(app.bot.live_threads().await, 2);
}

#[actix_rt::test]
async fn reaction_markers_show_working_resolved_and_escalated() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| c.settings.slack.reaction_markers = true)),
        ..Setup::default()
    })
    .await;
    let (alice, solved) = ticket(&app, "alice", "my wifi keeps dropping").await;
    app.ws.post(&alice, &app.it(), "that fixed it!", Some(&solved));
    app.wait_bot_replies(&solved, 2).await;
    let (bob, stuck) = ticket(&app, "bob", "jamf self service won't open").await;
    app.ws.post(&bob, &app.it(), "get me a human", Some(&stuck));
    app.wait_bot_replies(&stuck, 2).await;

    let marks = |ts: &str| {
        let calls = app.ws.api_calls();
        calls
            .iter()
            .filter(|c| {
                c.method == "reactions.add" && c.params.get("timestamp").and_then(|v| v.as_str()) == Some(ts)
            })
            .filter_map(|c| c.params.get("name").and_then(|v| v.as_str()).map(str::to_string))
            .collect::<Vec<_>>()
    };
    let solved_marks = wait_for("the resolved marker", || {
        let m = marks(&solved);
        async move { m.contains(&"white_check_mark".to_string()).then_some(m) }
    })
    .await;
    let stuck_marks = wait_for("the escalated marker", || {
        let m = marks(&stuck);
        async move { m.contains(&"sos".to_string()).then_some(m) }
    })
    .await;
    assert!(solved_marks.contains(&"eyes".to_string()));
    assert!(stuck_marks.contains(&"eyes".to_string()));
}

#[actix_rt::test]
async fn a_workspace_that_rejects_the_status_and_markers_still_gets_answers() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| c.settings.slack.reaction_markers = true)),
        ..Setup::default()
    })
    .await;
    app.ws.inject("assistant.threads.setStatus", Fault::Error("missing_scope".into()));
    app.ws.inject("reactions.add", Fault::Error("missing_scope".into()));

    let (_, root) = ticket(&app, "alice", "github 2fa recovery codes lost").await;

    assert_eq!(app.bot_replies(&root).len(), 1);
    let calls = app.ws.api_calls();
    assert!(calls.iter().any(|c| c.method == "assistant.threads.setStatus"), "the status was not tried");
}

#[actix_rt::test]
async fn an_unsure_post_is_settled_by_a_one_word_llm_classification() {
    let app = spawn(Setup { llm: true, ..Setup::default() }).await;
    let llm = app.llm.clone().expect("llm");
    llm.set_reply(Some("change".into()));

    // One word that could be an order or a fault: the classifier is unsure (about 0.35).
    let (_, root) = ticket(&app, "bob", "monitor").await;

    let reply = &app.bot_replies(&root)[0].text;
    assert!(reply.contains("is working on this") && !reply.contains("1. "), "{reply}");
    let first = &llm.requests()[0];
    assert_eq!(first["max_completion_tokens"], 5);
    assert!(first["messages"][0]["content"].as_str().unwrap_or_default().contains("one word"));
}

#[actix_rt::test]
async fn a_bare_mention_in_the_channel_gets_the_help_text_not_a_ticket() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(&alice, &app.it(), &format!("<@{}> help", app.ws.bot_user_id()), None);
    let help = app.wait_bot_replies(&root, 1).await[0].text.clone();
    app.control().await;

    assert!(help.contains("I'm the IT helper"), "{help}");
    assert_eq!(app.bot.live_threads().await, 1, "the help request became a ticket");
}

#[actix_rt::test]
async fn a_thumbs_down_that_overtakes_the_answers_slow_response_still_escalates() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    // The first answer is stored at once, but Slack answers the bot's call two seconds later.
    app.ws.inject("chat.postMessage", Fault::RespondLate(std::time::Duration::from_secs(2)));
    let root = app.ws.post(&alice, &app.it(), "zoom microphone not working", None);
    let answer = app.wait_bot_replies(&root, 1).await[0].ts.clone();

    app.ws.react(&alice, &app.it(), &answer, "-1");
    let replies = app.wait_bot_replies(&root, 2).await;

    assert!(replies[1].text.contains(ESCALATION), "no escalation: {}", replies[1].text);
}

#[actix_rt::test]
async fn a_settled_thread_leaves_memory_and_resumes_from_slack_when_the_requester_writes() {
    let app =
        spawn(Setup { tweak: Some(Box::new(|c| c.settings.threads.settled_secs = 1)), ..Setup::default() })
            .await;
    let (alice, root) = ticket(&app, "alice", "Okta keeps looping when I open Salesforce").await;
    let (carol, other) = ticket(&app, "carol", "gmail is not loading my emails").await;
    let (_, open) = ticket(&app, "bob", "my zoom camera is black").await;
    app.ws.post(&alice, &app.it(), "that worked, thanks!", Some(&root));
    app.ws.post(&carol, &app.it(), "yes that fixed it", Some(&other));
    app.wait_bot_replies(&root, 2).await;
    let answer = app.wait_bot_replies(&other, 2).await[0].ts.clone();

    // Resolved: both leave memory after a second; the open ticket stays.
    let live = || {
        let bot = &app.bot;
        async move { bot.live_threads().await }
    };
    wait_for("the resolved threads to leave memory", || async { (live().await == 1).then_some(()) }).await;
    // The requester comes back: the thread is read from Slack and helps again.
    app.ws.post(&alice, &app.it(), "it's looping again, still not working", Some(&root));
    let again = app.wait_bot_replies(&root, 3).await[2].text.clone();
    // A 👎 on an answer of a thread no longer in memory still escalates.
    app.ws.react(&carol, &app.it(), &answer, "-1");
    let escalation = app.wait_bot_replies(&other, 3).await[2].text.clone();
    app.control().await;

    assert!(again.contains("different approach"), "{again}");
    assert!(escalation.contains(ESCALATION), "{escalation}");
    assert_eq!(app.bot_replies(&open).len(), 1);
}

//! Outage detection end to end: a burst of the same symptom from different people pings IT once
//! in the first thread and tells later reporters it is known; one person posting again and again,
//! or reports spread wider than the window, trigger nothing.

use std::time::Duration;

use itbot_fakes::workspace::Posted;

use crate::helpers::{spawn, wait_for, Setup, TestApp};

const IT_GROUP: &str = "<!subteam^S0IT|@it-team>";
const VPN: [&str; 5] = [
    "AWS VPN client won't connect, it keeps spinning",
    "vpn is down for me, AWS VPN Client says connection failed",
    "Can't connect to the VPN from home since this morning",
    "my AWS VPN keeps disconnecting, can't reach anything",
    "VPN client stuck connecting",
];

fn setup() -> Setup {
    Setup {
        tweak: Some(Box::new(|c| {
            c.settings.escalation.fallback_mention = IT_GROUP.into();
            c.settings.outage.min_reporters = 3;
            c.settings.outage.window_secs = 600;
            c.settings.assist.wait_secs = 1;
        })),
        ..Setup::default()
    }
}

/// The bot's outage pings anywhere in the channel.
pub fn pings(app: &TestApp) -> Vec<Posted> {
    app.ws
        .messages(&app.it())
        .into_iter()
        .filter(|p| p.user.as_deref() == Some(app.ws.bot_user_id()))
        .filter(|p| p.metadata.as_ref().is_some_and(|m| m["event_type"] == "itbot_outage"))
        .collect()
}

/// How often the channel's recent posts were read (`conversations.history` without metadata:
/// not the backfill or the report).
pub fn channel_reads(app: &TestApp) -> usize {
    app.ws
        .api_calls()
        .iter()
        .filter(|c| c.method == "conversations.history" && !c.params.contains_key("include_all_metadata"))
        .count()
}

async fn report(app: &TestApp, who: &str, text: &str) -> (String, String) {
    let root = app.ws.post(&app.ws.user_id(who), &app.it(), text, None);
    let first = app.wait_bot_replies(&root, 1).await[0].text.clone();
    (root, first)
}

#[actix_rt::test]
async fn a_burst_from_different_people_pings_it_once_and_later_reporters_hear_it_is_known() {
    let app = spawn(setup()).await;

    let (first, a1) = report(&app, "alice", VPN[0]).await;
    let (second, b1) = report(&app, "bob", VPN[1]).await;
    let (third, c1) = report(&app, "carol", VPN[2]).await;
    let ping = wait_for("the outage ping", || {
        let p = pings(&app);
        async move { (!p.is_empty()).then_some(p) }
    })
    .await;
    let (fourth, d1) = report(&app, "dave", VPN[3]).await;
    // The ping's list of threads grows with the fourth report.
    wait_for("the ping to list four threads", || {
        let p = pings(&app);
        let four = p.len() == 1 && p[0].metadata.as_ref().is_some_and(|m| m["event_payload"]["threads"] == 4);
        async move { four.then_some(()) }
    })
    .await;
    let update = app.wait_bot_replies(&second, 2).await[1].text.clone();
    app.control().await;

    let ping = &ping[0];
    assert_eq!(pings(&app).len(), 1, "pinged more than once");
    // One replica: the second report read the channel once (someone else had reported it), the
    // third was an outage from what this replica had seen.
    let reads = channel_reads(&app);
    assert_eq!(reads, 1, "recent posts read {reads} times");
    let page = app.metrics().await;
    assert_eq!(crate::helpers::metric_value(&page, "itbot_outages_total"), 1.0, "{page}");
    assert_eq!(ping.thread_ts.as_deref(), Some(first.as_str()), "the ping is not in the first thread");
    assert!(ping.text.starts_with(IT_GROUP), "IT was not mentioned: {}", ping.text);
    assert!(ping.text.contains("Possible outage"), "{}", ping.text);
    let digits = |ts: &str| ts.replace('.', "");
    let listed = &pings(&app)[0].text;
    for t in [&first, &second, &third, &fourth] {
        assert!(listed.contains(&digits(t)), "thread {t} missing from the ping: {listed}");
    }
    // The first two got ordinary answers; the third and fourth were told it is known.
    for answer in [&a1, &b1] {
        assert!(!answer.contains("known issue"), "{answer}");
    }
    for notice in [&c1, &d1] {
        assert!(notice.contains("known issue"), "{notice}");
        assert!(notice.contains(&digits(&first)), "no link to the first thread: {notice}");
        assert!(!notice.contains(IT_GROUP), "a reporter's thread pinged IT: {notice}");
    }
    assert!(update.starts_with("Update:") && update.contains(&digits(&first)), "{update}");
    // The known-issue threads wait for a person: a follow-up without a mention gets no reply.
    app.ws.post(&app.ws.user_id("carol"), &app.it(), "ok thanks", Some(&third));
    app.control().await;
    assert_eq!(app.bot_replies(&third).len(), 1);
    let state = app.bot_replies(&third)[0].metadata.clone().expect("state");
    assert_eq!(state["event_payload"]["outage"]["first"], first.as_str());
    // Asked by mention, the bot goes through the usual fixes after all — also after a restart.
    let mut app = app;
    app.restart(Some(Box::new(|c| c.settings.escalation.fallback_mention = IT_GROUP.into()))).await;
    let mention = format!("<@{}> mine might be different, what can I try?", app.ws.bot_user_id());
    app.ws.post(&app.ws.user_id("carol"), &app.it(), &mention, Some(&third));
    let steps = app.wait_bot_replies(&third, 2).await[1].text.clone();
    assert!(steps.contains("AWS VPN Client"), "{steps}");
}

#[actix_rt::test]
async fn one_person_reporting_the_same_thing_again_and_again_is_no_outage() {
    let app = spawn(setup()).await;

    for text in VPN {
        let (_, answer) = report(&app, "alice", text).await;
        assert!(!answer.contains("known issue"), "{answer}");
    }
    report(&app, "bob", VPN[0]).await;
    app.control().await;

    assert!(pings(&app).is_empty(), "a false alarm");
}

#[actix_rt::test]
async fn reports_spread_wider_than_the_window_are_no_outage() {
    let app = spawn(setup()).await;

    for (who, text) in [("alice", VPN[0]), ("bob", VPN[1]), ("carol", VPN[2]), ("dave", VPN[3])] {
        let (_, answer) = report(&app, who, text).await;
        assert!(!answer.contains("known issue"), "{answer}");
        // Eleven minutes pass between reports (the window is ten).
        app.ws.advance_clock(Duration::from_secs(660));
    }
    app.control().await;

    assert!(pings(&app).is_empty(), "reports an hour apart made an outage");
}

#[actix_rt::test]
async fn different_problems_at_the_same_time_are_no_outage() {
    let app = spawn(setup()).await;

    report(&app, "alice", VPN[0]).await;
    report(&app, "bob", "Okta keeps looping when I open Salesforce").await;
    report(&app, "carol", "zoom can't share my screen").await;
    app.control().await;

    assert!(pings(&app).is_empty());
}

#[actix_rt::test]
async fn two_replicas_sharing_the_events_still_ping_once_and_tell_the_fourth_reporter() {
    let app = spawn(setup()).await;
    let tweak: crate::helpers::Tweak = Box::new(|c| {
        c.settings.escalation.fallback_mention = IT_GROUP.into();
        c.settings.outage.min_reporters = 3;
        // Assist's card may reach the other replica: this one reads it after a second.
        c.settings.assist.wait_secs = 1;
    });
    let second = crate::helpers::start_bot(&app.ws, None, Some(tweak)).await;

    // However Slack spreads four reports over the two replicas, one of them sees two and reads
    // the channel, or sees three: the outage is found.
    let mut answers = Vec::new();
    for (who, text) in [("alice", VPN[0]), ("bob", VPN[1]), ("carol", VPN[2]), ("dave", VPN[3])] {
        answers.push(report(&app, who, text).await.1);
    }
    wait_for("the outage ping", || {
        let n = pings(&app).len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let (_, fifth) = report(&app, "erin", VPN[4]).await;
    app.control().await;

    assert_eq!(pings(&app).len(), 1, "pinged more than once across replicas");
    assert!(answers[3].contains("known issue"), "{}", answers[3]);
    assert!(!answers[0].contains("known issue") && !answers[1].contains("known issue"));
    let _ = fifth;
    second.stop().await;
}

#[actix_rt::test]
async fn two_replicas_hear_one_person_posting_again_and_again_as_no_outage() {
    let app = spawn(setup()).await;
    let tweak: crate::helpers::Tweak = Box::new(|c| {
        c.settings.outage.min_reporters = 3;
        c.settings.assist.wait_secs = 1;
    });
    let second = crate::helpers::start_bot(&app.ws, None, Some(tweak)).await;

    for text in VPN {
        report(&app, "alice", text).await;
    }
    report(&app, "bob", VPN[0]).await;
    app.control().await;

    assert!(pings(&app).is_empty(), "a false alarm");
    second.stop().await;
}

#[actix_rt::test]
async fn reports_answered_with_the_mac_and_the_windows_steps_are_one_outage() {
    let mut s = setup();
    let tweak = s.tweak.take().expect("setup tweaks the settings");
    s.tweak = Some(Box::new(move |c| {
        tweak(c);
        c.settings.company.platforms = vec!["macos".into(), "windows".into()];
    }));
    let app = spawn(s).await;

    report(&app, "alice", VPN[0]).await;
    report(&app, "bob", "VPN client won't connect on my Windows laptop").await;
    report(&app, "carol", "can't connect to the VPN from my PC since this morning").await;

    let ping = wait_for("the outage ping", || {
        let p = pings(&app);
        async move { (!p.is_empty()).then_some(p) }
    })
    .await;
    assert_eq!(ping.len(), 1, "one outage, not one per platform");
}

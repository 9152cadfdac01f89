//! The team report in the channel: `@itbot report` answered in its thread from the channel's
//! history, and the weekly report posted once per slot by a schedule on a hand-set clock.

use std::time::Duration;

use itbot::actors::report::ScheduleOptions;
use itbot::clock::Clock;
use itbot::startup::{Bot, TransportOptions};
use itbot_fakes::workspace::{Fault, Posted, Workspace};
use serde_json::json;

use crate::helpers::{spawn, start_bot_with, wait_for, Setup, TestApp, Tweak};

fn state(category: &str, phase: &str, article: Option<&str>) -> serde_json::Value {
    json!({
        "event_type": "itbot_thread_state",
        "event_payload": {
            "v": 1, "phase": phase, "category": category, "resolved": phase == "resolved",
            "escalated": false, "attempts": 0, "article": article,
        }
    })
}

/// Three tickets in the last week and one a fortnight ago, as the channel held them.
fn seed(ws: &Workspace) {
    let it = ws.it_channel().to_string();
    let (alice, bob, carol) = (ws.user_id("alice"), ws.user_id("bob"), ws.user_id("carol"));
    let zoom = ws.seed(Some(&alice), &it, "my zoom audio is broken in every call", None, 2.0, None);
    ws.seed(
        None,
        &it,
        "Try these steps",
        Some(&zoom),
        1.999,
        Some(state("technical", "helping", Some("zoom"))),
    );
    ws.seed(Some(&alice), &it, "that fixed it, thanks", Some(&zoom), 1.99, None);
    ws.seed(
        None,
        &it,
        "Great, glad that sorted it!",
        Some(&zoom),
        1.989,
        Some(state("technical", "resolved", Some("zoom"))),
    );
    let access = ws.seed(Some(&bob), &it, "I need access to Snowflake please", None, 3.0, None);
    ws.seed(
        None,
        &it,
        "Thanks! IT has it.",
        Some(&access),
        2.999,
        Some(state("access", "acknowledged", None)),
    );
    let old = ws.seed(Some(&carol), &it, "printer jammed on floor two", None, 14.0, None);
    ws.seed(None, &it, "Try these steps", Some(&old), 13.999, Some(state("technical", "helping", None)));
}

async fn ask_report(app: &TestApp, who: &str, words: &str) -> Posted {
    let text = format!("<@{}> {words}", app.ws.bot_user_id());
    let mention = app.ws.post(&app.ws.user_id(who), &app.it(), &text, None);
    app.wait_bot_replies(&mention, 1).await[0].clone()
}

#[actix_rt::test]
async fn a_mention_asking_for_a_report_gets_the_figures_in_its_thread() {
    let app = spawn(Setup {
        seed: Some(Box::new(seed)),
        llm: true,
        tweak: Some(Box::new(|c| c.settings.history.backfill_pace_ms = 10)),
        ..Setup::default()
    })
    .await;
    let dave = app.ws.user_id("dave");
    let live = app.ws.post(&dave, &app.it(), "AWS VPN client won't connect", None);
    let answer = app.wait_bot_replies(&live, 1).await[0].ts.clone();
    // A vote on the live answer reaches the report through the answer's metadata.
    assert!(app.ws.click_feedback(&app.ws.user_id("frank"), &app.it(), &answer, true));
    wait_for("the vote to be written", || {
        let written = app.bot_replies(&live)[0]
            .metadata
            .as_ref()
            .is_some_and(|m| m["event_payload"]["feedback"]["up"] == 1);
        async move { written.then_some(()) }
    })
    .await;

    let week = ask_report(&app, "erin", "report").await;
    let month = ask_report(&app, "erin", "report 30 days").await;

    assert!(week.text.starts_with("*IT report*"), "{}", week.text);
    assert!(week.text.contains("*Tickets:* 3 (2 technical, 1 access, 0 change)"), "{}", week.text);
    assert!(week.text.contains("*Resolved:* 1 by the bot"), "{}", week.text);
    assert!(week.text.contains("*Answered by the bot:* 3"), "{}", week.text);
    assert!(week.text.contains("*Feedback:* :+1: 1 · :-1: 0"), "{}", week.text);
    assert!(week.text.contains("*LLM:* 1 answer,"), "{}", week.text);
    // The mention itself is not a ticket; the month reaches the fortnight-old one.
    assert!(month.text.contains("*Tickets:* 4 (3 technical, 1 access, 0 change)"), "{}", month.text);
    for leak in ["zoom audio is broken", "Snowflake", "printer jammed", "AWS VPN client won't", &dave] {
        assert!(!week.text.contains(leak) && !month.text.contains(leak), "{leak} in the report");
    }
    assert_eq!(week.metadata.as_ref().map(|m| m["event_type"].clone()), Some(json!("itbot_report")));
    assert!(app.bot.live_threads().await <= 1, "a report request opened a ticket thread");
}

#[actix_rt::test]
async fn a_mention_about_a_problem_that_says_report_is_still_a_ticket() {
    let app = spawn(Setup::default()).await;

    let reply = ask_report(&app, "alice", "report: my vpn won't connect").await;

    assert!(!reply.text.contains("*IT report*"), "{}", reply.text);
}

/// The bot's weekly reports in the channel (top-level, with the report metadata and a slot).
pub fn weekly_reports(ws: &Workspace) -> Vec<Posted> {
    ws.messages(ws.it_channel())
        .into_iter()
        .filter(|p| p.thread_ts.is_none() && p.user.as_deref() == Some(ws.bot_user_id()))
        .filter(|p| p.metadata.as_ref().is_some_and(|m| m["event_payload"]["slot"].is_i64()))
        .collect()
}

/// Waits until the schedule has looked at the clock twice from now. The first look saw the
/// clock as it is now, and whatever it decided is done by the second: the schedule does not look
/// while a weekly report is being checked or posted.
pub async fn schedule_looked_twice(bot: &Bot) {
    let looks = || bot.health.metrics.schedule_looks.get();
    let target = looks() + 2;
    wait_for("the schedule to look at the clock twice", || {
        let n = looks();
        async move { (n >= target).then_some(()) }
    })
    .await;
}

async fn start_scheduled(ws: &Workspace, clock: &Clock, weekly_day: &str) -> Bot {
    start_scheduled_with(ws, clock, weekly_day, None).await
}

/// [`start_scheduled`] with `REDIS_URL` set to `redis_url`.
pub async fn start_scheduled_with(
    ws: &Workspace,
    clock: &Clock,
    weekly_day: &str,
    redis_url: Option<String>,
) -> Bot {
    let weekly_day = weekly_day.to_string();
    let tweak: Tweak = Box::new(move |config| {
        config.env.redis_url = redis_url.map(Into::into);
        config.settings.report.weekly_day = weekly_day;
        config.settings.report.weekly_hour = 9;
        config.settings.report.timezone = "Europe/Berlin".into();
        config.settings.history.backfill_pace_ms = 10;
    });
    let schedule = ScheduleOptions { clock: clock.clone(), tick: Duration::from_millis(20) };
    start_bot_with(ws, None, Some(tweak), TransportOptions { schedule, ..TransportOptions::default() }).await
}

#[actix_rt::test]
async fn the_weekly_report_is_posted_once_at_its_hour_also_across_a_restart() {
    let ws = Workspace::start(Default::default()).await.expect("workspace");
    // The next Monday 09:00 in Berlin from now; the workspace's clock moves with the bot's, so
    // messages carry the times the schedule sees.
    let now = Clock::System.now();
    let slot = itbot::schedule::next_weekly(now, "mon", 9, "Europe/Berlin").expect("a slot");
    let clock = Clock::manual(slot - 120);
    ws.advance_clock(Duration::from_secs((slot - 120 - now) as u64));
    let mut bot = start_scheduled(&ws, &clock, "mon").await;
    let alice = ws.user_id("alice");
    let app_ticket = ws.post(&alice, ws.it_channel(), "my zoom camera is not working", None);
    wait_for("the ticket's answer", || {
        let n = ws.thread(ws.it_channel(), &app_ticket).len();
        async move { (n >= 3).then_some(()) }
    })
    .await;
    // Time passes for the bot and for the workspace alike.
    let pass = |secs: u64| {
        clock.advance(secs as i64);
        ws.advance_clock(Duration::from_secs(secs));
    };
    // A minute before the hour: nothing yet.
    pass(60);
    schedule_looked_twice(&bot).await;
    assert!(weekly_reports(&ws).is_empty(), "posted before its hour");

    pass(61);
    let first = wait_for("the weekly report", || {
        let r = weekly_reports(&ws);
        async move { r.into_iter().next() }
    })
    .await;
    // Later the same week, and after a restart within the catch-up hour: still one.
    pass(1800);
    let weekly_checks = || {
        ws.api_calls()
            .iter()
            .filter(|c| c.method == "conversations.history" && c.params.contains_key("latest"))
            .count()
    };
    let checks = weekly_checks();
    bot.stop().await;
    wait_for("the old sockets to close", || {
        let open = ws.open_connections();
        async move { (open == 0).then_some(()) }
    })
    .await;
    bot = start_scheduled(&ws, &clock, "mon").await;
    wait_for("the restarted bot to look for this week's report", || {
        let n = weekly_checks();
        async move { (n > checks).then_some(()) }
    })
    .await;
    schedule_looked_twice(&bot).await;
    assert_eq!(weekly_reports(&ws).len(), 1, "posted twice for one week");

    // The next Monday at 09:00 brings the next one.
    let next = itbot::schedule::next_weekly(slot, "mon", 9, "Europe/Berlin").expect("next slot");
    assert_eq!(next - slot, 7 * 86_400);
    pass((next + 1 - clock.now()) as u64);
    wait_for("the second weekly report", || {
        let n = weekly_reports(&ws).len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    bot.stop().await;

    assert_eq!(first.metadata.as_ref().unwrap()["event_payload"]["slot"], slot);
    assert!(first.text.contains("*IT report*"), "{}", first.text);
    assert!(first.text.contains("*Tickets:* 1 (1 technical"), "{}", first.text);
    assert_eq!(weekly_reports(&ws).len(), 2);
}

#[actix_rt::test]
async fn without_a_weekly_day_no_report_is_ever_posted() {
    let ws = Workspace::start(Default::default()).await.expect("workspace");
    let clock = Clock::manual(Clock::System.now());
    let bot = start_scheduled(&ws, &clock, "").await;
    // A running schedule looks at the clock as soon as it starts; this one never did.
    let looks = bot.health.metrics.schedule_looks.get();
    bot.stop().await;

    assert_eq!(looks, 0, "the schedule runs without a weekly day");
    assert!(weekly_reports(&ws).is_empty());
    // Not even looked for: the weekly check is the only history read bounded by `latest`.
    let weekly_checks = ws
        .api_calls()
        .iter()
        .filter(|c| c.method == "conversations.history" && c.params.contains_key("latest"))
        .count();
    assert_eq!(weekly_checks, 0);
}

#[actix_rt::test]
async fn a_weekly_report_slack_refused_is_tried_again_minutes_later() {
    let ws = Workspace::start(Default::default()).await.expect("workspace");
    let now = Clock::System.now();
    let slot = itbot::schedule::next_weekly(now, "mon", 9, "Europe/Berlin").expect("a slot");
    let clock = Clock::manual(slot - 10);
    ws.advance_clock(Duration::from_secs((slot - 10 - now) as u64));
    let bot = start_scheduled(&ws, &clock, "mon").await;
    let pass = |secs: u64| {
        clock.advance(secs as i64);
        ws.advance_clock(Duration::from_secs(secs));
    };
    let posts = || ws.api_calls().iter().filter(|c| c.method == "chat.postMessage").count();

    // A refusal the Web API client does not retry by itself (it would retry `fatal_error` within
    // a second), so the next attempt is the schedule's.
    ws.inject("chat.postMessage", Fault::Error("restricted_action".into()));
    pass(11);
    wait_for("the refused attempt", || {
        let n = posts();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    // Not hammered: a minute later nothing new was tried.
    pass(60);
    schedule_looked_twice(&bot).await;
    assert_eq!(posts(), 1, "tried again at once");
    assert!(weekly_reports(&ws).is_empty());
    pass(300);
    wait_for("the weekly report on the next attempt", || {
        let n = weekly_reports(&ws).len();
        async move { (n == 1).then_some(()) }
    })
    .await;
    bot.stop().await;
}

#[actix_rt::test]
async fn a_report_cut_short_by_the_read_limit_says_so() {
    let app = spawn(Setup {
        seed: Some(Box::new(seed)),
        tweak: Some(Box::new(|c| {
            c.settings.history.backfill_pace_ms = 10;
            c.settings.history.backfill_messages = 2;
        })),
        ..Setup::default()
    })
    .await;

    let report = ask_report(&app, "erin", "report 30").await;

    assert!(report.text.contains("Only the latest 2 posts were read"), "{}", report.text);
}

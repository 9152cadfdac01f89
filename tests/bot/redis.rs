//! Replicas on Redis (`REDIS_URL`), against a real `redis-server` started here: the coordination
//! primitives, then several bot processes on one simulated workspace with Slack's limits on.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use itbot::coord::{Coord, CoordError, Slot};
use itbot_fakes::redis_server::RedisServer;

use crate::helpers::{spawn, start_bot, wait_for, Setup, Tweak};

const ESCALATION: &str = "could you take this one?";

fn redis() -> RedisServer {
    RedisServer::start().expect("redis-server starts (apt-get install redis-server)")
}

fn coord(server: &RedisServer) -> Coord {
    Coord::connect(&server.url().into(), None).expect("a redis url").scoped("T1", "UBOT")
}

fn with_redis(server: &RedisServer) -> Tweak {
    let url = server.url();
    Box::new(move |c| {
        c.env.redis_url = Some(url.into());
        c.settings.assist.wait_secs = 1;
    })
}

#[actix_rt::test]
async fn the_shared_budget_hands_out_a_burst_then_one_slot_per_interval_in_order() {
    let server = redis();
    let c = coord(&server);
    // 60 a minute with a burst of 2: two slots now, then one a second, each reserved in turn.
    let mut waits = Vec::new();
    for _ in 0..4 {
        match c.reserve("chat.postMessage:C1", 60, 2, Duration::from_secs(5)).await.expect("redis answers") {
            Slot::After(wait) => waits.push(wait),
            Slot::Full(wait) => panic!("no slot within 5 s, retry in {wait:?}"),
        }
    }
    assert!(waits[0].is_zero() && waits[1].is_zero(), "{waits:?}");
    let second = Duration::from_secs(1);
    assert!(waits[2] > second - Duration::from_millis(100) && waits[2] <= second, "{waits:?}");
    assert!(waits[3] > 2 * second - Duration::from_millis(100) && waits[3] <= 2 * second, "{waits:?}");
    // Nothing within reach: nothing reserved, and when to ask again.
    match c.reserve("chat.postMessage:C1", 60, 2, Duration::ZERO).await.expect("redis answers") {
        Slot::Full(wait) => {
            assert!(wait > Duration::from_secs(2) && wait <= Duration::from_secs(3), "{wait:?}")
        }
        other => panic!("a slot 3 s ahead was reserved with nothing allowed ahead: {other:?}"),
    }
    // Another lane has its own budget; another workspace its own keys.
    assert_eq!(
        c.reserve("reactions.add", 50, 7, Duration::ZERO).await.expect("ok"),
        Slot::After(Duration::ZERO)
    );
    let other = Coord::connect(&server.url().into(), None).expect("url").scoped("T2", "UBOT");
    assert_eq!(
        other.reserve("chat.postMessage:C1", 60, 2, Duration::ZERO).await.expect("ok"),
        Slot::After(Duration::ZERO)
    );
    // A 429's pause holds every replica back until it ends.
    c.pause("reactions.add", Duration::from_secs(2)).await.expect("paused");
    match c.reserve("reactions.add", 50, 7, Duration::from_secs(5)).await.expect("ok") {
        Slot::Full(wait) => assert!(wait > Duration::from_millis(1500), "{wait:?}"),
        other => panic!("a paused lane handed out {other:?}"),
    }
}

#[actix_rt::test]
async fn once_only_effects_votes_and_leases_hold_across_handles() {
    let server = redis();
    let (a, b) = (coord(&server), coord(&server));
    let ttl = Duration::from_secs(60);
    let claims = join_all((0..10).map(|i| {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { c.once(&["escalation", "1700000000.000100"], ttl).await.expect("redis answers") }
    }))
    .await;
    assert_eq!(claims.iter().filter(|c| **c).count(), 1, "{claims:?}");

    // Votes from two replicas at once are all kept; a person's second vote replaces the first.
    let votes =
        join_all([("U1", true), ("U2", true), ("U3", false), ("U4", true)].into_iter().enumerate().map(
            |(i, (u, up))| {
                let c = if i % 2 == 0 { a.clone() } else { b.clone() };
                async move { c.vote("1.1", u, up, ttl).await.expect("redis answers") }
            },
        ))
        .await;
    assert_eq!(votes.len(), 4);
    assert_eq!(a.vote("1.1", "U3", true, ttl).await.expect("ok"), (4, 0));

    assert!(a.lease("thread:1.1", "replica-a", ttl).await.expect("ok"));
    assert!(!b.lease("thread:1.1", "replica-b", ttl).await.expect("ok"), "two holders");
    b.release("thread:1.1", "replica-b").await.expect("ok");
    assert!(!b.lease("thread:1.1", "replica-b", ttl).await.expect("ok"), "released by a non-holder");
    a.release("thread:1.1", "replica-a").await.expect("ok");
    assert!(b.lease("thread:1.1", "replica-b", ttl).await.expect("ok"));

    // A claim stays its claimer's: it may try again, another process may not.
    assert!(a.claim(&["weekly_report", "C1", "100"], ttl).await.expect("ok"));
    assert!(a.claim(&["weekly_report", "C1", "100"], ttl).await.expect("ok"), "the claimer lost its claim");
    let other_process = coord(&server);
    assert!(!other_process.claim(&["weekly_report", "C1", "100"], ttl).await.expect("ok"), "claimed twice");

    a.put_state("C1", "1.1", r#"{"v":1}"#, ttl).await.expect("ok");
    assert_eq!(b.get_state("C1", "1.1").await.expect("ok").as_deref(), Some(r#"{"v":1}"#));
    assert_eq!(b.get_state("C1", "2.2").await.expect("ok"), None);
}

#[actix_rt::test]
async fn a_dead_redis_is_an_error_at_once_and_a_restarted_one_is_used_again() {
    let mut server = redis();
    let c = coord(&server);
    assert!(c.once(&["x"], Duration::from_secs(60)).await.expect("up"));
    assert_eq!(c.is_up(), Some(true));

    server.kill();
    let started = Instant::now();
    let err = c.once(&["y"], Duration::from_secs(60)).await.expect_err("redis is gone");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a dead redis held the caller {:?}",
        started.elapsed()
    );
    assert_eq!(c.is_up(), Some(false));
    // Moments later the caller is not held at all.
    assert!(matches!(c.once(&["y"], Duration::from_secs(60)).await, Err(CoordError::Down)), "{err}");

    server.restart().expect("redis-server restarts");
    wait_for("the client to reconnect", || {
        let c = c.clone();
        async move { c.once(&["z"], Duration::from_secs(60)).await.ok() }
    })
    .await;
    assert_eq!(c.is_up(), Some(true));
}

#[actix_rt::test]
async fn three_replicas_on_redis_answer_every_ticket_once_within_one_slack_budget() {
    let server = redis();
    // Slack's real limits, enforced by the workspace: three replicas share one budget.
    let app = spawn(Setup { tweak: Some(with_redis(&server)), ..Setup::default() }).await;
    let second = start_bot(&app.ws, None, Some(with_redis(&server))).await;
    let third = start_bot(&app.ws, None, Some(with_redis(&server))).await;
    assert_eq!(app.ws.open_connections(), 6, "each replica holds two sockets");

    let problems = [
        "my vpn won't connect from home",
        "okta verify push not arriving",
        "zoom microphone not working",
        "wifi keeps dropping on floor 3",
        "gmail won't load in chrome",
        "1password asks for my secret key again",
        "printer on 2 says offline",
        "jamf self service won't open",
    ];
    let roots: Vec<String> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| app.ws.post(&app.ws.user_id(&format!("person{i}")), &app.it(), p, None))
        .collect();
    join_all(roots.iter().map(|root| app.wait_bot_replies(root, 1))).await;
    for (i, root) in roots.iter().enumerate() {
        app.ws.post(&app.ws.user_id(&format!("person{i}")), &app.it(), "didn't help", Some(root));
    }
    join_all(roots.iter().map(|root| app.wait_bot_replies(root, 2))).await;
    // Each asks for a person and 👎s the answer in the same instant: Slack spreads the two events
    // over the replicas' sockets, so two replicas may decide to escalate the same thread at once.
    for (i, root) in roots.iter().enumerate() {
        let person = app.ws.user_id(&format!("person{i}"));
        let answer = app.bot_replies(root)[1].ts.clone();
        app.ws.post(&person, &app.it(), "can someone from IT help?", Some(root));
        app.ws.react(&person, &app.it(), &answer, "-1");
    }
    join_all(roots.iter().map(|root| app.wait_bot_replies(root, 3))).await;
    app.control().await;

    for root in &roots {
        let replies = app.bot_replies(root);
        assert_eq!(replies.len(), 3, "a turn was answered twice or not at all in {root}");
        let texts: Vec<String> = replies.iter().map(|r| r.text.chars().take(80).collect()).collect();
        assert_eq!(app.bot_replies_with(root, "*Symptom:*"), 1, "escalations in {root}: {texts:#?}");
        assert_eq!(
            app.bot_replies_with(root, ESCALATION),
            1,
            "the brief does not name the assignee: {texts:#?}"
        );
    }
    assert_eq!(app.ws.rate_limited_calls(), 0, "three replicas together went past Slack's limits");
    // Replicas read each other's turns from Redis, not from Slack.
    assert_eq!(app.ws.calls_of("conversations.replies"), 0, "a thread was read from Slack");
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"itbot_redis_calls_total{op="reserve",outcome="ok"}"#), "{metrics}");
    drop((second, third));
}

#[actix_rt::test]
async fn redis_dying_mid_run_silences_nothing_and_the_bot_uses_it_again_when_it_returns() {
    let mut server = redis();
    let app = spawn(Setup { tweak: Some(with_redis(&server)), ..Setup::default() }).await;
    let ask = |who: &str, problem: &str| app.ws.post(&app.ws.user_id(who), &app.it(), problem, None);

    let before = ask("amy", "my vpn won't connect from home");
    app.wait_bot_replies(&before, 1).await;
    assert!(app.readyz().await.contains("redis=up"), "{}", app.readyz().await);

    server.kill();
    let during = ask("bob", "okta verify push not arriving");
    app.wait_bot_replies(&during, 1).await;
    app.ws.post(&app.ws.user_id("bob"), &app.it(), "still not working", Some(&during));
    app.wait_bot_replies(&during, 2).await;
    let ready = app.readyz().await;
    assert!(ready.starts_with("ready") && ready.contains("redis=down"), "{ready}");

    server.restart().expect("redis-server restarts");
    wait_for("the bot to use redis again", || async {
        let after = app.ws.post(&app.ws.user_id("cat"), &app.it(), "zoom has no sound", None);
        app.wait_bot_replies(&after, 1).await;
        app.readyz().await.contains("redis=up").then_some(())
    })
    .await;
    for root in [&before, &during] {
        let n = if root == &during { 2 } else { 1 };
        assert_eq!(app.bot_replies(root).len(), n, "{root}");
    }
    assert_eq!(app.ws.rate_limited_calls(), 0);
}

#[actix_rt::test]
async fn an_escalation_another_replica_has_claimed_is_not_posted_again() {
    let server = redis();
    let app = spawn(Setup { tweak: Some(with_redis(&server)), ..Setup::default() }).await;
    let alice = app.ws.user_id("alice");
    let root = app.ws.post(&alice, &app.it(), "my vpn won't connect from home", None);
    app.wait_bot_replies(&root, 1).await;
    // Another replica won this thread's escalation a moment ago and has not posted it yet.
    let other = Coord::connect(&server.url().into(), None)
        .expect("url")
        .scoped(app.ws.team_id(), app.ws.bot_user_id());
    assert!(other.once(&["escalation", &app.it(), &root], Duration::from_secs(60)).await.expect("claimed"));

    app.ws.post(&alice, &app.it(), "can someone from IT help?", Some(&root));
    app.control().await;

    assert_eq!(app.bot_replies_with(&root, "*Symptom:*"), 0, "escalated although another replica claimed it");

    // The claim is per thread: another ticket escalates as usual.
    let bob = app.ws.user_id("bob");
    let second = app.ws.post(&bob, &app.it(), "okta verify push not arriving", None);
    app.wait_bot_replies(&second, 1).await;
    app.ws.post(&bob, &app.it(), "can someone from IT help?", Some(&second));
    app.wait_bot_replies(&second, 2).await;
    assert_eq!(app.bot_replies_with(&second, "*Symptom:*"), 1);
}

#[actix_rt::test]
async fn two_replicas_post_one_weekly_report_and_a_slot_claimed_elsewhere_is_left_to_its_claimer() {
    use crate::report::{schedule_looked_twice, start_scheduled_with, weekly_reports};
    use itbot::clock::Clock;
    use itbot_fakes::workspace::Workspace;

    let server = redis();
    let ws = Workspace::start(Default::default()).await.expect("workspace");
    let now = Clock::System.now();
    let slot = itbot::schedule::next_weekly(now, "mon", 9, "Europe/Berlin").expect("a slot");
    let clock = Clock::manual(slot - 60);
    ws.advance_clock(Duration::from_secs((slot - 60 - now) as u64));
    let one = start_scheduled_with(&ws, &clock, "mon", Some(server.url())).await;
    let two = start_scheduled_with(&ws, &clock, "mon", Some(server.url())).await;
    let pass = |secs: i64| {
        clock.advance(secs);
        ws.advance_clock(Duration::from_secs(secs as u64));
    };

    pass(61);
    wait_for("the weekly report", || {
        let n = weekly_reports(&ws).len();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    schedule_looked_twice(&one).await;
    schedule_looked_twice(&two).await;
    assert_eq!(weekly_reports(&ws).len(), 1, "two replicas posted one week's report");

    // Next week's slot is claimed by a third replica that has not posted yet: these two leave it.
    let next = itbot::schedule::next_weekly(slot, "mon", 9, "Europe/Berlin").expect("next slot");
    let other =
        Coord::connect(&server.url().into(), None).expect("url").scoped(ws.team_id(), ws.bot_user_id());
    let next_slot = next.to_string();
    assert!(other
        .claim(&["weekly_report", ws.it_channel(), &next_slot], Duration::from_secs(600))
        .await
        .expect("ok"));
    pass(next + 1 - clock.now());
    schedule_looked_twice(&one).await;
    schedule_looked_twice(&two).await;
    assert_eq!(weekly_reports(&ws).len(), 1, "a slot another replica claimed was posted");
}

#[actix_rt::test]
async fn a_call_that_goes_now_or_never_finds_the_shared_budget_full_and_is_not_sent_or_retried() {
    use itbot::actors::slack_api::{ApiOptions, ShareBudgets};
    use itbot::http::Health;
    use itbot::slack::client::StreamStart;
    use itbot::slack::{ChannelId, SlackError, Ts, UserId};
    use itbot_fakes::workspace::Workspace;

    let server = redis();
    let ws = Workspace::start(Default::default()).await.expect("workspace");
    let (api, actor) = crate::common::api_on(&ws, &ApiOptions::default(), Health::new());
    let shared =
        Coord::connect(&server.url().into(), None).expect("url").scoped(ws.team_id(), ws.bot_user_id());
    actor.send(ShareBudgets(shared.clone())).await.expect("the actor takes the budget");
    // Other replicas have spent chat.startStream's budget (Tier 2) for the next minute.
    while let Slot::After(_) =
        shared.reserve("chat.startStream", 20, 3, Duration::from_secs(60)).await.expect("ok")
    {}

    let alice = ws.user_id("alice");
    let root = Ts::from(ws.post(&alice, ws.it_channel(), "a ticket", None).as_str());
    let team = ws.team_id().to_string();
    let started = Instant::now();
    let outcome = api
        .start_stream(StreamStart {
            channel: &ChannelId::from(ws.it_channel()),
            thread_ts: &root,
            recipient_user: &UserId::from(alice.as_str()),
            recipient_team: &team,
            markdown_text: "Looking",
        })
        .await;

    assert!(matches!(outcome, Err(SlackError::NoRoom { .. })), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "the refused stream waited {:?}", started.elapsed());
    assert_eq!(ws.calls_of("chat.startStream"), 0, "a stream without room was sent");
}

#[actix_rt::test]
async fn votes_cast_on_two_replicas_at_once_are_all_counted() {
    let server = redis();
    let app = spawn(Setup { tweak: Some(with_redis(&server)), ..Setup::default() }).await;
    let second = start_bot(&app.ws, None, Some(with_redis(&server))).await;
    let alice = app.ws.user_id("alice");
    let root = app.ws.post(&alice, &app.it(), "AWS VPN client says authentication failed", None);
    let answer = app.wait_bot_replies(&root, 1).await[0].ts.clone();

    // A third replica has just counted two votes it has not written to Slack yet.
    let third = Coord::connect(&server.url().into(), None)
        .expect("url")
        .scoped(app.ws.team_id(), app.ws.bot_user_id());
    third.vote(&answer, "UOTHER1", true, Duration::from_secs(600)).await.expect("counted");
    third.vote(&answer, "UOTHER2", false, Duration::from_secs(600)).await.expect("counted");
    // Ten colleagues vote in the same moment; Slack spreads the clicks over both replicas.
    for i in 0..10 {
        let voter = app.ws.user_id(&format!("colleague{i}"));
        assert!(app.ws.click_feedback(&voter, &app.it(), &answer, i < 8), "the answer has no buttons");
    }

    let counts = || {
        app.ws.thread(&app.it(), &root).into_iter().find(|p| p.ts == answer).and_then(|p| p.metadata).map(
            |m| {
                (
                    m["event_payload"]["feedback"]["up"].as_u64(),
                    m["event_payload"]["feedback"]["down"].as_u64(),
                )
            },
        )
    };
    wait_for("all twelve votes in the answer's metadata", || {
        let c = counts();
        async move { (c == Some((Some(9), Some(3)))).then_some(()) }
    })
    .await;
    app.control().await;
    assert_eq!(counts(), Some((Some(9), Some(3))), "a later write lost votes");
    drop(second);
}

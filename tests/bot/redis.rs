//! Replicas on Redis (`REDIS_URL`), against a real `redis-server` started here: the coordination
//! primitives, then several bot processes on one simulated workspace with Slack's limits on.

use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use itbot::coord::{Coord, CoordError, Slot, Turn};
use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
use itbot_fakes::redis_server::RedisServer;
use itbot_fakes::workspace::{Workspace, WorkspaceOptions};

use crate::common::{bot_replies, wait_on, watch};
use crate::helpers::{config_for, spawn, start_bot, wait_for, Setup, Tweak};
use crate::outage::{channel_reads, pings};

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
async fn once_only_effects_votes_and_turns_hold_across_processes() {
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

    // One turn per thread: the holder renews with its token; another process waits; an older
    // token's late release does not end a newer turn; the next taker learns it was not last.
    let turn = |c: &Coord, token: u64| {
        let c = c.clone();
        async move { c.take_turn("C1", "1.1", token, ttl, ttl).await.expect("redis answers") }
    };
    assert_eq!(turn(&a, 1).await, Turn::Mine { after_other: false });
    assert!(matches!(turn(&b, 1).await, Turn::Elsewhere(left) if left <= ttl), "two holders");
    assert!(b.turn_elsewhere("C1", "1.1").await.expect("ok").is_some());
    assert_eq!(a.turn_elsewhere("C1", "1.1").await.expect("ok"), None, "its own turn is not elsewhere");
    assert_eq!(turn(&a, 1).await, Turn::Mine { after_other: false }, "renewing failed");
    b.end_turn("C1", "1.1", 1).await.expect("ok");
    assert!(matches!(turn(&b, 1).await, Turn::Elsewhere(_)), "ended by a process that did not hold it");
    assert_eq!(turn(&a, 2).await, Turn::Mine { after_other: false }, "a newer turn of the holder");
    a.end_turn("C1", "1.1", 1).await.expect("ok");
    assert!(matches!(turn(&b, 1).await, Turn::Elsewhere(_)), "an older token's release ended the newer turn");
    a.end_turn("C1", "1.1", 2).await.expect("ok");
    assert_eq!(turn(&b, 1).await, Turn::Mine { after_other: true }, "the taker was not told another had it");
    // A holder that dies stops renewing: its turn runs out by itself.
    let short = Duration::from_millis(150);
    assert!(matches!(a.take_turn("C1", "2.2", 3, short, ttl).await.expect("ok"), Turn::Mine { .. }));
    wait_for("a dead holder's turn to run out", || {
        let b = b.clone();
        async move {
            matches!(b.take_turn("C1", "2.2", 4, ttl, ttl).await, Ok(Turn::Mine { after_other: true }))
                .then_some(())
        }
    })
    .await;

    // A claim stays its claimer's: it may try again, another process may not.
    assert!(a.claim(&["weekly_report", "C1", "100"], ttl).await.expect("ok"));
    assert!(a.claim(&["weekly_report", "C1", "100"], ttl).await.expect("ok"), "the claimer lost its claim");
    let other_process = coord(&server);
    assert!(!other_process.claim(&["weekly_report", "C1", "100"], ttl).await.expect("ok"), "claimed twice");
}

#[actix_rt::test]
async fn turns_under_way_are_listed_once_old_enough_until_over() {
    let server = redis();
    let (a, b) = (coord(&server), coord(&server));
    a.note_turn("C1", "1700000000.000100").await.expect("redis answers");
    a.note_turn("C1", "1700000001.000100").await.expect("redis answers");
    // Seen by every replica, once old enough.
    let all = b.unfinished_turns(Duration::ZERO, 10).await.expect("redis answers");
    assert_eq!(
        all,
        vec![("C1".to_string(), "1700000000.000100".to_string()), ("C1".into(), "1700000001.000100".into())]
    );
    assert!(b.unfinished_turns(Duration::from_secs(60), 10).await.expect("ok").is_empty(), "too new");
    assert_eq!(b.unfinished_turns(Duration::ZERO, 1).await.expect("ok").len(), 1, "at most `max`");
    // Posted: no longer listed.
    a.turn_over("C1", "1700000000.000100").await.expect("redis answers");
    let left = b.unfinished_turns(Duration::ZERO, 10).await.expect("redis answers");
    assert_eq!(left, vec![("C1".to_string(), "1700000001.000100".to_string())]);
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
    // One after another: at one post a second per channel the eight briefs take most of a
    // deadline together, so each thread gets its own.
    for root in &roots {
        app.wait_bot_replies(root, 3).await;
    }
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
    let calls: Vec<String> = app
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("itbot_redis_calls_total"))
        .map(String::from)
        .collect();
    assert!(ready.starts_with("ready") && ready.contains("redis=down"), "{ready}\n{calls:#?}");

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

/// Redis and one socket per replica, so a test can aim each event at a replica.
fn one_socket_with_redis(server: &RedisServer) -> Tweak {
    let redis = with_redis(server);
    Box::new(move |c| {
        redis(c);
        c.settings.slack.connections = 1;
    })
}

#[actix_rt::test]
async fn two_follow_ups_on_two_replicas_take_turns_and_the_second_answer_knows_the_first() {
    let server = redis();
    let app =
        spawn(Setup { llm: true, tweak: Some(one_socket_with_redis(&server)), ..Setup::default() }).await;
    let second = start_bot(&app.ws, app.llm.as_ref(), Some(one_socket_with_redis(&server))).await;
    assert_eq!(app.ws.open_connections(), 2);
    let llm = app.llm.as_ref().expect("llm");
    let person = app.ws.user_id("ana");

    app.ws.aim_next_event_at(0);
    let root = app.ws.post(&person, &app.it(), "my vpn won't connect from home", None);
    app.wait_bot_replies(&root, 1).await;

    // The first replica answers "didn't help" slowly; meanwhile a question lands on the second.
    llm.set_reply(Some("Remove the VPN profile, then import profile ZEBRA-7 again.".into()));
    llm.delay_next(Duration::from_millis(1500));
    let asked = llm.requests().len();
    app.ws.aim_next_event_at(0);
    app.ws.post(&person, &app.it(), "that didn't help, same error", Some(&root));
    wait_for("the first replica to ask the llm", || {
        let n = llm.requests().len();
        async move { (n > asked).then_some(()) }
    })
    .await;
    app.ws.aim_next_event_at(1);
    app.ws.post(&person, &app.it(), "which menu is the profile list in?", Some(&root));

    let replies = app.wait_bot_replies(&root, 3).await;
    assert!(
        replies[1].text.contains("ZEBRA-7"),
        "the second answer is not the slow one: {}",
        replies[1].text
    );
    let requests = llm.requests();
    assert_eq!(requests.len(), asked + 2, "a turn was answered twice or not at all");
    // The second replica took the thread's turn after the first gave it back: its prompt holds
    // the first replica's answer. (Without one turn at a time it answers from the older copy.)
    let last = requests.last().expect("a request").to_string();
    assert!(last.contains("ZEBRA-7"), "the second turn did not see the first turn's answer");
    app.control().await;
    assert_eq!(app.bot_replies(&root).len(), 3, "a follow-up was answered twice");
    drop(second);
}

/// The real binary as a replica on `ws` with Redis and one socket (so a test can aim events).
fn replica_process(ws: &Workspace, llm: &FakeOpenAi, server: &RedisServer) -> std::process::Child {
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_itbot"));
    let mut cmd =
        itbot_loadgen::bot_command(&exe, &config_for(ws), ws, Some(llm), "warn", Some(&server.url()));
    cmd.env("ITBOT__SLACK__CONNECTIONS", "1").env("ITBOT__ASSIST__WAIT_SECS", "1");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    cmd.spawn().expect("the itbot binary starts")
}

/// Kills the replicas still running when a test ends, however it ends.
struct Replicas(Vec<std::process::Child>);

impl Replicas {
    /// SIGKILL, as a crash or an OOM kill: nothing is drained or given back.
    async fn kill_first(&mut self, ws: &Workspace) {
        self.0[0].kill().expect("the first replica is killed");
        let _ = self.0[0].wait();
        wait_on(ws, "the killed replica's socket to close", || {
            let open = ws.open_connections();
            async move { (open == 1).then_some(()) }
        })
        .await;
    }
}

/// Redis, a workspace with Slack's limits, a fake LLM and two replicas of the real binary, the
/// first one's socket the oldest.
async fn two_replica_processes() -> (RedisServer, Workspace, FakeOpenAi, Replicas) {
    let server = redis();
    let ws = Workspace::start(WorkspaceOptions::default()).await.expect("workspace starts");
    watch(&ws);
    let llm = FakeOpenAi::start(FakeOpenAiOptions::default()).await.expect("fake llm starts");
    let mut replicas = Replicas(Vec::new());
    for n in 1..=2 {
        replicas.0.push(replica_process(&ws, &llm, &server));
        wait_on(&ws, "the replica to connect", || {
            let open = ws.open_connections();
            async move { (open == n).then_some(()) }
        })
        .await;
    }
    (server, ws, llm, replicas)
}

/// Posts `text` (in `thread`, or as a new ticket) where only the first replica hears it, and
/// kills that replica while the LLM writes the answer. Returns the post's ts.
async fn post_and_kill_first_mid_answer(
    ws: &Workspace,
    llm: &FakeOpenAi,
    replicas: &mut Replicas,
    text: &str,
    thread: Option<&str>,
) -> String {
    llm.delay_next(Duration::from_secs(60));
    let asked = llm.requests().len();
    ws.aim_next_event_at(0);
    let ts = ws.post(&ws.user_id("ana"), ws.it_channel(), text, thread);
    wait_for("the first replica to ask the llm", || {
        let n = llm.requests().len();
        async move { (n > asked).then_some(()) }
    })
    .await;
    replicas.kill_first(ws).await;
    ts
}

/// A control ticket from someone else, answered: what came before it has been acted on.
async fn control(ws: &Workspace) {
    let control = ws.post(&ws.user_id("zed"), ws.it_channel(), "my zoom camera is not working", None);
    wait_replies(ws, &control, 1).await;
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[actix_rt::test]
async fn a_replica_killed_mid_turn_leaves_the_thread_to_another_once_its_hold_runs_out() {
    let (_server, ws, llm, mut replicas) = two_replica_processes().await;
    let (it, person) = (ws.it_channel().to_string(), ws.user_id("ana"));

    ws.aim_next_event_at(0);
    let root = ws.post(&person, &it, "my vpn won't connect from home", None);
    wait_replies(&ws, &root, 1).await;

    // The first replica takes the follow-up's turn and is killed while the LLM writes.
    let asked = llm.requests().len();
    post_and_kill_first_mid_answer(&ws, &llm, &mut replicas, "that didn't help, same error", Some(&root))
        .await;

    // The person writes again; only the second replica hears it. It waits out the dead one's
    // hold on the thread, then answers from the replicas' copy, the unanswered message included.
    ws.post(&person, &it, "hello? still stuck", Some(&root));
    let replies = wait_replies(&ws, &root, 2).await;
    assert_eq!(replies.len(), 2);
    let prompt = llm.requests().last().expect("a request").to_string();
    assert!(
        prompt.contains("that didn't help"),
        "the dead replica's follow-up is not in the answer's context"
    );
    assert!(prompt.contains("still stuck"), "the follow-up that woke the thread is not in the context");
    assert_eq!(llm.requests().len(), asked + 2, "one answer for the thread after the kill");
    // Nothing else comes: a control ticket is answered and the thread still has two replies.
    control(&ws).await;
    assert_eq!(wait_replies(&ws, &root, 2).await.len(), 2, "the thread was answered twice");
    assert_eq!(ws.rate_limited_calls(), 0);
}

async fn wait_replies(ws: &Workspace, thread: &str, n: usize) -> Vec<itbot_fakes::workspace::Posted> {
    wait_on(ws, "the bot's replies", || {
        let replies = bot_replies(ws, thread);
        async move { (replies.len() >= n).then_some(replies) }
    })
    .await
}

#[actix_rt::test]
async fn a_ticket_whose_replica_died_before_the_first_answer_is_answered_by_another() {
    let (_server, ws, llm, mut replicas) = two_replica_processes().await;
    let (it, person) = (ws.it_channel().to_string(), ws.user_id("ana"));

    // The first replica takes the new ticket and is killed while preparing its first answer.
    let root =
        post_and_kill_first_mid_answer(&ws, &llm, &mut replicas, "my vpn won't connect from home", None)
            .await;

    // The copy holds no answer, but a replica held the thread: it is a ticket, answered here.
    ws.post(&person, &it, "anyone?", Some(&root));
    let replies = wait_replies(&ws, &root, 1).await;
    assert!(!replies.is_empty());
    control(&ws).await;
    let texts: Vec<String> =
        bot_replies(&ws, &root).iter().map(|r| r.text.chars().take(60).collect()).collect();
    // The message that woke the thread is taken as a detail of the question, as before a first
    // answer: one answer.
    assert_eq!(texts.len(), 1, "answered more than once: {texts:#?}");
}

#[actix_rt::test]
async fn a_ticket_whose_replica_died_before_the_first_answer_is_answered_by_another_unasked() {
    let (_server, ws, llm, mut replicas) = two_replica_processes().await;

    // The first replica takes the new ticket and is killed while preparing its first answer.
    let root =
        post_and_kill_first_mid_answer(&ws, &llm, &mut replicas, "my vpn won't connect from home", None)
            .await;

    // Nobody writes again: once the dead replica's hold runs out, the other one finds the ticket
    // it left unanswered and answers it, once.
    let replies = wait_replies(&ws, &root, 1).await;
    assert!(!replies.is_empty());
    assert_eq!(llm.requests().len(), 2, "one llm call by each replica");
    let prompt = llm.requests().last().expect("a request").to_string();
    assert!(prompt.contains("won't connect from home"), "the answer is not about the ticket");
    control(&ws).await;
    assert_eq!(bot_replies(&ws, &root).len(), 1, "the orphaned ticket was answered more than once");
    assert_eq!(ws.rate_limited_calls(), 0);
}

#[actix_rt::test]
async fn a_follow_up_whose_replica_died_mid_answer_is_answered_by_another_unasked() {
    let (_server, ws, llm, mut replicas) = two_replica_processes().await;
    let (it, person) = (ws.it_channel().to_string(), ws.user_id("ana"));

    ws.aim_next_event_at(0);
    let root = ws.post(&person, &it, "my vpn won't connect from home", None);
    wait_replies(&ws, &root, 1).await;

    // The first replica takes the follow-up's turn and is killed while the LLM writes.
    let asked = llm.requests().len();
    post_and_kill_first_mid_answer(&ws, &llm, &mut replicas, "that didn't help, same error 809", Some(&root))
        .await;

    // Nobody writes again: the other replica finds the turn left unfinished and answers it once.
    let replies = wait_replies(&ws, &root, 2).await;
    assert_eq!(replies.len(), 2);
    assert_eq!(llm.requests().len(), asked + 2, "one more llm call, by the replica that took over");
    let prompt = llm.requests().last().expect("a request").to_string();
    assert!(prompt.contains("error 809"), "the answer is not to the unanswered follow-up");
    control(&ws).await;
    assert_eq!(bot_replies(&ws, &root).len(), 2, "the follow-up was answered more than once");
    assert_eq!(ws.rate_limited_calls(), 0);
}

#[actix_rt::test]
async fn reports_spread_over_three_replicas_make_one_outage_with_one_ping_listing_every_thread() {
    let server = redis();
    let it_group = "<!subteam^S0IT|@it-team>";
    let tweak = |server: &RedisServer| -> Tweak {
        let base = one_socket_with_redis(server);
        Box::new(move |c| {
            base(c);
            c.settings.escalation.fallback_mention = it_group.into();
            c.settings.outage.min_reporters = 3;
            c.settings.outage.window_secs = 600;
        })
    };
    let app = spawn(Setup { tweak: Some(tweak(&server)), ..Setup::default() }).await;
    let second = start_bot(&app.ws, None, Some(tweak(&server))).await;
    let third = start_bot(&app.ws, None, Some(tweak(&server))).await;

    // Each replica hears one of the first three reports, then the first two hear one more each.
    let reports = [
        ("alice", "AWS VPN client won't connect, it keeps spinning"),
        ("bob", "vpn is down for me, AWS VPN Client says connection failed"),
        ("carol", "Can't connect to the VPN from home since this morning"),
        ("dave", "my AWS VPN keeps disconnecting, can't reach anything"),
        ("erin", "VPN client stuck connecting"),
    ];
    let mut threads = Vec::new();
    let mut answers = Vec::new();
    for (i, (who, text)) in reports.iter().enumerate() {
        app.ws.aim_next_event_at(i % 3);
        let root = app.ws.post(&app.ws.user_id(who), &app.it(), text, None);
        answers.push(app.wait_bot_replies(&root, 1).await[0].text.clone());
        threads.push(root);
    }
    wait_for("the ping to list every thread", || {
        let p = pings(&app);
        let five = p.len() == 1 && p[0].metadata.as_ref().is_some_and(|m| m["event_payload"]["threads"] == 5);
        async move { five.then_some(()) }
    })
    .await;
    // The replica that posted the ping tells the threads that reported it before it was declared.
    let update = app.wait_bot_replies(&threads[1], 2).await[1].text.clone();
    app.control().await;

    assert_eq!(pings(&app).len(), 1, "pinged more than once across replicas");
    assert_eq!(
        pings(&app)[0].thread_ts.as_deref(),
        Some(threads[0].as_str()),
        "the ping is not in the first thread"
    );
    assert!(!answers[0].contains("known issue") && !answers[1].contains("known issue"));
    // The third report made it an outage although each replica had heard only one.
    for (i, answer) in answers.iter().enumerate().skip(2) {
        assert!(answer.contains("known issue"), "report {i} was not told: {answer}");
    }
    assert!(update.contains("treating it as an outage"), "{update}");
    assert_eq!(channel_reads(&app), 0, "replicas read the channel instead of sharing reports");
    assert_eq!(app.ws.rate_limited_calls(), 0);
    drop((second, third));
}

#[actix_rt::test]
async fn an_assist_card_heard_by_another_replica_releases_the_first_answer_that_waits_for_it() {
    let server = redis();
    let tweak = |server: &RedisServer| -> Tweak {
        let base = one_socket_with_redis(server);
        Box::new(move |c| {
            base(c);
            // Longer than any test waits: only the card can release the answer in time.
            c.settings.assist.wait_secs = 60;
        })
    };
    let workspace =
        WorkspaceOptions { assist_delay: Duration::from_millis(1500), ..WorkspaceOptions::default() };
    let app =
        spawn(Setup { workspace: Some(workspace), tweak: Some(tweak(&server)), ..Setup::default() }).await;
    let second = start_bot(&app.ws, None, Some(tweak(&server))).await;

    app.ws.aim_next_event_at(0);
    let root =
        app.ws.post(&app.ws.user_id("ana"), &app.it(), "please give me access to the Figma team", None);
    wait_for("the first replica to take the ticket", || {
        let signs = ["assistant.threads.setStatus", "reactions.add", "chat.postEphemeral"];
        let marked = signs.iter().any(|m| app.ws.calls_of(m) > 0);
        async move { marked.then_some(()) }
    })
    .await;
    // Assist's card reaches the second replica's socket; the first sees it in the copy.
    app.ws.aim_next_event_at(1);
    let answer = app.wait_bot_replies(&root, 1).await[0].text.clone();
    assert!(answer.contains("IT-1000"), "the answer does not name Assist's ticket: {answer}");
    drop(second);
}

#[actix_rt::test]
async fn a_second_replica_without_redis_warns_and_names_the_fix() {
    let ws = Workspace::start(WorkspaceOptions::default()).await.expect("workspace starts");
    watch(&ws);
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_itbot"));
    let log = std::env::temp_dir().join(format!("itbot-second-replica-{}.log", std::process::id()));
    let mut replicas = Replicas(Vec::new());
    for n in [2, 4] {
        let mut cmd = itbot_loadgen::bot_command(&exe, &config_for(&ws), &ws, None, "info", None);
        let stderr = if n == 4 {
            Stdio::from(std::fs::File::create(&log).expect("a log file in the temp dir"))
        } else {
            Stdio::null()
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
        replicas.0.push(cmd.spawn().expect("the itbot binary starts"));
        wait_on(&ws, "the replica's sockets", || {
            let open = ws.open_connections();
            async move { (open == n).then_some(()) }
        })
        .await;
    }
    let warned = wait_for("the second replica's warning", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains(r#""level":"WARN""#) && l.contains("another process holds sockets"))
            .map(str::to_string);
        async move { line }
    })
    .await;
    drop(replicas);
    let _ = std::fs::remove_file(&log);
    assert!(warned.contains("set REDIS_URL"), "the warning does not name the fix: {warned}");
}

#[actix_rt::test]
async fn counts_written_before_redis_are_carried_into_it_once() {
    let server = redis();
    let (a, b) = (coord(&server), coord(&server));
    let ttl = Duration::from_secs(60);
    // Two people vote through Redis on an answer whose metadata already counted 3 👍 and 1 👎.
    a.vote("9.9", "U1", true, ttl).await.expect("ok");
    assert_eq!(a.seed_votes("9.9", 3, 1, ttl).await.expect("ok"), (4, 1));
    b.vote("9.9", "U2", false, ttl).await.expect("ok");
    // Another replica reads the metadata written since (now holding Redis's counts): not again.
    assert_eq!(b.seed_votes("9.9", 4, 1, ttl).await.expect("ok"), (4, 2), "counts carried twice");
    assert_eq!(a.vote_counts("9.9").await.expect("ok"), (4, 2));
}

#[actix_rt::test]
async fn votes_counted_before_redis_was_set_stay_counted_after() {
    let server = redis();
    let mut app = spawn(Setup::default()).await;
    let root =
        app.ws.post(&app.ws.user_id("alice"), &app.it(), "AWS VPN client says authentication failed", None);
    let answer = app.wait_bot_replies(&root, 1).await[0].ts.clone();
    let counts = |app: &crate::helpers::TestApp| {
        app.ws.thread(&app.it(), &root).into_iter().find(|p| p.ts == answer).and_then(|p| p.metadata).map(
            |m| {
                (
                    m["event_payload"]["feedback"]["up"].as_u64(),
                    m["event_payload"]["feedback"]["down"].as_u64(),
                )
            },
        )
    };
    for (i, up) in [true, true, false].into_iter().enumerate() {
        let voter = app.ws.user_id(&format!("early{i}"));
        assert!(app.ws.click_feedback(&voter, &app.it(), &answer, up), "the answer has no buttons");
    }
    wait_for("three votes in the metadata", || {
        let c = counts(&app);
        async move { (c == Some((Some(2), Some(1)))).then_some(()) }
    })
    .await;

    // Redeployed with Redis: two more votes, through Redis.
    app.restart(Some(with_redis(&server))).await;
    for (i, up) in [true, false].into_iter().enumerate() {
        let voter = app.ws.user_id(&format!("later{i}"));
        assert!(app.ws.click_feedback(&voter, &app.it(), &answer, up), "the answer has no buttons");
    }
    wait_for("five votes in the metadata", || {
        let c = counts(&app);
        async move { (c == Some((Some(3), Some(2)))).then_some(()) }
    })
    .await;
    app.control().await;
    assert_eq!(counts(&app), Some((Some(3), Some(2))), "votes from before redis were lost or doubled");
}

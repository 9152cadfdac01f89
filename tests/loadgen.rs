//! Short runs of the load generator (`itbot-loadgen`'s library): through the real binary (the
//! debug build here, at Slack's real pacing) and in process (with relaxed pacing), every ticket,
//! follow-up and 👎 is answered exactly once, and the binary exits cleanly. No timing or call
//! count is asserted: the targets live in BENCHMARKS.md.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use itbot::config::Config;
use itbot_loadgen::{self as loadgen, BotProcess, Load, LoadOptions};

fn config() -> Config {
    let env: HashMap<&str, String> = HashMap::from([(
        "ITBOT_CONFIG",
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/itbot.toml").to_string(),
    )]);
    Config::load(|k| env.get(k).cloned()).expect("shipped config loads")
}

#[actix_rt::test]
async fn a_short_load_through_the_real_binary_answers_every_step_exactly_once() {
    // The binary paces its Web API calls at Slack's real limits (startStream: 20 a minute after
    // a burst of 4), so the load is a few tickets, not tens.
    let options = LoadOptions {
        bot: BotProcess::Child(PathBuf::from(env!("CARGO_BIN_EXE_itbot"))),
        load: Load::Rate(1.0),
        duration: Duration::from_secs(10),
        max_tickets: Some(6),
        llm_latency: Some(Duration::from_millis(20)),
        assist_delay: Duration::from_millis(50),
        drain: Duration::from_secs(30),
        seed: 8,
        ..LoadOptions::default()
    };

    let report = tokio::time::timeout(Duration::from_secs(60), loadgen::run(config(), options))
        .await
        .expect("the run ends within its deadline")
        .expect("the run starts");

    assert_eq!(report.tickets, 6, "{report}");
    assert!(report.follow_ups > 0 && report.reactions > 0, "the mix has follow-ups and 👎: {report}");
    assert_eq!(report.pace_factor, 1, "{report}");
    assert_every_step_answered_once(&report);
    let log = report.bot_log.as_ref().expect("the child's log was read");
    assert_eq!(log.errors, 0, "{report}");
    assert_eq!(report.bot_exit_code, Some(0), "the bot drained and exited cleanly: {report}");
}

#[actix_rt::test]
async fn a_short_load_in_process_with_relaxed_pacing_answers_every_step_exactly_once() {
    let options = LoadOptions {
        bot: BotProcess::InProcess { pace_factor: 1000 },
        load: Load::Rate(15.0),
        duration: Duration::from_secs(4),
        max_tickets: Some(40),
        llm_latency: Some(Duration::from_millis(20)),
        assist_delay: Duration::from_millis(50),
        drain: Duration::from_secs(15),
        seed: 8,
        ..LoadOptions::default()
    };

    let report = tokio::time::timeout(Duration::from_secs(45), loadgen::run(config(), options))
        .await
        .expect("the run ends within its deadline")
        .expect("the run starts");

    assert_eq!(report.tickets, 40, "{report}");
    assert!(report.follow_ups > 0 && report.reactions > 0, "the mix has follow-ups and 👎: {report}");
    assert_eq!(report.pace_factor, 1000, "{report}");
    assert_every_step_answered_once(&report);
}

fn assert_every_step_answered_once(report: &loadgen::Report) {
    assert_eq!(report.unanswered, 0, "{report}");
    assert_eq!(report.duplicates, 0, "{report}");
    assert_eq!(report.stray_replies, 0, "{report}");
    assert_eq!(report.replies, report.tickets + report.follow_ups + report.reactions);
    assert!(report.llm.as_ref().is_some_and(|l| l.first_answers > 0), "{report}");
}

#[actix_rt::test]
async fn three_replicas_of_the_real_binary_on_redis_answer_every_step_once_without_a_429() {
    // Three `itbot run` processes share a real redis-server and Slack's real limits.
    let options = LoadOptions {
        bot: BotProcess::Child(PathBuf::from(env!("CARGO_BIN_EXE_itbot"))),
        load: Load::Rate(1.0),
        duration: Duration::from_secs(6),
        max_tickets: Some(4),
        llm_latency: Some(Duration::from_millis(20)),
        assist_delay: Duration::from_millis(50),
        drain: Duration::from_secs(40),
        seed: 3,
        replicas: 3,
        ..LoadOptions::default()
    };

    let report = tokio::time::timeout(Duration::from_secs(150), loadgen::run(config(), options))
        .await
        .expect("the run ends within its deadline")
        .expect("the run starts");

    assert_eq!(report.tickets, 4, "{report}");
    assert_eq!(report.replicas, 3, "{report}");
    assert_every_step_answered_once(&report);
    assert_eq!(report.rate_limited_calls, 0, "three replicas went past Slack's limits: {report}");
    assert!(report.redis_commands_per_ticket.is_some_and(|c| c > 0.0), "redis unused: {report}");
    assert_eq!(report.bot_exit_code, Some(0), "{report}");
}

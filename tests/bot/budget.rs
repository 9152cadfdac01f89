//! Slack's rate limits, enforced by the simulated workspace as Slack does: the bot spends its
//! budget without drawing a 429.

use futures_util::future::join_all;

use crate::helpers::{metric_value, spawn, Setup};

#[actix_rt::test]
async fn a_burst_of_tickets_is_answered_within_slacks_limits_without_a_single_429() {
    let app = spawn(Setup::default()).await;
    let problems = [
        "my vpn won't connect from home",
        "okta verify push not arriving",
        "zoom microphone not working",
        "wifi keeps dropping on floor 3",
        "gmail won't load in chrome",
        "1password asks for my secret key again",
    ];

    let roots: Vec<String> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| app.ws.post(&app.ws.user_id(&format!("person{i}")), &app.it(), p, None))
        .collect();
    join_all(roots.iter().map(|root| app.wait_bot_replies(root, 1))).await;

    for root in &roots {
        assert_eq!(app.bot_replies(root).len(), 1, "{root} answered more or less than once");
    }
    // Six answers in one channel take a burst and then one a second: paced, never refused.
    assert_eq!(app.ws.rate_limited_calls(), 0, "the bot went past Slack's limits");
    // The wait is what operators see: every post's time in its lane.
    let page = app.metrics().await;
    let posts = metric_value(&page, r#"itbot_slack_queue_seconds_count{method="chat.postMessage"}"#);
    let waited = metric_value(&page, r#"itbot_slack_queue_seconds_sum{method="chat.postMessage"}"#);
    assert!(posts >= problems.len() as f64, "{page}");
    assert!(waited >= 1.0, "six posts in a second's budget waited only {waited} s in all");
}

//! Slack's rate limits, enforced by the simulated workspace as Slack does: the bot spends its
//! budget without drawing a 429.

use std::collections::HashMap;

use futures_util::future::join_all;

use itbot_fakes::workspace::Fault;

use crate::helpers::{metric_value, spawn, wait_for, Setup};

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

#[actix_rt::test]
async fn in_a_burst_every_requester_is_shown_a_sign_at_once_from_whichever_budget_has_room() {
    let app = spawn(Setup::default()).await;
    // Twenty-four reports inside a second: more than the status's budget (a burst of 8 in
    // Tier 3) and the 👀's (another 8) together.
    let roots: Vec<String> = (0..24)
        .map(|i| app.ws.post(&app.ws.user_id(&format!("burst{i}")), &app.it(), "my vpn keeps dropping", None))
        .collect();

    let signs_of = |root: &str| -> Vec<(String, bool)> {
        app.ws
            .api_calls()
            .into_iter()
            .filter(|c| {
                let p = |k: &str| c.params.get(k).and_then(|v| v.as_str()) == Some(root);
                match c.method.as_str() {
                    "assistant.threads.setStatus" | "chat.postEphemeral" => p("thread_ts"),
                    "reactions.add" => p("timestamp"),
                    _ => false,
                }
            })
            .map(|c| (c.method, c.rate_limited))
            .collect()
    };
    wait_for("a sign in every thread", || {
        let done = roots.iter().all(|r| !signs_of(r).is_empty());
        async move { done.then_some(()) }
    })
    .await;

    let mut by_method: HashMap<String, usize> = HashMap::new();
    for root in &roots {
        let signs = signs_of(root);
        assert_eq!(signs.len(), 1, "one sign per thread, never queued behind a budget: {signs:?}");
        let (method, limited) = &signs[0];
        assert!(!limited, "{method} was refused with 429");
        *by_method.entry(method.clone()).or_insert(0) += 1;
    }
    // The status's budget alone cannot show 24 signs in a second: the others took the rest.
    for method in ["assistant.threads.setStatus", "reactions.add", "chat.postEphemeral"] {
        assert!(by_method.get(method).is_some_and(|n| *n > 0), "{method} unused: {by_method:?}");
    }
    // Each sign is counted once the bot has Slack's answer to it.
    wait_for("every sign counted", || async {
        let page = app.metrics().await;
        let counted: f64 = ["status", "reaction", "private_note"]
            .iter()
            .map(|k| metric_value(&page, &format!(r#"itbot_acknowledgements_total{{kind="{k}"}}"#)))
            .sum();
        assert!(counted <= 24.0, "{page}");
        (counted == 24.0).then_some(())
    })
    .await;
    assert_eq!(app.ws.rate_limited_calls(), 0);
}

#[actix_rt::test]
async fn in_a_storm_of_429s_every_answer_is_posted_once_and_none_is_lost() {
    let app = spawn(Setup::default()).await;
    // Slack refuses the channel's posts again and again (another app, a replica without Redis,
    // an incident on Slack's side), each time with a Retry-After.
    app.ws.inject_times("chat.postMessage", Fault::RateLimited { retry_after_secs: 1 }, 6);
    let problems =
        ["my vpn won't connect", "okta verify push not arriving", "zoom has no sound", "wifi drops"];
    let roots: Vec<String> = problems
        .iter()
        .enumerate()
        .map(|(i, p)| app.ws.post(&app.ws.user_id(&format!("storm{i}")), &app.it(), p, None))
        .collect();
    join_all(roots.iter().map(|root| app.wait_bot_replies(root, 1))).await;
    // The storm is spent, and one more ticket afterwards goes through at once.
    assert_eq!(app.ws.faults_pending(), 0, "the bot stopped posting before the storm was over");
    let after = app.ws.post(&app.ws.user_id("after"), &app.it(), "printer on 3 is jammed", None);
    app.wait_bot_replies(&after, 1).await;

    for root in roots.iter().chain([&after]) {
        assert_eq!(app.bot_replies(root).len(), 1, "{root} answered more or less than once");
    }
    let page = app.metrics().await;
    assert!(metric_value(&page, "itbot_slack_ratelimited_total") >= 6.0, "{page}");
    assert!(page.lines().any(|l| l == "itbot_slack_dropped_calls_total 0"), "{page}");
}

#[actix_rt::test]
async fn an_answer_slack_will_not_take_in_time_is_not_silence_the_requester_is_told_privately() {
    let app = spawn(Setup::default()).await;
    // A Retry-After longer than the bot waits out: the answer is given up.
    app.ws.inject("chat.postMessage", Fault::RateLimited { retry_after_secs: 600 });
    let requester = app.ws.user_id("patient");
    let root = app.ws.post(&requester, &app.it(), "my vpn won't connect", None);

    let notes = wait_for("a private note about the lost reply", || {
        let notes: Vec<_> = app
            .ws
            .api_calls()
            .into_iter()
            .filter(|c| c.method == "chat.postEphemeral")
            .filter(|c| c.params.get("thread_ts").and_then(|v| v.as_str()) == Some(root.as_str()))
            .filter(|c| {
                c.params
                    .get("text")
                    .and_then(|v| v.as_str())
                    .is_some_and(|t| t.contains("could not be posted"))
            })
            .collect();
        async move { (!notes.is_empty()).then_some(notes) }
    })
    .await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].params.get("user").and_then(|v| v.as_str()), Some(requester.as_str()));
    assert!(app.bot_replies(&root).is_empty(), "the refused answer was posted after all");
}

//! `GET /metrics` counts what happened, in Prometheus text, with nothing but kinds and counts.

use crate::helpers::{metric_value as value, spawn, Setup};

#[actix_rt::test]
async fn metrics_count_tickets_replies_escalations_and_calls_without_any_text() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let bob = app.ws.user_id("bob");
    let solved = app.ws.post(&alice, &app.it(), "zoom microphone zebra-secret-word not working", None);
    app.wait_bot_replies(&solved, 1).await;
    app.ws.post(&alice, &app.it(), "that fixed it, thanks", Some(&solved));
    app.wait_bot_replies(&solved, 2).await;
    let stuck = app.ws.post(&bob, &app.it(), "github push gives 403", None);
    app.wait_bot_replies(&stuck, 1).await;
    app.ws.post(&bob, &app.it(), "please get me a human", Some(&stuck));
    app.wait_bot_replies(&stuck, 2).await;
    let access = app.ws.post(&bob, &app.it(), "I need access to Snowflake", None);
    app.wait_bot_replies(&access, 1).await;

    // The counters move when the bot hears back from Slack, a moment after the posts appear.
    let url = format!("http://{}/metrics", app.bot.http_addr);
    let page = crate::helpers::wait_for("the counters to catch up", || {
        let url = url.clone();
        async move {
            let mut response = awc::Client::default().get(url).send().await.ok()?;
            if response.status().as_u16() != 200 {
                return None;
            }
            let page = String::from_utf8(response.body().await.ok()?.to_vec()).ok()?;
            (value(&page, "itbot_replies_posted_total") >= 5.0).then_some(page)
        }
    })
    .await;

    assert_eq!(value(&page, r#"itbot_tickets_total{category="technical"}"#), 2.0, "{page}");
    assert_eq!(value(&page, r#"itbot_tickets_total{category="access"}"#), 1.0);
    assert_eq!(value(&page, r#"itbot_escalations_total{trigger="request"}"#), 1.0);
    assert_eq!(value(&page, "itbot_resolutions_total"), 1.0);
    assert!(value(&page, r#"itbot_events_received_total{kind="message"}"#) >= 8.0);
    assert!(value(&page, "itbot_envelope_ack_seconds_count") >= 8.0);
    assert!(value(&page, r#"itbot_slack_calls_total{method="chat.postMessage",outcome="ok"}"#) >= 5.0);
    assert_eq!(value(&page, "itbot_sockets_connected"), 2.0);
    assert_eq!(value(&page, "itbot_ready"), 1.0);
    for text in ["zebra", "microphone", "Snowflake", "github", alice.as_str(), bob.as_str()] {
        assert!(!page.contains(text), "`{text}` appeared in /metrics");
    }
}

#[actix_rt::test]
async fn posts_that_are_not_tickets_are_counted_by_the_reply_they_got() {
    let app = spawn(Setup::default()).await;
    let (alice, bob) = (app.ws.user_id("alice"), app.ws.user_id("bob"));

    app.ws.post(&alice, &app.it(), "thanks all!", None);
    app.ws.post(&bob, &app.it(), "FYI the printer on 3 is fixed", None);
    let who = app.ws.post(&alice, &app.it(), "who approves software purchases?", None);
    app.wait_bot_replies(&who, 1).await;
    // Events reach the bot in order: once this ticket is answered, the posts above were handled.
    app.control().await;
    let page = app.metrics().await;

    assert_eq!(value(&page, r#"itbot_not_tickets_total{reply="none"}"#), 2.0, "{page}");
    assert_eq!(value(&page, r#"itbot_not_tickets_total{reply="pointer"}"#), 1.0, "{page}");
    assert_eq!(value(&page, r#"itbot_tickets_total{category="technical"}"#), 1.0, "only the control ticket");
}

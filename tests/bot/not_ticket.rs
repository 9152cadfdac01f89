//! Posts that are not tickets (thanks, FYIs, who/where questions) get no steps: a short pointer
//! under a question, nothing under thanks, and they count as no ticket (issue 17).

use itbot::config::NotTicketReply;

use crate::helpers::{metric_value, spawn, Setup};

#[actix_rt::test]
async fn thanks_and_an_fyi_get_no_reply_and_a_who_question_a_pointer_without_steps() {
    let app = spawn(Setup::default()).await;
    let (alice, bob) = (app.ws.user_id("alice"), app.ws.user_id("bob"));

    let thanks = app.ws.post(&alice, &app.it(), "thanks all!", None);
    let fyi = app.ws.post(&bob, &app.it(), "FYI the printer on 3 is fixed", None);
    let who = app.ws.post(&alice, &app.it(), "who approves software purchases?", None);
    let pointer = app.wait_bot_replies(&who, 1).await[0].clone();
    // Events reach the bot in order: once this ticket is answered, the posts above were handled.
    app.control().await;

    assert!(app.bot_replies(&thanks).is_empty(), "thanks got a reply");
    assert!(app.bot_replies(&fyi).is_empty(), "an FYI got a reply");
    assert!(pointer.text.contains("leave it to the IT team"), "{}", pointer.text);
    assert!(!pointer.text.contains("1. "), "steps under a question that is not a ticket");
    assert!(pointer.blocks.is_none(), "buttons under a post that is not a ticket");
    let statuses = app
        .ws
        .api_calls()
        .iter()
        .filter(|c| c.method == "assistant.threads.setStatus")
        .filter(|c| [&thanks, &fyi, &who].iter().any(|t| c.params["thread_ts"] == t.as_str()))
        .count();
    assert_eq!(statuses, 0, "\"looking into it\" under a post that is not a ticket");
    let page = app.metrics().await;
    let tickets: f64 = ["technical", "access", "change", "not_ticket"]
        .iter()
        .map(|c| metric_value(&page, &format!("itbot_tickets_total{{category=\"{c}\"}}")))
        .sum();
    assert_eq!(tickets, 1.0, "only the control ticket counts: {page}");
}

#[actix_rt::test]
async fn a_requester_who_then_asks_for_a_person_under_a_pointer_gets_one() {
    let app = spawn(Setup::default()).await;
    let alice = app.ws.user_id("alice");
    let who = app.ws.post(&alice, &app.it(), "where is the ticket portal?", None);
    app.wait_bot_replies(&who, 1).await;

    app.ws.post(&alice, &app.it(), "can a human help please?", Some(&who));
    let replies = app.wait_bot_replies(&who, 2).await;

    // The escalation brief (its wording depends on whether Assist's card named an assignee yet).
    assert!(replies[1].text.contains("*Symptom:* where is the ticket portal?"), "{}", replies[1].text);
}

#[actix_rt::test]
async fn in_quiet_mode_a_question_that_is_not_a_ticket_gets_nothing() {
    let app = spawn(Setup {
        tweak: Some(Box::new(|c| c.settings.triage.not_ticket = NotTicketReply::Quiet)),
        ..Setup::default()
    })
    .await;
    let alice = app.ws.user_id("alice");

    let who = app.ws.post(&alice, &app.it(), "who approves software purchases?", None);
    app.control().await;

    assert!(app.bot_replies(&who).is_empty(), "quiet mode replied");
}

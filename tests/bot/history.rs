//! Learning from past tickets: the startup read of the channel and its use in answers.

use itbot_fakes::workspace::{Fault, Workspace};

use crate::helpers::{spawn, wait_for, Setup, TestApp};

/// A past ticket that a person from IT fixed: root, IT's explanation, the requester's thanks.
fn seed_fixed_vpn_ticket(ws: &Workspace) {
    let alice = ws.user_id("alice");
    let dana = ws.user_id("dana");
    let root = ws.seed(Some(&alice), "it", "AWS VPN client stuck on connecting from home", None, 3.0, None);
    ws.seed(
        Some(&dana),
        "it",
        "Your VPN profile was outdated: I pushed the new one from Self Service, reconnect now",
        Some(&root),
        2.9,
        None,
    );
    ws.seed(Some(&alice), "it", "that worked, thanks!", Some(&root), 2.8, None);
}

#[actix_rt::test]
async fn the_channel_history_is_read_page_by_page_through_rate_limits() {
    let app = spawn(Setup {
        seed: Some(Box::new(|ws| {
            let people = ["alice", "bob", "carol"].map(|n| ws.user_id(n));
            for i in 0..230 {
                let root = ws.seed(
                    Some(&people[i % 3]),
                    "it",
                    &format!("printer {i} is jammed again"),
                    None,
                    10.0 - i as f64 * 0.01,
                    None,
                );
                if i % 50 == 0 {
                    ws.seed(
                        Some(&people[(i + 1) % 3]),
                        "it",
                        "I cleared the paper path and restarted the printer",
                        Some(&root),
                        9.0,
                        None,
                    );
                }
            }
            ws.inject("conversations.history", Fault::RateLimited { retry_after_secs: 1 });
            ws.inject("conversations.replies", Fault::RateLimited { retry_after_secs: 1 });
        })),
        tweak: Some(Box::new(|c| c.settings.history.backfill_pace_ms = 0)),
        ..Setup::default()
    })
    .await;

    let count = wait_for("the backfill to finish", || {
        let bot = &app.bot;
        async move {
            let (n, done) = bot.past_tickets().await;
            done.then_some(n)
        }
    })
    .await;

    let history: Vec<_> =
        app.ws.api_calls().into_iter().filter(|c| c.method == "conversations.history").collect();
    assert_eq!(count, 230, "not every past ticket was read");
    assert!(history.len() >= 3, "expected a 429 and two pages, got {} calls", history.len());
    assert!(history.iter().any(|c| c.params.contains_key("cursor")), "the second page was never asked for");
}

/// A bot started on a channel `seed` wrote, once its backfill (unpaced) has ended: the app and how
/// many past tickets it indexed.
async fn backfilled(seed: impl FnOnce(&Workspace) + 'static) -> (TestApp, usize) {
    let app = spawn(Setup {
        seed: Some(Box::new(seed)),
        tweak: Some(Box::new(|c| c.settings.history.backfill_pace_ms = 0)),
        ..Setup::default()
    })
    .await;
    let indexed = wait_for("the backfill", || {
        let bot = &app.bot;
        async move {
            let (n, done) = bot.past_tickets().await;
            done.then_some(n)
        }
    })
    .await;
    (app, indexed)
}

#[actix_rt::test]
async fn threads_that_are_not_tickets_are_left_out_of_the_past_tickets() {
    let (_app, indexed) = backfilled(|ws| {
        seed_fixed_vpn_ticket(ws);
        let (bob, dana) = (ws.user_id("bob"), ws.user_id("dana"));
        ws.seed(Some(&bob), "it", "thanks all!", None, 2.0, None);
        let fyi = ws.seed(Some(&bob), "it", "FYI the printer on 3 is fixed", None, 1.9, None);
        ws.seed(
            Some(&dana),
            "it",
            "Thanks, we replaced the fuser on that printer this morning",
            Some(&fyi),
            1.8,
            None,
        );
        let who = ws.seed(Some(&bob), "it", "who approves software purchases?", None, 1.7, None);
        ws.seed(
            Some(&dana),
            "it",
            "Finance approves anything over 500, your manager below that",
            Some(&who),
            1.6,
            None,
        );
    })
    .await;

    assert_eq!(indexed, 1, "only the VPN ticket is a past ticket");
}

#[actix_rt::test]
async fn a_new_ticket_quotes_how_it_fixed_a_similar_past_ticket() {
    let (app, indexed) = backfilled(seed_fixed_vpn_ticket).await;
    assert_eq!(indexed, 1);
    let bob = app.ws.user_id("bob");

    let root = app.ws.post(&bob, &app.it(), "my AWS VPN client is stuck connecting", None);
    let answer = app.wait_bot_replies(&root, 1).await[0].text.clone();

    assert!(answer.contains("*A similar ticket 3 days ago was solved* (IT fixed it)"), "{answer}");
    assert!(answer.contains("I pushed the new one from Self Service"), "{answer}");
}

/// The channel of issue 17: IT fixed a TLS handshake failure by re-importing the profile.
fn seed_tls_handshake_ticket(ws: &Workspace) {
    let alice = ws.user_id("alice");
    let dana = ws.user_id("dana");
    let root = ws.seed(
        Some(&alice),
        "it",
        "Can't connect to the AWS VPN, it says TLS handshake failed",
        None,
        3.0,
        None,
    );
    ws.seed(
        Some(&dana),
        "it",
        "The VPN profile was rotated: remove the old profile and re-import the new one from Self Service",
        Some(&root),
        2.9,
        None,
    );
    ws.seed(Some(&alice), "it", "that worked, thanks!", Some(&root), 2.8, None);
}

#[actix_rt::test]
async fn an_offline_answer_to_a_new_tls_handshake_error_quotes_the_past_reimport_fix() {
    let (app, indexed) = backfilled(seed_tls_handshake_ticket).await;
    assert_eq!(indexed, 1);
    let bob = app.ws.user_id("bob");

    let root = app.ws.post(&bob, &app.it(), "AWS VPN client keeps failing with a TLS handshake error", None);
    let answer = app.wait_bot_replies(&root, 1).await[0].text.clone();

    assert!(answer.contains("*A similar ticket 3 days ago was solved* (IT fixed it)"), "{answer}");
    assert!(answer.contains("re-import the new one from Self Service"), "{answer}");
}

#[actix_rt::test]
async fn live_tickets_reach_the_prompt_of_later_ones_as_fenced_redacted_quotes() {
    let app = spawn(Setup { llm: true, ..Setup::default() }).await;
    let llm = app.llm.clone().expect("llm");
    let alice = app.ws.user_id("alice");
    let dana = app.ws.user_id("dana");
    let first = app.ws.post(
        &alice,
        &app.it(),
        "Okta Verify push never arrives on my new phone, mail me at alice@acme.com",
        None,
    );
    app.wait_bot_replies(&first, 1).await;
    app.ws.post(
        &dana,
        &app.it(),
        "I reset your Okta Verify factor in the admin console; enroll the new phone now",
        Some(&first),
    );
    app.control().await;

    let bob = app.ws.user_id("bob");
    let second = app.ws.post(&bob, &app.it(), "okta verify push not arriving after I switched phones", None);
    app.wait_bot_replies(&second, 1).await;

    let prompt = llm.requests().last().expect("a request")["messages"][0]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(prompt.contains("<ticket>"), "no past ticket in the prompt");
    assert!(prompt.contains("I reset your Okta Verify factor"), "the fix is missing: {prompt}");
    assert!(prompt.contains("[email]") && !prompt.contains("alice@acme.com"), "not redacted");
    let first_prompt = llm.requests()[0]["messages"][0]["content"].as_str().unwrap_or_default().to_string();
    assert!(!first_prompt.contains("<ticket>"), "a ticket was offered to itself");
}

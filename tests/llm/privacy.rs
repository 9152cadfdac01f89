//! Nothing that identifies a person, and no secret, reaches the LLM or the logs.

use itbot_fakes::workspace::Posted;

use crate::helpers::{capture_logs, spawn, wait_for, Setup};

#[actix_rt::test]
async fn nothing_identifying_or_secret_reaches_the_llm_or_any_log_line() {
    let logs = capture_logs();
    let app = spawn(Setup::default()).await;
    app.llm.set_reply(Some("1. Reconnect the **AWS VPN Client** (zephyr-answer steps).".into()));
    let alice = app.ws.user_id("alice");
    let bob = app.ws.user_id("bob");
    let carol = app.ws.user_id("carol");
    let mut posted = app.ws.subscribe();

    let vpn = app.ws.post(
        &alice,
        &app.it(),
        &format!(
            "VPN fails for <@{alice}> since IT-1042 was closed: mail jane.doe@acme.com or call +1 415 555 0100, \
             laptop 10.20.30.40 shows error 809"
        ),
        None,
    );
    let expense = app.ws.post(
        &bob,
        &app.it(),
        "Expense tool rejects card 4111 1111 1111 1111 and IBAN DE89 3704 0044 0532 0130 00 for INC0012345678, \
         error 0x80070005, my SSN 123-45-6789 shows on the form",
        None,
    );
    let secret = app.ws.post(
        &carol,
        &app.it(),
        "okta locks me out, my password is Hunter2!xyz and my recovery codes are 4829-1734 9921-0045",
        None,
    );
    app.wait_bot_replies(&vpn, 1).await;
    app.wait_bot_replies(&expense, 1).await;
    app.wait_bot_replies(&secret, 1).await;
    app.ws.post(
        &alice,
        &app.it(),
        &format!("my manager <@{bob}> (bob.smith@acme.com, +44 7700 900123) says the VPN at 192.168.1.45 is fine, error 809 again"),
        Some(&vpn),
    );
    app.wait_bot_replies(&vpn, 2).await;
    app.ws.post(
        &alice,
        &app.it(),
        "here is my token ghp_R8x2kP5mQ9vL3nT7wZ1yB4cF6hJ0dS2gA8eK for github",
        Some(&vpn),
    );
    app.wait_bot_replies(&vpn, 3).await;
    let mut warnings: Vec<Posted> = Vec::new();
    wait_for("two secret warnings", || {
        while let Ok(p) = posted.try_recv() {
            if p.ephemeral_to.is_some() {
                warnings.push(p);
            }
        }
        let done = warnings.len() >= 2;
        async move { done.then_some(()) }
    })
    .await;

    let requests: Vec<String> = app.llm.requests().iter().map(|r| r.to_string()).collect();
    let sent = requests.join("\n");
    let log = logs.text();
    assert!(requests.len() >= 3, "the LLM was not asked");
    assert!(!log.is_empty(), "no logs captured");
    let private = [
        alice.as_str(),
        bob.as_str(),
        carol.as_str(),
        "jane.doe",
        "acme.com",
        "415 555 0100",
        "10.20.30.40",
        "4111 1111 1111 1111",
        "DE89 3704",
        "123-45-6789",
        "Hunter2",
        "4829-1734",
        "bob.smith",
        "7700 900123",
        "192.168.1.45",
        "ghp_R8x2",
        app.ws.bot_token(),
        app.ws.app_token(),
        "sk-test-key",
    ];
    for p in private {
        assert!(!sent.contains(p), "{p} reached the LLM");
        assert!(!log.contains(p), "{p} is in the logs");
    }
    for kept in ["IT-1042", "INC0012345678", "0x80070005", "error 809"] {
        assert!(sent.contains(kept), "{kept} did not reach the LLM");
    }
    assert!(!sent.contains("okta locks me out"), "a message with a secret was sent");
    assert!(app.llm.requests().iter().all(|r| r.get("user").is_none()), "a user field was sent");
    for text in [
        "Expense tool rejects",
        "VPN fails for",
        "zephyr-answer",
        "You are the IT help assistant",
        "my manager",
    ] {
        assert!(!log.contains(text), "message, prompt or answer text is in the logs: {text}");
    }
    assert_eq!(warnings.len(), 2, "each requester with a secret is warned once");
    assert!(warnings.iter().all(|w| w.text.contains("delete") && w.text.contains("rotate")));
}

#[actix_rt::test]
async fn members_names_become_at_user_in_the_prompt_and_in_the_escalation_brief() {
    let app = spawn(Setup {
        members: vec![("dana.w", "Dana Whitfield"), ("will.t", "Will Turner")],
        ..Default::default()
    })
    .await;
    // The bot reads users.list in the background after it connects. (nextest runs each test in
    // a process of its own, so no other test's bot swaps the directory meanwhile.)
    wait_for("the members' names to load", || {
        let loaded = itbot::redact::people::directory().is_some_and(|p| !p.find("Dana Whitfield").is_empty());
        async move { loaded.then_some(()) }
    })
    .await;
    app.llm.set_reply(Some("1. Reconnect the **AWS VPN Client**.".into()));
    let alice = app.ws.user_id("alice");

    let root = app.ws.post(
        &alice,
        &app.it(),
        "VPN fails for me and Dana Whitfield since 9, will it be back? thanks Will for the tip",
        None,
    );
    app.wait_bot_replies(&root, 1).await;
    app.ws.post(&alice, &app.it(), "can a human help? dana.w is stuck too", Some(&root));
    let brief = app.wait_bot_replies(&root, 2).await[1].text.clone();

    let sent: String = app.llm.requests().iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n");
    assert!(!sent.is_empty(), "the LLM was not asked");
    for name in ["Dana", "Whitfield", "dana.w", "thanks Will"] {
        assert!(!sent.contains(name), "{name} reached the LLM: {sent}");
        assert!(!brief.contains(name), "{name} is in the brief: {brief}");
    }
    assert!(sent.contains("will it be back"), "an ordinary word was taken for a name: {sent}");
    assert!(brief.contains("@user"), "{brief}");
    assert!(app.calls("users.list").len() == 1, "one page of members is read");
}

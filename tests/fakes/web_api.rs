//! The Web API half of the simulated workspace.

use itbot_fakes::workspace::{Fault, RateLimits, WorkspaceOptions};
use serde_json::{json, Value};

use crate::helpers::*;

#[actix_rt::test]
async fn auth_test_with_the_bot_token_returns_the_bot_identity_and_scopes() {
    let ws = start(fast_options()).await;

    let r = call_form(&ws, "auth.test", Some(ws.bot_token()), &[]).await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], true);
    assert_eq!(r.body["user_id"], ws.bot_user_id());
    assert_eq!(r.body["bot_id"], ws.bot_id());
    assert_eq!(r.body["team_id"], ws.team_id());
    for key in ["url", "team", "user"] {
        assert!(r.body[key].is_string(), "{key} missing");
    }
    let scopes = r.headers.get("x-oauth-scopes").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(scopes.split(',').any(|s| s == "chat:write"));
    assert!(scopes.split(',').any(|s| s == "reactions:write"));
    ws.stop().await;
}

#[actix_rt::test]
async fn auth_test_with_the_app_token_is_invalid_auth() {
    let ws = start(fast_options()).await;

    let r = call_form(&ws, "auth.test", Some(ws.app_token()), &[]).await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"ok": false, "error": "invalid_auth"}));
    assert_eq!(ws.api_calls()[0].token_kind, Some("app"));
    ws.stop().await;
}

#[actix_rt::test]
async fn auth_test_without_a_token_is_not_authed() {
    let ws = start(fast_options()).await;

    let r = call_form(&ws, "auth.test", None, &[]).await;

    assert_eq!(r.body, json!({"ok": false, "error": "not_authed"}));
    assert_eq!(ws.api_calls()[0].token_kind, None);
    ws.stop().await;
}

#[actix_rt::test]
async fn a_bot_token_passed_as_a_form_parameter_is_accepted() {
    let ws = start(fast_options()).await;

    let r = call_form(&ws, "auth.test", None, &[("token", ws.bot_token())]).await;

    assert_eq!(r.body["ok"], true);
    ws.stop().await;
}

#[actix_rt::test]
async fn apps_connections_open_accepts_the_app_token_only_in_the_header() {
    let ws = start(fast_options()).await;

    let as_param = call_form(&ws, "apps.connections.open", None, &[("token", ws.app_token())]).await;
    let with_bot = call_form(&ws, "apps.connections.open", Some(ws.bot_token()), &[]).await;
    let in_header = call_form(&ws, "apps.connections.open", Some(ws.app_token()), &[]).await;

    assert_eq!(as_param.body["error"], "not_authed");
    assert_eq!(with_bot.body["error"], "invalid_auth");
    assert_eq!(in_header.body["ok"], true);
    let url = in_header.body["url"].as_str().unwrap();
    assert!(url.starts_with("ws://127.0.0.1:") && url.contains("/link/?ticket="), "{url}");
    assert!(url.contains("&app_id=A"), "{url}");
    ws.stop().await;
}

#[actix_rt::test]
async fn unknown_methods_return_unknown_method() {
    let ws = start(fast_options()).await;

    let r = call_form(&ws, "chat.fly", Some(ws.bot_token()), &[]).await;

    assert_eq!(r.status, 200);
    assert_eq!(r.body["ok"], false);
    assert_eq!(r.body["error"], "unknown_method");
    ws.stop().await;
}

#[actix_rt::test]
async fn chat_post_message_works_with_query_form_and_json_bodies() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]);
    let metadata = json!({"event_type": "itbot_thread_state", "event_payload": {"attempts": 1}});

    let by_get =
        call_get(&ws, "chat.postMessage", Some(ws.bot_token()), &[("channel", &it), ("text", "from get")])
            .await;
    let by_form = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[
            ("channel", &it),
            ("text", "from form"),
            ("blocks", &blocks.to_string()),
            ("metadata", &metadata.to_string()),
            ("unfurl_links", "false"),
        ],
    )
    .await;
    let by_json = call_json(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &json!({"channel": it, "text": "from json", "blocks": blocks, "metadata": metadata, "mrkdwn": true, "unfurl_links": false}),
    )
    .await;

    for r in [&by_get, &by_form, &by_json] {
        assert_eq!(r.body["ok"], true, "{}", r.raw);
        assert_eq!(r.body["channel"], it);
        assert_eq!(r.body["message"]["bot_id"], ws.bot_id());
        assert_eq!(r.body["message"]["user"], ws.bot_user_id());
        assert_eq!(r.body["message"]["bot_profile"]["name"], "itbot");
        assert!(r.body["message"].get("subtype").is_none());
        assert_eq!(r.body["ts"], r.body["message"]["ts"]);
    }
    assert_eq!(by_form.body["message"]["blocks"], blocks);
    assert_eq!(by_json.body["message"]["blocks"], blocks);
    assert_eq!(by_json.body["message"]["metadata"], metadata);
    let stored: Vec<String> = ws.messages(&it).iter().map(|m| m.text.clone()).collect();
    assert_eq!(stored, ["from get", "from form", "from json"]);
    assert_eq!(ws.messages(&it)[1].blocks.as_ref(), Some(&blocks));
    assert_eq!(ws.messages(&it)[1].metadata.as_ref(), Some(&metadata));
    let calls = ws.api_calls();
    assert_eq!(calls[0].http_method, "GET");
    assert!(calls[1].content_type.as_deref().unwrap().starts_with("application/x-www-form-urlencoded"));
    assert!(calls[2].content_type.as_deref().unwrap().starts_with("application/json"));
    assert_eq!(calls[2].token_kind, Some("bot"));
    ws.stop().await;
}

#[actix_rt::test]
async fn chat_post_message_reports_content_and_channel_errors() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let long = "x".repeat(40_001);

    let no_text = call_form(&ws, "chat.postMessage", Some(ws.bot_token()), &[("channel", &it)]).await;
    let bad_channel = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[("channel", "C0NOPE00000"), ("text", "x")],
    )
    .await;
    let too_long =
        call_form(&ws, "chat.postMessage", Some(ws.bot_token()), &[("channel", &it), ("text", &long)]).await;
    let by_name =
        call_form(&ws, "chat.postMessage", Some(ws.bot_token()), &[("channel", "#it"), ("text", "ok")]).await;

    assert_eq!(no_text.body["error"], "no_text");
    assert_eq!(bad_channel.body["error"], "channel_not_found");
    assert_eq!(too_long.body["error"], "msg_too_long");
    assert_eq!(by_name.body["channel"], it);
    ws.stop().await;
}

#[actix_rt::test]
async fn chat_post_message_to_it_is_not_in_channel_when_the_bot_is_not_a_member() {
    let ws = start(WorkspaceOptions { bot_in_channel: false, ..fast_options() }).await;

    let it = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[("channel", ws.it_channel()), ("text", "x")],
    )
    .await;
    let random = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[("channel", ws.other_channel()), ("text", "x")],
    )
    .await;
    let info =
        call_get(&ws, "conversations.info", Some(ws.bot_token()), &[("channel", ws.it_channel())]).await;

    assert_eq!(it.body["error"], "not_in_channel");
    assert_eq!(random.body["ok"], true);
    assert_eq!(info.body["channel"]["is_member"], false);
    ws.stop().await;
}

#[actix_rt::test]
async fn conversations_replies_works_with_query_form_and_json_bodies() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let alice = ws.user_id("alice");
    let root = ws.post(&alice, &it, "printer on fire", None);
    let metadata = json!({"event_type": "itbot_thread_state", "event_payload": {"escalated": false}});
    call_json(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &json!({"channel": it, "thread_ts": root, "text": "step 1", "metadata": metadata}),
    )
    .await;
    ws.post(&alice, &it, "still burning", Some(&root));

    let by_get = call_get(
        &ws,
        "conversations.replies",
        Some(ws.bot_token()),
        &[("channel", &it), ("ts", &root), ("include_all_metadata", "true")],
    )
    .await;
    let by_form =
        call_form(&ws, "conversations.replies", Some(ws.bot_token()), &[("channel", &it), ("ts", &root)])
            .await;
    let by_json = call_json(
        &ws,
        "conversations.replies",
        Some(ws.bot_token()),
        &json!({"channel": it, "ts": root, "include_all_metadata": true}),
    )
    .await;

    for r in [&by_get, &by_form, &by_json] {
        assert_eq!(r.body["ok"], true, "{}", r.raw);
        let msgs = r.body["messages"].as_array().unwrap();
        let texts: Vec<&str> = msgs.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(texts, ["printer on fire", "step 1", "still burning"]);
        assert_eq!(msgs[0]["ts"], root);
        assert_eq!(msgs[0]["thread_ts"], root);
        assert_eq!(msgs[0]["reply_count"], 2);
        assert_eq!(msgs[1]["thread_ts"], root);
        assert_eq!(msgs[1]["parent_user_id"], alice);
        assert_eq!(r.body["has_more"], false);
        assert_eq!(r.body["response_metadata"]["next_cursor"], "");
    }
    assert_eq!(by_get.body["messages"][1]["metadata"], metadata);
    assert_eq!(by_json.body["messages"][1]["metadata"], metadata);
    assert!(by_form.body["messages"][1].get("metadata").is_none());
    ws.stop().await;
}

#[actix_rt::test]
async fn conversations_replies_for_an_unknown_ts_is_thread_not_found() {
    let ws = start(fast_options()).await;

    let r = call_get(
        &ws,
        "conversations.replies",
        Some(ws.bot_token()),
        &[("channel", ws.it_channel()), ("ts", "1700000000.000100")],
    )
    .await;

    assert_eq!(r.body, json!({"ok": false, "error": "thread_not_found"}));
    ws.stop().await;
}

#[actix_rt::test]
async fn conversations_history_paginates_newest_first_and_ends_with_an_empty_cursor() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let bob = ws.user_id("bob");
    let mut posted = Vec::new();
    for i in 0..5 {
        let ts = ws.post(&bob, &it, &format!("message {i}"), None);
        ws.post(&bob, &it, "a reply, not in history", Some(&ts));
        posted.push(ts);
    }

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let mut q = vec![("channel", it.as_str()), ("limit", "2")];
        if !cursor.is_empty() {
            q.push(("cursor", cursor.as_str()));
        }
        let r = call_get(&ws, "conversations.history", Some(ws.bot_token()), &q).await;
        assert_eq!(r.body["ok"], true, "{}", r.raw);
        pages += 1;
        for m in r.body["messages"].as_array().unwrap() {
            seen.push(m["ts"].as_str().unwrap().to_string());
        }
        cursor = r.body["response_metadata"]["next_cursor"].as_str().unwrap().to_string();
        assert_eq!(r.body["has_more"], !cursor.is_empty());
        if cursor.is_empty() {
            break;
        }
        assert!(pages < 10, "pagination does not end");
    }

    posted.reverse();
    assert_eq!(seen, posted);
    assert_eq!(pages, 3);
    ws.stop().await;
}

#[actix_rt::test]
async fn conversations_history_honours_oldest_and_latest() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let bob = ws.user_id("bob");
    let ts: Vec<String> = (0..4).map(|i| ws.post(&bob, &it, &format!("m{i}"), None)).collect();

    let r = call_form(
        &ws,
        "conversations.history",
        Some(ws.bot_token()),
        &[("channel", &it), ("oldest", &ts[0]), ("latest", &ts[3])],
    )
    .await;
    let incl = call_form(
        &ws,
        "conversations.history",
        Some(ws.bot_token()),
        &[("channel", &it), ("oldest", &ts[0]), ("inclusive", "true")],
    )
    .await;
    let bad = call_form(
        &ws,
        "conversations.history",
        Some(ws.bot_token()),
        &[("channel", &it), ("latest", "soon")],
    )
    .await;

    let texts = |v: &Value| -> Vec<String> {
        v["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(texts(&r.body), ["m2", "m1"]);
    assert_eq!(texts(&incl.body), ["m3", "m2", "m1", "m0"]);
    assert_eq!(bad.body["error"], "invalid_ts_latest");
    ws.stop().await;
}

#[actix_rt::test]
async fn conversations_list_paginates_and_finds_the_it_channel() {
    let ws = start(fast_options()).await;

    let mut ids = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let mut q = vec![("types", "public_channel,private_channel"), ("limit", "1")];
        if !cursor.is_empty() {
            q.push(("cursor", cursor.as_str()));
        }
        let r = call_get(&ws, "conversations.list", Some(ws.bot_token()), &q).await;
        for c in r.body["channels"].as_array().unwrap() {
            ids.push((c["id"].as_str().unwrap().to_string(), c["name"].as_str().unwrap().to_string()));
        }
        cursor = r.body["response_metadata"]["next_cursor"].as_str().unwrap().to_string();
        if cursor.is_empty() {
            break;
        }
    }

    assert!(ids.contains(&(ws.it_channel().to_string(), "it".to_string())));
    assert!(ids.contains(&(ws.other_channel().to_string(), "random".to_string())));
    let id = ws.it_channel();
    assert!(
        id.len() == 11
            && id.starts_with("C0")
            && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    ws.stop().await;
}

#[actix_rt::test]
async fn users_list_pages_every_member_with_real_and_display_names() {
    let ws = start(fast_options()).await;
    let dana = ws.add_member("dana.w", "Dana Whitfield");
    ws.add_member("priya", "Priya Raman");

    let mut members: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    for _ in 0..20 {
        let mut q = vec![("limit", "2")];
        if !cursor.is_empty() {
            q.push(("cursor", cursor.as_str()));
        }
        let r = call_get(&ws, "users.list", Some(ws.bot_token()), &q).await;
        assert_eq!(r.body["ok"], true, "{}", r.body);
        pages += 1;
        members.extend(r.body["members"].as_array().unwrap().iter().cloned());
        cursor = r.body["response_metadata"]["next_cursor"].as_str().unwrap().to_string();
        if cursor.is_empty() {
            break;
        }
    }

    // Slackbot, the three apps' bot users and the two people, two a page.
    assert_eq!(members.len(), 6, "{members:?}");
    assert_eq!(pages, 3);
    let d = members.iter().find(|m| m["id"] == dana.as_str()).expect("dana is listed");
    assert_eq!(d["profile"]["real_name"], "Dana Whitfield");
    assert_eq!(d["profile"]["display_name"], "dana.w");
    assert_eq!(d["is_bot"], false);
    assert!(members.iter().any(|m| m["id"] == "USLACKBOT"));
    assert_eq!(members.iter().filter(|m| m["is_bot"] == true).count(), 3);
    let bad = call_get(&ws, "users.list", Some(ws.bot_token()), &[("cursor", "nonsense")]).await;
    assert_eq!(bad.body["error"], "invalid_cursor");
    ws.stop().await;
}

#[actix_rt::test]
async fn an_injected_rate_limit_returns_429_with_retry_after_once() {
    let ws = start(fast_options()).await;
    ws.inject("chat.postMessage", Fault::RateLimited { retry_after_secs: 7 });

    let limited = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[("channel", ws.it_channel()), ("text", "x")],
    )
    .await;
    let next = call_form(
        &ws,
        "chat.postMessage",
        Some(ws.bot_token()),
        &[("channel", ws.it_channel()), ("text", "x")],
    )
    .await;

    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers.get("retry-after").unwrap().to_str().unwrap(), "7");
    assert_eq!(limited.body, json!({"ok": false, "error": "ratelimited"}));
    assert_eq!(next.status, 200);
    assert_eq!(next.body["ok"], true);
    assert_eq!(ws.messages(ws.it_channel()).len(), 1);
    ws.stop().await;
}

#[actix_rt::test]
async fn injected_server_errors_error_codes_and_delays_are_served_in_order() {
    let ws = start(fast_options()).await;
    ws.inject("auth.test", Fault::ServerError(503));
    ws.inject("auth.test", Fault::Error("fatal_error".into()));
    ws.inject("auth.test", Fault::Delay(std::time::Duration::from_millis(50)));

    let first = call_form(&ws, "auth.test", Some(ws.bot_token()), &[]).await;
    let second = call_form(&ws, "auth.test", Some(ws.bot_token()), &[]).await;
    let started = std::time::Instant::now();
    let third = call_form(&ws, "auth.test", Some(ws.bot_token()), &[]).await;

    assert_eq!(first.status, 503);
    assert_eq!(second.status, 200);
    assert_eq!(second.body, json!({"ok": false, "error": "fatal_error"}));
    assert!(started.elapsed() >= std::time::Duration::from_millis(50));
    assert_eq!(third.body["ok"], true);
    ws.stop().await;
}

#[actix_rt::test]
async fn reactions_add_twice_is_already_reacted_and_reactions_get_lists_it() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let ts = ws.post(&ws.user_id("alice"), &it, "help", None);

    let first = call_form(
        &ws,
        "reactions.add",
        Some(ws.bot_token()),
        &[("channel", &it), ("timestamp", &ts), ("name", "eyes")],
    )
    .await;
    let again = call_form(
        &ws,
        "reactions.add",
        Some(ws.bot_token()),
        &[("channel", &it), ("timestamp", &ts), ("name", "eyes")],
    )
    .await;
    let get =
        call_get(&ws, "reactions.get", Some(ws.bot_token()), &[("channel", &it), ("timestamp", &ts)]).await;

    assert_eq!(first.body, json!({"ok": true}));
    assert_eq!(again.body["error"], "already_reacted");
    assert_eq!(
        get.body["message"]["reactions"],
        json!([{"name": "eyes", "users": [ws.bot_user_id()], "count": 1}])
    );
    assert_eq!(ws.messages(&it)[0].reactions, [("eyes".to_string(), ws.bot_user_id().to_string())]);
    ws.stop().await;
}

#[actix_rt::test]
async fn chat_update_edits_the_apps_message_and_ephemeral_posts_only_reach_the_stream() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let alice = ws.user_id("alice");
    let human_ts = ws.post(&alice, &it, "help", None);
    let posted =
        call_form(&ws, "chat.postMessage", Some(ws.bot_token()), &[("channel", &it), ("text", "draft")])
            .await;
    let ts = posted.body["ts"].as_str().unwrap().to_string();
    let mut stream = ws.subscribe();

    let updated = call_form(
        &ws,
        "chat.update",
        Some(ws.bot_token()),
        &[("channel", &it), ("ts", &ts), ("text", "final")],
    )
    .await;
    let not_mine = call_form(
        &ws,
        "chat.update",
        Some(ws.bot_token()),
        &[("channel", &it), ("ts", &human_ts), ("text", "x")],
    )
    .await;
    let missing = call_form(
        &ws,
        "chat.update",
        Some(ws.bot_token()),
        &[("channel", &it), ("ts", "1.000001"), ("text", "x")],
    )
    .await;
    let eph = call_json(
        &ws,
        "chat.postEphemeral",
        Some(ws.bot_token()),
        &json!({"channel": it, "user": alice, "text": "please delete that password"}),
    )
    .await;

    assert_eq!(updated.body["ok"], true);
    assert_eq!(updated.body["text"], "final");
    assert_eq!(not_mine.body["error"], "cant_update_message");
    assert_eq!(missing.body["error"], "message_not_found");
    assert_eq!(eph.body["ok"], true);
    assert!(eph.body["message_ts"].is_string());
    assert_eq!(ws.messages(&it)[1].text, "final");
    assert_eq!(ws.messages(&it).len(), 2);
    let seen = tokio::time::timeout(DEADLINE, stream.recv()).await.unwrap().unwrap();
    assert_eq!(seen.ephemeral_to.as_deref(), Some(alice.as_str()));
    assert_eq!(seen.bot_id.as_deref(), Some(ws.bot_id()));
    ws.stop().await;
}

#[actix_rt::test]
async fn users_info_and_user_name_know_humans_and_bots() {
    let ws = start(fast_options()).await;
    let dana = ws.user_id("dana");

    let r = call_get(&ws, "users.info", Some(ws.bot_token()), &[("user", &dana)]).await;
    let bot = call_get(&ws, "users.info", Some(ws.bot_token()), &[("user", ws.bot_user_id())]).await;
    let nobody = call_get(&ws, "users.info", Some(ws.bot_token()), &[("user", "U0NOBODY000")]).await;

    assert_eq!(r.body["user"]["id"], dana);
    assert_eq!(r.body["user"]["is_bot"], false);
    assert_eq!(r.body["user"]["profile"]["display_name"], "dana");
    assert_eq!(bot.body["user"]["is_bot"], true);
    assert_eq!(nobody.body["error"], "user_not_found");
    assert_eq!(ws.user_id("dana"), dana);
    assert_eq!(ws.user_name(ws.bot_id()).as_deref(), Some("itbot"));
    assert_eq!(ws.user_name(ws.assist_bot_id()).as_deref(), Some("Assist"));
    assert_eq!(ws.user_name(&dana).as_deref(), Some("dana"));
    ws.stop().await;
}

#[actix_rt::test]
async fn assistant_set_status_is_recorded() {
    let ws = start(fast_options()).await;

    let r = call_json(&ws, "assistant.threads.setStatus", Some(ws.bot_token()), &json!({"channel_id": ws.it_channel(), "thread_ts": "1700000000.000100", "status": "is looking into it..."})).await;

    assert_eq!(r.body, json!({"ok": true}));
    let call = ws.api_calls().pop().unwrap();
    assert_eq!(call.method, "assistant.threads.setStatus");
    assert_eq!(call.params["thread_ts"], "1700000000.000100");
    ws.stop().await;
}

#[actix_rt::test]
async fn conversations_replies_for_a_replys_ts_returns_that_reply_alone_as_slack_does() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let alice = ws.user_id("alice");
    let root = ws.post(&alice, &it, "printer on fire", None);
    let reply = ws.post(&alice, &it, "still burning", Some(&root));
    ws.post(&alice, &it, "now smoking", Some(&root));

    let r =
        call_form(&ws, "conversations.replies", Some(ws.bot_token()), &[("channel", &it), ("ts", &reply)])
            .await;

    assert_eq!(r.body["ok"], true, "{}", r.raw);
    let msgs = r.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{}", r.raw);
    assert_eq!(msgs[0]["ts"], reply);
    assert_eq!(msgs[0]["thread_ts"], root, "the reply names its thread");
    ws.stop().await;
}

#[actix_rt::test]
async fn posts_past_one_a_second_in_a_channel_are_refused_with_429_and_retry_after_by_default() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    let post = |channel: String| {
        let ws = ws.clone();
        async move {
            call_json(
                &ws,
                "chat.postMessage",
                Some(ws.bot_token()),
                &json!({"channel": channel, "text": "hi"}),
            )
            .await
        }
    };

    // A short burst is allowed; the next call in the same second is not.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(post(it.clone()).await);
    }
    assert!(statuses[..3].iter().all(|r| r.status == 200 && r.body["ok"] == true), "the burst was refused");
    let refused = &statuses[3];
    assert_eq!(refused.status, 429, "{}", refused.raw);
    assert_eq!(refused.body["error"], "ratelimited");
    let retry_after: u64 =
        refused.headers.get("retry-after").expect("Retry-After").to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(ws.rate_limited_calls(), 1);
    ws.stop().await;
}

#[actix_rt::test]
async fn methods_have_budgets_of_their_own_and_relaxed_limits_say_so_in_the_options() {
    let ws = start(fast_options()).await;
    let it = ws.it_channel().to_string();
    // conversations.info is Tier 3 (50 a minute, bursts of 8): the ninth call at once is refused,
    // while chat.postMessage still has its own budget.
    let mut codes = Vec::new();
    for _ in 0..9 {
        let r = call_json(&ws, "conversations.info", Some(ws.bot_token()), &json!({"channel": it})).await;
        codes.push(r.status);
    }
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 1, "{codes:?}");
    let r =
        call_json(&ws, "chat.postMessage", Some(ws.bot_token()), &json!({"channel": it, "text": "x"})).await;
    assert_eq!(r.status, 200);
    ws.stop().await;

    let relaxed = start(WorkspaceOptions { rate_limits: RateLimits::Relaxed(10), ..fast_options() }).await;
    let it = relaxed.it_channel().to_string();
    for _ in 0..20 {
        let r = call_json(
            &relaxed,
            "chat.postMessage",
            Some(relaxed.bot_token()),
            &json!({"channel": it, "text": "x"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
    relaxed.stop().await;
}

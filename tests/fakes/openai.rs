//! The fake OpenAI Chat Completions server.

use std::time::Duration;

use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
use serde_json::{json, Value};

use crate::helpers::{assert_same_shape, client, fixture};

async fn start(opts: FakeOpenAiOptions) -> FakeOpenAi {
    FakeOpenAi::start(opts).await.expect("fake openai starts")
}

struct Resp {
    status: u16,
    headers: awc::http::header::HeaderMap,
    raw: String,
}

async fn complete(ai: &FakeOpenAi, key: Option<&str>, body: &Value) -> Resp {
    let mut req = client()
        .post(format!("{}/chat/completions", ai.base_url()))
        .insert_header(("Content-Type", "application/json"));
    if let Some(k) = key {
        req = req.insert_header(("Authorization", format!("Bearer {k}")));
    }
    let mut resp = req.send_body(body.to_string()).await.expect("request");
    let raw = resp.body().limit(16 << 20).await.expect("body");
    Resp {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

fn request(extra: Value) -> Value {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are the IT helper.\n\nKnowledge base articles:\nTitle: GlobalProtect VPN troubleshooting\n1. Check the portal address."},
            {"role": "user", "content": "My VPN disconnects every few minutes when I am on the office wifi on floor three and I have already restarted"}
        ],
        "max_completion_tokens": 800,
        "temperature": 0.2,
        "some_future_field": {"ignored": true}
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// The `data:` payloads of an SSE body, in order.
fn sse_data(raw: &str) -> Vec<String> {
    assert!(raw.ends_with("data: [DONE]\n\n"), "stream must end with [DONE]");
    raw.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("every event is a data line").to_string())
        .collect()
}

#[actix_rt::test]
async fn a_non_streaming_completion_has_the_fixture_shape() {
    let ai = start(FakeOpenAiOptions::default()).await;

    let r = complete(&ai, Some("sk-test"), &request(json!({}))).await;

    assert_eq!(r.status, 200);
    assert!(r.headers.get("content-type").unwrap().to_str().unwrap().starts_with("application/json"));
    let v: Value = serde_json::from_str(&r.raw).unwrap();
    let fixture: Value = serde_json::from_str(&fixture("openai/chat_completion.text.json")).unwrap();
    assert_same_shape(&v, &fixture, "completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let usage = &v["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(ai.requests().len(), 1);
    assert_eq!(ai.requests()[0]["temperature"], 0.2);
    assert!(ai.request_headers()[0].iter().any(|(k, v)| k == "authorization" && v == "Bearer sk-test"));
    ai.stop().await;
}

#[actix_rt::test]
async fn the_default_answer_names_the_first_article_in_three_steps_without_echoing_the_user() {
    let ai = start(FakeOpenAiOptions::default()).await;

    let r = complete(&ai, Some("sk-test"), &request(json!({}))).await;

    let v: Value = serde_json::from_str(&r.raw).unwrap();
    let answer = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.contains("GlobalProtect VPN troubleshooting"), "{answer}");
    for step in ["\n1. ", "\n2. ", "\n3. "] {
        assert!(answer.contains(step), "missing step {step:?}");
    }
    let user = "My VPN disconnects every few minutes when I am on the office wifi on floor three";
    let words: Vec<&str> = user.split(' ').collect();
    for w in words.windows(6) {
        assert!(!answer.contains(&w.join(" ")), "answer echoes user text");
    }
    let again = complete(&ai, Some("sk-test"), &request(json!({}))).await;
    let v2: Value = serde_json::from_str(&again.raw).unwrap();
    assert_eq!(v2["choices"][0]["message"]["content"], answer);
    ai.stop().await;
}

#[actix_rt::test]
async fn a_streamed_completion_has_the_fixture_shape_and_ends_with_usage_and_done() {
    let ai = start(FakeOpenAiOptions {
        reply: Some("Restart the VPN client, then sign in again with your SSO account.".into()),
        ..Default::default()
    })
    .await;

    let r = complete(
        &ai,
        Some("sk-test"),
        &request(json!({"stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;

    assert_eq!(r.status, 200);
    assert!(r.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/event-stream"));
    let ours = sse_data(&r.raw);
    let theirs = sse_data(&fixture("openai/stream.text.sse"));
    assert_eq!(ours.last().unwrap(), "[DONE]");
    let parse = |s: &String| -> Value { serde_json::from_str(s).unwrap() };
    let ours: Vec<Value> = ours[..ours.len() - 1].iter().map(parse).collect();
    let theirs: Vec<Value> = theirs[..theirs.len() - 1].iter().map(parse).collect();
    let n = ours.len();
    assert_same_shape(&ours[0], &theirs[0], "first");
    assert_eq!(ours[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "", "refusal": null}));
    for c in &ours[1..n - 2] {
        assert_same_shape(c, &theirs[1], "content");
    }
    assert_same_shape(&ours[n - 2], &theirs[theirs.len() - 2], "finish");
    assert_eq!(ours[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_same_shape(&ours[n - 1], &theirs[theirs.len() - 1], "usage");
    assert_eq!(ours[n - 1]["choices"], json!([]));
    let text: String =
        ours[1..n - 2].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Restart the VPN client, then sign in again with your SSO account.");
    assert!(n - 3 >= 3, "content arrives in several chunks");
    let ids: Vec<&Value> = ours.iter().map(|c| &c["id"]).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    ai.stop().await;
}

#[actix_rt::test]
async fn a_stream_without_include_usage_has_no_usage_chunk() {
    let ai =
        start(FakeOpenAiOptions { reply: Some("Short answer here.".into()), ..Default::default() }).await;

    let r = complete(&ai, Some("sk-test"), &request(json!({"stream": true}))).await;

    let data = sse_data(&r.raw);
    let last_chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(last_chunk["choices"][0]["finish_reason"], "stop");
    assert!(data.iter().all(|d| !d.contains("\"usage\"")));
    ai.stop().await;
}

#[actix_rt::test]
async fn a_missing_api_key_is_rejected_with_invalid_api_key() {
    let ai = start(FakeOpenAiOptions::default()).await;

    let none = complete(&ai, None, &request(json!({}))).await;
    let empty = complete(&ai, Some(""), &request(json!({}))).await;

    for r in [&none, &empty] {
        assert_eq!(r.status, 401);
        let v: Value = serde_json::from_str(&r.raw).unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["param"].is_null());
        assert!(v["error"]["message"].is_string());
    }
    ai.stop().await;
}

#[actix_rt::test]
async fn a_request_without_model_or_messages_is_an_invalid_request_error() {
    let ai = start(FakeOpenAiOptions::default()).await;

    let no_model =
        complete(&ai, Some("sk-test"), &json!({"messages": [{"role": "user", "content": "hi"}]})).await;
    let no_messages = complete(&ai, Some("sk-test"), &json!({"model": "gpt-4o-mini"})).await;

    for r in [&no_model, &no_messages] {
        assert_eq!(r.status, 400);
        let v: Value = serde_json::from_str(&r.raw).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    ai.stop().await;
}

#[actix_rt::test]
async fn fail_next_serves_one_openai_error_with_retry_after() {
    let ai = start(FakeOpenAiOptions::default()).await;
    ai.fail_next(429, "rate_limit_exceeded", Some(2));

    let failed = complete(&ai, Some("sk-test"), &request(json!({}))).await;
    let ok = complete(&ai, Some("sk-test"), &request(json!({}))).await;

    assert_eq!(failed.status, 429);
    assert_eq!(failed.headers.get("retry-after").unwrap().to_str().unwrap(), "2");
    let v: Value = serde_json::from_str(&failed.raw).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    for k in ["message", "type", "param", "code"] {
        assert!(v["error"].get(k).is_some(), "error lacks {k}");
    }
    assert_eq!(ok.status, 200);
    assert_eq!(ai.requests().len(), 2);
    ai.stop().await;
}

#[actix_rt::test]
async fn a_small_token_limit_truncates_with_finish_reason_length() {
    let ai = start(FakeOpenAiOptions::default()).await;

    let r = complete(&ai, Some("sk-test"), &request(json!({"max_completion_tokens": 3}))).await;

    let v: Value = serde_json::from_str(&r.raw).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    ai.stop().await;
}

#[actix_rt::test]
async fn a_json_schema_request_gets_json_content_and_latency_delays_the_answer() {
    let ai = start(FakeOpenAiOptions { latency: Duration::from_millis(60), reply: None }).await;
    let schema = json!({"type": "json_schema", "json_schema": {"name": "triage", "strict": true, "schema": {
        "type": "object", "properties": {"category": {"type": "string", "enum": ["technical", "access", "change"]}, "answer": {"type": "string"}},
        "required": ["category", "answer"], "additionalProperties": false}}});

    let started = std::time::Instant::now();
    let r = complete(&ai, Some("sk-test"), &request(json!({"response_format": schema}))).await;

    assert!(started.elapsed() >= Duration::from_millis(60));
    let v: Value = serde_json::from_str(&r.raw).unwrap();
    let content: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["category"], "technical");
    assert!(content["answer"].as_str().unwrap().contains("1. "));
    ai.set_reply(Some("fixed".into()));
    let fixed = complete(&ai, Some("sk-test"), &request(json!({}))).await;
    let v: Value = serde_json::from_str(&fixed.raw).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "fixed");
    ai.stop().await;
}

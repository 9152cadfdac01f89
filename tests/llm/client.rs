//! The OpenAiActor against the fake OpenAI: what is retried, for how long, and streaming.

use std::time::Duration;

use itbot::actors::openai::Complete;
use itbot::openai::{ChatMessage, OpenAiError, Role};
use itbot_fakes::fake_openai::{FakeFailure, FakeOpenAi, FakeOpenAiOptions};
use tokio::sync::mpsc;

use crate::helpers::{openai_actor, DEADLINE};

async fn fake() -> FakeOpenAi {
    FakeOpenAi::start(FakeOpenAiOptions {
        reply: Some("1. Restart the **VPN** client.".into()),
        ..Default::default()
    })
    .await
    .expect("fake openai starts")
}

fn ask(deltas: Option<mpsc::UnboundedSender<String>>) -> Complete {
    let messages = vec![
        ChatMessage { role: Role::System, content: "You are the IT helper.".into() },
        ChatMessage { role: Role::User, content: "my vpn is down".into() },
    ];
    Complete { deltas, ..Complete::answer(messages, 20) }
}

fn retry_counts(llm: &FakeOpenAi) -> Vec<String> {
    llm.request_headers()
        .iter()
        .map(|h| {
            h.iter().find(|(k, _)| k == "x-stainless-retry-count").map(|(_, v)| v.clone()).unwrap_or_default()
        })
        .collect()
}

/// A sample stream from the repository's fixtures; a missing one fails the test, naming the path.
fn sample_stream(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/openai/").to_string() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

#[actix_rt::test]
async fn server_errors_are_retried_until_an_answer_comes() {
    let llm = fake().await;
    let (openai, meter) = openai_actor(&llm, 2);
    llm.fail_next(503, "server_is_overloaded", None);
    llm.fail_next(500, "server_error", None);

    let answer = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers").expect("completion");

    assert_eq!(answer.content, "1. Restart the **VPN** client.");
    assert_eq!(retry_counts(&llm), vec!["0", "1", "2"]);
    let counted = meter.snapshot();
    assert_eq!((counted.calls, counted.retries, counted.failures), (1, 2, 0));
    assert!(counted.cost_usd > 0.0, "gpt-4o-mini has a price in the shipped table");
}

#[actix_rt::test]
async fn retries_stop_at_the_limit() {
    let llm = fake().await;
    let (openai, meter) = openai_actor(&llm, 2);
    for _ in 0..3 {
        llm.fail_next(429, "rate_limit_exceeded", None);
    }

    let result = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers");

    assert!(matches!(result, Err(OpenAiError::Status { status: 429, .. })), "{result:?}");
    assert_eq!(llm.requests().len(), 3, "one attempt and two retries");
    assert_eq!(meter.snapshot().failures, 1);
}

#[actix_rt::test]
async fn insufficient_quota_and_bad_requests_are_not_retried() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 2);
    llm.fail_next(429, "insufficient_quota", None);
    llm.fail_next(400, "context_length_exceeded", None);

    let quota = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers");
    let too_long = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers");

    assert!(matches!(quota, Err(OpenAiError::Status { status: 429, .. })));
    assert!(matches!(too_long, Err(OpenAiError::Status { status: 400, .. })));
    assert_eq!(llm.requests().len(), 2, "each failed once and was not retried");
}

#[actix_rt::test]
async fn retry_after_ms_then_retry_after_are_waited_out() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 2);
    let mut ms = FakeFailure::new(429, "rate_limit_exceeded");
    ms.retry_after_ms = Some(600);
    ms.retry_after = Some("30".into());
    llm.fail_next_with(ms);
    let mut secs = FakeFailure::new(503, "server_error");
    secs.retry_after = Some("0.8".into());
    llm.fail_next_with(secs);

    openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers").expect("completion");

    let at = llm.arrival_times();
    assert_eq!(at.len(), 3);
    // Lower bounds only: the client may never retry sooner than the server asked.
    assert!(at[1] - at[0] >= Duration::from_millis(600), "retry-after-ms not honoured");
    assert!(at[1] - at[0] < Duration::from_secs(30), "retry-after used although retry-after-ms was set");
    assert!(at[2] - at[1] >= Duration::from_millis(800), "retry-after not honoured");
}

#[actix_rt::test]
async fn a_retry_after_beyond_the_cap_gives_up_at_once() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 2);
    let mut f = FakeFailure::new(429, "rate_limit_exceeded");
    f.retry_after = Some("600".into());
    llm.fail_next_with(f);

    let result = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers");

    assert!(result.is_err());
    assert_eq!(llm.requests().len(), 1);
}

#[actix_rt::test]
async fn a_hung_request_times_out_and_is_retried() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 1);
    llm.delay_next(Duration::from_secs(5));

    let answer = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers");

    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(retry_counts(&llm), vec!["0", "1"]);
}

#[actix_rt::test]
async fn a_dropped_connection_is_retried() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 1);
    llm.drop_next();

    let answer = openai.send(ask(None)).timeout(DEADLINE).await.expect("actor answers");

    assert!(answer.is_ok(), "{answer:?}");
    assert_eq!(llm.requests().len(), 2);
}

#[actix_rt::test]
async fn a_sample_stream_arrives_in_pieces_and_as_a_whole_answer_with_usage() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 0);
    llm.stream_next_raw(sample_stream("stream.text.sse"));
    let (tx, mut rx) = mpsc::unbounded_channel();

    let answer =
        openai.send(ask(Some(tx))).timeout(DEADLINE).await.expect("actor answers").expect("completion");

    let mut pieces = Vec::new();
    while let Ok(p) = rx.try_recv() {
        pieces.push(p);
    }
    assert!(pieces.len() > 10, "the answer arrived in pieces");
    assert_eq!(pieces.concat(), answer.content);
    assert!(answer.content.starts_with("Quit Outlook, then open Keychain Access"));
    assert_eq!(answer.finish_reason, "stop");
    assert_eq!((answer.usage.prompt_tokens, answer.usage.completion_tokens), (58, 31));
    assert_eq!(answer.model, "gpt-4o-mini-2024-07-18");
    let request = &llm.requests()[0];
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"]["include_usage"], true);
}

#[actix_rt::test]
async fn a_sample_length_stream_is_a_truncated_answer() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 0);
    llm.stream_next_raw(sample_stream("stream.finish_length.sse"));
    let (tx, _rx) = mpsc::unbounded_channel();

    let answer =
        openai.send(ask(Some(tx))).timeout(DEADLINE).await.expect("actor answers").expect("completion");

    assert_eq!(answer.finish_reason, "length");
    assert_eq!(answer.content, "Restart the");
}

#[actix_rt::test]
async fn a_stream_that_fails_before_any_text_is_retried() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 2);
    llm.break_next_stream_after(0);
    let (tx, mut rx) = mpsc::unbounded_channel();

    let answer =
        openai.send(ask(Some(tx))).timeout(DEADLINE).await.expect("actor answers").expect("completion");

    assert_eq!(llm.requests().len(), 2);
    let mut pieces = Vec::new();
    while let Ok(p) = rx.try_recv() {
        pieces.push(p);
    }
    assert_eq!(pieces.concat(), answer.content, "no text from the failed attempt leaked into the answer");
}

#[actix_rt::test]
async fn a_stream_that_fails_after_text_went_out_is_not_retried() {
    let llm = fake().await;
    let (openai, _) = openai_actor(&llm, 2);
    llm.break_next_stream_after(2);
    let (tx, mut rx) = mpsc::unbounded_channel();

    let result = openai.send(ask(Some(tx))).timeout(DEADLINE).await.expect("actor answers");

    assert!(matches!(result, Err(OpenAiError::Stream { .. })), "{result:?}");
    assert_eq!(llm.requests().len(), 1);
    assert!(rx.try_recv().is_ok(), "the first pieces went out");
}

//! OpenAiActor: the shared Chat Completions caller. It keeps calls within a tokens-per-minute
//! budget and a concurrency bound, retries like the official client (see
//! [`crate::openai::retry`]), streams answers when asked, and accounts tokens and cost per call
//! for operators ([`LlmMeter`], `GET /metrics`, one log line per call with counts only).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{mpsc, Semaphore};

use crate::openai::budget::TokenBudget;
use crate::openai::cost::PriceTable;
use crate::openai::meter::LlmMeter;
use crate::openai::retry::{self, Decision};
use crate::openai::{ChatMessage, ChatRequest, Client, Completion, OpenAiError};

/// Ask the model for one answer.
pub struct Complete {
    pub messages: Vec<ChatMessage>,
    /// Prompt tokens as counted when the prompt was built, for the per-minute budget.
    pub prompt_tokens: u64,
    /// Where pieces of the answer go as they are written (a streamed call); `None` asks for one
    /// plain response. Once a piece went out, a failure is not retried.
    pub deltas: Option<mpsc::UnboundedSender<String>>,
    /// Overrides `[openai] max_completion_tokens` (short classifications).
    pub max_completion_tokens: Option<u32>,
    /// Overrides `[openai] temperature`.
    pub temperature: Option<f64>,
}

impl Complete {
    /// A plain answer with the configured limits.
    pub fn answer(messages: Vec<ChatMessage>, prompt_tokens: u64) -> Complete {
        Complete { messages, prompt_tokens, deltas: None, max_completion_tokens: None, temperature: None }
    }
}

impl Message for Complete {
    type Result = Result<Completion, OpenAiError>;
}

/// Request settings that do not change per call.
#[derive(Debug, Clone)]
pub struct OpenAiParams {
    pub model: String,
    pub temperature: f64,
    pub max_completion_tokens: u32,
    pub max_concurrency: usize,
    pub max_retries: u32,
    /// 0: no per-minute budget.
    pub tokens_per_minute: u64,
    pub prices: PriceTable,
}

pub struct OpenAiActor {
    client: Client,
    params: OpenAiParams,
    permits: Rc<Semaphore>,
    budget: TokenBudget,
    meter: Arc<LlmMeter>,
}

impl OpenAiActor {
    pub fn new(client: Client, params: OpenAiParams, meter: Arc<LlmMeter>) -> OpenAiActor {
        OpenAiActor {
            permits: Rc::new(Semaphore::new(params.max_concurrency.max(1))),
            budget: TokenBudget::new(params.tokens_per_minute),
            client,
            params,
            meter,
        }
    }
}

impl Actor for OpenAiActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// A call ended: its budget reservation is settled with the tokens it really used.
#[derive(Message)]
#[rtype(result = "()")]
struct Settle {
    reservation: u64,
    tokens: u64,
}

impl Handler<Settle> for OpenAiActor {
    type Result = ();

    fn handle(&mut self, s: Settle, _: &mut Self::Context) {
        self.budget.settle(s.reservation, s.tokens);
    }
}

impl Handler<Complete> for OpenAiActor {
    type Result = ResponseFuture<Result<Completion, OpenAiError>>;

    fn handle(&mut self, msg: Complete, ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        let permits = self.permits.clone();
        let meter = self.meter.clone();
        let prices = self.params.prices.clone();
        let me = ctx.address();
        let max_completion_tokens = msg.max_completion_tokens.unwrap_or(self.params.max_completion_tokens);
        let estimate = msg.prompt_tokens + u64::from(max_completion_tokens);
        let reservation = self.budget.reserve(Instant::now(), estimate);
        let request = ChatRequest {
            model: self.params.model.clone(),
            messages: msg.messages,
            temperature: msg.temperature.unwrap_or(self.params.temperature),
            max_completion_tokens,
            stream: false,
            stream_options: None,
        };
        let max_retries = self.params.max_retries;
        let deltas = msg.deltas;
        Box::pin(async move {
            let wait = reservation.start_at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "completion waits for the tokens-per-minute budget"
                );
                actix_rt::time::sleep(wait).await;
            }
            // The semaphore is never closed, so acquiring only waits.
            let _permit =
                permits.acquire().await.map_err(|_| OpenAiError::Transport("shutting down".into()))?;
            let started = Instant::now();
            let streamed = deltas.is_some();
            let handed_out = Cell::new(false);
            let mut retries = 0;
            let result = loop {
                let attempt = match &deltas {
                    Some(tx) => {
                        client
                            .complete_stream(&request, retries, |piece| {
                                handed_out.set(true);
                                // The receiver may have gone (thread stopped); the answer is
                                // still accounted for.
                                let _ = tx.send(piece.to_string());
                            })
                            .await
                    }
                    None => client.complete(&request, retries).await,
                };
                let e = match attempt {
                    Ok(c) => break Ok(c),
                    Err(e) => e,
                };
                let decision = if handed_out.get() {
                    Decision::GiveUp
                } else {
                    retry::decide(&e, retries, max_retries, fastrand::f64())
                };
                match decision {
                    Decision::RetryAfter(wait) => {
                        tracing::warn!(
                            error = %e,
                            retries,
                            wait_ms = wait.as_millis() as u64,
                            "completion will be retried"
                        );
                        meter.record_retry();
                        retries += 1;
                        actix_rt::time::sleep(wait).await;
                    }
                    Decision::GiveUp => break Err(e),
                }
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            meter.seconds.observe(started.elapsed().as_secs_f64());
            match &result {
                Ok(c) => {
                    let model = if c.model.is_empty() { request.model.as_str() } else { c.model.as_str() };
                    let cost_usd = prices.cost_usd(model, &c.usage);
                    meter.record_success(&c.usage, cost_usd, streamed);
                    me.do_send(Settle { reservation: reservation.id, tokens: c.usage.total() });
                    tracing::info!(
                        model = %model,
                        prompt_tokens = c.usage.prompt_tokens,
                        cached_tokens = c.usage.cached_tokens,
                        completion_tokens = c.usage.completion_tokens,
                        cost_usd,
                        finish_reason = %c.finish_reason,
                        answer_len = c.content.len(),
                        streamed,
                        elapsed_ms,
                        retries,
                        "completion"
                    );
                }
                Err(e) => {
                    meter.record_failure();
                    me.do_send(Settle { reservation: reservation.id, tokens: 0 });
                    tracing::warn!(error = %e, code = %e.kind(), streamed, elapsed_ms, retries, "completion failed");
                }
            }
            result
        })
    }
}

/// How long a caller should wait for [`Complete`] at most: every attempt timing out, with the
/// longest retry waits in between.
pub fn worst_case(timeout: Duration, max_retries: u32) -> Duration {
    let attempts = max_retries + 1;
    let waits = retry::MAX_RETRY_AFTER * max_retries;
    timeout * attempts + waits + Duration::from_secs(5)
}

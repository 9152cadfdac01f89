//! OpenAiActor: the shared Chat Completions caller. It bounds concurrency, retries like the
//! official client (408/409/429/5xx, timeouts, connection errors; `retry-after-ms`, then
//! `retry-after`, up to two minutes; otherwise capped exponential backoff with jitter) and
//! counts tokens.

use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::Semaphore;

use crate::openai::{ChatMessage, ChatRequest, Client, Completion, OpenAiError};

/// Ask the model for one answer.
pub struct Complete {
    pub messages: Vec<ChatMessage>,
    /// Overrides `[openai] max_completion_tokens` (short classifications).
    pub max_completion_tokens: Option<u32>,
    /// Overrides `[openai] temperature`.
    pub temperature: Option<f64>,
}

impl Complete {
    /// An answer with the configured limits.
    pub fn answer(messages: Vec<ChatMessage>) -> Complete {
        Complete { messages, max_completion_tokens: None, temperature: None }
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
}

const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

pub struct OpenAiActor {
    client: Client,
    params: OpenAiParams,
    permits: Rc<Semaphore>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl OpenAiActor {
    pub fn new(client: Client, params: OpenAiParams) -> OpenAiActor {
        OpenAiActor {
            permits: Rc::new(Semaphore::new(params.max_concurrency.max(1))),
            client,
            params,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
    }
}

impl Actor for OpenAiActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// Token totals, for operators.
#[derive(Message)]
#[rtype(result = "(u64, u64)")]
pub struct Usage;

impl Handler<Usage> for OpenAiActor {
    type Result = MessageResult<Usage>;

    fn handle(&mut self, _: Usage, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.prompt_tokens, self.completion_tokens))
    }
}

/// Added to the totals once a call finishes.
#[derive(Message)]
#[rtype(result = "()")]
struct Spent {
    prompt: u64,
    completion: u64,
}

impl Handler<Spent> for OpenAiActor {
    type Result = ();

    fn handle(&mut self, s: Spent, _: &mut Self::Context) {
        self.prompt_tokens += s.prompt;
        self.completion_tokens += s.completion;
    }
}

impl Handler<Complete> for OpenAiActor {
    type Result = ResponseFuture<Result<Completion, OpenAiError>>;

    fn handle(&mut self, msg: Complete, ctx: &mut Self::Context) -> Self::Result {
        let client = self.client.clone();
        let permits = self.permits.clone();
        let me = ctx.address();
        let request = ChatRequest {
            model: self.params.model.clone(),
            messages: msg.messages,
            temperature: msg.temperature.unwrap_or(self.params.temperature),
            max_completion_tokens: msg.max_completion_tokens.unwrap_or(self.params.max_completion_tokens),
        };
        let max_retries = self.params.max_retries;
        Box::pin(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit =
                permits.acquire().await.map_err(|_| OpenAiError::Transport("shutting down".into()))?;
            let mut retries = 0;
            loop {
                let started = std::time::Instant::now();
                match client.complete(&request, retries).await {
                    Ok(c) => {
                        tracing::info!(
                            model = %request.model,
                            prompt_tokens = c.prompt_tokens,
                            completion_tokens = c.completion_tokens,
                            finish_reason = %c.finish_reason,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            retries,
                            "completion"
                        );
                        me.do_send(Spent { prompt: c.prompt_tokens, completion: c.completion_tokens });
                        return Ok(c);
                    }
                    Err(e) if e.is_retryable() && retries < max_retries => {
                        let wait = match &e {
                            OpenAiError::Status { retry_after: Some(d), .. } if *d > MAX_RETRY_AFTER => {
                                return Err(e)
                            }
                            OpenAiError::Status { retry_after: Some(d), .. } if !d.is_zero() => *d,
                            _ => super::slack_api::backoff(retries + 1),
                        };
                        tracing::warn!(error = %e, retries, wait_ms = wait.as_millis() as u64, "completion will be retried");
                        retries += 1;
                        actix_rt::time::sleep(wait).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retries, "completion failed");
                        return Err(e);
                    }
                }
            }
        })
    }
}

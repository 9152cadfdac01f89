//! ReplyActor: one per LLM answer. It asks the OpenAiActor for the answer as soon as it starts
//! (so the answer is written while the thread still waits for Assist), and posts it when the
//! thread releases it:
//!
//! - **streamed** (`slack.stream_replies`, and the workspace accepts it): `chat.startStream`
//!   with what is written so far, `chat.appendStream` at most every [`APPEND_INTERVAL`] and only
//!   in whole words, then `chat.stopStream` with the rest, the footer and buttons as blocks, and
//!   the thread state as metadata. An answer already finished when released is posted at once.
//! - **posted** otherwise: one `chat.postMessage` in mrkdwn (split at paragraphs when long).
//!
//! A workspace that refuses `chat.startStream` switches streaming off for the process (nothing
//! was visible yet, so the answer is posted instead). When the LLM fails after its retries, the
//! employee gets the fallback the thread supplied (offline steps, a note that the AI service is
//! unavailable, the way to reach a person). The thread hears how it ended from
//! [`ReplyFinished`]. Logs carry ids, lengths and codes only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use super::openai::{worst_case, Complete};
use super::SharedServices;
use crate::conversation::ReplyOutcome;
use crate::openai::{ChatMessage, Completion, OpenAiError};
use crate::slack::client::{StreamStart, StreamStop};
use crate::slack::format::{markdown_to_mrkdwn, neutralise_markdown, split_message, MAX_MESSAGE_CHARS};
use crate::slack::{Blocks, ChannelId, SlackApi, SlackError, Ts, UserId};
use crate::state::{AnswerUsage, Metadata, ThreadState};

/// Shortest gap between two `chat.appendStream` calls of one stream (the method is Tier 4,
/// ~100 per minute per workspace, shared by every live stream).
pub const APPEND_INTERVAL: Duration = Duration::from_secs(2);
/// Fewest new characters worth an append.
const MIN_APPEND_CHARS: usize = 80;
/// `markdown_text` limit per call.
const MAX_MARKDOWN_CHARS: usize = 12_000;
/// How often a released, streaming reply checks whether to append.
const TICK: Duration = Duration::from_millis(250);

/// Whether this process may still try to stream. Shared by every reply; a refusal from the
/// workspace turns it off until restart.
#[derive(Debug, Default)]
pub struct StreamSwitch {
    refused: AtomicBool,
}

impl StreamSwitch {
    pub fn allowed(&self) -> bool {
        !self.refused.load(Ordering::Relaxed)
    }

    fn refuse(&self) -> bool {
        !self.refused.swap(true, Ordering::Relaxed)
    }
}

/// Where and how to post, given by the thread when the answer may appear.
#[derive(Debug, Clone)]
pub struct Release {
    pub channel: ChannelId,
    pub thread_ts: Ts,
    /// The requester: streams in channels need `recipient_user_id`.
    pub recipient: UserId,
    /// mrkdwn shown under the answer (how to continue).
    pub footer: String,
    /// Blocks attached under the answer (buttons), if any.
    pub actions: Option<Blocks>,
    /// The thread state, written as message metadata on the reply.
    pub metadata: ThreadState,
    /// mrkdwn posted instead when the LLM fails.
    pub fallback: String,
    /// The employee's message it answers: posts wait in the order employees wrote.
    pub since: Option<Ts>,
}

impl Message for Release {
    type Result = ();
}

/// Drop this answer (the question changed).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel;

/// How an answer ended, sent to the thread that asked for it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ReplyFinished {
    /// The id the thread gave this answer.
    pub id: u64,
    pub outcome: ReplyOutcome,
}

/// What to ask and whom to tell.
pub struct ReplyRequest {
    pub id: u64,
    pub messages: Vec<ChatMessage>,
    pub prompt_tokens: u64,
    pub notify: Recipient<ReplyFinished>,
}

enum Llm {
    Running,
    Done(Completion),
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
enum Stream {
    /// Nothing posted yet.
    Idle,
    /// `chat.startStream` succeeded.
    Open { ts: Ts, last_append: Instant },
    /// Streaming is not used for this answer (off, refused, or a call failed before anything
    /// was visible).
    Off,
    /// A call failed after text was visible; the rest goes out with stop (or a new post).
    Broken { ts: Ts },
}

pub struct ReplyActor {
    s: SharedServices,
    id: u64,
    notify: Recipient<ReplyFinished>,
    request: Option<(Vec<ChatMessage>, u64)>,
    /// Everything the model wrote so far (Markdown).
    answer: String,
    /// Bytes of `answer` already sent to Slack.
    published: usize,
    llm: Llm,
    release: Option<Release>,
    stream: Stream,
    /// A Slack call is in flight.
    busy: bool,
    finished: bool,
}

impl ReplyActor {
    pub fn new(s: SharedServices, request: ReplyRequest) -> ReplyActor {
        let streaming =
            s.settings.slack.stream_replies && s.streaming.allowed() && !s.identity.team_id.is_empty();
        ReplyActor {
            s,
            id: request.id,
            notify: request.notify,
            request: Some((request.messages, request.prompt_tokens)),
            answer: String::new(),
            published: 0,
            llm: Llm::Running,
            release: None,
            stream: if streaming { Stream::Idle } else { Stream::Off },
            busy: false,
            finished: false,
        }
    }

    fn streaming(&self) -> bool {
        matches!(self.stream, Stream::Idle | Stream::Open { .. })
    }

    /// Publishes what is ready: starts the stream, appends, or finishes.
    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.finished || self.release.is_none() {
            return;
        }
        if !matches!(self.llm, Llm::Running) {
            self.finish(ctx);
            return;
        }
        let pending = self.pending_words();
        match &self.stream {
            Stream::Idle if !pending.trim().is_empty() => self.start_stream(pending, ctx),
            Stream::Open { ts, last_append }
                if pending.len() >= MIN_APPEND_CHARS && last_append.elapsed() >= APPEND_INTERVAL =>
            {
                let ts = ts.clone();
                self.append(ts, pending, ctx);
            }
            _ => {}
        }
    }

    /// Unpublished text up to the last whitespace, so words and mention syntax are never split.
    fn pending_words(&self) -> String {
        let rest = &self.answer[self.published..];
        let cut = rest.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0);
        let cut = floor_char_boundary(rest, cut.min(MAX_MARKDOWN_CHARS));
        rest[..cut].to_string()
    }

    fn start_stream(&mut self, text: String, ctx: &mut Context<Self>) {
        let Some(r) = self.release.clone() else { return };
        self.busy = true;
        let len = text.len();
        let slack = self.s.slack.clone();
        let team = self.s.identity.team_id.clone();
        let start = r.clone();
        let fut = async move {
            slack
                .start_stream(StreamStart {
                    channel: &start.channel,
                    thread_ts: &start.thread_ts,
                    recipient_user: &start.recipient,
                    recipient_team: &team,
                    markdown_text: &neutralise_markdown(&text),
                })
                .await
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            match result {
                Ok(ts) => {
                    tracing::debug!(thread = %r.thread_ts, ts = %ts, len, "stream started");
                    act.published += len;
                    act.stream = Stream::Open { ts, last_append: Instant::now() };
                }
                Err(SlackError::NoRoom { .. }) => {
                    tracing::debug!(thread = %r.thread_ts, "the stream budget is spent now; the answer will be posted whole");
                    act.stream = Stream::Off;
                }
                Err(e) => {
                    if !e.is_transient() && act.s.streaming.refuse() {
                        tracing::warn!(error = %e, "the workspace refused chat.startStream; replies are posted whole from now on");
                    } else {
                        tracing::warn!(thread = %r.thread_ts, error = %e, "stream not started; the answer will be posted whole");
                    }
                    act.stream = Stream::Off;
                }
            }
            act.step(ctx);
        }));
    }

    fn append(&mut self, ts: Ts, text: String, ctx: &mut Context<Self>) {
        let Some(r) = self.release.clone() else { return };
        self.busy = true;
        let len = text.len();
        let slack = self.s.slack.clone();
        let at = ts.clone();
        let fut = async move { slack.append_stream(&r.channel, &at, &neutralise_markdown(&text)).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            match result {
                Ok(_) => {
                    act.published += len;
                    act.stream = Stream::Open { ts, last_append: Instant::now() };
                }
                Err(e) => {
                    tracing::warn!(thread = %r.thread_ts, error = %e, "stream append failed; the rest follows at the end");
                    act.stream = Stream::Broken { ts };
                }
            }
            act.step(ctx);
        }));
    }

    /// The LLM is done (or failed) and the thread released the answer: post what is left.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        let Some(r) = self.release.clone() else { return };
        self.busy = true;
        let slack = self.s.slack.clone();
        let id = self.id;
        let notify = self.notify.clone();
        let stream = self.stream.clone();
        let rest = self.answer[self.published..].to_string();
        let answered = match &self.llm {
            Llm::Done(c) => Some(c.content.clone()),
            _ => None,
        };
        if answered.is_none() {
            self.s.llm_meter.record_fallback();
        }
        // The answer's usage goes on the message that holds it, for `itbot report`.
        let mut r = r;
        if let Llm::Done(c) = &self.llm {
            let cost_usd = self.s.settings.openai.prices.cost_usd(&c.model, &c.usage);
            r.metadata.llm = Some(answer_usage(c, cost_usd));
        }
        let services = self.s.clone();
        let fut = async move {
            let outcome = match answered {
                Some(markdown) => {
                    let posted = match stream {
                        Stream::Open { ts, .. } | Stream::Broken { ts } => {
                            stop_stream(&slack, &r, &ts, &rest).await
                        }
                        Stream::Idle | Stream::Off => {
                            post_whole(&slack, &r, &markdown_to_mrkdwn(markdown.trim())).await
                        }
                    };
                    ReplyOutcome::Answered { markdown, posted }
                }
                None => {
                    let mut posted = Vec::new();
                    if let Stream::Open { ts, .. } | Stream::Broken { ts } = &stream {
                        // The answer stopped half-way: close it with a note, then the fallback.
                        let cut = Release { footer: String::new(), actions: None, ..r.clone() };
                        let note = format!("{rest}\n\n_(The AI service stopped mid-answer.)_");
                        posted.extend(stop_stream(&slack, &cut, ts, &note).await);
                    }
                    posted.extend(post_whole(&slack, &r, &r.fallback).await);
                    ReplyOutcome::FellBack { mrkdwn: r.fallback.clone(), posted }
                }
            };
            // Into the replicas' copy with its state (a streamed answer's own events carry none).
            let (text, posted) = match &outcome {
                ReplyOutcome::Answered { markdown, posted } => (markdown_to_mrkdwn(markdown.trim()), posted),
                ReplyOutcome::FellBack { mrkdwn, posted } => (mrkdwn.clone(), posted),
            };
            if let Some(ts) = posted.last() {
                let own = crate::slack::events::Message {
                    channel: r.channel.clone(),
                    ts: ts.clone(),
                    thread_ts: Some(r.thread_ts.clone()),
                    user: Some(services.identity.user_id.clone()),
                    bot_id: services.identity.bot_id.clone(),
                    subtype: None,
                    text: crate::telemetry::UserText::new(text),
                    blocks_text: crate::telemetry::UserText::new(String::new()),
                };
                super::shared::record(&services, &own, Some(&Metadata::from(r.metadata.clone())));
            }
            notify.do_send(ReplyFinished { id, outcome });
        };
        self.finished = true;
        ctx.spawn(fut.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

impl Actor for ReplyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(16);
        let Some((messages, prompt_tokens)) = self.request.take() else { return };
        let Some(openai) = self.s.openai.clone() else {
            self.llm = Llm::Failed;
            return;
        };
        let deltas = if self.streaming() {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|piece| (piece, rx))
            }));
            Some(tx)
        } else {
            None
        };
        let o = &self.s.settings.openai;
        let patience = worst_case(Duration::from_secs(o.timeout_secs), o.max_retries);
        let fut = async move {
            openai
                .send(Complete { deltas, ..Complete::answer(messages, prompt_tokens) })
                .timeout(patience)
                .await
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            act.llm = match result {
                Ok(Ok(c)) => {
                    // A streamed answer arrives piece by piece; the whole text is the reference.
                    act.answer = c.content.clone();
                    act.published = floor_char_boundary(&act.answer, act.published);
                    Llm::Done(c)
                }
                Ok(Err(OpenAiError::Refused)) | Ok(Err(_)) => Llm::Failed,
                Err(e) => {
                    tracing::warn!(error = %e, "the LLM did not answer in time");
                    Llm::Failed
                }
            };
            act.step(ctx);
        }));
        ctx.run_interval(TICK, |act, ctx| act.step(ctx));
    }
}

impl StreamHandler<String> for ReplyActor {
    fn handle(&mut self, piece: String, ctx: &mut Context<Self>) {
        if matches!(self.llm, Llm::Running) {
            self.answer.push_str(&piece);
            self.step(ctx);
        }
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The sender closes when the call ends; the result message decides what happens next.
    }
}

impl Handler<Release> for ReplyActor {
    type Result = ();

    fn handle(&mut self, release: Release, ctx: &mut Self::Context) {
        if self.release.is_none() {
            self.release = Some(release);
            self.step(ctx);
        }
    }
}

impl Handler<Cancel> for ReplyActor {
    type Result = ();

    fn handle(&mut self, _: Cancel, ctx: &mut Self::Context) {
        if self.published == 0 && !self.busy && !self.finished {
            ctx.stop();
        }
    }
}

/// Ends a stream with the unpublished text, the footer and buttons, and the metadata. If the
/// stream cannot be stopped (Slack ends streams after a few minutes), the rest is posted as a
/// new message so nothing is lost. Returns the messages that hold the answer.
async fn stop_stream(slack: &SlackApi, r: &Release, ts: &Ts, rest: &str) -> Vec<Ts> {
    let footer = if r.footer.is_empty() { Blocks::default() } else { Blocks::context(&r.footer) };
    let blocks = footer.then(&actions(r));
    let metadata = Metadata::from(r.metadata.clone());
    let tail = floor_char_boundary(rest, MAX_MARKDOWN_CHARS);
    let markdown = (!rest.trim().is_empty()).then(|| neutralise_markdown(&rest[..tail]));
    let stop = StreamStop {
        channel: &r.channel,
        ts,
        markdown_text: markdown.as_deref(),
        blocks: (!blocks.is_empty()).then_some(&blocks),
        metadata: Some(&metadata),
    };
    match slack.stop_stream(stop).await {
        Ok(_) => {
            tracing::debug!(thread = %r.thread_ts, ts = %ts, rest_len = rest.len(), "stream stopped");
            vec![ts.clone()]
        }
        Err(e) => {
            tracing::warn!(thread = %r.thread_ts, error = %e, "stream not stopped; posting the rest as a new message");
            let rest = markdown_to_mrkdwn(rest.trim());
            let mut posted = vec![ts.clone()];
            posted.extend(post_whole(slack, r, &rest).await);
            posted
        }
    }
}

/// Posts `mrkdwn` (split when long) with the footer; metadata and buttons go on the last part.
/// Returns the parts posted.
async fn post_whole(slack: &SlackApi, r: &Release, mrkdwn: &str) -> Vec<Ts> {
    let body = mrkdwn.trim();
    let text = match (body.is_empty(), r.footer.is_empty()) {
        (true, _) => r.footer.clone(),
        (false, true) => body.to_string(),
        (false, false) => format!("{body}\n\n{}", r.footer),
    };
    let parts = split_message(&text, MAX_MESSAGE_CHARS);
    let last = parts.len().saturating_sub(1);
    let mut posted = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let is_last = i == last;
        let buttons = if is_last { actions(r) } else { Blocks::default() };
        let blocks = (!buttons.is_empty()).then(|| Blocks::sections(part).then(&buttons));
        let metadata = is_last.then(|| Metadata::from(r.metadata.clone()));
        // `post_blocks` tags the post so a retried call cannot post it twice.
        match slack
            .post_answer(&r.channel, &r.thread_ts, part, blocks.as_ref(), metadata.as_ref(), r.since.as_ref())
            .await
        {
            Ok(ts) => posted.push(ts),
            Err(e) => {
                tracing::error!(thread = %r.thread_ts, error = %e, part = i, "reply not posted");
                return posted;
            }
        }
    }
    posted
}

/// What one answer cost, as written in the thread state of the message holding it.
pub fn answer_usage(c: &Completion, cost_usd: f64) -> AnswerUsage {
    AnswerUsage {
        model: c.model.clone(),
        prompt_tokens: c.usage.prompt_tokens,
        cached_tokens: c.usage.cached_tokens,
        completion_tokens: c.usage.completion_tokens,
        cost_usd: (cost_usd * 1e6).round() / 1e6,
    }
}

/// The buttons under the answer, if any. With them, the text goes in sections above (`text`
/// stays the notification fallback).
fn actions(r: &Release) -> Blocks {
    r.actions.clone().unwrap_or_default()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_switches_streaming_off_once() {
        let s = StreamSwitch::default();
        assert!(s.allowed());
        assert!(s.refuse());
        assert!(!s.refuse());
        assert!(!s.allowed());
    }
}

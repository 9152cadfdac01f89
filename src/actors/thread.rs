//! ThreadActor: one per ticket thread. It owns the requester, the Assist card, the conversation,
//! the failed-attempt count and the phase of the ticket, and it is the only place that decides
//! what the bot says in the thread.
//!
//! The phases and what moves between them:
//!
//! | phase | on | does | next |
//! |---|---|---|---|
//! | `Preparing` | answer ready and (Assist posted or `assist.wait_secs` over) | posts the first answer | `Helping` (technical) or `Acknowledged` (access, change) |
//! | `Preparing` | root edited | re-triages, prepares again | `Preparing` |
//! | `Helping` | "that worked" | closing reply, ✅ | `Resolved` |
//! | `Helping` | "still broken" | counts an attempt; a different approach, or at `escalation.max_failed_attempts` an offer of a person (or, with `escalation.auto`, the escalation) | `Helping` / `OfferedHuman` / `Escalated` |
//! | `Helping`, `OfferedHuman` | anything else | the next answer with the thread as context | same |
//! | `OfferedHuman` | "still broken" | escalates | `Escalated` |
//! | any but `Escalated` | "can a human help", 👎 by the requester on a bot message, "Get a human" | escalates (once per thread, checked against Slack first) | `Escalated` |
//! | `Acknowledged`, `Escalated`, `HumanTookOver` | requester writes without mentioning the bot | nothing: a person has it | same |
//! | any | the assignee or IT staff write | goes quiet | `HumanTookOver` |
//! | `HumanTookOver`, `Escalated`, `Acknowledged` | requester @mentions the bot | answers again (never escalates twice) | `Helping` |
//! | `Resolved` | requester writes again | reads it as a new follow-up | `Helping` |
//!
//! One turn runs at a time (LLM call, Slack post); follow-ups that arrive meanwhile wait in a
//! queue. Waits are timers, never sleeps. Every reply carries the thread's state as Slack message
//! metadata, and [`ThreadActor::resume`] rebuilds the actor from it after a restart or on another
//! replica.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use super::openai::Complete;
use super::outage::{Answer, Reported};
use super::reply::{Cancel, Release, ReplyActor, ReplyFinished, ReplyOutcome, ReplyRequest};
use super::router::{LoadedThread, RouterActor, ThreadStopped};
use super::tickets::{FindSimilar, Forget, Record};
use super::SharedServices;
use crate::assist::AssistCard;
use crate::compose;
use crate::openai::{ChatMessage, Role};
use crate::outage::Verdict;
use crate::prompt::{PromptInput, Speaker, Turn};
use crate::redact::redact;
use crate::slack::events::Message as SlackMessage;
use crate::slack::format::{markdown_to_mrkdwn, split_message, MAX_MESSAGE_CHARS};
use crate::slack::{ChannelId, SlackError, Ts, UserId};
use crate::telemetry::UserText;
use crate::tickets::{Ending, PastTicket, Similar};
use crate::triage::{Category, Outcome, Triage};

/// Reactions that mean "this did not help".
pub const THUMBS_DOWN: &[&str] = &["-1", "thumbsdown"];
/// Reactions that mean "this helped" (counted as feedback only).
pub const THUMBS_UP: &[&str] = &["+1", "thumbsup"];

/// The metadata event type of the bot's state on its replies.
pub const STATE_EVENT_TYPE: &str = "itbot_thread_state";

/// What the router tells a thread.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ThreadEvent {
    /// A reply in the thread by anyone but the bot and Assist.
    Reply { message: SlackMessage, mentioned: bool },
    /// Assist's ticket card.
    Assist(AssistCard),
    /// The root message was edited.
    RootEdited(UserText),
    /// The root message was deleted.
    RootDeleted,
    /// A thumbs-down on a message of the thread.
    Reaction { user: UserId, reaction: String, ts: Ts },
    /// Someone pressed "Get a human" on one of the bot's messages.
    GetHuman { user: UserId, message_ts: Ts },
    /// Someone pressed 👍 (`up`) or 👎 under one of the bot's answers.
    Feedback { user: UserId, message_ts: Ts, up: bool },
    /// Stop now (evicted).
    Stop,
}

impl ThreadEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            ThreadEvent::Reply { .. } => "reply",
            ThreadEvent::Assist(_) => "assist",
            ThreadEvent::RootEdited(_) => "root_edited",
            ThreadEvent::RootDeleted => "root_deleted",
            ThreadEvent::Reaction { .. } => "reaction",
            ThreadEvent::GetHuman { .. } => "get_human",
            ThreadEvent::Feedback { .. } => "feedback",
            ThreadEvent::Stop => "stop",
        }
    }
}

/// Shutdown: answer what is being prepared now (without waiting longer for Assist) and say
/// whether a turn is still in flight.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain;

/// Where the ticket is in its life (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Preparing,
    Helping,
    Acknowledged,
    OfferedHuman,
    Resolved,
    Escalated,
    HumanTookOver,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Helping => "helping",
            Phase::Acknowledged => "acknowledged",
            Phase::OfferedHuman => "offered_human",
            Phase::Resolved => "resolved",
            Phase::Escalated => "escalated",
            Phase::HumanTookOver => "human_took_over",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "preparing" => Phase::Preparing,
            "helping" => Phase::Helping,
            "acknowledged" => Phase::Acknowledged,
            "offered_human" => Phase::OfferedHuman,
            "resolved" => Phase::Resolved,
            "escalated" => Phase::Escalated,
            "human_took_over" => Phase::HumanTookOver,
            _ => return None,
        })
    }
}

/// The prepared first answer.
enum Draft {
    /// Not ready yet (the LLM is classifying or answering).
    Pending,
    /// Composed when posted, because it names the assignee.
    Acknowledgement,
    /// From the knowledge base, composed when posted (it names the ticket).
    Offline,
    /// Part of an outage declared in another thread: what to tell the requester instead.
    KnownIssue(String),
    /// The LLM's answer, converted to mrkdwn (empty for a thread resumed from Slack).
    Ready(String),
    /// The LLM is writing it; released to Slack when the first answer is due.
    Live(Addr<ReplyActor>),
}

/// What posting the offline answer instead of an LLM answer changes; applied only if the
/// fallback is used.
struct Fallback {
    tried: Vec<String>,
    gave_alternative: bool,
}

/// What a reply is, for posting: troubleshooting answers carry the "Get a human" button.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReplyKind {
    Answer,
    Plain,
}

const SECRET_WARNING: &str = "Heads up: your message looks like it contains a password, key or code. \
Please delete it and change (rotate) that credential now, since everyone in the channel can read it. \
I've left it out of everything I process.";

/// The most recent turns kept as LLM context.
const MAX_TURNS: usize = 12;

/// Tokens reserved for the one-word triage call in the per-minute budget.
const CLASSIFY_PROMPT_TOKENS: u64 = 120;

pub struct ThreadActor {
    s: SharedServices,
    router: Addr<RouterActor>,
    /// Distinguishes this actor from a later one on the same thread.
    actor_id: u64,
    channel: ChannelId,
    root: Ts,
    requester: UserId,
    question: UserText,
    triage: Triage,
    card: AssistCard,
    assist_seen: bool,
    wait_over: bool,
    draft: Draft,
    /// Bumped when the question changes, so a stale LLM result is discarded.
    draft_version: u32,
    /// The best article for the question, if any (offline answers, escalation brief): its index
    /// in the shared knowledge base, not a copy (a copy is ~3 KB in each of thousands of threads).
    article: Option<usize>,
    /// Whether the article's second approach was already given.
    gave_alternative: bool,
    /// The conversation as sent to the LLM (redacted; messages with secrets left out).
    conversation: Vec<(Role, String)>,
    /// Short descriptions of what the bot suggested, for the escalation brief.
    tried: Vec<String>,
    /// Similar past tickets, found when the first answer is prepared.
    similar: Vec<Similar>,
    /// The latest troubleshooting answer posted (the fix, if the requester confirms it).
    last_answer: Option<String>,
    /// How the ticket stands, as told to the past-ticket index.
    ending: Ending,
    failed_attempts: u32,
    escalated: bool,
    phase: Phase,
    /// The bot's messages in this thread (a 👎 counts only on these).
    bot_messages: HashSet<Ts>,
    /// A turn (LLM call, state check or post) is running.
    busy: bool,
    /// Follow-ups waiting for the running turn, with whether they mentioned the bot.
    queue: VecDeque<(SlackMessage, bool)>,
    idle: Option<SpawnHandle>,
    warned_about_secret: bool,
    /// The id of the latest LLM answer asked for; a finished answer with another id was cancelled.
    reply_seq: u64,
    /// What the offline answer would change, if the running LLM answer falls back to it.
    fallback: Option<Fallback>,
    /// 👎s on messages not known as the bot's while a post was in flight: a quick reaction can
    /// overtake the post's HTTP response. Checked when the post returns.
    early_reactions: Vec<(UserId, Ts)>,
    /// Feedback-button votes by message.
    votes: HashMap<Ts, Votes>,
    /// Whether this ticket was reported to outage detection yet.
    outage_checked: bool,
    /// The outage this ticket is part of: its first thread and the symptom.
    outage: Option<(Ts, String)>,
}

/// 👎s kept while a post is in flight, at most.
const MAX_EARLY_REACTIONS: usize = 8;
/// Messages of one thread whose feedback votes are kept, at most.
const MAX_VOTED_MESSAGES: usize = 32;

/// The feedback-button votes on one of the bot's messages. Slack keeps no count, so the bot
/// writes it into the message's own metadata (`feedback: {up, down}`) for `itbot report`.
#[derive(Default)]
struct Votes {
    /// Each voter's latest vote (true = 👍) since this actor started.
    by_user: HashMap<UserId, bool>,
    /// The message as Slack has it (text, blocks, metadata), read once; the counts it already
    /// held (from before a restart, or another replica) are the base.
    message: Option<Value>,
    base: (u64, u64),
    /// A write is in flight; `dirty` when votes changed meanwhile.
    writing: bool,
    dirty: bool,
}

impl Votes {
    fn counts(&self) -> (u64, u64) {
        let up = self.by_user.values().filter(|v| **v).count() as u64;
        let down = self.by_user.len() as u64 - up;
        (self.base.0 + up, self.base.1 + down)
    }
}

impl ThreadActor {
    /// A new ticket.
    pub fn new(
        s: SharedServices,
        router: Addr<RouterActor>,
        actor_id: u64,
        root: SlackMessage,
    ) -> ThreadActor {
        let triage = s.rules.classify(root.text.expose());
        ThreadActor {
            channel: root.channel.clone(),
            root: root.ts.clone(),
            // The router only starts threads for messages with an author.
            requester: root.user.clone().unwrap_or_else(|| UserId::from("")),
            question: root.text,
            triage,
            card: AssistCard::default(),
            assist_seen: false,
            wait_over: false,
            draft: Draft::Pending,
            draft_version: 0,
            article: None,
            gave_alternative: false,
            conversation: Vec::new(),
            tried: Vec::new(),
            similar: Vec::new(),
            last_answer: None,
            ending: Ending::Unknown,
            failed_attempts: 0,
            escalated: false,
            phase: Phase::Preparing,
            bot_messages: HashSet::new(),
            busy: false,
            queue: VecDeque::new(),
            idle: None,
            warned_about_secret: false,
            reply_seq: 0,
            fallback: None,
            early_reactions: Vec::new(),
            votes: HashMap::new(),
            outage_checked: false,
            outage: None,
            s,
            router,
            actor_id,
        }
    }

    /// A thread read back from Slack: resumes from the state on the bot's latest reply. `None`
    /// when the bot never answered it (not a ticket it holds).
    pub fn resume(
        s: SharedServices,
        loaded: LoadedThread,
    ) -> Option<impl FnOnce(Addr<RouterActor>, u64) -> ThreadActor> {
        let bot = s.identity.user_id.clone();
        // A root without a human author is not a ticket.
        loaded.root.user.as_ref()?;
        let state = loaded
            .replies
            .iter()
            .rev()
            .filter(|(m, _)| m.user.as_ref() == Some(&bot))
            .find_map(|(_, meta)| meta.as_ref().filter(|m| m["event_type"] == STATE_EVENT_TYPE))
            .map(|m| m["event_payload"].clone())?;

        Some(move |router: Addr<RouterActor>, actor_id: u64| {
            let mut t = ThreadActor::new(s, router, actor_id, loaded.root);
            let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_string);
            t.card.ticket = text("ticket");
            t.card.assignee = text("assignee").map(UserId);
            t.assist_seen = true;
            t.wait_over = true;
            t.failed_attempts = state.get("attempts").and_then(Value::as_u64).unwrap_or(0) as u32;
            t.escalated = state.get("escalated").and_then(Value::as_bool).unwrap_or(false);
            t.gave_alternative = state.get("gave_alternative").and_then(Value::as_bool).unwrap_or(false);
            if let Some(c) = text("category").and_then(|c| Category::parse(&c)) {
                t.triage.category = c;
            }
            t.tried = state
                .get("tried")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            t.article =
                text("article").and_then(|slug| t.s.kb.articles().iter().position(|a| a.slug == slug));
            t.outage = state.get("outage").and_then(|o| {
                Some((Ts::from(o.get("first")?.as_str()?), o.get("symptom")?.as_str()?.to_string()))
            });
            t.outage_checked = true;
            t.phase = text("phase").and_then(|p| Phase::parse(&p)).unwrap_or(Phase::Helping);
            if t.escalated {
                t.phase = Phase::Escalated;
            }
            t.draft = Draft::Ready(String::new());
            // The conversation so far, and whether a person from IT has written since.
            let question = t.question.clone();
            t.conversation =
                t.for_llm_quiet(question.expose()).into_iter().map(|q| (Role::User, q)).collect();
            for (m, _) in &loaded.replies {
                let author = m.user.as_ref();
                if author == Some(&bot) {
                    t.bot_messages.insert(m.ts.clone());
                    t.conversation.push((Role::Assistant, strip_footer(m.text.expose())));
                } else if author == Some(&t.requester) {
                    if let Some(text) = t.for_llm_quiet(m.text.expose()) {
                        t.conversation.push((Role::User, text));
                    }
                } else if author.is_some_and(|a| t.is_staff(a)) && m.bot_id.is_none() {
                    t.phase = Phase::HumanTookOver;
                }
            }
            t
        })
    }

    fn is_staff(&self, user: &UserId) -> bool {
        self.card.assignee.as_ref() == Some(user)
            || self.s.settings.escalation.it_staff.iter().any(|id| id == user.as_str())
    }

    /// (Re)starts the idle timer: `threads.idle_secs`, or `threads.settled_secs` once the ticket is
    /// settled (resolved, acknowledged, escalated or with a person) and nothing is in flight.
    /// Slack holds what a settled thread needs, so it leaves memory and resumes from Slack if
    /// anyone writes in it again.
    fn reset_idle(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
        let idle = Duration::from_secs(self.s.settings.threads.idle_secs);
        let settled = Duration::from_secs(self.s.settings.threads.settled_secs);
        let idle = if self.settled() { idle.min(settled) } else { idle };
        self.idle = Some(ctx.run_later(idle, |act, ctx| {
            if act.in_flight() {
                act.reset_idle(ctx);
                return;
            }
            tracing::debug!(thread = %act.root, phase = act.phase.as_str(), "thread idle; stopping");
            ctx.stop();
        }));
    }

    /// A turn, a queued follow-up or a feedback write is under way.
    fn in_flight(&self) -> bool {
        self.busy || !self.queue.is_empty() || self.votes.values().any(|v| v.writing)
    }

    fn settled(&self) -> bool {
        matches!(self.phase, Phase::Resolved | Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver)
            && !self.in_flight()
    }

    fn set_phase(&mut self, phase: Phase) {
        if self.phase != phase {
            let m = &self.s.health.metrics;
            match phase {
                Phase::HumanTookOver => m.takeovers.inc(),
                Phase::Resolved => m.resolutions.inc(),
                _ => 0,
            };
            tracing::info!(thread = %self.root, from = self.phase.as_str(), to = phase.as_str(), "phase");
            self.phase = phase;
        }
    }

    /// Redacted text for the LLM, or `None` when it holds a credential (never sent).
    fn for_llm_quiet(&self, text: &str) -> Option<String> {
        let r = redact(text);
        (!r.secret_found).then_some(r.text)
    }

    /// As [`Self::for_llm_quiet`], and warns the requester once when it held a secret.
    fn for_llm(&mut self, text: &str) -> Option<String> {
        let redacted = self.for_llm_quiet(text);
        if redacted.is_none() && !self.warned_about_secret {
            self.warned_about_secret = true;
            let slack = self.s.slack.clone();
            let (channel, user, thread) = (self.channel.clone(), self.requester.clone(), self.root.clone());
            tracing::warn!(thread = %self.root, "message contains a credential; requester warned, text withheld");
            actix_rt::spawn(async move {
                if let Err(e) = slack.post_ephemeral(&channel, &user, Some(&thread), SECRET_WARNING).await {
                    tracing::warn!(error = %e, "secret warning not delivered");
                }
            });
        }
        redacted
    }

    /// Starts preparing the first answer: asks the LLM to settle an unsure triage first.
    fn prepare(&mut self, ctx: &mut Context<Self>) {
        self.draft_version += 1;
        if let Draft::Live(old) = std::mem::replace(&mut self.draft, Draft::Pending) {
            old.do_send(Cancel);
        }
        let kb = &self.s.kb;
        let best = kb.search(self.question.expose(), 1).first().map(|h| h.article.slug.clone());
        self.article = best.and_then(|slug| kb.articles().iter().position(|a| a.slug == slug));
        let question = self.question.clone();
        let question = self.for_llm(question.expose());
        self.conversation = question.iter().map(|q| (Role::User, q.clone())).collect();
        let version = self.draft_version;
        // Similar past tickets, and (when the rules are unsure) a one-word LLM triage.
        let find =
            FindSimilar { query: self.question.expose().to_string(), k: 3, exclude: Some(self.root.clone()) };
        let tickets = self.s.tickets.clone();
        let classify =
            self.s.openai.clone().zip(question).filter(|_| !self.triage.confident).map(|(openai, q)| {
                let messages = vec![
                    ChatMessage { role: Role::System, content: compose::CLASSIFY_PROMPT.into() },
                    ChatMessage { role: Role::User, content: q },
                ];
                let request = Complete {
                    max_completion_tokens: Some(5),
                    temperature: Some(0.0),
                    ..Complete::answer(messages, CLASSIFY_PROMPT_TOKENS)
                };
                (openai, request)
            });
        let timeout = self.llm_timeout();
        let fut = async move {
            let similar = tickets.send(find).timeout(Duration::from_secs(5)).await.unwrap_or_default();
            let category = match classify {
                Some((openai, request)) => Some(openai.send(request).timeout(timeout).await),
                None => None,
            };
            (similar, category)
        };
        ctx.spawn(fut.into_actor(self).map(move |(similar, category), act, ctx| {
            if version != act.draft_version {
                return;
            }
            act.similar = similar;
            match category {
                Some(Ok(Ok(c))) => {
                    let word = c.content.trim().to_lowercase();
                    let word = word.trim_matches(|ch: char| !ch.is_alphabetic());
                    if let Some(category) = Category::parse(word) {
                        act.triage.category = category;
                        act.triage.matched = vec!["llm".into()];
                    }
                    tracing::info!(thread = %act.root, category = act.triage.category.as_str(), "triage settled by the LLM");
                }
                Some(Ok(Err(e))) => tracing::warn!(thread = %act.root, error = %e, "LLM triage failed; keeping the rules' answer"),
                Some(Err(e)) => tracing::warn!(thread = %act.root, error = %e, "LLM triage timed out; keeping the rules' answer"),
                None => {}
            }
            act.prepare_answer(ctx);
        }));
    }

    /// The most relevant resolved past ticket with a recorded fix, for the offline answer.
    fn past_fix(&self) -> Option<compose::PastFix> {
        let best = self.similar.iter().find(|s| {
            s.ending.is_resolved() && s.resolution.is_some() && s.share >= crate::tickets::QUOTE_SHARE
        })?;
        Some(compose::PastFix {
            age: super::tickets::age(&best.thread),
            by_person: best.ending == Ending::PersonResolved,
            fix: best.resolution.as_ref()?.expose().to_string(),
        })
    }

    /// Tells the past-ticket index how this ticket stands.
    fn record(&mut self, ending: Ending, resolution: Option<String>) {
        self.ending = ending;
        self.s.tickets.do_send(Record(PastTicket {
            thread: self.root.clone(),
            question: self.question.clone(),
            ending,
            resolution: resolution.map(|r| UserText::new(crate::tickets::clip(&r, 600))),
        }));
    }

    fn llm_timeout(&self) -> Duration {
        Duration::from_secs(self.s.settings.openai.timeout_secs * 3 + 10)
    }

    /// Prepares the first answer for the category. A technical problem that matches an article
    /// is reported to outage detection first (once): part of an outage, the requester is told
    /// it is known instead of being walked through fixes that cannot work.
    fn prepare_answer(&mut self, ctx: &mut Context<Self>) {
        if self.triage.category != Category::Technical {
            self.draft = Draft::Acknowledgement;
            self.maybe_post_first(ctx);
            return;
        }
        let s = self.s.clone();
        let article = self.article.and_then(|i| s.kb.articles().get(i));
        let detect = self.s.settings.outage.min_reporters > 0 && !self.outage_checked;
        if let Some(article) = article.filter(|_| detect) {
            self.outage_checked = true;
            let report = Reported {
                symptom: article.slug.clone(),
                title: article.title.clone(),
                thread: self.root.clone(),
                requester: self.requester.clone(),
                at: self.root.as_str().parse().unwrap_or(0.0),
            };
            let (version, symptom) = (self.draft_version, article.slug.clone());
            let ask = self.s.outage.send(report).timeout(Duration::from_secs(5));
            ctx.spawn(ask.into_actor(self).map(move |answer, act, ctx| {
                if version != act.draft_version {
                    return;
                }
                match answer {
                    Ok(Answer {
                        verdict: Verdict::Known { first } | Verdict::Declared { first, .. },
                        notice,
                    }) => {
                        act.outage = Some((first, symptom));
                        if let Some(notice) = notice {
                            act.draft = Draft::KnownIssue(notice);
                            act.maybe_post_first(ctx);
                            return;
                        }
                    }
                    Ok(Answer { verdict: Verdict::Normal, .. }) => {}
                    Err(e) => {
                        tracing::warn!(thread = %act.root, error = %e, "outage detection did not answer")
                    }
                }
                act.start_answer(ctx);
            }));
            return;
        }
        self.start_answer(ctx);
    }

    /// The first troubleshooting answer: the LLM's, or the knowledge base's without one.
    fn start_answer(&mut self, ctx: &mut Context<Self>) {
        self.draft = match self.start_reply(ctx) {
            Some(reply) => Draft::Live(reply),
            None => Draft::Offline,
        };
        self.maybe_post_first(ctx);
    }

    /// Starts writing an LLM answer to the conversation so far (`None` without an LLM or with
    /// nothing the requester wrote that may be sent). It is posted once [`Self::release`]d.
    fn start_reply(&mut self, ctx: &mut Context<Self>) -> Option<Addr<ReplyActor>> {
        self.s.openai.as_ref()?;
        let mut turns: Vec<Turn> = Vec::with_capacity(self.conversation.len() + 1);
        if let Some(ticket) = self.card.ticket.as_deref().filter(|_| self.assist_seen) {
            // Assist's card is context: the ticket key helps, the names are not needed.
            let note = format!("Ticketing bot: ticket {ticket} opened; an IT person is assigned.");
            turns.extend(Turn::from_slack(Speaker::Context, &note));
        }
        turns.extend(self.conversation.iter().filter_map(|(role, text)| {
            let speaker = if *role == Role::Assistant { Speaker::Bot } else { Speaker::Requester };
            Turn::from_slack(speaker, text)
        }));
        if !turns.iter().any(|t| t.speaker == Speaker::Requester) {
            return None;
        }
        let articles = compose::articles_for(&self.s.kb, self.question.expose());
        let past = compose::past_quotes(&self.similar);
        let prompt = self.s.prompt.build(&PromptInput {
            articles: &articles,
            past_tickets: &past,
            turns: &turns,
            second_approach: self.failed_attempts > 0,
        });
        tracing::debug!(
            thread = %self.root,
            prompt_tokens = prompt.tokens,
            dropped_turns = prompt.dropped_turns,
            dropped_references = prompt.dropped_references,
            "prompt built"
        );
        self.reply_seq += 1;
        let request = ReplyRequest {
            id: self.reply_seq,
            messages: prompt.messages,
            prompt_tokens: prompt.tokens,
            notify: ctx.address().recipient(),
        };
        Some(ReplyActor::new(self.s.clone(), request).start())
    }

    /// Lets a prepared LLM answer appear in the thread, with `fallback` (mrkdwn) for when the
    /// LLM fails; the turn ends when it is posted ([`ReplyFinished`]).
    fn release(&mut self, reply: &Addr<ReplyActor>, fallback: String) {
        self.busy = true;
        reply.do_send(Release {
            channel: self.channel.clone(),
            thread_ts: self.root.clone(),
            recipient: self.requester.clone(),
            footer: compose::HOW_TO_CONTINUE.to_string(),
            actions: Some(compose::answer_actions(&self.root)),
            metadata: self.state_metadata(),
            fallback: compose::llm_unavailable(&fallback),
        });
    }

    /// Computes an offline answer with `answer` without keeping what it notes (tried steps, the
    /// second approach given): that happens only if the fallback is posted.
    fn preview_fallback(&mut self, answer: impl FnOnce(&mut Self) -> String) -> (String, Fallback) {
        let (tried, gave_alternative) = (self.tried.len(), self.gave_alternative);
        let text = answer(self);
        let effects =
            Fallback { tried: self.tried.split_off(tried), gave_alternative: self.gave_alternative };
        self.gave_alternative = gave_alternative;
        (text, effects)
    }

    /// The first answer from the knowledge base, noted for the escalation brief.
    fn offline_first_answer(&mut self) -> String {
        let s = self.s.clone();
        let article = self.article.and_then(|i| s.kb.articles().get(i));
        if let Some(a) = article {
            self.tried.push(format!("steps from *{}*", a.title));
        }
        let past = self.past_fix();
        if let Some(p) = &past {
            self.tried.push(format!("the fix of a similar ticket from {}", p.age));
        }
        compose::offline_first_answer(article, self.card.ticket.as_deref(), past.as_ref())
    }

    /// Posts the first answer once it is ready and Assist has posted (or the wait is over).
    fn maybe_post_first(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Preparing || !(self.assist_seen || self.wait_over) {
            return;
        }
        if let Draft::Live(reply) = &self.draft {
            let reply = reply.clone();
            self.set_phase(Phase::Helping);
            tracing::info!(
                thread = %self.root,
                category = self.triage.category.as_str(),
                assist = self.assist_seen,
                "first answer released"
            );
            let (fallback, effects) = self.preview_fallback(Self::offline_first_answer);
            self.fallback = Some(effects);
            self.tried.push("first troubleshooting steps".into());
            self.release(&reply, fallback);
            self.record(Ending::Unknown, None);
            return;
        }
        let (text, kind, next) = match &self.draft {
            Draft::Pending => return,
            Draft::Acknowledgement => {
                let text = match self.triage.category {
                    Category::Access => {
                        compose::access_ack(self.card.assignee.as_ref(), self.card.ticket.as_deref())
                    }
                    _ => compose::change_ack(self.card.assignee.as_ref(), self.card.ticket.as_deref()),
                };
                (text, ReplyKind::Plain, Phase::Acknowledged)
            }
            Draft::Offline => (self.offline_first_answer(), ReplyKind::Answer, Phase::Helping),
            Draft::KnownIssue(text) => (text.clone(), ReplyKind::Plain, Phase::Acknowledged),
            Draft::Ready(text) => (text.clone(), ReplyKind::Answer, Phase::Helping),
            Draft::Live(_) => return,
        };
        self.set_phase(next);
        tracing::info!(
            thread = %self.root,
            category = self.triage.category.as_str(),
            assist = self.assist_seen,
            llm = self.s.openai.is_some(),
            answer_len = text.len(),
            "first answer"
        );
        self.s.health.metrics.ticket(self.triage.category.as_str());
        self.post(text, kind, ctx);
        self.record(Ending::Unknown, None);
    }

    /// Posts `text` in the thread (split if long; the button and the state on the last part);
    /// the turn ends when it is posted, then queued follow-ups run.
    fn post(&mut self, text: String, kind: ReplyKind, ctx: &mut Context<Self>) {
        self.busy = true;
        if kind == ReplyKind::Answer {
            self.last_answer = Some(text.clone());
        }
        let slack = self.s.slack.clone();
        let (channel, thread) = (self.channel.clone(), self.root.clone());
        let metadata = self.state_metadata();
        let fut = async move {
            let parts = split_message(&text, MAX_MESSAGE_CHARS);
            let last = parts.len().saturating_sub(1);
            let mut posted = Vec::new();
            for (i, part) in parts.into_iter().enumerate() {
                let is_last = i == last;
                let blocks =
                    (is_last && kind == ReplyKind::Answer).then(|| compose::answer_blocks(&part, &thread));
                let meta = is_last.then(|| metadata.clone());
                posted.push(slack.post_blocks(&channel, Some(&thread), &part, blocks, meta).await?);
            }
            Ok::<_, SlackError>(posted)
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok(posted) => {
                    act.s.health.metrics.replies.inc_by(posted.len() as u64);
                    act.bot_messages.extend(posted);
                }
                Err(e) => tracing::error!(thread = %act.root, error = %e, "reply not posted"),
            }
            act.busy = false;
            act.recheck_early_reactions(ctx);
            act.next_in_queue(ctx);
        }));
    }

    /// 👎s that arrived while a post was in flight count if they were on what it posted.
    fn recheck_early_reactions(&mut self, ctx: &mut Context<Self>) {
        for (user, ts) in std::mem::take(&mut self.early_reactions) {
            if self.bot_messages.contains(&ts) {
                self.on_thumbs_down(user, ctx);
            }
        }
    }

    fn next_in_queue(&mut self, ctx: &mut Context<Self>) {
        while !self.busy {
            let Some((next, mentioned)) = self.queue.pop_front() else {
                // The turn is over: a settled ticket may leave memory sooner.
                self.reset_idle(ctx);
                return;
            };
            self.on_requester_message(next, mentioned, ctx);
        }
    }

    /// The durable thread state, written on every bot reply. No message text, no names: the
    /// ticket key, the assignee's id, counts, flags and the article used.
    fn state_metadata(&self) -> Value {
        json!({
            "event_type": STATE_EVENT_TYPE,
            "event_payload": {
                "v": 1,
                "phase": self.phase.as_str(),
                "category": self.triage.category.as_str(),
                "ticket": self.card.ticket,
                "assignee": self.card.assignee,
                "attempts": self.failed_attempts,
                "escalated": self.escalated,
                "resolved": self.phase == Phase::Resolved,
                "article": self.article.and_then(|i| self.s.kb.articles().get(i)).map(|a| a.slug.clone()),
                "gave_alternative": self.gave_alternative,
                "tried": self.tried,
                "outage": self.outage.as_ref().map(|(first, symptom)| json!({"first": first, "symptom": symptom})),
            }
        })
    }

    fn on_reply(&mut self, message: SlackMessage, mentioned: bool, ctx: &mut Context<Self>) {
        let Some(author) = message.user.clone() else { return };
        if author != self.requester {
            if self.is_staff(&author) {
                if self.phase != Phase::HumanTookOver {
                    tracing::info!(thread = %self.root, "a person from IT took over; the bot goes quiet");
                    self.set_phase(Phase::HumanTookOver);
                }
                // What IT says is the best record of the fix.
                if message.text.expose().chars().count() >= 25 {
                    self.record(Ending::PersonResolved, Some(message.text.expose().to_string()));
                }
            } else if mentioned && compose::is_help_request(message.text.expose()) {
                self.post(compose::help_text(&self.s.channel_name), ReplyKind::Plain, ctx);
            }
            return;
        }
        if self.phase == Phase::Preparing {
            // Details added before the first answer shape the next turns.
            let extra = format!("{}\n{}", self.question.expose(), message.text.expose());
            self.question = UserText::new(extra);
            return;
        }
        if self.busy {
            self.queue.push_back((message, mentioned));
            return;
        }
        self.on_requester_message(message, mentioned, ctx);
    }

    /// Reads the thread back before acting on a follow-up: events arrive over several sockets
    /// (and replicas) in no guaranteed order, so Slack's copy is the truth about whether a person
    /// from IT already wrote, or another replica counted an attempt or escalated.
    fn on_requester_message(&mut self, message: SlackMessage, mentioned: bool, ctx: &mut Context<Self>) {
        let quiet = matches!(self.phase, Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver);
        if quiet && !mentioned && self.s.rules.outcome(message.text.expose()) != Outcome::WantsHuman {
            return;
        }
        self.busy = true;
        let slack = self.s.slack.clone();
        let (channel, root) = (self.channel.clone(), self.root.clone());
        let fut = async move { slack.thread_messages(&channel, &root).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            match result {
                Ok(messages) => act.apply_slack_state(&messages, &message.ts),
                Err(e) => tracing::warn!(thread = %act.root, error = %e, "thread not read back; acting on what this replica knows"),
            }
            act.handle_follow_up(message, mentioned, ctx);
        }));
    }

    /// Adopts what Slack's copy of the thread says that this actor has not seen: a person from
    /// IT writing before `until`, another replica's count and escalation, Assist's card.
    fn apply_slack_state(&mut self, messages: &[Value], until: &Ts) {
        let channel = self.channel.clone();
        let bot = self.s.identity.user_id.clone();
        let mut latest_state: Option<(Ts, Value)> = None;
        for (m, meta) in messages.iter().filter_map(|m| crate::slack::events::history_message(m, &channel)) {
            if m.ts == self.root || m.ts.as_str() >= until.as_str() {
                continue;
            }
            if m.user.as_ref() == Some(&bot) {
                if let Some(state) = meta.filter(|v| v["event_type"] == STATE_EVENT_TYPE) {
                    latest_state = Some((m.ts.clone(), state["event_payload"].clone()));
                }
            } else if m.bot_id.is_some() {
                if self.card.assignee.is_none() && self.s.assist.is_assist(&m) {
                    let card = self.s.assist.read(&m);
                    self.card.ticket = self.card.ticket.take().or(card.ticket);
                    self.card.assignee = card.assignee;
                }
            } else if m.user.as_ref().is_some_and(|u| self.is_staff(u)) && self.phase != Phase::HumanTookOver
            {
                tracing::info!(thread = %self.root, "a person from IT wrote first (read back from slack); the bot goes quiet");
                self.set_phase(Phase::HumanTookOver);
            }
        }
        // The bot's latest reply came from another replica: its state is newer than ours.
        let Some((ts, state)) = latest_state.filter(|(ts, _)| !self.bot_messages.contains(ts)) else {
            return;
        };
        tracing::info!(thread = %self.root, "another replica answered here; adopting its state");
        self.bot_messages.insert(ts);
        self.failed_attempts = self.failed_attempts.max(state["attempts"].as_u64().unwrap_or(0) as u32);
        self.gave_alternative |= state["gave_alternative"].as_bool().unwrap_or(false);
        if let Some(tried) = state["tried"].as_array() {
            self.tried = tried.iter().filter_map(Value::as_str).map(str::to_string).collect();
        }
        if state["escalated"].as_bool() == Some(true) {
            self.escalated = true;
        }
        let phase = if self.escalated {
            Some(Phase::Escalated)
        } else {
            state["phase"].as_str().and_then(Phase::parse).filter(|p| *p != Phase::Preparing)
        };
        if let Some(phase) = phase.filter(|_| self.phase != Phase::HumanTookOver) {
            self.set_phase(phase);
        }
    }

    fn handle_follow_up(&mut self, message: SlackMessage, mentioned: bool, ctx: &mut Context<Self>) {
        if mentioned && compose::is_help_request(message.text.expose()) {
            self.post(compose::help_text(&self.s.channel_name), ReplyKind::Plain, ctx);
            return;
        }
        let outcome = self.s.rules.outcome(message.text.expose());
        tracing::info!(thread = %self.root, phase = self.phase.as_str(), outcome = outcome.as_str(), mentioned, "follow-up");
        match self.phase {
            Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver if !mentioned => {
                if outcome == Outcome::WantsHuman && self.phase == Phase::Acknowledged {
                    self.escalate("request", ctx);
                }
                return;
            }
            Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver | Phase::Resolved => {
                self.set_phase(if self.escalated { Phase::Escalated } else { Phase::Helping });
            }
            Phase::Preparing | Phase::Helping | Phase::OfferedHuman => {}
        }
        match outcome {
            Outcome::WantsHuman => self.escalate("request", ctx),
            Outcome::Worked => {
                self.set_phase(Phase::Resolved);
                let fix = self.last_answer.as_deref().map(|a| a.replace(compose::HOW_TO_CONTINUE, ""));
                self.record(Ending::BotResolved, fix);
                self.mark("white_check_mark");
                self.post(compose::closing(), ReplyKind::Plain, ctx);
            }
            Outcome::Failed => {
                self.failed_attempts += 1;
                let max = self.s.settings.escalation.max_failed_attempts;
                if self.phase == Phase::OfferedHuman
                    || (self.failed_attempts >= max && self.s.settings.escalation.auto)
                {
                    self.escalate("attempts", ctx);
                } else if self.failed_attempts >= max && !self.escalated {
                    self.set_phase(Phase::OfferedHuman);
                    self.post(compose::offer_escalation(self.failed_attempts), ReplyKind::Answer, ctx);
                } else {
                    self.next_turn(message, true, ctx);
                }
            }
            Outcome::Other => self.next_turn(message, false, ctx),
        }
    }

    /// Another answer, with the whole thread as context (LLM) or the next article section.
    fn next_turn(&mut self, message: SlackMessage, failed: bool, ctx: &mut Context<Self>) {
        let text = self.for_llm(message.text.expose());
        let sendable = text.is_some();
        self.conversation.extend(text.map(|t| (Role::User, t)));
        if self.conversation.len() > MAX_TURNS {
            let excess = self.conversation.len() - MAX_TURNS;
            self.conversation.drain(..excess);
        }
        let reply = if sendable { self.start_reply(ctx) } else { None };
        let Some(reply) = reply else {
            let answer = self.offline_turn(&message, failed);
            self.post(answer, ReplyKind::Answer, ctx);
            return;
        };
        let (fallback, effects) = self.preview_fallback(|t| t.offline_turn(&message, failed));
        self.fallback = Some(effects);
        self.tried.push(if failed {
            "a different approach".into()
        } else {
            "answers to follow-up questions".into()
        });
        self.release(&reply, fallback);
    }

    /// The next answer without the LLM. A requester who was told their problem is part of an
    /// outage and asks for the usual fixes gets the first answer's steps.
    fn offline_turn(&mut self, message: &SlackMessage, failed: bool) -> String {
        if self.outage.is_some() && self.last_answer.is_none() && !failed {
            return self.offline_first_answer();
        }
        self.offline_next(message, failed)
    }

    /// The next answer without the LLM: the article's second approach after a failure, or the
    /// article that fits the new details.
    fn offline_next(&mut self, message: &SlackMessage, failed: bool) -> String {
        let s = self.s.clone();
        let article = self.article.and_then(|i| s.kb.articles().get(i));
        if failed && !self.gave_alternative {
            self.gave_alternative = true;
            if let Some(a) = article {
                self.tried.push(format!("the second approach from *{}*", a.title));
            }
            return compose::offline_retry_answer(article);
        }
        if failed {
            return compose::offline_retry_answer(None);
        }
        let found = s.kb.search(message.text.expose(), 1).first().map(|h| h.article);
        let other = found.filter(|a| Some(&a.slug) != article.map(|x| &x.slug));
        compose::offline_follow_up(other)
    }

    /// Hands the thread to a person, once: the thread's state in Slack is read first, so a
    /// restart or another replica that already escalated is respected.
    fn escalate(&mut self, trigger: &'static str, ctx: &mut Context<Self>) {
        if self.escalated {
            tracing::info!(thread = %self.root, trigger, "already escalated; not again");
            if trigger != "attempts" {
                // Tell the requester privately, so repeated clicks or asks make no channel noise.
                let slack = self.s.slack.clone();
                let (channel, user, thread) =
                    (self.channel.clone(), self.requester.clone(), self.root.clone());
                actix_rt::spawn(async move {
                    if let Err(e) =
                        slack.post_ephemeral(&channel, &user, Some(&thread), compose::ALREADY_ESCALATED).await
                    {
                        tracing::debug!(error = %e, "already-escalated note not delivered");
                    }
                });
            }
            return;
        }
        self.escalated = true;
        self.busy = true;
        let slack = self.s.slack.clone();
        let (channel, root) = (self.channel.clone(), self.root.clone());
        let bot = self.s.identity.user_id.clone();
        let fut = async move { slack.thread_messages(&channel, &root).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            act.busy = false;
            let elsewhere = match &result {
                Ok(messages) => messages.iter().any(|m| {
                    m["user"].as_str() == Some(bot.as_str())
                        && m.pointer("/metadata/event_type").and_then(Value::as_str) == Some(STATE_EVENT_TYPE)
                        && m.pointer("/metadata/event_payload/escalated").and_then(Value::as_bool) == Some(true)
                }),
                Err(e) => {
                    tracing::warn!(thread = %act.root, error = %e, "thread state not checked before escalating");
                    false
                }
            };
            act.set_phase(Phase::Escalated);
            if elsewhere {
                tracing::info!(thread = %act.root, trigger, "escalated earlier (restart or another replica); not again");
                act.next_in_queue(ctx);
                return;
            }
            act.post_escalation(trigger, ctx);
        }));
    }

    fn post_escalation(&mut self, trigger: &'static str, ctx: &mut Context<Self>) {
        let fallback = &self.s.settings.escalation.fallback_mention;
        let mention = match &self.card.assignee {
            Some(a) => Some(format!("<@{a}>")),
            None if !fallback.is_empty() => Some(fallback.clone()),
            None => None,
        };
        tracing::info!(thread = %self.root, trigger, assignee_known = self.card.assignee.is_some(), "escalation");
        self.record(Ending::Escalated, None);
        self.s.health.metrics.escalation(trigger);
        self.mark("sos");
        let text = compose::escalation(
            mention.as_deref(),
            &compose::Brief {
                requester: &self.requester,
                question: self.question.expose(),
                tried: &self.tried,
                failed_attempts: self.failed_attempts,
                trigger,
            },
        );
        self.post(text, ReplyKind::Plain, ctx);
    }

    /// A reaction marker on the root, when `slack.reaction_markers` is on; failures are quiet.
    fn mark(&self, name: &'static str) {
        if !self.s.settings.slack.reaction_markers {
            return;
        }
        let slack = self.s.slack.clone();
        let (channel, ts) = (self.channel.clone(), self.root.clone());
        actix_rt::spawn(async move {
            if let Err(e) = slack.add_reaction(&channel, &ts, name).await {
                tracing::debug!(error = %e, "reaction marker not added");
            }
        });
    }

    /// A 👎 on one of the bot's messages: the requester's escalates, anyone else's is feedback.
    fn on_thumbs_down(&mut self, user: UserId, ctx: &mut Context<Self>) {
        self.s.health.metrics.feedback(self.triage.category.as_str(), false, "reaction");
        if user == self.requester {
            self.escalate("thumbs_down", ctx);
        } else {
            tracing::info!(thread = %self.root, "thumbs down from someone else recorded as feedback");
        }
    }

    /// A feedback button: counted once per person and message (a changed vote replaces the
    /// earlier one), written into the message's metadata; the requester's 👎 escalates like
    /// the reaction does, and anyone else is thanked privately.
    fn on_feedback(&mut self, user: UserId, message_ts: Ts, up: bool, ctx: &mut Context<Self>) {
        if !self.votes.contains_key(&message_ts) && self.votes.len() >= MAX_VOTED_MESSAGES {
            tracing::warn!(thread = %self.root, "too many voted messages in one thread; vote not recorded");
            return;
        }
        let votes = self.votes.entry(message_ts.clone()).or_default();
        if votes.by_user.insert(user.clone(), up) == Some(up) {
            tracing::debug!(thread = %self.root, "same vote again; nothing changes");
            return;
        }
        self.s.health.metrics.feedback(self.triage.category.as_str(), up, "button");
        tracing::info!(thread = %self.root, up, requester = (user == self.requester), "feedback");
        self.write_votes(message_ts, ctx);
        if user == self.requester && !up {
            self.escalate("feedback", ctx);
            return;
        }
        let slack = self.s.slack.clone();
        let (channel, thread) = (self.channel.clone(), self.root.clone());
        actix_rt::spawn(async move {
            if let Err(e) =
                slack.post_ephemeral(&channel, &user, Some(&thread), compose::FEEDBACK_THANKS).await
            {
                tracing::debug!(error = %e, "feedback thanks not delivered");
            }
        });
    }

    /// Writes a message's vote counts into its metadata: reads the message from Slack the first
    /// time (its text, blocks and metadata are kept as they are), then `chat.update`s it. One
    /// write at a time per message; votes that arrive meanwhile go out with the next one.
    fn write_votes(&mut self, message_ts: Ts, ctx: &mut Context<Self>) {
        let Some(votes) = self.votes.get_mut(&message_ts) else { return };
        if votes.writing {
            votes.dirty = true;
            return;
        }
        votes.writing = true;
        votes.dirty = false;
        let known = votes.message.clone();
        let slack = self.s.slack.clone();
        let (channel, root, bot) = (self.channel.clone(), self.root.clone(), self.s.identity.user_id.clone());
        let ts = message_ts.clone();
        let read = async move {
            if let Some(m) = known {
                return Ok((m, false));
            }
            let thread = slack.thread_messages(&channel, &root).await?;
            let found = thread
                .into_iter()
                .find(|m| m["ts"].as_str() == Some(ts.as_str()) && m["user"].as_str() == Some(bot.as_str()));
            found.map(|m| (m, true)).ok_or_else(|| SlackError::Api {
                method: "conversations.replies".into(),
                code: "message_not_found".into(),
                needed: None,
                provided: None,
            })
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            let Some(votes) = act.votes.get_mut(&message_ts) else { return };
            let message = match result {
                Ok((m, first_read)) => {
                    if first_read {
                        let count = |k: &str| {
                            m.pointer(&format!("/metadata/event_payload/feedback/{k}")).and_then(Value::as_u64)
                        };
                        votes.base = (count("up").unwrap_or(0), count("down").unwrap_or(0));
                        votes.message = Some(m.clone());
                    }
                    m
                }
                Err(e) => {
                    votes.writing = false;
                    tracing::warn!(thread = %act.root, error = %e, "feedback not written to slack (counted in metrics only)");
                    return;
                }
            };
            let (up, down) = votes.counts();
            let mut metadata = match message.get("metadata") {
                Some(m @ Value::Object(_)) => m.clone(),
                _ => act.state_metadata(),
            };
            if let Some(payload) = metadata.get_mut("event_payload").and_then(Value::as_object_mut) {
                payload.insert("feedback".into(), json!({"up": up, "down": down}));
            }
            let text = message["text"].as_str().unwrap_or_default().to_string();
            let blocks = message.get("blocks").filter(|b| b.is_array()).cloned();
            let slack = act.s.slack.clone();
            let channel = act.channel.clone();
            let ts = message_ts.clone();
            let write = async move { slack.update_message(&channel, &ts, &text, blocks, Some(metadata)).await };
            ctx.spawn(write.into_actor(act).map(move |result, act, ctx| {
                if let Err(e) = result {
                    tracing::warn!(thread = %act.root, error = %e, "feedback not written to slack (counted in metrics only)");
                }
                let Some(votes) = act.votes.get_mut(&message_ts) else { return };
                votes.writing = false;
                if votes.dirty {
                    act.write_votes(message_ts, ctx);
                }
            }));
        }));
    }

    fn on_get_human(&mut self, user: UserId, ctx: &mut Context<Self>) {
        if user == self.requester {
            self.escalate("button", ctx);
            return;
        }
        tracing::info!(thread = %self.root, "get-a-human pressed by someone else; told privately");
        let slack = self.s.slack.clone();
        let (channel, thread) = (self.channel.clone(), self.root.clone());
        let text = compose::button_not_yours(&self.requester);
        actix_rt::spawn(async move {
            if let Err(e) = slack.post_ephemeral(&channel, &user, Some(&thread), &text).await {
                tracing::debug!(error = %e, "note to the clicker not delivered");
            }
        });
    }
}

/// The bot's reply without the how-to-continue footer (LLM context).
fn strip_footer(text: &str) -> String {
    text.replace(compose::HOW_TO_CONTINUE, "").trim().to_string()
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.reset_idle(ctx);
        if self.phase != Phase::Preparing {
            // Resumed from Slack: nothing to prepare.
            return;
        }
        if self.s.settings.slack.status_indicator {
            let slack = self.s.slack.clone();
            let (channel, thread) = (self.channel.clone(), self.root.clone());
            actix_rt::spawn(async move {
                if let Err(e) = slack.set_status(&channel, &thread, "is looking into it...").await {
                    tracing::debug!(error = %e, "status indicator not set");
                }
            });
        }
        self.mark("eyes");
        self.prepare(ctx);
        let wait = Duration::from_secs(self.s.settings.assist.wait_secs);
        ctx.run_later(wait, |act, ctx| {
            if act.phase != Phase::Preparing || act.assist_seen {
                act.wait_over = true;
                act.maybe_post_first(ctx);
                return;
            }
            // Assist's card may have gone to another socket or replica: read the thread once.
            let slack = act.s.slack.clone();
            let (channel, root) = (act.channel.clone(), act.root.clone());
            let fut = async move { slack.thread_messages(&channel, &root).await };
            ctx.spawn(fut.into_actor(act).map(|result, act, ctx| {
                if let Ok(messages) = result {
                    let channel = act.channel.clone();
                    let card = messages
                        .iter()
                        .filter_map(|m| crate::slack::events::history_message(m, &channel))
                        .find(|(m, _)| m.bot_id.is_some() && act.s.assist.is_assist(m))
                        .map(|(m, _)| act.s.assist.read(&m));
                    if let Some(card) = card {
                        act.card.ticket = act.card.ticket.take().or(card.ticket);
                        act.card.assignee = act.card.assignee.take().or(card.assignee);
                        act.assist_seen = true;
                    }
                }
                if !act.assist_seen {
                    tracing::info!(thread = %act.root, "assist did not post in time; answering anyway");
                }
                act.wait_over = true;
                act.maybe_post_first(ctx);
            }));
        });
        tracing::info!(
            thread = %self.root,
            category = self.triage.category.as_str(),
            confident = self.triage.confident,
            rules = self.triage.matched.len(),
            "ticket triaged"
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.router.do_send(ThreadStopped { thread: self.root.clone(), actor: self.actor_id });
    }
}

impl Handler<ThreadEvent> for ThreadActor {
    type Result = ();

    fn handle(&mut self, event: ThreadEvent, ctx: &mut Self::Context) {
        // One span per turn: every line logged while handling it carries the thread and kind.
        let span = tracing::info_span!("turn", thread = %self.root, event = event.kind(), phase = self.phase.as_str());
        let _entered = span.enter();
        self.reset_idle(ctx);
        match event {
            ThreadEvent::Reply { message, mentioned } => self.on_reply(message, mentioned, ctx),
            ThreadEvent::Assist(card) => {
                tracing::info!(thread = %self.root, ticket = card.ticket.is_some(), assignee = card.assignee.is_some(), "assist card");
                if self.card.ticket.is_none() {
                    self.card.ticket = card.ticket;
                }
                if self.card.assignee.is_none() {
                    self.card.assignee = card.assignee;
                }
                self.assist_seen = true;
                self.maybe_post_first(ctx);
            }
            ThreadEvent::RootEdited(text) => {
                if self.phase == Phase::Preparing {
                    tracing::info!(thread = %self.root, "root edited before the answer; preparing again");
                    self.question = text;
                    self.triage = self.s.rules.classify(self.question.expose());
                    self.prepare(ctx);
                }
            }
            ThreadEvent::RootDeleted => {
                tracing::info!(thread = %self.root, "root deleted; thread closed");
                self.s.tickets.do_send(Forget(self.root.clone()));
                ctx.stop();
            }
            ThreadEvent::Reaction { user, reaction, ts } => {
                if THUMBS_UP.contains(&reaction.as_str()) {
                    if self.bot_messages.contains(&ts) {
                        self.s.health.metrics.feedback(self.triage.category.as_str(), true, "reaction");
                    }
                    return;
                }
                if !THUMBS_DOWN.contains(&reaction.as_str()) {
                    return;
                }
                if self.bot_messages.contains(&ts) {
                    self.on_thumbs_down(user, ctx);
                } else if self.busy && self.early_reactions.len() < MAX_EARLY_REACTIONS {
                    self.early_reactions.push((user, ts));
                }
            }
            ThreadEvent::GetHuman { user, message_ts } => {
                tracing::debug!(thread = %self.root, message = %message_ts, "get a human");
                self.on_get_human(user, ctx);
            }
            ThreadEvent::Feedback { user, message_ts, up } => self.on_feedback(user, message_ts, up, ctx),
            ThreadEvent::Stop => ctx.stop(),
        }
    }
}

impl Handler<Drain> for ThreadActor {
    type Result = bool;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> bool {
        if self.phase == Phase::Preparing && !self.wait_over {
            self.wait_over = true;
            self.maybe_post_first(ctx);
        }
        self.busy || self.phase == Phase::Preparing || !self.queue.is_empty()
    }
}

impl Handler<ReplyFinished> for ThreadActor {
    type Result = ();

    fn handle(&mut self, done: ReplyFinished, ctx: &mut Self::Context) {
        if done.id != self.reply_seq {
            // An answer to a question that changed; it was cancelled before it was released.
            return;
        }
        let effects = self.fallback.take();
        match done.outcome {
            ReplyOutcome::Answered { markdown, posted } => {
                tracing::info!(thread = %self.root, parts = posted.len(), answer_len = markdown.len(), "LLM answer posted");
                self.last_answer = Some(markdown_to_mrkdwn(&markdown));
                self.conversation.push((Role::Assistant, markdown));
                self.bot_messages.extend(posted);
            }
            ReplyOutcome::FellBack { mrkdwn, posted } => {
                tracing::warn!(thread = %self.root, parts = posted.len(), "LLM failed; the offline answer was posted");
                // The optimistic entry made at release gives way to what the fallback gave.
                self.tried.pop();
                if let Some(e) = effects {
                    self.tried.extend(e.tried);
                    self.gave_alternative |= e.gave_alternative;
                }
                self.last_answer = Some(mrkdwn);
                self.bot_messages.extend(posted);
            }
        }
        self.busy = false;
        self.recheck_early_reactions(ctx);
        self.next_in_queue(ctx);
    }
}

//! ThreadActor: one per ticket thread. It owns the requester, the Assist card, the conversation,
//! the failed-attempt count and the flags (answered, resolved, escalated, human took over).
//!
//! The first answer is prepared at once, in parallel with waiting for Assist's card, and posted
//! when the card arrives or `assist.wait_secs` runs out, whichever comes first. One turn runs at a
//! time: follow-ups that arrive during a turn wait in a queue. Waits are timers, never sleeps.

use std::collections::VecDeque;
use std::time::Duration;

use actix::prelude::*;
use serde_json::json;

use super::openai::Complete;
use super::router::{RouterActor, ThreadStopped};
use super::SharedServices;
use crate::assist::AssistCard;
use crate::compose;
use crate::knowledge::Article;
use crate::openai::Role;
use crate::redact::redact;
use crate::slack::events::Message as SlackMessage;
use crate::slack::format::{markdown_to_mrkdwn, split_message, MAX_MESSAGE_CHARS};
use crate::slack::{ChannelId, Ts, UserId};
use crate::telemetry::UserText;
use crate::triage::{self, Category, Outcome, Triage};

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
    /// A reaction on the root or on one of the bot's messages.
    Reaction { user: UserId, reaction: String, ts: Ts },
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
            ThreadEvent::Stop => "stop",
        }
    }
}

/// Where the thread is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first answer is being prepared or waits for Assist.
    Preparing,
    /// The bot answered and follows up.
    Answered,
    Resolved,
    Escalated,
    /// The assignee or IT staff wrote: the bot stays quiet unless the requester mentions it.
    HumanTookOver,
}

/// The prepared first answer.
enum Draft {
    /// Not ready yet (an LLM call is running).
    Pending,
    /// Composed when posted, because it names the assignee.
    Acknowledgement,
    /// From the knowledge base, composed when posted (it names the ticket).
    Offline,
    Ready(String),
}

const THUMBS_DOWN: &[&str] = &["-1", "thumbsdown"];

const SECRET_WARNING: &str = "Heads up: your message looks like it contains a password, key or code. \
Please delete it and change (rotate) that credential now, since everyone in the channel can read it. \
I've left it out of everything I process.";

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
    /// The best article for the question, if any (offline answers, escalation brief).
    article: Option<Article>,
    /// Whether the article's second approach was already given.
    gave_alternative: bool,
    /// The conversation as sent to the LLM (redacted).
    conversation: Vec<(Role, String)>,
    /// Short descriptions of what the bot suggested, for the escalation brief.
    tried: Vec<String>,
    failed_attempts: u32,
    offered_escalation: bool,
    escalated: bool,
    phase: Phase,
    /// A turn (LLM call or post) is running.
    busy: bool,
    queue: VecDeque<SlackMessage>,
    idle: Option<SpawnHandle>,
    warned_about_secret: bool,
}

impl ThreadActor {
    pub fn new(
        s: SharedServices,
        router: Addr<RouterActor>,
        actor_id: u64,
        root: SlackMessage,
    ) -> ThreadActor {
        let triage = triage::classify(root.text.expose());
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
            failed_attempts: 0,
            offered_escalation: false,
            escalated: false,
            phase: Phase::Preparing,
            busy: false,
            queue: VecDeque::new(),
            idle: None,
            warned_about_secret: false,
            s,
            router,
            actor_id,
        }
    }

    fn reset_idle(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.idle.take() {
            ctx.cancel_future(h);
        }
        let idle = Duration::from_secs(self.s.settings.threads.idle_secs);
        self.idle = Some(ctx.run_later(idle, |act, ctx| {
            tracing::debug!(thread = %act.root, "thread idle; stopping");
            ctx.stop();
        }));
    }

    /// Redacts text for the LLM. A message holding a credential is not sent at all (`None`),
    /// and the requester is warned once.
    fn for_llm(&mut self, text: &str) -> Option<String> {
        let r = redact(text);
        if !r.secret_found {
            return Some(r.text);
        }
        if !self.warned_about_secret {
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
        None
    }

    /// Starts preparing the first answer for the current question.
    fn prepare(&mut self, ctx: &mut Context<Self>) {
        self.draft_version += 1;
        self.article = self.s.kb.search(self.question.expose(), 1).first().map(|h| h.article.clone());
        if self.triage.category != Category::Technical {
            self.draft = Draft::Acknowledgement;
            return;
        }
        let question = self.question.clone();
        let question = self.for_llm(question.expose());
        self.conversation = question.into_iter().map(|q| (Role::User, q)).collect();
        match self.s.openai.clone().filter(|_| !self.conversation.is_empty()) {
            None => self.draft = Draft::Offline,
            Some(openai) => {
                self.draft = Draft::Pending;
                let articles = compose::articles_for(&self.s.kb, self.question.expose());
                let messages = compose::prompt(&self.s.settings, &articles, &self.conversation);
                let version = self.draft_version;
                let timeout = Duration::from_secs(self.s.settings.openai.timeout_secs * 3 + 10);
                let fut = async move { openai.send(Complete { messages }).timeout(timeout).await };
                ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
                    if version != act.draft_version {
                        return;
                    }
                    let text = match result {
                        Ok(Ok(c)) => {
                            act.conversation.push((Role::Assistant, c.content.clone()));
                            act.tried.push("first troubleshooting steps".into());
                            llm_answer(&c.content)
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(thread = %act.root, error = %e, "LLM failed; answering from the knowledge base");
                            act.offline_first_answer()
                        }
                        Err(e) => {
                            tracing::warn!(thread = %act.root, error = %e, "LLM did not answer in time; answering from the knowledge base");
                            act.offline_first_answer()
                        }
                    };
                    act.draft = Draft::Ready(text);
                    act.maybe_post_first(ctx);
                }));
            }
        }
    }

    /// The first answer from the knowledge base, noted for the escalation brief.
    fn offline_first_answer(&mut self) -> String {
        if let Some(a) = &self.article {
            self.tried.push(format!("steps from *{}*", a.title));
        }
        compose::offline_first_answer(self.article.as_ref(), self.card.ticket.as_deref())
    }

    /// Posts the first answer once it is ready and Assist has posted (or the wait is over).
    fn maybe_post_first(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Preparing || !(self.assist_seen || self.wait_over) {
            return;
        }
        let text = match &self.draft {
            Draft::Pending => return,
            Draft::Acknowledgement => match self.triage.category {
                Category::Access => {
                    compose::access_ack(self.card.assignee.as_ref(), self.card.ticket.as_deref())
                }
                _ => compose::change_ack(self.card.assignee.as_ref(), self.card.ticket.as_deref()),
            },
            Draft::Offline => self.offline_first_answer(),
            Draft::Ready(text) => text.clone(),
        };
        self.phase = Phase::Answered;
        tracing::info!(
            thread = %self.root,
            category = self.triage.category.as_str(),
            assist = self.assist_seen,
            llm = self.s.openai.is_some(),
            answer_len = text.len(),
            "first answer"
        );
        self.post(text, ctx);
    }

    /// Posts `text` in the thread (split if long) with the state as metadata; the turn ends
    /// when it is posted, then queued follow-ups run.
    fn post(&mut self, text: String, ctx: &mut Context<Self>) {
        self.busy = true;
        let slack = self.s.slack.clone();
        let (channel, thread) = (self.channel.clone(), self.root.clone());
        let metadata = self.state_metadata();
        let fut = async move {
            let parts = split_message(&text, MAX_MESSAGE_CHARS);
            let last = parts.len().saturating_sub(1);
            for (i, part) in parts.into_iter().enumerate() {
                let meta = (i == last).then(|| metadata.clone());
                slack.post_message(&channel, Some(&thread), &part, meta).await?;
            }
            Ok::<_, crate::slack::SlackError>(())
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            if let Err(e) = result {
                tracing::error!(thread = %act.root, error = %e, "reply not posted");
            }
            act.busy = false;
            if let Some(next) = act.queue.pop_front() {
                act.on_requester_message(next, ctx);
            }
        }));
    }

    /// The durable thread state, written on every bot reply (no personal data but the ids IT
    /// needs to continue: ticket and assignee).
    fn state_metadata(&self) -> serde_json::Value {
        json!({
            "event_type": "itbot_thread_state",
            "event_payload": {
                "v": 1,
                "category": self.triage.category.as_str(),
                "ticket": self.card.ticket,
                "assignee": self.card.assignee,
                "attempts": self.failed_attempts,
                "escalated": self.escalated,
                "resolved": self.phase == Phase::Resolved,
            }
        })
    }

    fn on_reply(&mut self, message: SlackMessage, mentioned: bool, ctx: &mut Context<Self>) {
        let Some(author) = message.user.clone() else { return };
        if author != self.requester {
            let is_staff = self.card.assignee.as_ref() == Some(&author)
                || self.s.settings.escalation.it_staff.iter().any(|id| id == author.as_str());
            if is_staff && self.phase != Phase::HumanTookOver {
                tracing::info!(thread = %self.root, "a person from IT took over; the bot goes quiet");
                self.phase = Phase::HumanTookOver;
            }
            return;
        }
        match self.phase {
            Phase::HumanTookOver if !mentioned => return,
            Phase::HumanTookOver | Phase::Resolved => self.phase = Phase::Answered,
            Phase::Escalated if !mentioned => return,
            Phase::Preparing => {
                // Details added before the first answer: they shape the next turns.
                let extra = format!("{}\n{}", self.question.expose(), message.text.expose());
                self.question = UserText::new(extra);
                return;
            }
            _ => {}
        }
        if self.busy {
            self.queue.push_back(message);
            return;
        }
        self.on_requester_message(message, ctx);
    }

    fn on_requester_message(&mut self, message: SlackMessage, ctx: &mut Context<Self>) {
        let outcome = triage::outcome(message.text.expose());
        tracing::info!(thread = %self.root, outcome = ?outcome, "follow-up");
        match outcome {
            Outcome::WantsHuman => self.escalate("request", ctx),
            Outcome::Worked => {
                self.phase = Phase::Resolved;
                if self.s.settings.slack.reaction_markers {
                    self.mark("white_check_mark");
                }
                self.post(compose::closing(), ctx);
            }
            Outcome::Failed => {
                self.failed_attempts += 1;
                let max = self.s.settings.escalation.max_failed_attempts;
                if self.failed_attempts >= max {
                    if self.s.settings.escalation.auto || self.offered_escalation {
                        self.escalate("attempts", ctx);
                    } else {
                        self.offered_escalation = true;
                        self.post(compose::offer_escalation(self.failed_attempts), ctx);
                    }
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
        let Some(openai) = self.s.openai.clone().filter(|_| sendable && !self.conversation.is_empty()) else {
            let answer = if failed && !self.gave_alternative {
                self.gave_alternative = true;
                if let Some(a) = &self.article {
                    self.tried.push(format!("the second approach from *{}*", a.title));
                }
                compose::offline_retry_answer(self.article.as_ref())
            } else if failed {
                compose::offline_retry_answer(None)
            } else {
                let found = self.s.kb.search(message.text.expose(), 1).first().map(|h| h.article.clone());
                let other = found.filter(|a| Some(&a.slug) != self.article.as_ref().map(|x| &x.slug));
                compose::offline_follow_up(other.as_ref())
            };
            self.post(answer, ctx);
            return;
        };
        self.busy = true;
        let articles = compose::articles_for(&self.s.kb, self.question.expose());
        let messages = compose::prompt(&self.s.settings, &articles, &self.conversation);
        let timeout = Duration::from_secs(self.s.settings.openai.timeout_secs * 3 + 10);
        let fut = async move { openai.send(Complete { messages }).timeout(timeout).await };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let text = match result {
                Ok(Ok(c)) => {
                    act.conversation.push((Role::Assistant, c.content.clone()));
                    act.tried.push("a follow-up suggestion".into());
                    llm_answer(&c.content)
                }
                other => {
                    let reason = match other {
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    tracing::warn!(thread = %act.root, error = %reason, "LLM failed on a follow-up; answering offline");
                    if failed {
                        compose::offline_retry_answer(act.article.as_ref())
                    } else {
                        compose::offline_follow_up(None)
                    }
                }
            };
            act.post(text, ctx);
        }));
    }

    /// Hands the thread to a person, once.
    fn escalate(&mut self, trigger: &'static str, ctx: &mut Context<Self>) {
        if self.escalated {
            return;
        }
        self.escalated = true;
        self.phase = Phase::Escalated;
        let fallback = &self.s.settings.escalation.fallback_mention;
        let mention = match &self.card.assignee {
            Some(a) => Some(format!("<@{a}>")),
            None if !fallback.is_empty() => Some(fallback.clone()),
            None => None,
        };
        tracing::info!(thread = %self.root, trigger, assignee_known = self.card.assignee.is_some(), "escalation");
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
        self.post(text, ctx);
    }

    fn mark(&self, name: &'static str) {
        let slack = self.s.slack.clone();
        let (channel, ts) = (self.channel.clone(), self.root.clone());
        actix_rt::spawn(async move {
            if let Err(e) = slack.add_reaction(&channel, &ts, name).await {
                tracing::warn!(error = %e, "reaction marker not added");
            }
        });
    }
}

/// An LLM answer, ready to post: mrkdwn, no mentions it did not choose, and how to continue.
fn llm_answer(markdown: &str) -> String {
    format!("{}\n\n{}", markdown_to_mrkdwn(markdown.trim()), compose::HOW_TO_CONTINUE)
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.reset_idle(ctx);
        if self.s.settings.slack.status_indicator {
            let slack = self.s.slack.clone();
            let (channel, thread) = (self.channel.clone(), self.root.clone());
            actix_rt::spawn(async move {
                if let Err(e) = slack.set_status(&channel, &thread, "is looking into it...").await {
                    tracing::debug!(error = %e, "status indicator not set");
                }
            });
        }
        if self.s.settings.slack.reaction_markers {
            self.mark("eyes");
        }
        self.prepare(ctx);
        let wait = Duration::from_secs(self.s.settings.assist.wait_secs);
        ctx.run_later(wait, |act, ctx| {
            act.wait_over = true;
            if act.phase == Phase::Preparing && !act.assist_seen {
                tracing::info!(thread = %act.root, "assist did not post in time; answering anyway");
            }
            act.maybe_post_first(ctx);
        });
        tracing::info!(thread = %self.root, category = self.triage.category.as_str(), rules = ?self.triage.matched, "ticket triaged");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.router.do_send(ThreadStopped { thread: self.root.clone(), actor: self.actor_id });
    }
}

impl Handler<ThreadEvent> for ThreadActor {
    type Result = ();

    fn handle(&mut self, event: ThreadEvent, ctx: &mut Self::Context) {
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
                    tracing::info!(thread = %self.root, "root edited before the answer; re-preparing");
                    self.question = text;
                    self.triage = triage::classify(self.question.expose());
                    self.prepare(ctx);
                    self.maybe_post_first(ctx);
                }
            }
            ThreadEvent::RootDeleted => {
                tracing::info!(thread = %self.root, "root deleted; thread closed");
                ctx.stop();
            }
            ThreadEvent::Reaction { user, reaction, ts } => {
                if THUMBS_DOWN.contains(&reaction.as_str()) && ts != self.root {
                    if user == self.requester {
                        self.escalate("thumbs_down", ctx);
                    } else {
                        tracing::info!(thread = %self.root, "thumbs down from someone else recorded as feedback");
                    }
                }
            }
            ThreadEvent::Stop => ctx.stop(),
        }
    }
}

//! One ticket thread's conversation as a pure state machine. [`Conversation::on`] takes what
//! happened ([`Input`]) and returns what to do ([`Effect`]): post this, release that LLM
//! answer, read the thread, warn the requester, escalate, record the ticket. No I/O, no clock,
//! no actor: the ThreadActor feeds inputs in and carries effects out, and whatever it needs to
//! know about the world (knowledge base, rules, settings, the time) comes in a [`World`].
//!
//! The phases and what moves between them (each row is a test below):
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
//! One turn runs at a time (an LLM answer, a read of the thread, a post): follow-ups that arrive
//! meanwhile wait in a queue, oldest first. Every post carries the thread's [`ThreadState`].

use std::collections::{HashMap, HashSet, VecDeque};

use crate::assist::{AssistCard, AssistParser};
use crate::compose;
use crate::config::Settings;
use crate::knowledge::{Article, KnowledgeBase};
use crate::openai::Role;
use crate::prompt::{Speaker, Turn};
use crate::redact::redact;
use crate::slack::events::{HistoryMessage, Message};
use crate::slack::format::markdown_to_mrkdwn;
use crate::slack::{Ts, UserId};
use crate::state::{Metadata, OutageRef, Phase, ThreadState, Trigger, STATE_VERSION};
use crate::telemetry::UserText;
use crate::tickets::{Ending, Similar};
use crate::triage::{Category, Outcome, Rules, Triage};

/// Reactions that mean "this did not help".
pub const THUMBS_DOWN: &[&str] = &["-1", "thumbsdown"];
/// Reactions that mean "this helped" (counted as feedback only).
pub const THUMBS_UP: &[&str] = &["+1", "thumbsup"];

/// Said privately to a requester whose message held a credential.
pub const SECRET_WARNING: &str = "Heads up: your message looks like it contains a password, key or code. \
Please delete it and change (rotate) that credential now, since everyone in the channel can read it. \
I've left it out of everything I process.";

/// How long a follow-up waits before it is acted on without reading the thread: a process holds
/// several sockets, and Slack delivers the events of one thread over them in no guaranteed
/// order, so a message written just before (a person from IT answering) can arrive just after.
pub const SETTLE_MS: u64 = 300;

/// The most recent turns kept as LLM context.
const MAX_TURNS: usize = 12;
/// 👎s kept while a post is in flight, at most.
const MAX_EARLY_REACTIONS: usize = 8;
/// Messages of one thread whose feedback votes are kept, at most.
const MAX_VOTED_MESSAGES: usize = 32;
/// An IT person's message at least this long is recorded as the ticket's fix.
const FIX_CHARS: usize = 25;

/// What the conversation may consult: read-only data and the time, passed in on every input.
pub struct World<'a> {
    pub kb: &'a KnowledgeBase,
    pub rules: &'a Rules,
    pub assist: &'a AssistParser,
    pub settings: &'a Settings,
    /// The bot's own user id.
    pub bot: &'a UserId,
    /// The IT channel's name, for the help text.
    pub channel_name: &'a str,
    /// An LLM is configured.
    pub llm: bool,
    /// Another replica posts as this bot in the channel (seen in some thread): Slack's copy of a
    /// thread may then hold what this process has not heard, so it is read before acting.
    pub peers: bool,
    /// Replicas share Redis: an escalation is claimed there (atomically, across replicas) before
    /// it is posted.
    pub coordinated: bool,
    /// Unix seconds, for how long ago a past ticket was.
    pub now: f64,
}

/// What happened in or to the thread.
#[derive(Debug)]
pub enum Input {
    /// A new ticket: start preparing the first answer.
    Started,
    /// Similar past tickets were found, and the LLM's one-word triage when it was asked for.
    Prepared {
        version: u32,
        similar: Vec<Similar>,
        category: Option<Category>,
    },
    /// Outage detection answered for the ticket prepared as `version`.
    OutageChecked {
        version: u32,
        verdict: OutageVerdict,
    },
    /// Assist's ticket card.
    Assist(AssistCard),
    /// `assist.wait_secs` passed since the ticket was posted.
    AssistWaitOver,
    /// The thread as Slack has it, read for `read` (`None`: the read failed).
    ThreadRead {
        read: Read,
        messages: Option<Vec<HistoryMessage>>,
        /// For [`Read::EscalationCheck`] with Redis: another replica holds this thread's
        /// escalation claim.
        escalation_taken: bool,
    },
    RootEdited(UserText),
    RootDeleted,
    /// A reply in the thread by anyone but the bot and Assist.
    Reply {
        message: Message,
        mentioned: bool,
    },
    Reaction {
        user: UserId,
        reaction: String,
        ts: Ts,
    },
    /// Someone pressed "Get a human".
    GetHuman {
        user: UserId,
    },
    /// Someone pressed 👍 (`up`) or 👎 under one of the bot's answers.
    Feedback {
        user: UserId,
        message_ts: Ts,
        up: bool,
    },
    /// A [`Effect::Post`] ended: the messages posted (none when it failed).
    Posted(Vec<Ts>),
    /// A message by the bot's user appeared in the thread (posted by this process or another).
    BotPosted(Ts),
    /// The [`Effect::Settle`] wait is over.
    Settled,
    /// A released LLM answer ended.
    ReplyFinished {
        id: u64,
        outcome: ReplyOutcome,
    },
    /// Shutdown: answer what is being prepared without waiting longer for Assist.
    Drain,
}

/// What outage detection said about this ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum OutageVerdict {
    /// Nothing unusual (or detection did not answer): answer as always.
    Normal,
    /// Part of an outage whose first thread is `first`; `notice` is what to tell the
    /// requester instead of steps (none for the first thread itself).
    Part { first: Ts, notice: Option<String> },
}

/// How a released LLM answer ended.
#[derive(Debug)]
pub enum ReplyOutcome {
    /// The LLM answered: its Markdown (for the conversation) and the messages posted.
    Answered { markdown: String, posted: Vec<Ts> },
    /// The LLM failed: the fallback (mrkdwn) and the messages posted.
    FellBack { mrkdwn: String, posted: Vec<Ts> },
}

/// Why the thread is read from Slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Assist's card may have gone to another socket or replica.
    AssistCard,
    /// Before acting on a follow-up: a person from IT, or another replica, may have written.
    FollowUp,
    /// Before escalating: a restart or another replica may have escalated already.
    EscalationCheck,
}

/// How a reply is posted: troubleshooting answers carry the "Get a human" and feedback buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    Answer,
    Plain,
}

/// Where a feedback vote came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Reaction,
    Button,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Reaction => "reaction",
            Via::Button => "button",
        }
    }
}

/// A counter for the operator's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// A first answer was given, in this category.
    Ticket(Category),
    Takeover,
    Resolution,
    Escalation(Trigger),
    Feedback {
        category: Category,
        up: bool,
        via: Via,
    },
}

/// What an LLM answer is to be written from; the actor builds the prompt from it.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptRequest {
    /// Identifies the answer in [`Input::ReplyFinished`].
    pub id: u64,
    /// The conversation (redacted; messages with secrets left out), Assist's card as context.
    pub turns: Vec<Turn>,
    /// The earlier answer failed: ask for a different approach.
    pub second_approach: bool,
    /// The ticket's question, to pick the knowledge articles.
    pub question: UserText,
    /// Similar past tickets.
    pub similar: Vec<Similar>,
}

/// What the actor is to do.
#[derive(Debug, PartialEq)]
pub enum Effect {
    /// "is looking into it…" under the thread.
    SetStatus,
    /// A reaction marker on the root (only when `slack.reaction_markers` is on).
    Mark(&'static str),
    /// A message only `user` sees, in the thread.
    Ephemeral {
        user: UserId,
        text: String,
    },
    /// Find similar past tickets for `query`, and when `classify` is set, ask the LLM for a
    /// one-word triage of that (redacted) text; answer with [`Input::Prepared`].
    Prepare {
        version: u32,
        query: UserText,
        classify: Option<String>,
    },
    /// Report a technical ticket to outage detection; answer with [`Input::OutageChecked`].
    CheckOutage {
        version: u32,
        symptom: String,
        title: String,
        at: f64,
    },
    /// Start writing an LLM answer (it is posted only once released).
    StartReply(PromptRequest),
    /// Drop the LLM answer `id` (the question changed before it was released).
    CancelReply {
        id: u64,
    },
    /// Let the LLM answer `id` appear in the thread; post `fallback` (mrkdwn) if the LLM fails.
    /// `state` goes on the message. Answer with [`Input::ReplyFinished`].
    Release {
        id: u64,
        fallback: String,
        state: ThreadState,
        /// The employee's message it answers (the oldest waiting employee is served first).
        since: Option<Ts>,
    },
    /// Post `text` (mrkdwn) in the thread with `state`; answer with [`Input::Posted`].
    Post {
        text: String,
        kind: ReplyKind,
        state: ThreadState,
        /// The employee's message it answers, if it answers one.
        since: Option<Ts>,
    },
    /// Read the thread from Slack; answer with [`Input::ThreadRead`].
    ReadThread(Read),
    /// Tell the past-ticket index how the ticket stands.
    Record {
        ending: Ending,
        resolution: Option<String>,
    },
    /// The root was deleted: the past-ticket index forgets the ticket.
    Forget,
    Count(Count),
    /// This thread's feedback votes on `message` changed: these are the counts given in this
    /// process (the actor adds what Slack already holds and writes the sum).
    WriteVotes {
        message: Ts,
        up: u64,
        down: u64,
        /// The vote just cast (with Redis, counted there across replicas).
        voter: UserId,
        vote_up: bool,
    },
    /// Deliver [`Input::AssistWaitOver`] after this many seconds.
    WaitForAssist {
        secs: u64,
    },
    /// Another process posts as this bot: replicas share the channel.
    PeerSeen,
    /// Deliver [`Input::Settled`] after this many milliseconds.
    Settle {
        ms: u64,
    },
    /// The thread's work is over.
    Stop,
}

/// The prepared first answer.
#[derive(Debug)]
enum Draft {
    /// Not ready yet (the LLM is classifying, outage detection is asked), or resumed.
    Pending,
    /// Composed when posted, because it names the assignee.
    Acknowledgement,
    /// From the knowledge base, composed when posted (it names the ticket).
    Offline,
    /// Part of an outage declared in another thread: what to tell the requester instead.
    KnownIssue(String),
    /// The LLM is writing answer `id`; released when the first answer is due.
    Live(u64),
    /// Not a ticket: a short pointer, or nothing (`[triage] not_ticket`).
    NotTicket(Option<String>),
}

/// An answer from the knowledge base, and what giving it notes for the escalation brief.
#[derive(Debug, Clone)]
struct OfflineAnswer {
    text: String,
    tried: Vec<String>,
    /// Whether the article's second approach has been given, once this answer is.
    gave_alternative: bool,
}

/// The LLM answer in flight: what it notes if it comes, and the offline answer if it fails.
#[derive(Debug)]
struct InFlight {
    id: u64,
    note: String,
    fallback: OfflineAnswer,
}

/// A requester's follow-up, read once when it arrives.
#[derive(Debug)]
struct FollowUp {
    message: Message,
    mentioned: bool,
    outcome: Outcome,
}

/// One ticket thread's state: who asked what, Assist's card, the conversation so far, the
/// phase, and the turn in progress.
#[derive(Debug)]
pub struct Conversation {
    root: Ts,
    requester: UserId,
    question: UserText,
    triage: Triage,
    card: AssistCard,
    assist_seen: bool,
    wait_over: bool,
    draft: Draft,
    /// Bumped when the question changes, so a stale preparation is discarded.
    draft_version: u32,
    /// The best article for the question (offline answers, the brief): its index in the
    /// knowledge base, not a copy (a copy is ~3 KB in each of thousands of threads).
    article: Option<usize>,
    gave_alternative: bool,
    /// The conversation as sent to the LLM (redacted; messages with secrets left out).
    turns: Vec<(Role, String)>,
    /// Short descriptions of what the bot suggested, for the escalation brief.
    tried: Vec<String>,
    similar: Vec<Similar>,
    /// The latest troubleshooting answer posted (the fix, if the requester confirms it).
    last_answer: Option<String>,
    failed_attempts: u32,
    escalated: bool,
    phase: Phase,
    /// The bot's messages in this thread (a 👎 counts only on these).
    bot_messages: HashSet<Ts>,
    /// The messages this process posted here (the rest of `bot_messages` came from Slack or
    /// another replica).
    own_posts: HashSet<Ts>,
    /// A turn (LLM answer, read of the thread, post) is running.
    busy: bool,
    /// Follow-ups waiting for the running turn, oldest first.
    queue: VecDeque<FollowUp>,
    /// The follow-up whose read of the thread is running.
    reading: Option<FollowUp>,
    /// The trigger of the escalation being checked against Slack.
    escalating: Option<Trigger>,
    warned_about_secret: bool,
    /// The id of the latest LLM answer asked for.
    reply_seq: u64,
    in_flight: Option<InFlight>,
    /// 👎s on messages not known as the bot's while a post was in flight: a quick reaction can
    /// overtake the post's HTTP response. Checked when the post returns.
    early_reactions: Vec<(UserId, Ts, bool)>,
    /// The bot's messages seen while a post of ours was in flight: ours or another replica's,
    /// told apart when the post returns.
    unclaimed: Vec<Ts>,
    /// Another replica has posted in this thread: read it back before acting.
    shared: bool,
    /// The employee's message the turn in progress answers (the root for the first answer).
    answering: Option<Ts>,
    /// Feedback-button votes given in this process: message → voter → 👍.
    votes: HashMap<Ts, HashMap<UserId, bool>>,
    /// Whether this ticket was reported to outage detection yet.
    outage_checked: bool,
    outage: Option<OutageRef>,
}

impl Conversation {
    /// A new ticket posted as `root` (which has an author: the router starts threads only for
    /// those).
    pub fn new(w: &World, root: Message) -> Conversation {
        let triage = w.rules.classify(root.text.expose());
        let answering = Some(root.ts.clone());
        Conversation {
            requester: root.user.clone().unwrap_or_else(|| UserId::from("")),
            root: root.ts,
            question: root.text,
            triage,
            card: AssistCard::default(),
            assist_seen: false,
            wait_over: false,
            draft: Draft::Pending,
            draft_version: 0,
            article: None,
            gave_alternative: false,
            turns: Vec::new(),
            tried: Vec::new(),
            similar: Vec::new(),
            last_answer: None,
            failed_attempts: 0,
            escalated: false,
            phase: Phase::Preparing,
            bot_messages: HashSet::new(),
            own_posts: HashSet::new(),
            busy: false,
            queue: VecDeque::new(),
            reading: None,
            escalating: None,
            warned_about_secret: false,
            reply_seq: 0,
            in_flight: None,
            early_reactions: Vec::new(),
            unclaimed: Vec::new(),
            shared: false,
            answering,
            votes: HashMap::new(),
            outage_checked: false,
            outage: None,
        }
    }

    /// A thread read back from Slack (after a restart, an idle stop, or on another replica):
    /// resumes from the state on the bot's latest reply. `None` when the bot never answered it,
    /// or its state was written by a newer itbot (not guessed at).
    pub fn resume(w: &World, root: Message, replies: &[HistoryMessage]) -> Option<Conversation> {
        root.user.as_ref()?;
        let latest =
            replies.iter().rev().filter(|m| m.message.user.as_ref() == Some(w.bot)).find_map(|m| {
                m.metadata
                    .as_ref()
                    .filter(|m| matches!(m, Metadata::ThreadState(_) | Metadata::NewerThreadState { .. }))
            })?;
        let state = match latest {
            Metadata::ThreadState(s) => s,
            Metadata::NewerThreadState { v } => {
                tracing::warn!(thread = %root.ts, v, "thread state written by a newer itbot; leaving the thread alone");
                return None;
            }
            _ => return None,
        };
        let mut c = Conversation::new(w, root);
        c.card = AssistCard { ticket: state.ticket.clone(), assignee: state.assignee.clone() };
        c.assist_seen = true;
        c.wait_over = true;
        c.failed_attempts = state.attempts;
        c.escalated = state.escalated;
        c.gave_alternative = state.gave_alternative;
        if let Some(category) = state.category {
            c.triage.category = category;
        }
        c.tried = state.tried.clone();
        c.article =
            state.article.as_ref().and_then(|slug| w.kb.articles().iter().position(|a| &a.slug == slug));
        c.outage = state.outage.clone();
        c.outage_checked = true;
        c.phase = match state.phase {
            _ if c.escalated => Phase::Escalated,
            Phase::Preparing => Phase::Helping,
            p => p,
        };
        // The conversation so far, and whether a person from IT has written since.
        c.turns = redacted(c.question.expose()).into_iter().map(|q| (Role::User, q)).collect();
        for m in replies.iter().map(|r| &r.message) {
            let author = m.user.as_ref();
            if author == Some(w.bot) {
                c.bot_messages.insert(m.ts.clone());
                c.turns.push((Role::Assistant, strip_footer(m.text.expose())));
            } else if author == Some(&c.requester) {
                c.turns.extend(redacted(m.text.expose()).map(|t| (Role::User, t)));
            } else if author.is_some_and(|a| c.is_staff(w, a)) && m.bot_id.is_none() {
                c.phase = Phase::HumanTookOver;
            }
        }
        Some(c)
    }

    pub fn root(&self) -> &Ts {
        &self.root
    }

    pub fn requester(&self) -> &UserId {
        &self.requester
    }

    /// The ticket's question (the root, with details added before the first answer).
    pub fn question(&self) -> &UserText {
        &self.question
    }

    /// Still waiting for Assist's card before the first answer.
    pub fn waiting_for_assist(&self) -> bool {
        self.phase == Phase::Preparing && !self.assist_seen && !self.wait_over
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn triage(&self) -> &Triage {
        &self.triage
    }

    pub fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }

    pub fn escalated(&self) -> bool {
        self.escalated
    }

    /// A turn is running or follow-ups wait.
    pub fn in_flight(&self) -> bool {
        self.busy || !self.queue.is_empty()
    }

    /// Resolved, acknowledged, escalated or with a person, and nothing in flight: Slack holds
    /// all the thread needs, so it may leave memory sooner.
    pub fn settled(&self) -> bool {
        matches!(self.phase, Phase::Resolved | Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver)
            && !self.in_flight()
    }

    /// Whether shutdown must still wait for this thread.
    pub fn draining(&self) -> bool {
        self.in_flight() || self.phase == Phase::Preparing
    }

    /// What happened; returns what to do, in order.
    pub fn on(&mut self, w: &World, input: Input) -> Vec<Effect> {
        let mut fx = Vec::new();
        match input {
            Input::Started => self.start(w, &mut fx),
            Input::Prepared { version, similar, category } => {
                if version == self.draft_version {
                    self.similar = similar;
                    if let Some(category) = category {
                        self.triage.category = category;
                        self.triage.matched = vec!["llm".into()];
                        tracing::info!(thread = %self.root, category = category.as_str(), "triage settled by the LLM");
                    }
                    self.prepare_answer(w, &mut fx);
                }
            }
            Input::OutageChecked { version, verdict } => {
                if version == self.draft_version {
                    self.on_outage(w, verdict, &mut fx);
                }
            }
            Input::Assist(card) => {
                tracing::info!(thread = %self.root, ticket = card.ticket.is_some(), assignee = card.assignee.is_some(), "assist card");
                self.card.ticket = self.card.ticket.take().or(card.ticket);
                self.card.assignee = self.card.assignee.take().or(card.assignee);
                self.assist_seen = true;
                self.maybe_post_first(w, &mut fx);
            }
            Input::AssistWaitOver => {
                let waiting = self.phase == Phase::Preparing && !self.assist_seen;
                if waiting && self.must_read(w) {
                    // The card may have gone to another replica's socket.
                    fx.push(Effect::ReadThread(Read::AssistCard));
                } else {
                    if waiting {
                        tracing::info!(thread = %self.root, "assist did not post in time; answering anyway");
                    }
                    self.wait_over = true;
                    self.maybe_post_first(w, &mut fx);
                }
            }
            Input::ThreadRead { read, messages, escalation_taken } => {
                self.on_thread_read(w, read, messages, escalation_taken, &mut fx)
            }
            Input::RootEdited(text) => {
                if self.phase == Phase::Preparing {
                    tracing::info!(thread = %self.root, "root edited before the answer; preparing again");
                    self.triage = w.rules.classify(text.expose());
                    self.question = text;
                    self.prepare(w, &mut fx);
                }
            }
            Input::RootDeleted => {
                tracing::info!(thread = %self.root, "root deleted; thread closed");
                fx.push(Effect::Forget);
                fx.push(Effect::Stop);
            }
            Input::Reply { message, mentioned } => self.on_reply(w, message, mentioned, &mut fx),
            Input::Reaction { user, reaction, ts } => self.on_reaction(w, user, &reaction, ts, &mut fx),
            Input::GetHuman { user } => self.on_get_human(w, user, &mut fx),
            Input::Feedback { user, message_ts, up } => self.on_feedback(w, user, message_ts, up, &mut fx),
            Input::Posted(posted) => {
                self.posted(posted);
                self.turn_over(w, &mut fx);
            }
            Input::Settled => {
                if let Some(follow_up) = self.reading.take() {
                    self.busy = false;
                    self.handle_follow_up(w, follow_up, &mut fx);
                }
            }
            Input::BotPosted(ts) => {
                if self.own_posts.contains(&ts) {
                    return fx;
                }
                if self.busy {
                    // Our own post's event can overtake its HTTP response.
                    if self.unclaimed.len() < MAX_EARLY_REACTIONS {
                        self.unclaimed.push(ts);
                    }
                } else {
                    self.foreign_post(ts, &mut fx);
                }
            }
            Input::ReplyFinished { id, outcome } => self.on_reply_finished(w, id, outcome, &mut fx),
            Input::Drain => {
                if self.phase == Phase::Preparing && !self.wait_over {
                    self.wait_over = true;
                    self.maybe_post_first(w, &mut fx);
                }
            }
        }
        fx
    }

    /// Messages this process posted.
    fn posted(&mut self, posted: Vec<Ts>) {
        self.own_posts.extend(posted.iter().cloned());
        self.bot_messages.extend(posted);
    }

    /// A bot post this process did not make: another replica answers here too.
    fn foreign_post(&mut self, ts: Ts, fx: &mut Vec<Effect>) {
        tracing::info!(thread = %self.root, "the bot posted here from another process; reading the thread before acting");
        self.bot_messages.insert(ts);
        self.shared = true;
        fx.push(Effect::PeerSeen);
    }

    /// Slack's copy of the thread may hold what this process has not heard: only when another
    /// replica writes in the channel. With one replica, every event reaches this process, so
    /// the common path reads nothing.
    fn must_read(&self, w: &World) -> bool {
        w.peers || self.shared
    }

    fn is_staff(&self, w: &World, user: &UserId) -> bool {
        self.card.assignee.as_ref() == Some(user)
            || w.settings.escalation.it_staff.iter().any(|id| id == user.as_str())
    }

    fn article<'w>(&self, w: &World<'w>) -> Option<&'w Article> {
        self.article.and_then(|i| w.kb.articles().get(i))
    }

    /// The durable state written on the bot's next message.
    pub fn state(&self, w: &World) -> ThreadState {
        ThreadState {
            v: STATE_VERSION,
            phase: self.phase,
            category: Some(self.triage.category),
            ticket: self.card.ticket.clone(),
            assignee: self.card.assignee.clone(),
            attempts: self.failed_attempts,
            escalated: self.escalated,
            resolved: self.phase == Phase::Resolved,
            article: self.article(w).map(|a| a.slug.clone()),
            gave_alternative: self.gave_alternative,
            tried: self.tried.clone(),
            outage: self.outage.clone(),
            feedback: None,
            llm: None,
        }
    }

    fn set_phase(&mut self, phase: Phase, fx: &mut Vec<Effect>) {
        if self.phase == phase {
            return;
        }
        match phase {
            Phase::HumanTookOver => fx.push(Effect::Count(Count::Takeover)),
            Phase::Resolved => fx.push(Effect::Count(Count::Resolution)),
            _ => {}
        }
        tracing::info!(thread = %self.root, from = self.phase.as_str(), to = phase.as_str(), "phase");
        self.phase = phase;
    }

    fn mark(&self, w: &World, name: &'static str, fx: &mut Vec<Effect>) {
        if w.settings.slack.reaction_markers {
            fx.push(Effect::Mark(name));
        }
    }

    /// Redacted text for the LLM, or `None` when it holds a credential (never sent); the
    /// requester is warned privately, once.
    fn for_llm(&mut self, text: &str, fx: &mut Vec<Effect>) -> Option<String> {
        let r = redacted(text);
        if r.is_none() && !self.warned_about_secret {
            self.warned_about_secret = true;
            tracing::warn!(thread = %self.root, "message contains a credential; requester warned, text withheld");
            fx.push(Effect::Ephemeral { user: self.requester.clone(), text: SECRET_WARNING.into() });
        }
        r
    }

    fn record(&self, ending: Ending, resolution: Option<String>, fx: &mut Vec<Effect>) {
        fx.push(Effect::Record { ending, resolution });
    }

    fn start(&mut self, w: &World, fx: &mut Vec<Effect>) {
        if self.phase != Phase::Preparing {
            // Resumed from Slack: nothing to prepare.
            return;
        }
        if self.triage.category == Category::NotTicket {
            // Thanks, an FYI, a who/where question: no "looking into it", no wait for Assist,
            // no steps. (An unsure triage is never "not a ticket".)
            tracing::info!(thread = %self.root, confidence = self.triage.confidence, "not a ticket");
            self.wait_over = true;
            self.prepare_answer(w, fx);
            return;
        }
        if w.settings.slack.status_indicator {
            fx.push(Effect::SetStatus);
        }
        self.mark(w, "eyes", fx);
        tracing::info!(
            thread = %self.root,
            category = self.triage.category.as_str(),
            confident = self.triage.confident,
            rules = self.triage.matched.len(),
            "ticket triaged"
        );
        self.prepare(w, fx);
        fx.push(Effect::WaitForAssist { secs: w.settings.assist.wait_secs });
    }

    /// Starts preparing the first answer: the best article, similar past tickets, and (when the
    /// rules are unsure) a one-word LLM triage.
    fn prepare(&mut self, w: &World, fx: &mut Vec<Effect>) {
        self.draft_version += 1;
        if let Draft::Live(id) = std::mem::replace(&mut self.draft, Draft::Pending) {
            fx.push(Effect::CancelReply { id });
        }
        let best = w.kb.search(self.question.expose(), 1).first().map(|h| h.article.slug.clone());
        self.article = best.and_then(|slug| w.kb.articles().iter().position(|a| a.slug == slug));
        let question = self.question.clone();
        let for_llm = self.for_llm(question.expose(), fx);
        self.turns = for_llm.iter().map(|q| (Role::User, q.clone())).collect();
        let classify = for_llm.filter(|_| w.llm && !self.triage.confident);
        fx.push(Effect::Prepare { version: self.draft_version, query: question, classify });
    }

    /// Prepares the first answer for the category. A technical problem that matches an article
    /// is reported to outage detection first (once): part of an outage, the requester is told
    /// it is known instead of being walked through fixes that cannot work.
    fn prepare_answer(&mut self, w: &World, fx: &mut Vec<Effect>) {
        if self.triage.category == Category::NotTicket {
            self.draft =
                Draft::NotTicket(compose::not_ticket_reply(&w.settings.triage, self.question.expose()));
            self.maybe_post_first(w, fx);
            return;
        }
        if self.triage.category != Category::Technical {
            self.draft = Draft::Acknowledgement;
            self.maybe_post_first(w, fx);
            return;
        }
        let detect = w.settings.outage.min_reporters > 0 && !self.outage_checked;
        if let Some(article) = self.article(w).filter(|_| detect) {
            self.outage_checked = true;
            fx.push(Effect::CheckOutage {
                version: self.draft_version,
                symptom: article.slug.clone(),
                title: article.title.clone(),
                at: self.root.as_str().parse().unwrap_or(0.0),
            });
            return;
        }
        self.start_answer(w, fx);
    }

    fn on_outage(&mut self, w: &World, verdict: OutageVerdict, fx: &mut Vec<Effect>) {
        if let OutageVerdict::Part { first, notice } = verdict {
            let symptom = self.article(w).map(|a| a.slug.clone()).unwrap_or_default();
            self.outage = Some(OutageRef { first, symptom });
            if let Some(notice) = notice {
                self.draft = Draft::KnownIssue(notice);
                self.maybe_post_first(w, fx);
                return;
            }
        }
        self.start_answer(w, fx);
    }

    /// The first troubleshooting answer: the LLM's, or the knowledge base's without one.
    fn start_answer(&mut self, w: &World, fx: &mut Vec<Effect>) {
        self.draft = match self.start_reply(w, fx) {
            Some(id) => Draft::Live(id),
            None => Draft::Offline,
        };
        self.maybe_post_first(w, fx);
    }

    /// Starts an LLM answer to the conversation so far (`None` without an LLM, or with nothing
    /// the requester wrote that may be sent).
    fn start_reply(&mut self, w: &World, fx: &mut Vec<Effect>) -> Option<u64> {
        if !w.llm {
            return None;
        }
        let mut turns: Vec<Turn> = Vec::with_capacity(self.turns.len() + 1);
        if let Some(ticket) = self.card.ticket.as_deref().filter(|_| self.assist_seen) {
            // Assist's card is context: the ticket key helps, the names are not needed.
            let note = format!("Ticketing bot: ticket {ticket} opened; an IT person is assigned.");
            turns.extend(Turn::from_slack(Speaker::Context, &note));
        }
        turns.extend(self.turns.iter().filter_map(|(role, text)| {
            let speaker = if *role == Role::Assistant { Speaker::Bot } else { Speaker::Requester };
            Turn::from_slack(speaker, text)
        }));
        if !turns.iter().any(|t| t.speaker == Speaker::Requester) {
            return None;
        }
        self.reply_seq += 1;
        fx.push(Effect::StartReply(PromptRequest {
            id: self.reply_seq,
            turns,
            second_approach: self.failed_attempts > 0,
            question: self.question.clone(),
            similar: self.similar.clone(),
        }));
        Some(self.reply_seq)
    }

    /// Lets LLM answer `id` appear, noting `note` in what was tried if it comes and `fallback`'s
    /// notes if the LLM fails; the turn ends with [`Input::ReplyFinished`].
    fn release(&mut self, w: &World, id: u64, note: &str, fallback: OfflineAnswer, fx: &mut Vec<Effect>) {
        self.busy = true;
        // The message holding the answer says what it will most likely be: the LLM's.
        let mut state = self.state(w);
        state.tried.push(note.to_string());
        let since = self.answering.clone();
        fx.push(Effect::Release { id, fallback: compose::llm_unavailable(&fallback.text), state, since });
        self.in_flight = Some(InFlight { id, note: note.to_string(), fallback });
    }

    fn on_reply_finished(&mut self, w: &World, id: u64, outcome: ReplyOutcome, fx: &mut Vec<Effect>) {
        if id != self.reply_seq {
            // An answer to a question that changed; it was cancelled before it was released.
            return;
        }
        let Some(flight) = self.in_flight.take().filter(|f| f.id == id) else { return };
        match outcome {
            ReplyOutcome::Answered { markdown, posted } => {
                tracing::info!(thread = %self.root, parts = posted.len(), answer_len = markdown.len(), "LLM answer posted");
                self.tried.push(flight.note);
                self.last_answer = Some(markdown_to_mrkdwn(&markdown));
                self.turns.push((Role::Assistant, markdown));
                self.posted(posted);
            }
            ReplyOutcome::FellBack { mrkdwn, posted } => {
                tracing::warn!(thread = %self.root, parts = posted.len(), "LLM failed; the offline answer was posted");
                self.apply(flight.fallback);
                self.last_answer = Some(mrkdwn);
                self.posted(posted);
            }
        }
        self.turn_over(w, fx);
    }

    /// Keeps what giving an offline answer notes.
    fn apply(&mut self, answer: OfflineAnswer) {
        self.tried.extend(answer.tried);
        self.gave_alternative = answer.gave_alternative;
    }

    /// The most relevant resolved past ticket with a recorded fix, for the offline answer.
    fn past_fix(&self, w: &World) -> Option<compose::PastFix> {
        let best = crate::tickets::fix_to_quote(&self.similar)?;
        // Redacted again when quoted: the index may have kept it before members' names loaded.
        let fix = redact(best.resolution.as_ref()?.expose());
        if fix.secret_found {
            return None;
        }
        Some(compose::PastFix {
            age: crate::tickets::age(&best.thread, w.now),
            by_person: best.ending == Ending::PersonResolved,
            fix: fix.text,
        })
    }

    /// The first answer from the knowledge base (and a similar ticket's fix).
    fn offline_first(&self, w: &World) -> OfflineAnswer {
        let article = self.article(w);
        let past = self.past_fix(w);
        let mut tried = Vec::new();
        if let Some(a) = article {
            tried.push(format!("steps from *{}*", a.title));
        }
        if let Some(p) = &past {
            tried.push(format!("the fix of a similar ticket from {}", p.age));
        }
        OfflineAnswer {
            text: compose::offline_first_answer(article, self.card.ticket.as_deref(), past.as_ref()),
            tried,
            gave_alternative: self.gave_alternative,
        }
    }

    /// The next answer without the LLM: the article's second approach after a failure, or the
    /// article that fits the new details. A requester who was told their problem is part of an
    /// outage and asks for the usual fixes gets the first answer's steps.
    fn offline_turn(&self, w: &World, text: &str, failed: bool) -> OfflineAnswer {
        if self.outage.is_some() && self.last_answer.is_none() && !failed {
            return self.offline_first(w);
        }
        let article = self.article(w);
        let plain = |text| OfflineAnswer { text, tried: Vec::new(), gave_alternative: self.gave_alternative };
        if failed && !self.gave_alternative {
            return OfflineAnswer {
                text: compose::offline_retry_answer(article),
                tried: article
                    .map(|a| format!("the second approach from *{}*", a.title))
                    .into_iter()
                    .collect(),
                gave_alternative: true,
            };
        }
        if failed {
            return plain(compose::offline_retry_answer(None));
        }
        let found = w.kb.search(text, 1).first().map(|h| h.article);
        let other = found.filter(|a| Some(&a.slug) != article.map(|x| &x.slug));
        plain(compose::offline_follow_up(other))
    }

    /// Posts the first answer once it is ready and Assist has posted (or the wait is over).
    fn maybe_post_first(&mut self, w: &World, fx: &mut Vec<Effect>) {
        if self.phase != Phase::Preparing || !(self.assist_seen || self.wait_over) {
            return;
        }
        let (text, kind, next) = match &self.draft {
            Draft::Pending => return,
            Draft::Live(id) => {
                let id = *id;
                self.set_phase(Phase::Helping, fx);
                tracing::info!(thread = %self.root, category = self.triage.category.as_str(), assist = self.assist_seen, "first answer released");
                fx.push(Effect::Count(Count::Ticket(self.triage.category)));
                let fallback = self.offline_first(w);
                self.release(w, id, "first troubleshooting steps", fallback, fx);
                self.record(Ending::Unknown, None, fx);
                return;
            }
            Draft::Acknowledgement => {
                let (assignee, ticket) = (self.card.assignee.as_ref(), self.card.ticket.as_deref());
                let text = match self.triage.category {
                    Category::Access => compose::access_ack(assignee, ticket),
                    _ => compose::change_ack(assignee, ticket),
                };
                (text, ReplyKind::Plain, Phase::Acknowledged)
            }
            Draft::Offline => {
                let answer = self.offline_first(w);
                let text = answer.text.clone();
                self.apply(answer);
                (text, ReplyKind::Answer, Phase::Helping)
            }
            Draft::KnownIssue(text) => (text.clone(), ReplyKind::Plain, Phase::Acknowledged),
            Draft::NotTicket(reply) => {
                // Not counted, not recorded as a past ticket, no buttons: the thread is left
                // to people. Acknowledged keeps the bot quiet there unless it is mentioned or a
                // person is asked for.
                let reply = reply.clone();
                self.set_phase(Phase::Acknowledged, fx);
                tracing::info!(thread = %self.root, replied = reply.is_some(), "not a ticket");
                match reply {
                    Some(text) => self.post(w, text, ReplyKind::Plain, fx),
                    None => fx.push(Effect::Stop),
                }
                return;
            }
        };
        self.set_phase(next, fx);
        tracing::info!(
            thread = %self.root,
            category = self.triage.category.as_str(),
            assist = self.assist_seen,
            llm = w.llm,
            answer_len = text.len(),
            "first answer"
        );
        fx.push(Effect::Count(Count::Ticket(self.triage.category)));
        self.post(w, text, kind, fx);
        self.record(Ending::Unknown, None, fx);
    }

    /// Posts `text`; the turn ends with [`Input::Posted`], then queued follow-ups run.
    fn post(&mut self, w: &World, text: String, kind: ReplyKind, fx: &mut Vec<Effect>) {
        self.busy = true;
        if kind == ReplyKind::Answer {
            self.last_answer = Some(text.clone());
        }
        fx.push(Effect::Post { text, kind, state: self.state(w), since: self.answering.clone() });
    }

    /// The running turn ended: 👎s that overtook the post count now, then queued follow-ups run.
    fn turn_over(&mut self, w: &World, fx: &mut Vec<Effect>) {
        self.busy = false;
        for ts in std::mem::take(&mut self.unclaimed) {
            if !self.own_posts.contains(&ts) {
                self.foreign_post(ts, fx);
            }
        }
        for (user, ts, up) in std::mem::take(&mut self.early_reactions) {
            if self.bot_messages.contains(&ts) {
                self.on_thumb(w, user, up, fx);
            }
        }
        while !self.busy {
            let Some(next) = self.queue.pop_front() else { return };
            self.on_requester_message(w, next, fx);
        }
    }

    fn on_reply(&mut self, w: &World, message: Message, mentioned: bool, fx: &mut Vec<Effect>) {
        let Some(author) = message.user.clone() else { return };
        if author != self.requester {
            if self.is_staff(w, &author) {
                if self.phase != Phase::HumanTookOver {
                    tracing::info!(thread = %self.root, "a person from IT took over; the bot goes quiet");
                    self.set_phase(Phase::HumanTookOver, fx);
                }
                // What IT says is the best record of the fix.
                if message.text.expose().chars().count() >= FIX_CHARS {
                    self.record(Ending::PersonResolved, Some(message.text.expose().to_string()), fx);
                }
            } else if mentioned && compose::is_help_request(message.text.expose()) {
                self.answering = Some(message.ts.clone());
                self.post(w, compose::help_text(w.channel_name), ReplyKind::Plain, fx);
            }
            return;
        }
        if self.phase == Phase::Preparing {
            // Details added before the first answer shape the next turns.
            self.question = UserText::new(format!("{}\n{}", self.question.expose(), message.text.expose()));
            return;
        }
        let outcome = w.rules.outcome(message.text.expose());
        let follow_up = FollowUp { message, mentioned, outcome };
        if self.busy {
            self.queue.push_back(follow_up);
            return;
        }
        self.on_requester_message(w, follow_up, fx);
    }

    /// Acts on a follow-up. When another replica writes in the channel, the thread is read back
    /// first: events reach replicas in no guaranteed order, so Slack's copy is the truth about
    /// whether a person from IT already wrote, or another replica counted an attempt or
    /// escalated. With one replica nothing is read.
    fn on_requester_message(&mut self, w: &World, follow_up: FollowUp, fx: &mut Vec<Effect>) {
        let quiet = matches!(self.phase, Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver);
        if quiet && !follow_up.mentioned && follow_up.outcome != Outcome::WantsHuman {
            return;
        }
        self.busy = true;
        self.reading = Some(follow_up);
        if self.must_read(w) {
            fx.push(Effect::ReadThread(Read::FollowUp));
        } else {
            // Nothing to read: only a moment for events that overtook each other to arrive.
            fx.push(Effect::Settle { ms: SETTLE_MS });
        }
    }

    fn on_thread_read(
        &mut self,
        w: &World,
        read: Read,
        messages: Option<Vec<HistoryMessage>>,
        escalation_taken: bool,
        fx: &mut Vec<Effect>,
    ) {
        match read {
            Read::AssistCard => {
                if self.phase != Phase::Preparing {
                    return;
                }
                let card = messages
                    .iter()
                    .flatten()
                    .map(|m| &m.message)
                    .find(|m| m.bot_id.is_some() && w.assist.is_assist(m))
                    .map(|m| w.assist.read(m));
                if let Some(card) = card {
                    self.card.ticket = self.card.ticket.take().or(card.ticket);
                    self.card.assignee = self.card.assignee.take().or(card.assignee);
                    self.assist_seen = true;
                }
                if !self.assist_seen {
                    tracing::info!(thread = %self.root, "assist did not post in time (nor is its card in slack); answering anyway");
                }
                self.wait_over = true;
                self.maybe_post_first(w, fx);
            }
            Read::FollowUp => {
                let Some(follow_up) = self.reading.take() else { return };
                self.busy = false;
                match &messages {
                    Some(messages) => self.adopt(w, messages, &follow_up.message.ts, fx),
                    None => {
                        tracing::warn!(thread = %self.root, "thread not read back; acting on what this replica knows")
                    }
                }
                self.handle_follow_up(w, follow_up, fx);
            }
            Read::EscalationCheck => {
                let Some(trigger) = self.escalating.take() else { return };
                self.busy = false;
                let elsewhere = escalation_taken
                    || messages.iter().flatten().any(|m| {
                        m.message.user.as_ref() == Some(w.bot)
                            && m.thread_state().is_some_and(|s| s.escalated)
                    });
                // Assist's card may have reached another replica: the brief names the assignee.
                if self.card.assignee.is_none() {
                    let card = messages
                        .iter()
                        .flatten()
                        .map(|h| &h.message)
                        .find(|m| m.bot_id.is_some() && m.thread_ts.is_some() && w.assist.is_assist(m));
                    if let Some(m) = card {
                        let card = w.assist.read(m);
                        self.card.ticket = self.card.ticket.take().or(card.ticket);
                        self.card.assignee = card.assignee;
                    }
                }
                self.set_phase(Phase::Escalated, fx);
                if elsewhere {
                    tracing::info!(thread = %self.root, trigger = trigger.as_str(), "escalated earlier (restart or another replica); not again");
                    self.turn_over(w, fx);
                    return;
                }
                self.post_escalation(w, trigger, fx);
            }
        }
    }

    /// Adopts what Slack's copy of the thread says that this process has not seen: a person
    /// from IT writing before `until`, another replica's count and escalation, Assist's card.
    fn adopt(&mut self, w: &World, messages: &[HistoryMessage], until: &Ts, fx: &mut Vec<Effect>) {
        let mut latest_state: Option<(&Ts, &ThreadState)> = None;
        for h in messages {
            let m = &h.message;
            if m.ts == self.root || m.ts.as_str() >= until.as_str() {
                continue;
            }
            if m.user.as_ref() == Some(w.bot) {
                if let Some(state) = h.thread_state() {
                    latest_state = Some((&m.ts, state));
                }
            } else if m.bot_id.is_some() {
                if self.card.assignee.is_none() && w.assist.is_assist(m) {
                    let card = w.assist.read(m);
                    self.card.ticket = self.card.ticket.take().or(card.ticket);
                    self.card.assignee = card.assignee;
                }
            } else if m.user.as_ref().is_some_and(|u| self.is_staff(w, u))
                && self.phase != Phase::HumanTookOver
            {
                tracing::info!(thread = %self.root, "a person from IT wrote first (read back from slack); the bot goes quiet");
                self.set_phase(Phase::HumanTookOver, fx);
            }
        }
        // The bot's latest reply came from another replica: its state is newer than ours.
        let Some((ts, state)) = latest_state.filter(|(ts, _)| !self.own_posts.contains(*ts)) else {
            return;
        };
        tracing::info!(thread = %self.root, "another replica answered here; adopting its state");
        self.bot_messages.insert(ts.clone());
        self.failed_attempts = self.failed_attempts.max(state.attempts);
        self.gave_alternative |= state.gave_alternative;
        self.tried = state.tried.clone();
        self.escalated |= state.escalated;
        let phase = if self.escalated {
            Some(Phase::Escalated)
        } else {
            Some(state.phase).filter(|p| *p != Phase::Preparing)
        };
        if let Some(phase) = phase.filter(|_| self.phase != Phase::HumanTookOver) {
            self.set_phase(phase, fx);
        }
    }

    fn handle_follow_up(&mut self, w: &World, f: FollowUp, fx: &mut Vec<Effect>) {
        self.decide_follow_up(w, f, fx);
        if !self.busy {
            // Nothing was started (the thread is with a person, or already escalated): the
            // next follow-up in the queue runs.
            self.turn_over(w, fx);
        }
    }

    fn decide_follow_up(&mut self, w: &World, f: FollowUp, fx: &mut Vec<Effect>) {
        self.answering = Some(f.message.ts.clone());
        if f.mentioned && compose::is_help_request(f.message.text.expose()) {
            self.post(w, compose::help_text(w.channel_name), ReplyKind::Plain, fx);
            return;
        }
        tracing::info!(thread = %self.root, phase = self.phase.as_str(), outcome = f.outcome.as_str(), mentioned = f.mentioned, "follow-up");
        match self.phase {
            Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver if !f.mentioned => {
                if f.outcome == Outcome::WantsHuman && self.phase == Phase::Acknowledged {
                    self.escalate(w, Trigger::Request, fx);
                }
                return;
            }
            Phase::Acknowledged | Phase::Escalated | Phase::HumanTookOver | Phase::Resolved => {
                let phase = if self.escalated { Phase::Escalated } else { Phase::Helping };
                self.set_phase(phase, fx);
            }
            Phase::Preparing | Phase::Helping | Phase::OfferedHuman => {}
        }
        match f.outcome {
            Outcome::WantsHuman => self.escalate(w, Trigger::Request, fx),
            Outcome::Worked => {
                self.set_phase(Phase::Resolved, fx);
                let fix = self.last_answer.as_deref().map(|a| a.replace(compose::HOW_TO_CONTINUE, ""));
                self.record(Ending::BotResolved, fix, fx);
                self.mark(w, "white_check_mark", fx);
                self.post(w, compose::closing(), ReplyKind::Plain, fx);
            }
            Outcome::Failed => {
                self.failed_attempts += 1;
                let max = w.settings.escalation.max_failed_attempts;
                if self.phase == Phase::OfferedHuman
                    || (self.failed_attempts >= max && w.settings.escalation.auto)
                {
                    self.escalate(w, Trigger::Attempts, fx);
                } else if self.failed_attempts >= max && !self.escalated {
                    self.set_phase(Phase::OfferedHuman, fx);
                    self.post(w, compose::offer_escalation(self.failed_attempts), ReplyKind::Answer, fx);
                } else {
                    self.next_turn(w, &f.message, true, fx);
                }
            }
            Outcome::Other => self.next_turn(w, &f.message, false, fx),
        }
    }

    /// Another answer, with the whole thread as context (LLM) or the next article section.
    fn next_turn(&mut self, w: &World, message: &Message, failed: bool, fx: &mut Vec<Effect>) {
        let text = self.for_llm(message.text.expose(), fx);
        let sendable = text.is_some();
        self.turns.extend(text.map(|t| (Role::User, t)));
        if self.turns.len() > MAX_TURNS {
            let excess = self.turns.len() - MAX_TURNS;
            self.turns.drain(..excess);
        }
        let offline = self.offline_turn(w, message.text.expose(), failed);
        let reply = if sendable { self.start_reply(w, fx) } else { None };
        let Some(id) = reply else {
            let text = offline.text.clone();
            self.apply(offline);
            self.post(w, text, ReplyKind::Answer, fx);
            return;
        };
        let note = if failed { "a different approach" } else { "answers to follow-up questions" };
        self.release(w, id, note, offline, fx);
    }

    /// Hands the thread to a person, once. A thread resumed after a restart knows from Slack
    /// whether it was escalated; when another replica writes here, the thread's state in Slack
    /// is read first, so that replica's escalation is respected.
    fn escalate(&mut self, w: &World, trigger: Trigger, fx: &mut Vec<Effect>) {
        if self.escalated {
            tracing::info!(thread = %self.root, trigger = trigger.as_str(), "already escalated; not again");
            if trigger != Trigger::Attempts {
                // Told privately, so repeated clicks or asks make no channel noise.
                fx.push(Effect::Ephemeral {
                    user: self.requester.clone(),
                    text: compose::ALREADY_ESCALATED.into(),
                });
            }
            return;
        }
        self.escalated = true;
        if !self.must_read(w) && !w.coordinated {
            self.set_phase(Phase::Escalated, fx);
            self.post_escalation(w, trigger, fx);
            return;
        }
        self.busy = true;
        self.escalating = Some(trigger);
        fx.push(Effect::ReadThread(Read::EscalationCheck));
    }

    fn post_escalation(&mut self, w: &World, trigger: Trigger, fx: &mut Vec<Effect>) {
        let fallback = &w.settings.escalation.fallback_mention;
        let mention = match &self.card.assignee {
            Some(a) => Some(format!("<@{a}>")),
            None if !fallback.is_empty() => Some(fallback.clone()),
            None => None,
        };
        tracing::info!(thread = %self.root, trigger = trigger.as_str(), assignee_known = self.card.assignee.is_some(), "escalation");
        self.record(Ending::Escalated, None, fx);
        fx.push(Effect::Count(Count::Escalation(trigger)));
        self.mark(w, "sos", fx);
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
        self.post(w, text, ReplyKind::Plain, fx);
    }

    fn on_reaction(&mut self, w: &World, user: UserId, reaction: &str, ts: Ts, fx: &mut Vec<Effect>) {
        let up = THUMBS_UP.contains(&reaction);
        if !up && !THUMBS_DOWN.contains(&reaction) {
            return;
        }
        if self.bot_messages.contains(&ts) {
            self.on_thumb(w, user, up, fx);
        } else if self.busy && self.early_reactions.len() < MAX_EARLY_REACTIONS {
            self.early_reactions.push((user, ts, up));
        }
    }

    /// A 👍 (feedback) or 👎 on one of the bot's messages.
    fn on_thumb(&mut self, w: &World, user: UserId, up: bool, fx: &mut Vec<Effect>) {
        if up {
            let category = self.triage.category;
            fx.push(Effect::Count(Count::Feedback { category, up: true, via: Via::Reaction }));
        } else {
            self.on_thumbs_down(w, user, fx);
        }
    }

    /// A 👎 on one of the bot's messages: the requester's escalates, anyone else's is feedback.
    fn on_thumbs_down(&mut self, w: &World, user: UserId, fx: &mut Vec<Effect>) {
        // A click or reaction waits in the order it came, behind employees who wrote.
        self.answering = None;
        fx.push(Effect::Count(Count::Feedback {
            category: self.triage.category,
            up: false,
            via: Via::Reaction,
        }));
        if user == self.requester {
            self.escalate(w, Trigger::ThumbsDown, fx);
        } else {
            tracing::info!(thread = %self.root, "thumbs down from someone else recorded as feedback");
        }
    }

    /// A feedback button: counted once per person and message (a changed vote replaces the
    /// earlier one); the requester's 👎 escalates like the reaction does, and anyone else is
    /// thanked privately.
    fn on_feedback(&mut self, w: &World, user: UserId, message_ts: Ts, up: bool, fx: &mut Vec<Effect>) {
        if !self.votes.contains_key(&message_ts) && self.votes.len() >= MAX_VOTED_MESSAGES {
            tracing::warn!(thread = %self.root, "too many voted messages in one thread; vote not recorded");
            return;
        }
        let votes = self.votes.entry(message_ts.clone()).or_default();
        if votes.insert(user.clone(), up) == Some(up) {
            tracing::debug!(thread = %self.root, "same vote again; nothing changes");
            return;
        }
        let ups = votes.values().filter(|v| **v).count() as u64;
        let downs = votes.len() as u64 - ups;
        fx.push(Effect::Count(Count::Feedback { category: self.triage.category, up, via: Via::Button }));
        self.answering = None;
        tracing::info!(thread = %self.root, up, requester = (user == self.requester), "feedback");
        fx.push(Effect::WriteVotes {
            message: message_ts,
            up: ups,
            down: downs,
            voter: user.clone(),
            vote_up: up,
        });
        if user == self.requester && !up {
            self.escalate(w, Trigger::Feedback, fx);
            return;
        }
        fx.push(Effect::Ephemeral { user, text: compose::FEEDBACK_THANKS.into() });
    }

    fn on_get_human(&mut self, w: &World, user: UserId, fx: &mut Vec<Effect>) {
        self.answering = None;
        if user == self.requester {
            self.escalate(w, Trigger::Button, fx);
            return;
        }
        tracing::info!(thread = %self.root, "get-a-human pressed by someone else; told privately");
        fx.push(Effect::Ephemeral { text: compose::button_not_yours(&self.requester), user });
    }
}

/// Redacted text for the LLM, or `None` when it holds a credential (never sent).
fn redacted(text: &str) -> Option<String> {
    let r = redact(text);
    (!r.secret_found).then_some(r.text)
}

/// The bot's reply without the how-to-continue footer (LLM context).
fn strip_footer(text: &str) -> String {
    text.replace(compose::HOW_TO_CONTINUE, "").trim().to_string()
}

#[cfg(test)]
mod tests {
    //! The phase table, one test per row, then properties over random event sequences.

    use super::*;
    use crate::slack::BotId;
    use crate::state::Metadata;

    const REQUESTER: &str = "UREQ";
    const ASSIGNEE: &str = "UASSIGN";
    const STAFF: &str = "USTAFF";
    const OTHER: &str = "UOTHER";
    const BOT: &str = "UBOT";
    const ROOT: &str = "1700000000.000100";
    const VPN: &str = "my AWS VPN client won't connect, it keeps timing out";

    /// What a [`World`] borrows.
    struct Fixture {
        kb: KnowledgeBase,
        rules: Rules,
        assist: AssistParser,
        settings: Settings,
        bot: UserId,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture::with(|_| {})
        }

        fn with(change: impl FnOnce(&mut Settings)) -> Fixture {
            let mut settings = Settings::shipped();
            settings.escalation.it_staff = vec![STAFF.into()];
            settings.slack.reaction_markers = true;
            change(&mut settings);
            Fixture {
                kb: KnowledgeBase::shipped(),
                rules: Rules::new(&settings.triage, &settings.followup).expect("shipped rules"),
                assist: AssistParser::new(&settings.assist).expect("shipped patterns"),
                settings,
                bot: UserId::from(BOT),
            }
        }

        fn world(&self, llm: bool) -> World<'_> {
            World {
                kb: &self.kb,
                rules: &self.rules,
                assist: &self.assist,
                settings: &self.settings,
                bot: &self.bot,
                channel_name: "it",
                llm,
                peers: false,
                coordinated: false,
                now: 1_700_100_000.0,
            }
        }
    }

    fn message(ts: &str, user: &str, text: &str) -> Message {
        Message {
            channel: crate::slack::ChannelId::from("CIT"),
            ts: Ts::from(ts),
            thread_ts: (ts != ROOT).then(|| Ts::from(ROOT)),
            user: Some(UserId::from(user)),
            bot_id: None,
            subtype: None,
            text: UserText::new(text),
            blocks_text: UserText::default(),
        }
    }

    fn card() -> AssistCard {
        AssistCard { ticket: Some("IT-7".into()), assignee: Some(UserId::from(ASSIGNEE)) }
    }

    /// A conversation driven the way the actor drives it: every effect that asks for an answer
    /// (a preparation, outage detection, a read, a post, an LLM answer) is answered at once.
    struct Driver<'a> {
        w: World<'a>,
        c: Conversation,
        next_ts: u64,
        /// The bot's latest message.
        last_bot: Option<Ts>,
        /// What a read of the thread returns.
        slack_thread: Vec<HistoryMessage>,
        /// LLM answers fail instead of arriving.
        llm_fails: bool,
    }

    impl<'a> Driver<'a> {
        fn new(f: &'a Fixture, llm: bool, text: &str) -> (Driver<'a>, Vec<Effect>) {
            let w = f.world(llm);
            let c = Conversation::new(&w, message(ROOT, REQUESTER, text));
            let mut d =
                Driver { w, c, next_ts: 1, last_bot: None, slack_thread: Vec::new(), llm_fails: false };
            let fx = d.send(Input::Started);
            (d, fx)
        }

        /// A ticket whose first answer was posted after Assist's card.
        fn answered(f: &'a Fixture, llm: bool, text: &str) -> Driver<'a> {
            let (mut d, _) = Driver::new(f, llm, text);
            d.send(Input::Assist(card()));
            d
        }

        /// Feeds `input` and answers what it asks for; returns every effect this caused.
        fn send(&mut self, input: Input) -> Vec<Effect> {
            let mut pending = VecDeque::from([input]);
            let mut all = Vec::new();
            while let Some(input) = pending.pop_front() {
                for effect in self.c.on(&self.w, input) {
                    match &effect {
                        Effect::Prepare { version, .. } => pending.push_back(Input::Prepared {
                            version: *version,
                            similar: Vec::new(),
                            category: None,
                        }),
                        Effect::CheckOutage { version, .. } => pending.push_back(Input::OutageChecked {
                            version: *version,
                            verdict: OutageVerdict::Normal,
                        }),
                        Effect::ReadThread(read) => pending.push_back(Input::ThreadRead {
                            read: *read,
                            messages: Some(self.slack_thread.clone()),
                            escalation_taken: false,
                        }),
                        Effect::Settle { .. } => pending.push_back(Input::Settled),
                        Effect::Post { .. } => {
                            let ts = self.ts();
                            self.last_bot = Some(ts.clone());
                            pending.push_back(Input::Posted(vec![ts]));
                        }
                        Effect::Release { id, fallback, .. } => {
                            let ts = self.ts();
                            self.last_bot = Some(ts.clone());
                            let outcome = if self.llm_fails {
                                ReplyOutcome::FellBack { mrkdwn: fallback.clone(), posted: vec![ts] }
                            } else {
                                ReplyOutcome::Answered { markdown: "Try **this**.".into(), posted: vec![ts] }
                            };
                            pending.push_back(Input::ReplyFinished { id: *id, outcome });
                        }
                        _ => {}
                    }
                    all.push(effect);
                }
            }
            all
        }

        fn ts(&mut self) -> Ts {
            self.next_ts += 1;
            Ts::from(format!("1700000001.{:06}", self.next_ts).as_str())
        }

        fn reply(&mut self, user: &str, text: &str) -> Vec<Effect> {
            let ts = self.ts();
            self.send(Input::Reply { message: message(ts.as_str(), user, text), mentioned: false })
        }

        fn mention(&mut self, user: &str, text: &str) -> Vec<Effect> {
            let ts = self.ts();
            let text = format!("<@{BOT}> {text}");
            self.send(Input::Reply { message: message(ts.as_str(), user, &text), mentioned: true })
        }

        fn thumbs_down(&mut self, user: &str) -> Vec<Effect> {
            let ts = self.last_bot.clone().expect("the bot has posted");
            self.send(Input::Reaction { user: UserId::from(user), reaction: "-1".into(), ts })
        }

        fn phase(&self) -> Phase {
            self.c.phase()
        }
    }

    /// The texts the bot posted (LLM answers as their fallback is not shown: "llm answer").
    fn posts(fx: &[Effect]) -> Vec<(String, ReplyKind)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Post { text, kind, .. } => Some((text.clone(), *kind)),
                Effect::Release { .. } => Some(("llm answer".to_string(), ReplyKind::Answer)),
                _ => None,
            })
            .collect()
    }

    fn escalations(fx: &[Effect]) -> usize {
        fx.iter().filter(|e| matches!(e, Effect::Count(Count::Escalation(_)))).count()
    }

    fn ephemerals(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Ephemeral { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    // --- Not a ticket ---

    #[test]
    fn thanks_or_an_fyi_gets_no_reply_no_status_and_is_not_counted() {
        let f = Fixture::new();
        for text in ["thanks all!", "FYI the printer on 3 is fixed"] {
            let (d, fx) = Driver::new(&f, true, text);
            assert_eq!(d.c.triage().category, Category::NotTicket, "{text}");
            assert!(posts(&fx).is_empty(), "{text}: {fx:?}");
            assert!(!fx.iter().any(|e| matches!(
                e,
                Effect::SetStatus
                    | Effect::Mark(_)
                    | Effect::Count(_)
                    | Effect::Record { .. }
                    | Effect::StartReply(_)
            )));
            assert!(fx.contains(&Effect::Stop));
        }
    }

    #[test]
    fn a_who_question_gets_the_configured_pointer_without_steps_or_buttons() {
        let f = Fixture::new();
        let (mut d, fx) = Driver::new(&f, false, "who approves software purchases?");
        assert_eq!(posts(&fx), vec![(f.settings.triage.not_ticket_reply.clone(), ReplyKind::Plain)]);
        assert!(!fx.iter().any(|e| matches!(e, Effect::Count(Count::Ticket(_)) | Effect::Record { .. })));
        assert_eq!(d.phase(), Phase::Acknowledged);
        // The thread is left to people: a later word from the requester gets no steps.
        assert!(posts(&d.reply(REQUESTER, "ok, but who exactly?")).is_empty());
    }

    #[test]
    fn quiet_mode_answers_no_post_that_is_not_a_ticket() {
        let f = Fixture::with(|s| s.triage.not_ticket = crate::config::NotTicketReply::Quiet);
        let (_, fx) = Driver::new(&f, false, "who approves software purchases?");
        assert!(posts(&fx).is_empty());
    }

    #[test]
    fn a_problem_asked_about_others_too_is_still_a_ticket() {
        let f = Fixture::new();
        let (d, fx) = Driver::new(&f, false, "my vpn keeps dropping every few minutes, anyone else?");
        assert_eq!(d.c.triage().category, Category::Technical);
        assert!(fx.contains(&Effect::SetStatus), "{fx:?}");
    }

    // --- Preparing ---

    #[test]
    fn preparing_posts_the_first_answer_once_assist_has_posted_and_helps() {
        let f = Fixture::new();
        let (mut d, started) = Driver::new(&f, false, VPN);
        assert!(matches!(started.first(), Some(Effect::SetStatus)));
        assert!(started.iter().any(|e| matches!(e, Effect::WaitForAssist { secs: 10 })));
        assert!(posts(&started).is_empty(), "posted before Assist or the wait");
        assert_eq!(d.phase(), Phase::Preparing);

        let fx = d.send(Input::Assist(card()));
        let posted = posts(&fx);
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].1, ReplyKind::Answer);
        assert!(posted[0].0.contains("IT-7") || posted[0].0.contains("VPN"), "{}", posted[0].0);
        assert_eq!(d.phase(), Phase::Helping);
        assert!(fx.contains(&Effect::Count(Count::Ticket(Category::Technical))));
    }

    #[test]
    fn preparing_acknowledges_an_access_request_naming_the_assignee() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, false, "I need access to Snowflake please");
        let fx = d.send(Input::Assist(card()));
        let posted = posts(&fx);
        assert_eq!(posted.len(), 1);
        assert!(posted[0].0.contains(&format!("<@{ASSIGNEE}>")), "{}", posted[0].0);
        assert_eq!(posted[0].1, ReplyKind::Plain);
        assert_eq!(d.phase(), Phase::Acknowledged);
    }

    #[test]
    fn preparing_answers_when_the_wait_is_over_without_reading_slack_with_one_replica() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, false, VPN);
        let fx = d.send(Input::AssistWaitOver);
        assert!(!fx.iter().any(|e| matches!(e, Effect::ReadThread(_))), "{fx:?}");
        assert_eq!(posts(&fx).len(), 1);
        assert_eq!(d.phase(), Phase::Helping);
    }

    #[test]
    fn preparing_with_replicas_looks_for_assist_in_the_thread_when_the_wait_is_over() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, false, VPN);
        d.w.peers = true;
        let fx = d.send(Input::AssistWaitOver);
        assert!(fx.iter().any(|e| matches!(e, Effect::ReadThread(Read::AssistCard))));
        assert_eq!(posts(&fx).len(), 1);
        assert_eq!(d.phase(), Phase::Helping);
    }

    #[test]
    fn preparing_a_root_edit_triages_again_and_a_stale_preparation_is_ignored() {
        let f = Fixture::new();
        let w = f.world(false);
        let mut c = Conversation::new(&w, message(ROOT, REQUESTER, VPN));
        let first = c.on(&w, Input::Started);
        let Some(Effect::Prepare { version: old, .. }) =
            first.iter().find(|e| matches!(e, Effect::Prepare { .. }))
        else {
            panic!("nothing prepared: {first:?}")
        };
        let again = c.on(&w, Input::RootEdited(UserText::new("I need access to Figma please")));
        let Some(Effect::Prepare { version: new, .. }) =
            again.iter().find(|e| matches!(e, Effect::Prepare { .. }))
        else {
            panic!("not prepared again: {again:?}")
        };
        assert!(new > old);
        assert_eq!(c.triage().category, Category::Access);
        assert!(c.on(&w, Input::Prepared { version: *old, similar: Vec::new(), category: None }).is_empty());
        assert_eq!(c.phase(), Phase::Preparing);
    }

    #[test]
    fn preparing_with_an_llm_releases_its_answer_and_notes_it_for_the_brief() {
        let f = Fixture::new();
        let (mut d, started) = Driver::new(&f, true, VPN);
        assert!(started.iter().any(|e| matches!(e, Effect::StartReply(_))));
        let fx = d.send(Input::Assist(card()));
        let Some(Effect::Release { state, .. }) = fx.iter().find(|e| matches!(e, Effect::Release { .. }))
        else {
            panic!("not released: {fx:?}")
        };
        assert_eq!(state.tried.last().map(String::as_str), Some("first troubleshooting steps"));
        assert_eq!(d.c.state(&d.w).tried, vec!["first troubleshooting steps".to_string()]);
        assert!(fx.contains(&Effect::Count(Count::Ticket(Category::Technical))));
    }

    #[test]
    fn when_the_llm_fails_the_offline_answer_is_what_the_brief_says_was_tried() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, true, VPN);
        d.llm_fails = true;
        d.send(Input::Assist(card()));
        let tried = d.c.state(&d.w).tried;
        assert!(tried.iter().all(|t| t != "first troubleshooting steps"), "{tried:?}");
        assert!(tried.iter().any(|t| t.starts_with("steps from")), "{tried:?}");
    }

    // --- Helping ---

    #[test]
    fn helping_that_worked_closes_marks_and_resolves() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        let fx = d.reply(REQUESTER, "that worked, thanks!");
        assert_eq!(d.phase(), Phase::Resolved);
        assert!(fx.contains(&Effect::Mark("white_check_mark")));
        assert!(fx.contains(&Effect::Count(Count::Resolution)));
        assert!(fx
            .iter()
            .any(|e| matches!(e, Effect::Record { ending: Ending::BotResolved, resolution: Some(_) })));
        assert_eq!(posts(&fx), vec![(compose::closing(), ReplyKind::Plain)]);
    }

    #[test]
    fn helping_still_broken_counts_an_attempt_and_gives_a_different_approach() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        let fx = d.reply(REQUESTER, "still not working");
        assert_eq!(d.c.failed_attempts(), 1);
        assert_eq!(d.phase(), Phase::Helping);
        let posted = posts(&fx);
        assert_eq!(posted.len(), 1);
        assert!(posted[0].0.contains("different approach"), "{}", posted[0].0);
        assert!(d.c.state(&d.w).gave_alternative);
    }

    #[test]
    fn helping_at_the_most_failed_attempts_offers_a_person() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        d.reply(REQUESTER, "still not working");
        let fx = d.reply(REQUESTER, "nope, same error");
        assert_eq!(d.phase(), Phase::OfferedHuman);
        assert_eq!(escalations(&fx), 0);
        assert_eq!(posts(&fx), vec![(compose::offer_escalation(2), ReplyKind::Answer)]);
    }

    #[test]
    fn helping_at_the_most_failed_attempts_escalates_when_auto_is_on() {
        let f = Fixture::with(|s| s.escalation.auto = true);
        let mut d = Driver::answered(&f, false, VPN);
        d.reply(REQUESTER, "still not working");
        let fx = d.reply(REQUESTER, "nope, same error");
        assert_eq!(d.phase(), Phase::Escalated);
        assert!(fx.contains(&Effect::Count(Count::Escalation(Trigger::Attempts))));
    }

    #[test]
    fn helping_and_offered_human_answer_anything_else_with_the_next_answer() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, true, VPN);
        let fx = d.reply(REQUESTER, "where do I find the profile file?");
        assert_eq!(posts(&fx).len(), 1);
        assert_eq!(d.phase(), Phase::Helping);
        d.reply(REQUESTER, "still not working");
        d.reply(REQUESTER, "still not working");
        assert_eq!(d.phase(), Phase::OfferedHuman);
        let fx = d.reply(REQUESTER, "which version of the client should I have?");
        assert_eq!(posts(&fx).len(), 1);
        assert_eq!(d.phase(), Phase::OfferedHuman);
    }

    #[test]
    fn offered_human_still_broken_escalates_to_the_assignee() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        d.reply(REQUESTER, "still not working");
        d.reply(REQUESTER, "still not working");
        let fx = d.reply(REQUESTER, "still broken");
        assert_eq!(d.phase(), Phase::Escalated);
        let posted = posts(&fx);
        assert_eq!(posted.len(), 1);
        assert!(posted[0].0.starts_with(&format!("<@{ASSIGNEE}>")), "{}", posted[0].0);
        assert!(fx.contains(&Effect::Mark("sos")));
        assert!(fx.iter().any(|e| matches!(e, Effect::Record { ending: Ending::Escalated, .. })));
    }

    // --- Escalation ---

    #[test]
    fn asking_for_a_human_a_thumbs_down_or_the_button_escalates_once() {
        type Ask = fn(&mut Driver) -> Vec<Effect>;
        let asks: [(Ask, Trigger); 4] = [
            (|d| d.reply(REQUESTER, "can a human help please?"), Trigger::Request),
            (|d| d.thumbs_down(REQUESTER), Trigger::ThumbsDown),
            (|d| d.send(Input::GetHuman { user: UserId::from(REQUESTER) }), Trigger::Button),
            (
                |d| {
                    let message_ts = d.last_bot.clone().expect("posted");
                    d.send(Input::Feedback { user: UserId::from(REQUESTER), message_ts, up: false })
                },
                Trigger::Feedback,
            ),
        ];
        for (ask, trigger) in asks {
            let f = Fixture::new();
            let mut d = Driver::answered(&f, false, VPN);
            let fx = ask(&mut d);
            assert!(fx.contains(&Effect::Count(Count::Escalation(trigger))), "{trigger:?}: {fx:?}");
            assert!(!fx.iter().any(|e| matches!(e, Effect::ReadThread(_))), "one replica read slack: {fx:?}");
            assert_eq!(d.phase(), Phase::Escalated);
            let again = d.send(Input::GetHuman { user: UserId::from(REQUESTER) });
            assert_eq!(escalations(&again), 0, "{trigger:?} escalated twice");
            assert!(posts(&again).is_empty());
            assert_eq!(ephemerals(&again), vec![compose::ALREADY_ESCALATED.to_string()]);
        }
    }

    #[test]
    fn with_replicas_an_escalation_found_in_slack_is_not_made_again() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        d.w.peers = true;
        let mut bot_reply = message("1700000000.900000", BOT, "earlier brief");
        bot_reply.bot_id = Some(BotId::from("BBOT"));
        let state = ThreadState { escalated: true, phase: Phase::Escalated, ..ThreadState::default() };
        d.slack_thread = vec![HistoryMessage::new(bot_reply, Some(Metadata::from(state)))];
        let fx = d.send(Input::GetHuman { user: UserId::from(REQUESTER) });
        assert_eq!(escalations(&fx), 0);
        assert!(posts(&fx).is_empty());
        assert_eq!(d.phase(), Phase::Escalated);
    }

    #[test]
    fn a_thumbs_down_or_button_by_someone_else_is_feedback_only() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        let fx = d.thumbs_down(OTHER);
        assert_eq!(escalations(&fx), 0);
        assert!(fx.contains(&Effect::Count(Count::Feedback {
            category: Category::Technical,
            up: false,
            via: Via::Reaction
        })));
        let fx = d.send(Input::GetHuman { user: UserId::from(OTHER) });
        assert_eq!(escalations(&fx), 0);
        assert_eq!(ephemerals(&fx), vec![compose::button_not_yours(&UserId::from(REQUESTER))]);
        assert_eq!(d.phase(), Phase::Helping);
    }

    #[test]
    fn a_thumbs_down_that_overtakes_its_post_counts_when_the_post_returns() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, false, VPN);
        let w = f.world(false);
        // The post is in flight: answer it by hand after the reaction.
        let fx = d.c.on(&w, Input::Assist(card()));
        assert_eq!(posts(&fx).len(), 1);
        let early = Ts::from("1700000002.000001");
        let fx = d.c.on(
            &w,
            Input::Reaction { user: UserId::from(REQUESTER), reaction: "-1".into(), ts: early.clone() },
        );
        assert!(fx.is_empty());
        let fx = d.c.on(&w, Input::Posted(vec![early]));
        assert!(fx.contains(&Effect::Count(Count::Escalation(Trigger::ThumbsDown))), "{fx:?}");
    }

    #[test]
    fn feedback_votes_count_once_per_person_and_a_changed_vote_replaces_the_earlier() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        let message_ts = d.last_bot.clone().expect("posted");
        let vote = |d: &mut Driver, user: &str, up: bool| {
            d.send(Input::Feedback { user: UserId::from(user), message_ts: message_ts.clone(), up })
        };
        let fx = vote(&mut d, OTHER, true);
        assert!(fx.iter().any(|e| matches!(e, Effect::WriteVotes { up: 1, down: 0, .. })));
        assert_eq!(ephemerals(&fx), vec![compose::FEEDBACK_THANKS.to_string()]);
        assert!(vote(&mut d, OTHER, true).is_empty(), "the same vote again changed something");
        let fx = vote(&mut d, OTHER, false);
        assert!(fx.iter().any(|e| matches!(e, Effect::WriteVotes { up: 0, down: 1, .. })));
        let fx = vote(&mut d, STAFF, true);
        assert!(fx.iter().any(|e| matches!(e, Effect::WriteVotes { up: 1, down: 1, .. })));
        assert_eq!(escalations(&fx), 0);
    }

    // --- Quiet phases ---

    #[test]
    fn acknowledged_escalated_and_taken_over_threads_stay_quiet_when_the_requester_writes() {
        let f = Fixture::new();
        let (mut ack, _) = Driver::new(&f, false, "I need access to Snowflake please");
        ack.send(Input::Assist(card()));
        let mut escalated = Driver::answered(&f, false, VPN);
        escalated.reply(REQUESTER, "can a human help?");
        let mut taken = Driver::answered(&f, false, VPN);
        taken.reply(ASSIGNEE, "On it, checking your VPN profile in the admin console now.");
        for (d, phase) in [
            (&mut ack, Phase::Acknowledged),
            (&mut escalated, Phase::Escalated),
            (&mut taken, Phase::HumanTookOver),
        ] {
            assert_eq!(d.phase(), phase);
            let fx = d.reply(REQUESTER, "any update on this? still not working");
            assert!(posts(&fx).is_empty(), "{phase:?} answered: {fx:?}");
            assert_eq!(d.phase(), phase);
        }
    }

    #[test]
    fn an_acknowledged_request_escalates_when_the_requester_asks_for_a_person() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, false, "I need access to Snowflake please");
        d.send(Input::Assist(card()));
        let fx = d.reply(REQUESTER, "can a human help please?");
        assert_eq!(escalations(&fx), 1);
        assert_eq!(d.phase(), Phase::Escalated);
    }

    #[test]
    fn when_the_assignee_or_it_staff_write_the_bot_goes_quiet_and_records_the_fix() {
        for person in [ASSIGNEE, STAFF] {
            let f = Fixture::new();
            let mut d = Driver::answered(&f, false, VPN);
            let fx = d.reply(person, "Your profile was stale; I pushed a new one from Jamf, try again now.");
            assert_eq!(d.phase(), Phase::HumanTookOver);
            assert!(fx.contains(&Effect::Count(Count::Takeover)));
            assert!(fx.iter().any(|e| matches!(
                e,
                Effect::Record { ending: Ending::PersonResolved, resolution: Some(_) }
            )));
            assert!(posts(&fx).is_empty());
        }
    }

    #[test]
    fn with_replicas_a_person_writing_first_in_slack_quiets_the_bot_before_it_answers() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        d.w.peers = true;
        // Written before the follow-up (whose ts is later), but its event went elsewhere.
        d.slack_thread =
            vec![HistoryMessage::new(message("1700000000.900000", STAFF, "Looking at it now."), None)];
        let fx = d.reply(REQUESTER, "still not working");
        assert_eq!(d.phase(), Phase::HumanTookOver);
        assert!(posts(&fx).is_empty());
    }

    #[test]
    fn a_mention_brings_the_bot_back_but_never_escalates_twice() {
        let f = Fixture::new();
        let mut taken = Driver::answered(&f, false, VPN);
        taken.reply(ASSIGNEE, "On it, checking your VPN profile in the admin console now.");
        let fx = taken.mention(REQUESTER, "what else can I try meanwhile?");
        assert_eq!(posts(&fx).len(), 1);
        assert_eq!(taken.phase(), Phase::Helping);

        let mut escalated = Driver::answered(&f, false, VPN);
        escalated.reply(REQUESTER, "can a human help?");
        let fx = escalated.mention(REQUESTER, "what else can I try meanwhile?");
        assert_eq!(posts(&fx).len(), 1);
        assert_eq!(escalated.phase(), Phase::Escalated);
        let fx = escalated.mention(REQUESTER, "can a human help?");
        assert_eq!(escalations(&fx), 0);
    }

    #[test]
    fn resolved_reads_a_new_message_as_a_follow_up() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        d.reply(REQUESTER, "that worked, thanks!");
        let fx = d.reply(REQUESTER, "hmm it dropped again, what else is there?");
        assert_eq!(d.phase(), Phase::Helping);
        assert_eq!(posts(&fx).len(), 1);
    }

    // --- Privacy, queueing, resuming ---

    #[test]
    fn a_message_with_a_secret_is_kept_from_the_llm_and_the_requester_is_warned_once() {
        let f = Fixture::new();
        let (mut d, started) = Driver::new(
            &f,
            true,
            "vpn fails, my password is Hunter2!xyz99 and token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        );
        assert_eq!(ephemerals(&started), vec![SECRET_WARNING.to_string()]);
        assert!(!started.iter().any(|e| matches!(e, Effect::StartReply(_))), "a secret went to the LLM");
        let fx = d.send(Input::Assist(card()));
        assert_eq!(posts(&fx).len(), 1, "no offline answer");
        let fx = d.reply(REQUESTER, "also my other password is Hunter3!abc77");
        assert!(ephemerals(&fx).is_empty(), "warned twice");
    }

    #[test]
    fn follow_ups_during_a_turn_wait_and_run_in_order() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        let w = f.world(false);
        let fx = d.c.on(
            &w,
            Input::Reply {
                message: message("1700000003.000001", REQUESTER, "still not working"),
                mentioned: false,
            },
        );
        // With one replica nothing is read: the follow-up waits a moment for events that
        // overtook each other on different sockets.
        assert_eq!(fx, vec![Effect::Settle { ms: SETTLE_MS }]);
        // A second follow-up meanwhile: nothing yet.
        let fx = d.c.on(
            &w,
            Input::Reply {
                message: message("1700000003.000002", REQUESTER, "that worked, thanks!"),
                mentioned: false,
            },
        );
        assert!(fx.is_empty());
        let fx = d.send(Input::Settled);
        let posted = posts(&fx);
        assert_eq!(posted.len(), 2, "{posted:?}");
        assert!(posted[0].0.contains("different approach"), "{posted:?}");
        assert_eq!(posted[1], (compose::closing(), ReplyKind::Plain));
        assert_eq!(d.phase(), Phase::Resolved);
        assert!(!d.c.in_flight());
    }

    #[test]
    fn with_one_replica_a_follow_up_reads_nothing_from_slack() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, true, VPN);
        for text in ["still not working", "where is the profile?", "can a human help?"] {
            let fx = d.reply(REQUESTER, text);
            assert!(!fx.iter().any(|e| matches!(e, Effect::ReadThread(_))), "{text}: {fx:?}");
        }
        assert_eq!(d.phase(), Phase::Escalated);
    }

    #[test]
    fn a_bot_post_this_process_did_not_make_means_replicas_and_the_thread_is_read_from_then_on() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        // Our own post's event: nothing.
        let own = d.last_bot.clone().expect("posted");
        assert!(d.send(Input::BotPosted(own)).is_empty());
        // Another replica's post.
        let fx = d.send(Input::BotPosted(Ts::from("1700000009.000001")));
        assert_eq!(fx, vec![Effect::PeerSeen]);
        let fx = d.reply(REQUESTER, "still not working");
        assert!(fx.iter().any(|e| matches!(e, Effect::ReadThread(Read::FollowUp))), "{fx:?}");
    }

    #[test]
    fn another_replicas_answer_seen_in_the_thread_is_read_back_and_its_count_adopted() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        // The other replica answered the first failure: its post's event reached us too.
        let theirs = message("1700000000.950000", BOT, "Let's try a different approach");
        let state = ThreadState { attempts: 1, gave_alternative: true, ..ThreadState::default() };
        d.send(Input::BotPosted(theirs.ts.clone()));
        d.slack_thread = vec![HistoryMessage::new(theirs, Some(Metadata::from(state)))];

        let fx = d.reply(REQUESTER, "still the same error");

        assert_eq!(d.c.failed_attempts(), 2, "the other replica's attempt was lost");
        assert_eq!(d.phase(), Phase::OfferedHuman);
        assert_eq!(posts(&fx), vec![(compose::offer_escalation(2), ReplyKind::Answer)]);
    }

    #[test]
    fn our_post_event_overtaking_its_response_is_not_taken_for_another_replica() {
        let f = Fixture::new();
        let (mut d, _) = Driver::new(&f, false, VPN);
        let w = f.world(false);
        let fx = d.c.on(&w, Input::Assist(card()));
        assert_eq!(posts(&fx).len(), 1);
        let ours = Ts::from("1700000002.000001");
        assert!(d.c.on(&w, Input::BotPosted(ours.clone())).is_empty());
        let fx = d.c.on(&w, Input::Posted(vec![ours]));
        assert!(!fx.contains(&Effect::PeerSeen), "{fx:?}");
        // A post that stays unclaimed after ours returned is another replica's.
        let (mut d, _) = Driver::new(&f, false, VPN);
        d.c.on(&w, Input::Assist(card()));
        d.c.on(&w, Input::BotPosted(Ts::from("1700000002.000077")));
        let fx = d.c.on(&w, Input::Posted(vec![Ts::from("1700000002.000001")]));
        assert!(fx.contains(&Effect::PeerSeen), "{fx:?}");
    }

    #[test]
    fn a_thread_resumes_from_the_state_on_the_bots_latest_reply() {
        let f = Fixture::new();
        let w = f.world(false);
        let state = ThreadState {
            phase: Phase::OfferedHuman,
            category: Some(Category::Technical),
            ticket: Some("IT-7".into()),
            assignee: Some(UserId::from(ASSIGNEE)),
            attempts: 2,
            ..ThreadState::default()
        };
        let replies = vec![
            HistoryMessage::new(message("1700000001.000001", BOT, "Here's what usually fixes this"), None),
            HistoryMessage::new(
                message("1700000001.000002", BOT, "Want a person?"),
                Some(Metadata::from(state)),
            ),
        ];
        let mut c = Conversation::resume(&w, message(ROOT, REQUESTER, VPN), &replies).expect("resumed");
        assert_eq!(c.phase(), Phase::OfferedHuman);
        assert_eq!(c.failed_attempts(), 2);
        assert!(c.on(&w, Input::Started).is_empty(), "a resumed thread prepared again");
        let newer = vec![HistoryMessage::new(
            message("1700000001.000003", BOT, "hi"),
            Some(Metadata::NewerThreadState { v: 9 }),
        )];
        assert!(Conversation::resume(&w, message(ROOT, REQUESTER, VPN), &newer).is_none());
        assert!(Conversation::resume(&w, message(ROOT, REQUESTER, VPN), &[]).is_none());
    }

    #[test]
    fn a_deleted_root_forgets_the_ticket_and_stops() {
        let f = Fixture::new();
        let mut d = Driver::answered(&f, false, VPN);
        let fx = d.send(Input::RootDeleted);
        assert!(matches!(fx.as_slice(), [Effect::Forget, Effect::Stop]));
    }

    // --- Properties ---

    /// A random event, with the mention and author chosen by `rng`.
    fn random_input(rng: &mut fastrand::Rng, d: &mut Driver) -> (Input, bool) {
        const TEXTS: [&str; 6] = [
            "that worked, thanks!",
            "still not working",
            "can a human help please?",
            "where is the settings page?",
            "nope, same error",
            "ok",
        ];
        let ts = d.ts();
        let text = TEXTS[rng.usize(..TEXTS.len())];
        let bot_ts = d.last_bot.clone().unwrap_or_else(|| ts.clone());
        let requester = UserId::from(REQUESTER);
        match rng.u8(..10) {
            0..=3 => {
                let mentioned = rng.u8(..5) == 0;
                let text = if mentioned { format!("<@{BOT}> {text}") } else { text.to_string() };
                (Input::Reply { message: message(ts.as_str(), REQUESTER, &text), mentioned }, mentioned)
            }
            4 => {
                let who = [ASSIGNEE, STAFF, OTHER][rng.usize(..3)];
                (
                    Input::Reply {
                        message: message(ts.as_str(), who, "Looking into this for you right now."),
                        mentioned: false,
                    },
                    false,
                )
            }
            5 => (Input::Reaction { user: requester, reaction: "-1".into(), ts: bot_ts }, false),
            6 => (Input::GetHuman { user: if rng.bool() { requester } else { UserId::from(OTHER) } }, false),
            7 => (Input::Feedback { user: requester, message_ts: bot_ts, up: rng.bool() }, false),
            8 => (Input::Assist(card()), false),
            _ => (Input::AssistWaitOver, false),
        }
    }

    #[test]
    fn no_event_sequence_escalates_twice_lowers_attempts_or_undoes_a_takeover_without_a_mention() {
        let fixtures = [Fixture::new(), Fixture::with(|s| s.escalation.auto = true)];
        for seed in 0..300u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let f = &fixtures[(seed % 2) as usize];
            let text = [VPN, "I need access to Snowflake please", "please add me to the design group"]
                [(seed % 3) as usize];
            let (mut d, _) = Driver::new(f, seed % 4 < 2, text);
            let mut escalated = 0;
            for step in 0..40 {
                let (before_phase, before_attempts) = (d.phase(), d.c.failed_attempts());
                let (input, mentioned) = random_input(&mut rng, &mut d);
                let label = format!("seed {seed} step {step}: {input:?}");
                let fx = d.send(input);
                escalated += escalations(&fx);
                assert!(escalated <= 1, "escalated twice at {label}");
                assert!(d.c.failed_attempts() >= before_attempts, "attempts went down at {label}");
                if before_phase == Phase::HumanTookOver && !mentioned {
                    assert!(
                        !matches!(d.phase(), Phase::Helping | Phase::OfferedHuman | Phase::Resolved),
                        "takeover undone without a mention at {label}: now {:?}",
                        d.phase()
                    );
                    assert!(
                        !posts(&fx).iter().any(|(_, kind)| *kind == ReplyKind::Answer),
                        "the bot answered a taken-over thread at {label}"
                    );
                }
                assert!(!d.c.in_flight(), "a turn left hanging at {label}");
            }
        }
    }
}

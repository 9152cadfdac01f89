//! ThreadActor: one per ticket thread, the shell around a [`Conversation`]. Every decision about
//! what the bot says in the thread is the conversation's (a pure state machine, with the phase
//! table and its tests in `conversation.rs`); this actor feeds it what happens (router events,
//! timers, the results of Slack, LLM, past-ticket and outage calls) and carries out the
//! effects it returns. It owns the I/O state only: the LLM answer being written, the idle
//! timer, and the feedback counts written into Slack.
//!
//! Waits are timers, never sleeps. Every reply carries the thread's state as Slack message
//! metadata, and [`ThreadActor::resume`] rebuilds the actor from it after a restart or on
//! another replica.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::openai::Complete;
use super::outage::{Answer, Reported};
use super::reply::{Cancel, Release, ReplyActor, ReplyFinished, ReplyRequest};
use super::shared::{TURN_LEASE, TURN_POLL, TURN_WAIT_MAX};
use super::tickets::{FindSimilar, Forget, Record};
use super::SharedServices;
use crate::compose;
use crate::conversation::{
    Conversation, Count, Effect, Input, OutageVerdict, PromptRequest, ReplyKind, World,
};
use crate::openai::{ChatMessage, Role};
use crate::outage::Verdict;
use crate::prompt::PromptInput;
use crate::slack::events::{HistoryMessage, Message as SlackMessage};
use crate::slack::format::{split_message, MAX_MESSAGE_CHARS};
use crate::slack::{ChannelId, SlackError, Ts, UserId};
use crate::state::{Metadata, Phase, ThreadState, VoteCounts};
use crate::telemetry::UserText;
use crate::tickets::PastTicket;
use crate::triage::Category;

pub use crate::conversation::{THUMBS_DOWN, THUMBS_UP};

/// What the router tells a thread.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ThreadEvent {
    /// A reply in the thread by anyone but the bot and Assist.
    Reply { message: SlackMessage, mentioned: bool },
    /// Assist's ticket card.
    Assist(crate::assist::AssistCard),
    /// The root message was edited.
    RootEdited(UserText),
    /// The root message was deleted.
    RootDeleted,
    /// A reaction on a message of the thread.
    Reaction { user: UserId, reaction: String, ts: Ts },
    /// Someone pressed "Get a human" on one of the bot's messages.
    GetHuman { user: UserId, message_ts: Ts },
    /// Someone pressed 👍 (`up`) or 👎 under one of the bot's answers.
    Feedback { user: UserId, message_ts: Ts, up: bool },
    /// A message by the bot's user in the thread (this process's or another replica's).
    BotPosted(Ts),
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
            ThreadEvent::BotPosted(_) => "bot_posted",
            ThreadEvent::Stop => "stop",
        }
    }
}

/// A ThreadActor stopped (idle, deleted root, or evicted); told to whoever started it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ThreadStopped {
    pub thread: Ts,
    /// Which actor stopped: a newer actor may already hold the same thread.
    pub actor: u64,
}

/// A thread read back from Slack for a ThreadActor to resume.
pub struct LoadedThread {
    pub root: SlackMessage,
    /// Every message after the root, oldest first, with its metadata.
    pub replies: Vec<HistoryMessage>,
}

/// Shutdown: answer what is being prepared now (without waiting longer for Assist). The reply
/// comes once no turn is in flight (or the thread stopped): whether one was when asked.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Drain;

/// Tokens reserved for the one-word triage call in the per-minute budget.
const CLASSIFY_PROMPT_TOKENS: u64 = 120;
/// How long the past-ticket index and outage detection may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// The thread status while an answer is prepared.
const STATUS: &str = "is looking into it...";
/// The private note that stands in for the status when a burst has used its budget and the 👀's.
const ACK_NOTE: &str = "Got it. I'm looking into this and will reply in this thread shortly.";

/// How long Redis keeps a message's votes: as far back as a report reads (90 days).
const VOTES_KEPT: Duration = Duration::from_secs(90 * 86_400);

/// How often a first answer waiting for Assist's card looks for it in the replicas' copy.
const CARD_LOOK: Duration = Duration::from_millis(250);

/// The private note to a requester whose reply Slack would not take in time.
const UNPOSTED_NOTE: &str = "Slack is limiting how fast I can post in this channel right now, and my reply to you could not be posted. Reply here to try again; IT can see this thread too.";

pub struct ThreadActor {
    s: SharedServices,
    /// Told when this actor stops.
    stopped: Recipient<ThreadStopped>,
    /// Distinguishes this actor from a later one on the same thread.
    actor_id: u64,
    channel: ChannelId,
    conversation: Conversation,
    /// The LLM answer being written, by its id.
    reply: Option<(u64, Addr<ReplyActor>)>,
    idle: Option<SpawnHandle>,
    /// Feedback counts written into the bot's messages, by message.
    votes: HashMap<Ts, VoteWrite>,
    /// Drains waiting for the turn in flight to end.
    drained: Vec<oneshot::Sender<()>>,
    /// With Redis: this replica's hold on the thread's turn, and what waits for it.
    turn: TurnHold,
    /// With Redis: this thread's turn (a new ticket's first answer, a follow-up's) is noted as
    /// under way (`Coord::note_turn`), so that another replica finishes it if this one dies.
    noted: bool,
}

/// One turn per thread across replicas (with Redis): an input that may start a turn waits until
/// this replica holds the thread's lease, which it renews while the turn runs and gives back when
/// the turn ends. A replica that takes the turn after another one rebuilds the conversation from
/// the replicas' copy first.
#[derive(Default)]
struct TurnHold {
    state: Hold,
    /// The token of the hold being asked for or held (never reused by this process).
    token: u64,
    /// Inputs waiting for the turn, in arrival order.
    parked: VecDeque<Input>,
    renew: Option<SpawnHandle>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Hold {
    #[default]
    Free,
    Asking,
    Held,
}

/// Tokens for turn holds, unique in this process.
static TURN_TOKENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether `input` may start a turn (and so waits for the thread's lease, with Redis).
fn needs_turn(input: &Input) -> bool {
    matches!(
        input,
        Input::Started
            | Input::Reply { .. }
            | Input::RootEdited(_)
            | Input::RootDeleted
            | Input::Reaction { .. }
            | Input::GetHuman { .. }
            | Input::Feedback { .. }
    )
}

/// How asking for a thread's turn ended.
enum TurnAsked {
    /// Held; `stale` when another replica had the thread since this one last did.
    Taken { stale: bool },
    /// Redis did not answer, or another replica kept the turn past [`TURN_WAIT_MAX`]: acted on
    /// as a lone replica would.
    Alone,
}

/// Writing one message's feedback counts into its metadata. Slack keeps no count, so the bot
/// writes it (`feedback: {up, down}`) for `itbot report`.
#[derive(Default)]
struct VoteWrite {
    /// The message as Slack has it (text, blocks, metadata), read once; the counts it already
    /// held (from before a restart, or another replica) are the base.
    message: Option<HistoryMessage>,
    base: VoteCounts,
    /// The counts given in this process, latest first; with Redis, every replica's.
    here: VoteCounts,
    /// `here` holds every replica's counts (from Redis): the base is not added.
    shared: bool,
    /// The counts last written to Slack.
    written: Option<VoteCounts>,
    /// A write is in flight; `dirty` when votes changed meanwhile.
    writing: bool,
    dirty: bool,
}

impl ThreadActor {
    /// A new ticket.
    pub fn new(
        s: SharedServices,
        stopped: Recipient<ThreadStopped>,
        actor_id: u64,
        root: SlackMessage,
    ) -> ThreadActor {
        let channel = root.channel.clone();
        let conversation = Conversation::new(&world(&s), root);
        ThreadActor::shell(s, stopped, actor_id, channel, conversation)
    }

    fn shell(
        s: SharedServices,
        stopped: Recipient<ThreadStopped>,
        actor_id: u64,
        channel: ChannelId,
        conversation: Conversation,
    ) -> ThreadActor {
        ThreadActor {
            s,
            stopped,
            actor_id,
            channel,
            conversation,
            reply: None,
            idle: None,
            votes: HashMap::new(),
            drained: Vec::new(),
            turn: TurnHold::default(),
            noted: false,
        }
    }

    /// A thread read back from Slack: resumes from the state on the bot's latest reply. `None`
    /// when the bot never answered it (not a ticket it holds).
    pub fn resume(
        s: SharedServices,
        loaded: LoadedThread,
    ) -> Option<impl FnOnce(Recipient<ThreadStopped>, u64) -> ThreadActor> {
        let channel = loaded.root.channel.clone();
        let conversation = Conversation::resume(&world(&s), loaded.root, &loaded.replies)?;
        Some(move |stopped, actor_id| ThreadActor::shell(s, stopped, actor_id, channel, conversation))
    }

    fn root(&self) -> &Ts {
        self.conversation.root()
    }

    /// Hands `input` to the conversation once this replica may act on it: with Redis, an input
    /// that may start a turn waits for the thread's turn.
    fn submit(&mut self, input: Input, ctx: &mut Context<Self>) {
        // While the thread is rebuilt after another replica's turn, later inputs queue behind.
        let held = self.turn.state == Hold::Held && self.turn.parked.is_empty();
        if self.s.coord.is_none() || held || !needs_turn(&input) {
            self.feed(input, ctx);
            return;
        }
        self.turn.parked.push_back(input);
        if self.turn.state == Hold::Free {
            self.ask_turn(ctx);
        }
    }

    /// Asks Redis for the thread's turn until this replica holds it (another replica's hold is
    /// waited out: it ends, or runs out when that replica died mid-turn).
    fn ask_turn(&mut self, ctx: &mut Context<Self>) {
        let Some(coord) = self.s.coord.clone() else { return };
        self.turn.state = Hold::Asking;
        self.turn.token = TURN_TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (channel, root, token) = (self.channel.to_string(), self.root().to_string(), self.turn.token);
        let remember = Duration::from_secs(self.s.settings.threads.idle_secs.max(60));
        let ask = async move {
            let started = Instant::now();
            let mut waited = false;
            loop {
                match coord.take_turn(&channel, &root, token, TURN_LEASE, remember).await {
                    Ok(crate::coord::Turn::Mine { after_other }) => {
                        return TurnAsked::Taken { stale: after_other || waited }
                    }
                    Ok(crate::coord::Turn::Elsewhere(left)) => {
                        if started.elapsed() >= TURN_WAIT_MAX {
                            tracing::warn!(thread = %root, waited_secs = started.elapsed().as_secs(), "another replica kept this thread's turn too long; acting anyway");
                            return TurnAsked::Alone;
                        }
                        waited = true;
                        tokio::time::sleep(left.min(TURN_POLL)).await;
                    }
                    Err(e) => {
                        tracing::warn!(thread = %root, error = %e, "thread's turn not taken in redis; acting as a lone replica");
                        return TurnAsked::Alone;
                    }
                }
            }
        };
        ctx.spawn(ask.into_actor(self).map(|asked, act, ctx| act.turn_taken(asked, ctx)));
    }

    fn turn_taken(&mut self, asked: TurnAsked, ctx: &mut Context<Self>) {
        self.turn.state = Hold::Held;
        // Noted until the turn ends, so that another replica finishes it if this one dies.
        if !self.noted {
            self.note_turn();
        }
        let stale = match asked {
            TurnAsked::Taken { stale } => {
                self.renew_turn(ctx);
                stale
            }
            TurnAsked::Alone => false,
        };
        if !stale {
            self.run_parked(ctx);
            return;
        }
        // Another replica had the thread: what it heard and posted is in the copy, not here.
        let s = self.s.clone();
        let root = self.root().clone();
        let read = async move { super::shared::read_thread(&s, &root).await };
        ctx.spawn(read.into_actor(self).map(|read, act, ctx| {
            match read {
                Ok(messages) => act.rebuild(messages),
                Err(e) => {
                    tracing::warn!(thread = %act.root(), error = %e, "thread not read after another replica's turn; acting on what this replica knows")
                }
            }
            act.run_parked(ctx);
        }));
    }

    /// Takes the conversation as the replicas' copy has it (another replica's answers and the
    /// messages it heard), when the copy shows the bot's state.
    fn rebuild(&mut self, messages: Vec<HistoryMessage>) {
        let mut messages = messages.into_iter();
        let Some(root) = messages.next() else { return };
        let replies: Vec<HistoryMessage> = messages.collect();
        let s = self.s.clone();
        if let Some(conversation) = Conversation::resume(&world(&s), root.message, &replies) {
            tracing::info!(thread = %self.root(), "another replica took this thread's last turn; continuing from its copy");
            self.conversation = conversation;
        }
    }

    fn run_parked(&mut self, ctx: &mut Context<Self>) {
        while let Some(input) = self.turn.parked.pop_front() {
            self.feed(input, ctx);
        }
        self.end_turn_if_done(ctx);
    }

    /// Keeps the hold alive while the turn runs.
    fn renew_turn(&mut self, ctx: &mut Context<Self>) {
        let Some(coord) = self.s.coord.clone() else { return };
        let every = TURN_LEASE / 3;
        let handle = ctx.run_interval(every, move |act, ctx| {
            let (channel, root, token) = (act.channel.to_string(), act.root().to_string(), act.turn.token);
            let remember = Duration::from_secs(act.s.settings.threads.idle_secs.max(60));
            let coord = coord.clone();
            let renew = async move { coord.take_turn(&channel, &root, token, TURN_LEASE, remember).await };
            ctx.spawn(renew.into_actor(act).map(|renewed, act, _| {
                if let Ok(crate::coord::Turn::Elsewhere(_)) = renewed {
                    tracing::warn!(thread = %act.root(), "this thread's turn was taken by another replica mid-turn (the hold ran out)");
                }
            }));
        });
        self.turn.renew = Some(handle);
    }

    /// Gives the thread's turn back once nothing is in flight and nothing waits.
    fn end_turn_if_done(&mut self, ctx: &mut Context<Self>) {
        if self.turn.state != Hold::Held || !self.turn.parked.is_empty() || self.conversation.draining() {
            return;
        }
        self.turn.state = Hold::Free;
        if let Some(h) = self.turn.renew.take() {
            ctx.cancel_future(h);
        }
        let Some(coord) = self.s.coord.clone() else { return };
        let (channel, root, token) = (self.channel.to_string(), self.root().to_string(), self.turn.token);
        // The turn's answer is posted (or there was none to post).
        let noted = std::mem::take(&mut self.noted);
        actix_rt::spawn(async move {
            if noted {
                if let Err(e) = coord.turn_over(&channel, &root).await {
                    tracing::debug!(error = %e, "turn not noted as over (another replica may read the thread)");
                }
            }
            if let Err(e) = coord.end_turn(&channel, &root, token).await {
                tracing::debug!(error = %e, "thread's turn not given back (it runs out by itself)");
            }
        });
    }

    /// Notes in Redis that this replica runs the thread's turn (from a new ticket's start).
    fn note_turn(&mut self) {
        let Some(coord) = self.s.coord.clone() else { return };
        self.noted = true;
        let (channel, root) = (self.channel.to_string(), self.root().to_string());
        actix_rt::spawn(async move {
            if let Err(e) = coord.note_turn(&channel, &root).await {
                tracing::debug!(error = %e, "turn not noted as under way (no other replica takes it over)");
            }
        });
    }

    /// Hands `input` to the conversation and carries out what it decides.
    fn feed(&mut self, input: Input, ctx: &mut Context<Self>) {
        let s = self.s.clone();
        let was = self.conversation.phase();
        let effects = self.conversation.on(&world(&s), input);
        if let Some(reply) = not_ticket_handled(was, &self.conversation, &effects) {
            s.health.metrics.not_ticket(reply);
        }
        for effect in effects {
            self.carry(effect, ctx);
        }
        self.reset_idle(ctx);
        self.end_turn_if_done(ctx);
        if !self.drained.is_empty() && !self.draining() {
            for done in self.drained.drain(..) {
                let _ = done.send(());
            }
        }
    }

    /// Shutdown must still wait for this thread: a turn, a first answer, a vote write, or an
    /// input waiting for the thread's turn.
    fn draining(&self) -> bool {
        self.conversation.draining() || self.votes.values().any(|v| v.writing) || !self.turn.parked.is_empty()
    }

    fn carry(&mut self, effect: Effect, ctx: &mut Context<Self>) {
        let (slack, channel, root) = (self.s.slack.clone(), self.channel.clone(), self.root().clone());
        match effect {
            Effect::SetStatus => {
                let requester = self.conversation.requester().clone();
                let metrics = self.s.health.metrics.clone();
                actix_rt::spawn(async move {
                    let sign = slack.acknowledge(&channel, &root, &requester, STATUS, ACK_NOTE).await;
                    match sign {
                        Ok(sign) => metrics.acknowledgement(sign.as_str()),
                        Err(e) => {
                            metrics.acknowledgement("none");
                            tracing::debug!(error = %e, "no sign of life shown");
                        }
                    }
                });
            }
            Effect::Mark(name) => {
                actix_rt::spawn(async move {
                    if let Err(e) = slack.add_reaction(&channel, &root, name).await {
                        tracing::debug!(error = %e, "reaction marker not added");
                    }
                });
            }
            Effect::Ephemeral { user, text } => {
                actix_rt::spawn(async move {
                    if let Err(e) = slack.post_ephemeral(&channel, &user, Some(&root), &text).await {
                        tracing::debug!(error = %e, "private note not delivered");
                    }
                });
            }
            Effect::Prepare { version, query, classify } => self.prepare(version, query, classify, ctx),
            Effect::CheckOutage { version, symptom, title, at } => {
                let report = Reported {
                    symptom,
                    title,
                    thread: root,
                    requester: self.conversation.requester().clone(),
                    at,
                };
                let ask = self.s.outage.send(report).timeout(ASK_TIMEOUT);
                ctx.spawn(ask.into_actor(self).map(move |answer, act, ctx| {
                    let verdict = match answer {
                        Ok(Answer { verdict: Verdict::Known { first } | Verdict::Declared { first, .. }, notice }) => {
                            OutageVerdict::Part { first, notice }
                        }
                        Ok(Answer { verdict: Verdict::Normal, .. }) => OutageVerdict::Normal,
                        Err(e) => {
                            tracing::warn!(thread = %act.root(), error = %e, "outage detection did not answer");
                            OutageVerdict::Normal
                        }
                    };
                    act.feed(Input::OutageChecked { version, verdict }, ctx);
                }));
            }
            Effect::StartReply(request) => self.start_reply(request, ctx),
            Effect::CancelReply { id } => {
                if let Some((_, reply)) = self.reply.take().filter(|(rid, _)| *rid == id) {
                    reply.do_send(Cancel);
                }
            }
            Effect::Release { id, fallback, state, since } => {
                match self.reply.as_ref().filter(|(rid, _)| *rid == id) {
                    Some((_, reply)) => reply.do_send(Release {
                        channel,
                        thread_ts: root.clone(),
                        recipient: self.conversation.requester().clone(),
                        footer: compose::HOW_TO_CONTINUE.to_string(),
                        actions: Some(compose::answer_actions(&root)),
                        metadata: state,
                        fallback,
                        since,
                    }),
                    None => tracing::error!(thread = %root, id, "no LLM answer to release"),
                }
            }
            Effect::Post { text, kind, state, since } => self.post(text, kind, state, since, ctx),
            Effect::ReadThread(read) => {
                let s = self.s.clone();
                let fut = async move {
                    // With Redis, the escalation is claimed there first: whichever replica gets
                    // the claim posts it, whatever each one's copy of the thread says.
                    let claim = match (&s.coord, read) {
                        (Some(coord), crate::conversation::Read::EscalationCheck) => {
                            let ttl = Duration::from_secs(s.settings.threads.idle_secs.max(3600));
                            let what = ["escalation", s.channel.as_str(), root.as_str()];
                            // A person waits on this one: a Redis that just failed is asked
                            // once more, after its cool-off, before deciding without it.
                            match coord.once(&what, ttl).await {
                                Err(_) => {
                                    tokio::time::sleep(crate::coord::COOL_OFF).await;
                                    coord.once(&what, ttl).await
                                }
                                decided => decided,
                            }
                        }
                        _ => Ok(true),
                    };
                    let taken = match claim {
                        Ok(won) => !won,
                        Err(e) => {
                            tracing::warn!(thread = %root, error = %e, "escalation not claimed in redis; deciding from the thread alone");
                            false
                        }
                    };
                    (super::shared::read_thread(&s, &root).await, taken)
                };
                ctx.spawn(fut.into_actor(self).map(move |(result, escalation_taken), act, ctx| {
                    let messages = match result {
                        Ok(m) => Some(m),
                        Err(e) => {
                            tracing::warn!(thread = %act.root(), error = %e, read = ?read, "thread not read from slack");
                            None
                        }
                    };
                    act.feed(Input::ThreadRead { read, messages, escalation_taken }, ctx);
                }));
            }
            Effect::Record { ending, resolution } => {
                self.s.tickets.do_send(Record(PastTicket {
                    thread: root,
                    question: self.conversation.question().clone(),
                    ending,
                    resolution: resolution.map(|r| UserText::new(crate::text::clip(&r, 600))),
                }));
            }
            Effect::Forget => self.s.tickets.do_send(Forget(root)),
            Effect::Count(count) => self.count(count),
            Effect::WriteVotes { message, up, down, voter, vote_up } => {
                let Some(coord) = self.s.coord.clone() else {
                    self.votes.entry(message.clone()).or_default().here = VoteCounts { up, down };
                    self.write_votes(message, ctx);
                    return;
                };
                // With Redis, each person's vote is kept there, so votes cast on different
                // replicas at once are all counted.
                let key = message.to_string();
                let cast = async move { coord.vote(&key, voter.as_str(), vote_up, VOTES_KEPT).await };
                ctx.spawn(cast.into_actor(self).map(move |counted, act, ctx| {
                    let root = act.root().clone();
                    let votes = act.votes.entry(message.clone()).or_default();
                    match counted {
                        Ok((up, down)) => {
                            votes.here = VoteCounts { up: u64::from(up), down: u64::from(down) };
                            votes.shared = true;
                        }
                        Err(e) => {
                            tracing::warn!(thread = %root, error = %e, "vote not counted in redis; counting this replica's");
                            votes.here = VoteCounts { up, down };
                        }
                    }
                    act.write_votes(message, ctx);
                }));
            }
            Effect::Settle { ms } => {
                ctx.run_later(Duration::from_millis(ms), |act, ctx| act.feed(Input::Settled, ctx));
            }
            Effect::WaitForAssist { secs } => {
                ctx.run_later(Duration::from_secs(secs), |act, ctx| act.feed(Input::AssistWaitOver, ctx));
                self.watch_for_card(Instant::now() + Duration::from_secs(secs), ctx);
            }
            Effect::PeerSeen => {
                if self.s.health.mark_peers() {
                    if self.s.coord.is_some() {
                        tracing::info!(thread = %root, "another process posts as this bot: replicas share the channel through redis");
                    } else {
                        tracing::warn!(
                            thread = %root,
                            "another process posts as this bot: replicas share the channel, so threads are read from \
                             Slack before acting (a Slack read per turn); set REDIS_URL to share their state instead"
                        );
                    }
                }
            }
            Effect::Stop => ctx.stop(),
        }
    }

    fn count(&self, count: Count) {
        let m = &self.s.health.metrics;
        match count {
            Count::Ticket(category) => m.ticket(category.as_str()),
            Count::Takeover => {
                m.takeovers.inc();
            }
            Count::Resolution => {
                m.resolutions.inc();
            }
            Count::Escalation(trigger) => m.escalation(trigger.as_str()),
            Count::Feedback { category, up, via } => m.feedback(category.as_str(), up, via.as_str()),
        }
    }

    /// Similar past tickets, and (when asked) a one-word LLM triage.
    fn prepare(&mut self, version: u32, query: UserText, classify: Option<String>, ctx: &mut Context<Self>) {
        let find = FindSimilar { query: query.into_inner(), k: 3, exclude: Some(self.root().clone()) };
        let tickets = self.s.tickets.clone();
        let classify = self.s.openai.clone().zip(classify).map(|(openai, text)| {
            let messages = vec![
                ChatMessage { role: Role::System, content: compose::CLASSIFY_PROMPT.into() },
                ChatMessage { role: Role::User, content: text },
            ];
            let request = Complete {
                max_completion_tokens: Some(5),
                temperature: Some(0.0),
                ..Complete::answer(messages, CLASSIFY_PROMPT_TOKENS)
            };
            (openai, request)
        });
        let timeout = Duration::from_secs(self.s.settings.openai.timeout_secs * 3 + 10);
        let fut = async move {
            let similar = tickets.send(find).timeout(ASK_TIMEOUT).await.unwrap_or_default();
            let category = match classify {
                Some((openai, request)) => Some(openai.send(request).timeout(timeout).await),
                None => None,
            };
            (similar, category)
        };
        ctx.spawn(fut.into_actor(self).map(move |(similar, category), act, ctx| {
            let category = match category {
                Some(Ok(Ok(c))) => {
                    let word = c.content.trim().to_lowercase();
                    Category::parse(word.trim_matches(|ch: char| !ch.is_alphabetic()))
                }
                Some(Ok(Err(e))) => {
                    tracing::warn!(thread = %act.root(), error = %e, "LLM triage failed; keeping the rules' answer");
                    None
                }
                Some(Err(e)) => {
                    tracing::warn!(thread = %act.root(), error = %e, "LLM triage timed out; keeping the rules' answer");
                    None
                }
                None => None,
            };
            act.feed(Input::Prepared { version, similar, category }, ctx);
        }));
    }

    /// Starts writing an LLM answer; it is posted once released.
    fn start_reply(&mut self, request: PromptRequest, ctx: &mut Context<Self>) {
        let articles = compose::articles_for(&self.s.kb, request.question.expose());
        let past = compose::past_quotes(&request.similar);
        let prompt = self.s.prompt.build(&PromptInput {
            articles: &articles,
            past_tickets: &past,
            turns: &request.turns,
            second_approach: request.second_approach,
        });
        tracing::debug!(
            thread = %self.root(),
            prompt_tokens = prompt.tokens,
            dropped_turns = prompt.dropped_turns,
            dropped_references = prompt.dropped_references,
            "prompt built"
        );
        let reply = ReplyActor::new(
            self.s.clone(),
            ReplyRequest {
                id: request.id,
                messages: prompt.messages,
                prompt_tokens: prompt.tokens,
                notify: ctx.address().recipient(),
            },
        )
        .start();
        self.reply = Some((request.id, reply));
    }

    /// Posts `text` in the thread (split if long; the buttons and the state on the last part).
    fn post(
        &mut self,
        text: String,
        kind: ReplyKind,
        state: ThreadState,
        since: Option<Ts>,
        ctx: &mut Context<Self>,
    ) {
        let slack = self.s.slack.clone();
        let services = self.s.clone();
        let (channel, thread) = (self.channel.clone(), self.root().clone());
        let metadata = Metadata::from(state);
        let fut = async move {
            let parts = split_message(&text, MAX_MESSAGE_CHARS);
            let last = parts.len().saturating_sub(1);
            let mut posted = Vec::new();
            for (i, part) in parts.into_iter().enumerate() {
                let is_last = i == last;
                let blocks =
                    (is_last && kind == ReplyKind::Answer).then(|| compose::answer_blocks(&part, &thread));
                let meta = is_last.then_some(&metadata);
                let ts = slack
                    .post_answer(&channel, &thread, &part, blocks.as_ref(), meta, since.as_ref())
                    .await?;
                // Into the replicas' copy with its state, before anything acts on it.
                let own = crate::slack::events::Message {
                    channel: channel.clone(),
                    ts: ts.clone(),
                    thread_ts: Some(thread.clone()),
                    user: Some(services.identity.user_id.clone()),
                    bot_id: services.identity.bot_id.clone(),
                    subtype: None,
                    text: UserText::new(part.clone()),
                    blocks_text: UserText::new(String::new()),
                };
                super::shared::record(&services, &own, meta);
                posted.push(ts);
            }
            Ok::<_, SlackError>(posted)
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            let posted = match result {
                Ok(posted) => {
                    act.s.health.metrics.replies.inc_by(posted.len() as u64);
                    posted
                }
                Err(e) => {
                    tracing::error!(thread = %act.root(), error = %e, "reply not posted");
                    act.tell_unposted(ctx);
                    Vec::new()
                }
            };
            act.feed(Input::Posted(posted), ctx);
        }));
    }

    /// With Redis: Assist's card may reach another replica's socket. The thread's copy is looked
    /// at every [`CARD_LOOK`] while the first answer waits for the card, so the answer goes out when
    /// the card is there instead of at the end of the wait.
    fn watch_for_card(&mut self, until: Instant, ctx: &mut Context<Self>) {
        let Some(coord) = self.s.coord.clone() else { return };
        ctx.run_later(CARD_LOOK, move |act, ctx| {
            if !act.conversation.waiting_for_assist() || Instant::now() >= until {
                return;
            }
            let (channel, root) = (act.channel.clone(), act.root().clone());
            let look = async move {
                let (_, entries) = coord.thread_copy(channel.as_str(), root.as_str()).await.ok()?;
                super::shared::from_entries(&entries, &channel, &root)
            };
            ctx.spawn(look.into_actor(act).map(move |copy, act, ctx| {
                let card = copy.as_ref().is_some_and(|messages| {
                    messages.iter().any(|m| m.message.bot_id.is_some() && act.s.assist.is_assist(&m.message))
                });
                if card && act.conversation.waiting_for_assist() {
                    let read = crate::conversation::Read::AssistCard;
                    act.feed(Input::ThreadRead { read, messages: copy, escalation_taken: false }, ctx);
                } else {
                    act.watch_for_card(until, ctx);
                }
            }));
        });
    }

    /// A reply that could not be posted (Slack refused it past its deadline, or it waited too
    /// long for the channel's budget) is not silence: the requester is told privately, through
    /// `chat.postEphemeral`'s own budget.
    fn tell_unposted(&self, ctx: &mut Context<Self>) {
        let slack = self.s.slack.clone();
        let (channel, root) = (self.channel.clone(), self.root().clone());
        let requester = self.conversation.requester().clone();
        ctx.spawn(
            async move {
                if let Err(e) = slack.post_ephemeral(&channel, &requester, Some(&root), UNPOSTED_NOTE).await {
                    tracing::error!(thread = %root, error = %e, "the requester could not be told that a reply was lost");
                }
            }
            .into_actor(self),
        );
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
        let (channel, root, bot) =
            (self.channel.clone(), self.root().clone(), self.s.identity.user_id.clone());
        let ts = message_ts.clone();
        let read = async move {
            if let Some(m) = known {
                return Ok((m, false));
            }
            let thread = slack.thread_messages(&channel, &root).await?;
            let found =
                thread.into_iter().find(|m| m.message.ts == ts && m.message.user.as_ref() == Some(&bot));
            found.map(|m| (m, true)).ok_or_else(|| SlackError::Api {
                method: "conversations.replies".into(),
                code: "message_not_found".into(),
                needed: None,
                provided: None,
            })
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            let fallback_state = act.conversation.state(&world(&act.s));
            let Some(votes) = act.votes.get_mut(&message_ts) else { return };
            let message = match result {
                Ok((m, first_read)) => {
                    if first_read {
                        votes.base = m.thread_state().and_then(|s| s.feedback).unwrap_or_default();
                        votes.message = Some(m.clone());
                        if let Some(coord) = act.s.coord.clone().filter(|_| votes.shared) {
                            // Counts written before Redis was set go into Redis once (the first
                            // replica to read them marks the votes as carried); the check after
                            // this write picks them up.
                            let (key, base) = (message_ts.to_string(), votes.base);
                            actix_rt::spawn(async move {
                                if let Err(e) = coord.seed_votes(&key, base.up, base.down, VOTES_KEPT).await {
                                    tracing::debug!(error = %e, "earlier counts not carried into redis");
                                }
                            });
                        }
                    }
                    m
                }
                Err(e) => {
                    votes.writing = false;
                    tracing::warn!(thread = %act.root(), error = %e, "feedback not written to slack (counted in metrics only)");
                    return;
                }
            };
            let mut state = match &message.metadata {
                Some(Metadata::ThreadState(s)) => (**s).clone(),
                _ => fallback_state,
            };
            let total = if votes.shared {
                votes.here
            } else {
                VoteCounts { up: votes.base.up + votes.here.up, down: votes.base.down + votes.here.down }
            };
            votes.written = Some(total);
            state.feedback = Some(total);
            let metadata = Metadata::from(state);
            let text = message.message.text.expose().to_string();
            let blocks = message.blocks.clone();
            let slack = act.s.slack.clone();
            let channel = act.channel.clone();
            let ts = message_ts.clone();
            let write =
                async move { slack.update_message(&channel, &ts, &text, blocks.as_ref(), Some(&metadata)).await };
            ctx.spawn(write.into_actor(act).map(move |result, act, ctx| {
                if let Err(e) = result {
                    tracing::warn!(thread = %act.root(), error = %e, "feedback not written to slack (counted in metrics only)");
                }
                let Some(votes) = act.votes.get_mut(&message_ts) else { return };
                votes.writing = false;
                if votes.dirty {
                    act.write_votes(message_ts, ctx);
                } else if votes.shared {
                    act.recheck_votes(message_ts, ctx);
                }
            }));
        }));
    }

    /// With Redis: another replica may have written older counts over ours; if Redis's counts
    /// differ from what was written last, they are written again.
    fn recheck_votes(&mut self, message_ts: Ts, ctx: &mut Context<Self>) {
        let Some(coord) = self.s.coord.clone() else { return };
        let key = message_ts.to_string();
        let look = async move { coord.vote_counts(&key).await };
        ctx.spawn(look.into_actor(self).map(move |counts, act, ctx| {
            let Ok((up, down)) = counts else { return };
            let Some(votes) = act.votes.get_mut(&message_ts) else { return };
            let now = VoteCounts { up: u64::from(up), down: u64::from(down) };
            if votes.written != Some(now) {
                votes.here = now;
                act.write_votes(message_ts, ctx);
            }
        }));
    }

    /// (Re)starts the idle timer: `threads.idle_secs`, or `threads.settled_secs` once the ticket
    /// is settled and nothing is in flight. Slack holds what a settled thread needs, so it
    /// leaves memory and resumes from Slack if anyone writes in it again.
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
            tracing::debug!(thread = %act.root(), phase = act.conversation.phase().as_str(), "thread idle; stopping");
            ctx.stop();
        }));
    }

    /// A turn, a queued follow-up, a feedback write or an input waiting for the turn.
    fn in_flight(&self) -> bool {
        self.conversation.in_flight()
            || self.votes.values().any(|v| v.writing)
            || !self.turn.parked.is_empty()
    }

    fn settled(&self) -> bool {
        self.conversation.settled() && !self.in_flight()
    }
}

/// What the conversation consults, from the shared services.
fn world(s: &SharedServices) -> World<'_> {
    World {
        kb: &s.kb,
        rules: &s.rules,
        assist: &s.assist,
        settings: &s.settings,
        bot: &s.identity.user_id,
        channel_name: &s.channel_name,
        llm: s.openai.is_some(),
        peers: s.health.peers_seen(),
        coordinated: s.coord.is_some(),
        now: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
    }
}

impl Actor for ThreadActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        if self.conversation.phase() == crate::state::Phase::Preparing {
            // A new ticket: its first answer is a turn.
            self.note_turn();
            self.submit(Input::Started, ctx);
        } else {
            // Resumed from the copy: nothing to prepare, no turn to take.
            self.feed(Input::Started, ctx);
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // A turn cut short (the root deleted, evicted) is given back at once, not left to run out.
        if self.turn.state == Hold::Held || self.noted {
            if let Some(coord) = self.s.coord.clone() {
                let (channel, root, token) =
                    (self.channel.to_string(), self.root().to_string(), self.turn.token);
                let (held, noted) = (self.turn.state == Hold::Held, self.noted);
                actix_rt::spawn(async move {
                    // A thread stopped before its first answer (its root deleted) needs none.
                    if noted {
                        let _ = coord.turn_over(&channel, &root).await;
                    }
                    if held {
                        let _ = coord.end_turn(&channel, &root, token).await;
                    }
                });
            }
        }
        self.stopped.do_send(ThreadStopped { thread: self.root().clone(), actor: self.actor_id });
    }
}

impl Handler<ThreadEvent> for ThreadActor {
    type Result = ();

    fn handle(&mut self, event: ThreadEvent, ctx: &mut Self::Context) {
        // One span per turn: every line logged while handling it carries the thread and kind.
        let span = tracing::info_span!("turn", thread = %self.root(), event = event.kind(), phase = self.conversation.phase().as_str());
        let _entered = span.enter();
        let input = match event {
            ThreadEvent::Reply { message, mentioned } => Input::Reply { message, mentioned },
            ThreadEvent::Assist(card) => Input::Assist(card),
            ThreadEvent::RootEdited(text) => Input::RootEdited(text),
            ThreadEvent::RootDeleted => Input::RootDeleted,
            ThreadEvent::Reaction { user, reaction, ts } => Input::Reaction { user, reaction, ts },
            ThreadEvent::GetHuman { user, message_ts } => {
                tracing::debug!(thread = %self.root(), message = %message_ts, "get a human");
                Input::GetHuman { user }
            }
            ThreadEvent::Feedback { user, message_ts, up } => Input::Feedback { user, message_ts, up },
            ThreadEvent::BotPosted(ts) => Input::BotPosted(ts),
            ThreadEvent::Stop => {
                ctx.stop();
                return;
            }
        };
        self.submit(input, ctx);
    }
}

impl Handler<Drain> for ThreadActor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.feed(Input::Drain, ctx);
        if !self.draining() {
            return Box::pin(std::future::ready(false));
        }
        let (done, wait) = oneshot::channel();
        self.drained.push(done);
        // Dropped without a word when the actor stops: that also means drained.
        Box::pin(async move {
            let _ = wait.await;
            true
        })
    }
}

impl Handler<ReplyFinished> for ThreadActor {
    type Result = ();

    fn handle(&mut self, done: ReplyFinished, ctx: &mut Self::Context) {
        if self.reply.as_ref().is_some_and(|(id, _)| *id == done.id) {
            self.reply = None;
        }
        self.feed(Input::ReplyFinished { id: done.id, outcome: done.outcome }, ctx);
    }
}

/// Whether a turn just handled a post that is not a ticket, and how: `pointer` (the configured
/// reply was posted) or `none`. Such a post leaves preparing for acknowledged in one turn.
fn not_ticket_handled(was: Phase, conversation: &Conversation, effects: &[Effect]) -> Option<&'static str> {
    let handled = conversation.triage().category == Category::NotTicket
        && was != Phase::Acknowledged
        && conversation.phase() == Phase::Acknowledged;
    let posted = effects.iter().any(|e| matches!(e, Effect::Post { .. }));
    handled.then_some(if posted { "pointer" } else { "none" })
}

//! RouterActor: decides what each event means for the bot. It drops duplicates (`event_id`,
//! and `channel`+`ts` for the `message`/`app_mention` pair), keeps to the IT channel, ignores the
//! bot's own and other bots' messages (Assist's go to their thread), starts one ThreadActor per
//! new ticket, and maps the bot's message timestamps to their threads for reactions and buttons.
//!
//! An event for a thread it does not hold (after a restart, an idle stop, or on a second replica)
//! is looked up once: the thread is read from Slack (`conversations.replies` with metadata) and a
//! ThreadActor resumes from the state the bot wrote on its replies. Threads the bot never
//! answered are remembered as not ours, so they are not looked up again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::oneshot;

use super::report::{ReportActor, ReportRequest};
use super::thread::{self, LoadedThread, ThreadActor, ThreadEvent, ThreadStopped};
use super::SharedServices;
use crate::compose;
use crate::slack::events::{Event, Message as SlackMessage};
use crate::slack::{ChannelId, EventId, SlackError, Ts};

/// An event from a socket, already acked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub event_id: EventId,
    pub event: Event,
    pub retry_attempt: u32,
}

/// How many ids the de-duplication remembers, and for how long.
const SEEN_CAPACITY: usize = 20_000;
const SEEN_FOR: Duration = Duration::from_secs(3600);
/// How long an event stays claimed by the replica that handles it (Slack gives up redelivering
/// within the hour).
const EVENT_CLAIM: Duration = Duration::from_secs(3600);
/// Bot message timestamps remembered for reactions.
const MESSAGE_MAP_CAPACITY: usize = 50_000;
/// Assist cards that arrived before their ticket's first message, kept briefly.
const PENDING_CAPACITY: usize = 1_000;
/// Events held for one thread while it is read from Slack.
const HELD_PER_LOOKUP: usize = 32;
/// With Redis, how often a replica looks for turns (a new ticket's first answer, a follow-up's)
/// another replica began and never finished, how old such a note must be (a live replica renews its hold on the
/// thread every few seconds, so an old note with no hold is a dead replica's), how many are
/// taken over at a time, and how long one taken over is this replica's alone.
const ORPHANS_EVERY: Duration = Duration::from_secs(3);
const ORPHAN_AFTER: Duration = super::shared::TURN_LEASE;
const ORPHANS_AT_ONCE: usize = 16;
const ORPHAN_CLAIM: Duration = Duration::from_secs(60);

/// A bounded, time-limited set for de-duplication.
struct Seen<T: Eq + Hash + Clone> {
    set: HashSet<T>,
    order: VecDeque<(Instant, T)>,
}

impl<T: Eq + Hash + Clone> Seen<T> {
    fn new() -> Self {
        Seen { set: HashSet::new(), order: VecDeque::new() }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        while let Some((at, old)) = self.order.front() {
            if self.order.len() > SEEN_CAPACITY || now.duration_since(*at) > SEEN_FOR {
                self.set.remove(old);
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    /// True if `item` is new (and remembers it).
    fn first_time(&mut self, item: T) -> bool {
        self.expire();
        if self.set.insert(item.clone()) {
            self.order.push_back((Instant::now(), item));
            true
        } else {
            false
        }
    }

    fn contains(&mut self, item: &T) -> bool {
        self.expire();
        self.set.contains(item)
    }
}

/// The result of reading a thread from Slack.
#[derive(Message)]
#[rtype(result = "()")]
struct ThreadLoaded {
    /// The ts the lookup was made for (a root, a reply or a reacted message).
    key: Ts,
    /// Another replica held the thread's turn when it was looked up (with Redis): the thread
    /// is the bot's even if the copy shows no answer yet (that replica died before posting).
    was_held: bool,
    /// A turn another replica began here and never finished (it died): the people's messages
    /// after the bot's last one are acted on again.
    orphan: bool,
    result: Result<Option<LoadedThread>, SlackError>,
}

pub struct RouterActor {
    services: SharedServices,
    /// Answers `@itbot report` and posts the weekly report.
    report: Addr<ReportActor>,
    threads: HashMap<Ts, Addr<ThreadActor>>,
    /// The id of the actor holding each thread.
    thread_actor: HashMap<Ts, u64>,
    next_actor: u64,
    /// When each thread last had activity (a counter, for evicting the least recent).
    activity: HashMap<Ts, u64>,
    tick: u64,
    /// The bot's messages → their thread, so a reaction or a click finds its thread.
    message_thread: HashMap<Ts, Ts>,
    message_order: VecDeque<Ts>,
    pending_assist: HashMap<Ts, SlackMessage>,
    /// Lookups in flight, with the events that wait for them.
    loading: HashMap<Ts, Vec<ThreadEvent>>,
    /// Threads (and message timestamps) that are not the bot's tickets.
    not_ours: Seen<Ts>,
    seen_events: Seen<EventId>,
    seen_messages: Seen<(ChannelId, Ts)>,
    /// Drains waiting for the reads in `loading` to end.
    loaded_waiters: Vec<oneshot::Sender<()>>,
    /// A look for other replicas' orphaned tickets is under way.
    looking_for_orphans: bool,
}

impl RouterActor {
    pub fn new(services: SharedServices, report: Addr<ReportActor>) -> RouterActor {
        RouterActor {
            services,
            report,
            threads: HashMap::new(),
            thread_actor: HashMap::new(),
            next_actor: 1,
            activity: HashMap::new(),
            tick: 0,
            message_thread: HashMap::new(),
            message_order: VecDeque::new(),
            pending_assist: HashMap::new(),
            loading: HashMap::new(),
            not_ours: Seen::new(),
            seen_events: Seen::new(),
            seen_messages: Seen::new(),
            loaded_waiters: Vec::new(),
            looking_for_orphans: false,
        }
    }

    fn touch(&mut self, thread: &Ts) {
        self.tick += 1;
        self.activity.insert(thread.clone(), self.tick);
    }

    fn send(&mut self, thread: &Ts, event: ThreadEvent, ctx: &mut Context<Self>) {
        self.touch(thread);
        let Some(addr) = self.threads.get(thread) else { return };
        let kind = event.kind();
        match addr.try_send(event) {
            Ok(()) => {}
            Err(SendError::Closed(ThreadEvent::BotPosted(_))) => self.forget_thread(thread),
            Err(SendError::Closed(event)) => {
                // The thread stopped (idle) before the router heard of it: read it back from
                // Slack like any thread not held.
                tracing::debug!(thread = %thread, kind, "thread had just stopped; resuming it from slack");
                self.forget_thread(thread);
                self.route_or_load(thread.clone(), event, ctx);
            }
            Err(SendError::Full(_)) => {
                tracing::error!(thread = %thread, kind, "thread mailbox full: event dropped");
            }
        }
    }

    fn forget_thread(&mut self, thread: &Ts) {
        self.thread_actor.remove(thread);
        self.threads.remove(thread);
        self.activity.remove(thread);
        self.services.health.metrics.live_threads.set(self.threads.len() as i64);
    }

    fn remember_bot_message(&mut self, ts: Ts, thread: Ts) {
        if self.message_thread.insert(ts.clone(), thread).is_none() {
            self.message_order.push_back(ts);
        }
        while self.message_order.len() > MESSAGE_MAP_CAPACITY {
            if let Some(old) = self.message_order.pop_front() {
                self.message_thread.remove(&old);
            }
        }
    }

    /// Sends `event` to the thread `key` belongs to: at once if the thread is live, otherwise
    /// after reading it from Slack (once; threads that are not ours are remembered).
    fn route_or_load(&mut self, key: Ts, event: ThreadEvent, ctx: &mut Context<Self>) {
        let thread = self.message_thread.get(&key).cloned().unwrap_or_else(|| key.clone());
        if self.threads.contains_key(&thread) {
            self.send(&thread, event, ctx);
            return;
        }
        if self.not_ours.contains(&key) || self.not_ours.contains(&thread) {
            if let ThreadEvent::Reply { message, mentioned: true } = &event {
                self.post_help(message);
            }
            return;
        }
        if let Some(held) = self.loading.get_mut(&key) {
            if held.len() < HELD_PER_LOOKUP {
                held.push(event);
            } else {
                tracing::warn!(ts = %key, kind = event.kind(), "too many events for a thread being loaded: event dropped");
            }
            return;
        }
        self.load(key, vec![event], false, ctx);
    }

    /// Reads the thread `key` belongs to, then hands it `events`. `orphan`: a turn another
    /// replica began and never finished (see [`RouterActor::look_for_orphans`]).
    fn load(&mut self, key: Ts, events: Vec<ThreadEvent>, orphan: bool, ctx: &mut Context<Self>) {
        self.loading.insert(key.clone(), events);
        let services = self.services.clone();
        tracing::info!(ts = %key, "reading an unknown thread");
        let fut = async move {
            // A thread another replica is answering is read once its answer is in the copy.
            let was_held = orphan || super::shared::wait_for_turn(&services, &key).await;
            let mut messages = super::shared::read_thread(&services, &key).await;
            // Slack answers a reply's ts (a reaction's or a click's message) with that reply
            // alone; its `thread_ts` names the thread to read.
            let parent = match messages.as_deref() {
                Ok([only]) => only.message.thread_ts.clone().filter(|t| *t != only.message.ts),
                _ => None,
            };
            if let Some(parent) = parent {
                messages = super::shared::read_thread(&services, &parent).await;
            }
            let result = messages.map(|all| {
                let mut all = all.into_iter();
                let root = all.next()?.message;
                Some(LoadedThread { root, replies: all.collect() })
            });
            ThreadLoaded { key, was_held, orphan, result }
        };
        ctx.spawn(fut.into_actor(self).map(|loaded, _, ctx| ctx.notify(loaded)));
    }

    /// With Redis: finds turns a replica began and never finished (it died mid-turn: nobody holds
    /// the thread's turn any more), takes each over once across replicas and acts on it here, a
    /// new ticket answered from the start and a follow-up answered, though nobody writes in the
    /// thread again.
    fn look_for_orphans(&mut self, ctx: &mut Context<Self>) {
        let Some(coord) = self.services.coord.clone() else { return };
        if self.looking_for_orphans {
            return;
        }
        self.looking_for_orphans = true;
        let channel = self.services.channel.to_string();
        let find = async move { coord.unfinished_turns(ORPHAN_AFTER, ORPHANS_AT_ONCE).await };
        ctx.spawn(find.into_actor(self).map(move |found, act, ctx| {
            // This replica's own turns are in flight here, not orphans.
            let candidates: Vec<Ts> = found
                .unwrap_or_default()
                .into_iter()
                .filter(|(c, _)| *c == channel)
                .map(|(_, t)| Ts::from(t.as_str()))
                .filter(|t| !act.threads.contains_key(t) && !act.loading.contains_key(t))
                .collect();
            let Some(coord) = act.services.coord.clone().filter(|_| !candidates.is_empty()) else {
                act.looking_for_orphans = false;
                return;
            };
            let take = async move {
                let mut taken = Vec::new();
                for thread in candidates {
                    if !matches!(coord.turn_elsewhere(&channel, thread.as_str()).await, Ok(None)) {
                        continue;
                    }
                    if matches!(coord.claim(&["orphan", &channel, thread.as_str()], ORPHAN_CLAIM).await, Ok(true)) {
                        // Noted again by the thread that answers it here.
                        let _ = coord.turn_over(&channel, thread.as_str()).await;
                        taken.push(thread);
                    }
                }
                taken
            };
            ctx.spawn(take.into_actor(act).map(|taken, act, ctx| {
                act.looking_for_orphans = false;
                for thread in taken {
                    if act.threads.contains_key(&thread) || act.loading.contains_key(&thread) {
                        continue;
                    }
                    tracing::info!(thread = %thread, "taking over a turn another replica began and never noted as finished");
                    act.load(thread, Vec::new(), true, ctx);
                }
            }));
        }));
    }

    /// What people wrote after the bot's last message in a turn taken over from a replica that
    /// died before acting on it: taken out of `thread` (which then resumes before it) as events
    /// to hear again.
    fn unheard(&self, thread: &mut LoadedThread) -> Vec<ThreadEvent> {
        let bot = &self.services.identity.user_id;
        let after_bot =
            thread.replies.iter().rposition(|m| m.message.user.as_ref() == Some(bot)).map_or(0, |i| i + 1);
        thread
            .replies
            .split_off(after_bot)
            .into_iter()
            .filter(|m| m.message.user.is_some() && m.message.bot_id.is_none())
            .map(|m| {
                let mentioned = m.message.text.expose().contains(&format!("<@{bot}"));
                ThreadEvent::Reply { message: m.message, mentioned }
            })
            .collect()
    }

    fn on_message(&mut self, m: SlackMessage, mentioned: bool, ctx: &mut Context<Self>) {
        // A mention arrives twice (`message` and `app_mention`, in either order): the first
        // one is handled, and the text says whether the bot was mentioned.
        if !self.seen_messages.first_time((m.channel.clone(), m.ts.clone())) {
            tracing::debug!(ts = %m.ts, "second delivery of a message (message + app_mention) ignored");
            return;
        }
        let s = &self.services;
        let mentioned = mentioned || m.text.expose().contains(&format!("<@{}", s.identity.user_id));
        if m.channel != s.channel {
            if mentioned && m.bot_id.is_none() {
                self.post_help(&m);
            } else {
                tracing::debug!(channel = %m.channel, "message outside the IT channel ignored");
            }
            return;
        }
        // Into the replicas' copy of the thread (with Redis), whoever wrote it.
        super::shared::record(s, &m, None);
        let own = m.user.as_ref() == Some(&s.identity.user_id)
            || (m.bot_id.is_some() && m.bot_id == s.identity.bot_id);
        if own {
            let thread = m.thread().clone();
            self.remember_bot_message(m.ts.clone(), thread.clone());
            // The thread tells its own posts from another replica's.
            if !m.is_root() && self.threads.contains_key(&thread) {
                self.send(&thread, ThreadEvent::BotPosted(m.ts), ctx);
            }
            return;
        }
        if m.bot_id.is_some() || m.subtype.as_deref() == Some("bot_message") {
            if !m.is_root() && s.assist.is_assist(&m) {
                let thread = m.thread().clone();
                if self.threads.contains_key(&thread) {
                    let card = s.assist.read(&m);
                    self.send(&thread, ThreadEvent::Assist(card), ctx);
                } else if self.pending_assist.len() < PENDING_CAPACITY {
                    // The card can overtake the post it answers (they may arrive on different sockets).
                    self.pending_assist.insert(thread, m);
                }
            } else {
                tracing::debug!(ts = %m.ts, "message from another bot ignored");
            }
            return;
        }
        if m.user.is_none() {
            tracing::debug!(ts = %m.ts, "message without an author ignored");
            return;
        }
        if m.is_root() {
            if let Some(days) = crate::report::report_request(m.text.expose()).filter(|_| mentioned) {
                self.report.do_send(ReportRequest { thread: m.ts.clone(), days });
            } else if mentioned && compose::is_help_request(m.text.expose()) {
                self.post_help(&m);
            } else {
                self.start_thread(m, ctx);
            }
        } else {
            let thread = m.thread().clone();
            self.route_or_load(thread, ThreadEvent::Reply { message: m, mentioned }, ctx);
        }
    }

    fn start_thread(&mut self, m: SlackMessage, ctx: &mut Context<Self>) {
        let thread = m.ts.clone();
        if self.threads.contains_key(&thread) {
            return;
        }
        let pending = self.pending_assist.remove(&thread);
        let card = pending.map(|c| self.services.assist.read(&c));
        let services = self.services.clone();
        self.spawn_thread(thread.clone(), ctx, |stopped, id| ThreadActor::new(services, stopped, id, m));
        tracing::info!(thread = %thread, live = self.threads.len(), "new ticket");
        if let Some(card) = card {
            self.send(&thread, ThreadEvent::Assist(card), ctx);
        }
    }

    fn spawn_thread(
        &mut self,
        thread: Ts,
        ctx: &mut Context<Self>,
        make: impl FnOnce(Recipient<ThreadStopped>, u64) -> ThreadActor,
    ) {
        self.evict_if_full();
        let actor = self.next_actor;
        self.next_actor += 1;
        let addr = make(ctx.address().recipient(), actor).start();
        self.threads.insert(thread.clone(), addr);
        self.thread_actor.insert(thread.clone(), actor);
        self.services.health.metrics.live_threads.set(self.threads.len() as i64);
        self.touch(&thread);
    }

    /// Keeps at most `threads.max_live` threads: the least recently active one stops first.
    fn evict_if_full(&mut self) {
        while self.threads.len() >= self.services.settings.threads.max_live {
            let Some(oldest) = self.activity.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) else {
                return;
            };
            self.activity.remove(&oldest);
            self.thread_actor.remove(&oldest);
            if let Some(addr) = self.threads.remove(&oldest) {
                addr.do_send(ThreadEvent::Stop);
                tracing::warn!(thread = %oldest, "live thread limit reached; least recently active thread stopped");
            }
        }
        self.services.health.metrics.live_threads.set(self.threads.len() as i64);
    }

    fn post_help(&self, m: &SlackMessage) {
        let slack = self.services.slack.clone();
        let channel = m.channel.clone();
        let thread = m.thread().clone();
        let text = compose::help_text(&self.services.channel_name);
        actix_rt::spawn(async move {
            if let Err(e) = slack.post_message(&channel, Some(&thread), &text, None).await {
                tracing::warn!(channel = %channel, error = %e, "help text not posted");
            }
        });
    }
}

impl Actor for RouterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(10_000);
        if self.services.coord.is_some() {
            ctx.run_interval(ORPHANS_EVERY, |act, ctx| act.look_for_orphans(ctx));
        }
    }
}

impl Handler<Deliver> for RouterActor {
    type Result = ();

    fn handle(&mut self, d: Deliver, ctx: &mut Self::Context) {
        if !self.seen_events.first_time(d.event_id.clone()) {
            tracing::debug!(event_id = %d.event_id, retry_attempt = d.retry_attempt, "duplicate event ignored");
            return;
        }
        // Slack redelivers an envelope that was not acked in time to any open socket, another
        // replica's too: with Redis, one replica handles each event. Without an answer from Redis,
        // this one does, as it would alone.
        let Some(coord) = self.services.coord.clone() else {
            self.dispatch(d, ctx);
            return;
        };
        let id = d.event_id.to_string();
        let first = async move { coord.once(&["event", &id], EVENT_CLAIM).await };
        ctx.spawn(first.into_actor(self).map(move |first, act, ctx| match first {
            Ok(false) => tracing::debug!(event_id = %d.event_id, "event handled by another replica"),
            Ok(true) | Err(_) => act.dispatch(d, ctx),
        }));
    }
}

impl RouterActor {
    fn dispatch(&mut self, d: Deliver, ctx: &mut Context<Self>) {
        tracing::debug!(event_id = %d.event_id, kind = d.event.kind(), retry_attempt = d.retry_attempt, "event");
        match d.event {
            Event::Message(m) => self.on_message(m, false, ctx),
            Event::Mention(m) => self.on_message(m, true, ctx),
            Event::Edited(m) => {
                if m.channel == self.services.channel && m.bot_id.is_none() {
                    // The replicas' copy keeps the latest text (a later entry for a ts wins).
                    super::shared::record(&self.services, &m, None);
                }
                if m.channel == self.services.channel && self.threads.contains_key(&m.ts) {
                    let ts = m.ts.clone();
                    self.send(&ts, ThreadEvent::RootEdited(m.text), ctx);
                }
            }
            Event::Deleted { channel, ts, .. } => {
                if channel == self.services.channel && self.threads.contains_key(&ts) {
                    self.send(&ts, ThreadEvent::RootDeleted, ctx);
                }
            }
            Event::Reaction { user, reaction, channel, ts } => {
                if channel != self.services.channel {
                    return;
                }
                // A 👍 is only counted when the thread is at hand; only a 👎 can change
                // anything, so only it is worth a lookup.
                if thread::THUMBS_UP.contains(&reaction.as_str()) {
                    if let Some(t) = self.message_thread.get(&ts).filter(|t| self.threads.contains_key(*t)) {
                        let t = t.clone();
                        self.send(&t, ThreadEvent::Reaction { user, reaction, ts }, ctx);
                    }
                    return;
                }
                if !thread::THUMBS_DOWN.contains(&reaction.as_str()) {
                    return;
                }
                let key = ts.clone();
                self.route_or_load(key, ThreadEvent::Reaction { user, reaction, ts }, ctx);
            }
            Event::Action { user, channel, message_ts, action_id, value, .. }
                if action_id == compose::FEEDBACK_ACTION && channel == self.services.channel =>
            {
                match compose::parse_feedback(&value) {
                    Some((up, thread)) => {
                        self.route_or_load(thread, ThreadEvent::Feedback { user, message_ts, up }, ctx)
                    }
                    None => tracing::warn!(
                        value_len = value.len(),
                        "feedback button with an unreadable value ignored"
                    ),
                }
            }
            Event::Action { user, channel, message_ts, thread_ts, action_id, value } => {
                if channel != self.services.channel || action_id != compose::GET_HUMAN_ACTION {
                    tracing::debug!(action_id = %action_id, "interaction not for the IT channel's button");
                    return;
                }
                let thread =
                    if value.is_empty() { thread_ts.unwrap_or(message_ts.clone()) } else { Ts(value) };
                self.route_or_load(thread, ThreadEvent::GetHuman { user, message_ts }, ctx);
            }
            Event::Other { kind } => tracing::debug!(kind = %kind, "event not handled"),
        }
    }
}

impl Handler<ThreadLoaded> for RouterActor {
    type Result = ();

    fn handle(&mut self, loaded: ThreadLoaded, ctx: &mut Self::Context) {
        let mut held = self.loading.remove(&loaded.key).unwrap_or_default();
        if self.loading.is_empty() {
            for done in self.loaded_waiters.drain(..) {
                let _ = done.send(());
            }
        }
        let thread = match loaded.result {
            Err(e) => {
                // Not remembered as "not ours": a later event may try again.
                tracing::warn!(ts = %loaded.key, error = %e, events = held.len(), "thread could not be read; its events are dropped");
                return;
            }
            Ok(None) => {
                self.not_ours.first_time(loaded.key.clone());
                return;
            }
            Ok(Some(thread)) => thread,
        };
        let root = thread.root.ts.clone();
        if loaded.key != root {
            self.remember_bot_message(loaded.key.clone(), root.clone());
        }
        if !self.threads.contains_key(&root) {
            let services = self.services.clone();
            let first = loaded.was_held.then(|| thread.root.clone()).filter(|r| r.user.is_some());
            let mut thread = thread;
            if loaded.orphan {
                held.splice(0..0, self.unheard(&mut thread));
            }
            let resumed = ThreadActor::resume(services, thread);
            match resumed {
                Some(make) => {
                    self.spawn_thread(root.clone(), ctx, make);
                    tracing::info!(thread = %root, "thread resumed from slack");
                }
                None if first.is_some() => {
                    // A replica took this thread's turn and is gone without an answer in the
                    // copy (it died mid-turn): the ticket starts again here.
                    tracing::warn!(thread = %root, "the replica answering this ticket stopped before its first answer; answering it here");
                    let (services, first) = (self.services.clone(), first.expect("checked"));
                    self.spawn_thread(root.clone(), ctx, |stopped, id| {
                        ThreadActor::new(services, stopped, id, first)
                    });
                }
                None => {
                    tracing::debug!(thread = %root, "not a ticket the bot answered; left alone");
                    self.not_ours.first_time(root.clone());
                    self.not_ours.first_time(loaded.key.clone());
                    for event in held {
                        if let ThreadEvent::Reply { message, mentioned: true } = event {
                            self.post_help(&message);
                        }
                    }
                    return;
                }
            }
        }
        for event in held {
            self.send(&root, event, ctx);
        }
    }
}

impl Handler<ThreadStopped> for RouterActor {
    type Result = ();

    fn handle(&mut self, m: ThreadStopped, _: &mut Self::Context) {
        if self.thread_actor.get(&m.thread) != Some(&m.actor) {
            // Evicted earlier, or a newer actor holds this thread now.
            return;
        }
        self.forget_thread(&m.thread);
        tracing::debug!(thread = %m.thread, live = self.threads.len(), "thread stopped");
    }
}

/// How many threads are live (for tests and health).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LiveThreads;

impl Handler<LiveThreads> for RouterActor {
    type Result = usize;

    fn handle(&mut self, _: LiveThreads, _: &mut Self::Context) -> usize {
        self.threads.len()
    }
}

/// Shutdown: threads answer what they prepare. The reply comes once every thread has no turn in
/// flight and no thread is being read back from Slack: how many had to be waited for (0: all
/// was quiet already). Asked again until 0, within the grace period; nothing polls.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct DrainThreads;

impl Handler<DrainThreads> for RouterActor {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, _: DrainThreads, _: &mut Self::Context) -> Self::Result {
        let asks: Vec<_> = self.threads.values().map(|t| t.send(thread::Drain)).collect();
        // A thread still being read back from Slack has events to act on: wait for the reads.
        let loads = (!self.loading.is_empty()).then(|| {
            let (done, wait) = oneshot::channel();
            self.loaded_waiters.push(done);
            wait
        });
        Box::pin(async move {
            let answers = futures_util::future::join_all(asks).await;
            // A thread that stopped meanwhile is not in flight.
            let busy = answers.into_iter().filter(|a| matches!(a, Ok(true))).count();
            match loads {
                Some(wait) => {
                    let _ = wait.await;
                    busy + 1
                }
                None => busy,
            }
        })
    }
}

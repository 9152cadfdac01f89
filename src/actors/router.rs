//! RouterActor: decides what each event means for the bot. It drops duplicates (`event_id`,
//! and `channel`+`ts` for the `message`/`app_mention` pair), keeps to the IT channel, ignores the
//! bot's own and other bots' messages (Assist's go to their thread), starts one ThreadActor per
//! new ticket, and maps the bot's message timestamps to their threads for reactions.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::thread::{ThreadActor, ThreadEvent};
use super::SharedServices;
use crate::compose;
use crate::slack::events::{Event, Message as SlackMessage};
use crate::slack::{ChannelId, EventId, Ts};

/// An event from a socket, already acked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub event_id: EventId,
    pub event: Event,
    pub retry_attempt: u32,
}

/// A ThreadActor stopped (idle, deleted root, or evicted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ThreadStopped {
    pub thread: Ts,
    /// Which actor stopped: a newer actor may already hold the same thread.
    pub actor: u64,
}

/// How many ids the de-duplication remembers, and for how long.
const SEEN_CAPACITY: usize = 20_000;
const SEEN_FOR: Duration = Duration::from_secs(3600);
/// Bot message timestamps remembered for reactions.
const MESSAGE_MAP_CAPACITY: usize = 50_000;
/// Assist cards that arrived before their ticket's first message, kept briefly.
const PENDING_CAPACITY: usize = 1_000;

/// A bounded, time-limited set for de-duplication.
struct Seen<T: Eq + Hash + Clone> {
    set: HashSet<T>,
    order: VecDeque<(Instant, T)>,
}

impl<T: Eq + Hash + Clone> Seen<T> {
    fn new() -> Self {
        Seen { set: HashSet::new(), order: VecDeque::new() }
    }

    /// True if `item` is new (and remembers it).
    fn first_time(&mut self, item: T) -> bool {
        let now = Instant::now();
        while let Some((at, old)) = self.order.front() {
            if self.order.len() > SEEN_CAPACITY || now.duration_since(*at) > SEEN_FOR {
                self.set.remove(old);
                self.order.pop_front();
            } else {
                break;
            }
        }
        if self.set.insert(item.clone()) {
            self.order.push_back((now, item));
            true
        } else {
            false
        }
    }
}

pub struct RouterActor {
    services: SharedServices,
    threads: HashMap<Ts, Addr<ThreadActor>>,
    /// The id of the actor holding each thread.
    thread_actor: HashMap<Ts, u64>,
    next_actor: u64,
    /// When each thread last had activity (a counter, for evicting the least recent).
    activity: HashMap<Ts, u64>,
    tick: u64,
    /// The bot's messages → their thread, so a reaction finds its thread.
    message_thread: HashMap<Ts, Ts>,
    message_order: VecDeque<Ts>,
    pending_assist: HashMap<Ts, SlackMessage>,
    seen_events: Seen<EventId>,
    seen_messages: Seen<(ChannelId, Ts)>,
}

impl RouterActor {
    pub fn new(services: SharedServices) -> RouterActor {
        RouterActor {
            services,
            threads: HashMap::new(),
            thread_actor: HashMap::new(),
            next_actor: 1,
            activity: HashMap::new(),
            tick: 0,
            message_thread: HashMap::new(),
            message_order: VecDeque::new(),
            pending_assist: HashMap::new(),
            seen_events: Seen::new(),
            seen_messages: Seen::new(),
        }
    }

    fn touch(&mut self, thread: &Ts) {
        self.tick += 1;
        self.activity.insert(thread.clone(), self.tick);
    }

    fn send(&mut self, thread: &Ts, event: ThreadEvent) {
        self.touch(thread);
        let Some(addr) = self.threads.get(thread) else { return };
        let kind = event.kind();
        if let Err(e) = addr.try_send(event) {
            tracing::error!(thread = %thread, kind, error = %e, "thread mailbox full or closed: event dropped");
        }
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
        let own = m.user.as_ref() == Some(&s.identity.user_id)
            || (m.bot_id.is_some() && m.bot_id == s.identity.bot_id);
        if own {
            self.remember_bot_message(m.ts.clone(), m.thread().clone());
            return;
        }
        if m.bot_id.is_some() || m.subtype.as_deref() == Some("bot_message") {
            if !m.is_root() && s.assist.is_assist(&m) {
                let thread = m.thread().clone();
                if self.threads.contains_key(&thread) {
                    self.send(&thread, ThreadEvent::Assist(s.assist.read(&m)));
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
            self.start_thread(m, ctx);
        } else {
            let thread = m.thread().clone();
            if self.threads.contains_key(&thread) {
                self.send(&thread, ThreadEvent::Reply { message: m, mentioned });
            } else if mentioned {
                self.post_help(&m);
            } else {
                tracing::debug!(thread = %thread, "reply in a thread the bot does not hold ignored");
            }
        }
    }

    fn start_thread(&mut self, m: SlackMessage, ctx: &mut Context<Self>) {
        let thread = m.ts.clone();
        if self.threads.contains_key(&thread) {
            return;
        }
        self.evict_if_full();
        let pending = self.pending_assist.remove(&thread);
        let actor = self.next_actor;
        self.next_actor += 1;
        let addr = ThreadActor::new(self.services.clone(), ctx.address(), actor, m).start();
        self.threads.insert(thread.clone(), addr);
        self.thread_actor.insert(thread.clone(), actor);
        self.touch(&thread);
        tracing::info!(thread = %thread, live = self.threads.len(), "new ticket");
        if let Some(card) = pending {
            let card = self.services.assist.read(&card);
            self.send(&thread, ThreadEvent::Assist(card));
        }
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
    }
}

impl Handler<Deliver> for RouterActor {
    type Result = ();

    fn handle(&mut self, d: Deliver, ctx: &mut Self::Context) {
        if !self.seen_events.first_time(d.event_id.clone()) {
            tracing::debug!(event_id = %d.event_id, retry_attempt = d.retry_attempt, "duplicate event ignored");
            return;
        }
        tracing::debug!(event_id = %d.event_id, kind = d.event.kind(), retry_attempt = d.retry_attempt, "event");
        match d.event {
            Event::Message(m) => self.on_message(m, false, ctx),
            Event::Mention(m) => self.on_message(m, true, ctx),
            Event::Edited(m) => {
                if m.channel == self.services.channel && self.threads.contains_key(&m.ts) {
                    let ts = m.ts.clone();
                    self.send(&ts, ThreadEvent::RootEdited(m.text));
                }
            }
            Event::Deleted { channel, ts, .. } => {
                if channel == self.services.channel && self.threads.contains_key(&ts) {
                    self.send(&ts, ThreadEvent::RootDeleted);
                }
            }
            Event::Reaction { user, reaction, channel, ts } => {
                if channel != self.services.channel {
                    return;
                }
                let thread = self
                    .message_thread
                    .get(&ts)
                    .cloned()
                    .or_else(|| self.threads.contains_key(&ts).then(|| ts.clone()));
                match thread {
                    Some(thread) if self.threads.contains_key(&thread) => {
                        self.send(&thread, ThreadEvent::Reaction { user, reaction, ts });
                    }
                    _ => tracing::debug!(ts = %ts, "reaction on a message the bot does not track"),
                }
            }
            Event::Other { kind } => tracing::debug!(kind = %kind, "event not handled"),
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
        self.thread_actor.remove(&m.thread);
        self.threads.remove(&m.thread);
        self.activity.remove(&m.thread);
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

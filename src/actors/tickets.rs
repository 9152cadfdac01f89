//! TicketIndexActor: owns the past-ticket index. At start it reads the channel's recent history
//! in the background (`conversations.history`, then `conversations.replies` for threads with
//! replies, one call at a time at a Tier 3 pace), never delaying readiness or live answers; live
//! ThreadActors keep it current as their tickets are answered, resolved or escalated.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;

use crate::slack::{ChannelId, SlackApi, SlackError, Ts, UserId};
use crate::tickets::{from_thread, PastTicket, Similar, TicketIndex};
use crate::triage::Rules;

/// Add or replace a ticket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub PastTicket);

/// Forget a ticket (its root was deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forget(pub Ts);

/// The tickets most like a question.
#[derive(Message)]
#[rtype(result = "Vec<Similar>")]
pub struct FindSimilar {
    pub query: String,
    pub k: usize,
    pub exclude: Option<Ts>,
}

/// How many tickets are indexed, and whether the backfill finished.
#[derive(Message)]
#[rtype(result = "(usize, bool)")]
pub struct IndexStats;

/// What the backfill reads.
#[derive(Debug, Clone)]
pub struct BackfillPlan {
    pub channel: ChannelId,
    pub bot: UserId,
    /// Most channel messages to read.
    pub max_messages: usize,
    /// Oldest message to read, in days.
    pub max_age_days: u64,
    /// Pause between `conversations.replies` calls (Tier 3 allows about 50 a minute).
    pub pace: Duration,
}

pub struct TicketIndexActor {
    index: TicketIndex,
    slack: SlackApi,
    rules: Rules,
    plan: BackfillPlan,
    backfilled: bool,
}

impl TicketIndexActor {
    pub fn new(max_tickets: usize, slack: SlackApi, rules: Rules, plan: BackfillPlan) -> TicketIndexActor {
        TicketIndexActor { index: TicketIndex::new(max_tickets), slack, rules, plan, backfilled: false }
    }
}

impl Actor for TicketIndexActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(10_000);
        if self.plan.max_messages == 0 {
            self.backfilled = true;
            return;
        }
        let (slack, rules, plan) = (self.slack.clone(), self.rules.clone(), self.plan.clone());
        let me = ctx.address();
        let fut = async move {
            let started = std::time::Instant::now();
            let result = backfill(&slack, &rules, &plan, |t| me.do_send(Backfilled(t))).await;
            (result, started.elapsed())
        };
        ctx.spawn(fut.into_actor(self).map(|(result, elapsed), act, _| {
            act.backfilled = true;
            match result {
                Ok(read) => tracing::info!(
                    messages = read,
                    tickets = act.index.len(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    "past tickets read"
                ),
                Err(e) => tracing::warn!(error = %e, tickets = act.index.len(), "reading past tickets stopped early"),
            }
        }));
    }
}

/// A ticket from the backfill: never replaces one a live thread already recorded.
#[derive(Message)]
#[rtype(result = "()")]
struct Backfilled(PastTicket);

impl Handler<Backfilled> for TicketIndexActor {
    type Result = ();

    fn handle(&mut self, Backfilled(t): Backfilled, _: &mut Self::Context) {
        if self.index.get(&t.thread).is_none() {
            self.index.upsert(t);
        }
    }
}

impl Handler<Record> for TicketIndexActor {
    type Result = ();

    fn handle(&mut self, Record(t): Record, _: &mut Self::Context) {
        self.index.upsert(t);
    }
}

impl Handler<Forget> for TicketIndexActor {
    type Result = ();

    fn handle(&mut self, Forget(thread): Forget, _: &mut Self::Context) {
        self.index.remove(&thread);
    }
}

impl Handler<FindSimilar> for TicketIndexActor {
    type Result = MessageResult<FindSimilar>;

    fn handle(&mut self, m: FindSimilar, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.index.similar(&m.query, m.k, m.exclude.as_ref()))
    }
}

impl Handler<IndexStats> for TicketIndexActor {
    type Result = MessageResult<IndexStats>;

    fn handle(&mut self, _: IndexStats, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.index.len(), self.backfilled))
    }
}

/// Reads recent channel history into tickets, newest first, handing each to `sink`. Returns how
/// many messages were read. Rate limits are waited out by the Slack API actor, and a failure
/// ends the backfill early.
pub async fn backfill(
    slack: &SlackApi,
    rules: &Rules,
    plan: &BackfillPlan,
    mut sink: impl FnMut(PastTicket),
) -> Result<usize, SlackError> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let oldest = now.saturating_sub(plan.max_age_days * 86_400);
    slack
        .read_threads(&plan.channel, oldest, plan.max_messages, plan.pace, |thread| {
            let Some((root, replies)) = thread.split_first() else { return };
            if let Some(t) = from_thread(&root.message, replies, &plan.bot, rules) {
                sink(t);
            }
        })
        .await
}

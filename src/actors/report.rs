//! ReportActor: the team's figures in the channel. It answers `@itbot report` with a threaded
//! reply, and, when `[report] weekly_day` is set, posts the last seven days' report at
//! `weekly_hour` in `timezone` once a week.
//!
//! Everything comes from the channel's history and the bot's metadata ([`crate::report`]); no
//! database. Each weekly report carries its slot (the scheduled unix time) as metadata, and
//! before posting one the actor looks for it in the channel, so a restart or a second replica
//! does not post the same week twice. A bot that starts up to [`CATCH_UP`] after a slot it
//! missed (a deploy at that hour) still posts it.
//!
//! Time comes from a [`Clock`], so tests move it by hand; the schedule is checked every `tick`.

use std::time::Duration;

use actix::prelude::*;

use super::SharedServices;
use crate::clock::Clock;
use crate::report::Report;
use crate::schedule;
use crate::slack::client::HistoryQuery;
use crate::slack::{SlackError, Ts};
use crate::state::{Metadata, ReportPost};
/// How late a missed weekly slot is still posted.
pub const CATCH_UP: i64 = 3600;
/// How long a failed weekly report waits before the next attempt.
const RETRY_SECS: i64 = 300;
/// Days in the weekly report.
const WEEKLY_DAYS: u32 = 7;

/// When to look at the schedule, and by which clock.
#[derive(Debug, Clone)]
pub struct ScheduleOptions {
    pub clock: Clock,
    pub tick: Duration,
}

impl Default for ScheduleOptions {
    fn default() -> Self {
        ScheduleOptions { clock: Clock::System, tick: Duration::from_secs(30) }
    }
}

/// `@itbot report [days]` in `thread` (the mention's ts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReportRequest {
    pub thread: Ts,
    pub days: u32,
}

/// The bot is stopping: no more weekly reports from this process.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSchedule;

pub struct ReportActor {
    s: SharedServices,
    options: ScheduleOptions,
    /// The next weekly slot (unix seconds), if weekly reports are on.
    due: Option<i64>,
    /// A weekly report is being checked or posted.
    weekly_busy: bool,
    /// After a failed attempt, the next one waits until then (unix seconds).
    retry_at: i64,
    /// Requested reports being put together (at most [`MAX_REQUESTS`] at once).
    requests: usize,
}

/// Requested reports read at once, at most: each reads the channel's history.
const MAX_REQUESTS: usize = 2;

impl ReportActor {
    pub fn new(s: SharedServices, options: ScheduleOptions) -> ReportActor {
        ReportActor { s, options, due: None, weekly_busy: false, retry_at: 0, requests: 0 }
    }

    fn next_slot(&self, after: i64) -> Option<i64> {
        let r = &self.s.settings.report;
        schedule::next_weekly(after, &r.weekly_day, r.weekly_hour, &r.timezone)
    }

    /// Reads the channel and builds the report of the `days` before `until`.
    /// The report of the `days` before `until`, as a Slack message (with a note when the read
    /// stopped at `history.backfill_messages` before the period's start).
    fn build(
        &self,
        days: u32,
        until: i64,
    ) -> impl std::future::Future<Output = Result<(Report, String), SlackError>> {
        let s = self.s.clone();
        async move {
            let since = until - i64::from(days) * 86_400;
            let h = &s.settings.history;
            // Reading the channel yields Slack's read budget to every live answer.
            let read = crate::report::collect(
                &s.slack.background(),
                &s.channel,
                &s.identity.user_id,
                &s.rules,
                &s.settings.escalation.it_staff,
                since,
                Duration::from_millis(h.backfill_pace_ms),
                h.backfill_messages,
            )
            .await?;
            let report = Report::build(&read.tickets, since, until, &s.settings.report.timezone, &s.kb);
            let mut text = report.to_mrkdwn();
            if !read.complete {
                text.push_str(&format!(
                    "_Only the latest {} posts were read (`history.backfill_messages`): older tickets of the period are missing._\n",
                    read.messages_read
                ));
            }
            Ok((report, text))
        }
    }

    fn check_schedule(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.due else { return };
        if self.weekly_busy {
            return;
        }
        // Counted before the clock is read: a look counted after a test moved the clock saw it.
        self.s.health.metrics.schedule_looks.inc();
        let now = self.options.clock.now();
        if now < due || now < self.retry_at {
            return;
        }
        self.weekly_busy = true;
        let s = self.s.clone();
        let build = self.build(WEEKLY_DAYS, due);
        let fut = async move {
            // With Redis, one replica takes the slot (and only it tries again after a failure).
            if let Some(coord) = &s.coord {
                let slot = due.to_string();
                match coord
                    .claim(&["weekly_report", s.channel.as_str(), &slot], Duration::from_secs(8 * 86_400))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return Ok(false),
                    Err(e) => {
                        tracing::warn!(slot = due, error = %e, "weekly report slot not claimed in redis; checking the channel alone")
                    }
                }
            }
            if weekly_posted(&s, due).await? {
                return Ok(false);
            }
            let (report, text) = build.await?;
            let metadata = Metadata::ReportPost(ReportPost {
                slot: Some(due),
                days: WEEKLY_DAYS,
                tickets: Some(report.tickets),
            });
            s.slack.post_message(&s.channel, None, &text, Some(&metadata)).await?;
            Ok::<_, SlackError>(true)
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, _| {
            act.weekly_busy = false;
            match result {
                Ok(true) => {
                    tracing::info!(slot = due, "weekly report posted");
                    act.s.health.metrics.reports.get_or_create(&trigger("weekly")).inc();
                }
                Ok(false) => {
                    tracing::info!(slot = due, "weekly report already posted (restart or another replica)")
                }
                Err(e) => {
                    // Tried again every few minutes while the slot is recent; then it moves on.
                    tracing::error!(slot = due, error = %e, "weekly report not posted");
                    let now = act.options.clock.now();
                    if now - due < CATCH_UP {
                        act.retry_at = now + RETRY_SECS;
                        return;
                    }
                }
            }
            // Unless the schedule was stopped meanwhile.
            if act.due.is_some() {
                act.due = act.next_slot(due);
            }
        }));
    }
}

fn trigger(name: &str) -> crate::metrics::TriggerLabel {
    crate::metrics::TriggerLabel { trigger: name.to_string() }
}

/// Whether the weekly report of `slot` is in the channel already: the bot's messages from the
/// slot to the end of its catch-up time, looked for the report metadata with that slot.
async fn weekly_posted(s: &SharedServices, slot: i64) -> Result<bool, SlackError> {
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let query = HistoryQuery {
            oldest: Some(format!("{}.000000", slot - 1)),
            latest: Some(format!("{}.000000", slot + CATCH_UP + 600)),
            limit: 200,
            cursor: cursor.take(),
            with_metadata: true,
        };
        let page = s.slack.background().history(&s.channel, &query).await?;
        let found = page.messages.iter().any(|m| {
            m.message.user.as_ref() == Some(&s.identity.user_id)
                && matches!(&m.metadata, Some(Metadata::ReportPost(r)) if r.slot == Some(slot))
        });
        if found {
            return Ok(true);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(false),
        }
    }
    Ok(false)
}

impl Actor for ReportActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.s.settings.report.weekly_day.is_empty() {
            return;
        }
        // A slot missed by up to CATCH_UP (a restart at that hour) is still due.
        self.due = self.next_slot(self.options.clock.now() - CATCH_UP);
        match self.due {
            Some(due) => tracing::info!(next = due, "weekly report scheduled"),
            None => tracing::warn!("weekly report not scheduled: day, hour or time zone unusable"),
        }
        ctx.run_interval(self.options.tick, |act, ctx| act.check_schedule(ctx));
        self.check_schedule(ctx);
    }
}

impl Handler<StopSchedule> for ReportActor {
    type Result = ();

    fn handle(&mut self, _: StopSchedule, _: &mut Self::Context) {
        if self.due.take().is_some() {
            tracing::info!("weekly report schedule stopped");
        }
    }
}

impl Handler<ReportRequest> for ReportActor {
    type Result = ();

    fn handle(&mut self, r: ReportRequest, ctx: &mut Self::Context) {
        let s = self.s.clone();
        if self.requests >= MAX_REQUESTS {
            let (channel, thread) = (s.channel.clone(), r.thread.clone());
            actix_rt::spawn(async move {
                let text = "I'm already putting reports together; ask again in a minute.";
                if let Err(e) = s.slack.post_message(&channel, Some(&thread), text, None).await {
                    tracing::warn!(error = %e, "busy note not posted");
                }
            });
            return;
        }
        self.requests += 1;
        tracing::info!(days = r.days, "report requested");
        // Up to the end of this second: the clock's whole seconds would leave out a ticket
        // posted a moment ago.
        let build = self.build(r.days, self.options.clock.now() + 1);
        let fut = async move {
            if s.settings.slack.status_indicator {
                // Reading the history takes a moment; show that something is happening.
                let _ = s.slack.set_status(&s.channel, &r.thread, "is putting the report together...").await;
            }
            let text = match build.await {
                Ok((_, text)) => text,
                Err(e) => {
                    tracing::error!(error = %e, "report could not be read from the channel");
                    format!(
                        "I couldn't read the channel's history for the report ({}). Try again in a minute.",
                        e.code().unwrap_or("slack error")
                    )
                }
            };
            let metadata = Metadata::ReportPost(ReportPost { slot: None, days: r.days, tickets: None });
            s.slack.post_message(&s.channel, Some(&r.thread), &text, Some(&metadata)).await
        };
        ctx.spawn(fut.into_actor(self).map(|result, act, _| {
            act.requests -= 1;
            if let Err(e) = result {
                tracing::error!(error = %e, "report not posted");
                return;
            }
            act.s.health.metrics.reports.get_or_create(&trigger("mention")).inc();
        }));
    }
}

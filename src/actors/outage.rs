//! OutageActor: hears every new technical ticket's symptom from its ThreadActor, decides with
//! an [`OutageTracker`] whether the channel is seeing an outage, and does what only it can:
//! pings IT once in the first thread (checked against Slack first, so a restart or a second
//! replica does not ping again), keeps that ping's list of affected threads current, and tells
//! the threads that reported it before it was declared. The thread asking gets the verdict and
//! answers its own requester.

use std::collections::HashMap;

use actix::prelude::*;
use serde_json::{json, Value};

use super::slack_api::SlackApi;
use crate::config::Settings;
use crate::http::Health;
use crate::outage::{self, Outage, OutageTracker, Verdict};
use crate::slack::{ChannelId, Ts, UserId};

/// The metadata event type of the bot's outage ping.
pub const OUTAGE_EVENT_TYPE: &str = "itbot_outage";

/// What the asking thread hears: the verdict, and what to tell its requester when the report
/// is part of an outage declared in another thread.
#[derive(Debug, Clone)]
pub struct Answer {
    pub verdict: Verdict,
    pub notice: Option<String>,
}

/// A new ticket reports `symptom` (a knowledge-base slug titled `title`).
#[derive(Message)]
#[rtype(result = "Answer")]
pub struct Reported {
    pub symptom: String,
    pub title: String,
    pub thread: Ts,
    pub requester: UserId,
    /// The Slack time of the report (its root's ts).
    pub at: f64,
}

/// The ping of one outage.
#[derive(Default)]
struct Ping {
    /// The ping message, once posted (or found).
    ts: Option<Ts>,
    /// A post or update is in flight; `dirty` when the list changed meanwhile.
    busy: bool,
    dirty: bool,
}

pub struct OutageActor {
    tracker: OutageTracker,
    slack: SlackApi,
    channel: ChannelId,
    workspace_url: String,
    bot: UserId,
    /// Who the ping is for: `escalation.fallback_mention`, else the IT staff.
    mention: Option<String>,
    window: String,
    health: std::sync::Arc<Health>,
    /// Pings by outage (first thread), with the symptom's title.
    pings: HashMap<Ts, (Ping, String)>,
}

/// Pings remembered, at most (an outage's ping is updated while it lasts).
const MAX_PINGS: usize = 64;

impl OutageActor {
    pub fn new(
        settings: &Settings,
        slack: SlackApi,
        channel: ChannelId,
        bot: UserId,
        workspace_url: String,
        health: std::sync::Arc<Health>,
    ) -> OutageActor {
        let e = &settings.escalation;
        let mention = if !e.fallback_mention.is_empty() {
            Some(e.fallback_mention.clone())
        } else if !e.it_staff.is_empty() {
            Some(e.it_staff.iter().take(5).map(|id| format!("<@{id}>")).collect::<Vec<_>>().join(" "))
        } else {
            None
        };
        OutageActor {
            tracker: OutageTracker::new(settings.outage.min_reporters, settings.outage.window_secs),
            slack,
            channel,
            workspace_url,
            bot,
            mention,
            window: outage::window_words(settings.outage.window_secs),
            health,
            pings: HashMap::new(),
        }
    }

    fn link(&self, thread: &Ts) -> Option<String> {
        outage::thread_link(&self.workspace_url, self.channel.as_str(), thread)
    }

    /// Posts the ping, or brings it up to date: one Slack write at a time per outage.
    fn ping(&mut self, first: Ts, ctx: &mut Context<Self>) {
        let Some((ping, title)) = self.pings.get_mut(&first) else { return };
        if ping.busy {
            ping.dirty = true;
            return;
        }
        let Some(o) = self.tracker.outage_of(&first).cloned() else { return };
        ping.busy = true;
        ping.dirty = false;
        let known = ping.ts.clone();
        let title = title.clone();
        let links: Vec<Option<String>> = o.threads.iter().map(|t| self.link(t)).collect();
        let text = outage::ping_text(self.mention.as_deref(), &title, &o, &self.window, &links);
        let metadata = ping_metadata(&o);
        let (slack, channel, bot) = (self.slack.clone(), self.channel.clone(), self.bot.clone());
        let thread = first.clone();
        let fut = async move {
            let ts = match known {
                Some(ts) => ts,
                None => {
                    // Pinged already (before a restart, or by another replica)? Then update that one.
                    let messages = slack.thread_messages(&channel, &thread).await?;
                    let earlier = messages.iter().find(|m| {
                        m["user"].as_str() == Some(bot.as_str())
                            && m.pointer("/metadata/event_type").and_then(Value::as_str)
                                == Some(OUTAGE_EVENT_TYPE)
                    });
                    match earlier.and_then(|m| m["ts"].as_str()) {
                        Some(ts) => Ts::from(ts),
                        None => {
                            let ts =
                                slack.post_message(&channel, Some(&thread), &text, Some(metadata)).await?;
                            return Ok((ts, true));
                        }
                    }
                }
            };
            slack.update_message(&channel, &ts, &text, None, Some(metadata)).await?;
            Ok::<_, crate::slack::SlackError>((ts, false))
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let Some((ping, _)) = act.pings.get_mut(&first) else { return };
            ping.busy = false;
            match result {
                Ok((ts, posted)) => {
                    if posted {
                        tracing::info!(thread = %first, "outage ping posted");
                    }
                    ping.ts = Some(ts);
                }
                Err(e) => tracing::error!(thread = %first, error = %e, "outage ping not posted or updated"),
            }
            if ping.dirty {
                act.ping(first, ctx);
            }
        }));
    }

    /// Tells the threads that reported it before the outage was declared.
    fn tell_earlier(&self, first: &Ts, title: &str, earlier: Vec<Ts>) {
        let text = outage::earlier_thread_text(title, self.link(first).as_deref());
        for thread in earlier {
            let (slack, channel, text) = (self.slack.clone(), self.channel.clone(), text.clone());
            actix_rt::spawn(async move {
                if let Err(e) = slack.post_message(&channel, Some(&thread), &text, None).await {
                    tracing::warn!(thread = %thread, error = %e, "outage update not posted");
                }
            });
        }
    }
}

/// What the ping carries for `itbot report`: the symptom and how many threads and people.
fn ping_metadata(o: &Outage) -> Value {
    json!({
        "event_type": OUTAGE_EVENT_TYPE,
        "event_payload": {
            "symptom": o.symptom,
            "threads": o.threads.len(),
            "reporters": o.reporters,
            "started": o.started,
        }
    })
}

impl Actor for OutageActor {
    type Context = Context<Self>;
}

impl Handler<Reported> for OutageActor {
    type Result = MessageResult<Reported>;

    fn handle(&mut self, r: Reported, ctx: &mut Self::Context) -> Self::Result {
        self.tracker.expire(r.at);
        let verdict = self.tracker.report(&r.symptom, &r.thread, &r.requester, r.at);
        match &verdict {
            Verdict::Normal => {}
            Verdict::Declared { first, earlier } => {
                tracing::warn!(thread = %first, symptom = %r.symptom, "outage detected");
                self.health.metrics.outages.inc();
                if self.pings.len() >= MAX_PINGS {
                    // The oldest outages are long over; their pings need no more updates.
                    let keep: Vec<Ts> =
                        self.pings.keys().filter(|t| self.tracker.outage_of(t).is_some()).cloned().collect();
                    self.pings.retain(|t, _| keep.contains(t));
                }
                self.pings.insert(first.clone(), (Ping::default(), r.title.clone()));
                self.tell_earlier(first, &r.title, earlier.clone());
                self.ping(first.clone(), ctx);
            }
            Verdict::Known { first } => {
                tracing::info!(thread = %r.thread, first = %first, "report joins a known outage");
                if self.pings.contains_key(first) {
                    self.ping(first.clone(), ctx);
                }
            }
        }
        let first = match &verdict {
            Verdict::Known { first } | Verdict::Declared { first, .. } if first != &r.thread => Some(first),
            _ => None,
        };
        let notice = first.and_then(|f| self.tracker.outage_of(f)).map(|o| {
            outage::known_issue_text(&r.title, o.reporters, &self.window, self.link(&o.first).as_deref())
        });
        MessageResult(Answer { verdict, notice })
    }
}

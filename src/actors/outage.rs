//! OutageActor: hears every new technical ticket's symptom from its ThreadActor, decides with
//! an [`OutageTracker`] whether the channel is seeing an outage, and does what only it can:
//! pings IT once in the first thread (checked against Slack first, so a restart or a second
//! replica does not ping again), keeps that ping's list of affected threads current, and tells
//! the threads that reported it before it was declared (the replica that posts the ping does
//! that, once). The thread asking gets the verdict and answers its own requester.
//!
//! Several replicas each receive a share of the events. With Redis (`REDIS_URL`), every report
//! goes into one shared list per symptom and each replica counts the whole list; the ping is
//! claimed there, so exactly one replica posts it (and tells the earlier threads), and its ts is
//! kept there so that any replica hearing a later report brings its list of threads up to date.
//! Without Redis, when a report is not yet an outage here but someone else reported the same
//! symptom to this replica within the window, the channel's recent posts are read once
//! (`conversations.history`) and every matching report is counted, whichever replica received it.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;

use crate::config::Settings;
use crate::coord::{Coord, CoordError};
use crate::http::Health;
use crate::knowledge::KnowledgeBase;
use crate::outage::{self, Outage, OutageTracker, Verdict};
use crate::slack::client::{HistoryQuery, Identity};
use crate::slack::{ChannelId, Ts, UserId};
use crate::slack::{SlackApi, SlackError};
use crate::state::{Metadata, OutagePing};
use crate::triage::Rules;

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
    /// Threads that reported it before it was declared: told once the ping is posted.
    earlier: Vec<Ts>,
    /// The ping message, once posted (or found).
    ts: Option<Ts>,
    /// A post or update is in flight; `dirty` when the list changed meanwhile.
    busy: bool,
    dirty: bool,
    /// This replica posts the ping (it declared the outage, or won the claim with Redis). A
    /// replica that did not only updates a ping another one posted.
    claimed: bool,
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
    window_secs: u64,
    health: std::sync::Arc<Health>,
    /// Pings by outage (first thread), with the symptom's title.
    pings: HashMap<Ts, (Ping, String)>,
    /// To read the channel's posts as tickets: the same triage and article search as threads.
    kb: KnowledgeBase,
    rules: Rules,
    /// The replicas' shared reports and ping claims (with `REDIS_URL`).
    coord: Option<Coord>,
}

/// A post in the channel's recent history: its ts, author, text and Slack time.
struct Post {
    ts: Ts,
    user: UserId,
    text: String,
    at: f64,
}

/// Pings remembered, at most (an outage's ping is updated while it lasts).
const MAX_PINGS: usize = 64;

impl OutageActor {
    pub fn new(
        settings: &Settings,
        slack: SlackApi,
        channel: ChannelId,
        identity: &Identity,
        health: std::sync::Arc<Health>,
        kb: KnowledgeBase,
        rules: Rules,
    ) -> OutageActor {
        let (bot, workspace_url) = (identity.user_id.clone(), identity.url.clone());
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
            window_secs: settings.outage.window_secs,
            health,
            pings: HashMap::new(),
            kb,
            rules,
            coord: None,
        }
    }

    /// Shares reports and the ping with other replicas through Redis.
    pub fn with_coord(mut self, coord: Option<Coord>) -> OutageActor {
        self.coord = coord;
        self
    }

    /// How long an outage's ping claim and its ts are kept in Redis.
    fn ping_kept(&self) -> Duration {
        Duration::from_secs(self.window_secs.max(60) * 6)
    }

    /// With Redis: counts every replica's reports of the symptom, then claims the ping when the
    /// reports make an outage that no replica here has claimed.
    fn report_shared(&mut self, coord: Coord, r: Reported) -> ResponseActFuture<Self, Answer> {
        let member = format!("{} {}", r.thread, r.requester);
        let window = Duration::from_secs(self.window_secs);
        let (symptom, at) = (r.symptom.clone(), r.at);
        let shared = async move { coord.outage_reports(&symptom, &member, at, window).await };
        Box::pin(shared.into_actor(self).then(move |shared, act, ctx| {
            match shared {
                Ok(reports) => {
                    for (member, at) in reports {
                        let Some((thread, requester)) = member.split_once(' ') else { continue };
                        if thread != r.thread.as_str() {
                            act.tracker.report(&r.symptom, &Ts::from(thread), &UserId::from(requester), at);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reports not shared through redis; counting this replica's only")
                }
            }
            let verdict = act.tracker.report(&r.symptom, &r.thread, &r.requester, r.at);
            let unclaimed = match &verdict {
                Verdict::Declared { first, .. } | Verdict::Known { first } => {
                    Some(first.clone()).filter(|f| !act.pings.get(f).is_some_and(|(p, _)| p.claimed))
                }
                Verdict::Normal => None,
            };
            let Some(first) = unclaimed else {
                return actix::fut::ready(act.settle(&r, verdict, ctx)).boxed_local();
            };
            let coord = act.coord.clone().expect("reports are shared only with redis");
            let (channel, ttl) = (act.channel.to_string(), act.ping_kept());
            let claim = async move { coord.claim(&["outage_ping", &channel, first.as_str()], ttl).await };
            claim
                .into_actor(act)
                .map(move |won, act, ctx| {
                    let verdict = act.claimed_verdict(&r, verdict, won);
                    act.settle(&r, verdict, ctx)
                })
                .boxed_local()
        }))
    }

    /// The verdict once the ping's claim is decided: the winner declares (and tells every
    /// earlier thread), the others report a known outage. Without an answer from Redis, this
    /// replica decides alone.
    fn claimed_verdict(&self, r: &Reported, verdict: Verdict, won: Result<bool, CoordError>) -> Verdict {
        let first = match &verdict {
            Verdict::Declared { first, .. } | Verdict::Known { first } => first.clone(),
            Verdict::Normal => return verdict,
        };
        match won {
            Ok(true) => {
                let earlier = self
                    .tracker
                    .outage(&r.symptom)
                    .map(|o| o.threads.iter().filter(|t| **t != first && **t != r.thread).cloned().collect())
                    .unwrap_or_default();
                Verdict::Declared { first, earlier }
            }
            Ok(false) => Verdict::Known { first },
            Err(e) => {
                tracing::warn!(error = %e, "outage ping not claimed in redis; deciding as a lone replica");
                verdict
            }
        }
    }

    /// The channel's posts since `oldest` (one page, newest first): the reports other replicas
    /// may have received.
    fn recent_posts(&self, oldest: f64) -> impl std::future::Future<Output = Result<Vec<Post>, SlackError>> {
        let (slack, channel) = (self.slack.clone(), self.channel.clone());
        async move {
            let query =
                HistoryQuery { oldest: Some(format!("{oldest:.6}")), limit: 200, ..HistoryQuery::default() };
            let page = slack.history(&channel, &query).await?;
            let posts = page.messages.into_iter().map(|m| m.message).filter_map(|m| {
                if m.bot_id.is_some() || m.subtype.is_some() {
                    return None;
                }
                Some(Post {
                    at: m.ts.as_str().parse().ok()?,
                    user: m.user?,
                    text: m.text.into_inner(),
                    ts: m.ts,
                })
            });
            Ok(posts.collect())
        }
    }

    /// Counts the posts that report `symptom` as technical tickets; returns whether that made
    /// it an outage that holds `thread`.
    fn count_posts(&mut self, symptom: &str, thread: &Ts, posts: Vec<Post>) -> bool {
        for p in posts {
            let technical = self.rules.classify(&p.text).category == crate::triage::Category::Technical;
            let same = self.kb.search(&p.text, 1).first().is_some_and(|h| h.article.topic == symptom);
            if technical && same {
                self.tracker.report(symptom, &p.ts, &p.user, p.at);
            }
        }
        self.tracker.outage(symptom).is_some_and(|o| o.threads.contains(thread))
    }

    /// Acts on the verdict for report `r` and says what its thread should tell the requester.
    fn settle(&mut self, r: &Reported, verdict: Verdict, ctx: &mut Context<Self>) -> Answer {
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
                let ping = Ping { earlier: earlier.clone(), claimed: true, ..Ping::default() };
                self.pings.insert(first.clone(), (ping, r.title.clone()));
                self.ping(first.clone(), ctx);
            }
            Verdict::Known { first } => {
                tracing::info!(thread = %r.thread, first = %first, "report joins a known outage");
                if self.coord.is_some() && !self.pings.contains_key(first) && self.pings.len() < MAX_PINGS {
                    // Another replica posted the ping: this one keeps its list of threads current.
                    self.pings.insert(first.clone(), (Ping::default(), r.title.clone()));
                }
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
        Answer { verdict, notice }
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
        let (known, claimed) = (ping.ts.clone(), ping.claimed);
        let title = title.clone();
        let links: Vec<Option<String>> = o.threads.iter().map(|t| self.link(t)).collect();
        let text = outage::ping_text(self.mention.as_deref(), &title, &o, &self.window, &links);
        let metadata = ping_metadata(&o);
        let (slack, channel, bot) = (self.slack.clone(), self.channel.clone(), self.bot.clone());
        let (coord, kept) = (self.coord.clone(), self.ping_kept());
        let thread = first.clone();
        // The ping answers the report that made it an outage: it waits for the channel's budget
        // in that employee's place, ahead of the answer telling them it is known.
        let since = o.threads.last().cloned();
        let fut = async move {
            let what = ["outage_ping", channel.as_str(), thread.as_str()];
            let ts = match (known, &coord) {
                (Some(ts), _) => Posted::Found(ts),
                // With Redis, the replica that claimed the ping posts it and keeps its ts there;
                // the others update it once it is there.
                (None, Some(coord)) => match coord.get(&what).await {
                    Ok(Some(ts)) => Posted::Found(Ts::from(ts.as_str())),
                    Ok(None) if claimed => {
                        let ts = slack
                            .post_answer(&channel, &thread, &text, None, Some(&metadata), since.as_ref())
                            .await?;
                        if let Err(e) = coord.put(&what, ts.as_str(), kept).await {
                            tracing::warn!(error = %e, "outage ping's ts not shared; other replicas will not update it");
                        }
                        return Ok(Some((ts, true)));
                    }
                    Ok(None) => return Ok(None),
                    // Redis failed: the claimer posts (after looking in the thread), the others
                    // leave the ping alone rather than risk a second one.
                    Err(_) if claimed => {
                        find_or_post(&slack, &channel, &thread, &bot, &text, &metadata, since.as_ref())
                            .await?
                    }
                    Err(_) => return Ok(None),
                },
                (None, _) => {
                    find_or_post(&slack, &channel, &thread, &bot, &text, &metadata, since.as_ref()).await?
                }
            };
            let ts = match ts {
                Posted::New(ts) => return Ok(Some((ts, true))),
                Posted::Found(ts) => ts,
            };
            slack.update_message(&channel, &ts, &text, None, Some(&metadata)).await?;
            Ok::<_, crate::slack::SlackError>(Some((ts, false)))
        };
        ctx.spawn(fut.into_actor(self).map(move |result, act, ctx| {
            let Some((ping, _)) = act.pings.get_mut(&first) else { return };
            ping.busy = false;
            match result {
                Ok(Some((ts, posted))) => {
                    ping.ts = Some(ts);
                    let earlier = std::mem::take(&mut ping.earlier);
                    if posted {
                        tracing::info!(thread = %first, "outage ping posted");
                        // Only the replica that pinged tells the earlier threads.
                        let title = act.pings.get(&first).map(|(_, t)| t.clone()).unwrap_or_default();
                        act.tell_earlier(&first, &title, earlier);
                    }
                }
                Ok(None) => tracing::debug!(thread = %first, "outage ping not posted yet by the replica that claimed it"),
                Err(e) => tracing::error!(thread = %first, error = %e, "outage ping not posted or updated"),
            }
            if act.pings.get(&first).is_some_and(|(p, _)| p.dirty) {
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

/// The ping as it stands: posted just now, or found (posted before) and to be updated.
enum Posted {
    New(Ts),
    Found(Ts),
}

/// Without Redis: the ping already in the thread (posted before a restart, or by another
/// replica), else a new one.
async fn find_or_post(
    slack: &SlackApi,
    channel: &ChannelId,
    thread: &Ts,
    bot: &UserId,
    text: &str,
    metadata: &Metadata,
    since: Option<&Ts>,
) -> Result<Posted, SlackError> {
    let messages = slack.thread_messages(channel, thread).await?;
    let earlier = messages.into_iter().find(|m| {
        m.message.user.as_ref() == Some(bot) && matches!(m.metadata, Some(Metadata::OutagePing(_)))
    });
    match earlier {
        Some(m) => Ok(Posted::Found(m.message.ts)),
        None => Ok(Posted::New(slack.post_answer(channel, thread, text, None, Some(metadata), since).await?)),
    }
}

/// What the ping carries for `itbot report`: the symptom and how many threads and people.
fn ping_metadata(o: &Outage) -> Metadata {
    Metadata::OutagePing(OutagePing {
        symptom: o.symptom.clone(),
        threads: o.threads.len() as u64,
        reporters: o.reporters as u64,
        started: o.started,
    })
}

impl Actor for OutageActor {
    type Context = Context<Self>;
}

impl Handler<Reported> for OutageActor {
    type Result = ResponseActFuture<Self, Answer>;

    fn handle(&mut self, mut r: Reported, ctx: &mut Self::Context) -> Self::Result {
        // The Mac and Windows versions of an article are one symptom.
        r.symptom = self.kb.topic(&r.symptom).to_string();
        self.tracker.expire(r.at);
        if let Some(coord) = self.coord.clone() {
            return self.report_shared(coord, r);
        }
        let verdict = self.tracker.report(&r.symptom, &r.thread, &r.requester, r.at);
        let confirm =
            verdict == Verdict::Normal && self.tracker.others_reported(&r.symptom, &r.requester, r.at);
        if !confirm {
            let answer = self.settle(&r, verdict, ctx);
            return Box::pin(actix::fut::ready(answer));
        }
        // Not an outage here, but not alone either: count what other replicas received.
        let read = self.recent_posts(r.at - self.window_secs as f64);
        Box::pin(read.into_actor(self).map(move |posts, act, ctx| {
            let counted = posts.map(|posts| act.count_posts(&r.symptom, &r.thread, posts));
            let verdict = match counted {
                Ok(true) => {
                    let o = act.tracker.outage(&r.symptom).cloned();
                    match o {
                        Some(o) if o.first == r.thread => {
                            Verdict::Declared { first: o.first, earlier: vec![] }
                        }
                        Some(o) => {
                            let earlier = o
                                .threads
                                .iter()
                                .filter(|t| **t != o.first && **t != r.thread)
                                .cloned()
                                .collect();
                            Verdict::Declared { first: o.first, earlier }
                        }
                        None => Verdict::Normal,
                    }
                }
                Ok(false) => Verdict::Normal,
                Err(e) => {
                    tracing::warn!(error = %e, "recent posts not read; counting this replica's reports only");
                    Verdict::Normal
                }
            };
            act.settle(&r, verdict, ctx)
        }))
    }
}

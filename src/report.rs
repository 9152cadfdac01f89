//! The team report: figures computed from the channel's history and the state the bot writes
//! as message metadata on its replies. No database: [`collect`] reads Slack, and everything
//! else here is pure — [`TicketSummary::from_thread`] reads one thread, [`Report::build`]
//! aggregates, and `to_table` / `to_mrkdwn` / serde render.
//!
//! A report holds aggregates only: no message text and no user ids, so it can be posted in the
//! channel and printed anywhere.
//!
//! How each figure is read:
//! - a *ticket* is a root message in the channel by a person (`user` set, no `bot_id`, no
//!   `subtype`, some text), counted in the period when its root was posted in it;
//! - its *category* is the one in the bot's latest thread state, else the triage rules' reading
//!   of the root (for tickets the bot never answered);
//! - *first response* is the bot's first reply's ts minus the root's ts;
//! - *resolved by the bot / by a person* and *escalated* follow how the thread ended, read as the
//!   past-ticket index reads it ([`crate::tickets::from_thread`]); *escalated* also counts a
//!   ticket whose state says escalated even if a person then resolved it;
//! - a *human takeover* is a thread where a person from IT (`escalation.it_staff`, or the
//!   ticket's assignee in the bot's state) wrote a reply, or whose state phase says a human took
//!   over;
//! - *feedback* is the button votes the bot recorded on its messages plus 👍/👎 reactions on
//!   them (the bot's own reactions left out);
//! - *LLM* usage and cost are summed over the bot's answers (each carries its own usage);
//! - *outages* are counted from the bot's outage notices (`itbot_outage`), and *tickets in
//!   outages* from the threads those notices list (or, if more, the `outage` marks in thread
//!   states).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use crate::knowledge::KnowledgeBase;
use crate::slack::events::HistoryMessage;
use crate::slack::{ChannelId, SlackApi, SlackError, Ts, UserId};
use crate::state::{Metadata, OutagePing, Phase, ThreadState};
use crate::tickets::Ending;
use crate::triage::{Category, Rules};

/// `itbot report` and `@itbot report` cover this many days unless told otherwise…
pub const DEFAULT_DAYS: u32 = 7;
/// …and at most this many: beyond it the read of the history takes minutes at Slack's pace.
pub const MAX_DAYS: u32 = 90;

/// A root post that mentions the bot to ask for help or a report: the bot answers it, but it
/// is not a ticket (and does not count as one in reports).
pub fn is_bot_command(text: &str, bot: &UserId) -> bool {
    text.contains(&format!("<@{bot}"))
        && (crate::compose::is_help_request(text) || report_request(text).is_some())
}

/// `@itbot report`, `report 30`, `report 30d`, `report 30 days`: the days asked for (clamped to
/// 1..=90), or `None` when the mention asks something else.
pub fn report_request(text: &str) -> Option<u32> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|w| !(w.starts_with("<@") && w.ends_with('>')))
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    let (first, rest) = words.split_first()?;
    if first != "report" && first != "stats" {
        return None;
    }
    match rest {
        [] => Some(DEFAULT_DAYS),
        [n] | [n, _] => {
            let digits = n.trim_end_matches('d');
            let unit_ok = rest.get(1).is_none_or(|u| u == "days" || u == "day" || u == "d");
            let days: u32 = digits.parse().ok().filter(|_| unit_ok)?;
            Some(days.clamp(1, MAX_DAYS))
        }
        _ => None,
    }
}

/// Reactions that count as feedback on a bot message.
const UP_REACTIONS: [&str; 2] = ["+1", "thumbsup"];
const DOWN_REACTIONS: [&str; 2] = ["-1", "thumbsdown"];
/// Articles listed under "top problems".
const TOP_PROBLEMS: usize = 5;
/// A Slack message is cut here, well below the 40,000 characters Slack accepts.
const MAX_MRKDWN_CHARS: usize = 39_000;

/// LLM usage: calls, tokens and what they cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LlmUsage {
    /// Bot answers that came from the LLM.
    pub calls: u64,
    pub prompt_tokens: u64,
    /// Of the prompt tokens, those the provider served from its prompt cache.
    pub cached_tokens: u64,
    pub completion_tokens: u64,
    /// US dollars, as priced by `openai.prices` when the answer was made.
    pub cost_usd: f64,
}

impl LlmUsage {
    fn add(&mut self, other: &LlmUsage) {
        self.calls += other.calls;
        self.prompt_tokens += other.prompt_tokens;
        self.cached_tokens += other.cached_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cost_usd += other.cost_usd;
    }
}

/// Thumbs up and down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Votes {
    pub up: u64,
    pub down: u64,
}

impl Votes {
    fn add(&mut self, other: Votes) {
        self.up += other.up;
        self.down += other.down;
    }
}

/// One ticket thread, read from Slack messages: what the report needs and nothing personal.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketSummary {
    /// The root's ts: identifies the thread and says when the ticket was asked.
    pub thread: Ts,
    /// The root's time in microseconds since the epoch (exact, unlike a float).
    pub asked_micros: i64,
    pub category: Category,
    /// From the root to the bot's first reply; `None` when the bot never replied.
    pub first_response: Option<Duration>,
    /// How the thread ended, as the past-ticket index reads it.
    pub ending: Ending,
    /// The bot escalated the thread (whatever happened after).
    pub escalated: bool,
    /// A person from IT wrote in the thread, or the bot recorded that a human took over.
    pub human_took_over: bool,
    /// The knowledge-base article the bot answered from (its slug).
    pub article: Option<String>,
    /// Feedback votes and reactions on the bot's messages.
    pub feedback: Votes,
    /// LLM usage of the bot's answers in the thread.
    pub llm: LlmUsage,
    /// The thread was part of a detected outage.
    pub in_outage: bool,
    /// Outage notices the bot posted in this thread (the first thread of an outage has one).
    pub outages_started: u64,
    /// The threads those notices list as affected (the first one included).
    pub outage_threads: u64,
}

impl TicketSummary {
    /// `messages`: a thread as conversations.replies returns it (root first, replies oldest
    /// first, with metadata and reactions). `None` when the root is not a ticket (a bot's or
    /// app's post, a join or other subtype, no text). `staff` are the user ids of IT staff
    /// (`escalation.it_staff`).
    pub fn from_thread(
        messages: &[HistoryMessage],
        bot: &UserId,
        rules: &Rules,
        staff: &[String],
    ) -> Option<TicketSummary> {
        let (first, replies) = messages.split_first()?;
        let root = &first.message;
        if root.subtype.is_some() || root.thread_ts.as_ref().is_some_and(|t| *t != root.ts) {
            return None;
        }
        // `@itbot report` and `@itbot help` are answered, but are not tickets.
        if is_bot_command(root.text.expose(), bot) {
            return None;
        }
        // Who counts as a ticket, and how it ended, is the past-ticket index's reading.
        let past = crate::tickets::from_thread(root, replies, bot, rules)?;
        let requester = root.user.as_ref()?;
        let asked_micros = ts_micros(&root.ts)?;

        let by_bot: Vec<&HistoryMessage> =
            replies.iter().filter(|m| m.message.user.as_ref() == Some(bot)).collect();
        let states: Vec<&ThreadState> = by_bot.iter().filter_map(|m| m.thread_state()).collect();
        let latest = states.last();

        let category =
            latest.and_then(|s| s.category).unwrap_or_else(|| rules.classify(root.text.expose()).category);
        // Thanks, FYIs and who/where questions are not tickets: not counted.
        if !category.is_ticket() {
            return None;
        }
        let first_response = by_bot
            .iter()
            .filter_map(|m| ts_micros(&m.message.ts))
            .min()
            .map(|first| Duration::from_micros(first.saturating_sub(asked_micros).max(0) as u64));

        let assignees: HashSet<&UserId> = states.iter().filter_map(|s| s.assignee.as_ref()).collect();
        let it_person_wrote = replies.iter().map(|r| &r.message).any(|m| {
            let Some(author) = m.user.as_ref() else { return false };
            author != requester
                && author != bot
                && m.bot_id.is_none()
                && (staff.iter().any(|s| s == author.as_str()) || assignees.contains(author))
        });
        let human_took_over = it_person_wrote || states.iter().any(|s| s.phase == Phase::HumanTookOver);

        let mut feedback = Votes::default();
        let mut llm = LlmUsage::default();
        for m in &by_bot {
            feedback.add(votes_of(m, bot));
            if let Some(usage) = m.thread_state().and_then(|s| s.llm.as_ref()) {
                llm.add(&LlmUsage {
                    calls: 1,
                    prompt_tokens: usage.prompt_tokens,
                    cached_tokens: usage.cached_tokens,
                    completion_tokens: usage.completion_tokens,
                    cost_usd: Some(usage.cost_usd).filter(|c| c.is_finite() && *c >= 0.0).unwrap_or(0.0),
                });
            }
        }
        let pings: Vec<&OutagePing> = by_bot
            .iter()
            .filter_map(|m| match &m.metadata {
                Some(Metadata::OutagePing(p)) => Some(p),
                _ => None,
            })
            .collect();

        Some(TicketSummary {
            thread: root.ts.clone(),
            asked_micros,
            category,
            first_response,
            ending: past.ending,
            escalated: past.ending == Ending::Escalated || states.iter().any(|s| s.escalated),
            human_took_over,
            article: latest.and_then(|s| s.article.clone()).filter(|a| !a.is_empty()),
            feedback,
            llm,
            in_outage: states.iter().any(|s| s.outage.is_some()),
            outages_started: pings.len() as u64,
            outage_threads: pings.iter().map(|p| p.threads).sum(),
        })
    }
}

/// Button votes recorded on a bot message plus 👍/👎 reactions on it, the bot's own left out.
fn votes_of(m: &HistoryMessage, bot: &UserId) -> Votes {
    let recorded = m.thread_state().and_then(|s| s.feedback).unwrap_or_default();
    let mut votes = Votes { up: recorded.up, down: recorded.down };
    for r in &m.reactions {
        // Skin tones arrive as `+1::skin-tone-2`.
        let base = r.name.split("::").next().unwrap_or(&r.name);
        let count = r.count.saturating_sub(u64::from(r.users.contains(bot)));
        if UP_REACTIONS.contains(&base) {
            votes.up += count;
        } else if DOWN_REACTIONS.contains(&base) {
            votes.down += count;
        }
    }
    votes
}

/// A Slack ts (`1712345678.000100`) in microseconds.
fn ts_micros(ts: &Ts) -> Option<i64> {
    let (secs, frac) = ts.as_str().split_once('.').unwrap_or((ts.as_str(), "0"));
    if frac.len() > 6 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let micros: i64 = format!("{frac:0<6}").parse().ok()?;
    secs.parse::<i64>().ok()?.checked_mul(1_000_000)?.checked_add(micros)
}

/// The `p`th percentile of `values` by the nearest-rank method: the smallest value with at
/// least `p`% of the values at or below it (rank ⌈p/100 × n⌉ in ascending order, at least 1).
/// Always one of the values, never an interpolation. `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The period a report covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Period {
    /// Local start, `YYYY-MM-DD HH:MM` in `timezone`.
    pub since: String,
    /// Local end (exclusive).
    pub until: String,
    pub since_unix: i64,
    pub until_unix: i64,
    pub timezone: String,
}

/// A count for each category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerCategory<T> {
    pub technical: T,
    pub access: T,
    pub change: T,
}

impl<T> PerCategory<T> {
    /// `None` for a post that is not a ticket (never counted).
    fn get_mut(&mut self, c: Category) -> Option<&mut T> {
        match c {
            Category::Technical => Some(&mut self.technical),
            Category::Access => Some(&mut self.access),
            Category::Change => Some(&mut self.change),
            Category::NotTicket => None,
        }
    }

    fn each(&self) -> [(&'static str, &T); 3] {
        [("technical", &self.technical), ("access", &self.access), ("change", &self.change)]
    }
}

/// Tickets asked on one local day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD` in the report's time zone.
    pub date: String,
    /// `Mon`..`Sun`.
    pub weekday: String,
    pub tickets: u64,
    pub by_category: PerCategory<u64>,
}

/// Time to the bot's first reply, over the tickets it answered (nearest-rank percentiles).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct FirstResponse {
    pub median_secs: Option<f64>,
    pub p90_secs: Option<f64>,
}

/// Feedback on the bot's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Feedback {
    pub up: u64,
    pub down: u64,
    pub by_category: PerCategory<Votes>,
}

/// A recurring problem: tickets answered from one knowledge-base article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The article's slug (its file name without `.md`).
    pub article: String,
    /// The article's title, or the slug when the article is no longer in the knowledge base.
    pub title: String,
    pub tickets: u64,
}

/// Detected outages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outages {
    /// Outage notices the bot posted.
    pub detected: u64,
    /// Tickets that were part of an outage.
    pub tickets: u64,
}

/// The team's figures over a period. Aggregates only: no message text, no user ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub period: Period,
    /// Tickets asked in the period.
    pub tickets: u64,
    pub by_category: PerCategory<u64>,
    /// Every local day of the period, empty days included.
    pub by_day: Vec<Day>,
    /// Tickets the bot replied in.
    pub answered_by_bot: u64,
    pub first_response: FirstResponse,
    /// The requester confirmed the bot's answer worked.
    pub resolved_by_bot: u64,
    /// A person fixed it.
    pub resolved_by_person: u64,
    pub escalated: u64,
    pub human_takeovers: u64,
    pub feedback: Feedback,
    /// The most frequent articles, most tickets first (ties by slug), at most five.
    pub top_problems: Vec<Problem>,
    /// Tickets answered from no article (requests, unanswered tickets, answers from the LLM
    /// alone).
    pub other_problems: u64,
    pub llm: LlmUsage,
    pub outages: Outages,
}

impl Report {
    /// The report over tickets asked from `since_unix` (inclusive) to `until_unix` (exclusive);
    /// days are local days in `tz` (UTC when `tz` is unknown; the config check rejects such a
    /// zone at startup). A ticket listed twice counts once.
    pub fn build(
        tickets: &[TicketSummary],
        since_unix: i64,
        until_unix: i64,
        tz: &str,
        kb: &KnowledgeBase,
    ) -> Report {
        let tz = if crate::schedule::time_zone(tz).is_some() { tz } else { "UTC" };
        let (since_micros, until_micros) =
            (since_unix.saturating_mul(1_000_000), until_unix.saturating_mul(1_000_000));
        let mut seen = HashSet::new();
        let tickets: Vec<&TicketSummary> = tickets
            .iter()
            .filter(|t| t.asked_micros >= since_micros && t.asked_micros < until_micros)
            .filter(|t| seen.insert(&t.thread))
            .collect();
        let count = |f: &dyn Fn(&TicketSummary) -> bool| tickets.iter().filter(|t| f(t)).count() as u64;

        let mut by_category = PerCategory::<u64>::default();
        let mut feedback = Feedback::default();
        let mut llm = LlmUsage::default();
        let mut by_article: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_date: BTreeMap<String, PerCategory<u64>> = BTreeMap::new();
        for t in &tickets {
            if let Some(n) = by_category.get_mut(t.category) {
                *n += 1;
            }
            feedback.up += t.feedback.up;
            feedback.down += t.feedback.down;
            if let Some(v) = feedback.by_category.get_mut(t.category) {
                v.add(t.feedback);
            }
            llm.add(&t.llm);
            if let Some(a) = &t.article {
                // The Mac and Windows versions of an article are one problem.
                *by_article.entry(kb.topic(a)).or_default() += 1;
            }
            let date =
                crate::schedule::local_date(t.asked_micros.div_euclid(1_000_000), tz).unwrap_or_default();
            if let Some(n) = by_date.entry(date).or_default().get_mut(t.category) {
                *n += 1;
            }
        }
        // Micro-dollars: a sum of floats is not exact, a report should read the same everywhere.
        llm.cost_usd = (llm.cost_usd * 1e6).round() / 1e6;

        let dates =
            crate::schedule::local_dates(since_unix, until_unix.saturating_sub(1), tz).unwrap_or_default();
        let by_day = dates
            .into_iter()
            .map(|date| {
                let c = by_date.get(&date).copied().unwrap_or_default();
                Day {
                    weekday: weekday_of(&date),
                    tickets: c.technical + c.access + c.change,
                    by_category: c,
                    date,
                }
            })
            .collect();

        let mut ranked: Vec<(&str, u64)> = by_article.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let top_problems = ranked
            .into_iter()
            .take(TOP_PROBLEMS)
            .map(|(slug, n)| Problem {
                article: slug.to_string(),
                title: kb
                    .articles()
                    .iter()
                    .find(|a| a.slug == slug)
                    .map_or_else(|| slug.to_string(), |a| a.title.clone()),
                tickets: n,
            })
            .collect();

        let waits: Vec<f64> =
            tickets.iter().filter_map(|t| t.first_response).map(|d| d.as_secs_f64()).collect();
        let local = |unix| crate::schedule::local_datetime(unix, tz).unwrap_or_default();
        Report {
            period: Period {
                since: local(since_unix),
                until: local(until_unix),
                since_unix,
                until_unix,
                timezone: tz.to_string(),
            },
            tickets: tickets.len() as u64,
            by_category,
            by_day,
            answered_by_bot: waits.len() as u64,
            first_response: FirstResponse {
                median_secs: percentile(&waits, 50.0),
                p90_secs: percentile(&waits, 90.0),
            },
            resolved_by_bot: count(&|t| t.ending == Ending::BotResolved),
            resolved_by_person: count(&|t| t.ending == Ending::PersonResolved),
            escalated: count(&|t| t.escalated),
            human_takeovers: count(&|t| t.human_took_over),
            feedback,
            top_problems,
            other_problems: count(&|t| t.article.is_none()),
            llm,
            outages: Outages {
                detected: tickets.iter().map(|t| t.outages_started).sum(),
                // The notices list every affected thread; threads only marked in their state
                // (an outage whose notice is outside the period) count at least.
                tickets: tickets.iter().map(|t| t.outage_threads).sum::<u64>().max(count(&|t| t.in_outage)),
            },
        }
    }

    /// The report as a terminal table.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "Team report {} to {} ({})\n\n",
            self.period.since, self.period.until, self.period.timezone
        );
        let mut row = |label: &str, value: String| out.push_str(&format!("{label:<24}{value}\n"));
        row("Tickets", self.tickets.to_string());
        for (name, n) in self.by_category.each() {
            row(&format!("  {name}"), n.to_string());
        }
        row("Answered by the bot", self.answered_by_bot.to_string());
        row("First response", self.first_response_text());
        row("Resolved by the bot", self.resolved_by_bot.to_string());
        row("Resolved by a person", self.resolved_by_person.to_string());
        row("Escalated", self.escalated.to_string());
        row("Human takeovers", self.human_takeovers.to_string());
        row("Feedback", format!("{} up, {} down", self.feedback.up, self.feedback.down));
        for (name, v) in self.feedback.by_category.each() {
            row(&format!("  {name}"), format!("{} up, {} down", v.up, v.down));
        }
        row("Outages", self.outages_text());
        row("LLM", self.llm_text());

        out.push_str("\nTop problems\n");
        if self.top_problems.is_empty() && self.other_problems == 0 {
            out.push_str("  (no tickets)\n");
        }
        for p in &self.top_problems {
            out.push_str(&format!("  {:>5}  {}\n", p.tickets, p.title));
        }
        if self.other_problems > 0 {
            out.push_str(&format!("  {:>5}  other (no knowledge-base article)\n", self.other_problems));
        }

        out.push_str(&format!(
            "\n{:<16}{:>7}{:>11}{:>8}{:>8}\n",
            "Tickets by day", "total", "technical", "access", "change"
        ));
        for d in &self.by_day {
            out.push_str(&format!(
                "  {} {}{:>7}{:>11}{:>8}{:>8}\n",
                d.date,
                d.weekday,
                d.tickets,
                d.by_category.technical,
                d.by_category.access,
                d.by_category.change
            ));
        }
        out
    }

    /// The report as a Slack message (mrkdwn): a few thousand characters for 90 days, never
    /// over Slack's limit.
    pub fn to_mrkdwn(&self) -> String {
        use crate::slack::format::escape;
        let c = &self.by_category;
        let mut out = format!(
            "*IT report* {} to {} ({})\n",
            self.period.since,
            self.period.until,
            escape(&self.period.timezone)
        );
        out.push_str(&format!(
            "*Tickets:* {} ({} technical, {} access, {} change)\n",
            self.tickets, c.technical, c.access, c.change
        ));
        out.push_str(&format!(
            "*Answered by the bot:* {} · first response {}\n",
            self.answered_by_bot,
            self.first_response_text()
        ));
        out.push_str(&format!(
            "*Resolved:* {} by the bot (requester confirmed), {} by a person · *Escalated:* {} · *Human takeovers:* {}\n",
            self.resolved_by_bot, self.resolved_by_person, self.escalated, self.human_takeovers
        ));
        let per_category = self
            .feedback
            .by_category
            .each()
            .iter()
            .map(|(name, v)| format!("{name} {}/{}", v.up, v.down))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "*Feedback:* :+1: {} · :-1: {} ({per_category})\n",
            self.feedback.up, self.feedback.down
        ));
        out.push_str(&format!("*Outages:* {}\n", self.outages_text()));
        out.push_str(&format!("*LLM:* {}\n", self.llm_text()));
        if !self.top_problems.is_empty() || self.other_problems > 0 {
            out.push_str("*Top problems*\n");
            for p in &self.top_problems {
                out.push_str(&format!("• {} — {}\n", escape(&p.title), p.tickets));
            }
            if self.other_problems > 0 {
                out.push_str(&format!("• other (no knowledge-base article) — {}\n", self.other_problems));
            }
        }
        let days = self
            .by_day
            .iter()
            .map(|d| format!("`{} {}` {}", d.weekday, d.date.get(5..).unwrap_or(&d.date), d.tickets))
            .collect::<Vec<_>>()
            .join(" · ");
        out.push_str(&format!("*By day:* {days}\n"));
        if out.chars().count() > MAX_MRKDWN_CHARS {
            out = out.chars().take(MAX_MRKDWN_CHARS).collect::<String>() + "…";
        }
        out
    }

    fn first_response_text(&self) -> String {
        match (self.first_response.median_secs, self.first_response.p90_secs) {
            (Some(median), Some(p90)) => {
                format!("median {}, p90 {}", duration_text(median), duration_text(p90))
            }
            _ => "no answers".into(),
        }
    }

    fn outages_text(&self) -> String {
        let plural = if self.outages.tickets == 1 { "" } else { "s" };
        format!("{} ({} ticket{plural})", self.outages.detected, self.outages.tickets)
    }

    fn llm_text(&self) -> String {
        let l = &self.llm;
        format!(
            "{} answer{}, {} prompt tokens ({} cached), {} completion tokens, {}",
            thousands(l.calls),
            if l.calls == 1 { "" } else { "s" },
            thousands(l.prompt_tokens),
            thousands(l.cached_tokens),
            thousands(l.completion_tokens),
            dollars(l.cost_usd)
        )
    }
}

/// `Mon`..`Sun` of a `YYYY-MM-DD` date.
fn weekday_of(date: &str) -> String {
    date.parse::<jiff::civil::Date>().map(|d| d.strftime("%a").to_string()).unwrap_or_default()
}

/// "5.5 s", "42 s", "1 min", "3 min 5 s", "2 h 10 min".
fn duration_text(secs: f64) -> String {
    let whole = secs.round() as u64;
    if secs < 10.0 {
        format!("{:.1} s", secs)
    } else if whole < 60 {
        format!("{whole} s")
    } else if whole < 3600 && whole % 60 == 0 {
        format!("{} min", whole / 60)
    } else if whole < 3600 {
        format!("{} min {} s", whole / 60, whole % 60)
    } else {
        format!("{} h {} min", whole / 3600, whole % 3600 / 60)
    }
}

/// 1234567 → "1,234,567".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Dollars with cents, or with six decimals below a cent so small costs still show.
fn dollars(usd: f64) -> String {
    if usd > 0.0 && usd < 0.01 {
        format!("${usd:.6}")
    } else {
        format!("${usd:.2}")
    }
}

/// What [`collect`] read.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub tickets: Vec<TicketSummary>,
    /// Root messages read from the channel (tickets and others).
    pub messages_read: usize,
    /// False when the read stopped at `max_messages`: older tickets in the period are missing.
    pub complete: bool,
}

/// Reads the channel's root messages from `since_unix` (conversations.history with
/// include_all_metadata=true, paged with cursors until next_cursor is "" or absent) and each
/// thread with replies (conversations.replies, via `SlackApi::read_threads`), pausing `pace`
/// between thread reads; at most `max_messages` roots. Says how much was read and whether the
/// period was read to its start.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(channel = %channel, since_unix, max_messages))]
pub async fn collect(
    slack: &SlackApi,
    channel: &ChannelId,
    bot: &UserId,
    rules: &Rules,
    staff: &[String],
    since_unix: i64,
    pace: Duration,
    max_messages: usize,
) -> Result<Collected, SlackError> {
    let started = std::time::Instant::now();
    let mut tickets = Vec::new();
    let oldest = u64::try_from(since_unix).unwrap_or(0);
    let read = slack
        .read_threads(channel, oldest, max_messages, pace, |thread| {
            tickets.extend(TicketSummary::from_thread(thread, bot, rules, staff));
        })
        .await?;
    tracing::info!(
        messages = read,
        tickets = tickets.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "channel history read for a report"
    );
    Ok(Collected { tickets, messages_read: read, complete: read < max_messages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use serde_json::json;

    /// Messages as conversations.replies returns them.
    fn parsed(raw: &[serde_json::Value]) -> Vec<HistoryMessage> {
        raw.iter().filter_map(|m| HistoryMessage::parse(m, &ChannelId::from("C1"))).collect()
    }

    fn rules() -> Rules {
        let s = Settings::shipped();
        Rules::new(&s.triage, &s.followup).expect("the shipped rules compile")
    }

    fn summary(ts: &str, category: Category, article: Option<&str>) -> TicketSummary {
        TicketSummary {
            thread: Ts::from(ts),
            asked_micros: ts_micros(&Ts::from(ts)).expect("a valid ts"),
            category,
            first_response: None,
            ending: Ending::Unknown,
            escalated: false,
            human_took_over: false,
            article: article.map(str::to_string),
            feedback: Votes::default(),
            llm: LlmUsage::default(),
            in_outage: false,
            outages_started: 0,
            outage_threads: 0,
        }
    }

    #[test]
    fn report_requests_are_read_with_their_days() {
        assert_eq!(report_request("<@U0BOT> report"), Some(7));
        assert_eq!(report_request("<@U0BOT> Report!"), Some(7));
        assert_eq!(report_request("<@U0BOT> report 30"), Some(30));
        assert_eq!(report_request("<@U0BOT> report 30d"), Some(30));
        assert_eq!(report_request("<@U0BOT> report 14 days"), Some(14));
        assert_eq!(report_request("<@U0BOT> report 400"), Some(90));
        assert_eq!(report_request("<@U0BOT> report 0"), Some(1));
        assert_eq!(report_request("<@U0BOT> report my vpn is broken"), None);
        assert_eq!(report_request("<@U0BOT> my report won't print"), None);
        assert_eq!(report_request("<@U0BOT>"), None);
    }

    #[test]
    fn nearest_rank_percentiles_are_always_one_of_the_values() {
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 50.0), Some(5.0));
        assert_eq!(percentile(&ten, 90.0), Some(9.0));
        assert_eq!(percentile(&ten, 100.0), Some(10.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), Some(2.0), "the lower middle of an even count");
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 90.0), Some(4.0));
        assert_eq!(percentile(&[7.5], 90.0), Some(7.5));
        assert_eq!(percentile(&[7.5], 0.0), Some(7.5));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn slack_timestamps_are_read_to_the_microsecond() {
        assert_eq!(ts_micros(&Ts::from("1700000000.000100")), Some(1_700_000_000_000_100));
        assert_eq!(ts_micros(&Ts::from("1700000000.5")), Some(1_700_000_000_500_000));
        assert_eq!(ts_micros(&Ts::from("1700000000")), Some(1_700_000_000_000_000));
        assert_eq!(ts_micros(&Ts::from("17x.1")), None);
    }

    #[test]
    fn top_problems_are_the_five_most_frequent_articles_then_other() {
        let kb = KnowledgeBase::shipped();
        let mut tickets = Vec::new();
        let plan =
            [("zoom", 3), ("slack", 3), ("github", 2), ("okta-sso", 2), ("jamf-mac", 1), ("wifi-network", 1)];
        for (article, n) in plan {
            for _ in 0..n {
                tickets.push(summary(
                    &format!("{}.0", 1000 + tickets.len()),
                    Category::Technical,
                    Some(article),
                ));
            }
        }
        tickets.push(summary("2000.0", Category::Access, None));

        let r = Report::build(&tickets, 0, 10_000, "UTC", &kb);

        let top: Vec<(&str, u64)> = r.top_problems.iter().map(|p| (p.article.as_str(), p.tickets)).collect();
        assert_eq!(top, [("slack", 3), ("zoom", 3), ("github", 2), ("okta-sso", 2), ("jamf-mac", 1)]);
        assert_eq!(r.other_problems, 1);
        let zoom = kb.articles().iter().find(|a| a.slug == "zoom").expect("zoom is shipped");
        assert_eq!(r.top_problems[1].title, zoom.title);
    }

    #[test]
    fn the_mac_and_windows_versions_of_an_article_are_one_problem() {
        let kb = KnowledgeBase::shipped();
        let tickets = vec![
            summary("1000.0", Category::Technical, Some("aws-client-vpn")),
            summary("1001.0", Category::Technical, Some("aws-client-vpn-windows")),
            summary("1002.0", Category::Technical, Some("aws-client-vpn-mac-and-windows")),
            summary("1003.0", Category::Technical, Some("zoom")),
        ];

        let r = Report::build(&tickets, 0, 10_000, "UTC", &kb);

        let top: Vec<(&str, u64)> = r.top_problems.iter().map(|p| (p.article.as_str(), p.tickets)).collect();
        assert_eq!(top, [("aws-client-vpn", 3), ("zoom", 1)]);
        assert_eq!(r.top_problems[0].title, "AWS Client VPN won't connect or keeps dropping");
    }

    #[test]
    fn a_ticket_outside_the_period_or_listed_twice_is_not_counted() {
        let kb = KnowledgeBase::shipped();
        let t = summary("5000.000001", Category::Technical, None);
        let tickets = vec![summary("999.999999", Category::Technical, None), t.clone(), t];

        let r = Report::build(&tickets, 1000, 6000, "UTC", &kb);

        assert_eq!(r.tickets, 1);
        assert_eq!(Report::build(&tickets, 1000, 5000, "UTC", &kb).tickets, 0, "the end is exclusive");
    }

    #[test]
    fn reactions_by_others_count_as_feedback_and_the_bots_own_do_not() {
        let bot = UserId::from("UBOT");
        let m = json!({
            "ts": "5.0",
            "metadata": {"event_type": "itbot_thread_state", "event_payload": {"feedback": {"up": 2, "down": 1}}},
            "reactions": [
                {"name": "+1", "users": ["U1", "UBOT"], "count": 2},
                {"name": "thumbsdown", "users": ["U2"], "count": 1},
                {"name": "+1::skin-tone-3", "users": ["U3"], "count": 1},
                {"name": "eyes", "users": ["U4"], "count": 1},
            ],
        });
        assert_eq!(votes_of(&parsed(&[m])[0], &bot), Votes { up: 4, down: 2 });
    }

    #[test]
    fn a_ticket_the_bot_never_answered_takes_its_category_from_the_rules() {
        let root = json!({"type": "message", "user": "U1", "ts": "100.000000", "text": "I need access to Snowflake please"});
        let t = TicketSummary::from_thread(&parsed(&[root]), &UserId::from("UBOT"), &rules(), &[])
            .expect("a ticket");
        assert_eq!(t.category, Category::Access);
        assert_eq!(t.first_response, None);
        assert_eq!(t.ending, Ending::Unknown);
    }

    #[test]
    fn posts_by_apps_and_joins_are_not_tickets() {
        let (bot, rules) = (UserId::from("UBOT"), rules());
        let by_bot = json!({"user": "UBOT", "bot_id": "B1", "ts": "1.0", "text": "weekly report"});
        let join = json!({"user": "U1", "subtype": "channel_join", "ts": "2.0", "text": "joined"});
        assert!(TicketSummary::from_thread(&parsed(&[by_bot]), &bot, &rules, &[]).is_none());
        assert!(TicketSummary::from_thread(&parsed(&[join]), &bot, &rules, &[]).is_none());
        assert!(TicketSummary::from_thread(&[], &bot, &rules, &[]).is_none());
    }

    #[test]
    fn the_slack_message_stays_short_for_ninety_days_and_shows_no_ids() {
        let kb = KnowledgeBase::shipped();
        let tickets: Vec<TicketSummary> = (0..500)
            .map(|i| summary(&format!("{}.0", 1_000_000 + i * 15_000), Category::Technical, Some("zoom")))
            .collect();

        let r = Report::build(&tickets, 1_000_000, 1_000_000 + 90 * 86_400, "Europe/Berlin", &kb);
        let text = r.to_mrkdwn();

        assert_eq!(r.by_day.len(), 91, "a partial first and last day");
        assert!(text.chars().count() < 3_000, "{} characters:\n{text}", text.chars().count());
        assert!(!text.contains("1000000.0"), "a thread ts leaked: {text}");
    }

    #[test]
    fn durations_and_numbers_read_naturally() {
        assert_eq!(duration_text(5.5), "5.5 s");
        assert_eq!(duration_text(42.2), "42 s");
        assert_eq!(duration_text(185.0), "3 min 5 s");
        assert_eq!(duration_text(60.0), "1 min");
        assert_eq!(duration_text(7_800.0), "2 h 10 min");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(dollars(0.0012), "$0.001200");
        assert_eq!(dollars(12.345), "$12.35");
        assert_eq!(dollars(0.0), "$0.00");
    }
}

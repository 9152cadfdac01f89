//! Outage detection: when different people report the same symptom within a short window, the
//! channel is seeing an outage, not a run of unrelated tickets. Pure code; the actor in
//! `actors::outage` owns one tracker, pings IT and answers the threads.
//!
//! A symptom is the knowledge-base article that best matches the report (the company's tools:
//! VPN, Okta, Wi-Fi, …). Time is the Slack timestamp of each report, so the decision depends on
//! when people posted, not on when the events arrived.
//!
//! - Reports older than `window_secs` before the newest are forgotten.
//! - When `min_reporters` *different* people reported the symptom within the window, an outage
//!   is declared: its first thread is the earliest report in the window. One person posting
//!   twice counts once.
//! - While it lasts, every further report is part of it. It ends when nobody reported the
//!   symptom for `window_secs`; a later burst is a new outage.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::slack::{Ts, UserId};

/// Reports remembered per symptom, at most (a burst larger than this still declares).
const MAX_REPORTS: usize = 500;
/// Threads listed per outage, at most.
const MAX_THREADS: usize = 200;

/// One report of a symptom.
#[derive(Debug, Clone)]
struct Report {
    at: f64,
    requester: UserId,
    thread: Ts,
}

/// A declared outage.
#[derive(Debug, Clone)]
pub struct Outage {
    pub symptom: String,
    /// The earliest report's thread: where IT is pinged and the others are pointed.
    pub first: Ts,
    /// Every thread reporting it, oldest first (the first included).
    pub threads: Vec<Ts>,
    /// Different people who reported it.
    pub reporters: usize,
    /// The Slack time of the earliest and the latest report.
    pub started: f64,
    pub last: f64,
}

/// What a new report means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing unusual: answer as always.
    Normal,
    /// This report made it an outage: ping IT in `first`, tell this reporter it is known, and
    /// update `earlier` (the threads between the first and this one, already being answered).
    Declared { first: Ts, earlier: Vec<Ts> },
    /// Part of an outage already declared in `first`.
    Known { first: Ts },
}

#[derive(Debug, Default)]
struct Symptom {
    reports: VecDeque<Report>,
    outage: Option<Outage>,
}

#[derive(Debug)]
pub struct OutageTracker {
    min_reporters: usize,
    window_secs: f64,
    symptoms: HashMap<String, Symptom>,
}

impl OutageTracker {
    pub fn new(min_reporters: usize, window_secs: u64) -> OutageTracker {
        OutageTracker {
            min_reporters: min_reporters.max(2),
            window_secs: window_secs as f64,
            symptoms: HashMap::new(),
        }
    }

    /// Records that `requester` reported `symptom` in `thread` at Slack time `at`.
    pub fn report(&mut self, symptom: &str, thread: &Ts, requester: &UserId, at: f64) -> Verdict {
        let window = self.window_secs;
        let s = self.symptoms.entry(symptom.to_string()).or_default();
        if s.reports.iter().any(|r| &r.thread == thread) {
            // The same thread again (an edited root, a second replica's delivery).
            return match &s.outage {
                Some(o) if &o.first != thread => Verdict::Known { first: o.first.clone() },
                _ => Verdict::Normal,
            };
        }
        if s.outage.as_ref().is_some_and(|o| at - o.last > window) {
            s.outage = None;
        }
        s.reports.push_back(Report { at, requester: requester.clone(), thread: thread.clone() });
        while s.reports.front().is_some_and(|r| at - r.at > window) || s.reports.len() > MAX_REPORTS {
            s.reports.pop_front();
        }
        if let Some(o) = &mut s.outage {
            o.last = o.last.max(at);
            if o.threads.len() < MAX_THREADS {
                o.threads.push(thread.clone());
            }
            let reporters: HashSet<&UserId> = s.reports.iter().map(|r| &r.requester).collect();
            o.reporters = o.reporters.max(reporters.len());
            return Verdict::Known { first: o.first.clone() };
        }
        let reporters: HashSet<&UserId> = s.reports.iter().map(|r| &r.requester).collect();
        if reporters.len() < self.min_reporters {
            return Verdict::Normal;
        }
        // Reports can arrive out of order: the earliest one in the window is the first.
        let mut in_window: Vec<&Report> = s.reports.iter().collect();
        in_window.sort_by(|a, b| a.at.total_cmp(&b.at));
        let first = in_window[0].thread.clone();
        let threads: Vec<Ts> = in_window.iter().map(|r| r.thread.clone()).take(MAX_THREADS).collect();
        let earlier = threads.iter().filter(|t| *t != &first && *t != thread).cloned().collect();
        s.outage = Some(Outage {
            symptom: symptom.to_string(),
            first: first.clone(),
            threads,
            reporters: reporters.len(),
            started: in_window[0].at,
            last: at,
        });
        // When this report is itself the earliest (it arrived late), `first` is this thread.
        Verdict::Declared { first, earlier }
    }

    /// The outage `symptom` is in, if any.
    pub fn outage(&self, symptom: &str) -> Option<&Outage> {
        self.symptoms.get(symptom)?.outage.as_ref()
    }

    /// Whether someone other than `requester` reported `symptom` within the window before `at`.
    pub fn others_reported(&self, symptom: &str, requester: &UserId, at: f64) -> bool {
        self.symptoms.get(symptom).is_some_and(|s| {
            s.reports.iter().any(|r| &r.requester != requester && at - r.at <= self.window_secs)
        })
    }

    /// The outage whose first thread is `first`, if it is still on.
    pub fn outage_of(&self, first: &Ts) -> Option<&Outage> {
        self.symptoms.values().filter_map(|s| s.outage.as_ref()).find(|o| &o.first == first)
    }

    /// Forgets symptoms with nothing in the window before `now` (keeps memory flat).
    pub fn expire(&mut self, now: f64) {
        let window = self.window_secs;
        self.symptoms.retain(|_, s| {
            s.reports.retain(|r| now - r.at <= window);
            if s.outage.as_ref().is_some_and(|o| now - o.last > window) {
                s.outage = None;
            }
            !s.reports.is_empty() || s.outage.is_some()
        });
    }
}

/// A link to a thread: `workspace_url` is `auth.test`'s `url` (`https://acme.slack.com/`).
pub fn thread_link(workspace_url: &str, channel: &str, thread: &Ts) -> Option<String> {
    if workspace_url.is_empty() {
        return None;
    }
    let digits: String = thread.as_str().chars().filter(char::is_ascii_digit).collect();
    Some(format!("{}/archives/{channel}/p{digits}", workspace_url.trim_end_matches('/')))
}

/// "10 minutes", "1 hour", "90 seconds".
pub fn window_words(secs: u64) -> String {
    match secs {
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// `<url|label>`, or the label alone without a link.
fn linked(link: Option<&str>, label: &str) -> String {
    match link {
        Some(l) => format!("<{l}|{label}>"),
        None => label.to_string(),
    }
}

/// The ping in the first thread: who is told, what, and every affected thread.
pub fn ping_text(
    mention: Option<&str>,
    title: &str,
    o: &Outage,
    window: &str,
    links: &[Option<String>],
) -> String {
    let who = mention.map(|m| format!("{m} ")).unwrap_or_default();
    let threads: Vec<String> =
        links.iter().enumerate().map(|(i, l)| linked(l.as_deref(), &format!("{}", i + 1))).collect();
    format!(
        "{who}:rotating_light: *Possible outage:* {} people reported the same problem (*{title}*) within {window}. \
         Affected threads ({}): {}. \
         I'm telling new reporters it's a known issue and pointing them here.",
        o.reporters,
        links.len(),
        threads.join(", "),
    )
}

/// Told to a reporter after the outage was declared.
pub fn known_issue_text(title: &str, reporters: usize, window: &str, first: Option<&str>) -> String {
    format!(
        "This looks like a known issue: {reporters} people reported the same problem (*{title}*) within {window}, \
         and IT is looking into it in {}. Follow that thread for updates; there's no need to do anything else for now.\n\n\
         If yours looks different, mention me in this thread and I'll go through the usual fixes with you.",
        linked(first, "this thread"),
    )
}

/// Posted in threads that reported it before the outage was declared.
pub fn earlier_thread_text(title: &str, first: Option<&str>) -> String {
    format!(
        "Update: others are reporting the same problem (*{title}*), so IT is treating it as an outage in {}. \
         Follow that thread for updates.",
        linked(first, "this thread"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(t: &mut OutageTracker, symptom: &str, thread: &str, who: &str, at: f64) -> Verdict {
        t.report(symptom, &Ts::from(thread), &UserId::from(who), at)
    }

    #[test]
    fn three_people_within_the_window_declare_one_outage_and_later_reports_join_it() {
        let mut t = OutageTracker::new(3, 600);
        assert_eq!(report(&mut t, "vpn", "100.0", "U1", 100.0), Verdict::Normal);
        assert_eq!(report(&mut t, "vpn", "200.0", "U2", 200.0), Verdict::Normal);
        let v = report(&mut t, "vpn", "300.0", "U3", 300.0);
        assert_eq!(v, Verdict::Declared { first: Ts::from("100.0"), earlier: vec![Ts::from("200.0")] });
        assert_eq!(report(&mut t, "vpn", "400.0", "U4", 400.0), Verdict::Known { first: Ts::from("100.0") });
        let o = t.outage("vpn").unwrap();
        assert_eq!(o.threads.len(), 4);
        assert_eq!(o.reporters, 4);
    }

    #[test]
    fn one_person_posting_again_and_again_is_no_outage() {
        let mut t = OutageTracker::new(3, 600);
        for i in 0..6 {
            let at = 100.0 + i as f64;
            assert_eq!(report(&mut t, "vpn", &format!("{at}"), "U1", at), Verdict::Normal);
        }
        assert_eq!(report(&mut t, "vpn", "110.0", "U2", 110.0), Verdict::Normal, "two people are not three");
        assert!(t.outage("vpn").is_none());
    }

    #[test]
    fn reports_spread_wider_than_the_window_are_no_outage() {
        let mut t = OutageTracker::new(3, 600);
        assert_eq!(report(&mut t, "vpn", "0.0", "U1", 0.0), Verdict::Normal);
        assert_eq!(report(&mut t, "vpn", "500.0", "U2", 500.0), Verdict::Normal);
        // U1's report is 1001 s old by now: only U2 and U3 are in the window.
        assert_eq!(report(&mut t, "vpn", "1001.0", "U3", 1001.0), Verdict::Normal);
        assert_eq!(
            report(&mut t, "vpn", "1050.0", "U4", 1050.0),
            Verdict::Declared { first: Ts::from("500.0"), earlier: vec![Ts::from("1001.0")] }
        );
    }

    #[test]
    fn different_symptoms_are_counted_apart() {
        let mut t = OutageTracker::new(3, 600);
        report(&mut t, "vpn", "1.0", "U1", 1.0);
        report(&mut t, "okta", "2.0", "U2", 2.0);
        assert_eq!(report(&mut t, "wifi", "3.0", "U3", 3.0), Verdict::Normal);
    }

    #[test]
    fn an_outage_ends_after_a_quiet_window_and_a_new_burst_is_a_new_one() {
        let mut t = OutageTracker::new(2, 60);
        report(&mut t, "vpn", "0.0", "U1", 0.0);
        assert!(matches!(report(&mut t, "vpn", "10.0", "U2", 10.0), Verdict::Declared { .. }));
        assert!(matches!(report(&mut t, "vpn", "50.0", "U3", 50.0), Verdict::Known { .. }));
        // Quiet for more than the window: the next report starts afresh.
        assert_eq!(report(&mut t, "vpn", "200.0", "U4", 200.0), Verdict::Normal);
        let v = report(&mut t, "vpn", "220.0", "U5", 220.0);
        assert_eq!(v, Verdict::Declared { first: Ts::from("200.0"), earlier: vec![] });
    }

    #[test]
    fn the_same_thread_reported_twice_counts_once() {
        let mut t = OutageTracker::new(2, 600);
        report(&mut t, "vpn", "1.0", "U1", 1.0);
        assert_eq!(report(&mut t, "vpn", "1.0", "U1", 1.0), Verdict::Normal);
        assert!(t.outage("vpn").is_none());
    }

    #[test]
    fn a_late_report_that_is_the_earliest_becomes_the_first_thread() {
        let mut t = OutageTracker::new(3, 600);
        report(&mut t, "vpn", "200.0", "U2", 200.0);
        report(&mut t, "vpn", "300.0", "U3", 300.0);
        let v = report(&mut t, "vpn", "100.0", "U1", 100.0);
        assert_eq!(
            v,
            Verdict::Declared {
                first: Ts::from("100.0"),
                earlier: vec![Ts::from("200.0"), Ts::from("300.0")],
            }
        );
    }

    #[test]
    fn others_reported_counts_other_people_within_the_window_only() {
        let mut t = OutageTracker::new(3, 600);
        report(&mut t, "vpn", "1.0", "U1", 1.0);
        assert!(!t.others_reported("vpn", &UserId::from("U1"), 2.0), "the same person");
        assert!(t.others_reported("vpn", &UserId::from("U2"), 2.0));
        assert!(!t.others_reported("vpn", &UserId::from("U2"), 700.0), "outside the window");
        assert!(!t.others_reported("okta", &UserId::from("U2"), 2.0), "another symptom");
    }

    #[test]
    fn expiry_forgets_quiet_symptoms() {
        let mut t = OutageTracker::new(3, 60);
        report(&mut t, "vpn", "1.0", "U1", 1.0);
        t.expire(1000.0);
        assert!(t.symptoms.is_empty());
    }

    #[test]
    fn links_and_words() {
        assert_eq!(
            thread_link("https://acme.slack.com/", "C1", &Ts::from("1700000000.000100")).as_deref(),
            Some("https://acme.slack.com/archives/C1/p1700000000000100")
        );
        assert_eq!(thread_link("", "C1", &Ts::from("1.0")), None);
        assert_eq!(window_words(600), "10 minutes");
        assert_eq!(window_words(3600), "1 hour");
        assert_eq!(window_words(90), "90 seconds");
    }
}

//! Past tickets: what the channel's earlier threads asked, how they ended and what fixed them,
//! and a BM25 index to find the ones like a new question. Pure code: the actor in
//! `actors::tickets` owns one index, fills it from Slack and keeps it current.
//!
//! Memory is bounded by `history.max_tickets`: the oldest ticket is forgotten first. Nothing is
//! written to disk.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::retrieval::{tokenize, Bm25, Field};
use crate::slack::events::{HistoryMessage, Message};
use crate::slack::{Ts, UserId};
use crate::telemetry::UserText;
use crate::text::clip;
use crate::triage::{Outcome, Rules};

/// How a ticket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The requester confirmed the bot's steps worked.
    BotResolved,
    /// A person from IT fixed it.
    PersonResolved,
    Escalated,
    Unknown,
}

impl Ending {
    pub fn is_resolved(self) -> bool {
        matches!(self, Ending::BotResolved | Ending::PersonResolved)
    }

    /// How much a ticket that ended this way counts in ranking: resolved ones say what works.
    fn weight(self) -> f32 {
        match self {
            Ending::BotResolved | Ending::PersonResolved => 1.0,
            Ending::Escalated => 0.5,
            Ending::Unknown => 0.4,
        }
    }
}

/// One past ticket.
#[derive(Debug, Clone)]
pub struct PastTicket {
    pub thread: Ts,
    pub question: UserText,
    pub ending: Ending,
    /// What fixed it: the steps the requester confirmed, or the IT person's last substantive message.
    pub resolution: Option<UserText>,
}

/// A ticket found for a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    pub thread: Ts,
    pub question: UserText,
    pub ending: Ending,
    pub resolution: Option<UserText>,
    pub score: f32,
    /// How sure the index is that this ticket is about the same problem (0–1), comparable
    /// across index sizes: the geometric mean of how much of the question the ticket covers
    /// (its score as a share of what a ticket with every query term would get) and how much of
    /// the ticket's own question the new one repeats (rare words weigh more). Both must be
    /// high: a short ticket that shares one rare word with a long question is not the same
    /// problem, nor is a long ticket that happens to hold every word of a short one.
    pub share: f32,
}

/// A past ticket is similar when it scores at least this share of what a ticket with every
/// query term would (see [`Bm25::ceiling`]), after the weight of its ending. Low on purpose:
/// the LLM judges relevance; the offline answer quotes a past fix only when
/// [`Similar::share`] reaches [`QUOTE_SHARE`].
pub const MIN_SHARE: f32 = 0.15;
/// The [`Similar::share`] from which the offline answer quotes a past fix to the requester.
/// Chosen on the labelled tuning sets (`tests/past_tickets.rs` prints precision and recall):
/// a wrong fix quoted is worse than none, so it sits where precision stops rising.
pub const QUOTE_SHARE: f32 = 0.35;
/// The resolution counts less than the question: it describes the fix, not the symptom.
const QUESTION_WEIGHT: f32 = 1.0;
const RESOLUTION_WEIGHT: f32 = 0.4;
/// Longest resolution kept per ticket.
const RESOLUTION_CHARS: usize = 600;
/// Shortest message from a person that counts as an explanation of the fix.
const SUBSTANTIVE_CHARS: usize = 25;

/// The index: tickets by thread, ordered by age, with a BM25 index over their text.
#[derive(Debug, Default)]
pub struct TicketIndex {
    max: usize,
    tickets: HashMap<Ts, (usize, PastTicket)>,
    /// Slot → thread, to map search hits back.
    slots: HashMap<usize, Ts>,
    /// Threads oldest first (ts order), for eviction.
    by_age: BTreeMap<Ts, ()>,
    bm25: Bm25,
}

impl TicketIndex {
    pub fn new(max_tickets: usize) -> TicketIndex {
        TicketIndex { max: max_tickets, ..TicketIndex::default() }
    }

    pub fn len(&self) -> usize {
        self.tickets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    pub fn get(&self, thread: &Ts) -> Option<&PastTicket> {
        self.tickets.get(thread).map(|(_, t)| t)
    }

    /// Adds or replaces the ticket of its thread; forgets the oldest beyond `max_tickets`.
    pub fn upsert(&mut self, mut ticket: PastTicket) {
        if self.max == 0 {
            return;
        }
        // A fix is quoted to other requesters and to the LLM: it is kept redacted, and not at
        // all when it held a secret.
        ticket.resolution = ticket.resolution.and_then(|r| {
            let redacted = crate::redact::redact(r.expose());
            (!redacted.secret_found).then(|| UserText::new(redacted.text))
        });
        self.remove(&ticket.thread);
        let resolution = ticket.resolution.as_ref().map(|r| r.expose()).unwrap_or("");
        let slot = self.bm25.add(&[
            Field { text: ticket.question.expose(), weight: QUESTION_WEIGHT },
            Field { text: resolution, weight: RESOLUTION_WEIGHT },
        ]);
        self.slots.insert(slot, ticket.thread.clone());
        self.by_age.insert(ticket.thread.clone(), ());
        self.tickets.insert(ticket.thread.clone(), (slot, ticket));
        while self.tickets.len() > self.max {
            let Some(oldest) = self.by_age.keys().next().cloned() else { break };
            self.remove(&oldest);
        }
    }

    pub fn remove(&mut self, thread: &Ts) {
        if let Some((slot, _)) = self.tickets.remove(thread) {
            self.bm25.remove(slot);
            self.slots.remove(&slot);
            self.by_age.remove(thread);
        }
    }

    /// The `k` tickets most like `query`, resolved ones preferred, `exclude` (the asking
    /// thread) left out.
    pub fn similar(&self, query: &str, k: usize, exclude: Option<&Ts>) -> Vec<Similar> {
        let ceiling = self.bm25.ceiling(query).max(f32::EPSILON);
        let min_score = ceiling * MIN_SHARE;
        let mut hits: Vec<Similar> = self
            .bm25
            .search(query)
            .into_iter()
            .filter_map(|(slot, score)| {
                let thread = self.slots.get(&slot)?;
                if Some(thread) == exclude {
                    return None;
                }
                let (_, t) = self.tickets.get(thread)?;
                Some(Similar {
                    thread: t.thread.clone(),
                    question: t.question.clone(),
                    ending: t.ending,
                    resolution: t.resolution.clone(),
                    score: score * t.ending.weight(),
                    share: score * t.ending.weight() / ceiling,
                })
            })
            .filter(|h| h.score > 0.0 && h.score >= min_score)
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| b.thread.cmp(&a.thread)));
        hits.truncate(k);
        let asked: HashSet<String> = tokenize(query).into_iter().collect();
        for h in &mut hits {
            h.share = (h.share * self.repeated(&h.question, &asked)).sqrt();
        }
        hits
    }

    /// The share of `question`'s terms, weighted by rarity, that `asked` holds too.
    fn repeated(&self, question: &UserText, asked: &HashSet<String>) -> f32 {
        let mut terms = tokenize(question.expose());
        terms.sort();
        terms.dedup();
        let (mut held, mut total) = (0.0, 0.0);
        for t in &terms {
            let idf = self.bm25.idf(t);
            total += idf;
            if asked.contains(t) {
                held += idf;
            }
        }
        if total > 0.0 {
            held / total
        } else {
            0.0
        }
    }
}

/// The past fix worth quoting to a requester among `similar` (best first): the first resolved
/// ticket with a recorded fix that is about the same problem (its share reaches
/// [`QUOTE_SHARE`]).
pub fn fix_to_quote(similar: &[Similar]) -> Option<&Similar> {
    similar.iter().find(|s| s.ending.is_resolved() && s.resolution.is_some() && s.share >= QUOTE_SHARE)
}

/// Reads a thread (root, then replies oldest first, with metadata) into a past ticket: how it
/// ended, from the bot's state when it has one, else from what people wrote; and what fixed it.
/// A root that triage reads as no ticket (thanks, an FYI, chatter, a who/where question) is
/// not one: whatever was said under it is no fix to quote.
pub fn from_thread(
    root: &Message,
    replies: &[HistoryMessage],
    bot: &UserId,
    rules: &Rules,
) -> Option<PastTicket> {
    let requester = root.user.as_ref()?;
    if root.bot_id.is_some()
        || root.text.is_empty()
        || !rules.classify(root.text.expose()).category.is_ticket()
    {
        return None;
    }
    let state = replies
        .iter()
        .rev()
        .filter(|m| m.message.user.as_ref() == Some(bot))
        .find_map(HistoryMessage::thread_state);

    // Who wrote what, skipping apps (Assist) other than the bot.
    let mut last_bot_answer: Option<&str> = None;
    let mut answer_that_worked: Option<&str> = None;
    let mut last_person: Option<&str> = None;
    let mut person_then_worked: Option<&str> = None;
    for m in replies.iter().map(|r| &r.message) {
        let text = m.text.expose();
        match m.user.as_ref() {
            Some(u) if u == bot => last_bot_answer = Some(text),
            Some(u) if u == requester && rules.outcome(text) == Outcome::Worked => {
                answer_that_worked = answer_that_worked.or(last_bot_answer);
                person_then_worked = person_then_worked.or(last_person);
            }
            Some(u) if u == requester => {}
            Some(_) if m.bot_id.is_none() && text.chars().count() >= SUBSTANTIVE_CHARS => {
                last_person = Some(text)
            }
            _ => {}
        }
    }
    let resolved = state.is_some_and(|s| s.resolved);
    let (ending, resolution) = if let Some(fix) = person_then_worked.or(last_person.filter(|_| !resolved)) {
        (Ending::PersonResolved, Some(fix))
    } else if resolved || answer_that_worked.is_some() {
        (Ending::BotResolved, answer_that_worked.or(last_bot_answer))
    } else if state.is_some_and(|s| s.escalated) {
        (Ending::Escalated, None)
    } else {
        (Ending::Unknown, None)
    };
    Some(PastTicket {
        thread: root.ts.clone(),
        question: root.text.clone(),
        ending,
        resolution: resolution.map(|r| UserText::new(clip(&strip_bot_footer(r), RESOLUTION_CHARS))),
    })
}

/// A bot answer without its how-to-continue footer and opening line.
fn strip_bot_footer(text: &str) -> String {
    let text = text.replace(crate::text::HOW_TO_CONTINUE, "");
    text.trim().to_string()
}

/// "today", "yesterday", "3 days ago", "5 weeks ago": how long before `now` (unix seconds) the
/// message `ts` was written.
pub fn age(ts: &Ts, now: f64) -> String {
    let then: f64 = ts.as_str().parse().unwrap_or(now);
    let days = ((now - then) / 86_400.0).floor().max(0.0) as u64;
    match days {
        0 => "today".into(),
        1 => "yesterday".into(),
        2..=13 => format!("{days} days ago"),
        _ => format!("{} weeks ago", days / 7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::slack::{ChannelId, Ts};
    use crate::state::ThreadState;

    fn ticket(thread: &str, question: &str, ending: Ending, resolution: Option<&str>) -> PastTicket {
        PastTicket {
            thread: Ts::from(thread),
            question: UserText::new(question),
            ending,
            resolution: resolution.map(UserText::new),
        }
    }

    fn msg(ts: &str, user: &str, text: &str) -> Message {
        Message {
            channel: ChannelId::from("C1"),
            ts: Ts::from(ts),
            thread_ts: Some(Ts::from("1.0")),
            user: Some(UserId::from(user)),
            bot_id: None,
            subtype: None,
            text: UserText::new(text),
            blocks_text: UserText::default(),
        }
    }

    #[test]
    fn resolved_tickets_rank_above_unresolved_ones_and_the_asking_thread_is_excluded() {
        let mut index = TicketIndex::new(10);
        index.upsert(ticket("1.0", "aws vpn client stuck connecting", Ending::Unknown, None));
        index.upsert(ticket(
            "2.0",
            "vpn client stuck on connecting from home",
            Ending::PersonResolved,
            Some("reimported the profile"),
        ));
        index.upsert(ticket("3.0", "zoom audio broken", Ending::BotResolved, None));

        let hits = index.similar("my aws vpn is stuck connecting", 3, Some(&Ts::from("9.0")));
        assert_eq!(hits[0].thread.as_str(), "2.0");
        assert!(hits.iter().all(|h| h.thread.as_str() != "3.0"));
        let hits = index.similar("my aws vpn is stuck connecting", 3, Some(&Ts::from("2.0")));
        assert!(hits.iter().all(|h| h.thread.as_str() != "2.0"));
    }

    #[test]
    fn a_new_post_about_the_same_problem_quotes_the_past_fix_and_a_different_one_does_not() {
        let mut index = TicketIndex::new(10);
        index.upsert(ticket(
            "1.0",
            "Can't connect to the AWS VPN, it says TLS handshake failed",
            Ending::PersonResolved,
            Some("Re-import the VPN profile from Self Service: the old one was rotated"),
        ));
        index.upsert(ticket("2.0", "zoom audio broken", Ending::BotResolved, Some("pick the headset")));
        index.upsert(ticket("3.0", "printer jammed on floor 3", Ending::PersonResolved, Some("cleared it")));
        index.upsert(ticket(
            "4.0",
            "okta verify on a new phone",
            Ending::PersonResolved,
            Some("reset factor"),
        ));

        let same = index.similar("AWS VPN client keeps failing with a TLS handshake error", 3, None);
        let other = index.similar("the VPN is slow on video calls", 3, None);

        assert_eq!(fix_to_quote(&same).map(|s| s.thread.as_str()), Some("1.0"), "{same:?}");
        assert!(fix_to_quote(&other).is_none(), "{other:?}");
    }

    #[test]
    fn a_fix_is_kept_redacted_and_a_fix_with_a_secret_is_not_kept_at_all() {
        let mut index = TicketIndex::new(10);
        index.upsert(ticket(
            "1.0",
            "okta locked out",
            Ending::PersonResolved,
            Some("Unlocked it; your temporary password is Spring2024!xx, change it at first login"),
        ));
        index.upsert(ticket(
            "2.0",
            "vpn profile broken",
            Ending::PersonResolved,
            Some("Re-imported the profile; ping jo.smith@example.com or +1 415 555 0100 if it recurs"),
        ));
        assert!(index.get(&Ts::from("1.0")).is_some_and(|t| t.resolution.is_none()), "a secret was kept");
        let fix = index.get(&Ts::from("2.0")).and_then(|t| t.resolution.clone()).expect("kept");
        assert!(fix.expose().contains("Re-imported the profile"), "{fix:?}");
        assert!(!fix.expose().contains("jo.smith@example.com") && !fix.expose().contains("555 0100"));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_ticket_goes_first() {
        let mut index = TicketIndex::new(2);
        index.upsert(ticket("1.0", "printer jammed", Ending::Unknown, None));
        index.upsert(ticket("2.0", "printer out of toner", Ending::Unknown, None));
        index.upsert(ticket("3.0", "printer offline", Ending::Unknown, None));
        assert_eq!(index.len(), 2);
        assert!(index.get(&Ts::from("1.0")).is_none());
        index.upsert(ticket("3.0", "printer offline again", Ending::BotResolved, None));
        assert_eq!(index.len(), 2, "an update is not a new ticket");
    }

    #[test]
    fn a_thread_reads_as_resolved_by_a_person_with_their_fix() {
        let s = Settings::shipped();
        let rules = Rules::new(&s.triage, &s.followup).unwrap();
        let root = Message { thread_ts: None, ..msg("1.0", "U1", "okta says my account is locked") };
        let replies = vec![
            HistoryMessage::new(msg("2.0", "UBOT", "Here's what usually fixes this"), None),
            HistoryMessage::new(
                msg(
                    "3.0",
                    "U2",
                    "Your account was locked after 5 failed attempts; I unlocked it in the admin console",
                ),
                None,
            ),
            HistoryMessage::new(msg("4.0", "U1", "that worked, thanks!"), None),
        ];
        let t = from_thread(&root, &replies, &UserId::from("UBOT"), &rules).unwrap();
        assert_eq!(t.ending, Ending::PersonResolved);
        assert!(t.resolution.unwrap().expose().contains("unlocked it"));
    }

    #[test]
    fn threads_whose_root_is_not_a_ticket_are_not_indexed() {
        let s = Settings::shipped();
        let rules = Rules::new(&s.triage, &s.followup).unwrap();
        let bot = UserId::from("UBOT");
        let fix = |ts: &str, text: &str| HistoryMessage::new(msg(ts, "U2", text), None);
        let threads = [
            (
                "1.0",
                "my VPN won't connect, it says TLS handshake failed",
                Some("Re-import the VPN profile from Self Service, then connect again"),
            ),
            ("2.0", "thanks all!", None),
            (
                "3.0",
                "FYI the printer on 3 is fixed",
                Some("Thanks for letting us know, we replaced the fuser this morning"),
            ),
            (
                "4.0",
                "who approves software purchases?",
                Some("Finance approves purchases over 500, your manager below that one"),
            ),
            (
                "5.0",
                "the printer on 3 is jammed again",
                Some("I cleared the paper path and restarted the printer for you"),
            ),
        ];
        let mut index = TicketIndex::new(10);
        for (ts, question, reply) in threads {
            let root = Message { thread_ts: None, ..msg(ts, "U1", question) };
            let replies: Vec<HistoryMessage> = reply.map(|r| fix("9.0", r)).into_iter().collect();
            if let Some(t) = from_thread(&root, &replies, &bot, &rules) {
                index.upsert(t);
            }
        }
        let kept: Vec<&str> = ["1.0", "2.0", "3.0", "4.0", "5.0"]
            .into_iter()
            .filter(|ts| index.get(&Ts::from(*ts)).is_some())
            .collect();
        assert_eq!(kept, ["1.0", "5.0"]);
        let similar = index.similar("printer on 3 not working", 3, None);
        assert!(similar.iter().all(|s| s.thread != Ts::from("3.0")), "{similar:?}");
    }

    #[test]
    fn a_thread_reads_as_resolved_by_the_bot_from_its_state() {
        let s = Settings::shipped();
        let rules = Rules::new(&s.triage, &s.followup).unwrap();
        let root = Message { thread_ts: None, ..msg("1.0", "U1", "vpn broken") };
        let state = ThreadState { resolved: true, ..ThreadState::default() };
        let replies = vec![
            HistoryMessage::new(msg("2.0", "UBOT", "1. Reimport the VPN profile from Self Service"), None),
            HistoryMessage::new(msg("3.0", "U1", "yes that fixed it"), None),
            HistoryMessage::new(msg("4.0", "UBOT", "Great, glad that sorted it!"), Some(state.into())),
        ];
        let t = from_thread(&root, &replies, &UserId::from("UBOT"), &rules).unwrap();
        assert_eq!(t.ending, Ending::BotResolved);
        assert!(t.resolution.unwrap().expose().contains("Reimport the VPN profile"));
    }
}

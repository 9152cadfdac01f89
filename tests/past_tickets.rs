//! Retrieval quality of the past-ticket index on a hand-written channel of 287 tickets
//! (`tests/data/past_tickets.jsonl`, with near-duplicates and distractors) and 75 new posts
//! whose right fix is known (`tests/data/past_ticket_queries.jsonl`), and how well the offline
//! answer decides to quote a past fix: on those 75, on 60 posts with no fix in the history
//! (`tests/data/past_fix_queries_tuning.jsonl`, both used to choose `QUOTE_SHARE`), and once on a
//! held-out set of 120 written blind (`tests/data/past_fix_queries_heldout.jsonl`, never used to
//! change anything; only its figures are printed).

use std::collections::HashMap;

use itbot::config::Settings;
use itbot::slack::events::{HistoryMessage, Message};
use itbot::slack::{ChannelId, Ts, UserId};
use itbot::telemetry::UserText;
use itbot::tickets::{fix_to_quote, from_thread, TicketIndex, QUOTE_SHARE};
use itbot::triage::Rules;
use serde_json::Value;

/// The figure reached when the index was last tuned, rounded down; README states it.
const RECALL_AT_3_FLOOR: f64 = 0.97;

/// Quoting on the tuning sets at `QUOTE_SHARE`, as measured when it was chosen, rounded down
/// (84.x%). Retrained triage models (stop 22) put two more of the channel's real tickets in the
/// index ("no slack notifs", a broken headset), which moved one borderline match over the
/// threshold: 83.9% since (the held-out set's precision rose, 87.3% to 88.7%).
const TUNING_PRECISION_FLOOR: f64 = 0.83;
const TUNING_RECALL_FLOOR: f64 = 0.60;
/// Quoting on the held-out set, as measured the one time it was run (85.7% and 67.5%, after the
/// last change to the rule and threshold), rounded down: a guard against regressions, not a
/// target to tune to.
const HELDOUT_PRECISION_FLOOR: f64 = 0.85;
const HELDOUT_RECALL_FLOOR: f64 = 0.67;

fn lines(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
        .collect()
}

fn message(ts: String, thread: Option<&str>, user: &str, text: &str) -> Message {
    Message {
        channel: ChannelId::from("C0IT"),
        ts: Ts(ts),
        thread_ts: thread.map(Ts::from),
        user: Some(UserId::from(user)),
        bot_id: None,
        subtype: None,
        text: UserText::new(text),
        blocks_text: UserText::default(),
    }
}

/// Builds the index the way the bot does from Slack threads; returns it with thread → fix.
fn fixture_index() -> (TicketIndex, HashMap<String, String>) {
    let s = Settings::shipped();
    let rules = Rules::new(&s.triage, &s.followup).expect("rules");
    let bot = UserId::from("U0BOT");
    let mut index = TicketIndex::new(s.history.max_tickets);
    let mut fixes = HashMap::new();
    for (i, t) in lines("past_tickets.jsonl").iter().enumerate() {
        let root_ts = format!("{}.000100", 1_700_000_000 + i * 1000);
        let root = message(root_ts.clone(), None, "U0REQ", t["question"].as_str().unwrap_or_default());
        let replies: Vec<HistoryMessage> = t["replies"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(j, r)| {
                let who = match r["who"].as_str() {
                    Some("requester") => "U0REQ",
                    Some("bot") => "U0BOT",
                    _ => "U0ITSTAFF",
                };
                let ts = format!("{}.{:06}", 1_700_000_000 + i * 1000 + j + 1, 100);
                HistoryMessage::new(
                    message(ts, Some(&root_ts), who, r["text"].as_str().unwrap_or_default()),
                    None,
                )
            })
            .collect();
        if let Some(ticket) = from_thread(&root, &replies, &bot, &rules) {
            fixes.insert(root_ts.clone(), t["fix"].as_str().unwrap_or_default().to_string());
            index.upsert(ticket);
        }
    }
    (index, fixes)
}

#[test]
fn the_ticket_with_the_same_fix_is_in_the_top_three() {
    let (index, fixes) = fixture_index();
    let queries = lines("past_ticket_queries.jsonl");
    assert!(index.len() >= 200, "the fixture channel is too small: {}", index.len());

    let mut found = 0;
    let mut misses = Vec::new();
    for q in &queries {
        let text = q["query"].as_str().unwrap_or_default();
        let want = q["fix"].as_str().unwrap_or_default();
        let hits = index.similar(text, 3, None);
        if hits.iter().any(|h| fixes.get(h.thread.as_str()).map(String::as_str) == Some(want)) {
            found += 1;
        } else {
            let got: Vec<&str> =
                hits.iter().filter_map(|h| fixes.get(h.thread.as_str()).map(String::as_str)).collect();
            misses.push(format!("want {want}, got {got:?}: {text}"));
        }
    }
    let recall = found as f64 / queries.len() as f64;

    println!(
        "recall@3 {:.1}% on {} queries over {} tickets; misses:\n{}",
        recall * 100.0,
        queries.len(),
        index.len(),
        misses.join("\n")
    );
    assert!(recall >= RECALL_AT_3_FLOOR, "recall@3 {recall:.3} below {RECALL_AT_3_FLOOR}");
}

#[test]
fn endings_are_read_from_the_threads() {
    let (index, _) = fixture_index();
    let queries = lines("past_ticket_queries.jsonl");
    // Every query's fix has resolved tickets: the top hit for most queries must be resolved.
    let resolved_first = queries
        .iter()
        .filter(|q| {
            index
                .similar(q["query"].as_str().unwrap_or_default(), 1, None)
                .first()
                .is_some_and(|h| h.ending.is_resolved())
        })
        .count();
    assert!(
        resolved_first * 10 >= queries.len() * 8,
        "only {resolved_first} of {} top hits resolved",
        queries.len()
    );
}

/// Precision and recall of quoting: a quote is right when the quoted ticket has the query's fix;
/// a quote for a query with no fix in the history is wrong. Returns them with the misses.
fn quoting(
    index: &TicketIndex,
    fixes: &HashMap<String, String>,
    queries: &[Value],
) -> (f64, f64, usize, Vec<String>) {
    let (mut right, mut wrong, mut with_fix) = (0, 0, 0);
    let mut misses = Vec::new();
    for q in queries {
        let text = q["query"].as_str().unwrap_or_default();
        let want = q["fix"].as_str();
        with_fix += usize::from(want.is_some());
        let similar = index.similar(text, 3, None);
        let quoted = fix_to_quote(&similar).and_then(|s| fixes.get(s.thread.as_str()));
        match (quoted, want) {
            (Some(got), Some(want)) if got == want => right += 1,
            (Some(got), _) => {
                wrong += 1;
                misses.push(format!("quoted {got} for {want:?}: {text}"));
            }
            (None, Some(want)) => misses.push(format!("no quote, want {want}: {text}")),
            (None, None) => {}
        }
    }
    let precision = right as f64 / (right + wrong).max(1) as f64;
    let recall = right as f64 / with_fix.max(1) as f64;
    (precision, recall, queries.len(), misses)
}

#[test]
fn a_past_fix_is_quoted_when_it_is_about_the_same_problem_on_the_tuning_sets() {
    let (index, fixes) = fixture_index();
    let mut queries = lines("past_ticket_queries.jsonl");
    let with_fix = queries.len();
    queries.extend(lines("past_fix_queries_tuning.jsonl"));

    let (precision, recall, n, misses) = quoting(&index, &fixes, &queries);

    println!(
        "quoting at share >= {QUOTE_SHARE} on the tuning sets ({with_fix} with a fix, {} without): \
         precision {:.1}%, recall {:.1}%; misses:\n{}",
        n - with_fix,
        precision * 100.0,
        recall * 100.0,
        misses.join("\n")
    );
    assert!(precision >= TUNING_PRECISION_FLOOR, "precision {precision:.3} below {TUNING_PRECISION_FLOOR}");
    assert!(recall >= TUNING_RECALL_FLOOR, "recall {recall:.3} below {TUNING_RECALL_FLOOR}");
}

#[test]
fn a_past_fix_is_quoted_when_it_is_about_the_same_problem_on_the_held_out_set() {
    let (index, fixes) = fixture_index();
    let queries = lines("past_fix_queries_heldout.jsonl");

    let (precision, recall, n, _misses) = quoting(&index, &fixes, &queries);

    // Held out: the figures only, never what was missed.
    println!(
        "quoting at share >= {QUOTE_SHARE} on the held-out set ({n} queries): precision {:.1}%, recall {:.1}%",
        precision * 100.0,
        recall * 100.0
    );
    assert!(precision >= HELDOUT_PRECISION_FLOOR, "precision {precision:.3} below {HELDOUT_PRECISION_FLOOR}");
    assert!(recall >= HELDOUT_RECALL_FLOOR, "recall {recall:.3} below {HELDOUT_RECALL_FLOOR}");
}

#[test]
fn the_aws_vpn_tls_handshake_fix_is_quoted_for_a_new_tls_handshake_error() {
    let (index, fixes) = fixture_index();

    let similar = index.similar("AWS VPN client keeps failing with a TLS handshake error", 3, None);

    let quoted = fix_to_quote(&similar).expect("a past fix is quoted");
    assert_eq!(fixes.get(quoted.thread.as_str()).map(String::as_str), Some("vpn-reimport-profile"));
    let fix = quoted.resolution.as_ref().expect("the quoted ticket has a fix");
    assert!(fix.expose().to_lowercase().contains("profile"), "{}", fix.expose());
}

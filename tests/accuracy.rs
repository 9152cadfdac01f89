//! Triage and follow-up accuracy on labelled, hand-written `#it` messages
//! (`tests/data/*.tsv`). Fails below the floors the README states.

use itbot::config::Settings;
use itbot::triage::{Category, Outcome, Rules};

/// The floors on the sets the rules were tuned on (the issue asks for at least 90%).
const TRIAGE_FLOOR: f64 = 0.90;
const OUTCOME_FLOOR: f64 = 0.90;
/// Both later triage sets were written as held-out sets by someone who never saw the rules, and
/// both were then used to change the rules (`triage_tuned_2.tsv` scored 83.3% when written,
/// `triage_tuned_3.tsv` 90.0%), so they are tuning sets now: their floors guard against
/// regressions, not measure unseen posts. The follow-up held-out set has not been tuned on.
const TRIAGE_TUNED_2_FLOOR: f64 = 0.93;
const TRIAGE_TUNED_3_FLOOR: f64 = 0.90;
const OUTCOME_HOLDOUT_FLOOR: f64 = 0.90;
/// The sets written on 2026-12-03 by someone who never saw the rules (`tests/data/HELDOUT.md`)
/// and never used to change them: the README's honest figures. The floor was fixed before the
/// first run, as a guard against a collapse, not fitted to the result.
const HELDOUT_FLOOR: f64 = 0.80;

fn rules() -> Rules {
    let s = Settings::shipped();
    Rules::new(&s.triage, &s.followup).expect("shipped rules compile")
}

fn rows(file: &str) -> Vec<(String, String)> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (label, text) = l.split_once('\t').unwrap_or_else(|| panic!("{file}: no tab in {l:?}"));
            (label.to_string(), text.to_string())
        })
        .collect()
}

/// Accuracy, and the misses for the report.
fn score<T: PartialEq + std::fmt::Debug>(
    rows: &[(String, String)],
    label: impl Fn(&str) -> T,
    predict: impl Fn(&str) -> T,
) -> (f64, Vec<String>) {
    let mut misses = Vec::new();
    for (l, text) in rows {
        let (want, got) = (label(l), predict(text));
        if want != got {
            misses.push(format!("want {want:?} got {got:?}: {text}"));
        }
    }
    (1.0 - misses.len() as f64 / rows.len() as f64, misses)
}

fn triage_accuracy(file: &str, min_rows: usize, floor: f64) {
    let rules = rules();
    let data = rows(file);
    assert!(data.len() >= min_rows, "the labelled set is too small");

    let (accuracy, misses) = score(
        &data,
        |l| Category::parse(l).unwrap_or_else(|| panic!("bad label {l}")),
        |t| rules.classify(t).category,
    );

    println!(
        "{file}: triage accuracy {:.1}% on {} posts; misses:\n{}",
        accuracy * 100.0,
        data.len(),
        misses.join("\n")
    );
    assert!(accuracy >= floor, "{file}: triage accuracy {accuracy:.3} below {floor}");
}

fn outcome_accuracy(file: &str, min_rows: usize, floor: f64) {
    let rules = rules();
    let data = rows(file);
    assert!(data.len() >= min_rows, "the labelled set is too small");

    let label = |l: &str| match l {
        "worked" => Outcome::Worked,
        "failed" => Outcome::Failed,
        "human" => Outcome::WantsHuman,
        "other" => Outcome::Other,
        other => panic!("bad label {other}"),
    };
    let (accuracy, misses) = score(&data, label, |t| rules.outcome(t));

    println!(
        "{file}: outcome accuracy {:.1}% on {} replies; misses:\n{}",
        accuracy * 100.0,
        data.len(),
        misses.join("\n")
    );
    assert!(accuracy >= floor, "{file}: outcome accuracy {accuracy:.3} below {floor}");
}

#[test]
fn triage_reads_at_least_ninety_percent_of_posts_right() {
    triage_accuracy("triage.tsv", 150, TRIAGE_FLOOR);
}

#[test]
fn triage_holds_up_on_a_set_it_was_tuned_on_later() {
    triage_accuracy("triage_tuned_2.tsv", 100, TRIAGE_TUNED_2_FLOOR);
}

#[test]
fn triage_holds_up_on_a_third_set_that_one_phrase_was_narrowed_for() {
    triage_accuracy("triage_tuned_3.tsv", 150, TRIAGE_TUNED_3_FLOOR);
}

#[test]
fn follow_ups_are_read_right_at_least_ninety_percent_of_the_time() {
    outcome_accuracy("outcomes.tsv", 100, OUTCOME_FLOOR);
}

#[test]
fn follow_ups_hold_up_on_replies_they_were_not_tuned_on() {
    outcome_accuracy("outcomes_holdout.tsv", 60, OUTCOME_HOLDOUT_FLOOR);
}

#[test]
fn triage_on_posts_no_rule_change_has_ever_looked_at() {
    triage_accuracy("triage_heldout.tsv", 300, HELDOUT_FLOOR);
}

#[test]
fn follow_ups_on_replies_no_rule_change_has_ever_looked_at() {
    outcome_accuracy("outcomes_heldout_2.tsv", 160, HELDOUT_FLOOR);
}

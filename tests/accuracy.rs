//! Triage and follow-up accuracy on labelled, hand-written `#it` messages (`tests/data/*.tsv`).
//! Fails below the floors the README states.
//!
//! The shipped classifiers are trained on every tuning set (`itbot::triage::training`), so
//! their score on those sets says little; the figure that does is **10-fold cross-validation**:
//! each tenth of the tuning rows is read by a model trained on the other nine tenths (the rules
//! are the shipped ones throughout). Its misses are printed. The held-out sets
//! (`kinds_heldout.tsv`, `outcomes_heldout_3.tsv`, `tests/data/HELDOUT_2.md`) are in no training
//! set and were never looked at: only their figures are printed, never their misses.

use std::collections::HashMap;

use itbot::config::Settings;
use itbot::triage::{training, Category, Outcome, Rules};

/// Cross-validated accuracy over all tuning rows, and on each tuning set.
const CV_KIND_FLOOR: f64 = 0.90;
const CV_OUTCOME_FLOOR: f64 = 0.90;
/// The shipped models on the rows they were trained on: a regression guard only.
const TRAINED_FLOOR: f64 = 0.97;
/// The held-out sets. Fixed before their one run as a guard against a collapse, not fitted to
/// the result; the target (95%) is what the README compares the figure with.
const HELDOUT_FLOOR: f64 = 0.85;
const FOLDS: usize = 10;

fn rules() -> Rules {
    let s = Settings::shipped();
    Rules::new(&s.triage, &s.followup).expect("shipped rules compile")
}

fn read(file: &str) -> String {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rows<T>(file: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<(T, String)> {
    read(file)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (label, text) = l.split_once('\t').unwrap_or_else(|| panic!("{file}: no tab in {l:?}"));
            (parse(label).unwrap_or_else(|| panic!("{file}: bad label {label}")), text.to_string())
        })
        .collect()
}

/// Accuracy, per-class precision and recall, and the misses of `(want, got, text)` triples.
fn report<T: Copy + Eq + std::hash::Hash + std::fmt::Debug>(
    name: &str,
    classes: &[T],
    results: &[(T, T, &str)],
    show_misses: bool,
) -> f64 {
    let right = results.iter().filter(|(w, g, _)| w == g).count();
    let accuracy = right as f64 / results.len().max(1) as f64;
    println!("{name}: {:.1}% of {} ({right} right)", accuracy * 100.0, results.len());
    let mut per: HashMap<T, (usize, usize, usize)> = HashMap::new(); // (true pos, predicted, actual)
    for (w, g, _) in results {
        per.entry(*g).or_default().1 += 1;
        per.entry(*w).or_default().2 += 1;
        if w == g {
            per.entry(*w).or_default().0 += 1;
        }
    }
    for c in classes {
        let (tp, predicted, actual) = per.get(c).copied().unwrap_or_default();
        if actual == 0 && predicted == 0 {
            continue;
        }
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                "  -  ".to_string()
            } else {
                format!("{:.3}", a as f64 / b as f64)
            }
        };
        println!(
            "    {c:<12?} precision {} recall {} ({actual} labelled)",
            ratio(tp, predicted),
            ratio(tp, actual)
        );
    }
    if show_misses {
        for (w, g, text) in results.iter().filter(|(w, g, _)| w != g) {
            println!("    miss: want {w:?} got {g:?}: {text}");
        }
    }
    accuracy
}

/// Out-of-fold predictions for `pool`: row `i` is predicted by a model trained without fold
/// `i % FOLDS`.
fn cross_validate<T: Copy, M>(
    pool: &[(T, &'static str)],
    train: impl Fn(&[(T, &'static str)]) -> M,
    predict: impl Fn(&M, &str) -> T,
) -> Vec<T> {
    let mut out: Vec<Option<T>> = vec![None; pool.len()];
    for fold in 0..FOLDS {
        let rest: Vec<(T, &str)> =
            pool.iter().enumerate().filter(|(i, _)| i % FOLDS != fold).map(|(_, r)| *r).collect();
        let model = train(&rest);
        for (i, (_, text)) in pool.iter().enumerate().filter(|(i, _)| i % FOLDS == fold) {
            out[i] = Some(predict(&model, text));
        }
    }
    // Every index is in exactly one fold.
    out.into_iter().map(|p| p.expect("every row predicted")).collect()
}

/// The tuning rows of each set, tagged with the set.
fn tagged<T>(
    sets: &[(&'static str, &'static str)],
    parse: impl Fn(&str) -> Option<T> + Copy,
) -> Vec<(&'static str, T, &'static str)> {
    sets.iter()
        .flat_map(|(name, text)| training::rows(text, parse).into_iter().map(move |(l, t)| (*name, l, t)))
        .collect()
}

#[test]
fn triage_cross_validated_on_the_tuning_sets() {
    let rules = rules();
    let rows = tagged(training::KINDS, Category::parse);
    let pool: Vec<(Category, &str)> = rows.iter().map(|(_, l, t)| (*l, *t)).collect();
    let predicted =
        cross_validate(&pool, |r| rules.train_kinds(r), |m, t| rules.classify_with(m, t).category);
    let all: Vec<(Category, Category, &str)> =
        pool.iter().zip(&predicted).map(|((w, t), g)| (*w, *g, *t)).collect();

    println!("== triage, 10-fold cross-validation (rules + classifier) ==");
    let accuracy = report("all tuning sets", &Category::ALL, &all, false);
    for (set, _) in training::KINDS {
        let mine: Vec<_> = rows.iter().zip(&all).filter(|((s, _, _), _)| s == set).map(|(_, r)| *r).collect();
        report(set, &Category::ALL, &mine, true);
    }
    println!("== triage, the phrase rules alone (no classifier) ==");
    let by_rules: Vec<_> = pool.iter().map(|(w, t)| (*w, rules.by_rules(t).category, *t)).collect();
    report("all tuning sets", &Category::ALL, &by_rules, false);
    println!("== triage, the classifier alone (not told what the rules said), 10-fold ==");
    let alone = self::rules().without_rule_features();
    let predicted =
        cross_validate(&pool, |r| alone.train_kinds(r), |m, t| alone.classify_with(m, t).category);
    let all: Vec<_> = pool.iter().zip(&predicted).map(|((w, t), g)| (*w, *g, *t)).collect();
    report("all tuning sets", &Category::ALL, &all, false);
    assert!(accuracy >= CV_KIND_FLOOR, "cross-validated triage accuracy {accuracy:.3} below {CV_KIND_FLOOR}");
}

#[test]
fn follow_ups_cross_validated_on_the_tuning_sets() {
    let rules = rules();
    let rows = tagged(training::OUTCOMES, Outcome::parse);
    let pool: Vec<(Outcome, &str)> = rows.iter().map(|(_, l, t)| (*l, *t)).collect();
    let predicted =
        cross_validate(&pool, |r| rules.train_outcomes(r), |m, t| rules.read_follow_up_with(m, t).0);
    let all: Vec<(Outcome, Outcome, &str)> =
        pool.iter().zip(&predicted).map(|((w, t), g)| (*w, *g, *t)).collect();

    println!("== follow-ups, 10-fold cross-validation (rules + classifier) ==");
    let accuracy = report("all tuning sets", &Outcome::ALL, &all, false);
    for (set, _) in training::OUTCOMES {
        let mine: Vec<_> = rows.iter().zip(&all).filter(|((s, _, _), _)| s == set).map(|(_, r)| *r).collect();
        report(set, &Outcome::ALL, &mine, true);
    }
    println!("== follow-ups, the phrase rules alone ==");
    let by_rules: Vec<_> = pool.iter().map(|(w, t)| (*w, rules.outcome_by_rules(t), *t)).collect();
    report("all tuning sets", &Outcome::ALL, &by_rules, false);
    println!("== follow-ups, the classifier alone (not told what the rules said), 10-fold ==");
    let alone = self::rules().without_rule_features();
    let predicted =
        cross_validate(&pool, |r| alone.train_outcomes(r), |m, t| alone.read_follow_up_with(m, t).0);
    let all: Vec<_> = pool.iter().zip(&predicted).map(|((w, t), g)| (*w, *g, *t)).collect();
    report("all tuning sets", &Outcome::ALL, &all, false);
    assert!(
        accuracy >= CV_OUTCOME_FLOOR,
        "cross-validated follow-up accuracy {accuracy:.3} below {CV_OUTCOME_FLOOR}"
    );
}

#[test]
fn the_shipped_models_read_their_own_training_sets() {
    let rules = rules();
    let started = std::time::Instant::now();
    rules.models();
    let trained = started.elapsed();
    let started = std::time::Instant::now();
    let kinds: Vec<_> =
        training::kinds().into_iter().map(|(w, t)| (w, rules.classify(t).category, t)).collect();
    println!(
        "training both models took {} ms; a triage {} µs per post (this build's profile)",
        trained.as_millis(),
        started.elapsed().as_micros() / kinds.len().max(1) as u128
    );
    let outcomes: Vec<_> = training::outcomes().into_iter().map(|(w, t)| (w, rules.outcome(t), t)).collect();
    println!("== the shipped models on the rows they were trained on (not a measure of unseen posts) ==");
    let k = report("triage, all tuning sets", &Category::ALL, &kinds, false);
    let o = report("follow-ups, all tuning sets", &Outcome::ALL, &outcomes, false);
    assert!(k >= TRAINED_FLOOR && o >= TRAINED_FLOOR, "{k:.3} / {o:.3} below {TRAINED_FLOOR}");
}

#[test]
fn heldout_triage_on_posts_no_change_has_ever_looked_at() {
    let rules = rules();
    let data = rows("kinds_heldout.tsv", Category::parse);
    assert!(data.len() >= 480, "the held-out set is too small");
    let results: Vec<_> = data.iter().map(|(w, t)| (*w, rules.classify(t).category, t.as_str())).collect();
    println!("== HELD OUT (never looked at, never trained on): figures only ==");
    let accuracy = report("kinds_heldout.tsv", &Category::ALL, &results, false);
    assert!(accuracy >= HELDOUT_FLOOR, "held-out triage accuracy {accuracy:.3} below {HELDOUT_FLOOR}");
}

#[test]
fn heldout_follow_ups_on_replies_no_change_has_ever_looked_at() {
    let rules = rules();
    let data = rows("outcomes_heldout_3.tsv", Outcome::parse);
    assert!(data.len() >= 240, "the held-out set is too small");
    let results: Vec<_> = data.iter().map(|(w, t)| (*w, rules.outcome(t), t.as_str())).collect();
    println!("== HELD OUT (never looked at, never trained on): figures only ==");
    let accuracy = report("outcomes_heldout_3.tsv", &Outcome::ALL, &results, false);
    assert!(accuracy >= HELDOUT_FLOOR, "held-out follow-up accuracy {accuracy:.3} below {HELDOUT_FLOOR}");
}

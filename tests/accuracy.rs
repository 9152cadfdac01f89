//! Triage and follow-up accuracy on labelled, hand-written `#it` messages. Fails below the floors
//! the README states.
//!
//! The shipped classifiers are trained on every labelled set in `data/triage/` (the tuning sets,
//! `itbot::triage::training`), so their score on those sets says little. Two figures do:
//!
//! - **10-fold cross-validation**: each tenth of all tuning rows is read by a model trained on the
//!   other nine tenths (a row's fold is a hash of its text, so copies share a fold);
//! - **leave one set out**: each set is read by a model trained on every other set. A set is one
//!   writer's batch, so this is the nearest thing to a fresh writer's posts.
//!
//! The rules are the shipped ones throughout. The misses of tuning sets are printed.
//!
//! The held-out sets (`tests/data/`, listed in [`HELDOUT`]) are in no training set and were never
//! looked at: only their figures and per-class precision and recall are printed, never their
//! misses. Adding one is one line in [`HELDOUT`].

use std::collections::HashMap;

use itbot::classifier::Training;
use itbot::config::Settings;
use itbot::triage::{training, Category, Outcome, Rules};

/// Which reader a labelled set is for.
// Named only by HELDOUT's lines, which are empty between two held-out sets.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reads {
    /// New posts: access / change / technical / not_ticket.
    Kinds,
    /// Follow-ups: worked / failed / human / other.
    Outcomes,
}

/// A held-out set: a file in `tests/data/`, what it labels, and the accuracy below which the
/// test fails. A floor is fixed before the set's one run, as a guard against a collapse, never
/// fitted to the result; the target (95%) is what the README compares the figure with.
struct HeldOut {
    file: &'static str,
    reads: Reads,
    floor: f64,
}

/// Every held-out set. Each is scored once, after the last change to rules or training data;
/// once a set has been used to change anything it moves to `data/triage/` as a tuning set.
const HELDOUT: &[HeldOut] = &[
    HeldOut { file: "kinds_heldout_3.tsv", reads: Reads::Kinds, floor: 0.92 },
    HeldOut { file: "outcomes_heldout_4.tsv", reads: Reads::Outcomes, floor: 0.95 },
    HeldOut { file: "kinds_heldout_5.tsv", reads: Reads::Kinds, floor: 0.92 },
    HeldOut { file: "kinds_heldout_6.tsv", reads: Reads::Kinds, floor: 0.93 },
    HeldOut { file: "outcomes_heldout_6.tsv", reads: Reads::Outcomes, floor: 0.94 },
];

/// Cross-validated accuracy over all tuning rows, 10-fold.
const CV_KIND_FLOOR: f64 = 0.90;
const CV_OUTCOME_FLOOR: f64 = 0.90;
/// Leave one set out, over all tuning rows: lower, as a set's writer draws lines of their own.
const BY_SET_FLOOR: f64 = 0.85;
/// The shipped models on the rows they were trained on: a regression guard only.
const TRAINED_FLOOR: f64 = 0.97;
const FOLDS: usize = 10;

fn rules() -> Rules {
    let s = Settings::shipped();
    Rules::new(&s.triage, &s.followup).expect("shipped rules compile")
}

fn heldout_rows<T>(file: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<(T, String)> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (label, text) = l.split_once('\t').unwrap_or_else(|| panic!("{file}: a line without a tab"));
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
            "    {c:<12?} precision {} recall {} ({actual} labelled, {predicted} predicted)",
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

/// Out-of-fold predictions: row `i` is predicted by a model trained on the rows outside its
/// group (`group(i)`). Returns `(label, prediction, text)` per row.
fn out_of_fold<T: Copy, P: Copy, M>(
    pool: &[(&'static str, T, &'static str)],
    group: impl Fn(usize) -> usize,
    train: impl Fn(&[(T, &'static str)]) -> M,
    predict: impl Fn(&M, &str) -> P,
) -> Vec<(T, P, &'static str)> {
    let mut groups: Vec<usize> = (0..pool.len()).map(&group).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut out: Vec<Option<P>> = vec![None; pool.len()];
    for g in groups {
        let rest: Vec<(T, &str)> =
            pool.iter().enumerate().filter(|(i, _)| group(*i) != g).map(|(_, (_, l, t))| (*l, *t)).collect();
        let model = train(&rest);
        for (i, (_, _, text)) in pool.iter().enumerate().filter(|(i, _)| group(*i) == g) {
            out[i] = Some(predict(&model, text));
        }
    }
    // Every row is in exactly one group.
    pool.iter().zip(out).map(|((_, w, t), g)| (*w, g.expect("every row predicted"), *t)).collect()
}

/// How often the answer is right at each level of the classifier's confidence: a calibrated
/// confidence of 0.8 is right about 80% of the time.
fn calibration<T: PartialEq>(results: &[(T, (T, f32), &str)]) {
    for (low, high) in [(0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 0.97), (0.97, 1.01)] {
        let bin: Vec<_> = results.iter().filter(|(_, (_, c), _)| *c >= low && *c < high).collect();
        let right = bin.iter().filter(|(w, (g, _), _)| w == g).count();
        let mean = bin.iter().map(|(_, (_, c), _)| f64::from(*c)).sum::<f64>() / bin.len().max(1) as f64;
        println!(
            "    confidence {low:.2}-{:.2}: {} posts ({:.1}%), {:.1}% right, mean confidence {:.1}%",
            high.min(1.0),
            bin.len(),
            100.0 * bin.len() as f64 / results.len().max(1) as f64,
            100.0 * right as f64 / bin.len().max(1) as f64,
            100.0 * mean
        );
    }
}

/// A row's fold: a hash of its lowercased text, so that a post written the same way in two sets
/// ("cool cool", "nope") is never read by a model trained on its twin.
fn fold_of(text: &str) -> usize {
    let h = text
        .trim()
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    (h % FOLDS as u64) as usize
}

/// The rows of each set, tagged with the set.
fn tagged<T>(
    sets: &[(&'static str, &'static str)],
    parse: impl Fn(&str) -> Option<T> + Copy,
) -> Vec<(&'static str, T, &'static str)> {
    sets.iter()
        .flat_map(|(name, text)| training::rows(text, parse).into_iter().map(move |(l, t)| (*name, l, t)))
        .collect()
}

/// Both cross-validations of one reader, every set's figures and misses, and the rules alone and
/// the classifier alone for comparison. Returns the two cross-validated accuracies.
fn cross_validate<T: Copy + Eq + std::hash::Hash + std::fmt::Debug, M>(
    what: &str,
    sets: &[(&'static str, &'static str)],
    classes: &[T],
    parse: impl Fn(&str) -> Option<T> + Copy,
    train: impl Fn(&Rules, &[(T, &'static str)]) -> M,
    predict: impl Fn(&Rules, &M, &str) -> (T, f32),
    by_rules: impl Fn(&Rules, &str) -> T,
) -> (f64, f64) {
    let rules = rules();
    let pool = tagged(sets, parse);
    let set_of = |i: usize| sets.iter().position(|(name, _)| *name == pool[i].0).unwrap_or(0);
    let answer = |r: &[(T, (T, f32), &'static str)]| -> Vec<(T, T, &'static str)> {
        r.iter().map(|(w, (g, _), t)| (*w, *g, *t)).collect()
    };
    let with_confidence =
        out_of_fold(&pool, |i| fold_of(pool[i].2), |r| train(&rules, r), |m, t| predict(&rules, m, t));
    let folds = answer(&with_confidence);
    let by_set = answer(&out_of_fold(&pool, set_of, |r| train(&rules, r), |m, t| predict(&rules, m, t)));

    println!("== {what}, 10-fold cross-validation (rules + classifier) ==");
    let k_fold = report("all tuning sets", classes, &folds, false);
    calibration(&with_confidence);
    println!("== {what}, leave one set out (each set read by models trained on the others) ==");
    let leave_one_out = report("all tuning sets", classes, &by_set, false);
    for (set, _) in sets {
        let mine: Vec<_> =
            pool.iter().zip(&by_set).filter(|((s, _, _), _)| s == set).map(|(_, r)| *r).collect();
        report(set, classes, &mine, true);
    }
    println!("== {what}, the phrase rules alone (no classifier) ==");
    let alone: Vec<_> = pool.iter().map(|(_, w, t)| (*w, by_rules(&rules, t), *t)).collect();
    report("all tuning sets", classes, &alone, false);
    println!("== {what}, the classifier alone (not told what the rules said), 10-fold ==");
    let without = self::rules().without_rule_features();
    let alone =
        out_of_fold(&pool, |i| fold_of(pool[i].2), |r| train(&without, r), |m, t| predict(&without, m, t));
    report("all tuning sets", classes, &answer(&alone), false);
    (k_fold, leave_one_out)
}

#[test]
fn triage_cross_validated_on_the_tuning_sets() {
    let (k_fold, by_set) = cross_validate(
        "triage",
        training::KINDS,
        &Category::ALL,
        Category::parse,
        |r, rows| r.train_kinds(rows),
        |r, m, t| {
            let t = r.classify_with(m, t);
            (t.category, t.confidence)
        },
        |r, t| r.by_rules(t).category,
    );
    assert!(k_fold >= CV_KIND_FLOOR, "10-fold triage accuracy {k_fold:.3} below {CV_KIND_FLOOR}");
    assert!(by_set >= BY_SET_FLOOR, "leave-one-set-out triage accuracy {by_set:.3} below {BY_SET_FLOOR}");
}

#[test]
fn follow_ups_cross_validated_on_the_tuning_sets() {
    let (k_fold, by_set) = cross_validate(
        "follow-ups",
        training::OUTCOMES,
        &Outcome::ALL,
        Outcome::parse,
        |r, rows| r.train_outcomes(rows),
        |r, m, t| r.read_follow_up_with(m, t),
        |r, t| r.outcome_by_rules(t),
    );
    assert!(k_fold >= CV_OUTCOME_FLOOR, "10-fold follow-up accuracy {k_fold:.3} below {CV_OUTCOME_FLOOR}");
    assert!(by_set >= BY_SET_FLOOR, "leave-one-set-out follow-up accuracy {by_set:.3} below {BY_SET_FLOOR}");
}

#[test]
fn the_shipped_models_read_their_own_training_sets() {
    let rules = rules();
    let started = std::time::Instant::now();
    let models = rules.models();
    let trained = started.elapsed();
    let started = std::time::Instant::now();
    let kinds: Vec<_> =
        training::kinds().into_iter().map(|(w, t)| (w, rules.classify(t).category, t)).collect();
    println!(
        "training both models took {} ms ({} + {} KiB of weights and vocabulary); a triage {} µs per post \
         (this build's profile)",
        trained.as_millis(),
        models.kinds.footprint_bytes() / 1024,
        models.outcomes.footprint_bytes() / 1024,
        started.elapsed().as_micros() / kinds.len().max(1) as u128
    );
    let outcomes: Vec<_> = training::outcomes().into_iter().map(|(w, t)| (w, rules.outcome(t), t)).collect();
    println!("== the shipped models on the rows they were trained on (not a measure of unseen posts) ==");
    let k = report("triage, all tuning sets", &Category::ALL, &kinds, false);
    let o = report("follow-ups, all tuning sets", &Outcome::ALL, &outcomes, false);
    assert!(k >= TRAINED_FLOOR && o >= TRAINED_FLOOR, "{k:.3} / {o:.3} below {TRAINED_FLOOR}");
}

#[test]
fn every_labelled_set_in_tests_data_is_held_out_and_scored() {
    // A set dropped into tests/data without a line in HELDOUT would never be scored, and a set
    // that is also trained on is not held out.
    let dir = format!("{}/tests/data", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tsv"))
        .collect();
    files.sort();
    for file in &files {
        assert!(HELDOUT.iter().any(|h| h.file == file), "tests/data/{file} is in no line of HELDOUT");
    }
    let trained: Vec<&str> =
        training::KINDS.iter().chain(training::OUTCOMES).map(|(name, _)| *name).collect();
    for h in HELDOUT {
        assert!(!trained.contains(&h.file), "{} is held out and trained on", h.file);
    }
}

#[test]
fn heldout_sets_on_posts_no_change_has_ever_looked_at() {
    let rules = rules();
    for set in HELDOUT {
        println!("== HELD OUT (never looked at, never trained on): figures only ==");
        let accuracy = match set.reads {
            Reads::Kinds => {
                let data = heldout_rows(set.file, Category::parse);
                let results: Vec<_> =
                    data.iter().map(|(w, t)| (*w, rules.classify(t).category, t.as_str())).collect();
                report(set.file, &Category::ALL, &results, false)
            }
            Reads::Outcomes => {
                let data = heldout_rows(set.file, Outcome::parse);
                let results: Vec<_> = data.iter().map(|(w, t)| (*w, rules.outcome(t), t.as_str())).collect();
                report(set.file, &Outcome::ALL, &results, false)
            }
        };
        assert!(accuracy >= set.floor, "held-out accuracy on {} {accuracy:.3} below {}", set.file, set.floor);
    }
}

/// The training settings tried when the defaults were chosen, each cross-validated both ways
/// (slow: `cargo test --test accuracy -- --ignored --nocapture`).
#[test]
#[ignore]
fn training_settings_compared_by_cross_validation() {
    // Averaging the weights over every step (averaged SGD) was tried too: no better (95.5% /
    // 94.3% / 96.5% / 96.2% with the chosen settings), so it is not kept.
    let chosen = Training::default();
    let tried = [
        chosen,
        Training { epochs: 40, learning_rate: 1.0, l2: 1e-4, min_count: 1 },
        Training { learning_rate: 1.0, ..chosen },
        Training { learning_rate: 4.0, ..chosen },
        Training { learning_rate: 3.0, l2: 2e-3, ..chosen },
        Training { l2: 3e-3, ..chosen },
        Training { l2: 1e-4, ..chosen },
        Training { epochs: 20, ..chosen },
        Training { epochs: 60, ..chosen },
        Training { min_count: 2, ..chosen },
    ];
    let kinds = tagged(training::KINDS, Category::parse);
    let outcomes = tagged(training::OUTCOMES, Outcome::parse);
    let score = |t: Training| {
        let rules = rules().with_training(t);
        let kind = |pool: &[(&'static str, Category, &'static str)], group: &dyn Fn(usize) -> usize| {
            let r =
                out_of_fold(pool, group, |r| rules.train_kinds(r), |m, t| rules.classify_with(m, t).category);
            r.iter().filter(|(w, g, _)| w == g).count() as f64 / r.len() as f64
        };
        let outcome = |pool: &[(&'static str, Outcome, &'static str)], group: &dyn Fn(usize) -> usize| {
            let r = out_of_fold(
                pool,
                group,
                |r| rules.train_outcomes(r),
                |m, t| rules.read_follow_up_with(m, t).0,
            );
            r.iter().filter(|(w, g, _)| w == g).count() as f64 / r.len() as f64
        };
        let set_index = |sets: &[(&'static str, &'static str)], name: &str| {
            sets.iter().position(|(n, _)| *n == name).unwrap_or(0)
        };
        [
            kind(&kinds, &|i| fold_of(kinds[i].2)),
            kind(&kinds, &|i| set_index(training::KINDS, kinds[i].0)),
            outcome(&outcomes, &|i| fold_of(outcomes[i].2)),
            outcome(&outcomes, &|i| set_index(training::OUTCOMES, outcomes[i].0)),
        ]
    };
    let results: Vec<_> = tried.iter().map(|t| (*t, score(*t))).collect();
    println!("triage 10-fold / by set, follow-ups 10-fold / by set");
    for (t, [a, b, c, d]) in results {
        println!("{:.1}% {:.1}%  {:.1}% {:.1}%  {t:?}", a * 100.0, b * 100.0, c * 100.0, d * 100.0);
    }
}

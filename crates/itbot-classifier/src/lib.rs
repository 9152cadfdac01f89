//! A small text classifier: multinomial logistic regression over words, crude stems, word
//! pairs, character trigrams and a few shape features (a question mark, the length), trained in the process
//! from labelled examples (the triage and follow-up sets embedded in the binary, see
//! itbot's `triage` module). Training takes a fraction of a second, once per process; a prediction takes
//! microseconds. Pure: no I/O, deterministic (a fixed seed orders the examples).

use std::collections::HashMap;

/// How training runs. The defaults were chosen by cross-validation on the tuning sets
/// (`cargo test --test accuracy -- --nocapture` prints the folds' figures).
#[derive(Debug, Clone, Copy)]
pub struct Training {
    pub epochs: usize,
    pub learning_rate: f32,
    /// Shrinks the weights a feature touches each time it is seen (L2).
    pub l2: f32,
    /// Features seen in fewer training examples than this are dropped.
    pub min_count: usize,
}

impl Default for Training {
    fn default() -> Training {
        Training { epochs: 40, learning_rate: 2.0, l2: 1e-3, min_count: 1 }
    }
}

/// A trained model: one weight per (feature, class), one bias per class.
#[derive(Debug, Clone)]
pub struct Model {
    classes: usize,
    vocab: HashMap<String, usize>,
    names: Vec<String>,
    weights: Vec<f32>,
    bias: Vec<f32>,
}

/// One feature's pull towards a class, for explanations.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    pub feature: String,
    pub weight: f32,
}

impl Model {
    /// Trains on `(class, features)` pairs; classes are `0..classes`. The examples are taken one
    /// at a time and their features kept as numbers, so training never holds every example's
    /// feature strings at once (tens of MiB for the shipped sets).
    pub fn train(
        classes: usize,
        examples: impl IntoIterator<Item = (usize, Vec<String>)>,
        t: Training,
    ) -> Model {
        // Generic code is compiled in the caller's crate, unoptimised in a debug build: the work
        // is in the non-generic `Examples`, compiled (and optimised) here.
        let mut set = Examples::default();
        for (class, features) in examples {
            set.add(class, features);
        }
        set.train(classes, t)
    }
    /// The known features' indices, each once.
    fn encode(&self, features: &[String]) -> Vec<usize> {
        let mut idx: Vec<usize> = features.iter().filter_map(|f| self.vocab.get(f).copied()).collect();
        idx.sort_unstable();
        idx.dedup();
        idx
    }

    fn scores_into(&self, idx: &[usize], out: &mut [f32]) {
        let x = feature_value(idx.len());
        out.copy_from_slice(&self.bias);
        for &f in idx {
            for (k, o) in out.iter_mut().enumerate() {
                *o += self.weights[f * self.classes + k] * x;
            }
        }
    }

    /// The probability of each class.
    pub fn probabilities(&self, features: &[String]) -> Vec<f32> {
        let mut p = vec![0.0; self.classes];
        self.scores_into(&self.encode(features), &mut p);
        softmax(&mut p);
        p
    }

    /// Roughly the heap the model holds: weights, biases and the vocabulary twice (the map and
    /// the names), with a map entry's overhead.
    pub fn footprint_bytes(&self) -> usize {
        let floats = (self.weights.len() + self.bias.len()) * std::mem::size_of::<f32>();
        let names: usize = self.names.iter().map(|n| n.len() + std::mem::size_of::<String>()).sum();
        let map = self.vocab.len() * (std::mem::size_of::<(String, usize)>() + 1);
        floats + 2 * names + map
    }

    /// How many of `features` starting with `prefix` the model knows (was trained on).
    pub fn known(&self, features: &[String], prefix: &str) -> usize {
        features.iter().filter(|f| f.starts_with(prefix) && self.vocab.contains_key(*f)).count()
    }

    /// The features that pull hardest towards `class` against the others, strongest first.
    pub fn pulls(&self, features: &[String], class: usize, n: usize) -> Vec<Pull> {
        let idx = self.encode(features);
        let x = feature_value(idx.len());
        let mut pulls: Vec<Pull> = idx
            .iter()
            .map(|&f| {
                let row = &self.weights[f * self.classes..(f + 1) * self.classes];
                let others = row.iter().enumerate().filter(|(k, _)| *k != class).map(|(_, w)| *w);
                let rest = others.sum::<f32>() / (self.classes.max(2) - 1) as f32;
                Pull { feature: self.names[f].clone(), weight: (row[class] - rest) * x }
            })
            .filter(|p| p.weight > 0.0)
            .collect();
        pulls.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        pulls.truncate(n);
        pulls
    }
}

/// Examples being gathered for training: every feature seen gets a number, and each example
/// keeps its features' numbers, once each.
#[derive(Default)]
struct Examples {
    ids: HashMap<String, u32>,
    seen: Vec<String>,
    rows: Vec<(usize, Vec<u32>)>,
}

impl Examples {
    fn add(&mut self, class: usize, features: Vec<String>) {
        let mut row: Vec<u32> = Vec::with_capacity(features.len());
        for f in features {
            let id = match self.ids.get(&f) {
                Some(&id) => id,
                None => {
                    let id = self.seen.len() as u32;
                    self.ids.insert(f.clone(), id);
                    self.seen.push(f);
                    id
                }
            };
            row.push(id);
        }
        row.sort_unstable();
        row.dedup();
        self.rows.push((class, row));
    }

    fn train(self, classes: usize, t: Training) -> Model {
        let Examples { ids, mut seen, rows } = self;
        drop(ids);
        // In how many examples each feature appears; the vocabulary is the frequent enough ones,
        // in name order.
        let mut counts = vec![0usize; seen.len()];
        for (_, row) in &rows {
            for &id in row {
                counts[id as usize] += 1;
            }
        }
        let mut kept: Vec<u32> =
            (0..seen.len() as u32).filter(|&id| counts[id as usize] >= t.min_count).collect();
        kept.sort_unstable_by(|a, b| seen[*a as usize].cmp(&seen[*b as usize]));
        let mut index = vec![u32::MAX; seen.len()];
        for (i, &id) in kept.iter().enumerate() {
            index[id as usize] = i as u32;
        }
        let names: Vec<String> = kept.iter().map(|&id| std::mem::take(&mut seen[id as usize])).collect();
        drop(seen);
        let vocab: HashMap<String, usize> = names.iter().cloned().enumerate().map(|(i, s)| (s, i)).collect();
        let mut model = Model {
            classes,
            weights: vec![0.0; names.len() * classes],
            bias: vec![0.0; classes],
            vocab,
            names,
        };
        let encoded: Vec<(usize, Vec<usize>)> = rows
            .into_iter()
            .filter(|(c, _)| *c < classes)
            .map(|(c, row)| {
                let mut idx: Vec<usize> = row
                    .into_iter()
                    .map(|id| index[id as usize])
                    .filter(|&i| i != u32::MAX)
                    .map(|i| i as usize)
                    .collect();
                idx.sort_unstable();
                (c, idx)
            })
            .collect();
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        let mut rng = fastrand::Rng::with_seed(17);
        let mut p = vec![0.0f32; classes];
        for epoch in 0..t.epochs {
            rng.shuffle(&mut order);
            let lr = t.learning_rate / (1.0 + epoch as f32 * 0.2);
            for &i in &order {
                let (class, ref idx) = encoded[i];
                let x = feature_value(idx.len());
                model.scores_into(idx, &mut p);
                softmax(&mut p);
                // The gradient of each class's score, then one pass over the features' rows.
                for (k, pk) in p.iter_mut().enumerate() {
                    *pk -= if k == class { 1.0 } else { 0.0 };
                    model.bias[k] -= lr * *pk;
                }
                for &f in idx {
                    for (w, g) in model.weights[f * classes..(f + 1) * classes].iter_mut().zip(&p) {
                        *w -= lr * (g * x + t.l2 * *w);
                    }
                }
            }
        }
        model
    }
}

/// A crude stem: common English endings cut ("installing", "installed" → "install").
fn stem(w: &str) -> &str {
    for suffix in ["ing", "ed", "es", "s", "ly"] {
        if let Some(s) = w.strip_suffix(suffix) {
            if s.chars().count() >= 3 {
                return s;
            }
        }
    }
    w
}

/// Each present feature counts 1/√n, so long and short messages weigh alike.
fn feature_value(n: usize) -> f32 {
    1.0 / (n.max(1) as f32).sqrt()
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in v.iter_mut() {
        *x /= sum;
    }
}

/// The features of a normalised text (`triage::normalise`) and its raw form: words, word pairs
/// (with the start and end marked), character trigrams of each word (typos share most of them),
/// and shape: a question, the length in words, emoji only.
pub fn text_features(norm: &str, raw: &str) -> Vec<String> {
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    let mut f = Vec::with_capacity(words.len() * 8 + 4);
    let mut prev = "^";
    for w in &words {
        f.push(format!("w:{w}"));
        f.push(format!("t:{}", stem(w)));
        f.push(format!("b:{prev} {w}"));
        prev = w;
        let padded: Vec<char> = format!("<{w}>").chars().collect();
        if padded.len() > 4 {
            for g in padded.windows(3) {
                f.push(format!("c:{}", g.iter().collect::<String>()));
            }
        }
    }
    f.push(format!("b:{prev} $"));
    // Emoji and other symbols say a lot in Slack (🙏, 👍, 🔥), and normalising drops them.
    for c in raw.chars().filter(|c| !(c.is_alphanumeric() || c.is_ascii() || c.is_whitespace())) {
        f.push(format!("e:{c}"));
    }
    if raw.contains('?') {
        f.push("s:question".into());
    }
    f.push(
        match words.len() {
            0 => "s:no words",
            1 => "s:1 word",
            2..=3 => "s:2-3 words",
            4..=7 => "s:4-7 words",
            8..=15 => "s:8-15 words",
            _ => "s:16+ words",
        }
        .into(),
    );
    if raw.contains("<@") {
        f.push("s:mention".into());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(class: usize, text: &str) -> (usize, Vec<String>) {
        (class, text_features(text, text))
    }

    #[test]
    fn it_learns_to_tell_two_small_classes_apart() {
        let data = vec![
            ex(0, "thanks all"),
            ex(0, "thank you so much"),
            ex(0, "cheers thanks"),
            ex(1, "vpn is broken"),
            ex(1, "my laptop is broken"),
            ex(1, "printer broken again"),
        ];
        let m = Model::train(2, data, Training::default());
        let p = m.probabilities(&text_features("thanks team", "thanks team"));
        assert!(p[0] > 0.7, "{p:?}");
        let p = m.probabilities(&text_features("wifi is broken", "wifi is broken"));
        assert!(p[1] > 0.7, "{p:?}");
        let pulls = m.pulls(&text_features("wifi is broken", "wifi is broken"), 1, 10);
        assert!(pulls.iter().any(|p| p.feature == "w:broken"), "{pulls:?}");
        assert!(pulls.windows(2).all(|w| w[0].weight >= w[1].weight));
    }

    #[test]
    fn unknown_or_empty_text_gives_probabilities_that_sum_to_one() {
        let m = Model::train(3, [ex(0, "a b"), ex(1, "c d"), ex(2, "e f")], Training::default());
        for text in ["", "zzz", "🙂"] {
            let p = m.probabilities(&text_features(text, text));
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
        }
    }
}

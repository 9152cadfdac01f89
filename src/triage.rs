//! Triage of a new post (access request, change request, technical issue, or not a ticket at
//! all) and of a follow-up (worked, failed, wants a human, other). Two readers work together:
//!
//! - the phrase rules of `[triage]` and `[followup]` in the config (operators edit them), which
//!   read intent, not single words: "I need access to Figma" asks for access, while "I can't
//!   access Figma" reports a problem;
//! - a small classifier ([`crate::classifier`]) trained once per process on the labelled posts
//!   and replies embedded from `data/triage/` (the tuning sets, never the held-out ones), whose
//!   features are the message's words and character trigrams *and what the rules said*, so it
//!   learns when to trust the rules and when the wording says more.
//!
//! The classifier's probability of its answer is the confidence; below `[triage]
//! min_confidence` the result is unsure (the LLM settles it when configured). Pure functions,
//! no I/O.

use std::sync::{Arc, Mutex, OnceLock};

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use crate::classifier::{text_features, Model, Pull, Training};
use crate::config::{FollowUpSettings, TriageSettings};

/// What kind of ticket a new post is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Asks to be given access to an app, system or data.
    Access,
    /// Asks IT to change something (groups, settings, accounts, equipment).
    Change,
    /// Something is broken, or a how-to question.
    Technical,
    /// Not a request for help: thanks, an FYI, chatter, a question about who or where.
    NotTicket,
}

impl Category {
    /// Every kind, in the classifier's order.
    pub const ALL: [Category; 4] =
        [Category::Access, Category::Change, Category::Technical, Category::NotTicket];

    pub fn parse(s: &str) -> Option<Category> {
        match s.trim().to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
            "access" => Some(Category::Access),
            "change" => Some(Category::Change),
            "technical" => Some(Category::Technical),
            "not_ticket" | "notticket" => Some(Category::NotTicket),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Access => "access",
            Category::Change => "change",
            Category::Technical => "technical",
            Category::NotTicket => "not_ticket",
        }
    }

    /// A ticket: something for IT to do (everything but [`Category::NotTicket`]).
    pub fn is_ticket(self) -> bool {
        self != Category::NotTicket
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The triage result: the kind, the phrases the rules found (for `itbot explain` and logs),
/// what the rules alone said, and how sure the classifier is. Unsure results may be settled by
/// the LLM, and are never taken for "not a ticket".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Triage {
    pub category: Category,
    pub matched: Vec<String>,
    /// The confidence reached `[triage] min_confidence`.
    pub confident: bool,
    /// The classifier's probability of `category` (0..1).
    pub confidence: f32,
    /// What the phrase rules alone said.
    pub by_rules: Category,
}

/// How a follow-up from the requester went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Worked,
    Failed,
    WantsHuman,
    Other,
}

impl Outcome {
    /// Every outcome, in the classifier's order.
    pub const ALL: [Outcome; 4] = [Outcome::Worked, Outcome::Failed, Outcome::WantsHuman, Outcome::Other];

    pub fn parse(s: &str) -> Option<Outcome> {
        match s.trim() {
            "worked" => Some(Outcome::Worked),
            "failed" => Some(Outcome::Failed),
            "human" => Some(Outcome::WantsHuman),
            "other" => Some(Outcome::Other),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Worked => "worked",
            Outcome::Failed => "failed",
            Outcome::WantsHuman => "human",
            Outcome::Other => "other",
        }
    }
}

/// One list of phrases, compiled.
#[derive(Debug, Clone)]
struct PhraseSet {
    phrases: Vec<String>,
    /// Phrases of words, matched on word boundaries in normalised text.
    words: RegexSet,
    word_index: Vec<usize>,
    /// Phrases with symbols or emoji (`:+1:`, `👍`), matched as substrings of the lowercased text.
    symbols: Vec<usize>,
}

impl PhraseSet {
    fn new(phrases: &[String]) -> Result<PhraseSet, regex::Error> {
        let mut patterns = Vec::new();
        let mut word_index = Vec::new();
        let mut symbols = Vec::new();
        for (i, p) in phrases.iter().enumerate() {
            let p = p.trim().to_lowercase();
            if p.chars().any(|c| !(c.is_alphanumeric() || c == '\'' || c == ' ' || c == '*')) {
                symbols.push(i);
                continue;
            }
            // Matched against " text " (padded): each word is " word"; "*" is up to five words.
            let mut pattern = String::new();
            for w in p.split_whitespace() {
                if w == "*" {
                    pattern.push_str(r"(?: \S+){0,5}");
                } else {
                    let w = normalise(w);
                    if !w.is_empty() {
                        pattern.push(' ');
                        pattern.push_str(&regex::escape(&w));
                    }
                }
            }
            patterns.push(format!("{pattern} "));
            word_index.push(i);
        }
        Ok(PhraseSet {
            phrases: phrases.iter().map(|p| p.trim().to_lowercase()).collect(),
            words: RegexSet::new(&patterns)?,
            word_index,
            symbols,
        })
    }

    /// The phrases found in a message (`norm` normalised, `lower` just lowercased).
    fn matches(&self, norm: &str, lower: &str) -> Vec<&str> {
        let padded = format!(" {norm} ");
        let mut found: Vec<&str> = self
            .words
            .matches(&padded)
            .into_iter()
            .map(|i| self.phrases[self.word_index[i]].as_str())
            .collect();
        found.extend(self.symbols.iter().map(|&i| self.phrases[i].as_str()).filter(|p| lower.contains(p)));
        found
    }
}

/// The compiled rules of `[triage]` and `[followup]`.
#[derive(Debug, Clone)]
pub struct Rules {
    problem: PhraseSet,
    access: PhraseSet,
    change: PhraseSet,
    request: PhraseSet,
    chatter: PhraseSet,
    precedence: Vec<Category>,
    min_confidence: f32,
    human: PhraseSet,
    failed: PhraseSet,
    worked: PhraseSet,
    trying: PhraseSet,
    short_worked: Vec<String>,
    short_failed: Vec<String>,
    /// Identifies the phrase lists, so rules built from the same config share trained models.
    key: u64,
    models: Arc<OnceLock<Arc<Models>>>,
    /// The classifiers see what the rules said (off only to measure the classifier alone).
    rule_features: bool,
    /// How the classifiers are trained (the defaults, chosen by cross-validation).
    training: Training,
}

/// The two classifiers, trained on the embedded sets with these rules' answers as features.
#[derive(Debug)]
pub struct Models {
    pub kinds: Model,
    pub outcomes: Model,
}

/// Splits a reply into clauses ("thanks, but it's still broken" → "thanks", "it's still broken").
static CLAUSES: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    // A constant pattern, checked by the tests.
    Regex::new(r"(?i)\bbut\b|\bhowever\b|\bthough\b|\balthough\b|[.!?;]+\s|\n")
        .expect("clause pattern compiles")
});

impl Rules {
    pub fn new(triage: &TriageSettings, followup: &FollowUpSettings) -> Result<Rules, regex::Error> {
        Ok(Rules {
            problem: PhraseSet::new(&triage.problem)?,
            access: PhraseSet::new(&triage.access)?,
            change: PhraseSet::new(&triage.change)?,
            request: PhraseSet::new(&triage.request)?,
            chatter: PhraseSet::new(&triage.chatter)?,
            precedence: triage.precedence.iter().filter_map(|c| Category::parse(c)).collect(),
            min_confidence: triage.min_confidence as f32,
            human: PhraseSet::new(&followup.human)?,
            failed: PhraseSet::new(&followup.failed)?,
            worked: PhraseSet::new(&followup.worked)?,
            trying: PhraseSet::new(&followup.trying)?,
            short_worked: followup.short_worked.iter().map(|s| normalise(s)).collect(),
            short_failed: followup.short_failed.iter().map(|s| normalise(s)).collect(),
            key: phrase_key(triage, followup),
            models: Arc::new(OnceLock::new()),
            rule_features: true,
            training: Training::default(),
        })
    }

    /// The trained classifiers (trained at first use, once per process and phrase lists).
    pub fn models(&self) -> &Models {
        self.models.get_or_init(|| {
            static CACHE: Mutex<Vec<(u64, Arc<Models>)>> = Mutex::new(Vec::new());
            // A poisoned cache only means another thread panicked while training: train again.
            let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, m)) = cache.iter().find(|(k, _)| *k == self.key) {
                return m.clone();
            }
            let models = Arc::new(Models {
                kinds: self.train_kinds(&training::kinds()),
                outcomes: self.train_outcomes(&training::outcomes()),
            });
            cache.push((self.key, models.clone()));
            models
        })
    }

    /// Trains a kind classifier on `(kind, post)` rows.
    pub fn train_kinds(&self, rows: &[(Category, &str)]) -> Model {
        let examples = rows.iter().map(|(c, t)| (c.index(), self.kind_features(t, &self.by_rules(t))));
        Model::train(Category::ALL.len(), examples, self.training)
    }

    /// Trains a follow-up classifier on `(outcome, reply)` rows.
    pub fn train_outcomes(&self, rows: &[(Outcome, &str)]) -> Model {
        let examples =
            rows.iter().map(|(o, t)| (o.index(), self.outcome_features(t, self.outcome_by_rules(t))));
        Model::train(Outcome::ALL.len(), examples, self.training)
    }

    fn kind_features(&self, text: &str, rules: &Triage) -> Vec<String> {
        let stripped = strip_slack_markup(text);
        let mut f = text_features(&normalise(&stripped), text);
        if self.rule_features {
            f.push(format!("r:{}", rules.category.as_str()));
            f.push(format!(
                "r:{} {}",
                rules.category.as_str(),
                if rules.confident { "sure" } else { "unsure" }
            ));
            f.extend(rules.matched.iter().map(|m| format!("p:{m}")));
        }
        f
    }

    fn outcome_features(&self, text: &str, rules: Outcome) -> Vec<String> {
        let stripped = strip_slack_markup(text);
        let mut f = text_features(&normalise(&stripped), text);
        if self.rule_features {
            f.push(format!("r:{}", rules.as_str()));
        }
        f
    }

    /// The same rules whose classifiers do not see what the rules said: the classifier alone,
    /// for measuring what each part adds (`tests/accuracy.rs`).
    pub fn without_rule_features(mut self) -> Rules {
        self.rule_features = false;
        self.key ^= 0x5eed;
        self.models = Arc::new(OnceLock::new());
        self
    }

    /// The same rules with classifiers trained another way (for choosing the defaults by
    /// cross-validation, `tests/accuracy.rs`); `train_kinds` and `train_outcomes` use it.
    pub fn with_training(mut self, training: Training) -> Rules {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.key, format!("{training:?}")).hash(&mut h);
        self.key = h.finish();
        self.training = training;
        self.models = Arc::new(OnceLock::new());
        self
    }

    /// Classifies a new post: the rules, then the classifier with the rules' answer as features.
    pub fn classify(&self, text: &str) -> Triage {
        self.classify_with(&self.models().kinds, text)
    }

    /// Classifies a new post with `model` (cross-validation trains its own).
    pub fn classify_with(&self, model: &Model, text: &str) -> Triage {
        let rules = self.by_rules(text);
        let features = self.kind_features(text, &rules);
        let p = model.probabilities(&features);
        let best = (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0);
        let mut category = Category::ALL.get(best).copied().unwrap_or(Category::Technical);
        let confidence = p.get(best).copied().unwrap_or(0.0);
        // Words the classifier never saw ("SSO", a typo) give it nothing to go on but the
        // shape of the post: never enough to call it "not a ticket".
        let known_words = model.known(&features, "w:") + model.known(&features, "e:") > 0;
        let confident = confidence >= self.min_confidence && (known_words || category != Category::NotTicket);
        if category == Category::NotTicket && !confident {
            // An unsure post is a ticket: a person asking for help must not be ignored.
            let ticket = (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(2);
            category = Category::ALL[ticket];
        }
        let confidence = p.get(category.index()).copied().unwrap_or(confidence);
        Triage { category, matched: rules.matched, confident, confidence, by_rules: rules.category }
    }

    /// The features that pulled the classifier hardest towards `category`, strongest first.
    pub fn kind_reasons(&self, text: &str, category: Category, n: usize) -> Vec<Pull> {
        let rules = self.by_rules(text);
        self.models().kinds.pulls(&self.kind_features(text, &rules), category.index(), n)
    }

    /// The classifier's probability of each kind, in [`Category::ALL`] order.
    pub fn kind_probabilities(&self, text: &str) -> Vec<f32> {
        let rules = self.by_rules(text);
        self.models().kinds.probabilities(&self.kind_features(text, &rules))
    }

    /// What the phrase rules alone say about a new post. Each kind scores one point per phrase
    /// found; a request form ("can I get", "please") adds a point to access and change. The
    /// problem score must beat the best request score to make a request a technical issue ("I
    /// need a new laptop, mine can't run Docker" is still a change request); on a tie, an
    /// explicit request form wins, and without one the problem does. `precedence` settles
    /// access against change. Chatter ("thanks all", "FYI", "who approves") is not a ticket
    /// when nothing else matched. `confidence` is 1 when sure, 0.5 when not.
    pub fn by_rules(&self, text: &str) -> Triage {
        let lower = text.to_lowercase();
        let norm = normalise(&strip_slack_markup(text));
        let problem = self.problem.matches(&norm, &lower);
        let access = self.access.matches(&norm, &lower);
        let change = self.change.matches(&norm, &lower);
        let request = self.request.matches(&norm, &lower);
        let chatter = self.chatter.matches(&norm, &lower);
        let triage = |category, matched: Vec<String>, confident| Triage {
            category,
            matched,
            confident,
            confidence: if confident { 1.0 } else { 0.5 },
            by_rules: category,
        };
        let rank = |c: Category| self.precedence.iter().position(|p| *p == c).unwrap_or(usize::MAX);
        let (req_category, req_hits) = match (access.len(), change.len()) {
            (0, 0) => (None, vec![]),
            (a, c) if a > c || (a == c && rank(Category::Access) < rank(Category::Change)) => {
                (Some(Category::Access), access.clone())
            }
            _ => (Some(Category::Change), change.clone()),
        };
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let Some(req_category) = req_category else {
            if problem.is_empty() && !chatter.is_empty() {
                return triage(Category::NotTicket, owned(&chatter), request.is_empty());
            }
            // Nothing asked for: a problem or a question. Unsure when nothing matched at all.
            let confident = !problem.is_empty();
            let mut matched = owned(&problem);
            matched.extend(owned(&chatter));
            return triage(Category::Technical, matched, confident);
        };
        let req_score = req_hits.len() + request.len();
        let technical = problem.len() > req_score || (problem.len() == req_score && request.is_empty());
        if technical {
            return triage(Category::Technical, owned(&problem), true);
        }
        let mut matched = owned(&req_hits);
        matched.extend(owned(&request));
        // Unsure when access and change tie, or a problem nearly outweighs the request.
        let confident = access.len() != change.len() && problem.len() + 1 < req_score;
        triage(req_category, matched, confident)
    }

    /// Reads a follow-up: the rules, then the classifier with the rules' answer as a feature.
    pub fn outcome(&self, text: &str) -> Outcome {
        self.read_follow_up(text).0
    }

    /// A follow-up's outcome and the classifier's probability of it.
    pub fn read_follow_up(&self, text: &str) -> (Outcome, f32) {
        self.read_follow_up_with(&self.models().outcomes, text)
    }

    /// Reads a follow-up with `model` (cross-validation trains its own).
    pub fn read_follow_up_with(&self, model: &Model, text: &str) -> (Outcome, f32) {
        let rules = self.outcome_by_rules(text);
        let p = model.probabilities(&self.outcome_features(text, rules));
        let best = (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(3);
        let confidence = p.get(best).copied().unwrap_or(0.0);
        if confidence < self.min_confidence {
            // An unsure reading is left to the rules, which the operator can read and edit:
            // closing a thread on a misread "it worked" leaves someone without help, and a
            // misread "failed" counts an attempt that was not one. Cross-validated, the rules
            // read these replies as well as the classifier does (75% against 70% of 20).
            return (rules, p.get(rules.index()).copied().unwrap_or(0.0));
        }
        (Outcome::ALL.get(best).copied().unwrap_or(Outcome::Other), confidence)
    }

    /// What the phrase rules alone say about a follow-up. A wish for a person anywhere wins;
    /// otherwise the last clause that says anything decides ("didn't work at first, but after
    /// a reboot it's fine" worked).
    pub fn outcome_by_rules(&self, text: &str) -> Outcome {
        let stripped = strip_slack_markup(text);
        let lower = stripped.to_lowercase();
        let norm = normalise(&stripped);
        if !self.human.matches(&norm, &lower).is_empty() {
            return Outcome::WantsHuman;
        }
        if self.short_worked.contains(&norm) {
            return Outcome::Worked;
        }
        if self.short_failed.contains(&norm) {
            return Outcome::Failed;
        }
        for clause in CLAUSES.split(&lower).collect::<Vec<_>>().into_iter().rev() {
            let n = normalise(clause);
            if !self.trying.matches(&n, clause).is_empty() {
                return Outcome::Other;
            }
            if !self.failed.matches(&n, clause).is_empty() {
                return Outcome::Failed;
            }
            if !self.worked.matches(&n, clause).is_empty() {
                return Outcome::Worked;
            }
        }
        Outcome::Other
    }
}

/// A hash of the phrase lists: rules built from the same lists share one trained model.
fn phrase_key(triage: &TriageSettings, followup: &FollowUpSettings) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&triage.problem, &triage.access, &triage.change, &triage.request, &triage.chatter, &triage.precedence)
        .hash(&mut h);
    (&followup.human, &followup.failed, &followup.worked, &followup.trying).hash(&mut h);
    (&followup.short_worked, &followup.short_failed).hash(&mut h);
    h.finish()
}

/// The labelled sets the classifiers learn from, embedded in the binary. Only tuning sets: a
/// held-out set is never embedded: those live in `tests/data/` (`tests/data/HELDOUT*.md`).
pub mod training {
    use super::{Category, Outcome};

    /// Posts labelled with their kind.
    pub const KINDS: &[(&str, &str)] = &[
        ("triage.tsv", include_str!("../data/triage/triage.tsv")),
        ("triage_tuned_2.tsv", include_str!("../data/triage/triage_tuned_2.tsv")),
        ("triage_tuned_3.tsv", include_str!("../data/triage/triage_tuned_3.tsv")),
        ("triage_tuned_4.tsv", include_str!("../data/triage/triage_tuned_4.tsv")),
        ("kinds_tuning.tsv", include_str!("../data/triage/kinds_tuning.tsv")),
        ("kinds_training.tsv", include_str!("../data/triage/kinds_training.tsv")),
        ("kinds_tuned_2.tsv", include_str!("../data/triage/kinds_tuned_2.tsv")),
        ("kinds_training_2.tsv", include_str!("../data/triage/kinds_training_2.tsv")),
        ("kinds_weak_spots.tsv", include_str!("../data/triage/kinds_weak_spots.tsv")),
        ("kinds_training_3.tsv", include_str!("../data/triage/kinds_training_3.tsv")),
        ("kinds_training_4.tsv", include_str!("../data/triage/kinds_training_4.tsv")),
        ("kinds_training_5.tsv", include_str!("../data/triage/kinds_training_5.tsv")),
        ("kinds_training_6.tsv", include_str!("../data/triage/kinds_training_6.tsv")),
    ];

    /// Follow-ups labelled with their outcome.
    pub const OUTCOMES: &[(&str, &str)] = &[
        ("outcomes.tsv", include_str!("../data/triage/outcomes.tsv")),
        ("outcomes_tuned_2.tsv", include_str!("../data/triage/outcomes_tuned_2.tsv")),
        ("outcomes_tuned_3.tsv", include_str!("../data/triage/outcomes_tuned_3.tsv")),
        ("outcomes_training.tsv", include_str!("../data/triage/outcomes_training.tsv")),
        ("outcomes_tuned_4.tsv", include_str!("../data/triage/outcomes_tuned_4.tsv")),
        ("outcomes_training_2.tsv", include_str!("../data/triage/outcomes_training_2.tsv")),
        ("outcomes_weak_spots.tsv", include_str!("../data/triage/outcomes_weak_spots.tsv")),
        ("outcomes_training_3.tsv", include_str!("../data/triage/outcomes_training_3.tsv")),
        ("outcomes_training_4.tsv", include_str!("../data/triage/outcomes_training_4.tsv")),
        ("outcomes_training_5.tsv", include_str!("../data/triage/outcomes_training_5.tsv")),
        ("outcomes_training_6.tsv", include_str!("../data/triage/outcomes_training_6.tsv")),
    ];

    /// `label<TAB>text` rows; lines without a known label are skipped.
    pub fn rows<T>(file: &'static str, parse: impl Fn(&str) -> Option<T>) -> Vec<(T, &'static str)> {
        file.lines()
            .filter_map(|l| l.split_once('\t'))
            .filter_map(|(label, text)| Some((parse(label)?, text)))
            .collect()
    }

    pub fn kinds() -> Vec<(Category, &'static str)> {
        KINDS.iter().flat_map(|(_, f)| rows(f, Category::parse)).collect()
    }

    pub fn outcomes() -> Vec<(Outcome, &'static str)> {
        OUTCOMES.iter().flat_map(|(_, f)| rows(f, Outcome::parse)).collect()
    }
}

/// Mentions and URLs say nothing about intent (and a URL's path can look like "error" or
/// "403"); they are dropped before matching. What a person wrote is kept: a link's text
/// (`<https://…|Q4 planning folder>`), a channel's name (`<#C123|team-payments>`) and a
/// broadcast (`<!here>`, which announcements use).
fn strip_slack_markup(text: &str) -> String {
    static MARKUP: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        // A constant pattern, checked by the tests.
        Regex::new(r"<(?:[@#!][^>|]*|(?:https?|mailto):[^>|]*)(?:\|([^>]*))?>|https?://\S+")
            .expect("markup pattern compiles")
    });
    MARKUP
        .replace_all(text, |c: &regex::Captures<'_>| {
            let whole = &c[0];
            match c.get(1) {
                // A user's name after `|` is a person, not words about the problem.
                Some(_) if whole.starts_with("<@") => " ".to_string(),
                Some(label) => format!(" {} ", label.as_str()),
                None if whole.starts_with("<!") => {
                    format!(" {} ", whole.trim_start_matches("<!").trim_end_matches('>'))
                }
                None => " ".to_string(),
            }
        })
        .into_owned()
}

/// Lower case, apostrophes straightened, common spellings without apostrophes restored, every
/// other symbol a space, spaces collapsed.
pub fn normalise(text: &str) -> String {
    let lower = text.to_lowercase().replace(['\u{2019}', '\u{2018}', '`'], "'");
    let mut words = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let w = raw.trim_matches('\'');
        if w.is_empty() {
            continue;
        }
        words.push(match w {
            "cant" => "can't",
            "wont" => "won't",
            "dont" => "don't",
            "doesnt" => "doesn't",
            "didnt" => "didn't",
            "isnt" => "isn't",
            "couldnt" => "couldn't",
            "im" => "i'm",
            "ive" => "i've",
            "ill" => "i'll",
            "its" => "it's",
            "thats" => "that's",
            "pls" | "plz" | "plse" => "please",
            "u" => "you",
            other => other,
        });
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn rules() -> Rules {
        let s = Settings::shipped();
        Rules::new(&s.triage, &s.followup).unwrap()
    }

    #[test]
    fn intent_decides_the_category_not_single_words() {
        let r = rules();
        for (text, want) in [
            ("I need access to Figma", Category::Access),
            ("Hi IT, could I get access to the Snowflake finance schema?", Category::Access),
            ("I can't access Figma", Category::Technical),
            ("I don't have access to Snowflake anymore", Category::Technical),
            // A team's group or mailing list is a change (DESIGN.md); a group that grants an
            // app or data ("the okta group for Tableau") is access.
            ("please add me to the design group in Google", Category::Change),
            ("please rename the #design channel to #design-team", Category::Change),
            ("Can you update my Jamf settings so I can install Docker?", Category::Change),
            ("my laptop won't boot", Category::Technical),
            ("my device won't turn on", Category::Technical),
            ("VPN keeps dropping every 10 minutes", Category::Technical),
            ("how do I share my calendar?", Category::Technical),
            ("cant login to okta pls help", Category::Technical),
        ] {
            assert_eq!(r.classify(text).category, want, "{text}");
        }
    }

    #[test]
    fn a_post_no_rule_matches_is_technical_to_the_rules_and_unsure_overall() {
        let t = rules().classify("qwzx");
        assert_eq!(t.by_rules, Category::Technical);
        assert!(!rules().by_rules("qwzx").confident);
        assert!(!t.confident, "{t:?}");
        assert!(t.category.is_ticket(), "a post of unknown words was taken for chatter: {t:?}");
        assert!(rules().classify("vpn is broken").confident);
    }

    #[test]
    fn posts_that_are_not_tickets_are_their_own_kind() {
        let r = rules();
        for text in
            ["thanks all!", "FYI the printer on 3 is fixed", "who approves software purchases?", "nvm"]
        {
            let t = r.classify(text);
            assert_eq!(t.category, Category::NotTicket, "{text}: {t:?}");
            assert!(t.confident && t.confidence >= 0.5, "{text}: {t:?}");
        }
        // A problem of one's own is a ticket, even asked about others too.
        assert_eq!(r.classify("my laptop won't charge, anyone else?").category, Category::Technical);
    }

    #[test]
    fn the_classifier_explains_itself_with_features_and_probabilities() {
        let r = rules();
        let p = r.kind_probabilities("thanks all!");
        assert_eq!(p.len(), 4);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-3);
        let why = r.kind_reasons("thanks all!", Category::NotTicket, 5);
        assert!(why.iter().any(|p| p.feature.contains("thanks")), "{why:?}");
    }

    #[test]
    fn follow_ups_are_read_for_their_outcome() {
        let r = rules();
        for (text, want) in [
            ("that fixed it!", Outcome::Worked),
            ("thanks, works now", Outcome::Worked),
            ("👍", Outcome::Worked),
            (":+1:", Outcome::Worked),
            ("thanks but it's still broken", Outcome::Failed),
            ("nope", Outcome::Failed),
            ("same error", Outcome::Failed),
            ("no", Outcome::Failed),
            ("didn't work at first but after a reboot it's fine", Outcome::Worked),
            ("thanks, I'll try that", Outcome::Other),
            ("can a human help me please", Outcome::WantsHuman),
            ("I'm on macOS 14.5", Outcome::Other),
            // An unsure reading is left to the rules: this one is not resolved.
            ("my manager says the VPN at 192.168.1.45 is fine, error 809 again", Outcome::Failed),
        ] {
            assert_eq!(r.outcome(text), want, "{text}");
        }
    }

    #[test]
    fn wildcards_match_a_few_words_on_word_boundaries() {
        let set = PhraseSet::new(&["add * to".into(), "ty".into()]).unwrap();
        assert_eq!(set.matches("please add my whole team to the list", ""), vec!["add * to"]);
        assert!(set.matches("pretty empty", "").is_empty(), "matched inside words");
    }

    #[test]
    fn links_and_mentions_do_not_count_as_words() {
        let r = rules();
        let t = r.by_rules("<@U123> please add me to <https://acme.atlassian.net/error/403|this board>");
        assert_eq!(t.category, Category::Change);
    }

    #[test]
    fn slack_markup_keeps_what_the_person_wrote_and_drops_ids_and_urls() {
        let stripped = strip_slack_markup(
            "<@U123|maya> add me to <#C0PAY|team-payments> <!here> see <https://x.io/error/403|the form> \
             and https://y.io/500 <mailto:a@b.co|a@b.co> <#C0LONE>",
        );
        let words = normalise(&stripped);
        assert_eq!(words, "add me to team payments here see the form and a b co");
    }
}

//! Triage of a new post (access request, change request, technical issue) and of a follow-up
//! (worked, failed, wants a human, other). The phrases live in `[triage]` and `[followup]` of
//! the config; this module normalises text and applies them. Pure functions, no I/O.
//!
//! The rules read intent, not single words: "I need access to Figma" asks for access, while
//! "I can't access Figma" reports a problem; "please add me to the design group" is a change,
//! while "my laptop won't boot" is a problem even though it names a device.

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use crate::config::{FollowUpSettings, TriageSettings};

/// What kind of ticket a new post is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Asks to be given access to an app, system or data.
    Access,
    /// Asks IT to change something (groups, settings, accounts, equipment).
    Change,
    /// Something is broken, or a how-to question.
    Technical,
}

impl Category {
    pub fn parse(s: &str) -> Option<Category> {
        match s.trim().to_ascii_lowercase().as_str() {
            "access" => Some(Category::Access),
            "change" => Some(Category::Change),
            "technical" => Some(Category::Technical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Access => "access",
            Category::Change => "change",
            Category::Technical => "technical",
        }
    }
}

/// The triage result: the category, the phrases that decided it (for `itbot explain` and logs),
/// and whether the rules were sure. Unsure results may be settled by the LLM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triage {
    pub category: Category,
    pub matched: Vec<String>,
    pub confident: bool,
}

/// How a follow-up from the requester went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Worked,
    Failed,
    WantsHuman,
    Other,
}

impl Outcome {
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
    precedence: Vec<Category>,
    human: PhraseSet,
    failed: PhraseSet,
    worked: PhraseSet,
    trying: PhraseSet,
    short_worked: Vec<String>,
    short_failed: Vec<String>,
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
            precedence: triage.precedence.iter().filter_map(|c| Category::parse(c)).collect(),
            human: PhraseSet::new(&followup.human)?,
            failed: PhraseSet::new(&followup.failed)?,
            worked: PhraseSet::new(&followup.worked)?,
            trying: PhraseSet::new(&followup.trying)?,
            short_worked: followup.short_worked.iter().map(|s| normalise(s)).collect(),
            short_failed: followup.short_failed.iter().map(|s| normalise(s)).collect(),
        })
    }

    /// Classifies a new post. Each kind scores one point per phrase found; a request form
    /// ("can I get", "please") adds a point to access and change. The problem score must beat
    /// the best request score to make a request a technical issue ("I need a new laptop, mine
    /// can't run Docker" is still a change request); on a tie, an explicit request form wins,
    /// and without one the problem does. `precedence` settles access against change.
    pub fn classify(&self, text: &str) -> Triage {
        let lower = text.to_lowercase();
        let norm = normalise(&strip_slack_markup(text));
        let problem = self.problem.matches(&norm, &lower);
        let access = self.access.matches(&norm, &lower);
        let change = self.change.matches(&norm, &lower);
        let request = self.request.matches(&norm, &lower);
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
            // Nothing asked for: a problem or a question. Unsure when nothing matched at all.
            let confident = !problem.is_empty();
            return Triage { category: Category::Technical, matched: owned(&problem), confident };
        };
        let req_score = req_hits.len() + request.len();
        let technical = problem.len() > req_score || (problem.len() == req_score && request.is_empty());
        if technical {
            return Triage { category: Category::Technical, matched: owned(&problem), confident: true };
        }
        let mut matched = owned(&req_hits);
        matched.extend(owned(&request));
        // Unsure when access and change tie, or a problem nearly outweighs the request.
        let confident = access.len() != change.len() && problem.len() + 1 < req_score;
        Triage { category: req_category, matched, confident }
    }

    /// Classifies a follow-up. A wish for a person anywhere wins; otherwise the last clause that
    /// says anything decides ("didn't work at first, but after a reboot it's fine" worked).
    pub fn outcome(&self, text: &str) -> Outcome {
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

/// Mentions, channel links and URLs say nothing about intent (and a URL's path can look like
/// "error" or "403"); they are dropped before matching.
fn strip_slack_markup(text: &str) -> String {
    static MARKUP: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        // A constant pattern, checked by the tests.
        Regex::new(r"<[@#!][^>]*>|<https?://[^>]*>|https?://\S+").expect("markup pattern compiles")
    });
    MARKUP.replace_all(text, " ").into_owned()
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
            ("please add me to the #design group", Category::Change),
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
    fn a_post_no_rule_matches_is_technical_but_unsure() {
        let t = rules().classify("Snowflake");
        assert_eq!(t.category, Category::Technical);
        assert!(!t.confident);
        assert!(rules().classify("vpn is broken").confident);
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
        let t = r.classify("<@U123> please add me to <https://acme.atlassian.net/error/403|this board>");
        assert_eq!(t.category, Category::Change);
    }
}

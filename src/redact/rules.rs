//! Secret rules loaded as data: gitleaks' default rule set (`data/secret-rules/gitleaks.toml`,
//! MIT, vendored unchanged apart from a provenance line), compiled once.
//!
//! Each rule names keywords; one pass of a keyword set over the text picks the few rules worth
//! running, so a long message costs one scan plus a handful of small regexes. A rule's secret is
//! its secret group (or the first group that matched, or the whole match); it must reach the
//! rule's entropy and pass its allowlists (regexes on the secret, the match or the line, and
//! stopwords), as gitleaks does. Rules that apply only to file paths (`path = …`) have no meaning
//! for a chat message and are left out; rules whose Go pattern the `regex` crate rejects are left
//! out too and counted ([`RuleSet::skipped`]).

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::Deserialize;

use super::Kind;

const GITLEAKS: &str = include_str!("../../data/secret-rules/gitleaks.toml");

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    allowlist: Option<AllowDef>,
    #[serde(default)]
    rules: Vec<RuleDef>,
}

#[derive(Deserialize)]
struct RuleDef {
    id: String,
    regex: Option<String>,
    path: Option<String>,
    #[serde(rename = "secretGroup")]
    secret_group: Option<usize>,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    allowlists: Vec<AllowDef>,
}

#[derive(Deserialize, Default)]
struct AllowDef {
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(rename = "regexTarget")]
    regex_target: Option<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    condition: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Secret,
    Match,
    Line,
}

struct Allow {
    regexes: Vec<Regex>,
    target: Target,
    /// The stopwords as one case-insensitive literal search (a rule can have a thousand).
    stopwords: Option<Regex>,
}

/// One compiled rule.
pub struct Rule {
    pub id: String,
    regex: Regex,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    allows: Vec<Allow>,
    pub kind: Kind,
}

/// The compiled rule set with its keyword prefilter.
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Rules without keywords: run on every text.
    always: Vec<usize>,
    keywords: RegexSet,
    /// For each keyword of `keywords`, the rules it selects.
    keyword_rules: Vec<Vec<usize>>,
    global: Allow,
    /// Rules left out, with why (`path` rules, patterns the `regex` crate rejects).
    pub skipped: Vec<(String, String)>,
}

/// A secret found by a rule: byte span of the secret and the rule's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    // Go's RE2 classes (`\w`, `\s`, `\d`) are ASCII; byte regexes without Unicode match them the
    // same way and keep counted repetitions small.
    RegexBuilder::new(pattern).unicode(false).size_limit(32 << 20).dfa_size_limit(8 << 20).build()
}

fn allow_from(def: &AllowDef) -> Option<Allow> {
    // An allowlist that needs a file path too (condition AND) never applies to a message; one
    // made only of paths does not either.
    let and = def.condition.as_deref().is_some_and(|c| c.eq_ignore_ascii_case("and"));
    if (and && !def.paths.is_empty()) || (def.regexes.is_empty() && def.stopwords.is_empty()) {
        return None;
    }
    let target = match def.regex_target.as_deref() {
        Some("match") => Target::Match,
        Some("line") => Target::Line,
        _ => Target::Secret,
    };
    let stopwords = (!def.stopwords.is_empty())
        .then(|| {
            let words: Vec<String> = def.stopwords.iter().map(|w| regex::escape(w)).collect();
            compile(&format!("(?i){}", words.join("|"))).ok()
        })
        .flatten();
    Some(Allow { regexes: def.regexes.iter().filter_map(|r| compile(r).ok()).collect(), target, stopwords })
}

fn kind_of(id: &str) -> Kind {
    match id {
        "private-key" | "pkcs12-file" => Kind::PrivateKey,
        "jwt" | "jwt-base64" => Kind::Jwt,
        id if id.contains("password") => Kind::Password,
        _ => Kind::ApiKey,
    }
}

impl RuleSet {
    fn load(toml_text: &str) -> RuleSet {
        // The file is vendored and checked by the tests below; a parse failure is a build defect.
        let config: Config = toml::from_str(toml_text).expect("the vendored gitleaks rules parse");
        let mut rules = Vec::new();
        let mut skipped = Vec::new();
        let mut keyword_list: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for def in config.rules {
            let Some(pattern) = def.regex.as_deref() else {
                skipped.push((def.id, "matches file paths only".to_string()));
                continue;
            };
            if def.path.is_some() {
                skipped.push((def.id, "applies to one kind of file only".to_string()));
                continue;
            }
            let regex = match compile(pattern) {
                Ok(r) => r,
                Err(e) => {
                    let why = e.to_string().lines().last().unwrap_or_default().to_string();
                    skipped.push((def.id, why));
                    continue;
                }
            };
            let index = rules.len();
            if def.keywords.is_empty() {
                always.push(index);
            }
            for k in &def.keywords {
                let k = k.to_ascii_lowercase();
                match keyword_list.iter().position(|x| *x == k) {
                    Some(i) => keyword_rules[i].push(index),
                    None => {
                        keyword_list.push(k);
                        keyword_rules.push(vec![index]);
                    }
                }
            }
            rules.push(Rule {
                kind: kind_of(&def.id),
                id: def.id,
                regex,
                secret_group: def.secret_group,
                entropy: def.entropy,
                allows: def.allowlists.iter().filter_map(allow_from).collect(),
            });
        }
        let keywords = RegexSetBuilder::new(keyword_list.iter().map(|k| regex::escape(k)))
            .case_insensitive(true)
            .unicode(false)
            .build()
            .expect("escaped keywords compile");
        let global = config.allowlist.as_ref().and_then(allow_from).unwrap_or(Allow {
            regexes: Vec::new(),
            target: Target::Secret,
            stopwords: None,
        });
        RuleSet { rules, always, keywords, keyword_rules, global, skipped }
    }

    /// Every secret the rules find in `text`.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let bytes = text.as_bytes();
        let mut selected: Vec<usize> = self.always.clone();
        for k in self.keywords.matches(bytes).iter() {
            selected.extend_from_slice(&self.keyword_rules[k]);
        }
        selected.sort_unstable();
        selected.dedup();
        let mut hits = Vec::new();
        for i in selected {
            let rule = &self.rules[i];
            for caps in rule.regex.captures_iter(bytes) {
                let whole = caps.get(0).expect("group 0 always matches");
                let secret = match rule.secret_group {
                    Some(g) => caps.get(g),
                    None => caps.iter().skip(1).flatten().find(|m| !m.is_empty()),
                }
                .unwrap_or(whole);
                if secret.is_empty() {
                    continue;
                }
                let value = &bytes[secret.start()..secret.end()];
                if rule.entropy.is_some_and(|min| entropy(value) < min) {
                    continue;
                }
                let line = line_around(bytes, whole.start(), whole.end());
                let allowed = std::iter::once(&self.global)
                    .chain(rule.allows.iter())
                    .any(|a| a.allows(value, whole.as_bytes(), line));
                if allowed {
                    continue;
                }
                let (start, end) = char_bounds(text, secret.start(), secret.end());
                // The generic rule's key says what the value is ("db_password=…").
                let lower = whole.as_bytes().to_ascii_lowercase();
                let kind = if rule.kind == Kind::ApiKey
                    && (contains(&lower, b"passw") || contains(&lower, b"pwd"))
                {
                    Kind::Password
                } else {
                    rule.kind
                };
                hits.push(Hit { start, end, kind });
            }
        }
        hits
    }
}

impl Allow {
    fn allows(&self, secret: &[u8], whole: &[u8], line: &[u8]) -> bool {
        let target = match self.target {
            Target::Secret => secret,
            Target::Match => whole,
            Target::Line => line,
        };
        self.regexes.iter().any(|r| r.is_match(target))
            || self.stopwords.as_ref().is_some_and(|s| s.is_match(secret))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn line_around(bytes: &[u8], start: usize, end: usize) -> &[u8] {
    let from = bytes[..start].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let to = bytes[end..].iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| end + i);
    &bytes[from..to]
}

/// Widens a byte span to char boundaries (a byte regex may stop inside a multi-byte char).
fn char_bounds(text: &str, mut start: usize, mut end: usize) -> (usize, usize) {
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}

/// Shannon entropy in bits per byte.
pub fn entropy(value: &[u8]) -> f64 {
    if value.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in value {
        counts[usize::from(*b)] += 1;
    }
    let n = value.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// gitleaks' default rules, compiled at first use.
pub static GITLEAKS_RULES: LazyLock<RuleSet> = LazyLock::new(|| RuleSet::load(GITLEAKS));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearly_every_gitleaks_rule_compiles_and_those_left_out_are_named() {
        let set = &*GITLEAKS_RULES;
        for (id, why) in &set.skipped {
            eprintln!("left out: {id}: {why}");
        }
        eprintln!("{} rules compiled, {} left out", set.rules.len(), set.skipped.len());
        assert!(set.rules.len() >= 200, "only {} rules compiled", set.rules.len());
        // Five rules apply to one kind of file (PHP, Terraform, YAML, nuget.config, .p12).
        assert!(set.skipped.len() <= 6, "{:?}", set.skipped);
    }

    #[test]
    fn keywords_pick_the_rules_and_the_secret_is_the_group() {
        let set = &*GITLEAKS_RULES;
        let text = "deploy with glpat-Xk3v9QmT2pLw7RzN4bYc please";
        let hits = set.find(text);
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(&text[hits[0].start..hits[0].end], "glpat-Xk3v9QmT2pLw7RzN4bYc");
        assert!(set.find("nothing to see here, the printer is jammed again").is_empty());
    }

    #[test]
    fn the_rules_allowlists_apply() {
        // aws-access-token allows keys ending in EXAMPLE.
        assert!(GITLEAKS_RULES.find("AKIAIOSFODNN7EXAMPLE").is_empty());
        assert!(!GITLEAKS_RULES.find("AKIAZ7QRT4VWX2YB3MNP").is_empty());
    }

    #[test]
    fn entropy_is_in_bits_per_byte() {
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}

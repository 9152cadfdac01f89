//! The workspace's people, by name: what `users.list` says each member is called (real name and
//! display name), so redaction can turn "Dana Whitfield", "Dana" or "dana.w" into `@user`.
//!
//! Names are matched as whole words. Full names (two words or more) and display names with a dot,
//! dash or underscore match in any case. A one-word name matches in any case too, unless it is
//! also an ordinary word ("Will", "May", "Mark", "Park"): then it must look like a name in its
//! sentence: capitalised and not first in it, or right after a word that addresses or points at a
//! person ("thanks Will", "ask May", "cc Mark"), or first and followed by a word that follows a
//! person ("Mark from facilities", "Bill in payroll"). Months need the cue word.
//!
//! The bot serves one workspace, so the directory is one per process: startup loads it in the
//! background and [`set_directory`] swaps it in; until then only Slack mentions are replaced.

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock, RwLock};

use regex::Regex;

/// One member as `users.list` describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub real_name: String,
    pub display_name: String,
}

/// Compiled name matchers for a set of members.
#[derive(Debug)]
pub struct People {
    /// Full names, display names and one-word names that are not ordinary words.
    plain: Option<Regex>,
    /// One-word names that are also ordinary words: matched only where they read as names.
    ambiguous: Option<Regex>,
    /// How many members were loaded.
    pub members: usize,
}

/// Given names and surnames that are also ordinary English words (or months).
const ORDINARY: &[&str] = &[
    "will",
    "may",
    "mark",
    "bill",
    "grace",
    "rose",
    "jack",
    "june",
    "april",
    "august",
    "chase",
    "frank",
    "summer",
    "victor",
    "miles",
    "page",
    "park",
    "joy",
    "hope",
    "faith",
    "dawn",
    "drew",
    "gene",
    "art",
    "bob",
    "pat",
    "sue",
    "ray",
    "rich",
    "sandy",
    "penny",
    "rob",
    "don",
    "max",
    "guy",
    "jean",
    "king",
    "young",
    "white",
    "black",
    "brown",
    "green",
    "gray",
    "grey",
    "long",
    "hill",
    "wood",
    "woods",
    "lane",
    "field",
    "fields",
    "stone",
    "rivers",
    "price",
    "cash",
    "bell",
    "ball",
    "banks",
    "bishop",
    "cook",
    "baker",
    "carter",
    "mason",
    "hunter",
    "archer",
    "porter",
    "turner",
    "fisher",
    "miller",
    "smith",
    "taylor",
    "walker",
    "ward",
    "best",
    "little",
    "short",
    "small",
    "love",
    "sterling",
    "crystal",
    "amber",
    "ruby",
    "pearl",
    "iris",
    "lily",
    "violet",
    "holly",
    "ivy",
    "heather",
    "olive",
    "autumn",
    "winter",
    "storm",
    "sky",
    "river",
    "forest",
    "glen",
    "dale",
    "dean",
    "earl",
    "duke",
    "prince",
    "major",
    "noble",
    "sharp",
    "strong",
    "swift",
    "wise",
    "moody",
    "hardy",
    "free",
    "gay",
    "justice",
    "trust",
    "bliss",
    "harmony",
    "destiny",
    "chance",
    "rusty",
    "buck",
    "buddy",
    "chip",
    "chuck",
    "colt",
    "bud",
    "cliff",
    "gale",
    "kit",
    "nick",
    "norm",
    "reed",
    "rod",
    "sonny",
    "ted",
    "tim",
    "van",
    "wade",
    "warren",
    "wells",
    "west",
    "north",
    "south",
    "east",
    "win",
    "kim",
    "lee",
    "sam",
    "al",
    "ed",
    "jan",
    "mo",
    "di",
    "vi",
    "bo",
    "li",
    "wu",
    "an",
    "ng",
    "do",
    "so",
    "ha",
    "ma",
    "ho",
    // Words of an IT channel that shared or service accounts get as display names.
    "admin",
    "support",
    "help",
    "helpdesk",
    "it",
    "test",
    "jenkins",
    "backup",
    "service",
    "printer",
    "scanner",
    "reception",
    "security",
    "finance",
    "hr",
    "ops",
    "dev",
    "info",
    "office",
    "team",
    "guest",
    "user",
    "root",
    "system",
    "build",
    "deploy",
    "monitor",
    "alerts",
    "noreply",
    "vpn",
];

const MONTHS: &[&str] = &["may", "june", "april", "august", "march", "january", "july"];

/// Words right before a name that show it is one.
const BEFORE: &[&str] = &[
    "thanks",
    "thank",
    "thx",
    "ty",
    "ask",
    "asked",
    "asking",
    "ping",
    "pinged",
    "cc",
    "hi",
    "hey",
    "hello",
    "dear",
    "tell",
    "told",
    "per",
    "from",
    "with",
    "and",
    "or",
    "by",
    "to",
    "for",
    "via",
    "@",
    "colleague",
    "manager",
    "boss",
    "mr",
    "mrs",
    "ms",
    "dr",
    "cheers",
];

/// Words right after a name at the start of a sentence that show it is one.
const AFTER: &[&str] = &[
    "from",
    "in",
    "at",
    "and",
    "said",
    "says",
    "asked",
    "asks",
    "wrote",
    "writes",
    "is",
    "was",
    "has",
    "had",
    "needs",
    "needed",
    "wants",
    "can't",
    "cannot",
    "can",
    "could",
    "will",
    "reported",
    "approved",
    "thinks",
    "mentioned",
    "told",
    "left",
    "called",
    "'s",
    "’s",
];

fn alternation(names: &BTreeSet<String>) -> Option<Regex> {
    if names.is_empty() {
        return None;
    }
    // Longest first, so "Dana Whitfield" wins over "Dana".
    let mut names: Vec<&String> = names.iter().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.chars().count()));
    // Matched on the ASCII-lowercased text (same byte offsets): a plain literal search, fast
    // with a thousand names; word boundaries are checked around each match.
    let body: Vec<String> = names.iter().map(|n| regex::escape(&n.to_ascii_lowercase())).collect();
    Regex::new(&body.join("|")).ok()
}

/// Whether `start..end` of `text` is a whole word (not inside a word, an email or a path).
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_alphanumeric() || "_@./".contains(c))
        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

fn words(name: &str) -> Vec<&str> {
    name.split_whitespace().filter(|w| w.chars().any(char::is_alphabetic)).collect()
}

impl People {
    pub fn new(members: &[Member]) -> People {
        let mut plain = BTreeSet::new();
        let mut ambiguous = BTreeSet::new();
        for m in members {
            for name in [m.real_name.trim(), m.display_name.trim()] {
                let w = words(name);
                let letters = name.chars().filter(|c| c.is_alphabetic()).count();
                if letters < 2 {
                    continue;
                }
                if w.len() >= 2 || name.contains(['.', '_']) || (name.contains('-') && w.len() == 1) {
                    plain.insert(name.to_string());
                }
                // Each word of a real name ("Dana", "Whitfield") and a one-word display name.
                let singles: Vec<&str> = if w.len() == 1 {
                    w.clone()
                } else if name == m.real_name.trim() {
                    w
                } else {
                    vec![]
                };
                for s in singles {
                    let s = s.trim_matches(|c: char| !c.is_alphanumeric());
                    if s.chars().count() < 2 || s.contains('.') {
                        continue;
                    }
                    let lower = s.to_lowercase();
                    if ORDINARY.contains(&lower.as_str())
                        || MONTHS.contains(&lower.as_str())
                        || s.chars().count() < 3
                    {
                        ambiguous.insert(s.to_string());
                    } else {
                        plain.insert(s.to_string());
                    }
                }
            }
        }
        People { plain: alternation(&plain), ambiguous: alternation(&ambiguous), members: members.len() }
    }

    /// Byte spans of members' names in `text`.
    pub fn find(&self, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let lower = text.to_ascii_lowercase();
        if let Some(re) = &self.plain {
            for m in re.find_iter(&lower) {
                if whole_word(text, m.start(), m.end()) {
                    out.push((m.start(), m.end()));
                }
            }
        }
        if let Some(re) = &self.ambiguous {
            for m in re.find_iter(&lower) {
                if out.iter().any(|(s, e)| m.start() < *e && *s < m.end()) {
                    continue;
                }
                if whole_word(text, m.start(), m.end()) && reads_as_name(text, m.start(), m.end()) {
                    out.push((m.start(), m.end()));
                }
            }
        }
        out
    }
}

fn reads_as_name(text: &str, start: usize, end: usize) -> bool {
    let word = &text[start..end];
    let capitalised = word.chars().next().is_some_and(char::is_uppercase)
        && word.chars().skip(1).all(|c| !c.is_uppercase());
    let before = text[..start].trim_end();
    let prev = before
        .rsplit(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '@')
        .to_lowercase();
    let sentence_start = before.is_empty() || before.ends_with(['.', '!', '?', ':', '\n', '>', '(']);
    let after = &text[end..];
    let next = after
        .split(|c: char| c.is_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .trim_end_matches([',', '.', '!', '?', ';', ':'])
        .to_lowercase();
    let possessive = after.starts_with("'s") || after.starts_with("’s");
    let addressed = after.trim_start().starts_with(',') && (sentence_start || prev.is_empty());
    let cue_before = BEFORE.contains(&prev.as_str()) || before.ends_with('@');
    let month = MONTHS.contains(&word.to_lowercase().as_str());
    if !capitalised {
        return false;
    }
    if cue_before
        && !(month
            && matches!(prev.as_str(), "in" | "from" | "to" | "by" | "for" | "and" | "or" | "with" | "via"))
    {
        return true;
    }
    if month {
        return possessive
            || (sentence_start
                && matches!(
                    next.as_str(),
                    "from"
                        | "said"
                        | "says"
                        | "asked"
                        | "wrote"
                        | "needs"
                        | "wants"
                        | "reported"
                        | "approved"
                        | "told"
                        | "'s"
                ));
    }
    if sentence_start {
        return possessive || addressed || AFTER.contains(&next.as_str()) && next != "will" && next != "can";
    }
    // Capitalised in the middle of a sentence: a name, unless it starts a title-cased phrase.
    !next.chars().next().is_some_and(char::is_uppercase)
}

static DIRECTORY: LazyLock<RwLock<Option<Arc<People>>>> = LazyLock::new(|| RwLock::new(None));

/// Makes `people` the directory every later redaction uses.
pub fn set_directory(people: People) {
    let people = Arc::new(people);
    match DIRECTORY.write() {
        Ok(mut d) => *d = Some(people),
        Err(poisoned) => *poisoned.into_inner() = Some(people),
    }
}

/// The directory in force, if one was loaded.
pub fn directory() -> Option<Arc<People>> {
    match DIRECTORY.read() {
        Ok(d) => d.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn people() -> People {
        People::new(&[
            Member { real_name: "Dana Whitfield".into(), display_name: "dana.w".into() },
            Member { real_name: "Will Turner".into(), display_name: "will.t".into() },
            Member { real_name: "May Chen".into(), display_name: "may".into() },
        ])
    }

    fn names(text: &str) -> Vec<&str> {
        people().find(text).into_iter().map(|(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn full_names_display_names_and_given_names_are_found() {
        assert_eq!(names("dana whitfield and Dana and dana.w"), ["dana whitfield", "Dana", "dana.w"]);
        assert_eq!(names("Will Turner is out"), ["Will Turner"]);
    }

    #[test]
    fn a_shared_account_named_like_an_it_word_does_not_eat_the_word() {
        let people = People::new(&[Member { real_name: "Support".into(), display_name: "admin".into() }]);
        assert!(people.find("the admin console needs support for SSO").is_empty());
    }

    #[test]
    fn a_name_that_is_also_a_word_is_found_only_where_it_reads_as_a_name() {
        assert_eq!(names("thanks Will, that fixed it"), ["Will"]);
        assert_eq!(names("ping May about the printer"), ["May"]);
        assert!(names("Will the VPN be back?").is_empty());
        assert!(names("May I get admin rights?").is_empty());
        assert!(names("it will be fixed in May").is_empty());
        assert!(names("the turner lathe").is_empty());
    }
}

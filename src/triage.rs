//! Triage of a new post (access request, change request, technical issue) and of a follow-up
//! (worked, failed, wants a human, other). Pure functions over the text.
//!
//! The rules look at intent, not single words: "I need access to Figma" asks for access, while
//! "I can't access Figma" reports a problem; "please add me to the design group" is a change,
//! while "my laptop won't boot" is a problem even though it names a device.

use serde::Serialize;

/// What kind of ticket a new post is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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

/// The triage result and the rules that decided it (for `itbot explain` and logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triage {
    pub category: Category,
    pub matched: Vec<&'static str>,
}

/// Phrases that report a problem. Any of these makes the post technical, whatever else it says.
const PROBLEM: &[&str] = &[
    "can't",
    "cant ",
    "cannot",
    "can not",
    "unable",
    "couldn't",
    "won't",
    "wont ",
    "doesn't",
    "does not",
    "isn't",
    "not working",
    "stopped working",
    "broken",
    "error",
    "fails",
    "failed",
    "failing",
    "issue",
    "problem",
    "stuck",
    "crash",
    "keeps ",
    "lost access",
    "no longer",
    "locked out",
    "access denied",
    "not loading",
    "not receiving",
    "not getting",
    "forgot",
    "expired",
    "slow",
    "help with",
];

/// Phrases that ask for access.
const ACCESS: &[&str] = &[
    "need access",
    "needs access",
    "request access",
    "requesting access",
    "get access",
    "give me access",
    "grant me access",
    "grant access",
    "access request",
    "access to",
    "need a license",
    "need a seat",
    "need an account",
    "need a login",
    "provision",
    "permission to",
    "permissions for",
    "invite me to",
];

/// Phrases that ask IT to change something.
const CHANGE: &[&str] = &[
    "add me to",
    "add us to",
    "remove me from",
    "remove us from",
    "please add",
    "please remove",
    "please change",
    "please update",
    "update my",
    "change my",
    "rename",
    "create a group",
    "create a channel",
    "create a shared",
    "new group",
    "mailing list",
    "distribution list",
    "alias",
    "transfer ownership",
    "set up a new",
    "new laptop",
    "new monitor",
    "replace my",
    "upgrade my",
    "move me to",
    "switch my",
];

/// Classifies a new post. Problems win over requests; access wins over change when both match,
/// except that "add me to …" group requests are changes.
pub fn classify(text: &str) -> Triage {
    let t = format!("{} ", normalise(text));
    let problems: Vec<&'static str> = PROBLEM.iter().copied().filter(|p| t.contains(p)).collect();
    // "I don't have access to X" with nothing else wrong is a request; "don't have access anymore" is not.
    let mut access: Vec<&'static str> = ACCESS.iter().copied().filter(|p| t.contains(p)).collect();
    let change: Vec<&'static str> = CHANGE.iter().copied().filter(|p| t.contains(p)).collect();
    // A bare "access to" counts only alongside a request verb.
    if access == ["access to"]
        && !["i need", "can i", "could i", "may i", "i'd like", "i would like", "don't have", "do not have"]
            .iter()
            .any(|v| t.contains(v))
    {
        access.clear();
    }
    // Passwords are reset, not requested.
    let password =
        t.contains("password") && change.iter().any(|c| c.starts_with("change") || c.starts_with("update"));

    if !problems.is_empty() || password || t.contains("anymore") {
        let mut matched = problems;
        if password {
            matched.push("password change");
        }
        if t.contains("anymore") {
            matched.push("anymore");
        }
        return Triage { category: Category::Technical, matched };
    }
    let group_change = change.iter().any(|c| c.starts_with("add ") || c.starts_with("remove "));
    if !access.is_empty() && !group_change {
        return Triage { category: Category::Access, matched: access };
    }
    if !change.is_empty() {
        return Triage { category: Category::Change, matched: change };
    }
    if !access.is_empty() {
        return Triage { category: Category::Access, matched: access };
    }
    Triage { category: Category::Technical, matched: vec![] }
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

const WANTS_HUMAN: &[&str] = &[
    "human",
    "real person",
    "a person ",
    "escalate",
    "talk to someone",
    "speak to someone",
    "someone from it",
    "someone in it",
    "an agent",
    "call me",
    "get someone",
    "need someone",
];
const FAILED: &[&str] = &[
    "still",
    "didn't work",
    "did not work",
    "didn't help",
    "did not help",
    "doesn't work",
    "does not work",
    "not working",
    "same error",
    "same issue",
    "same problem",
    "no luck",
    "no change",
    "nope",
    "not fixed",
    "didn't fix",
    "did not fix",
    "no dice",
    "broken",
    "tried that",
    "tried all",
    "doesn't help",
    "won't",
    "can't",
    "cannot",
    "error",
    ":-1:",
    ":thumbsdown:",
    "👎",
    "❌",
    ":x:",
];
const WORKED: &[&str] = &[
    "worked",
    "works now",
    "working now",
    "fixed",
    "solved",
    "resolved",
    "that did it",
    "thank",
    "thx",
    "all good",
    "perfect",
    "awesome",
    "great",
    "sorted",
    "back in",
    "i'm in",
    "im in",
    ":+1:",
    ":thumbsup:",
    "👍",
    "✅",
    ":white_check_mark:",
    "🙏",
    ":pray:",
    "🎉",
    ":tada:",
];

/// Classifies a follow-up. A wish for a human wins, then failure ("thanks, but it's still
/// broken" failed), then success.
pub fn outcome(text: &str) -> Outcome {
    let t = normalise(text);
    let t = format!("{t} ");
    let trimmed = t.trim();
    if WANTS_HUMAN.iter().any(|p| t.contains(p)) {
        return Outcome::WantsHuman;
    }
    if FAILED.iter().any(|p| t.contains(p)) || matches!(trimmed, "no" | "nah" | "no." | "negative") {
        return Outcome::Failed;
    }
    if WORKED.iter().any(|p| t.contains(p)) || matches!(trimmed, "yes" | "yep" | "yes!" | "ok" | "ok!") {
        return Outcome::Worked;
    }
    Outcome::Other
}

/// Lower case, curly apostrophes straightened, whitespace collapsed.
fn normalise(text: &str) -> String {
    text.to_lowercase()
        .replace(['\u{2019}', '\u{2018}'], "'")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_decides_the_category_not_single_words() {
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
            ("I need to change my password", Category::Technical),
        ] {
            assert_eq!(classify(text).category, want, "{text}");
        }
    }

    #[test]
    fn follow_ups_are_read_for_their_outcome() {
        for (text, want) in [
            ("that fixed it!", Outcome::Worked),
            ("thanks, works now", Outcome::Worked),
            ("👍", Outcome::Worked),
            ("thanks but it's still broken", Outcome::Failed),
            ("nope", Outcome::Failed),
            ("same error", Outcome::Failed),
            ("no", Outcome::Failed),
            ("can a human help me please", Outcome::WantsHuman),
            ("it says error 809 now, what does that mean", Outcome::Failed),
            ("I'm on macOS 14.5", Outcome::Other),
        ] {
            assert_eq!(outcome(text), want, "{text}");
        }
    }
}

//! Redaction before text leaves the process for the LLM: Slack mentions, emails, phone numbers
//! and IP addresses become typed placeholders, and credentials are detected so a message that
//! carries one is not sent at all. Ticket keys, versions and error codes are left alone.

use std::sync::LazyLock;

use regex::Regex;

/// The redacted text and whether a credential was found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub text: String,
    pub secret_found: bool,
}

struct Rule {
    re: Regex,
    placeholder: &'static str,
}

fn rule(pattern: &str, placeholder: &'static str) -> Rule {
    Rule {
        // The patterns are constants checked by the unit tests below.
        re: Regex::new(pattern).expect("redaction pattern compiles"),
        placeholder,
    }
}

/// Credentials: never sent, and the requester is warned.
static SECRETS: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
            "[private key]",
        ),
        rule(r"\bxox[abposr]-[A-Za-z0-9-]{8,}", "[slack token]"),
        rule(r"\bxapp-[A-Za-z0-9-]{8,}", "[slack token]"),
        rule(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}", "[api key]"),
        rule(r"\bgh[pousr]_[A-Za-z0-9]{20,}", "[github token]"),
        rule(r"\bgithub_pat_[A-Za-z0-9_]{20,}", "[github token]"),
        rule(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "[aws key]"),
        rule(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", "[jwt]"),
        rule(r"(?i)\b(password|passwd|pwd|passcode|pw)\s*(?:is|was|:|=)\s*\S+", "$1 [password]"),
        rule(
            r"(?i)\b(recovery codes?|backup codes?|mfa code|otp|verification code|2fa code)\s*(?:is|are|:|=)?\s*[0-9][0-9 -]{5,}",
            "$1 [code]",
        ),
    ]
});

/// Personal data: replaced, the message is still sent.
static PERSONAL: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        rule(r"<@[UW][A-Z0-9]+(?:\|[^>]*)?>", "@user"),
        rule(r"<#[CG][A-Z0-9]+(?:\|[^>]*)?>", "#channel"),
        rule(r"<!subteam\^[A-Z0-9]+(?:\|[^>]*)?>", "@group"),
        rule(r"<mailto:[^>|]+(?:\|[^>]*)?>", "[email]"),
        rule(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b", "[email]"),
        rule(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "[ip]"),
        rule(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\b\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b", "[phone]"),
    ]
});

/// Redacts `text` for the LLM.
pub fn redact(text: &str) -> Redacted {
    let mut out = text.to_string();
    let mut secret_found = false;
    for r in SECRETS.iter() {
        if r.re.is_match(&out) {
            secret_found = true;
            out = r.re.replace_all(&out, r.placeholder).into_owned();
        }
    }
    for r in PERSONAL.iter() {
        out = r.re.replace_all(&out, r.placeholder).into_owned();
    }
    Redacted { text: out, secret_found }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_become_placeholders() {
        let r = redact("ask <@U0123ABC> or mail jane.doe@acme.com, my ip is 10.1.2.3, call +1 415 555 0100");
        assert_eq!(r.text, "ask @user or mail [email], my ip is [ip], call [phone]");
        assert!(!r.secret_found);
    }

    #[test]
    fn credentials_are_found_and_removed() {
        for text in [
            "my password is hunter2!",
            "token xoxb-1234567890-abcdefghij",
            "key sk-proj-abcdefghijklmnopqrstuv",
            "AKIAABCDEFGHIJKLMNOP is the key",
            "ghp_abcdefghijklmnopqrstuvwxyz0123",
            "recovery codes: 1234 5678 9012",
        ] {
            let r = redact(text);
            assert!(r.secret_found, "{text}");
            for secret in ["hunter2", "xoxb-1234", "sk-proj", "AKIAABCD", "ghp_abc", "5678"] {
                assert!(!r.text.contains(secret), "{text} -> {}", r.text);
            }
        }
    }

    #[test]
    fn what_it_needs_is_kept() {
        let text =
            "IT-1042 and INC0012345678: AWS VPN Client 3.12.1 error 809 on https://wiki.acme.internal/vpn";
        assert_eq!(redact(text).text, text);
    }
}

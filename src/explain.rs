//! `itbot explain`: what the bot would do with a message, without Slack or an LLM: the kind
//! (access, change, technical, not a ticket), how sure the triage is and why (the rules that
//! fired, the classifier's probabilities and strongest features), the redacted text an LLM
//! would see, and the articles it would use.

use std::io::{BufRead, Write};

use serde::Serialize;

use crate::knowledge::KnowledgeBase;
use crate::redact::{redact, Kind};
use crate::text::clip;
use crate::tickets::{Ending, TicketIndex};
use crate::triage::{Category, Outcome, Rules};

/// The explanation of one message.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The kind of post (`not_ticket` for thanks, FYIs, who/where questions).
    pub kind: Category,
    /// The classifier's probability of `kind` (0..1, two decimals).
    pub confidence: f32,
    /// The same as `kind` (kept for scripts written before `kind`).
    pub category: Category,
    /// The phrases the rules found.
    pub rules: Vec<String>,
    /// What the phrase rules alone said.
    pub by_rules: Category,
    /// False below `[triage] min_confidence`; the LLM settles such posts.
    pub confident: bool,
    /// The classifier's probability of each kind.
    pub probabilities: Vec<KindProbability>,
    /// The features that pulled hardest towards `kind` (`w:` word, `b:` word pair, `c:`
    /// character trigram, `r:`/`p:` what the rules said or found, `s:` shape).
    pub why: Vec<String>,
    /// How the message would be read as a follow-up in a thread.
    pub outcome: Outcome,
    /// The classifier's probability of `outcome`.
    pub outcome_confidence: f32,
    /// What would be sent to the LLM (`null` when the message holds a credential: nothing is sent).
    pub redacted: Option<String>,
    pub secret_found: bool,
    /// Every kind of private data found in the message (each once, in a fixed order), e.g.
    /// `["email", "password"]`: what was replaced, or why nothing is sent.
    pub found: Vec<Kind>,
    pub articles: Vec<ArticleRef>,
    /// Similar past tickets (with `--history`).
    pub past_tickets: Vec<TicketRef>,
}

#[derive(Debug, Serialize)]
pub struct KindProbability {
    pub kind: Category,
    pub p: f32,
}

#[derive(Debug, Serialize)]
pub struct TicketRef {
    pub thread: String,
    pub ending: Ending,
    pub share: f32,
    pub question: String,
    pub fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ArticleRef {
    pub slug: String,
    pub title: String,
    pub score: f32,
}

pub fn explain(rules: &Rules, kb: &KnowledgeBase, past: Option<&TicketIndex>, text: &str) -> Explanation {
    let triage = rules.classify(text);
    let r = redact(text);
    let round = |p: f32| (p * 100.0).round() / 100.0;
    let (outcome, outcome_confidence) = rules.read_follow_up(text);
    let mut found: Vec<Kind> = r.findings.iter().map(|f| f.kind).collect();
    found.sort();
    found.dedup();
    Explanation {
        kind: triage.category,
        confidence: round(triage.confidence),
        category: triage.category,
        rules: triage.matched,
        by_rules: triage.by_rules,
        confident: triage.confident,
        probabilities: Category::ALL
            .iter()
            .zip(rules.kind_probabilities(text))
            .map(|(kind, p)| KindProbability { kind: *kind, p: round(p) })
            .collect(),
        why: rules.kind_reasons(text, triage.category, 5).into_iter().map(|p| p.feature).collect(),
        outcome,
        outcome_confidence: round(outcome_confidence),
        redacted: (!r.secret_found).then_some(r.text),
        secret_found: r.secret_found,
        found,
        articles: kb
            .search(text, 3)
            .into_iter()
            .map(|h| ArticleRef {
                slug: h.article.slug.clone(),
                title: h.article.title.clone(),
                score: (h.score * 100.0).round() / 100.0,
            })
            .collect(),
        past_tickets: past
            .map(|index| index.similar(text, 3, None))
            .unwrap_or_default()
            .into_iter()
            .map(|s| TicketRef {
                thread: s.thread.to_string(),
                ending: s.ending,
                share: (s.share * 100.0).round() / 100.0,
                question: clip(s.question.expose(), 100),
                fix: s.resolution.map(|r| clip(r.expose(), 160)),
            })
            .collect(),
    }
}

/// A readable report for one message.
pub fn print(
    rules: &Rules,
    kb: &KnowledgeBase,
    past: Option<&TicketIndex>,
    text: &str,
    mut out: impl Write,
) -> std::io::Result<()> {
    let e = explain(rules, kb, past, text);
    let sure = if e.confident { "" } else { " (unsure: the LLM decides when one is configured)" };
    writeln!(out, "kind:     {} ({:.0}% sure){sure}", e.kind.as_str(), e.confidence * 100.0)?;
    let probabilities: Vec<String> =
        e.probabilities.iter().map(|k| format!("{} {:.0}%", k.kind.as_str(), k.p * 100.0)).collect();
    writeln!(out, "classifier: {}", probabilities.join(", "))?;
    writeln!(
        out,
        "why:      {}",
        if e.why.is_empty() { "(no known words)".to_string() } else { e.why.join(", ") }
    )?;
    writeln!(
        out,
        "rules:    {} -> {}",
        if e.rules.is_empty() { "(none: default)".to_string() } else { e.rules.join(", ") },
        e.by_rules.as_str()
    )?;
    if e.kind == Category::NotTicket {
        writeln!(out, "reply:    no steps (not a ticket: [triage] not_ticket)")?;
    }
    writeln!(out, "as a follow-up: {} ({:.0}% sure)", e.outcome.as_str(), e.outcome_confidence * 100.0)?;
    if !e.found.is_empty() {
        let kinds: Vec<&str> = e.found.iter().map(|k| k.as_str()).collect();
        writeln!(out, "found:    {}", kinds.join(", "))?;
    }
    match &e.redacted {
        Some(text) => writeln!(out, "to LLM:   {text}")?,
        None => writeln!(
            out,
            "to LLM:   nothing (contains a credential: the requester is told to delete and rotate it)"
        )?,
    }
    if e.articles.is_empty() {
        writeln!(out, "articles: (none relevant)")?;
    }
    for (i, a) in e.articles.iter().enumerate() {
        writeln!(
            out,
            "{} {:>5.2}  {}  ({})",
            if i == 0 { "articles:" } else { "         " },
            a.score,
            a.title,
            a.slug
        )?;
    }
    match past {
        None => writeln!(out, "past tickets: (not read; --history N reads the channel's last N messages)")?,
        Some(_) if e.past_tickets.is_empty() => writeln!(out, "past tickets: (none similar)")?,
        Some(_) => {
            writeln!(out, "past tickets:")?;
            for t in &e.past_tickets {
                writeln!(out, "  {:.2}  {:?}  {}  ({})", t.share, t.ending, t.question, t.thread)?;
                if let Some(fix) = &t.fix {
                    writeln!(out, "        fix: {fix}")?;
                }
            }
        }
    }
    Ok(())
}

/// One JSON object per input line; blank lines are skipped.
pub fn jsonl_with(
    rules: &Rules,
    kb: &KnowledgeBase,
    past: Option<&TicketIndex>,
    input: impl BufRead,
    mut out: impl Write,
) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let json = serde_json::to_string(&explain(rules, kb, past, &line)).map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
    }
    Ok(())
}

/// One JSON object per input line, without past tickets.
pub fn jsonl(rules: &Rules, kb: &KnowledgeBase, input: impl BufRead, out: impl Write) -> std::io::Result<()> {
    jsonl_with(rules, kb, None, input, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_writes_one_object_per_message() {
        let kb = KnowledgeBase::shipped();
        let s = crate::config::Settings::shipped();
        let rules = Rules::new(&s.triage, &s.followup).unwrap();
        let mut out = Vec::new();
        let input = "I need access to Figma\n\nmy vpn won't connect, mail me at a@b.com\nthat fixed it\n";
        jsonl(&rules, &kb, input.as_bytes(), &mut out).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["kind"], "not_ticket", "{}", lines[2]);
        assert_eq!(lines[2]["outcome"], "worked");
        assert_eq!(lines[0]["category"], "access");
        assert_eq!(lines[0]["kind"], "access");
        assert!(lines[0]["confidence"].as_f64().unwrap() > 0.5);
        assert_eq!(lines[1]["category"], "technical");
        assert_eq!(lines[1]["probabilities"].as_array().unwrap().len(), 4);
        assert!(!lines[1]["why"].as_array().unwrap().is_empty());
        assert_eq!(lines[1]["articles"][0]["slug"], "aws-client-vpn");
        assert!(lines[1]["redacted"].as_str().unwrap().contains("[email]"));
        assert_eq!(lines[1]["found"], serde_json::json!(["email"]));
        assert_eq!(lines[0]["found"], serde_json::json!([]));
    }

    #[test]
    fn jsonl_names_every_kind_found_even_when_nothing_is_sent() {
        let kb = KnowledgeBase::shipped();
        let s = crate::config::Settings::shipped();
        let rules = Rules::new(&s.triage, &s.followup).unwrap();
        let mut out = Vec::new();
        let input =
            "call +1 415 555 0100 or mail a@b.com, my password is Hunter2!xyz, card 4111 1111 1111 1111\n";
        jsonl(&rules, &kb, input.as_bytes(), &mut out).unwrap();
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["found"], serde_json::json!(["email", "phone", "card", "password"]));
        assert_eq!(line["redacted"], serde_json::Value::Null);
    }
}

//! `itbot explain`: what the bot would do with a message, without Slack or an LLM: the category
//! and the rules that decided it, the redacted text an LLM would see, and the articles it would use.

use std::io::{BufRead, Write};

use serde::Serialize;

use crate::knowledge::KnowledgeBase;
use crate::redact::redact;
use crate::text::clip;
use crate::tickets::{Ending, TicketIndex};
use crate::triage::{Category, Outcome, Rules};

/// The explanation of one message.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub category: Category,
    /// The phrases that decided the category.
    pub rules: Vec<String>,
    /// False when no rule (or rules of two kinds) matched; the LLM settles such posts.
    pub confident: bool,
    /// How the message would be read as a follow-up in a thread.
    pub outcome: Outcome,
    /// What would be sent to the LLM (`null` when the message holds a credential: nothing is sent).
    pub redacted: Option<String>,
    pub secret_found: bool,
    pub articles: Vec<ArticleRef>,
    /// Similar past tickets (with `--history`).
    pub past_tickets: Vec<TicketRef>,
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
    Explanation {
        category: triage.category,
        rules: triage.matched,
        confident: triage.confident,
        outcome: rules.outcome(text),
        redacted: (!r.secret_found).then_some(r.text),
        secret_found: r.secret_found,
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
    writeln!(out, "category: {}{sure}", e.category.as_str())?;
    writeln!(
        out,
        "rules:    {}",
        if e.rules.is_empty() { "(none: default)".to_string() } else { e.rules.join(", ") }
    )?;
    writeln!(out, "as a follow-up: {}", e.outcome.as_str())?;
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
        assert_eq!(lines[2]["outcome"], "worked");
        assert_eq!(lines[0]["category"], "access");
        assert_eq!(lines[1]["category"], "technical");
        assert_eq!(lines[1]["articles"][0]["slug"], "aws-client-vpn");
        assert!(lines[1]["redacted"].as_str().unwrap().contains("[email]"));
    }
}

//! `itbot explain`: what the bot would do with a message, without Slack or an LLM: the category
//! and the rules that decided it, the redacted text an LLM would see, and the articles it would use.

use std::io::{BufRead, Write};

use serde::Serialize;

use crate::knowledge::KnowledgeBase;
use crate::redact::redact;
use crate::triage::{classify, Category};

/// The explanation of one message.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub category: Category,
    pub rules: Vec<&'static str>,
    /// What would be sent to the LLM (`null` when the message holds a credential: nothing is sent).
    pub redacted: Option<String>,
    pub secret_found: bool,
    pub articles: Vec<ArticleRef>,
}

#[derive(Debug, Serialize)]
pub struct ArticleRef {
    pub slug: String,
    pub title: String,
    pub score: f32,
}

pub fn explain(kb: &KnowledgeBase, text: &str) -> Explanation {
    let triage = classify(text);
    let r = redact(text);
    Explanation {
        category: triage.category,
        rules: triage.matched,
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
    }
}

/// A readable report for one message.
pub fn print(kb: &KnowledgeBase, text: &str, mut out: impl Write) -> std::io::Result<()> {
    let e = explain(kb, text);
    writeln!(out, "category: {}", e.category.as_str())?;
    writeln!(
        out,
        "rules:    {}",
        if e.rules.is_empty() { "(none: default)".to_string() } else { e.rules.join(", ") }
    )?;
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
    Ok(())
}

/// One JSON object per input line; blank lines are skipped.
pub fn jsonl(kb: &KnowledgeBase, input: impl BufRead, mut out: impl Write) -> std::io::Result<()> {
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let json = serde_json::to_string(&explain(kb, &line)).map_err(std::io::Error::other)?;
        writeln!(out, "{json}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_writes_one_object_per_message() {
        let kb = KnowledgeBase::shipped();
        let mut out = Vec::new();
        jsonl(
            &kb,
            "I need access to Figma\n\nmy vpn won't connect, mail me at a@b.com\n".as_bytes(),
            &mut out,
        )
        .unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["category"], "access");
        assert_eq!(lines[1]["category"], "technical");
        assert_eq!(lines[1]["articles"][0]["slug"], "aws-client-vpn");
        assert!(lines[1]["redacted"].as_str().unwrap().contains("[email]"));
    }
}

//! Turning Markdown (from the LLM or the knowledge base) into Slack mrkdwn that cannot ping
//! anyone, and splitting long answers below Slack's limits.
//!
//! Everything in the source is escaped first (`&`, `<`, `>`), so `<!channel>`, `<!here>`,
//! `<!subteam^…>` and `<@U…>` in generated text show as plain text. Mentions the bot chooses
//! (assignee, requester) are added by the caller after formatting.

/// Longest message text we post in one piece; Slack truncates at 40,000 characters and renders
/// anything past ~4,000 collapsed, so answers are split well below that.
pub const MAX_MESSAGE_CHARS: usize = 3_500;

/// Escapes the three characters Slack treats as control characters in message text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// Markdown → mrkdwn: headings and `**bold**` → `*bold*`, `[text](url)` → `<url|text>`,
/// `- item` → `• item`; code spans and fences kept; every `<`, `>`, `&` escaped first, so no
/// mention or broadcast in the source survives.
pub fn markdown_to_mrkdwn(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 16);
    let mut in_fence = false;
    for (i, line) in markdown.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            out.push_str("```");
            continue;
        }
        if in_fence {
            out.push_str(&escape(line));
            continue;
        }
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(heading) = heading_text(trimmed) {
            out.push('*');
            out.push_str(&inline(heading.trim_matches('*')));
            out.push('*');
        } else if let Some(item) = trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* ")) {
            out.push_str(indent);
            out.push_str("• ");
            out.push_str(&inline(item));
        } else {
            out.push_str(indent);
            out.push_str(&inline(trimmed));
        }
    }
    out
}

fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) {
        line[hashes..].strip_prefix(' ')
    } else {
        None
    }
}

/// Inline spans of one line: code spans are escaped but otherwise untouched.
fn inline(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, part) in line.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            out.push_str(&escape(part));
        } else {
            out.push_str(&links(&bold(&escape(part))));
        }
    }
    out
}

/// `**x**` and `__x__` → `*x*`.
fn bold(s: &str) -> String {
    s.replace("**", "*").replace("__", "_")
}

/// `[text](http…)` → `<url|text>`; anything else is left as written.
fn links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let parsed = after.find("](").and_then(|close| {
            let text = &after[..close];
            let tail = &after[close + 2..];
            let end = tail.find(')')?;
            let url = &tail[..end];
            let ok =
                (url.starts_with("http://") || url.starts_with("https://") || url.starts_with("mailto:"))
                    && !url.contains(char::is_whitespace)
                    && !url.contains('|');
            ok.then(|| (text, url, open + 1 + close + 2 + end + 1))
        });
        match parsed {
            Some((text, url, consumed)) => {
                out.push_str(&rest[..open]);
                out.push('<');
                out.push_str(url);
                out.push('|');
                out.push_str(&text.replace('|', "/"));
                out.push('>');
                rest = &rest[consumed..];
            }
            None => {
                out.push_str(&rest[..open + 1]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits text into pieces of at most `max` characters, at paragraph breaks where possible,
/// then at line breaks, then at spaces; never inside a code fence when a break outside exists.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map(|(i, _)| i).unwrap_or(rest.len());
        let window = &rest[..limit];
        let cut = window
            .rfind("\n\n")
            .or_else(|| window.rfind('\n'))
            .or_else(|| window.rfind(' '))
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(rest.to_string());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_and_mentions_in_generated_text_cannot_ping() {
        let out = markdown_to_mrkdwn("Hey <!channel> and <!here>, ask <@U123> or <!subteam^S1|it>");
        assert!(!out.contains("<!"), "{out}");
        assert!(!out.contains("<@"), "{out}");
        assert!(out.contains("&lt;!channel&gt;"), "{out}");
    }

    #[test]
    fn markdown_becomes_mrkdwn() {
        let out = markdown_to_mrkdwn(
            "## Fix it\n1. Open **Okta Verify**\n- see [the guide](https://example.com/x)\n`a < b`",
        );
        assert_eq!(
            out,
            "*Fix it*\n1. Open *Okta Verify*\n• see <https://example.com/x|the guide>\n`a &lt; b`"
        );
    }

    #[test]
    fn a_non_http_link_is_left_as_text() {
        assert_eq!(markdown_to_mrkdwn("[x](javascript:alert)"), "[x](javascript:alert)");
    }

    #[test]
    fn long_text_is_split_at_paragraphs_below_the_limit() {
        let para = "word ".repeat(100);
        let text = format!("{para}\n\n{para}\n\n{para}");
        let parts = split_message(&text, 1200);
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.chars().count() <= 1200));
        assert_eq!(parts.join(" ").split_whitespace().count(), 300);
    }
}

//! Turning Markdown (from the LLM or the knowledge base) into Slack output that cannot ping
//! anyone, and splitting long answers below Slack's limits.
//!
//! Two targets:
//! - [`markdown_to_mrkdwn`] for `chat.postMessage` text: bold, italics, strike, links, lists,
//!   quotes and code become Slack mrkdwn, and every `&`, `<`, `>` in the source is escaped, so
//!   `<!channel>`, `<!here>`, `<!subteam^…>` and `<@U…>` show as plain text.
//! - [`neutralise_markdown`] for the `markdown_text` of streamed messages, which Slack renders as
//!   standard Markdown: the text is kept, and the mention syntax is broken with an invisible
//!   word joiner.
//!
//! In both, the plain words `@here`, `@channel` and `@everyone` are neutralised too (replies are
//! posted with `link_names` off, but a streamed message has no such switch). Mentions the bot
//! chooses (assignee, requester) are added by the caller after formatting.

/// Longest message text we post in one piece; Slack truncates at 40,000 characters and renders
/// anything past ~4,000 collapsed, so answers are split well below that.
pub const MAX_MESSAGE_CHARS: usize = 3_500;

/// Invisible, zero-width: breaks `<@U…>` and `@here` without changing what people read.
const WORD_JOINER: char = '\u{2060}';

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
    neutralise_broadcast_words(&out)
}

/// `@here`, `@channel`, `@everyone` as plain words get a word joiner after the `@`.
fn neutralise_broadcast_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('@') {
        out.push_str(&rest[..=i]);
        let after = &rest[i + 1..];
        let word_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let word = after[..word_len].to_ascii_lowercase();
        if matches!(word.as_str(), "here" | "channel" | "everyone") {
            out.push(WORD_JOINER);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Markdown for a streamed message (`markdown_text`): unchanged except that `<@…>`, `<#…>`,
/// `<!…>` and the broadcast words cannot resolve into mentions.
pub fn neutralise_markdown(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() + 8);
    let mut chars = markdown.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '<' && matches!(chars.peek(), Some('@' | '#' | '!')) {
            out.push(WORD_JOINER);
        }
    }
    neutralise_broadcast_words(&out)
}

/// Markdown → mrkdwn: headings and `**bold**` → `*bold*`, `*italic*` → `_italic_`,
/// `~~strike~~` → `~strike~`, `[text](url)` → `<url|text>`, `- item` → `• item`, tables into a
/// code block; code spans and fences kept (fence languages dropped); every `<`, `>`, `&`
/// escaped first, so no mention or broadcast in the source survives.
pub fn markdown_to_mrkdwn(markdown: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_fence = false;
    let mut in_table = false;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            in_fence = !in_fence;
            out.push("```".to_string());
            continue;
        }
        if in_fence {
            out.push(escape(line));
            continue;
        }
        let is_table_row = trimmed.starts_with('|') && trimmed.trim_end().ends_with('|');
        if is_table_row != in_table {
            in_table = is_table_row;
            out.push("```".to_string());
        }
        if is_table_row {
            if !is_table_separator(trimmed) {
                out.push(escape(trimmed.trim_end()));
            }
            continue;
        }
        out.push(convert_line(line));
    }
    if in_table || in_fence {
        out.push("```".to_string());
    }
    out.join("\n")
}

fn is_table_separator(row: &str) -> bool {
    row.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '))
}

fn convert_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let indent_len = line.len() - trimmed.len();
    let indent = &line[..indent_len];
    if let Some(heading) = heading_text(trimmed) {
        let inner = inline(heading.trim().trim_matches('*'));
        return if inner.is_empty() { String::new() } else { format!("*{inner}*") };
    }
    if is_rule(trimmed) {
        return String::new();
    }
    if let Some(quote) = trimmed.strip_prefix('>') {
        // A quote marker is the one `>` left raw: it cannot form a mention.
        return format!(">{}", inline(quote.strip_prefix(' ').unwrap_or(quote)));
    }
    for marker in ["- ", "* ", "+ "] {
        if let Some(item) = trimmed.strip_prefix(marker) {
            let level = indent.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum::<usize>() / 2;
            let bullet = if level == 0 { "•" } else { "◦" };
            let pad = "    ".repeat(level.min(4));
            let item = item
                .strip_prefix("[ ] ")
                .map(|t| format!("☐ {t}"))
                .or_else(|| item.strip_prefix("[x] ").map(|t| format!("☑ {t}")))
                .unwrap_or_else(|| item.to_string());
            return format!("{pad}{bullet} {}", inline(&item));
        }
    }
    format!("{indent}{}", inline(trimmed))
}

fn heading_text(line: &str) -> Option<&str> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    if (1..=6).contains(&hashes) {
        line[hashes..].strip_prefix(' ').or_else(|| line[hashes..].is_empty().then_some(""))
    } else {
        None
    }
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3
        && (t.chars().all(|c| c == '-' || c == ' ')
            || t.chars().all(|c| c == '*' || c == ' ')
            || t.chars().all(|c| c == '_' || c == ' '))
        && t.chars().filter(|c| !c.is_whitespace()).count() >= 3
}

/// Inline spans of one line: code spans are escaped but otherwise untouched; links and URLs are
/// kept whole (their `_` and `*` are not emphasis); the rest gets emphasis converted.
fn inline(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, part) in split_code_spans(line).into_iter().enumerate() {
        if i % 2 == 1 {
            out.push('`');
            out.push_str(&escape(part));
            out.push('`');
        } else {
            out.push_str(&links_and_text(part));
        }
    }
    out
}

/// Splits on backticks that pair up; odd pieces are code. An unpaired backtick stays text.
fn split_code_spans(line: &str) -> Vec<&str> {
    let ticks: Vec<usize> = line.match_indices('`').map(|(i, _)| i).collect();
    let pairs = ticks.len() / 2 * 2;
    let mut parts = Vec::new();
    let mut from = 0;
    for pair in ticks[..pairs].chunks(2) {
        parts.push(&line[from..pair[0]]);
        parts.push(&line[pair[0] + 1..pair[1]]);
        from = pair[1] + 1;
    }
    parts.push(&line[from..]);
    parts
}

/// Markdown links, autolinks and bare URLs become Slack links; text between them gets
/// emphasis converted and escaped.
fn links_and_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut text_start = 0;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if let Some((link, consumed)) = link_at(rest) {
            out.push_str(&emphasis(&escape(&s[text_start..i])));
            out.push_str(&link);
            i += consumed;
            text_start = i;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out.push_str(&emphasis(&escape(&s[text_start..])));
    out
}

/// A link starting at the beginning of `s`, rendered as Slack mrkdwn, and its length.
fn link_at(s: &str) -> Option<(String, usize)> {
    let safe_url = |u: &str| {
        (u.starts_with("http://") || u.starts_with("https://") || u.starts_with("mailto:"))
            && !u.contains(char::is_whitespace)
            && !u.contains(['|', '<', '>'])
    };
    if let Some(after) = s.strip_prefix("![").or_else(|| s.strip_prefix('[')) {
        let bang = s.starts_with('!');
        let close = after.find("](")?;
        let text = &after[..close];
        if text.contains('[') {
            return None;
        }
        let tail = &after[close + 2..];
        let end = tail.find(')')?;
        let url = &tail[..end];
        if !safe_url(url) {
            return None;
        }
        let label = emphasis(&escape(&text.replace('|', "/")));
        let consumed = usize::from(bang) + 1 + close + 2 + end + 1;
        return Some((format!("<{url}|{label}>"), consumed));
    }
    if let Some(after) = s.strip_prefix('<') {
        let end = after.find('>')?;
        let url = &after[..end];
        if safe_url(url) {
            return Some((format!("<{url}>"), end + 2));
        }
        return None;
    }
    if s.starts_with("http://") || s.starts_with("https://") {
        let len =
            s.find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '|' | '"')).unwrap_or(s.len());
        let url = s[..len].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        // Only the URL itself; the `&` in a query string is escaped as Slack asks.
        return Some((url.replace('&', "&amp;"), url.len()));
    }
    None
}

/// Markdown emphasis → mrkdwn on escaped text without code or links.
fn emphasis(s: &str) -> String {
    const B: char = '\u{E000}';
    const I: char = '\u{E001}';
    const S: char = '\u{E002}';
    let s = wrap(s, "***", &format!("{B}{I}"), &format!("{I}{B}"), false);
    let s = wrap(&s, "**", &B.to_string(), &B.to_string(), false);
    let s = wrap(&s, "__", &B.to_string(), &B.to_string(), true);
    let s = wrap(&s, "~~", &S.to_string(), &S.to_string(), false);
    let s = wrap(&s, "*", &I.to_string(), &I.to_string(), false);
    let s = wrap(&s, "_", &I.to_string(), &I.to_string(), true);
    s.replace(B, "*").replace(I, "_").replace(S, "~")
}

/// Replaces `delim text delim` pairs with `open text close`. The text must not start or end
/// with a space; with `word_bounded`, the delimiters must not touch letters outside the pair
/// (so `snake_case_name` stays as it is).
fn wrap(s: &str, delim: &str, open: &str, close: &str, word_bounded: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(delim) {
        let before = rest[..start].chars().next_back();
        let inner_from = start + delim.len();
        let opens = rest[inner_from..].chars().next().is_some_and(|c| !c.is_whitespace())
            && !(word_bounded && before.is_some_and(char::is_alphanumeric));
        let close_at = opens.then(|| find_close(&rest[inner_from..], delim, word_bounded)).flatten();
        match close_at {
            Some(len) => {
                out.push_str(&rest[..start]);
                out.push_str(open);
                out.push_str(&rest[inner_from..inner_from + len]);
                out.push_str(close);
                rest = &rest[inner_from + len + delim.len()..];
            }
            None => {
                out.push_str(&rest[..inner_from]);
                rest = &rest[inner_from..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn find_close(s: &str, delim: &str, word_bounded: bool) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find(delim).map(|i| i + from) {
        let before = s[..i].chars().next_back();
        let after = s[i + delim.len()..].chars().next();
        let ok = i > 0
            && before.is_some_and(|c| !c.is_whitespace())
            && !(word_bounded && after.is_some_and(char::is_alphanumeric));
        if ok {
            return Some(i);
        }
        from = i + delim.len();
    }
    None
}

/// Splits text into pieces of at most `max` characters, at paragraph breaks where possible,
/// then at line breaks, then at spaces. A piece that ends inside a code block closes it, and the
/// next piece reopens it, so each message renders on its own.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    // Room for the fence a piece may need to close or reopen.
    let budget = max.saturating_sub(8).max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > budget {
        let limit = rest.char_indices().nth(budget).map(|(i, _)| i).unwrap_or(rest.len());
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
    let mut open = false;
    for part in parts.iter_mut() {
        if open {
            part.insert_str(0, "```\n");
        }
        let fences = part.lines().filter(|l| l.trim_start().starts_with("```")).count();
        open = fences % 2 == 1;
        if open {
            part.push_str("\n```");
        }
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
    fn plain_broadcast_words_are_neutralised_everywhere() {
        let out = markdown_to_mrkdwn("tell @here and @channel, not @hereford");
        assert!(!out.contains("@here "), "{out}");
        assert!(!out.contains("@channel"), "{out}");
        assert!(out.contains("@hereford"), "{out}");
        let md = neutralise_markdown("`<@U123>` <!here> @everyone **bold**");
        assert!(!md.contains("<@U") && !md.contains("<!h") && !md.contains("@everyone"), "{md}");
        assert!(md.contains("**bold**"));
        assert_eq!(md.replace(WORD_JOINER, ""), "`<@U123>` <!here> @everyone **bold**");
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
    fn italics_strike_and_bold_italics_convert() {
        assert_eq!(
            markdown_to_mrkdwn("*quit* the app, ~~old~~, ***now***"),
            "_quit_ the app, ~old~, *_now_*"
        );
        assert_eq!(markdown_to_mrkdwn("__Settings__ then _General_"), "*Settings* then _General_");
    }

    #[test]
    fn identifiers_and_urls_keep_their_underscores_and_stars() {
        let out = markdown_to_mrkdwn("set snake_case_name in https://wiki.acme.internal/a_b_c and 2 * 3 = 6");
        assert_eq!(out, "set snake_case_name in https://wiki.acme.internal/a_b_c and 2 * 3 = 6");
    }

    #[test]
    fn code_is_kept_and_fences_lose_their_language() {
        let out =
            markdown_to_mrkdwn("Run:\n```bash\nsudo jamf policy -event **x** <y>\n```\nthen `*not bold*`");
        assert_eq!(out, "Run:\n```\nsudo jamf policy -event **x** &lt;y&gt;\n```\nthen `*not bold*`");
    }

    #[test]
    fn nested_lists_quotes_and_tables_render() {
        let out = markdown_to_mrkdwn("- one\n  - two\n> note\n\n| a | b |\n|---|---|\n| 1 | 2 |\nafter");
        assert_eq!(out, "• one\n    ◦ two\n>note\n\n```\n| a | b |\n| 1 | 2 |\n```\nafter");
    }

    #[test]
    fn autolinks_and_images_become_slack_links() {
        assert_eq!(markdown_to_mrkdwn("<https://x.y/z>"), "<https://x.y/z>");
        assert_eq!(markdown_to_mrkdwn("![diagram](https://x.y/d.png)"), "<https://x.y/d.png|diagram>");
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

    #[test]
    fn a_split_inside_a_code_block_closes_and_reopens_it() {
        let code = (0..60).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
        let text = format!("Intro\n\n```\n{code}\n```\nEnd");
        let parts = split_message(&text, 200);
        assert!(parts.len() > 2);
        for p in &parts {
            assert!(p.chars().count() <= 200, "{p}");
            assert_eq!(p.matches("```").count() % 2, 0, "unbalanced fence in {p:?}");
        }
    }
}

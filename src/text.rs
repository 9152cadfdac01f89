//! Plain text shared by what the bot writes and what it reads back from the channel: the footer
//! under its answers (written by `compose`, stripped again by `tickets` and the prompt) and
//! clipping. Pure functions, no dependencies.

/// How to continue, at the end of every troubleshooting answer.
pub const HOW_TO_CONTINUE: &str = "_Reply in this thread to tell me how it went. \
If you'd rather have a person from IT, press *Get a human*, react with :-1: or say \"human\"._";

/// At most `max` characters, cut at a word boundary, with an ellipsis when cut.
pub fn clip(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map(|(a, _)| a.to_string()).unwrap_or(cut);
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_cuts_at_a_word_and_marks_the_cut() {
        assert_eq!(clip("restart   the\nclient", 40), "restart the client");
        assert_eq!(clip("restart the client please", 14), "restart the…");
        assert_eq!(clip("unbreakableword", 5), "unbre…");
    }
}

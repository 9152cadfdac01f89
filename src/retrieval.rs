//! Relevance ranking for short IT text: a tokenizer that knows a few IT spellings, and a BM25
//! index over documents with weighted fields (title, keywords, body). Pure code, no I/O; used
//! by the knowledge base and meant for the past-ticket index too.

use std::collections::HashMap;

/// Words too common to say anything about a problem.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "am", "an", "and", "any", "anyone", "are", "as", "at", "be",
    "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "get", "got", "had", "has",
    "have", "having", "hello", "help", "hey", "hi", "how", "i", "i'm", "if", "im", "in", "into", "is", "it",
    "it's", "its", "just", "me", "my", "now", "of", "on", "or", "our", "please", "so", "some", "still",
    "team", "thanks", "that", "the", "their", "then", "there", "this", "to", "today", "up", "us", "was",
    "we", "what", "when", "where", "which", "while", "who", "why", "will", "with", "would", "you", "your",
];

/// Spellings folded to one term, so "2FA", "MFA" and "two-factor" meet, and so on.
fn canonical(word: &str) -> &str {
    match word {
        "2fa" | "mfa" | "two-factor" | "twofactor" | "2-factor" => "mfa",
        "pw" | "pwd" | "passwd" | "passcode" | "passwords" => "password",
        "wi-fi" | "wireless" | "wlan" => "wifi",
        "macbook" | "macbooks" | "macos" | "imac" => "mac",
        "e-mail" | "emails" | "mail" => "email",
        "sign-in" | "signin" | "login" | "log-in" | "logon" => "signin",
        "1pass" | "1pw" | "onepassword" => "1password",
        "gh" => "github",
        "ovpn" | "openvpn" => "vpn",
        "can't" | "cant" | "cannot" | "unable" => "cannot",
        "won't" | "wont" => "wont",
        _ => word,
    }
}

/// A light suffix strip so "connecting", "connected" and "connects" meet "connect".
fn stem(word: &str) -> String {
    for suffix in ["ing", "ed", "es", "s"] {
        if let Some(base) = word.strip_suffix(suffix) {
            if base.len() >= 4 && !word.ends_with("ss") {
                return base.to_string();
            }
        }
    }
    word.to_string()
}

/// Lower-cased, stop-word-free, canonical and stemmed terms of `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-')) {
        let word = raw.trim_matches(|c| c == '\'' || c == '-');
        if word.is_empty() || STOPWORDS.contains(&word) {
            continue;
        }
        let word = canonical(word);
        // "sign in" / "log in" typed as two words.
        if word == "in" {
            continue;
        }
        out.push(stem(word));
    }
    // Join "sign in", "log in" into the canonical term the other spellings map to.
    let words: Vec<&str> = lower.split_whitespace().collect();
    for pair in words.windows(2) {
        if matches!(pair[0], "sign" | "log" | "logged" | "signed") && pair[1].starts_with("in") {
            out.push("signin".to_string());
        }
    }
    out
}

/// One field of a document and its weight (title and keywords count more than body text).
pub struct Field<'a> {
    pub text: &'a str,
    pub weight: f32,
}

/// BM25 over weighted fields (BM25F with one shared length normalisation).
#[derive(Debug, Default, Clone)]
pub struct Bm25 {
    /// Per document: weighted term frequencies.
    docs: Vec<HashMap<String, f32>>,
    /// Per document: weighted length.
    lengths: Vec<f32>,
    /// Documents containing each term.
    doc_freq: HashMap<String, usize>,
    avg_len: f32,
}

/// Saturation and length-normalisation constants; the usual values work for short text.
const K1: f32 = 1.2;
const B: f32 = 0.6;

impl Bm25 {
    pub fn build<'a>(documents: impl IntoIterator<Item = Vec<Field<'a>>>) -> Bm25 {
        let mut index = Bm25::default();
        for fields in documents {
            let mut tf: HashMap<String, f32> = HashMap::new();
            let mut len = 0.0;
            for field in fields {
                for term in tokenize(field.text) {
                    *tf.entry(term).or_default() += field.weight;
                    len += field.weight;
                }
            }
            for term in tf.keys() {
                *index.doc_freq.entry(term.clone()).or_default() += 1;
            }
            index.docs.push(tf);
            index.lengths.push(len);
        }
        let n = index.docs.len().max(1) as f32;
        index.avg_len = index.lengths.iter().sum::<f32>() / n;
        index
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Scores every document for `query`; returns (document, score) with score > 0, best first.
    pub fn search(&self, query: &str) -> Vec<(usize, f32)> {
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let n = self.docs.len() as f32;
        let mut scores: Vec<(usize, f32)> = self
            .docs
            .iter()
            .enumerate()
            .filter_map(|(i, tf)| {
                let norm = K1 * (1.0 - B + B * self.lengths[i] / self.avg_len.max(1.0));
                let score: f32 = terms
                    .iter()
                    .filter_map(|t| {
                        let f = *tf.get(t)?;
                        let df = *self.doc_freq.get(t)? as f32;
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        Some(idf * f * (K1 + 1.0) / (f + norm))
                    })
                    .sum();
                (score > 0.0).then_some((i, score))
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_folds_it_spellings_and_drops_stopwords() {
        assert_eq!(tokenize("My 2FA won't work"), vec!["mfa", "wont", "work"]);
        assert_eq!(tokenize("Wi-Fi keeps disconnecting"), vec!["wifi", "keep", "disconnect"]);
        assert!(tokenize("can't sign in to Okta").contains(&"signin".to_string()));
    }

    #[test]
    fn the_document_with_the_rare_matching_term_ranks_first() {
        let docs = [
            vec![
                Field { text: "VPN won't connect", weight: 3.0 },
                Field { text: "connect the tunnel", weight: 1.0 },
            ],
            vec![
                Field { text: "Zoom audio", weight: 3.0 },
                Field { text: "connect your headset", weight: 1.0 },
            ],
        ];
        let index = Bm25::build(docs);
        let hits = index.search("my vpn cannot connect");
        assert_eq!(hits[0].0, 0);
        assert!(index.search("printer toner").is_empty());
    }
}

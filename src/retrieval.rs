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
        "ovpn" | "openvpn" | "vpn's" => "vpn",
        "authenticator" | "2-step" | "2sv" | "otp" => "mfa",
        "laptop" | "laptops" | "notebook" => "mac",
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
    // Two-word spellings of the canonical terms: "sign in", "log in"; "okta verify" is MFA.
    let words: Vec<&str> = lower.split_whitespace().collect();
    for pair in words.windows(2) {
        if matches!(pair[0], "sign" | "log" | "logged" | "signed") && pair[1].starts_with("in") {
            out.push("signin".to_string());
        }
        if pair[0] == "okta" && pair[1].starts_with("verify") {
            out.push("mfa".to_string());
        }
    }
    out
}

/// One field of a document and its weight (title and keywords count more than body text).
pub struct Field<'a> {
    pub text: &'a str,
    pub weight: f32,
}

/// BM25 over weighted fields (BM25F with one shared length normalisation), kept as an
/// inverted index so documents can be added and removed one at a time and a query only touches
/// the documents that share a term with it.
#[derive(Debug, Default, Clone)]
pub struct Bm25 {
    /// Term → (document slot → weighted term frequency).
    postings: HashMap<String, HashMap<usize, f32>>,
    /// Per slot: the document's terms (for removal) and weighted length; `None` when free.
    docs: Vec<Option<(Vec<String>, f32)>>,
    free: Vec<usize>,
    live: usize,
    total_len: f32,
}

/// Saturation and length-normalisation constants; the usual values work for short text.
const K1: f32 = 1.2;
const B: f32 = 0.6;

impl Bm25 {
    /// An index of `documents`, slots numbered in order from 0.
    pub fn build<'a>(documents: impl IntoIterator<Item = Vec<Field<'a>>>) -> Bm25 {
        let mut index = Bm25::default();
        for fields in documents {
            index.add(&fields);
        }
        index
    }

    /// Adds a document; returns its slot (a freed slot is reused).
    pub fn add(&mut self, fields: &[Field<'_>]) -> usize {
        let mut tf: HashMap<String, f32> = HashMap::new();
        let mut len = 0.0;
        for field in fields {
            for term in tokenize(field.text) {
                *tf.entry(term).or_default() += field.weight;
                len += field.weight;
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.docs.push(None);
                self.docs.len() - 1
            }
        };
        let terms: Vec<String> = tf.keys().cloned().collect();
        for (term, f) in tf {
            self.postings.entry(term).or_default().insert(slot, f);
        }
        self.docs[slot] = Some((terms, len));
        self.live += 1;
        self.total_len += len;
        slot
    }

    /// Removes the document in `slot` (no-op if free).
    pub fn remove(&mut self, slot: usize) {
        let Some(Some((terms, len))) = self.docs.get_mut(slot).map(Option::take) else { return };
        for term in terms {
            if let Some(p) = self.postings.get_mut(&term) {
                p.remove(&slot);
                if p.is_empty() {
                    self.postings.remove(&term);
                }
            }
        }
        self.free.push(slot);
        self.live -= 1;
        self.total_len -= len;
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// How rare `term` (already tokenized) is in the index: BM25's inverse document frequency,
    /// 0 for a term no document holds.
    pub fn idf(&self, term: &str) -> f32 {
        let Some(p) = self.postings.get(term) else { return 0.0 };
        let (n, df) = (self.live as f32, p.len() as f32);
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// The score a short document holding every known term of `query` once would get: a scale
    /// for judging scores independent of the index's size.
    pub fn ceiling(&self, query: &str) -> f32 {
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let n = self.live as f32;
        terms
            .iter()
            .filter_map(|t| self.postings.get(t))
            .map(|p| {
                let df = p.len() as f32;
                ((n - df + 0.5) / (df + 0.5) + 1.0).ln() * (K1 + 1.0) / (1.0 + K1 * (1.0 - B))
            })
            .sum()
    }

    /// Scores the documents sharing a term with `query`; (slot, score) with score > 0, best first.
    pub fn search(&self, query: &str) -> Vec<(usize, f32)> {
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let n = self.live as f32;
        let avg_len = (self.total_len / n.max(1.0)).max(1.0);
        let mut scores: HashMap<usize, f32> = HashMap::new();
        for t in &terms {
            let Some(postings) = self.postings.get(t) else { continue };
            let df = postings.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for (&slot, &f) in postings {
                let len = self.docs[slot].as_ref().map(|d| d.1).unwrap_or(avg_len);
                let norm = K1 * (1.0 - B + B * len / avg_len);
                *scores.entry(slot).or_default() += idf * f * (K1 + 1.0) / (f + norm);
            }
        }
        let mut scores: Vec<(usize, f32)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
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

    #[test]
    fn removed_documents_are_not_found_and_their_slot_is_reused() {
        let mut index = Bm25::default();
        let a = index.add(&[Field { text: "okta verify new phone", weight: 1.0 }]);
        let b = index.add(&[Field { text: "vpn profile missing", weight: 1.0 }]);
        index.remove(a);
        assert!(index.search("okta verify").is_empty());
        assert_eq!(index.search("vpn")[0].0, b);
        assert_eq!(index.len(), 1);
        assert_eq!(index.add(&[Field { text: "zoom audio", weight: 1.0 }]), a);
    }
}

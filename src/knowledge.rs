//! The knowledge base: Markdown articles in `config/knowledge/*.md`, each with front matter
//! (`title`, `keywords`, `category`), first steps, `## If that didn't help` and
//! `## What to tell IT`. Articles are ranked with BM25 over title, keywords and text.
//!
//! The shipped articles are embedded in the binary, so the bot answers on a fresh machine; a
//! `knowledge/` folder beside the config file replaces them.

use std::path::Path;

use crate::retrieval::{Bm25, Field};
use crate::triage::Category;

/// The shipped articles, embedded. A unit test checks this list matches the folder.
pub const SHIPPED_ARTICLES: &[(&str, &str)] = &[
    ("access-and-change-requests.md", include_str!("../config/knowledge/access-and-change-requests.md")),
    ("aws-client-vpn.md", include_str!("../config/knowledge/aws-client-vpn.md")),
    ("github.md", include_str!("../config/knowledge/github.md")),
    ("gmail-google-workspace.md", include_str!("../config/knowledge/gmail-google-workspace.md")),
    ("google-calendar-sharing.md", include_str!("../config/knowledge/google-calendar-sharing.md")),
    ("jamf-mac.md", include_str!("../config/knowledge/jamf-mac.md")),
    ("mac-hardware-wont-start.md", include_str!("../config/knowledge/mac-hardware-wont-start.md")),
    ("okta-sso.md", include_str!("../config/knowledge/okta-sso.md")),
    ("okta-verify-mfa.md", include_str!("../config/knowledge/okta-verify-mfa.md")),
    ("onepassword.md", include_str!("../config/knowledge/onepassword.md")),
    ("password-reset.md", include_str!("../config/knowledge/password-reset.md")),
    ("slack.md", include_str!("../config/knowledge/slack.md")),
    (
        "software-install-admin-rights.md",
        include_str!("../config/knowledge/software-install-admin-rights.md"),
    ),
    ("wifi-network.md", include_str!("../config/knowledge/wifi-network.md")),
    ("zoom.md", include_str!("../config/knowledge/zoom.md")),
];

/// Weights of the fields in ranking: the title and keywords say what an article is about.
const TITLE_WEIGHT: f32 = 3.0;
const KEYWORD_WEIGHT: f32 = 2.0;
const BODY_WEIGHT: f32 = 0.5;

/// Below this BM25 score an article is not considered relevant to the question.
pub const MIN_SCORE: f32 = 2.0;

/// One article.
#[derive(Debug, Clone)]
pub struct Article {
    /// File name without `.md`.
    pub slug: String,
    pub title: String,
    pub keywords: Vec<String>,
    pub category: Category,
    /// The opening sentence(s) before the steps.
    pub intro: String,
    /// The first steps (numbered list).
    pub steps: String,
    /// `## If that didn't help`.
    pub alternative: String,
    /// `## What to tell IT`.
    pub tell_it: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct KnowledgeError {
    pub file: String,
    pub reason: String,
}

/// A ranked article.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub article: &'a Article,
    pub score: f32,
}

/// All articles and their index.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    articles: Vec<Article>,
    index: Bm25,
}

impl KnowledgeBase {
    /// The articles embedded in the binary.
    pub fn shipped() -> KnowledgeBase {
        let articles = SHIPPED_ARTICLES
            .iter()
            // Checked by a unit test, so every shipped article parses.
            .map(|(name, text)| Article::parse(name, text).expect("shipped knowledge articles are valid"))
            .collect();
        KnowledgeBase::new(articles)
    }

    /// Every `*.md` in `dir`, sorted by name. A bad article fails with its file and reason.
    pub fn load_dir(dir: &Path) -> Result<KnowledgeBase, KnowledgeError> {
        let err = |reason: String| KnowledgeError { file: dir.display().to_string(), reason };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        files.sort();
        let mut articles = Vec::new();
        for path in files {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path)
                .map_err(|e| KnowledgeError { file: name.clone(), reason: e.to_string() })?;
            articles.push(Article::parse(&name, &text)?);
        }
        if articles.is_empty() {
            return Err(err("no *.md articles found".into()));
        }
        Ok(KnowledgeBase::new(articles))
    }

    fn new(articles: Vec<Article>) -> KnowledgeBase {
        let keywords: Vec<String> = articles.iter().map(|a| a.keywords.join(" , ")).collect();
        let index = Bm25::build(articles.iter().zip(&keywords).map(|(a, k)| {
            vec![
                Field { text: &a.title, weight: TITLE_WEIGHT },
                Field { text: k, weight: KEYWORD_WEIGHT },
                Field { text: &a.intro, weight: BODY_WEIGHT },
                Field { text: &a.steps, weight: BODY_WEIGHT },
            ]
        }));
        KnowledgeBase { articles, index }
    }

    pub fn articles(&self) -> &[Article] {
        &self.articles
    }

    /// The `k` most relevant articles scoring at least [`MIN_SCORE`], best first.
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit<'_>> {
        self.index
            .search(query)
            .into_iter()
            .filter(|(_, score)| *score >= MIN_SCORE)
            .take(k)
            .map(|(i, score)| Hit { article: &self.articles[i], score })
            .collect()
    }
}

impl Article {
    /// Parses one article; `name` is used for the slug and in errors.
    pub fn parse(name: &str, text: &str) -> Result<Article, KnowledgeError> {
        let err = |reason: &str| KnowledgeError { file: name.to_string(), reason: reason.to_string() };
        let text = text.replace("\r\n", "\n");
        let rest =
            text.strip_prefix("---\n").ok_or_else(|| err("must start with a `---` front matter line"))?;
        let (front, body) =
            rest.split_once("\n---\n").ok_or_else(|| err("front matter is not closed by `---`"))?;
        let mut title = None;
        let mut keywords = Vec::new();
        let mut category = Category::Technical;
        for line in front.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) =
                line.split_once(':').ok_or_else(|| err("front matter lines are `key: value`"))?;
            let value = value.trim();
            match key.trim() {
                "title" => title = Some(value.to_string()),
                "keywords" => {
                    keywords =
                        value.split(',').map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect()
                }
                "category" => {
                    category = Category::parse(value)
                        .ok_or_else(|| err("category must be technical, access or change"))?
                }
                _ => return Err(err("unknown front matter key (title, keywords, category)")),
            }
        }
        let title = title.filter(|t| !t.is_empty()).ok_or_else(|| err("front matter needs a title"))?;

        let (first, after) = body
            .split_once("\n## If that didn't help\n")
            .ok_or_else(|| err("missing `## If that didn't help`"))?;
        let (alternative, tell_it) =
            after.split_once("\n## What to tell IT\n").ok_or_else(|| err("missing `## What to tell IT`"))?;
        let first = first.trim();
        // The intro is the text before the first numbered step.
        let steps_at = first
            .find("\n1. ")
            .map(|i| i + 1)
            .or_else(|| first.starts_with("1. ").then_some(0))
            .ok_or_else(|| err("the first section needs numbered steps (`1. …`)"))?;
        let slug = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| name.to_string());
        Ok(Article {
            slug,
            title,
            keywords,
            category,
            intro: first[..steps_at].trim().to_string(),
            steps: first[steps_at..].trim().to_string(),
            alternative: alternative.trim().to_string(),
            tell_it: tell_it.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn best(kb: &KnowledgeBase, q: &str) -> String {
        kb.search(q, 1).first().map(|h| h.article.slug.clone()).unwrap_or_default()
    }

    #[test]
    fn every_file_in_the_folder_is_embedded_and_parses() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/knowledge");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".md"))
            .collect();
        on_disk.sort();
        let embedded: Vec<String> = SHIPPED_ARTICLES.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(on_disk, embedded);
        let kb = KnowledgeBase::shipped();
        assert!(kb.articles().iter().all(|a| !a.steps.is_empty() && !a.alternative.is_empty()));
        assert_eq!(KnowledgeBase::load_dir(Path::new(dir)).unwrap().articles().len(), embedded.len());
    }

    #[test]
    fn questions_find_the_right_article() {
        let kb = KnowledgeBase::shipped();
        for (q, want) in [
            ("my vpn won't connect from home", "aws-client-vpn"),
            ("AWS VPN client says authentication failed", "aws-client-vpn"),
            ("got a new phone and okta verify isn't sending pushes", "okta-verify-mfa"),
            ("lost my phone, can't do 2FA", "okta-verify-mfa"),
            ("Okta keeps redirecting me in a loop when I open Salesforce", "okta-sso"),
            ("I forgot my password", "password-reset"),
            ("gmail is not loading my emails", "gmail-google-workspace"),
            ("my macbook won't turn on after a coffee spill", "mac-hardware-wont-start"),
            ("need to update macOS but Self Service fails", "jamf-mac"),
            ("cannot unlock 1Password, lost my secret key", "onepassword"),
            ("zoom can't hear anyone, microphone not working", "zoom"),
            ("git push gives 403 for our org repo", "github"),
            ("the office wifi won't connect on my laptop", "wifi-network"),
            ("slack notifications stopped on desktop", "slack"),
        ] {
            assert_eq!(best(&kb, q), want, "query: {q}");
        }
    }

    #[test]
    fn an_unrelated_question_finds_nothing() {
        let kb = KnowledgeBase::shipped();
        assert!(kb.search("what is for lunch on friday", 3).is_empty());
    }

    #[test]
    fn a_malformed_article_names_the_file_and_problem() {
        let e = Article::parse("x.md", "no front matter").unwrap_err();
        assert_eq!(e.to_string(), "x.md: must start with a `---` front matter line");
        let e = Article::parse("y.md", "---\ntitle: T\n---\n1. a\n").unwrap_err();
        assert_eq!(e.to_string(), "y.md: missing `## If that didn't help`");
    }
}

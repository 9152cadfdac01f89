//! The knowledge base: Markdown articles in `config/knowledge/*.md`, each with front matter
//! (`title`, `keywords`, `category`), first steps, `## If that didn't help` and
//! `## What to tell IT`. Articles are ranked with BM25 over title, keywords and text.
//!
//! The shipped articles are embedded in the binary, so the bot answers on a fresh machine; a
//! `knowledge/` folder beside the config file replaces them.
//!
//! Articles name the company through placeholders (`{company}`, `{idp_url}`, see [`facts`])
//! filled from `[company]` when the base is built. Front matter may say whom an article is for
//! (`platform: windows`, `suite: microsoft`, `identity_provider: okta`); a search only returns
//! the articles that fit the post and the company.
//!
//! An article for every computer writes the lines that differ once per platform, each starting
//! with `[mac]` or `[windows]` after its number or bullet; the rest is shared, so it cannot drift
//! between two copies. It is shown as the Mac version, the Windows version, or (when neither the
//! post nor `[company] platforms` says) both, labelled, chosen like any other article.

pub mod facts;

use std::path::Path;

pub use facts::Facts;
use facts::{Audience, IdentityProvider, Lines, Mentioned, Placeholder, Platform, Show, Suite};

use crate::retrieval::{Bm25, Field};
use crate::triage::Category;

/// The shipped articles, embedded. A unit test checks this list matches the folder.
pub const SHIPPED_ARTICLES: &[(&str, &str)] = &[
    ("access-and-change-requests.md", include_str!("../../config/knowledge/access-and-change-requests.md")),
    ("aws-client-vpn.md", include_str!("../../config/knowledge/aws-client-vpn.md")),
    ("github.md", include_str!("../../config/knowledge/github.md")),
    ("gmail-google-workspace.md", include_str!("../../config/knowledge/gmail-google-workspace.md")),
    ("google-calendar-sharing.md", include_str!("../../config/knowledge/google-calendar-sharing.md")),
    ("google-sign-in.md", include_str!("../../config/knowledge/google-sign-in.md")),
    ("jamf-mac.md", include_str!("../../config/knowledge/jamf-mac.md")),
    ("mac-hardware-wont-start.md", include_str!("../../config/knowledge/mac-hardware-wont-start.md")),
    ("microsoft-sign-in-mfa.md", include_str!("../../config/knowledge/microsoft-sign-in-mfa.md")),
    ("okta-sso.md", include_str!("../../config/knowledge/okta-sso.md")),
    ("okta-verify-mfa.md", include_str!("../../config/knowledge/okta-verify-mfa.md")),
    ("onepassword.md", include_str!("../../config/knowledge/onepassword.md")),
    ("outlook-calendar-sharing.md", include_str!("../../config/knowledge/outlook-calendar-sharing.md")),
    ("outlook-microsoft-365.md", include_str!("../../config/knowledge/outlook-microsoft-365.md")),
    ("password-reset.md", include_str!("../../config/knowledge/password-reset.md")),
    ("slack.md", include_str!("../../config/knowledge/slack.md")),
    (
        "software-install-admin-rights.md",
        include_str!("../../config/knowledge/software-install-admin-rights.md"),
    ),
    ("wifi-network.md", include_str!("../../config/knowledge/wifi-network.md")),
    ("windows-intune.md", include_str!("../../config/knowledge/windows-intune.md")),
    ("windows-pc-wont-start.md", include_str!("../../config/knowledge/windows-pc-wont-start.md")),
    ("windows-software-install.md", include_str!("../../config/knowledge/windows-software-install.md")),
    ("zoom.md", include_str!("../../config/knowledge/zoom.md")),
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
    /// File name without `.md`, and for a platform version of an article with per-platform
    /// lines, `-windows` or `-mac-and-windows` after it (see [`Article::platform_versions`]).
    pub slug: String,
    /// File name without `.md`: the same for every version of one article, so outages and
    /// reports count a problem once whichever computer it was answered for.
    pub topic: String,
    pub title: String,
    pub keywords: Vec<String>,
    pub category: Category,
    /// Whom the article is written for (platform, suite, identity provider).
    pub audience: Audience,
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

/// All articles, filled with the company's facts, and their index.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    /// Every article as it can be shown: an article with per-platform lines is here once per
    /// platform and once with both (see [`Article::platform_versions`]).
    articles: Vec<Article>,
    /// One document per article file, so the versions of one article share one score and the
    /// word statistics do not count a file several times.
    index: Bm25,
    /// Per document of the index: its versions in `articles`.
    versions: Vec<Vec<usize>>,
    facts: Facts,
    /// Per article (same order): the placeholders that fell back to general words.
    missing: Vec<Vec<&'static Placeholder>>,
}

impl KnowledgeBase {
    /// The articles embedded in the binary, for the company of the shipped configuration.
    pub fn shipped() -> KnowledgeBase {
        KnowledgeBase::shipped_for(&Facts::from_settings(&crate::config::Settings::shipped().company))
    }

    /// The articles embedded in the binary, for a company.
    pub fn shipped_for(facts: &Facts) -> KnowledgeBase {
        let articles = SHIPPED_ARTICLES
            .iter()
            // Checked by a unit test, so every shipped article parses.
            .map(|(name, text)| Article::parse(name, text).expect("shipped knowledge articles are valid"))
            .collect();
        KnowledgeBase::new(articles, facts)
    }

    /// Every `*.md` in `dir`, sorted by name, for a company. A bad article fails with its file
    /// and reason.
    pub fn load_dir(dir: &Path, facts: &Facts) -> Result<KnowledgeBase, KnowledgeError> {
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
        Ok(KnowledgeBase::new(articles, facts))
    }

    fn new(sources: Vec<Article>, facts: &Facts) -> KnowledgeBase {
        let (mut articles, mut missing, mut versions, mut indexed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for source in &sources {
            let mut these = Vec::new();
            for version in source.platform_versions() {
                let (article, unset) = version.filled(facts);
                these.push(articles.len());
                articles.push(article);
                missing.push(unset);
            }
            versions.push(these);
            // Both platforms' steps, unlabelled: what the article is about, whoever reads it.
            indexed.push(source.for_platform(Show::Unmarked).filled(facts).0);
        }
        let keywords: Vec<String> = indexed.iter().map(|a| a.keywords.join(" , ")).collect();
        let index = Bm25::build(indexed.iter().zip(&keywords).map(|(a, k)| {
            vec![
                Field { text: &a.title, weight: TITLE_WEIGHT },
                Field { text: k, weight: KEYWORD_WEIGHT },
                Field { text: &a.intro, weight: BODY_WEIGHT },
                Field { text: &a.steps, weight: BODY_WEIGHT },
            ]
        }));
        KnowledgeBase { articles, index, versions, facts: facts.clone(), missing }
    }

    pub fn articles(&self) -> &[Article] {
        &self.articles
    }

    /// The topic of the article `slug` (see [`Article::topic`]); `slug` itself when no article
    /// has it (an article removed since a thread named it).
    pub fn topic<'a>(&'a self, slug: &'a str) -> &'a str {
        self.articles.iter().find(|a| a.slug == slug).map_or(slug, |a| a.topic.as_str())
    }

    /// The company facts the articles were filled with.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Per article, the placeholders that said general words because their key is not set.
    pub fn unfilled(&self) -> impl Iterator<Item = (&Article, &[&'static Placeholder])> {
        self.articles.iter().zip(&self.missing).map(|(a, m)| (a, m.as_slice()))
    }

    /// The `k` most relevant articles scoring at least [`MIN_SCORE`], best first, among those
    /// that fit the post and the company (see [`Audience::fits`]).
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit<'_>> {
        let mentioned = Mentioned::of(query);
        self.index
            .search(query)
            .into_iter()
            .filter(|(_, score)| *score >= MIN_SCORE)
            .filter_map(|(doc, score)| {
                let fits = |i: &&usize| self.articles[**i].audience.fits(&mentioned, &self.facts);
                self.versions[doc].iter().find(fits).map(|&i| Hit { article: &self.articles[i], score })
            })
            .take(k)
            .collect()
    }
}

impl Article {
    /// The versions of this article that can be shown. An article whose lines say which
    /// platform they are for (`[mac]`, `[windows]`) and whose front matter names no platform is
    /// one version per platform (the Mac one keeps the slug, the Windows one is `…-windows`)
    /// and one with both platforms' lines labelled (`…-mac-and-windows`), for when neither the
    /// post nor the company says which computer it is. Any other article is itself.
    pub fn platform_versions(&self) -> Vec<Article> {
        let marked = [&self.intro, &self.steps, &self.alternative, &self.tell_it]
            .into_iter()
            .any(|t| facts::has_platform_lines(t));
        if !marked {
            return vec![self.clone()];
        }
        if let Some(p) = self.audience.platform {
            return vec![self.for_platform(Show::Only(p))];
        }
        let mut mac = self.for_platform(Show::Only(Platform::MacOs));
        mac.audience.platform = Some(Platform::MacOs);
        mac.audience.lines = Lines::OnePlatform;
        let mut windows = self.for_platform(Show::Only(Platform::Windows));
        windows.audience.platform = Some(Platform::Windows);
        windows.audience.lines = Lines::OnePlatform;
        windows.slug = format!("{}-windows", self.slug);
        let mut both = self.for_platform(Show::Labelled);
        both.audience.lines = Lines::BothPlatforms;
        both.slug = format!("{}-mac-and-windows", self.slug);
        vec![mac, windows, both]
    }

    /// This article with its per-platform lines chosen by `show`.
    fn for_platform(&self, show: Show) -> Article {
        let render = |t: &str| facts::for_platform(t, show);
        Article {
            intro: render(&self.intro),
            steps: render(&self.steps),
            alternative: render(&self.alternative),
            tell_it: render(&self.tell_it),
            ..self.clone()
        }
    }

    /// This article with its placeholders filled from `facts`, and the ones that fell back.
    pub fn filled(&self, facts: &Facts) -> (Article, Vec<&'static Placeholder>) {
        let mut missing = Vec::new();
        let mut fill = |t: &str| facts::fill(t, facts, &mut missing);
        let article = Article {
            slug: self.slug.clone(),
            topic: self.topic.clone(),
            title: fill(&self.title),
            keywords: self.keywords.iter().map(|k| fill(k)).collect(),
            category: self.category,
            audience: self.audience,
            intro: fill(&self.intro),
            steps: fill(&self.steps),
            alternative: fill(&self.alternative),
            tell_it: fill(&self.tell_it),
        };
        (article, missing)
    }

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
        let mut audience = Audience::default();
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
                "platform" => {
                    audience.platform =
                        Some(Platform::parse(value).ok_or_else(|| err("platform must be macos or windows"))?)
                }
                "suite" => {
                    audience.suite =
                        Some(Suite::parse(value).ok_or_else(|| err("suite must be google or microsoft"))?)
                }
                "identity_provider" => {
                    audience.identity_provider = Some(
                        IdentityProvider::parse(value)
                            .ok_or_else(|| err("identity_provider must be okta, microsoft or google"))?,
                    )
                }
                _ => {
                    return Err(err(
                        "unknown front matter key (title, keywords, category, platform, suite, identity_provider)",
                    ))
                }
            }
        }
        let title = title.filter(|t| !t.is_empty()).ok_or_else(|| err("front matter needs a title"))?;
        let unknown = facts::unknown_placeholders(&text);
        if !unknown.is_empty() {
            let known: Vec<&str> = facts::PLACEHOLDERS.iter().map(|p| p.name).collect();
            return Err(KnowledgeError {
                file: name.to_string(),
                reason: format!(
                    "unknown placeholder {{{}}} (known: {})",
                    unknown.join("}, {"),
                    known.join(", ")
                ),
            });
        }

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
            topic: slug.clone(),
            slug,
            title,
            keywords,
            category,
            audience,
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
        let facts = Facts::default();
        let loaded = KnowledgeBase::load_dir(Path::new(dir), &facts).unwrap();
        assert_eq!(loaded.articles().len(), kb.articles().len());
        assert_eq!(loaded.versions.len(), embedded.len(), "one index document per file");
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

    use crate::config::Settings;

    /// Company facts from the shipped `[company]` with `edit` applied, as an operator would
    /// configure them.
    fn company(edit: impl FnOnce(&mut crate::config::CompanySettings)) -> Facts {
        let mut c = Settings::shipped().company;
        edit(&mut c);
        Facts::from_settings(&c)
    }

    /// Every key set, Mac and Google with Okta.
    fn full() -> Facts {
        company(|c| {
            c.name = "Globex".into();
            c.email_domains = vec!["globex.com".into()];
            c.identity_provider = "okta".into();
            c.sign_in_url = "https://globex.okta.com".into();
            c.platforms = vec!["macos".into(), "windows".into()];
            c.productivity_suite = "google".into();
            c.ticket_portal_url = "https://globex.atlassian.net/servicedesk".into();
            c.github_org = "globex-eng".into();
        })
    }

    /// Nothing set at all.
    fn empty() -> Facts {
        company(|c| {
            c.name.clear();
            c.email_domains.clear();
            c.identity_provider.clear();
            c.sign_in_url.clear();
            c.platforms.clear();
            c.productivity_suite.clear();
            c.ticket_portal_url.clear();
            c.github_org.clear();
        })
    }

    /// Windows and Microsoft 365, signing in with Microsoft: no Okta anywhere.
    fn windows_microsoft() -> Facts {
        company(|c| {
            c.name = "Initech".into();
            c.email_domains = vec!["initech.com".into()];
            c.identity_provider = "microsoft".into();
            c.sign_in_url.clear();
            c.platforms = vec!["windows".into()];
            c.productivity_suite = "microsoft".into();
        })
    }

    /// Google Workspace signing in with Google: no Okta.
    fn google_workspace() -> Facts {
        company(|c| {
            c.identity_provider = "google".into();
            c.sign_in_url.clear();
            c.productivity_suite = "google".into();
        })
    }

    /// Windows only, nothing else set.
    fn windows_only() -> Facts {
        company(|c| c.platforms = vec!["windows".into()])
    }

    fn text_of(a: &Article) -> String {
        [a.title.as_str(), &a.intro, &a.steps, &a.alternative, &a.tell_it].join("\n")
    }

    #[test]
    fn every_shipped_article_renders_without_a_raw_placeholder_for_any_company() {
        for (name, facts) in [
            ("full", full()),
            ("empty", empty()),
            ("windows + microsoft", windows_microsoft()),
            ("windows", windows_only()),
            ("google", google_workspace()),
        ] {
            let kb = KnowledgeBase::shipped_for(&facts);
            for a in kb.articles() {
                let text = text_of(a);
                let raw = facts::raw_placeholders(&text);
                assert!(raw.is_empty(), "{name}: {} shows {raw:?}", a.slug);
                // A fallback's words must fit the sentence around them.
                for doubled in ["the the ", "your your ", "the your ", "a your ", "your the "] {
                    assert!(!text.to_lowercase().contains(doubled), "{name}: {} reads `{doubled}`", a.slug);
                }
            }
        }
    }

    #[test]
    fn a_fully_configured_company_is_named_and_nothing_falls_back() {
        let kb = KnowledgeBase::shipped_for(&full());
        let unfilled: Vec<String> = kb
            .unfilled()
            .filter(|(_, m)| !m.is_empty())
            .map(|(a, m)| format!("{}: {:?}", a.slug, m.iter().map(|p| p.key).collect::<Vec<_>>()))
            .collect();
        assert!(unfilled.is_empty(), "{unfilled:?}");
        let sso = kb.articles().iter().find(|a| a.slug == "okta-sso").unwrap();
        assert!(sso.steps.contains("(https://globex.okta.com)"), "{}", sso.steps);
        let github = kb.articles().iter().find(|a| a.slug == "github").unwrap();
        assert!(github.steps.contains("https://github.com/orgs/globex-eng/sso"), "{}", github.steps);
    }

    #[test]
    fn a_company_without_okta_reads_its_own_sign_in_and_missing_values_in_words() {
        let kb = KnowledgeBase::shipped_for(&windows_microsoft());
        let vpn = kb.articles().iter().find(|a| a.slug == "aws-client-vpn").unwrap();
        assert!(vpn.steps.contains("A browser tab opens for Microsoft"), "{}", vpn.steps);
        assert!(vpn.steps.contains("Microsoft Authenticator"), "{}", vpn.steps);
        let reset = kb.articles().iter().find(|a| a.slug == "password-reset").unwrap();
        assert!(reset.steps.contains("https://myapps.microsoft.com"), "{}", reset.steps);

        let kb = KnowledgeBase::shipped_for(&empty());
        let reset = kb.articles().iter().find(|a| a.slug == "password-reset").unwrap();
        assert!(reset.steps.contains("go to your company's sign-in page"), "{}", reset.steps);
    }

    #[test]
    fn the_device_article_follows_the_company_platform_unless_the_post_names_one() {
        let mac = company(|c| c.platforms = vec!["macos".into()]);
        let windows = company(|c| c.platforms = vec!["windows".into()]);
        let mac_first = company(|c| c.platforms = vec!["macos".into(), "windows".into()]);
        for (facts, q, want) in [
            (&mac, "my laptop won't turn on", "mac-hardware-wont-start"),
            (&windows, "my laptop won't turn on", "windows-pc-wont-start"),
            (&mac_first, "my laptop won't turn on", "mac-hardware-wont-start"),
            (&mac, "my Windows laptop won't turn on", "windows-pc-wont-start"),
            (&windows, "my MacBook won't turn on", "mac-hardware-wont-start"),
            (&windows, "I need admin rights to install software", "windows-software-install"),
            (&mac, "I need admin rights to install software", "software-install-admin-rights"),
            (&windows, "the update keeps failing and wants a restart", "windows-intune"),
            (&mac, "the update keeps failing and wants a restart", "jamf-mac"),
        ] {
            let kb = KnowledgeBase::shipped_for(facts);
            assert_eq!(best(&kb, q), want, "platforms {:?}: {q}", facts.platforms);
        }
    }

    /// The steps of the article shown for `q`, by slug and text.
    fn shown(kb: &KnowledgeBase, q: &str) -> (String, String) {
        let hit = kb.search(q, 1);
        let a = hit.first().unwrap_or_else(|| panic!("nothing found for {q}")).article;
        (a.slug.clone(), text_of(a))
    }

    #[test]
    fn a_cross_platform_article_shows_the_company_platform_unless_the_post_names_one() {
        let mac = company(|c| c.platforms = vec!["macos".into()]);
        let windows = windows_only();
        let mac_first = company(|c| c.platforms = vec!["macos".into(), "windows".into()]);
        let windows_first = company(|c| c.platforms = vec!["windows".into(), "macos".into()]);
        let none = company(|c| c.platforms.clear());
        // (article, a post naming no computer, a line only its Mac steps have, only Windows')
        let articles = [
            ("aws-client-vpn", "the vpn won't connect", "from Applications", "from the Start menu"),
            (
                "wifi-network",
                "can't connect to the office wifi",
                "Forget This Network",
                "Manage known networks",
            ),
            (
                "zoom",
                "zoom can't hear anyone, mic not working",
                "Screen & System Audio Recording",
                "Installed apps",
            ),
            (
                "slack",
                "slack notifications stopped",
                "System Settings > Notifications > Slack",
                "Settings > System > Notifications",
            ),
        ];
        for (slug, q, mac_line, windows_line) in articles {
            let windows_slug = format!("{slug}-windows");
            for (facts, q, want, has, lacks) in [
                (&mac, q.to_string(), slug.to_string(), mac_line, windows_line),
                (&windows, q.to_string(), windows_slug.clone(), windows_line, mac_line),
                // Both listed, nothing named: the main (first) platform's steps.
                (&mac_first, q.to_string(), slug.to_string(), mac_line, windows_line),
                (&windows_first, q.to_string(), windows_slug.clone(), windows_line, mac_line),
                // The post names the computer: its steps, whatever the company runs.
                (&mac, format!("{q} on my Windows laptop"), windows_slug.clone(), windows_line, mac_line),
                (&mac, format!("{q} on my PC"), windows_slug.clone(), windows_line, mac_line),
                (&windows, format!("{q} on my MacBook"), slug.to_string(), mac_line, windows_line),
            ] {
                let kb = KnowledgeBase::shipped_for(facts);
                let (got, text) = shown(&kb, &q);
                assert_eq!(got, want, "platforms {:?}: {q}", facts.platforms);
                assert!(text.contains(has) && !text.contains(lacks), "{got} for {q}:\n{text}");
            }
            // Nothing configured, nothing named: both, each labelled.
            let (got, text) = shown(&KnowledgeBase::shipped_for(&none), q);
            assert_eq!(got, format!("{slug}-mac-and-windows"), "{q}");
            assert!(text.contains(mac_line) && text.contains(windows_line), "{got}:\n{text}");
            assert!(text.contains("On a Mac: ") && text.contains("On Windows: "), "{got}:\n{text}");
        }
    }

    #[test]
    fn a_platform_version_is_numbered_in_order_and_shows_no_marker() {
        let kb = KnowledgeBase::shipped_for(&full());
        for a in kb.articles() {
            for list in [&a.steps, &a.alternative] {
                let numbers: Vec<usize> = list
                    .lines()
                    .filter_map(|l| l.split_once(". ").and_then(|(n, _)| n.parse().ok()))
                    .collect();
                let want: Vec<usize> = (1..=numbers.len()).collect();
                assert_eq!(numbers, want, "{}:\n{list}", a.slug);
            }
        }
        let windows = kb.articles().iter().find(|a| a.slug == "aws-client-vpn-windows").unwrap();
        assert_eq!(kb.topic("aws-client-vpn-windows"), "aws-client-vpn");
        assert_eq!(kb.topic("aws-client-vpn-mac-and-windows"), "aws-client-vpn");
        assert_eq!(kb.topic("no-such-article"), "no-such-article");
        assert!(
            windows.steps.starts_with("1. Open **AWS VPN Client** from the Start menu."),
            "{}",
            windows.steps
        );
        assert!(windows.alternative.contains("`%AppData%\\AWSVPNClient\\logs`"), "{}", windows.alternative);
    }

    #[test]
    fn the_mail_and_calendar_articles_follow_the_suite_unless_the_post_names_the_app() {
        let google = company(|c| c.productivity_suite = "google".into());
        let microsoft = company(|c| c.productivity_suite = "microsoft".into());
        for (facts, q, want) in [
            (&google, "emails from a customer are missing from my inbox", "gmail-google-workspace"),
            (&microsoft, "emails from a customer are missing from my inbox", "outlook-microsoft-365"),
            (&google, "Outlook keeps asking for my password", "outlook-microsoft-365"),
            (&microsoft, "gmail is not loading my emails", "gmail-google-workspace"),
            (&google, "how do I share my calendar with my assistant", "google-calendar-sharing"),
            (&microsoft, "how do I share my calendar with my assistant", "outlook-calendar-sharing"),
        ] {
            let kb = KnowledgeBase::shipped_for(facts);
            assert_eq!(best(&kb, q), want, "suite {:?}: {q}", facts.suite);
        }
    }

    #[test]
    fn the_sign_in_and_mfa_articles_follow_the_identity_provider() {
        let okta = company(|c| c.identity_provider = "okta".into());
        let microsoft = company(|c| c.identity_provider = "microsoft".into());
        for (facts, q, want) in [
            (&okta, "got a new phone and the MFA push never arrives", "okta-verify-mfa"),
            (&microsoft, "got a new phone and the MFA push never arrives", "microsoft-sign-in-mfa"),
            (&microsoft, "okta verify isn't sending pushes", "okta-verify-mfa"),
            (&okta, "sign in keeps redirecting me in a loop", "okta-sso"),
            (&microsoft, "sign in keeps redirecting me in a loop", "microsoft-sign-in-mfa"),
        ] {
            let kb = KnowledgeBase::shipped_for(facts);
            assert_eq!(best(&kb, q), want, "identity provider {:?}: {q}", facts.identity_provider);
        }
    }

    #[test]
    fn a_company_signing_in_with_google_gets_the_google_sign_in_article() {
        let google = company(|c| {
            c.identity_provider = "google".into();
            c.email_domains = vec!["globex.com".into()];
        });
        let okta = company(|c| c.identity_provider = "okta".into());
        for (facts, q, want) in [
            (&google, "got a new phone and the MFA prompt never arrives", "google-sign-in"),
            (&google, "lost my phone, can't do 2FA", "google-sign-in"),
            (&google, "I can't log in, it says This account is locked", "google-sign-in"),
            (&google, "where do I find my backup codes", "google-sign-in"),
            (&google, "can't sign in to my work account", "google-sign-in"),
            (&okta, "lost my phone, can't do 2FA", "okta-verify-mfa"),
            // The post names Google sign-in: its article, whatever the company's provider.
            (&okta, "my Google account asks for 2-Step Verification and I lost my phone", "google-sign-in"),
            (&google, "okta verify isn't sending pushes", "okta-verify-mfa"),
        ] {
            let kb = KnowledgeBase::shipped_for(facts);
            assert_eq!(best(&kb, q), want, "identity provider {:?}: {q}", facts.identity_provider);
        }
        let kb = KnowledgeBase::shipped_for(&google);
        let article = kb.articles().iter().find(|a| a.slug == "google-sign-in").unwrap();
        let text = text_of(article);
        assert!(text.contains("name@globex.com") && text.contains("https://myaccount.google.com"), "{text}");
        assert!(text.contains("Try another way") && text.contains("backup code"), "{text}");
    }

    #[test]
    fn an_unknown_placeholder_names_the_file_and_the_placeholder() {
        let text = "---\ntitle: T\n---\n1. go to {okta_url}\n\n## If that didn't help\n1. a\n\n## What to tell IT\nb\n";
        let e = Article::parse("z.md", text).unwrap_err().to_string();
        assert!(e.starts_with("z.md: unknown placeholder {okta_url} (known: company, "), "{e}");
    }

    #[test]
    fn a_malformed_article_names_the_file_and_problem() {
        let e = Article::parse("x.md", "no front matter").unwrap_err();
        assert_eq!(e.to_string(), "x.md: must start with a `---` front matter line");
        let e = Article::parse("y.md", "---\ntitle: T\n---\n1. a\n").unwrap_err();
        assert_eq!(e.to_string(), "y.md: missing `## If that didn't help`");
    }
}

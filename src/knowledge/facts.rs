//! Company facts in articles: the `{placeholders}` an article may use, filled from `[company]`,
//! and the platform, suite and identity provider that decide which articles apply to a post.
//!
//! A placeholder is `{name}` or `{name|words to say when the value is not set}`. Every name has a
//! general default for when the value is missing, so an employee never reads a raw placeholder;
//! an article gives its own words where the default would not fit the sentence.

use crate::config::CompanySettings;

/// The computer an article is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    MacOs,
    Windows,
}

/// The mail, calendar and files suite an article is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Google,
    Microsoft,
}

/// The identity provider (single sign-on and MFA) an article is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityProvider {
    Okta,
    Microsoft,
    Google,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        match s.trim() {
            "macos" => Some(Platform::MacOs),
            "windows" => Some(Platform::Windows),
            _ => None,
        }
    }

    /// What starts a line written for this platform only: `2. [windows] Open Settings…`.
    pub fn marker(self) -> &'static str {
        match self {
            Platform::MacOs => "[mac]",
            Platform::Windows => "[windows]",
        }
    }

    /// What such a line says when both platforms' lines are shown.
    fn label(self) -> &'static str {
        match self {
            Platform::MacOs => "On a Mac:",
            Platform::Windows => "On Windows:",
        }
    }
}

impl Suite {
    pub fn parse(s: &str) -> Option<Suite> {
        match s.trim() {
            "google" => Some(Suite::Google),
            "microsoft" => Some(Suite::Microsoft),
            _ => None,
        }
    }
}

impl IdentityProvider {
    pub fn parse(s: &str) -> Option<IdentityProvider> {
        match s.trim() {
            "okta" => Some(IdentityProvider::Okta),
            "microsoft" => Some(IdentityProvider::Microsoft),
            "google" => Some(IdentityProvider::Google),
            _ => None,
        }
    }
}

/// What the company's configuration says, as the articles need it. Empty means unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub company: Option<String>,
    /// The main email domain.
    pub email_domain: Option<String>,
    pub identity_provider: Option<IdentityProvider>,
    pub sign_in_url: Option<String>,
    /// Main platform first.
    pub platforms: Vec<Platform>,
    pub suite: Option<Suite>,
    pub ticket_portal_url: Option<String>,
    pub github_org: Option<String>,
}

impl Facts {
    /// The facts of a (validated) `[company]` section.
    pub fn from_settings(c: &CompanySettings) -> Facts {
        let set = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Facts {
            company: set(&c.name),
            email_domain: c.email_domains.first().and_then(|d| set(d)),
            identity_provider: IdentityProvider::parse(&c.identity_provider),
            sign_in_url: set(&c.sign_in_url),
            platforms: c.platforms.iter().filter_map(|p| Platform::parse(p)).collect(),
            suite: Suite::parse(&c.productivity_suite),
            ticket_portal_url: set(&c.ticket_portal_url),
            github_org: set(&c.github_org),
        }
    }

    /// The value of placeholder `name`, or `None` when the configuration does not say.
    fn value(&self, name: &str) -> Option<String> {
        use IdentityProvider as Idp;
        match name {
            "company" => self.company.clone(),
            "email_domain" => self.email_domain.clone(),
            "idp" => self.identity_provider.map(|i| {
                match i {
                    Idp::Okta => "Okta",
                    Idp::Microsoft => "Microsoft",
                    Idp::Google => "Google",
                }
                .to_string()
            }),
            // Microsoft's and Google's sign-in pages are the same for every company.
            "idp_url" => self.sign_in_url.clone().or_else(|| match self.identity_provider? {
                Idp::Okta => None,
                Idp::Microsoft => Some("https://myapps.microsoft.com".into()),
                Idp::Google => Some("https://myaccount.google.com".into()),
            }),
            "mfa_app" => self.identity_provider.map(|i| {
                match i {
                    Idp::Okta => "Okta Verify",
                    Idp::Microsoft => "Microsoft Authenticator",
                    Idp::Google => "the Google prompt on your phone",
                }
                .to_string()
            }),
            "suite" => self.suite.map(|s| {
                match s {
                    Suite::Google => "Google Workspace",
                    Suite::Microsoft => "Microsoft 365",
                }
                .to_string()
            }),
            "mail_app" => self.suite.map(|s| {
                match s {
                    Suite::Google => "Gmail",
                    Suite::Microsoft => "Outlook",
                }
                .to_string()
            }),
            "ticket_portal_url" => self.ticket_portal_url.clone(),
            "github_org" => self.github_org.clone(),
            "github_sso_url" => self.github_org.as_ref().map(|o| format!("https://github.com/orgs/{o}/sso")),
            _ => None,
        }
    }
}

/// A placeholder articles may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placeholder {
    pub name: &'static str,
    /// The configuration key that fills it, as `doctor` names it.
    pub key: &'static str,
    /// What is said when the key is not set and the article gives no words of its own.
    pub default: &'static str,
}

/// Every placeholder, with the key that fills it.
pub const PLACEHOLDERS: &[Placeholder] = &[
    Placeholder { name: "company", key: "[company] name", default: "the company" },
    Placeholder {
        name: "email_domain",
        key: "[company] email_domains",
        default: "your company's email domain",
    },
    Placeholder { name: "idp", key: "[company] identity_provider", default: "your company sign-in" },
    Placeholder { name: "idp_url", key: "[company] sign_in_url", default: "your company's sign-in page" },
    Placeholder { name: "mfa_app", key: "[company] identity_provider", default: "your authenticator app" },
    Placeholder {
        name: "suite",
        key: "[company] productivity_suite",
        default: "your company's email and calendar",
    },
    Placeholder { name: "mail_app", key: "[company] productivity_suite", default: "your email app" },
    Placeholder { name: "ticket_portal_url", key: "[company] ticket_portal_url", default: "the IT channel" },
    Placeholder { name: "github_org", key: "[company] github_org", default: "your company's organization" },
    Placeholder {
        name: "github_sso_url",
        key: "[company] github_org",
        default: "your organization's page on github.com (click its single sign-on banner)",
    },
];

fn placeholder(name: &str) -> Option<&'static Placeholder> {
    PLACEHOLDERS.iter().find(|p| p.name == name)
}

/// A `{…}` found in text: where it is, its name and its own fallback words.
struct Found<'a> {
    start: usize,
    end: usize,
    name: &'a str,
    fallback: Option<&'a str>,
}

/// The next `{name}` or `{name|words}` at or after `from`. Braces around anything else
/// (code, `${HOME}`) are text.
fn next_placeholder(text: &str, mut from: usize) -> Option<Found<'_>> {
    while let Some(i) = text[from..].find('{').map(|i| i + from) {
        let rest = &text[i + 1..];
        let name_len = rest.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(rest.len());
        let after = &rest[name_len..];
        if name_len > 0 && i.checked_sub(1).is_none_or(|p| text.as_bytes()[p] != b'$') {
            if after.starts_with('}') {
                return Some(Found {
                    start: i,
                    end: i + 2 + name_len,
                    name: &rest[..name_len],
                    fallback: None,
                });
            }
            if let Some(words) = after.strip_prefix('|') {
                if let Some(close) = words.find(['}', '\n', '{']).filter(|&c| words[c..].starts_with('}')) {
                    return Some(Found {
                        start: i,
                        end: i + 1 + name_len + 1 + close + 1,
                        name: &rest[..name_len],
                        fallback: Some(&words[..close]),
                    });
                }
            }
        }
        from = i + 1;
    }
    None
}

/// The unknown placeholder names in `text` (an article with one does not load).
pub fn unknown_placeholders(text: &str) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut at = 0;
    while let Some(f) = next_placeholder(text, at) {
        if placeholder(f.name).is_none() && !unknown.iter().any(|u| u == f.name) {
            unknown.push(f.name.to_string());
        }
        at = f.end;
    }
    unknown
}

/// `text` with its placeholders filled from `facts`; the placeholders that fell back to words
/// because their key is not set are added to `missing`.
pub fn fill(text: &str, facts: &Facts, missing: &mut Vec<&'static Placeholder>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(f) = next_placeholder(text, at) {
        out.push_str(&text[at..f.start]);
        match placeholder(f.name) {
            Some(p) => match facts.value(p.name) {
                Some(v) => out.push_str(&v),
                None => {
                    if !missing.contains(&p) {
                        missing.push(p);
                    }
                    out.push_str(f.fallback.unwrap_or(p.default));
                }
            },
            // Refused when the article is parsed; left out rather than shown.
            None => out.push_str(f.fallback.unwrap_or_default()),
        }
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Placeholder-looking text left in an article an employee would see: `{name}` and the older
/// `<company>` / `<org>` style. Markdown autolinks (`<https://…>`) and mentions are not.
pub fn raw_placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(f) = next_placeholder(text, at) {
        found.push(text[f.start..f.end].to_string());
        at = f.end;
    }
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else { break };
        let inner = &after[..close];
        let looks_like_one = !inner.is_empty()
            && inner.len() <= 40
            && inner.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '-' || c == ' ')
            && inner.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        if looks_like_one {
            found.push(format!("<{inner}>"));
        }
        rest = &after[close..];
    }
    for marker in [Platform::MacOs, Platform::Windows].map(Platform::marker) {
        if text.contains(marker) {
            found.push(marker.to_string());
        }
    }
    found
}

/// Which lines of an article with per-platform lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// One platform's lines (unmarked), the other's left out.
    Only(Platform),
    /// Both, each labelled with its platform ("On Windows: …").
    Labelled,
    /// Both, as they are written (what the article is about, for the index).
    Unmarked,
}

/// The platform a line is written for, and the byte range of its marker (with the space after
/// it). The marker comes first, after any indent and list bullet (`1. `, `- `).
fn line_platform(line: &str) -> Option<(Platform, std::ops::Range<usize>)> {
    let indent = line.len() - line.trim_start().len();
    let rest = &line[indent..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let bullet = if digits > 0 && rest[digits..].starts_with(". ") {
        digits + 2
    } else if rest.starts_with("- ") || rest.starts_with("* ") {
        2
    } else {
        0
    };
    let at = indent + bullet;
    [Platform::MacOs, Platform::Windows].into_iter().find_map(|p| {
        let after = line[at..].strip_prefix(p.marker())?;
        let space = after.len() - after.trim_start_matches(' ').len();
        Some((p, at..at + p.marker().len() + space))
    })
}

/// Whether `text` has lines written for one platform only.
pub fn has_platform_lines(text: &str) -> bool {
    text.lines().any(|l| line_platform(l).is_some())
}

/// `text` with its per-platform lines chosen by `show`, and its numbered list numbered again
/// (a platform's extra step, or both platforms' lines, shift the numbers).
pub fn for_platform(text: &str, show: Show) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        match (line_platform(line), show) {
            (None, _) => lines.push(line.to_string()),
            (Some((p, marker)), Show::Only(q)) if p == q => {
                lines.push(format!("{}{}", &line[..marker.start], &line[marker.end..]))
            }
            (Some(_), Show::Only(_)) => {}
            (Some((p, marker)), Show::Labelled) => {
                lines.push(format!("{}{} {}", &line[..marker.start], p.label(), &line[marker.end..]))
            }
            (Some((_, marker)), Show::Unmarked) => {
                lines.push(format!("{}{}", &line[..marker.start], &line[marker.end..]))
            }
        }
    }
    // Top-level items are renumbered 1, 2, 3…; a paragraph between lists starts again.
    let mut n = 0;
    for line in &mut lines {
        let digits = line.find(|c: char| !c.is_ascii_digit()).unwrap_or(line.len());
        if digits > 0 && line[digits..].starts_with(". ") {
            n += 1;
            line.replace_range(..digits, &n.to_string());
        } else if line.starts_with(|c: char| !c.is_whitespace()) {
            n = 0;
        }
    }
    lines.join("\n")
}

/// What a post says about the employee's own set-up ("my Windows laptop", "Outlook"), so the
/// articles for it are chosen over the company's defaults. Only one answer per question: a post
/// naming both Mac and Windows says nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mentioned {
    pub platform: Option<Platform>,
    pub suite: Option<Suite>,
    pub identity_provider: Option<IdentityProvider>,
}

/// `x` when only the first is named, `y` when only the second is, else nothing.
fn one<T>(a: bool, b: bool, x: T, y: T) -> Option<T> {
    only([(a, x), (b, y)])
}

/// The one choice that is named, if exactly one is.
fn only<T, const N: usize>(choices: [(bool, T); N]) -> Option<T> {
    let mut named = choices.into_iter().filter(|(named, _)| *named);
    match (named.next(), named.next()) {
        (Some((_, x)), None) => Some(x),
        _ => None,
    }
}

/// Phrases matched on word boundaries in the lower-cased post.
const MAC_WORDS: &[&str] =
    &["mac", "macbook", "macbooks", "imac", "macos", "os x", "osx", "jamf", "filevault"];
const WINDOWS_WORDS: &[&str] = &[
    "windows 10",
    "windows 11",
    "windows laptop",
    "windows pc",
    "windows machine",
    "windows computer",
    "windows update",
    "on windows",
    "win10",
    "win11",
    "pc",
    "surface",
    "thinkpad",
    "intune",
    "company portal",
    "bitlocker",
    "bsod",
    "blue screen",
];
const MICROSOFT_SUITE_WORDS: &[&str] = &[
    "outlook",
    "microsoft teams",
    "ms teams",
    "teams meeting",
    "teams call",
    "in teams",
    "onedrive",
    "sharepoint",
    "office 365",
    "o365",
    "m365",
    "microsoft 365",
    "exchange",
];
const GOOGLE_SUITE_WORDS: &[&str] = &[
    "gmail",
    "google drive",
    "google calendar",
    "gcal",
    "google docs",
    "google sheets",
    "google meet",
    "google workspace",
    "gsuite",
    "g suite",
];
const OKTA_WORDS: &[&str] = &["okta"];
const MICROSOFT_IDP_WORDS: &[&str] =
    &["microsoft authenticator", "ms authenticator", "entra", "azure ad", "aad"];
/// Not "google authenticator": Okta and Microsoft accept it as a factor too.
const GOOGLE_IDP_WORDS: &[&str] = &[
    "google account",
    "google sign in",
    "google sign-in",
    "google login",
    "google log in",
    "sign in to google",
    "sign into google",
    "log in to google",
    "google prompt",
    "2-step verification",
    "google 2fa",
];

impl Mentioned {
    pub fn of(text: &str) -> Mentioned {
        let lower = format!(" {} ", text.to_lowercase());
        let has = |words: &[&str]| {
            words.iter().any(|w| {
                lower.match_indices(w).any(|(i, _)| {
                    let before = lower[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
                    let after = lower[i + w.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
                    before && after
                })
            })
        };
        // "Windows" with a capital is the system; lower-case "windows" is often a window.
        let windows =
            has(WINDOWS_WORDS) || text.split(|c: char| !c.is_alphanumeric()).any(|w| w == "Windows");
        Mentioned {
            platform: one(has(MAC_WORDS), windows, Platform::MacOs, Platform::Windows),
            suite: one(has(GOOGLE_SUITE_WORDS), has(MICROSOFT_SUITE_WORDS), Suite::Google, Suite::Microsoft),
            identity_provider: only([
                (has(OKTA_WORDS), IdentityProvider::Okta),
                (has(MICROSOFT_IDP_WORDS), IdentityProvider::Microsoft),
                (has(GOOGLE_IDP_WORDS), IdentityProvider::Google),
            ]),
        }
    }
}

/// What an article is written for; `None` means for everyone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Audience {
    pub platform: Option<Platform>,
    pub suite: Option<Suite>,
    pub identity_provider: Option<IdentityProvider>,
    /// Which lines of an article with per-platform lines this version shows.
    pub lines: Lines,
}

/// Which lines a version of an article with per-platform lines (`[mac]`, `[windows]`) shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lines {
    /// An article without per-platform lines.
    #[default]
    Whole,
    /// One platform's: for when the post or the company says which computer it is.
    OnePlatform,
    /// Both, labelled: for when neither says.
    BothPlatforms,
}

impl Audience {
    /// Whether an article for this audience fits a post: what the post names decides, else the
    /// company's main platform, its suite and its identity provider; where neither says, every
    /// article fits.
    pub fn fits(&self, post: &Mentioned, facts: &Facts) -> bool {
        fn fits<T: PartialEq + Copy>(article: Option<T>, wanted: Option<T>) -> bool {
            match (article, wanted) {
                (Some(a), Some(w)) => a == w,
                _ => true,
            }
        }
        let platform = post.platform.or(facts.platforms.first().copied());
        let lines_fit = match self.lines {
            Lines::Whole => true,
            Lines::OnePlatform => platform.is_some(),
            Lines::BothPlatforms => platform.is_none(),
        };
        lines_fit
            && fits(self.platform, platform)
            && fits(self.suite, post.suite.or(facts.suite))
            && fits(self.identity_provider, post.identity_provider.or(facts.identity_provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            company: Some("Globex".into()),
            identity_provider: Some(IdentityProvider::Okta),
            sign_in_url: Some("https://globex.okta.com".into()),
            ..Facts::default()
        }
    }

    #[test]
    fn placeholders_are_filled_from_the_facts() {
        let mut missing = Vec::new();
        let text = fill("Go to {idp_url} and sign in with {idp} at {company}.", &facts(), &mut missing);
        assert_eq!(text, "Go to https://globex.okta.com and sign in with Okta at Globex.");
        assert!(missing.is_empty());
    }

    #[test]
    fn a_missing_value_says_the_articles_words_or_the_default_and_is_reported() {
        let mut missing = Vec::new();
        let text = fill(
            "Open {github_sso_url}. Ask in {ticket_portal_url|this channel}.",
            &Facts::default(),
            &mut missing,
        );
        assert_eq!(
            text,
            "Open your organization's page on github.com (click its single sign-on banner). Ask in this channel."
        );
        let keys: Vec<&str> = missing.iter().map(|p| p.key).collect();
        assert_eq!(keys, ["[company] github_org", "[company] ticket_portal_url"]);
        assert!(raw_placeholders(&text).is_empty());
    }

    #[test]
    fn braces_that_are_not_placeholders_are_text() {
        let mut missing = Vec::new();
        let text = "Run `echo ${HOME}` then `{ }` and {Not} and {a|b";
        assert_eq!(fill(text, &Facts::default(), &mut missing), text);
        assert!(unknown_placeholders("{nope} and {company}") == ["nope"]);
    }

    #[test]
    fn raw_placeholders_are_found_and_links_are_not() {
        let found = raw_placeholders("go to https://<company>.okta.com or <https://x.io|x> or {idp}");
        assert_eq!(found, ["{idp}", "<company>"]);
        assert!(raw_placeholders("<@U123> see <!here> and <https://a.b>").is_empty());
    }

    #[test]
    fn per_platform_lines_are_chosen_or_labelled_and_the_list_is_numbered_again() {
        let text = "1. [mac] Open Finder.\n1. [windows] Open File Explorer.\n2. Find the file.\n3. [windows] Unblock it.\n   - [mac] only on a Mac\nDone.\n1. again";
        assert_eq!(
            for_platform(text, Show::Only(Platform::MacOs)),
            "1. Open Finder.\n2. Find the file.\n   - only on a Mac\nDone.\n1. again"
        );
        assert_eq!(
            for_platform(text, Show::Only(Platform::Windows)),
            "1. Open File Explorer.\n2. Find the file.\n3. Unblock it.\nDone.\n1. again"
        );
        assert_eq!(
            for_platform(text, Show::Labelled),
            "1. On a Mac: Open Finder.\n2. On Windows: Open File Explorer.\n3. Find the file.\n4. On Windows: Unblock it.\n   - On a Mac: only on a Mac\nDone.\n1. again"
        );
        assert!(has_platform_lines(text));
        assert!(!has_platform_lines("1. See [mac] below"), "a marker counts only at the start");
        assert_eq!(raw_placeholders("1. See [mac] below"), ["[mac]"], "a misplaced marker would show");
    }

    #[test]
    fn a_version_for_one_platform_fits_only_when_the_platform_is_known() {
        let one =
            Audience { platform: Some(Platform::Windows), lines: Lines::OnePlatform, ..Audience::default() };
        let both = Audience { lines: Lines::BothPlatforms, ..Audience::default() };
        let unknown = Facts::default();
        let windows = Facts { platforms: vec![Platform::Windows], ..Facts::default() };
        assert!(!one.fits(&Mentioned::default(), &unknown) && both.fits(&Mentioned::default(), &unknown));
        assert!(one.fits(&Mentioned::default(), &windows) && !both.fits(&Mentioned::default(), &windows));
        assert!(
            one.fits(&Mentioned::of("on my PC"), &unknown)
                && !both.fits(&Mentioned::of("on my PC"), &unknown)
        );
    }

    #[test]
    fn a_post_names_its_platform_suite_and_identity_provider() {
        let m = Mentioned::of("my Windows laptop can't open Outlook");
        assert_eq!(m.platform, Some(Platform::Windows));
        assert_eq!(m.suite, Some(Suite::Microsoft));
        assert_eq!(Mentioned::of("MacBook won't wake").platform, Some(Platform::MacOs));
        assert_eq!(Mentioned::of("too many browser windows open").platform, None);
        assert_eq!(Mentioned::of("moving from my mac to a Windows pc").platform, None);
        assert_eq!(Mentioned::of("gmail is slow").suite, Some(Suite::Google));
        assert_eq!(Mentioned::of("okta verify").identity_provider, Some(IdentityProvider::Okta));
        let google = Mentioned::of("my Google account says 2-Step Verification failed");
        assert_eq!(google.identity_provider, Some(IdentityProvider::Google));
        assert_eq!(Mentioned::of("okta or my google account?").identity_provider, None);
    }

    #[test]
    fn an_article_fits_what_the_post_names_else_the_company() {
        let windows = Audience { platform: Some(Platform::Windows), ..Audience::default() };
        let mac_company = Facts { platforms: vec![Platform::MacOs, Platform::Windows], ..Facts::default() };
        assert!(!windows.fits(&Mentioned::default(), &mac_company), "the main platform decides");
        assert!(windows.fits(&Mentioned::of("my Windows laptop"), &mac_company));
        assert!(windows.fits(&Mentioned::default(), &Facts::default()), "nothing configured: all fit");
        assert!(Audience::default().fits(&Mentioned::of("my mac"), &mac_company));
    }
}

//! `itbot doctor`: checks a set-up end to end and says exactly what to fix. One line per
//! check; the command fails if any check fails. It reads, never posts and never connects a
//! socket: `apps.connections.open` only proves the app token works.

use std::time::Duration;

use actix::Actor;
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::actors::slack_api::{ApiOptions, SlackApiActor};
use crate::config::Config;
use crate::http::Health;
use crate::knowledge::facts::{raw_placeholders, Mentioned, PLACEHOLDERS};
use crate::knowledge::KnowledgeBase;
use crate::slack::{SlackApi, WebClient};

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found, or what to fix.
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:<18} {}", if self.ok { "ok  " } else { "FAIL" }, self.name, self.detail)
    }
}

fn ok(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, ok: true, detail: detail.into() }
}

fn fail(name: &'static str, detail: impl Into<String>) -> Check {
    Check { name, ok: false, detail: detail.into() }
}

/// The bot scopes this configuration needs, and why each.
pub fn needed_scopes(config: &Config) -> Vec<(&'static str, &'static str)> {
    let mut needed = vec![
        ("chat:write", "post answers in threads"),
        ("channels:history", "receive messages and read threads back after a restart"),
        ("app_mentions:read", "know when someone @mentions the bot"),
        ("reactions:read", "see thumbs-down reactions on answers"),
        ("users:read", "know members' names, so they become @user in what is sent out (users.list)"),
    ];
    if config.env.it_channel_id.is_none() {
        needed.push(("channels:read", "find the channel by name (or set IT_CHANNEL_ID)"));
    }
    if config.settings.slack.reaction_markers {
        needed.push(("reactions:write", "add the working/resolved markers ([slack] reaction_markers)"));
    }
    needed
}

/// Runs every check against the configured Slack workspace and OpenAI endpoint.
pub async fn run(config: &Config) -> Vec<Check> {
    let mut checks =
        vec![ok("config", format!("{} and the environment are valid", config.env.config_path.display()))];
    match crate::startup::load_knowledge(config) {
        Ok(kb) => {
            checks.push(ok("knowledge base", format!("{} articles", kb.articles().len())));
            checks.extend(knowledge_checks(&kb));
        }
        Err(e) => checks.push(fail("knowledge base", e.to_string())),
    }
    let tokens = match config.slack_tokens() {
        Ok(t) => t,
        Err(e) => {
            checks.push(fail("slack tokens", e.to_string()));
            checks.push(openai(config).await);
            return checks;
        }
    };
    checks.push(ok("slack tokens", "both set, of the right kinds"));

    let web =
        WebClient::new(crate::net::http_client(Duration::from_secs(15)), config.env.slack_api_url.clone());
    let options = ApiOptions { max_attempts: 2, max_wait: Duration::from_secs(30), ..ApiOptions::default() };
    let transport = SlackApiActor::new(web, tokens.bot, tokens.app, options.clone(), Health::new()).start();
    let slack = SlackApi::new(transport.recipient(), options.call_timeout());

    // The bot token and its scopes.
    match slack.auth().await {
        Ok(auth) => {
            let who = auth.user_name.as_deref().unwrap_or("?");
            let team = auth.team_name.as_deref().unwrap_or("?");
            checks.push(ok("bot token", format!("works: @{who} in {team}")));
            let granted = auth.scopes.as_deref().unwrap_or_default();
            let missing: Vec<String> = needed_scopes(config)
                .into_iter()
                .filter(|(s, _)| !granted.iter().any(|g| g == s))
                .map(|(s, why)| format!("{s} ({why})"))
                .collect();
            if auth.scopes.is_none() {
                checks.push(fail("scopes", "Slack did not report the token's scopes (x-oauth-scopes)"));
            } else if missing.is_empty() {
                checks.push(ok("scopes", "every scope the configuration needs is granted"));
            } else {
                checks.push(fail(
                    "scopes",
                    format!(
                        "missing {}: add under OAuth & Permissions (or use config/slack-manifest.yml), then reinstall the app",
                        missing.join(", ")
                    ),
                ));
            }
        }
        Err(e) => checks.push(fail(
            "bot token",
            format!(
                "SLACK_BOT_TOKEN was refused ({e}); copy the Bot User OAuth Token again or reinstall the app"
            ),
        )),
    }

    // The app-level token (a URL is issued; no socket is opened).
    match slack.open_connection().await {
        Ok(_) => checks.push(ok("app token", "Socket Mode connections can be opened")),
        Err(e) => checks.push(fail(
            "app token",
            format!(
                "SLACK_APP_TOKEN was refused ({e}); it needs connections:write and Socket Mode turned on in the app settings"
            ),
        )),
    }

    checks.push(channel(config, &slack).await);
    checks.push(openai(config).await);
    if let Some(check) = redis(config).await {
        checks.push(check);
    }
    checks
}

/// With `REDIS_URL`: Redis answers, is recent enough for the scripts, and how fast.
async fn redis(config: &Config) -> Option<Check> {
    let url = config.env.redis_url.as_ref()?;
    let coord = match crate::coord::Coord::connect(url, None) {
        Ok(c) => c,
        Err(e) => return Some(fail("redis", e.to_string())),
    };
    Some(match coord.check().await {
        Ok((version, rtt)) => {
            let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
            let rtt_ms = rtt.as_secs_f64() * 1000.0;
            if major < 6 {
                fail("redis", format!("version {version} is too old: replicas need Redis 6 or later (7 recommended), or Valkey"))
            } else if rtt_ms > 50.0 {
                fail("redis", format!("version {version}, but a round trip took {rtt_ms:.1} ms: run Redis in the bot's region (on Railway, its private network)"))
            } else {
                ok("redis", format!("version {version}, round trip {rtt_ms:.2} ms: replicas share one Slack budget"))
            }
        }
        Err(e) => fail("redis", format!("REDIS_URL is set but Redis does not answer ({e}); check the host, port and password, or unset REDIS_URL to run one replica")),
    })
}

/// What employees would read in the articles: no raw placeholder (that fails), and which
/// `[company]` keys would replace general words with the company's own (said, not failed).
/// Only articles this company can be shown by default are judged.
pub fn knowledge_checks(kb: &KnowledgeBase) -> Vec<Check> {
    let mut raw = Vec::new();
    let mut keys: Vec<(&'static str, Vec<&str>)> = Vec::new();
    let nothing_named = Mentioned::default();
    for (article, missing) in kb.unfilled() {
        let text = [&article.title, &article.intro, &article.steps, &article.alternative, &article.tell_it];
        for found in text.iter().flat_map(|t| raw_placeholders(t)) {
            // Named by file, once: every version of an article shows what its file holds.
            let line = format!("{} shows `{found}`", article.topic);
            if !raw.contains(&line) {
                raw.push(line);
            }
        }
        if !article.audience.fits(&nothing_named, kb.facts()) {
            continue;
        }
        for p in missing {
            match keys.iter_mut().find(|(k, _)| *k == p.key) {
                // Named by file: the Mac and Windows versions of an article are one file.
                Some((_, files)) if !files.contains(&article.topic.as_str()) => files.push(&article.topic),
                Some(_) => {}
                None => keys.push((p.key, vec![&article.topic])),
            }
        }
    }
    let placeholders = if raw.is_empty() {
        ok("articles", "every article renders with no raw placeholder")
    } else {
        let marker = raw.iter().any(|r| r.ends_with("[mac]`") || r.ends_with("[windows]`"));
        fail(
            "articles",
            format!(
                "{}: write a placeholder filled from [company] instead ({}){}",
                raw.join("; "),
                PLACEHOLDERS.iter().map(|p| format!("{{{}}}", p.name)).collect::<Vec<_>>().join(", "),
                if marker {
                    "; `[mac]` and `[windows]` only start a line, after its number or bullet"
                } else {
                    ""
                }
            ),
        )
    };
    let facts = if keys.is_empty() {
        ok("company facts", "every fact the articles use is set in [company]")
    } else {
        let list: Vec<String> =
            keys.iter().map(|(k, slugs)| format!("{k} (used by {})", slugs.join(", "))).collect();
        ok(
            "company facts",
            format!(
                "articles use general words where these are unset; set them to name yours: {}",
                list.join("; ")
            ),
        )
    };
    vec![placeholders, facts]
}

/// The IT channel exists, is visible, and the bot is a member.
async fn channel(config: &Config, slack: &SlackApi) -> Check {
    let name = &config.env.it_channel_name;
    let id = match &config.env.it_channel_id {
        Some(id) => id.clone(),
        None => match slack.find_channel(name).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                return fail(
                    "channel",
                    format!("no channel #{name} is visible to the bot; check IT_CHANNEL_NAME, or invite the bot to the private channel and set IT_CHANNEL_ID"),
                )
            }
            Err(e) => return fail("channel", format!("cannot list channels ({e})")),
        },
    };
    match slack.channel_info(&id).await {
        Ok(info) => {
            let shown = info.name.as_deref().unwrap_or(name.as_str());
            match info.is_member {
                Some(false) => fail(
                    "channel",
                    format!("the bot is not a member of #{shown} ({id}): run /invite @itbot there"),
                ),
                _ => ok("channel", format!("#{shown} ({id}), the bot is a member")),
            }
        }
        Err(e) => fail("channel", format!("{id}: {e}; check IT_CHANNEL_ID")),
    }
}

/// The OpenAI-compatible endpoint answers and offers the model.
async fn openai(config: &Config) -> Check {
    let Some(key) = &config.env.openai_api_key else {
        return ok("llm", "no OPENAI_API_KEY: answers come from the knowledge base");
    };
    let base = &config.env.openai_base_url;
    let model = &config.env.openai_model;
    let client = crate::net::http_client(Duration::from_secs(15));
    let sent = client
        .get(format!("{base}/models"))
        .insert_header(("Authorization", format!("Bearer {}", key.expose_secret())))
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => return fail("llm", format!("cannot reach OPENAI_BASE_URL {base}: {e}")),
    };
    let status = response.status().as_u16();
    let body: Models = response.json().limit(4 * 1024 * 1024).await.unwrap_or_default();
    match status {
        200 => {
            let offered = body.data.iter().any(|m| m.id == *model);
            if offered {
                ok("llm", format!("{base} offers {model}"))
            } else {
                fail(
                    "llm",
                    format!("{base} does not list the model {model}; set OPENAI_MODEL to one it offers"),
                )
            }
        }
        401 | 403 => fail("llm", format!("OPENAI_API_KEY was refused by {base} (HTTP {status})")),
        _ => fail("llm", format!("{base}/models answered HTTP {status}; check OPENAI_BASE_URL")),
    }
}

/// The part of `GET /models` read here: the ids offered.
#[derive(Debug, Default, Deserialize)]
struct Models {
    #[serde(default)]
    data: Vec<Model>,
}

#[derive(Debug, Deserialize)]
struct Model {
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::Facts;

    const ARTICLE: &str =
        "---\ntitle: Printer\n---\nIntro.\n\n1. Go to https://<company>.okta.com and {idp_url}.\n\n\
                           ## If that didn't help\n1. Ask {company}.\n\n## What to tell IT\nThe printer.\n";

    #[test]
    fn an_article_showing_a_raw_placeholder_fails_and_says_what_to_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("printer.md"), ARTICLE).expect("written");
        let kb = KnowledgeBase::load_dir(dir.path(), &Facts::default()).expect("loads");

        let checks = knowledge_checks(&kb);

        assert!(!checks[0].ok, "{}", checks[0]);
        assert!(
            checks[0].detail.starts_with("printer shows `<company>`: write a placeholder"),
            "{}",
            checks[0]
        );
        assert!(checks[0].detail.contains("{company}, {email_domain}"), "{}", checks[0]);
    }

    #[test]
    fn an_article_with_per_platform_lines_is_named_by_its_file_and_a_stray_marker_fails() {
        let dir = tempfile::tempdir().expect("temp dir");
        let text =
            "---\ntitle: Printer\n---\n1. [mac] Open System Settings.\n1. [windows] Ask {company}.\n\n\
                    ## If that didn't help\n1. See the [windows] note.\n\n## What to tell IT\nThe printer.\n";
        std::fs::write(dir.path().join("printer.md"), text).expect("written");
        let kb = KnowledgeBase::load_dir(dir.path(), &Facts::default()).expect("loads");

        let checks = knowledge_checks(&kb);

        assert!(checks[0].detail.starts_with("printer shows `[windows]`: write"), "{}", checks[0]);
        assert!(
            checks[0].detail.ends_with("`[windows]` only start a line, after its number or bullet"),
            "{}",
            checks[0]
        );
        assert!(checks[1].detail.ends_with("[company] name (used by printer)"), "{}", checks[1]);
    }

    #[test]
    fn unset_company_facts_are_named_with_the_articles_that_use_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("printer.md"), ARTICLE.replace("https://<company>.okta.com and ", ""))
            .expect("written");
        let kb = KnowledgeBase::load_dir(dir.path(), &Facts::default()).expect("loads");

        let checks = knowledge_checks(&kb);

        assert!(checks[0].ok, "{}", checks[0]);
        assert_eq!(checks[1].name, "company facts");
        assert!(
            checks[1]
                .detail
                .ends_with("[company] sign_in_url (used by printer); [company] name (used by printer)"),
            "{}",
            checks[1]
        );
        let named = Facts {
            company: Some("Globex".into()),
            sign_in_url: Some("https://globex.okta.com".into()),
            ..Facts::default()
        };
        let kb = KnowledgeBase::load_dir(dir.path(), &named).expect("loads");
        assert_eq!(knowledge_checks(&kb)[1].detail, "every fact the articles use is set in [company]");
    }

    #[test]
    fn the_shipped_articles_show_no_raw_placeholder() {
        let checks = knowledge_checks(&KnowledgeBase::shipped());
        assert!(checks[0].ok, "{}", checks[0]);
    }
}

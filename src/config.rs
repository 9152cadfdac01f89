//! Configuration: the `Settings` tree from `config/itbot.toml`, layered as
//! shipped defaults → the operator's file → `ITBOT__SECTION__KEY` overrides, plus the
//! environment (`Env`) for tokens and endpoints.
//!
//! Every error names where the value came from (file or variable), the key and the reason:
//! each layer is a figment provider named after its file or variable, and figment remembers
//! which one every value came from.
//! The shipped file is embedded in the binary and is the single source of defaults: a file that
//! leaves a key out gets the shipped value.

use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::{Figment, Metadata, Profile, Provider};
use regex::Regex;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::ids::ChannelId;

/// The shipped configuration file; its values are the defaults.
pub const SHIPPED_CONFIG: &str = include_str!("../config/itbot.toml");

/// Where the config file is looked for when `ITBOT_CONFIG` is not set.
pub const DEFAULT_CONFIG_PATH: &str = "config/itbot.toml";

/// What went wrong while loading configuration. `Display` names the source, key and reason.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the file: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: not valid TOML: {reason}")]
    Syntax { path: String, reason: String },
    #[error("{source_name}: {key}: {reason}")]
    Invalid {
        /// The file or environment variable the value came from.
        source_name: String,
        /// `[section] key`.
        key: String,
        reason: String,
    },
    #[error("{var} is not set: {hint}")]
    MissingEnv { var: &'static str, hint: &'static str },
    #[error("{var}: {reason}")]
    BadEnv { var: &'static str, reason: String },
}

/// The whole settings tree. Key names are part of the operator contract (DESIGN §4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub company: CompanySettings,
    pub assist: AssistSettings,
    pub triage: TriageSettings,
    pub followup: FollowUpSettings,
    pub escalation: EscalationSettings,
    pub openai: OpenAiSettings,
    pub history: HistorySettings,
    pub threads: ThreadSettings,
    pub slack: SlackSettings,
    pub outage: OutageSettings,
    pub report: ReportSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompanySettings {
    /// Named in the assistant's instructions and in knowledge articles (`{company}`).
    pub name: String,
    /// The tools answers are written for.
    pub tech_stack: Vec<String>,
    /// The domains of employees' email addresses, main one first (`{email_domain}`).
    pub email_domains: Vec<String>,
    /// `okta`, `microsoft` (Entra ID), `google` or empty: names the sign-in in articles and
    /// chooses the sign-in and MFA articles.
    pub identity_provider: String,
    /// Where employees sign in to the identity provider's dashboard (`{idp_url}`).
    pub sign_in_url: String,
    /// `macos` and/or `windows`, main one first: chooses the device articles.
    pub platforms: Vec<String>,
    /// `google` (Google Workspace), `microsoft` (Microsoft 365) or empty: chooses the mail
    /// and calendar articles.
    pub productivity_suite: String,
    /// Where employees file requests outside Slack, if anywhere (`{ticket_portal_url}`).
    pub ticket_portal_url: String,
    /// The GitHub organization's name, for the SSO steps (`{github_org}`).
    pub github_org: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistSettings {
    /// Longest wait for Assist's ticket card before answering anyway.
    pub wait_secs: u64,
    /// Bot ids whose messages are Assist's; empty means "recognise by pattern".
    pub bot_ids: Vec<String>,
    /// Regex whose first group is the assignee's user id.
    pub assignee_pattern: String,
    /// Regex whose first group is the ticket key.
    pub ticket_pattern: String,
}

/// Phrases that decide the category of a new post (see the shipped file for the syntax).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageSettings {
    pub problem: Vec<String>,
    pub access: Vec<String>,
    pub change: Vec<String>,
    /// Request forms ("can I get", "please"): they strengthen access and change.
    pub request: Vec<String>,
    /// Which category wins when several match.
    pub precedence: Vec<String>,
    /// Phrases of posts that are not tickets (thanks, FYIs, who/where questions).
    pub chatter: Vec<String>,
    /// What the bot does with a post that is not a ticket: `quiet` (nothing) or `brief` (a
    /// short pointer under a who/where/policy question, nothing under thanks or an FYI).
    pub not_ticket: NotTicketReply,
    /// The pointer posted under a question that is not a ticket (`not_ticket = "brief"`).
    pub not_ticket_reply: String,
    /// Below this confidence (0..1) the triage is unsure: the LLM settles it when configured,
    /// and a post is never taken for "not a ticket".
    pub min_confidence: f64,
}

/// What the bot does with a post that is not a ticket. Never troubleshooting steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotTicketReply {
    /// No reply at all.
    Quiet,
    /// A short pointer under questions; nothing under thanks, FYIs and chatter.
    Brief,
}

/// Phrases that decide how a follow-up went.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpSettings {
    pub human: Vec<String>,
    pub failed: Vec<String>,
    pub worked: Vec<String>,
    pub trying: Vec<String>,
    pub short_worked: Vec<String>,
    pub short_failed: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationSettings {
    /// Failed attempts before the bot offers (or makes) an escalation.
    pub max_failed_attempts: u32,
    /// Escalate without asking once the attempts are used up.
    pub auto: bool,
    /// Mention used when no assignee is known.
    pub fallback_mention: String,
    /// IT staff whose messages mean a human took over.
    pub it_staff: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    pub temperature: f64,
    pub max_completion_tokens: u32,
    /// Per attempt, from sending to the last byte of the answer.
    pub timeout_secs: u64,
    pub max_concurrency: usize,
    /// Retries after the first attempt (the official client's default is 2).
    pub max_retries: u32,
    /// The prompt is trimmed (oldest turns first) to fit, counted with the model's tokenizer.
    pub max_prompt_tokens: u32,
    /// Prompt plus completion tokens per minute across all calls; 0 means no budget.
    pub tokens_per_minute: u64,
    /// US dollars per million tokens, by model, for the cost figures.
    pub prices: crate::openai::cost::PriceTable,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySettings {
    pub backfill_messages: usize,
    pub max_age_days: u64,
    pub backfill_pace_ms: u64,
    pub max_tickets: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadSettings {
    pub idle_secs: u64,
    pub settled_secs: u64,
    pub max_live: usize,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    pub connections: usize,
    pub status_indicator: bool,
    pub reaction_markers: bool,
    pub stream_replies: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageSettings {
    pub min_reporters: usize,
    pub window_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    pub weekly_day: String,
    pub weekly_hour: u32,
    pub timezone: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Values that come from the environment only. Tokens are secrets: `Debug` never shows them.
#[derive(Debug, Clone)]
pub struct Env {
    pub slack_bot_token: Option<SecretString>,
    pub slack_app_token: Option<SecretString>,
    pub openai_api_key: Option<SecretString>,
    pub it_channel_name: String,
    pub it_channel_id: Option<ChannelId>,
    pub openai_model: String,
    /// Base URL for Chat Completions, without a trailing slash.
    pub openai_base_url: String,
    /// Web API base, always ending in `/`.
    pub slack_api_url: String,
    /// Replicas coordinate through this Redis; unset: one replica, memory and Slack metadata.
    pub redis_url: Option<SecretString>,
    pub config_path: PathBuf,
    pub port: u16,
    pub log_filter: String,
    pub log_format: LogFormat,
}

/// Everything the bot is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub env: Env,
}

/// Both Slack tokens, checked for kind.
#[derive(Clone)]
pub struct SlackTokens {
    pub bot: SecretString,
    pub app: SecretString,
}

impl std::fmt::Debug for SlackTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackTokens")
            .field("bot_len", &self.bot.expose_secret().len())
            .field("app_len", &self.app.expose_secret().len())
            .finish()
    }
}

impl Config {
    /// Loads the environment through `lookup` (the process environment in `main`, a map in
    /// tests) and the config file it points to.
    pub fn load(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::from_lookup(&lookup)?;
        let explicit = lookup("ITBOT_CONFIG").is_some();
        let file = read_config_file(&env.config_path, explicit)?;
        let settings = Settings::layered(file.as_ref(), &lookup)?;
        Ok(Config { settings, env })
    }

    /// The two Slack tokens `run` needs, each present and of the right kind.
    pub fn slack_tokens(&self) -> Result<SlackTokens, ConfigError> {
        let bot = self.env.slack_bot_token.clone().ok_or(ConfigError::MissingEnv {
            var: "SLACK_BOT_TOKEN",
            hint: "set it to the Bot User OAuth Token (xoxb-...) from your Slack app's \
                   \"OAuth & Permissions\" page",
        })?;
        let app = self.env.slack_app_token.clone().ok_or(ConfigError::MissingEnv {
            var: "SLACK_APP_TOKEN",
            hint: "set it to an app-level token (xapp-...) with the connections:write scope, \
                   from your Slack app's \"Basic Information\" page, \"App-Level Tokens\"",
        })?;
        check_token_kind("SLACK_BOT_TOKEN", bot.expose_secret(), "xoxb-")?;
        check_token_kind("SLACK_APP_TOKEN", app.expose_secret(), "xapp-")?;
        Ok(SlackTokens { bot, app })
    }
}

fn check_token_kind(var: &'static str, token: &str, want: &str) -> Result<(), ConfigError> {
    if token.starts_with(want) {
        return Ok(());
    }
    let reason = if want == "xoxb-" && token.starts_with("xapp-") {
        "holds an app-level token (xapp-...); it needs the bot token (xoxb-...). \
         The two tokens look swapped: the xapp- token belongs in SLACK_APP_TOKEN"
            .to_string()
    } else if want == "xapp-" && token.starts_with("xoxb-") {
        "holds a bot token (xoxb-...); it needs the app-level token (xapp-...). \
         The two tokens look swapped: the xoxb- token belongs in SLACK_BOT_TOKEN"
            .to_string()
    } else if token.starts_with("xoxp-") {
        "holds a user token (xoxp-...); itbot acts as a bot and needs a bot token (xoxb-...)".to_string()
    } else {
        format!("does not look like a Slack token: it should start with {want}")
    };
    Err(ConfigError::BadEnv { var, reason })
}

impl Env {
    fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Env, ConfigError> {
        // An empty variable counts as unset: `.env.example` copies leave keys blank.
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let secret = |k: &str| get(k).map(|v| SecretString::from(v.trim().to_string()));

        let port = match get("PORT") {
            None => 8080,
            Some(v) => v.trim().parse::<u16>().map_err(|_| ConfigError::BadEnv {
                var: "PORT",
                reason: "must be a port number (0-65535)".into(),
            })?,
        };
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            // Unset: pretty for a person at a terminal, JSON lines for a log pipeline.
            None if std::io::IsTerminal::is_terminal(&std::io::stderr()) => LogFormat::Pretty,
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(_) => {
                return Err(ConfigError::BadEnv {
                    var: "LOG_FORMAT",
                    reason: "must be `json` or `pretty`".into(),
                })
            }
        };
        let it_channel_id = match get("IT_CHANNEL_ID") {
            None => None,
            Some(v) => Some(ChannelId::parse(v.trim()).ok_or(ConfigError::BadEnv {
                var: "IT_CHANNEL_ID",
                reason: "must be a channel id such as C0123ABCD (not a #name)".into(),
            })?),
        };
        let mut slack_api_url = get("SLACK_API_URL").unwrap_or_else(|| "https://slack.com/api/".into());
        check_url("SLACK_API_URL", &slack_api_url)?;
        if !slack_api_url.ends_with('/') {
            slack_api_url.push('/');
        }
        let openai_base_url = get("OPENAI_BASE_URL")
            .unwrap_or_else(|| "https://api.openai.com/v1".into())
            .trim_end_matches('/')
            .to_string();
        check_url("OPENAI_BASE_URL", &openai_base_url)?;

        let redis_url = secret("REDIS_URL");
        if let Some(url) = &redis_url {
            let url = url.expose_secret();
            if !url.starts_with("redis://") {
                return Err(ConfigError::BadEnv {
                    var: "REDIS_URL",
                    reason: "must be a redis:// URL (redis://[user:password@]host:port[/db]); rediss:// (TLS) is not supported yet".into(),
                });
            }
        }

        Ok(Env {
            slack_bot_token: secret("SLACK_BOT_TOKEN"),
            slack_app_token: secret("SLACK_APP_TOKEN"),
            openai_api_key: secret("OPENAI_API_KEY"),
            it_channel_name: get("IT_CHANNEL_NAME")
                .map(|n| n.trim().trim_start_matches('#').to_string())
                .unwrap_or_else(|| "it".into()),
            it_channel_id,
            openai_model: get("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            openai_base_url,
            slack_api_url,
            redis_url,
            config_path: get("ITBOT_CONFIG")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
            port,
            log_filter: get("RUST_LOG").unwrap_or_else(|| "info".into()),
            log_format,
        })
    }
}

fn check_url(var: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::BadEnv { var, reason: "must be an http:// or https:// URL".into() })
    }
}

/// The operator's file as (path, text), or `None` when the default path is absent (the
/// shipped defaults then apply). An explicitly named file must exist.
fn read_config_file(path: &Path, explicit: bool) -> Result<Option<(String, String)>, ConfigError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some((name, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(None),
        Err(e) => Err(ConfigError::Read { path: name, reason: e.to_string() }),
    }
}

impl Settings {
    /// The shipped defaults alone.
    pub fn shipped() -> Settings {
        // The shipped file is checked by a unit test, so it always parses and validates.
        Settings::layered(None, &|_: &str| None).expect("the shipped config/itbot.toml is valid")
    }

    /// Shipped defaults, then `file` (name, text), then `ITBOT__SECTION__KEY` from `lookup`.
    pub fn layered(
        file: Option<&(String, String)>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let shipped: toml::Table = toml::from_str(SHIPPED_CONFIG).map_err(|e| ConfigError::Syntax {
            path: "(shipped config/itbot.toml)".into(),
            reason: e.to_string(),
        })?;
        // A value nobody overrode is reported as the operator's file: that is where to change it.
        let file_name = file.map(|(n, _)| n.clone()).unwrap_or_else(|| DEFAULT_CONFIG_PATH.into());
        let overrides = env_overrides(&shipped, lookup)?;
        let mut figment = Figment::from(Named::new(&file_name, Serialized::defaults(shipped)));
        if let Some((name, text)) = file {
            // Parsed here rather than by figment's TOML provider: this parser's spans give the
            // line of a syntax error, and it is the TOML version the rest of the crate uses.
            let theirs: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
                path: name.clone(),
                reason: e.message().to_string() + &line_of(text, e.span()),
            })?;
            figment = figment.merge(Named::new(name, Serialized::defaults(theirs)));
        }
        for (var, key, value) in overrides {
            figment = figment.merge(Named::new(&var, Serialized::default(&key, value)));
        }

        let settings: Settings = figment.extract().map_err(|e| invalid(e, &file_name))?;
        let origin =
            |key: &str| figment.find_metadata(key).map_or_else(|| file_name.clone(), |m| m.name.to_string());
        settings.validate(&origin)?;
        Ok(settings)
    }

    /// The `[company]` facts: known values only, so a typo ("mac", "gsuite") is caught here
    /// rather than silently choosing no articles.
    fn validate_company(&self, bad: &dyn Fn(&str, String) -> ConfigError) -> Result<(), ConfigError> {
        let c = &self.company;
        let one_of = |key: &str, value: &str, allowed: &[&str]| {
            if value.is_empty() || allowed.contains(&value) {
                Ok(())
            } else {
                Err(bad(key, format!("`{value}` is not one of {} (or empty)", allowed.join(", "))))
            }
        };
        one_of("company.identity_provider", &c.identity_provider, &["okta", "microsoft", "google"])?;
        one_of("company.productivity_suite", &c.productivity_suite, &["google", "microsoft"])?;
        for p in &c.platforms {
            if !["macos", "windows"].contains(&p.as_str()) {
                return Err(bad("company.platforms", format!("`{p}` is not macos or windows")));
            }
        }
        for d in &c.email_domains {
            if d.contains('@') || !d.contains('.') || d.contains(char::is_whitespace) {
                return Err(bad(
                    "company.email_domains",
                    format!("`{d}` is not a domain (like example.com)"),
                ));
            }
        }
        for (key, url) in
            [("company.sign_in_url", &c.sign_in_url), ("company.ticket_portal_url", &c.ticket_portal_url)]
        {
            let ok = url.is_empty()
                || ((url.starts_with("https://") || url.starts_with("http://"))
                    && !url.contains(char::is_whitespace));
            if !ok {
                return Err(bad(key, format!("`{url}` is not an http(s) URL")));
            }
        }
        let org_ok = c.github_org.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
        if !org_ok {
            return Err(bad(
                "company.github_org",
                format!("`{}` is not a GitHub organization name", c.github_org),
            ));
        }
        Ok(())
    }

    fn validate(&self, origin: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| ConfigError::Invalid {
            source_name: origin(key),
            key: key_label(key),
            reason,
        };
        let range = |key: &str, v: f64, lo: f64, hi: f64| {
            if v < lo || v > hi {
                Err(bad(key, format!("{v} is out of range ({lo}-{hi})")))
            } else {
                Ok(())
            }
        };
        range("assist.wait_secs", self.assist.wait_secs as f64, 0.0, 120.0)?;
        range("escalation.max_failed_attempts", self.escalation.max_failed_attempts as f64, 1.0, 10.0)?;
        range("openai.temperature", self.openai.temperature, 0.0, 2.0)?;
        range("openai.max_completion_tokens", self.openai.max_completion_tokens as f64, 16.0, 16384.0)?;
        range("openai.timeout_secs", self.openai.timeout_secs as f64, 1.0, 300.0)?;
        range("openai.max_concurrency", self.openai.max_concurrency as f64, 1.0, 64.0)?;
        range("openai.max_retries", self.openai.max_retries as f64, 0.0, 10.0)?;
        range("openai.max_prompt_tokens", self.openai.max_prompt_tokens as f64, 500.0, 1_000_000.0)?;
        range("openai.tokens_per_minute", self.openai.tokens_per_minute as f64, 0.0, 1e12)?;
        for (model, p) in &self.openai.prices.0 {
            let ok = [Some(p.input), p.cached_input, Some(p.output)]
                .into_iter()
                .flatten()
                .all(|v| v.is_finite() && v >= 0.0);
            if !ok {
                // The model's own key, so the error names the layer that priced it.
                let key = format!("openai.prices.{model}");
                return Err(bad(&key, format!("prices of `{model}` must be zero or more")));
            }
        }
        range("history.backfill_messages", self.history.backfill_messages as f64, 0.0, 5000.0)?;
        range("history.max_tickets", self.history.max_tickets as f64, 0.0, 100_000.0)?;
        range("history.max_age_days", self.history.max_age_days as f64, 1.0, 3650.0)?;
        range("history.backfill_pace_ms", self.history.backfill_pace_ms as f64, 0.0, 60_000.0)?;
        range("threads.idle_secs", self.threads.idle_secs as f64, 60.0, 604_800.0)?;
        range("threads.settled_secs", self.threads.settled_secs as f64, 1.0, 604_800.0)?;
        range("threads.max_live", self.threads.max_live as f64, 1.0, 1_000_000.0)?;
        range("threads.shutdown_grace_secs", self.threads.shutdown_grace_secs as f64, 0.0, 120.0)?;
        range("slack.connections", self.slack.connections as f64, 1.0, 10.0)?;
        if self.outage.min_reporters != 0 {
            range("outage.min_reporters", self.outage.min_reporters as f64, 2.0, 100.0)?;
        }
        range("outage.window_secs", self.outage.window_secs as f64, 60.0, 86_400.0)?;
        range("report.weekly_hour", self.report.weekly_hour as f64, 0.0, 23.0)?;

        self.validate_company(&bad)?;

        for (key, pattern) in [
            ("assist.assignee_pattern", &self.assist.assignee_pattern),
            ("assist.ticket_pattern", &self.assist.ticket_pattern),
        ] {
            let re =
                Regex::new(pattern).map_err(|e| bad(key, format!("not a valid regular expression: {e}")))?;
            if re.captures_len() < 2 {
                return Err(bad(key, "needs a capture group ( ... ) around the value".into()));
            }
        }
        for id in &self.assist.bot_ids {
            if !looks_like_id(id, &['B']) {
                return Err(bad("assist.bot_ids", format!("`{id}` is not a bot id (B...)")));
            }
        }
        for id in &self.escalation.it_staff {
            if !looks_like_id(id, &['U', 'W']) {
                return Err(bad("escalation.it_staff", format!("`{id}` is not a user id (U... or W...)")));
            }
        }
        let m = &self.escalation.fallback_mention;
        let mention_ok = m.is_empty() || m.starts_with("<@") || m.starts_with("<!subteam^");
        if !mention_ok || m.contains(char::is_whitespace) {
            return Err(bad(
                "escalation.fallback_mention",
                "must be empty, a user mention <@U...> or a user group mention <!subteam^S...>".into(),
            ));
        }
        let mut precedence = self.triage.precedence.clone();
        precedence.sort();
        if precedence != ["access", "change", "technical"] {
            return Err(bad(
                "triage.precedence",
                "must list \"technical\", \"change\" and \"access\", each once, in the order that wins"
                    .into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.triage.min_confidence) {
            return Err(bad("triage.min_confidence", "must be between 0 and 1".into()));
        }
        for (key, list) in [
            ("triage.problem", &self.triage.problem),
            ("triage.access", &self.triage.access),
            ("triage.change", &self.triage.change),
            ("triage.request", &self.triage.request),
            ("triage.chatter", &self.triage.chatter),
            ("followup.human", &self.followup.human),
            ("followup.failed", &self.followup.failed),
            ("followup.worked", &self.followup.worked),
        ] {
            if let Some(p) = list.iter().find(|p| p.trim().is_empty() || p.trim() == "*") {
                return Err(bad(key, format!("`{p}` is not a phrase: it would match every message")));
            }
        }
        const DAYS: [&str; 8] = ["", "mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        if !DAYS.contains(&self.report.weekly_day.as_str()) {
            return Err(bad("report.weekly_day", "must be one of mon..sun, or \"\"".into()));
        }
        let tz = &self.report.timezone;
        if crate::schedule::time_zone(tz).is_none() {
            return Err(bad(
                "report.timezone",
                format!("`{tz}` is not a known time zone; use \"UTC\" or an IANA name such as Europe/Berlin"),
            ));
        }
        Ok(())
    }
}

fn looks_like_id(id: &str, prefixes: &[char]) -> bool {
    id.len() >= 3
        && id.starts_with(prefixes)
        && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// `assist.wait_secs` → `[assist] wait_secs` (how operators see it in the file).
fn key_label(path: &str) -> String {
    let mut parts = path.splitn(2, '.');
    match (parts.next(), parts.next()) {
        (Some(section), Some(key)) => format!("[{section}] {}", key.split(['[', '.']).next().unwrap_or(key)),
        (Some(section), None) if !section.is_empty() && section != "." => format!("[{section}]"),
        _ => "(top level)".to_string(),
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        }
        None => String::new(),
    }
}

/// A provider under the name operators know it by (the file's path or the variable), so that
/// figment's record of where each value came from names it.
struct Named<P> {
    name: String,
    provider: P,
}

impl<P: Provider> Named<P> {
    fn new(name: &str, provider: P) -> Named<P> {
        Named { name: name.to_string(), provider }
    }
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<figment::value::Map<Profile, figment::value::Dict>, figment::Error> {
        self.provider.data()
    }
}

/// A figment error as "source: [section] key: reason", the source taken from the value's
/// provenance (`fallback` when figment does not know it).
fn invalid(e: figment::Error, fallback: &str) -> ConfigError {
    use figment::error::Kind;
    let source_name = e.metadata.as_ref().map_or_else(|| fallback.to_string(), |m| m.name.to_string());
    let path = e.path.join(".");
    let (key, reason) = match &e.kind {
        // `deny_unknown_fields`: the path ends with the stray key; before it, its table.
        Kind::UnknownField(field, known) => {
            let table = match e.path.split_last() {
                Some((last, table)) if last == field => table.join("."),
                _ => path.clone(),
            };
            let known = known.join(", ");
            if table.is_empty() {
                (format!("[{field}]"), format!("unknown section; known sections: {known}"))
            } else {
                (format!("[{table}] {field}"), format!("unknown key; keys of [{table}]: {known}"))
            }
        }
        // Worded as serde words it, which operators may know from other tools.
        Kind::InvalidType(actual, expected) => {
            (key_label(&path), format!("invalid type: {actual}, expected {expected}"))
        }
        kind => (key_label(&path), kind.to_string()),
    };
    ConfigError::Invalid { source_name, key, reason }
}

/// The `ITBOT__SECTION__KEY` variables that are set, as (variable, `section.key`, value). Each
/// key of the shipped table is looked up by name, so no scan of the whole environment is
/// needed; the value is parsed as the type the key has (lists are comma-separated).
fn env_overrides(
    shipped: &toml::Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String, toml::Value)>, ConfigError> {
    let mut found = Vec::new();
    for (section, value) in shipped {
        let toml::Value::Table(keys) = value else { continue };
        for (key, current) in keys {
            let var = format!("ITBOT__{}__{}", section.to_uppercase(), key.to_uppercase());
            let Some(raw) = lookup(&var) else { continue };
            let parsed = parse_like(current, raw.trim()).map_err(|reason| ConfigError::Invalid {
                source_name: var.clone(),
                key: format!("[{section}] {key}"),
                reason,
            })?;
            found.push((var, format!("{section}.{key}"), parsed));
        }
    }
    Ok(found)
}

fn parse_like(current: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match current {
        V::Integer(_) => V::Integer(raw.parse().map_err(|_| format!("`{raw}` is not a whole number"))?),
        V::Float(_) => V::Float(raw.parse().map_err(|_| format!("`{raw}` is not a number"))?),
        V::Boolean(_) => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => V::Boolean(true),
            "false" | "0" | "no" | "off" => V::Boolean(false),
            _ => return Err(format!("`{raw}` is not true or false")),
        },
        V::Array(_) => V::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| V::String(s.to_string()))
                .collect(),
        ),
        V::Table(_) => return Err("a table cannot be set from the environment; set it in the file".into()),
        _ => V::String(raw.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| map.get(k).cloned()
    }

    #[test]
    fn the_shipped_file_parses_and_validates() {
        let s = Settings::shipped();
        assert_eq!(s.assist.wait_secs, 10);
        assert_eq!(s.slack.connections, 2);
        assert_eq!(s.escalation.max_failed_attempts, 2);
    }

    #[test]
    fn env_override_replaces_a_key_with_its_type() {
        let lookup = env(&[("ITBOT__ASSIST__WAIT_SECS", "2"), ("ITBOT__ESCALATION__IT_STAFF", "U01,U02")]);
        let s = Settings::layered(None, &lookup).unwrap();
        assert_eq!(s.assist.wait_secs, 2);
        assert_eq!(s.escalation.it_staff, vec!["U01", "U02"]);
    }

    #[test]
    fn a_bad_env_override_names_the_variable_and_key() {
        let lookup = env(&[("ITBOT__ASSIST__WAIT_SECS", "ten")]);
        let err = Settings::layered(None, &lookup).unwrap_err().to_string();
        assert!(err.contains("ITBOT__ASSIST__WAIT_SECS"), "{err}");
        assert!(err.contains("[assist] wait_secs"), "{err}");
        assert!(err.contains("not a whole number"), "{err}");
    }

    #[test]
    fn a_wrong_type_in_the_file_names_file_key_and_reason() {
        let file = ("my.toml".to_string(), "[assist]\nwait_secs = \"ten\"\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert_eq!(err, "my.toml: [assist] wait_secs: invalid type: string \"ten\", expected u64");
    }

    #[test]
    fn an_out_of_range_value_is_rejected_with_its_range() {
        let file = ("my.toml".to_string(), "[slack]\nconnections = 50\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert_eq!(err, "my.toml: [slack] connections: 50 is out of range (1-10)");
    }

    #[test]
    fn an_unknown_key_or_section_is_rejected() {
        let file = ("my.toml".to_string(), "[assist]\nwait_sec = 3\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert!(err.starts_with("my.toml: [assist] wait_sec: unknown key"), "{err}");
        let file = ("my.toml".to_string(), "[asist]\nwait_secs = 3\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert!(err.starts_with("my.toml: [asist]: unknown section"), "{err}");
    }

    #[test]
    fn a_bad_value_from_the_file_names_the_file_and_key_though_the_environment_sets_others() {
        let file = ("my.toml".to_string(), "[slack]\nconnections = 50\n".to_string());
        let lookup = env(&[("ITBOT__ASSIST__WAIT_SECS", "3")]);
        let err = Settings::layered(Some(&file), &lookup).unwrap_err().to_string();
        assert_eq!(err, "my.toml: [slack] connections: 50 is out of range (1-10)");
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable_though_the_file_sets_the_key_too() {
        let file = ("my.toml".to_string(), "[slack]\nconnections = 3\n".to_string());
        let lookup = env(&[("ITBOT__SLACK__CONNECTIONS", "50")]);
        let err = Settings::layered(Some(&file), &lookup).unwrap_err().to_string();
        assert_eq!(err, "ITBOT__SLACK__CONNECTIONS: [slack] connections: 50 is out of range (1-10)");
    }

    #[test]
    fn the_environment_wins_over_the_file_and_the_file_over_the_shipped_defaults() {
        let file =
            ("my.toml".to_string(), "[slack]\nconnections = 50\n[assist]\nwait_secs = 7\n".to_string());
        let lookup = env(&[("ITBOT__SLACK__CONNECTIONS", "4")]);
        let s = Settings::layered(Some(&file), &lookup).unwrap();
        assert_eq!((s.slack.connections, s.assist.wait_secs), (4, 7));
        assert_eq!(s.escalation.max_failed_attempts, Settings::shipped().escalation.max_failed_attempts);
    }

    #[test]
    fn an_unknown_key_is_refused_with_the_keys_its_section_has() {
        let file = ("my.toml".to_string(), "[report]\nweekly_days = \"mon\"\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert_eq!(
            err,
            "my.toml: [report] weekly_days: unknown key; keys of [report]: weekly_day, weekly_hour, timezone"
        );
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let file = ("my.toml".to_string(), "[assist]\nwait_secs = = 3\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert!(err.starts_with("my.toml: not valid TOML"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn a_bad_regex_is_caught_at_startup() {
        let lookup = env(&[("ITBOT__ASSIST__TICKET_PATTERN", "([A-Z")]);
        let err = Settings::layered(None, &lookup).unwrap_err().to_string();
        assert!(err.contains("[assist] ticket_pattern: not a valid regular expression"), "{err}");
    }

    #[test]
    fn a_missing_bot_token_names_the_variable_and_where_to_get_it() {
        let config = Config::load(env(&[("ITBOT_CONFIG", "config/itbot.toml")])).unwrap();
        let err = config.slack_tokens().unwrap_err().to_string();
        assert!(err.starts_with("SLACK_BOT_TOKEN is not set"), "{err}");
        assert!(err.contains("OAuth & Permissions"), "{err}");
    }

    #[test]
    fn swapped_tokens_are_caught_before_connecting() {
        let config = Config::load(env(&[
            ("SLACK_BOT_TOKEN", "xapp-1-A1-123-abc"),
            ("SLACK_APP_TOKEN", "xoxb-123-456-abc"),
        ]))
        .unwrap();
        let err = config.slack_tokens().unwrap_err().to_string();
        assert!(err.starts_with("SLACK_BOT_TOKEN: holds an app-level token"), "{err}");
        assert!(err.contains("swapped"), "{err}");
        assert!(!err.contains("abc"), "a token leaked into the error: {err}");
    }

    #[test]
    fn an_app_token_of_the_wrong_kind_is_caught() {
        let config = Config::load(env(&[
            ("SLACK_BOT_TOKEN", "xoxb-123-456-abc"),
            ("SLACK_APP_TOKEN", "xoxb-999-456-abc"),
        ]))
        .unwrap();
        let err = config.slack_tokens().unwrap_err().to_string();
        assert!(err.starts_with("SLACK_APP_TOKEN: holds a bot token"), "{err}");
    }

    #[test]
    fn tokens_never_show_in_debug_output() {
        let config = Config::load(env(&[
            ("SLACK_BOT_TOKEN", "xoxb-123-456-secretvalue"),
            ("SLACK_APP_TOKEN", "xapp-1-secretvalue"),
            ("OPENAI_API_KEY", "sk-secretvalue"),
        ]))
        .unwrap();
        let shown = format!("{config:?} {:?}", config.slack_tokens().unwrap());
        assert!(!shown.contains("secretvalue"), "{shown}");
    }

    #[test]
    fn an_explicit_config_path_that_does_not_exist_is_an_error() {
        let err = Config::load(env(&[("ITBOT_CONFIG", "/nonexistent/itbot.toml")])).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/itbot.toml: cannot read the file"), "{err}");
    }

    #[test]
    fn company_facts_with_a_typo_are_caught_and_lists_come_from_the_environment() {
        for (text, want) in [
            ("platforms = [\"mac\"]", "my.toml: [company] platforms: `mac` is not macos or windows"),
            (
                "productivity_suite = \"gsuite\"",
                "my.toml: [company] productivity_suite: `gsuite` is not one of google, microsoft (or empty)",
            ),
            (
                "identity_provider = \"Okta\"",
                "my.toml: [company] identity_provider: `Okta` is not one of okta, microsoft, google (or empty)",
            ),
            ("sign_in_url = \"acme.okta.com\"", "my.toml: [company] sign_in_url: `acme.okta.com` is not an http(s) URL"),
            (
                "email_domains = [\"@acme.com\"]",
                "my.toml: [company] email_domains: `@acme.com` is not a domain (like example.com)",
            ),
        ] {
            let file = ("my.toml".to_string(), format!("[company]\n{text}\n"));
            let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
            assert_eq!(err, want);
        }
        let lookup = env(&[("ITBOT__COMPANY__PLATFORMS", "windows,macos")]);
        assert_eq!(Settings::layered(None, &lookup).unwrap().company.platforms, ["windows", "macos"]);
    }

    #[test]
    fn an_unknown_report_time_zone_is_caught_at_startup_and_a_real_one_is_accepted() {
        let file = ("my.toml".to_string(), "[report]\ntimezone = \"Mars/Olympus\"\n".to_string());
        let err = Settings::layered(Some(&file), &|_: &str| None).unwrap_err().to_string();
        assert!(
            err.starts_with("my.toml: [report] timezone: `Mars/Olympus` is not a known time zone"),
            "{err}"
        );
        let lookup = env(&[("ITBOT__REPORT__TIMEZONE", "America/New_York")]);
        assert_eq!(Settings::layered(None, &lookup).unwrap().report.timezone, "America/New_York");
    }

    #[test]
    fn bad_environment_values_are_named() {
        let err = Config::load(env(&[("PORT", "eighty")])).unwrap_err().to_string();
        assert!(err.starts_with("PORT:"), "{err}");
        let err = Config::load(env(&[("IT_CHANNEL_ID", "#it")])).unwrap_err().to_string();
        assert!(err.starts_with("IT_CHANNEL_ID:"), "{err}");
    }
}

//! Builds and wires the actors; the only module that knows all of them. `Bot::start` checks the
//! tokens, resolves the bot's identity and the IT channel, starts the HTTP endpoints, the shared
//! actors, the router and the sockets; `Bot::run_until_stopped` serves until shutdown, then
//! drains: readiness false, sockets closed, in-flight turns finished within
//! `threads.shutdown_grace_secs`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use secrecy::ExposeSecret;

use crate::actors::openai::{OpenAiActor, OpenAiParams};
use crate::actors::outage::OutageActor;
use crate::actors::report::{ReportActor, ScheduleOptions, StopSchedule};
use crate::actors::router::{DrainThreads, LiveThreads, RouterActor};
use crate::actors::slack_api::{ApiOptions, Backlog, GetBacklog, ShareBudgets, SlackApiActor};
use crate::actors::socket::{CloseSockets, SocketActor, SocketOptions};
use crate::actors::tickets::{BackfillPlan, IndexStats, TicketIndexActor};
use crate::actors::Services;
use crate::assist::AssistParser;
use crate::config::{Config, ConfigError};
use crate::coord::Coord;
use crate::http::{self, Health};
use crate::knowledge::{KnowledgeBase, KnowledgeError};
use crate::prompt::{PromptBuilder, PromptError};
use crate::report::Report;
use crate::slack::client::Identity;
use crate::slack::{ChannelId, SlackApi, SlackError, UserId, WebClient};

/// Why the bot could not start. Each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error("SLACK_BOT_TOKEN was refused by Slack ({0}); reinstall the app or copy the Bot User OAuth Token again")]
    BotToken(SlackError),
    #[error("cannot reach Slack at SLACK_API_URL: {0}")]
    Slack(SlackError),
    #[error("no channel named #{0} is visible to the bot; check IT_CHANNEL_NAME, or set IT_CHANNEL_ID (for a private channel, invite the bot first)")]
    ChannelNotFound(String),
    #[error(transparent)]
    Redis(#[from] crate::coord::CoordError),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
}

/// Where the HTTP endpoints listen.
#[derive(Debug, Clone, Copy)]
pub struct StartOptions {
    pub http_addr: SocketAddr,
}

impl StartOptions {
    /// All interfaces on `PORT` (containers), as `run` needs.
    pub fn from_config(config: &Config) -> StartOptions {
        StartOptions { http_addr: SocketAddr::from(([0, 0, 0, 0], config.env.port)) }
    }
}

/// Timings and limits of the Slack transport. Not configuration: Slack's limits are Slack's. The
/// defaults are for production; tests pass shorter waits and faster pacing.
#[derive(Debug, Clone, Default)]
pub struct TransportOptions {
    pub socket: SocketOptions,
    pub api: ApiOptions,
    /// The clock and tick of the weekly report.
    pub schedule: ScheduleOptions,
}

/// A running bot.
pub struct Bot {
    pub health: Arc<Health>,
    /// Where `/healthz` and `/readyz` are served.
    pub http_addr: SocketAddr,
    router: Addr<RouterActor>,
    tickets: Addr<TicketIndexActor>,
    report: Addr<ReportActor>,
    sockets: Vec<Addr<SocketActor>>,
    /// The thread the sockets run on.
    socket_thread: ArbiterHandle,
    /// The Web API transport, asked for its backlog.
    slack_api: Addr<SlackApiActor>,
    http: actix_web::dev::ServerHandle,
    /// How long in-flight turns may take on shutdown.
    grace: Duration,
}

/// How long a stop waits for the sockets to close before ending their thread.
const SOCKET_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The knowledge base beside the config file (`<dir>/knowledge/*.md`), or the shipped one.
pub fn load_knowledge(config: &Config) -> Result<KnowledgeBase, KnowledgeError> {
    let dir = config.env.config_path.parent().unwrap_or_else(|| Path::new(".")).join("knowledge");
    let facts = crate::knowledge::Facts::from_settings(&config.settings.company);
    if dir.is_dir() {
        KnowledgeBase::load_dir(&dir, &facts)
    } else {
        Ok(KnowledgeBase::shipped_for(&facts))
    }
}

/// The triage and follow-up rules of the configuration, with their classifiers trained now
/// (tens of milliseconds), so the first employee does not wait for it.
fn triage_rules(config: &Config) -> Result<crate::triage::Rules, ConfigError> {
    let rules =
        crate::triage::Rules::new(&config.settings.triage, &config.settings.followup).map_err(|e| {
            ConfigError::Invalid {
                source_name: config.env.config_path.display().to_string(),
                key: "[triage]".into(),
                reason: e.to_string(),
            }
        })?;
    rules.models();
    Ok(rules)
}

/// Who the bot is (`auth.test`) and which channel it serves (`IT_CHANNEL_ID`, or found by name).
async fn identify(config: &Config, slack: &SlackApi) -> Result<(Identity, ChannelId), StartError> {
    let identity = slack.auth_test().await.map_err(|e| {
        if e.is_auth_failure() {
            StartError::BotToken(e)
        } else {
            StartError::Slack(e)
        }
    })?;
    let channel = match &config.env.it_channel_id {
        Some(id) => id.clone(),
        None => slack
            .find_channel(&config.env.it_channel_name)
            .await
            .map_err(StartError::Slack)?
            .ok_or_else(|| StartError::ChannelNotFound(config.env.it_channel_name.clone()))?,
    };
    Ok((identity, channel))
}

/// What a one-shot command needs to read the channel: the Web API with Slack's real limits, who
/// the bot is, the channel it serves and the triage rules.
struct ChannelReader {
    slack: SlackApi,
    bot: UserId,
    channel: ChannelId,
    rules: crate::triage::Rules,
}

/// Connects a one-shot command (`explain --history`, `report`) to the workspace.
async fn channel_reader(config: &Config) -> Result<ChannelReader, StartError> {
    let tokens = config.slack_tokens()?;
    let rules = triage_rules(config)?;
    let web =
        WebClient::new(crate::net::http_client(Duration::from_secs(30)), config.env.slack_api_url.clone());
    let api = ApiOptions::default();
    let transport = SlackApiActor::new(web, tokens.bot, tokens.app, api.clone(), Health::new()).start();
    let slack = SlackApi::new(transport.recipient(), api.call_timeout());
    let (identity, channel) = identify(config, &slack).await?;
    Ok(ChannelReader { slack, bot: identity.user_id, channel, rules })
}

/// Reads the channel's last `messages` messages into a past-ticket index, for `itbot explain
/// --history`: the same reading the bot does at startup, but waited for.
pub async fn read_past_tickets(
    config: &Config,
    messages: usize,
) -> Result<crate::tickets::TicketIndex, StartError> {
    let reader = channel_reader(config).await?;
    let plan = BackfillPlan {
        channel: reader.channel,
        bot: reader.bot,
        max_messages: messages,
        max_age_days: config.settings.history.max_age_days,
        pace: Duration::from_millis(config.settings.history.backfill_pace_ms),
    };
    let mut index = crate::tickets::TicketIndex::new(config.settings.history.max_tickets.max(messages));
    crate::actors::tickets::backfill(&reader.slack, &reader.rules, &plan, |t| index.upsert(t))
        .await
        .map_err(StartError::Slack)?;
    Ok(index)
}

/// A report read for `itbot report`.
#[derive(Debug)]
pub struct ReadReport {
    pub report: Report,
    /// Root messages read from the channel.
    pub messages_read: usize,
    /// False when `history.backfill_messages` ran out before the start of the period.
    pub complete: bool,
}

/// The team report over the last `days` × 24 hours up to now (`days` in
/// 1..=[`crate::report::MAX_DAYS`]), read from the channel at the backfill's pace
/// (`history.backfill_pace_ms`, at most `history.backfill_messages` root messages), with
/// `escalation.it_staff` as IT staff and days in `report.timezone`.
pub async fn read_report(config: &Config, days: u32) -> Result<ReadReport, StartError> {
    let kb = load_knowledge(config)?;
    let reader = channel_reader(config).await?;
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let since = until - i64::from(days) * 86_400;
    let history = &config.settings.history;
    let collected = crate::report::collect(
        &reader.slack,
        &reader.channel,
        &reader.bot,
        &reader.rules,
        &config.settings.escalation.it_staff,
        since,
        Duration::from_millis(history.backfill_pace_ms),
        history.backfill_messages,
    )
    .await
    .map_err(StartError::Slack)?;
    let report = Report::build(&collected.tickets, since, until, &config.settings.report.timezone, &kb);
    Ok(ReadReport { report, messages_read: collected.messages_read, complete: collected.complete })
}

impl Bot {
    /// Starts everything on the current actix system, with Slack's real limits.
    pub async fn start(config: Config, options: StartOptions) -> Result<Bot, StartError> {
        Bot::start_with(config, options, TransportOptions::default()).await
    }

    /// Starts everything with these transport timings (tests shorten them).
    pub async fn start_with(
        config: Config,
        options: StartOptions,
        transport: TransportOptions,
    ) -> Result<Bot, StartError> {
        let tokens = config.slack_tokens()?;
        let kb = load_knowledge(&config)?;
        let template = PromptBuilder::load_template(&config.env.config_path)?;
        let prompt = PromptBuilder::new(
            &template,
            &config.settings.company,
            &config.env.openai_model,
            config.settings.openai.max_prompt_tokens,
        );
        let assist = AssistParser::new(&config.settings.assist).map_err(|e| ConfigError::Invalid {
            source_name: config.env.config_path.display().to_string(),
            key: "[assist]".into(),
            reason: e.to_string(),
        })?;

        let rules = triage_rules(&config)?;

        let health = Health::new();
        let llm_meter = health.llm.clone();
        let (http_addr, http) = http::serve(options.http_addr, health.clone())
            .map_err(|e| StartError::Listen { addr: options.http_addr, reason: e.to_string() })?;

        let web = WebClient::new(
            crate::net::http_client(transport.api.request_timeout),
            config.env.slack_api_url.clone(),
        );
        let api = SlackApiActor::new(web, tokens.bot, tokens.app, transport.api.clone(), health.clone());
        let slack_api = api.start();
        let slack = SlackApi::new(slack_api.clone().recipient(), transport.api.call_timeout());

        let (identity, channel) = identify(&config, &slack).await?;
        health.set_channel_resolved();
        tracing::info!(bot_user = %identity.user_id, channel = %channel, "connected to the workspace");
        let coord = match &config.env.redis_url {
            Some(url) => {
                let coord = Coord::connect(url, Some(health.clone()))?
                    .scoped(&identity.team_id, identity.user_id.as_str());
                slack_api.do_send(ShareBudgets(coord.clone()));
                // One round trip now, so the log and `/readyz` say at once how Redis answers.
                match coord.check().await {
                    Ok((version, rtt)) => tracing::info!(
                        version,
                        rtt_us = rtt.as_micros() as u64,
                        "replicas coordinate through redis: one slack budget, shared thread state, each effect once"
                    ),
                    Err(e) => tracing::error!(error = %e, "redis is unreachable at startup; answering without it until it answers"),
                }
                Some(coord)
            }
            None => None,
        };

        let openai = config.env.openai_api_key.as_ref().map(|key| {
            let o = &config.settings.openai;
            let client = crate::openai::Client::new(
                crate::net::http_client(Duration::from_secs(o.timeout_secs)),
                config.env.openai_base_url.clone(),
                secrecy::SecretString::from(key.expose_secret().to_string()),
                Duration::from_secs(o.timeout_secs),
            );
            OpenAiActor::new(
                client,
                OpenAiParams {
                    model: config.env.openai_model.clone(),
                    temperature: o.temperature,
                    max_completion_tokens: o.max_completion_tokens,
                    max_concurrency: o.max_concurrency,
                    max_retries: o.max_retries,
                    tokens_per_minute: o.tokens_per_minute,
                    prices: o.prices.clone(),
                },
                llm_meter.clone(),
            )
            .start()
        });
        tracing::info!(llm = openai.is_some(), articles = kb.articles().len(), "answer sources ready");
        if openai.is_some() {
            let tokenizer = PromptBuilder::new("", &config.settings.company, &config.env.openai_model, 1000);
            // Loading the tokenizer takes a moment; the first answer should not wait for it.
            std::thread::spawn(move || tokenizer.warm_up());
        }

        // Members' names, for redaction: read in the background, paced, after the bot is up.
        actix::spawn(load_members(slack.background(), MEMBERS_PACE));

        // The backfill yields Slack's read budget to every live answer.
        let tickets = TicketIndexActor::new(
            config.settings.history.max_tickets,
            slack.background(),
            rules.clone(),
            BackfillPlan {
                channel: channel.clone(),
                bot: identity.user_id.clone(),
                max_messages: config.settings.history.backfill_messages,
                max_age_days: config.settings.history.max_age_days,
                pace: Duration::from_millis(config.settings.history.backfill_pace_ms),
            },
        )
        .start();

        let outage = OutageActor::new(
            &config.settings,
            slack.clone(),
            channel.clone(),
            &identity,
            health.clone(),
            kb.clone(),
            rules.clone(),
        )
        .with_coord(coord.clone())
        .start();
        let connections = config.settings.slack.connections;
        let grace = Duration::from_secs(config.settings.threads.shutdown_grace_secs);
        let services = Arc::new(Services {
            settings: config.settings,
            slack: slack.clone(),
            openai,
            kb,
            tickets: tickets.clone(),
            assist,
            rules,
            identity,
            channel,
            channel_name: config.env.it_channel_name,
            health: health.clone(),
            prompt,
            llm_meter,
            outage,
            streaming: Default::default(),
            coord,
        });
        let report = ReportActor::new(services.clone(), transport.schedule.clone()).start();
        let router = RouterActor::new(services, report.clone()).start();
        // The sockets get a thread of their own: an envelope is acked within Slack's deadline
        // however busy the turns on the main thread are.
        let socket_thread = Arbiter::new().handle();
        let sockets = (0..connections)
            .map(|slot| {
                let router = router.clone().recipient();
                let (slack, health, options) = (slack.clone(), health.clone(), transport.socket.clone());
                SocketActor::start_in_arbiter(&socket_thread, move |_| {
                    SocketActor::new(slot, slack, router, health, options)
                })
            })
            .collect();
        Ok(Bot { health, http_addr, router, tickets, report, sockets, socket_thread, slack_api, http, grace })
    }

    /// Live ThreadActors.
    pub async fn live_threads(&self) -> usize {
        self.router.send(LiveThreads).await.unwrap_or(0)
    }

    /// Past tickets indexed, and whether the startup read of the channel finished.
    pub async fn past_tickets(&self) -> (usize, bool) {
        self.tickets.send(IndexStats).await.unwrap_or((0, false))
    }

    /// Waits until no thread has a turn in flight; returns how many had one when asked (asking
    /// also makes threads stop waiting for Assist, so only call it when shutting down or when
    /// that does not matter).
    pub async fn in_flight_turns(&self) -> usize {
        self.router.send(DrainThreads).await.unwrap_or(0)
    }

    /// Web API calls waiting or running.
    pub async fn api_backlog(&self) -> Backlog {
        self.slack_api.send(GetBacklog).await.unwrap_or_default()
    }

    /// Serves until `shutdown` completes or an unrecoverable error occurs (returned). On
    /// shutdown it drains: readiness goes false and the sockets close, so Slack sends new events
    /// to other replicas, and turns in flight get `threads.shutdown_grace_secs` to finish.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> Result<(), String> {
        let health = self.health.clone();
        let result = tokio::select! {
            reason = health.fatal() => Err(reason),
            _ = shutdown => Ok(()),
        };
        self.close_sockets();
        if result.is_ok() {
            self.drain().await;
        }
        self.http.stop(true).await;
        self.stop_socket_thread().await;
        result
    }

    /// Ends the sockets' thread once they closed (or after a short wait).
    async fn stop_socket_thread(&self) {
        let end = tokio::time::Instant::now() + SOCKET_CLOSE_WAIT;
        while self.health.connected_sockets() > 0 && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.socket_thread.stop();
    }

    /// Waits until no turn is in flight, or the grace period ends. Each round waits for the
    /// threads to say they are done; a round that waited for none ends the drain.
    async fn drain(&self) {
        let started = tokio::time::Instant::now();
        let end = started + self.grace;
        loop {
            match tokio::time::timeout_at(end, self.in_flight_turns()).await {
                Ok(0) => {
                    tracing::info!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "drained: no turn in flight"
                    );
                    return;
                }
                Ok(_) => continue,
                Err(_) => {
                    tracing::warn!(
                        grace_secs = self.grace.as_secs(),
                        "grace period over; stopping with turns in flight"
                    );
                    return;
                }
            }
        }
    }

    fn close_sockets(&self) {
        self.health.set_draining();
        // A replica on its way out posts no weekly report.
        self.report.do_send(StopSchedule);
        for s in &self.sockets {
            s.do_send(CloseSockets);
        }
    }

    /// Readiness false, sockets closed, HTTP stopped (no drain).
    pub async fn stop(&self) {
        self.close_sockets();
        self.http.stop(true).await;
        self.stop_socket_thread().await;
    }
}

/// `users.list` is Tier 2 (20 calls a minute): one page every three seconds stays inside it.
const MEMBERS_PACE: Duration = Duration::from_secs(3);
/// At most this many pages (200 members each) are read.
const MEMBERS_MAX_PAGES: usize = 500;

/// Reads the workspace's members a page at a time and hands their names to redaction, so the
/// names of people in the workspace become `@user` in everything that leaves. Answers do not
/// wait for it; until it is done only Slack mentions are replaced. Without `users:read` the bot
/// goes on without names (and `itbot doctor` says the scope is missing).
pub async fn load_members(slack: SlackApi, pace: Duration) {
    let mut members = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..MEMBERS_MAX_PAGES {
        if page > 0 {
            actix_rt::time::sleep(pace).await;
        }
        match slack.users_list(cursor.as_deref()).await {
            Ok(p) => {
                members.extend(p.members);
                cursor = p.next_cursor;
            }
            Err(e) => {
                tracing::warn!(error = %e, pages = page, "could not read the workspace's members; names are not redacted");
                return;
            }
        }
        if cursor.is_none() {
            break;
        }
    }
    tracing::info!(members = members.len(), "members' names loaded for redaction");
    crate::redact::people::set_directory(crate::redact::People::new(&members));
}

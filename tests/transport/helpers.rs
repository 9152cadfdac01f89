//! Spawning the real bot against the simulated workspace with short transport timings, and
//! waiting with deadlines. (Started from `tests/bot/helpers.rs`.)

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use itbot::actors::slack_api::ApiOptions;
use itbot::actors::socket::SocketOptions;
use itbot::config::Config;
use itbot::startup::{Bot, StartOptions, TransportOptions};
use itbot_fakes::workspace::{Posted, RateLimits, Workspace, WorkspaceOptions};

pub use crate::common::{wait_for, DEADLINE};
use crate::common::{wait_on, watch, RECHECK};

pub struct TestApp {
    pub ws: Workspace,
    pub bot: Bot,
}

/// A change to the configuration before the bot starts.
pub type Tweak = Box<dyn FnOnce(&mut Config)>;
/// Something done to the workspace before the bot starts (faults for its first calls).
pub type Prepare = Box<dyn FnOnce(&Workspace)>;

/// Options for one test's bot.
#[derive(Default)]
pub struct Setup {
    pub workspace: Option<WorkspaceOptions>,
    pub transport: Option<TransportOptions>,
    pub tweak: Option<Tweak>,
    pub before_start: Option<Prepare>,
    /// Do not wait for readiness (the bot is expected not to get there).
    pub no_wait: bool,
}

/// A workspace whose Slack is quick: short ack deadline, frequent pings, quick Assist.
pub fn fast_workspace() -> WorkspaceOptions {
    WorkspaceOptions {
        assist_enabled: true,
        assist_delay: Duration::from_millis(100),
        ack_timeout: Duration::from_millis(500),
        max_redeliveries: 5,
        ping_interval: Duration::from_millis(500),
        bot_in_channel: true,
        // Relaxed as much as the bot's pacing (`fast_transport`): these tests are about faults
        // and hundreds of tickets in one channel, not about Slack's budget.
        rate_limits: RateLimits::Relaxed(FAST_PACE),
        ..WorkspaceOptions::default()
    }
}

/// How much faster than Slack's limits the transport tests pace the bot and the workspace.
pub const FAST_PACE: u32 = 60;

/// Slack's timings shrunk so faults play out in a second or two, and pacing fast enough for
/// hundreds of tickets in one channel.
pub fn fast_transport() -> TransportOptions {
    TransportOptions {
        socket: SocketOptions {
            heartbeat: Duration::from_millis(200),
            stale_after: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            drain_for: Duration::from_secs(1),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            too_many_websockets_wait: Duration::from_millis(300),
        },
        api: ApiOptions {
            request_timeout: Duration::from_secs(2),
            pace_factor: FAST_PACE,
            max_queued: 1000,
            max_wait: Duration::from_secs(60),
            max_wait_cosmetic: Duration::from_secs(15),
            max_attempts: 5,
            max_retry_after: Duration::from_secs(40),
        },
        ..TransportOptions::default()
    }
}

/// A config as an operator would have it, pointed at the workspace (edits the struct, never the
/// process environment).
pub fn config_for(ws: &Workspace) -> Config {
    let mut env: HashMap<&str, String> = HashMap::new();
    env.insert("SLACK_BOT_TOKEN", ws.bot_token().to_string());
    env.insert("SLACK_APP_TOKEN", ws.app_token().to_string());
    env.insert("SLACK_API_URL", ws.api_url());
    env.insert("ITBOT_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/config/itbot.toml").to_string());
    let mut config = Config::load(|k| env.get(k).cloned()).expect("test config loads");
    config.settings.assist.bot_ids = vec![ws.assist_bot_id().to_string()];
    config.settings.assist.wait_secs = 5;
    // These tests post bursts of the same ticket from several people to load the transport;
    // outage detection would (rightly) answer them as one outage.
    config.settings.outage.min_reporters = 0;
    config
}

pub async fn spawn(setup: Setup) -> TestApp {
    let ws =
        Workspace::start(setup.workspace.unwrap_or_else(fast_workspace)).await.expect("workspace starts");
    watch(&ws);
    let mut config = config_for(&ws);
    if let Some(tweak) = setup.tweak {
        tweak(&mut config);
    }
    if let Some(prepare) = setup.before_start {
        prepare(&ws);
    }
    let options = StartOptions { http_addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
    let transport = setup.transport.unwrap_or_else(fast_transport);
    let bot = Bot::start_with(config, options, transport).await.expect("bot starts");
    if !setup.no_wait {
        let health = bot.health.clone();
        wait_until("the bot to connect both sockets", || {
            health.is_ready() && health.connected_sockets() == 2
        })
        .await;
    }
    TestApp { ws, bot }
}

/// [`wait_for`] on a plain condition.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    wait_for(what, || {
        let done = check();
        async move { done.then_some(()) }
    })
    .await
}

impl TestApp {
    pub fn it(&self) -> String {
        self.ws.it_channel().to_string()
    }

    /// The bot's messages in a thread (excluding the root).
    pub fn bot_replies(&self, thread: &str) -> Vec<Posted> {
        crate::common::bot_replies(&self.ws, thread)
    }

    /// Waits until the bot has posted `n` replies in `thread`, then returns them.
    pub async fn wait_bot_replies(&self, thread: &str, n: usize) -> Vec<Posted> {
        wait_on(&self.ws, &format!("{n} bot replies in {thread}"), || {
            let replies = self.bot_replies(thread);
            async move { (replies.len() >= n).then_some(replies) }
        })
        .await
    }

    /// A new employee posts a ticket in #it; returns its ts.
    pub fn ticket(&self, who: &str, text: &str) -> String {
        let user = self.ws.user_id(who);
        self.ws.post(&user, &self.it(), text, None)
    }

    /// Waits until nothing is in flight anywhere: every event acked, no Web API call waiting or
    /// running, no thread mid-turn (seen twice, with the workspace unchanged in between), then
    /// answers one control ticket, which proves everything routed before it is done.
    pub async fn settle(&self) {
        // One idle look can fall in a gap between two steps (an event acked, its turn not yet
        // begun); a step that follows would change the workspace within this long.
        const QUIET: Duration = Duration::from_millis(150);
        let end = tokio::time::Instant::now() + DEADLINE;
        let mut idle_before = false;
        loop {
            // Listen before looking, so that a change made meanwhile still counts.
            let mut changed = pin!(self.ws.changed());
            changed.as_mut().enable();
            let idle = self.is_idle().await;
            if idle && idle_before {
                break;
            }
            let now = tokio::time::Instant::now();
            assert!(now < end, "timed out waiting for the bot to settle");
            // Busy: the bot's own queues are not the workspace's, so look again now and then too.
            let wait = if idle { QUIET } else { RECHECK };
            let quiet = tokio::time::timeout_at((now + wait).min(end), changed).await.is_err();
            idle_before = idle && quiet;
        }
        let control = self.ticket("control", "my zoom camera is not working");
        self.wait_bot_replies(&control, 1).await;
    }

    /// Nothing in flight: no delivery waiting for an ack, no queued event, no Web API call
    /// queued or running, no thread mid-turn.
    async fn is_idle(&self) -> bool {
        if self.ws.pending_deliveries() != 0 || self.ws.queued_events() != 0 {
            return false;
        }
        let backlog = self.bot.api_backlog().await;
        backlog.queued == 0 && backlog.active == 0 && self.bot.in_flight_turns().await == 0
    }

    /// `GET /readyz`: status and body.
    pub async fn readyz(&self) -> (u16, String) {
        let client = awc::Client::default();
        let mut r =
            client.get(format!("http://{}/readyz", self.bot.http_addr)).send().await.expect("readyz answers");
        let body = r.body().await.expect("readyz body");
        (r.status().as_u16(), String::from_utf8_lossy(&body).into_owned())
    }
}

/// A counter from the `/readyz` body (`name=value` lines).
pub fn counter(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /readyz"))
}

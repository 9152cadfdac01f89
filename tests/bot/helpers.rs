//! Spawning the real bot against the simulated workspace, and waiting with deadlines.

use std::collections::HashMap;
use std::net::SocketAddr;

use itbot::config::Config;
use itbot::startup::{Bot, StartOptions, TransportOptions};
use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
use itbot_fakes::workspace::{Posted, Workspace, WorkspaceOptions};

pub use crate::common::wait_for;
use crate::common::{wait_on, watch};

pub struct TestApp {
    pub ws: Workspace,
    pub bot: Bot,
    pub llm: Option<FakeOpenAi>,
}

/// A change to the configuration before the bot starts.
pub type Tweak = Box<dyn FnOnce(&mut Config)>;

/// Writes channel history before the bot starts.
pub type Seed = Box<dyn FnOnce(&Workspace)>;

/// Options for one test's bot.
#[derive(Default)]
pub struct Setup {
    pub workspace: Option<WorkspaceOptions>,
    pub llm: bool,
    pub tweak: Option<Tweak>,
    /// Channel history written before the bot starts.
    pub seed: Option<Seed>,
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
    config
}

pub async fn spawn(setup: Setup) -> TestApp {
    let ws = Workspace::start(setup.workspace.unwrap_or_default()).await.expect("workspace starts");
    if let Some(seed) = setup.seed {
        seed(&ws);
    }
    let llm = if setup.llm {
        Some(FakeOpenAi::start(FakeOpenAiOptions::default()).await.expect("fake llm starts"))
    } else {
        None
    };
    let bot = start_bot(&ws, llm.as_ref(), setup.tweak).await;
    TestApp { ws, bot, llm }
}

/// Starts a bot on the workspace and waits until it is connected.
pub async fn start_bot(ws: &Workspace, llm: Option<&FakeOpenAi>, tweak: Option<Tweak>) -> Bot {
    start_bot_with(ws, llm, tweak, TransportOptions::default()).await
}

/// [`start_bot`] with these timings (a hand-set clock for the weekly report, for instance).
pub async fn start_bot_with(
    ws: &Workspace,
    llm: Option<&FakeOpenAi>,
    tweak: Option<Tweak>,
    transport: TransportOptions,
) -> Bot {
    let mut config = config_for(ws);
    if let Some(llm) = llm {
        config.env.openai_base_url = llm.base_url();
        config.env.openai_api_key = Some("sk-test-key".to_string().into());
    }
    if let Some(tweak) = tweak {
        tweak(&mut config);
    }
    let http = StartOptions { http_addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
    let sockets = config.settings.slack.connections as u32;
    let bot = Bot::start_with(config, http, transport).await.expect("bot starts");
    watch(ws);
    let health = bot.health.clone();
    // Every socket, not just the first: tests reason about where Slack sends the events.
    wait_for("the bot to connect all its sockets", || {
        let ready = health.is_ready() && health.connected_sockets() == sockets;
        async move { ready.then_some(()) }
    })
    .await;
    bot
}

/// The value of one series in a `/metrics` page (0 when absent).
pub fn metric_value(page: &str, series: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

impl TestApp {
    /// Stops the bot and starts a new one on the same workspace, as a redeploy would: the new
    /// one knows nothing but what Slack holds.
    pub async fn restart(&mut self, tweak: Option<Tweak>) {
        self.bot.stop().await;
        wait_on(&self.ws, "the old sockets to close", || {
            let open = self.ws.open_connections();
            async move { (open == 0).then_some(()) }
        })
        .await;
        self.bot = start_bot(&self.ws, self.llm.as_ref(), tweak).await;
    }

    /// The bot's replies whose text contains `needle`.
    pub fn bot_replies_with(&self, thread: &str, needle: &str) -> usize {
        self.bot_replies(thread).iter().filter(|p| p.text.contains(needle)).count()
    }

    /// Posts a control ticket and waits for its answer: everything sent before it has been
    /// routed and acted on by then (events reach the bot in order on its sockets).
    pub async fn control(&self) {
        let zed = self.ws.user_id("zed");
        let ts = self.ws.post(&zed, &self.it(), "my zoom camera is not working", None);
        self.wait_bot_replies(&ts, 1).await;
    }

    /// `GET /metrics` as text.
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.bot.http_addr);
        let mut response = awc::Client::default().get(url).send().await.expect("metrics");
        String::from_utf8(response.body().await.expect("body").to_vec()).expect("utf-8")
    }

    /// `GET /readyz` as text.
    pub async fn readyz(&self) -> String {
        let url = format!("http://{}/readyz", self.bot.http_addr);
        let mut response = awc::Client::default().get(url).send().await.expect("readyz");
        String::from_utf8(response.body().await.expect("body").to_vec()).expect("utf-8")
    }

    pub fn it(&self) -> String {
        self.ws.it_channel().to_string()
    }

    /// The bot's messages in a thread (excluding the root).
    pub fn bot_replies(&self, thread: &str) -> Vec<Posted> {
        crate::common::bot_replies(&self.ws, thread)
    }

    /// Waits until the bot has posted `n` replies in `thread`, streamed ones finished, then
    /// returns them.
    pub async fn wait_bot_replies(&self, thread: &str, n: usize) -> Vec<Posted> {
        wait_on(&self.ws, &format!("{n} bot replies in {thread}"), || {
            let replies = self.bot_replies(thread);
            let done = replies.len() >= n && !replies.iter().any(|p| self.ws.is_streaming(&p.ts));
            async move { done.then_some(replies) }
        })
        .await
    }
}

//! Spawning the real bot with the fake OpenAI against the simulated workspace, the OpenAiActor on
//! its own, waits with deadlines, and log capture.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use actix::{Actor, Addr};
use itbot::actors::openai::{OpenAiActor, OpenAiParams};
use itbot::config::{Config, Settings};
use itbot::openai::meter::LlmMeter;
use itbot::startup::{Bot, StartOptions};
use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
use itbot_fakes::workspace::{ApiCall, Posted, Workspace, WorkspaceOptions};

pub use crate::common::{wait_for, DEADLINE};

pub struct TestApp {
    pub ws: Workspace,
    pub bot: Bot,
    pub llm: FakeOpenAi,
}

/// A change to the configuration before the bot starts.
pub type Tweak = Box<dyn FnOnce(&mut Config)>;

#[derive(Default)]
pub struct Setup {
    pub workspace: Option<WorkspaceOptions>,
    pub tweak: Option<Tweak>,
    /// Members (display name, real name) in the workspace before the bot starts.
    pub members: Vec<(&'static str, &'static str)>,
}

/// A config pointed at the workspace and the fake LLM (edits the struct, never the environment).
pub fn config_for(ws: &Workspace, llm: &FakeOpenAi) -> Config {
    let mut env: HashMap<&str, String> = HashMap::new();
    env.insert("SLACK_BOT_TOKEN", ws.bot_token().to_string());
    env.insert("SLACK_APP_TOKEN", ws.app_token().to_string());
    env.insert("SLACK_API_URL", ws.api_url());
    env.insert("OPENAI_BASE_URL", llm.base_url());
    env.insert("OPENAI_API_KEY", "sk-test-key".to_string());
    env.insert("ITBOT_CONFIG", concat!(env!("CARGO_MANIFEST_DIR"), "/config/itbot.toml").to_string());
    let mut config = Config::load(|k| env.get(k).cloned()).expect("test config loads");
    config.settings.assist.bot_ids = vec![ws.assist_bot_id().to_string()];
    config.settings.assist.wait_secs = 5;
    config.settings.openai.timeout_secs = 3;
    config
}

pub async fn spawn(setup: Setup) -> TestApp {
    let ws = Workspace::start(setup.workspace.unwrap_or_default()).await.expect("workspace starts");
    crate::common::watch(&ws);
    for (display, real) in &setup.members {
        ws.add_member(display, real);
    }
    let llm = FakeOpenAi::start(FakeOpenAiOptions::default()).await.expect("fake llm starts");
    let mut config = config_for(&ws, &llm);
    if let Some(tweak) = setup.tweak {
        tweak(&mut config);
    }
    let bot = Bot::start(config, StartOptions { http_addr: SocketAddr::from(([127, 0, 0, 1], 0)) })
        .await
        .expect("bot starts");
    let health = bot.health.clone();
    wait_for("the bot to connect", || {
        let ready = health.is_ready();
        async move { ready.then_some(()) }
    })
    .await;
    TestApp { ws, bot, llm }
}

impl TestApp {
    pub fn it(&self) -> String {
        self.ws.it_channel().to_string()
    }

    /// The bot's messages in a thread (excluding the root).
    pub fn bot_replies(&self, thread: &str) -> Vec<Posted> {
        crate::common::bot_replies(&self.ws, thread)
    }

    /// Waits until the bot has posted `n` finished replies in `thread`: replies that carry the
    /// thread state (a streamed reply gets it when it stops; of a split reply, the last part).
    pub async fn wait_bot_replies(&self, thread: &str, n: usize) -> Vec<Posted> {
        wait_for(&format!("{n} bot replies in {thread}"), || {
            let replies = self.bot_replies(thread);
            let state =
                |p: &Posted| p.metadata.as_ref().is_some_and(|m| m["event_type"] == "itbot_thread_state");
            let done = replies.iter().filter(|p| state(p)).count() >= n;
            async move { done.then_some(replies) }
        })
        .await
    }

    /// Web API calls of one method.
    pub fn calls(&self, method: &str) -> Vec<ApiCall> {
        self.ws.api_calls().into_iter().filter(|c| c.method == method).collect()
    }
}

/// The OpenAiActor alone, pointed at `llm`, with the shipped settings but `max_retries` and a
/// 1-second per-attempt timeout.
pub fn openai_actor(llm: &FakeOpenAi, max_retries: u32) -> (Addr<OpenAiActor>, Arc<LlmMeter>) {
    let settings = Settings::shipped();
    let timeout = Duration::from_secs(1);
    let client = itbot::openai::Client::new(
        itbot::net::http_client(timeout),
        llm.base_url(),
        "sk-test-key".to_string().into(),
        timeout,
    );
    let meter = Arc::new(LlmMeter::default());
    let params = OpenAiParams {
        model: "gpt-4o-mini".into(),
        temperature: 0.2,
        max_completion_tokens: 400,
        max_concurrency: 2,
        max_retries,
        tokens_per_minute: 0,
        prices: settings.openai.prices,
    };
    (OpenAiActor::new(client, params, meter.clone()).start(), meter)
}

/// Everything logged by this process, at every level, from the moment [`capture_logs`] is first
/// called. The privacy test reads it.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs a global subscriber at TRACE for every crate, writing JSON lines into a buffer
/// (global, so the actors' threads and the HTTP workers are captured too).
pub fn capture_logs() -> LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this process");
            buffer
        })
        .clone()
}

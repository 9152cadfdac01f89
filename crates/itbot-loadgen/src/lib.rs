//! `itbot-loadgen`: the real bot under load, measured the same way every time.
//!
//! It starts the simulated workspace (with its Assist) and a fake OpenAI in this process, runs
//! the bot against them — as a child process of the `itbot` binary (`itbot run`, the default, so
//! the bot's memory and CPU are its own) or in this process — and plays the employees: new tickets
//! at a chosen rate (or a chosen number of conversations at once), each followed by the
//! follow-ups or 👎 of its script as soon as the bot has answered the step before.
//!
//! It owns the plan of every ticket and what it saw happen, and reports what Slack and an
//! operator would measure: envelope ack latency (on the workspace side, as Slack's 3 s deadline
//! counts it), the bot's own time per turn (event in → reply stored, minus the fake LLM's latency
//! and the wait for Assist), answers lost or doubled, throughput, memory, CPU, Web API calls per
//! ticket (reads and writes), and LLM tokens and cost per first answer. Timings come from the
//! workspace's own clock: the `ts` it stamps on each message it stores (microseconds).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use itbot::actors::slack_api::ApiOptions;
use itbot::config::Config;
use itbot::startup::{Bot, StartOptions, TransportOptions};
use itbot::triage::{Category, Outcome, Rules};
use itbot_fakes::fake_openai::{FakeOpenAi, FakeOpenAiOptions};
use itbot_fakes::workspace::{ApiCall, Posted, RateLimits, Workspace, WorkspaceOptions};

/// How the bot runs.
#[derive(Debug, Clone)]
pub enum BotProcess {
    /// `EXE run` as a child process: its memory and CPU are measured on their own. It paces its
    /// Web API calls at Slack's real limits, as in production: the binary has no other pacing.
    Child(PathBuf),
    /// `Bot::start_with` in this process: memory and CPU are shared with the driver.
    InProcess {
        /// Slack's rate limits multiplied by this (1 = Slack's real limits): one channel at
        /// 100 tickets/s needs far more than Slack allows.
        pace_factor: u32,
    },
}

impl BotProcess {
    /// Slack's rate limits multiplied by this in the bot under load.
    pub fn pace_factor(&self) -> u32 {
        match self {
            BotProcess::Child(_) => 1,
            BotProcess::InProcess { pace_factor } => (*pace_factor).max(1),
        }
    }
}

/// How hard the employees push.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// New tickets per second, whatever the bot's pace (open loop).
    Rate(f64),
    /// This many tickets in progress at once; a new one starts when one ends (closed loop).
    Concurrency(usize),
}

/// What the employees write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mix {
    /// 70% technical (4 in 7 fail once then work, 2 in 7 work at once, 1 in 7 get a 👎), 15%
    /// access and 15% change requests.
    Standard,
    /// Every ticket technical, with one "still not working" after the first answer: the load that
    /// spends the most of a channel's budget per ticket (two answers each).
    OneFollowUp,
}

/// LLM prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Default for Price {
    /// gpt-4o-mini's list price (the default `OPENAI_MODEL`).
    fn default() -> Self {
        Price { input_per_mtok: 0.15, output_per_mtok: 0.60 }
    }
}

/// One run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub bot: BotProcess,
    pub load: Load,
    pub mix: Mix,
    /// New tickets stop after this long…
    pub duration: Duration,
    /// …or after this many, whichever comes first.
    pub max_tickets: Option<usize>,
    /// Latency of every fake LLM answer; `None` runs without an LLM (knowledge-base answers).
    pub llm_latency: Option<Duration>,
    /// How long the simulated Assist takes to post its ticket card.
    pub assist_delay: Duration,
    /// Pause between the bot's reply and the employee's next step.
    pub think: Duration,
    /// How long to wait for the last answers once no new ticket starts.
    pub drain: Duration,
    /// Seed of the ticket mix, so a run can be repeated.
    pub seed: u64,
    pub price: Price,
    /// `RUST_LOG` of a child bot (`info`, the production default, unless told otherwise).
    pub bot_log: String,
    /// Bot processes on the one workspace; more than one share a real `redis-server` started
    /// for the run (`REDIS_URL`).
    pub replicas: usize,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            bot: BotProcess::InProcess { pace_factor: 1000 },
            load: Load::Rate(100.0),
            mix: Mix::Standard,
            duration: Duration::from_secs(30),
            max_tickets: None,
            llm_latency: Some(Duration::ZERO),
            assist_delay: Duration::ZERO,
            think: Duration::ZERO,
            drain: Duration::from_secs(60),
            seed: 1,
            price: Price::default(),
            bot_log: "info".into(),
            replicas: 1,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot start the simulated workspace: {0}")]
    Workspace(std::io::Error),
    #[error("cannot start the fake LLM: {0}")]
    FakeLlm(std::io::Error),
    #[error("the configured triage rules do not compile: {0}")]
    Rules(String),
    #[error("cannot start the bot process {exe}: {reason}")]
    Spawn { exe: String, reason: String },
    #[error("the bot did not start: {0}")]
    Start(String),
    #[error("the bot did not connect to the simulated workspace within {0} s")]
    NotReady(u64),
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    /// Nearest-rank percentiles of `micros`.
    pub fn of(mut micros: Vec<u64>) -> Summary {
        if micros.is_empty() {
            return Summary::default();
        }
        micros.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * micros.len() as f64).ceil() as usize).clamp(1, micros.len()) - 1;
            micros[i] as f64 / 1000.0
        };
        Summary {
            count: micros.len(),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: micros[micros.len() - 1] as f64 / 1000.0,
            mean_ms: micros.iter().sum::<u64>() as f64 / micros.len() as f64 / 1000.0,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (mean {:.2} ms, n={})",
            self.p50_ms, self.p99_ms, self.max_ms, self.mean_ms, self.count
        )
    }
}

/// How soon each employee saw that the bot had their message: the first of the thread status,
/// the 👀 reaction, a private note or a reply, from the post's `ts`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FirstSign {
    pub summary: Summary,
    /// Tickets whose first sign came later than a second.
    pub over_1s: usize,
    /// Tickets with no sign at all (not even an answer).
    pub never: usize,
    /// Which kind came first, per ticket.
    pub by_kind: BTreeMap<String, usize>,
}

/// Web API use during the run (startup calls excluded).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiUse {
    pub reads_per_ticket: f64,
    pub writes_per_ticket: f64,
    /// Calls per ticket, by method.
    pub per_ticket: BTreeMap<String, f64>,
    /// Reads made for tickets whose script never asks for a person (or not tied to any ticket).
    pub common_path_reads: usize,
    pub common_path_tickets: usize,
    /// Reads made for tickets that were escalated (the once-only check of the thread).
    pub escalation_reads: usize,
    pub escalated_tickets: usize,
    /// `apps.connections.open` during the run (reconnects).
    pub connection_calls: usize,
}

/// LLM tokens and cost, from the fake's recorded requests and reported usage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LlmUse {
    pub calls: usize,
    pub first_answers: usize,
    /// Counted with the model's tokenizer (tiktoken), with the chat format's 3 tokens per message
    /// and 3 to prime the reply.
    pub prompt_tokens_per_first_answer: f64,
    /// The fake's own count (characters / 4), for comparison.
    pub prompt_tokens_per_first_answer_approx: f64,
    pub completion_tokens_per_first_answer: f64,
    pub max_prompt_tokens_first_answer: u64,
    pub cost_per_first_answer_usd: f64,
    /// Every call of the run (follow-ups and classifications included), per ticket.
    pub prompt_tokens_per_ticket: f64,
    pub completion_tokens_per_ticket: f64,
    pub cost_per_ticket_usd: f64,
    /// The cost of a first answer if the model wrote `[openai] max_completion_tokens`.
    pub cost_per_first_answer_at_max_completion_usd: f64,
    pub price: Price,
}

/// Resident memory of the bot (or of the whole process when the bot runs in it), in KiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub rss_start_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    pub peak_kib: Option<u64>,
    pub live_threads: Option<usize>,
}

/// CPU time used during the run, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Cpu {
    pub bot_secs: Option<f64>,
    pub bot_ms_per_ticket: Option<f64>,
    /// This process: workspace, fake LLM and the employees (and the bot when in process).
    pub driver_secs: Option<f64>,
}

/// What the child bot logged (counted, never printed: logs hold no text anyway).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogCounts {
    pub warnings: usize,
    pub errors: usize,
    /// The first few distinct warning and error messages.
    pub first_problems: Vec<String>,
    /// `live` of the last "new ticket" line.
    pub live_threads: Option<usize>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub bot: String,
    pub load: String,
    pub llm_latency_ms: Option<u64>,
    pub assist_delay_ms: u64,
    pub think_ms: u64,
    pub pace_factor: u32,
    /// From the first ticket to the last reply.
    pub elapsed_secs: f64,
    pub tickets: usize,
    pub follow_ups: usize,
    pub reactions: usize,
    /// Replies the bot posted in the tickets' threads.
    pub replies: usize,
    /// Steps (tickets, follow-ups, 👎) that had no reply at the end.
    pub unanswered: usize,
    /// Replies beyond one per step.
    pub duplicates: usize,
    /// Bot messages outside the tickets' threads.
    pub stray_replies: usize,
    pub tickets_per_sec: f64,
    pub steps_per_sec: f64,
    pub envelopes: usize,
    pub envelopes_per_sec: f64,
    /// Envelope frame handed to the socket → its ack read, on the workspace side.
    pub ack: Summary,
    /// Event in → reply stored, minus LLM latency and the wait for Assist; every turn.
    pub overhead: Summary,
    pub overhead_first_answer: Summary,
    pub overhead_follow_up: Summary,
    pub overhead_reaction: Summary,
    /// What the employee waits, step → reply (LLM and Assist included), by kind of turn.
    pub wait_first_answer: Summary,
    pub wait_follow_up: Summary,
    pub wait_reaction: Summary,
    /// From the first ticket's post to the last first answer.
    pub first_answers_done_secs: f64,
    pub first_sign: FirstSign,
    /// Web API calls the workspace refused with 429 during the run.
    pub rate_limited_calls: usize,
    /// Bot processes (replicas) on the workspace.
    pub replicas: usize,
    /// With replicas: commands the shared Redis processed per ticket during the run.
    pub redis_commands_per_ticket: Option<f64>,
    pub api: ApiUse,
    pub llm: Option<LlmUse>,
    pub memory: Memory,
    pub cpu: Cpu,
    pub bot_log: Option<LogCounts>,
    pub bot_exit_code: Option<i32>,
    /// Times the driver fell behind the workspace's stream of posts and re-read the channel.
    pub resyncs: u64,
}

impl Report {
    /// Every step answered exactly once.
    pub fn correct(&self) -> bool {
        self.unanswered == 0 && self.duplicates == 0 && self.stray_replies == 0
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let llm = match self.llm_latency_ms {
            Some(ms) => format!("fake LLM {ms} ms"),
            None => "no LLM".into(),
        };
        writeln!(
            f,
            "itbot-loadgen: bot {}, {}, {llm}, Assist after {} ms, think {} ms, {}",
            self.bot,
            self.load,
            self.assist_delay_ms,
            self.think_ms,
            if self.pace_factor == 1 {
                "Slack's real rate limits".to_string()
            } else {
                format!("Slack's rate limits RELAXED x{} (not Slack)", self.pace_factor)
            }
        )?;
        writeln!(
            f,
            "load:       {} tickets, {} follow-ups, {} thumbs-down in {:.1} s: {:.1} tickets/s, {:.1} steps/s, {} envelopes ({:.0}/s)",
            self.tickets,
            self.follow_ups,
            self.reactions,
            self.elapsed_secs,
            self.tickets_per_sec,
            self.steps_per_sec,
            self.envelopes,
            self.envelopes_per_sec
        )?;
        writeln!(
            f,
            "answers:    {} replies, {} unanswered, {} duplicates, {} stray{}",
            self.replies,
            self.unanswered,
            self.duplicates,
            self.stray_replies,
            if self.correct() { " (every step answered exactly once)" } else { " (NOT CORRECT)" }
        )?;
        let s = |x: &Summary| {
            format!(
                "p50 {:.2} s, p99 {:.2} s, max {:.2} s (n={})",
                x.p50_ms / 1e3,
                x.p99_ms / 1e3,
                x.max_ms / 1e3,
                x.count
            )
        };
        writeln!(f, "waits:      (what the employee waits, LLM and Assist included)")?;
        writeln!(f, "  first answer: {}", s(&self.wait_first_answer))?;
        writeln!(f, "  follow-up:    {}", s(&self.wait_follow_up))?;
        writeln!(f, "  thumbs-down:  {}", s(&self.wait_reaction))?;
        writeln!(
            f,
            "  every first answer posted {:.1} s after the first ticket",
            self.first_answers_done_secs
        )?;
        let kinds: Vec<String> = self.first_sign.by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            f,
            "first sign: {}; later than 1 s: {}, never: {} (first: {})",
            self.first_sign.summary,
            self.first_sign.over_1s,
            self.first_sign.never,
            kinds.join(", ")
        )?;
        writeln!(f, "429s:       {} Web API calls refused for the rate limit", self.rate_limited_calls)?;
        if self.replicas > 1 {
            let per_ticket = self.redis_commands_per_ticket.map_or("?".to_string(), |c| format!("{c:.1}"));
            writeln!(f, "replicas:   {} bot processes sharing one redis-server; {per_ticket} Redis commands per ticket", self.replicas)?;
        }
        writeln!(f, "ack:        {}", self.ack)?;
        writeln!(f, "overhead:   {}", self.overhead)?;
        writeln!(f, "  first answer: {}", self.overhead_first_answer)?;
        writeln!(f, "  follow-up:    {}", self.overhead_follow_up)?;
        writeln!(f, "  thumbs-down:  {}", self.overhead_reaction)?;
        let a = &self.api;
        writeln!(
            f,
            "web api:    {:.2} reads and {:.2} writes per ticket; reads on the common path: {} for {} tickets; on escalation: {} for {} tickets; reconnects: {}",
            a.reads_per_ticket,
            a.writes_per_ticket,
            a.common_path_reads,
            a.common_path_tickets,
            a.escalation_reads,
            a.escalated_tickets,
            a.connection_calls
        )?;
        let methods: Vec<String> = a.per_ticket.iter().map(|(m, n)| format!("{m} {n:.2}")).collect();
        writeln!(f, "  per ticket: {}", methods.join(", "))?;
        if let Some(l) = &self.llm {
            writeln!(
                f,
                "llm:        first answer: {:.0} prompt tokens (tiktoken; {:.0} at chars/4) + {:.0} completion (max prompt {}), ${:.6} (${:.6} at max_completion_tokens); per ticket ${:.6} over {} calls (chars/4); at ${}/${} per 1M tokens",
                l.prompt_tokens_per_first_answer,
                l.prompt_tokens_per_first_answer_approx,
                l.completion_tokens_per_first_answer,
                l.max_prompt_tokens_first_answer,
                l.cost_per_first_answer_usd,
                l.cost_per_first_answer_at_max_completion_usd,
                l.cost_per_ticket_usd,
                l.calls,
                l.price.input_per_mtok,
                l.price.output_per_mtok
            )?;
        }
        let mb = |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
        writeln!(
            f,
            "memory:     VmRSS {} at start, {} at end with {} live threads, peak {}",
            mb(self.memory.rss_start_kib),
            mb(self.memory.rss_end_kib),
            self.memory.live_threads.map_or("?".to_string(), |n| n.to_string()),
            mb(self.memory.peak_kib)
        )?;
        let secs = |s: Option<f64>| s.map_or("?".to_string(), |s| format!("{s:.2} s"));
        writeln!(
            f,
            "cpu:        bot {} ({} per ticket), driver {}",
            secs(self.cpu.bot_secs),
            self.cpu.bot_ms_per_ticket.map_or("?".to_string(), |m| format!("{m:.2} ms")),
            secs(self.cpu.driver_secs)
        )?;
        if let Some(l) = &self.bot_log {
            writeln!(
                f,
                "bot log:    {} warnings, {} errors{}; exit code {}",
                l.warnings,
                l.errors,
                if l.first_problems.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", l.first_problems.join("; "))
                },
                self.bot_exit_code.map_or("?".to_string(), |c| c.to_string())
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The ticket mix

/// Posts of the mix, each with its weight. Every one is triaged confidently by the shipped rules
/// (a unit test checks), so no first answer needs an LLM classification.
const TECHNICAL: &[&str] = &[
    "My VPN won't connect from home, the AWS VPN Client just spins on connecting",
    "got a new phone and Okta Verify isn't sending me push notifications",
    "Zoom says my microphone is not working",
    "my laptop won't join the office Wi-Fi",
    "gmail is not loading my emails since this morning",
    "1Password won't unlock on my Mac",
    "slack notifications stopped on my phone",
    "git push says repository not found for our private repo",
];
const ACCESS: &[&str] = &[
    "I need access to Snowflake for the finance dashboards",
    "can I get a Figma license please",
    "I need edit access to the Looker sales dashboards",
];
const CHANGE: &[&str] = &[
    "please add me to the design group in Google",
    "please update my Jamf settings",
    "can you add me to the marketing mailing list",
];
/// Follow-ups: one that says the steps failed, one that says they worked.
pub const FAILED: &str = "still not working, same thing after a restart";
pub const WORKED: &str = "that fixed it, thanks!";

/// What an employee does at one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Post(&'static str),
    ThumbsDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TurnKind {
    FirstAnswer,
    FollowUp,
    Reaction,
}

/// One step and what the bot is expected to do with it.
#[derive(Debug, Clone, Copy)]
struct Step {
    action: Action,
    kind: TurnKind,
    /// LLM calls on the way to the reply (their latency is not the bot's).
    llm_calls: u32,
}

/// A ticket's script: the post, then follow-ups or a 👎, one bot reply expected for each.
#[derive(Debug, Clone)]
struct Plan {
    steps: Vec<Step>,
    /// The script asks for a person (the bot reads the thread once before it pings).
    escalates: bool,
}

/// Picks the next tickets and works out what the bot will do with them, from the rules the bot
/// itself uses.
struct Planner<'a> {
    rules: &'a Rules,
    mix: Mix,
    max_failed_attempts: u32,
    auto_escalate: bool,
    llm: bool,
    rng: fastrand::Rng,
}

impl Planner<'_> {
    /// 70% technical (4 of 7 fail once then work, 2 of 7 work at once, 1 of 7 get a 👎),
    /// 15% access and 15% change requests.
    fn next(&mut self) -> Plan {
        let roll = if self.mix == Mix::OneFollowUp { 0 } else { self.rng.u32(..100) };
        let pool = match roll {
            0..70 => TECHNICAL,
            70..85 => ACCESS,
            _ => CHANGE,
        };
        let text = pool[self.rng.usize(..pool.len())];
        let triage = self.rules.classify(text);
        let technical = triage.category == Category::Technical;
        let llm = |n: u32| if self.llm { n } else { 0 };
        let first_calls = llm(u32::from(technical) + u32::from(!triage.confident));
        let mut steps =
            vec![Step { action: Action::Post(text), kind: TurnKind::FirstAnswer, llm_calls: first_calls }];
        let mut escalates = false;
        if technical {
            let script: &[Action] = match self.rng.u32(..7) {
                _ if self.mix == Mix::OneFollowUp => &[Action::Post(FAILED)],
                0..4 => &[Action::Post(FAILED), Action::Post(WORKED)],
                4..6 => &[Action::Post(WORKED)],
                _ => &[Action::ThumbsDown],
            };
            let mut failures = 0;
            for action in script {
                let llm_calls = match action {
                    Action::ThumbsDown => {
                        escalates = true;
                        0
                    }
                    Action::Post(t) => match self.rules.outcome(t) {
                        Outcome::Worked => 0,
                        Outcome::WantsHuman => {
                            escalates = true;
                            0
                        }
                        Outcome::Failed => {
                            failures += 1;
                            if failures >= self.max_failed_attempts {
                                escalates |= self.auto_escalate;
                                0
                            } else {
                                llm(1)
                            }
                        }
                        Outcome::Other => llm(1),
                    },
                };
                let kind =
                    if *action == Action::ThumbsDown { TurnKind::Reaction } else { TurnKind::FollowUp };
                steps.push(Step { action: *action, kind, llm_calls });
            }
        }
        Plan { steps, escalates }
    }
}

// ---------------------------------------------------------------------------------------------
// Running it

/// Employees who post; each ticket's requester answers its own follow-ups.
const EMPLOYEES: usize = 200;
/// How long the bot may take to connect.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a child bot may take to drain and exit after SIGTERM.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

/// Runs the load and measures it.
pub async fn run(config: Config, options: LoadOptions) -> Result<Report, LoadError> {
    let rules = Rules::new(&config.settings.triage, &config.settings.followup)
        .map_err(|e| LoadError::Rules(e.to_string()))?;
    // Slack's limits as Slack enforces them; a relaxed run relaxes the workspace as much as the
    // bot, and its report says so.
    let rate_limits = match options.bot.pace_factor() {
        1 => RateLimits::Slack,
        factor => RateLimits::Relaxed(factor),
    };
    let ws = Workspace::start(WorkspaceOptions {
        assist_delay: options.assist_delay,
        rate_limits,
        ..WorkspaceOptions::default()
    })
    .await
    .map_err(LoadError::Workspace)?;
    let llm = match options.llm_latency {
        Some(latency) => Some(
            FakeOpenAi::start(FakeOpenAiOptions { latency, reply: None })
                .await
                .map_err(LoadError::FakeLlm)?,
        ),
        None => None,
    };
    let result = measure(&config, &options, &rules, &ws, llm.as_ref()).await;
    ws.stop().await;
    if let Some(llm) = llm {
        llm.stop().await;
    }
    result
}

async fn measure(
    config: &Config,
    options: &LoadOptions,
    rules: &Rules,
    ws: &Workspace,
    llm: Option<&FakeOpenAi>,
) -> Result<Report, LoadError> {
    let replicas = options.replicas.max(1);
    let redis = if replicas > 1 {
        Some(itbot_fakes::redis_server::RedisServer::start().map_err(|e| LoadError::Start(e.to_string()))?)
    } else {
        None
    };
    let redis_url = redis.as_ref().map(|r| r.url());
    let bot = RunningBot::start(config, options, ws, llm, redis_url.as_deref()).await?;
    let mut others = Vec::new();
    for _ in 1..replicas {
        match RunningBot::start(config, options, ws, llm, redis_url.as_deref()).await {
            Ok(b) => others.push(b),
            Err(e) => {
                bot.stop().await;
                for b in others {
                    b.stop().await;
                }
                return Err(e);
            }
        }
    }
    let connections = config.settings.slack.connections * replicas;
    let ready = wait_until(READY_WITHIN * replicas as u32, || ws.open_connections() >= connections).await;
    // The startup read of the (empty) channel is not a per-ticket call: let it happen first.
    let backfilled = config.settings.history.backfill_messages == 0
        || wait_until(Duration::from_secs(10), || ws.calls_of("conversations.history") > 0).await;
    if !ready || !backfilled {
        bot.stop().await;
        for b in others {
            b.stop().await;
        }
        return Err(LoadError::NotReady(READY_WITHIN.as_secs() * replicas as u64));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let redis_before = redis.as_ref().and_then(|r| r.commands_processed());
    let calls_before = ws.api_calls().len();
    let limited_before = ws.rate_limited_calls();
    let acks_before = ws.envelopes_acked();
    let envelopes_before = ws.envelopes_sent();
    let rss_start = bot.status_kib("VmRSS");
    let bot_cpu_before = bot.cpu_secs();
    let driver_cpu_before = cpu_secs(None);

    let planner = Planner {
        rules,
        mix: options.mix,
        max_failed_attempts: config.settings.escalation.max_failed_attempts,
        auto_escalate: config.settings.escalation.auto,
        llm: llm.is_some(),
        rng: fastrand::Rng::with_seed(options.seed),
    };
    let mut driver = Driver::new(ws, options, planner);
    driver.drive().await;

    let elapsed = driver.elapsed();
    let bot_cpu = bot.cpu_secs().zip(bot_cpu_before).map(|(a, b)| a - b);
    let driver_cpu = cpu_secs(None).zip(driver_cpu_before).map(|(a, b)| a - b);
    let rss_end = bot.status_kib("VmRSS");
    let peak = bot.status_kib("VmHWM");
    let live_threads = bot.live_threads().await;
    let envelopes = ws.envelopes_sent() - envelopes_before;
    let ack = Summary::of(ws.ack_latencies(acks_before).iter().map(|d| d.as_micros() as u64).collect());
    let redis_commands =
        redis.as_ref().and_then(|r| r.commands_processed()).zip(redis_before).map(|(a, b)| a - b);
    let (mut bot_log, mut bot_exit_code) = bot.stop().await;
    // Every replica's warnings and errors count; the first non-zero exit code stands.
    for b in others {
        let (log, code) = b.stop().await;
        if let (Some(all), Some(log)) = (bot_log.as_mut(), log) {
            all.warnings += log.warnings;
            all.errors += log.errors;
            all.first_problems.extend(log.first_problems);
        }
        if bot_exit_code == Some(0) && code != Some(0) {
            bot_exit_code = code;
        }
    }

    let mut report = driver.report(elapsed);
    report.bot = match &options.bot {
        BotProcess::Child(exe) => format!("child process ({})", exe.display()),
        BotProcess::InProcess { .. } => "in process".into(),
    };
    report.envelopes = envelopes;
    report.envelopes_per_sec = envelopes as f64 / elapsed.max(1e-9);
    report.ack = ack;
    let calls = ws.api_calls();
    report.api = driver.api_use(&calls[calls_before..]);
    report.first_sign = driver.first_sign(&calls[calls_before..]);
    report.rate_limited_calls = ws.rate_limited_calls() - limited_before;
    report.replicas = replicas;
    report.redis_commands_per_ticket =
        redis_commands.filter(|_| report.tickets > 0).map(|c| c as f64 / report.tickets as f64);
    report.llm = llm.map(|l| llm_use(l, config, options.price, report.tickets));
    report.memory = Memory {
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        peak_kib: peak,
        live_threads: live_threads.or_else(|| bot_log.as_ref().and_then(|l| l.live_threads)),
    };
    report.cpu = Cpu {
        bot_secs: bot_cpu,
        bot_ms_per_ticket: bot_cpu.filter(|_| report.tickets > 0).map(|s| s * 1000.0 / report.tickets as f64),
        driver_secs: driver_cpu,
    };
    report.bot_log = bot_log;
    report.bot_exit_code = bot_exit_code;
    Ok(report)
}

/// The bot under load, in either form.
enum RunningBot {
    Child { process: ChildGuard, pid: u32, log: Arc<Mutex<LogCounts>>, reader: std::thread::JoinHandle<()> },
    InProcess(Box<Bot>),
}

/// Kills the child if the run ends without stopping it (an error or a panic in the driver).
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl RunningBot {
    async fn start(
        config: &Config,
        options: &LoadOptions,
        ws: &Workspace,
        llm: Option<&FakeOpenAi>,
        redis_url: Option<&str>,
    ) -> Result<RunningBot, LoadError> {
        match &options.bot {
            BotProcess::Child(exe) => {
                let mut cmd = bot_command(exe, config, ws, llm, &options.bot_log, redis_url);
                cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
                let mut child = cmd.spawn().map_err(|e| LoadError::Spawn {
                    exe: exe.display().to_string(),
                    reason: e.to_string(),
                })?;
                let pid = child.id();
                let log = Arc::new(Mutex::new(LogCounts::default()));
                let stderr = child.stderr.take();
                let counts = log.clone();
                let reader = std::thread::spawn(move || {
                    if let Some(stderr) = stderr {
                        count_log_lines(BufReader::new(stderr), &counts);
                    }
                });
                Ok(RunningBot::Child { process: ChildGuard(Some(child)), pid, log, reader })
            }
            BotProcess::InProcess { pace_factor } => {
                let mut config = config.clone();
                config.env.slack_api_url = ws.api_url();
                config.env.slack_bot_token = Some(ws.bot_token().to_string().into());
                config.env.slack_app_token = Some(ws.app_token().to_string().into());
                config.env.it_channel_id = Some(ws.it_channel().into());
                config.env.it_channel_name = "it".into();
                config.settings.assist.bot_ids = vec![ws.assist_bot_id().to_string()];
                config.settings.threads.max_live = MAX_LIVE;
                config.settings.openai.max_concurrency = MAX_CONCURRENCY;
                // As for the child (`child_env`): the load is an outage by design, measured
                // without outage detection.
                config.settings.outage.min_reporters = 0;
                config.env.redis_url = redis_url.map(|u| u.to_string().into());
                match llm {
                    Some(l) => {
                        config.env.openai_base_url = l.base_url();
                        config.env.openai_api_key = Some(FAKE_KEY.to_string().into());
                    }
                    None => config.env.openai_api_key = None,
                }
                let transport = TransportOptions {
                    api: ApiOptions { pace_factor: *pace_factor, ..ApiOptions::default() },
                    ..TransportOptions::default()
                };
                let http = StartOptions { http_addr: SocketAddr::from(([127, 0, 0, 1], 0)) };
                let bot = Bot::start_with(config, http, transport)
                    .await
                    .map_err(|e| LoadError::Start(e.to_string()))?;
                Ok(RunningBot::InProcess(Box::new(bot)))
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        match self {
            RunningBot::Child { pid, .. } => Some(*pid),
            RunningBot::InProcess(_) => None,
        }
    }

    fn status_kib(&self, key: &str) -> Option<u64> {
        status_kib(self.pid(), key)
    }

    /// The child's CPU time; `None` in process (it cannot be told apart from the driver's).
    fn cpu_secs(&self) -> Option<f64> {
        self.pid().and_then(|pid| cpu_secs(Some(pid)))
    }

    async fn live_threads(&self) -> Option<usize> {
        match self {
            RunningBot::Child { log, .. } => log.lock().unwrap_or_else(|e| e.into_inner()).live_threads,
            RunningBot::InProcess(bot) => Some(bot.live_threads().await),
        }
    }

    /// Stops the bot (SIGTERM for the child, which drains and exits); the child's log counts
    /// and exit code.
    async fn stop(self) -> (Option<LogCounts>, Option<i32>) {
        match self {
            RunningBot::InProcess(bot) => {
                bot.stop().await;
                (None, None)
            }
            RunningBot::Child { mut process, pid, log, reader } => {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
                let end = Instant::now() + EXIT_WITHIN;
                let mut code = None;
                if let Some(child) = process.0.as_mut() {
                    while Instant::now() < end {
                        match child.try_wait() {
                            Ok(Some(status)) => {
                                code = status.code();
                                break;
                            }
                            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                            Err(_) => break,
                        }
                    }
                }
                drop(process);
                let _ = reader.join();
                let counts = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
                (Some(counts), code)
            }
        }
    }
}

/// The command that runs the bot binary `exe` against `ws` (and `llm`, and Redis at `redis_url`)
/// as the load generator runs it: only the operator's `ITBOT__*` overrides, allocator tuning and
/// `PATH` come from this environment; JSON logs at the level `log`.
pub fn bot_command(
    exe: &std::path::Path,
    config: &Config,
    ws: &Workspace,
    llm: Option<&FakeOpenAi>,
    log: &str,
    redis_url: Option<&str>,
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("run");
    cmd.env_clear();
    // The operator's overrides (they win over the load generator's) and allocator tuning, then
    // the workspace's settings.
    for (k, v) in std::env::vars() {
        if k.starts_with("ITBOT__") || k.starts_with("MALLOC_") || k == "PATH" {
            cmd.env(k, v);
        }
    }
    // The same configuration file (a missing one means the shipped defaults).
    if config.env.config_path.is_file() {
        cmd.env("ITBOT_CONFIG", &config.env.config_path);
    }
    for (k, v) in child_env(config, ws, llm, log) {
        let operators = k.starts_with("ITBOT__") && k != "ITBOT__ASSIST__BOT_IDS";
        if !(operators && std::env::var_os(k).is_some()) {
            cmd.env(k, v);
        }
    }
    if let Some(url) = redis_url {
        cmd.env("REDIS_URL", url);
    }
    cmd
}

/// No thread is evicted during a run (the default, 10,000, is the memory target itself).
const MAX_LIVE: usize = 1_000_000;
/// The most LLM calls in flight the configuration allows, so the fake's latency never queues.
const MAX_CONCURRENCY: usize = 64;
const FAKE_KEY: &str = "sk-loadgen-fake";

/// The child's environment: the workspace's URL and tokens, its #it and Assist, the fake LLM
/// (or none), JSON logs at `log`.
fn child_env(
    config: &Config,
    ws: &Workspace,
    llm: Option<&FakeOpenAi>,
    log: &str,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("SLACK_BOT_TOKEN", ws.bot_token().to_string()),
        ("SLACK_APP_TOKEN", ws.app_token().to_string()),
        ("SLACK_API_URL", ws.api_url()),
        ("IT_CHANNEL_ID", ws.it_channel().to_string()),
        ("IT_CHANNEL_NAME", "it".to_string()),
        ("ITBOT__ASSIST__BOT_IDS", ws.assist_bot_id().to_string()),
        ("ITBOT__THREADS__MAX_LIVE", MAX_LIVE.to_string()),
        ("ITBOT__OPENAI__MAX_CONCURRENCY", MAX_CONCURRENCY.to_string()),
        // The load is many people reporting the same few problems at once: an outage by design.
        // Measured without outage detection, so every step gets an answer to time.
        ("ITBOT__OUTAGE__MIN_REPORTERS", "0".to_string()),
        ("OPENAI_MODEL", config.env.openai_model.clone()),
        ("PORT", "0".to_string()),
        ("RUST_LOG", log.to_string()),
        ("LOG_FORMAT", "json".to_string()),
    ];
    match llm {
        Some(l) => {
            env.push(("OPENAI_BASE_URL", l.base_url()));
            env.push(("OPENAI_API_KEY", FAKE_KEY.to_string()));
        }
        // Set and empty: a `.env` file cannot bring a real key in.
        None => env.push(("OPENAI_API_KEY", String::new())),
    }
    env
}

/// Counts warnings and errors in JSON log lines and keeps the live-thread count.
fn count_log_lines(reader: impl BufRead, counts: &Mutex<LogCounts>) {
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let warning = line.contains("\"level\":\"WARN\"");
        let error = line.contains("\"level\":\"ERROR\"");
        let live =
            line.contains("\"message\":\"new ticket\"").then(|| json_u64(&line, "\"live\":")).flatten();
        if !(warning || error || live.is_some()) {
            continue;
        }
        let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = live {
            c.live_threads = Some(n as usize);
        }
        if warning || error {
            if warning {
                c.warnings += 1;
            } else {
                c.errors += 1;
            }
            let message = serde_json::from_str::<Value>(&line).ok().and_then(|v| {
                // `itbot run` flattens the event's fields into the line.
                let m = v.get("message").or_else(|| v.pointer("/fields/message"));
                m.and_then(Value::as_str).map(str::to_string)
            });
            if let Some(m) = message {
                if c.first_problems.len() < 5 && !c.first_problems.contains(&m) {
                    c.first_problems.push(m);
                }
            }
        }
    }
}

/// The number after `key` in a JSON line.
fn json_u64(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A `kB` line of `/proc/<pid>/status` (this process for `None`).
fn status_kib(pid: Option<u32>, key: &str) -> Option<u64> {
    let path = pid.map_or_else(|| "/proc/self/status".to_string(), |p| format!("/proc/{p}/status"));
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// User + system CPU seconds of a process (this one for `None`), from `/proc/<pid>/stat`.
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces); utime and stime are the 14th and
    // 15th of the line, the 12th and 13th after the name.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks as f64 / 100.0)
}

async fn wait_until(deadline: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while !ready() {
        if Instant::now() > end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn now_micros() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0)
}

/// A Slack ts (`"1610241741.000200"`) in microseconds: when the workspace stored the message.
fn ts_micros(ts: &str) -> u128 {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let secs: u128 = secs.parse().unwrap_or(0);
    let frac: u128 = format!("{frac:0<6}").get(..6).and_then(|f| f.parse().ok()).unwrap_or(0);
    secs * 1_000_000 + frac
}

// ---------------------------------------------------------------------------------------------
// The employees

/// One ticket in progress or done.
struct Ticket {
    root: String,
    user: String,
    plan: Plan,
    /// Steps done so far (the post is the first).
    performed: usize,
    /// The last step's reply has not come yet.
    awaiting: bool,
    /// When the last step happened (workspace clock, µs).
    sent_us: u128,
    /// When Assist's card was stored.
    assist_us: Option<u128>,
    /// The newest bot reply handled (replies at or before it were seen already).
    last_reply_us: u128,
    last_bot_ts: Option<String>,
}

struct Driver<'a> {
    ws: &'a Workspace,
    options: &'a LoadOptions,
    planner: Planner<'a>,
    it: String,
    bot_user: String,
    assist_bot: String,
    employees: Vec<String>,
    tickets: Vec<Ticket>,
    by_root: HashMap<String, usize>,
    /// Next steps, when they are due.
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    active: usize,
    overhead: Vec<(TurnKind, u64)>,
    /// Step → reply, all included.
    waits: Vec<(TurnKind, u64)>,
    /// When the last first answer was stored (workspace clock, µs).
    last_first_answer_us: u128,
    started: Option<Instant>,
    last_reply: Option<Instant>,
    resyncs: u64,
}

impl<'a> Driver<'a> {
    fn new(ws: &'a Workspace, options: &'a LoadOptions, planner: Planner<'a>) -> Driver<'a> {
        let employees = (0..EMPLOYEES).map(|i| ws.user_id(&format!("employee{i:03}"))).collect();
        Driver {
            ws,
            options,
            planner,
            it: ws.it_channel().to_string(),
            bot_user: ws.bot_user_id().to_string(),
            assist_bot: ws.assist_bot_id().to_string(),
            employees,
            tickets: Vec::new(),
            by_root: HashMap::new(),
            due: BinaryHeap::new(),
            active: 0,
            overhead: Vec::new(),
            waits: Vec::new(),
            last_first_answer_us: 0,
            started: None,
            last_reply: None,
            resyncs: 0,
        }
    }

    /// Starts tickets at the chosen rate or concurrency until the duration or the ticket count
    /// is reached, plays each script as the bot answers, and returns when every step is
    /// answered or the drain time is over.
    async fn drive(&mut self) {
        let mut posted = self.ws.subscribe();
        let start = Instant::now();
        self.started = Some(start);
        let stop_new = start + self.options.duration;
        let hard_end = stop_new + self.options.drain;
        let (interval, limit) = match self.options.load {
            Load::Rate(r) => (Duration::from_secs_f64(1.0 / r.max(0.001)), usize::MAX),
            Load::Concurrency(c) => (Duration::ZERO, c.max(1)),
        };
        let mut next_ticket = start;
        loop {
            let now = Instant::now();
            let may_start = now < stop_new && self.options.max_tickets.is_none_or(|m| self.tickets.len() < m);
            if (!may_start && self.active == 0) || now >= hard_end {
                return;
            }
            let ticket_ready = may_start && self.active < limit;
            let next_due = self.due.peek().map(|Reverse((at, _))| *at);
            let wake = if may_start { stop_new } else { hard_end };
            tokio::select! {
                biased;
                _ = sleep_until_opt(next_due) => self.perform_due(),
                _ = tokio::time::sleep_until(next_ticket), if ticket_ready => {
                    self.start_ticket();
                    next_ticket = if interval.is_zero() { now } else { next_ticket + interval };
                }
                msg = posted.recv() => match msg {
                    Ok(p) => self.on_posted(&p),
                    Err(RecvError::Lagged(_)) => self.resync(),
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn elapsed(&self) -> f64 {
        match (self.started, self.last_reply) {
            (Some(s), Some(l)) => l.duration_since(s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        }
    }

    fn start_ticket(&mut self) {
        let plan = self.planner.next();
        let i = self.tickets.len();
        let user = self.employees[i % self.employees.len()].clone();
        let Action::Post(text) = plan.steps[0].action else { return };
        let root = self.ws.post(&user, &self.it, text, None);
        self.by_root.insert(root.clone(), i);
        self.tickets.push(Ticket {
            sent_us: ts_micros(&root),
            root,
            user,
            plan,
            performed: 1,
            awaiting: true,
            assist_us: None,
            last_reply_us: 0,
            last_bot_ts: None,
        });
        self.active += 1;
    }

    fn perform_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, i))) = self.due.peek().copied() {
            if at > now {
                return;
            }
            self.due.pop();
            self.perform(i);
        }
    }

    fn perform(&mut self, i: usize) {
        let t = &mut self.tickets[i];
        let Some(step) = t.plan.steps.get(t.performed).copied() else { return };
        match step.action {
            Action::Post(text) => {
                let ts = self.ws.post(&t.user, &self.it, text, Some(&t.root));
                t.sent_us = ts_micros(&ts);
            }
            Action::ThumbsDown => {
                let Some(target) = t.last_bot_ts.clone() else { return };
                t.sent_us = now_micros();
                self.ws.react(&t.user, &self.it, &target, "-1");
            }
        }
        t.performed += 1;
        t.awaiting = true;
    }

    fn on_posted(&mut self, p: &Posted) {
        if p.channel != self.it || p.ephemeral_to.is_some() {
            return;
        }
        let Some(root) = p.thread_ts.as_ref().filter(|t| **t != p.ts) else { return };
        let Some(&i) = self.by_root.get(root) else { return };
        let at = ts_micros(&p.ts);
        if p.user.as_deref() == Some(self.bot_user.as_str()) {
            self.on_reply(i, &p.ts, at);
        } else if p.bot_id.as_deref() == Some(self.assist_bot.as_str()) {
            self.tickets[i].assist_us.get_or_insert(at);
        }
    }

    fn on_reply(&mut self, i: usize, ts: &str, at: u128) {
        let llm_us = self.options.llm_latency.unwrap_or_default().as_micros();
        let t = &mut self.tickets[i];
        if at <= t.last_reply_us {
            return; // seen already (a resync read it)
        }
        t.last_reply_us = at;
        t.last_bot_ts = Some(ts.to_string());
        if !t.awaiting {
            return; // not asked for: counted as a duplicate at the end
        }
        t.awaiting = false;
        let step = t.plan.steps[t.performed - 1];
        let mut ready = t.sent_us + u128::from(step.llm_calls) * llm_us;
        if step.kind == TurnKind::FirstAnswer {
            // The bot answers once Assist has posted: waiting for it is deliberate.
            ready = ready.max(t.assist_us.unwrap_or(0));
        }
        self.overhead.push((step.kind, at.saturating_sub(ready) as u64));
        self.waits.push((step.kind, at.saturating_sub(t.sent_us) as u64));
        if step.kind == TurnKind::FirstAnswer {
            self.last_first_answer_us = self.last_first_answer_us.max(at);
        }
        let now = Instant::now();
        self.last_reply = Some(now);
        if t.performed < t.plan.steps.len() {
            self.due.push(Reverse((now + self.options.think, i)));
        } else {
            self.active -= 1;
        }
    }

    /// The driver fell behind the stream of posts: reads the channel and handles what it missed.
    fn resync(&mut self) {
        self.resyncs += 1;
        for p in self.ws.messages(&self.it) {
            self.on_posted(&p);
        }
    }

    /// Counts, answers and turn times, from the workspace's record of the channel.
    fn report(&self, elapsed: f64) -> Report {
        let mut got: HashMap<&str, usize> = HashMap::new();
        let mut stray = 0;
        for m in self.ws.messages(&self.it) {
            if m.user.as_deref() != Some(self.bot_user.as_str()) {
                continue;
            }
            match m.thread_ts.as_deref().filter(|t| *t != m.ts).and_then(|t| self.by_root.get_key_value(t)) {
                Some((root, _)) => *got.entry(root.as_str()).or_insert(0) += 1,
                None => stray += 1,
            }
        }
        let (mut unanswered, mut duplicates, mut replies, mut follow_ups, mut reactions) = (0, 0, 0, 0, 0);
        for t in &self.tickets {
            let g = got.get(t.root.as_str()).copied().unwrap_or(0);
            replies += g;
            unanswered += t.performed.saturating_sub(g);
            duplicates += g.saturating_sub(t.performed);
            for s in &t.plan.steps[1..t.performed] {
                match s.kind {
                    TurnKind::Reaction => reactions += 1,
                    _ => follow_ups += 1,
                }
            }
        }
        let of = |kind: Option<TurnKind>| {
            Summary::of(
                self.overhead
                    .iter()
                    .filter(|(k, _)| kind.is_none_or(|w| w == *k))
                    .map(|(_, us)| *us)
                    .collect(),
            )
        };
        let waits = |kind: TurnKind| {
            Summary::of(self.waits.iter().filter(|(k, _)| *k == kind).map(|(_, us)| *us).collect())
        };
        let first_post_us = self.tickets.iter().map(|t| ts_micros(&t.root)).min().unwrap_or(0);
        let tickets = self.tickets.len();
        let steps = tickets + follow_ups + reactions;
        let per_sec = |n: usize| n as f64 / elapsed.max(1e-9);
        let o = self.options;
        Report {
            load: match o.load {
                Load::Rate(r) => format!("{r} tickets/s for {} s", o.duration.as_secs()),
                Load::Concurrency(c) => format!("{c} tickets at once for {} s", o.duration.as_secs()),
            } + &o.max_tickets.map(|m| format!(" (at most {m} tickets)")).unwrap_or_default()
                + match o.mix {
                    Mix::Standard => ", standard mix",
                    Mix::OneFollowUp => ", every ticket technical with one follow-up",
                },
            llm_latency_ms: o.llm_latency.map(|d| d.as_millis() as u64),
            assist_delay_ms: o.assist_delay.as_millis() as u64,
            think_ms: o.think.as_millis() as u64,
            pace_factor: o.bot.pace_factor(),
            elapsed_secs: elapsed,
            tickets,
            follow_ups,
            reactions,
            replies,
            unanswered,
            duplicates,
            stray_replies: stray,
            tickets_per_sec: per_sec(tickets),
            steps_per_sec: per_sec(steps),
            overhead: of(None),
            overhead_first_answer: of(Some(TurnKind::FirstAnswer)),
            overhead_follow_up: of(Some(TurnKind::FollowUp)),
            overhead_reaction: of(Some(TurnKind::Reaction)),
            wait_first_answer: waits(TurnKind::FirstAnswer),
            wait_follow_up: waits(TurnKind::FollowUp),
            wait_reaction: waits(TurnKind::Reaction),
            first_answers_done_secs: self.last_first_answer_us.saturating_sub(first_post_us) as f64 / 1e6,
            resyncs: self.resyncs,
            ..Report::default()
        }
    }

    /// How soon each ticket's requester saw a sign of the bot: the status, the 👀 on their post,
    /// a private note in the thread, or a reply, whichever came first.
    fn first_sign(&self, calls: &[ApiCall]) -> FirstSign {
        let mut first: HashMap<&str, (u128, &'static str)> = HashMap::new();
        let mut seen = |root: &str, at: u128, kind: &'static str| {
            if let Some(&i) = self.by_root.get(root) {
                let root = self.tickets[i].root.as_str();
                let e = first.entry(root).or_insert((at, kind));
                if at < e.0 {
                    *e = (at, kind);
                }
            }
        };
        for c in calls.iter().filter(|c| !c.rate_limited) {
            let p = |k: &str| c.params.get(k).and_then(Value::as_str);
            match c.method.as_str() {
                "assistant.threads.setStatus" if p("status").is_some_and(|s| !s.is_empty()) => {
                    if let Some(root) = p("thread_ts") {
                        seen(root, c.at_us, "status");
                    }
                }
                "reactions.add" => {
                    if let Some(root) = p("timestamp") {
                        seen(root, c.at_us, "reaction");
                    }
                }
                "chat.postEphemeral" => {
                    if let Some(root) = p("thread_ts") {
                        seen(root, c.at_us, "private note");
                    }
                }
                _ => {}
            }
        }
        for m in self.ws.messages(&self.it) {
            if m.user.as_deref() == Some(self.bot_user.as_str()) {
                if let Some(root) = m.thread_ts.as_deref().filter(|t| *t != m.ts) {
                    seen(root, ts_micros(&m.ts), "reply");
                }
            }
        }
        let mut out = FirstSign::default();
        let mut delays = Vec::new();
        for t in &self.tickets {
            match first.get(t.root.as_str()) {
                Some(&(at, kind)) => {
                    let us = at.saturating_sub(ts_micros(&t.root)) as u64;
                    out.over_1s += usize::from(us > 1_000_000);
                    *out.by_kind.entry(kind.to_string()).or_insert(0) += 1;
                    delays.push(us);
                }
                None => out.never += 1,
            }
        }
        out.summary = Summary::of(delays);
        out
    }

    /// Web API calls of the run, per ticket, reads and writes apart; reads are tied to their
    /// ticket through the thread or message they name.
    fn api_use(&self, calls: &[ApiCall]) -> ApiUse {
        let tickets = self.tickets.len().max(1) as f64;
        // Every bot message and every root → its ticket.
        let mut owner: HashMap<&str, usize> = HashMap::new();
        let replies = self.ws.messages(&self.it);
        for m in &replies {
            let root = m.thread_ts.as_deref().unwrap_or(&m.ts);
            if let Some(&i) = self.by_root.get(root) {
                owner.insert(m.ts.as_str(), i);
            }
        }
        let mut api = ApiUse::default();
        let (mut reads, mut writes) = (0usize, 0usize);
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for c in calls {
            *counts.entry(c.method.clone()).or_insert(0) += 1;
            match kind_of(&c.method) {
                CallKind::Connection => api.connection_calls += 1,
                CallKind::Write => writes += 1,
                CallKind::Read => {
                    reads += 1;
                    let ticket = ["ts", "thread_ts", "timestamp"]
                        .iter()
                        .find_map(|k| c.params.get(*k).and_then(Value::as_str))
                        .and_then(|ts| owner.get(ts));
                    match ticket {
                        Some(&i) if self.tickets[i].plan.escalates => api.escalation_reads += 1,
                        _ => api.common_path_reads += 1,
                    }
                }
            }
        }
        api.escalated_tickets = self.tickets.iter().filter(|t| t.plan.escalates).count();
        api.common_path_tickets = self.tickets.len() - api.escalated_tickets;
        api.reads_per_ticket = reads as f64 / tickets;
        api.writes_per_ticket = writes as f64 / tickets;
        api.per_ticket = counts.into_iter().map(|(m, n)| (m, n as f64 / tickets)).collect();
        api
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum CallKind {
    Read,
    Write,
    /// `apps.connections.open`: neither, and not per ticket.
    Connection,
}

/// Whether a Web API method changes something in Slack.
fn kind_of(method: &str) -> CallKind {
    match method {
        "apps.connections.open" => CallKind::Connection,
        m if m.starts_with("chat.") => CallKind::Write,
        "reactions.add" | "reactions.remove" | "assistant.threads.setStatus" => CallKind::Write,
        _ => CallKind::Read,
    }
}

/// Tokens and cost from the fake's record: first answers are the answer requests whose
/// conversation holds the employee's post alone.
fn llm_use(llm: &FakeOpenAi, config: &Config, price: Price, tickets: usize) -> LlmUse {
    let requests = llm.requests();
    let usage = llm.usage();
    let cost = |p: f64, c: f64| (p * price.input_per_mtok + c * price.output_per_mtok) / 1e6;
    let is_first_answer = |r: &Value| {
        let Some(messages) = r.get("messages").and_then(Value::as_array) else { return false };
        let role = |m: &Value| m.get("role").and_then(Value::as_str).unwrap_or("").to_string();
        let classify = messages.first().and_then(|m| m.get("content")).and_then(Value::as_str)
            == Some(itbot::compose::CLASSIFY_PROMPT);
        !classify
            && messages.iter().filter(|m| role(m) == "user").count() == 1
            && !messages.iter().any(|m| role(m) == "assistant")
    };
    let first: Vec<_> =
        usage.iter().filter(|u| requests.get(u.request).is_some_and(is_first_answer)).collect();
    let n = first.len().max(1) as f64;
    let approx = first.iter().map(|u| u.prompt_tokens).sum::<u64>() as f64 / n;
    let tokenizer =
        itbot::prompt::PromptBuilder::new("", &config.settings.company, &config.env.openai_model, 0);
    let counted: Vec<u64> = first
        .iter()
        .filter_map(|u| requests.get(u.request)?.get("messages")?.as_array().cloned())
        .map(|messages| {
            let content =
                |m: &Value| m.get("content").and_then(Value::as_str).map_or(0, |c| tokenizer.count(c));
            messages.iter().map(|m| 3 + content(m)).sum::<u64>() + 3
        })
        .collect();
    let prompt = counted.iter().sum::<u64>() as f64 / n;
    let completion = first.iter().map(|u| u.completion_tokens).sum::<u64>() as f64 / n;
    let per_ticket = tickets.max(1) as f64;
    let all_prompt = usage.iter().map(|u| u.prompt_tokens).sum::<u64>() as f64 / per_ticket;
    let all_completion = usage.iter().map(|u| u.completion_tokens).sum::<u64>() as f64 / per_ticket;
    LlmUse {
        calls: usage.len(),
        first_answers: first.len(),
        prompt_tokens_per_first_answer: prompt,
        prompt_tokens_per_first_answer_approx: approx,
        completion_tokens_per_first_answer: completion,
        max_prompt_tokens_first_answer: counted.iter().copied().max().unwrap_or(0),
        cost_per_first_answer_usd: cost(prompt, completion),
        prompt_tokens_per_ticket: all_prompt,
        completion_tokens_per_ticket: all_completion,
        cost_per_ticket_usd: cost(all_prompt, all_completion),
        cost_per_first_answer_at_max_completion_usd: cost(
            prompt,
            f64::from(config.settings.openai.max_completion_tokens),
        ),
        price,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_rules() -> (Config, Rules) {
        let config = Config::load(|k| {
            (k == "ITBOT_CONFIG")
                .then(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/itbot.toml").to_string())
        })
        .expect("shipped config loads");
        let rules = Rules::new(&config.settings.triage, &config.settings.followup).expect("rules compile");
        (config, rules)
    }

    #[test]
    fn every_post_of_the_mix_is_triaged_confidently_as_intended() {
        let (_, rules) = shipped_rules();
        for (pool, want) in
            [(TECHNICAL, Category::Technical), (ACCESS, Category::Access), (CHANGE, Category::Change)]
        {
            for text in pool {
                let t = rules.classify(text);
                assert_eq!(t.category, want, "{text}");
                assert!(t.confident, "not confident: {text}");
            }
        }
        assert_eq!(rules.outcome(FAILED), Outcome::Failed);
        assert_eq!(rules.outcome(WORKED), Outcome::Worked);
    }

    #[test]
    fn the_planner_expects_one_llm_call_per_answer_and_none_for_closings() {
        let (_, rules) = shipped_rules();
        let mut planner = Planner {
            rules: &rules,
            mix: Mix::Standard,
            max_failed_attempts: 2,
            auto_escalate: false,
            llm: true,
            rng: fastrand::Rng::with_seed(7),
        };
        let plans: Vec<Plan> = (0..200).map(|_| planner.next()).collect();
        for p in &plans {
            let first = p.steps[0];
            assert_eq!(first.kind, TurnKind::FirstAnswer);
            assert!(first.llm_calls <= 1);
            for s in &p.steps[1..] {
                let expected = u32::from(s.action == Action::Post(FAILED));
                assert_eq!(s.llm_calls, expected, "{s:?}");
            }
            assert_eq!(p.escalates, p.steps.iter().any(|s| s.action == Action::ThumbsDown));
        }
        assert!(plans.iter().any(|p| p.escalates));
        assert!(plans.iter().any(|p| p.steps.len() == 1));
        assert!(plans.iter().any(|p| p.steps.len() == 3));
    }

    #[test]
    fn the_one_follow_up_mix_is_technical_posts_each_failing_once() {
        let (_, rules) = shipped_rules();
        let mut planner = Planner {
            rules: &rules,
            mix: Mix::OneFollowUp,
            max_failed_attempts: 2,
            auto_escalate: true,
            llm: true,
            rng: fastrand::Rng::with_seed(3),
        };
        for _ in 0..100 {
            let p = planner.next();
            let Action::Post(text) = p.steps[0].action else { panic!("a ticket starts with a post") };
            assert_eq!(rules.classify(text).category, Category::Technical, "{text}");
            assert_eq!(p.steps.len(), 2);
            assert_eq!(p.steps[1].action, Action::Post(FAILED));
            assert_eq!(p.steps[1].llm_calls, 1, "one failure is under max_failed_attempts: new steps");
            assert!(!p.escalates);
        }
    }

    #[test]
    fn summaries_use_nearest_rank_percentiles() {
        let s = Summary::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!((s.count, s.p50_ms, s.p99_ms, s.max_ms), (100, 50.0, 99.0, 100.0));
        assert_eq!(Summary::of(vec![]).count, 0);
    }

    #[test]
    fn timestamps_read_as_microseconds_and_calls_as_reads_or_writes() {
        assert_eq!(ts_micros("1610241741.000200"), 1_610_241_741_000_200);
        assert_eq!(kind_of("chat.postMessage"), CallKind::Write);
        assert_eq!(kind_of("assistant.threads.setStatus"), CallKind::Write);
        assert_eq!(kind_of("conversations.replies"), CallKind::Read);
        assert_eq!(kind_of("users.info"), CallKind::Read);
        assert_eq!(kind_of("apps.connections.open"), CallKind::Connection);
    }

    #[test]
    fn json_log_lines_are_counted_by_level_and_live_threads_kept() {
        let log = concat!(
            r#"{"timestamp":"t","level":"INFO","message":"new ticket","thread":"1.2","live":41}"#,
            "\n",
            r#"{"timestamp":"t","level":"WARN","message":"reply not posted"}"#,
            "\n",
            r#"{"timestamp":"t","level":"ERROR","message":"reply not posted"}"#,
            "\n"
        );
        let counts = Mutex::new(LogCounts::default());
        count_log_lines(log.as_bytes(), &counts);
        let c = counts.into_inner().expect("not poisoned");
        assert_eq!((c.warnings, c.errors, c.live_threads), (1, 1, Some(41)));
        assert_eq!(c.first_problems, vec!["reply not posted".to_string()]);
    }

    #[test]
    fn this_process_has_a_resident_size_and_cpu_time() {
        assert!(status_kib(None, "VmRSS").is_some_and(|k| k > 0));
        assert!(cpu_secs(None).is_some());
    }
}

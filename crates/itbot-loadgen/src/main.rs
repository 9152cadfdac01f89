//! The `itbot-loadgen` binary: reads `.env`, parses the command line, loads the bot's
//! configuration and runs the load. Exit codes: 0 every step answered exactly once, 1 a step
//! was not (or the run failed), 2 bad configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use itbot::config::{Config, LogFormat};
use itbot::telemetry;
use itbot_loadgen::{self as loadgen, BotProcess};

/// The real bot under load against the simulated workspace and a fake LLM: what employees wait,
/// ack latency, time per turn, lost or duplicate answers, 429s, memory, Web API calls and tokens
/// per ticket (see BENCHMARKS.md). A scenario sets every knob; a flag given beside it wins.
/// Exits 1 if a step was not answered exactly once.
#[derive(Parser)]
#[command(name = "itbot-loadgen", version)]
struct Args {
    /// The load to play. `morning` (the default): 0.5 new tickets/s for 2 minutes, each technical
    /// with one "still not working", LLM 1.5 s, Assist 2 s, at Slack's real limits. `outage`:
    /// the same mix, 30 tickets in 10 s. `relaxed`: the throughput run, 100 tickets/s for 30 s of
    /// the standard mix, LLM and Assist instant, in process with Slack's limits x1000 (not Slack).
    #[arg(long, value_enum, default_value_t = Scenario::Morning)]
    scenario: Scenario,
    /// New tickets per second (open loop).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Tickets in progress at once instead: a new one starts when one ends (closed loop).
    #[arg(long)]
    concurrency: Option<usize>,
    /// New tickets stop after this many seconds…
    #[arg(long)]
    duration_secs: Option<u64>,
    /// …or after this many tickets.
    #[arg(long)]
    tickets: Option<usize>,
    /// What employees write: `standard` (70% technical, some follow-ups and 👎, 30% requests) or
    /// `one-follow-up` (every ticket technical, one "still not working" each).
    #[arg(long, value_enum)]
    mix: Option<MixArg>,
    /// Latency of each fake LLM answer.
    #[arg(long)]
    llm_latency_ms: Option<u64>,
    /// No LLM: answers come from the knowledge base.
    #[arg(long)]
    no_llm: bool,
    /// How long the simulated Assist takes to post its ticket card.
    #[arg(long)]
    assist_delay_ms: Option<u64>,
    /// Pause between the bot's reply and the employee's next step.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Slack's rate limits times this, in the bot and the workspace alike (1 = Slack's real
    /// limits, the default except in `relaxed`). Needs --in-process: a child `itbot` always paces
    /// at Slack's real limits. Every figure of a relaxed run is labelled so.
    #[arg(long, requires = "in_process")]
    slack_pace_factor: Option<u32>,
    /// Run the bot in this process instead of as a child `itbot run`.
    #[arg(long)]
    in_process: bool,
    /// The `itbot` binary to run as the child (by default the one beside this binary).
    #[arg(long, env = "ITBOT_BIN", conflicts_with = "in_process")]
    bot: Option<PathBuf>,
    /// How long to wait for the last answers.
    #[arg(long, default_value_t = 90)]
    drain_secs: u64,
    /// Seed of the ticket mix.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// LLM input price, US dollars per million tokens (gpt-4o-mini's list price).
    #[arg(long, default_value_t = 0.15)]
    price_input: f64,
    /// LLM output price, US dollars per million tokens.
    #[arg(long, default_value_t = 0.60)]
    price_output: f64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The child bot's log filter (`RUST_LOG`); `info` is the production default.
    #[arg(long, default_value = "info")]
    bot_log: String,
    /// Bot processes on the one workspace. More than one share a real `redis-server` (Debian's
    /// package) that the run starts on a free loopback port, as replicas share Railway's Redis.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
    replicas: u16,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    Morning,
    Outage,
    Relaxed,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MixArg {
    Standard,
    OneFollowUp,
}

/// Every knob of a scenario.
struct Preset {
    rate: f64,
    duration_secs: u64,
    tickets: Option<usize>,
    mix: loadgen::Mix,
    llm_latency_ms: u64,
    assist_delay_ms: u64,
    in_process: bool,
    pace_factor: u32,
}

impl Scenario {
    fn preset(self) -> Preset {
        let real = |rate, duration_secs, tickets| Preset {
            rate,
            duration_secs,
            tickets,
            mix: loadgen::Mix::OneFollowUp,
            llm_latency_ms: 1500,
            assist_delay_ms: 2000,
            in_process: false,
            pace_factor: 1,
        };
        match self {
            Scenario::Morning => real(0.5, 120, None),
            Scenario::Outage => real(3.0, 10, Some(30)),
            Scenario::Relaxed => Preset {
                rate: 100.0,
                duration_secs: 30,
                tickets: None,
                mix: loadgen::Mix::Standard,
                llm_latency_ms: 0,
                assist_delay_ms: 0,
                in_process: true,
                pace_factor: RELAXED_PACE_FACTOR,
            },
        }
    }
}

/// Slack's limits times this in the `relaxed` scenario: one channel at 100 tickets/s needs far
/// more than Slack allows.
const RELAXED_PACE_FACTOR: u32 = 1000;

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("itbot-loadgen: .env: {e}");
            return ExitCode::from(2);
        }
    }
    let args = Args::parse();
    let config = match Config::load(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("itbot-loadgen: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    telemetry::init(&filter, LogFormat::Pretty);
    run(config, args)
}

fn run(config: Config, args: Args) -> ExitCode {
    let preset = args.scenario.preset();
    let in_process = args.in_process || preset.in_process;
    let bot = if in_process {
        BotProcess::InProcess { pace_factor: args.slack_pace_factor.unwrap_or(preset.pace_factor).max(1) }
    } else {
        match args.bot.clone().map_or_else(itbot_beside_this_binary, Ok) {
            Ok(exe) => BotProcess::Child(exe),
            Err(e) => {
                eprintln!("itbot-loadgen: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let load = match (args.rate, args.concurrency) {
        (_, Some(c)) => loadgen::Load::Concurrency(c),
        (rate, None) => loadgen::Load::Rate(rate.unwrap_or(preset.rate)),
    };
    // A ticket count given alone is not capped by the scenario's duration.
    let duration_secs = match (args.duration_secs, args.tickets) {
        (Some(d), _) => d,
        (None, Some(_)) => 86_400,
        (None, None) => preset.duration_secs,
    };
    let mix = match args.mix {
        Some(MixArg::Standard) => loadgen::Mix::Standard,
        Some(MixArg::OneFollowUp) => loadgen::Mix::OneFollowUp,
        None => preset.mix,
    };
    let options = loadgen::LoadOptions {
        bot,
        load,
        mix,
        duration: Duration::from_secs(duration_secs),
        max_tickets: args.tickets.or(preset.tickets),
        llm_latency: (!args.no_llm)
            .then(|| Duration::from_millis(args.llm_latency_ms.unwrap_or(preset.llm_latency_ms))),
        assist_delay: Duration::from_millis(args.assist_delay_ms.unwrap_or(preset.assist_delay_ms)),
        think: Duration::from_millis(args.think_ms),
        drain: Duration::from_secs(args.drain_secs),
        seed: args.seed,
        price: loadgen::Price { input_per_mtok: args.price_input, output_per_mtok: args.price_output },
        bot_log: args.bot_log,
        replicas: usize::from(args.replicas),
    };
    let result = actix_rt::System::new().block_on(loadgen::run(config, options));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("itbot-loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{report}");
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("itbot-loadgen: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if report.correct() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `itbot` in this binary's directory: where `cargo build` puts both.
fn itbot_beside_this_binary() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find this binary to look beside it: {e}"))?;
    let bot = exe.with_file_name("itbot");
    if bot.is_file() {
        Ok(bot)
    } else {
        Err(format!(
            "no itbot binary at {}: build it (cargo build --release), or give --bot PATH or ITBOT_BIN",
            bot.display()
        ))
    }
}

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

/// The real bot under load against the simulated workspace and a fake LLM: ack latency, time
/// per turn, lost or duplicate answers, memory, Web API calls and tokens per ticket (see
/// BENCHMARKS.md). Exits 1 if a step was not answered exactly once.
#[derive(Parser)]
#[command(name = "itbot-loadgen", version)]
struct Args {
    /// New tickets per second (open loop; the default is 100).
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Tickets in progress at once instead: a new one starts when one ends (closed loop).
    #[arg(long)]
    concurrency: Option<usize>,
    /// New tickets stop after this many seconds…
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// …or after this many tickets.
    #[arg(long)]
    tickets: Option<usize>,
    /// Latency of each fake LLM answer.
    #[arg(long, default_value_t = 0)]
    llm_latency_ms: u64,
    /// No LLM: answers come from the knowledge base.
    #[arg(long)]
    no_llm: bool,
    /// How long the simulated Assist takes to post its ticket card.
    #[arg(long, default_value_t = 0)]
    assist_delay_ms: u64,
    /// Pause between the bot's reply and the employee's next step.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// With --in-process only: Slack's rate limits times this [default: 1000] (1 = Slack's real
    /// limits; one channel at 100 tickets/s needs far more than Slack allows). A child `itbot`
    /// always paces at Slack's real limits.
    #[arg(long, requires = "in_process")]
    slack_pace_factor: Option<u32>,
    /// Run the bot in this process instead of as a child `itbot run`.
    #[arg(long)]
    in_process: bool,
    /// The `itbot` binary to run as the child (by default the one beside this binary).
    #[arg(long, env = "ITBOT_BIN", conflicts_with = "in_process")]
    bot: Option<PathBuf>,
    /// How long to wait for the last answers.
    #[arg(long, default_value_t = 60)]
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
}

/// Relaxed pacing of a bot in this process unless told otherwise, as the standard run needs.
const IN_PROCESS_PACE_FACTOR: u32 = 1000;

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
    let bot = if args.in_process {
        BotProcess::InProcess { pace_factor: args.slack_pace_factor.unwrap_or(IN_PROCESS_PACE_FACTOR).max(1) }
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
        (rate, None) => loadgen::Load::Rate(rate.unwrap_or(100.0)),
    };
    let options = loadgen::LoadOptions {
        bot,
        load,
        duration: Duration::from_secs(args.duration_secs),
        max_tickets: args.tickets,
        llm_latency: (!args.no_llm).then(|| Duration::from_millis(args.llm_latency_ms)),
        assist_delay: Duration::from_millis(args.assist_delay_ms),
        think: Duration::from_millis(args.think_ms),
        drain: Duration::from_secs(args.drain_secs),
        seed: args.seed,
        price: loadgen::Price { input_per_mtok: args.price_input, output_per_mtok: args.price_output },
        bot_log: args.bot_log,
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

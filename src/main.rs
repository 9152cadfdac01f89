//! The `itbot` binary: reads `.env`, parses the command line, loads the configuration, sets up
//! logging and runs the command. Exit codes: 0 done, 1 runtime failure, 2 bad configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use itbot::actors::slack_api::ApiOptions;
use itbot::config::{Config, LogFormat};
use itbot::sandbox::loadgen;
use itbot::startup::{Bot, StartOptions, TransportOptions};
use itbot::{explain, sandbox, telemetry};

#[derive(Parser)]
#[command(name = "itbot", version, about = "A Slack first responder for IT teams")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the IT channel (the default).
    Run {
        /// Multiplies Slack's rate limits (benchmarks against the simulated workspace only:
        /// real Slack answers 429 beyond its limits).
        #[arg(long, hide = true, default_value_t = 1)]
        slack_pace_factor: u32,
    },
    /// The whole bot against a simulated Slack workspace on loopback, in the terminal.
    /// Reads the conversation from stdin: a plain line posts a new ticket, `> text` replies in
    /// the current thread, `/react -1` puts a thumbs-down on the bot's last message,
    /// `/human` presses its "Get a human" button, `/as NAME` speaks as someone else, `/quit` ends.
    Sandbox {
        /// Play a built-in script instead of reading stdin.
        #[arg(long)]
        demo: bool,
        /// Answer with a local fake LLM (exercises the LLM path without an API key).
        #[arg(long)]
        fake_llm: bool,
    },
    /// Check the tokens, scopes, channel, LLM endpoint and configuration; say what to fix.
    Doctor,
    /// What the bot would do with a message: category, rules, redacted text, articles.
    Explain {
        /// The message; omit with --jsonl.
        text: Option<String>,
        /// Read one message per line on stdin and write one JSON object per line.
        #[arg(long)]
        jsonl: bool,
        /// Also read the channel's last N messages (needs the Slack tokens) and show the similar
        /// past tickets the bot would use.
        #[arg(long, default_value_t = 0)]
        history: usize,
    },
    /// The team's figures from the channel's history: tickets by category and day, first
    /// response, resolved, escalated, takeovers, feedback, top problems, LLM cost (needs the
    /// Slack tokens).
    Report {
        /// Days back from now.
        #[arg(long, default_value_t = itbot::report::DEFAULT_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(itbot::report::MAX_DAYS)))]
        days: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The real bot under load against the simulated workspace and a fake LLM: ack latency, time
    /// per turn, lost or duplicate answers, memory, Web API calls and tokens per ticket (see
    /// BENCHMARKS.md). Exits 1 if a step was not answered exactly once.
    Loadgen(LoadgenArgs),
}

#[derive(clap::Args)]
struct LoadgenArgs {
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
    /// Slack's rate limits times this (1 = Slack's real limits; one channel at 100 tickets/s
    /// needs far more than Slack allows).
    #[arg(long, default_value_t = 1000)]
    slack_pace_factor: u32,
    /// Run the bot in this process instead of as a child `itbot run`.
    #[arg(long)]
    in_process: bool,
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

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("itbot: .env: {e}");
            return ExitCode::from(2);
        }
    }
    let cli = Cli::parse();
    let config = match Config::load(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) if matches!(cli.command, Some(Command::Doctor)) => {
            println!("FAIL {:<18} {e}", "config");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("itbot: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Run { slack_pace_factor: 1 });

    match command {
        Command::Run { slack_pace_factor } => {
            telemetry::init(&config.env.log_filter, config.env.log_format);
            run(config, slack_pace_factor)
        }
        Command::Loadgen(args) => {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
            telemetry::init(&filter, LogFormat::Pretty);
            loadgen_command(config, args)
        }
        Command::Sandbox { demo, fake_llm } => {
            // The conversation goes to stdout; logs stay quiet on stderr unless asked for.
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
            telemetry::init(&filter, LogFormat::Pretty);
            let options = sandbox::cli::Options { demo, fake_llm };
            let result = actix_rt::System::new().block_on(sandbox::cli::run(config, options));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("itbot sandbox: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Doctor => {
            telemetry::init(&std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()), LogFormat::Pretty);
            let checks = actix_rt::System::new().block_on(async { itbot::doctor::run(&config).await });
            for c in &checks {
                println!("{c}");
            }
            let failed = checks.iter().filter(|c| !c.ok).count();
            if failed == 0 {
                println!("all {} checks passed", checks.len());
                ExitCode::SUCCESS
            } else {
                println!("{failed} of {} checks failed", checks.len());
                ExitCode::from(1)
            }
        }
        Command::Report { days, json } => {
            telemetry::init(&std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()), LogFormat::Pretty);
            report_command(&config, days, json)
        }
        Command::Explain { text, jsonl, history } => {
            let kb = match itbot::startup::load_knowledge(&config) {
                Ok(kb) => kb,
                Err(e) => {
                    eprintln!("itbot: {e}");
                    return ExitCode::from(2);
                }
            };
            let rules = match itbot::triage::Rules::new(&config.settings.triage, &config.settings.followup) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("itbot: configuration error: [triage]: {e}");
                    return ExitCode::from(2);
                }
            };
            let past = if history > 0 {
                telemetry::init(&config.env.log_filter, LogFormat::Pretty);
                eprintln!("reading the last {history} messages of #{}...", config.env.it_channel_name);
                match actix_rt::System::new().block_on(itbot::startup::read_past_tickets(&config, history)) {
                    Ok(index) => Some(index),
                    Err(e) => {
                        eprintln!("itbot explain: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                None
            };
            let stdout = std::io::stdout();
            let result = if jsonl {
                explain::jsonl_with(&rules, &kb, past.as_ref(), std::io::stdin().lock(), stdout.lock())
            } else if let Some(text) = text {
                explain::print(&rules, &kb, past.as_ref(), &text, stdout.lock())
            } else {
                eprintln!("itbot explain: give a message, or --jsonl to read them from stdin");
                return ExitCode::from(2);
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("itbot explain: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn report_command(config: &Config, days: u32, json: bool) -> ExitCode {
    let read = match actix_rt::System::new().block_on(itbot::startup::read_report(config, days)) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("itbot report: {e}");
            return ExitCode::from(match e {
                itbot::startup::StartError::Config(_) | itbot::startup::StartError::Knowledge(_) => 2,
                _ => 1,
            });
        }
    };
    if !read.complete {
        eprintln!(
            "itbot report: stopped after {} messages (history.backfill_messages); older tickets of the period are not counted",
            read.messages_read
        );
    }
    if json {
        match serde_json::to_string_pretty(&read.report) {
            Ok(j) => println!("{j}"),
            Err(e) => {
                eprintln!("itbot report: cannot write JSON: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", read.report.to_table());
    }
    ExitCode::SUCCESS
}

fn run(config: Config, slack_pace_factor: u32) -> ExitCode {
    actix_rt::System::new().block_on(async move {
        let options = StartOptions::from_config(&config);
        let mut transport = TransportOptions::default();
        if slack_pace_factor > 1 {
            tracing::warn!(slack_pace_factor, "Slack's rate limits multiplied: for benchmarks only");
            transport.api = ApiOptions { pace_factor: slack_pace_factor, ..ApiOptions::default() };
        }
        let bot = match Bot::start_with(config, options, transport).await {
            Ok(bot) => bot,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("itbot: {e}");
                return ExitCode::from(match e {
                    itbot::startup::StartError::Config(_) => 2,
                    _ => 1,
                });
            }
        };
        let addr: SocketAddr = bot.http_addr;
        tracing::info!(http = %addr, "itbot is running");
        match bot.run_until_stopped(shutdown_signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(reason) => {
                eprintln!("itbot: {reason}");
                ExitCode::from(1)
            }
        }
    })
}

fn loadgen_command(config: Config, args: LoadgenArgs) -> ExitCode {
    let bot = if args.in_process {
        loadgen::BotProcess::InProcess
    } else {
        match std::env::current_exe() {
            Ok(exe) => loadgen::BotProcess::Child(exe),
            Err(e) => {
                eprintln!("itbot loadgen: cannot find this binary to run the bot: {e}");
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
        pace_factor: args.slack_pace_factor.max(1),
        drain: Duration::from_secs(args.drain_secs),
        seed: args.seed,
        price: loadgen::Price { input_per_mtok: args.price_input, output_per_mtok: args.price_output },
        bot_log: args.bot_log,
    };
    let result = actix_rt::System::new().block_on(loadgen::run(config, options));
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("itbot loadgen: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{report}");
    if let Some(path) = &args.json {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("itbot loadgen: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if report.correct() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Completes on SIGTERM (container stop) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: draining"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the bot");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

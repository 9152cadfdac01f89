//! The `itbot` binary: reads `.env`, parses the command line, loads the configuration, sets up
//! logging and runs the command. Exit codes: 0 done, 1 runtime failure, 2 bad configuration.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use itbot::config::{Config, LogFormat};
use itbot::startup::{Bot, StartOptions};
use itbot::{explain, telemetry};

#[derive(Parser)]
#[command(name = "itbot", version, about = "A Slack first responder for IT teams")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the IT channel (the default).
    Run,
    /// The whole bot against a simulated Slack workspace on loopback, in the terminal.
    /// Reads the conversation from stdin: a plain line posts a new ticket, `> text` replies in
    /// the current thread, `/react -1` puts a thumbs-down on the bot's last message,
    /// `/human` presses its "Get a human" button, `/as NAME` speaks as someone else, `/quit` ends.
    // A build without the `sandbox` feature (production) has no fakes: hidden, and says so.
    #[command(hide = cfg!(not(feature = "sandbox")))]
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
    let command = cli.command.unwrap_or(Command::Run);

    match command {
        Command::Run => {
            telemetry::init(&config.env.log_filter, config.env.log_format);
            run(config)
        }
        Command::Sandbox { demo, fake_llm } => sandbox_command(config, demo, fake_llm),
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

#[cfg(feature = "sandbox")]
fn sandbox_command(config: Config, demo: bool, fake_llm: bool) -> ExitCode {
    // The conversation goes to stdout; logs stay quiet on stderr unless asked for.
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    telemetry::init(&filter, LogFormat::Pretty);
    let options = itbot::sandbox::cli::Options { demo, fake_llm };
    let result = actix_rt::System::new().block_on(itbot::sandbox::cli::run(config, options));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("itbot sandbox: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "sandbox"))]
fn sandbox_command(_: Config, _: bool, _: bool) -> ExitCode {
    eprintln!(
        "itbot sandbox: this build has no sandbox (built without the `sandbox` feature); \
         `cargo run --release -- sandbox` builds one"
    );
    ExitCode::from(2)
}

fn run(config: Config) -> ExitCode {
    actix_rt::System::new().block_on(async move {
        let options = StartOptions::from_config(&config);
        let bot = match Bot::start(config, options).await {
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

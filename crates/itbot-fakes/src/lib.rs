//! Test tooling for itbot, kept out of the production binary: a simulated Slack workspace (Web
//! API, Socket Mode and a simulated Assist) and a fake OpenAI server, both on loopback. Used by
//! `itbot sandbox`, the tests and the load generator; it knows nothing of the bot.

pub mod fake_openai;
pub mod redis_server;
pub mod workspace;

//! The simulated Slack workspace (Web API + Socket Mode, with a simulated Assist), a fake
//! OpenAI server, the `itbot sandbox` terminal driver and the `itbot loadgen` load generator.
//! Used by tests too.

pub mod cli;
pub mod fake_openai;
pub mod loadgen;
pub mod workspace;

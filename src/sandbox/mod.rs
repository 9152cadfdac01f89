//! The simulated Slack workspace (Web API + Socket Mode, with a simulated Assist), a fake
//! OpenAI server, and the `itbot sandbox` terminal driver. Used by tests too.

pub mod cli;
pub mod fake_openai;
pub mod workspace;

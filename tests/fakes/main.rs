//! Integration tests for the simulated Slack workspace and the fake OpenAI server.

mod helpers;
mod openai;
mod socket_mode;
mod streaming;
mod web_api;

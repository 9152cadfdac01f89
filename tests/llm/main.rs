//! The LLM path end to end: the OpenAiActor against the fake OpenAI (retries, Retry-After,
//! streaming from the official recordings), and the whole bot (streamed and posted answers,
//! fallback when the LLM fails, token trimming, and that nothing private leaves).

mod answers;
mod client;
#[path = "../common/mod.rs"]
mod common;
mod helpers;
mod privacy;

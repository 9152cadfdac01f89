//! The `itbot sandbox` terminal driver and the `itbot loadgen` load generator, both against the
//! simulated workspace and fake LLM of `itbot-fakes`.

pub mod cli;
pub mod loadgen;

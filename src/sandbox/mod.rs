//! `itbot sandbox`: the terminal driver of the real bot against the simulated workspace and fake
//! LLM of `itbot-fakes`.

pub mod cli;

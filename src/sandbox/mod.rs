//! `itbot sandbox`: the terminal driver of the real bot against the simulated workspace and fake
//! LLM of `itbot-fakes`. Behind the `sandbox` feature (on by default), so a production build
//! (`--no-default-features`) carries no fake.

pub mod cli;

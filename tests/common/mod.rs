//! What the integration test binaries (`bot`, `transport`, `llm`) share: waiting with a
//! deadline, and reading the bot's replies from the simulated workspace. Each binary includes
//! this file with `#[path]`.

use std::future::Future;
use std::time::Duration;

use itbot_fakes::workspace::{Posted, Workspace};

/// The longest any test waits for something to happen.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it yields a value, or panics naming `what` at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bot's messages in a thread of #it (excluding the root).
pub fn bot_replies(ws: &Workspace, thread: &str) -> Vec<Posted> {
    ws.thread(ws.it_channel(), thread)
        .into_iter()
        .filter(|p| p.ts != thread && p.user.as_deref() == Some(ws.bot_user_id()))
        .collect()
}

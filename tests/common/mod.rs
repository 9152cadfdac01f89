//! What the integration test binaries (`bot`, `transport`, `llm`) share: waiting with a
//! deadline, and reading the bot's replies from the simulated workspace. Each binary includes
//! this file with `#[path]`.
//!
//! Waits are woken by the workspace's change notification rather than by polling; see
//! [`watch`] and [`wait_on`].

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use itbot_fakes::workspace::{Posted, Workspace};

/// The longest any test waits for something to happen.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often [`wait_for`] checks again although the workspace did not change: its condition may
/// depend on the bot alone (health, metrics, threads in memory), which the workspace cannot see.
pub const RECHECK: Duration = Duration::from_millis(250);

thread_local! {
    /// The workspace of the test on this thread (each actix test runs on a thread of its own),
    /// so that [`wait_for`] wakes when it changes without every caller passing it.
    static WATCHED: RefCell<Option<Workspace>> = const { RefCell::new(None) };
}

/// Makes [`wait_for`] on this thread wake at each change of `ws`.
#[allow(dead_code)] // not every binary that includes this file uses it
pub fn watch(ws: &Workspace) {
    WATCHED.with(|w| *w.borrow_mut() = Some(ws.clone()));
}

/// Waits until `check` yields a value, or panics naming `what` at the deadline. Checks again at
/// each change of the [`watch`]ed workspace, and every 250 ms for what the workspace cannot see.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let ws = WATCHED.with(|w| w.borrow().clone());
    wait(what, ws.as_ref(), Some(RECHECK), check).await
}

/// Waits until `check` yields a value, checking again only when `ws` changes: for conditions on
/// the workspace's own state (posts, calls, acks, connections).
#[allow(dead_code)] // not every binary that includes this file uses it
pub async fn wait_on<T, F, Fut>(ws: &Workspace, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    wait(what, Some(ws), None, check).await
}

async fn wait<T, F, Fut>(what: &str, ws: Option<&Workspace>, recheck: Option<Duration>, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        // Listen before checking, so that a change made while the check runs still wakes us.
        let mut changed = pin!(ws.map(Workspace::changed));
        if let Some(changed) = changed.as_mut().as_pin_mut() {
            changed.enable();
        }
        if let Some(v) = check().await {
            return v;
        }
        let now = tokio::time::Instant::now();
        assert!(now < end, "timed out waiting for {what}");
        let until = recheck.map_or(end, |r| (now + r).min(end));
        let next_change = async {
            match changed.as_pin_mut() {
                Some(changed) => changed.await,
                None => std::future::pending().await,
            }
        };
        let _ = tokio::time::timeout_at(until, next_change).await;
    }
}

/// The bot's messages in a thread of #it (excluding the root).
pub fn bot_replies(ws: &Workspace, thread: &str) -> Vec<Posted> {
    ws.thread(ws.it_channel(), thread)
        .into_iter()
        .filter(|p| p.ts != thread && p.user.as_deref() == Some(ws.bot_user_id()))
        .collect()
}

/// The Web API actor alone against `ws` (no bot around it), and the client that calls through it.
#[allow(dead_code)] // not every binary that includes this file uses it
pub fn api_on(
    ws: &Workspace,
    options: &itbot::actors::slack_api::ApiOptions,
    health: std::sync::Arc<itbot::http::Health>,
) -> (itbot::slack::SlackApi, actix::Addr<itbot::actors::slack_api::SlackApiActor>) {
    use actix::Actor as _;
    let client = itbot::slack::WebClient::new(itbot::net::http_client(options.request_timeout), ws.api_url());
    let actor = itbot::actors::slack_api::SlackApiActor::new(
        client,
        ws.bot_token().to_string().into(),
        ws.app_token().to_string().into(),
        options.clone(),
        health,
    )
    .start();
    (itbot::slack::SlackApi::new(actor.clone().recipient(), options.call_timeout()), actor)
}

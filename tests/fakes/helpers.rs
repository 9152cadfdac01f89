//! Shared helpers: raw Web API calls, a bare Socket Mode client, waits with deadlines.

use std::cell::RefCell;
use std::pin::pin;
use std::time::Duration;

use awc::error::WsProtocolError;
use awc::ws::{Frame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use itbot_fakes::workspace::{Workspace, WorkspaceOptions};
use serde_json::Value;

/// Deadline for any single wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(5);

/// Options with short delays so the suite stays fast.
pub fn fast_options() -> WorkspaceOptions {
    WorkspaceOptions {
        assist_enabled: false,
        assist_delay: Duration::from_millis(50),
        ack_timeout: Duration::from_millis(300),
        max_redeliveries: 3,
        ping_interval: Duration::from_secs(30),
        bot_in_channel: true,
        ..WorkspaceOptions::default()
    }
}

thread_local! {
    /// The workspace this thread's test started (each actix test has a thread of its own), so
    /// [`wait_until`] wakes when it changes.
    static STARTED: RefCell<Option<Workspace>> = const { RefCell::new(None) };
}

pub async fn start(opts: WorkspaceOptions) -> Workspace {
    let ws = Workspace::start(opts).await.expect("workspace starts");
    STARTED.with(|s| *s.borrow_mut() = Some(ws.clone()));
    ws
}

pub fn client() -> awc::Client {
    awc::Client::builder().timeout(DEADLINE).finish()
}

pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    pub raw: String,
}

async fn read(
    mut resp: awc::ClientResponse<impl Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin>,
) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let raw = resp.body().limit(16 << 20).await.expect("body");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Reply { status, headers, body, raw }
}

fn bearer(token: Option<&str>) -> Option<(&'static str, String)> {
    token.map(|t| ("Authorization", format!("Bearer {t}")))
}

/// POST `application/x-www-form-urlencoded`.
pub async fn call_form(ws: &Workspace, method: &str, token: Option<&str>, form: &[(&str, &str)]) -> Reply {
    let mut req = client().post(format!("{}{method}", ws.api_url()));
    if let Some(h) = bearer(token) {
        req = req.insert_header(h);
    }
    read(req.send_form(&form).await.expect("request")).await
}

/// POST `application/json; charset=utf-8`.
pub async fn call_json(ws: &Workspace, method: &str, token: Option<&str>, body: &Value) -> Reply {
    let mut req = client()
        .post(format!("{}{method}", ws.api_url()))
        .insert_header(("Content-Type", "application/json; charset=utf-8"));
    if let Some(h) = bearer(token) {
        req = req.insert_header(h);
    }
    read(req.send_body(body.to_string()).await.expect("request")).await
}

/// GET with a query string.
pub async fn call_get(ws: &Workspace, method: &str, token: Option<&str>, query: &[(&str, &str)]) -> Reply {
    let mut req = client().get(format!("{}{method}", ws.api_url())).query(&query).expect("query");
    if let Some(h) = bearer(token) {
        req = req.insert_header(h);
    }
    read(req.send().await.expect("request")).await
}

pub trait WsStream:
    Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin
{
}
impl<T> WsStream for T where
    T: Stream<Item = Result<Frame, WsProtocolError>> + Sink<Message, Error = WsProtocolError> + Unpin
{
}

/// A bare Socket Mode client that answers nothing by itself.
pub struct Socket {
    io: Box<dyn WsStream>,
}

impl Socket {
    /// Opens a connection via `apps.connections.open` (the `hello` is left unread).
    pub async fn open(ws: &Workspace) -> Socket {
        let r = call_form(ws, "apps.connections.open", Some(ws.app_token()), &[]).await;
        let url = r.body["url"].as_str().expect("url").to_string();
        Socket::connect(&url).await.expect("upgrade succeeds")
    }

    pub async fn connect(url: &str) -> Result<Socket, String> {
        let (_, framed) = client().ws(url).connect().await.map_err(|e| e.to_string())?;
        Ok(Socket { io: Box::new(framed) })
    }

    /// Next frame of any kind, or `None` when the socket ended.
    pub async fn frame(&mut self) -> Option<Frame> {
        match tokio::time::timeout(DEADLINE, self.io.next()).await {
            Ok(Some(Ok(f))) => Some(f),
            Ok(_) => None,
            Err(_) => panic!("no frame within the deadline"),
        }
    }

    /// Next text frame as JSON, skipping pings and pongs.
    pub async fn json(&mut self) -> Value {
        loop {
            match self.frame().await {
                Some(Frame::Text(t)) => return serde_json::from_slice(&t).expect("json frame"),
                Some(Frame::Ping(_)) | Some(Frame::Pong(_)) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Reads the `hello` and returns it.
    pub async fn hello(&mut self) -> Value {
        let v = self.json().await;
        assert_eq!(v["type"], "hello");
        v
    }

    /// Next `events_api` envelope.
    pub async fn envelope(&mut self) -> Value {
        let v = self.json().await;
        assert_eq!(v["type"], "events_api", "unexpected frame {v}");
        v
    }

    pub async fn send(&mut self, msg: Message) {
        self.io.send(msg).await.expect("send frame");
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send(Message::Text(v.to_string().into())).await;
    }

    /// Acks an envelope, optionally with a `payload`.
    pub async fn ack(&mut self, envelope: &Value, payload: Option<Value>) {
        let mut ack = serde_json::json!({"envelope_id": envelope["envelope_id"]});
        if let Some(p) = payload {
            ack["payload"] = p;
        }
        self.send_json(&ack).await;
    }

    /// Asserts that no text frame arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.io.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Frame::Ping(_)))) | Ok(Some(Ok(Frame::Pong(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

/// Waits until `cond` on the started workspace holds, checking again at each of its changes;
/// fails the test after the deadline.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let ws = STARTED.with(|s| s.borrow().clone()).expect("a workspace was started");
    let r = tokio::time::timeout(DEADLINE, async {
        loop {
            // Listen before checking, so that a change made meanwhile still wakes us.
            let mut changed = pin!(ws.changed());
            changed.as_mut().enable();
            if cond() {
                return;
            }
            changed.await;
        }
    })
    .await;
    assert!(r.is_ok(), "timed out waiting until {what}");
}

/// A file under the repository's `tests/fixtures/`; a missing one fails the test, naming the path.
pub fn fixture(rel: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + rel;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Same keys (recursively) and the same JSON kinds as `expected`; arrays compare first items.
pub fn assert_same_shape(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            let mut ak: Vec<&String> = a.keys().collect();
            let mut ek: Vec<&String> = e.keys().collect();
            ak.sort();
            ek.sort();
            assert_eq!(ak, ek, "keys differ at {path}");
            for (k, v) in e {
                assert_same_shape(&a[k], v, &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.is_empty(), e.is_empty(), "emptiness differs at {path}");
            if let (Some(x), Some(y)) = (a.first(), e.first()) {
                assert_same_shape(x, y, &format!("{path}[0]"));
            }
        }
        (a, e) => assert_eq!(kind(a), kind(e), "kind differs at {path}: {a} vs {e}"),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

//! A fake OpenAI Chat Completions server on loopback (`POST /v1/chat/completions`, plain and
//! streamed), shaped like the documented responses (our samples: `tests/fixtures/openai/`).
//!
//! It owns the recorded requests, the queue of errors to serve next, and the reply to give.
//! Without a fixed reply it answers deterministically from the request (a short Markdown answer
//! with three numbered steps, naming the first knowledge-base article title it can find).

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};

/// Longest stretch of request text the default answer may repeat.
const MAX_ECHO_CHARS: usize = 60;
/// Words per streamed content chunk.
const WORDS_PER_CHUNK: usize = 3;

/// Behaviour switches of the fake.
#[derive(Clone, Debug, Default)]
pub struct FakeOpenAiOptions {
    /// Delay before every response.
    pub latency: Duration,
    /// Fixed reply; `None` => a deterministic answer built from the request.
    pub reply: Option<String>,
}

/// Handle to a running fake; clones share it.
#[derive(Clone)]
pub struct FakeOpenAi {
    inner: Arc<Inner>,
}

struct Inner {
    latency: Duration,
    port: u16,
    state: Mutex<State>,
    server: Mutex<Option<ServerHandle>>,
}

/// An OpenAI error response to serve, with the retry headers the real API may send.
#[derive(Clone, Debug)]
pub struct FakeFailure {
    pub status: u16,
    pub code: String,
    /// `retry-after` header value, as written (seconds, possibly fractional, or an HTTP date).
    pub retry_after: Option<String>,
    /// `retry-after-ms` header.
    pub retry_after_ms: Option<u64>,
    /// `x-should-retry` header.
    pub should_retry: Option<bool>,
}

impl FakeFailure {
    pub fn new(status: u16, code: &str) -> FakeFailure {
        FakeFailure {
            status,
            code: code.to_string(),
            retry_after: None,
            retry_after_ms: None,
            should_retry: None,
        }
    }
}

/// What the next request gets instead of a normal answer.
enum Injected {
    Failure(FakeFailure),
    /// Wait this long before answering normally (longer than the client's timeout: a hang).
    Delay(Duration),
    /// Serve these bytes as the `text/event-stream` body (a recorded stream).
    RawStream(Bytes),
    /// Stream this many content chunks, then an error event, then end.
    BreakStream(usize),
    /// Accept the request and close the connection without answering.
    Drop,
}

/// The usage the fake reported for one answered request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedUsage {
    /// Index of the request in [`FakeOpenAi::requests`].
    pub request: usize,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Default)]
struct State {
    requests: Vec<Value>,
    usage: Vec<RecordedUsage>,
    headers: Vec<Vec<(String, String)>>,
    arrived: Vec<std::time::Instant>,
    injected: VecDeque<Injected>,
    reply: Option<String>,
    chunk_delay: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock must not take the whole fake down with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeOpenAi {
    /// Starts the server on `127.0.0.1:0` in the current actix system.
    pub async fn start(opts: FakeOpenAiOptions) -> std::io::Result<FakeOpenAi> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            latency: opts.latency,
            port,
            state: Mutex::new(State { reply: opts.reply, ..State::default() }),
            server: Mutex::new(None),
        });
        let data = web::Data::from(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(32 << 20))
                .route("/v1/chat/completions", web::post().to(chat_completions))
                .route("/v1/models", web::get().to(models))
                .default_service(web::to(not_found))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        *lock(&inner.server) = Some(server.handle());
        actix_rt::spawn(server);
        tracing::debug!(port, "fake openai started");
        Ok(FakeOpenAi { inner })
    }

    /// e.g. `http://127.0.0.1:1234/v1`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.inner.port)
    }

    /// JSON bodies of the chat completion requests received, in order.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.inner.state).requests.clone()
    }

    /// The usage reported for each request answered with a completion (not errors), in order.
    /// Tokens are counted as about four characters each (see [`count_tokens`]).
    pub fn usage(&self) -> Vec<RecordedUsage> {
        lock(&self.inner.state).usage.clone()
    }

    /// Headers (lower-case names) of every chat completion request received, in order.
    pub fn request_headers(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.inner.state).headers.clone()
    }

    /// When each chat completion request arrived, in order.
    pub fn arrival_times(&self) -> Vec<std::time::Instant> {
        lock(&self.inner.state).arrived.clone()
    }

    /// The next request gets an OpenAI error object with this status (queued).
    pub fn fail_next(&self, status: u16, error_code: &str, retry_after_secs: Option<u64>) {
        let mut f = FakeFailure::new(status, error_code);
        f.retry_after = retry_after_secs.map(|s| s.to_string());
        self.fail_next_with(f);
    }

    /// The next request gets this error response (queued with the other injections).
    pub fn fail_next_with(&self, failure: FakeFailure) {
        lock(&self.inner.state).injected.push_back(Injected::Failure(failure));
    }

    /// The next request is answered normally, but only after `delay`.
    pub fn delay_next(&self, delay: Duration) {
        lock(&self.inner.state).injected.push_back(Injected::Delay(delay));
    }

    /// The next streamed request gets `sse` verbatim as its body (e.g. a recorded stream).
    pub fn stream_next_raw(&self, sse: impl Into<Bytes>) {
        lock(&self.inner.state).injected.push_back(Injected::RawStream(sse.into()));
    }

    /// The next streamed request breaks after `chunks` content chunks with an error event.
    pub fn break_next_stream_after(&self, chunks: usize) {
        lock(&self.inner.state).injected.push_back(Injected::BreakStream(chunks));
    }

    /// The next request's connection is closed without a response.
    pub fn drop_next(&self) {
        lock(&self.inner.state).injected.push_back(Injected::Drop);
    }

    /// Pause between streamed chunks, so a stream takes a while like a real one.
    pub fn set_chunk_delay(&self, delay: Duration) {
        lock(&self.inner.state).chunk_delay = delay;
    }

    pub fn set_reply(&self, reply: Option<String>) {
        lock(&self.inner.state).reply = reply;
    }

    pub async fn stop(&self) {
        let handle = lock(&self.inner.server).take();
        if let Some(handle) = handle {
            handle.stop(false).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> String {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}}).to_string()
}

fn error_response(status: StatusCode, body: String) -> HttpResponse {
    let mut resp = HttpResponse::build(status);
    add_common_headers(&mut resp);
    resp.content_type("application/json").body(body)
}

fn add_common_headers(resp: &mut actix_web::HttpResponseBuilder) {
    resp.insert_header(("x-request-id", format!("req_{}", hex(32))))
        .insert_header(("openai-version", "2020-10-01"))
        .insert_header(("openai-processing-ms", "42"))
        .insert_header(("x-ratelimit-limit-requests", "10000"))
        .insert_header(("x-ratelimit-remaining-requests", "9999"))
        .insert_header(("x-ratelimit-reset-requests", "6ms"))
        .insert_header(("x-ratelimit-limit-tokens", "30000000"))
        .insert_header(("x-ratelimit-remaining-tokens", "29999000"))
        .insert_header(("x-ratelimit-reset-tokens", "2ms"));
}

fn has_api_key(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty())
}

fn unauthorized() -> HttpResponse {
    error_response(
        StatusCode::UNAUTHORIZED,
        error_body(
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        ),
    )
}

/// The error `type` OpenAI pairs with a code (or, failing that, a status).
fn error_kind(status: u16, code: &str) -> &'static str {
    match code {
        "insufficient_quota" => "insufficient_quota",
        "rate_limit_exceeded" => "requests",
        "slow_down" => "rate_limit_error",
        "server_error" => "server_error",
        "server_is_overloaded" => "service_unavailable_error",
        _ => match status {
            429 => "rate_limit_error",
            500..=599 => "server_error",
            _ => "invalid_request_error",
        },
    }
}

fn error_message(code: &str) -> &'static str {
    match code {
        "rate_limit_exceeded" => "Rate limit reached for gpt-4o-mini in organization org-sandbox on requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
        "insufficient_quota" => "You exceeded your current quota, please check your plan and billing details.",
        "context_length_exceeded" => "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
        "server_is_overloaded" => "The server is overloaded or not ready yet.",
        "invalid_api_key" => "Incorrect API key provided.",
        _ => "The server had an error while processing your request. Sorry about that!",
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    let message = format!("Invalid URL ({} {})", req.method(), req.path());
    error_response(StatusCode::NOT_FOUND, error_body(&message, "invalid_request_error", None, None))
}

async fn models(req: HttpRequest) -> HttpResponse {
    if !has_api_key(&req) {
        return unauthorized();
    }
    let body = json!({
        "object": "list",
        "data": [
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"}
        ]
    });
    let mut resp = HttpResponse::Ok();
    add_common_headers(&mut resp);
    resp.content_type("application/json").body(body.to_string())
}

async fn chat_completions(req: HttpRequest, body: web::Bytes, data: web::Data<Inner>) -> HttpResponse {
    let inner = data.into_inner();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let request_index = {
        let mut st = lock(&inner.state);
        st.headers.push(headers);
        st.arrived.push(std::time::Instant::now());
        parsed.as_ref().map(|v| {
            st.requests.push(v.clone());
            st.requests.len() - 1
        })
    };
    if !inner.latency.is_zero() {
        tokio::time::sleep(inner.latency).await;
    }
    if !has_api_key(&req) {
        return unauthorized();
    }
    let injected = lock(&inner.state).injected.pop_front();
    let mut raw_stream = None;
    let mut break_after = None;
    match injected {
        Some(Injected::Failure(f)) => {
            tracing::debug!(status = f.status, "fake openai serving injected error");
            let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let param = (f.code == "context_length_exceeded").then_some("messages");
            let mut resp = HttpResponse::build(status);
            add_common_headers(&mut resp);
            if let Some(v) = &f.retry_after {
                resp.insert_header((header::RETRY_AFTER, v.clone()));
            }
            if let Some(ms) = f.retry_after_ms {
                resp.insert_header(("retry-after-ms", ms.to_string()));
            }
            if let Some(b) = f.should_retry {
                resp.insert_header(("x-should-retry", b.to_string()));
            }
            return resp.content_type("application/json").body(error_body(
                error_message(&f.code),
                error_kind(f.status, &f.code),
                param,
                Some(&f.code),
            ));
        }
        Some(Injected::Delay(d)) => tokio::time::sleep(d).await,
        Some(Injected::RawStream(bytes)) => raw_stream = Some(bytes),
        Some(Injected::BreakStream(n)) => break_after = Some(n),
        Some(Injected::Drop) => {
            tracing::debug!("fake openai dropping the connection");
            return HttpResponse::Ok().content_type("text/event-stream").streaming(
                futures_util::stream::once(async {
                    Err::<Bytes, _>(actix_web::error::ErrorInternalServerError("connection dropped"))
                }),
            );
        }
        None => {}
    }
    let Some(request) = parsed.filter(Value::is_object) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            error_body(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                "invalid_request_error",
                None,
                None,
            ),
        );
    };
    let Some(model) = request.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            error_body("you must provide a model parameter", "invalid_request_error", None, None),
        );
    };
    let messages = match request.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m.clone(),
        Some(Value::Array(_)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                error_body(
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                    "invalid_request_error",
                    Some("messages"),
                    Some("empty_array"),
                ),
            )
        }
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                error_body(
                    "Missing required parameter: 'messages'.",
                    "invalid_request_error",
                    Some("messages"),
                    Some("missing_required_parameter"),
                ),
            )
        }
    };

    let fixed = lock(&inner.state).reply.clone();
    let mut content = match (&fixed, response_format(&request)) {
        (Some(r), _) => r.clone(),
        (None, Format::Text) => default_answer(&messages),
        (None, Format::JsonObject) => json!({"answer": default_answer(&messages)}).to_string(),
        (None, Format::JsonSchema(schema)) => {
            schema_example(&schema, "", &default_answer(&messages)).to_string()
        }
    };
    let prompt_tokens = messages.iter().map(|m| count_tokens(&message_text(m))).sum::<u64>().max(1);
    let limit =
        ["max_completion_tokens", "max_tokens"].iter().find_map(|k| request.get(*k).and_then(Value::as_u64));
    let mut finish = "stop";
    if let Some(limit) = limit {
        if count_tokens(&content) > limit {
            content = content.chars().take((limit * 4) as usize).collect();
            finish = "length";
        }
    }
    let completion_tokens = count_tokens(&content);
    if let Some(index) = request_index {
        lock(&inner.state).usage.push(RecordedUsage { request: index, prompt_tokens, completion_tokens });
    }
    let usage = J::O(vec![
        ("prompt_tokens", J::V(json!(prompt_tokens))),
        ("completion_tokens", J::V(json!(completion_tokens))),
        ("total_tokens", J::V(json!(prompt_tokens + completion_tokens))),
        ("completion_tokens_details", J::V(json!({"reasoning_tokens": 0}))),
    ]);
    let meta = Meta {
        id: format!("chatcmpl-{}", alnum(29)),
        created: now_secs(),
        model: model.to_string(),
        fingerprint: format!("fp_{}", hex(10)),
    };
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    tracing::debug!(stream, completion_tokens, "fake openai completion");
    if stream {
        let include_usage =
            request.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
        let mut events = match raw_stream {
            Some(bytes) => vec![bytes],
            None => sse_events(&meta, &content, finish, include_usage.then_some(usage)),
        };
        if let Some(n) = break_after {
            events.truncate(n + 1);
            events.push(Bytes::from(format!(
                "data: {}\n\n",
                json!({"error": {"message": error_message("server_error"), "type": "server_error", "param": null, "code": "server_error"}})
            )));
        }
        let delay = lock(&inner.state).chunk_delay;
        let mut resp = HttpResponse::Ok();
        add_common_headers(&mut resp);
        let body =
            futures_util::stream::unfold((events.into_iter(), true), move |(mut it, first)| async move {
                let next = it.next()?;
                if !first && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<Bytes, actix_web::Error>(next), (it, false)))
            });
        return resp
            .content_type("text/event-stream; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .streaming(body);
    }
    let n = request.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 8);
    let choices = (0..n)
        .map(|i| {
            J::O(vec![
                ("index", J::V(json!(i))),
                (
                    "message",
                    J::O(vec![
                        ("role", J::V(json!("assistant"))),
                        ("content", J::V(json!(content))),
                        ("refusal", J::V(Value::Null)),
                    ]),
                ),
                ("logprobs", J::V(Value::Null)),
                ("finish_reason", J::V(json!(finish))),
            ])
        })
        .collect();
    let body = J::O(vec![
        ("id", J::V(json!(meta.id))),
        ("object", J::V(json!("chat.completion"))),
        ("created", J::V(json!(meta.created))),
        ("model", J::V(json!(meta.model))),
        ("choices", J::A(choices)),
        ("usage", usage),
        ("system_fingerprint", J::V(json!(meta.fingerprint))),
    ]);
    let mut resp = HttpResponse::Ok();
    add_common_headers(&mut resp);
    resp.content_type("application/json").body(body.render())
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

/// The `data:` events of a streamed completion, ending with `data: [DONE]`.
fn sse_events(meta: &Meta, content: &str, finish: &str, usage: Option<J>) -> Vec<Bytes> {
    let chunk = |choices: J, usage: Option<J>| -> Bytes {
        let mut fields = vec![
            ("id", J::V(json!(meta.id))),
            ("object", J::V(json!("chat.completion.chunk"))),
            ("created", J::V(json!(meta.created))),
            ("model", J::V(json!(meta.model))),
            ("system_fingerprint", J::V(json!(meta.fingerprint))),
            ("choices", choices),
        ];
        if let Some(u) = usage {
            fields.push(("usage", u));
        }
        Bytes::from(format!("data: {}\n\n", J::O(fields).render()))
    };
    let choice = |delta: J, finish: Option<&str>| -> J {
        J::A(vec![J::O(vec![
            ("index", J::V(json!(0))),
            ("delta", delta),
            ("logprobs", J::V(Value::Null)),
            ("finish_reason", J::V(json!(finish))),
        ])])
    };
    let mut events = vec![chunk(
        choice(
            J::O(vec![
                ("role", J::V(json!("assistant"))),
                ("content", J::V(json!(""))),
                ("refusal", J::V(Value::Null)),
            ]),
            None,
        ),
        None,
    )];
    for piece in content_pieces(content) {
        events.push(chunk(choice(J::O(vec![("content", J::V(json!(piece)))]), None), None));
    }
    events.push(chunk(choice(J::O(vec![]), Some(finish)), None));
    if let Some(u) = usage {
        events.push(chunk(J::A(vec![]), Some(u)));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Splits content into pieces of a few words; concatenated they give the content back.
fn content_pieces(content: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut words = 0;
    for word in content.split_inclusive(char::is_whitespace) {
        current.push_str(word);
        if !word.trim().is_empty() {
            words += 1;
        }
        if words >= WORDS_PER_CHUNK {
            pieces.push(std::mem::take(&mut current));
            words = 0;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

// ---------------------------------------------------------------------------------------------
// Ordered JSON (the recorded responses list keys in this order; serde_json sorts them)

enum J {
    O(Vec<(&'static str, J)>),
    A(Vec<J>),
    V(Value),
}

impl J {
    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            J::O(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(*k).to_string());
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
            J::A(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            J::V(v) => out.push_str(&v.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

enum Format {
    Text,
    JsonObject,
    JsonSchema(Value),
}

fn response_format(request: &Value) -> Format {
    let rf = request.get("response_format");
    match rf.and_then(|r| r.get("type")).and_then(Value::as_str) {
        Some("json_object") => Format::JsonObject,
        Some("json_schema") => Format::JsonSchema(
            rf.and_then(|r| r.pointer("/json_schema/schema"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"})),
        ),
        _ => Format::Text,
    }
}

/// A value matching `schema`: the answer text for answer-like string fields, else the simplest
/// valid value (first enum value, 0, false, one array item).
fn schema_example(schema: &Value, name: &str, answer: &str) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let pick = options
                .iter()
                .find(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .or(options.first());
            if let Some(o) = pick {
                return schema_example(o, name, answer);
            }
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => {
            ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null")
        }
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut o = serde_json::Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    o.insert(k.clone(), schema_example(v, k, answer));
                }
            }
            Value::Object(o)
        }
        "array" => {
            let item = schema.get("items").cloned().unwrap_or(json!({"type": "string"}));
            json!([schema_example(&item, name, answer)])
        }
        "integer" | "number" => json!(0),
        "boolean" => json!(false),
        "null" => Value::Null,
        _ => {
            let n = name.to_ascii_lowercase();
            let answer_like = ["answer", "reply", "text", "message", "response", "content", "steps"]
                .iter()
                .any(|w| n.contains(w));
            if answer_like || name.is_empty() {
                json!(answer)
            } else {
                json!("other")
            }
        }
    }
}

/// The text of a message's `content` (a string or an array of parts).
fn message_text(m: &Value) -> String {
    match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Roughly four characters per token, as the real tokenizers average on English.
pub fn count_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The deterministic default answer.
fn default_answer(messages: &[Value]) -> String {
    let title = find_article_title(messages);
    match title {
        Some(t) => format!(
            "Thanks for the details. Based on our guide **{t}**, try these steps:\n\n\
             1. Follow the first steps in **{t}** and note anything that looks different on your machine.\n\
             2. Quit the affected app completely, restart it (or your laptop), and sign in again.\n\
             3. If it still fails, reply in this thread with the exact error message and when it started."
        ),
        None => {
            "Thanks for the details. Here are a few steps that usually help:\n\n\
                 1. Quit the affected app completely, then reopen it and sign in again.\n\
                 2. Restart your laptop and check that you are on the company network or VPN.\n\
                 3. If it still fails, reply in this thread with the exact error message and when it started."
                .to_string()
        }
    }
}

/// The first knowledge-base article title in system/developer/user messages: an explicit
/// `Title:`/`Article:`/`KB:` line, else a Markdown heading inside a knowledge section.
fn find_article_title(messages: &[Value]) -> Option<String> {
    let texts: Vec<String> = messages
        .iter()
        .filter(|m| matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer" | "user")))
        .map(message_text)
        .collect();
    for text in &texts {
        for line in text.lines() {
            let l = line.trim().trim_start_matches(['-', '*', '>', ' ']);
            let lower = l.to_ascii_lowercase();
            for prefix in ["title:", "article:", "kb article:", "kb:", "knowledge base article:"] {
                if lower.starts_with(prefix) {
                    if let Some(t) = clean_title(&l[prefix.len()..]) {
                        return Some(t);
                    }
                }
            }
            if let Some(rest) = lower.strip_prefix("[kb") {
                if let Some(end) = rest.find(']') {
                    // `[KB-12] Title` or `[kb] Title`
                    if let Some(t) = clean_title(&l[3 + end + 1..]) {
                        return Some(t);
                    }
                }
            }
        }
    }
    for text in &texts {
        let mut in_knowledge = false;
        for line in text.lines() {
            let l = line.trim();
            let lower = l.to_ascii_lowercase();
            let is_heading = l.starts_with('#');
            if lower.contains("knowledge") || lower.contains("kb article") {
                in_knowledge = true;
                if is_heading {
                    continue;
                }
            }
            if in_knowledge && is_heading {
                if let Some(t) = clean_title(l.trim_start_matches('#')) {
                    return Some(t);
                }
            }
        }
    }
    None
}

fn clean_title(raw: &str) -> Option<String> {
    let t = raw
        .trim()
        .trim_matches(|c: char| matches!(c, '*' | '`' | '"' | '\'' | '_' | ':' | '#') || c.is_whitespace());
    if t.is_empty() {
        return None;
    }
    let mut out: String = t.chars().take(MAX_ECHO_CHARS).collect();
    if out.len() < t.len() {
        out = out.trim_end().to_string();
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn pick(set: &[u8], n: usize) -> String {
    (0..n).map(|_| char::from(set[fastrand::usize(..set.len())])).collect()
}

fn alnum(n: usize) -> String {
    pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", n)
}

fn hex(n: usize) -> String {
    pick(b"0123456789abcdef", n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_pieces_join_back_to_the_content() {
        let text = "Thanks for the details.\n\n1. Quit the app, then reopen it.";
        let pieces = content_pieces(text);
        assert!(pieces.len() > 2);
        assert_eq!(pieces.concat(), text);
    }

    #[test]
    fn article_title_comes_from_an_explicit_title_line() {
        let messages = vec![
            json!({"role": "system", "content": "# Instructions\nBe brief.\n\nKnowledge base:\nTitle: VPN: GlobalProtect won't connect\nSteps..."}),
            json!({"role": "user", "content": "my vpn is broken"}),
        ];
        assert_eq!(find_article_title(&messages).as_deref(), Some("VPN: GlobalProtect won't connect"));
    }

    #[test]
    fn article_title_comes_from_a_heading_in_the_knowledge_section() {
        let messages = vec![
            json!({"role": "system", "content": "# Rules\nx\n## Knowledge base\n### Reset your Okta MFA\nbody"}),
        ];
        assert_eq!(find_article_title(&messages).as_deref(), Some("Reset your Okta MFA"));
        let none = vec![json!({"role": "system", "content": "# Rules\nBe helpful."})];
        assert_eq!(find_article_title(&none), None);
    }

    #[test]
    fn schema_example_fills_answer_fields_and_enums() {
        let schema = json!({"type": "object", "properties": {
            "category": {"type": "string", "enum": ["technical", "access"]},
            "answer": {"type": "string"},
            "confidence": {"type": "number"},
            "steps": {"type": "array", "items": {"type": "string"}}
        }});
        let v = schema_example(&schema, "", "A");
        assert_eq!(v, json!({"category": "technical", "answer": "A", "confidence": 0, "steps": ["A"]}));
    }
}

//! A real HTTP/1.1 bot for tests: a programmable async handler on a free
//! loopback port that records every request it receives.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::Result;

/// One HTTP request as the bot received it.
#[derive(Debug, Clone)]
pub struct BotRequest {
    /// `POST`, `GET`, …
    pub method: String,
    /// Path and query, e.g. `/bot?x=1`.
    pub path: String,
    /// Header names (lower case) and values in arrival order, so tests can
    /// assert on what the connector sent (Content-Type, User-Agent…).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The body parsed as JSON; `Value::Null` when it is not JSON, so
    /// `request.json["body"]` works without unwrapping.
    pub json: Value,
}

impl BotRequest {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The Content-Type header.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }
}

/// What the bot answers: status, content type and body, after a delay.
#[derive(Debug, Clone)]
pub struct BotReply {
    /// HTTP status code.
    pub status: u16,
    /// The Content-Type header; none is sent when `None`.
    pub content_type: Option<String>,
    /// The response body.
    pub body: Vec<u8>,
    /// How long to wait before answering (a slow bot, a timeout test).
    pub delay: Duration,
    /// Other headers, e.g. `Location` for a redirect.
    pub headers: Vec<(String, String)>,
}

impl BotReply {
    /// 200 with `application/json` and `value` as the body.
    pub fn json(value: Value) -> Self {
        BotReply {
            status: 200,
            content_type: Some("application/json".to_owned()),
            body: value.to_string().into_bytes(),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// A status with an empty body and no content type (204, 500, …).
    pub fn status(status: u16) -> Self {
        BotReply {
            status,
            content_type: None,
            body: Vec::new(),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// Any status, content type and body, e.g. invalid JSON labelled JSON.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        BotReply {
            status,
            content_type: Some(content_type.to_owned()),
            body: body.into(),
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    /// The same reply with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same reply, sent after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// The reference PHP echo bot's answer to a request JSON:
/// `{"body": "Did you say <body>?"}` (PHP prints a missing body as "").
pub fn echo_reply(request: &Value) -> BotReply {
    let received = match request.get("body") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    BotReply::json(json!({ "body": format!("Did you say {received}?") }))
}

type Handler =
    Arc<dyn Fn(BotRequest) -> Pin<Box<dyn Future<Output = BotReply> + Send>> + Send + Sync>;

/// A running HTTP bot. Dropping it stops it (port closed, connections cut).
pub struct BotServer {
    /// Where it listens.
    address: SocketAddr,
    /// Every request received, in arrival order (recorded before the
    /// handler runs, so a request that times out is still seen).
    requests: Arc<Mutex<Vec<BotRequest>>>,
    /// The number of recorded requests, to wait on without polling.
    request_count: watch::Receiver<usize>,
    /// The accept loop; aborting it drops the listener and every connection.
    server: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BotServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl BotServer {
    /// Serves `handler` on a free port of 127.0.0.1.
    ///
    /// ```no_run
    /// # async fn demo() -> xmpp_lambda_tests::Result<()> {
    /// use xmpp_lambda_tests::{BotReply, BotServer};
    /// let bot = BotServer::start(|request| async move {
    ///     BotReply::json(serde_json::json!({ "body": request.json["body"] }))
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn start<F, Fut>(handler: F) -> Result<Self>
    where
        F: Fn(BotRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = BotReply> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |request| Box::pin(handler(request)));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count_sender, request_count) = watch::channel(0);
        let recorder = Recorder {
            requests: Arc::clone(&requests),
            count: Arc::new(count_sender),
        };
        let server = tokio::spawn(accept_loop(listener, handler, recorder));
        Ok(BotServer {
            address,
            requests,
            request_count,
            server: Some(server),
        })
    }

    /// A bot answering exactly like the reference PHP echo bot.
    pub async fn echo() -> Result<Self> {
        Self::start(|request: BotRequest| async move { echo_reply(&request.json) }).await
    }

    /// The bot's URL, e.g. `http://127.0.0.1:41234/bot`.
    pub fn url(&self) -> String {
        format!("http://{}/bot", self.address)
    }

    /// The listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<BotRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until at least `count` requests arrived; returns them all.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<BotRequest>> {
        let mut seen = self.request_count.clone();
        let deadline = Instant::now() + timeout;
        loop {
            if *seen.borrow_and_update() >= count {
                return Ok(self.requests());
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, seen.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err(format!(
                        "the bot got {} requests within {timeout:?}, expected {count}",
                        self.requests().len()
                    )
                    .into());
                }
            }
        }
    }

    /// Stops serving and returns once the port is closed: it refuses
    /// connections from now on (a bot that is down).
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            // The listener is closed when the aborted task is dropped.
            let _ = server.await;
        }
    }
}

impl Drop for BotServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Where requests are recorded.
#[derive(Clone)]
struct Recorder {
    /// The shared request list.
    requests: Arc<Mutex<Vec<BotRequest>>>,
    /// Bumped after each recorded request.
    count: Arc<watch::Sender<usize>>,
}

impl Recorder {
    fn record(&self, request: BotRequest) {
        let count = {
            let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            requests.push(request);
            requests.len()
        };
        self.count.send_replace(count);
    }
}

async fn accept_loop(listener: TcpListener, handler: Handler, recorder: Recorder) {
    // Connections live in this set: when the loop is aborted, dropping the
    // set aborts them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = Arc::clone(&handler);
                let recorder = recorder.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        serve_one(request, Arc::clone(&handler), recorder.clone())
                    });
                    // A client hanging up mid-request is not the bot's problem.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_one(
    request: Request<Incoming>,
    handler: Handler,
    recorder: Recorder,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().to_string();
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => return Ok(plain_status(StatusCode::BAD_REQUEST)),
    };
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let received = BotRequest {
        method,
        path,
        headers,
        body,
        json,
    };
    recorder.record(received.clone());

    let reply = handler(received).await;
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(content_type) = reply.content_type
        && let Ok(value) = hyper::header::HeaderValue::from_str(&content_type)
    {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

fn plain_status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_like_the_php_example() {
        let reply = echo_reply(&json!({ "body": "hello", "to": "bot.localhost" }));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type.as_deref(), Some("application/json"));
        let body: Value = serde_json::from_slice(&reply.body).expect("JSON body");
        assert_eq!(body, json!({ "body": "Did you say hello?" }));

        let reply = echo_reply(&json!({ "kind": "message" }));
        let body: Value = serde_json::from_slice(&reply.body).expect("JSON body");
        assert_eq!(body, json!({ "body": "Did you say ?" }));
    }
}

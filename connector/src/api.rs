//! The connector's HTTP API (DESIGN §8), off unless `COMPONENT_API_LISTEN`
//! is set: health for orchestrators, readiness for load balancers and
//! standby setups, metrics for Prometheus, and `POST /v1/send` for bots
//! that push (§6).
//!
//! Plain HTTP/1.1 on hyper. It is meant for loopback or a private network
//! behind a proxy; `/v1/send` needs a bearer token all the same.
//!
//! Whatever reaches it, it stays answerable and leaves the connector its
//! file descriptors: at most [`connection_cap`] connections are open at
//! once (one more is closed as soon as it is accepted), each must send a
//! request head within [`HEADER_READ_TIMEOUT`] (an idle kept-alive one
//! too), of at most [`MAX_HEAD_BYTES`], and a `/v1/send` body within
//! [`BODY_READ_TIMEOUT`], of at most [`MAX_SEND_BODY`].

use crate::health::Health;
use crate::metrics::{self, Metrics};
use crate::options::{OptionDoc, OptionError, Secret, Sources, invalid};
use crate::push::{PushError, Pusher};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xmpp_lambda_component::Shutdown;

/// The largest `/v1/send` body: an outbound message is at most 64 KiB of
/// text, and a bigger body is refused before it is read whole.
pub const MAX_SEND_BODY: usize = 64 * 1024;
/// The shortest bearer token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_CHARS: usize = 32;
/// How long `/v1/send` waits for the link to flush its stanzas.
const WRITE_WAIT: Duration = Duration::from_secs(10);
/// What `Retry-After` says while the link is down, in seconds: about one
/// reconnect attempt.
const RETRY_AFTER_SECONDS: u32 = 5;
/// How long open API connections get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a client has to send a request head, from its connection (or
/// its previous answer) on: a connection that trickles its head or sits
/// idle is closed then, and cannot hold one of the few API connections
/// for long. Health checks and scrapers send their head at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `/v1/send` body may take to arrive once its head has: `408`
/// after that.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and header fields): `431`
/// beyond it. hyper also refuses more than 100 header fields (`431`).
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// hyper's read buffer per connection: at least its own minimum (8 KiB)
/// and room for a whole head.
const READ_BUFFER_BYTES: usize = 16 * 1024;
/// The most API connections open at once, however many descriptors the
/// process has: the API serves a health checker, a scraper and a few
/// pushing bots.
pub const MAX_CONNECTIONS: usize = 128;
/// How often the API says it is refusing connections at its cap.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The most API connections open at once given the process's open-file
/// limit: at most a quarter of it, so the link, up to
/// [`crate::dispatch::MAX_IN_FLIGHT`] connections to bots and the SQS
/// client always find descriptors, and at most [`MAX_CONNECTIONS`].
pub fn connection_cap(open_file_limit: u64) -> usize {
    usize::try_from(open_file_limit / 4)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS)
}

/// The API's options.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_API_LISTEN",
        aliases: &[],
        meaning: "ip:port of the connector's HTTP API (/healthz, /readyz, /metrics, /v1/send), \
                  e.g. 127.0.0.1:8780; plain HTTP: keep it on loopback",
        default: "off",
    },
    OptionDoc {
        name: "COMPONENT_API_TOKEN",
        aliases: &[],
        meaning: "bearer token for POST /v1/send, at least 32 characters (never logged)",
        default: "none, and /v1/send answers 404",
    },
];

/// The API's options (`COMPONENT_API_LISTEN`, `COMPONENT_API_TOKEN`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiOptions {
    /// Where the API listens; `None` keeps it off.
    pub listen: Option<SocketAddr>,
    /// The bearer token `/v1/send` requires; `None` turns `/v1/send` off.
    pub token: Option<Secret>,
}

impl ApiOptions {
    pub(crate) fn from_sources(sources: &Sources<'_>) -> Result<ApiOptions, OptionError> {
        let listen = match sources.get("COMPONENT_API_LISTEN") {
            None => None,
            Some(text) => Some(text.trim().parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "COMPONENT_API_LISTEN",
                    &text,
                    "an IP address and port, e.g. 127.0.0.1:8780",
                )
            })?),
        };
        let token = match sources.get("COMPONENT_API_TOKEN") {
            None => None,
            Some(token) if token.chars().count() < MIN_TOKEN_CHARS => {
                return Err(OptionError::InvalidSecret {
                    option: "COMPONENT_API_TOKEN",
                    expected: "at least 32 characters",
                });
            }
            Some(token) => Some(Secret::new(token)),
        };
        if token.is_some() && listen.is_none() {
            return Err(OptionError::Missing {
                option: "COMPONENT_API_LISTEN",
                what: "where the API listens, for the /v1/send that COMPONENT_API_TOKEN enables",
            });
        }
        Ok(ApiOptions { listen, token })
    }
}

/// What the API's handlers share.
pub struct Api {
    /// `/v1/send` is served only with a token.
    token: Option<Secret>,
    /// Writes pushed messages.
    pusher: Pusher,
    /// Answers `/readyz`.
    health: Health,
    /// Set once shutdown starts: pushes are refused from then on.
    shutdown: Shutdown,
    /// Answers `/metrics`, and counts pushes.
    metrics: Metrics,
}

impl Api {
    pub fn new(
        token: Option<Secret>,
        pusher: Pusher,
        health: Health,
        shutdown: Shutdown,
        metrics: Metrics,
    ) -> Api {
        Api {
            token,
            pusher,
            health,
            shutdown,
            metrics,
        }
    }
}

/// Binds the API's port; a start-up error when it is taken.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the API until shutdown, at most `max_connections` connections
/// at once, then gives open connections a moment to finish. Returning
/// drops every handle to the link's writer it held.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    max_connections: usize,
    mut shutdown: Shutdown,
) {
    let api = Arc::new(api);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, send = api.token.is_some(), max_connections, "API listening");
    }
    let builder = http_builder();
    let slots = Arc::new(Semaphore::new(max_connections));
    let mut refusals = Refusals::default();
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: keep serving.
                    warn!(%error, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.recv() => break,
        };
        // At the cap the new connection is closed at once: its descriptor
        // is free again, and the ones served go on. Slots come back as
        // slow or idle clients hit the header timeout.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            refusals.refused(max_connections);
            continue;
        };
        refusals.accepted();
        let connection = builder.serve_connection(TokioIo::new(stream), Routes(Arc::clone(&api)));
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                debug!(%peer, %error, "API connection ended");
            }
            drop(slot);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("API connections still open at shutdown; closing them");
    }
    connections.shutdown().await;
}

/// The HTTP/1.1 server settings of every API connection: the head's time
/// and size limits.
fn http_builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(READ_BUFFER_BYTES);
    builder
}

/// The API's routes as a hyper service. Each request's future is boxed:
/// the API is not on any hot path.
struct Routes(
    /// What every handler shares, one per listener.
    Arc<Api>,
);

impl hyper::service::Service<Request<Incoming>> for Routes {
    type Response = Answer;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let api = Arc::clone(&self.0);
        Box::pin(async move { Ok(route(&api, request).await) })
    }
}

/// Connections closed at the cap since the last report, and when the last
/// report was: the log says so at most once a minute, not per connection.
#[derive(Debug, Default)]
struct Refusals {
    /// Refused since the last report.
    count: u64,
    /// When the last report was made.
    reported_at: Option<Instant>,
}

impl Refusals {
    fn refused(&mut self, max_connections: usize) {
        self.count += 1;
        if self
            .reported_at
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL)
        {
            warn!(
                max_connections,
                refused = self.count,
                "API connection limit reached: new API connections are closed at once"
            );
            self.count = 0;
            self.reported_at = Some(Instant::now());
        }
    }

    fn accepted(&mut self) {
        if self.count > 0 {
            info!(refused = self.count, "API connections are accepted again");
            self.count = 0;
        }
    }
}

/// Serves one connection as the API does (tests drive it over an
/// in-memory pipe).
#[cfg(test)]
async fn serve_one<I>(io: I, api: &Arc<Api>) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    http_builder()
        .serve_connection(TokioIo::new(io), Routes(Arc::clone(api)))
        .await
}

type Answer = Response<Full<Bytes>>;

/// Picks the handler for a request.
async fn route(api: &Api, request: Request<Incoming>) -> Answer {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => json_answer(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/readyz") => readyz(api),
        (&Method::GET, "/metrics") => {
            let mut answer = Response::new(Full::new(Bytes::from(api.metrics.encode())));
            answer.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            answer
        }
        (&Method::POST, "/v1/send") if api.token.is_some() => send(api, request).await,
        (_, "/healthz" | "/readyz" | "/metrics") => method_not_allowed("GET"),
        (_, "/v1/send") if api.token.is_some() => method_not_allowed("POST"),
        _ => error_answer(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// `200` while the connector can serve, else `503` with the reason.
fn readyz(api: &Api) -> Answer {
    match api.health.readiness() {
        Ok(()) => json_answer(StatusCode::OK, &json!({"ready": true})),
        Err(reason) => json_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"ready": false, "reason": reason}),
        ),
    }
}

/// `POST /v1/send`: one outbound message, or `{"messages": [...]}`.
async fn send(api: &Api, request: Request<Incoming>) -> Answer {
    if !authorized(api.token.as_ref(), request.headers().get(AUTHORIZATION)) {
        let mut answer = error_answer(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        answer
            .headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return answer;
    }
    // A declared length over the limit is refused before a byte of the
    // body is read; a chunked body is cut where it passes the limit.
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_SEND_BODY as u64) {
        return closing(too_large());
    }
    let body = Limited::new(request.into_body(), MAX_SEND_BODY).collect();
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, body).await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            return closing(too_large());
        }
        Ok(Err(error)) => {
            debug!(%error, "reading a /v1/send body");
            return closing(error_answer(
                StatusCode::BAD_REQUEST,
                "the body could not be read",
            ));
        }
        Err(_) => {
            return closing(error_answer(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    let (messages, listed) = match messages_of(&body) {
        Ok(messages) => messages,
        Err(reason) => return error_answer(StatusCode::BAD_REQUEST, &reason),
    };
    let counted = messages.len() as u64;
    let pushes = &api.metrics.pushes;
    if api.shutdown.is_shutdown() {
        pushes.http_unavailable.inc_by(counted);
        return unavailable("the connector is shutting down");
    }
    let checked = match api.pusher.check(&messages, listed) {
        Ok(checked) => checked,
        Err(error) => {
            pushes.http_refused.inc_by(counted);
            info!(%error, "pushed message refused");
            return error_answer(StatusCode::BAD_REQUEST, &error.to_string());
        }
    };
    match api.pusher.write(&checked, WRITE_WAIT).await {
        Ok(()) => {
            pushes.http_sent.inc_by(counted);
            debug!(messages = checked.stanzas.len(), "pushed messages written");
            json_answer(StatusCode::ACCEPTED, &json!({"ids": checked.ids()}))
        }
        Err(error @ (PushError::LinkDown(_) | PushError::NotWritten(_))) => {
            pushes.http_unavailable.inc_by(counted);
            warn!(%error, "pushed messages not written");
            unavailable(&error.to_string())
        }
        Err(error @ PushError::Invalid(_)) => {
            error_answer(StatusCode::BAD_REQUEST, &error.to_string())
        }
    }
}

/// The outbound messages of a `/v1/send` body, and whether they came as a
/// list (so errors say which one).
fn messages_of(body: &[u8]) -> Result<(Vec<Value>, bool), String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| format!("the body is not valid JSON: {error}"))?;
    let Value::Object(object) = &value else {
        return Err(
            "the body must be a JSON object: one message, or {\"messages\": [...]}".to_owned(),
        );
    };
    match object.get("messages") {
        None => Ok((vec![value], false)),
        Some(Value::Array(messages)) if messages.is_empty() => {
            Err("\"messages\" is empty".to_owned())
        }
        Some(Value::Array(messages)) if messages.len() > xmpp_lambda_shared::MAX_SEND_MESSAGES => {
            Err(format!(
                "\"messages\" holds {} messages, more than {}",
                messages.len(),
                xmpp_lambda_shared::MAX_SEND_MESSAGES
            ))
        }
        Some(Value::Array(messages)) => Ok((messages.clone(), true)),
        Some(_) => Err("\"messages\" must be a list of messages".to_owned()),
    }
}

/// Whether the `Authorization` header carries the token. The comparison
/// takes the same time wherever the first wrong character is.
fn authorized(token: Option<&Secret>, header: Option<&HeaderValue>) -> bool {
    let (Some(token), Some(header)) = (token, header) else {
        return false;
    };
    // The scheme's name is case-insensitive (RFC 7235).
    let header = header.as_bytes();
    let scheme = b"bearer ";
    if header.len() <= scheme.len() || !header[..scheme.len()].eq_ignore_ascii_case(scheme) {
        return false;
    }
    header[scheme.len()..]
        .ct_eq(token.expose().as_bytes())
        .into()
}

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(value.to_string())));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}

fn error_answer(status: StatusCode, reason: &str) -> Answer {
    json_answer(status, &json!({ "error": reason }))
}

fn too_large() -> Answer {
    error_answer(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the body is larger than {MAX_SEND_BODY} bytes"),
    )
}

/// `answer`, closing the connection after it: the rest of the body was
/// not read, so nothing after it on the connection can be trusted.
fn closing(mut answer: Answer) -> Answer {
    answer
        .headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

fn unavailable(reason: &str) -> Answer {
    let mut answer = error_answer(StatusCode::SERVICE_UNAVAILABLE, reason);
    answer
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    answer
}

fn method_not_allowed(allowed: &'static str) -> Answer {
    let mut answer = error_answer(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    answer
        .headers_mut()
        .insert("allow", HeaderValue::from_static(allowed));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;

    const TOKEN: &str = "a-test-token-of-more-than-32-characters";

    /// An API with a token and a link that is down (pushes get 503).
    fn test_api() -> Arc<Api> {
        let (writer, _) = tokio::sync::mpsc::unbounded_channel();
        let (_, link) = tokio::sync::watch::channel(xmpp_lambda_component::LinkState::Connecting);
        let pusher = Pusher::new(
            "bot.example.com",
            writer,
            link.clone(),
            crate::rooms::RoomDirectory::default(),
        );
        let (_, shutdown) = xmpp_lambda_component::shutdown_channel();
        Arc::new(Api::new(
            Some(Secret::new(TOKEN)),
            pusher,
            Health::new(link, None),
            shutdown,
            Metrics::new(),
        ))
    }

    /// The client's end of one API connection served in the background,
    /// and the task serving it (which must not panic).
    fn connect() -> (DuplexStream, JoinHandle<()>) {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let api = test_api();
        let served = tokio::spawn(async move {
            let _ = serve_one(server, &api).await;
        });
        (client, served)
    }

    /// Everything the API writes until it closes the connection, and the
    /// time that took.
    async fn until_closed(client: &mut DuplexStream) -> (String, Duration) {
        let started = Instant::now();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    }

    /// The status codes of the answers in `text`.
    fn statuses(text: &str) -> Vec<u16> {
        text.match_indices("HTTP/1.1 ")
            .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
            .collect()
    }

    /// A connection that sends half a head, or trickles it, is closed at
    /// the header timeout without an answer.
    #[tokio::test(start_paused = true)]
    async fn a_head_that_never_ends_is_closed_at_the_header_timeout() {
        let (mut client, served) = connect();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        let (answer, waited) = until_closed(&mut client).await;
        assert_eq!((answer.as_str(), waited), ("", HEADER_READ_TIMEOUT));
        served.await.expect("no panic");

        let (client, served) = connect();
        let (mut reader, mut writer) = tokio::io::split(client);
        let trickle = tokio::spawn(async move {
            for byte in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: abcdefghijklmnopqrstuvwxyz" {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        let started = Instant::now();
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{answer:?}");
        assert_eq!(
            started.elapsed(),
            HEADER_READ_TIMEOUT,
            "a trickle does not extend it"
        );
        served.await.expect("no panic");
        trickle.abort();
    }

    /// A kept-alive connection that sends nothing more is closed at the
    /// header timeout after its answer.
    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_at_the_header_timeout() {
        let (mut client, served) = connect();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let (answer, waited) = until_closed(&mut client).await;
        assert_eq!(statuses(&answer), [200], "{answer}");
        assert_eq!(waited, HEADER_READ_TIMEOUT);
        served.await.expect("no panic");
    }

    fn send_head(extra: &str) -> String {
        format!(
            "POST /v1/send HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
             content-type: application/json\r\n{extra}\r\n"
        )
    }

    /// A body that comes too slowly gets 408 and the connection closed.
    #[tokio::test(start_paused = true)]
    async fn a_slow_body_gets_408() {
        let (mut client, served) = connect();
        let request = format!("{}{{\"to\"", send_head("content-length: 20\r\n"));
        client.write_all(request.as_bytes()).await.expect("write");
        let (answer, waited) = until_closed(&mut client).await;
        assert_eq!(statuses(&answer), [408], "{answer}");
        assert!(answer.contains("{\"error\":\"the body did not arrive within 10 s\"}"));
        assert_eq!(waited, BODY_READ_TIMEOUT);
        served.await.expect("no panic");
    }

    /// A declared length over the limit is refused before a byte of the
    /// body is sent; a chunked body is cut where it passes the limit.
    #[tokio::test(start_paused = true)]
    async fn bodies_over_the_limit_get_413_without_being_read() {
        let (mut client, served) = connect();
        let request = send_head("content-length: 1000000\r\n");
        client.write_all(request.as_bytes()).await.expect("write");
        let (answer, waited) = until_closed(&mut client).await;
        assert_eq!(statuses(&answer), [413], "{answer}");
        assert_eq!(
            waited,
            Duration::ZERO,
            "answered without waiting for the body"
        );
        assert!(answer.contains("connection: close"), "{answer}");
        served.await.expect("no panic");

        let (mut client, served) = connect();
        // One chunk claiming 256 MiB; 70 KiB of it sent.
        let mut request = send_head("transfer-encoding: chunked\r\n").into_bytes();
        request.extend_from_slice(b"10000000\r\n");
        request.extend_from_slice(&[b' '; 70 * 1024]);
        client.write_all(&request).await.expect("write");
        let (answer, _) = until_closed(&mut client).await;
        assert_eq!(statuses(&answer), [413], "{answer}");
        served.await.expect("no panic");
    }

    /// Heads over the size or field-count limit get 431.
    #[tokio::test(start_paused = true)]
    async fn heads_over_the_limits_get_431() {
        let long_field = format!("x-long: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        let many_fields = "x-field: 1\r\n".repeat(101);
        let long_target = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES));
        for head in [
            format!("GET /healthz HTTP/1.1\r\n{long_field}\r\n"),
            format!("GET /healthz HTTP/1.1\r\n{many_fields}\r\n"),
            format!("{long_target}\r\n"),
        ] {
            let (mut client, served) = connect();
            client.write_all(head.as_bytes()).await.expect("write");
            let (answer, _) = until_closed(&mut client).await;
            assert_eq!(statuses(&answer), [431], "{:.60}: {answer}", head);
            served.await.expect("no panic");
        }
    }

    /// Odd request lines get an answer (or a close), never a panic.
    #[tokio::test(start_paused = true)]
    async fn odd_request_lines_get_an_answer_not_a_panic() {
        let cases: [(&[u8], &[u16]); 14] = [
            (b"GET /healthz HTTP/1.1\r\n\r\n", &[200]),
            (
                b"GET http://elsewhere/healthz HTTP/1.1\r\nhost: x\r\n\r\n",
                &[200],
            ),
            (b"GET /healthz?x=%ff%00 HTTP/1.1\r\nhost: x\r\n\r\n", &[200]),
            (b"GET * HTTP/1.1\r\nhost: x\r\n\r\n", &[404]),
            (b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n", &[404]),
            (
                b"CONNECT example.com:443 HTTP/1.1\r\nhost: x\r\n\r\n",
                &[404],
            ),
            (b"DELETE /healthz HTTP/1.1\r\nhost: x\r\n\r\n", &[405]),
            (b"GET /%zz HTTP/1.1\r\nhost: x\r\n\r\n", &[404]),
            (b"GET /\xff\xfe HTTP/1.1\r\nhost: x\r\n\r\n", &[400]),
            (b"G\x00T / HTTP/1.1\r\n\r\n", &[400]),
            (b"GET / HTTP/2.0\r\n\r\n", &[400]),
            (
                b"GET /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
                &[400],
            ),
            (b"\r\n\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", &[200]),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", &[]),
        ];
        for (request, expected) in cases {
            let (mut client, served) = connect();
            client.write_all(request).await.expect("write");
            let (answer, waited) = until_closed(&mut client).await;
            assert_eq!(
                statuses(&answer),
                expected,
                "{:?}: {answer}",
                String::from_utf8_lossy(request)
            );
            assert!(waited <= HEADER_READ_TIMEOUT);
            served.await.expect("no panic");
        }
    }

    /// Any request head, however malformed, and any body: the connection
    /// ends (answered, or closed) within the read timeouts, and nothing
    /// panics.
    #[test]
    fn any_request_ends_without_a_panic() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, RngSeed, TestRunner};
        let bytes_or = |choices: &'static [&'static str]| {
            prop_oneof![
                3 => prop::sample::select(choices).prop_map(|s| s.as_bytes().to_vec()),
                1 => prop::collection::vec(any::<u8>(), 0..12),
            ]
        };
        let method = bytes_or(&["GET", "POST", "DELETE", "OPTIONS", "CONNECT", "PRI", "get"]);
        let target = bytes_or(&[
            "/healthz",
            "/readyz",
            "/metrics",
            "/v1/send",
            "*",
            "http://x/healthz",
            "/%ff",
            "//",
        ]);
        let version = bytes_or(&["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "HTTP/0.9"]);
        let header = (
            bytes_or(&[
                "host",
                "content-length",
                "transfer-encoding",
                "authorization",
                "connection",
                "expect",
            ]),
            bytes_or(&[
                "0",
                "10",
                "-1",
                "99999999999999999999",
                "chunked",
                "Bearer a-test-token-of-more-than-32-characters",
                "close",
                "100-continue",
            ]),
        );
        let request = (
            method,
            target,
            version,
            prop::collection::vec(header, 0..5),
            prop::sample::select(&["\r\n", "\r\n", "\n", "\r"][..]),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(|(method, target, version, headers, end, body)| {
                let mut bytes = [method, target, version].join(&b' ');
                bytes.extend_from_slice(end.as_bytes());
                for (name, value) in headers {
                    bytes.extend_from_slice(&name);
                    bytes.extend_from_slice(b": ");
                    bytes.extend_from_slice(&value);
                    bytes.extend_from_slice(end.as_bytes());
                }
                bytes.extend_from_slice(end.as_bytes());
                bytes.extend_from_slice(&body);
                bytes
            });
        let config = Config {
            cases: 2000,
            rng_seed: RngSeed::Fixed(0x6170_6931),
            failure_persistence: None,
            ..Config::default()
        };
        let result = TestRunner::new(config).run(&request, |bytes| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let (mut client, served) = connect();
                client.write_all(&bytes).await.expect("write");
                let (answer, waited) = until_closed(&mut client).await;
                prop_assert!(served.await.is_ok(), "panicked on {bytes:?}");
                prop_assert!(
                    waited <= HEADER_READ_TIMEOUT + BODY_READ_TIMEOUT,
                    "{bytes:?} held the connection for {waited:?}"
                );
                for status in statuses(&answer) {
                    prop_assert!((200..600).contains(&status), "{answer}");
                }
                Ok(())
            })
        });
        if let Err(error) = result {
            panic!("{error}");
        }
    }

    #[test]
    fn the_connection_cap_leaves_most_descriptors_to_the_rest() {
        assert_eq!(connection_cap(1024), 128);
        assert_eq!(connection_cap(256), 64);
        assert_eq!(connection_cap(1 << 20), MAX_CONNECTIONS);
        assert_eq!(connection_cap(u64::MAX), MAX_CONNECTIONS);
        assert_eq!(connection_cap(2), 1);
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("valid header")
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let token = Secret::new("t".repeat(32));
        assert!(authorized(
            Some(&token),
            Some(&header(&format!("Bearer {}", "t".repeat(32))))
        ));
        assert!(!authorized(
            Some(&token),
            Some(&header(&format!("Bearer {}", "t".repeat(31))))
        ));
        assert!(authorized(
            Some(&token),
            Some(&header(&format!("bearer {}", "t".repeat(32))))
        ));
        assert!(!authorized(Some(&token), Some(&header("Bearer "))));
        assert!(!authorized(
            Some(&token),
            Some(&header(&format!("Basic {}", "t".repeat(32))))
        ));
        assert!(!authorized(Some(&token), None));
        assert!(!authorized(None, Some(&header("Bearer x"))));
    }

    #[test]
    fn send_bodies_are_one_message_or_a_list() {
        let (one, listed) = messages_of(br#"{"to":"a@b","body":"x"}"#).expect("one");
        assert_eq!((one.len(), listed), (1, false));
        let (two, listed) =
            messages_of(br#"{"messages":[{"to":"a@b"},{"to":"c@d"}]}"#).expect("two");
        assert_eq!((two.len(), listed), (2, true));
        assert_eq!(
            messages_of(br#"{"messages":[]}"#).unwrap_err(),
            "\"messages\" is empty"
        );
        assert_eq!(
            messages_of(br#"{"messages":{}}"#).unwrap_err(),
            "\"messages\" must be a list of messages"
        );
        assert_eq!(
            messages_of(br#"[1]"#).unwrap_err(),
            "the body must be a JSON object: one message, or {\"messages\": [...]}"
        );
        assert_eq!(
            messages_of(b"{").unwrap_err(),
            "the body is not valid JSON: EOF while parsing an object at line 1 column 1"
        );
        let eleven = format!("{{\"messages\":[{}]}}", ["{}"; 11].join(","));
        assert_eq!(
            messages_of(eleven.as_bytes()).unwrap_err(),
            "\"messages\" holds 11 messages, more than 10"
        );
    }
}

//! The connector's HTTP API (DESIGN §8), off unless `COMPONENT_API_LISTEN`
//! is set: health for orchestrators, readiness for load balancers and
//! standby setups, metrics for Prometheus, and `POST /v1/send` for bots
//! that push (§6).
//!
//! Plain HTTP/1.1 on hyper. It is meant for loopback or a private network
//! behind a proxy; `/v1/send` needs a bearer token all the same.

use crate::config::{ConfigError, Secret, Sources, invalid};
use crate::health::Health;
use crate::metrics::{self, Metrics};
use crate::push::{PushError, Pusher};
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

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

/// The API's options (`COMPONENT_API_LISTEN`, `COMPONENT_API_TOKEN`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiOptions {
    /// Where the API listens; `None` keeps it off.
    pub listen: Option<SocketAddr>,
    /// The bearer token `/v1/send` requires; `None` turns `/v1/send` off.
    pub token: Option<Secret>,
}

impl ApiOptions {
    pub(crate) fn from_sources(sources: &Sources<'_>) -> Result<ApiOptions, ConfigError> {
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
                return Err(ConfigError::InvalidSecret {
                    option: "COMPONENT_API_TOKEN",
                    expected: "at least 32 characters",
                });
            }
            Some(token) => Some(Secret(token)),
        };
        if token.is_some() && listen.is_none() {
            return Err(ConfigError::Missing {
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

/// Serves the API until shutdown, then gives open connections a moment to
/// finish. Returning drops every handle to the link's writer it held.
pub async fn serve(listener: TcpListener, api: Api, mut shutdown: Shutdown) {
    let api = Arc::new(api);
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, send = api.token.is_some(), "API listening");
    }
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
        let api = Arc::clone(&api);
        let service = service_fn(move |request| {
            let api = Arc::clone(&api);
            async move { Ok::<_, std::convert::Infallible>(route(&api, request).await) }
        });
        let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(error) = connection.await {
                debug!(%peer, %error, "API connection ended");
            }
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
    let declared = request
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_SEND_BODY) {
        return too_large();
    }
    let body = match Limited::new(request.into_body(), MAX_SEND_BODY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(error) => {
            debug!(%error, "reading a /v1/send body");
            return error_answer(StatusCode::BAD_REQUEST, "the body could not be read");
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

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).expect("valid header")
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let token = Secret("t".repeat(32));
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

//! Function URL requests: the connector's http transport (or Prosody's
//! module) POSTs the request JSON, and the bot's answer goes back verbatim:
//! a streamed answer as NDJSON, line by line when the URL streams its
//! responses (`InvokeMode: RESPONSE_STREAM`). Any other JSON POSTed is a
//! webhook: the bot's [`Bot::on_event`] turns it into messages to push.

use crate::answer::answer_by;
use crate::bot::{Bot, Event, WebhookEvent};
use crate::error::HandlerError;
use crate::reply::no_reply;
use crate::reply_target::ReplyTarget;
use crate::writer::{NDJSON, Part, StreamEnd, stream_end};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::http::header::CONTENT_TYPE;
use aws_lambda_events::http::{HeaderMap, HeaderValue, StatusCode};
use base64::Engine;
use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use lambda_runtime::{MetadataPrelude, StreamResponse};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::SystemTime;
use tokio::time::Instant;
use xmpp_lambda_shared::signing::{SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER, unix_seconds};
use xmpp_lambda_shared::{BotResponse, Request};

/// The keys every request JSON has (DESIGN §1): a body with all of them is
/// a request, any other JSON a webhook.
const REQUEST_KEYS: [&str; 4] = ["to", "from", "kind", "stanza"];

/// What a Function URL answers when the bot gave no response: a gateway
/// error maps to the same `cancel/remote-server-timeout` as the connector's
/// own no-response row.
const NO_RESPONSE_STATUS: u16 = 502;

/// What a caller whose signature does not check out is told; the reason
/// goes to the log only.
const UNSIGNED_TEXT: &str = "the request is not signed with the expected secret";

/// What a Function URL call comes to before the bot is asked.
pub(crate) enum Call {
    /// Answered without asking the bot for a reply: refused (401, 405,
    /// 400), or a webhook already handled.
    Answered(BotResponse),
    /// A request JSON for the bot.
    Ask(Request),
}

/// Reads one Function URL request. With a `verifier`, only a request
/// signed with its secret reaches the bot (a webhook too); any other gets
/// 401. A webhook's messages go to `target`.
pub(crate) async fn call<B: Bot>(
    bot: &B,
    verifier: Option<&Signer>,
    target: &ReplyTarget,
    event: Value,
) -> Result<Call, HandlerError> {
    let event: LambdaFunctionUrlRequest =
        serde_json::from_value(event).map_err(HandlerError::InvalidFunctionUrlEvent)?;
    let method = event
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or("POST");
    if !method.eq_ignore_ascii_case("POST") {
        return Ok(Call::Answered(plain(
            405,
            &format!("{method} is not supported: POST the request JSON"),
        )));
    }
    let body = body_of(&event);
    if let Some(verifier) = verifier {
        let header = |name: &str| {
            event
                .headers
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let now = unix_seconds(SystemTime::now());
        // A body that cannot be decoded cannot be verified either: 401,
        // so an unsigned caller learns nothing else.
        let checked = match &body {
            Ok(bytes) => verifier
                .verify(
                    header(TIMESTAMP_HEADER),
                    header(SIGNATURE_HEADER),
                    bytes,
                    now,
                )
                .map_err(|error| error.to_string()),
            Err(reason) => Err(reason.clone()),
        };
        if let Err(reason) = checked {
            tracing::warn!(reason, "refused a Function URL request: bad signature");
            return Ok(Call::Answered(plain(401, UNSIGNED_TEXT)));
        }
    }
    let body = match body {
        Ok(body) => body,
        Err(reason) => {
            tracing::warn!(reason, "refused a Function URL request");
            return Ok(Call::Answered(plain(400, &reason)));
        }
    };
    match posted(&body) {
        Ok(Posted::Request(request)) => Ok(Call::Ask(request)),
        // Boxed: the push path's future is deep, and rarely taken.
        Ok(Posted::Webhook(json)) => Ok(Call::Answered(
            Box::pin(webhook(bot, target, &event, json)).await,
        )),
        Err(reason) => {
            tracing::warn!(reason, "refused a Function URL request");
            Ok(Call::Answered(plain(400, &reason)))
        }
    }
}

/// Answers one Function URL request whose response is buffered: the bot's
/// answer verbatim, or its streamed lines as one NDJSON answer.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
    verifier: Option<&Signer>,
    target: &ReplyTarget,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, HandlerError> {
    let response = match call(bot, verifier, target, event).await? {
        Call::Answered(response) => response,
        Call::Ask(request) => answer_by(bot, &request, deadline).await,
    };
    Ok(response_json(&response))
}

/// The streamed response to a request the bot answers into `rx` (see
/// [`drive`](crate::answer::drive)), for a URL that streams its responses
/// (`InvokeMode: RESPONSE_STREAM`): once the bot wrote its first line,
/// `200` NDJSON, each line going out as the bot writes it; a whole answer
/// as it is.
pub(crate) async fn streamed(mut rx: mpsc::Receiver<Part>) -> StreamResponse<ResponseBody> {
    let first = match rx.next().await {
        Some(Part::Line(line)) => line,
        Some(Part::Last(response)) => return whole(&response),
        // The bot's task ended without an outcome (it panicked).
        None => return whole(&BotResponse::no_response()),
    };
    let mut lines = 1u64;
    let rest = rx.filter_map(move |part| {
        let line = match part {
            Part::Line(line) => {
                lines += 1;
                Some(line)
            }
            Part::Last(last) => match stream_end(last) {
                StreamEnd::Line(line) => Some(line),
                StreamEnd::Done => None,
                StreamEnd::Stopped(outcome) => {
                    tracing::warn!(
                        status = outcome.status,
                        lines,
                        "the bot stopped its stream with an error: the lines before it are sent, \
                         the error cannot follow them on HTTP"
                    );
                    None
                }
            },
        };
        std::future::ready(line)
    });
    let body = futures::stream::once(std::future::ready(first))
        .chain(rest)
        .map(|mut line| {
            line.push('\n');
            Ok(line)
        });
    StreamResponse {
        metadata_prelude: prelude(200, Some(NDJSON)),
        stream: ResponseBody(Box::pin(body)),
    }
}

/// A whole answer on a streaming Function URL: its status and content
/// type up front, its body in one piece.
pub(crate) fn whole(response: &BotResponse) -> StreamResponse<ResponseBody> {
    let body = response.body.clone();
    let chunks = (!body.is_empty()).then_some(Ok(body));
    StreamResponse {
        metadata_prelude: prelude(status_of(response), response.content_type.as_deref()),
        stream: ResponseBody(Box::pin(futures::stream::iter(chunks))),
    }
}

/// A streamed response's status and headers.
fn prelude(status: u16, content_type: Option<&str>) -> MetadataPrelude {
    let mut headers = HeaderMap::new();
    // A content type that is no header value is left out, as Lambda would.
    if let Some(value) = content_type.and_then(|ct| HeaderValue::from_str(ct).ok()) {
        headers.insert(CONTENT_TYPE, value);
    }
    MetadataPrelude {
        status_code: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        headers,
        cookies: Vec::new(),
    }
}

/// The body of a streamed Function URL response: each item one chunk, sent
/// as soon as it exists.
pub struct ResponseBody(Pin<Box<dyn Stream<Item = Result<String, Infallible>> + Send>>);

impl Stream for ResponseBody {
    type Item = Result<String, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBody")
    }
}

/// Hands a webhook to the bot and pushes what it makes of it: `202` with
/// the envelope ids once queued, `204` when the bot sends nothing, `503`
/// when the messages could not be queued (the caller should retry).
async fn webhook<B: Bot>(
    bot: &B,
    target: &ReplyTarget,
    event: &LambdaFunctionUrlRequest,
    body: Value,
) -> BotResponse {
    let webhook = WebhookEvent {
        path: event.raw_path.clone().unwrap_or_else(|| "/".to_owned()),
        query: event.raw_query_string.clone().filter(|q| !q.is_empty()),
        headers: event
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
    };
    let messages = bot.on_event(&Event::Webhook(webhook)).await;
    if messages.is_empty() {
        return no_reply();
    }
    let sent = match target.outbox().await {
        Ok(outbox) => outbox.send_all(messages).await,
        Err(error) => Err(error),
    };
    match sent {
        Ok(envelopes) => BotResponse::from_http(
            202,
            Some("application/json"),
            json!({ "envelopes": envelopes }).to_string().as_bytes(),
        ),
        Err(error) => {
            tracing::warn!(%error, "a webhook's messages were not queued");
            plain(503, &error.to_string())
        }
    }
}

/// What a Function URL POST carries.
enum Posted {
    /// A request JSON from the connector (or Prosody's module).
    Request(Request),
    /// Any other JSON: a webhook.
    Webhook(Value),
}

/// The HTTP body as the caller sent it: the bytes a signature covers.
fn body_of(event: &LambdaFunctionUrlRequest) -> Result<Cow<'_, [u8]>, String> {
    let body = event.body.as_deref().unwrap_or_default();
    if event.is_base64_encoded {
        // A body not labelled as text (Prosody labels JSON form-urlencoded)
        // arrives base64-encoded.
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(Cow::Owned)
            .map_err(|error| format!("the body is not valid base64: {error}"))
    } else {
        Ok(Cow::Borrowed(body.as_bytes()))
    }
}

/// The request JSON, or the webhook JSON, inside the HTTP body.
fn posted(bytes: &[u8]) -> Result<Posted, String> {
    if bytes.is_empty() {
        return Err("the body is empty: POST the request JSON".into());
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|error| format!("the body is not JSON: {error}"))?;
    let is_request = value
        .as_object()
        .is_some_and(|object| REQUEST_KEYS.iter().all(|key| object.contains_key(*key)));
    if !is_request {
        return Ok(Posted::Webhook(value));
    }
    serde_json::from_value(value)
        .map(Posted::Request)
        .map_err(|error| format!("the body is not a request JSON: {error}"))
}

/// The Function URL response for a bot outcome: status, content type and
/// body exactly as the bot gave them.
pub(crate) fn response_json(response: &BotResponse) -> Value {
    let status = status_of(response);
    let mut headers = serde_json::Map::new();
    if let Some(content_type) = &response.content_type {
        headers.insert("content-type".into(), Value::String(content_type.clone()));
    }
    json!({
        "statusCode": status,
        "headers": headers,
        "body": response.body,
        "isBase64Encoded": false,
        // Lambda accepts the response without it, but some emulators
        // (cargo lambda) do not.
        "cookies": [],
    })
}

/// The HTTP status for a bot outcome: its own, or a gateway error for no
/// response.
fn status_of(response: &BotResponse) -> u16 {
    if (100..=599).contains(&response.status) {
        response.status
    } else {
        NO_RESPONSE_STATUS
    }
}

/// A short plain-text response for requests that never reach the bot.
fn plain(status: u16, text: &str) -> BotResponse {
    BotResponse::from_http(status, Some("text/plain; charset=utf-8"), text.as_bytes())
}

//! Function URL requests: the connector's http transport (or Prosody's
//! module) POSTs the request JSON, and the bot's answer goes back verbatim.
//! Any other JSON POSTed is a webhook: the bot's [`Bot::on_event`] turns it
//! into messages to push.

use crate::answer::answer_by;
use crate::bot::{Bot, Event, WebhookEvent};
use crate::error::HandlerError;
use crate::reply_target::ReplyTarget;
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use serde_json::{Value, json};
use std::borrow::Cow;
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

/// Answers one Function URL request. With a `verifier`, only a request
/// signed with its secret reaches the bot (a webhook too); any other gets
/// 401. A webhook's messages go to `target`.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
    verifier: Option<&Signer>,
    target: &ReplyTarget,
    event: Value,
    deadline: Option<Instant>,
) -> Result<Value, HandlerError> {
    let event: LambdaFunctionUrlRequest =
        serde_json::from_value(event).map_err(HandlerError::InvalidFunctionUrlEvent)?;
    let method = event
        .request_context
        .http
        .method
        .as_deref()
        .unwrap_or("POST");
    if !method.eq_ignore_ascii_case("POST") {
        return Ok(plain(
            405,
            &format!("{method} is not supported: POST the request JSON"),
        ));
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
            return Ok(plain(401, UNSIGNED_TEXT));
        }
    }
    let body = match body {
        Ok(body) => body,
        Err(reason) => {
            tracing::warn!(reason, "refused a Function URL request");
            return Ok(plain(400, &reason));
        }
    };
    let request = match posted(&body) {
        Ok(Posted::Request(request)) => request,
        // Boxed: the push path's future is deep, and rarely taken.
        Ok(Posted::Webhook(json)) => {
            return Ok(Box::pin(webhook(bot, target, &event, json)).await);
        }
        Err(reason) => {
            tracing::warn!(reason, "refused a Function URL request");
            return Ok(plain(400, &reason));
        }
    };
    let response = answer_by(bot, &request, deadline).await;
    Ok(response_json(&response))
}

/// Hands a webhook to the bot and pushes what it makes of it: `202` with
/// the envelope ids once queued, `204` when the bot sends nothing, `503`
/// when the messages could not be queued (the caller should retry).
async fn webhook<B: Bot>(
    bot: &B,
    target: &ReplyTarget,
    event: &LambdaFunctionUrlRequest,
    body: Value,
) -> Value {
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
        return response_json(&BotResponse::from_http(204, None, b""));
    }
    let sent = match target.outbox().await {
        Ok(outbox) => outbox.send_all(messages).await,
        Err(error) => Err(error),
    };
    match sent {
        Ok(envelopes) => response_json(&BotResponse::from_http(
            202,
            Some("application/json"),
            json!({ "envelopes": envelopes }).to_string().as_bytes(),
        )),
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
    let status = if (100..=599).contains(&response.status) {
        response.status
    } else {
        NO_RESPONSE_STATUS
    };
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

/// A short plain-text response for requests that never reach the bot.
fn plain(status: u16, text: &str) -> Value {
    response_json(&BotResponse::from_http(
        status,
        Some("text/plain; charset=utf-8"),
        text.as_bytes(),
    ))
}

//! Function URL requests: the connector's http transport (or Prosody's
//! module) POSTs the request JSON; the bot's answer goes back verbatim.

use crate::bot::Bot;
use crate::handler::{HandlerError, answer_by};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use serde_json::{Value, json};
use std::borrow::Cow;
use std::time::SystemTime;
use tokio::time::Instant;
use xmpp_lambda_shared::signing::{SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER, unix_seconds};
use xmpp_lambda_shared::{BotResponse, Request};

/// What a Function URL answers when the bot gave no response: a gateway
/// error maps to the same `cancel/remote-server-timeout` as the connector's
/// own no-response row.
const NO_RESPONSE_STATUS: u16 = 502;

/// What a caller whose signature does not check out is told; the reason
/// goes to the log only.
const UNSIGNED_TEXT: &str = "the request is not signed with the expected secret";

/// Answers one Function URL request. With a `verifier`, only a request
/// signed with its secret reaches the bot; any other gets 401.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
    verifier: Option<&Signer>,
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
    let request = match request_of(&body) {
        Ok(request) => request,
        Err(reason) => {
            tracing::warn!(reason, "refused a Function URL request");
            return Ok(plain(400, &reason));
        }
    };
    let response = answer_by(bot, &request, deadline).await;
    Ok(response_json(&response))
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

/// The request JSON inside the HTTP body.
fn request_of(bytes: &[u8]) -> Result<Request, String> {
    if bytes.is_empty() {
        return Err("the body is empty: POST the request JSON".into());
    }
    serde_json::from_slice(bytes)
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

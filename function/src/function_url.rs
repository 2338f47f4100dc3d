//! Function URL requests: the connector's http transport (or Prosody's
//! module) POSTs the request JSON; the bot's answer goes back verbatim.

use crate::bot::Bot;
use crate::handler::{HandlerError, answer_by};
use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use base64::Engine;
use serde_json::{Value, json};
use tokio::time::Instant;
use xmpp_lambda_shared::{BotResponse, Request};

/// What a Function URL answers when the bot gave no response: a gateway
/// error maps to the same `cancel/remote-server-timeout` as the connector's
/// own no-response row.
const NO_RESPONSE_STATUS: u16 = 502;

/// Answers one Function URL request.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
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
    let request = match request_of(&event) {
        Ok(request) => request,
        Err(reason) => {
            tracing::warn!(reason, "refused a Function URL request");
            return Ok(plain(400, &reason));
        }
    };
    let response = answer_by(bot, &request, deadline).await;
    Ok(response_json(&response))
}

/// The request JSON inside the HTTP body.
fn request_of(event: &LambdaFunctionUrlRequest) -> Result<Request, String> {
    let body = event.body.as_deref().unwrap_or_default();
    let decoded;
    let bytes = if event.is_base64_encoded {
        // A body not labelled as text (Prosody labels JSON form-urlencoded)
        // arrives base64-encoded.
        decoded = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|error| format!("the body is not valid base64: {error}"))?;
        decoded.as_slice()
    } else {
        body.as_bytes()
    };
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

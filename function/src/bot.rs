//! The one thing a bot must do: answer a request.

use std::future::Future;
use xmpp_lambda_shared::{BotResponse, Request};

/// A bot: given one stanza as a [`Request`], give the HTTP-shaped outcome the
/// reply rules turn into stanzas (status 200 with a JSON object to reply,
/// 204 for no reply, 4xx/5xx for an error to the sender).
///
/// Implement it with a plain `async fn`:
///
/// ```
/// use xmpp_lambda_function::{Bot, BotResponse, Request, text_reply};
///
/// struct Hello;
///
/// impl Bot for Hello {
///     async fn answer(&self, request: &Request) -> BotResponse {
///         text_reply(&format!("Hello, {}!", request.from))
///     }
/// }
/// ```
///
/// The function may ask for several answers at once (one per SQS record),
/// hence `Send + Sync`. Under SQS a `429` or `5xx` outcome (and no response)
/// means "try again later": the message is retried, then goes to the
/// dead-letter queue.
pub trait Bot: Send + Sync {
    /// The outcome for one request.
    fn answer(&self, request: &Request) -> impl Future<Output = BotResponse> + Send;
}

/// A `200 application/json` answer `{"body": text}`: a chat message back to
/// the sender, the most common reply.
pub fn text_reply(text: &str) -> BotResponse {
    BotResponse::json(serde_json::json!({ "body": text }).to_string())
}

impl<B: Bot> Bot for &B {
    fn answer(&self, request: &Request) -> impl Future<Output = BotResponse> + Send {
        (**self).answer(request)
    }
}

impl<B: Bot> Bot for std::sync::Arc<B> {
    fn answer(&self, request: &Request) -> impl Future<Output = BotResponse> + Send {
        (**self).answer(request)
    }
}

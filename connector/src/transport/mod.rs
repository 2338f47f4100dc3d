//! How requests reach the bot and answers come back.

pub mod http;

pub use http::HttpTransport;

use xmpp_lambda_shared::{BotResponse, Request};

/// The way to the bot, chosen by `TRANSPORT`.
#[derive(Debug)]
pub enum Transport {
    /// POST the request; the HTTP response is the answer.
    Http(HttpTransport),
}

impl Transport {
    /// Hands one request to the bot and waits for its answer. Never fails:
    /// a bot that cannot be reached is [`BotResponse::no_response`].
    pub async fn exchange(&self, request: &Request) -> BotResponse {
        match self {
            Transport::Http(http) => http.exchange(request).await,
        }
    }
}

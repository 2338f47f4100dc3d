//! How requests reach the bot and answers come back.

mod bot_client;
pub mod http;
mod http1;
#[cfg(test)]
mod http1_reference;

pub use http::HttpTransport;

/// The content type of every request to a bot.
pub const JSON: &str = "application/json";
/// The user agent of every request to a bot.
pub const USER_AGENT: &str = concat!("xmpp-lambda-connector/", env!("CARGO_PKG_VERSION"));

use crate::sqs::RequestSender;
use xmpp_lambda_shared::{BotResponse, Request};

/// The way to the bot, chosen by `TRANSPORT`.
#[derive(Debug)]
pub enum Transport {
    /// POST the request; the HTTP response is the answer.
    Http(HttpTransport),
    /// Put the request on the request queue; the answer comes later from
    /// the reply queue, through [`crate::sqs::replies`].
    Sqs(RequestSender),
}

/// What became of a request handed to the transport.
#[derive(Debug)]
pub enum Forwarded {
    /// The bot's answer, to be turned into stanzas now.
    Answered(BotResponse),
    /// On the request queue: the reply comes through the reply queue.
    Queued,
    /// Could not be put on the request queue in time (the reason is
    /// logged where it happened): the sender is told.
    NotQueued,
}

impl Transport {
    /// Whether a conversation's requests must reach the bot one after the
    /// other: with http (its replies go out in that order) and on a FIFO
    /// request queue; a standard queue keeps no order of its own.
    pub fn keeps_order(&self) -> bool {
        match self {
            Transport::Http(_) => true,
            Transport::Sqs(sqs) => sqs.is_fifo(),
        }
    }

    /// Hands one request to the bot. With http this waits for the bot's
    /// answer (a bot that cannot be reached is
    /// [`BotResponse::no_response`]); with sqs only until the request is
    /// safely queued.
    pub async fn forward(&self, request: &Request) -> Forwarded {
        match self {
            Transport::Http(http) => Forwarded::Answered(http.exchange(request).await),
            Transport::Sqs(sqs) => match sqs.enqueue(request).await {
                Ok(()) => Forwarded::Queued,
                Err(_) => Forwarded::NotQueued,
            },
        }
    }
}

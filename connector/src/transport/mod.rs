//! How requests reach the bot and answers come back.

mod bot_client;
mod headers;
pub mod http;
pub(crate) mod http1;
pub(crate) mod http1_reference;
mod reply_stream;

pub use http::{Exchanged, HttpTransport};
pub use reply_stream::{ReplyStream, StreamError};

pub use headers::{JSON, USER_AGENT};

use crate::options::RedactedUrl;
use crate::sqs::RequestSender;
use crate::sqs::requests::EnqueueError;
use xmpp_lambda_shared::{BotResponse, Request};

/// How requests reach a bot, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportConfig {
    /// POST each request to a URL; the HTTP response is the reply.
    Http {
        /// Where requests are POSTed.
        post_url: RedactedUrl,
    },
    /// Send requests to an SQS queue; replies come from the reply queue
    /// (`REPLY_QUEUE_URL`, required then).
    Sqs {
        /// Where request envelopes go.
        request_queue_url: String,
    },
}

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
pub enum Forwarded<'t> {
    /// The bot's answer, to be turned into stanzas now.
    Answered(BotResponse),
    /// The bot answers with a stream of replies, relayed as they come.
    Streaming(ReplyStream<'t>),
    /// On the request queue as this envelope: the reply comes through the
    /// reply queue.
    Queued { envelope_id: String },
    /// Could not be put on the request queue (the reason is logged where
    /// it happened): the sender is told.
    NotQueued(EnqueueError),
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
    pub async fn forward(&self, request: &Request) -> Forwarded<'_> {
        match self {
            Transport::Http(http) => match http.exchange(request).await {
                Exchanged::Answer(response) => Forwarded::Answered(response),
                Exchanged::Stream(stream) => Forwarded::Streaming(stream),
            },
            Transport::Sqs(sqs) => match sqs.enqueue(request).await {
                Ok(envelope_id) => Forwarded::Queued { envelope_id },
                Err(error) => Forwarded::NotQueued(error),
            },
        }
    }
}

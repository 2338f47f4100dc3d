//! The xmpp-lambda function: one Lambda handler for every trigger, and the
//! [`Bot`] trait that answers each request.
//!
//! The handler tells its events apart by shape:
//!
//! * a **Function URL** request (the connector's `http` transport pointed at
//!   the function): the body is the request JSON, the response carries the
//!   bot's status, content type and body so the connector applies the reply
//!   rules unchanged;
//! * an **SQS batch** (`Records`): each body is a request envelope; each
//!   answer goes to `REPLY_QUEUE_URL` as a reply envelope, and the records to
//!   retry come back as `batchItemFailures`;
//! * a bare **request JSON** (a direct invoke): answered with the bot's
//!   outcome as JSON;
//! * a **schedule** (EventBridge, EventBridge Scheduler, or
//!   `{"schedule": NAME}`) and any other JSON POSTed to the Function URL (a
//!   **webhook**): handed to [`Bot::on_event`], whose messages go out
//!   through the reply queue as send envelopes ([`Outbox`]).
//!
//! A bot answers with one reply ([`text_reply`], a [`Reply`] with an
//! attachment), several ([`replies`]), or a stream of them written as they
//! come ([`Bot::answer_streamed`], [`ReplyWriter`]): behind a Function URL
//! as NDJSON (streamed with `FUNCTION_URL_INVOKE_MODE=RESPONSE_STREAM`),
//! over SQS as one reply envelope per line.
//!
//! Writing a bot is implementing [`Bot`] and handing it to [`run`]:
//!
//! ```no_run
//! use xmpp_lambda_function::{Bot, BotResponse, Request, text_reply};
//!
//! struct Shout;
//!
//! impl Bot for Shout {
//!     async fn answer(&self, request: &Request) -> BotResponse {
//!         text_reply(&request.body.as_deref().unwrap_or_default().to_uppercase())
//!     }
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), xmpp_lambda_function::Error> {
//!     xmpp_lambda_function::run(Shout).await
//! }
//! ```

// Each module imports only from those below it in this list: the handler
// at the top dispatches to one module per trigger, which share the bottom.
mod handler;

mod function_url;
mod schedule;
mod sqs_batch;

mod answer;
mod config;
mod echo;
mod error;
mod event;
mod logging;
mod proxy;
mod reply_target;
mod stream_parts;

mod outbox;
mod reply_queue;

mod bot;
mod writer;

mod reply;

pub use answer::buffered_answer;
pub use bot::{Bot, Event, ScheduleEvent, WebhookEvent};
pub use config::{BuiltinBot, ConfigError, InvokeMode};
pub use echo::EchoBot;
pub use error::HandlerError;
pub use function_url::ResponseBody;
pub use handler::{Handler, run};
pub use logging::init_logging;
pub use outbox::{Outbox, OutboxError};
pub use proxy::{POOL_IDLE_TIMEOUT, ProxyBot};
pub use reply::{
    BadUrl, MAX_REPLIES, MAX_URL_BYTES, Reply, TooManyReplies, attachment_url, no_reply, replies,
    text_reply,
};
pub use writer::{ReplyWriter, StreamClosed};

/// The protocol types a bot works with, re-exported so a bot needs only
/// this crate.
pub use xmpp_lambda_shared::{BotResponse, OutboundMessage, Request, StanzaKind};

/// The JSON crate events and webhooks arrive in, re-exported for the same
/// reason.
pub use serde_json;

/// The error [`run`] ends with (the Lambda runtime's own).
pub use lambda_runtime::Error;

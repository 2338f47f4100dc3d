//! The Lambda handler: one entry point for every trigger, handing each
//! event to the module for its shape.

use crate::answer::{answer_by, drive, reserve};
use crate::bot::Bot;
use crate::config::{DEFAULT_EDIT_INTERVAL, InvokeMode};
use crate::error::HandlerError;
use crate::event::{EventShape, classify};
use crate::function_url::{Call, ResponseBody};
use crate::reply_target::ReplyTarget;
use crate::sqs_batch::BatchLimits;
use crate::writer::LINE_BUFFER;
use crate::{function_url, logging, schedule, sqs_batch};
use futures::channel::mpsc;
use lambda_runtime::{FunctionResponse, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use xmpp_lambda_shared::Request;
use xmpp_lambda_shared::signing::Signer;

/// Time kept back from the bot before the function's deadline, so a slow
/// bot still lets the handler report: for a batch, which records succeeded
/// and their replies sent; for a Function URL, a gateway error.
const SQS_RESERVE: Duration = Duration::from_secs(2);
const URL_RESERVE: Duration = Duration::from_millis(250);

/// The function: a bot, and where its replies and pushed messages go.
pub struct Handler<B> {
    /// Answers every request, whatever the trigger.
    bot: B,
    /// The reply queue (`REPLY_QUEUE_URL`) and its SQS client, built on the
    /// first event that needs it.
    replies: ReplyTarget,
    /// Checks the signature of every Function URL request
    /// (`COMPONENT_POST_SECRET`, DESIGN §9), for URLs anyone can call
    /// (`AuthType: NONE`); `None` accepts unsigned requests.
    verifier: Option<Signer>,
    /// The request queue's `maxReceiveCount` (`MAX_RECEIVE_COUNT`), so the
    /// last delivery of a request is answered rather than dead-lettered;
    /// `None` leaves every failure to the queue.
    max_receive_count: Option<u32>,
    /// How the Function URL sends its responses
    /// (`FUNCTION_URL_INVOKE_MODE`, the template's parameter): Lambda
    /// reads a streamed response only from a URL that streams, and a
    /// buffered one only from a URL that buffers.
    invoke_mode: InvokeMode,
    /// The least time between two corrections of one streamed message
    /// sent over SQS (`COMPONENT_STREAM_EDIT_INTERVAL`, as the connector
    /// spaces them): the ones in between would be queue messages the
    /// connector drops unseen.
    edit_interval: Duration,
}

impl<B: Bot> Handler<B> {
    /// A handler for `bot` with no reply queue (Function URL and direct
    /// invokes only).
    pub fn new(bot: B) -> Self {
        Handler {
            bot,
            replies: ReplyTarget::default(),
            verifier: None,
            max_receive_count: None,
            invoke_mode: InvokeMode::default(),
            edit_interval: DEFAULT_EDIT_INTERVAL,
        }
    }

    /// A handler for `bot` configured from the environment
    /// (`REPLY_QUEUE_URL`, `COMPONENT_POST_SECRET`, `MAX_RECEIVE_COUNT`,
    /// `FUNCTION_URL_INVOKE_MODE`, `COMPONENT_STREAM_EDIT_INTERVAL`).
    pub fn from_env(bot: B) -> Result<Self, crate::ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        Ok(Handler {
            replies: ReplyTarget::new(crate::config::option(&lookup, "REPLY_QUEUE_URL")),
            verifier: crate::config::post_signer(&lookup)?,
            max_receive_count: crate::config::max_receive_count(&lookup)?,
            invoke_mode: crate::config::invoke_mode(&lookup)?,
            edit_interval: crate::config::edit_interval(&lookup)?,
            ..Handler::new(bot)
        })
    }

    /// Streams Function URL responses (`RESPONSE_STREAM`) or not.
    pub fn with_invoke_mode(mut self, mode: InvokeMode) -> Self {
        self.invoke_mode = mode;
        self
    }

    /// Spaces the corrections of a streamed message sent over SQS at least
    /// `interval` apart (zero: every one is sent).
    pub fn with_edit_interval(mut self, interval: Duration) -> Self {
        self.edit_interval = interval;
        self
    }

    /// Answers a Function URL request only when it is signed with
    /// `verifier`'s secret; any other gets 401 and never reaches the bot.
    pub fn with_request_verifier(mut self, verifier: Signer) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Sends SQS-triggered replies to `url`.
    pub fn with_reply_queue(mut self, url: impl Into<String>) -> Self {
        self.replies.set_url(url.into());
        self
    }

    /// Uses `client` for the reply queue instead of one built from the AWS
    /// environment on the first SQS event.
    pub fn with_sqs_client(mut self, client: aws_sdk_sqs::Client) -> Self {
        self.replies.set_client(client);
        self
    }

    /// Answers a request that failed `count` deliveries from the request
    /// queue with its error instead of failing it again (the queue's
    /// `maxReceiveCount`, at least 1).
    pub fn with_max_receive_count(mut self, count: u32) -> Self {
        self.max_receive_count = Some(count.max(1));
        self
    }

    /// The bot this handler asks.
    pub fn bot(&self) -> &B {
        &self.bot
    }

    /// Answers one event of any supported shape, as [`Handler::handle`]
    /// does, except that a Function URL request is answered with a
    /// streamed response when the URL streams
    /// ([`InvokeMode::ResponseStream`]): what [`run`] hands the Lambda
    /// runtime.
    pub async fn respond(
        self: Arc<Self>,
        event: Value,
        deadline: Option<Instant>,
    ) -> Result<FunctionResponse<Value, ResponseBody>, HandlerError>
    where
        B: 'static,
    {
        let streams = self.invoke_mode == InvokeMode::ResponseStream
            && classify(&event) == Ok(EventShape::FunctionUrl);
        if !streams {
            return self
                .handle(event, deadline)
                .await
                .map(FunctionResponse::BufferedResponse);
        }
        let call =
            function_url::call(&self.bot, self.verifier.as_ref(), &self.replies, event).await?;
        let request = match call {
            Call::Answered(response) => {
                return Ok(FunctionResponse::StreamingResponse(function_url::whole(
                    &response,
                )));
            }
            Call::Ask(request) => request,
        };
        let deadline = reserve(deadline, URL_RESERVE);
        let (tx, rx) = mpsc::channel(LINE_BUFFER);
        // The response goes out after this returns, while the bot still
        // writes it: the bot runs on its own.
        let this = Arc::clone(&self);
        tokio::spawn(async move { drive(&this.bot, &request, deadline, tx).await });
        Ok(FunctionResponse::StreamingResponse(
            function_url::streamed(rx).await,
        ))
    }

    /// Answers one event of any supported shape. `deadline` is when the
    /// invocation times out, if known: the bot gets less, so the handler
    /// can still report in time. A streamed answer to a Function URL
    /// request is gathered into one NDJSON response here.
    pub async fn handle(
        &self,
        event: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, HandlerError> {
        let shape = classify(&event).map_err(HandlerError::UnrecognisedEvent)?;
        match shape {
            EventShape::FunctionUrl => {
                let deadline = reserve(deadline, URL_RESERVE);
                function_url::handle(
                    &self.bot,
                    self.verifier.as_ref(),
                    &self.replies,
                    event,
                    deadline,
                )
                .await
            }
            // Boxed: the push path's future is deep, and rarely taken.
            EventShape::Schedule => {
                Box::pin(schedule::handle(&self.bot, &self.replies, event)).await
            }
            EventShape::Sqs => {
                let url = self
                    .replies
                    .url()
                    .ok_or(HandlerError::ReplyQueueNotConfigured)?;
                let client = self.replies.client().await;
                let limits = BatchLimits {
                    deadline: reserve(deadline, SQS_RESERVE),
                    max_receive_count: self.max_receive_count,
                    edit_interval: self.edit_interval,
                };
                // Boxed: a batch's future is deep (conversations, each a bot
                // answer beside the sending of its stream).
                Box::pin(sqs_batch::handle(&self.bot, client, url, event, limits)).await
            }
            EventShape::Request => {
                let request: Request =
                    serde_json::from_value(event).map_err(HandlerError::InvalidRequest)?;
                let response = answer_by(&self.bot, &request, reserve(deadline, URL_RESERVE)).await;
                Ok(serde_json::to_value(response).unwrap_or(Value::Null))
            }
        }
    }
}

/// The invocation's deadline as an `Instant`; `None` when the Runtime API
/// gave none in the future (local emulators may not).
fn deadline_of(context: &lambda_runtime::Context) -> Option<Instant> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()?
        .as_millis();
    let left_ms = u128::from(context.deadline).checked_sub(now_ms)?;
    let left = Duration::from_millis(u64::try_from(left_ms).ok()?);
    (!left.is_zero()).then(|| Instant::now() + left)
}

/// Runs `bot` as a Lambda function until the runtime stops: the whole
/// `main` of a bot. Sets up logging (`AWS_LAMBDA_LOG_FORMAT`,
/// `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`) unless the program already did.
/// With `COMPONENT_POST_SECRET` set, only signed Function URL requests
/// reach the bot; a secret under 16 bytes stops it at once with an error.
///
/// With `FUNCTION_URL_INVOKE_MODE=RESPONSE_STREAM` (the template sets it
/// from its `FunctionUrlInvokeMode` parameter), Function URL responses are
/// streamed, so a bot's streamed answer reaches the connector line by line.
pub async fn run<B: Bot + 'static>(bot: B) -> Result<(), lambda_runtime::Error> {
    logging::init_logging();
    let handler = Arc::new(Handler::from_env(bot)?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = Arc::clone(&handler);
        async move {
            let deadline = deadline_of(&event.context);
            handler.respond(event.payload, deadline).await
        }
    }))
    .await
}

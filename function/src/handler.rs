//! The Lambda handler: one entry point for every trigger, handing each
//! event to the module for its shape.

use crate::answer::{answer_by, reserve};
use crate::bot::Bot;
use crate::error::HandlerError;
use crate::event::{EventShape, classify};
use crate::reply_target::ReplyTarget;
use crate::sqs_batch::BatchLimits;
use crate::{function_url, logging, schedule, sqs_batch};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
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
        }
    }

    /// A handler for `bot` configured from the environment
    /// (`REPLY_QUEUE_URL`, `COMPONENT_POST_SECRET`, `MAX_RECEIVE_COUNT`).
    pub fn from_env(bot: B) -> Result<Self, crate::ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        Ok(Handler {
            replies: ReplyTarget::new(crate::config::option(&lookup, "REPLY_QUEUE_URL")),
            verifier: crate::config::post_signer(&lookup)?,
            max_receive_count: crate::config::max_receive_count(&lookup)?,
            ..Handler::new(bot)
        })
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

    /// Answers one event of any supported shape. `deadline` is when the
    /// invocation times out, if known: the bot gets less, so the handler
    /// can still report in time.
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
                };
                sqs_batch::handle(&self.bot, client, url, event, limits).await
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
pub async fn run<B: Bot>(bot: B) -> Result<(), lambda_runtime::Error> {
    logging::init_logging();
    let handler = Handler::from_env(bot)?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = deadline_of(&event.context);
        handler.handle(event.payload, deadline).await
    }))
    .await
}

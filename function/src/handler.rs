//! The Lambda handler: one entry point for every trigger.

use crate::bot::{Bot, Event};
use crate::event::{EventShape, classify, schedule_event};
use crate::outbox::{Outbox, OutboxError};
use crate::{function_url, logging, sqs_batch};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use xmpp_lambda_shared::signing::Signer;
use xmpp_lambda_shared::{BotResponse, OutboundMessage, Request};

/// Time kept back from the bot before the function's deadline, so a slow
/// bot still lets the handler report: for a batch, which records succeeded
/// and their replies sent; for a Function URL, a gateway error.
const SQS_RESERVE: Duration = Duration::from_secs(2);
const URL_RESERVE: Duration = Duration::from_millis(250);

/// Why an invocation failed as a whole. The Lambda runtime reports it as
/// the invocation's error (for an SQS batch: every record is retried).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The event is none of the shapes the function answers.
    #[error(
        "unrecognised event: expected a Function URL request (requestContext.http), \
         an SQS event (Records) or a request JSON (to, from, kind, stanza); {0}"
    )]
    UnrecognisedEvent(String),
    /// It looks like a Function URL request but is not a valid one.
    #[error("invalid Function URL event: {0}")]
    InvalidFunctionUrlEvent(#[source] serde_json::Error),
    /// It looks like an SQS event but is not a valid one.
    #[error("invalid SQS event: {0}")]
    InvalidSqsEvent(String),
    /// It looks like a request JSON but is not a valid one.
    #[error("invalid request JSON: {0}")]
    InvalidRequest(#[source] serde_json::Error),
    /// An SQS event arrived but there is nowhere to send the replies.
    #[error("REPLY_QUEUE_URL is not set: SQS-triggered requests need a reply queue")]
    ReplyQueueNotConfigured,
    /// It looks like a schedule event but is not a valid one.
    #[error("invalid schedule event: {0}")]
    InvalidScheduleEvent(String),
    /// The bot's pushed messages could not be queued; the invocation fails
    /// so that Lambda retries it.
    #[error("pushed messages not sent: {0}")]
    Push(#[from] OutboxError),
}

impl HandlerError {
    /// A stable name for the error, as Lambda shows it in `errorType`.
    pub fn kind(&self) -> &'static str {
        match self {
            HandlerError::UnrecognisedEvent(_) => "UnrecognisedEvent",
            HandlerError::InvalidFunctionUrlEvent(_) => "InvalidFunctionUrlEvent",
            HandlerError::InvalidSqsEvent(_) => "InvalidSqsEvent",
            HandlerError::InvalidRequest(_) => "InvalidRequest",
            HandlerError::ReplyQueueNotConfigured => "ReplyQueueNotConfigured",
            HandlerError::InvalidScheduleEvent(_) => "InvalidScheduleEvent",
            HandlerError::Push(_) => "PushNotSent",
        }
    }
}

impl From<HandlerError> for Diagnostic {
    fn from(error: HandlerError) -> Self {
        Diagnostic {
            error_type: error.kind().to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The function: a bot, and the clients its triggers need, each built once
/// and only when a trigger first needs it.
pub struct Handler<B> {
    /// Answers every request, whatever the trigger.
    bot: B,
    /// Where SQS-triggered replies go (`REPLY_QUEUE_URL`); only SQS events
    /// need it, so its absence is an error only for them.
    reply_queue_url: Option<String>,
    /// The SQS client, built on the first SQS event: a Function URL call
    /// never pays for loading the AWS configuration.
    sqs: OnceCell<aws_sdk_sqs::Client>,
    /// Checks the signature of every Function URL request
    /// (`COMPONENT_POST_SECRET`, DESIGN §9), for URLs anyone can call
    /// (`AuthType: NONE`); `None` accepts unsigned requests.
    verifier: Option<Signer>,
}

impl<B: Bot> Handler<B> {
    /// A handler for `bot` with no reply queue (Function URL and direct
    /// invokes only).
    pub fn new(bot: B) -> Self {
        Handler {
            bot,
            reply_queue_url: None,
            sqs: OnceCell::new(),
            verifier: None,
        }
    }

    /// A handler for `bot` configured from the environment
    /// (`REPLY_QUEUE_URL`, `COMPONENT_POST_SECRET`).
    pub fn from_env(bot: B) -> Result<Self, crate::ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let reply_queue_url = crate::config::option(&lookup, "REPLY_QUEUE_URL");
        let verifier = crate::config::post_signer(&lookup)?;
        Ok(Handler {
            reply_queue_url,
            verifier,
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
        self.reply_queue_url = Some(url.into());
        self
    }

    /// Uses `client` for the reply queue instead of one built from the AWS
    /// environment on the first SQS event.
    pub fn with_sqs_client(self, client: aws_sdk_sqs::Client) -> Self {
        let _ = self.sqs.set(client);
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
                function_url::handle(self, self.verifier.as_ref(), event, deadline).await
            }
            EventShape::Schedule => {
                let schedule = schedule_event(event).map_err(HandlerError::InvalidScheduleEvent)?;
                tracing::info!(
                    schedule = schedule.name.as_deref().unwrap_or(""),
                    "schedule fired"
                );
                let messages = self.bot.on_event(&Event::Schedule(schedule)).await;
                let envelopes = Box::pin(self.push(messages)).await?;
                Ok(serde_json::json!({ "envelopes": envelopes }))
            }
            EventShape::Sqs => {
                let url = self
                    .reply_queue_url
                    .as_deref()
                    .ok_or(HandlerError::ReplyQueueNotConfigured)?;
                let client = self.sqs_client().await;
                sqs_batch::handle(
                    &self.bot,
                    client,
                    url,
                    event,
                    reserve(deadline, SQS_RESERVE),
                )
                .await
            }
            EventShape::Request => {
                let request: Request =
                    serde_json::from_value(event).map_err(HandlerError::InvalidRequest)?;
                let response = answer_by(&self.bot, &request, reserve(deadline, URL_RESERVE)).await;
                Ok(serde_json::to_value(response).unwrap_or(Value::Null))
            }
        }
    }

    /// Sends a bot's pushed messages through the reply queue; returns the
    /// envelope ids (none for no messages).
    pub(crate) async fn push(
        &self,
        messages: Vec<OutboundMessage>,
    ) -> Result<Vec<String>, OutboxError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let url = self
            .reply_queue_url
            .as_deref()
            .ok_or(OutboxError::NoReplyQueue)?;
        let outbox = Outbox::new(self.sqs_client().await.clone(), url);
        outbox.send_all(messages).await
    }

    async fn sqs_client(&self) -> &aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| async {
                let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                aws_sdk_sqs::Client::new(&config)
            })
            .await
    }
}

/// Asks the bot, giving up at `deadline` (then: no response, which the
/// reply rules and the retry policy already handle).
pub(crate) async fn answer_by<B: Bot>(
    bot: &B,
    request: &Request,
    deadline: Option<Instant>,
) -> BotResponse {
    let Some(deadline) = deadline else {
        return bot.answer(request).await;
    };
    match tokio::time::timeout_at(deadline, bot.answer(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(from = %request.from, "the bot did not answer before the function's deadline");
            BotResponse::no_response()
        }
    }
}

fn reserve(deadline: Option<Instant>, reserve: Duration) -> Option<Instant> {
    deadline.map(|deadline| {
        deadline
            .checked_sub(reserve)
            .filter(|at| *at > Instant::now())
            .unwrap_or_else(Instant::now)
    })
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

//! Why an invocation failed as a whole: the one error every trigger's
//! handler returns.

use crate::outbox::OutboxError;
use lambda_runtime::Diagnostic;

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

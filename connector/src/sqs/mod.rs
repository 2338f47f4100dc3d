//! The sqs transport (DESIGN §5): requests go to one queue, the function
//! answers on another.
//!
//! * [`requests`]: request envelopes onto the request queue, batched under
//!   load, retried on errors, each confirmed to its sender (or refused
//!   within the bot timeout).
//! * [`replies`]: long-polls the reply queue while the XMPP link is up and
//!   deletes a reply only once its stanzas are written to the stream.
//!
//! AWS settings come only from the SDK's standard chain (environment,
//! profile, role; `AWS_ENDPOINT_URL` for a local server).

pub mod replies;
pub mod requests;

pub use replies::ReplyPoller;
pub use requests::RequestSender;

use aws_sdk_sqs::error::ProvideErrorMetadata;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::info;

/// SendMessageBatch and DeleteMessageBatch take at most 10 entries, and
/// ReceiveMessage returns at most 10 messages.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// An SQS client configured by the SDK's standard chain.
pub async fn client() -> aws_sdk_sqs::Client {
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    aws_sdk_sqs::Client::new(&config)
}

/// A FIFO queue's URL (and so its name) ends in `.fifo`.
pub fn is_fifo(queue_url: &str) -> bool {
    queue_url.ends_with(".fifo")
}

/// An SQS error in one line: the service's code and message when it
/// answered, the whole cause chain when it could not be reached.
pub fn describe_error<E>(error: &E) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match (error.code(), error.message()) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    }
}

/// SQS API calls and the messages they carried, each way, so the cost per
/// message can be read from the log at shutdown.
#[derive(Debug, Default)]
pub struct SqsStats {
    /// SendMessageBatch calls to the request queue, retries included.
    pub send_calls: AtomicU64,
    /// Requests the request queue accepted.
    pub requests_sent: AtomicU64,
    /// ReceiveMessage calls on the reply queue, empty ones included.
    pub receive_calls: AtomicU64,
    /// Reply messages received (duplicates and undecodable ones included).
    pub replies_received: AtomicU64,
    /// DeleteMessageBatch calls on the reply queue.
    pub delete_calls: AtomicU64,
    /// Reply messages deleted.
    pub replies_deleted: AtomicU64,
}

impl SqsStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// One log line with every counter and the calls per message each way.
    pub fn log_summary(&self) {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let per = |calls: u64, messages: u64| {
            if messages == 0 {
                0.0
            } else {
                calls as f64 / messages as f64
            }
        };
        let (send_calls, requests_sent) = (get(&self.send_calls), get(&self.requests_sent));
        let (receive_calls, received) = (get(&self.receive_calls), get(&self.replies_received));
        let (delete_calls, deleted) = (get(&self.delete_calls), get(&self.replies_deleted));
        info!(
            send_calls,
            requests_sent,
            receive_calls,
            replies_received = received,
            delete_calls,
            replies_deleted = deleted,
            request_calls_per_message = format!("{:.3}", per(send_calls, requests_sent)),
            reply_calls_per_message = format!("{:.3}", per(receive_calls + delete_calls, received)),
            "sqs calls"
        );
    }
}

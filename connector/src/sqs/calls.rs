//! What the request sender and the reply poller share: the SQS client,
//! its limits, its errors in one line, and the calls counted.

use crate::metrics::SqsCounters;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use prometheus_client::metrics::counter::Counter;
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
/// message can be read from the log at shutdown. The call counters are the
/// `xmpp_lambda_sqs_calls_total` metrics themselves.
#[derive(Debug, Clone, Default)]
pub struct SqsStats {
    /// SendMessageBatch calls to the request queue, retries included.
    pub send_calls: Counter,
    /// Requests the request queue accepted.
    pub requests_sent: Counter,
    /// ReceiveMessage calls on the reply queue, empty ones included.
    pub receive_calls: Counter,
    /// Reply messages received (duplicates and undecodable ones included).
    pub replies_received: Counter,
    /// DeleteMessageBatch calls on the reply queue.
    pub delete_calls: Counter,
    /// Reply messages deleted.
    pub replies_deleted: Counter,
}

impl SqsStats {
    /// Counters whose calls are the metrics' own.
    pub fn counting(metrics: &SqsCounters) -> SqsStats {
        SqsStats {
            send_calls: metrics.send_message_batch.clone(),
            receive_calls: metrics.receive_message.clone(),
            delete_calls: metrics.delete_message_batch.clone(),
            ..SqsStats::default()
        }
    }

    /// One log line with every counter and the calls per message each way.
    pub fn log_summary(&self) {
        let per = |calls: u64, messages: u64| {
            if messages == 0 {
                0.0
            } else {
                calls as f64 / messages as f64
            }
        };
        let (send_calls, requests_sent) = (self.send_calls.get(), self.requests_sent.get());
        let (receive_calls, received) = (self.receive_calls.get(), self.replies_received.get());
        let (delete_calls, deleted) = (self.delete_calls.get(), self.replies_deleted.get());
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

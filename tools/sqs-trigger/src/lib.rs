//! Lambda's SQS event source mapping, for local development: nothing else
//! emulates it offline.
//!
//! A [`Trigger`] long-polls a queue, invokes the function with batches
//! shaped like the mapping's SQS events (`eventSourceARN`, system
//! attributes such as `ApproximateReceiveCount` and, on FIFO queues,
//! `MessageGroupId`), reads the partial batch response
//! (`batchItemFailures`), deletes what succeeded and leaves the failures to
//! the queue's visibility timeout, and so to its redrive policy (DLQ).
//!
//! It invokes through the Lambda invoke API
//! (`POST /2015-03-31/functions/NAME/invocations`) of `cargo lambda watch`
//! or any endpoint that speaks it.

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// The most messages one ReceiveMessage call returns (and so the largest
/// batch this trigger builds).
pub const MAX_BATCH_SIZE: i32 = 10;

/// Pause after an SQS error before polling again, so a server that is down
/// is not hammered.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// What the trigger polls and where it delivers.
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// The queue the mapping reads (the request queue).
    pub queue_url: String,
    /// The Lambda invoke API URL of the function.
    pub invoke_url: String,
    /// Messages per invocation, 1 to 10 (the mapping's `BatchSize`).
    pub batch_size: i32,
    /// Long-poll wait per receive, 0 to 20 seconds.
    pub wait_seconds: i32,
    /// How long an invocation may take before its batch counts as failed
    /// (the function's timeout).
    pub invoke_timeout: Duration,
    /// Visibility timeout for received messages; `None` keeps the queue's.
    pub visibility_timeout: Option<i32>,
}

/// Why the trigger could not start or poll.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// A setting is out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// The queue could not be read (or its ARN looked up).
    #[error("SQS error on {queue_url}: {message}")]
    Sqs {
        /// The queue concerned.
        queue_url: String,
        /// The SDK's error, with its context.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// What happened to one batch.
#[derive(Debug, Clone, Default)]
pub struct BatchReport {
    /// The event the function was invoked with (`Null` when the queue
    /// gave no messages).
    pub event: Value,
    /// Message ids deleted after the function handled them.
    pub deleted: Vec<String>,
    /// Message ids left on the queue for another try.
    pub failed: Vec<String>,
    /// Set when the whole batch failed (invocation error, timeout, or a
    /// response the mapping would reject), saying why.
    pub batch_error: Option<String>,
}

/// One event source mapping: a queue, a function, a batch size.
pub struct Trigger {
    /// What to poll and where to deliver.
    config: TriggerConfig,
    /// Reads and deletes messages.
    sqs: aws_sdk_sqs::Client,
    /// Invokes the function; its timeout is the invocation timeout.
    http: reqwest::Client,
    /// The queue's ARN, the records' `eventSourceARN`.
    source_arn: String,
    /// The queue's region, the records' `awsRegion`.
    region: String,
}

impl Trigger {
    /// Checks the settings and looks up the queue's ARN.
    pub async fn new(
        config: TriggerConfig,
        sqs: aws_sdk_sqs::Client,
    ) -> Result<Trigger, TriggerError> {
        if !(1..=MAX_BATCH_SIZE).contains(&config.batch_size) {
            return Err(TriggerError::InvalidConfig(format!(
                "batch size {} is not between 1 and {MAX_BATCH_SIZE}",
                config.batch_size
            )));
        }
        if !(0..=20).contains(&config.wait_seconds) {
            return Err(TriggerError::InvalidConfig(format!(
                "wait of {} s is not between 0 and 20",
                config.wait_seconds
            )));
        }
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&config.queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|error| sqs_error(&config.queue_url, &error))?;
        let source_arn = attributes
            .attributes()
            .and_then(|map| map.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| TriggerError::Sqs {
                queue_url: config.queue_url.clone(),
                message: "the queue has no QueueArn attribute".into(),
            })?;
        // arn:aws:sqs:REGION:ACCOUNT:NAME
        let region = source_arn.split(':').nth(3).unwrap_or_default().to_owned();
        let http = reqwest::Client::builder()
            .timeout(config.invoke_timeout)
            .build()?;
        Ok(Trigger {
            config,
            sqs,
            http,
            source_arn,
            region,
        })
    }

    /// The queue's ARN, as the records carry it.
    pub fn source_arn(&self) -> &str {
        &self.source_arn
    }

    /// Polls until `shutdown` completes. A batch being handled is finished
    /// first; only the wait for messages is cut short.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let received = tokio::select! {
                () = &mut shutdown => return,
                received = self.receive() => received,
            };
            match received {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    let report = self.deliver(&messages).await;
                    tracing::info!(
                        received = messages.len(),
                        deleted = report.deleted.len(),
                        failed = report.failed.len(),
                        batch_error = report.batch_error.as_deref().unwrap_or(""),
                        "batch delivered"
                    );
                }
                Err(error) => {
                    tracing::warn!("{error}; polling again in {RETRY_PAUSE:?}");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(RETRY_PAUSE) => {}
                    }
                }
            }
        }
    }

    /// One receive, invoke and delete round. With an empty queue (after the
    /// long-poll wait) the report has no event.
    pub async fn poll_once(&self) -> Result<BatchReport, TriggerError> {
        let messages = self.receive().await?;
        if messages.is_empty() {
            return Ok(BatchReport::default());
        }
        Ok(self.deliver(&messages).await)
    }

    async fn receive(&self) -> Result<Vec<Message>, TriggerError> {
        let mut receive = self
            .sqs
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(self.config.batch_size)
            .wait_time_seconds(self.config.wait_seconds)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All");
        if let Some(seconds) = self.config.visibility_timeout {
            receive = receive.visibility_timeout(seconds);
        }
        let output = receive
            .send()
            .await
            .map_err(|error| sqs_error(&self.config.queue_url, &error))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Invokes the function with `messages` and settles them by its answer.
    async fn deliver(&self, messages: &[Message]) -> BatchReport {
        let event = sqs_event(messages, &self.source_arn, &self.region);
        let ids: Vec<String> = messages
            .iter()
            .map(|m| m.message_id().unwrap_or_default().to_owned())
            .collect();
        let (failed, batch_error) = match self.invoke(&event).await {
            Ok(response) => match failed_ids(&response, &ids) {
                Ok(failed) => (failed, None),
                Err(reason) => (ids.iter().cloned().collect(), Some(reason)),
            },
            Err(reason) => (ids.iter().cloned().collect(), Some(reason)),
        };
        if let Some(reason) = &batch_error {
            tracing::warn!(messages = ids.len(), "the whole batch failed: {reason}");
        }
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
            .collect();
        let deleted = self.delete(&done).await;
        BatchReport {
            event,
            failed: ids.into_iter().filter(|id| failed.contains(id)).collect(),
            deleted,
            batch_error,
        }
    }

    /// Calls the invoke API; the function's answer, or why there is none.
    async fn invoke(&self, event: &Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.config.invoke_url)
            .json(event)
            .send()
            .await
            .map_err(|error| format!("invoke failed: {error}"))?;
        let status = response.status();
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .text()
            .await
            .map_err(|error| format!("invoke answer broke off: {error}"))?;
        if let Some(kind) = function_error {
            return Err(format!("function error ({kind}): {body}"));
        }
        if !status.is_success() {
            return Err(format!("invoke returned {status}: {body}"));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body)
            .map_err(|error| format!("the function's answer is not JSON ({error}): {body}"))
    }

    /// Deletes handled messages (DeleteMessageBatch); returns the ids
    /// deleted. A message not deleted comes back after its visibility
    /// timeout: delivery is at least once.
    async fn delete(&self, messages: &[&Message]) -> Vec<String> {
        let mut deleted = Vec::new();
        for chunk in messages.chunks(MAX_BATCH_SIZE as usize) {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(index, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(entries))
                .send()
                .await;
            match result {
                Ok(output) => {
                    for entry in output.successful() {
                        if let Some(m) = entry.id().parse::<usize>().ok().and_then(|i| chunk.get(i))
                        {
                            deleted.push(m.message_id().unwrap_or_default().to_owned());
                        }
                    }
                    for entry in output.failed() {
                        tracing::warn!(
                            entry = entry.id(),
                            code = entry.code(),
                            "could not delete a handled message"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!("{}", sqs_error(&self.config.queue_url, &error));
                }
            }
        }
        deleted
    }
}

/// The SQS event the event source mapping would send for `messages`.
pub fn sqs_event(messages: &[Message], source_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|message| {
            let attributes: Map<String, Value> = message
                .attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
                .collect();
            let message_attributes: Map<String, Value> = message
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| {
                    let b64 = |blob: &aws_sdk_sqs::primitives::Blob| {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(blob.as_ref()))
                    };
                    (
                        name.clone(),
                        json!({
                            "stringValue": value.string_value(),
                            "binaryValue": value.binary_value().map(b64),
                            "stringListValues": value.string_list_values(),
                            "binaryListValues": value.binary_list_values().iter().map(b64).collect::<Vec<_>>(),
                            "dataType": value.data_type(),
                        }),
                    )
                })
                .collect();
            json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body().unwrap_or_default(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a partial batch response reports failed. As the event
/// source mapping does, an identifier that is missing, empty or not in the
/// batch makes the whole response invalid (`Err`, the batch is retried); no
/// `batchItemFailures` at all means everything succeeded.
pub fn failed_ids(response: &Value, batch: &[String]) -> Result<HashSet<String>, String> {
    let Some(failures) = response.get("batchItemFailures") else {
        return Ok(HashSet::new());
    };
    let Some(failures) = failures.as_array() else {
        return Err(format!("batchItemFailures is not an array: {failures}"));
    };
    let mut failed = HashSet::new();
    for failure in failures {
        match failure.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if batch.iter().any(|b| b == id) => {
                failed.insert(id.to_owned());
            }
            _ => return Err(format!("invalid batch item failure {failure}")),
        }
    }
    Ok(failed)
}

/// An SQS error in one line: the service's code and message when it
/// answered, the whole cause chain when it could not be reached.
fn sqs_error<E>(queue_url: &str, error: &E) -> TriggerError
where
    E: std::error::Error + aws_sdk_sqs::error::ProvideErrorMetadata + 'static,
{
    let message = match (error.code(), error.message()) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_sqs::error::DisplayErrorContext(error).to_string(),
    };
    TriggerError::Sqs {
        queue_url: queue_url.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn partial_batch_responses() {
        assert!(
            failed_ids(&json!({"batchItemFailures": []}), &batch())
                .expect("valid")
                .is_empty()
        );
        assert!(
            failed_ids(&Value::Null, &batch())
                .expect("valid")
                .is_empty()
        );
        assert_eq!(
            failed_ids(
                &json!({"batchItemFailures": [{"itemIdentifier": "b"}]}),
                &batch()
            )
            .expect("valid"),
            HashSet::from(["b".to_owned()])
        );
    }

    #[test]
    fn invalid_partial_batch_responses_fail_the_batch() {
        for response in [
            json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]}),
            json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
            json!({"batchItemFailures": [{"itemIdentifier": null}]}),
            json!({"batchItemFailures": {}}),
        ] {
            assert!(failed_ids(&response, &batch()).is_err(), "{response}");
        }
    }
}

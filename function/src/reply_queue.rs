//! Sending reply envelopes to the reply queue, batched.

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::HashSet;
use xmpp_lambda_shared::{ReplyEnvelope, conversation_id};

/// SendMessageBatch takes at most 10 entries…
const MAX_BATCH_ENTRIES: usize = 10;
/// …and at most 256 KiB of message bodies in all.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// A reply for the record at `index` of the batch.
pub(crate) struct Outgoing {
    /// The record's position in the event's batch.
    pub index: usize,
    /// What goes to the reply queue.
    pub reply: ReplyEnvelope,
}

/// Sends the replies in order, at most 10 per call, and returns the indexes
/// of the records whose reply was not sent. With `in_order`, sending stops
/// at the first failure: a later reply must not overtake it.
pub(crate) async fn send_replies(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    outgoing: Vec<Outgoing>,
    in_order: bool,
) -> HashSet<usize> {
    let fifo_queue = queue_url.ends_with(".fifo");
    let mut unsent = HashSet::new();
    let mut stopped = false;
    for chunk in chunks(outgoing) {
        if stopped {
            unsent.extend(chunk.iter().map(|out| out.index));
            continue;
        }
        let failed = send_chunk(client, queue_url, &chunk, fifo_queue).await;
        stopped = in_order && !failed.is_empty();
        unsent.extend(failed);
    }
    unsent
}

/// Splits replies into batches SQS accepts, keeping their order.
fn chunks(outgoing: Vec<Outgoing>) -> Vec<Vec<Outgoing>> {
    let mut chunks: Vec<Vec<Outgoing>> = Vec::new();
    let mut bytes = 0;
    for out in outgoing {
        let size = out.reply.to_json().len();
        let full = chunks
            .last()
            .is_none_or(|chunk| chunk.len() >= MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES);
        if full {
            chunks.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(out);
        }
    }
    chunks
}

/// One SendMessageBatch call; returns the indexes that failed.
async fn send_chunk(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    chunk: &[Outgoing],
    fifo_queue: bool,
) -> Vec<usize> {
    let mut failed = Vec::new();
    let mut entries = Vec::with_capacity(chunk.len());
    for out in chunk {
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(format!("r{}", out.index))
            .message_body(out.reply.to_json());
        if fifo_queue {
            // One conversation's replies stay in order; a resent reply is
            // dropped by SQS as a duplicate within five minutes.
            entry = entry
                .message_group_id(conversation_id(&out.reply.request))
                .message_deduplication_id(out.reply.id.clone());
        }
        match entry.build() {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                tracing::warn!(envelope_id = %out.reply.id, error = %error, "cannot build the reply message");
                failed.push(out.index);
            }
        }
    }
    if entries.is_empty() {
        return failed;
    }
    let sent = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await;
    match sent {
        Ok(output) => {
            for entry in output.failed() {
                tracing::warn!(
                    entry = entry.id(),
                    code = entry.code(),
                    message = entry.message().unwrap_or_default(),
                    "the reply queue refused a reply: its request will be retried"
                );
                if let Some(index) = entry.id().strip_prefix('r').and_then(|i| i.parse().ok()) {
                    failed.push(index);
                }
            }
        }
        Err(error) => {
            let reason = match (error.code(), error.message()) {
                (Some(code), Some(text)) => format!("{code}: {text}"),
                _ => aws_sdk_sqs::error::DisplayErrorContext(&error).to_string(),
            };
            tracing::warn!(
                error = %reason,
                replies = chunk.len(),
                "cannot send replies: their requests will be retried"
            );
            failed.extend(chunk.iter().map(|out| out.index));
        }
    }
    failed.sort_unstable();
    failed.dedup();
    failed
}

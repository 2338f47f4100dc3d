//! Sending envelopes to the reply queue, batched: the answers to an SQS
//! batch, and the messages a bot pushes through the [`crate::Outbox`].

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::HashSet;
use xmpp_lambda_shared::{ReplyEnvelope, conversation_id};

/// SendMessageBatch takes at most 10 entries…
const MAX_BATCH_ENTRIES: usize = 10;
/// …and at most 256 KiB of message bodies in all.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One message for the reply queue.
pub(crate) struct Outgoing {
    /// Its position among what is sent (for a reply: its record's position
    /// in the event's batch), to report which failed.
    pub index: usize,
    /// The message body: an envelope's JSON.
    pub body: String,
    /// The FIFO message group: the conversation, or the recipient.
    pub group: String,
    /// The FIFO deduplication id: the envelope id, so a resend within five
    /// minutes is dropped by SQS.
    pub dedup_id: String,
}

impl Outgoing {
    /// The reply envelope answering the record at `index`.
    pub(crate) fn reply(index: usize, reply: &ReplyEnvelope) -> Outgoing {
        Outgoing {
            index,
            body: reply.to_json(),
            // One conversation's replies stay in order.
            group: conversation_id(&reply.request),
            dedup_id: reply.id.clone(),
        }
    }
}

/// Sends the messages in order, at most 10 per call, and returns the
/// indexes of those not sent. With `in_order`, sending stops at the first
/// failure: a later message must not overtake it.
pub(crate) async fn send_in_batches(
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

/// Splits messages into batches SQS accepts, keeping their order.
fn chunks(outgoing: Vec<Outgoing>) -> Vec<Vec<Outgoing>> {
    let mut chunks: Vec<Vec<Outgoing>> = Vec::new();
    let mut bytes = 0;
    for out in outgoing {
        let size = out.body.len();
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
            .message_body(out.body.clone());
        if fifo_queue {
            entry = entry
                .message_group_id(out.group.clone())
                .message_deduplication_id(out.dedup_id.clone());
        }
        match entry.build() {
            Ok(entry) => entries.push(entry),
            Err(error) => {
                tracing::warn!(envelope_id = %out.dedup_id, error = %error, "cannot build the message");
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
                    "the reply queue refused a message"
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
                messages = chunk.len(),
                "cannot send to the reply queue"
            );
            failed.extend(chunk.iter().map(|out| out.index));
        }
    }
    failed.sort_unstable();
    failed.dedup();
    failed
}

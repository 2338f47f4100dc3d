//! Sending envelopes to the reply queue, batched: the answers to an SQS
//! batch, and the messages a bot pushes through the [`crate::Outbox`].

use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::collections::HashSet;
use xmpp_lambda_shared::{BotResponse, MAX_QUEUE_MESSAGE_BYTES, ReplyEnvelope, conversation_id};

/// SendMessageBatch takes at most 10 entries…
const MAX_BATCH_ENTRIES: usize = 10;
/// …and at most 1 MiB of message bodies in all (the same as one message).
const MAX_BATCH_BYTES: usize = MAX_QUEUE_MESSAGE_BYTES;

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
    /// The reply envelope answering the record at `index`, made to fit in
    /// one SQS message (see [`fitted_reply_json`]).
    pub(crate) fn reply(index: usize, reply: &ReplyEnvelope) -> Outgoing {
        Outgoing {
            index,
            body: fitted_reply_json(reply),
            // One conversation's replies stay in order.
            group: conversation_id(&reply.request),
            dedup_id: reply.id.clone(),
        }
    }
}

/// The reply envelope's JSON, at most [`MAX_QUEUE_MESSAGE_BYTES`]: SQS
/// refuses anything larger, and a reply it refuses would be retried until
/// the request is dead-lettered, the sender never hearing a word. A bot
/// answer too large to carry becomes a `500` (the sender gets
/// `internal-server-error`, as for any reply the connector would refuse);
/// if the request alone is too large, its `stanza` and `body` are left
/// out, since the connector answers from the addresses, kind, type and id.
pub(crate) fn fitted_reply_json(reply: &ReplyEnvelope) -> String {
    let json = reply.to_json();
    if json.len() <= MAX_QUEUE_MESSAGE_BYTES {
        return json;
    }
    tracing::warn!(
        envelope_id = %reply.id,
        bytes = json.len(),
        limit = MAX_QUEUE_MESSAGE_BYTES,
        "the reply does not fit in an SQS message: the sender gets an error instead"
    );
    let mut refused = reply.clone();
    let text = format!(
        "the bot's answer makes a reply envelope of {} bytes, over SQS's limit of {MAX_QUEUE_MESSAGE_BYTES}",
        json.len()
    );
    refused.response =
        BotResponse::from_http(500, Some("text/plain; charset=utf-8"), text.as_bytes());
    let json = refused.to_json();
    if json.len() <= MAX_QUEUE_MESSAGE_BYTES {
        return json;
    }
    refused.request.stanza.clear();
    refused.request.body = None;
    refused.to_json()
}

/// Sends the messages in order, at most 10 per call, and returns the
/// indexes of those not sent. With `in_order`, a message whose group had a
/// failure is not sent: it must not overtake the one that failed. Other
/// groups go on.
pub(crate) async fn send_in_batches(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    outgoing: Vec<Outgoing>,
    in_order: bool,
) -> HashSet<usize> {
    let fifo_queue = queue_url.ends_with(".fifo");
    let mut unsent = HashSet::new();
    let mut stopped_groups: HashSet<String> = HashSet::new();
    for chunk in chunks(outgoing) {
        let (held, chunk): (Vec<Outgoing>, Vec<Outgoing>) = chunk
            .into_iter()
            .partition(|out| in_order && stopped_groups.contains(&out.group));
        unsent.extend(held.iter().map(|out| out.index));
        if chunk.is_empty() {
            continue;
        }
        let failed = send_chunk(client, queue_url, &chunk, fifo_queue).await;
        if in_order {
            stopped_groups.extend(
                chunk
                    .iter()
                    .filter(|out| failed.contains(&out.index))
                    .map(|out| out.group.clone()),
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_lambda_shared::{Request, RequestEnvelope};

    fn request(stanza_bytes: usize) -> Request {
        serde_json::from_value(serde_json::json!({
            "to": "echo@bot.localhost",
            "from": "alice@localhost/phone",
            "kind": "message",
            "stanza": "x".repeat(stanza_bytes),
            "body": "hi",
            "type": "chat",
            "id": "m1",
        }))
        .expect("a request")
    }

    fn out(index: usize, group: &str, bytes: usize) -> Outgoing {
        Outgoing {
            index,
            body: "x".repeat(bytes),
            group: group.into(),
            dedup_id: format!("d{index}"),
        }
    }

    #[test]
    fn a_reply_that_fits_is_sent_as_it_is() {
        let reply = RequestEnvelope::new("e1", request(10)).reply(BotResponse::json("{}"));
        assert_eq!(fitted_reply_json(&reply), reply.to_json());
    }

    #[test]
    fn an_answer_too_large_for_sqs_becomes_an_error_for_the_sender() {
        let huge = format!("{{\"body\":\"{}\"}}", "a".repeat(MAX_QUEUE_MESSAGE_BYTES));
        let reply = RequestEnvelope::new("e1", request(10)).reply(BotResponse::json(huge));
        let json = fitted_reply_json(&reply);
        assert!(json.len() <= MAX_QUEUE_MESSAGE_BYTES);
        let sent = ReplyEnvelope::from_json(&json).expect("a reply envelope");
        assert_eq!((sent.id.as_str(), sent.response.status), ("e1", 500));
        assert_eq!(sent.request, reply.request, "the request is kept whole");
    }

    #[test]
    fn a_request_too_large_to_repeat_keeps_only_what_the_answer_needs() {
        let reply = RequestEnvelope::new("e1", request(MAX_QUEUE_MESSAGE_BYTES))
            .reply(BotResponse::json(r#"{"body":"ok"}"#));
        let json = fitted_reply_json(&reply);
        assert!(json.len() <= MAX_QUEUE_MESSAGE_BYTES);
        let sent = ReplyEnvelope::from_json(&json).expect("a reply envelope");
        assert_eq!(sent.response.status, 500);
        assert_eq!(sent.request.stanza, "");
        assert_eq!(sent.request.body, None);
        assert_eq!(
            (sent.request.from.as_str(), sent.request.id.as_deref()),
            ("alice@localhost/phone", Some("m1"))
        );
    }

    #[test]
    fn batches_hold_ten_messages_or_one_mebibyte_in_order() {
        let outgoing: Vec<Outgoing> = (0..12).map(|i| out(i, "g", 10)).collect();
        let sizes: Vec<usize> = chunks(outgoing).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 2]);
        let outgoing = vec![
            out(0, "g", 600 * 1024),
            out(1, "g", 600 * 1024),
            out(2, "g", 10),
        ];
        let batches: Vec<Vec<usize>> = chunks(outgoing)
            .iter()
            .map(|chunk| chunk.iter().map(|o| o.index).collect())
            .collect();
        assert_eq!(batches, [vec![0], vec![1, 2]]);
    }
}

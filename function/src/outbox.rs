//! Messages a bot sends on its own (DESIGN §6): the [`Outbox`] writes them
//! as send envelopes to the reply queue, where the connector picks them up
//! and writes them to their recipients.

use crate::reply_queue::{Outgoing, send_in_batches};
use xmpp_lambda_shared::{
    MAX_QUEUE_MESSAGE_BYTES, MAX_SEND_MESSAGES, OutboundMessage, SendEnvelope, message_group_id,
};

/// The namespace of envelope ids derived from a key ([`Outbox::send_all_once`]),
/// so they cannot collide with ids other software derives the same way.
const ONCE_NAMESPACE: uuid::Uuid = uuid::uuid!("dbf0a555-8135-4d77-bb44-53baa37d2eec");

/// Room in a send envelope for everything but its messages: `v`, the id
/// and the JSON around them.
const ENVELOPE_OVERHEAD: usize = 128;

/// Why messages were not (all) handed to the reply queue.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// There is no reply queue to write to.
    #[error("REPLY_QUEUE_URL is not set: pushed messages go through the reply queue")]
    NoReplyQueue,
    /// SQS refused or could not be reached for some envelopes; the others
    /// were sent.
    #[error("{failed} of {total} send envelopes could not be queued (see the log)")]
    NotQueued {
        /// Envelopes not sent.
        failed: usize,
        /// Envelopes in all.
        total: usize,
    },
}

/// Writes outbound messages to the reply queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    /// The SQS client the function already has.
    client: aws_sdk_sqs::Client,
    /// The reply queue the connector polls.
    queue_url: String,
}

impl Outbox {
    /// An outbox writing to `queue_url` with `client`.
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Outbox {
        Outbox {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Sends one message; returns its envelope id.
    pub async fn send(&self, message: OutboundMessage) -> Result<String, OutboxError> {
        let mut ids = self.send_all(vec![message]).await?;
        Ok(ids.pop().unwrap_or_default())
    }

    /// Sends messages, each recipient's in the order given; returns the ids
    /// of the envelopes written (up to 10 messages each, one recipient per
    /// envelope).
    pub async fn send_all(
        &self,
        messages: Vec<OutboundMessage>,
    ) -> Result<Vec<String>, OutboxError> {
        self.send_envelopes(messages, &mut || uuid::Uuid::new_v4().to_string())
            .await
    }

    /// Sends messages like [`Outbox::send_all`], with envelope ids derived
    /// from `key` instead of random ones: the same messages sent again
    /// with the same key (a schedule's retried invocation, a webhook
    /// delivered twice) make the same envelopes, which the connector drops
    /// as repeats, and a FIFO reply queue drops within its five-minute
    /// deduplication window. Use a key that names the occurrence, such as
    /// a schedule's name and scheduled time.
    pub async fn send_all_once(
        &self,
        key: &str,
        messages: Vec<OutboundMessage>,
    ) -> Result<Vec<String>, OutboxError> {
        self.send_envelopes(messages, &mut ids_from(key)).await
    }

    async fn send_envelopes(
        &self,
        messages: Vec<OutboundMessage>,
        new_id: &mut dyn FnMut() -> String,
    ) -> Result<Vec<String>, OutboxError> {
        let envelopes = envelopes_for(&messages, new_id);
        let ids: Vec<String> = envelopes.iter().map(|(_, e)| e.id.clone()).collect();
        let outgoing = envelopes
            .iter()
            .enumerate()
            .map(|(index, (group, envelope))| Outgoing {
                index,
                body: envelope.to_json(),
                group: group.clone(),
                dedup_id: envelope.id.clone(),
            })
            .collect();
        let fifo = self.queue_url.ends_with(".fifo");
        let unsent = send_in_batches(&self.client, &self.queue_url, outgoing, fifo).await;
        if !unsent.is_empty() {
            return Err(OutboxError::NotQueued {
                failed: unsent.len(),
                total: ids.len(),
            });
        }
        tracing::info!(
            messages = messages.len(),
            envelopes = ids.len(),
            "pushed messages queued"
        );
        Ok(ids)
    }
}

/// Envelope ids derived from `key`: the `n`th call gives the same id for
/// the same key, every time.
fn ids_from(key: &str) -> impl FnMut() -> String + '_ {
    let mut n = 0u32;
    move || {
        n += 1;
        uuid::Uuid::new_v5(&ONCE_NAMESPACE, format!("{key}\n{n}").as_bytes()).to_string()
    }
}

/// Packs messages into send envelopes: consecutive messages to the same
/// recipient share one (at most [`MAX_SEND_MESSAGES`], and no more than an
/// SQS message holds), and each envelope's FIFO group is its recipient's
/// bare JID, so one recipient's messages stay in order and others never
/// wait for them.
pub(crate) fn envelopes_for(
    messages: &[OutboundMessage],
    new_id: &mut dyn FnMut() -> String,
) -> Vec<(String, SendEnvelope)> {
    // Each envelope with the bytes its messages take so far.
    let mut envelopes: Vec<(String, SendEnvelope, usize)> = Vec::new();
    for message in messages {
        let recipient = message.to.split('/').next().unwrap_or_default();
        let group = message_group_id(recipient);
        let value = message.to_value();
        // The message's JSON, and the comma before it.
        let size = value.to_string().len() + 1;
        match envelopes.last_mut() {
            Some((last_group, envelope, bytes))
                if *last_group == group
                    && envelope.send.len() < MAX_SEND_MESSAGES
                    && *bytes + size <= MAX_QUEUE_MESSAGE_BYTES - ENVELOPE_OVERHEAD =>
            {
                envelope.send.push(value);
                *bytes += size;
            }
            _ => envelopes.push((group, SendEnvelope::new(new_id(), vec![value]), size)),
        }
    }
    envelopes
        .into_iter()
        .map(|(group, envelope, _)| (group, envelope))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("e{next}")
        }
    }

    #[test]
    fn one_envelope_per_run_of_one_recipient_at_most_ten_messages() {
        let mut messages: Vec<OutboundMessage> = (0..12)
            .map(|n| OutboundMessage::chat("alice@example.com/phone", format!("a{n}")))
            .collect();
        messages.push(OutboundMessage::chat("bob@example.com", "b"));
        messages.push(OutboundMessage::chat("alice@example.com", "a again"));
        let envelopes = envelopes_for(&messages, &mut ids());
        let shape: Vec<(&str, &str, usize)> = envelopes
            .iter()
            .map(|(group, envelope)| (group.as_str(), envelope.id.as_str(), envelope.send.len()))
            .collect();
        assert_eq!(
            shape,
            [
                ("alice@example.com", "e1", 10),
                ("alice@example.com", "e2", 2),
                ("bob@example.com", "e3", 1),
                ("alice@example.com", "e4", 1),
            ]
        );
        // Every envelope reads back as the connector reads it.
        for (_, envelope) in &envelopes {
            let read = SendEnvelope::from_json(&envelope.to_json()).expect("valid envelope");
            assert_eq!(&read, envelope);
        }
        assert_eq!(
            envelopes[0].1.send[0],
            serde_json::json!({"to": "alice@example.com/phone", "body": "a0"})
        );
    }

    #[test]
    fn large_messages_get_an_envelope_each_that_sqs_accepts() {
        let big = "x".repeat(400 * 1024);
        let messages: Vec<OutboundMessage> = (0..3)
            .map(|_| OutboundMessage::chat("alice@example.com", big.clone()))
            .collect();
        let envelopes = envelopes_for(&messages, &mut ids());
        let sizes: Vec<usize> = envelopes.iter().map(|(_, e)| e.send.len()).collect();
        assert_eq!(sizes, [2, 1]);
        for (_, envelope) in &envelopes {
            assert!(envelope.to_json().len() <= MAX_QUEUE_MESSAGE_BYTES);
        }
    }

    #[test]
    fn ids_from_a_key_repeat_for_the_same_key_only() {
        let first: Vec<String> = {
            let mut next = ids_from("daily\n2026-12-24T08:00:00Z");
            vec![next(), next()]
        };
        let again: Vec<String> = {
            let mut next = ids_from("daily\n2026-12-24T08:00:00Z");
            vec![next(), next()]
        };
        let other = ids_from("daily\n2026-12-25T08:00:00Z")();
        assert_eq!(first, again);
        assert_ne!(first[0], first[1]);
        assert_ne!(first[0], other);
        assert!(uuid::Uuid::parse_str(&first[0]).is_ok(), "{}", first[0]);
    }

    #[test]
    fn nothing_to_send_is_no_envelope() {
        assert!(envelopes_for(&[], &mut ids()).is_empty());
    }
}

//! SQS batches: each record a request envelope, each answer a reply
//! envelope on the reply queue, and the records to retry reported back as
//! `batchItemFailures` (the event source's partial batch responses).
//!
//! A batch holds several conversations: on a FIFO queue a conversation is
//! a message group, on a standard queue every record is its own.
//! Conversations are answered at the same time, each one record after the
//! other, so a batch of ten conversations takes about one bot call. A
//! record that fails for now is retried with the rest of its own
//! conversation (answering those now would overtake it), never another's.
//! On the last delivery before the dead-letter queue a failure is answered
//! instead: the sender hears the error rather than nothing, and an IQ gets
//! the answer XMPP requires.
//!
//! A streamed answer goes out part by part as the bot writes it (see
//! `stream_parts`), not with the batch: the replies its conversation
//! answered before it go first, so the conversation stays in order.

use crate::answer::drive;
use crate::bot::Bot;
use crate::error::HandlerError;
use crate::reply_queue::{Outgoing, send_in_batches};
use crate::stream_parts::{QueuedParts, Streamed, send_parts};
use crate::writer::LINE_BUFFER;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::channel::mpsc;
use futures::future::join_all;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use xmpp_lambda_shared::{BotResponse, ReplyEnvelope, RequestEnvelope};

/// How many conversations are answered at once (a standard-queue batch
/// can hold up to 10,000 records with a batching window).
const MAX_CONCURRENT_CONVERSATIONS: usize = 32;

/// The record attribute that says how often SQS has handed the message out.
const RECEIVE_COUNT: &str = "ApproximateReceiveCount";
/// The record attribute naming a FIFO message's group.
const MESSAGE_GROUP: &str = "MessageGroupId";

/// What the batch may take and when retrying stops.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BatchLimits {
    /// When the bot's time is up (the invocation's deadline less a
    /// reserve); `None` when the runtime gave none.
    pub deadline: Option<Instant>,
    /// The request queue's `maxReceiveCount` (`MAX_RECEIVE_COUNT`): a record
    /// delivered that often goes to the dead-letter queue if it fails
    /// again, so it is answered instead. `None`: always retried.
    pub max_receive_count: Option<u32>,
    /// The least time between two corrections of a streamed message.
    pub edit_interval: Duration,
}

/// The reply queue, for the parts of streamed answers (sent as they come,
/// not with the batch).
#[derive(Clone, Copy)]
struct ReplyQueue<'a> {
    /// The SQS client.
    client: &'a aws_sdk_sqs::Client,
    /// The queue's URL.
    url: &'a str,
    /// Whether the request queue keeps order (then a reply that could not
    /// be sent holds back the rest of its conversation's).
    fifo: bool,
}

/// What became of one record before replies are sent.
enum Outcome {
    /// A final answer, to be sent as a reply with the batch.
    Answered(Box<ReplyEnvelope>),
    /// Its answer is on the reply queue already: a streamed answer's
    /// parts, or a reply sent early to go before one.
    Sent,
    /// Its answer could not be queued: retried, and the rest of its
    /// conversation with it.
    NotSent,
    /// The bot failed for now (no response, 429, 5xx): retried, and the
    /// rest of its conversation with it.
    Retry,
    /// Not a request envelope: reported failed so that it ends in the
    /// dead-letter queue. Its conversation goes on: there is no answer
    /// to keep in order, and holding the rest back would dead-letter them
    /// with it.
    Unreadable,
    /// Not asked: an earlier record of its conversation is retried.
    Held,
}

/// Handles one SQS batch and returns the partial batch response.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
    client: &aws_sdk_sqs::Client,
    reply_queue_url: &str,
    event: Value,
    limits: BatchLimits,
) -> Result<Value, HandlerError> {
    let event: SqsEvent = serde_json::from_value(event)
        .map_err(|error| HandlerError::InvalidSqsEvent(error.to_string()))?;
    let records = event.records;
    let mut ids = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        // Without its id a record cannot be reported failed, so the only
        // safe answer is to fail the whole batch.
        match record.message_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => ids.push(id.to_owned()),
            None => {
                return Err(HandlerError::InvalidSqsEvent(format!(
                    "record {index} has no messageId"
                )));
            }
        }
    }
    let fifo = records.iter().any(|record| {
        record
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
    });

    let queue = ReplyQueue {
        client,
        url: reply_queue_url,
        fifo,
    };
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_CONVERSATIONS));
    let answered = join_all(conversations(&records, fifo).into_iter().map(|indexes| {
        let limit = Arc::clone(&limit);
        let records = &records;
        async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = limit.acquire_owned().await.ok();
            answer_conversation(bot, records, &indexes, limits, queue).await
        }
    }))
    .await;
    let mut outcomes: Vec<Option<Outcome>> = records.iter().map(|_| None).collect();
    for (index, outcome) in answered.into_iter().flatten() {
        outcomes[index] = Some(outcome);
    }

    // In batch order, so each conversation's replies keep theirs.
    let outgoing: Vec<Outgoing> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(index, outcome)| match outcome {
            Some(Outcome::Answered(reply)) => Some(Outgoing::reply(index, reply)),
            _ => None,
        })
        .collect();
    let unsent = send_in_batches(client, reply_queue_url, outgoing, fifo).await;
    if !unsent.is_empty() {
        tracing::warn!(
            replies = unsent.len(),
            "replies not sent: their requests will be retried"
        );
    }

    let failures: Vec<Value> = ids
        .iter()
        .zip(&outcomes)
        .enumerate()
        .filter(|(index, (_, outcome))| match outcome {
            Some(Outcome::Answered(_)) => unsent.contains(index),
            Some(Outcome::Sent) => false,
            _ => true,
        })
        .map(|(_, (id, _))| json!({ "itemIdentifier": id }))
        .collect();
    tracing::info!(
        records = records.len(),
        failed = failures.len(),
        fifo,
        "handled an SQS batch"
    );
    Ok(json!({ "batchItemFailures": failures }))
}

/// The batch's conversations as record indexes, each in batch order: on a
/// FIFO queue one per message group (in the order the groups first
/// appear), on a standard queue one per record.
fn conversations(records: &[SqsMessage], fifo: bool) -> Vec<Vec<usize>> {
    if !fifo {
        return (0..records.len()).map(|index| vec![index]).collect();
    }
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        // A FIFO record always has a group; one without keeps the order of
        // the others without one.
        let group = record.attributes.get(MESSAGE_GROUP).map(String::as_str);
        match groups.iter_mut().find(|(known, _)| *known == group) {
            Some((_, indexes)) => indexes.push(index),
            None => groups.push((group, vec![index])),
        }
    }
    groups.into_iter().map(|(_, indexes)| indexes).collect()
}

/// Answers one conversation's records one after the other; after a record
/// to retry, the rest are held back.
async fn answer_conversation<B: Bot>(
    bot: &B,
    records: &[SqsMessage],
    indexes: &[usize],
    limits: BatchLimits,
    queue: ReplyQueue<'_>,
) -> Vec<(usize, Outcome)> {
    let mut outcomes = Vec::with_capacity(indexes.len());
    let mut holding = false;
    for &index in indexes {
        let record = &records[index];
        let last = is_last_delivery(record, limits.max_receive_count);
        let outcome = if holding {
            if last {
                answer_unasked(record)
            } else {
                Outcome::Held
            }
        } else {
            answer_record(bot, record, limits, last, queue, &mut outcomes).await
        };
        holding = holding || matches!(outcome, Outcome::Retry | Outcome::NotSent);
        outcomes.push((index, outcome));
    }
    let held = outcomes
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Held))
        .count();
    if held > 0 {
        tracing::info!(
            held,
            "left the rest of a conversation for later, behind a request to retry"
        );
    }
    outcomes
}

/// Whether SQS will move this record to the dead-letter queue rather than
/// hand it out again, should it fail now.
fn is_last_delivery(record: &SqsMessage, max_receive_count: Option<u32>) -> bool {
    let Some(max) = max_receive_count else {
        return false;
    };
    record
        .attributes
        .get(RECEIVE_COUNT)
        .and_then(|count| count.parse::<u32>().ok())
        .is_some_and(|count| count >= max)
}

/// The request envelope a record carries, or `None` (logged) when it
/// carries something else.
fn request_envelope(record: &SqsMessage) -> Option<RequestEnvelope> {
    match RequestEnvelope::from_json(record.body.as_deref().unwrap_or_default()) {
        Ok(envelope) => Some(envelope),
        Err(error) => {
            tracing::warn!(
                message_id = record.message_id.as_deref().unwrap_or_default(),
                error = %error,
                "not a request envelope: reported failed, so it ends in the dead-letter queue"
            );
            None
        }
    }
}

/// Asks the bot for one record's answer: a streamed answer is sent part
/// by part as it comes (after `earlier`, the conversation's replies not
/// yet sent, which are sent first and marked so), a whole one is left for
/// the batch.
async fn answer_record<B: Bot>(
    bot: &B,
    record: &SqsMessage,
    limits: BatchLimits,
    last: bool,
    queue: ReplyQueue<'_>,
    earlier: &mut [(usize, Outcome)],
) -> Outcome {
    let Some(envelope) = request_envelope(record) else {
        return Outcome::Unreadable;
    };
    let parts = QueuedParts {
        client: queue.client,
        queue_url: queue.url,
        envelope: &envelope,
    };
    let (tx, rx) = mpsc::channel(LINE_BUFFER);
    let ((), streamed) = futures::future::join(
        drive(bot, &envelope.request, limits.deadline, tx),
        send_parts(
            rx,
            limits.edit_interval,
            async || send_early(queue, earlier).await,
            async |seq, response, last| parts.send(seq, response, last).await,
        ),
    )
    .await;
    let response = match streamed {
        Streamed::Whole(response) => response,
        Streamed::Sent { parts } => {
            tracing::info!(envelope_id = %envelope.id, parts, "sent a streamed answer");
            return Outcome::Sent;
        }
        Streamed::NotSent => return Outcome::NotSent,
    };
    if response.is_retryable() {
        let message_id = record.message_id.as_deref().unwrap_or_default();
        if !last {
            tracing::warn!(
                message_id,
                envelope_id = %envelope.id,
                status = response.status,
                "the bot failed for now: the message will be retried"
            );
            return Outcome::Retry;
        }
        tracing::warn!(
            message_id,
            envelope_id = %envelope.id,
            status = response.status,
            "the bot failed on the last delivery: the sender gets the error instead of a retry"
        );
    }
    Outcome::Answered(Box::new(envelope.reply(response)))
}

/// Sends the answers in `earlier` not yet sent, in order, now (they must
/// precede a streamed answer on the reply queue): each becomes `Sent`, or
/// `NotSent` when the queue did not take it. `true` when all went.
async fn send_early(queue: ReplyQueue<'_>, earlier: &mut [(usize, Outcome)]) -> bool {
    let outgoing: Vec<Outgoing> = earlier
        .iter()
        .filter_map(|(index, outcome)| match outcome {
            Outcome::Answered(reply) => Some(Outgoing::reply(*index, reply)),
            _ => None,
        })
        .collect();
    if outgoing.is_empty() {
        return true;
    }
    let unsent = send_in_batches(queue.client, queue.url, outgoing, queue.fifo).await;
    for (index, outcome) in earlier.iter_mut() {
        if matches!(outcome, Outcome::Answered(_)) {
            *outcome = if unsent.contains(index) {
                Outcome::NotSent
            } else {
                Outcome::Sent
            };
        }
    }
    unsent.is_empty()
}

/// A held record on its last delivery: answered with the no-response error
/// without asking the bot (which would overtake the record being retried),
/// rather than dead-lettered in silence.
fn answer_unasked(record: &SqsMessage) -> Outcome {
    let Some(envelope) = request_envelope(record) else {
        return Outcome::Unreadable;
    };
    tracing::warn!(
        message_id = record.message_id.as_deref().unwrap_or_default(),
        envelope_id = %envelope.id,
        "a request held behind a retry is on its last delivery: the sender gets the no-response error"
    );
    Outcome::Answered(Box::new(envelope.reply(BotResponse::no_response())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(group: Option<&str>, receive_count: Option<&str>) -> SqsMessage {
        let mut record = SqsMessage::default();
        if let Some(group) = group {
            record
                .attributes
                .insert(MESSAGE_GROUP.to_owned(), group.to_owned());
        }
        if let Some(count) = receive_count {
            record
                .attributes
                .insert(RECEIVE_COUNT.to_owned(), count.to_owned());
        }
        record
    }

    #[test]
    fn fifo_conversations_are_message_groups_in_batch_order() {
        let records: Vec<SqsMessage> = ["a", "b", "a", "c", "b", "a"]
            .iter()
            .map(|group| record(Some(group), None))
            .collect();
        assert_eq!(
            conversations(&records, true),
            [vec![0, 2, 5], vec![1, 4], vec![3]]
        );
        assert_eq!(
            conversations(&records, false),
            (0..6).map(|index| vec![index]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_last_delivery_is_the_one_at_max_receive_count() {
        let third = record(None, Some("3"));
        assert!(!is_last_delivery(&third, None));
        assert!(!is_last_delivery(&third, Some(4)));
        assert!(is_last_delivery(&third, Some(3)));
        assert!(is_last_delivery(&third, Some(2)));
        assert!(!is_last_delivery(&record(None, None), Some(1)));
        assert!(!is_last_delivery(&record(None, Some("many")), Some(1)));
    }
}

//! SQS batches: each record a request envelope, each answer a reply
//! envelope on the reply queue, and the records to retry reported back as
//! `batchItemFailures` (the event source's partial batch responses).

use crate::bot::Bot;
use crate::handler::{HandlerError, answer_by};
use crate::reply_queue::{Outgoing, send_in_batches};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use futures::future::join_all;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use xmpp_lambda_shared::{ReplyEnvelope, RequestEnvelope};

/// How many bots run at once for one standard-queue batch (batches can
/// hold up to 10,000 records with a batching window).
const MAX_CONCURRENT_ANSWERS: usize = 32;

/// What became of one record before replies are sent.
enum Outcome {
    /// A final answer, to be sent as a reply.
    Answered(Box<ReplyEnvelope>),
    /// Not handled now: reported as a failure, so SQS delivers it again
    /// (and, after `maxReceiveCount`, moves it to the dead-letter queue).
    Failed,
}

/// Handles one SQS batch and returns the partial batch response.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
    client: &aws_sdk_sqs::Client,
    reply_queue_url: &str,
    event: Value,
    deadline: Option<Instant>,
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
    // On a FIFO queue, a record must not overtake an earlier one of the
    // batch: after the first failure every later record fails too.
    let fifo = records.iter().any(|record| {
        record
            .event_source_arn
            .as_deref()
            .is_some_and(|arn| arn.ends_with(".fifo"))
    });

    let outcomes = if fifo {
        answer_in_order(bot, &records, deadline).await
    } else {
        answer_concurrently(bot, &records, deadline).await
    };

    let outgoing: Vec<Outgoing> = outcomes
        .into_iter()
        .enumerate()
        .filter_map(|(index, outcome)| match outcome {
            Outcome::Answered(reply) => Some(Outgoing::reply(index, &reply)),
            Outcome::Failed => None,
        })
        .collect();
    let answered: Vec<usize> = outgoing.iter().map(|out| out.index).collect();
    let unsent = send_in_batches(client, reply_queue_url, outgoing, fifo).await;
    if !unsent.is_empty() {
        tracing::warn!(
            replies = unsent.len(),
            "replies not sent: their requests will be retried"
        );
    }

    let mut failed = vec![true; records.len()];
    for index in answered {
        failed[index] = unsent.contains(&index);
    }
    if fifo && let Some(first) = failed.iter().position(|failed| *failed) {
        failed[first..].iter_mut().for_each(|failed| *failed = true);
    }
    let failures: Vec<Value> = ids
        .iter()
        .zip(&failed)
        .filter(|(_, failed)| **failed)
        .map(|(id, _)| json!({ "itemIdentifier": id }))
        .collect();
    tracing::info!(
        records = records.len(),
        failed = failures.len(),
        fifo,
        "handled an SQS batch"
    );
    Ok(json!({ "batchItemFailures": failures }))
}

/// FIFO: one record after the other, stopping at the first failure (the
/// rest would fail anyway, and asking their bot now would break order).
async fn answer_in_order<B: Bot>(
    bot: &B,
    records: &[SqsMessage],
    deadline: Option<Instant>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        let outcome = answer_record(bot, record, deadline).await;
        let stop = matches!(outcome, Outcome::Failed);
        outcomes.push(outcome);
        if stop {
            break;
        }
    }
    if outcomes.len() < records.len() {
        tracing::info!(
            skipped = records.len() - outcomes.len(),
            "left the rest of a FIFO batch for later, after a failure"
        );
    }
    outcomes.resize_with(records.len(), || Outcome::Failed);
    outcomes
}

/// Standard queue: records are independent, so their bots run together.
async fn answer_concurrently<B: Bot>(
    bot: &B,
    records: &[SqsMessage],
    deadline: Option<Instant>,
) -> Vec<Outcome> {
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_ANSWERS));
    join_all(records.iter().map(|record| {
        let limit = Arc::clone(&limit);
        async move {
            // The semaphore is never closed, so acquiring cannot fail.
            let _permit = limit.acquire_owned().await.ok();
            answer_record(bot, record, deadline).await
        }
    }))
    .await
}

async fn answer_record<B: Bot>(bot: &B, record: &SqsMessage, deadline: Option<Instant>) -> Outcome {
    let message_id = record.message_id.as_deref().unwrap_or_default();
    let envelope = match RequestEnvelope::from_json(record.body.as_deref().unwrap_or_default()) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(
                message_id,
                error = %error,
                "not a request envelope: reported failed, so it ends in the dead-letter queue"
            );
            return Outcome::Failed;
        }
    };
    let response = answer_by(bot, &envelope.request, deadline).await;
    if response.is_retryable() {
        tracing::warn!(
            message_id,
            envelope_id = %envelope.id,
            status = response.status,
            "the bot failed for now: the message will be retried"
        );
        return Outcome::Failed;
    }
    Outcome::Answered(Box::new(envelope.reply(response)))
}

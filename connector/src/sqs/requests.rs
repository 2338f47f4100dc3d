//! Requests onto the request queue.
//!
//! Each request becomes a [`RequestEnvelope`] with a fresh id, refused at
//! once if it is over [`MAX_REQUEST_ENVELOPE_BYTES`] (its reply envelope,
//! which repeats it, could not fit in an SQS message). One batcher task
//! packs waiting envelopes into SendMessageBatch calls (at most 10 entries
//! and 1 MiB). A request arriving while nothing else is waiting
//! or being sent goes out at once, so a lone message is never delayed;
//! under load (several waiting, or other calls still in flight) the
//! batcher lingers a few milliseconds for the batch to fill. Several
//! batches may be in flight at once; on a FIFO queue order within a
//! conversation holds because the dispatcher hands over a conversation's
//! next request only after the previous one is confirmed queued.
//!
//! A call that fails, and each entry a successful call reports failed, is
//! retried with backoff until the request's deadline (the bot timeout);
//! then its sender learns it was not queued, so the user gets an error,
//! never silence.

use super::calls::{MAX_BATCH_ENTRIES, SqsStats, describe_error, is_fifo};
use crate::health::{QueueCall, QueueHealth};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};
use xmpp_lambda_component::Backoff;
use xmpp_lambda_shared::{
    MAX_QUEUE_MESSAGE_BYTES, MAX_REQUEST_ENVELOPE_BYTES, Request, RequestEnvelope, conversation_id,
};

/// The most message bytes in one SendMessageBatch call (the same as one
/// message).
const MAX_BATCH_BYTES: usize = MAX_QUEUE_MESSAGE_BYTES;
/// How long to wait for more requests when several are already waiting:
/// short, so batching under load costs little latency.
const LINGER: Duration = Duration::from_millis(5);
/// SendMessageBatch calls in flight at once: enough to keep up with a busy
/// component while every call waits a network round trip.
const MAX_SENDS_IN_FLIGHT: usize = 8;
/// The longest one call may take before it counts as failed and is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request did not make it onto the request queue.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    /// Every attempt failed until the deadline.
    #[error("not queued within {timeout:?}: {last_error}")]
    TimedOut {
        /// The bot timeout the request had.
        timeout: Duration,
        /// What the last attempt said.
        last_error: String,
    },
    /// The queue refused the message itself (too large, invalid): retrying
    /// cannot help.
    #[error("the request queue refused the message: {0}")]
    Refused(String),
    /// The request envelope is too large for its answer to come back
    /// through the reply queue; never sent.
    #[error(
        "the request envelope is {bytes} bytes, over the {MAX_REQUEST_ENVELOPE_BYTES} a reply \
         envelope (which repeats it) leaves room for"
    )]
    TooLarge {
        /// The envelope's size.
        bytes: usize,
    },
    /// The connector is stopping and sends no more requests.
    #[error("the request sender has stopped")]
    Stopped,
}

/// Puts requests on the request queue; cheap to share, one per connector.
#[derive(Debug)]
pub struct RequestSender {
    /// Hands envelopes to the batcher task.
    waiting: mpsc::UnboundedSender<Pending>,
    /// How long a request may take to be queued before its sender is told.
    timeout: Duration,
    /// Whether the queue is FIFO: messages then carry their conversation
    /// as message group and their id as deduplication id.
    fifo: bool,
}

/// One envelope waiting to be queued.
struct Pending {
    /// The envelope id: the FIFO deduplication id, so a retried send that
    /// had in fact succeeded is not queued twice.
    id: String,
    /// The message body (the envelope's JSON).
    body: String,
    /// The conversation, as FIFO message group; `None` on a standard queue.
    group: Option<String>,
    /// When the sender gives up on this request.
    deadline: Instant,
    /// What the last failed attempt said, for the log and the error.
    last_error: Option<String>,
    /// Told once the request is queued, or why it is not.
    done: oneshot::Sender<Result<(), EnqueueError>>,
}

/// Where the batcher sends, and what every send needs.
#[derive(Clone)]
struct Queue {
    client: aws_sdk_sqs::Client,
    url: Arc<str>,
    stats: Arc<SqsStats>,
    /// Whether the last call worked, for `/readyz`.
    health: Arc<QueueHealth>,
    /// The bot timeout, for error messages.
    timeout: Duration,
}

impl RequestSender {
    /// Starts the batcher for `queue_url`. It ends once every
    /// `RequestSender` is dropped and its last batch is settled.
    pub fn start(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        timeout: Duration,
        stats: Arc<SqsStats>,
        health: Arc<QueueHealth>,
    ) -> (RequestSender, tokio::task::JoinHandle<()>) {
        let (waiting, receiver) = mpsc::unbounded_channel();
        let queue = Queue {
            client,
            url: queue_url.into(),
            stats,
            health,
            timeout,
        };
        let fifo = is_fifo(&queue.url);
        let batcher = tokio::spawn(run_batcher(queue, receiver));
        let sender = RequestSender {
            waiting,
            timeout,
            fifo,
        };
        (sender, batcher)
    }

    /// Whether the request queue is FIFO (and so keeps each conversation's
    /// order).
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// Puts `request` on the request queue; returns once it is there, or
    /// with the reason it could not be within the bot timeout.
    pub async fn enqueue(&self, request: &Request) -> Result<String, EnqueueError> {
        let id = uuid::Uuid::new_v4().to_string();
        // Written from the request itself: a copy of it would be one more
        // than its memory budget counts.
        let body = RequestEnvelope::json_for(&id, request);
        if body.len() > MAX_REQUEST_ENVELOPE_BYTES {
            let error = EnqueueError::TooLarge { bytes: body.len() };
            warn!(envelope_id = %id, from = %request.from, to = %request.to, %error, "request not queued");
            return Err(error);
        }
        let (done, outcome) = oneshot::channel();
        let pending = Pending {
            id: id.clone(),
            body,
            group: self.fifo.then(|| conversation_id(request)),
            deadline: Instant::now() + self.timeout,
            last_error: None,
            done,
        };
        self.waiting
            .send(pending)
            .map_err(|_| EnqueueError::Stopped)?;
        let result = outcome.await.unwrap_or(Err(EnqueueError::Stopped));
        match &result {
            Ok(()) => {
                debug!(envelope_id = %id, from = %request.from, to = %request.to, "request queued")
            }
            Err(error) => {
                warn!(envelope_id = %id, from = %request.from, to = %request.to, %error, "request not queued")
            }
        }
        result.map(|()| id)
    }
}

/// Packs waiting requests into batches and sends them, several at once.
async fn run_batcher(queue: Queue, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT));
    let mut sends = JoinSet::new();
    // A request that did not fit the previous batch: first in the next.
    let mut carried: Option<Pending> = None;
    loop {
        // Only fill a batch once it can be sent: while every slot is busy,
        // requests pile up and the next batch is fuller.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let first = match carried.take() {
            Some(first) => first,
            None => match waiting.recv().await {
                Some(first) => first,
                None => break,
            },
        };
        let mut batch = Batch::new(first);
        // Everything already waiting…
        while !batch.is_full() {
            match waiting.try_recv() {
                Ok(next) => {
                    if let Some(left) = batch.push(next) {
                        carried = Some(left);
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        // …and, under load only, what arrives within the linger. This
        // batch holds one slot; any other slot taken is a call in flight.
        let busy = batch.entries.len() > 1 || slots.available_permits() + 1 < MAX_SENDS_IN_FLIGHT;
        if busy && !batch.is_full() && carried.is_none() {
            let linger_end = Instant::now() + LINGER;
            while !batch.is_full() {
                tokio::select! {
                    next = waiting.recv() => match next {
                        Some(next) => {
                            if let Some(left) = batch.push(next) {
                                carried = Some(left);
                                break;
                            }
                        }
                        None => break,
                    },
                    () = tokio::time::sleep_until(linger_end) => break,
                }
            }
        }
        sends.spawn(send_with_retries(queue.clone(), batch.entries, Some(slot)));
        // Reap finished sends so the set does not grow.
        while sends.try_join_next().is_some() {}
    }
    if let Some(last) = carried {
        sends.spawn(send_with_retries(queue.clone(), vec![last], None));
    }
    while sends.join_next().await.is_some() {}
}

/// Requests for one SendMessageBatch call.
struct Batch {
    /// In arrival order.
    entries: Vec<Pending>,
    /// Their bodies' bytes.
    bytes: usize,
}

impl Batch {
    fn new(first: Pending) -> Batch {
        let mut batch = Batch {
            entries: Vec::with_capacity(MAX_BATCH_ENTRIES),
            bytes: 0,
        };
        batch.add(first);
        batch
    }

    fn is_full(&self) -> bool {
        self.entries.len() >= MAX_BATCH_ENTRIES || self.bytes >= MAX_BATCH_BYTES
    }

    /// Adds `pending`, or gives it back when it would make the batch too big.
    fn push(&mut self, pending: Pending) -> Option<Pending> {
        if self.bytes + pending.body.len() > MAX_BATCH_BYTES {
            return Some(pending);
        }
        self.add(pending);
        None
    }

    fn add(&mut self, pending: Pending) {
        self.bytes += pending.body.len();
        self.entries.push(pending);
    }
}

/// Sends a batch, retrying what failed, until each entry is queued,
/// refused, or past its deadline. `_slot` is held until then.
async fn send_with_retries(
    queue: Queue,
    mut pending: Vec<Pending>,
    _slot: Option<OwnedSemaphorePermit>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        let now = Instant::now();
        let (expired, live): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.deadline <= now);
        pending = live;
        for request in expired {
            let error = EnqueueError::TimedOut {
                timeout: queue.timeout,
                last_error: request
                    .last_error
                    .unwrap_or_else(|| "no attempt finished".to_owned()),
            };
            let _ = request.done.send(Err(error));
        }
        let Some(latest) = pending.iter().map(|p| p.deadline).max() else {
            return;
        };
        pending = send_once(&queue, pending, latest).await;
        let Some(earliest) = pending.iter().map(|p| p.deadline).min() else {
            return;
        };
        let pause = backoff.next_delay(&mut rand::rng());
        tokio::time::sleep_until((Instant::now() + pause).min(earliest)).await;
    }
}

/// One SendMessageBatch call; returns the entries to try again.
async fn send_once(queue: &Queue, pending: Vec<Pending>, latest: Instant) -> Vec<Pending> {
    let mut entries = Vec::with_capacity(pending.len());
    for (index, request) in pending.iter().enumerate() {
        let entry = SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(request.body.clone())
            .set_message_group_id(request.group.clone())
            .set_message_deduplication_id(request.group.as_ref().map(|_| request.id.clone()))
            .build();
        match entry {
            Ok(entry) => entries.push(entry),
            // Only a missing id or body fails to build, and both are set.
            Err(error) => warn!(%error, "cannot build a request message"),
        }
    }
    queue.stats.send_calls.inc_by(1);
    let call = queue
        .client
        .send_message_batch()
        .queue_url(queue.url.as_ref())
        .set_entries(Some(entries))
        .send();
    let limit = latest
        .saturating_duration_since(Instant::now())
        .min(CALL_TIMEOUT);
    let output = match tokio::time::timeout(limit, call).await {
        Ok(Ok(output)) => {
            queue.health.record_ok(QueueCall::Send);
            output
        }
        Ok(Err(error)) => {
            let error = describe_error(&error);
            queue.health.record_error(QueueCall::Send, &error);
            return all_failed(pending, &error);
        }
        Err(_) => {
            queue
                .health
                .record_error(QueueCall::Send, "SendMessageBatch timed out");
            return all_failed(pending, "SendMessageBatch timed out");
        }
    };
    let mut slots: Vec<Option<Pending>> = pending.into_iter().map(Some).collect();
    let mut accepted = 0;
    for entry in output.successful() {
        if let Some(request) = entry
            .id()
            .parse()
            .ok()
            .and_then(|i: usize| slots.get_mut(i)?.take())
        {
            accepted += 1;
            let _ = request.done.send(Ok(()));
        }
    }
    queue.stats.requests_sent.inc_by(accepted);
    let mut retry = Vec::new();
    for entry in output.failed() {
        let Some(mut request) = entry
            .id()
            .parse()
            .ok()
            .and_then(|i: usize| slots.get_mut(i)?.take())
        else {
            continue;
        };
        let reason = format!(
            "{}: {}",
            entry.code(),
            entry.message().unwrap_or("no message")
        );
        if entry.sender_fault() {
            let _ = request.done.send(Err(EnqueueError::Refused(reason)));
        } else {
            debug!(envelope_id = %request.id, %reason, "request entry failed; retrying");
            request.last_error = Some(reason);
            retry.push(request);
        }
    }
    // An entry the answer does not mention was not queued: retry it.
    retry.extend(slots.into_iter().flatten());
    retry
}

/// Every entry of a failed call, marked with why, to be retried.
fn all_failed(pending: Vec<Pending>, reason: &str) -> Vec<Pending> {
    warn!(requests = pending.len(), error = %reason, "SendMessageBatch failed; retrying");
    pending
        .into_iter()
        .map(|mut request| {
            request.last_error = Some(reason.to_owned());
            request
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(body_bytes: usize) -> (Pending, oneshot::Receiver<Result<(), EnqueueError>>) {
        let (done, outcome) = oneshot::channel();
        let pending = Pending {
            id: uuid::Uuid::new_v4().to_string(),
            body: "x".repeat(body_bytes),
            group: None,
            deadline: Instant::now() + Duration::from_secs(30),
            last_error: None,
            done,
        };
        (pending, outcome)
    }

    #[test]
    fn a_batch_holds_at_most_ten_entries() {
        let mut batch = Batch::new(pending(10).0);
        for _ in 1..MAX_BATCH_ENTRIES {
            assert!(!batch.is_full());
            assert!(batch.push(pending(10).0).is_none());
        }
        assert!(batch.is_full());
        assert_eq!(batch.entries.len(), MAX_BATCH_ENTRIES);
    }

    #[test]
    fn a_batch_holds_at_most_1_mib_and_gives_back_what_does_not_fit() {
        let mut batch = Batch::new(pending(800 * 1024).0);
        let (big, _) = pending(300 * 1024);
        let left = batch.push(big).expect("does not fit");
        assert_eq!(left.body.len(), 300 * 1024);
        assert!(batch.push(pending(224 * 1024).0).is_none(), "fits exactly");
        assert!(batch.is_full());
        assert_eq!(batch.bytes, MAX_BATCH_BYTES);
    }

    #[tokio::test]
    async fn a_request_whose_reply_could_not_fit_is_refused_without_a_call() {
        let queue_url = "http://127.0.0.1:9/123456789012/requests".to_owned();
        let stats = Arc::new(SqsStats::default());
        let (sender, batcher) = RequestSender::start(
            unreachable_client(),
            queue_url,
            Duration::from_secs(30),
            Arc::clone(&stats),
            Arc::default(),
        );
        // A stanza as large as a whole request envelope may be.
        let request: Request = serde_json::from_value(serde_json::json!({
            "to": "echo@bot.localhost",
            "from": "alice@localhost/phone",
            "kind": "message",
            "stanza": "x".repeat(MAX_REQUEST_ENVELOPE_BYTES),
        }))
        .expect("a request");
        let error = sender.enqueue(&request).await.expect_err("refused");
        assert!(matches!(error, EnqueueError::TooLarge { .. }), "{error}");
        assert!(error.to_string().contains("over the 786432"), "{error}");
        drop(sender);
        batcher.await.expect("the batcher ends");
        assert_eq!(stats.send_calls.get(), 0);
    }

    /// A client whose every call fails at once: nothing listens there.
    fn unreachable_client() -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_refused_without_a_call() {
        let queue = Queue {
            // Nothing listens there: a call would fail, not time out.
            client: unreachable_client(),
            url: "http://127.0.0.1:9/123456789012/requests".into(),
            stats: Arc::default(),
            health: Arc::default(),
            timeout: Duration::from_secs(30),
        };
        let (mut expired, outcome) = pending(10);
        expired.deadline = Instant::now();
        send_with_retries(queue.clone(), vec![expired], None).await;
        assert!(matches!(
            outcome.await,
            Ok(Err(EnqueueError::TimedOut { .. }))
        ));
        assert_eq!(queue.stats.send_calls.get(), 0);
    }
}

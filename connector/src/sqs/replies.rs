//! Replies and pushed messages from the reply queue to the XMPP stream.
//!
//! One poller long-polls the reply queue, only while the component link is
//! up (a reply read while it is down would wait in memory instead of on the
//! queue). Each reply envelope becomes stanzas by the same rules as an HTTP
//! answer (DESIGN §2), each send envelope by the outbound rules (§6, all of
//! its messages or none); the stanzas go to the link, and the message is
//! deleted only once the link confirms they are written and flushed, so a
//! crash at any point loses nothing: the message comes back after its
//! visibility timeout. Delivery is at least once, so envelope ids already
//! written are remembered (the last [`REMEMBERED_IDS`]) and a repeat is
//! deleted without being sent again. A message that is not an envelope, or
//! a send envelope that fails the checks, is logged and left alone, for the
//! queue's redrive policy (there is no sender to tell).
//!
//! Every call has a time limit: a long poll whose connection was dropped
//! without a word (by SQS, a NAT, a proxy) fails after [`RECEIVE_TIMEOUT`]
//! and is retried, and `/readyz` says the reply queue cannot be polled
//! until a poll works again.

use super::calls::{MAX_BATCH_ENTRIES, SqsStats, describe_error};
use crate::awaiting::{Awaiting, Part};
use crate::health::{QueueCall, QueueHealth};
use crate::ids::new_stanza_id;
use crate::metrics::Metrics;
use crate::push::Pusher;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};
use xmpp_lambda_component::Backoff;
use xmpp_lambda_component::Shutdown;
use xmpp_lambda_component::{LinkState, Outbound};
use xmpp_lambda_shared::ReplyQueueMessage;
use xmpp_lambda_shared::live::{replies_among, stanzas_to_send_live};

/// How many written envelope ids are remembered to drop repeats: far more
/// than can be in flight between a write and its delete.
pub const REMEMBERED_IDS: usize = 10_000;
/// The long-poll wait: the longest SQS allows, so an idle connector makes
/// three receive calls a minute.
const WAIT_SECONDS: i32 = 20;
/// The longest a receive may take: the long poll's wait, and time for the
/// answer to arrive after it.
pub const RECEIVE_TIMEOUT: Duration = Duration::from_secs(WAIT_SECONDS as u64 + 10);
/// The longest a DeleteMessageBatch may take; a message not deleted comes
/// back after its visibility timeout and is dropped as a repeat.
const DELETE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the reply queue and writes its replies to the stream.
pub struct ReplyPoller {
    /// Receives and deletes.
    client: aws_sdk_sqs::Client,
    /// The reply queue.
    queue_url: Arc<str>,
    /// Checks pushed messages; its writer is the link's.
    pusher: Pusher,
    /// Requests awaiting their answers: what their senders were shown
    /// meanwhile, and the state of streamed answers.
    awaiting: Awaiting,
    /// Whether the component link is up: polling waits while it is not.
    link: watch::Receiver<LinkState>,
    /// Call counters.
    stats: Arc<SqsStats>,
    /// Whether the last call worked, for `/readyz`.
    health: Arc<QueueHealth>,
    /// Request outcomes and pushes, for `/metrics`.
    metrics: Metrics,
    /// Envelope ids already written, to drop repeats.
    written: RecentIds,
    /// How long one receive may take ([`RECEIVE_TIMEOUT`]).
    receive_timeout: Duration,
}

/// A reply whose stanzas are queued for the link.
struct Writing {
    /// Its envelope id (with a streamed part's number), remembered once
    /// written.
    id: String,
    /// Delete the message (and parts held for it) once written.
    receipt_handles: Vec<String>,
    /// Fired by the link after the last stanza is flushed.
    written: oneshot::Receiver<()>,
}

impl ReplyPoller {
    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: String,
        pusher: Pusher,
        link: watch::Receiver<LinkState>,
        stats: Arc<SqsStats>,
        health: Arc<QueueHealth>,
        metrics: Metrics,
    ) -> ReplyPoller {
        ReplyPoller {
            client,
            queue_url: queue_url.into(),
            awaiting: Awaiting::new(
                pusher.writer().clone(),
                pusher.domain(),
                None,
                crate::stream_state::StreamOptions::default().edit_interval,
            ),
            pusher,
            link,
            stats,
            health,
            metrics,
            written: RecentIds::new(REMEMBERED_IDS),
            receive_timeout: RECEIVE_TIMEOUT,
        }
    }

    /// Shares `awaiting` with the dispatcher, which says what requests it
    /// queued (without it, answers show no typing that came before them).
    pub fn with_awaiting(mut self, awaiting: Awaiting) -> ReplyPoller {
        self.awaiting = awaiting;
        self
    }

    /// Polls until shutdown; then lets the replies already handed to the
    /// link be written and deletes them. Returning drops the poller's
    /// writer, which the link waits for before it closes.
    pub async fn run(mut self, mut shutdown: Shutdown) {
        let mut backoff = Backoff::new(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(20),
        );
        loop {
            tokio::select! {
                up = self.link.wait_for(LinkState::is_up) => if up.is_err() { break },
                () = shutdown.recv() => break,
            }
            let received = tokio::select! {
                received = self.receive() => received,
                () = shutdown.recv() => break,
            };
            let messages = match received {
                Ok(messages) => {
                    backoff.reset();
                    messages
                }
                Err(error) => {
                    let delay = backoff.next_delay(&mut rand::rng());
                    warn!(%error, retry_in_ms = delay.as_millis() as u64, "cannot read the reply queue");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => continue,
                        () = shutdown.recv() => break,
                    }
                }
            };
            let handles = self.write(messages).await;
            // Deleted before the next receive: on a FIFO queue the
            // conversation stays locked until its messages are deleted, and
            // a receive started earlier would wait out its whole poll.
            self.delete(handles).await;
        }
        info!("stopped polling the reply queue");
    }

    /// One long poll, within [`RECEIVE_TIMEOUT`].
    async fn receive(&self) -> Result<Vec<Message>, String> {
        self.stats.receive_calls.inc_by(1);
        let call = self
            .client
            .receive_message()
            .queue_url(self.queue_url.as_ref())
            .max_number_of_messages(MAX_BATCH_ENTRIES as i32)
            .wait_time_seconds(WAIT_SECONDS)
            .send();
        let output = match tokio::time::timeout(self.receive_timeout, call).await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(describe_error(&error)),
            Err(_) => Err(format!(
                "ReceiveMessage did not answer within {} s",
                self.receive_timeout.as_secs_f64()
            )),
        };
        let output = match output {
            Ok(output) => {
                self.health.record_ok(QueueCall::Poll);
                output
            }
            Err(error) => {
                self.health.record_error(QueueCall::Poll, &error);
                return Err(error);
            }
        };
        let messages = output.messages.unwrap_or_default();
        self.stats.replies_received.inc_by(messages.len() as u64);
        Ok(messages)
    }

    /// Hands the replies' stanzas to the link, in order, and waits until
    /// they are written. Returns the receipt handles of the messages that
    /// are done with: written, repeats, and replies that make no stanza.
    async fn write(&mut self, messages: Vec<Message>) -> Vec<String> {
        let mut done = Vec::new();
        let mut writing = Vec::new();
        // Ids of this batch, so a repeat within it is not sent twice either.
        let mut in_batch = HashSet::new();
        for message in messages {
            let message_id = message.message_id().unwrap_or_default();
            let Some(receipt_handle) = message.receipt_handle().map(str::to_owned) else {
                warn!(message_id, "reply message without a receipt handle");
                continue;
            };
            let envelope = match ReplyQueueMessage::from_json(message.body().unwrap_or_default()) {
                Ok(envelope) => envelope,
                Err(error) => {
                    warn!(message_id, %error, "not a reply or send envelope: left on the queue for its redrive policy");
                    continue;
                }
            };
            // A streamed answer's parts share the request's id.
            let id = match &envelope {
                ReplyQueueMessage::Reply(reply) => match reply.stream {
                    Some(part) => format!("{}#{}", reply.id, part.seq),
                    None => reply.id.clone(),
                },
                ReplyQueueMessage::Send(send) => send.id.clone(),
            };
            if self.written.contains(&id) || !in_batch.insert(id.clone()) {
                debug!(envelope_id = %id, "envelope already written: deleting the repeat");
                done.push(receipt_handle);
                continue;
            }
            let mut receipt_handles = vec![receipt_handle];
            let stanzas = match envelope {
                ReplyQueueMessage::Reply(envelope) if envelope.stream.is_some() => {
                    let handle = receipt_handles[0].clone();
                    match self.awaiting.part(*envelope, handle) {
                        Part::Apply { stanzas, also_done } => {
                            receipt_handles.extend(also_done);
                            stanzas
                        }
                        Part::Repeat => {
                            self.written.insert(id);
                            done.extend(receipt_handles);
                            continue;
                        }
                        // Early: on the queue until the parts before it come.
                        Part::Held | Part::Later => {
                            in_batch.remove(&id);
                            continue;
                        }
                    }
                }
                ReplyQueueMessage::Reply(envelope) => self.reply_stanzas(&envelope),
                ReplyQueueMessage::Send(envelope) => {
                    match self.pusher.check(&envelope.send, true) {
                        Ok(checked) => {
                            debug!(envelope_id = %id, messages = checked.stanzas.len(), "pushed messages received");
                            self.metrics
                                .pushes
                                .queue_sent
                                .inc_by(checked.stanzas.len() as u64);
                            checked.stanzas
                        }
                        Err(error) => {
                            self.metrics.pushes.queue_refused.inc();
                            // Not a word is sent, and the envelope stays for
                            // the dead-letter queue: there is nobody to tell.
                            warn!(envelope_id = %id, message_id, %error, "send envelope refused: left on the queue for its redrive policy");
                            in_batch.remove(&id);
                            continue;
                        }
                    }
                }
            };
            let Some((last, first)) = split_last(stanzas) else {
                self.written.insert(id);
                done.extend(receipt_handles);
                continue;
            };
            let (written, confirmation) = oneshot::channel();
            let writer = self.pusher.writer();
            let mut sent = first
                .into_iter()
                .all(|stanza| writer.send(Outbound::stanza(stanza)).is_ok());
            sent = sent && writer.send(Outbound::acknowledged(last, written)).is_ok();
            if !sent {
                // The link has stopped: the message stays for next time.
                continue;
            }
            writing.push(Writing {
                id,
                receipt_handles,
                written: confirmation,
            });
        }
        for reply in writing {
            if reply.written.await.is_ok() {
                self.written.insert(reply.id);
                done.extend(reply.receipt_handles);
            } else {
                debug!(envelope_id = %reply.id, "reply not written before the link stopped; left on the queue");
            }
        }
        done
    }

    /// The stanzas a reply envelope turns into (DESIGN §2), with the
    /// conversation's notifications (§10: the receipt went out when the
    /// request was queued; typing may have shown since), the refusal
    /// logged.
    fn reply_stanzas(&self, envelope: &xmpp_lambda_shared::ReplyEnvelope) -> Vec<minidom::Element> {
        let request = &envelope.request;
        let notified = self.awaiting.answered(&envelope.id);
        let (stanzas, refused) = stanzas_to_send_live(
            request,
            &envelope.response,
            self.pusher.domain(),
            notified,
            &mut new_stanza_id,
        );
        let replies = replies_among(&stanzas);
        self.metrics
            .requests
            .answered(&envelope.response, replies, refused.is_some());
        if let Some(reason) = refused {
            warn!(%reason, envelope_id = %envelope.id, from = %request.from, to = %request.to, status = envelope.response.status, "bot reply refused");
        }
        debug!(envelope_id = %envelope.id, from = %request.from, to = %request.to, status = envelope.response.status, replies = stanzas.len(), "reply received");
        stanzas
    }

    /// Deletes written replies, up to 10 per call. A message not deleted
    /// comes back after its visibility timeout and is then dropped as a
    /// repeat.
    async fn delete(&self, receipt_handles: Vec<String>) {
        let (client, queue_url, stats) = (&self.client, &self.queue_url, &self.stats);
        let health = &self.health;
        for chunk in receipt_handles.chunks(MAX_BATCH_ENTRIES) {
            let entries = chunk.iter().enumerate().filter_map(|(index, handle)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            });
            stats.delete_calls.inc_by(1);
            let call = client
                .delete_message_batch()
                .queue_url(queue_url.as_ref())
                .set_entries(Some(entries.collect()))
                .send();
            let result = match tokio::time::timeout(DELETE_TIMEOUT, call).await {
                Ok(result) => result.map_err(|error| describe_error(&error)),
                Err(_) => Err(format!(
                    "DeleteMessageBatch did not answer within {} s",
                    DELETE_TIMEOUT.as_secs()
                )),
            };
            match result {
                Ok(output) => {
                    stats
                        .replies_deleted
                        .inc_by(output.successful().len() as u64);
                    for entry in output.failed() {
                        warn!(
                            code = entry.code(),
                            message = entry.message().unwrap_or_default(),
                            "could not delete a written reply; it will come back and be dropped"
                        );
                    }
                }
                Err(error) => {
                    health.count_error();
                    warn!(%error, replies = chunk.len(), "could not delete written replies; they will come back and be dropped");
                }
            }
        }
    }
}

/// The last stanza apart from the ones before it, unless there are none.
fn split_last<T>(mut items: Vec<T>) -> Option<(T, Vec<T>)> {
    let last = items.pop()?;
    Some((last, items))
}

/// The last `capacity` ids inserted, oldest forgotten first.
struct RecentIds {
    /// For lookups.
    set: HashSet<String>,
    /// Insertion order, to forget the oldest.
    order: VecDeque<String>,
    /// How many are kept.
    capacity: usize,
}

impl RecentIds {
    fn new(capacity: usize) -> RecentIds {
        RecentIds {
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    fn insert(&mut self, id: String) {
        if !self.set.insert(id.clone()) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use crate::rooms::RoomDirectory;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    /// An SQS endpoint that accepts every connection and never answers:
    /// what a long poll sees when its connection was dropped on the way.
    async fn silent_endpoint() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                held.push(connection);
            }
        });
        (endpoint, accepted)
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_that_never_answers_times_out_is_retried_and_readyz_says_so() {
        let (endpoint, accepted) = silent_endpoint().await;
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .build();
        let (_link_tx, link) = watch::channel(LinkState::Up { connection: 1 });
        let (writer, _written) = mpsc::unbounded_channel();
        let pusher = Pusher::new(
            "bot.localhost",
            writer,
            link.clone(),
            RoomDirectory::default(),
        );
        let stats = Arc::new(SqsStats::default());
        let queues = Arc::new(QueueHealth::default());
        let poller = ReplyPoller::new(
            aws_sdk_sqs::Client::from_conf(config),
            format!("{endpoint}/123456789012/replies"),
            pusher,
            link.clone(),
            Arc::clone(&stats),
            Arc::clone(&queues),
            Metrics::new(),
        );
        let health = Health::new(link, Some(queues));
        assert_eq!(health.readiness(), Ok(()));
        let (stop, shutdown) = xmpp_lambda_component::shutdown_channel();
        let started = tokio::time::Instant::now();
        let running = tokio::spawn(poller.run(shutdown));

        // The first poll hangs until its time is up; then the poller tries
        // again, and /readyz says why it is not ready meanwhile.
        while stats.receive_calls.get() < 2 {
            assert!(started.elapsed() < RECEIVE_TIMEOUT * 2, "no second poll");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            started.elapsed() >= RECEIVE_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        assert!(
            accepted.load(Ordering::SeqCst) >= 1,
            "the connection was taken"
        );
        assert_eq!(
            health.readiness(),
            Err(
                "the reply queue cannot be polled: ReceiveMessage did not answer within 30 s"
                    .into()
            )
        );
        stop.trigger();
        running.await.expect("the poller stops");
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut ids = RecentIds::new(3);
        for id in ["a", "b", "c", "a"] {
            ids.insert(id.to_owned());
        }
        assert!(ids.contains("a") && ids.contains("b") && ids.contains("c"));
        ids.insert("d".to_owned());
        assert!(!ids.contains("a"), "the oldest is forgotten");
        assert!(ids.contains("b") && ids.contains("d"));
        assert_eq!(ids.set.len(), 3);
        assert_eq!(ids.order.len(), 3);
    }

    #[test]
    fn split_last_keeps_order() {
        assert_eq!(split_last(vec![1, 2, 3]), Some((3, vec![1, 2])));
        assert_eq!(split_last(Vec::<u8>::new()), None);
    }
}

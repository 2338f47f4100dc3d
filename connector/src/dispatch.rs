//! What happens to each stanza the link reads (DESIGN §2, §3).
//!
//! Presence and IQs that are not forwarded are answered here at once.
//! Forwarded stanzas become requests; each conversation (sender's bare JID +
//! recipient, [`conversation_key`]) has at most one task working through its
//! own queue, so one conversation's requests reach the bot, and its replies
//! reach the user, in the order they were sent, while other conversations
//! run alongside. A [`Semaphore`] bounds the requests accepted but not yet
//! answered: at the limit the dispatcher stops reading, so new stanzas wait
//! in the link instead of being dropped.
//!
//! With the sqs transport a request is done once it is on the request
//! queue: its permit is released then, and its reply arrives later through
//! the reply poller. On a FIFO queue a conversation's next request is
//! queued only after the previous one is, which keeps the queue's order. A
//! standard queue keeps no order, so there every request is sent at once,
//! and one user's burst fills batches instead of going out one call each.

use crate::awaiting::Awaiting;
use crate::decision::{Decision, Knowledge, decide};
use crate::ids::new_stanza_id;
use crate::live::{LiveOptions, WithoutBody, typing_while};
use crate::metrics::Metrics;
use crate::request_memory::{Held, RequestMemory, TooLarge};
use crate::rooms::Rooms;
use crate::routes::{Destination, Router};
use crate::sqs::requests::EnqueueError;
use crate::stream_state::StreamOptions;
use crate::streaming::{self, Stop, StreamEnd};
use crate::transport::Forwarded;
use minidom::Element;
use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xmpp_lambda_component::Shutdown;
use xmpp_lambda_component::{Inbound, Outbound, Oversize};
use xmpp_lambda_shared::ChatState;
use xmpp_lambda_shared::live::{
    Notified, chat_state_message, delivery_receipt, replies_among, shows_typing,
    stanzas_to_send_live,
};
use xmpp_lambda_shared::{
    ErrorType, Request, StanzaErrorSpec, StanzaKind, conversation_key, error_reply,
    stanza_to_request, too_large_error, wants_answer,
};

/// Requests accepted but not yet answered, over all conversations.
pub const MAX_IN_FLIGHT: usize = 256;

/// How conversations with the bot go, as configured: live feedback and
/// streamed answers (DESIGN §10, §11).
#[derive(Clone)]
pub struct ConversationOptions {
    pub live: LiveOptions,
    pub streams: StreamOptions,
    /// Requests awaiting their answers through the reply queue.
    pub awaiting: Option<Awaiting>,
}

/// Routes stanzas: auto-answers, or requests to the bot.
pub struct Dispatcher {
    /// What the conversation tasks share with the dispatcher.
    shared: Arc<Shared>,
    /// Which bot, if any, takes a stanza to a given address, and which
    /// kinds it takes; the rest are answered here.
    router: Router,
    /// One permit per request accepted and not yet answered. All permits
    /// back means nothing is in flight, which is what shutdown waits for.
    in_flight: Arc<Semaphore>,
    /// Which stanzas concern the group chats, and what of them reaches the
    /// bot.
    rooms: Rooms,
    /// The bytes requests in flight may hold together: at the limit the
    /// dispatcher waits, as at the in-flight limit.
    memory: RequestMemory,
    /// What becomes of a message without a body.
    without_body: WithoutBody,
}

/// State the conversation tasks share.
struct Shared {
    /// The component's domain: replies must come from it.
    domain: String,
    /// The link's writer; it outlives reconnects.
    writer: mpsc::UnboundedSender<Outbound>,
    /// How streamed answers are relayed.
    streams: StreamOptions,
    /// How long a bot may work before its sender sees it typing; `None`
    /// when typing is off.
    typing_after: Option<Duration>,
    /// Requests on the request queue awaiting their answers (typing
    /// meanwhile); `None` without a reply queue.
    awaiting: Option<Awaiting>,
    /// What is counted for `/metrics`.
    metrics: Metrics,
    /// The waiting requests of each conversation that has a task running.
    /// A conversation is in the map exactly while its task runs; the task
    /// removes it, under this lock, once its queue is empty.
    conversations: Mutex<HashMap<String, VecDeque<Job>>>,
}

/// One request on its way to the bot.
struct Job {
    /// What the bot gets.
    request: Request,
    /// Where it goes.
    destination: Arc<Destination>,
    /// Held until the reply is queued for writing (http), or the request
    /// is on the request queue (sqs).
    _permit: OwnedSemaphorePermit,
    /// The request's bytes against the memory budget, held as long as the
    /// request is.
    _memory: HeldMemory,
    /// When the stanza arrived, for the latency in the log.
    received_at: Instant,
    /// Counts the request in `xmpp_lambda_requests_in_flight` while it
    /// lives.
    _in_flight: InFlight,
}

/// A request's bytes against the budget, shown in
/// `xmpp_lambda_request_memory_bytes` until dropped.
struct HeldMemory {
    held: Held,
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl HeldMemory {
    fn new(held: Held, gauge: &prometheus_client::metrics::gauge::Gauge) -> HeldMemory {
        gauge.inc_by(i64::try_from(held.bytes()).unwrap_or(i64::MAX));
        HeldMemory {
            held,
            gauge: gauge.clone(),
        }
    }
}

impl Drop for HeldMemory {
    fn drop(&mut self) {
        self.gauge
            .dec_by(i64::try_from(self.held.bytes()).unwrap_or(i64::MAX));
    }
}

/// One request in `xmpp_lambda_requests_in_flight`, until dropped.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(gauge: &prometheus_client::metrics::gauge::Gauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Dispatcher {
    pub fn new(
        domain: String,
        router: Router,
        writer: mpsc::UnboundedSender<Outbound>,
        rooms: Rooms,
        memory: RequestMemory,
        conversations: ConversationOptions,
        metrics: Metrics,
    ) -> Dispatcher {
        Dispatcher {
            shared: Arc::new(Shared {
                domain,
                writer,
                streams: conversations.streams,
                typing_after: conversations.live.typing_after,
                awaiting: conversations.awaiting,
                metrics,
                conversations: Mutex::new(HashMap::new()),
            }),
            router,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            rooms,
            memory,
            without_body: conversations.live.without_body,
        }
    }

    /// Handles stanzas from `inbound` until shutdown, then lets every
    /// request in flight finish and get its reply queued. Stanzas arriving
    /// meanwhile are still auto-answered, and forwarded kinds are refused
    /// with an error so the sender knows to try again. Returning drops the
    /// last writer handles, which tells the link that all is written.
    pub async fn run(self, mut inbound: mpsc::Receiver<Inbound>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                read = inbound.recv() => match read {
                    Some(Inbound::Stanza(stanza)) => self.handle(stanza).await,
                    Some(Inbound::Skipped { head, oversize }) => self.skipped(head.as_ref(), oversize),
                    None => break,
                },
                () = shutdown.recv() => break,
            }
        }
        let in_flight = MAX_IN_FLIGHT - self.in_flight.available_permits();
        info!(
            in_flight,
            "stopped taking stanzas; finishing requests in flight"
        );
        let mut link_open = true;
        loop {
            tokio::select! {
                // Every permit back: nothing is in flight any more. The
                // semaphore is never closed, so this cannot fail.
                _ = self.in_flight.acquire_many(MAX_IN_FLIGHT as u32) => break,
                read = inbound.recv(), if link_open => match read {
                    Some(read) => self.refuse(read),
                    None => link_open = false,
                },
            }
        }
        // Stanzas the link handed over meanwhile are refused too, not
        // dropped with the channel; the link refuses any later ones itself.
        inbound.close();
        while let Some(read) = inbound.recv().await {
            self.refuse(read);
        }
        info!("all requests answered");
    }

    /// One stanza, while running normally.
    async fn handle(&self, stanza: Element) {
        self.count(&stanza);
        match decide(&stanza, &self.knowledge()) {
            Decision::Forward {
                destination,
                request,
            } => self.forward(destination, request).await,
            other => self.carry_out(other),
        }
    }

    /// What the dispatcher knows that decides a stanza's fate.
    fn knowledge(&self) -> Knowledge<'_> {
        Knowledge {
            domain: &self.shared.domain,
            router: &self.router,
            rooms: &self.rooms,
            without_body: self.without_body,
        }
    }

    /// Counts a stanza read, by kind.
    fn count(&self, stanza: &Element) {
        if let Ok(kind) = stanza.name().parse::<StanzaKind>() {
            self.shared.metrics.stanza_received(kind);
        }
    }

    /// Carries out a decision that sends nothing to a bot.
    fn carry_out(&self, decision: Decision) {
        match decision {
            Decision::Ignore(why) => debug!(why, "stanza not handled"),
            Decision::Answer(answers) => {
                for answer in answers {
                    self.shared.write(answer);
                }
            }
            Decision::Room(event) => self.rooms.hand_over(event),
            Decision::SkipWithoutBody => {
                self.shared.metrics.messages_without_body.inc();
                debug!("message without a body not forwarded");
            }
            Decision::Forward { request, .. } => {
                warn!(from = %request.from, to = %request.to, "a request not forwarded");
            }
        }
    }

    /// A stanza the link skipped for passing a limit: counted, and its
    /// sender told it was too large, when the sender waits for an answer
    /// and is not in a room.
    fn skipped(&self, head: Option<&Element>, oversize: Oversize) {
        self.shared.metrics.stanza_skipped(oversize);
        let Some(head) = head.filter(|head| wants_answer(head)) else {
            return;
        };
        if self.rooms.is_room(head.attr("from").unwrap_or_default()) {
            return;
        }
        if let Some(error) = stanza_to_request(head)
            .ok()
            .and_then(|request| error_reply(&request, &too_large_error()))
        {
            self.shared.write(error);
        }
    }

    /// One stanza, while shutting down: no new requests to the bot. Its
    /// sender learns to try again; rooms are still followed.
    fn refuse(&self, read: Inbound) {
        let stanza = match read {
            Inbound::Stanza(stanza) => stanza,
            Inbound::Skipped { head, oversize } => return self.skipped(head.as_ref(), oversize),
        };
        self.count(&stanza);
        match decide(&stanza, &self.knowledge()) {
            Decision::Forward { request, .. } => {
                // Never into a room: the request of a room message names it.
                if request.room.is_none()
                    && let Some(answer) = restarting_answer(&stanza)
                {
                    self.shared.write(answer);
                }
            }
            other => self.carry_out(other),
        }
    }

    /// Queues a request on its conversation, starting the conversation's
    /// task if it has none (or sends it at once where order is not kept).
    /// Waits while the in-flight limit is reached.
    async fn forward(&self, destination: Arc<Destination>, request: Request) {
        let received_at = Instant::now();
        let memory = match self.memory.reserve(RequestMemory::cost(&request)).await {
            Ok(held) => HeldMemory::new(held, &self.shared.metrics.request_memory_bytes),
            Err(TooLarge { limit }) => {
                warn!(
                    from = %request.from,
                    to = %request.to,
                    id = request.id.as_deref().unwrap_or_default(),
                    bytes = RequestMemory::cost(&request),
                    "stanza skipped: its request would hold more than the {limit} bytes one request may"
                );
                self.shared
                    .metrics
                    .stanza_skipped(Oversize::Memory { limit });
                if let Some(error) = error_reply(&request, &too_large_error()) {
                    self.shared.write(error);
                }
                return;
            }
        };
        let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
            // Only a closed semaphore fails, and this one is never closed.
            warn!("in-flight limit unavailable; request dropped");
            return;
        };
        let job = Job {
            request,
            destination,
            _permit: permit,
            _memory: memory,
            received_at,
            _in_flight: InFlight::new(&self.shared.metrics.requests_in_flight),
        };
        // A standard queue may reorder a conversation anyway: holding its
        // requests back for each other would only keep them out of one
        // batch.
        if !job.destination.transport.keeps_order() {
            let shared = Arc::clone(&self.shared);
            // Boxed: tokio moves a task's future several times on its way
            // in, and a pointer is cheaper to move than the request's
            // whole task (a few KB).
            tokio::spawn(Box::pin(async move { shared.answer(job).await }));
            return;
        }
        let key = conversation_key(&job.request);
        let first = {
            let mut conversations = self.shared.conversations();
            match conversations.get_mut(&key) {
                Some(queue) => {
                    queue.push_back(job);
                    None
                }
                None => {
                    conversations.insert(key.clone(), VecDeque::new());
                    Some(job)
                }
            }
        };
        if let Some(job) = first {
            tokio::spawn(Box::pin(converse(Arc::clone(&self.shared), key, job)));
        }
    }
}

/// The answer to a stanza the bot cannot take because the connector is
/// shutting down: `wait/remote-server-timeout` "The bot is restarting", so
/// the sender knows to try again. `None` for a stanza that wants no answer.
pub fn restarting_answer(stanza: &Element) -> Option<Element> {
    if !wants_answer(stanza) {
        return None;
    }
    let spec = StanzaErrorSpec::new(
        ErrorType::Wait,
        "remote-server-timeout",
        Some("The bot is restarting"),
    );
    stanza_to_request(stanza)
        .ok()
        .and_then(|request| error_reply(&request, &spec))
}

/// A conversation's task: answers its requests one after the other, and
/// ends (removing the conversation) when its queue is empty.
async fn converse(shared: Arc<Shared>, key: String, first: Job) {
    let mut job = first;
    loop {
        shared.answer(job).await;
        let next = {
            let mut conversations = shared.conversations();
            let next = conversations.get_mut(&key).and_then(VecDeque::pop_front);
            if next.is_none() {
                conversations.remove(&key);
            }
            next
        };
        match next {
            Some(next) => job = next,
            None => return,
        }
    }
}

impl Shared {
    fn conversations(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Job>>> {
        // The lock is never held across a panic point that matters: a
        // poisoned map is still consistent.
        self.conversations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the bot and queues the stanzas its answer turns into; with the
    /// sqs transport, puts the request on the request queue.
    async fn answer(&self, job: Job) {
        let request = &job.request;
        let asked_at = Instant::now();
        let outcomes = &self.metrics.requests;
        // Typing while the bot works, for a sender whose client shows it.
        let typing = self.typing_after.filter(|_| shows_typing(request));
        let forward = pin!(job.destination.transport.forward(request));
        let (forwarded, composing) = typing_while(forward, typing, || {
            self.write_any(chat_state_message(
                request,
                ChatState::Composing,
                &self.domain,
                &mut new_stanza_id,
            ))
        })
        .await;
        let notified = Notified {
            composing,
            receipt: false,
        };
        let response = match forwarded {
            Forwarded::Answered(response) => {
                self.metrics
                    .bot_answer_seconds
                    .observe(asked_at.elapsed().as_secs_f64());
                response
            }
            Forwarded::Streaming(stream) => {
                self.metrics
                    .bot_answer_seconds
                    .observe(asked_at.elapsed().as_secs_f64());
                let relay = streaming::Relay {
                    request,
                    domain: &self.domain,
                    options: self.streams,
                    typing,
                    notified,
                };
                // Boxed: a stream is rarer than a plain answer, and every
                // request's task would otherwise be as large as a relay.
                let (end, written) = Box::pin(streaming::relay(
                    stream,
                    relay,
                    &mut new_stanza_id,
                    &mut |stanza| self.write(stanza),
                ))
                .await;
                outcomes.streamed(
                    matches!(end, StreamEnd::Complete),
                    matches!(end, StreamEnd::Stopped(Stop::BadLine { .. })),
                    written,
                );
                match end {
                    StreamEnd::Complete => debug!(
                        from = %request.from,
                        to = %request.to,
                        route = %job.destination.name,
                        stanzas = written,
                        elapsed_ms = job.received_at.elapsed().as_millis() as u64,
                        "bot's stream ended"
                    ),
                    StreamEnd::Stopped(stop) => warn!(
                        from = %request.from,
                        to = %request.to,
                        route = %job.destination.name,
                        stanzas = written,
                        "bot's stream stopped: {stop}"
                    ),
                }
                return;
            }
            Forwarded::Queued { envelope_id } => {
                outcomes.queued.inc();
                // The bot has the message once it is on its queue; typing
                // shows until its answer comes back.
                self.write_any(delivery_receipt(request, &self.domain, &mut new_stanza_id));
                if let Some(awaiting) = &self.awaiting {
                    awaiting.queued(envelope_id, request);
                }
                return;
            }
            Forwarded::NotQueued(error) => {
                outcomes.not_queued.inc();
                // Never silence: the sender learns to try again later, or
                // that the stanza is too large to go through the queue.
                let spec = match error {
                    EnqueueError::TooLarge { .. } => too_large_error(),
                    _ => StanzaErrorSpec::new(
                        ErrorType::Wait,
                        "remote-server-timeout",
                        Some("The bot's request queue cannot be reached"),
                    ),
                };
                self.write_any(error_reply(request, &spec));
                if notified.composing {
                    self.write_any(chat_state_message(
                        request,
                        ChatState::Active,
                        &self.domain,
                        &mut new_stanza_id,
                    ));
                }
                return;
            }
        };
        let (stanzas, refused) = stanzas_to_send_live(
            request,
            &response,
            &self.domain,
            notified,
            &mut new_stanza_id,
        );
        let replies = replies_among(&stanzas);
        outcomes.answered(&response, replies, refused.is_some());
        if let Some(reason) = refused {
            warn!(%reason, from = %request.from, to = %request.to, status = response.status, "bot reply refused");
        }
        debug!(
            from = %request.from,
            to = %request.to,
            route = %job.destination.name,
            kind = %request.kind,
            status = response.status,
            replies,
            elapsed_ms = job.received_at.elapsed().as_millis() as u64,
            "bot answered"
        );
        for stanza in stanzas {
            self.write(stanza);
        }
    }

    /// Queues `stanza` for the link, if there is one; whether there was.
    fn write_any(&self, stanza: Option<Element>) -> bool {
        let written = stanza.is_some();
        if let Some(stanza) = stanza {
            self.write(stanza);
        }
        written
    }

    /// Queues a stanza for the link. The link only goes away at the very
    /// end of a shutdown, when nothing can be delivered anyway.
    fn write(&self, stanza: Element) {
        if self.writer.send(Outbound::stanza(stanza)).is_err() {
            debug!("link has stopped; stanza not written");
        }
    }
}

//! What an operator watches (DESIGN §8): counters, gauges and a histogram
//! in Prometheus' text format at `GET /metrics`.
//!
//! Every metric is created once at start-up and handed out as a handle to
//! the part that counts (an atomic add, no lookup by label on the hot
//! path). Names start with `xmpp_lambda_`; each has HELP text.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::watch;
use xmpp_lambda_component::{LinkState, Oversize};
use xmpp_lambda_shared::{BotResponse, StanzaKind};

/// The media type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Seconds the bot took to answer, as histogram buckets: from a fast local
/// bot to the default 30 s timeout.
const ANSWER_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Labels = Vec<(&'static str, &'static str)>;

/// Every metric, as handles; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Encodes everything for `/metrics`.
    registry: Arc<Registry>,
    /// Stanzas read from the XMPP server, by kind.
    stanzas: StanzaCounters,
    /// What became of each request to the bot.
    pub requests: RequestOutcomes,
    /// How long the bot took to answer (http transport).
    pub bot_answer_seconds: Histogram,
    /// Requests accepted and not yet answered (or queued).
    pub requests_in_flight: Gauge,
    /// Bytes the requests in flight hold against their budget.
    pub request_memory_bytes: Gauge,
    /// Messages without a body not forwarded (DESIGN §10).
    pub messages_without_body: Counter,
    /// Stanzas skipped for passing a read limit or the memory budget, by
    /// limit.
    stanzas_skipped: SkippedCounters,
    /// 1 while the link is up.
    link_up: Gauge,
    /// 1 while another connector holds the link and this one waits.
    link_standby: Gauge,
    /// Links established since start.
    link_connects: Counter,
    /// SQS API calls, by API.
    pub sqs: SqsCounters,
    /// Pushed messages, by way and outcome.
    pub pushes: PushCounters,
    /// Rooms the connector is in.
    pub rooms_joined: Gauge,
}

/// Stanzas read, one counter per kind.
#[derive(Clone)]
struct StanzaCounters {
    message: Counter,
    presence: Counter,
    iq: Counter,
}

/// Stanzas skipped, one counter per limit.
#[derive(Clone)]
struct SkippedCounters {
    bytes: Counter,
    markup: Counter,
    depth: Counter,
    memory: Counter,
}

/// Requests by outcome (DESIGN §8).
#[derive(Clone)]
pub struct RequestOutcomes {
    /// The bot answered and its reply was sent.
    replied: Counter,
    /// The bot answered with nothing to send (204, non-JSON 200…).
    no_reply: Counter,
    /// The bot answered 4xx (the sender got an error).
    error_4xx: Counter,
    /// The bot answered 5xx.
    error_5xx: Counter,
    /// The bot answered with another status (1xx, 3xx).
    error_other: Counter,
    /// No answer at all: refused connection, timeout.
    no_response: Counter,
    /// The bot's reply was refused by the reply rules.
    bad_reply: Counter,
    /// On the request queue (sqs: the answer comes as a reply envelope).
    pub queued: Counter,
    /// Could not be queued in time (the sender got an error).
    pub not_queued: Counter,
}

/// SQS calls by API; the request sender and the reply poller count them.
#[derive(Clone)]
pub struct SqsCounters {
    pub send_message_batch: Counter,
    pub receive_message: Counter,
    pub delete_message_batch: Counter,
    /// Calls that failed, whatever the API.
    pub errors: Counter,
}

/// Pushed messages, by way in and outcome.
#[derive(Clone)]
pub struct PushCounters {
    pub http_sent: Counter,
    pub http_refused: Counter,
    pub http_unavailable: Counter,
    pub queue_sent: Counter,
    pub queue_refused: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("xmpp_lambda");
        let stanzas = Family::<Labels, Counter>::default();
        registry.register(
            "stanzas_received",
            "Stanzas read from the XMPP server, by kind",
            stanzas.clone(),
        );
        let kind = |name: &'static str| stanzas.get_or_create(&vec![("kind", name)]).clone();
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests to the bot by outcome: replied, no_reply, error_4xx, error_5xx, \
             error_other, no_response, bad_reply, queued, not_queued",
            requests.clone(),
        );
        let outcome = |name: &'static str| requests.get_or_create(&vec![("outcome", name)]).clone();
        let bot_answer_seconds = Histogram::new(ANSWER_BUCKETS);
        registry.register(
            "bot_answer_seconds",
            "How long the bot took to answer a request, in seconds (http transport)",
            bot_answer_seconds.clone(),
        );
        let requests_in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests accepted and not yet answered (sqs: not yet queued)",
            requests_in_flight.clone(),
        );
        let request_memory_bytes = Gauge::default();
        registry.register(
            "request_memory_bytes",
            "Bytes held by requests in flight, counted against their memory budget",
            request_memory_bytes.clone(),
        );
        let messages_without_body = Counter::default();
        registry.register(
            "messages_without_body_skipped",
            "Messages without a body (chat states, receipts, markers) not forwarded to the bot \
             (COMPONENT_MESSAGES_WITHOUT_BODY=skip)",
            messages_without_body.clone(),
        );
        let skipped = Family::<Labels, Counter>::default();
        registry.register(
            "stanzas_skipped",
            "Stanzas not handed to the bot because they passed a limit: bytes, markup \
             (elements and attributes), depth, memory",
            skipped.clone(),
        );
        let limit = |name: &'static str| skipped.get_or_create(&vec![("limit", name)]).clone();
        let link_up = Gauge::default();
        registry.register(
            "link_up",
            "1 while the component link to the XMPP server is up",
            link_up.clone(),
        );
        let link_standby = Gauge::default();
        registry.register(
            "link_standby",
            "1 while another connector holds the component link and this one stands by",
            link_standby.clone(),
        );
        let link_connects = Counter::default();
        registry.register(
            "link_connects",
            "Component links established since start",
            link_connects.clone(),
        );
        let sqs_calls = Family::<Labels, Counter>::default();
        registry.register(
            "sqs_calls",
            "SQS API calls by API, retries and empty long polls included",
            sqs_calls.clone(),
        );
        let api = |name: &'static str| sqs_calls.get_or_create(&vec![("api", name)]).clone();
        let sqs_errors = Counter::default();
        registry.register(
            "sqs_call_errors",
            "SQS API calls that failed",
            sqs_errors.clone(),
        );
        let pushes = Family::<Labels, Counter>::default();
        registry.register(
            "pushed_messages",
            "Messages bots pushed, by way in (http, queue) and outcome (sent, refused, unavailable)",
            pushes.clone(),
        );
        let push = |way: &'static str, outcome: &'static str| {
            pushes
                .get_or_create(&vec![("way", way), ("outcome", outcome)])
                .clone()
        };
        let rooms_joined = Gauge::default();
        registry.register(
            "rooms_joined",
            "Group chats the connector is in",
            rooms_joined.clone(),
        );
        Metrics {
            stanzas: StanzaCounters {
                message: kind("message"),
                presence: kind("presence"),
                iq: kind("iq"),
            },
            requests: RequestOutcomes {
                replied: outcome("replied"),
                no_reply: outcome("no_reply"),
                error_4xx: outcome("error_4xx"),
                error_5xx: outcome("error_5xx"),
                error_other: outcome("error_other"),
                no_response: outcome("no_response"),
                bad_reply: outcome("bad_reply"),
                queued: outcome("queued"),
                not_queued: outcome("not_queued"),
            },
            bot_answer_seconds,
            requests_in_flight,
            request_memory_bytes,
            messages_without_body,
            stanzas_skipped: SkippedCounters {
                bytes: limit("bytes"),
                markup: limit("markup"),
                depth: limit("depth"),
                memory: limit("memory"),
            },
            link_up,
            link_standby,
            link_connects,
            sqs: SqsCounters {
                send_message_batch: api("SendMessageBatch"),
                receive_message: api("ReceiveMessage"),
                delete_message_batch: api("DeleteMessageBatch"),
                errors: sqs_errors,
            },
            pushes: PushCounters {
                http_sent: push("http", "sent"),
                http_refused: push("http", "refused"),
                http_unavailable: push("http", "unavailable"),
                queue_sent: push("queue", "sent"),
                queue_refused: push("queue", "refused"),
            },
            rooms_joined,
            registry: Arc::new(registry),
        }
    }

    /// Counts a stanza read from the server.
    pub fn stanza_received(&self, kind: StanzaKind) {
        match kind {
            StanzaKind::Message => self.stanzas.message.inc(),
            StanzaKind::Presence => self.stanzas.presence.inc(),
            StanzaKind::Iq => self.stanzas.iq.inc(),
        };
    }

    /// Counts a stanza skipped for passing a limit.
    pub fn stanza_skipped(&self, oversize: Oversize) {
        let counter = match oversize {
            Oversize::Bytes { .. } => &self.stanzas_skipped.bytes,
            Oversize::Markup { .. } => &self.stanzas_skipped.markup,
            Oversize::Depth { .. } => &self.stanzas_skipped.depth,
            Oversize::Memory { .. } => &self.stanzas_skipped.memory,
        };
        counter.inc();
    }

    /// Everything, in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }

    /// Follows the link's state into `link_up`, `link_standby` and
    /// `link_connects` until the link task ends.
    pub async fn follow_link(self, mut link: watch::Receiver<LinkState>) {
        let mut counted = 0;
        loop {
            let state = link.borrow_and_update().clone();
            self.link_up.set(i64::from(state.is_up()));
            self.link_standby
                .set(i64::from(matches!(state, LinkState::Standby(_))));
            if let LinkState::Up { connection } = state
                && connection > counted
            {
                self.link_connects.inc_by(connection - counted);
                counted = connection;
            }
            if link.changed().await.is_err() {
                return;
            }
        }
    }
}

impl RequestOutcomes {
    /// Counts the outcome of a streamed answer that wrote `written` reply
    /// stanzas: replied when it `completed` with some, a bad reply when a
    /// line was `refused`, no response when it timed out or broke.
    pub fn streamed(&self, completed: bool, refused: bool, written: usize) {
        let counter = match (completed, refused) {
            (true, _) if written > 0 => &self.replied,
            (true, _) => &self.no_reply,
            (false, true) => &self.bad_reply,
            (false, false) => &self.no_response,
        };
        counter.inc();
    }

    /// Counts the outcome of a bot's answer: `replies` stanzas were sent
    /// for it, or it was `refused` by the reply rules.
    pub fn answered(&self, response: &BotResponse, replies: usize, refused: bool) {
        let counter = match response.status {
            _ if refused => &self.bad_reply,
            0 => &self.no_response,
            200..=299 if replies > 0 => &self.replied,
            200..=299 => &self.no_reply,
            400..=499 => &self.error_4xx,
            500..=599 => &self.error_5xx,
            _ => &self.error_other,
        };
        counter.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_and_the_prefix() {
        let metrics = Metrics::new();
        metrics.stanza_received(StanzaKind::Message);
        metrics
            .requests
            .answered(&BotResponse::from_http(503, None, b""), 1, false);
        metrics
            .requests
            .answered(&BotResponse::json(r#"{"body":"hi"}"#), 1, false);
        metrics.bot_answer_seconds.observe(0.02);
        let text = metrics.encode();
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("xmpp_lambda_"), "{line}");
        }
        let families: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(families.len(), 14, "{text}");
        for family in families {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
        assert!(
            text.contains("xmpp_lambda_stanzas_received_total{kind=\"message\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("xmpp_lambda_requests_total{outcome=\"error_5xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("xmpp_lambda_requests_total{outcome=\"replied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("xmpp_lambda_bot_answer_seconds_bucket{le=\"0.025\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn outcomes_by_status_and_refusal() {
        let metrics = Metrics::new();
        let outcomes = &metrics.requests;
        outcomes.answered(&BotResponse::no_response(), 1, false);
        outcomes.answered(&BotResponse::from_http(204, None, b""), 0, false);
        outcomes.answered(&BotResponse::from_http(404, None, b""), 1, false);
        outcomes.answered(&BotResponse::from_http(302, None, b""), 1, false);
        outcomes.answered(&BotResponse::json("not json"), 1, true);
        assert_eq!(outcomes.no_response.get(), 1);
        assert_eq!(outcomes.no_reply.get(), 1);
        assert_eq!(outcomes.error_4xx.get(), 1);
        assert_eq!(outcomes.error_other.get(), 1);
        assert_eq!(outcomes.bad_reply.get(), 1);
        assert_eq!(outcomes.replied.get(), 0);
    }

    #[tokio::test]
    async fn link_metrics_follow_the_link() {
        let metrics = Metrics::new();
        let (state, link) = watch::channel(LinkState::Connecting);
        let following = tokio::spawn(metrics.clone().follow_link(link));
        state.send_replace(LinkState::Up { connection: 1 });
        tokio::task::yield_now().await;
        state.send_replace(LinkState::Down("lost".into()));
        state.send_replace(LinkState::Up { connection: 2 });
        drop(state);
        following.await.expect("follows until the link ends");
        assert_eq!(metrics.link_up.get(), 1);
        assert_eq!(metrics.link_connects.get(), 2);
        assert_eq!(metrics.link_standby.get(), 0);
    }
}

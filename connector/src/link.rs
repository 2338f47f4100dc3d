//! The component link (XEP-0114) to the XMPP server, kept up forever.
//!
//! The stream ([`stream`]) reads plain [`minidom::Element`]s: a stanza the
//! typed parsers would refuse (say `<message type='bogus'>` from any user)
//! is just another element here, never a lost connection. Each stanza is
//! parsed once, whole ([`xml`]), once the read limit's scanner has seen it
//! end: a general streaming parser (rxml, under tokio-xmpp) cost the
//! connector more per message than everything else it does but the HTTP
//! exchange.
//!
//! One task owns the link: it reads stanzas and hands them to the
//! dispatcher, writes replies from one channel that outlives every
//! connection (a reply made while the link is down is written after it is
//! back), pings the server so an idle link never times out, and reconnects
//! with backoff when the link is lost. It tells whoever listens whether the
//! link is up (the sqs reply poller only polls while it is), and confirms a
//! write to whoever asked ([`Outbound::acknowledged`]) once the stanza is
//! flushed to the server.
//!
//! Every byte read passes a [`read_limit`] first: a stanza over
//! [`read_limit::MAX_STANZA_BYTES`], with more than
//! [`read_limit::MAX_STANZA_MARKUP`] elements and attributes, or nested
//! deeper than [`read_limit::MAX_STANZA_DEPTH`] ends the connection (logged
//! with the limit passed) before it can take the connector's memory or
//! stack.

#[cfg(test)]
mod counted_alloc;
mod read_limit;
mod socket;
mod stream;
mod xml;

#[cfg(test)]
pub(crate) use counted_alloc::peak_of;
pub(crate) use read_limit::Oversize;

use crate::backoff::Backoff;
use crate::config::Secret;
use crate::shutdown::Shutdown;
use minidom::Element;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use stream::ReadTimeouts;
pub(crate) use stream::{ComponentStream, Read};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout};
use tracing::{debug, info, trace, warn};
use xmpp_lambda_shared::{
    COMPONENT_NS, ErrorType, StanzaErrorSpec, attribute_name as name, error_reply,
    stanza_to_request,
};
use xmpp_parsers::component::Handshake;

/// The namespace of the stream element itself, and of `<stream:error>`.
const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
/// The namespace of stream error conditions (RFC 6120 §4.9.3).
const STREAM_ERRORS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const PING_NS: &str = "urn:xmpp:ping";
/// The id prefix of our own keepalive pings, so their echoes are known.
const KEEPALIVE_ID_PREFIX: &str = "keepalive-";

/// How long one TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the stream header exchange and handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one write may block before the link is taken for dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the server while closing the stream.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most replies written with one flush.
const WRITE_BATCH: usize = 64;
/// How long a write someone waits on waits for the server's confirming
/// echo before a link that is still up counts it as taken anyway.
const CONFIRM_WAIT: Duration = Duration::from_secs(5);
/// A link that held this long counts as good: the next failure starts the
/// backoff over instead of continuing it.
const STABLE_LINK: Duration = Duration::from_secs(10);
/// How often a standby connector tries to take the link over: the
/// takeover comes at most this long after the server drops the other one.
const STANDBY_RETRY: Duration = Duration::from_secs(1);
/// The stream error a server answers when the component is linked already.
const CONFLICT: &str = "conflict";

/// What the link hands on from the server.
#[derive(Debug)]
pub enum Inbound {
    /// A stanza, read whole.
    Stanza(Element),
    /// A stanza that passed one of the read limits or the memory budget
    /// and was not read: its start tag, when that was read whole, so that
    /// its sender can be told.
    Skipped {
        head: Option<Element>,
        oversize: Oversize,
    },
}

impl Inbound {
    /// The stanza, or what is left of it.
    fn stanza(&self) -> Option<&Element> {
        match self {
            Inbound::Stanza(stanza) => Some(stanza),
            Inbound::Skipped { head, .. } => head.as_ref(),
        }
    }
}

/// One stanza for the link to write.
#[derive(Debug)]
pub struct Outbound {
    /// What is written.
    stanza: Element,
    /// Fired once the server has taken the stanza (and everything written
    /// before it): a ping written after it came back through the server,
    /// which handles a component's stanzas in order. The sqs transport
    /// deletes a reply from its queue only then, and `/v1/send` answers
    /// 202. Dropped unfired when that never happens (the link broke, or the
    /// connector stopped while it was down): the reply stays on its queue.
    written: Option<oneshot::Sender<()>>,
}

impl Outbound {
    /// A stanza nobody waits on.
    pub fn stanza(stanza: Element) -> Outbound {
        Outbound {
            stanza,
            written: None,
        }
    }

    /// A stanza whose write is confirmed through `written`.
    pub fn acknowledged(stanza: Element, written: oneshot::Sender<()>) -> Outbound {
        Outbound {
            stanza,
            written: Some(written),
        }
    }
}

/// The stanzas of `items`, to write them.
fn stanzas_of(items: &[Outbound]) -> Vec<&Element> {
    items.iter().map(|item| &item.stanza).collect()
}

impl Outbound {
    /// Whoever waited for this write has given up (a push whose HTTP caller
    /// was answered 503): it is not written late, so the caller's retry
    /// cannot make it arrive twice.
    fn abandoned(&self) -> bool {
        self.written
            .as_ref()
            .is_some_and(oneshot::Sender::is_closed)
    }
}

/// Writes that wait for the server to confirm them: each group is
/// confirmed by the ping written after it, whose echo comes back in order.
/// Dropped with the session, which tells every waiter it did not happen.
///
/// Two fallbacks keep a server that does not route the echo back to this
/// link from stalling the waiters: a group unconfirmed after
/// [`CONFIRM_WAIT`] on a link that is still up counts as taken, and once
/// another connector's ping arrives here (the server balances the
/// component's stanzas between several links, as ejabberd does) writes
/// count as taken when flushed.
#[derive(Default)]
struct Unconfirmed {
    /// (the ping's id, when it was written, the writes it confirms),
    /// oldest first.
    waiting: VecDeque<(String, Instant, Vec<oneshot::Sender<()>>)>,
    /// Another connector shares this component's link: echoes cannot be
    /// relied on.
    shared: bool,
}

/// Writes `items` and flushes once; when someone waits on any of them, a
/// ping goes in the same flush, and they are confirmed when it comes back.
/// `items` is emptied only once written: after a failed write they are
/// written again on the next link.
async fn write_items(
    stream: &mut ComponentStream,
    items: &mut Vec<Outbound>,
    unconfirmed: &mut Unconfirmed,
    domain: &str,
) -> Result<(), LinkError> {
    let waited_on = items.iter().any(|item| item.written.is_some());
    let ping = (waited_on && !unconfirmed.shared).then(|| ping_stanza(domain));
    let mut elements = stanzas_of(items);
    if let Some((_, ping)) = &ping {
        elements.push(ping);
    }
    write(stream, &elements).await?;
    let confirmations: Vec<oneshot::Sender<()>> =
        items.drain(..).filter_map(|item| item.written).collect();
    match ping {
        Some((id, _)) => unconfirmed
            .waiting
            .push_back((id, Instant::now(), confirmations)),
        None => confirm(confirmations),
    }
    Ok(())
}

/// Tells every waiter its write is taken.
fn confirm(confirmations: Vec<oneshot::Sender<()>>) {
    for written in confirmations {
        // Whoever asked may have given up waiting; nothing to do then.
        let _ = written.send(());
    }
}

impl Unconfirmed {
    /// A ping came back: everything written before it is taken. A ping of
    /// another connector's means the server shares this link.
    fn echoed(&mut self, id: &str) {
        if !id.starts_with(&own_ping_prefix()) {
            if !self.shared {
                info!(
                    "another connector shares this component's link (the server balances \
                     between them): writes count as taken once flushed"
                );
                self.shared = true;
            }
            self.confirm_all();
            return;
        }
        let Some(position) = self
            .waiting
            .iter()
            .position(|(waiting, _, _)| waiting == id)
        else {
            return;
        };
        for (_, _, confirmations) in self.waiting.drain(..=position) {
            confirm(confirmations);
        }
    }

    fn confirm_all(&mut self) {
        for (_, _, confirmations) in self.waiting.drain(..) {
            confirm(confirmations);
        }
    }

    /// When the oldest group stops waiting for its echo.
    fn deadline(&self) -> Option<Instant> {
        self.waiting.front().map(|(_, at, _)| *at + CONFIRM_WAIT)
    }

    /// Confirms the groups that waited [`CONFIRM_WAIT`] for their echo on a
    /// link that stayed up.
    fn expire(&mut self, now: Instant) {
        while let Some((_, at, _)) = self.waiting.front() {
            if *at + CONFIRM_WAIT > now {
                return;
            }
            if let Some((id, _, confirmations)) = self.waiting.pop_front() {
                debug!(ping = %id, "no echo of a confirming ping; the link is up, so the writes count as taken");
                confirm(confirmations);
            }
        }
    }
}

/// The start of this process's ping ids: a ping with another start came
/// from another connector.
fn own_ping_prefix() -> String {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let token = TOKEN.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_owned());
    format!("{KEEPALIVE_ID_PREFIX}{token}-")
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether the link is up, as everyone who cares sees it (the sqs reply
/// poller polls only while it is; `/readyz` reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Not linked yet: the first connection attempt is under way.
    Connecting,
    /// Linked: stanzas flow. `connection` counts the links established
    /// since start, so a watcher that missed a drop still sees a new link
    /// (the rooms must be joined again on each).
    Up { connection: u64 },
    /// Not linked, retrying; why the last attempt failed or the link was
    /// lost.
    Down(String),
    /// Another connector holds the component's link (the server said
    /// `conflict`): this one waits to take over.
    Standby(String),
}

impl LinkState {
    pub fn is_up(&self) -> bool {
        matches!(self, LinkState::Up { .. })
    }
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkState::Connecting => f.write_str("connecting to the XMPP server"),
            LinkState::Up { .. } => f.write_str("linked"),
            LinkState::Down(reason) => f.write_str(reason),
            LinkState::Standby(reason) => write!(f, "standby: {reason}"),
        }
    }
}

/// What the link needs to know.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The component's domain, sent in the stream header.
    pub domain: String,
    /// The shared secret for the handshake.
    pub secret: Secret,
    /// The server's component port, `host:port`, resolved at every attempt.
    pub server: String,
    /// How often to ping the server.
    pub ping_interval: Duration,
}

/// A `<stream:error>` from the server: its defined condition and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The RFC 6120 condition, e.g. `conflict` or `not-authorized`.
    pub condition: String,
    /// The server's explanation, if it gave one.
    pub text: Option<String>,
}

impl StreamError {
    /// The stream error in `element`, if it is one.
    fn from_element(element: &Element) -> Option<StreamError> {
        if !element.is("error", STREAMS_NS) {
            return None;
        }
        let in_errors_ns = || element.children().filter(|c| c.ns() == STREAM_ERRORS_NS);
        let condition = in_errors_ns()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".to_owned());
        let text = in_errors_ns()
            .find(|c| c.name() == "text")
            .map(Element::text);
        Some(StreamError { condition, text })
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.condition)?;
        if let Some(text) = &self.text {
            write!(f, " ({text})")?;
        }
        Ok(())
    }
}

/// Why a connection attempt failed or an established link was lost.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve {server}: {source}")]
    Resolve { server: String, source: io::Error },
    #[error("{server} resolves to no address")]
    NoAddress { server: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("server rejected the handshake: {0}")]
    Rejected(StreamError),
    #[error("server sent a stream error: {0}")]
    ServerStreamError(StreamError),
    #[error("server sent no stream id")]
    NoStreamId,
    #[error("server sent <{0}> instead of a handshake answer")]
    UnexpectedElement(String),
    #[error("server closed the stream")]
    Closed,
    #[error("timed out {0}")]
    TimedOut(&'static str),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// How a session on an established link ended.
enum SessionEnd {
    /// Every reply is written and the stream is closed: the connector is
    /// shutting down.
    Finished,
    /// The link broke; reconnect.
    Lost(LinkError),
}

/// Keeps the link up until shutdown. Stanzas read go to `inbound`; the
/// elements from `outbound` are written; `link_state` says whether the link
/// is established. Returns once shutdown has started and either every sender
/// of `outbound` is gone and all was written, or the link is down.
pub async fn run(
    settings: LinkSettings,
    inbound: mpsc::Sender<Inbound>,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    link_state: watch::Sender<LinkState>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Backoff::for_link();
    // Replies whose write failed when the link broke: written first after
    // relinking, so the user still gets them (possibly twice, never zero
    // times).
    let mut unsent: Vec<Outbound> = Vec::new();
    // A stanza read while the dispatcher was full: handed over first, on
    // this connection or the next.
    let mut held: Option<Inbound> = None;
    // Set while another connector holds the link and this one stands by:
    // since when, for the one line logged on taking over.
    let mut standby_since: Option<Instant> = None;
    // Links established so far.
    let mut connections = 0;
    loop {
        let attempt = tokio::select! {
            attempt = connect(&settings) => attempt,
            () = shutdown.recv() => break,
        };
        let mut delay = None;
        match attempt {
            Ok(mut stream) => {
                let linked_at = Instant::now();
                if let Some(since) = standby_since.take() {
                    info!(
                        standby_ms = since.elapsed().as_millis() as u64,
                        "the other connector is gone: taking over the component link"
                    );
                }
                info!(server = %settings.server, domain = %settings.domain, "component link established");
                connections += 1;
                link_state.send_replace(LinkState::Up {
                    connection: connections,
                });
                let end = session(
                    &mut stream,
                    &settings,
                    &inbound,
                    &mut outbound,
                    &mut unsent,
                    &mut held,
                )
                .await;
                match end {
                    SessionEnd::Finished => {
                        link_state.send_replace(LinkState::Down("closed at shutdown".into()));
                        info!("component link closed");
                        return;
                    }
                    SessionEnd::Lost(cause) => {
                        link_state.send_replace(LinkState::Down(format!("link lost: {cause}")));
                        warn!(%cause, up_for_ms = linked_at.elapsed().as_millis() as u64, "component link lost");
                    }
                }
                if linked_at.elapsed() >= STABLE_LINK {
                    backoff.reset();
                }
            }
            // Another connector holds the link: a hot standby waits
            // quietly and tries often, to take over as soon as it may.
            Err(LinkError::Rejected(error)) if error.condition == CONFLICT => {
                if standby_since.is_none() {
                    info!(
                        retry_every_ms = STANDBY_RETRY.as_millis() as u64,
                        "another connector holds the component link ({error}): standing by"
                    );
                    standby_since = Some(Instant::now());
                }
                link_state.send_replace(LinkState::Standby(format!(
                    "another connector holds the component link ({error})"
                )));
                // Between half and all of the interval, so standbys of one
                // component do not retry in step.
                let jitter = rand::Rng::random_range(&mut rand::rng(), 0.5..=1.0);
                delay = Some(STANDBY_RETRY.mul_f64(jitter));
            }
            Err(LinkError::Rejected(error)) => {
                standby_since = None;
                link_state.send_replace(LinkState::Down(format!(
                    "handshake rejected by the server: {error}"
                )));
                warn!(
                    condition = %error.condition,
                    text = error.text.as_deref().unwrap_or(""),
                    "component handshake rejected by the server: {error}"
                );
            }
            Err(cause) => {
                standby_since = None;
                link_state.send_replace(LinkState::Down(cause.to_string()));
                warn!(%cause, server = %settings.server, "component link failed");
            }
        }
        if shutdown.is_shutdown() {
            break;
        }
        let delay = match delay {
            Some(standby) => standby,
            None => {
                let delay = backoff.next_delay(&mut rand::rng());
                info!(
                    retry_in_ms = delay.as_millis() as u64,
                    "reconnecting to the XMPP server"
                );
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.recv() => break,
        }
    }
    let lost = outbound.len() + unsent.len();
    if lost > 0 {
        warn!(
            replies = lost,
            "shutting down while the link is down: replies not delivered"
        );
    }
}

/// Connects, opens the stream and authenticates.
async fn connect(settings: &LinkSettings) -> Result<ComponentStream, LinkError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(&settings.server)
        .await
        .map_err(|source| LinkError::Resolve {
            server: settings.server.clone(),
            source,
        })?
        .collect();
    let mut last_error = LinkError::NoAddress {
        server: settings.server.clone(),
    };
    for addr in addresses {
        let tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                last_error = LinkError::Connect { addr, source };
                continue;
            }
            Err(_) => {
                last_error = LinkError::Connect {
                    addr,
                    source: io::ErrorKind::TimedOut.into(),
                };
                continue;
            }
        };
        // Stanzas are small and latency matters more than packet count.
        tcp.set_nodelay(true)?;
        debug!(%addr, "connected, opening the component stream");
        return timeout(HANDSHAKE_TIMEOUT, handshake(tcp, settings))
            .await
            .unwrap_or(Err(LinkError::TimedOut("waiting for the handshake")));
    }
    Err(last_error)
}

/// Opens the component stream and performs the XEP-0114 handshake (also
/// used by `check`, which closes the link again at once).
pub(crate) async fn handshake(
    tcp: TcpStream,
    settings: &LinkSettings,
) -> Result<ComponentStream, LinkError> {
    let timeouts = ReadTimeouts {
        // Without traffic for two ping intervals something is wrong: ping
        // once more and give the server one interval to answer.
        silence: settings.ping_interval * 2,
        answer: settings.ping_interval.max(Duration::from_secs(5)),
    };
    let (mut stream, stream_id) = ComponentStream::open(tcp, &settings.domain, timeouts).await?;
    // XEP-0114 streams have no features: the handshake comes right away.
    let Some(stream_id) = stream_id else {
        // A server refusing the stream may omit the id and say why next.
        let element = next_element(&mut stream).await?;
        return Err(match StreamError::from_element(&element) {
            Some(error) => LinkError::Rejected(error),
            None => LinkError::NoStreamId,
        });
    };
    let answer = Handshake::from_stream_id_and_password(stream_id, settings.secret.expose());
    let digest: String = answer
        .data
        .iter()
        .flatten()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    stream.queue_text(&format!("<handshake>{digest}</handshake>"));
    stream.flush().await?;
    let element = next_element(&mut stream).await?;
    if element.is("handshake", COMPONENT_NS) {
        return Ok(stream);
    }
    match StreamError::from_element(&element) {
        Some(error) => Err(LinkError::Rejected(error)),
        None => Err(LinkError::UnexpectedElement(element.name().to_owned())),
    }
}

/// The next element during the handshake.
async fn next_element(stream: &mut ComponentStream) -> Result<Element, LinkError> {
    loop {
        match stream.next().await? {
            Read::Element(element) => return Ok(element),
            Read::Skipped { head, oversize } => {
                let name = head.as_ref().map_or("a stanza", |head| head.name());
                return Err(LinkError::UnexpectedElement(format!("{name}, {oversize},")));
            }
            Read::Silent => continue,
            Read::Closed => return Err(LinkError::Closed),
        }
    }
}

/// Runs an established link until it breaks or, at shutdown, until every
/// reply is written.
async fn session(
    stream: &mut ComponentStream,
    settings: &LinkSettings,
    inbound: &mpsc::Sender<Inbound>,
    outbound: &mut mpsc::UnboundedReceiver<Outbound>,
    unsent: &mut Vec<Outbound>,
    held: &mut Option<Inbound>,
) -> SessionEnd {
    let mut unconfirmed = Unconfirmed::default();
    // Written first after relinking, unless their pusher gave up.
    unsent.retain(|item| !item.abandoned());
    if !unsent.is_empty()
        && let Err(cause) = write_items(stream, unsent, &mut unconfirmed, &settings.domain).await
    {
        return SessionEnd::Lost(cause);
    }
    let mut ping_timer = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    ping_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The dispatcher has room again for the stanza held back.
            permit = inbound.reserve(), if held.is_some() => match (permit, held.take()) {
                (Ok(permit), Some(read)) => permit.send(read),
                (Err(_), Some(read)) => {
                    if let Some(stanza) = read.stanza()
                        && let Err(cause) = refuse_at_shutdown(stream, stanza).await
                    {
                        return SessionEnd::Lost(cause);
                    }
                }
                (_, None) => {}
            },
            // While a stanza is held back nothing more is read, so the
            // server holds the rest: none is dropped, and replies and pings
            // are still written meanwhile.
            item = stream.next(), if held.is_none() => match item {
                Ok(Read::Element(element)) => {
                    if let Some(error) = StreamError::from_element(&element) {
                        return SessionEnd::Lost(LinkError::ServerStreamError(error));
                    }
                    if is_keepalive_echo(&element, &settings.domain) {
                        trace!("keepalive answered");
                        if let Some(id) = element.attr("id") {
                            unconfirmed.echoed(id);
                        }
                        continue;
                    }
                    if element.ns() != COMPONENT_NS {
                        debug!(name = element.name(), ns = %element.ns(), "ignoring a non-stanza element");
                        continue;
                    }
                    if let Err(cause) = hand_over(stream, inbound, held, Inbound::Stanza(element)).await {
                        return SessionEnd::Lost(cause);
                    }
                }
                Ok(Read::Skipped { head, oversize }) => {
                    let head_attr = |name| head.as_ref().and_then(|head| head.attr(name)).unwrap_or_default();
                    warn!(
                        kind = head.as_ref().map_or("", |head| head.name()),
                        from = head_attr("from"),
                        to = head_attr("to"),
                        id = head_attr("id"),
                        "stanza skipped: {oversize}"
                    );
                    let skipped = Inbound::Skipped { head, oversize };
                    if let Err(cause) = hand_over(stream, inbound, held, skipped).await {
                        return SessionEnd::Lost(cause);
                    }
                }
                Ok(Read::Silent) => {
                    debug!("link silent; pinging the server");
                    if let Err(cause) = ping(stream, &settings.domain).await {
                        return SessionEnd::Lost(cause);
                    }
                }
                Ok(Read::Closed) => return SessionEnd::Lost(LinkError::Closed),
                Err(e) => return SessionEnd::Lost(e.into()),
            },
            reply = outbound.recv() => match reply {
                Some(first) => {
                    // Replies that are ready go out together, in one flush.
                    unsent.push(first);
                    while unsent.len() < WRITE_BATCH {
                        match outbound.try_recv() {
                            Ok(next) => unsent.push(next),
                            Err(_) => break,
                        }
                    }
                    unsent.retain(|item| !item.abandoned());
                    if let Err(cause) =
                        write_items(stream, unsent, &mut unconfirmed, &settings.domain).await
                    {
                        return SessionEnd::Lost(cause);
                    }
                }
                None => {
                    // Every reply is written: close our side and let the
                    // server close its own.
                    if let Err(e) = timeout(CLOSE_TIMEOUT, stream.close())
                        .await
                        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
                    {
                        debug!(error = %e, "closing the stream");
                    }
                    // Until the server reads our footer it may still route
                    // stanzas here; nothing can answer them any more.
                    if timeout(CLOSE_TIMEOUT, read_until_closed(stream, &settings.domain))
                        .await
                        .is_err()
                    {
                        debug!("the server did not close its side of the stream");
                    }
                    return SessionEnd::Finished;
                }
            },
            _ = ping_timer.tick() => {
                if let Err(cause) = ping(stream, &settings.domain).await {
                    return SessionEnd::Lost(cause);
                }
            }
            () = sleep_until(unconfirmed.deadline()) => unconfirmed.expire(Instant::now()),
        }
    }
}

/// Hands what was read to the dispatcher, or holds it back while the
/// dispatcher is full; refuses it once the dispatcher has stopped.
async fn hand_over(
    stream: &mut ComponentStream,
    inbound: &mpsc::Sender<Inbound>,
    held: &mut Option<Inbound>,
    read: Inbound,
) -> Result<(), LinkError> {
    match inbound.try_send(read) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(read)) => {
            *held = Some(read);
            Ok(())
        }
        Err(mpsc::error::TrySendError::Closed(read)) => match read.stanza() {
            Some(stanza) => refuse_at_shutdown(stream, stanza).await,
            None => Ok(()),
        },
    }
}

/// After our stream footer: reads until the server closes its side, and
/// logs each stanza that wanted an answer and arrived meanwhile (the
/// server routed it here before it read the footer). XEP-0114 has no way to
/// hand a stanza back, and after the footer nothing may be written, so
/// these stay unanswered; the log is the only trace of them.
async fn read_until_closed(stream: &mut ComponentStream, domain: &str) {
    loop {
        match stream.next().await {
            Ok(
                Read::Element(element)
                | Read::Skipped {
                    head: Some(element),
                    ..
                },
            ) => {
                if wants_answer(&element) && !is_keepalive_echo(&element, domain) {
                    warn!(
                        kind = element.name(),
                        from = element.attr("from").unwrap_or_default(),
                        id = element.attr("id").unwrap_or_default(),
                        "stanza not answered: it arrived while the link was closing"
                    );
                }
            }
            Ok(Read::Skipped { head: None, .. } | Read::Silent) => {}
            Ok(Read::Closed) | Err(_) => return,
        }
    }
}

/// A stanza read after the dispatcher stopped (the connector shuts down
/// and waits for its last writers, such as a reply poller finishing a
/// delete). One that wants an answer gets the dispatcher's own shutdown
/// answer, `wait/remote-server-timeout` "The bot is restarting", so the
/// sender knows to retry; presence and the like need none.
async fn refuse_at_shutdown(
    stream: &mut ComponentStream,
    stanza: &Element,
) -> Result<(), LinkError> {
    let spec = StanzaErrorSpec::new(
        ErrorType::Wait,
        "remote-server-timeout",
        Some("The bot is restarting"),
    );
    let refusal = wants_answer(stanza)
        .then(|| stanza_to_request(stanza).ok())
        .flatten()
        .and_then(|request| error_reply(&request, &spec));
    match refusal {
        Some(error) => write(stream, &[&error]).await,
        None => {
            debug!(
                kind = stanza.name(),
                "ignoring a stanza while shutting down"
            );
            Ok(())
        }
    }
}

/// Whether a stanza's sender waits for an answer: a message to the bot
/// (never a room's message, never an error) or an IQ request.
pub(crate) fn wants_answer(stanza: &Element) -> bool {
    if stanza.ns() != COMPONENT_NS {
        return false;
    }
    match (stanza.name(), stanza.attr("type")) {
        ("message", Some("groupchat" | "error")) => false,
        ("message", _) => true,
        ("iq", Some("get" | "set")) => true,
        _ => false,
    }
}

/// Writes elements and flushes once, bounded in time so a stuck server
/// cannot stall us.
async fn write(stream: &mut ComponentStream, elements: &[&Element]) -> Result<(), LinkError> {
    for element in elements {
        stream.queue(element);
    }
    match timeout(WRITE_TIMEOUT, stream.flush()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::TimedOut("writing to the server")),
    }
}

/// Sends a XEP-0199 ping through the server to the component's own domain.
/// Every server routes it back to us, so it proves the whole path works,
/// and it needs no knowledge of the server's own domain.
async fn ping(stream: &mut ComponentStream, domain: &str) -> Result<(), LinkError> {
    let (_, ping) = ping_stanza(domain);
    write(stream, &[&ping]).await
}

/// A XEP-0199 ping from and to the component's domain, and its fresh id.
fn ping_stanza(domain: &str) -> (String, Element) {
    let id = format!("{}{}", own_ping_prefix(), uuid::Uuid::new_v4().simple());
    let ping = Element::builder("iq", COMPONENT_NS)
        .attr(name("type"), "get")
        .attr(name("from"), domain)
        .attr(name("to"), domain)
        .attr(name("id"), &id)
        .append(Element::bare("ping", PING_NS))
        .build();
    (id, ping)
}

/// Whether `element` is one of our own pings (or an answer to one) coming
/// back: it needs no handling beyond having kept the link busy.
fn is_keepalive_echo(element: &Element, domain: &str) -> bool {
    element.is("iq", COMPONENT_NS)
        && element.attr("from") == Some(domain)
        && element
            .attr("id")
            .is_some_and(|id| id.starts_with(KEEPALIVE_ID_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(xml: &str) -> Element {
        xml.parse().expect("test XML is valid")
    }

    #[test]
    fn stream_error_condition_and_text() {
        let error = StreamError::from_element(&element(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Component already connected</text>\
             </stream:error>",
        ))
        .expect("a stream error");
        assert_eq!(error.condition, "conflict");
        assert_eq!(error.text.as_deref(), Some("Component already connected"));
        assert_eq!(error.to_string(), "conflict (Component already connected)");
    }

    #[test]
    fn stream_error_without_text() {
        let error = StreamError::from_element(&element(
            "<error xmlns='http://etherx.jabber.org/streams'>\
             <host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>",
        ))
        .expect("a stream error");
        assert_eq!(error.to_string(), "host-unknown");
        assert!(
            StreamError::from_element(&element("<error xmlns='jabber:component:accept'/>"))
                .is_none()
        );
    }

    #[test]
    fn only_messages_to_the_bot_and_iq_requests_want_an_answer() {
        let wants = |xml: &str| wants_answer(&element(xml));
        let ns = "xmlns='jabber:component:accept'";
        assert!(wants(&format!("<message {ns} type='chat'/>")));
        assert!(wants(&format!("<message {ns}/>")));
        assert!(wants(&format!("<iq {ns} type='get'/>")));
        assert!(wants(&format!("<iq {ns} type='set'/>")));
        assert!(!wants(&format!("<message {ns} type='groupchat'/>")));
        assert!(!wants(&format!("<message {ns} type='error'/>")));
        assert!(!wants(&format!("<iq {ns} type='result'/>")));
        assert!(!wants(&format!("<presence {ns} type='subscribe'/>")));
        assert!(!wants("<message xmlns='urn:example' type='chat'/>"));
    }

    /// A group of writes waiting on `unconfirmed`, and how its waiter ends.
    fn waiting(unconfirmed: &mut Unconfirmed, id: &str) -> oneshot::Receiver<()> {
        let (written, confirmation) = oneshot::channel();
        unconfirmed
            .waiting
            .push_back((id.to_owned(), Instant::now(), vec![written]));
        confirmation
    }

    #[tokio::test]
    async fn an_echo_confirms_its_group_and_every_earlier_one() {
        let own = own_ping_prefix();
        let mut unconfirmed = Unconfirmed::default();
        let mut first = waiting(&mut unconfirmed, &format!("{own}1"));
        let mut second = waiting(&mut unconfirmed, &format!("{own}2"));
        let mut third = waiting(&mut unconfirmed, &format!("{own}3"));
        unconfirmed.echoed(&format!("{own}2"));
        assert_eq!(first.try_recv(), Ok(()));
        assert_eq!(second.try_recv(), Ok(()));
        assert!(third.try_recv().is_err(), "not yet");
        assert!(!unconfirmed.shared);
        // A lost session confirms nothing.
        drop(unconfirmed);
        assert_eq!(third.try_recv(), Err(oneshot::error::TryRecvError::Closed));
    }

    #[tokio::test]
    async fn another_connectors_ping_means_a_shared_link() {
        let own = own_ping_prefix();
        let mut unconfirmed = Unconfirmed::default();
        let mut mine = waiting(&mut unconfirmed, &format!("{own}1"));
        unconfirmed.echoed("keepalive-0123456789ab-77");
        assert!(unconfirmed.shared);
        assert_eq!(mine.try_recv(), Ok(()), "no echo can be counted on now");
    }

    #[tokio::test(start_paused = true)]
    async fn an_echo_that_never_comes_counts_as_taken_on_a_live_link() {
        let own = own_ping_prefix();
        let mut unconfirmed = Unconfirmed::default();
        let mut lost = waiting(&mut unconfirmed, &format!("{own}1"));
        let deadline = unconfirmed.deadline().expect("waiting");
        unconfirmed.expire(deadline - Duration::from_millis(1));
        assert!(lost.try_recv().is_err(), "not before the deadline");
        tokio::time::advance(CONFIRM_WAIT).await;
        unconfirmed.expire(Instant::now());
        assert_eq!(lost.try_recv(), Ok(()));
        assert_eq!(unconfirmed.deadline(), None);
    }

    #[test]
    fn keepalive_echoes_are_recognised() {
        let echo = element(
            "<iq xmlns='jabber:component:accept' type='result' from='bot.example.com' \
             to='bot.example.com' id='keepalive-1'/>",
        );
        assert!(is_keepalive_echo(&echo, "bot.example.com"));
        let user_ping = element(
            "<iq xmlns='jabber:component:accept' type='get' from='alice@example.com/x' \
             to='bot.example.com' id='keepalive-1'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert!(!is_keepalive_echo(&user_ping, "bot.example.com"));
    }
}

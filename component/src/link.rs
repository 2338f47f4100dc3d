//! The component link, kept up forever: one task reads stanzas and hands
//! them on, writes what it is given from one channel that outlives every
//! connection (what is given while the link is down is written once it is
//! back), pings the server so an idle link never times out, reconnects
//! with backoff when the link is lost, and stands by while another
//! instance holds the component's link.

use crate::backoff::Backoff;
use crate::errors::{LinkError, StreamError};
use crate::handshake::connect;
use crate::outbound::{
    Outbound, Unconfirmed, is_keepalive_echo, ping, sleep_until, write, write_items,
};
use crate::read_limit::Oversize;
use crate::settings::LinkSettings;
use crate::shutdown::Shutdown;
use crate::stream::{ComponentStream, Read};
use minidom::Element;
use std::fmt;
use std::io;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};
use tracing::{debug, info, trace, warn};
use xmpp_lambda_shared::{COMPONENT_NS, wants_answer};

/// How long to wait for the server while closing the stream.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most stanzas written with one flush.
const WRITE_BATCH: usize = 64;
/// A link that held this long counts as good: the next failure starts the
/// backoff over instead of continuing it.
const STABLE_LINK: Duration = Duration::from_secs(10);
/// How often a standby instance tries to take the link over: the takeover
/// comes at most this long after the server drops the other one.
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

/// How a session on an established link ended.
enum SessionEnd {
    /// Every reply is written and the stream is closed: the connector is
    /// shutting down.
    Finished,
    /// The link broke; reconnect.
    Lost(LinkError),
}

/// What to write, if anything, for a stanza read once its receiver has
/// stopped taking them: the answer its sender should get instead of
/// silence (the connector answers "the bot is restarting").
pub type Unanswered = Box<dyn Fn(&Element) -> Option<Element> + Send + Sync>;

/// Keeps the link up until shutdown. Stanzas read go to `inbound`; the
/// elements from `outbound` are written; `link_state` says whether the link
/// is established; a stanza read once `inbound` is closed gets what
/// `unanswered` makes of it. Returns once shutdown has started and either
/// every sender of `outbound` is gone and all was written, or the link is
/// down.
pub async fn run(
    settings: LinkSettings,
    inbound: mpsc::Sender<Inbound>,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
    link_state: watch::Sender<LinkState>,
    unanswered: Unanswered,
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
                    &unanswered,
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

/// Runs an established link until it breaks or, at shutdown, until every
/// reply is written.
async fn session(
    stream: &mut ComponentStream,
    settings: &LinkSettings,
    inbound: &mpsc::Sender<Inbound>,
    outbound: &mut mpsc::UnboundedReceiver<Outbound>,
    unsent: &mut Vec<Outbound>,
    held: &mut Option<Inbound>,
    unanswered: &Unanswered,
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
                        && let Err(cause) = answer_unhandled(stream, stanza, unanswered).await
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
                    if let Err(cause) = hand_over(stream, inbound, held, Inbound::Stanza(element), unanswered).await {
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
                    if let Err(cause) = hand_over(stream, inbound, held, skipped, unanswered).await {
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
    unanswered: &Unanswered,
) -> Result<(), LinkError> {
    match inbound.try_send(read) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(read)) => {
            *held = Some(read);
            Ok(())
        }
        Err(mpsc::error::TrySendError::Closed(read)) => match read.stanza() {
            Some(stanza) => answer_unhandled(stream, stanza, unanswered).await,
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

/// A stanza read after its receiver stopped taking them (the connector
/// shuts down and waits for its last writers): it gets what `unanswered`
/// makes of it, if anything, so its sender hears something.
async fn answer_unhandled(
    stream: &mut ComponentStream,
    stanza: &Element,
    unanswered: &Unanswered,
) -> Result<(), LinkError> {
    match unanswered(stanza) {
        Some(answer) => write(stream, &[&answer]).await,
        None => {
            debug!(
                kind = stanza.name(),
                "ignoring a stanza while shutting down"
            );
            Ok(())
        }
    }
}

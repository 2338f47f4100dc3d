//! What the link writes, and how a write someone waits on is confirmed:
//! by a XEP-0199 ping written after it, whose echo comes back through the
//! server in order.

use crate::errors::LinkError;
use crate::stream::ComponentStream;
use minidom::Element;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tracing::{debug, info};
use xmpp_lambda_shared::{COMPONENT_NS, attribute_name as name};

const PING_NS: &str = "urn:xmpp:ping";
/// The id prefix of our own keepalive pings, so their echoes are known.
const KEEPALIVE_ID_PREFIX: &str = "keepalive-";
/// How long one write may block before the link is taken for dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a write someone waits on waits for the server's confirming
/// echo before a link that is still up counts it as taken anyway.
const CONFIRM_WAIT: Duration = Duration::from_secs(5);

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
    pub(crate) fn abandoned(&self) -> bool {
        self.written
            .as_ref()
            .is_some_and(oneshot::Sender::is_closed)
    }

    /// The stanza to be written.
    pub fn element(&self) -> &Element {
        &self.stanza
    }

    /// The stanza, and who waits for its write: what a stand-in for the
    /// link (the fuzz targets) checks and confirms.
    pub(crate) fn into_parts(self) -> (Element, Option<oneshot::Sender<()>>) {
        (self.stanza, self.written)
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
pub(crate) struct Unconfirmed {
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
pub(crate) async fn write_items(
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
    pub(crate) fn echoed(&mut self, id: &str) {
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
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.waiting.front().map(|(_, at, _)| *at + CONFIRM_WAIT)
    }

    /// Confirms the groups that waited [`CONFIRM_WAIT`] for their echo on a
    /// link that stayed up.
    pub(crate) fn expire(&mut self, now: Instant) {
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
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes elements and flushes once, bounded in time so a stuck server
/// cannot stall us.
pub(crate) async fn write(
    stream: &mut ComponentStream,
    elements: &[&Element],
) -> Result<(), LinkError> {
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
pub(crate) async fn ping(stream: &mut ComponentStream, domain: &str) -> Result<(), LinkError> {
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
pub(crate) fn is_keepalive_echo(element: &Element, domain: &str) -> bool {
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

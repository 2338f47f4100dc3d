//! The ceiling: a trivial XEP-0114 echo component with no HTTP at all.
//!
//! It answers each message with the same reply the connector gets from the
//! echo bot (`Did you say …?`, addresses swapped, a fresh 36-character id),
//! built in place of an HTTP round trip. What Prosody carries with it, and
//! what Prosody's CPU costs per message with it, are what any component
//! could hope for on this server: the connector is measured against it.
//!
//! It stays as plain as a component can be: one task, one socket, stanzas
//! cut from the stream by the [`StanzaScanner`] and parsed one by one, and
//! the replies to everything one read brought written at once, with no
//! waiting for more.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use minidom::Element;
use sha1::{Digest, Sha1};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scanner::{ScanError, StanzaScanner, StreamItem};
use crate::xmpp::escape;

/// The namespace of stanzas on a component stream.
pub const NS_COMPONENT: &str = "jabber:component:accept";
const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// Largest stanza accepted from the server.
const MAX_STANZA: usize = 1 << 20;
/// How long connecting and the handshake may take.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(15);

/// Why the component could not link or lost its link.
#[derive(Debug, Error)]
pub enum ComponentError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("stream framing: {0}")]
    Scan(#[from] ScanError),
    #[error("unparsable element: {0}")]
    Parse(#[from] minidom::Error),
    #[error("the server sent no stream id")]
    NoStreamId,
    #[error("handshake refused: {0}")]
    Refused(String),
    #[error("the server closed the stream")]
    Closed,
    #[error("the handshake took longer than {0:?}")]
    HandshakeTimeout(Duration),
}

/// Where to link and as whom.
#[derive(Debug, Clone)]
pub struct ComponentSettings {
    /// The server's component port, `host:port`.
    pub server: String,
    /// The component's domain.
    pub domain: String,
    /// The shared secret of the handshake.
    pub secret: String,
}

/// What the component did, for its exit line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Messages answered.
    pub replies: u64,
    /// Socket writes it took: replies to one read go out in one.
    pub writes: u64,
}

/// A linked component stream.
pub struct EchoComponent {
    /// The TCP connection to the server's component port.
    socket: TcpStream,
    /// Cuts the server's bytes into stanzas.
    scanner: StanzaScanner,
    /// Read buffer reused for every socket read.
    read_buf: Box<[u8]>,
    /// Replies made from one read, written together.
    out: String,
    /// Numbers the reply ids.
    next_id: u64,
    /// Counts for the exit line.
    served: Served,
}

impl EchoComponent {
    /// Connects and completes the XEP-0114 handshake.
    pub async fn link(settings: &ComponentSettings) -> Result<EchoComponent, ComponentError> {
        tokio::time::timeout(HANDSHAKE_LIMIT, Self::handshake(settings))
            .await
            .map_err(|_| ComponentError::HandshakeTimeout(HANDSHAKE_LIMIT))?
    }

    async fn handshake(settings: &ComponentSettings) -> Result<EchoComponent, ComponentError> {
        let socket = TcpStream::connect(settings.server.as_str()).await?;
        socket.set_nodelay(true)?;
        let mut component = EchoComponent {
            socket,
            scanner: StanzaScanner::new(MAX_STANZA),
            read_buf: vec![0; 64 * 1024].into_boxed_slice(),
            out: String::with_capacity(16 * 1024),
            next_id: 0,
            served: Served::default(),
        };
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' \
             xmlns:stream='{NS_STREAM}' to='{}'>",
            escape(&settings.domain)
        );
        component.socket.write_all(header.as_bytes()).await?;
        // The server's header comes first; anything else is a refusal.
        let stream_id = match component.next_item().await? {
            StreamItem::Open(tag) => stream_id_of(&tag).ok_or(ComponentError::NoStreamId)?,
            StreamItem::Close => return Err(ComponentError::Closed),
            StreamItem::Stanza(bytes) => {
                return Err(ComponentError::Refused(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        };
        let answer = format!(
            "<handshake>{}</handshake>",
            handshake_digest(&stream_id, &settings.secret)
        );
        component.socket.write_all(answer.as_bytes()).await?;
        match component.next_item().await? {
            StreamItem::Stanza(bytes) if bytes.starts_with(b"<handshake") => Ok(component),
            StreamItem::Stanza(bytes) => Err(ComponentError::Refused(
                String::from_utf8_lossy(&bytes).into_owned(),
            )),
            _ => Err(ComponentError::Closed),
        }
    }

    /// The next stream item, reading as needed.
    async fn next_item(&mut self) -> Result<StreamItem, ComponentError> {
        loop {
            if let Some(item) = self.scanner.next_item()? {
                return Ok(item);
            }
            let n = self.socket.read(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ComponentError::Closed);
            }
            self.scanner.feed(&self.read_buf[..n]);
        }
    }

    /// Answers messages until `stop` completes or the link breaks.
    pub async fn serve(mut self, stop: impl Future<Output = ()>) -> Result<Served, ComponentError> {
        tokio::pin!(stop);
        loop {
            let n = tokio::select! {
                () = &mut stop => break,
                read = self.socket.read(&mut self.read_buf) => read?,
            };
            if n == 0 {
                return Err(ComponentError::Closed);
            }
            self.scanner.feed(&self.read_buf[..n]);
            while let Some(item) = self.scanner.next_item()? {
                match item {
                    StreamItem::Stanza(bytes) => self.answer(&bytes)?,
                    StreamItem::Close => return Err(ComponentError::Closed),
                    StreamItem::Open(_) => {}
                }
            }
            if !self.out.is_empty() {
                self.socket.write_all(self.out.as_bytes()).await?;
                self.out.clear();
                self.served.writes += 1;
            }
        }
        let _ = self.socket.write_all(b"</stream:stream>").await;
        Ok(self.served)
    }

    /// Appends the answer to one stanza, if it gets one, to `out`.
    fn answer(&mut self, bytes: &[u8]) -> Result<(), ComponentError> {
        let stanza = Element::from_reader_with_prefixes(bytes, Some(NS_COMPONENT.to_owned()))?;
        if stanza.is("error", NS_STREAM) {
            return Err(ComponentError::Refused(
                String::from_utf8_lossy(bytes).into_owned(),
            ));
        }
        self.next_id += 1;
        let id = ceiling_id(self.next_id);
        if let Some(reply) = echo_reply(&stanza, &id) {
            self.out.push_str(&reply);
            self.served.replies += 1;
        }
        Ok(())
    }
}

/// The reply to one stanza: a message with a body gets `Did you say …?`,
/// an IQ get or set an empty result (so pings are answered); anything else
/// (presence, errors) gets nothing.
pub fn echo_reply(stanza: &Element, id: &str) -> Option<String> {
    let from = stanza.attr("from")?;
    let to = stanza.attr("to")?;
    let kind = stanza.attr("type");
    let mut reply = String::with_capacity(256);
    match stanza.name() {
        "message" if kind != Some("error") => {
            let body = stanza
                .children()
                .find(|child| child.name() == "body")?
                .text();
            let _ = write!(
                reply,
                "<message from='{}' to='{}' type='{}' id='{id}'><body>Did you say {}?</body></message>",
                escape(to),
                escape(from),
                escape(kind.unwrap_or("normal")),
                escape(&body)
            );
        }
        "iq" if matches!(kind, Some("get" | "set")) => {
            let _ = write!(
                reply,
                "<iq type='result' from='{}' to='{}' id='{}'/>",
                escape(to),
                escape(from),
                escape(stanza.attr("id").unwrap_or(""))
            );
        }
        _ => return None,
    }
    Some(reply)
}

/// A reply id as long as the connector's (a UUID's 36 characters), so the
/// two send the same number of bytes for the same reply.
pub fn ceiling_id(n: u64) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        n >> 48,
        n & 0xffff_ffff_ffff
    )
}

/// The `id` attribute of a stream header tag.
fn stream_id_of(tag: &[u8]) -> Option<String> {
    let tag = std::str::from_utf8(tag).ok()?;
    let mut rest = tag;
    while let Some(at) = rest.find("id=") {
        // ` id=`, not `xmlns:id=` or the tail of another name.
        let preceded_by_space = rest[..at].ends_with(char::is_whitespace);
        let value = &rest[at + 3..];
        if preceded_by_space
            && let Some(quote) = value.chars().next().filter(|q| *q == '\'' || *q == '"')
        {
            let value = &value[1..];
            return value.find(quote).map(|end| value[..end].to_owned());
        }
        rest = value;
    }
    None
}

/// XEP-0114's handshake: lowercase hex SHA-1 of stream id + secret.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let digest = Sha1::new()
        .chain_update(stream_id.as_bytes())
        .chain_update(secret.as_bytes())
        .finalize();
    digest
        .iter()
        .fold(String::with_capacity(40), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stanza(xml: &str) -> Element {
        Element::from_reader_with_prefixes(xml.as_bytes(), Some(NS_COMPONENT.to_owned()))
            .expect("test XML is valid")
    }

    #[test]
    fn the_handshake_digest_is_xep_0114s() {
        // As Python's hashlib.sha1(b"3BF96D32secret").hexdigest() gives it.
        assert_eq!(
            handshake_digest("3BF96D32", "secret"),
            "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136"
        );
    }

    #[test]
    fn the_stream_id_is_read_from_the_header() {
        let header = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
            xmlns='jabber:component:accept' from='bot.localhost' id=\"a-1'b\">";
        assert_eq!(stream_id_of(header).as_deref(), Some("a-1'b"));
        assert_eq!(stream_id_of(b"<stream:stream xmlns:id='x'>"), None);
    }

    #[test]
    fn messages_are_echoed_like_the_http_bot_does() {
        let message = stanza(
            "<message from='alice@localhost/r' to='echo@bot.localhost' type='chat' id='m1' \
             xml:lang='en'><body>#1 a&lt;b</body></message>",
        );
        let id = ceiling_id(1);
        assert_eq!(id.len(), 36);
        assert_eq!(
            echo_reply(&message, &id).as_deref(),
            Some(
                "<message from='echo@bot.localhost' to='alice@localhost/r' type='chat' \
                 id='00000000-0000-4000-8000-000000000001'><body>Did you say #1 a&lt;b?</body></message>"
            )
        );
        let ping = stanza(
            "<iq from='alice@localhost/r' to='bot.localhost' type='get' id='p'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(
            echo_reply(&ping, "unused").as_deref(),
            Some("<iq type='result' from='bot.localhost' to='alice@localhost/r' id='p'/>")
        );
        let error = stanza("<message from='a@localhost' to='e@bot.localhost' type='error'/>");
        assert_eq!(echo_reply(&error, "x"), None);
        assert_eq!(
            echo_reply(
                &stanza("<presence from='a@localhost' to='e@bot.localhost'/>"),
                "x"
            ),
            None
        );
    }
}

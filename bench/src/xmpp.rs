//! A minimal XMPP client stream: plain TCP, SASL PLAIN, resource binding.
//!
//! Enough for a load generator on loopback and nothing more: no TLS, no
//! stream management, no roster. Incoming bytes are split by the
//! [`StanzaScanner`] and each stanza is parsed on its own with minidom.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use minidom::Element;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::scanner::{ScanError, StanzaScanner, StreamItem};

/// Namespace of client stanzas.
pub const NS_CLIENT: &str = "jabber:client";
/// Namespace of the stream's own elements (`stream:features`, `stream:error`).
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Namespace of stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Largest stanza accepted from the server.
const MAX_STANZA: usize = 1 << 20;

/// Why a session could not log in or went down.
#[derive(Debug, Error)]
pub enum XmppError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("stream framing: {0}")]
    Scan(#[from] ScanError),
    #[error("unparsable stanza: {0}")]
    Parse(#[from] minidom::Error),
    #[error("the server closed the stream")]
    Closed,
    #[error("stream error from the server: {0}")]
    StreamError(String),
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("the server offers no SASL PLAIN (plain TCP on loopback must allow it)")]
    NoPlain,
    #[error("resource binding failed: {0}")]
    Bind(String),
    #[error("login took longer than {0:?}")]
    LoginTimeout(Duration),
}

/// One logged-in client stream.
pub struct XmppConnection {
    /// The TCP connection to the server's c2s port.
    socket: TcpStream,
    /// Splits what the server sends into stanzas.
    scanner: StanzaScanner,
    /// Read buffer reused for every socket read.
    read_buf: Box<[u8]>,
    /// Namespaces a stanza inherits from the stream header it was cut from.
    prefixes: BTreeMap<Option<String>, String>,
    /// The full JID the server bound for this session.
    pub jid: String,
}

impl XmppConnection {
    /// Connects to `host:port` and logs in as `user@domain/resource` with SASL PLAIN.
    pub async fn login(
        host: &str,
        port: u16,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
        limit: Duration,
    ) -> Result<XmppConnection, XmppError> {
        tokio::time::timeout(
            limit,
            Self::login_steps(host, port, domain, user, password, resource),
        )
        .await
        .map_err(|_| XmppError::LoginTimeout(limit))?
    }

    async fn login_steps(
        host: &str,
        port: u16,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<XmppConnection, XmppError> {
        let socket = TcpStream::connect((host, port)).await?;
        // Small stanzas must go out at once, not wait for Nagle.
        socket.set_nodelay(true)?;
        let mut prefixes = BTreeMap::new();
        prefixes.insert(None, NS_CLIENT.to_owned());
        prefixes.insert(Some("stream".to_owned()), NS_STREAM.to_owned());
        let mut conn = XmppConnection {
            socket,
            scanner: StanzaScanner::new(MAX_STANZA),
            read_buf: vec![0; 64 * 1024].into_boxed_slice(),
            prefixes,
            jid: String::new(),
        };

        let features = conn.open_stream(domain).await?;
        let offers_plain = features
            .get_child("mechanisms", NS_SASL)
            .is_some_and(|m| m.children().any(|c| c.text() == "PLAIN"));
        if !offers_plain {
            return Err(XmppError::NoPlain);
        }
        let credentials = format!("\0{user}\0{password}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        conn.send(&format!(
            "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{encoded}</auth>"
        ))
        .await?;
        let outcome = conn.next_element().await?;
        if outcome.name() != "success" {
            let condition = outcome
                .children()
                .find(|c| c.name() != "text")
                .map_or_else(|| outcome.name().to_owned(), |c| c.name().to_owned());
            return Err(XmppError::AuthFailed(condition));
        }

        // SASL success restarts the stream; the server sends nothing until we do.
        conn.scanner = StanzaScanner::new(MAX_STANZA);
        let features = conn.open_stream(domain).await?;
        conn.send(&format!(
            "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
            escape(resource)
        ))
        .await?;
        let bound = conn.next_element().await?;
        conn.jid = bound
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .map(Element::text)
            .ok_or_else(|| XmppError::Bind(error_condition(&bound)))?;
        // RFC 3921 sessions: only servers that still require them need the round trip.
        let session_required = features
            .get_child("session", NS_SESSION)
            .is_some_and(|s| !s.has_child("optional", NS_SESSION));
        if session_required {
            conn.send(&format!(
                "<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>"
            ))
            .await?;
            let reply = conn.next_element().await?;
            if reply.attr("type") != Some("result") {
                return Err(XmppError::Bind(error_condition(&reply)));
            }
        }
        // Available, so messages to the bare JID are delivered too.
        conn.send("<presence/>").await?;
        Ok(conn)
    }

    /// Sends a stream header and returns the server's `<stream:features/>`.
    async fn open_stream(&mut self, domain: &str) -> Result<Element, XmppError> {
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' \
             xmlns:stream='{NS_STREAM}' to='{}' version='1.0'>",
            escape(domain)
        ))
        .await?;
        loop {
            let element = self.next_element().await?;
            if element.is("features", NS_STREAM) {
                return Ok(element);
            }
        }
    }

    /// Writes raw XML to the server.
    pub async fn send(&mut self, xml: &str) -> Result<(), XmppError> {
        self.socket.write_all(xml.as_bytes()).await?;
        Ok(())
    }

    /// Waits for the next stanza, reading as needed.
    pub async fn next_element(&mut self) -> Result<Element, XmppError> {
        loop {
            if let Some(element) = self.poll_element()? {
                return Ok(element);
            }
            self.fill().await?;
        }
    }

    /// The next stanza already received, without waiting. A stream error
    /// from the server and the end of the stream are errors.
    pub fn poll_element(&mut self) -> Result<Option<Element>, XmppError> {
        loop {
            match self.scanner.next_item()? {
                None => return Ok(None),
                // Headers carry nothing a client needs here.
                Some(StreamItem::Open(_)) => continue,
                Some(StreamItem::Close) => return Err(XmppError::Closed),
                Some(StreamItem::Stanza(bytes)) => {
                    let element =
                        Element::from_reader_with_prefixes(&bytes[..], self.prefixes.clone())?;
                    if element.is("error", NS_STREAM) {
                        let text = element
                            .children()
                            .map(|c| match c.name() {
                                "text" => c.text(),
                                name => name.to_owned(),
                            })
                            .collect::<Vec<_>>()
                            .join(": ");
                        return Err(XmppError::StreamError(text));
                    }
                    return Ok(Some(element));
                }
            }
        }
    }

    /// Reads once from the socket into the scanner. Cancel-safe: a read
    /// that is dropped before completing has consumed nothing.
    pub async fn fill(&mut self) -> Result<(), XmppError> {
        let n = self.socket.read(&mut self.read_buf).await?;
        if n == 0 {
            return Err(XmppError::Closed);
        }
        self.scanner.feed(&self.read_buf[..n]);
        Ok(())
    }

    /// Ends the stream politely and waits briefly for the server to close it.
    pub async fn close(mut self) {
        if self.send("</stream:stream>").await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while self.fill().await.is_ok() {}
            })
            .await;
        }
    }
}

/// `type/condition` of a stanza of type error (or its name when it has none).
pub fn error_condition(stanza: &Element) -> String {
    let Some(error) = stanza.children().find(|c| c.name() == "error") else {
        return format!("{}-without-error", stanza.name());
    };
    let kind = error.attr("type").unwrap_or("?");
    let condition = error
        .children()
        .find(|c| c.ns() == NS_STANZAS && c.name() != "text")
        .map_or("undefined-condition", |c| c.name());
    format!("{kind}/{condition}")
}

/// Escapes text for an XML attribute or element content.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

//! A real XMPP client for tests: `tests/xmpp_client.py` (slixmpp) in a
//! subprocess, driven over stdin/stdout JSON lines.
//!
//! The workspace cannot host a Rust XMPP *client*: xmpp-parsers' `component`
//! feature, which the connector enables, switches its default namespace for
//! the whole build. slixmpp is a full, independent client implementation.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use minidom::Element;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Result;

/// Debian's Python, which has `python3-slixmpp` (the first `python3` on
/// PATH may be another build without it).
const PYTHON: &str = "/usr/bin/python3";

/// How long login (connect, SASL, bind, roster, presence) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The namespace of stanzas as a client sees them.
pub const CLIENT_NS: &str = "jabber:client";

/// A logged-in XMPP client session. Dropping it kills the subprocess.
#[derive(Debug)]
pub struct XmppClient {
    /// The bare JID this client logged in as.
    jid: String,
    /// The full JID the server bound (`user@host/resource`): where replies
    /// to this session are addressed.
    full_jid: String,
    /// The client process's stdin: each line is an XML stanza to send.
    commands: ChildStdin,
    /// Every stanza the server sent, in order, as they arrive.
    stanzas: mpsc::UnboundedReceiver<ClientEvent>,
    /// Set once the client reported that the stream ended.
    disconnected: Option<String>,
    /// The client process; killed on drop.
    child: Child,
}

/// One line from the client process.
#[derive(Debug)]
enum ClientEvent {
    /// The session is established (roster fetched, presence sent).
    Ready { full_jid: String },
    /// A stanza from the server, as XML text in `jabber:client`.
    Stanza(String),
    /// Something worth showing in the test output, not an end.
    Warning(String),
    /// The session could not start or ended; the reason says why.
    Ended { event: String, reason: String },
}

impl XmppClient {
    /// Logs in as `jid` with `password` on `host:port` (no TLS; plain SASL
    /// is allowed on loopback), requests the roster, sends initial presence
    /// and returns once the session is ready.
    pub async fn connect(host: &str, port: u16, jid: &str, password: &str) -> Result<Self> {
        let script = script_path();
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .arg("--host")
            .arg(host)
            .arg("--port")
            .arg(port.to_string())
            .arg("--jid")
            .arg(jid)
            .arg("--password")
            .arg(password)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {PYTHON} {}: {e}", script.display()))?;
        let stdout = child.stdout.take().ok_or("client stdout not piped")?;
        let commands = child.stdin.take().ok_or("client stdin not piped")?;

        let (events, mut stanzas) = mpsc::unbounded_channel();
        let label = jid.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match parse_event(&line) {
                    Some(ClientEvent::Warning(reason)) => {
                        eprintln!("[xmpp client {label}] warning: {reason}");
                    }
                    Some(event) => {
                        if events.send(event).is_err() {
                            break;
                        }
                    }
                    None => eprintln!("[xmpp client {label}] {line}"),
                }
            }
            let _ = events.send(ClientEvent::Ended {
                event: "exited".to_owned(),
                reason: "the client process ended".to_owned(),
            });
        });

        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let full_jid = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, stanzas.recv()).await {
                Err(_) => {
                    return Err(format!("{jid}: no session within {CONNECT_TIMEOUT:?}").into());
                }
                Ok(None) => return Err(format!("{jid}: the client process ended").into()),
                Ok(Some(ClientEvent::Ready { full_jid })) => break full_jid,
                // Bind and roster results before the session is ready.
                Ok(Some(ClientEvent::Stanza(_) | ClientEvent::Warning(_))) => continue,
                Ok(Some(ClientEvent::Ended { event, reason })) => {
                    return Err(format!("{jid}: {event}: {reason}").into());
                }
            }
        };
        Ok(XmppClient {
            jid: jid.to_owned(),
            full_jid,
            commands,
            stanzas,
            disconnected: None,
            child,
        })
    }

    /// The bare JID this client logged in as.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// The full JID of this session (`user@host/resource`).
    pub fn full_jid(&self) -> &str {
        &self.full_jid
    }

    /// Writes raw XML to the stream (stanzas without `xmlns` are in
    /// `jabber:client`, the stream's default namespace).
    pub async fn send(&mut self, xml: &str) -> Result<()> {
        let mut line = json!({ "send": xml }).to_string();
        line.push('\n');
        self.commands.write_all(line.as_bytes()).await?;
        self.commands.flush().await?;
        Ok(())
    }

    /// Sends a `chat` message with `body` to `to`; returns its fresh id.
    pub async fn send_message(&mut self, to: &str, body: &str) -> Result<String> {
        self.send_message_of_type(to, "chat", body).await
    }

    /// Sends a message of the given `type` (`chat`, `normal`, `groupchat`…)
    /// with `body` to `to`; returns its fresh id.
    pub async fn send_message_of_type(
        &mut self,
        to: &str,
        message_type: &str,
        body: &str,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let xml = format!(
            "<message to='{}' type='{}' id='{}'><body>{}</body></message>",
            escape_xml(to),
            escape_xml(message_type),
            id,
            escape_xml(body)
        );
        self.send(&xml).await?;
        Ok(id)
    }

    /// The next stanza from the server, or `None` when none arrives within
    /// `timeout` or the session ended.
    ///
    /// # Panics
    /// When the client hands over XML that does not parse (a harness bug).
    pub async fn recv(&mut self, timeout: Duration) -> Option<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.disconnected.is_some() {
                return None;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.stanzas.recv()).await {
                Err(_) | Ok(None) => return None,
                Ok(Some(ClientEvent::Stanza(xml))) => return Some(parse_stanza(&xml)),
                Ok(Some(ClientEvent::Ready { .. } | ClientEvent::Warning(_))) => continue,
                Ok(Some(ClientEvent::Ended { event, reason })) => {
                    self.disconnected = Some(format!("{event}: {reason}"));
                    return None;
                }
            }
        }
    }

    /// The first stanza within `timeout` for which `predicate` holds;
    /// stanzas before it are skipped.
    pub async fn recv_until(
        &mut self,
        timeout: Duration,
        mut predicate: impl FnMut(&Element) -> bool,
    ) -> Option<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let stanza = self.recv(remaining).await?;
            if predicate(&stanza) {
                return Some(stanza);
            }
        }
    }

    /// The next `<message/>` within `timeout`, skipping presence and IQs.
    pub async fn recv_message(&mut self, timeout: Duration) -> Option<Element> {
        self.recv_until(timeout, |stanza| stanza.name() == "message")
            .await
    }

    /// The next message within `timeout`, or a failure naming this client
    /// and `what` was awaited.
    pub async fn expect_message(&mut self, what: &str, timeout: Duration) -> Result<Element> {
        self.recv_message(timeout)
            .await
            .ok_or_else(|| format!("{}: no message ({what}) within {timeout:?}", self.jid()).into())
    }

    /// Why the session ended, once it has.
    pub fn disconnected(&self) -> Option<&str> {
        self.disconnected.as_deref()
    }

    /// The client process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// The slixmpp script, next to this crate's manifest.
fn script_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("xmpp_client.py")
}

fn parse_event(line: &str) -> Option<ClientEvent> {
    let value: Value = serde_json::from_str(line).ok()?;
    let text = |key: &str| {
        value
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match value.get("event")?.as_str()? {
        "ready" => Some(ClientEvent::Ready {
            full_jid: text("jid"),
        }),
        "stanza" => Some(ClientEvent::Stanza(text("xml"))),
        "warning" | "bad_command" => Some(ClientEvent::Warning(text("reason"))),
        event => Some(ClientEvent::Ended {
            event: event.to_owned(),
            reason: text("reason"),
        }),
    }
}

/// The text of a stanza's `<body>` (in `jabber:client`), if it has one.
pub fn body_of(stanza: &Element) -> Option<String> {
    stanza.get_child("body", CLIENT_NS).map(Element::text)
}

/// Parses one stanza the client received.
///
/// # Panics
/// When the XML does not parse: slixmpp serialised it, so that is a bug.
pub fn parse_stanza(xml: &str) -> Element {
    match xml.parse::<Element>() {
        Ok(element) => element,
        Err(error) => {
            panic!("the XMPP client handed over XML that does not parse ({error}): {xml}")
        }
    }
}

/// Escapes text for an XML attribute (single or double quoted) or element.
pub fn escape_xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\'' => escaped.push_str("&apos;"),
            '"' => escaped.push_str("&quot;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stanza_as_slixmpp_prints_it() {
        let stanza = parse_stanza(
            "<message xmlns=\"jabber:client\" to=\"bob@localhost\" from=\"alice@localhost/r\" \
             id=\"m1\" type=\"chat\" xml:lang=\"en\"><body>hi &amp; bye</body></message>",
        );
        assert_eq!(stanza.name(), "message");
        assert_eq!(stanza.ns(), CLIENT_NS);
        assert_eq!(stanza.attr("type"), Some("chat"));
        let body = stanza.get_child("body", CLIENT_NS).map(Element::text);
        assert_eq!(body.as_deref(), Some("hi & bye"));
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape_xml("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
    }
}

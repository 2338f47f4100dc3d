//! A fake XMPP server's component port: it performs the server side of the
//! XEP-0114 handshake like a real server, then lets a test write anything
//! at all to the connector (malformed XML, endless stanzas, DTDs) and
//! watch what the connector does with the connection.

use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::Result;

/// The namespace of component streams.
const COMPONENT_NS: &str = "jabber:component:accept";
/// The namespace of the stream element.
const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
/// Writes of a flood are this large, so a closed connection is noticed soon.
const FLOOD_CHUNK: usize = 64 * 1024;

/// A listening fake server for one component domain.
#[derive(Debug)]
pub struct FakeComponentServer {
    /// Accepts the connector's connections on 127.0.0.1.
    listener: TcpListener,
    /// The component domain the connector must ask for.
    domain: String,
    /// The shared secret its handshake must prove.
    secret: String,
    /// Connections accepted so far, to give each stream its own id.
    accepted: u32,
}

impl FakeComponentServer {
    /// Listens on a free port of 127.0.0.1 for the component `domain`.
    pub async fn start(domain: &str) -> Result<Self> {
        Ok(FakeComponentServer {
            listener: TcpListener::bind("127.0.0.1:0").await?,
            domain: domain.to_owned(),
            secret: uuid::Uuid::new_v4().simple().to_string(),
            accepted: 0,
        })
    }

    /// The port the connector links to.
    pub fn port(&self) -> Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }

    /// The connector's COMPONENT_JID, COMPONENT_SECRET and COMPONENT_SERVER
    /// for this server.
    pub fn component_env(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![
            ("COMPONENT_JID", self.domain.clone()),
            ("COMPONENT_SECRET", self.secret.clone()),
            ("COMPONENT_SERVER", format!("127.0.0.1:{}", self.port()?)),
        ])
    }

    /// Accepts the next connection and reads the connector's stream header,
    /// without answering it: the test writes whatever it likes next.
    pub async fn accept_raw(&mut self, within: Duration) -> Result<FakeLink> {
        let (stream, _) = tokio::time::timeout(within, self.listener.accept())
            .await
            .map_err(|_| format!("the connector did not connect within {within:?}"))??;
        self.accepted += 1;
        let mut link = FakeLink {
            stream,
            header: String::new(),
            received: Vec::new(),
        };
        let mut header = link.wait_for("<stream:stream", within).await?;
        header += &link.wait_for(">", within).await?;
        link.header = header;
        Ok(link)
    }

    /// Accepts the next connection and completes the handshake as a real
    /// server does: stream header with an id, then `<handshake/>` if the
    /// connector proved the secret (a stream error otherwise).
    pub async fn accept_link(&mut self, within: Duration) -> Result<FakeLink> {
        let mut link = self.accept_raw(within).await?;
        let asks_for_domain = [
            format!("to='{}'", self.domain),
            format!("to=\"{}\"", self.domain),
        ]
        .iter()
        .any(|to| link.header.contains(to));
        if !asks_for_domain {
            return Err(format!("the connector asked for another domain: {}", link.header).into());
        }
        let stream_id = format!("fake-{}", self.accepted);
        link.send(
            format!(
                "<?xml version='1.0'?><stream:stream xmlns='{COMPONENT_NS}' \
                 xmlns:stream='{STREAMS_NS}' id='{stream_id}' from='{}'>",
                self.domain
            )
            .as_bytes(),
        )
        .await?;
        let answer = link.wait_for("</handshake>", within).await?;
        let digest = Sha1::digest(format!("{stream_id}{}", self.secret).as_bytes());
        let expected: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        if !answer.contains(&format!("<handshake>{expected}</handshake>")) {
            link.send(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
                .await?;
            return Err(format!("the connector's handshake was wrong: {answer}").into());
        }
        link.send(b"<handshake/>").await?;
        link.received.clear();
        Ok(link)
    }
}

/// One connection from the connector.
#[derive(Debug)]
pub struct FakeLink {
    /// The TCP connection.
    stream: TcpStream,
    /// The connector's stream header (with the XML declaration before it).
    header: String,
    /// What the connector wrote and no wait has consumed yet.
    received: Vec<u8>,
}

/// How a flood ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    /// Bytes the connection accepted (the kernel's buffers included).
    pub accepted: usize,
    /// Whether the connector closed the connection before all was written.
    pub cut_off: bool,
}

impl FakeLink {
    /// The connector's stream header, as it wrote it.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Writes `bytes` to the connector.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Writes `prefix`, then `filler` over and over until `total` bytes are
    /// written or the connector closes the connection (or stops reading for
    /// `stall`).
    pub async fn flood(
        &mut self,
        prefix: &[u8],
        filler: &[u8],
        total: usize,
        stall: Duration,
    ) -> Flood {
        let mut chunk = Vec::with_capacity(FLOOD_CHUNK + filler.len());
        let mut accepted = 0;
        if !matches!(
            tokio::time::timeout(stall, self.stream.write_all(prefix)).await,
            Ok(Ok(()))
        ) {
            return Flood {
                accepted,
                cut_off: true,
            };
        }
        accepted += prefix.len();
        while accepted < total {
            chunk.clear();
            while chunk.len() < FLOOD_CHUNK.min(total - accepted) {
                chunk.extend_from_slice(filler);
            }
            chunk.truncate(total - accepted);
            match tokio::time::timeout(stall, self.stream.write(&chunk)).await {
                Ok(Ok(written)) if written > 0 => accepted += written,
                _ => {
                    return Flood {
                        accepted,
                        cut_off: true,
                    };
                }
            }
        }
        Flood {
            accepted,
            cut_off: false,
        }
    }

    /// Reads until what the connector wrote contains `needle`; returns all
    /// of it up to the end of that needle and keeps the rest for the next
    /// wait.
    pub async fn wait_for(&mut self, needle: &str, within: Duration) -> Result<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(at) = find(&self.received, needle.as_bytes()) {
                let end = at + needle.len();
                let found = String::from_utf8_lossy(&self.received[..end]).into_owned();
                self.received.drain(..end);
                return Ok(found);
            }
            let mut buffer = [0u8; 8192];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buffer))
                .await
                .map_err(|_| {
                    format!(
                        "the connector did not send {needle:?} within {within:?}; it sent: {}",
                        self.received_text()
                    )
                })?;
            match read {
                Ok(0) | Err(_) => {
                    return Err(format!(
                        "the connector closed the connection before sending {needle:?}; it sent: {}",
                        self.received_text()
                    )
                    .into());
                }
                Ok(n) => self.received.extend_from_slice(&buffer[..n]),
            }
        }
    }

    /// Waits until the connector closes the connection (an end of stream or
    /// a reset), reading whatever it still writes.
    pub async fn wait_closed(&mut self, within: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut buffer = [0u8; 8192];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buffer)).await {
                Err(_) => {
                    return Err(
                        format!("the connector kept the connection open for {within:?}").into(),
                    );
                }
                Ok(Ok(0) | Err(_)) => return Ok(()),
                Ok(Ok(n)) => self.received.extend_from_slice(&buffer[..n]),
            }
        }
    }

    /// What the connector wrote that no wait has consumed, as text.
    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

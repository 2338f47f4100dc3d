//! The TCP connection under a component stream, and the text the link
//! writes onto it.

use minidom::Element;
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::warn;
use xmpp_lambda_shared::{COMPONENT_NS, append_stanza_text};

/// The TCP connection under a component stream.
///
/// Ending the stream sends our footer but does not half-close the socket:
/// the server still writes what it routed to us before it read the footer,
/// then its own footer, and only then closes. A server that sees the
/// connection end right after our footer may drop what it had queued for
/// us unread (Prosody 0.12 discards its write buffer on a read EOF). The
/// socket closes when dropped.
///
/// What the link writes is queued as text in [`LinkSocket::queue`] and goes
/// out with the next [`LinkSocket::flush`], so a batch of replies is one
/// write.
#[derive(Debug)]
pub(crate) struct LinkSocket {
    /// The connection to the server.
    tcp: TcpStream,
    /// Text queued and not yet written.
    outbox: String,
    /// How much of `outbox` is written: a flush cut short by its timeout
    /// leaves the rest.
    written: usize,
}

impl LinkSocket {
    pub(crate) fn new(tcp: TcpStream) -> LinkSocket {
        LinkSocket {
            tcp,
            outbox: String::new(),
            written: 0,
        }
    }

    /// Queues `stanza`. Most are written by the shared rules' own writer;
    /// one with declared prefixes or foreign-namespace attributes by
    /// minidom's.
    pub(crate) fn queue(&mut self, stanza: &Element) {
        if append_stanza_text(stanza, COMPONENT_NS, &mut self.outbox) {
            return;
        }
        let mut text = Vec::new();
        match stanza.write_to(&mut text).map(|()| String::from_utf8(text)) {
            Ok(Ok(text)) => self.outbox.push_str(&text),
            // Stanzas are built from checked text, so this is not expected;
            // a stanza that cannot be written must not cost the link.
            _ => warn!(
                name = stanza.name(),
                "a stanza could not be written as XML; dropped"
            ),
        }
    }

    /// Queues raw text: the stream header, the handshake, the footer.
    pub(crate) fn queue_text(&mut self, text: &str) {
        self.outbox.push_str(text);
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        while self.written < self.outbox.len() {
            let rest = &self.outbox.as_bytes()[self.written..];
            match self.tcp.write(rest).await? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => self.written += n,
            }
        }
        self.written = 0;
        if self.outbox.capacity() > OUTBOX_KEPT {
            // A burst of large replies does not keep its memory.
            self.outbox = String::new();
        } else {
            self.outbox.clear();
        }
        Ok(())
    }

    /// Reads what the server sent into `buffer`'s spare room; 0 at the end
    /// of the stream. Cancel-safe: nothing is read unless this completes.
    pub(crate) async fn read(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        self.tcp.read_buf(buffer).await
    }
}

/// The most outbox memory kept between writes: a flush of ordinary replies
/// fits many times over.
const OUTBOX_KEPT: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use xmpp_lambda_shared::parse_stanza;

    /// A connected pair on loopback: the link's socket and the server's end.
    async fn pair() -> (LinkSocket, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        (
            LinkSocket::new(client.expect("connect")),
            server.expect("accept").0,
        )
    }

    fn message(body: &str) -> Element {
        parse_stanza(&format!(
            "<message to='a@b' from='c@d'><body>{body}</body></message>"
        ))
        .expect("stanza")
    }

    #[tokio::test]
    async fn queued_stanzas_go_out_in_order_and_large_bursts_are_not_kept() {
        let (mut socket, mut server) = pair().await;
        let large = "x".repeat(2 * OUTBOX_KEPT);
        socket.queue(&message("first"));
        socket.queue(&message(&large));
        // An attribute in another namespace takes minidom's writer, in the
        // same order.
        let foreign = parse_stanza("<message xmlns:p='urn:p' p:a='1' to='a@b'/>").expect("stanza");
        assert!(!append_stanza_text(
            &foreign,
            COMPONENT_NS,
            &mut String::new()
        ));
        socket.queue(&foreign);
        socket.queue_text("<footer/>");
        socket.flush().await.expect("flush");
        let expected = format!(
            "<message from='c@d' to='a@b'><body>first</body></message>\
             <message from='c@d' to='a@b'><body>{large}</body></message>{}<footer/>",
            String::from(&foreign)
        );
        let mut received = Vec::new();
        let reading = async {
            while !received.ends_with(b"<footer/>") {
                let mut piece = [0u8; 8192];
                let n = server.read(&mut piece).await.expect("read");
                assert!(n > 0, "closed early");
                received.extend_from_slice(&piece[..n]);
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), reading)
            .await
            .expect("the footer within 10 s");
        let received = String::from_utf8_lossy(&received);
        // Shown by the tails: the large body would drown any message.
        let tail = |text: &str| text[text.len().saturating_sub(200)..].to_owned();
        assert_eq!(received.len(), expected.len(), "{}", tail(&received));
        assert!(received == expected, "{}", tail(&received));
        assert!(socket.outbox.is_empty());
        assert!(
            socket.outbox.capacity() <= OUTBOX_KEPT,
            "{}",
            socket.outbox.capacity()
        );
    }
}

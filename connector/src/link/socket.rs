//! The TCP connection under a component stream, and the stanza text the
//! link writes onto it directly.

use minidom::Element;
use std::io;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
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
/// Stanzas the link writes are serialised here, into [`Outbox`], rather
/// than by the XML stream's writer above (several times the instructions
/// for the same text, on every reply). What is queued goes out before
/// anything the stream writes afterwards, so the two keep one order.
#[derive(Debug)]
pub(crate) struct LinkSocket {
    /// The connection to the server.
    tcp: TcpStream,
    /// Stanza text queued by [`LinkSocket::queue`], not yet written. Only
    /// [`LinkSocket::queue`] takes the lock (it has a shared reference,
    /// through the stream); the writing side has the socket itself.
    outbox: Mutex<Outbox>,
}

/// Queued stanza text and how much of it is written.
#[derive(Debug, Default)]
struct Outbox {
    text: String,
    written: usize,
}

impl LinkSocket {
    pub(crate) fn new(tcp: TcpStream) -> LinkSocket {
        LinkSocket {
            tcp,
            outbox: Mutex::new(Outbox::default()),
        }
    }

    /// Queues `stanza` as text, written on the next write or flush.
    /// `false` (nothing queued) for a stanza only minidom's writer can
    /// write: it goes through the stream instead.
    pub(crate) fn queue(&self, stanza: &Element) -> bool {
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        append_stanza_text(stanza, COMPONENT_NS, &mut outbox.text)
    }

    /// Writes what is queued, before anything else is.
    fn poll_write_outbox(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outbox = self
            .outbox
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        while outbox.written < outbox.text.len() {
            let rest = &outbox.text.as_bytes()[outbox.written..];
            match ready!(Pin::new(&mut self.tcp).poll_write(cx, rest))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => outbox.written += n,
            }
        }
        outbox.written = 0;
        if outbox.text.capacity() > OUTBOX_KEPT {
            // A burst of large replies does not keep its memory.
            outbox.text = String::new();
        } else {
            outbox.text.clear();
        }
        Poll::Ready(Ok(()))
    }
}

/// The most outbox memory kept between writes: a flush of ordinary replies
/// fits many times over.
const OUTBOX_KEPT: usize = 64 * 1024;

impl AsyncRead for LinkSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for LinkSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_write_outbox(cx))?;
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_write_outbox(cx))?;
        Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_outbox(cx))?;
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    /// Flushes only: see the type.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    async fn queued_text_goes_out_before_later_writes_and_large_bursts_are_not_kept() {
        let (mut socket, mut server) = pair().await;
        let large = "x".repeat(2 * OUTBOX_KEPT);
        assert!(socket.queue(&message("first")));
        assert!(socket.queue(&message(&large)));
        socket.write_all(b"<footer/>").await.expect("write");
        socket.flush().await.expect("flush");
        let expected = format!(
            "<message from='c@d' to='a@b'><body>first</body></message>\
             <message from='c@d' to='a@b'><body>{large}</body></message><footer/>"
        );
        let mut received = vec![0; expected.len()];
        server.read_exact(&mut received).await.expect("read");
        assert_eq!(String::from_utf8_lossy(&received), expected);
        let outbox = socket.outbox.get_mut().expect("not poisoned");
        assert!(outbox.text.is_empty());
        assert!(
            outbox.text.capacity() <= OUTBOX_KEPT,
            "{}",
            outbox.text.capacity()
        );
    }
}

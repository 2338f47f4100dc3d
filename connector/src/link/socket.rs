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
        outbox.text.clear();
        outbox.written = 0;
        Poll::Ready(Ok(()))
    }
}

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

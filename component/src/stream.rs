//! The component stream (XEP-0114) over one TCP connection: the stream
//! header both ways, then stanzas as [`minidom::Element`]s in, text out.
//!
//! Bytes read pass the [`ReadLimit`] scanner, which also says where each
//! unit of the stream ends; each unit is then parsed once, whole, by
//! [`crate::xml`]. Silence is watched here: after the read timeout the
//! caller is told ([`Read::Silent`]) so it can ping, and a server that stays
//! silent for the answer timeout after that has lost the link.

use crate::read_limit::{Oversize, ReadLimit};
use crate::socket::LinkSocket;
use crate::xml::STREAMS_NS;
use crate::xml::{NO_SCOPE, StreamScope, Unit, parse_head, parse_unit};
use minidom::Element;
use std::io;
use std::pin::Pin;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use xmpp_lambda_shared::{COMPONENT_NS, escape_attribute};

/// How much room each read gets.
pub(crate) const READ_SIZE: usize = 8 * 1024;
/// The most read-buffer memory kept once a large stanza is handled.
const BUFFER_KEPT: usize = 64 * 1024;

/// How long the server may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct ReadTimeouts {
    /// Silence this long is reported, so the link can ping.
    pub silence: Duration,
    /// Silence this much longer still loses the link.
    pub answer: Duration,
}

/// What the server sent next.
#[derive(Debug)]
pub enum Read {
    /// A top-level element: a stanza, or a stream error.
    Element(Element),
    /// A stanza that passed a limit: its bytes were dropped as they came,
    /// and only its start tag is kept (when it was read whole), so the
    /// sender can be told.
    Skipped {
        head: Option<Element>,
        oversize: Oversize,
    },
    /// Nothing came for [`ReadTimeouts::silence`].
    Silent,
    /// The server ended the stream (its footer, or the end of the
    /// connection).
    Closed,
}

/// An open component stream.
#[derive(Debug)]
pub struct ComponentStream {
    /// The connection, and what is queued for it.
    socket: LinkSocket,
    /// What was read and not yet handed out.
    reader: Reader,
    timeouts: ReadTimeouts,
    /// When the server last sent anything.
    last_read: Instant,
    /// Whether [`Read::Silent`] was reported since then.
    silence_reported: bool,
    /// Fires at the next timeout check. It is moved on only when it fires
    /// (to the timeout counted from `last_read`), not on every read.
    timer: Pin<Box<Sleep>>,
}

impl ComponentStream {
    /// Sends our stream header for `domain` and reads the server's; returns
    /// the stream and the id the server gave it (none when it refuses the
    /// stream, and says why next).
    pub async fn open(
        tcp: TcpStream,
        domain: &str,
        timeouts: ReadTimeouts,
    ) -> io::Result<(ComponentStream, Option<String>)> {
        let mut socket = LinkSocket::new(tcp);
        let mut header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{COMPONENT_NS}' \
             xmlns:stream='{STREAMS_NS}' to='"
        );
        if !escape_attribute(domain, &mut header) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the component domain has a character XML does not allow",
            ));
        }
        header.push_str("' version='1.0'>");
        socket.queue_text(&header);
        socket.flush().await?;
        let now = Instant::now();
        let mut stream = ComponentStream {
            socket,
            reader: Reader::default(),
            timeouts,
            last_read: now,
            silence_reported: false,
            timer: Box::pin(tokio::time::sleep_until(now + timeouts.silence)),
        };
        loop {
            match stream.next_unit().await? {
                // The caller bounds the whole handshake in time.
                Next::Unit(Unit::Declaration) | Next::Silent => {}
                Next::Unit(Unit::Header { id, .. }) => return Ok((stream, id)),
                // The parser reads nothing else before the header.
                Next::Unit(Unit::Element(_) | Unit::Skipped { .. } | Unit::Footer) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the server sent an element before its stream header",
                    ));
                }
                Next::End => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection before its stream header",
                    ));
                }
            }
        }
    }

    /// The next element, or why there is none. Cancel-safe: dropping the
    /// future loses nothing that was read.
    pub async fn next(&mut self) -> io::Result<Read> {
        match self.next_unit().await? {
            Next::Unit(Unit::Element(element)) => Ok(Read::Element(element)),
            Next::Unit(Unit::Skipped { head, oversize }) => Ok(Read::Skipped { head, oversize }),
            Next::Unit(Unit::Footer) | Next::End => Ok(Read::Closed),
            Next::Silent => Ok(Read::Silent),
            // The parser reads no header after the header.
            Next::Unit(Unit::Declaration | Unit::Header { .. }) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server sent a second stream header",
            )),
        }
    }

    /// Queues `stanza`, written by the next [`ComponentStream::flush`].
    pub fn queue(&mut self, stanza: &Element) {
        self.socket.queue(stanza);
    }

    /// Queues raw text (the handshake).
    pub fn queue_text(&mut self, text: &str) {
        self.socket.queue_text(text);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.socket.flush().await
    }

    /// Sends our stream footer. The server still sends what it routed here
    /// before reading it, then its own footer; read on for those.
    pub async fn close(&mut self) -> io::Result<()> {
        self.socket.queue_text("</stream:stream>");
        self.socket.flush().await
    }

    /// The next unit, a silence, or the end of the connection.
    async fn next_unit(&mut self) -> io::Result<Next> {
        loop {
            if let Some(unit) = self.reader.next_unit()? {
                return Ok(Next::Unit(unit));
            }
            let ComponentStream {
                socket,
                reader,
                timer,
                ..
            } = self;
            tokio::select! {
                read = socket.read(reader.room()) => {
                    if read? == 0 {
                        return Ok(Next::End);
                    }
                    self.last_read = Instant::now();
                    self.silence_reported = false;
                }
                () = timer.as_mut() => {
                    if self.silence()? {
                        return Ok(Next::Silent);
                    }
                }
            }
        }
    }

    /// The timer fired: moves it on to the next check; `true` when a
    /// silence is to be reported, an error once the server has been silent
    /// too long.
    fn silence(&mut self) -> io::Result<bool> {
        let silent_until = self.last_read + self.timeouts.silence;
        let given_up_at = silent_until + self.timeouts.answer;
        let now = Instant::now();
        if now < silent_until {
            self.timer.as_mut().reset(silent_until);
            return Ok(false);
        }
        if now >= given_up_at {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout"));
        }
        self.timer.as_mut().reset(given_up_at);
        Ok(!std::mem::replace(&mut self.silence_reported, true))
    }
}

/// What reading the stream came to.
enum Next {
    Unit(Unit),
    /// Nothing came for the silence timeout.
    Silent,
    /// The connection ended.
    End,
}

/// The bytes read and not yet handed out, and what is known of them.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    buffer: Vec<u8>,
    /// Where the next unit starts in `buffer`.
    start: usize,
    /// How far the scanner got.
    scanned: usize,
    limit: ReadLimit,
    /// The stream header's namespace bindings, once it is read.
    scope: Option<StreamScope>,
    /// Set while a stanza that passed a limit is being skipped: its start
    /// tag, if that was read whole before the limit passed.
    skipping: Option<Option<Element>>,
}

impl Reader {
    /// The next whole unit already read, parsed.
    pub(crate) fn next_unit(&mut self) -> io::Result<Option<Unit>> {
        if self.scanned == self.buffer.len() {
            return Ok(None);
        }
        match self.limit.scan(&self.buffer[self.scanned..]) {
            Ok(None) => {
                self.scanned = self.buffer.len();
                if self.limit.oversize().is_some() {
                    self.skip();
                }
                Ok(None)
            }
            Ok(Some(end)) => {
                self.scanned += end.length;
                if let Some(oversize) = end.oversize {
                    let head = match self.skipping.take() {
                        Some(head) => head,
                        // Passed and ended within one read: all of it is here.
                        None => self.head(),
                    };
                    self.start = self.scanned;
                    return Ok(Some(Unit::Skipped { head, oversize }));
                }
                let bytes = &self.buffer[self.start..self.scanned];
                self.start = self.scanned;
                let unit = match &self.scope {
                    Some(scope) => parse_unit(bytes, false, scope),
                    None => parse_unit(bytes, true, &NO_SCOPE),
                }
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if let Unit::Header { scope, .. } = &unit {
                    self.scope = Some(scope.clone());
                }
                Ok(Some(unit))
            }
            Err((_, refusal)) => Err(refusal.into()),
        }
    }

    /// The stanza being read passed a limit: its start tag is kept (once),
    /// and everything of it read so far is dropped, as is whatever comes
    /// later, so it costs no memory however long it goes on.
    fn skip(&mut self) {
        if self.skipping.is_none() {
            let head = if self.limit.head_read() {
                self.head()
            } else {
                None
            };
            self.skipping = Some(head);
        }
        self.start = self.scanned;
    }

    /// The bytes read and kept: those of the units not yet handed out
    /// (from [`Reader::unit_start`] on), and what comes before them until
    /// the next read.
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buffer
    }

    /// Where the unit being read starts in [`Reader::buffer`].
    pub(crate) fn unit_start(&self) -> usize {
        self.start
    }

    /// The stream header's bindings, once it is read.
    pub(crate) fn scope(&self) -> Option<&StreamScope> {
        self.scope.as_ref()
    }

    /// The start tag of the unit being read.
    fn head(&self) -> Option<Element> {
        let scope = self.scope.as_ref()?;
        parse_head(&self.buffer[self.start..self.scanned], scope)
    }

    /// The buffer, with room for the next read after what is kept.
    pub(crate) fn room(&mut self) -> &mut Vec<u8> {
        if self.limit.between_units() {
            // Only whitespace since the last unit: not worth keeping.
            self.start = self.scanned;
        }
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buffer.is_empty() && self.buffer.capacity() > BUFFER_KEPT {
            self.buffer = Vec::new();
        }
        self.buffer.reserve(READ_SIZE);
        &mut self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Short, so the silence test waits in real time (the stream's own
    /// I/O on loopback does not mix with paused time).
    const TIMEOUTS: ReadTimeouts = ReadTimeouts {
        silence: Duration::from_millis(300),
        answer: Duration::from_millis(200),
    };

    /// A stream opened against a fake server on loopback, the server's end
    /// and what the stream sent first.
    async fn opened(
        server_header: &str,
    ) -> (
        io::Result<(ComponentStream, Option<String>)>,
        TcpStream,
        String,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, server) = tokio::join!(TcpStream::connect(address), listener.accept());
        let mut server = server.expect("accept").0;
        let header = server_header.to_owned();
        let serving = tokio::spawn(async move {
            let mut ours = vec![0u8; 4096];
            let n = server.read(&mut ours).await.expect("our header");
            server.write_all(header.as_bytes()).await.expect("header");
            (server, String::from_utf8_lossy(&ours[..n]).into_owned())
        });
        let stream =
            ComponentStream::open(client.expect("connect"), "bot.example.com", TIMEOUTS).await;
        let (server, ours) = serving.await.expect("server");
        (stream, server, ours)
    }

    const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' \
        id='s1' from='bot.example.com'>";

    #[tokio::test]
    async fn headers_both_ways_then_stanzas_in_any_pieces() {
        let (stream, mut server, ours) = opened(SERVER_HEADER).await;
        assert_eq!(
            ours,
            "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
             xmlns:stream='http://etherx.jabber.org/streams' to='bot.example.com' version='1.0'>"
        );
        let (mut stream, id) = stream.expect("opened");
        assert_eq!(id.as_deref(), Some("s1"));
        let stanzas = "<message from='a@b/c' to='bot.example.com' id='1'><body>one &amp; two</body></message>\n\
                       <iq type='get' id='2'><ping xmlns='urn:xmpp:ping'/></iq>";
        for piece in stanzas.as_bytes().chunks(7) {
            server.write_all(piece).await.expect("write");
        }
        let Read::Element(first) = stream.next().await.expect("read") else {
            panic!("a message");
        };
        assert!(first.is("message", COMPONENT_NS));
        assert_eq!(
            first
                .get_child("body", COMPONENT_NS)
                .map(Element::text)
                .as_deref(),
            Some("one & two")
        );
        let Read::Element(second) = stream.next().await.expect("read") else {
            panic!("an iq");
        };
        assert!(second.has_child("ping", "urn:xmpp:ping"));
        server
            .write_all(b" </stream:stream>")
            .await
            .expect("footer");
        assert!(matches!(stream.next().await, Ok(Read::Closed)));
    }

    #[tokio::test]
    async fn a_refused_stream_has_no_id_and_a_broken_one_fails() {
        let (stream, _server, _) = opened(
            "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept'>",
        )
        .await;
        assert_eq!(stream.expect("opened").1, None);
        let (stream, _server, _) = opened("<stream xmlns='jabber:client'>").await;
        assert_eq!(
            stream.expect_err("not a stream").to_string(),
            "invalid XML from the server: <stream> in place of the stream header"
        );
    }

    #[tokio::test]
    async fn what_came_before_a_refusal_is_still_read() {
        let (stream, mut server, _) = opened(SERVER_HEADER).await;
        let (mut stream, _) = stream.expect("opened");
        server
            .write_all(b"<message><body>ok</body></message><!-- no -->")
            .await
            .expect("write");
        assert!(matches!(stream.next().await, Ok(Read::Element(_))));
        let error = stream.next().await.expect_err("refused");
        assert_eq!(
            error.to_string(),
            "the server sent a DTD or a comment, which XMPP forbids"
        );
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    /// Feeds `bytes` to `reader` in reads of at most [`READ_SIZE`], as the
    /// socket would, and collects the units; also the largest the buffer
    /// got.
    fn feed(reader: &mut Reader, bytes: &[u8]) -> (Vec<Unit>, usize) {
        let mut units = Vec::new();
        let mut largest = 0;
        for piece in bytes.chunks(READ_SIZE) {
            let buffer = reader.room();
            buffer.extend_from_slice(piece);
            largest = largest.max(buffer.capacity());
            while let Some(unit) = reader.next_unit().expect("a readable stream") {
                units.push(unit);
            }
        }
        (units, largest)
    }

    #[test]
    fn a_stanza_past_a_limit_is_skipped_in_bounded_memory_and_the_next_one_read() {
        let mut reader = Reader::default();
        let (units, _) = feed(&mut reader, SERVER_HEADER.as_bytes());
        assert_eq!(units.len(), 2, "declaration and header");
        let mut stream = Vec::new();
        // 50 MB of body, then the stanza ends; then a normal one.
        stream
            .extend_from_slice(b"<message from='a@b/c' to='echo@bot.example.com' id='huge'><body>");
        for _ in 0..50 * 1024 {
            stream.extend_from_slice(&[b'x'; 1024]);
        }
        stream.extend_from_slice(b"</body></message>");
        // Elements nested far past the depth limit.
        stream.extend_from_slice(b"<iq type='get' id='deep' from='a@b/c'>");
        stream.extend_from_slice("<a>".repeat(10_000).as_bytes());
        stream.extend_from_slice("</a>".repeat(10_000).as_bytes());
        stream.extend_from_slice(b"</iq>");
        // A start tag that passes the byte limit by itself: nothing to keep.
        stream.extend_from_slice(b"<message a='");
        stream.extend_from_slice(&vec![b'v'; 2 * 1024 * 1024]);
        stream.extend_from_slice(b"'/>");
        stream.extend_from_slice(b"<message id='next'><body>ok</body></message>");
        let (units, largest) = feed(&mut reader, &stream);
        // What a stanza may take before it passes the byte limit, with
        // the buffer's doubling: never the 50 MB.
        let limit = crate::MAX_STANZA_BYTES;
        assert!(largest <= 2 * limit, "the buffer grew to {largest} bytes");
        assert!(
            reader.room().capacity() <= BUFFER_KEPT + READ_SIZE,
            "and gave it back"
        );
        let [first, second, third, fourth] = &units[..] else {
            panic!("four units: {units:?}");
        };
        match first {
            Unit::Skipped {
                head: Some(head),
                oversize: Oversize::Bytes { .. },
            } => assert_eq!(head.attr("id"), Some("huge")),
            other => panic!("{other:?}"),
        }
        match second {
            Unit::Skipped {
                head: Some(head),
                oversize: Oversize::Depth { .. },
            } => assert_eq!(head.attr("id"), Some("deep")),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                third,
                Unit::Skipped {
                    head: None,
                    oversize: Oversize::Bytes { .. }
                }
            ),
            "{third:?}"
        );
        match fourth {
            Unit::Element(next) => assert_eq!(next.attr("id"), Some("next")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn silence_is_reported_once_and_then_loses_the_link() {
        let (stream, mut server, _) = opened(SERVER_HEADER).await;
        let (mut stream, _) = stream.expect("opened");
        let started = Instant::now();
        assert!(matches!(stream.next().await, Ok(Read::Silent)));
        assert!(
            started.elapsed() >= TIMEOUTS.silence,
            "{:?}",
            started.elapsed()
        );
        // Anything from the server counts as an answer, and starts over.
        server.write_all(b" ").await.expect("write");
        let answered = Instant::now();
        assert!(matches!(stream.next().await, Ok(Read::Silent)));
        let error = stream.next().await.expect_err("silent too long");
        assert_eq!(error.to_string(), "read timeout");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = answered.elapsed();
        assert!(waited >= TIMEOUTS.silence + TIMEOUTS.answer, "{waited:?}");
    }
}

//! A bound on what the component link reads from the XMPP server.
//!
//! The link parses the stream with rxml (under tokio-xmpp's `xmlstream`),
//! which already refuses a DTD (so entity declarations and "billion laughs"
//! never get defined), any entity but the five predefined ones, comments and
//! processing instructions, and hands long text over in pieces. It bounds
//! neither the size of a whole stanza nor its depth: minidom builds each
//! stanza in memory, and the builder passes every event down through one
//! nested builder per open element (recursion as deep as the element, and
//! time that grows with the square of the depth).
//!
//! [`LimitedReader`] sits under the parser and scans the raw bytes for tag
//! boundaries only. It counts the bytes of each top-level element (a stanza,
//! or the stream header), its elements and attributes (each costs a few
//! hundred bytes once parsed, so a megabyte of `<a/>` would take over a
//! hundred) and the depth of nesting, and once one passes its limit it
//! hands over what came before the offending byte and fails
//! every later read. The parser then ends the stream with that error, the
//! link logs it and reconnects: whatever comes after an unbounded element
//! cannot be read anyway.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest stanza the connector reads, in bytes of XML as received.
/// Prosody accepts at most 256 KiB from a client and 512 KiB from another
/// server or a component (`c2s_stanza_size_limit`,
/// `s2s_stanza_size_limit`), so anything a user can send fits with room to
/// spare; one stanza costs the connector at most a few times this in memory.
pub const MAX_STANZA_BYTES: usize = 1024 * 1024;

/// The most elements and attributes one stanza may have. A message with a
/// body and a few extensions has a few dozen.
pub const MAX_STANZA_MARKUP: usize = 16 * 1024;

/// The deepest nesting of elements in a stanza, its own element included.
/// Real stanzas stay under a dozen levels (a forwarded message in a MAM
/// result is five).
pub const MAX_STANZA_DEPTH: usize = 128;

/// Which limit the server's stream passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("the server sent an element larger than the read limit of {limit} bytes")]
    Bytes { limit: usize },
    #[error("the server sent an element with more than {limit} elements and attributes")]
    Markup { limit: usize },
    #[error("the server sent elements nested deeper than the limit of {limit}")]
    Depth { limit: usize },
}

impl From<LimitExceeded> for io::Error {
    fn from(exceeded: LimitExceeded) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, exceeded)
    }
}

/// Where the scanner is in the markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Markup {
    /// Character data, or whitespace between stanzas.
    Text,
    /// Just after `<`: the next byte tells which kind of markup this is.
    Open,
    /// Inside a start tag. `quote` is the open attribute quote, if any;
    /// `slash` says the last byte outside quotes was `/` (so a `>` now ends
    /// an empty element).
    StartTag { quote: Option<u8>, slash: bool },
    /// Inside an end tag `</…>`.
    EndTag,
    /// Inside `<?…?>` (the XML declaration before the stream header);
    /// `question` says the last byte was `?`.
    Declaration { question: bool },
    /// Inside `<!…`: a CDATA section, ended by `]]>`; `brackets` counts the
    /// `]` just seen (up to two). rxml refuses every other `<!` (DOCTYPE,
    /// comments), and it is scanned the same way until rxml says so.
    Bang { brackets: u8 },
}

/// Tracks tag boundaries in the byte stream and enforces the limits.
#[derive(Debug, Clone)]
pub struct ReadLimit {
    /// The most bytes one top-level element may take.
    max_bytes: usize,
    /// The most elements and attributes one top-level element may have.
    max_markup: usize,
    /// The deepest a stanza may nest, its own element counting as one.
    max_depth: usize,
    /// The markup state after the last byte scanned.
    markup: Markup,
    /// Open elements: 1 inside the stream header, 2 inside a stanza, …
    depth: usize,
    /// Bytes of the current top-level element so far (whitespace between
    /// stanzas does not count).
    element_bytes: usize,
    /// Elements and attributes of the current top-level element so far.
    element_markup: usize,
    /// Once a limit is passed, every later read fails with it.
    exceeded: Option<LimitExceeded>,
}

impl Default for ReadLimit {
    fn default() -> Self {
        ReadLimit::new(MAX_STANZA_BYTES, MAX_STANZA_MARKUP, MAX_STANZA_DEPTH)
    }
}

impl ReadLimit {
    /// A scanner with these limits, at the start of a stream.
    pub fn new(max_bytes: usize, max_markup: usize, max_depth: usize) -> ReadLimit {
        ReadLimit {
            max_bytes,
            max_markup,
            max_depth,
            markup: Markup::Text,
            depth: 0,
            element_bytes: 0,
            element_markup: 0,
            exceeded: None,
        }
    }

    /// Scans `bytes`, the next ones from the stream. On success all may be
    /// parsed; otherwise returns how many of them may (every byte before
    /// the one that passed a limit) and the limit passed.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<(), (usize, LimitExceeded)> {
        if let Some(exceeded) = self.exceeded {
            return Err((0, exceeded));
        }
        let mut offset = 0;
        while offset < bytes.len() {
            // Most bytes are text or attribute values, which cannot change
            // the state: a run of them is counted at once.
            let (run, counted) = self.plain_run(&bytes[offset..]);
            if run > 0 {
                let room = self.max_bytes - self.element_bytes;
                if counted && run > room {
                    // The byte after the room passes the limit.
                    let exceeded = LimitExceeded::Bytes {
                        limit: self.max_bytes,
                    };
                    self.exceeded = Some(exceeded);
                    return Err((offset + room, exceeded));
                }
                if counted {
                    self.element_bytes += run;
                }
                offset += run;
                continue;
            }
            if let Err(exceeded) = self.step(bytes[offset]) {
                self.exceeded = Some(exceeded);
                return Err((offset, exceeded));
            }
            offset += 1;
        }
        Ok(())
    }

    /// How many of `bytes`, from the start, leave the state as it is (text
    /// up to the next `<`, an attribute value up to its closing quote), and
    /// whether they count toward the element's size ([`Self::step`] would
    /// count them one by one).
    fn plain_run(&self, bytes: &[u8]) -> (usize, bool) {
        match self.markup {
            // Whitespace between stanzas is free.
            Markup::Text => (
                memchr::memchr(b'<', bytes).unwrap_or(bytes.len()),
                self.depth > 1,
            ),
            Markup::StartTag {
                quote: Some(quote), ..
            } => (memchr::memchr(quote, bytes).unwrap_or(bytes.len()), true),
            _ => (0, false),
        }
    }

    /// Advances over one byte.
    fn step(&mut self, byte: u8) -> Result<(), LimitExceeded> {
        // Whitespace between stanzas is free; the `<` of the next one counts.
        let between_stanzas = self.markup == Markup::Text && self.depth <= 1 && byte != b'<';
        if !between_stanzas {
            self.element_bytes += 1;
            if self.element_bytes > self.max_bytes {
                return Err(LimitExceeded::Bytes {
                    limit: self.max_bytes,
                });
            }
        }
        self.markup = match self.markup {
            Markup::Text if byte == b'<' => Markup::Open,
            Markup::Text => Markup::Text,
            Markup::Open => match byte {
                b'/' => Markup::EndTag,
                b'?' => Markup::Declaration { question: false },
                b'!' => Markup::Bang { brackets: 0 },
                // The first byte of the element's name.
                _ => {
                    self.count_markup()?;
                    return self.in_start_tag(None, byte);
                }
            },
            Markup::StartTag { quote, .. } => return self.in_start_tag(quote, byte),
            Markup::EndTag if byte == b'>' => {
                self.depth = self.depth.saturating_sub(1);
                self.tag_closed();
                Markup::Text
            }
            Markup::EndTag => Markup::EndTag,
            Markup::Declaration { question: true } if byte == b'>' => {
                self.tag_closed();
                Markup::Text
            }
            Markup::Declaration { .. } => Markup::Declaration {
                question: byte == b'?',
            },
            Markup::Bang { brackets } => match byte {
                b'>' if brackets >= 2 => Markup::Text,
                b']' => Markup::Bang {
                    brackets: (brackets + 1).min(2),
                },
                _ => Markup::Bang { brackets: 0 },
            },
        };
        Ok(())
    }

    /// One byte of a start tag, whose attribute quote so far is `quote`.
    fn in_start_tag(&mut self, quote: Option<u8>, byte: u8) -> Result<(), LimitExceeded> {
        self.markup = match (quote, byte) {
            (Some(open), _) if byte == open => Markup::StartTag {
                quote: None,
                slash: false,
            },
            (Some(_), _) => Markup::StartTag {
                quote,
                slash: false,
            },
            // An attribute's value begins.
            (None, b'\'' | b'"') => {
                self.count_markup()?;
                Markup::StartTag {
                    quote: Some(byte),
                    slash: false,
                }
            }
            (None, b'>') => {
                let empty = matches!(self.markup, Markup::StartTag { slash: true, .. });
                if !empty {
                    self.depth += 1;
                    // The stream element itself is depth 1.
                    if self.depth > self.max_depth + 1 {
                        return Err(LimitExceeded::Depth {
                            limit: self.max_depth,
                        });
                    }
                }
                self.tag_closed();
                Markup::Text
            }
            (None, _) => Markup::StartTag {
                quote: None,
                slash: byte == b'/',
            },
        };
        Ok(())
    }

    /// One more element or attribute in the current top-level element.
    fn count_markup(&mut self) -> Result<(), LimitExceeded> {
        self.element_markup += 1;
        if self.element_markup > self.max_markup {
            return Err(LimitExceeded::Markup {
                limit: self.max_markup,
            });
        }
        Ok(())
    }

    /// A tag just ended: if that completed a top-level element (or opened
    /// the stream), the next element starts its counts from zero.
    fn tag_closed(&mut self) {
        if self.depth <= 1 {
            self.element_bytes = 0;
            self.element_markup = 0;
        }
    }
}

/// A byte stream whose reads are checked by a [`ReadLimit`]; writes pass
/// through untouched.
#[derive(Debug)]
pub struct LimitedReader<S> {
    /// The connection to the server.
    inner: S,
    /// What has been read so far, as far as the limits care.
    limit: ReadLimit,
}

impl<S> LimitedReader<S> {
    /// Reads from `inner` with the default limits.
    pub fn new(inner: S) -> LimitedReader<S> {
        LimitedReader {
            inner,
            limit: ReadLimit::default(),
        }
    }

    /// The connection underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedReader<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(exceeded) = this.limit.exceeded {
            return Poll::Ready(Err(exceeded.into()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        match this.limit.scan(&buf.filled()[before..]) {
            Ok(()) => Poll::Ready(Ok(())),
            // Nothing usable: fail now (an empty read would mean the end).
            Err((0, exceeded)) => Poll::Ready(Err(exceeded.into())),
            // The stanzas before the offending byte still reach the parser;
            // the next read fails.
            Err((usable, _)) => {
                buf.set_filled(before + usable);
                Poll::Ready(Ok(()))
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedReader<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
                          xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='bot.example.com'>";
    /// A stream header short enough for tiny limits.
    const OPEN: &str = "<stream:stream>";

    /// Scans `xml` in one go with the given byte and depth limits.
    fn scan(xml: &str, max_bytes: usize, max_depth: usize) -> Result<(), (usize, LimitExceeded)> {
        ReadLimit::new(max_bytes, usize::MAX, max_depth).scan(xml.as_bytes())
    }

    fn nested(depth: usize) -> String {
        "<a>".repeat(depth) + &"</a>".repeat(depth)
    }

    #[test]
    fn real_streams_pass_and_each_stanza_is_counted_on_its_own() {
        let stanza = "<message from='alice@example.com/x' to='echo@bot.example.com' type='chat' \
                      id='a&gt;b/c'><body>1 &lt; 2 &amp;&amp; 3 > 2 / done</body>\
                      <x xmlns='urn:x' attr=\"it's > 'quoted' />\"/><![CDATA[<not> a </tag> ]] ]]]>\
                      <empty/></message>";
        let stream = format!("{HEADER}{}\n \t</stream:stream>", [stanza; 50].join(" "));
        // 50 stanzas in a row pass a limit just above one stanza's size.
        assert_eq!(scan(&stream, HEADER.len().max(stanza.len()), 4), Ok(()));
        // One byte less is refused.
        let limit = stanza.len() - 1;
        let (usable, exceeded) = scan(&format!("{HEADER}{stanza}"), limit, 4).unwrap_err();
        assert_eq!(exceeded, LimitExceeded::Bytes { limit });
        assert_eq!(usable, HEADER.len() + limit);
    }

    #[test]
    fn the_scanner_state_survives_any_split_of_the_input() {
        let stream = format!(
            "{HEADER}<iq type='get' id='x'><query xmlns='q' a='>'/></iq>{}<message><body>x</body></message>",
            nested(4)
        );
        let whole = ReadLimit::new(256, 16, 4).scan(stream.as_bytes());
        assert_eq!(whole, Ok(()));
        for split in 0..stream.len() {
            let mut limit = ReadLimit::new(256, 16, 4);
            assert_eq!(limit.scan(&stream.as_bytes()[..split]), Ok(()), "{split}");
            assert_eq!(limit.scan(&stream.as_bytes()[split..]), Ok(()), "{split}");
            assert_eq!(limit.depth, 1, "back at the stream level after {split}");
        }
    }

    /// Where stepping through `bytes` one at a time stops, and why.
    fn scan_bytewise(limit: &mut ReadLimit, bytes: &[u8]) -> Result<(), (usize, LimitExceeded)> {
        for (offset, &byte) in bytes.iter().enumerate() {
            limit.step(byte).map_err(|exceeded| (offset, exceeded))?;
        }
        Ok(())
    }

    #[test]
    fn runs_of_text_and_values_stop_at_the_same_byte_as_single_steps() {
        let stanza = "<message to='a@b' from='c@d'><body>some text &amp; more</body>\
                      <x xmlns='urn:x' v=\"a 'b' c\">tail</x></message>";
        let stream = format!("{OPEN}  {stanza}\n{stanza}");
        for max_bytes in 1..=stanza.len() + 1 {
            let mut whole = ReadLimit::new(max_bytes, usize::MAX, 8);
            let mut single = ReadLimit::new(max_bytes, usize::MAX, 8);
            let outcome = whole.scan(stream.as_bytes());
            assert_eq!(
                outcome,
                scan_bytewise(&mut single, stream.as_bytes()),
                "max_bytes {max_bytes}"
            );
            // After a refusal only the refusal matters.
            if outcome.is_ok() {
                assert_eq!(
                    whole.element_bytes, single.element_bytes,
                    "max_bytes {max_bytes}"
                );
                assert_eq!(whole.markup, single.markup, "max_bytes {max_bytes}");
            }
        }
    }

    #[test]
    fn depth_is_limited_below_the_stream_element() {
        assert_eq!(scan(&format!("{HEADER}{}", nested(8)), 1024, 8), Ok(()));
        let (usable, exceeded) = scan(&format!("{HEADER}{}", nested(9)), 1024, 8).unwrap_err();
        assert_eq!(exceeded, LimitExceeded::Depth { limit: 8 });
        // Up to and including the ninth `<a>`'s closing bracket is refused.
        assert_eq!(usable, HEADER.len() + 9 * 3 - 1);
        // Empty elements do not nest.
        let flat = format!("{HEADER}<a>{}</a>", "<b/>".repeat(1000));
        assert_eq!(scan(&flat, 1 << 20, 1), Ok(()));
    }

    #[test]
    fn whitespace_between_stanzas_is_not_counted_but_text_inside_is() {
        let keepalives = format!("{OPEN}{}<a/>{}", " ".repeat(10_000), "\n".repeat(10_000));
        assert_eq!(scan(&keepalives, OPEN.len(), 2), Ok(()));
        let endless_text = format!("{OPEN}<message><body>{}", "a".repeat(100));
        let (_, exceeded) = scan(&endless_text, 64, 4).unwrap_err();
        assert_eq!(exceeded, LimitExceeded::Bytes { limit: 64 });
        let endless_tag = format!("{OPEN}<message {}", "a='b' ".repeat(100));
        let (_, exceeded) = scan(&endless_tag, 64, 4).unwrap_err();
        assert_eq!(exceeded, LimitExceeded::Bytes { limit: 64 });
        // An oversized stream header counts too.
        let (_, exceeded) = scan(HEADER, 32, 4).unwrap_err();
        assert_eq!(exceeded, LimitExceeded::Bytes { limit: 32 });
    }

    #[test]
    fn elements_and_attributes_are_counted_per_stanza() {
        // Two elements and three attributes (the quote inside a value is
        // not one).
        let stanza = "<message a='1' b=\"it's\"><x c='2'/></message>";
        let stream = format!("{OPEN}{}", stanza.repeat(100));
        assert_eq!(ReadLimit::new(1024, 5, 4).scan(stream.as_bytes()), Ok(()));
        let (usable, exceeded) = ReadLimit::new(1024, 4, 4)
            .scan(stream.as_bytes())
            .unwrap_err();
        assert_eq!(exceeded, LimitExceeded::Markup { limit: 4 });
        // The fifth is the attribute value of `c`.
        assert_eq!(usable, OPEN.len() + stanza.find("'2'").unwrap_or(0));
    }

    #[test]
    fn once_exceeded_every_scan_fails() {
        let mut limit = ReadLimit::new(4, 4, 4);
        assert!(limit.scan(b"<stream><message>").is_err());
        assert_eq!(
            limit.scan(b"<a/>"),
            Err((0, LimitExceeded::Bytes { limit: 4 }))
        );
    }

    #[tokio::test]
    async fn the_reader_hands_over_what_came_before_and_then_fails() {
        let stream = format!("{OPEN}<a/><b>{}</b>", "x".repeat(100));
        let mut reader = LimitedReader {
            inner: stream.as_bytes(),
            limit: ReadLimit::new(64, 64, 4),
        };
        let mut read = Vec::new();
        let error = reader.read_to_end(&mut read).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            error.to_string(),
            "the server sent an element larger than the read limit of 64 bytes"
        );
        // `<b>` and 61 bytes of text make 64; the 62nd is refused.
        assert_eq!(read, format!("{OPEN}<a/><b>{}", "x".repeat(61)).as_bytes());
        // And it stays failed.
        let mut more = [0; 16];
        assert!(reader.read(&mut more).await.is_err());
    }
}

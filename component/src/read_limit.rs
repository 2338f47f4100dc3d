//! A bound on what the component link reads from the XMPP server, and where
//! each unit of the stream ends.
//!
//! [`ReadLimit`] scans the raw bytes as they arrive for tag boundaries only.
//! It counts the bytes of each top-level element (a stanza, or the stream
//! header), its elements and attributes (each costs a few hundred bytes
//! once parsed, so a megabyte of `<a/>` would take over a hundred) and the
//! depth of nesting. A stanza that passes a limit is [`Oversize`]: the
//! scanner stops counting and only follows its tags to where it ends, so
//! the reader can drop its bytes as they come and the link goes on with the
//! next stanza (a user can send such a stanza: Prosody writes `>` in a body
//! as `&gt;`, so a 256 KiB message can reach the component as 1 MiB). The
//! stream header passing a limit, or what XMPP forbids and would otherwise
//! keep it scanning (a DTD or comment, a processing instruction, text
//! between stanzas), is a [`Refusal`]: every later scan fails and the link
//! reconnects. It also says where each unit ends (the XML declaration, the
//! stream header, a stanza, the footer), so that [`crate::xml`] parses every
//! unit once, whole.

use std::io;

/// The largest stanza the connector reads, in bytes of XML as received.
/// Prosody accepts at most 256 KiB from a client and 512 KiB from another
/// server or a component (`c2s_stanza_size_limit`,
/// `s2s_stanza_size_limit`), so anything a user can send fits with room to
/// spare; one stanza costs the connector at most a few times this in memory.
pub const MAX_STANZA_BYTES: usize = 1024 * 1024;

/// The most elements and attributes one stanza may have. A message with a
/// body and a few extensions has a few dozen. Each costs a few hundred
/// bytes once parsed, so this many stay within the memory budget
/// ([`crate::MAX_STANZA_MEMORY`]) when their names are short.
pub const MAX_STANZA_MARKUP: usize = 8 * 1024;

/// The deepest nesting of elements in a stanza, its own element included.
/// Real stanzas stay under a dozen levels (a forwarded message in a MAM
/// result is five).
pub const MAX_STANZA_DEPTH: usize = 128;

/// Which limit a stanza passed: it is skipped, and the link goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Oversize {
    #[error("larger than the read limit of {limit} bytes")]
    Bytes { limit: usize },
    #[error("more than {limit} elements and attributes")]
    Markup { limit: usize },
    #[error("nested deeper than the limit of {limit}")]
    Depth { limit: usize },
    /// Found by the parser (what the stanza would cost once parsed,
    /// [`crate::MAX_STANZA_MEMORY`]) or by the dispatcher (what its
    /// request would hold while in flight), not by the scanner.
    #[error("over the memory budget of {limit} bytes")]
    Memory { limit: usize },
}

/// What ends the stream: its header passed a limit, or the server sent
/// what XMPP forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the server sent a stream header larger than the read limit of {limit} bytes")]
    Bytes { limit: usize },
    #[error("the server sent a stream header with more than {limit} attributes")]
    Markup { limit: usize },
    #[error("the server sent {what}, which XMPP forbids")]
    Forbidden { what: &'static str },
}

impl From<Refusal> for io::Error {
    fn from(exceeded: Refusal) -> io::Error {
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
    /// `quote` is the open quote of a value, if any (a `?>` inside one
    /// does not end the declaration); `question` says the last byte
    /// outside quotes was `?`.
    Declaration { quote: Option<u8>, question: bool },
    /// Just after `<!`: only a CDATA section may follow.
    Bang,
    /// Inside a CDATA section, ended by `]]>`; `brackets` counts the `]`
    /// just seen (up to two).
    CData { brackets: u8 },
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
    /// The limit the current stanza passed: nothing more of it is
    /// counted, its tags are only followed to its end.
    oversize: Option<Oversize>,
    /// The current stanza's own start tag has ended: what the reader keeps
    /// of an oversized stanza (its addresses and id, for the error reply)
    /// is all there.
    head_read: bool,
    /// Once the stream is refused, every later read fails with it.
    exceeded: Option<Refusal>,
    /// The last byte stepped over ended a unit of the stream.
    unit_ended: bool,
    /// Nothing but a `<` has been scanned yet: only there may the XML
    /// declaration begin (XML 1.0 §2.8: not even whitespace before it).
    at_start: bool,
}

/// A unit of the stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitEnd {
    /// How many of the bytes scanned last belong to it.
    pub length: usize,
    /// The limit it passed, if it was an oversized stanza.
    pub oversize: Option<Oversize>,
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
            oversize: None,
            head_read: false,
            exceeded: None,
            unit_ended: false,
            at_start: true,
        }
    }

    /// Scans `bytes`, the next ones from the stream, up to the end of the
    /// next unit (the XML declaration, the stream header, a top-level
    /// element or the footer): `Some` when it ends within them, `None` when
    /// all were scanned and it goes on. Fails with where and why the stream
    /// was refused: every byte before the offending one may be parsed.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<UnitEnd>, (usize, Refusal)> {
        if let Some(exceeded) = self.exceeded {
            return Err((0, exceeded));
        }
        let mut offset = 0;
        while offset < bytes.len() {
            // Most bytes are text or attribute values, which cannot change
            // the state: a run of them is counted at once.
            let (run, counted) = self.plain_run(&bytes[offset..]);
            if run > 0 {
                self.at_start = false;
                if counted && let Err(room) = self.count_bytes(run) {
                    // The byte after the room passes the limit.
                    return Err((
                        offset + room,
                        self.refuse(Refusal::Bytes {
                            limit: self.max_bytes,
                        }),
                    ));
                }
                offset += run;
                continue;
            }
            if let Err(refusal) = self.step(bytes[offset]) {
                return Err((offset, self.refuse(refusal)));
            }
            offset += 1;
            if std::mem::take(&mut self.unit_ended) {
                return Ok(Some(UnitEnd {
                    length: offset,
                    oversize: self.oversize.take(),
                }));
            }
        }
        Ok(None)
    }

    /// The limit the stanza being scanned has passed, if any.
    pub fn oversize(&self) -> Option<Oversize> {
        self.oversize
    }

    /// Whether the start tag of the stanza being scanned has ended.
    pub fn head_read(&self) -> bool {
        self.head_read
    }

    /// Ends the stream with `refusal`.
    fn refuse(&mut self, refusal: Refusal) -> Refusal {
        self.exceeded = Some(refusal);
        refusal
    }

    /// Counts `run` more bytes of the current unit. A stanza that passes
    /// the limit becomes oversized; the stream header cannot, and fails
    /// with how many of the bytes were within the limit.
    fn count_bytes(&mut self, run: usize) -> Result<(), usize> {
        if self.oversize.is_some() {
            return Ok(());
        }
        let room = self.max_bytes - self.element_bytes;
        if run <= room {
            self.element_bytes += run;
            return Ok(());
        }
        if self.in_stanza() {
            self.oversize = Some(Oversize::Bytes {
                limit: self.max_bytes,
            });
            return Ok(());
        }
        Err(room)
    }

    /// Whether the unit being scanned is a stanza (or the footer), which
    /// may be skipped, rather than the stream header, which may not.
    fn in_stanza(&self) -> bool {
        self.depth >= 1
    }

    /// Whether the scanner is between units: what it scanned since the last
    /// one ended is whitespace, and need not be kept.
    pub fn between_units(&self) -> bool {
        self.markup == Markup::Text && self.depth <= 1
    }

    /// How many of `bytes`, from the start, leave the state as it is (text
    /// up to the next `<`, an attribute value up to its closing quote), and
    /// whether they count toward the element's size ([`Self::step`] would
    /// count them one by one).
    fn plain_run(&self, bytes: &[u8]) -> (usize, bool) {
        match self.markup {
            // Whitespace between stanzas is free; anything else there is
            // refused by `step`.
            Markup::Text if self.depth <= 1 => (
                bytes
                    .iter()
                    .position(|&b| !is_whitespace(b))
                    .unwrap_or(bytes.len()),
                false,
            ),
            Markup::Text => (memchr::memchr(b'<', bytes).unwrap_or(bytes.len()), true),
            Markup::StartTag {
                quote: Some(quote), ..
            } => (memchr::memchr(quote, bytes).unwrap_or(bytes.len()), true),
            _ => (0, false),
        }
    }

    /// Advances over one byte.
    fn step(&mut self, byte: u8) -> Result<(), Refusal> {
        // Still at the start after the stream's first `<` only.
        let at_start = std::mem::take(&mut self.at_start);
        // Whitespace between stanzas is free; the `<` of the next one counts.
        let between_stanzas = self.markup == Markup::Text && self.depth <= 1 && byte != b'<';
        if !between_stanzas && self.count_bytes(1).is_err() {
            return Err(Refusal::Bytes {
                limit: self.max_bytes,
            });
        }
        self.markup = match self.markup {
            Markup::Text if byte == b'<' => {
                self.at_start = at_start;
                Markup::Open
            }
            Markup::Text if self.depth <= 1 && !is_whitespace(byte) => {
                return Err(Refusal::Forbidden {
                    what: "text between stanzas",
                });
            }
            Markup::Text => Markup::Text,
            Markup::Open => match byte {
                b'/' => Markup::EndTag,
                // Only the XML declaration, first in the stream.
                b'?' if self.depth == 0 && at_start => Markup::Declaration {
                    quote: None,
                    question: false,
                },
                b'?' => {
                    return Err(Refusal::Forbidden {
                        what: "a processing instruction",
                    });
                }
                b'!' if self.depth >= 2 => Markup::Bang,
                b'!' => {
                    return Err(Refusal::Forbidden {
                        what: "a DTD or a comment",
                    });
                }
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
            Markup::Declaration {
                quote: Some(open), ..
            } => Markup::Declaration {
                quote: (byte != open).then_some(open),
                question: false,
            },
            Markup::Declaration { question: true, .. } if byte == b'>' => {
                self.tag_closed();
                Markup::Text
            }
            Markup::Declaration { quote: None, .. } => Markup::Declaration {
                quote: matches!(byte, b'\'' | b'"').then_some(byte),
                question: byte == b'?',
            },
            // `<![CDATA[`: the parser checks the rest of the opening.
            Markup::Bang if byte == b'[' => Markup::CData { brackets: 0 },
            Markup::Bang => {
                return Err(Refusal::Forbidden {
                    what: "a DTD or a comment",
                });
            }
            Markup::CData { brackets } => match byte {
                b'>' if brackets >= 2 => Markup::Text,
                b']' => Markup::CData {
                    brackets: (brackets + 1).min(2),
                },
                _ => Markup::CData { brackets: 0 },
            },
        };
        Ok(())
    }

    /// One byte of a start tag, whose attribute quote so far is `quote`.
    fn in_start_tag(&mut self, quote: Option<u8>, byte: u8) -> Result<(), Refusal> {
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
                // The stanza's own start tag: at the stream's level.
                if self.depth == 1 {
                    self.head_read = true;
                }
                if !empty {
                    self.depth += 1;
                    // The stream element itself is depth 1.
                    if self.depth > self.max_depth + 1 && self.oversize.is_none() {
                        self.oversize = Some(Oversize::Depth {
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
    fn count_markup(&mut self) -> Result<(), Refusal> {
        if self.oversize.is_some() {
            return Ok(());
        }
        self.element_markup += 1;
        if self.element_markup > self.max_markup {
            let limit = self.max_markup;
            if !self.in_stanza() {
                return Err(Refusal::Markup { limit });
            }
            self.oversize = Some(Oversize::Markup { limit });
        }
        Ok(())
    }

    /// A tag just ended: if that completed a unit (a top-level element, the
    /// stream header or footer, the XML declaration), the next one starts
    /// its counts from zero.
    fn tag_closed(&mut self) {
        if self.depth <= 1 {
            self.element_bytes = 0;
            self.element_markup = 0;
            self.head_read = false;
            self.unit_ended = true;
        }
    }
}

/// XML's whitespace (§2.3), which may come between stanzas (and, for the
/// parser, between the parts of a tag).
pub(super) fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
                          xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='bot.example.com'>";
    /// A stream header short enough for tiny limits.
    const OPEN: &str = "<stream:stream>";

    /// One unit as [`scan_all`] reports it: where it ended (an offset from
    /// the start of the bytes) and the limit it passed.
    type Ended = (usize, Option<Oversize>);

    /// Scans all of `bytes`: where each unit ended, or where and why the
    /// stream was refused (offsets from the start of `bytes`).
    fn scan_all(limit: &mut ReadLimit, bytes: &[u8]) -> Result<Vec<Ended>, (usize, Refusal)> {
        let mut ends = Vec::new();
        let mut at = 0;
        loop {
            match limit.scan(&bytes[at..]) {
                Ok(Some(end)) => {
                    at += end.length;
                    ends.push((at, end.oversize));
                }
                Ok(None) => return Ok(ends),
                Err((usable, refusal)) => return Err((at + usable, refusal)),
            }
        }
    }

    /// The limits the units of `xml` passed, scanned in one go with the
    /// given byte and depth limits.
    fn oversizes(
        xml: &str,
        max_bytes: usize,
        max_depth: usize,
    ) -> Result<Vec<Option<Oversize>>, (usize, Refusal)> {
        let mut limit = ReadLimit::new(max_bytes, usize::MAX, max_depth);
        let ends = scan_all(&mut limit, xml.as_bytes())?;
        Ok(ends.into_iter().map(|(_, oversize)| oversize).collect())
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
        let limit = HEADER.len().max(stanza.len());
        let units = oversizes(&stream, limit, 4).expect("a valid stream");
        assert_eq!(units.len(), 53, "declaration, header, 50 stanzas, footer");
        assert!(units.iter().all(Option::is_none), "{units:?}");
        // One byte less: the stanza is oversized, and the next one is read.
        let limit = stanza.len() - 1;
        let two = format!("{OPEN}{stanza}<iq/>");
        let units = oversizes(&two, limit, 4).expect("a valid stream");
        assert_eq!(units, vec![None, Some(Oversize::Bytes { limit }), None]);
    }

    #[test]
    fn an_oversized_stream_header_ends_the_stream() {
        let limit = 32;
        let (usable, refusal) = oversizes(HEADER, limit, 4).expect_err("too large");
        assert_eq!(refusal, Refusal::Bytes { limit });
        let declaration = "<?xml version='1.0'?>".len();
        assert_eq!(usable, declaration + limit);
        assert_eq!(
            refusal.to_string(),
            "the server sent a stream header larger than the read limit of 32 bytes"
        );
        let header = format!("<stream:stream {}>", "a='b' ".repeat(10));
        let refused = scan_all(&mut ReadLimit::new(1024, 4, 4), header.as_bytes());
        assert_eq!(refused.map_err(|e| e.1), Err(Refusal::Markup { limit: 4 }));
        // Once refused, every scan fails.
        let mut limit = ReadLimit::new(4, 4, 4);
        assert!(limit.scan(b"<stream><message>").is_err());
        assert_eq!(limit.scan(b"<a/>"), Err((0, Refusal::Bytes { limit: 4 })));
    }

    #[test]
    fn the_xml_declaration_comes_first_or_not_at_all() {
        let scan = |xml: &str| scan_all(&mut ReadLimit::default(), xml.as_bytes());
        assert!(scan(HEADER).is_ok());
        assert!(
            scan("\n<stream:stream>").is_ok(),
            "whitespace before a header"
        );
        let forbidden = Err(Refusal::Forbidden {
            what: "a processing instruction",
        });
        for late in [
            "\r<?xml version='1.0'?><stream:stream>",
            " <?xml version='1.0'?>",
            "<?xml version='1.0'?><?xml version='1.0'?>",
            "<?xml version='1.0'?> <?xml version='1.0'?>",
        ] {
            assert_eq!(scan(late).map_err(|e| e.1), forbidden, "{late:?}");
        }
        // A `?>` in a quoted value does not end the declaration.
        let mut limit = ReadLimit::default();
        let quoted = b"<?xml version='1.0' encoding='UTF-8?>'?><stream:stream>";
        let ends = scan_all(&mut limit, quoted).expect("scanned");
        assert_eq!(ends[0].0, b"<?xml version='1.0' encoding='UTF-8?>'?>".len());
        // Split anywhere, the first byte is still the first.
        for split in 1..HEADER.len() {
            let mut limit = ReadLimit::default();
            assert!(scan_all(&mut limit, &HEADER.as_bytes()[..split]).is_ok());
            assert!(scan_all(&mut limit, &HEADER.as_bytes()[split..]).is_ok());
        }
    }

    #[test]
    fn the_scanner_state_survives_any_split_of_the_input() {
        let stream = format!(
            "{HEADER}<iq type='get' id='x'><query xmlns='q' a='>'/></iq>{}<message><body>x</body></message>\
             <message><body>{}</body></message><iq/>",
            nested(6),
            "y".repeat(300),
        );
        let whole = scan_all(&mut ReadLimit::new(256, 16, 4), stream.as_bytes());
        let ends = whole.expect("a valid stream");
        assert_eq!(
            ends.iter()
                .map(|(_, oversize)| *oversize)
                .collect::<Vec<_>>(),
            vec![
                None,
                None,
                None,
                Some(Oversize::Depth { limit: 4 }),
                None,
                Some(Oversize::Bytes { limit: 256 }),
                None
            ],
            "declaration, header, iq, nest, message, long message, iq: {ends:?}"
        );
        for split in 0..stream.len() {
            let mut limit = ReadLimit::new(256, 16, 4);
            let first = scan_all(&mut limit, &stream.as_bytes()[..split]).expect("first part");
            let second = scan_all(&mut limit, &stream.as_bytes()[split..]).expect("second part");
            let split_ends: Vec<Ended> = first
                .into_iter()
                .chain(
                    second
                        .into_iter()
                        .map(|(end, oversize)| (end + split, oversize)),
                )
                .collect();
            assert_eq!(split_ends, ends, "split at {split}");
            assert_eq!(limit.depth, 1, "back at the stream level after {split}");
        }
    }

    /// Where stepping through `bytes` one at a time passes a limit, and
    /// which.
    fn step_bytewise(limit: &mut ReadLimit, bytes: &[u8]) -> Option<(usize, Oversize)> {
        for (offset, &byte) in bytes.iter().enumerate() {
            limit.step(byte).expect("no refusal");
            if let Some(oversize) = limit.oversize {
                return Some((offset, oversize));
            }
        }
        None
    }

    /// Where scanning `bytes` in runs passes a limit: the unit that holds
    /// it ended, or the scan is still in it.
    fn scan_runs(limit: &mut ReadLimit, bytes: &[u8]) -> Option<Oversize> {
        let mut at = 0;
        while at < bytes.len() {
            match limit.scan(&bytes[at..]).expect("no refusal") {
                Some(UnitEnd {
                    oversize: Some(oversize),
                    ..
                }) => return Some(oversize),
                Some(end) => at += end.length,
                None => return limit.oversize,
            }
        }
        None
    }

    #[test]
    fn runs_of_text_and_values_pass_the_limit_with_the_same_byte_as_single_steps() {
        let stanza = "<message to='a@b' from='c@d'><body>some text &amp; more</body>\
                      <x xmlns='urn:x' v=\"a 'b' c\">tail</x></message>";
        let stream = format!("{OPEN}  {stanza}\n{stanza}");
        for max_bytes in OPEN.len()..=stanza.len() + 1 {
            let mut runs = ReadLimit::new(max_bytes, usize::MAX, 8);
            let mut single = ReadLimit::new(max_bytes, usize::MAX, 8);
            let by_runs = scan_runs(&mut runs, stream.as_bytes());
            let by_steps = step_bytewise(&mut single, stream.as_bytes());
            assert_eq!(
                by_runs,
                by_steps.map(|(_, oversize)| oversize),
                "{max_bytes}"
            );
            if by_runs.is_none() {
                assert_eq!(runs.element_bytes, single.element_bytes, "{max_bytes}");
                assert_eq!(runs.markup, single.markup, "max_bytes {max_bytes}");
            } else {
                // The limit passes at the first byte past it.
                let at = by_steps.map(|(at, _)| at).unwrap_or_default();
                let unit_start = OPEN.len() + 2;
                assert_eq!(at - unit_start, max_bytes, "max_bytes {max_bytes}");
            }
        }
    }

    #[test]
    fn depth_is_limited_below_the_stream_element() {
        assert_eq!(
            oversizes(&format!("{HEADER}{}", nested(8)), 1024, 8),
            Ok(vec![None, None, None])
        );
        let deep = format!("{HEADER}{}<iq/>", nested(9));
        assert_eq!(
            oversizes(&deep, 1024, 8),
            Ok(vec![None, None, Some(Oversize::Depth { limit: 8 }), None])
        );
        // Nesting far past the limit is still followed to its end.
        let deeper = format!("{HEADER}{}<iq/>", nested(100_000));
        assert_eq!(
            oversizes(&deeper, usize::MAX, 8),
            Ok(vec![None, None, Some(Oversize::Depth { limit: 8 }), None])
        );
        // Empty elements do not nest.
        let flat = format!("{HEADER}<a>{}</a>", "<b/>".repeat(1000));
        assert_eq!(oversizes(&flat, 1 << 20, 1), Ok(vec![None, None, None]));
    }

    #[test]
    fn whitespace_between_stanzas_is_not_counted_but_text_inside_is() {
        let keepalives = format!("{OPEN}{}<a/>{}", " ".repeat(10_000), "\n".repeat(10_000));
        assert_eq!(oversizes(&keepalives, OPEN.len(), 2), Ok(vec![None, None]));
        let endless_text = format!("{OPEN}<message><body>{}", "a".repeat(100));
        let mut limit = ReadLimit::new(64, usize::MAX, 4);
        assert_eq!(
            scan_runs(&mut limit, endless_text.as_bytes()),
            Some(Oversize::Bytes { limit: 64 })
        );
        assert!(limit.head_read(), "<message> ended before the limit");
        let endless_tag = format!("{OPEN}<message {}", "a='b' ".repeat(100));
        let mut limit = ReadLimit::new(64, usize::MAX, 4);
        assert_eq!(
            scan_runs(&mut limit, endless_tag.as_bytes()),
            Some(Oversize::Bytes { limit: 64 })
        );
        assert!(!limit.head_read(), "the start tag never ended");
    }

    #[test]
    fn elements_and_attributes_are_counted_per_stanza() {
        // Two elements and three attributes (the quote inside a value is
        // not one).
        let stanza = "<message a='1' b=\"it's\"><x c='2'/></message>";
        let stream = format!("{OPEN}{}", stanza.repeat(100));
        let ends = scan_all(&mut ReadLimit::new(1024, 5, 4), stream.as_bytes());
        let ends = ends.expect("valid");
        assert_eq!(ends.len(), 101);
        assert!(ends.iter().all(|(_, oversize)| oversize.is_none()));
        // With one fewer allowed, each stanza passes the limit at the value
        // of `c`, and each is followed to its end.
        let ends = scan_all(&mut ReadLimit::new(1024, 4, 4), stream.as_bytes()).expect("valid");
        assert_eq!(ends.len(), 101);
        for (n, (end, oversize)) in ends.iter().skip(1).enumerate() {
            assert_eq!(*oversize, Some(Oversize::Markup { limit: 4 }), "stanza {n}");
            assert_eq!(*end, OPEN.len() + (n + 1) * stanza.len());
        }
        let mut limit = ReadLimit::new(1024, 4, 4);
        let head = format!("{OPEN}<message a='1' b='2' c='3' d='4'");
        assert_eq!(
            scan_runs(&mut limit, head.as_bytes()),
            Some(Oversize::Markup { limit: 4 })
        );
        assert!(!limit.head_read());
    }

    #[test]
    fn each_unit_ends_where_its_last_tag_does() {
        let stream =
            format!("{HEADER}\n<message><body>a</body><x/></message> <iq/>\n\t</stream:stream>");
        let ends = scan_all(&mut ReadLimit::default(), stream.as_bytes()).expect("valid");
        let after = |unit: &str| stream.find(unit).map(|at| at + unit.len());
        let declaration = "<?xml version='1.0'?>".len();
        let ends: Vec<usize> = ends.into_iter().map(|(end, _)| end).collect();
        assert_eq!(
            ends,
            vec![
                declaration,
                HEADER.len(),
                after("</message>").unwrap_or(0),
                after("<iq/>").unwrap_or(0),
                stream.len(),
            ]
        );
    }

    #[test]
    fn what_xmpp_forbids_is_refused_at_once() {
        let forbidden = |what| Refusal::Forbidden { what };
        let cases = [
            (
                "<!DOCTYPE x [<!ENTITY a 'b'>]>",
                forbidden("a DTD or a comment"),
            ),
            ("<!-- a comment -->", forbidden("a DTD or a comment")),
            (
                "<message><!-- inside --></message>",
                forbidden("a DTD or a comment"),
            ),
            ("<?pi data?>", forbidden("a processing instruction")),
            (
                "<message><?pi?></message>",
                forbidden("a processing instruction"),
            ),
            ("this is not a stanza", forbidden("text between stanzas")),
        ];
        for (xml, refusal) in cases {
            let stream = format!("{OPEN}  {xml}<message/>");
            let (at, why) = scan_all(&mut ReadLimit::default(), stream.as_bytes()).expect_err(xml);
            assert_eq!(why, refusal, "{xml}");
            assert!(
                at < OPEN.len() + 2 + xml.len(),
                "{xml}: refused only at {at}"
            );
        }
        // Also inside a stanza that is already oversized.
        let skipped = format!("{OPEN}<message>{}<!-- c --></message>", "<a/>".repeat(10));
        let refused = scan_all(&mut ReadLimit::new(1024, 4, 4), skipped.as_bytes());
        assert_eq!(
            refused.map_err(|e| e.1),
            Err(forbidden("a DTD or a comment"))
        );
        // A CDATA section is text, whatever it holds.
        let cdata = format!("{OPEN}<message><![CDATA[<!-- <? ]]></message>");
        assert_eq!(oversizes(&cdata, 1024, 4), Ok(vec![None, None]));
        assert_eq!(
            Refusal::Forbidden {
                what: "a processing instruction"
            }
            .to_string(),
            "the server sent a processing instruction, which XMPP forbids"
        );
    }
}

//! Splits an XMPP byte stream into its top-level pieces without parsing it.
//!
//! A client stream is one long XML document: `<stream:stream …>` is opened
//! once (again after SASL) and never closed until the end, and every stanza
//! is a direct child of it. The scanner only tracks tag depth, quotes and
//! self-closing tags, so each complete stanza can be handed as one slice of
//! bytes to a real parser. Whitespace between stanzas (keepalives) is
//! dropped. Comments, CDATA and DTDs are not expected from an XMPP server
//! (RFC 6120 forbids them) and are not handled; processing instructions are
//! skipped because servers send `<?xml …?>` before each stream header.

use thiserror::Error;

/// The name of the stream's root element, as every server writes it.
const STREAM_TAG: &[u8] = b"stream:stream";

/// One top-level piece of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// A `<stream:stream …>` opening tag, verbatim (a stream restart is a new one).
    Open(Vec<u8>),
    /// One complete stanza (or nonza such as `<stream:features>`), verbatim.
    Stanza(Vec<u8>),
    /// `</stream:stream>`: the server closed the stream.
    Close,
}

/// What the scanner cannot accept.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("element <{0}> outside the stream")]
    OutsideStream(String),
    #[error("closing tag without an open element")]
    UnbalancedClose,
    #[error("text outside the stream")]
    TextOutsideStream,
    #[error("stanza larger than {0} bytes")]
    TooLarge(usize),
}

/// Where the scanner is inside the markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tags: text content or whitespace.
    Text,
    /// Inside `<…>` of an element tag; `quote` is the open quote character, if any.
    Tag { quote: Option<u8> },
    /// Inside `<?…?>`.
    ProcessingInstruction,
}

/// Incremental splitter: feed bytes as they arrive, take items as they complete.
#[derive(Debug)]
pub struct StanzaScanner {
    /// Bytes received but not yet returned as an item.
    buf: Vec<u8>,
    /// How far `buf` has been scanned; scanning resumes here so no byte is read twice.
    pos: usize,
    /// Markup state at `pos`.
    state: State,
    /// Open elements: 0 before the stream header, 1 between stanzas.
    depth: usize,
    /// Offset in `buf` of the `<` of the tag being scanned.
    tag_start: usize,
    /// Offset in `buf` where the current stanza starts (depth ≥ 2).
    stanza_start: usize,
    /// Upper bound for one item, so a hostile peer cannot grow `buf` forever.
    max_item: usize,
}

impl StanzaScanner {
    /// A scanner that refuses items larger than `max_item` bytes.
    pub fn new(max_item: usize) -> Self {
        StanzaScanner {
            buf: Vec::with_capacity(8192),
            pos: 0,
            state: State::Text,
            depth: 0,
            tag_start: 0,
            stanza_start: 0,
            max_item,
        }
    }

    /// Appends bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, or `None` when more bytes are needed.
    pub fn next_item(&mut self) -> Result<Option<StreamItem>, ScanError> {
        while self.pos < self.buf.len() {
            let byte = self.buf[self.pos];
            match self.state {
                State::Text => {
                    if byte == b'<' {
                        self.tag_start = self.pos;
                        self.state = match self.buf.get(self.pos + 1) {
                            // Need the next byte to tell a PI from a tag.
                            None => return Ok(None),
                            Some(b'?') => State::ProcessingInstruction,
                            Some(_) => State::Tag { quote: None },
                        };
                    } else if self.depth == 0 && !byte.is_ascii_whitespace() {
                        return Err(ScanError::TextOutsideStream);
                    }
                    self.pos += 1;
                    if self.depth <= 1 && self.state == State::Text {
                        // Whitespace between stanzas is a keepalive: forget it.
                        self.discard_scanned();
                    }
                }
                State::ProcessingInstruction => {
                    if byte == b'>' && self.buf[self.pos - 1] == b'?' {
                        self.state = State::Text;
                        self.pos += 1;
                        if self.depth <= 1 {
                            self.discard_scanned();
                        }
                    } else {
                        self.pos += 1;
                    }
                }
                State::Tag { quote: Some(q) } => {
                    if byte == q {
                        self.state = State::Tag { quote: None };
                    }
                    self.pos += 1;
                }
                State::Tag { quote: None } => {
                    self.pos += 1;
                    match byte {
                        b'"' | b'\'' => self.state = State::Tag { quote: Some(byte) },
                        b'>' => {
                            self.state = State::Text;
                            if let Some(item) = self.end_of_tag()? {
                                return Ok(Some(item));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let pending = self.buf.len() - self.item_start();
        if pending > self.max_item {
            return Err(ScanError::TooLarge(self.max_item));
        }
        Ok(None)
    }

    /// Acts on a tag that just ended at `self.pos - 1`.
    fn end_of_tag(&mut self) -> Result<Option<StreamItem>, ScanError> {
        let tag = &self.buf[self.tag_start..self.pos];
        let closing = tag.get(1) == Some(&b'/');
        let self_closing = tag.len() >= 2 && tag[tag.len() - 2] == b'/';
        let name_start = if closing { 2 } else { 1 };
        let name_len = tag[name_start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
            .unwrap_or(tag.len() - name_start);
        let name = &tag[name_start..name_start + name_len];

        if name == STREAM_TAG {
            let item = if closing {
                self.depth = 0;
                StreamItem::Close
            } else {
                self.depth = 1;
                StreamItem::Open(tag.to_vec())
            };
            self.discard_scanned();
            return Ok(Some(item));
        }
        if self.depth == 0 {
            return Err(ScanError::OutsideStream(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        if closing {
            if self.depth < 2 {
                return Err(ScanError::UnbalancedClose);
            }
            self.depth -= 1;
        } else if self_closing {
            if self.depth == 1 {
                self.stanza_start = self.tag_start;
            }
        } else {
            if self.depth == 1 {
                self.stanza_start = self.tag_start;
            }
            self.depth += 1;
        }
        if self.depth == 1 {
            let stanza = self.buf[self.stanza_start..self.pos].to_vec();
            self.discard_scanned();
            return Ok(Some(StreamItem::Stanza(stanza)));
        }
        Ok(None)
    }

    /// Where the bytes that are not yet part of a returned item begin.
    fn item_start(&self) -> usize {
        match self.state {
            _ if self.depth >= 2 => self.stanza_start,
            State::Text => self.pos,
            _ => self.tag_start,
        }
    }

    /// Drops every byte before `pos`: they belong to no pending item.
    fn discard_scanned(&mut self) {
        self.buf.drain(..self.pos);
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='abc' from='localhost' version='1.0'>";

    /// Feeds `input` in chunks of `chunk` bytes and collects every item.
    fn scan_in_chunks(input: &[u8], chunk: usize) -> Vec<StreamItem> {
        let mut scanner = StanzaScanner::new(1 << 20);
        let mut items = Vec::new();
        for part in input.chunks(chunk) {
            scanner.feed(part);
            while let Some(item) = scanner.next_item().expect("valid stream") {
                items.push(item);
            }
        }
        items
    }

    fn stanza(text: &str) -> StreamItem {
        StreamItem::Stanza(text.as_bytes().to_vec())
    }

    fn open() -> StreamItem {
        let start = HEADER
            .find("<stream:stream")
            .expect("header has a stream tag");
        StreamItem::Open(HEADER.as_bytes()[start..].to_vec())
    }

    #[test]
    fn every_chunking_gives_the_same_items() {
        let stanzas = [
            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
            "<message to='a@b' from=\"c@d/e\" type='chat' id='x1'><body>1 &lt; 2 &amp; 3 > 2</body>\
             <thread>t</thread></message>",
            "<iq type='result' id='p1'/>",
            "<message a='x>y' b=\"'>'\"><body a='/>'>quoted &apos;&gt;&apos; in attributes</body></message>",
            "<presence/>",
        ];
        let mut input = String::from(HEADER);
        for s in &stanzas {
            input.push_str(s);
            input.push_str(" \n\t");
        }
        input.push_str("</stream:stream>");
        let mut expected = vec![open()];
        expected.extend(stanzas.iter().map(|s| stanza(s)));
        expected.push(StreamItem::Close);
        for chunk in 1..=input.len() {
            assert_eq!(
                scan_in_chunks(input.as_bytes(), chunk),
                expected,
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn nested_elements_end_at_the_matching_depth() {
        let deep = "<message><a><b><c/><c></c></b><b/></a><body>x</body></message>";
        let input = format!("{HEADER}{deep}<iq/>");
        assert_eq!(
            scan_in_chunks(input.as_bytes(), 7),
            vec![open(), stanza(deep), stanza("<iq/>")]
        );
    }

    #[test]
    fn whitespace_keepalives_yield_nothing_and_are_not_kept() {
        let mut scanner = StanzaScanner::new(1 << 20);
        scanner.feed(HEADER.as_bytes());
        assert_eq!(scanner.next_item(), Ok(Some(open())));
        for _ in 0..1000 {
            scanner.feed(b" ");
            assert_eq!(scanner.next_item(), Ok(None));
        }
        assert!(scanner.buf.is_empty(), "keepalives must not accumulate");
        scanner.feed(b"\n<iq/>");
        assert_eq!(scanner.next_item(), Ok(Some(stanza("<iq/>"))));
    }

    #[test]
    fn a_restarted_stream_is_a_new_open_item() {
        let success = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
        let input = format!("{HEADER}{success}{HEADER}<iq/>");
        assert_eq!(
            scan_in_chunks(input.as_bytes(), 3),
            vec![open(), stanza(success), open(), stanza("<iq/>")]
        );
    }

    #[test]
    fn a_partial_stanza_waits_for_more_bytes() {
        let mut scanner = StanzaScanner::new(1 << 20);
        scanner.feed(format!("{HEADER}<message><body>hal").as_bytes());
        assert_eq!(scanner.next_item(), Ok(Some(open())));
        assert_eq!(scanner.next_item(), Ok(None));
        scanner.feed(b"f</body></message>");
        assert_eq!(
            scanner.next_item(),
            Ok(Some(stanza("<message><body>half</body></message>")))
        );
        assert_eq!(scanner.next_item(), Ok(None));
    }

    #[test]
    fn bad_streams_are_refused() {
        let mut outside = StanzaScanner::new(1 << 20);
        outside.feed(b"<message/>");
        assert_eq!(
            outside.next_item(),
            Err(ScanError::OutsideStream("message".into()))
        );

        let mut text = StanzaScanner::new(1 << 20);
        text.feed(b"hello");
        assert_eq!(text.next_item(), Err(ScanError::TextOutsideStream));

        let mut unbalanced = StanzaScanner::new(1 << 20);
        unbalanced.feed(format!("{HEADER}</message>").as_bytes());
        assert_eq!(unbalanced.next_item(), Ok(Some(open())));
        assert_eq!(unbalanced.next_item(), Err(ScanError::UnbalancedClose));

        let mut huge = StanzaScanner::new(64);
        huge.feed(format!("{HEADER}<message><body>").as_bytes());
        assert_eq!(huge.next_item(), Ok(Some(open())));
        huge.feed(&[b'x'; 100]);
        assert_eq!(huge.next_item(), Err(ScanError::TooLarge(64)));
    }
}

//! The link's stream reader, fed in reads of any size, against rxml's
//! streaming parser (what the link used before it had its own, and what
//! minidom parses with) on the same bytes: unit by unit, the same XML
//! declaration, stream header, stanzas (as trees) and footer, or both
//! refusing. Where the two may differ on purpose, the difference is named
//! in [`Difference`] and the book (docs/src/reliability.md). Each stanza read is also parsed again
//! under the allocation meter: what the parser allocates stays within what
//! it charged to the stanza's memory budget, and a small multiple of its
//! bytes.

use crate::alloc_meter::peak_of;
use crate::input::{Input, read_sizes};
use minidom::rxml::{self, Parse, WithOptions, error::EndOrError};
use xmpp_lambda_component::fuzzing::{
    LIMITS, Oversize, READ_SIZE, Refusal, StreamReader, Unit, XmlError, canonical,
    parse_unit_charged,
};

/// The header a server sends: put before the payload when the case asks.
pub const SERVER_HEADER: &str = "<?xml version='1.0'?><stream:stream \
     xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' \
     id='fuzz' from='bot.localhost'>";

const STREAMS_NS: &str = "http://etherx.jabber.org/streams";

/// What parsing may allocate beyond what it charged: the scratch lists of
/// a parse (open elements, attributes, namespace bindings) grow with the
/// stanza's bytes, and a little more for the allocator's rounding.
fn allowed_beyond_charge(bytes: usize) -> usize {
    4 * bytes + 16 * 1024
}

/// Checks one case: a read-size seed, flags (bit 0: the server header comes
/// first), then the bytes of the stream.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let seed = input.byte();
    let flags = input.byte();
    let payload = input.rest();
    let mut stream = Vec::with_capacity(SERVER_HEADER.len() + payload.len());
    if flags & 1 == 1 {
        stream.extend_from_slice(SERVER_HEADER.as_bytes());
    }
    stream.extend_from_slice(payload);
    check_stream(&stream, &read_sizes(seed, stream.len(), READ_SIZE));
}

/// One unit of the stream as either reader saw it, stanzas as canonical
/// text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Declaration,
    Header {
        id: Option<String>,
    },
    /// Reference only: a root element other than `<stream:stream>`.
    NotAStreamHeader,
    Stanza(String),
    /// Ours only: past a limit, not parsed.
    Skipped(Oversize),
    Footer,
}

/// How a reading ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// In the middle of a unit, or between units: more may come.
    Waiting,
    /// The footer: the link stops reading.
    Closed,
    /// Refused by our scanner (as soon as seen) or parser (a whole unit).
    Scanner(Refusal),
    Parser(String),
    /// Refused by rxml.
    Reference(String),
}

/// All a reader made of a stream.
#[derive(Debug)]
pub struct Reading {
    pub units: Vec<Seen>,
    pub end: End,
    /// Reference only: the most nested each stanza got (its own element is
    /// 1), by unit.
    depths: Vec<usize>,
    /// Reference only: it met character data between stanzas, which XMPP
    /// forbids and our scanner refuses.
    text_between_stanzas: bool,
}

/// The deliberate differences: where our reader refuses what rxml takes,
/// or skips what rxml would read (each is tested in the crate that makes
/// it and named in the book).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    /// XMPP allows only whitespace between stanzas (RFC 6120 §4.2–4.3);
    /// rxml reads character data there as the stream element's text.
    TextBetweenStanzas,
    /// The stream header must be `<stream:stream>` in the streams
    /// namespace, with content, and bind at most 32 namespaces.
    StreamHeader,
    /// A namespace declared twice on one element (`xmlns` or `xmlns:p`
    /// twice) is an attribute repeated, which XML 1.0 forbids (§3.1, Unique
    /// Att Spec); rxml takes the later declaration.
    RepeatedDeclaration,
    /// A stanza past a limit (depth, elements and attributes, bytes,
    /// memory) is skipped by its tags alone: what rxml would read or
    /// refuse inside it is not parsed.
    Skipped,
    /// An XML declaration of version 1.x other than 1.0: read as 1.0, as
    /// XML 1.0 (fifth edition, §2.8) lets a processor do; rxml takes only
    /// 1.0.
    DeclarationVersion,
    /// A quote in an end tag (`</a'>`): XML's end tag holds a name and
    /// space only, so we read to its `>` and refuse it there; rxml lexes
    /// the quote as the start of an attribute value and waits for it to
    /// close before it refuses.
    QuoteInEndTag,
}

/// Reads `stream` both ways (ours in reads of `sizes`) and panics, saying
/// how, where they disagree other than by a [`Difference`]; returns the
/// difference met, if any.
pub fn check_stream(stream: &[u8], sizes: &[usize]) -> Option<Difference> {
    let ours = read_ours(stream, sizes);
    let reference = read_reference(stream);
    if ours.units.first() == Some(&Seen::Declaration)
        && reference.units.is_empty()
        && matches!(reference.end, End::Reference(_))
        && declares_a_later_version(stream)
    {
        return Some(Difference::DeclarationVersion);
    }
    match compare(&ours, &reference) {
        Ok(difference) => difference,
        Err(_)
            if ours.units == reference.units
                && matches!(ours.end, End::Parser(_))
                && reference.end == End::Waiting
                && quotes_an_end_tag(stream) =>
        {
            Some(Difference::QuoteInEndTag)
        }
        Err(what) => panic!(
            "{what}\nstream: {:?}\nreads: {sizes:?}\nours: {ours:?}\nrxml: {reference:?}",
            String::from_utf8_lossy(stream)
        ),
    }
}

fn compare(ours: &Reading, reference: &Reading) -> Result<Option<Difference>, String> {
    let common = ours.units.len().min(reference.units.len());
    for at in 0..common {
        match (&ours.units[at], &reference.units[at]) {
            (Seen::Skipped(Oversize::Depth { limit }), Seen::Stanza(_)) => {
                let depth = reference.depths.get(at).copied().unwrap_or_default();
                if depth <= *limit {
                    return Err(format!(
                        "unit {at} skipped as deeper than {limit}, it is {depth}"
                    ));
                }
            }
            (Seen::Skipped(_), Seen::Stanza(_)) => {}
            (Seen::Skipped(_), _) => {
                return Err(format!("unit {at} skipped where rxml reads no stanza"));
            }
            (a, b) if a != b => return Err(format!("unit {at} differs")),
            _ => {}
        }
    }
    let skipped = ours
        .units
        .iter()
        .any(|unit| matches!(unit, Seen::Skipped(_)));
    // Past a skipped stanza, rxml may have refused what was never parsed.
    if skipped && matches!(reference.end, End::Reference(_)) {
        return Ok(Some(Difference::Skipped));
    }
    let next_reference = reference.units.get(common);
    if let End::Parser(message) = &ours.end
        && message.contains("declared twice")
    {
        return Ok(Some(Difference::RepeatedDeclaration));
    }
    match (&ours.end, next_reference) {
        (
            End::Scanner(Refusal::Forbidden {
                what: "text between stanzas",
            }),
            _,
        ) if reference.text_between_stanzas => Ok(Some(Difference::TextBetweenStanzas)),
        (
            End::Scanner(Refusal::Forbidden {
                what: "a DTD or a comment",
            }),
            _,
        ) if reference.text_between_stanzas => {
            // `<![CDATA[…]]>` between stanzas: text to rxml.
            Ok(Some(Difference::TextBetweenStanzas))
        }
        (
            End::Scanner(Refusal::Bytes { .. } | Refusal::Markup { .. }),
            Some(Seen::Header { .. }) | None,
        )
        | (End::Parser(_), Some(Seen::Header { .. } | Seen::NotAStreamHeader))
            if ours.units.len() == common && is_header_refusal(&ours.end) =>
        {
            Ok(Some(Difference::StreamHeader))
        }
        // Both refused, or we refused while rxml still waits for the end
        // of the unit (ours sees a unit whole).
        (End::Scanner(_) | End::Parser(_), None) if matches!(reference.end, End::Reference(_)) => {
            Ok(None)
        }
        (End::Scanner(_), None) if reference.end == End::Waiting => Ok(None),
        (End::Scanner(_), None) => Err(format!("we refuse past rxml's end at unit {common}")),
        (End::Scanner(_) | End::Parser(_), Some(_)) => {
            Err(format!("we refuse unit {common}, which rxml reads"))
        }
        (End::Parser(_), None) => Err(format!(
            "we refuse unit {common} as whole while rxml still reads it"
        )),
        (End::Waiting | End::Closed, Some(_)) => {
            Err(format!("rxml reads unit {common}, we do not"))
        }
        (End::Waiting, None) | (End::Closed, None) => {
            if ours.units.len() > common {
                if let End::Reference(_) = reference.end {
                    return Err(format!("we read unit {common}, which rxml refuses"));
                }
                return Err(format!("we read unit {common}, rxml does not"));
            }
            Ok(None)
        }
        (End::Reference(_), _) => Err("our reading cannot end in rxml's refusal".into()),
    }
}

/// Whether `stream` opens with an XML declaration of a version 1.x but
/// 1.0 ([`Difference::DeclarationVersion`]).
fn declares_a_later_version(stream: &[u8]) -> bool {
    let Some(rest) = stream.strip_prefix(b"<?xml") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"version") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b"=") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    let Some((&quote, rest)) = rest.split_first() else {
        return false;
    };
    let Some(end) = rest.iter().position(|&b| b == quote) else {
        return false;
    };
    let version = &rest[..end];
    version != b"1.0"
        && version.starts_with(b"1.")
        && version.len() > 2
        && version[2..].iter().all(u8::is_ascii_digit)
}

/// Whether an end tag in `stream` holds a quote before its `>`
/// ([`Difference::QuoteInEndTag`]).
fn quotes_an_end_tag(stream: &[u8]) -> bool {
    let mut rest = stream;
    while let Some(at) = find(rest, b"</") {
        rest = &rest[at + 2..];
        let tag = rest
            .iter()
            .position(|&b| b == b'>' || b == b'<')
            .map_or(rest, |end| &rest[..end]);
        if tag.iter().any(|&b| b == b'\'' || b == b'"') {
            return true;
        }
    }
    false
}

/// Whether our reader refused a stream header rxml took for one of the
/// reasons of [`Difference::StreamHeader`].
fn is_header_refusal(end: &End) -> bool {
    match end {
        End::Scanner(Refusal::Bytes { .. } | Refusal::Markup { .. }) => true,
        End::Parser(message) => [
            "in place of the stream header",
            "an empty stream element",
            "a stream header with more than",
        ]
        .iter()
        .any(|reason| message.contains(reason)),
        _ => false,
    }
}

/// What our reader makes of `stream` in reads of `sizes`; every stanza is
/// also held to its memory budget.
fn read_ours(stream: &[u8], sizes: &[usize]) -> Reading {
    let mut reader = StreamReader::new();
    let mut units = Vec::new();
    let mut rest = stream;
    for &size in sizes {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.clamp(1, rest.len()));
        rest = after;
        reader.read(piece);
        loop {
            let scope = reader.scope().cloned();
            let (unit, bytes) = match reader.next_unit() {
                Ok(Some((unit, bytes))) => (unit, bytes.to_vec()),
                Ok(None) => break,
                Err(error) => {
                    let end = match error.get_ref() {
                        Some(inner) if inner.is::<Refusal>() => {
                            match inner.downcast_ref::<Refusal>() {
                                Some(refusal) => End::Scanner(*refusal),
                                None => End::Parser(error.to_string()),
                            }
                        }
                        _ => End::Parser(error.to_string()),
                    };
                    return Reading::ours(units, end);
                }
            };
            let seen = match unit {
                Unit::Declaration => Seen::Declaration,
                Unit::Header { id, .. } => Seen::Header { id },
                Unit::Element(element) => {
                    if let Some(scope) = &scope {
                        assert_within_budget(&bytes, scope);
                    }
                    Seen::Stanza(canonical(&element))
                }
                Unit::Skipped { oversize, .. } => {
                    if let (Oversize::Memory { .. }, Some(scope)) = (oversize, &scope) {
                        assert_within_budget(&bytes, scope);
                    }
                    Seen::Skipped(oversize)
                }
                Unit::Footer => {
                    units.push(Seen::Footer);
                    return Reading::ours(units, End::Closed);
                }
            };
            units.push(seen);
        }
        assert!(
            reader.buffer_capacity() <= 2 * LIMITS.2 + 2 * READ_SIZE,
            "the read buffer grew to {} bytes",
            reader.buffer_capacity()
        );
    }
    Reading::ours(units, End::Waiting)
}

impl Reading {
    fn ours(units: Vec<Seen>, end: End) -> Reading {
        Reading {
            units,
            end,
            depths: Vec::new(),
            text_between_stanzas: false,
        }
    }
}

/// Parses one stanza's `bytes` again under the allocation meter: what the
/// parse allocates at its peak stays within what it charged, and the
/// charge within the budget.
fn assert_within_budget(bytes: &[u8], scope: &xmpp_lambda_component::fuzzing::StreamScope) {
    let ((unit, charged), peak) = peak_of(|| parse_unit_charged(bytes, false, scope));
    let allowed = charged + allowed_beyond_charge(bytes.len());
    assert!(
        charged <= xmpp_lambda_component::MAX_STANZA_MEMORY,
        "charged {charged} bytes"
    );
    assert!(
        peak <= allowed,
        "parsing {} bytes took {peak} bytes at its peak, {charged} charged ({:?})",
        bytes.len(),
        unit.as_ref().map(|_| ()).map_err(XmlError::to_string)
    );
}

/// Text as [`canonical`] writes it: a run of adjacent text, quoted.
fn flush_text(out: &mut String, text: &mut String) {
    if !text.is_empty() {
        out.push_str(&format!("{:?}", std::mem::take(text)));
    }
}

/// What rxml's streaming parser makes of `stream`, as units.
fn read_reference(stream: &[u8]) -> Reading {
    let stream = line_ends_in_tags(stream);
    let options = rxml::Options {
        // Our reader takes values up to its byte limit; rxml's default
        // (8 KiB) would refuse long namespaces it reads.
        max_token_length: 4 * LIMITS.2,
        ..rxml::Options::default()
    };
    let mut parser = rxml::Parser::with_options(options);
    let mut rest = &stream[..];
    let mut reading = Reading {
        units: Vec::new(),
        end: End::Waiting,
        depths: Vec::new(),
        text_between_stanzas: false,
    };
    // Open elements below the stream: (canonical so far, text not yet
    // written, attributes).
    let mut open: Vec<(String, String)> = Vec::new();
    let mut depth = 0;
    let mut deepest = 0;
    loop {
        let event = match parser.parse(&mut rest, false) {
            Ok(Some(event)) => event,
            Ok(None) | Err(EndOrError::NeedMoreData) => return reading,
            Err(EndOrError::Error(error)) => {
                reading.end = End::Reference(error.to_string());
                return reading;
            }
        };
        match event {
            rxml::Event::XmlDeclaration(..) => reading.units.push(Seen::Declaration),
            rxml::Event::StartElement(_, (namespace, name), attributes) => {
                depth += 1;
                if depth == 1 {
                    if (namespace.as_str(), name.as_str()) != (STREAMS_NS, "stream") {
                        reading.units.push(Seen::NotAStreamHeader);
                        continue;
                    }
                    let id = attributes
                        .iter()
                        .find(|((namespace, name), _)| {
                            namespace.as_str().is_empty() && name.as_str() == "id"
                        })
                        .map(|(_, value)| value.clone());
                    reading.units.push(Seen::Header { id });
                    continue;
                }
                deepest = deepest.max(depth - 1);
                let mut listed: Vec<String> = attributes
                    .iter()
                    .map(|((namespace, name), value)| format!(" {{{namespace}}}{name}={value:?}"))
                    .collect();
                listed.sort();
                open.push((
                    format!("{{{namespace}}}{name}{}[", listed.concat()),
                    String::new(),
                ));
            }
            rxml::Event::Text(_, text) => match open.last_mut() {
                Some((_, pending)) => pending.push_str(&text),
                None => {
                    if !text.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
                        reading.text_between_stanzas = true;
                    }
                }
            },
            rxml::Event::EndElement(_) => {
                depth -= 1;
                let Some((mut done, mut pending)) = open.pop() else {
                    reading.units.push(Seen::Footer);
                    reading.end = End::Closed;
                    return reading;
                };
                flush_text(&mut done, &mut pending);
                done.push(']');
                match open.last_mut() {
                    Some((parent, text)) => {
                        flush_text(parent, text);
                        parent.push_str(&done);
                    }
                    None => {
                        reading.depths.resize(reading.units.len(), 0);
                        reading.depths.push(deepest);
                        deepest = 0;
                        reading.units.push(Seen::Stanza(done));
                    }
                }
            }
        }
    }
}

/// `stream` with every carriage return inside markup made a line feed.
/// Inside a tag both mean the same (XML 1.0 §2.11 makes CR LF and a lone CR
/// a line feed, §3.3.3 any of them a space in an attribute value), but
/// rxml refuses a lone CR in an attribute value and drops one before its
/// closing quote; our reader reads them as XML says. Text is left as it is.
fn line_ends_in_tags(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    let mut in_tag = false;
    let mut quote = None;
    let mut at = 0;
    while at < stream.len() {
        let byte = stream[at];
        if !in_tag {
            if stream[at..].starts_with(b"<![CDATA[") {
                let end = find(&stream[at..], b"]]>").map_or(stream.len(), |end| at + end + 3);
                out.extend_from_slice(&stream[at..end]);
                at = end;
                continue;
            }
            in_tag = byte == b'<';
            out.push(byte);
        } else {
            match (quote, byte) {
                (None, b'\'' | b'"') => quote = Some(byte),
                (Some(open), _) if open == byte => quote = None,
                (None, b'>') => in_tag = false,
                _ => {}
            }
            if byte == b'\r' {
                if stream.get(at + 1) != Some(&b'\n') {
                    out.push(b'\n');
                }
            } else {
                out.push(byte);
            }
        }
        at += 1;
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

//! What the fuzz targets in `fuzz/` drive inside the link: the stream
//! reader fed in reads of any size, the parser with its own account of the
//! memory a unit was charged, and the parts of an [`Outbound`]. Not an API:
//! it changes with the targets.

use crate::Outbound;
use crate::stream::Reader;
use minidom::Element;
use std::io;
use tokio::sync::oneshot;

pub use crate::read_limit::{Oversize, Refusal};
/// How much room each socket read gets.
pub const READ_SIZE: usize = crate::stream::READ_SIZE;
pub use crate::xml::{NO_SCOPE, StreamScope, Unit, XmlError};

/// The link's stream reader without its socket: bytes in, units out.
#[derive(Debug, Default)]
pub struct StreamReader {
    reader: Reader,
}

impl StreamReader {
    pub fn new() -> StreamReader {
        StreamReader::default()
    }

    /// Takes one read's bytes, as the socket would put them in the buffer.
    pub fn read(&mut self, bytes: &[u8]) {
        self.reader.room().extend_from_slice(bytes);
    }

    /// The next unit read whole, with the bytes it was parsed from (for a
    /// skipped stanza, only those of it still held when it ended), or why
    /// the stream cannot go on.
    pub fn next_unit(&mut self) -> io::Result<Option<(Unit, &[u8])>> {
        let start = self.reader.unit_start();
        let unit = self.reader.next_unit()?;
        let end = self.reader.unit_start();
        Ok(unit.map(|unit| (unit, &self.reader.buffer()[start..end])))
    }

    /// The memory the read buffer holds.
    pub fn buffer_capacity(&mut self) -> usize {
        self.reader
            .buffer()
            .len()
            .max(self.reader.room().capacity())
    }

    /// The stream header's bindings, once it is read.
    pub fn scope(&self) -> Option<&StreamScope> {
        self.reader.scope()
    }
}

/// Parses one unit as the reader does, and says how much of the memory
/// budget ([`crate::MAX_STANZA_MEMORY`]) it was charged.
pub fn parse_unit_charged(
    bytes: &[u8],
    header: bool,
    scope: &StreamScope,
) -> (Result<Unit, XmlError>, usize) {
    crate::xml::parse_unit_charged(bytes, header, scope)
}

/// The stanza of `outbound` and who waits for its write.
pub fn outbound_parts(outbound: Outbound) -> (Element, Option<oneshot::Sender<()>>) {
    outbound.into_parts()
}

/// The most a stanza's unit may take before the scanner skips it, in
/// elements and attributes, depth and bytes (as the crate's constants).
pub const LIMITS: (usize, usize, usize) = (
    crate::MAX_STANZA_MARKUP,
    crate::MAX_STANZA_DEPTH,
    crate::MAX_STANZA_BYTES,
);

/// A tree as text that shows what it means and nothing else: names with
/// their namespaces, attributes sorted, adjacent text joined (rxml may hand
/// one text over as several nodes, and minidom's own parser keeps the
/// namespace declarations as written, which the stream's elements never
/// had). Both the parser's tests and the fuzz targets compare trees by it.
pub fn canonical(element: &Element) -> String {
    let mut out = format!("{{{}}}{}", element.ns(), element.name());
    let mut attributes: Vec<String> = element
        .attrs()
        .iter()
        .map(|((namespace, name), value)| format!(" {{{namespace}}}{name}={value:?}"))
        .collect();
    attributes.sort();
    out.push_str(&attributes.concat());
    out.push('[');
    let mut text = String::new();
    for node in element.nodes() {
        match node {
            minidom::Node::Text(piece) => text.push_str(piece),
            minidom::Node::Element(child) => {
                if !text.is_empty() {
                    out.push_str(&format!("{:?}", std::mem::take(&mut text)));
                }
                out.push_str(&canonical(child));
            }
        }
    }
    if !text.is_empty() {
        out.push_str(&format!("{text:?}"));
    }
    out.push(']');
    out
}

//! The XML of the component stream, read one whole unit at a time: the XML
//! declaration, the stream header, one stanza, or the stream footer.
//!
//! [`crate::read_limit`] finds where each unit ends as the bytes arrive, so
//! this parser only ever sees a complete unit and needs no state between
//! reads: it checks the unit is well-formed XML with namespaces (names,
//! matching tags, unique attributes, declared prefixes, the five predefined
//! entities and character references to characters XML allows, UTF-8) and
//! builds the stanza as a [`minidom::Element`], as a general streaming
//! parser would, at a fraction of the cost per stanza. What XMPP forbids
//! (a DTD, comments, processing instructions, other entities) is refused.
//!
//! A tree costs more than its text: minidom gives every element its own
//! copy of its namespace, so an element of a few bytes that inherits a long
//! namespace costs the namespace's length again. Every copy is counted as
//! it is made, against [`MAX_STANZA_MEMORY`]; a stanza that would pass it is
//! not built but [`Unit::Skipped`], with its start tag for the error reply.
//! The count also bounds what writing the stanza back out as text costs
//! (text is counted as long as it is once escaped).

use crate::read_limit::{Oversize, is_whitespace};
use minidom::Element;
use minidom::rxml::{Namespace, NcName, XMLNS_XML as XML_NS, XMLNS_XMLNS as XMLNS_NS};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use xmpp_lambda_shared::{common_name, escaped_len, is_xml_char};

/// The namespace of the stream element itself, and of `<stream:error>`.
pub(crate) const STREAMS_NS: &str = "http://etherx.jabber.org/streams";

/// The most memory the tree of one stanza may take, counted as it is built
/// (see the module's documentation). A 1 MiB body costs a little over
/// 1 MiB; a stanza with the most elements the read limit allows, each with
/// a short namespace, about 3 MiB.
pub const MAX_STANZA_MEMORY: usize = 4 * 1024 * 1024;

/// What one element costs beyond its names: the element itself, its place
/// in its parent's list of children (which grows by doubling), and the
/// allocations behind its name, namespace and children.
const ELEMENT_COST: usize = 2 * std::mem::size_of::<minidom::Node>() + 4 * ALLOCATION;
/// What one attribute costs beyond its name and value: its entry in the
/// element's attribute map and the allocation of its value.
const ATTRIBUTE_COST: usize = 96 + ALLOCATION;
/// What one text node costs beyond its text.
const TEXT_COST: usize = 2 * std::mem::size_of::<minidom::Node>() + ALLOCATION;
/// What the allocator takes for one allocation beyond the bytes asked for.
const ALLOCATION: usize = 32;
/// An element being read, its raw name (to match its end tag) and how
/// many bindings were in force before it.
type OpenElement<'b> = (Element, &'b [u8], usize);
/// What one more level of open elements costs while the stanza is read:
/// its place in the list of open elements (which grows by doubling).
const OPEN_COST: usize = 2 * std::mem::size_of::<OpenElement<'static>>();

/// The most namespace declarations a stream header may make. A server
/// makes two (the default namespace and `stream`); every stanza starts
/// from the header's bindings, so their number is a cost per stanza.
const MAX_HEADER_BINDINGS: usize = 32;

/// Above this many bindings in force, prefixes are looked up through an
/// index instead of a scan (a stanza may declare thousands).
const SCANNED_BINDINGS: usize = 16;

/// Why the server's XML cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(String);

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid XML from the server: {}", self.0)
    }
}

impl std::error::Error for XmlError {}

fn error<T>(what: impl Into<String>) -> Result<T, XmlError> {
    Err(XmlError(what.into()))
}

/// Why building a tree stopped.
#[derive(Debug)]
enum Stop {
    /// The XML is not what the stream may carry: the stream cannot go on.
    Invalid(XmlError),
    /// The stanza would cost more than [`MAX_STANZA_MEMORY`]: it is
    /// skipped.
    OverBudget,
}

impl From<XmlError> for Stop {
    fn from(error: XmlError) -> Stop {
        Stop::Invalid(error)
    }
}

/// Memory a tree may still take.
struct Budget {
    left: usize,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        Budget { left: limit }
    }

    /// Takes `bytes` from what is left, before they are allocated.
    fn charge(&mut self, bytes: usize) -> Result<(), Stop> {
        match self.left.checked_sub(bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(Stop::OverBudget),
        }
    }
}

/// The namespace bindings the stream header made, which every stanza
/// inherits: its default namespace and its prefixes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamScope {
    /// `(None, ns)` for the default namespace, `(Some(prefix), ns)` for a
    /// prefix.
    bindings: Vec<(Option<String>, String)>,
}

/// No bindings: what the stream header starts from.
pub static NO_SCOPE: StreamScope = StreamScope {
    bindings: Vec::new(),
};

/// What one unit of the stream was.
#[derive(Debug, PartialEq)]
pub enum Unit {
    /// The XML declaration before the header.
    Declaration,
    /// The stream header: its `id`, and the bindings stanzas inherit.
    Header {
        id: Option<String>,
        scope: StreamScope,
    },
    /// A top-level element: a stanza, or a stream error.
    Element(Element),
    /// A stanza that passed a limit and was not built: its start tag alone
    /// (to answer it with an error), when that was read whole.
    Skipped {
        head: Option<Element>,
        oversize: Oversize,
    },
    /// `</stream:stream>`.
    Footer,
}

/// Reads the unit in `bytes` (whitespace may come first): the stream header
/// when `header` is set, else a stanza or the footer. The XML declaration
/// may come before the header.
pub fn parse_unit(bytes: &[u8], header: bool, scope: &StreamScope) -> Result<Unit, XmlError> {
    parse_unit_charged(bytes, header, scope).0
}

/// As [`parse_unit`], and how much of [`MAX_STANZA_MEMORY`] the unit was
/// charged: the fuzz targets hold what parsing really allocates to it.
pub(crate) fn parse_unit_charged(
    bytes: &[u8],
    header: bool,
    scope: &StreamScope,
) -> (Result<Unit, XmlError>, usize) {
    let mut budget = Budget::new(MAX_STANZA_MEMORY);
    let unit = parse_unit_within(bytes, header, scope, &mut budget);
    (unit, MAX_STANZA_MEMORY - budget.left)
}

fn parse_unit_within(
    bytes: &[u8],
    header: bool,
    scope: &StreamScope,
    budget: &mut Budget,
) -> Result<Unit, XmlError> {
    let mut cursor = Cursor { bytes, at: 0 };
    cursor.skip_whitespace();
    if !cursor.eat(b"<") {
        return error("text where only elements may be");
    }
    let unit = match cursor.peek() {
        Some(b'?') if header => {
            cursor.declaration()?;
            Unit::Declaration
        }
        Some(b'?') => return error("a processing instruction"),
        Some(b'!') => return error("a DTD or a comment"),
        Some(b'/') if !header => {
            cursor.at += 1;
            let name = cursor.name()?;
            cursor.skip_whitespace();
            if !cursor.eat(b">") {
                return error(format!("a malformed end tag </{}", lossy(name)));
            }
            let bindings = Bindings::new(scope);
            let (prefix, local) = split_name(name)?;
            if (bindings.lookup(prefix)?, local) != (STREAMS_NS, "stream") {
                return error(format!(
                    "an end tag </{}> with no element open",
                    lossy(name)
                ));
            }
            Unit::Footer
        }
        Some(b'/') => return error("an end tag before the stream header"),
        _ if header => cursor.header()?,
        _ => match cursor.element(scope, budget) {
            Ok(element) => Unit::Element(element),
            Err(Stop::Invalid(error)) => return Err(error),
            Err(Stop::OverBudget) => {
                return Ok(Unit::Skipped {
                    head: parse_head(bytes, scope),
                    oversize: Oversize::Memory {
                        limit: MAX_STANZA_MEMORY,
                    },
                });
            }
        },
    };
    cursor.skip_whitespace();
    if !cursor.rest().is_empty() {
        return error("more than one unit where one was expected");
    }
    Ok(unit)
}

/// The start tag of the stanza at the start of `bytes` (whitespace may come
/// first), as an element without children: what is kept of a stanza that
/// is skipped, for its addresses and id. `None` when it cannot be read.
pub fn parse_head(bytes: &[u8], scope: &StreamScope) -> Option<Element> {
    let mut cursor = Cursor { bytes, at: 0 };
    cursor.skip_whitespace();
    if !cursor.eat(b"<") || matches!(cursor.peek(), Some(b'/' | b'!' | b'?')) {
        return None;
    }
    let mut bindings = Bindings::new(scope);
    let mut budget = Budget::new(MAX_STANZA_MEMORY);
    let start = cursor.start_tag(&mut bindings, &mut budget).ok()?;
    new_element(start, &bindings, &mut budget).ok()
}

/// One namespace binding in force.
struct Binding<'a> {
    /// The prefix bound, or `None` for the default namespace.
    prefix: Option<&'a str>,
    /// The namespace it stands for.
    namespace: Cow<'a, str>,
    /// Where the binding of the same prefix that this one hides is, so
    /// the index can go back to it when this one goes out of scope.
    hides: Option<usize>,
}

/// Namespace bindings in force: the stream's, then those of the open
/// elements, innermost last.
struct Bindings<'a> {
    /// The stream header's, in force for every stanza: read where they
    /// are rather than copied for each (a stanza usually declares none).
    stream: &'a [(Option<String>, String)],
    /// Those of the open elements of the unit being parsed.
    list: Vec<Binding<'a>>,
    /// Where the innermost binding of each prefix is in `list`, once there
    /// are more than [`SCANNED_BINDINGS`]: a stanza that declares
    /// thousands of prefixes and uses each must not cost a scan of all of
    /// them per use.
    index: Option<HashMap<Option<&'a str>, usize>>,
}

impl<'a> Bindings<'a> {
    fn new(scope: &'a StreamScope) -> Bindings<'a> {
        Bindings {
            stream: &scope.bindings,
            list: Vec::new(),
            index: None,
        }
    }

    /// Where the innermost binding of `prefix` made in the unit is.
    fn find(&self, prefix: Option<&str>) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&prefix).copied(),
            None => self
                .list
                .iter()
                .rposition(|binding| binding.prefix == prefix),
        }
    }

    fn push(&mut self, prefix: Option<&'a str>, namespace: Cow<'a, str>) {
        let hides = self.find(prefix);
        let at = self.list.len();
        self.list.push(Binding {
            prefix,
            namespace,
            hides,
        });
        match &mut self.index {
            Some(index) => {
                index.insert(prefix, at);
            }
            None if self.list.len() > SCANNED_BINDINGS => {
                let mut index = HashMap::with_capacity(self.list.len() * 2);
                for (at, binding) in self.list.iter().enumerate() {
                    index.insert(binding.prefix, at);
                }
                self.index = Some(index);
            }
            None => {}
        }
    }

    /// Drops the bindings after the first `len`: an element ended.
    fn truncate(&mut self, len: usize) {
        while self.list.len() > len {
            let Some(binding) = self.list.pop() else {
                return;
            };
            if let Some(index) = &mut self.index {
                match binding.hides {
                    Some(hidden) => index.insert(binding.prefix, hidden),
                    None => index.remove(&binding.prefix),
                };
            }
        }
    }

    /// The namespace `prefix` (or, without one, the default) stands for.
    fn lookup(&self, prefix: Option<&str>) -> Result<&str, XmlError> {
        if prefix == Some("xml") {
            return Ok(XML_NS);
        }
        if let Some(at) = self.find(prefix) {
            return Ok(&self.list[at].namespace);
        }
        // The header's prefixes are unique (a prefix declared twice in one
        // tag is refused), and at most MAX_HEADER_BINDINGS.
        let stream = self.stream.iter().find(|(p, _)| p.as_deref() == prefix);
        match stream {
            Some((_, namespace)) => Ok(namespace),
            None if prefix.is_none() => Ok(""),
            None => error(format!(
                "the undeclared prefix {:?}",
                prefix.unwrap_or_default()
            )),
        }
    }

    fn into_scope(self) -> StreamScope {
        let mut bindings = self.stream.to_vec();
        bindings.extend(self.list.into_iter().map(|binding| {
            (
                binding.prefix.map(str::to_owned),
                binding.namespace.into_owned(),
            )
        }));
        StreamScope { bindings }
    }
}

/// A start tag as read: names resolved, attributes decoded, bindings made.
struct StartTag<'b> {
    raw_name: &'b [u8],
    namespace: String,
    local: &'b str,
    /// `(prefix, local name, value)`, without the namespace declarations.
    attributes: Vec<(Option<&'b str>, &'b str, Cow<'b, str>)>,
    /// `<name/>`: no content and no end tag.
    empty: bool,
    /// How many bindings were in force before this tag made its own.
    outer_bindings: usize,
}

struct Cursor<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Cursor<'b> {
    fn rest(&self) -> &'b [u8] {
        &self.bytes[self.at..]
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, expected: &[u8]) -> bool {
        let found = self.rest().starts_with(expected);
        if found {
            self.at += expected.len();
        }
        found
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_whitespace) {
            self.at += 1;
        }
    }

    /// A name, up to whitespace, `/`, `>` or `=` (checked when split).
    fn name(&mut self) -> Result<&'b [u8], XmlError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|b| !is_whitespace(b) && !matches!(b, b'/' | b'>' | b'=' | b'<' | b'?'))
        {
            self.at += 1;
        }
        if self.at == start {
            return error("a tag without a name");
        }
        Ok(&self.bytes[start..self.at])
    }

    /// The XML declaration after its `<`: version 1.x, UTF-8 if an
    /// encoding is named (XMPP streams are UTF-8), and `standalone`.
    fn declaration(&mut self) -> Result<(), XmlError> {
        if !(self.eat(b"?xml") && self.peek().is_some_and(is_whitespace)) {
            return error("a processing instruction");
        }
        let mut seen = Vec::new();
        loop {
            let spaced = self.peek().is_some_and(is_whitespace);
            self.skip_whitespace();
            if self.eat(b"?>") {
                break;
            }
            if !spaced {
                return error("a malformed XML declaration");
            }
            let name = self.name()?;
            self.skip_whitespace();
            if !self.eat(b"=") {
                return error("a malformed XML declaration");
            }
            self.skip_whitespace();
            let value = self.attribute_value()?;
            // The pseudo-attributes come in this order, each at most once,
            // and version first.
            let order = match name {
                b"version" => 0,
                b"encoding" => 1,
                b"standalone" => 2,
                _ => return error(format!("the XML declaration's {}", lossy(name))),
            };
            if seen.last().is_some_and(|&last| last >= order) || (seen.is_empty() && order != 0) {
                return error("a malformed XML declaration");
            }
            seen.push(order);
            let valid = match order {
                0 => value.strip_prefix("1.").is_some_and(|minor| {
                    !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
                }),
                1 => value.eq_ignore_ascii_case("UTF-8"),
                _ => matches!(value.as_ref(), "yes" | "no"),
            };
            if !valid {
                return error(format!(
                    "an XML declaration with {}={:?}",
                    lossy(name),
                    shortened(&value)
                ));
            }
        }
        if seen.is_empty() {
            return error("an XML declaration without a version");
        }
        Ok(())
    }

    /// The stream header after its `<`: its attributes checked as any
    /// element's would be (declared prefixes, each name once).
    fn header(&mut self) -> Result<Unit, XmlError> {
        let mut bindings = Bindings::new(&NO_SCOPE);
        let mut budget = Budget::new(usize::MAX);
        let start = match self.start_tag(&mut bindings, &mut budget) {
            Ok(start) => start,
            Err(Stop::Invalid(error)) => return Err(error),
            Err(Stop::OverBudget) => return error("a stream header too large"),
        };
        if start.empty {
            return error("an empty stream element");
        }
        if (start.namespace.as_str(), start.local) != (STREAMS_NS, "stream") {
            return error(format!(
                "<{}> in place of the stream header",
                lossy(start.raw_name)
            ));
        }
        if bindings.list.len() > MAX_HEADER_BINDINGS {
            return error(format!(
                "a stream header with more than {MAX_HEADER_BINDINGS} namespace declarations"
            ));
        }
        let mut names = BTreeSet::new();
        for (prefix, local, _) in &start.attributes {
            let namespace = match prefix {
                None => "",
                Some(prefix) => bindings.lookup(Some(prefix))?,
            };
            if !names.insert((namespace, *local)) {
                return error(format!("the attribute {local} twice"));
            }
        }
        let id = start
            .attributes
            .iter()
            .find(|(prefix, name, _)| prefix.is_none() && *name == "id")
            .map(|(_, _, value)| value.clone().into_owned());
        Ok(Unit::Header {
            id,
            scope: bindings.into_scope(),
        })
    }

    /// A start tag after its `<`; its namespace declarations go into
    /// `bindings`, and its element's own namespace copy is charged to
    /// `budget` before it is made.
    fn start_tag(
        &mut self,
        bindings: &mut Bindings<'b>,
        budget: &mut Budget,
    ) -> Result<StartTag<'b>, Stop> {
        let raw_name = self.name()?;
        let outer_bindings = bindings.list.len();
        let mut attributes = Vec::new();
        let empty = loop {
            let spaced = self.peek().is_some_and(is_whitespace);
            self.skip_whitespace();
            match self.peek() {
                Some(b'>') => {
                    self.at += 1;
                    break false;
                }
                Some(b'/') => {
                    self.at += 1;
                    if !self.eat(b">") {
                        return Err(malformed_start_tag(raw_name));
                    }
                    break true;
                }
                Some(_) if spaced => {
                    let name = self.name()?;
                    self.skip_whitespace();
                    if !self.eat(b"=") {
                        return Err(XmlError(format!(
                            "the attribute {} without a value",
                            lossy(name)
                        ))
                        .into());
                    }
                    self.skip_whitespace();
                    let value = self.attribute_value()?;
                    let (prefix, local) = split_name(name)?;
                    match (prefix, local) {
                        (None, "xmlns") => bind(bindings, outer_bindings, None, value)?,
                        (Some("xmlns"), prefix) => {
                            bind(bindings, outer_bindings, Some(prefix), value)?;
                        }
                        _ => attributes.push((prefix, local, value)),
                    }
                }
                _ => return Err(malformed_start_tag(raw_name)),
            }
        };
        let (prefix, local) = split_name(raw_name)?;
        let namespace = bindings.lookup(prefix)?;
        budget.charge(ELEMENT_COST + 2 * local.len() + namespace.len())?;
        Ok(StartTag {
            raw_name,
            namespace: namespace.to_owned(),
            local,
            attributes,
            empty,
            outer_bindings,
        })
    }

    /// A quoted attribute value, decoded and normalised (XML 1.0 §3.3.3:
    /// literal tabs and line ends become spaces).
    fn attribute_value(&mut self) -> Result<Cow<'b, str>, XmlError> {
        let quote = match self.peek() {
            Some(quote @ (b'\'' | b'"')) => quote,
            _ => return error("an attribute value without quotes"),
        };
        self.at += 1;
        let Some(length) = memchr::memchr(quote, self.rest()) else {
            return error("an attribute value without its closing quote");
        };
        let raw = &self.rest()[..length];
        self.at += length + 1;
        if memchr::memchr(b'<', raw).is_some() {
            return error("< in an attribute value");
        }
        decode(raw, true)
    }

    /// A whole element after its `<`, its descendants included, each copy
    /// charged to `budget`.
    fn element(&mut self, scope: &'b StreamScope, budget: &mut Budget) -> Result<Element, Stop> {
        let mut bindings = Bindings::new(scope);
        // The open elements: the element, its raw name, the bindings in
        // force before it.
        let mut open: Vec<OpenElement<'b>> = Vec::new();
        // How deep the open elements have been: the list's memory follows
        // its longest, so each new level is charged once.
        let mut deepest = 0;
        let mut text = String::new();
        loop {
            // After a `<`: a start tag.
            let start = self.start_tag(&mut bindings, budget)?;
            let raw_name = start.raw_name;
            let empty = start.empty;
            let before = start.outer_bindings;
            let element = new_element(start, &bindings, budget)?;
            if empty {
                bindings.truncate(before);
                match open.last_mut() {
                    Some((parent, _, _)) => parent.append_child(element),
                    None => return Ok(element),
                };
            } else {
                if open.len() == deepest {
                    budget.charge(OPEN_COST)?;
                    deepest += 1;
                }
                open.push((element, raw_name, before));
            }
            // Content, up to the next start tag or the end of an element.
            loop {
                let Some(lt) = memchr::memchr(b'<', self.rest()) else {
                    return Err(XmlError("an element without its end".into()).into());
                };
                let raw = &self.rest()[..lt];
                if !raw.is_empty() {
                    // Servers write `>` in text as `&gt;`: look for the
                    // whole `]]>` only where a `>` is.
                    if memchr::memchr(b'>', raw).is_some()
                        && memchr::memmem::find(raw, b"]]>").is_some()
                    {
                        return Err(XmlError("]]> in text".into()).into());
                    }
                    let decoded = decode(raw, false)?;
                    charge_text(budget, &text, &decoded)?;
                    text.push_str(&decoded);
                }
                self.at += lt + 1;
                match self.peek() {
                    Some(b'/') => {
                        self.at += 1;
                        let name = self.name()?;
                        self.skip_whitespace();
                        if !self.eat(b">") {
                            return Err(
                                XmlError(format!("a malformed end tag </{}", lossy(name))).into()
                            );
                        }
                        let Some((mut element, raw_name, before)) = open.pop() else {
                            return Err(XmlError(format!(
                                "an end tag </{}> with no element open",
                                lossy(name)
                            ))
                            .into());
                        };
                        if name != raw_name {
                            return Err(XmlError(format!(
                                "<{}> ended by </{}>",
                                lossy(raw_name),
                                lossy(name)
                            ))
                            .into());
                        }
                        flush_text(&mut element, &mut text);
                        bindings.truncate(before);
                        match open.last_mut() {
                            Some((parent, _, _)) => {
                                parent.append_child(element);
                            }
                            None => return Ok(element),
                        }
                    }
                    Some(b'!') => {
                        if !self.eat(b"![CDATA[") {
                            return Err(XmlError("a DTD or a comment".into()).into());
                        }
                        let Some(end) = memchr::memmem::find(self.rest(), b"]]>") else {
                            return Err(XmlError("a CDATA section without its end".into()).into());
                        };
                        let raw = &self.rest()[..end];
                        self.at += end + 3;
                        let cdata = checked_text(raw)?;
                        // Line ends are normalised here too (§2.11).
                        let cdata = cdata.replace("\r\n", "\n").replace('\r', "\n");
                        charge_text(budget, &text, &cdata)?;
                        text.push_str(&cdata);
                    }
                    Some(b'?') => return Err(XmlError("a processing instruction".into()).into()),
                    _ => {
                        if let Some((parent, _, _)) = open.last_mut() {
                            flush_text(parent, &mut text);
                        }
                        break;
                    }
                }
            }
        }
    }
}

fn malformed_start_tag(raw_name: &[u8]) -> Stop {
    XmlError(format!("a malformed start tag <{}", lossy(raw_name))).into()
}

/// Charges `piece`, about to join `text`, at its escaped length (what
/// writing it back out costs), and a text node's own cost with the first
/// piece of a node.
fn charge_text(budget: &mut Budget, text: &str, piece: &str) -> Result<(), Stop> {
    let node = if text.is_empty() { TEXT_COST } else { 0 };
    budget.charge(node + escaped_len(piece, false))
}

/// The element a start tag makes, its attributes charged to `budget`.
fn new_element(
    start: StartTag<'_>,
    bindings: &Bindings<'_>,
    budget: &mut Budget,
) -> Result<Element, Stop> {
    let mut element = Element::builder(start.local, start.namespace).build();
    for (prefix, local, value) in start.attributes {
        let namespace = match prefix {
            None => Namespace::NONE,
            Some("xml") => Namespace::XML,
            Some(prefix) => {
                let namespace = bindings.lookup(Some(prefix))?;
                budget.charge(namespace.len())?;
                Namespace::from(namespace.to_owned())
            }
        };
        budget.charge(ATTRIBUTE_COST + local.len() + escaped_len(&value, true))?;
        let name = attribute_name(local)?;
        if element
            .attrs_mut()
            .insert(namespace, name, value.into_owned())
            .is_some()
        {
            return Err(XmlError(format!("the attribute {local} twice")).into());
        }
    }
    Ok(element)
}

/// Binds `prefix` (the default namespace without one) to `value`, for the
/// element whose own bindings start at `own`.
fn bind<'b>(
    bindings: &mut Bindings<'b>,
    own: usize,
    prefix: Option<&'b str>,
    value: Cow<'b, str>,
) -> Result<(), XmlError> {
    match prefix {
        Some("xml") if value != XML_NS => {
            return error("the prefix xml bound to another namespace");
        }
        Some("xmlns") => return error("the prefix xmlns declared"),
        Some(prefix) if value.is_empty() => {
            return error(format!("the prefix {prefix} bound to no namespace"));
        }
        Some(prefix) => check_ncname(prefix)?,
        None => {}
    }
    if value == XMLNS_NS || (value == XML_NS && prefix != Some("xml")) {
        return error(format!("a binding to {value}"));
    }
    if bindings.find(prefix).is_some_and(|at| at >= own) {
        return error(match prefix {
            Some(prefix) => format!("the prefix {prefix} declared twice"),
            None => "the default namespace declared twice".to_owned(),
        });
    }
    bindings.push(prefix, value);
    Ok(())
}

/// Moves `text`, if any, into `element` as a text node.
fn flush_text(element: &mut Element, text: &mut String) {
    if !text.is_empty() {
        element.append_text_node(std::mem::take(text));
    }
}

/// A name split at its colon, each part checked to be an XML name.
fn split_name(raw: &[u8]) -> Result<(Option<&str>, &str), XmlError> {
    let Ok(name) = std::str::from_utf8(raw) else {
        return error("a name that is not UTF-8");
    };
    match name.split_once(':') {
        Some((prefix, local)) => {
            check_ncname(prefix)?;
            check_ncname(local)?;
            Ok((Some(prefix), local))
        }
        None => {
            check_ncname(name)?;
            Ok((None, name))
        }
    }
}

/// Checks `name` is an XML name without a colon: most are plain ASCII and
/// checked here at once, the rest by rxml's full rules.
fn check_ncname(name: &str) -> Result<(), XmlError> {
    let bytes = name.as_bytes();
    let plain = bytes
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if plain {
        Ok(())
    } else {
        ncname(name).map(drop)
    }
}

/// An attribute's (checked) local name as the attribute map keys it; the
/// names nearly every stanza carries are made once.
fn attribute_name(local: &str) -> Result<NcName, XmlError> {
    match common_name(local) {
        Some(name) => Ok(name),
        None => ncname(local),
    }
}

fn ncname(name: &str) -> Result<NcName, XmlError> {
    NcName::try_from(name).map_err(|_| XmlError(format!("the invalid name {name:?}")))
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
}

/// Text or an attribute value with its references replaced, line ends
/// normalised (§2.11) and, in attribute values, whitespace too (§3.3.3).
fn decode(raw: &[u8], attribute: bool) -> Result<Cow<'_, str>, XmlError> {
    let text = checked_text(raw)?;
    let plain = if attribute {
        memchr::memchr3(b'&', b'\r', b'\n', raw).is_none() && memchr::memchr(b'\t', raw).is_none()
    } else {
        memchr::memchr2(b'&', b'\r', raw).is_none()
    };
    if plain {
        return Ok(text);
    }
    let special: &[u8] = if attribute { b"&\r\n\t" } else { b"&\r" };
    let mut decoded = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(at) = rest.find(|c: char| c.is_ascii() && special.contains(&(c as u8))) {
        decoded.push_str(&rest[..at]);
        let tail = &rest[at..];
        match tail.as_bytes()[0] {
            b'&' => {
                let Some(end) = tail.find(';') else {
                    return error("an & that starts no reference");
                };
                decoded.push(reference(&tail[1..end])?);
                rest = &tail[end + 1..];
            }
            b'\r' => {
                decoded.push(if attribute { ' ' } else { '\n' });
                // CR LF is one line end.
                rest = tail[1..].strip_prefix('\n').unwrap_or(&tail[1..]);
            }
            _ => {
                decoded.push(' ');
                rest = &tail[1..];
            }
        }
    }
    decoded.push_str(rest);
    Ok(Cow::Owned(decoded))
}

/// The character a reference (`amp`, `#38`, `#x26`) stands for.
fn reference(name: &str) -> Result<char, XmlError> {
    let code = match name {
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "amp" => return Ok('&'),
        "apos" => return Ok('\''),
        "quot" => return Ok('"'),
        // Digits only: Rust's own parsing would take a sign (`&#+65;`).
        _ => match name.strip_prefix("#x") {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16).ok()
            }
            Some(_) => None,
            None => name
                .strip_prefix('#')
                .filter(|dec| !dec.is_empty() && dec.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|dec| dec.parse::<u32>().ok()),
        },
    };
    let Some(code) = code else {
        return error(format!("the entity &{};", shortened(name)));
    };
    match char::from_u32(code).filter(|&c| is_xml_char(c)) {
        Some(c) => Ok(c),
        None => error(format!(
            "a reference to a character XML forbids (&{};)",
            shortened(name)
        )),
    }
}

/// At most the first 32 bytes of `text`, cut where a character ends: for
/// messages about what the server sent.
fn shortened(text: &str) -> &str {
    let mut end = text.len().min(32);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `raw` as text: UTF-8 of characters XML allows.
fn checked_text(raw: &[u8]) -> Result<Cow<'_, str>, XmlError> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return error("text that is not UTF-8");
    };
    // Below U+0020 only tab and the line ends; U+FFFE and U+FFFF never
    // (EF BF BE/BF in UTF-8). Surrogates are not valid UTF-8 at all. Most
    // text has no byte that needs the closer look.
    if !raw.iter().any(|&b| b < 0x20 || b == 0xEF) {
        return Ok(Cow::Borrowed(text));
    }
    let forbidden = text.bytes().enumerate().any(|(at, b)| {
        (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || (b == 0xEF && matches!(raw.get(at + 1..at + 3), Some([0xBF, 0xBE | 0xBF])))
    });
    if forbidden {
        return error("a character XML forbids");
    }
    Ok(Cow::Borrowed(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::canonical;
    use proptest::prelude::*;

    const HEADER: &str = "<stream:stream xmlns='jabber:component:accept' \
                          xmlns:stream='http://etherx.jabber.org/streams' id='s1' \
                          from='bot.example.com'>";

    /// The bindings of [`HEADER`], as the stream reads them.
    fn stream_scope() -> StreamScope {
        match parse_unit(HEADER.as_bytes(), true, &NO_SCOPE) {
            Ok(Unit::Header { id, scope }) => {
                assert_eq!(id.as_deref(), Some("s1"));
                scope
            }
            other => panic!("not a header: {other:?}"),
        }
    }

    fn ours(stanza: &[u8]) -> Result<Element, XmlError> {
        match parse_unit(stanza, false, &stream_scope())? {
            Unit::Element(element) => Ok(element),
            other => panic!("not an element: {other:?}"),
        }
    }

    /// What minidom's own parser (rxml) makes of `stanza` in the stream.
    fn reference(stanza: &str) -> Element {
        let document: Element = format!("{HEADER}{stanza}</stream:stream>")
            .parse()
            .expect("rxml reads it");
        document.children().next().cloned().expect("one stanza")
    }

    /// Parsed by both: the same tree.
    fn assert_same_as_rxml(stanza: &str) {
        let ours = ours(stanza.as_bytes()).unwrap_or_else(|e| panic!("{stanza}: {e}"));
        assert_eq!(canonical(&ours), canonical(&reference(stanza)), "{stanza}");
    }

    #[test]
    fn stanzas_read_as_rxml_reads_them() {
        let cases = [
            "<message from='alice@example.com/x' to='echo@bot.example.com' type='chat' id='m1'>\
             <body>Hello, world</body></message>",
            "<iq type='get' id='p1' to=\"bot.example.com\"><ping xmlns='urn:xmpp:ping'/></iq>",
            "<presence/>",
            "<message><body>1 &lt; 2 &amp;&amp; 3 &gt; 2, &apos;q&apos; &quot;d&quot; &#65;&#x42;&#x1F600;</body></message>",
            "<message a=\"it's &amp; 'quoted'\" b='&lt;&#10;&#9;x' c='a > b'/>",
            "<message a='line\r\nbreak\ttab\nnew'><body>cr\r\nlf\rlone</body></message>",
            "<message xml:lang='de'><body xml:lang='en'>hi</body></message>",
            "<message><x xmlns='urn:x'><y a='1'/><z xmlns=''/></x><body>after</body></message>",
            "<message xmlns:p='urn:p'><p:x p:a='1' a='2'><p:y/></p:x></message>",
            "<message><p:x xmlns:p='urn:p'><p:y xmlns:p='urn:q'/></p:x></message>",
            "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
            "<message><body><![CDATA[<b>not markup</b> & ]]> after</body></message>",
            "<message>\n  <body>spaced</body>\n  <thread>t</thread>\n</message>",
            "<message><body>ünïcødé – 中文 – 😀</body></message>",
            "<message ><body >x</body ></message >",
            "<message\n\tto='a@b'\n/>",
        ];
        for stanza in cases {
            assert_same_as_rxml(stanza);
        }
    }

    /// XML reads a carriage return in an attribute value as a space
    /// (§2.11 makes it a line end, §3.3.3 a space). rxml refuses one not
    /// followed by a line feed, and drops one just before the closing
    /// quote; the first would have cost the link a stanza Prosody can send
    /// (it writes a decoded `&#13;` back raw).
    #[test]
    fn a_lone_carriage_return_in_an_attribute_is_a_space() {
        let element = ours(b"<message a='x\ry' b='x\r\ny' c='x\r'/>").expect("valid XML");
        assert_eq!(element.attr("a"), Some("x y"));
        assert_eq!(element.attr("b"), Some("x y"));
        assert_eq!(element.attr("c"), Some("x "));
    }

    #[test]
    fn what_is_refused_in_the_header_and_the_declaration() {
        let header = |attributes: &str| {
            format!(
                "<stream:stream xmlns='jabber:component:accept' \
                 xmlns:stream='http://etherx.jabber.org/streams' {attributes}>"
            )
        };
        let cases = [
            (header("id='a' id='b'"), "the attribute id twice"),
            (header("q:id='a'"), "the undeclared prefix \"q\""),
            (
                header("xmlns:s='http://etherx.jabber.org/streams' stream:a='1' s:a='2'"),
                "the attribute a twice",
            ),
            (
                format!("<stream:stream xmlns:stream='{STREAMS_NS}' xmlns:stream='{STREAMS_NS}'>"),
                "the prefix stream declared twice",
            ),
            (
                header(
                    &(0..40)
                        .map(|n| format!("xmlns:p{n}='urn:p'"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                "a stream header with more than 32 namespace declarations",
            ),
            (
                "<?xml version='2.0'?>".into(),
                "an XML declaration with version=\"2.0\"",
            ),
            (
                "<?xml version='1.'?>".into(),
                "an XML declaration with version=\"1.\"",
            ),
            (
                "<?xml version='1.0' encoding='ISO-8859-1'?>".into(),
                "an XML declaration with encoding=\"ISO-8859-1\"",
            ),
            (
                "<?xml version='1.0' standalone='maybe'?>".into(),
                "an XML declaration with standalone=\"maybe\"",
            ),
            (
                "<?xml encoding='UTF-8' version='1.0'?>".into(),
                "a malformed XML declaration",
            ),
            (
                "<?xml version='1.0' version='1.0'?>".into(),
                "a malformed XML declaration",
            ),
            (
                "<?xml version='1.0'encoding='UTF-8'?>".into(),
                "a malformed XML declaration",
            ),
            ("<?xml?>".into(), "a processing instruction"),
            ("<?xml ?>".into(), "an XML declaration without a version"),
            (
                "<?xml version='1.0' x='y'?>".into(),
                "the XML declaration's x",
            ),
        ];
        for (unit, message) in cases {
            assert_eq!(
                parse_unit(unit.as_bytes(), true, &NO_SCOPE),
                Err(XmlError(message.to_owned())),
                "{unit}"
            );
        }
        for declaration in [
            "<?xml version='1.0'?>",
            "<?xml version=\"1.1\" encoding=\"utf-8\" standalone=\"yes\" ?>",
            "<?xml version='1.0' encoding='UTF-8'?>",
        ] {
            assert_eq!(
                parse_unit(declaration.as_bytes(), true, &NO_SCOPE),
                Ok(Unit::Declaration),
                "{declaration}"
            );
        }
    }

    /// A start tag with a long namespace, inherited by many empty children:
    /// Prosody writes a child without `xmlns` when it shares its parent's.
    fn amplified(namespace_bytes: usize, children: usize) -> String {
        format!(
            "<message from='alice@example.com/x' to='echo@bot.example.com' id='big' type='chat'>\
             <x xmlns='urn:{}'>{}</x></message>",
            "n".repeat(namespace_bytes),
            "<a/>".repeat(children)
        )
    }

    #[test]
    fn a_stanza_over_the_memory_budget_is_skipped_with_its_head() {
        let stanza = amplified(100 * 1024, 16_000);
        match parse_unit(stanza.as_bytes(), false, &stream_scope()) {
            Ok(Unit::Skipped {
                head: Some(head),
                oversize,
            }) => {
                assert_eq!(
                    oversize,
                    Oversize::Memory {
                        limit: MAX_STANZA_MEMORY
                    }
                );
                assert!(head.is("message", "jabber:component:accept"));
                assert_eq!(head.attr("id"), Some("big"));
                assert_eq!(head.attr("from"), Some("alice@example.com/x"));
                assert_eq!(head.nodes().count(), 0, "the start tag alone");
            }
            other => panic!("not skipped: {other:?}"),
        }
        // Well under the budget, the same shape is read whole.
        let small = amplified(100, 1000);
        assert!(matches!(
            parse_unit(small.as_bytes(), false, &stream_scope()),
            Ok(Unit::Element(_))
        ));
        // What is read before the budget runs out must be well-formed; what
        // comes after is skipped unread, as a stanza past a read limit is.
        let broken = amplified(100 * 1024, 16_000).replace("<x ", "<y></z><x ");
        assert_eq!(
            parse_unit(broken.as_bytes(), false, &stream_scope()),
            Err(XmlError("<y> ended by </z>".into()))
        );
    }

    /// The worst stanzas of at most 1 MiB for each dimension of the cost
    /// of a tree, by name, and whether the budget lets them be read.
    fn worst_stanzas() -> Vec<(&'static str, bool, String)> {
        let head =
            "<message from='alice@example.com/x' to='echo@bot.example.com' id='w' type='chat'>";
        let long_ns = "n".repeat(60 * 1024);
        vec![
            (
                "long namespace × many elements",
                false,
                amplified(100 * 1024, 16_000),
            ),
            // As many elements as the read limit allows.
            ("short namespace × many elements", true, amplified(20, 8180)),
            (
                "long namespace × a few elements",
                true,
                amplified(60 * 1024, 12),
            ),
            (
                "many prefixes",
                true,
                format!(
                    "<message{}>{}</message>",
                    (0..4000)
                        .map(|n| format!(" xmlns:p{n}='urn:{n}'"))
                        .collect::<String>(),
                    (0..4000).map(|n| format!("<p{n}:a/>")).collect::<String>(),
                ),
            ),
            (
                "one long prefix × many attributes",
                false,
                format!(
                    "{head}<x xmlns:p='urn:{long_ns}'>{}</x></message>",
                    (0..5000)
                        .map(|n| format!("<a p:v='{n}'/>"))
                        .collect::<String>()
                ),
            ),
            (
                "many attributes",
                true,
                format!(
                    "<message{}>{}</message>",
                    (0..8180).map(|n| format!(" a{n}=''")).collect::<String>(),
                    ""
                ),
            ),
            (
                "deep nesting × long namespaces",
                true,
                format!(
                    "{head}{}{}</message>",
                    (0..126)
                        .map(|n| format!("<d xmlns='urn:{n}:{}'>", "n".repeat(8000)))
                        .collect::<String>(),
                    "</d>".repeat(126)
                ),
            ),
            (
                "long entity runs",
                true,
                format!("{head}<body>{}</body></message>", "&amp;".repeat(200_000)),
            ),
            (
                "many character references",
                true,
                format!(
                    "{head}<body>{}</body></message>",
                    "&#x1F600;".repeat(110_000)
                ),
            ),
            (
                "markup characters in CDATA",
                false,
                format!(
                    "{head}<body><![CDATA[{}]]></body></message>",
                    "&".repeat(1_000_000)
                ),
            ),
            (
                "a long body",
                true,
                format!("{head}<body>{}</body></message>", "b".repeat(1_000_000)),
            ),
        ]
    }

    /// What the budget counts is what parsing really allocates: no stanza
    /// of at most 1 MiB makes the parser hold more than the budget and a
    /// small margin, read or skipped.
    #[test]
    fn no_stanza_costs_the_parser_more_than_the_budget() {
        let scope = stream_scope();
        for (name, read, stanza) in worst_stanzas() {
            assert!(stanza.len() <= 1 << 20, "{name}: {} bytes", stanza.len());
            let (unit, peak) =
                crate::counted_alloc::peak_of(|| parse_unit(stanza.as_bytes(), false, &scope));
            let outcome = match &unit {
                Ok(Unit::Element(_)) => "read",
                Ok(Unit::Skipped { .. }) => "skipped",
                other => panic!("{name}: {other:?}"),
            };
            eprintln!(
                "{name}: {} bytes, {outcome}, peak {peak} bytes",
                stanza.len()
            );
            assert_eq!(outcome == "read", read, "{name}");
            assert!(
                peak <= MAX_STANZA_MEMORY + 64 * 1024,
                "{name}: {peak} bytes"
            );
        }
    }

    /// Found by the stream fuzz target: elements nested to the depth
    /// limit cost the parser its list of open elements, which the budget
    /// did not count (a 601-byte stanza peaked at 61 KB with 33 KB
    /// charged).
    #[test]
    fn the_open_elements_of_a_deep_stanza_are_charged() {
        let depth = crate::MAX_STANZA_DEPTH - 1;
        let stanza = format!("<iq>{}{}</iq>", "<a>".repeat(depth), "</a>".repeat(depth));
        let scope = stream_scope();
        let ((unit, charged), peak) =
            crate::counted_alloc::peak_of(|| parse_unit_charged(stanza.as_bytes(), false, &scope));
        assert!(matches!(unit, Ok(Unit::Element(_))), "{unit:?}");
        assert!(
            peak <= charged + 4 * stanza.len() + 16 * 1024,
            "{} bytes peaked at {peak} bytes, {charged} charged",
            stanza.len()
        );
    }

    #[test]
    fn prefixes_are_looked_up_through_an_index_once_there_are_many() {
        let declarations: String = (0..2000)
            .map(|n| format!(" xmlns:p{n}='urn:p{n}'"))
            .collect();
        let uses: String = (0..2000)
            .rev()
            .map(|n| format!("<p{n}:x p{n}:a='{n}'/>"))
            .collect();
        let stanza = format!(
            "<message{declarations}><p7:y xmlns:p7='urn:seven'><p7:z/></p7:y>{uses}<p7:w/></message>"
        );
        let element = ours(stanza.as_bytes()).expect("valid");
        let children: Vec<&Element> = element.children().collect();
        assert_eq!(children.len(), 2002);
        // The inner binding of p7 hides the outer one only inside its element.
        assert!(children[0].is("y", "urn:seven"));
        assert!(children[0].has_child("z", "urn:seven"));
        assert!(children[1].is("x", "urn:p1999"));
        assert_eq!(children[1].attr_ns("urn:p1999", "a"), Some("1999"));
        assert!(children[2001].is("w", "urn:p7"));
        assert_same_as_rxml(&stanza);
    }

    #[test]
    fn the_header_the_footer_and_the_declaration() {
        let declaration = parse_unit(b"<?xml version='1.0' encoding='UTF-8'?>", true, &NO_SCOPE);
        assert_eq!(declaration, Ok(Unit::Declaration));
        let scope = stream_scope();
        assert_eq!(
            parse_unit(b" </stream:stream>", false, &scope),
            Ok(Unit::Footer)
        );
        let unprefixed = StreamScope {
            bindings: vec![(None, STREAMS_NS.to_owned())],
        };
        assert_eq!(
            parse_unit(b"</stream>", false, &unprefixed),
            Ok(Unit::Footer)
        );
        assert_eq!(
            parse_unit(b"<stream:stream xmlns:stream='urn:other'>", true, &NO_SCOPE),
            Err(XmlError(
                "<stream:stream> in place of the stream header".into()
            ))
        );
    }

    #[test]
    fn invalid_xml_is_refused_with_what_is_wrong() {
        let long_entity = format!("<message><body>&{};</body></message>", "é".repeat(40));
        assert_eq!(
            ours(long_entity.as_bytes()),
            Err(XmlError(format!("the entity &{};", "é".repeat(16))))
        );
        let cases: [(&[u8], &str); 31] = [
            (
                b"<message><body>&#+65;</body></message>",
                "the entity &#+65;",
            ),
            (b"<message a='&#x-41;'/>", "the entity &#x-41;"),
            (b"<message><body>&#;</body></message>", "the entity &#;"),
            (
                b"<message xmlns:p='urn:a' xmlns:p='urn:b'/>",
                "the prefix p declared twice",
            ),
            (
                b"<message><x xmlns='urn:a' xmlns='urn:a'/></message>",
                "the default namespace declared twice",
            ),
            (b"<message><body>a ]]> b</body></message>", "]]> in text"),
            (b"<message><body>a ]]]]> b</body></message>", "]]> in text"),
            (
                b"<message><body>x</bdy></message>",
                "<body> ended by </bdy>",
            ),
            (
                b"<message></message></message>",
                "more than one unit where one was expected",
            ),
            (b"<q:message/>", "the undeclared prefix \"q\""),
            (b"<message a='1' a='2'/>", "the attribute a twice"),
            (
                b"<message xmlns:p='urn:p' xmlns:q='urn:p' p:a='1' q:a='2'/>",
                "the attribute a twice",
            ),
            (b"<message><body>&xxe;</body></message>", "the entity &xxe;"),
            (
                b"<message><body>&#0;</body></message>",
                "a reference to a character XML forbids (&#0;)",
            ),
            (
                b"<message><body>&#xD800;</body></message>",
                "a reference to a character XML forbids (&#xD800;)",
            ),
            (
                b"<message><body>&#xFFFE;</body></message>",
                "a reference to a character XML forbids (&#xFFFE;)",
            ),
            (
                b"<message><body>a & b</body></message>",
                "an & that starts no reference",
            ),
            (
                b"<message><body>\xff\xfe</body></message>",
                "text that is not UTF-8",
            ),
            (
                b"<message><body>bell \x07</body></message>",
                "a character XML forbids",
            ),
            (
                b"<message><body>\xef\xbf\xbf</body></message>",
                "a character XML forbids",
            ),
            (b"<message a=1/>", "an attribute value without quotes"),
            (b"<message a='<'/>", "< in an attribute value"),
            (b"<message a/>", "the attribute a without a value"),
            (b"<message a='1'b='2'/>", "a malformed start tag <message"),
            (b"<message><!-- c --></message>", "a DTD or a comment"),
            (b"<message><?pi?></message>", "a processing instruction"),
            (b"<1message/>", "the invalid name \"1message\""),
            (
                b"<message xmlns:p=''/>",
                "the prefix p bound to no namespace",
            ),
            (
                b"<message xmlns:xml='urn:x'/>",
                "the prefix xml bound to another namespace",
            ),
            (b"text<message/>", "text where only elements may be"),
            (b"<message><body>never ends", "an element without its end"),
        ];
        for (bytes, message) in cases {
            let error = ours(bytes).expect_err(message);
            assert_eq!(
                error,
                XmlError(message.to_owned()),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(
            XmlError("a DTD or a comment".into()).to_string(),
            "invalid XML from the server: a DTD or a comment"
        );
    }

    /// Text and attribute values of every kind: markup characters, quotes,
    /// whitespace, line ends, characters from every UTF-8 length.
    fn any_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just('<'),
                Just('>'),
                Just('&'),
                Just('\''),
                Just('"'),
                Just('\t'),
                Just('\n'),
                Just('\r'),
                Just(' '),
                Just(']'),
                proptest::char::range('a', 'z'),
                proptest::char::range('\u{A0}', '\u{7FF}'),
                proptest::char::range('\u{800}', '\u{D7FF}'),
                proptest::char::range('\u{E000}', '\u{FFFD}'),
                proptest::char::range('\u{10000}', '\u{10FFFF}'),
            ],
            0..24,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    /// Elements a few levels deep, in a few namespaces, with attributes in
    /// none or another, and text between the children.
    fn any_element() -> impl Strategy<Value = Element> {
        let name = prop_oneof![Just("a"), Just("body"), Just("x-y.z"), Just("é")];
        let namespace = prop_oneof![Just("jabber:component:accept"), Just("urn:x"), Just("")];
        let leaf = (name.clone(), namespace.clone(), any_text(), any_text()).prop_map(
            |(name, namespace, value, text)| {
                let mut element = Element::builder(name, namespace).build();
                element
                    .attrs_mut()
                    .insert(Namespace::NONE, ncname("v").expect("name"), value);
                if !text.is_empty() {
                    element.append_text_node(text);
                }
                element
            },
        );
        leaf.prop_recursive(3, 24, 4, move |inner| {
            (
                name.clone(),
                namespace.clone(),
                any_text(),
                proptest::collection::vec((inner, any_text()), 0..4),
            )
                .prop_map(|(name, namespace, value, children)| {
                    let mut element = Element::builder(name, namespace).build();
                    element.attrs_mut().insert(
                        Namespace::from(XML_NS),
                        ncname("lang").expect("name"),
                        value,
                    );
                    for (child, text) in children {
                        element.append_child(child);
                        if !text.is_empty() {
                            element.append_text_node(text);
                        }
                    }
                    element
                })
        })
    }

    proptest! {
        // A fixed seed: CI runs the same cases every time, and a failure
        // replays without a regression file.
        #![proptest_config(ProptestConfig {
            cases: 500,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x786d_706c),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Any tree minidom writes reads back as the same tree, as rxml
        /// reads it.
        #[test]
        fn what_minidom_writes_reads_back_as_rxml_reads_it(element in any_element()) {
            let written = String::from(&element);
            assert_same_as_rxml(&written);
        }

        /// Any byte anywhere: no panic, and nothing rxml refuses is taken.
        #[test]
        fn changed_bytes_never_pass_where_rxml_refuses(
            at in 0usize..120,
            byte in any::<u8>(),
        ) {
            let stanza = "<message to='a@b' type='chat'><body>x &amp; y</body><x xmlns='urn:x' a=\"q\"/></message>";
            let mut bytes = stanza.as_bytes().to_vec();
            let at = at % bytes.len();
            bytes[at] = byte;
            // rxml mishandles a carriage return in an attribute value (see
            // `a_lone_carriage_return_in_an_attribute_is_a_space`): there it
            // is no reference.
            let compared = byte != b'\r';
            if let (Ok(ours), true) = (ours(&bytes), compared) {
                let text = String::from_utf8(bytes).expect("taken, so UTF-8");
                let document = format!("{HEADER}{text}</stream:stream>");
                let reference = match document.parse::<Element>() {
                    Ok(reference) => reference,
                    Err(e) => panic!("{text}: we take it, rxml refuses: {e}"),
                };
                let first = reference.children().next().map(canonical);
                prop_assert_eq!(Some(canonical(&ours)), first);
            }
        }
    }
}

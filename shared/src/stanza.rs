//! Stanzas as XML: parsing, namespaces, and stanza → request (DESIGN §1).

use crate::signals::signals_of;
use crate::{Request, StanzaKind};
use minidom::Element;
use minidom::rxml::{NcName, RawEvent, RawQName};
use minidom::tree_builder::TreeBuilder;

/// The namespace of stanzas as clients see them.
pub const CLIENT_NS: &str = "jabber:client";
/// The namespace of stanzas on a XEP-0114 component stream.
pub const COMPONENT_NS: &str = "jabber:component:accept";
/// The namespace of stanza error conditions (RFC 6120 §8.3).
pub const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Why a piece of XML is not a stanza we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStanza {
    /// Not well-formed XML.
    #[error("invalid XML: {0}")]
    Xml(String),
    /// The root element is not message, presence or iq.
    #[error("<{0}> is not a stanza (expected message, presence or iq)")]
    NotAStanza(String),
    /// The root element is in a namespace other than the stanza ones.
    #[error("stanza namespace {0:?} is not jabber:client or jabber:component:accept")]
    Namespace(String),
    /// An address the rules need is absent.
    #[error("stanza has no {0:?} attribute")]
    MissingAddress(&'static str),
}

/// An attribute name known at compile time.
pub fn name(static_name: &'static str) -> NcName {
    common_name(static_name).unwrap_or_else(|| {
        NcName::try_from(static_name).expect("attribute names in this crate are valid XML names")
    })
}

/// `name` as an attribute map keys it, if it is one of the attribute names
/// nearly every stanza carries: those are checked and made once, not for
/// every stanza read or written.
pub fn common_name(name: &str) -> Option<NcName> {
    static COMMON: std::sync::OnceLock<Vec<NcName>> = std::sync::OnceLock::new();
    let common = COMMON.get_or_init(|| {
        ["from", "to", "id", "type", "lang"]
            .into_iter()
            .filter_map(|name| NcName::try_from(name).ok())
            .collect()
    });
    common.iter().find(|known| known.as_str() == name).cloned()
}

/// Sets (or replaces) an attribute without a namespace.
pub(crate) fn set_attr(element: &mut Element, attr: &'static str, value: &str) {
    element.set_attr(minidom::rxml::Namespace::NONE, name(attr), value);
}

/// Whether XML 1.0 allows `c` in a document (its `Char` production; Rust's
/// `char` already excludes the surrogates). minidom's writer panics on any
/// other character, so text from JSON is checked with this before it goes
/// into an element.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// The namespaces a stanza's own elements may be in: none stands for the
/// stream's.
const STANZA_NAMESPACES: [&str; 3] = [CLIENT_NS, COMPONENT_NS, ""];

fn is_stanza_ns(ns: &str) -> bool {
    STANZA_NAMESPACES.contains(&ns)
}

/// [`is_stanza_ns`] for an element, without copying its namespace out.
fn is_stanza_element(element: &Element) -> bool {
    element.has_ns(minidom::NSChoice::AnyOf(&STANZA_NAMESPACES))
}

/// Moves a stanza into `namespace`: the root and every descendant reached
/// through elements in a stanza namespace (`jabber:client`,
/// `jabber:component:accept` or none). Payloads in other namespaces, and
/// anything inside them (such as a forwarded `jabber:client` message), are
/// left as they are.
pub fn with_namespace(element: &Element, namespace: &str) -> Element {
    let mut moved = Element::builder(element.name(), namespace).build();
    *moved.attrs_mut() = element.attrs().clone();
    for node in element.nodes() {
        match node {
            minidom::Node::Element(child) if is_stanza_element(child) => {
                moved.append_child(with_namespace(child, namespace));
            }
            other => moved.append_node(other.clone()),
        }
    }
    moved
}

/// The element as XML text.
pub fn element_to_string(element: &Element) -> String {
    let mut out = Vec::new();
    element
        .write_to(&mut out)
        .expect("writing to memory cannot fail");
    String::from_utf8(out).expect("minidom writes UTF-8")
}

/// A received stanza as XML text in `jabber:client`: what
/// `element_to_string(&with_namespace(stanza, CLIENT_NS))` gives, but
/// written straight from the tree instead of through a moved copy of it.
/// Every forwarded stanza's request carries this text, so it is on the path
/// of every message. A stanza the direct writer does not cover (a prefix
/// declared in it, an attribute in a namespace other than `xml`) takes the
/// long way.
pub fn client_stanza_text(stanza: &Element) -> String {
    let mut out = String::with_capacity(256);
    // No default namespace around the root: it declares its own, as the
    // bot reads the text without any context.
    if write_moved(stanza, true, "", &mut out).is_some() {
        return out;
    }
    element_to_string(&with_namespace(stanza, CLIENT_NS))
}

/// Appends `stanza` to `out` as XML text for a stream whose default
/// namespace is `stream_ns` (a component stream's `jabber:component:accept`):
/// what minidom's writer would write there, namespaces declared only where
/// they differ. `false`, with `out` as it was, for a stanza that needs what
/// only minidom's writer does (a declared prefix, an attribute in a
/// namespace other than `xml`, a character XML does not allow).
pub fn append_stanza_text(stanza: &Element, stream_ns: &str, out: &mut String) -> bool {
    let before = out.len();
    if write_moved(stanza, false, stream_ns, out).is_some() {
        return true;
    }
    out.truncate(before);
    false
}

/// Writes `element`, in `jabber:client` when `moved` (as [`with_namespace`]
/// moves the root and its stanza-namespace descendants), in its own
/// namespace otherwise; `default` is the default namespace in effect
/// around it. `None` when the element needs what only minidom's writer
/// does.
fn write_moved(element: &Element, moved: bool, default: &str, out: &mut String) -> Option<()> {
    if element
        .prefixes
        .declared_prefixes()
        .keys()
        .any(Option::is_some)
    {
        return None;
    }
    // Only a payload's own namespace is looked up (minidom copies it out).
    let own;
    let namespace = if moved {
        CLIENT_NS
    } else if element.has_ns(default) {
        default
    } else {
        own = element.ns();
        &own
    };
    out.push('<');
    out.push_str(element.name());
    if namespace != default {
        out.push_str(" xmlns='");
        escape_into(namespace, true, out)?;
        out.push('\'');
    }
    for ((attr_ns, attr), value) in element.attrs() {
        out.push(' ');
        if !attr_ns.is_none() {
            if attr_ns.as_str() != XML_NS {
                return None;
            }
            out.push_str("xml:");
        }
        out.push_str(attr.as_str());
        out.push_str("='");
        escape_into(value, true, out)?;
        out.push('\'');
    }
    let mut nodes = element.nodes().peekable();
    if nodes.peek().is_none() {
        out.push_str("/>");
        return Some(());
    }
    out.push('>');
    for node in nodes {
        match node {
            minidom::Node::Element(child) => {
                write_moved(child, moved && is_stanza_element(child), namespace, out)?;
            }
            minidom::Node::Text(text) => escape_into(text, false, out)?,
        }
    }
    out.push_str("</");
    out.push_str(element.name());
    out.push('>');
    Some(())
}

/// The namespace bound to the `xml` prefix.
const XML_NS: &str = minidom::rxml::XMLNS_XML;

/// Appends `text` escaped for an attribute value quoted with `'`; `false`
/// (and `out` perhaps cut short) for a character XML does not allow.
pub fn escape_attribute(text: &str, out: &mut String) -> bool {
    escape_into(text, true, out).is_some()
}

/// Appends `text` escaped as minidom's writer escapes it, in an attribute
/// value (quoted with `'`) or in content. `None` for a character XML does
/// not allow, which minidom's writer refuses.
fn escape_into(text: &str, attribute: bool, out: &mut String) -> Option<()> {
    let bytes = text.as_bytes();
    // Most text needs no look at all; this test runs over whole vectors of
    // bytes at once, where the table below goes byte by byte.
    let plain = !bytes.iter().fold(false, |found, &b| {
        found
            | (b < 0x20)
            | (b == b'<')
            | (b == b'>')
            | (b == b'&')
            | (attribute & ((b == b'\'') | (b == b'"')))
            | (b == 0xBE)
            | (b == 0xBF)
    });
    if plain {
        out.push_str(text);
        return Some(());
    }
    let mut rest = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        // Every byte that needs a look is ASCII or the last of U+FFFE and
        // U+FFFF; the rest of the text is copied as it is.
        if !NEEDS_A_LOOK[usize::from(byte)] {
            continue;
        }
        let escaped = match byte {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'\r' => "&#xd;",
            b'\'' if attribute => "&#39;",
            b'"' if attribute => "&#34;",
            b'\n' if attribute => "&#xa;",
            b'\t' if attribute => "&#x9;",
            b'\'' | b'"' | b'\n' | b'\t' => continue,
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF.
            0xBE | 0xBF if at >= 2 && bytes[at - 2] == 0xEF && bytes[at - 1] == 0xBF => {
                return None;
            }
            0xBE | 0xBF => continue,
            // The other C0 controls.
            _ => return None,
        };
        out.push_str(&text[rest..at]);
        out.push_str(escaped);
        rest = at + 1;
    }
    out.push_str(&text[rest..]);
    Some(())
}

/// How long `text` is once [`escape_into`] has escaped it (in an attribute
/// value or in content): what writing it will cost, known before anything
/// is written. A character XML does not allow counts as itself.
pub fn escaped_len(text: &str, attribute: bool) -> usize {
    let bytes = text.as_bytes();
    let plain = !bytes.iter().fold(false, |found, &b| {
        found
            | (b == b'<')
            | (b == b'>')
            | (b == b'&')
            | (b == b'\r')
            | (attribute & ((b == b'\'') | (b == b'"') | (b == b'\n') | (b == b'\t')))
    });
    if plain {
        return bytes.len();
    }
    let extra: usize = bytes
        .iter()
        .map(|&b| match b {
            b'<' | b'>' => 3,
            b'&' | b'\r' => 4,
            b'\'' | b'"' | b'\n' | b'\t' if attribute => 4,
            _ => 0,
        })
        .sum();
    bytes.len() + extra
}

/// The bytes [`escape_into`] looks at: markup characters, whitespace that
/// attributes escape, the C0 controls, and 0xBE and 0xBF.
const NEEDS_A_LOOK: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[b'\'' as usize] = true;
    table[b'"' as usize] = true;
    table[0xBE] = true;
    table[0xBF] = true;
    table
};

/// Whether a received stanza's sender waits for an answer: a message (never
/// a room's message, never an error) or an IQ request. Such a stanza the
/// connector cannot hand to the bot gets an error instead of silence.
pub fn wants_answer(stanza: &Element) -> bool {
    if stanza.ns() != COMPONENT_NS {
        return false;
    }
    match (stanza.name(), stanza.attr("type")) {
        ("message", Some("groupchat" | "error")) => false,
        ("message", _) => true,
        ("iq", Some("get" | "set")) => true,
        _ => false,
    }
}

/// Parses XML text as one stanza (in `jabber:client`,
/// `jabber:component:accept` or no namespace) and returns it in the
/// component namespace, ready for the component stream.
pub fn parse_stanza(xml: &str) -> Result<Element, InvalidStanza> {
    let element = parse_one_element(xml)?;
    if element.name().parse::<StanzaKind>().is_err() {
        return Err(InvalidStanza::NotAStanza(element.name().to_owned()));
    }
    if !is_stanza_ns(&element.ns()) {
        return Err(InvalidStanza::Namespace(element.ns()));
    }
    Ok(with_namespace(&element, COMPONENT_NS))
}

/// Reads `xml` as exactly one element. minidom's `from_reader` stops at the
/// end of the first element and ignores whatever follows; here anything but
/// whitespace after it is an error, so a second stanza or trailing junk in a
/// bot's reply is refused rather than silently dropped.
fn parse_one_element(xml: &str) -> Result<Element, InvalidStanza> {
    let invalid = |error: minidom::Error| InvalidStanza::Xml(error.to_string());
    // A stanza without xmlns is read as jabber:client, as a client wrote it.
    let mut tree = TreeBuilder::new().with_prefixes_stack(vec![Some(CLIENT_NS.to_owned()).into()]);
    // Bots often print a newline around the stanza; a declaration must come
    // first, so leading whitespace is dropped rather than refused.
    let mut reader = minidom::rxml::RawReader::new(xml.trim().as_bytes());
    let mut root = None;
    // The attributes of the element being opened: the tree builder would
    // let a repeated one silently replace the first.
    let mut attributes: Vec<RawQName> = Vec::new();
    // After the root element the reader yields nothing more and fails on
    // anything but whitespace, so reading to the end is the whole check.
    while let Some(event) = reader.read().map_err(|e| invalid(e.into()))? {
        match &event {
            RawEvent::ElementHeadOpen(..) => attributes.clear(),
            RawEvent::Attribute(_, attribute, _) if attributes.contains(attribute) => {
                let (prefix, local) = attribute;
                let name = match prefix {
                    Some(prefix) => format!("{prefix}:{local}"),
                    None => local.to_string(),
                };
                return Err(InvalidStanza::Xml(format!(
                    "XML error: duplicate attribute {name:?}"
                )));
            }
            RawEvent::Attribute(_, attribute, _) => attributes.push(attribute.clone()),
            _ => {}
        }
        tree.process_event(event).map_err(invalid)?;
        if let Some(element) = tree.root.take() {
            root = Some(element);
        }
    }
    root.ok_or_else(|| invalid(minidom::Error::EndOfDocument))
}

/// The request JSON for a stanza received on the component stream.
pub fn stanza_to_request(stanza: &Element) -> Result<Request, InvalidStanza> {
    let kind: StanzaKind = stanza
        .name()
        .parse()
        .map_err(|_| InvalidStanza::NotAStanza(stanza.name().to_owned()))?;
    let to = stanza
        .attr("to")
        .ok_or(InvalidStanza::MissingAddress("to"))?;
    let from = stanza
        .attr("from")
        .ok_or(InvalidStanza::MissingAddress("from"))?;
    // mod_component_http takes the first <body>, whatever its language.
    let body = match kind {
        StanzaKind::Message => body_element(stanza).map(Element::text),
        _ => None,
    };
    let signals = signals_of(stanza);
    Ok(Request {
        to: to.to_owned(),
        from: from.to_owned(),
        kind,
        stanza: client_stanza_text(stanza),
        body,
        stanza_type: stanza.attr("type").map(str::to_owned),
        id: stanza.attr("id").map(str::to_owned),
        room: None,
        nick: None,
        mention: None,
        chat_state: signals.chat_state,
        receipt_requested: signals.receipt_requested,
        markable: signals.markable,
    })
}

/// A message's first `<body>` (in the stanza's own namespace): the text a
/// person wrote, whatever its language.
pub(crate) fn body_element(stanza: &Element) -> Option<&Element> {
    stanza
        .children()
        .find(|child| child.name() == "body" && is_stanza_element(child))
}

/// The bare part of a JID (everything before the first `/`).
pub(crate) fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(xml: &str) -> Element {
        xml.parse().expect("test XML is valid")
    }

    #[test]
    fn only_messages_to_the_bot_and_iq_requests_want_an_answer() {
        let wants = |xml: &str| wants_answer(&component(xml));
        let ns = "xmlns='jabber:component:accept'";
        assert!(wants(&format!("<message {ns} type='chat'/>")));
        assert!(wants(&format!("<message {ns}/>")));
        assert!(wants(&format!("<iq {ns} type='get'/>")));
        assert!(wants(&format!("<iq {ns} type='set'/>")));
        assert!(!wants(&format!("<message {ns} type='groupchat'/>")));
        assert!(!wants(&format!("<message {ns} type='error'/>")));
        assert!(!wants(&format!("<iq {ns} type='result'/>")));
        assert!(!wants(&format!("<presence {ns} type='subscribe'/>")));
        assert!(!wants("<message xmlns='urn:example' type='chat'/>"));
    }

    #[test]
    fn request_from_a_message() {
        let stanza = component(
            "<message xmlns='jabber:component:accept' to='echo@bot.example.com' \
             from='alice@example.com/x' type='chat' id='m1' xml:lang='en'>\
             <body>hi &amp; &lt;bye&gt;</body><body xml:lang='de'>hallo</body></message>",
        );
        let request = stanza_to_request(&stanza).expect("valid stanza");
        assert_eq!(request.kind, StanzaKind::Message);
        assert_eq!(request.to, "echo@bot.example.com");
        assert_eq!(request.from, "alice@example.com/x");
        assert_eq!(request.body.as_deref(), Some("hi & <bye>"));
        assert_eq!(request.stanza_type.as_deref(), Some("chat"));
        assert_eq!(request.id.as_deref(), Some("m1"));
        // The stanza text is in jabber:client, and parses back to the same tree.
        let seen: Element = request.stanza.parse().expect("stanza text parses");
        assert_eq!(seen.ns(), CLIENT_NS);
        assert_eq!(seen, with_namespace(&stanza, CLIENT_NS));
        assert_eq!(with_namespace(&seen, COMPONENT_NS), stanza);
    }

    #[test]
    fn empty_body_is_an_empty_string_and_no_body_is_none() {
        let empty = component(
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d'><body/></message>",
        );
        assert_eq!(
            stanza_to_request(&empty).expect("valid").body.as_deref(),
            Some("")
        );
        let none = component("<message xmlns='jabber:component:accept' to='a@b' from='c@d'/>");
        assert_eq!(stanza_to_request(&none).expect("valid").body, None);
    }

    #[test]
    fn foreign_payloads_keep_their_namespace() {
        let stanza = component(
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d'>\
             <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='x@y'><body>inner</body></message></forwarded>\
             </message>",
        );
        let moved = with_namespace(&stanza, CLIENT_NS);
        let inner = moved
            .get_child("forwarded", "urn:xmpp:forward:0")
            .and_then(|f| f.get_child("message", CLIENT_NS))
            .expect("inner message kept in jabber:client");
        assert_eq!(inner.text(), "");
        assert_eq!(stanza_to_request(&stanza).expect("valid").body, None);
    }

    #[test]
    fn parse_stanza_accepts_the_three_namespaces() {
        for xml in [
            "<message to='a@b'><body>x</body></message>",
            "<message xmlns='jabber:client' to='a@b'><body>x</body></message>",
            "<message xmlns='jabber:component:accept' to='a@b'><body>x</body></message>",
        ] {
            let stanza = parse_stanza(xml).expect(xml);
            assert_eq!(stanza.ns(), COMPONENT_NS);
            assert_eq!(
                stanza
                    .get_child("body", COMPONENT_NS)
                    .map(Element::text)
                    .as_deref(),
                Some("x"),
                "{xml}"
            );
        }
    }

    #[test]
    fn parse_stanza_errors() {
        assert_eq!(
            parse_stanza("<foo xmlns='jabber:client'/>")
                .unwrap_err()
                .to_string(),
            "<foo> is not a stanza (expected message, presence or iq)"
        );
        assert_eq!(
            parse_stanza("<message xmlns='urn:other'/>")
                .unwrap_err()
                .to_string(),
            "stanza namespace \"urn:other\" is not jabber:client or jabber:component:accept"
        );
        assert!(matches!(
            parse_stanza("<message><body>"),
            Err(InvalidStanza::Xml(_))
        ));
        assert!(matches!(
            parse_stanza("not xml"),
            Err(InvalidStanza::Xml(_))
        ));
    }

    #[test]
    fn missing_addresses_are_errors() {
        let stanza = component("<message xmlns='jabber:component:accept' from='c@d'/>");
        assert_eq!(
            stanza_to_request(&stanza).unwrap_err().to_string(),
            "stanza has no \"to\" attribute"
        );
    }

    /// The long way round: what the direct writer must match.
    fn through_a_copy(stanza: &Element) -> String {
        element_to_string(&with_namespace(stanza, CLIENT_NS))
    }

    #[test]
    fn the_stanza_text_is_written_as_minidom_writes_the_moved_copy() {
        for xml in [
            "<message xmlns='jabber:component:accept' to='echo@bot.example.com' \
             from='alice@example.com/x' type='chat' id='m1' xml:lang='en'><body>hi</body></message>",
            // Payloads keep their namespace, and what is inside them theirs.
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d'>\
             <active xmlns='http://jabber.org/protocol/chatstates'/>\
             <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='x@y'>\
             <body>inner</body></message></forwarded><x xmlns='urn:x'><y xmlns=''/></x></message>",
            // Escapes in text and attributes, as minidom's writer makes them.
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d' id='&apos;&quot;&lt;&#9;&#10;&#13;'>\
             <body>a &amp; b &lt; c &gt; d &apos;&quot; \t\n&#13;</body></message>",
            "<iq xmlns='jabber:component:accept' to='a@b' from='c@d' type='get' id='1'>\
             <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
            // A root in another namespace is moved all the same.
            "<message xmlns='urn:evil' to='a@b' from='c@d'><body>x</body></message>",
        ] {
            let stanza = component(xml);
            assert_eq!(
                client_stanza_text(&stanza),
                through_a_copy(&stanza),
                "{xml}"
            );
        }
    }

    #[test]
    fn a_stanza_for_the_stream_declares_only_namespaces_other_than_the_streams() {
        let stanza = component(
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d' type='chat' id='x'>\
             <body>1 &lt; 2</body><x xmlns='urn:xmpp-lambda:bot:0'/></message>",
        );
        let mut out = String::from("<iq/>");
        assert!(append_stanza_text(&stanza, COMPONENT_NS, &mut out));
        assert_eq!(
            out,
            "<iq/><message from='c@d' id='x' to='a@b' type='chat'><body>1 &lt; 2</body>\
             <x xmlns='urn:xmpp-lambda:bot:0'/></message>"
        );
        // Read back in the stream's namespace, it is the same stanza.
        let text = out["<iq/>".len()..].to_owned();
        let wrapped = format!("<s xmlns='{COMPONENT_NS}'>{text}</s>");
        let read: Element = wrapped.parse().expect("parses");
        assert_eq!(read.children().next(), Some(&stanza));
        // What it cannot write leaves the text as it was.
        let prefixed = component(
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d'><p:q xmlns:p='urn:p'/></message>",
        );
        assert!(!append_stanza_text(&prefixed, COMPONENT_NS, &mut out));
        assert_eq!(&out[..5], "<iq/>");
        assert_eq!(out.len(), 5 + text.len());
    }

    /// Escaping one character at a time, by the rules minidom's writer
    /// follows: what the byte table must agree with.
    fn escape_by_chars(text: &str, attribute: bool) -> Option<String> {
        let mut out = String::new();
        for c in text.chars() {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '\r' => out.push_str("&#xd;"),
                '\'' if attribute => out.push_str("&#39;"),
                '"' if attribute => out.push_str("&#34;"),
                '\n' if attribute => out.push_str("&#xa;"),
                '\t' if attribute => out.push_str("&#x9;"),
                c if !is_xml_char(c) => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    #[test]
    fn escaping_by_bytes_agrees_with_escaping_by_characters() {
        // Every character below U+0100, and those whose UTF-8 ends in
        // 0xBE or 0xBF or starts with 0xEF 0xBF.
        let mut samples: Vec<String> = (0u32..0x100)
            .chain([
                0xBE, 0xBF, 0x3FE, 0xFBE, 0xFBF, 0xEFBE, 0xEFBF, 0xFFBE, 0xFFBF,
            ])
            .chain([0xFFF0, 0xFFFD, 0xFFFE, 0xFFFF, 0x1FFFE, 0x10FFFF])
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        samples.push("<a href='x'>\"1 & 2\"\t\r\n</a> é ü 😀".to_owned());
        for text in samples {
            for attribute in [false, true] {
                let mut out = String::from("=");
                let written = escape_into(&text, attribute, &mut out).map(|()| out[1..].to_owned());
                assert_eq!(
                    written,
                    escape_by_chars(&text, attribute),
                    "{text:?} {attribute}"
                );
                if let Some(written) = written {
                    assert_eq!(
                        escaped_len(&text, attribute),
                        written.len(),
                        "{text:?} {attribute}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_stanza_with_declared_prefixes_takes_the_long_way_to_the_same_tree() {
        for xml in [
            "<message xmlns='jabber:component:accept' to='a@b' from='c@d'>\
             <p:q xmlns:p='urn:p' p:a='1'/></message>",
            "<message xmlns='jabber:component:accept' xmlns:p='urn:p' to='a@b' from='c@d' p:a='1'/>",
        ] {
            let stanza = component(xml);
            let text = client_stanza_text(&stanza);
            let seen: Element = text.parse().expect("the text parses");
            assert_eq!(seen, with_namespace(&stanza, CLIENT_NS), "{text}");
        }
    }
}

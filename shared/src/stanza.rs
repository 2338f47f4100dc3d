//! Stanzas as XML: parsing, namespaces, and stanza → request (DESIGN §1).

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
pub(crate) fn name(static_name: &'static str) -> NcName {
    NcName::try_from(static_name).expect("attribute names in this crate are valid XML names")
}

/// Sets (or replaces) an attribute without a namespace.
pub(crate) fn set_attr(element: &mut Element, attr: &'static str, value: &str) {
    element.set_attr(minidom::rxml::Namespace::NONE, name(attr), value);
}

/// Whether XML 1.0 allows `c` in a document (its `Char` production; Rust's
/// `char` already excludes the surrogates). minidom's writer panics on any
/// other character, so text from JSON is checked with this before it goes
/// into an element.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_stanza_ns(ns: &str) -> bool {
    ns == CLIENT_NS || ns == COMPONENT_NS || ns.is_empty()
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
            minidom::Node::Element(child) if is_stanza_ns(&child.ns()) => {
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
        StanzaKind::Message => stanza
            .children()
            .find(|child| child.name() == "body" && is_stanza_ns(&child.ns()))
            .map(Element::text),
        _ => None,
    };
    Ok(Request {
        to: to.to_owned(),
        from: from.to_owned(),
        kind,
        stanza: element_to_string(&with_namespace(stanza, CLIENT_NS)),
        body,
        stanza_type: stanza.attr("type").map(str::to_owned),
        id: stanza.attr("id").map(str::to_owned),
        room: None,
        nick: None,
        mention: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(xml: &str) -> Element {
        xml.parse().expect("test XML is valid")
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
}

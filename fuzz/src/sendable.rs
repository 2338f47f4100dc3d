//! What every stanza the connector writes must be, whatever a bot or an
//! API client sent: a server would otherwise drop the whole component link
//! (Prosody closes it for a `from` outside the component's domain or a
//! stanza over its size limit) or the stanza would not be what was meant.

use minidom::Element;
use xmpp_lambda_shared::{COMPONENT_NS, MAX_BODY_BYTES, append_stanza_text, element_to_string};

/// Prosody's `component_stanza_size_limit`: a larger stanza from the
/// component closes the link.
pub const SERVER_LIMIT: usize = 512 * 1024;

/// Panics, saying why, unless `stanza` can be written on the link of the
/// component `domain` without losing the link.
pub fn assert_sendable(stanza: &Element, domain: &str) {
    // minidom panics on what it cannot write; so would the link.
    let text = element_to_string(stanza);
    let again: Element = match text.parse() {
        Ok(again) => again,
        Err(error) => panic!("{text:?} does not parse back: {error}"),
    };
    assert_eq!(&again, stanza, "written and read back, it changed: {text}");
    // The text the link writes where it can, read in the stream's own
    // namespace, is the same stanza too.
    let mut on_stream = String::new();
    if append_stanza_text(stanza, COMPONENT_NS, &mut on_stream) {
        let wrapped = format!("<stream xmlns='{COMPONENT_NS}'>{on_stream}</stream>");
        let read: Element = match wrapped.parse() {
            Ok(read) => read,
            Err(error) => panic!("the stream text {on_stream:?} does not parse: {error}"),
        };
        assert_eq!(read.children().count(), 1, "{on_stream}");
        assert_eq!(read.children().next(), Some(stanza), "{on_stream}");
    }
    assert_eq!(stanza.ns(), COMPONENT_NS, "{text}");
    assert!(
        matches!(stanza.name(), "message" | "presence" | "iq"),
        "not a stanza: {text}"
    );
    let Some(from) = stanza.attr("from") else {
        panic!("no from: {text}");
    };
    match jid::Jid::new(from) {
        Ok(from) => assert_eq!(from.domain().as_str(), domain, "from outside: {text}"),
        Err(error) => panic!("from is no JID ({error}): {text}"),
    }
    let Some(to) = stanza.attr("to") else {
        panic!("no to: {text}");
    };
    if let Err(error) = jid::Jid::new(to) {
        panic!("to is no JID ({error}): {text}");
    }
    for body in stanza.children().filter(|child| child.name() == "body") {
        let length = body.text().len();
        assert!(length <= MAX_BODY_BYTES, "a body of {length} bytes");
    }
    assert!(
        text.len() <= SERVER_LIMIT,
        "{} bytes on the wire",
        text.len()
    );
}

//! Streamed replies (DESIGN §11): a bot answers `200` with
//! `application/x-ndjson` (or `application/jsonl`), one reply object per
//! line, each sent as soon as its line is complete. A line with
//! `"replace": true` corrects the stream's previous message (XEP-0308), so
//! an answer can grow in place.

use crate::stanza::{COMPONENT_NS, set_attr};
use minidom::Element;
use serde_json::Value;

/// XEP-0308's namespace.
pub const CORRECTION_NS: &str = "urn:xmpp:message-correct:0";

/// Whether a stream line asks to correct the stream's previous message
/// (`"replace": true` on the reply object). A line that is not a JSON
/// object replaces nothing (the reply rules refuse it).
pub fn line_replaces(line: &str) -> bool {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object.get("replace") == Some(&Value::Bool(true)),
        _ => false,
    }
}

/// `message` as a correction of the message first sent with the id
/// `corrected_id` (XEP-0308 §3: every correction names the original, and
/// carries a fresh id of its own, which the message already has).
pub fn as_correction(mut message: Element, corrected_id: &str) -> Element {
    let mut replace = Element::builder("replace", CORRECTION_NS).build();
    set_attr(&mut replace, "id", corrected_id);
    message.append_child(replace);
    message
}

/// Whether `stanza` is a message with a body: what a stream's correction
/// may correct, and what may correct it.
pub fn is_message_with_body(stanza: &Element) -> bool {
    stanza.is("message", COMPONENT_NS) && stanza.get_child("body", COMPONENT_NS).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_is_true_or_nothing() {
        assert!(line_replaces(r#"{"body":"hello wor","replace":true}"#));
        assert!(!line_replaces(r#"{"body":"hello"}"#));
        assert!(!line_replaces(r#"{"body":"hello","replace":false}"#));
        assert!(!line_replaces(r#"{"body":"hello","replace":"yes"}"#));
        assert!(!line_replaces("[1,2]"));
        assert!(!line_replaces("not json"));
    }

    #[test]
    fn a_correction_names_the_original_and_reads_back() {
        let message: Element = "<message xmlns='jabber:component:accept' to='a@b/c' \
                                from='echo@bot.example.com' type='chat' id='second'>\
                                <body>hello world</body></message>"
            .parse()
            .expect("valid XML");
        let correction = as_correction(message, "first");
        assert_eq!(correction.attr("id"), Some("second"));
        let replace = correction
            .get_child("replace", CORRECTION_NS)
            .expect("a replace element");
        assert_eq!(replace.attr("id"), Some("first"));
        assert!(is_message_with_body(&correction));
        let text = String::from(&correction);
        let read: Element = text.parse().expect("written XML reads back");
        assert_eq!(read, correction);
    }
}

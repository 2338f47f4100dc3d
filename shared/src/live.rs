//! Live conversations (DESIGN §10): what a person sees while a bot works.
//!
//! Only what a person wrote is a request: a message without a body (a chat
//! state, a receipt, a marker) is not worth a bot's time or a Lambda
//! invocation ([`is_bodyless_message`]). For a one-to-one message with a
//! body the connector may show the bot typing (XEP-0085), confirm
//! delivery (XEP-0184) and mark the message displayed (XEP-0333); this
//! module reads what the sender's client asked for and builds those
//! stanzas. Never in `groupchat`: a room is no conversation with the bot.
//!
//! What a message asked for travels in its request JSON
//! ([`Request::chat_state`], [`Request::receipt_requested`],
//! [`Request::markable`]), so the sqs path knows it again when the reply
//! envelope comes back, without parsing the stanza text a second time.

use crate::reply::{checked_request, reply_message_type};
use crate::stanza::{COMPONENT_NS, body_element, set_attr};
use crate::{BadReply, BotResponse, ChatState, Request, StanzaKind, stanzas_to_send};
use minidom::Element;

pub use crate::signals::{CHAT_MARKERS_NS, CHAT_STATES_NS, RECEIPTS_NS, Signals, signals_of};

/// XEP-0334's namespace of message processing hints.
pub const HINTS_NS: &str = "urn:xmpp:hints";

/// Whether a received stanza is a message without a `<body>`: nothing a
/// person wrote (a chat state, a receipt, a marker, a correction's empty
/// shell), so by default it is not forwarded. Presence and IQs are never
/// "bodyless messages".
pub fn is_bodyless_message(stanza: &Element) -> bool {
    stanza.name() == "message" && body_element(stanza).is_none()
}

/// Whether a request is a message of a one-to-one conversation that a
/// person wrote: a message with a body, of type `chat`, `normal` or none.
/// Never `groupchat` (a room), `headline` (expects no answer) or `error`.
/// Only such a request gets typing, receipts and markers.
fn is_conversation(request: &Request) -> bool {
    request.kind == StanzaKind::Message
        && request.body.is_some()
        && matches!(
            request.stanza_type.as_deref(),
            None | Some("chat" | "normal")
        )
}

/// Whether the connector may show the bot typing to this request's sender:
/// a one-to-one message whose client sent a chat state, which is how
/// XEP-0085 says a client shows it supports them.
pub fn shows_typing(request: &Request) -> bool {
    is_conversation(request) && request.chat_state.is_some()
}

/// A message from the request's recipient back to its sender, of the type
/// a reply gets, with a fresh id; `None` when the request's addresses or
/// id cannot be written back (a forged reply envelope).
fn notification(
    request: &Request,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Option<Element> {
    checked_request(request, domain).ok()?;
    let mut message = Element::builder("message", COMPONENT_NS).build();
    set_attr(&mut message, "to", &request.from);
    set_attr(&mut message, "from", &request.to);
    set_attr(&mut message, "type", reply_message_type(request));
    set_attr(&mut message, "id", &new_id());
    Some(message)
}

/// A standalone chat state from the bot to the request's sender:
/// `<composing/>` while the bot works, `<active/>` when it stopped without
/// a reply. It carries `<no-store xmlns='urn:xmpp:hints'/>`, so servers do
/// not archive or store it offline. `None` unless [`shows_typing`].
pub fn chat_state_message(
    request: &Request,
    state: ChatState,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Option<Element> {
    if !shows_typing(request) {
        return None;
    }
    let mut message = notification(request, domain, new_id)?;
    message.append_child(Element::bare(state.as_str(), CHAT_STATES_NS));
    message.append_child(Element::bare("no-store", HINTS_NS));
    Some(message)
}

/// The delivery receipt for a request that asked for one:
/// `<received xmlns='urn:xmpp:receipts' id='<its id>'/>`, with a
/// `<store/>` hint so the sender's other and later sessions see it from
/// the archive. `None` unless the request is a one-to-one message that
/// asked for a receipt and has an id.
pub fn delivery_receipt(
    request: &Request,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Option<Element> {
    if !request.receipt_requested {
        return None;
    }
    marker(request, "received", RECEIPTS_NS, domain, new_id)
}

/// The displayed marker for a markable request:
/// `<displayed xmlns='urn:xmpp:chat-markers:0' id='<its id>'/>`, with a
/// `<store/>` hint (XEP-0333: markers are archived, so every client of
/// the sender sees them). `None` unless the request is a markable
/// one-to-one message with an id.
pub fn displayed_marker(
    request: &Request,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Option<Element> {
    if !request.markable {
        return None;
    }
    marker(request, "displayed", CHAT_MARKERS_NS, domain, new_id)
}

/// A receipt or marker naming the request's id.
fn marker(
    request: &Request,
    name: &str,
    namespace: &str,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Option<Element> {
    let id = request.id.as_deref().filter(|id| !id.is_empty())?;
    if !is_conversation(request) {
        return None;
    }
    let mut message = notification(request, domain, new_id)?;
    let mut mark = Element::bare(name, namespace);
    set_attr(&mut mark, "id", id);
    message.append_child(mark);
    message.append_child(Element::bare("store", HINTS_NS));
    Some(message)
}

/// Whether `stanza` is a message of the request's conversation: from its
/// recipient to its sender, not an error and not to a room.
fn is_reply_message(stanza: &Element, request: &Request) -> bool {
    stanza.name() == "message"
        && !matches!(stanza.attr("type"), Some("error" | "groupchat"))
        && stanza.attr("to") == Some(request.from.as_str())
        && stanza.attr("from") == Some(request.to.as_str())
}

/// Gives every reply message of `stanzas` an `<active/>` chat state
/// (XEP-0085: a message with content carries one), when the request's
/// client shows chat states; a message that already carries a chat state
/// (a bot's own `stanza`) keeps it. Returns whether any stanza is a reply
/// message of the conversation: if `<composing/>` went out and none is,
/// a standalone `<active/>` must end it.
pub fn add_active(request: &Request, stanzas: &mut [Element]) -> bool {
    let mut replied = false;
    let shows_typing = shows_typing(request);
    for stanza in stanzas
        .iter_mut()
        .filter(|stanza| is_reply_message(stanza, request))
    {
        replied = true;
        if shows_typing && !stanza.children().any(|c| c.has_ns(CHAT_STATES_NS)) {
            stanza.append_child(Element::bare(ChatState::Active.as_str(), CHAT_STATES_NS));
        }
    }
    replied
}

/// Whether `stanza` is one of the connector's own notifications (a chat
/// state, receipt or marker with nothing else but hints), not a reply:
/// what the reply counts leave out.
pub fn is_notification(stanza: &Element) -> bool {
    stanza.name() == "message"
        && stanza.children().next().is_some()
        && stanza.children().all(|child| {
            child.has_ns(CHAT_STATES_NS)
                || child.has_ns(RECEIPTS_NS)
                || child.has_ns(CHAT_MARKERS_NS)
                || child.has_ns(HINTS_NS)
        })
}

/// How many of `stanzas` are replies, not the connector's notifications:
/// what the reply counts in metrics count.
pub fn replies_among(stanzas: &[Element]) -> usize {
    stanzas
        .iter()
        .filter(|stanza| !is_notification(stanza))
        .count()
}

/// What the connector already sent for a request while the bot worked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notified {
    /// `<composing/>` went out: the conversation must not be left typing,
    /// so a standalone `<active/>` follows when no reply message does.
    pub composing: bool,
    /// The delivery receipt went out already (sqs: once the request was
    /// queued), so it is not sent twice.
    pub receipt: bool,
}

/// Everything to write once a bot's outcome for `request` is known: the
/// stanzas of [`stanzas_to_send`] (the replies, or the error) with the
/// conversation's notifications.
///
/// When the bot answered below 300 and no error goes to the sender: the
/// delivery receipt (unless [`Notified::receipt`]) and the displayed
/// marker first, where the request asked for them. Every reply message
/// carries `<active/>` ([`add_active`]); when `<composing/>` went out and
/// no reply message follows (no reply, an error), a standalone `<active/>`
/// ends the stanzas. Never a receipt or marker for an error, never any of
/// them in `groupchat`.
pub fn stanzas_to_send_live(
    request: &Request,
    response: &BotResponse,
    domain: &str,
    notified: Notified,
    new_id: &mut dyn FnMut() -> String,
) -> (Vec<Element>, Option<BadReply>) {
    let (mut stanzas, refused) = stanzas_to_send(request, response, domain, new_id);
    // Only a client that shows chat states gets `<active/>`, and only a
    // `<composing/>` sent needs to know whether a reply ends it.
    let replied =
        (notified.composing || shows_typing(request)) && add_active(request, &mut stanzas);
    let mut out = Vec::with_capacity(stanzas.len() + 3);
    if response.is_success() && refused.is_none() {
        if !notified.receipt {
            out.extend(delivery_receipt(request, domain, new_id));
        }
        out.extend(displayed_marker(request, domain, new_id));
    }
    out.append(&mut stanzas);
    if notified.composing && !replied {
        out.extend(chat_state_message(
            request,
            ChatState::Active,
            domain,
            new_id,
        ));
    }
    (out, refused)
}

#[cfg(test)]
mod tests {
    //! What no received stanza can produce, but a forged or corrupted reply
    //! envelope can: nothing may be built from it.
    use super::*;

    #[test]
    fn notifications_are_told_from_replies() {
        let parse = |xml: &str| -> Element { xml.parse().expect("valid XML") };
        assert!(is_notification(&parse(
            "<message xmlns='jabber:component:accept'><composing \
             xmlns='http://jabber.org/protocol/chatstates'/><no-store xmlns='urn:xmpp:hints'/></message>"
        )));
        assert!(is_notification(&parse(
            "<message xmlns='jabber:component:accept'><received xmlns='urn:xmpp:receipts' \
             id='m'/><store xmlns='urn:xmpp:hints'/></message>"
        )));
        assert!(!is_notification(&parse(
            "<message xmlns='jabber:component:accept'><body>hi</body><active \
             xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )));
        assert!(!is_notification(&parse(
            "<message xmlns='jabber:component:accept'/>"
        )));
        assert!(!is_notification(&parse(
            "<iq xmlns='jabber:component:accept'><received xmlns='urn:xmpp:receipts'/></iq>"
        )));
    }

    use crate::element_to_string;

    fn request() -> Request {
        Request {
            id: Some("m1".into()),
            chat_state: Some(ChatState::Active),
            receipt_requested: true,
            markable: true,
            ..Request::chat("alice@example.com/phone", "echo@bot.example.com", "hi")
        }
    }

    /// Every notification the rules can build for `request`.
    fn notifications(request: &Request) -> Vec<Element> {
        let mut n = 0;
        let mut ids = || {
            n += 1;
            format!("id-{n}")
        };
        let domain = "bot.example.com";
        let mut built = Vec::new();
        built.extend(chat_state_message(
            request,
            ChatState::Composing,
            domain,
            &mut ids,
        ));
        built.extend(chat_state_message(
            request,
            ChatState::Active,
            domain,
            &mut ids,
        ));
        built.extend(delivery_receipt(request, domain, &mut ids));
        built.extend(displayed_marker(request, domain, &mut ids));
        built
    }

    #[test]
    fn a_request_that_asked_for_everything_gets_everything() {
        let built = notifications(&request());
        let names: Vec<_> = built
            .iter()
            .map(|m| m.children().next().map(Element::name).unwrap_or_default())
            .collect();
        assert_eq!(names, ["composing", "active", "received", "displayed"]);
        for message in &built {
            // Writable, and addressed back along the conversation.
            element_to_string(message);
            assert_eq!(message.attr("to"), Some("alice@example.com/phone"));
            assert_eq!(message.attr("from"), Some("echo@bot.example.com"));
        }
    }

    #[test]
    fn nothing_is_built_from_a_request_no_stanza_could_make() {
        let forged = [
            Request {
                to: "echo@other.example.com".into(),
                ..request()
            },
            Request {
                from: "alice\u{1}@example.com".into(),
                ..request()
            },
            Request {
                id: Some("m\u{1b}".into()),
                ..request()
            },
            Request {
                kind: StanzaKind::Presence,
                ..request()
            },
            Request {
                kind: StanzaKind::Iq,
                stanza_type: Some("get".into()),
                ..request()
            },
        ];
        for request in forged {
            assert_eq!(
                notifications(&request),
                Vec::<Element>::new(),
                "{request:?}"
            );
        }
    }

    #[test]
    fn receipts_and_markers_need_an_id_to_name() {
        for id in [None, Some(String::new())] {
            let request = Request { id, ..request() };
            let built = notifications(&request);
            assert_eq!(built.len(), 2, "only the chat states: {built:?}");
        }
    }

    #[test]
    fn add_active_marks_only_reply_messages_of_the_conversation() {
        let message = |to: &str, from: &str, kind: Option<&str>| {
            let mut m = Element::builder("message", COMPONENT_NS).build();
            set_attr(&mut m, "to", to);
            set_attr(&mut m, "from", from);
            if let Some(kind) = kind {
                set_attr(&mut m, "type", kind);
            }
            m
        };
        let mut stanzas = vec![
            message(
                "alice@example.com/phone",
                "echo@bot.example.com",
                Some("chat"),
            ),
            message(
                "alice@example.com/phone",
                "echo@bot.example.com",
                Some("error"),
            ),
            message(
                "alice@example.com/phone",
                "other@bot.example.com",
                Some("chat"),
            ),
            message("alice@example.com", "echo@bot.example.com", Some("chat")),
            message("alice@example.com/phone", "echo@bot.example.com", None),
        ];
        assert!(add_active(&request(), &mut stanzas));
        let marked: Vec<bool> = stanzas
            .iter()
            .map(|s| s.has_child("active", CHAT_STATES_NS))
            .collect();
        assert_eq!(marked, [true, false, false, false, true]);
        // Without a chat state from the sender: reply messages, unmarked.
        let plain = Request {
            chat_state: None,
            ..request()
        };
        let mut stanzas = vec![message(
            "alice@example.com/phone",
            "echo@bot.example.com",
            None,
        )];
        assert!(add_active(&plain, &mut stanzas));
        assert!(!stanzas[0].has_child("active", CHAT_STATES_NS));
        assert!(!add_active(&plain, &mut []));
    }
}

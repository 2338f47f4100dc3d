//! Bot-initiated messages (DESIGN §6): a bot speaks first.
//!
//! An outbound message is a reply object of §2 with `to` required. It
//! reaches the connector in a send envelope on the reply queue
//! ([`crate::SendEnvelope`]) or through the connector's `POST /v1/send`, and
//! either way [`outbound_to_stanza`] turns it into the stanza to write, with
//! the same checks as a reply: a push can never cost the link.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An outbound message as a Rust bot builds it; on the wire it is a plain
/// JSON object, so bots in any language write the same thing.
///
/// ```
/// use xmpp_lambda_shared::OutboundMessage;
///
/// let alert = OutboundMessage::chat("alice@example.com", "deploy finished");
/// assert_eq!(
///     serde_json::to_string(&alert).unwrap(),
///     r#"{"to":"alice@example.com","body":"deploy finished"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// The recipient: a user, or a room the connector is in.
    pub to: String,
    /// The message text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `message` (the default), `presence` or `iq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The stanza's `type`; by default `chat`, or `groupchat` to a room.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub stanza_type: Option<String>,
    /// The sender, a JID at the component; by default the component's
    /// domain, or the connector's own occupant for a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A whole stanza as XML, for anything the fields cannot say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stanza: Option<String>,
    /// A file or page to attach (XEP-0066, http or https): clients show it
    /// inline; the body defaults to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl OutboundMessage {
    /// A chat message with `body` to `to`, every other field defaulted.
    pub fn chat(to: impl Into<String>, body: impl Into<String>) -> Self {
        OutboundMessage {
            to: to.into(),
            body: Some(body.into()),
            ..OutboundMessage::default()
        }
    }

    /// A chat message to `to` attaching `url` (its body is the URL).
    ///
    /// ```
    /// use xmpp_lambda_shared::OutboundMessage;
    ///
    /// let panel = OutboundMessage::attachment("alice@example.com", "https://grafana.example.com/d/x.png");
    /// assert_eq!(
    ///     serde_json::to_string(&panel).unwrap(),
    ///     r#"{"to":"alice@example.com","url":"https://grafana.example.com/d/x.png"}"#
    /// );
    /// ```
    pub fn attachment(to: impl Into<String>, url: impl Into<String>) -> Self {
        OutboundMessage {
            to: to.into(),
            url: Some(url.into()),
            ..OutboundMessage::default()
        }
    }

    /// The message as the JSON object a send envelope carries.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(feature = "xml")]
pub use rule::{bad_message_text, outbound_to_stanza};

#[cfg(feature = "xml")]
mod rule {
    use crate::reply::{BadReply, Defaults, IqId, Reply, build_stanza, checked_size};
    use crate::stanza::{bare, parse_stanza};
    use minidom::Element;
    use serde_json::Value;

    /// The stanza for one outbound message, or why it cannot be sent.
    ///
    /// `room_occupant` answers, for a room's bare JID, the real JID the
    /// connector is in that room as, or `None` when it is not a room of the
    /// connector's. A message to such a room (or to one of its occupants)
    /// comes from that JID by default, as the room requires, and one to the
    /// room itself is `groupchat` by default. Every other message comes
    /// from the component's domain and is `chat` by default. Every message
    /// gets a fresh `id` from `new_id`.
    pub fn outbound_to_stanza(
        message: &Value,
        domain: &str,
        room_occupant: &dyn Fn(&str) -> Option<String>,
        new_id: &mut dyn FnMut() -> String,
    ) -> Result<Element, BadReply> {
        let Value::Object(object) = message else {
            return Err(BadReply::NotAnObject);
        };
        let reply = Reply::from_object(object)?;
        // A stanza's own recipient wins over the field, as in a reply.
        let stanza_to = match &reply.stanza {
            Some(xml) => {
                checked_size("stanza", xml)?;
                parse_stanza(xml)?.attr("to").map(str::to_owned)
            }
            None => None,
        };
        let to = stanza_to
            .or_else(|| reply.to.clone())
            .ok_or(BadReply::MissingTo)?;
        let occupant = room_occupant(bare(&to));
        let to_room = occupant.is_some() && !to.contains('/');
        let defaults = Defaults {
            to: &to,
            groupchat_to: &to,
            from: occupant.as_deref().unwrap_or(domain),
            message_type: if to_room { "groupchat" } else { "chat" },
            iq_id: IqId::Fresh,
            checked: false,
        };
        build_stanza(&reply, &defaults, domain, new_id)
    }

    /// Why an outbound message was refused, as the sender of the push reads
    /// it: `message "to" is required`, or with the message's place in a
    /// list, `messages[2] "from" "x@example.org" is outside …`.
    pub fn bad_message_text(index: Option<usize>, reason: &BadReply) -> String {
        match index {
            Some(index) => format!("messages[{index}] {}", reason.problem()),
            None => format!("message {}", reason.problem()),
        }
    }
}

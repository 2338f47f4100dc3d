//! Stanza errors: the HTTP status table (DESIGN §2 rule 4) and error replies.

use crate::stanza::{COMPONENT_NS, STANZAS_NS, is_xml_char, set_attr};
use crate::{Request, StanzaKind};
use minidom::Element;
use std::fmt;

/// The `type` of a stanza `<error/>` (RFC 6120 §8.3.2): what the sender
/// should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stanza error: type, defined condition and optional text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaErrorSpec {
    /// What the sender should do (retry later, give up, …).
    pub error_type: ErrorType,
    /// The RFC 6120 defined condition, e.g. `item-not-found`.
    pub condition: &'static str,
    /// Human-readable text for the user, if any.
    pub text: Option<String>,
}

impl StanzaErrorSpec {
    pub fn new(error_type: ErrorType, condition: &'static str, text: Option<&str>) -> Self {
        StanzaErrorSpec {
            error_type,
            condition,
            text: text.map(str::to_owned),
        }
    }
}

impl fmt::Display for StanzaErrorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.error_type, self.condition)?;
        if let Some(text) = &self.text {
            write!(f, " ({text})")?;
        }
        Ok(())
    }
}

/// The error the sender gets when the bot did not answer at all.
pub fn no_response_error() -> StanzaErrorSpec {
    StanzaErrorSpec::new(
        ErrorType::Cancel,
        "remote-server-timeout",
        Some("Connection failure"),
    )
}

/// The error the sender gets for a stanza larger than the connector takes
/// (DESIGN §12): a limit of the service, so the sender should not retry it
/// as it is.
pub fn too_large_error() -> StanzaErrorSpec {
    StanzaErrorSpec::new(
        ErrorType::Modify,
        "policy-violation",
        Some("The stanza is too large for the bot"),
    )
}

/// The error for a non-2xx HTTP status from the bot (`0` = no response).
pub fn error_for_status(status: u16) -> StanzaErrorSpec {
    use ErrorType::*;
    let (error_type, condition, text) = match status {
        0 => return no_response_error(),
        400 => (Modify, "bad-request", None),
        401 => (Auth, "not-authorized", None),
        402 => (Auth, "forbidden", Some("Payment required")),
        403 => (Auth, "forbidden", None),
        404 => (Cancel, "item-not-found", None),
        410 => (Cancel, "gone", None),
        500 => (Cancel, "internal-server-error", None),
        501 => (Cancel, "feature-not-implemented", None),
        502 => (Cancel, "remote-server-timeout", Some("Bad gateway")),
        503 => (
            Wait,
            "remote-server-timeout",
            Some("Service temporarily unavailable"),
        ),
        504 => (Wait, "remote-server-timeout", Some("Gateway timeout")),
        _ => (Cancel, "service-unavailable", None),
    };
    StanzaErrorSpec::new(error_type, condition, text)
}

/// Whether a stanza of this kind and type may be answered with an error:
/// never an error (no loops), and of IQs only requests (`get`/`set`).
pub(crate) fn may_answer_with_error(kind: StanzaKind, stanza_type: Option<&str>) -> bool {
    match (kind, stanza_type) {
        (_, Some("error")) => false,
        (StanzaKind::Iq, Some("get" | "set")) => true,
        (StanzaKind::Iq, _) => false,
        _ => true,
    }
}

/// An error stanza of `kind` with the given addresses and id.
pub(crate) fn error_element(
    kind: StanzaKind,
    to: &str,
    from: &str,
    id: Option<&str>,
    spec: &StanzaErrorSpec,
) -> Element {
    let mut error = Element::builder("error", COMPONENT_NS).build();
    set_attr(&mut error, "type", spec.error_type.as_str());
    error.append_child(Element::bare(spec.condition, STANZAS_NS));
    if let Some(text) = &spec.text {
        let mut text_element = Element::bare("text", STANZAS_NS);
        text_element.append_text_node(text.as_str());
        error.append_child(text_element);
    }
    let mut stanza = Element::builder(kind.as_str(), COMPONENT_NS).build();
    set_attr(&mut stanza, "type", "error");
    set_attr(&mut stanza, "to", to);
    set_attr(&mut stanza, "from", from);
    if let Some(id) = id {
        set_attr(&mut stanza, "id", id);
    }
    stanza.append_child(error);
    stanza
}

/// The error reply to a request: addresses swapped, same kind and id.
/// `None` where no error may be sent: the request was itself an error or an
/// IQ result, it came through a room (rooms kick an occupant that sends an
/// error: Prosody for internal-server-error, remote-server-timeout,
/// service-unavailable…; the reason is only logged then), or its addresses
/// or id cannot be written (a request that did not come from a received
/// stanza; minidom's writer would panic).
pub fn error_reply(request: &Request, spec: &StanzaErrorSpec) -> Option<Element> {
    if request.room.is_some() {
        return None;
    }
    let writable = jid::Jid::new(&request.from).is_ok()
        && jid::Jid::new(&request.to).is_ok()
        && request
            .id
            .as_deref()
            .is_none_or(|id| id.chars().all(is_xml_char));
    let allowed = may_answer_with_error(request.kind, request.stanza_type.as_deref());
    (writable && allowed).then(|| {
        error_element(
            request.kind,
            &request.from,
            &request.to,
            request.id.as_deref(),
            spec,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_type_condition_and_text() {
        assert_eq!(
            error_for_status(0).to_string(),
            "cancel/remote-server-timeout (Connection failure)"
        );
        assert_eq!(error_for_status(404).to_string(), "cancel/item-not-found");
        assert_eq!(
            error_for_status(418).to_string(),
            "cancel/service-unavailable"
        );
    }
}

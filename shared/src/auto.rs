//! What the connector answers by itself (DESIGN §3): presence, so the bot is
//! always online and anyone may subscribe, and the IQs every entity must
//! answer.

use crate::errors::{error_element, may_answer_with_error};
use crate::stanza::{COMPONENT_NS, set_attr};
use crate::{ErrorType, StanzaErrorSpec, StanzaKind};
use minidom::Element;

const PING_NS: &str = "urn:xmpp:ping";
const DISCO_INFO_NS: &str = "http://jabber.org/protocol/disco#info";

/// Whether `to` is the component domain itself or a bare JID at it.
fn is_component_address(to: &str, domain: &str) -> bool {
    match jid::Jid::new(to) {
        Ok(jid) => jid.domain().as_str() == domain && jid.resource().is_none(),
        Err(_) => false,
    }
}

fn presence(to: &str, from: &str, presence_type: Option<&str>) -> Element {
    let mut stanza = Element::builder("presence", COMPONENT_NS).build();
    set_attr(&mut stanza, "to", to);
    set_attr(&mut stanza, "from", from);
    if let Some(presence_type) = presence_type {
        set_attr(&mut stanza, "type", presence_type);
    }
    stanza
}

/// The automatic answer to a presence stanza addressed to the component (a
/// bare JID at it, or the domain): `probe` → available; `subscribe` →
/// `subscribed` then available; `unsubscribe` → unavailable. Available and
/// unavailable come from `<JID>/default`. Anything else gets no answer.
pub fn presence_auto_answer(stanza: &Element, domain: &str) -> Vec<Element> {
    let (Some(to), Some(from)) = (stanza.attr("to"), stanza.attr("from")) else {
        return Vec::new();
    };
    if stanza.name() != "presence" || !is_component_address(to, domain) {
        return Vec::new();
    }
    let online = format!("{to}/default");
    match stanza.attr("type") {
        Some("probe") => vec![presence(from, &online, None)],
        Some("subscribe") => vec![
            presence(from, to, Some("subscribed")),
            presence(from, &online, None),
        ],
        Some("unsubscribe") => vec![presence(from, &online, Some("unavailable"))],
        _ => Vec::new(),
    }
}

/// The automatic answer to an IQ when IQs are not forwarded: XEP-0199 ping
/// and XEP-0030 disco#info are answered, any other `get`/`set` gets
/// `cancel/service-unavailable`; results and errors get nothing.
pub fn iq_auto_answer(stanza: &Element, domain: &str) -> Option<Element> {
    if stanza.name() != "iq" {
        return None;
    }
    let iq_type = stanza.attr("type");
    if !may_answer_with_error(StanzaKind::Iq, iq_type) {
        return None;
    }
    let to = stanza.attr("to")?;
    let from = stanza.attr("from")?;
    let id = stanza.attr("id");
    let payload = stanza.children().next();
    let is_get = iq_type == Some("get");
    let result = |payload: Option<Element>| {
        let mut iq = Element::builder("iq", COMPONENT_NS).build();
        set_attr(&mut iq, "type", "result");
        set_attr(&mut iq, "to", from);
        set_attr(&mut iq, "from", to);
        if let Some(id) = id {
            set_attr(&mut iq, "id", id);
        }
        if let Some(payload) = payload {
            iq.append_child(payload);
        }
        iq
    };
    match payload {
        Some(p) if is_get && p.is("ping", PING_NS) => Some(result(None)),
        Some(p) if is_get && p.is("query", DISCO_INFO_NS) && p.attr("node").is_none() => {
            Some(result(Some(disco_info(to, domain))))
        }
        _ => Some(error_element(
            StanzaKind::Iq,
            from,
            to,
            id,
            &StanzaErrorSpec::new(ErrorType::Cancel, "service-unavailable", None),
        )),
    }
}

/// The disco#info of the component (a generic component) or of a bot JID
/// at it (a client of type bot, XEP-0030 registry).
fn disco_info(to: &str, domain: &str) -> Element {
    let (category, identity_type) = if to == domain {
        ("component", "generic")
    } else {
        ("client", "bot")
    };
    let mut identity = Element::bare("identity", DISCO_INFO_NS);
    set_attr(&mut identity, "category", category);
    set_attr(&mut identity, "type", identity_type);
    set_attr(&mut identity, "name", "xmpp-lambda");
    let mut query = Element::bare("query", DISCO_INFO_NS);
    query.append_child(identity);
    for var in [DISCO_INFO_NS, PING_NS] {
        let mut feature = Element::bare("feature", DISCO_INFO_NS);
        set_attr(&mut feature, "var", var);
        query.append_child(feature);
    }
    query
}

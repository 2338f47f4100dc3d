//! The reply rules (DESIGN §2): a bot's HTTP outcome → the stanzas to send.

use crate::errors::{error_element, error_for_status, error_reply};
use crate::muc::BOT_MARK_NS;
use crate::stanza::{COMPONENT_NS, InvalidStanza, is_xml_char, parse_stanza, set_attr};
use crate::{BotResponse, ErrorType, Request, StanzaErrorSpec, StanzaKind};
use minidom::Element;
use serde_json::{Map, Value};

/// The largest reply a bot may send: a `body`, or a whole `stanza` as text,
/// in bytes. Larger replies are refused rather than risk the XMPP server
/// closing the component link over an oversized stanza.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a bot's reply (or a pushed message, DESIGN §6) was refused. It is
/// never sent; for a reply the sender gets `cancel/internal-server-error`
/// and the log gets this reason.
///
/// The text says what was wrong ([`BadReply::problem`]); shown as a reply's
/// reason it starts with "reply", as a pushed message's with "message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadReply {
    InvalidJson(String),
    NotAnObject,
    WrongFieldType {
        field: &'static str,
        expected: &'static str,
    },
    UnknownKind(String),
    InvalidStanza(InvalidStanza),
    InvalidJid {
        field: &'static str,
        value: String,
    },
    ForeignFrom {
        from: String,
        domain: String,
    },
    TooLarge {
        field: &'static str,
        size: usize,
    },
    /// JSON can carry characters XML 1.0 cannot (most C0 controls, U+FFFE,
    /// U+FFFF); written to the stream they would make it invalid, and the
    /// XML writer refuses them. Refused rather than stripped so the bot's
    /// author sees the reason in the log.
    ForbiddenCharacter {
        field: &'static str,
        character: char,
    },
    /// A pushed message names no recipient: it has no reply to fall back on.
    MissingTo,
    /// The request itself cannot be answered: it did not come from a stanza
    /// this component received (a forged or corrupted reply envelope), and
    /// any stanza addressed from its fields would be invalid XML or a `from`
    /// the server closes the link over. Nothing is sent, not even an error.
    UnanswerableRequest(String),
}

impl BadReply {
    /// What is wrong, without saying what it is wrong with: `"from" "x@y"
    /// is outside the component's domain "bot.example.com"`.
    pub fn problem(&self) -> String {
        match self {
            BadReply::InvalidJson(error) => format!("is not valid JSON: {error}"),
            BadReply::NotAnObject => "JSON is not an object".to_owned(),
            BadReply::WrongFieldType { field, expected } => {
                format!("field {field:?} must be {expected}")
            }
            BadReply::UnknownKind(kind) => {
                format!("kind {kind:?} is not message, presence or iq")
            }
            BadReply::InvalidStanza(error) => format!("stanza is invalid: {error}"),
            BadReply::InvalidJid { field, value } => {
                format!("{field:?} {value:?} is not a valid JID")
            }
            BadReply::ForeignFrom { from, domain } => {
                format!("\"from\" {from:?} is outside the component's domain {domain:?}")
            }
            BadReply::TooLarge { field, size } => {
                format!("{field:?} is {size} bytes, over the limit of {MAX_BODY_BYTES}")
            }
            BadReply::ForbiddenCharacter { field, character } => format!(
                "{field:?} contains U+{:04X}, which XML does not allow",
                u32::from(*character)
            ),
            BadReply::MissingTo => "\"to\" is required".to_owned(),
            BadReply::UnanswerableRequest(why) => format!("cannot be answered: {why}"),
        }
    }
}

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadReply::UnanswerableRequest(why) => {
                write!(f, "the request cannot be answered: {why}")
            }
            other => write!(f, "reply {}", other.problem()),
        }
    }
}

impl std::error::Error for BadReply {}

impl From<InvalidStanza> for BadReply {
    fn from(error: InvalidStanza) -> Self {
        BadReply::InvalidStanza(error)
    }
}

impl BadReply {
    /// The short text the sender sees.
    fn user_text(&self) -> &'static str {
        match self {
            BadReply::InvalidJson(_)
            | BadReply::NotAnObject
            | BadReply::WrongFieldType { .. }
            | BadReply::ForbiddenCharacter { .. } => "The bot sent an invalid reply",
            BadReply::UnknownKind(_) | BadReply::InvalidStanza(_) => {
                "The bot sent an invalid stanza"
            }
            BadReply::InvalidJid { .. } | BadReply::ForeignFrom { .. } | BadReply::MissingTo => {
                "The bot sent a reply with an invalid address"
            }
            BadReply::TooLarge { .. } => "The bot's reply is too large",
            // Never sent (see `bad_reply_error`); named for completeness.
            BadReply::UnanswerableRequest(_) => "The request could not be answered",
        }
    }
}

/// A bot's JSON reply object, read field by field so a wrong type gets a
/// clear reason. Every field is optional (§2 rule 2 fills the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// A whole stanza as XML; overrides every other field but the addresses.
    pub stanza: Option<String>,
    /// `message`, `presence` or `iq`; defaults to `message`.
    pub kind: Option<String>,
    /// Defaults to the request's `from`.
    pub to: Option<String>,
    /// Defaults to the request's `to`.
    pub from: Option<String>,
    /// The message text (a JSON number is taken as its text).
    pub body: Option<String>,
    /// The stanza's `type`.
    pub stanza_type: Option<String>,
    /// The stanza's `id` (honoured for IQs; messages always get a fresh one).
    pub id: Option<String>,
}

impl Reply {
    /// Reads a reply body. `Ok(None)` when there is nothing to send (an empty
    /// body or `null`).
    pub fn from_json(text: &str) -> Result<Option<Reply>, BadReply> {
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| BadReply::InvalidJson(e.to_string()))?;
        match value {
            Value::Null => Ok(None),
            Value::Object(object) => Reply::from_object(&object).map(Some),
            _ => Err(BadReply::NotAnObject),
        }
    }

    pub(crate) fn from_object(object: &Map<String, Value>) -> Result<Reply, BadReply> {
        let body = match object.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Number(number)) => Some(number.to_string()),
            Some(_) => {
                return Err(BadReply::WrongFieldType {
                    field: "body",
                    expected: "a string or a number",
                });
            }
        };
        Ok(Reply {
            stanza: string_field(object, "stanza")?,
            kind: string_field(object, "kind")?,
            to: string_field(object, "to")?,
            from: string_field(object, "from")?,
            body,
            stanza_type: string_field(object, "type")?,
            id: string_field(object, "id")?,
        })
    }
}

fn string_field(
    object: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, BadReply> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(BadReply::WrongFieldType {
            field,
            expected: "a string",
        }),
    }
}

/// Checks a reply's `to`.
fn checked_to(to: &str) -> Result<(), BadReply> {
    jid::Jid::new(to)
        .map(drop)
        .map_err(|_| BadReply::InvalidJid {
            field: "to",
            value: to.to_owned(),
        })
}

/// Checks a reply's `from`: a JID in the component's own domain, since the
/// XMPP server closes the whole link over any other.
fn checked_from(from: &str, domain: &str) -> Result<(), BadReply> {
    let jid = jid::Jid::new(from).map_err(|_| BadReply::InvalidJid {
        field: "from",
        value: from.to_owned(),
    })?;
    if jid.domain().as_str() != domain {
        return Err(BadReply::ForeignFrom {
            from: from.to_owned(),
            domain: domain.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn checked_size(field: &'static str, text: &str) -> Result<(), BadReply> {
    if text.len() > MAX_BODY_BYTES {
        return Err(BadReply::TooLarge {
            field,
            size: text.len(),
        });
    }
    Ok(())
}

/// Checks that a stanza can be addressed back from the request's fields,
/// which the reply and error stanzas copy: both addresses valid JIDs, the
/// recipient at the component (it becomes the `from`), an id XML can carry.
fn checked_request(request: &Request, domain: &str) -> Result<(), BadReply> {
    if jid::Jid::new(&request.from).is_err() {
        return Err(BadReply::UnanswerableRequest(format!(
            "its \"from\" {:?} is not a valid JID",
            request.from
        )));
    }
    if checked_from(&request.to, domain).is_err() {
        return Err(BadReply::UnanswerableRequest(format!(
            "its \"to\" {:?} is not a JID at the component's domain {domain:?}",
            request.to
        )));
    }
    if let Some(character) = request
        .id
        .as_deref()
        .and_then(|id| id.chars().find(|&c| !is_xml_char(c)))
    {
        return Err(BadReply::UnanswerableRequest(format!(
            "its \"id\" contains U+{:04X}, which XML does not allow",
            u32::from(character)
        )));
    }
    Ok(())
}

/// Checks text from the bot's JSON that becomes XML text or an attribute.
fn checked_chars(field: &'static str, text: &str) -> Result<(), BadReply> {
    match text.chars().find(|&c| !is_xml_char(c)) {
        Some(character) => Err(BadReply::ForbiddenCharacter { field, character }),
        None => Ok(()),
    }
}

/// The message types a reply inherits from the request; anything else
/// (including `headline` and no type) gets `chat`.
fn reply_message_type(request: &Request) -> &str {
    match (request.kind, request.stanza_type.as_deref()) {
        (StanzaKind::Message, Some(t @ ("chat" | "normal" | "groupchat"))) => t,
        _ => "chat",
    }
}

/// The bare part of a JID (everything before the first `/`).
pub(crate) fn bare(jid: &str) -> &str {
    jid.split('/').next().unwrap_or(jid)
}

/// What a stanza built from a bot's JSON fields gets where a field is
/// missing: from the request for a reply (§2), from the component for a
/// pushed message (§6).
pub(crate) struct Defaults<'a> {
    /// The recipient of a stanza without `to`.
    pub to: &'a str,
    /// The recipient of a `groupchat` message without `to`: the room.
    pub groupchat_to: &'a str,
    /// The sender of a stanza without `from`.
    pub from: &'a str,
    /// The `type` of a message without one.
    pub message_type: &'a str,
    /// The `id` of an IQ without one.
    pub iq_id: IqId<'a>,
    /// `to`, `groupchat_to` and `from` are known to pass the checks a
    /// stanza's addresses get (they come from a request that passed them),
    /// so a stanza that keeps them is not checked again.
    pub checked: bool,
}

/// Where an IQ without an `id` gets one.
pub(crate) enum IqId<'a> {
    /// The request's, so the sender can match the answer (none if it had
    /// none).
    Request(Option<&'a str>),
    /// A fresh one: a pushed IQ answers nothing.
    Fresh,
}

/// Builds the stanza to send from a bot's reply object (rule 2), filling
/// what is missing from `defaults`, and checks it can be sent (rule 5).
pub(crate) fn build_stanza(
    reply: &Reply,
    defaults: &Defaults<'_>,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Element, BadReply> {
    let mut stanza = match &reply.stanza {
        Some(xml) => {
            checked_size("stanza", xml)?;
            parse_stanza(xml)?
        }
        None => fields_to_stanza(reply, defaults)?,
    };
    if stanza.attr("to").is_none() {
        set_attr(&mut stanza, "to", defaults.to);
    }
    if stanza.attr("from").is_none() {
        set_attr(&mut stanza, "from", defaults.from);
    }
    let to = stanza.attr("to").unwrap_or_default();
    if !(defaults.checked && (to == defaults.to || to == defaults.groupchat_to)) {
        checked_to(to)?;
    }
    let from = stanza.attr("from").unwrap_or_default();
    if !(defaults.checked && from == defaults.from) {
        checked_from(from, domain)?;
    }
    if stanza.name() == "message"
        && stanza.attr("type") == Some("groupchat")
        && !stanza.has_child("x", BOT_MARK_NS)
    {
        // Another xmpp-lambda bot in the room will not answer it.
        stanza.append_child(Element::bare("x", BOT_MARK_NS));
    }
    match stanza.name() {
        // Clients drop a message whose id they have seen, and bots often
        // echo the request's: every message gets its own.
        "message" => set_attr(&mut stanza, "id", &new_id()),
        "iq" if stanza.attr("id").is_none() => match defaults.iq_id {
            IqId::Request(Some(id)) => set_attr(&mut stanza, "id", id),
            IqId::Request(None) => {}
            IqId::Fresh => set_attr(&mut stanza, "id", &new_id()),
        },
        _ => {}
    }
    Ok(stanza)
}

/// Builds the reply stanza from a bot's reply object (rule 2).
fn reply_to_stanza(
    request: &Request,
    reply: &Reply,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Element, BadReply> {
    let defaults = Defaults {
        to: &request.from,
        // A groupchat message goes to the room, not to the occupant.
        groupchat_to: bare(&request.from),
        from: &request.to,
        message_type: reply_message_type(request),
        iq_id: IqId::Request(request.id.as_deref()),
        // `checked_request` has checked both of the request's addresses.
        checked: true,
    };
    build_stanza(reply, &defaults, domain, new_id)
}

/// A stanza from the reply's fields, with the defaults for the rest.
fn fields_to_stanza(reply: &Reply, defaults: &Defaults<'_>) -> Result<Element, BadReply> {
    let kind = match reply.kind.as_deref() {
        None => StanzaKind::Message,
        Some(name) => name
            .parse()
            .map_err(|_| BadReply::UnknownKind(name.to_owned()))?,
    };
    let mut stanza = Element::builder(kind.as_str(), COMPONENT_NS).build();
    let stanza_type = match kind {
        StanzaKind::Message => Some(
            reply
                .stanza_type
                .as_deref()
                .unwrap_or(defaults.message_type),
        ),
        StanzaKind::Presence => reply.stanza_type.as_deref(),
        StanzaKind::Iq => Some(reply.stanza_type.as_deref().unwrap_or("result")),
    };
    let to = match (&reply.to, stanza_type) {
        (Some(to), _) => to.as_str(),
        (None, Some("groupchat")) => defaults.groupchat_to,
        (None, _) => defaults.to,
    };
    set_attr(&mut stanza, "to", to);
    set_attr(
        &mut stanza,
        "from",
        reply.from.as_deref().unwrap_or(defaults.from),
    );
    if let Some(stanza_type) = stanza_type {
        checked_chars("type", stanza_type)?;
        set_attr(&mut stanza, "type", stanza_type);
    }
    if let Some(id) = &reply.id {
        checked_chars("id", id)?;
        set_attr(&mut stanza, "id", id);
    }
    if let (StanzaKind::Message, Some(text)) = (kind, &reply.body) {
        checked_size("body", text)?;
        checked_chars("body", text)?;
        let mut body = Element::bare("body", COMPONENT_NS);
        // An empty text node would not survive a round trip (`<body/>`
        // parses back without one).
        if !text.is_empty() {
            body.append_text_node(text.as_str());
        }
        stanza.append_child(body);
    }
    Ok(stanza)
}

/// The stanzas a bot's outcome turns into (rules 1–4), or why the bot's
/// reply was refused (rule 5). `new_id` gives a fresh stanza id each call.
///
/// An IQ request (`get`/`set`) is always answered: when the bot gives no IQ
/// `result` or `error`, `cancel/service-unavailable` is added.
pub fn response_to_stanzas(
    request: &Request,
    response: &BotResponse,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> Result<Vec<Element>, BadReply> {
    if request.stanza_type.as_deref() == Some("error") {
        return Ok(Vec::new());
    }
    checked_request(request, domain)?;
    let mut stanzas = match response.status {
        200 if response.is_json() => match Reply::from_json(&response.body)? {
            Some(reply) => vec![reply_to_stanza(request, &reply, domain, new_id)?],
            None => Vec::new(),
        },
        200..=299 => Vec::new(),
        status => error_reply(request, &error_for_status(status))
            .into_iter()
            .collect(),
    };
    let unanswered_iq = request.kind == StanzaKind::Iq
        && matches!(request.stanza_type.as_deref(), Some("get" | "set"))
        && !stanzas
            .iter()
            .any(|s| s.name() == "iq" && matches!(s.attr("type"), Some("result" | "error")));
    if unanswered_iq {
        stanzas.push(error_element(
            StanzaKind::Iq,
            &request.from,
            &request.to,
            request.id.as_deref(),
            &StanzaErrorSpec::new(ErrorType::Cancel, "service-unavailable", None),
        ));
    }
    Ok(stanzas)
}

/// The error the sender gets for a refused reply:
/// `cancel/internal-server-error` with a short text. `None` where no error
/// may be sent, and for a request that cannot be answered at all.
pub fn bad_reply_error(request: &Request, reason: &BadReply) -> Option<Element> {
    if matches!(reason, BadReply::UnanswerableRequest(_)) {
        return None;
    }
    error_reply(
        request,
        &StanzaErrorSpec::new(
            ErrorType::Cancel,
            "internal-server-error",
            Some(reason.user_text()),
        ),
    )
}

/// Everything to write for a bot's outcome: the reply stanzas, or the error
/// for a refused reply along with the reason to log.
pub fn stanzas_to_send(
    request: &Request,
    response: &BotResponse,
    domain: &str,
    new_id: &mut dyn FnMut() -> String,
) -> (Vec<Element>, Option<BadReply>) {
    match response_to_stanzas(request, response, domain, new_id) {
        Ok(stanzas) => (stanzas, None),
        Err(reason) => (
            bad_reply_error(request, &reason).into_iter().collect(),
            Some(reason),
        ),
    }
}

#[cfg(test)]
mod tests {
    //! What the golden cases in `tests/golden/` cannot spell: replies of
    //! 64 KiB, and requests no received stanza could produce.
    use super::*;
    use crate::stanza::element_to_string;

    fn request() -> Request {
        Request {
            to: "echo@bot.example.com".into(),
            from: "alice@example.com/phone".into(),
            kind: StanzaKind::Message,
            stanza: String::new(),
            body: Some("hi".into()),
            stanza_type: Some("chat".into()),
            id: Some("m1".into()),
            room: None,
            nick: None,
            mention: None,
        }
    }

    fn send(request: &Request, response: &BotResponse) -> (Vec<Element>, Option<String>) {
        let mut ids = 0;
        let (stanzas, reason) = stanzas_to_send(request, response, "bot.example.com", &mut || {
            ids += 1;
            format!("id-{ids}")
        });
        // Whatever comes out must be writable: minidom panics otherwise.
        for stanza in &stanzas {
            element_to_string(stanza);
        }
        (stanzas, reason.map(|r| r.to_string()))
    }

    fn json_body(text: &str) -> BotResponse {
        BotResponse::json(serde_json::json!({ "body": text }).to_string())
    }

    #[test]
    fn a_body_at_the_limit_is_sent_and_one_byte_more_is_refused() {
        let (stanzas, reason) = send(&request(), &json_body(&"a".repeat(MAX_BODY_BYTES)));
        assert_eq!(reason, None);
        assert_eq!(stanzas.len(), 1);
        // A multi-byte character counts by its bytes.
        let over = "é".repeat(MAX_BODY_BYTES / 2) + "a";
        let (stanzas, reason) = send(&request(), &json_body(&over));
        assert_eq!(
            reason.as_deref(),
            Some("reply \"body\" is 65537 bytes, over the limit of 65536")
        );
        assert_eq!(stanzas.len(), 1);
        assert_eq!(
            stanzas[0]
                .get_child("error", COMPONENT_NS)
                .and_then(|e| e.get_child("text", crate::STANZAS_NS))
                .map(Element::text)
                .as_deref(),
            Some("The bot's reply is too large")
        );
    }

    #[test]
    fn a_stanza_over_the_limit_is_refused_before_it_is_parsed() {
        let stanza = format!(
            "<message><body>{}</body></message>",
            "a".repeat(MAX_BODY_BYTES)
        );
        let response = BotResponse::json(serde_json::json!({ "stanza": stanza }).to_string());
        let (_, reason) = send(&request(), &response);
        assert_eq!(
            reason.as_deref(),
            Some("reply \"stanza\" is 65568 bytes, over the limit of 65536")
        );
    }

    #[test]
    fn a_request_no_stanza_could_produce_is_never_answered() {
        let cases = [
            (
                Request {
                    from: "alice\u{1}@example.com".into(),
                    ..request()
                },
                "the request cannot be answered: its \"from\" \"alice\\u{1}@example.com\" is not a valid JID",
            ),
            (
                Request {
                    to: "admin@example.com".into(),
                    ..request()
                },
                "the request cannot be answered: its \"to\" \"admin@example.com\" is not a JID at the component's domain \"bot.example.com\"",
            ),
            (
                Request {
                    id: Some("m\u{1b}".into()),
                    ..request()
                },
                "the request cannot be answered: its \"id\" contains U+001B, which XML does not allow",
            ),
        ];
        for (request, expected) in cases {
            for response in [
                json_body("ok"),
                BotResponse::from_http(500, None, b""),
                BotResponse::no_response(),
                BotResponse::json("not json"),
            ] {
                let (stanzas, reason) = send(&request, &response);
                assert_eq!(stanzas, Vec::<Element>::new(), "{request:?} {response:?}");
                assert_eq!(reason.as_deref(), Some(expected), "{response:?}");
            }
        }
    }

    #[test]
    fn error_reply_refuses_what_it_cannot_address() {
        let spec = crate::error_for_status(500);
        assert!(error_reply(&request(), &spec).is_some());
        let bad_from = Request {
            from: String::new(),
            ..request()
        };
        assert_eq!(error_reply(&bad_from, &spec), None);
        let bad_id = Request {
            id: Some("\u{fffe}".into()),
            ..request()
        };
        assert_eq!(error_reply(&bad_id, &spec), None);
    }
}

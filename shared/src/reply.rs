//! The reply rules (DESIGN §2): a bot's HTTP outcome → the stanzas to send.

use crate::errors::{error_element, error_for_status, error_reply};
use crate::muc::BOT_MARK_NS;
use crate::stanza::{COMPONENT_NS, InvalidStanza, bare, is_xml_char, parse_stanza, set_attr};
use crate::{BotResponse, ErrorType, Request, StanzaErrorSpec, StanzaKind};
use minidom::Element;
use serde_json::{Map, Value};

/// The largest reply a bot may send: a `body`, or a whole `stanza` as text,
/// in bytes. Larger replies are refused rather than risk the XMPP server
/// closing the component link over an oversized stanza.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most replies one answer may hold (`{"replies": [...]}`): as many as
/// a send envelope, so no answer writes more than SQS could carry at once.
pub const MAX_REPLIES: usize = 10;

/// The longest `url` a reply may attach, in bytes (as given and as sent).
pub const MAX_URL_BYTES: usize = 4096;

/// XEP-0066's namespace of out-of-band data: the `url` a reply attaches.
pub const OOB_NS: &str = "jabber:x:oob";

/// The fields of a reply object, in the order they are read: what
/// `"replies"` may not stand beside.
const REPLY_FIELDS: [&str; 8] = ["body", "stanza", "kind", "to", "from", "type", "id", "url"];

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
    /// `"replies"` holds no reply, or more than [`MAX_REPLIES`]: the count.
    RepliesCount(usize),
    /// A field that says the whole stanza (`replies`, `url`) stands beside
    /// fields it cannot be combined with: which field, and the others.
    Conflict {
        /// The field that stands for the whole stanza.
        field: &'static str,
        /// The fields beside it, in the order a reply is read.
        with: Vec<&'static str>,
    },
    /// `"replies"` inside a reply of a list, or in a pushed message: only
    /// an answer to a request is a list of replies (push takes lists its
    /// own way).
    MisplacedReplies,
    /// A reply of a `"replies"` list is refused: its place in the list and
    /// why. None of the list is sent.
    AtIndex {
        index: usize,
        reason: Box<BadReply>,
    },
    /// A `url` whose scheme is not http or https (clients fetch only those;
    /// `javascript:` or `file:` would be worse than useless).
    UrlScheme(String),
    /// A `url` over [`MAX_URL_BYTES`]: its size in bytes.
    UrlTooLong(usize),
    /// A `url` that is not a URL: the parser's reason.
    InvalidUrl(String),
    /// A `url` on a presence or an IQ, where XEP-0066's `jabber:x:oob`
    /// means nothing: the kind.
    UrlNotOnMessage(String),
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
            BadReply::RepliesCount(0) => {
                format!("\"replies\" is empty (expected 1 to {MAX_REPLIES} replies)")
            }
            BadReply::RepliesCount(count) => {
                format!("\"replies\" holds {count} replies (expected 1 to {MAX_REPLIES})")
            }
            BadReply::Conflict { field, with } => {
                let others: Vec<String> = with.iter().map(|other| format!("{other:?}")).collect();
                format!("{field:?} cannot be combined with {}", others.join(", "))
            }
            BadReply::MisplacedReplies => {
                "\"replies\" is only allowed at the top level of an answer to a request".to_owned()
            }
            BadReply::AtIndex { index, reason } => match **reason {
                BadReply::NotAnObject => format!("replies[{index}] is not an object"),
                ref reason => format!("replies[{index}] {}", reason.problem()),
            },
            BadReply::UrlScheme(scheme) => {
                format!("\"url\" must be http or https, not {scheme:?}")
            }
            BadReply::UrlTooLong(size) => {
                format!("\"url\" is {size} bytes, over the limit of {MAX_URL_BYTES}")
            }
            BadReply::InvalidUrl(why) => format!("\"url\" is not a valid URL ({why})"),
            BadReply::UrlNotOnMessage(kind) => {
                format!("\"url\" is only for messages, not {kind}")
            }
        }
    }
}

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadReply::UnanswerableRequest(why) => {
                write!(f, "the request cannot be answered: {why}")
            }
            // `replies[2] …` says where it is already.
            BadReply::AtIndex { .. } => f.write_str(&self.problem()),
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
            | BadReply::ForbiddenCharacter { .. }
            | BadReply::RepliesCount(_)
            | BadReply::Conflict { .. }
            | BadReply::MisplacedReplies
            | BadReply::UrlScheme(_)
            | BadReply::InvalidUrl(_)
            | BadReply::UrlNotOnMessage(_) => "The bot sent an invalid reply",
            BadReply::AtIndex { reason, .. } => reason.user_text(),
            BadReply::UrlTooLong(_) => "The bot's reply is too large",
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
    /// A file or page to attach (XEP-0066 out-of-band data), as the URL
    /// parser writes it; the body defaults to it, so clients show the file
    /// inline. Messages only, never with `stanza`.
    pub url: Option<String>,
}

impl Reply {
    /// Reads a bot's whole answer: no reply (an empty body or `null`), one
    /// reply object, or `{"replies": [reply, …]}` (1 to [`MAX_REPLIES`]),
    /// every one of them read before any is returned.
    pub fn list_from_json(text: &str) -> Result<Vec<Reply>, BadReply> {
        replies_of_answer(text).map(|(replies, _)| replies)
    }

    /// Reads one reply object. `Ok(None)` when there is nothing to send (an
    /// empty body or `null`); a `"replies"` list is refused here (read a
    /// whole answer with [`Reply::list_from_json`]).
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
        if object
            .get("replies")
            .is_some_and(|replies| !replies.is_null())
        {
            return Err(BadReply::MisplacedReplies);
        }
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
        let mut reply = Reply {
            stanza: string_field(object, "stanza")?,
            kind: string_field(object, "kind")?,
            to: string_field(object, "to")?,
            from: string_field(object, "from")?,
            body,
            stanza_type: string_field(object, "type")?,
            id: string_field(object, "id")?,
            url: None,
        };
        if let Some(url) = string_field(object, "url")? {
            if reply.stanza.is_some() {
                return Err(BadReply::Conflict {
                    field: "url",
                    with: vec!["stanza"],
                });
            }
            if let Some(kind) = reply.kind.as_deref() {
                match kind.parse::<StanzaKind>() {
                    Ok(StanzaKind::Message) => {}
                    Ok(other) => return Err(BadReply::UrlNotOnMessage(other.to_string())),
                    Err(_) => return Err(BadReply::UnknownKind(kind.to_owned())),
                }
            }
            reply.url = Some(checked_url(&url)?);
        }
        Ok(reply)
    }
}

/// A bot's answer as its replies, and whether they came as a
/// `"replies"` list (then a refusal names the reply's place in it).
fn replies_of_answer(text: &str) -> Result<(Vec<Reply>, bool), BadReply> {
    if text.trim().is_empty() {
        return Ok((Vec::new(), false));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| BadReply::InvalidJson(e.to_string()))?;
    let object = match value {
        Value::Null => return Ok((Vec::new(), false)),
        Value::Object(object) => object,
        _ => return Err(BadReply::NotAnObject),
    };
    let list = match object.get("replies") {
        None | Some(Value::Null) => return Reply::from_object(&object).map(|r| (vec![r], false)),
        Some(list) => list,
    };
    let beside: Vec<&'static str> = REPLY_FIELDS
        .into_iter()
        .filter(|field| object.get(*field).is_some_and(|value| !value.is_null()))
        .collect();
    if !beside.is_empty() {
        return Err(BadReply::Conflict {
            field: "replies",
            with: beside,
        });
    }
    let Value::Array(items) = list else {
        return Err(BadReply::WrongFieldType {
            field: "replies",
            expected: "a list of reply objects",
        });
    };
    if items.is_empty() || items.len() > MAX_REPLIES {
        return Err(BadReply::RepliesCount(items.len()));
    }
    let replies = items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(object) => Reply::from_object(object).map_err(|r| r.at(index)),
            _ => Err(BadReply::NotAnObject.at(index)),
        })
        .collect::<Result<Vec<Reply>, BadReply>>()?;
    Ok((replies, true))
}

impl BadReply {
    /// This reason, for the reply at `index` of a `"replies"` list.
    fn at(self, index: usize) -> BadReply {
        BadReply::AtIndex {
            index,
            reason: Box::new(self),
        }
    }
}

/// Checks a reply's `url` and gives it as sent: as the URL parser writes
/// it (spaces and non-ASCII percent-encoded, the host in lower case or
/// punycode), so what clients fetch and what the body shows are one valid
/// URL.
fn checked_url(text: &str) -> Result<String, BadReply> {
    if text.len() > MAX_URL_BYTES {
        return Err(BadReply::UrlTooLong(text.len()));
    }
    checked_chars("url", text)?;
    let url = url::Url::parse(text).map_err(|e| BadReply::InvalidUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BadReply::UrlScheme(url.scheme().to_owned()));
    }
    let url = String::from(url);
    if url.len() > MAX_URL_BYTES {
        return Err(BadReply::UrlTooLong(url.len()));
    }
    Ok(url)
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
pub(crate) fn checked_request(request: &Request, domain: &str) -> Result<(), BadReply> {
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
pub(crate) fn reply_message_type(request: &Request) -> &str {
    match (request.kind, request.stanza_type.as_deref()) {
        (StanzaKind::Message, Some(t @ ("chat" | "normal" | "groupchat"))) => t,
        _ => "chat",
    }
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
    // Without a body, an attachment's body is its URL: clients show a
    // message whose body is its out-of-band URL as the file itself.
    let body = reply.body.as_ref().or(reply.url.as_ref());
    if let (StanzaKind::Message, Some(text)) = (kind, body) {
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
    if let (StanzaKind::Message, Some(url)) = (kind, &reply.url) {
        let mut link = Element::bare("url", OOB_NS);
        link.append_text_node(url.as_str());
        let mut oob = Element::bare("x", OOB_NS);
        oob.append_child(link);
        stanza.append_child(oob);
    }
    Ok(stanza)
}

/// The stanzas a bot's outcome turns into (rules 1–4), or why the bot's
/// reply was refused (rule 5). `new_id` gives a fresh stanza id each call.
///
/// A `{"replies": [...]}` answer gives its replies' stanzas in order, or,
/// when any one is refused, none (the reason names its place in the list).
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
        200 if response.is_json() => {
            let (replies, listed) = replies_of_answer(&response.body)?;
            // Every reply is built and checked before any is returned: one
            // bad reply and none is sent.
            let mut stanzas = Vec::with_capacity(replies.len());
            for (index, reply) in replies.iter().enumerate() {
                let stanza = reply_to_stanza(request, reply, domain, new_id)
                    .map_err(|reason| if listed { reason.at(index) } else { reason })?;
                stanzas.push(stanza);
            }
            stanzas
        }
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
            id: Some("m1".into()),
            ..Request::chat("alice@example.com/phone", "echo@bot.example.com", "hi")
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

    fn json(value: serde_json::Value) -> BotResponse {
        BotResponse::json(value.to_string())
    }

    #[test]
    fn a_url_at_the_limit_is_sent_and_one_byte_more_is_refused() {
        let prefix = "https://example.com/";
        let at_limit = prefix.to_owned() + &"a".repeat(MAX_URL_BYTES - prefix.len());
        let (stanzas, reason) = send(&request(), &json(serde_json::json!({ "url": at_limit })));
        assert_eq!(reason, None);
        let oob = stanzas[0].get_child("x", OOB_NS).expect("oob");
        assert_eq!(
            oob.get_child("url", OOB_NS).map(Element::text),
            Some(at_limit)
        );
        let over = prefix.to_owned() + &"a".repeat(MAX_URL_BYTES - prefix.len() + 1);
        let (stanzas, reason) = send(&request(), &json(serde_json::json!({ "url": over })));
        assert_eq!(
            reason.as_deref(),
            Some("reply \"url\" is 4097 bytes, over the limit of 4096")
        );
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
    fn a_url_that_grows_past_the_limit_when_encoded_is_refused() {
        // 2,000 × "é" is 4,000 bytes as given and 12,000 percent-encoded.
        let url = "https://example.com/".to_owned() + &"é".repeat(2000);
        assert!(url.len() <= MAX_URL_BYTES);
        let (_, reason) = send(&request(), &json(serde_json::json!({ "url": url })));
        assert_eq!(
            reason.as_deref(),
            Some("reply \"url\" is 12020 bytes, over the limit of 4096")
        );
    }

    #[test]
    fn ten_replies_at_the_body_limit_are_all_sent() {
        let body = "a".repeat(MAX_BODY_BYTES);
        let replies: Vec<_> = (0..MAX_REPLIES)
            .map(|_| serde_json::json!({ "body": body }))
            .collect();
        let (stanzas, reason) = send(&request(), &json(serde_json::json!({ "replies": replies })));
        assert_eq!(reason, None);
        assert_eq!(stanzas.len(), MAX_REPLIES);
        let ids: Vec<_> = stanzas.iter().filter_map(|s| s.attr("id")).collect();
        assert_eq!(ids, (1..=10).map(|n| format!("id-{n}")).collect::<Vec<_>>());
        // One byte more in the last one, and none is sent.
        let mut replies = replies;
        replies[9] = serde_json::json!({ "body": body.clone() + "a" });
        let (stanzas, reason) = send(&request(), &json(serde_json::json!({ "replies": replies })));
        assert_eq!(
            reason.as_deref(),
            Some("replies[9] \"body\" is 65537 bytes, over the limit of 65536")
        );
        assert_eq!(stanzas.len(), 1);
        assert_eq!(stanzas[0].attr("type"), Some("error"));
    }

    #[test]
    fn a_whole_answer_and_one_reply_object_are_read_apart() {
        let list = r#"{"replies":[{"body":"a"},{"body":"b"}]}"#;
        let replies = Reply::list_from_json(list).expect("a list");
        assert_eq!(
            replies
                .iter()
                .map(|r| r.body.as_deref())
                .collect::<Vec<_>>(),
            [Some("a"), Some("b")]
        );
        assert_eq!(Reply::list_from_json(" ").expect("nothing"), Vec::new());
        assert_eq!(Reply::list_from_json("null").expect("nothing"), Vec::new());
        assert_eq!(
            Reply::list_from_json(r#"{"body":"x"}"#).expect("one").len(),
            1
        );
        // One reply object is not a list.
        assert_eq!(Reply::from_json(list), Err(BadReply::MisplacedReplies));
        let url = Reply::from_json(r#"{"url":"HTTPS://EXAMPLE.com"}"#)
            .expect("a reply")
            .expect("not empty");
        assert_eq!(url.url.as_deref(), Some("https://example.com/"));
        assert_eq!(url.body, None, "the body defaults to the url when built");
    }

    #[test]
    fn a_refusal_in_a_list_says_where_and_what_the_sender_reads() {
        let reason = BadReply::ForeignFrom {
            from: "x@example.org".into(),
            domain: "bot.example.com".into(),
        }
        .at(3);
        assert_eq!(
            reason.to_string(),
            "replies[3] \"from\" \"x@example.org\" is outside the component's domain \"bot.example.com\""
        );
        assert_eq!(
            reason.user_text(),
            "The bot sent a reply with an invalid address"
        );
        assert_eq!(
            BadReply::NotAnObject.at(0).to_string(),
            "replies[0] is not an object"
        );
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

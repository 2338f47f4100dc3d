//! The request JSON (DESIGN §1): what a bot receives for each stanza.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The three kinds of XMPP stanza, named by their element name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

impl StanzaKind {
    /// The element name, as it appears in XML and in the JSON `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            StanzaKind::Message => "message",
            StanzaKind::Presence => "presence",
            StanzaKind::Iq => "iq",
        }
    }
}

impl fmt::Display for StanzaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not `message`, `presence` or `iq`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stanza kind {0:?} (expected message, presence or iq)")]
pub struct UnknownKind(pub String);

impl FromStr for StanzaKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "message" => Ok(StanzaKind::Message),
            "presence" => Ok(StanzaKind::Presence),
            "iq" => Ok(StanzaKind::Iq),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}

/// A chat state (XEP-0085): what a person is doing in a one-to-one chat.
/// A message that carries one tells that the client shows chat states, so
/// the bot may show its own typing there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatState {
    Active,
    Composing,
    Paused,
    Inactive,
    Gone,
}

impl ChatState {
    /// Every state XEP-0085 defines.
    pub const ALL: [ChatState; 5] = [
        ChatState::Active,
        ChatState::Composing,
        ChatState::Paused,
        ChatState::Inactive,
        ChatState::Gone,
    ];

    /// The element name, as it appears in XML and in the JSON `chat_state`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Active => "active",
            ChatState::Composing => "composing",
            ChatState::Paused => "paused",
            ChatState::Inactive => "inactive",
            ChatState::Gone => "gone",
        }
    }

    /// The state an element of this name stands for; `None` for a name
    /// XEP-0085 does not define.
    pub fn from_name(name: &str) -> Option<ChatState> {
        ChatState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

impl fmt::Display for ChatState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stanza, as JSON for a bot. Field names are mod_component_http's;
/// `type` and `id` are extensions old bots ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The JID the stanza was sent to (somewhere at the component).
    pub to: String,
    /// The sender's JID; replies go back here by default.
    pub from: String,
    /// Which element the stanza is.
    pub kind: StanzaKind,
    /// The whole stanza as XML text in `jabber:client`, for bots that need
    /// more than the body.
    pub stanza: String,
    /// The text of the first `<body>`, absent (not null) when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The stanza's `type` attribute: lets a bot tell chat from groupchat and
    /// lets the reply rules pick the reply's type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub stanza_type: Option<String>,
    /// The stanza's `id`: error replies and IQ results must carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For a message from a room the connector is in (DESIGN §7): the
    /// room's bare JID. Replies to it go to the room; errors are never sent
    /// into a room (rooms kick an occupant that sends one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// For a message from a room: the sender's nick there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nick: Option<String>,
    /// For a `groupchat` message: whether it addresses the bot's nick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention: Option<bool>,
    /// For a message: the chat state it carried (XEP-0085). Its client
    /// shows chat states, so the connector may show the bot typing; kept in
    /// the JSON so the sqs path still knows when the reply envelope comes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_state: Option<ChatState>,
    /// For a message with an `id`: it asks for a delivery receipt
    /// (XEP-0184 `<request/>`), which the connector sends once the bot has
    /// it. Absent when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub receipt_requested: bool,
    /// For a message with an `id`: it is markable (XEP-0333), so the
    /// connector marks it displayed once the bot has answered. Absent when
    /// false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub markable: bool,
}

/// Whether a flag is off, so the JSON leaves it out (as old bots saw it).
fn is_false(flag: &bool) -> bool {
    !*flag
}

impl Request {
    /// Appends the request JSON to `out`: the same bytes as `serde_json`
    /// writes for it (field order, escapes), in a fraction of the
    /// instructions, since the connector writes one per message and the
    /// stanza text is most of it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        json_field(out, "to", true);
        json_string(&self.to, out);
        json_field(out, "from", false);
        json_string(&self.from, out);
        json_field(out, "kind", false);
        json_string(self.kind.as_str(), out);
        json_field(out, "stanza", false);
        json_string(&self.stanza, out);
        let optional = [
            ("body", &self.body),
            ("type", &self.stanza_type),
            ("id", &self.id),
            ("room", &self.room),
            ("nick", &self.nick),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                json_field(out, name, false);
                json_string(value, out);
            }
        }
        if let Some(mention) = self.mention {
            json_field(out, "mention", false);
            out.extend_from_slice(if mention { b"true" } else { b"false" });
        }
        if let Some(state) = self.chat_state {
            json_field(out, "chat_state", false);
            json_string(state.as_str(), out);
        }
        for (name, flag) in self.flags() {
            if flag {
                json_field(out, name, false);
                out.extend_from_slice(b"true");
            }
        }
        out.push(b'}');
    }
}

impl Request {
    /// A one-to-one message that says `body`, as the connector forwards a
    /// client's `<message type='chat'>`, with nothing else set (no `id`, no
    /// stanza text): what a bot's tests start from. Set other fields with
    /// struct update syntax:
    ///
    /// ```
    /// # use xmpp_lambda_shared::Request;
    /// let request = Request {
    ///     id: Some("m1".into()),
    ///     ..Request::chat("alice@example.com/phone", "echo@bot.example.com", "hi")
    /// };
    /// assert_eq!(request.stanza_type.as_deref(), Some("chat"));
    /// ```
    pub fn chat(from: &str, to: &str, body: &str) -> Request {
        Request {
            to: to.to_owned(),
            from: from.to_owned(),
            kind: StanzaKind::Message,
            stanza: String::new(),
            body: Some(body.to_owned()),
            stanza_type: Some("chat".to_owned()),
            id: None,
            room: None,
            nick: None,
            mention: None,
            chat_state: None,
            receipt_requested: false,
            markable: false,
        }
    }

    /// Whether this is a message without a body: nothing a person wrote (a
    /// chat state, a receipt, a marker), so by default not forwarded
    /// (DESIGN §10). The same rule as `live::is_bodyless_message` on the
    /// stanza, for a request already made (such as a private message
    /// through a room).
    pub fn is_bodyless_message(&self) -> bool {
        self.kind == StanzaKind::Message && self.body.is_none()
    }

    /// The flags written only when true, by JSON name, in field order.
    fn flags(&self) -> [(&'static str, bool); 2] {
        [
            ("receipt_requested", self.receipt_requested),
            ("markable", self.markable),
        ]
    }

    /// How many bytes [`Request::write_json`] appends: a buffer of exactly
    /// this size never grows (and never holds two copies while it does).
    pub fn json_len(&self) -> usize {
        let mut fields = 0;
        let mut length = 2; // the braces
        let mut field = |name: &str, value: usize| {
            fields += 1;
            // `"name":` and the value
            length += name.len() + 3 + value;
        };
        field("to", json_string_len(&self.to));
        field("from", json_string_len(&self.from));
        field("kind", json_string_len(self.kind.as_str()));
        field("stanza", json_string_len(&self.stanza));
        let optional = [
            ("body", &self.body),
            ("type", &self.stanza_type),
            ("id", &self.id),
            ("room", &self.room),
            ("nick", &self.nick),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                field(name, json_string_len(value));
            }
        }
        if let Some(mention) = self.mention {
            field("mention", if mention { 4 } else { 5 });
        }
        if let Some(state) = self.chat_state {
            field("chat_state", json_string_len(state.as_str()));
        }
        for (name, flag) in self.flags() {
            if flag {
                field(name, 4);
            }
        }
        // A comma between each two fields.
        length + fields - 1
    }
}

/// How long `text` is as a JSON string, quotes included, escaped as
/// [`json_string`] escapes it.
fn json_string_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let plain = !bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    let escapes: usize = if plain {
        0
    } else {
        bytes
            .iter()
            .map(|&b| match b {
                b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0C => 1,
                0x00..=0x1F => 5,
                _ => 0,
            })
            .sum()
    };
    bytes.len() + escapes + 2
}

/// `"name":`, after a comma unless it is the first field.
fn json_field(out: &mut Vec<u8>, name: &str, first: bool) {
    if !first {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `text` as a JSON string, escaped as `serde_json` escapes: `"`, `\\` and
/// the C0 controls (with the short forms where JSON has them), nothing
/// else.
fn json_string(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    out.push(b'"');
    // Most strings need no escape at all; this test runs over whole
    // vectors of bytes at once.
    let plain = !bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut rest = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0x00..=0x1F => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[rest..at]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xF)]);
        } else {
            out.extend_from_slice(short);
        }
        rest = at + 1;
    }
    out.extend_from_slice(&bytes[rest..]);
    out.push(b'"');
}

/// The conversation a request belongs to: the sender's bare JID and the
/// recipient. Requests of one conversation are kept in order; different
/// conversations never wait for each other.
///
/// The result is a valid SQS `MessageGroupId` (see [`message_group_id`]).
pub fn conversation_id(request: &Request) -> String {
    message_group_id(&conversation_key(request))
}

/// The conversation a request belongs to, as a key for a map in memory:
/// `"<sender's bare JID> <recipient>"`, which a bare JID's lack of spaces
/// keeps unambiguous. [`conversation_id`] is the same conversation as an
/// SQS group id; this one costs a single copy of the two addresses.
pub fn conversation_key(request: &Request) -> String {
    let sender = request.from.split('/').next().unwrap_or_default();
    let mut key = String::with_capacity(sender.len() + 1 + request.to.len());
    key.push_str(sender);
    key.push(' ');
    key.push_str(&request.to);
    key
}

/// `key` as a valid SQS `MessageGroupId` (at most 128 printable ASCII
/// characters): spaces become `|` where that stays unambiguous, and a key
/// that would not fit is replaced by a hash of itself. Stable across builds,
/// so every part of xmpp-lambda groups alike.
pub fn message_group_id(key: &str) -> String {
    let (mut printable, mut spaces, mut bars) = (key.len() <= 128, 0, 0);
    for byte in key.bytes() {
        match byte {
            b' ' => spaces += 1,
            b'|' => bars += 1,
            _ => printable &= byte.is_ascii_graphic(),
        }
    }
    if printable && spaces == 0 {
        return key.to_owned();
    }
    // The space is not allowed in a group id; keep readable keys readable.
    // A `|` already in a key with spaces could make two keys one.
    if printable && spaces == 1 && bars == 0 {
        return key.replace(' ', "|");
    }
    format!("h:{:016x}{:016x}", fnv1a(key, 0), fnv1a(key, 1))
}

/// FNV-1a, 64 bit, with a seed byte: stable across builds and platforms,
/// unlike `DefaultHasher`, so connector and function agree on group ids.
fn fnv1a(text: &str, seed: u8) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::iter::once(seed).chain(text.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_escapes_what_serde_escapes() {
        // Every C0 control, the two JSON specials, and characters JSON
        // leaves alone (DEL, U+2028, a slash, non-ASCII).
        let mut hostile: String = (0u8..0x20).map(char::from).collect();
        hostile.push_str("\"\\/\u{7f}\u{2028}é😀");
        let mut request = request("alice@example.com/x", "bot.example.com");
        request.stanza = hostile.clone();
        request.body = Some(hostile);
        request.stanza_type = Some("chat".into());
        request.id = Some("i\"d".into());
        request.room = Some("room@muc".into());
        request.nick = Some("n".into());
        let states = std::iter::once(None).chain(ChatState::ALL.map(Some));
        for (mention, chat_state) in [None, Some(true), Some(false)].into_iter().zip(states) {
            for (receipt_requested, markable) in [(false, false), (true, false), (true, true)] {
                request.mention = mention;
                request.chat_state = chat_state;
                request.receipt_requested = receipt_requested;
                request.markable = markable;
                let mut ours = Vec::new();
                request.write_json(&mut ours);
                let serde = serde_json::to_vec(&request).expect("serialises");
                assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&serde)
                );
                assert_eq!(request.json_len(), ours.len());
            }
        }
    }

    #[test]
    fn the_live_fields_are_absent_unless_set_and_read_back() {
        let mut request = request("alice@example.com/x", "echo@bot.example.com");
        let plain = serde_json::to_string(&request).expect("serialise");
        for key in ["chat_state", "receipt_requested", "markable"] {
            assert!(!plain.contains(key), "{plain}");
        }
        request.chat_state = Some(ChatState::Composing);
        request.receipt_requested = true;
        request.markable = true;
        let json = serde_json::to_string(&request).expect("serialise");
        assert!(
            json.ends_with(
                r#","chat_state":"composing","receipt_requested":true,"markable":true}"#
            ),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<Request>(&json).expect("reads back"),
            request
        );
        // false reads as absent; a state XEP-0085 does not define is refused.
        let off = plain.replace('}', r#","receipt_requested":false,"markable":false}"#);
        assert_eq!(
            serde_json::from_str::<Request>(&off).expect("reads"),
            Request {
                chat_state: None,
                receipt_requested: false,
                markable: false,
                ..request.clone()
            }
        );
        let unknown = plain.replace('}', r#","chat_state":"typing"}"#);
        let error = serde_json::from_str::<Request>(&unknown).expect_err("refused");
        assert!(
            error.to_string().starts_with("unknown variant `typing`, expected one of `active`, `composing`, `paused`, `inactive`, `gone`"),
            "{error}"
        );
    }

    #[test]
    fn chat_states_are_named_as_in_xep_0085() {
        for state in ChatState::ALL {
            assert_eq!(ChatState::from_name(state.as_str()), Some(state));
            assert_eq!(
                serde_json::to_string(&state).expect("serialise"),
                format!("\"{state}\"")
            );
        }
        assert_eq!(ChatState::from_name("Active"), None);
        assert_eq!(ChatState::from_name("typing"), None);
    }

    fn request(from: &str, to: &str) -> Request {
        Request {
            to: to.into(),
            from: from.into(),
            kind: StanzaKind::Message,
            stanza: String::new(),
            body: None,
            stanza_type: None,
            id: None,
            room: None,
            nick: None,
            mention: None,
            chat_state: None,
            receipt_requested: false,
            markable: false,
        }
    }

    #[test]
    fn conversation_ignores_the_senders_resource() {
        assert_eq!(
            conversation_id(&request("alice@example.com/phone", "echo@bot.example.com")),
            conversation_id(&request("alice@example.com/laptop", "echo@bot.example.com")),
        );
        assert_eq!(
            conversation_id(&request("alice@example.com/phone", "echo@bot.example.com")),
            "alice@example.com|echo@bot.example.com"
        );
    }

    #[test]
    fn conversation_key_is_the_group_id_before_it_is_made_one() {
        let phone = request("alice@example.com/phone", "echo@bot.example.com/x y");
        assert_eq!(
            conversation_key(&phone),
            "alice@example.com echo@bot.example.com/x y"
        );
        assert_eq!(
            conversation_id(&phone),
            message_group_id(&conversation_key(&phone))
        );
    }

    #[test]
    fn group_ids_keep_readable_keys_and_hash_the_rest() {
        assert_eq!(message_group_id("a@b c@d"), "a@b|c@d");
        assert_eq!(message_group_id("a@b|c@d"), "a@b|c@d");
        let hashed = |key: &str| message_group_id(key).starts_with("h:");
        // A `|` beside a space, two spaces, what is not printable ASCII,
        // more than 128 characters.
        assert!(hashed("a|b c@d"));
        assert!(hashed("a b c"));
        assert!(hashed("caf\u{e9}@b c@d"));
        assert!(hashed("tab\tkey"));
        assert!(hashed(&"a".repeat(129)));
        assert!(!hashed(&"a".repeat(128)));
        // Stable across builds and parts (FNV-1a, computed independently of this code).
        assert_eq!(
            message_group_id("a b c"),
            "h:0e99428a22a440fdc41e554cd0cbf044"
        );
    }

    #[test]
    fn conversation_differs_per_recipient_and_sender() {
        let a = conversation_id(&request("alice@example.com", "echo@bot.example.com"));
        let b = conversation_id(&request("alice@example.com", "other@bot.example.com"));
        let c = conversation_id(&request("bob@example.com", "echo@bot.example.com"));
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn conversation_of_non_ascii_jids_is_a_valid_group_id() {
        let id = conversation_id(&request("ålice@exämple.com/x", "echo@bot.example.com"));
        assert!(id.starts_with("h:"), "{id}");
        assert!(id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()));
        let long = "a".repeat(200) + "@example.com";
        let id = conversation_id(&request(&long, "echo@bot.example.com"));
        assert!(id.len() <= 128, "{id}");
    }

    #[test]
    fn request_json_round_trips_and_tolerates_unknown_keys() {
        let json = r#"{"to":"echo@bot.example.com","from":"alice@example.com/x","kind":"message",
            "stanza":"<message/>","body":"hi","type":"chat","id":"m1","future":[1,2]}"#;
        let parsed: Request = serde_json::from_str(json).expect("valid request");
        assert_eq!(parsed.body.as_deref(), Some("hi"));
        assert_eq!(parsed.stanza_type.as_deref(), Some("chat"));
        let again: Request =
            serde_json::from_str(&serde_json::to_string(&parsed).expect("serialise"))
                .expect("parse again");
        assert_eq!(parsed, again);
    }

    #[test]
    fn absent_body_is_absent_not_null() {
        let text = serde_json::to_string(&request("a@b", "c@d")).expect("serialise");
        assert!(!text.contains("body"), "{text}");
        assert!(!text.contains("null"), "{text}");
    }

    #[test]
    fn unknown_kind_is_a_clear_error() {
        assert_eq!(
            "chat".parse::<StanzaKind>().unwrap_err().to_string(),
            r#"unknown stanza kind "chat" (expected message, presence or iq)"#
        );
    }
}

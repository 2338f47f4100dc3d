//! Group chats (DESIGN §7, XEP-0045): the rules for the connector's rooms,
//! as pure functions. Which room messages reach the bot, and with what;
//! when the bot is mentioned; what a room's presence means for the
//! connector's membership; how it joins; what an invitation says.

use crate::stanza::{COMPONENT_NS, bare, set_attr};
use crate::{Request, stanza_to_request};
use minidom::Element;

/// XEP-0045's namespace of the join presence.
pub const MUC_NS: &str = "http://jabber.org/protocol/muc";
/// XEP-0045's namespace of room status, items and mediated invitations.
pub const MUC_USER_NS: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045's namespace of room configuration.
pub const MUC_OWNER_NS: &str = "http://jabber.org/protocol/muc#owner";
/// XEP-0249's namespace of direct invitations.
pub const CONFERENCE_NS: &str = "jabber:x:conference";
/// XEP-0203: delayed delivery, which marks room history.
pub const DELAY_NS: &str = "urn:xmpp:delay";
/// The mark on every groupchat message the component sends, so another
/// xmpp-lambda bot in the same room never answers it (two bots that answer
/// everything would otherwise answer each other forever).
pub const BOT_MARK_NS: &str = "urn:xmpp-lambda:bot:0";

/// Which room messages reach the bot (`COMPONENT_ROOM_MESSAGES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomMessages {
    /// Only messages that mention the bot's nick.
    Mention,
    /// Every message from another occupant.
    All,
}

/// Whether `body` addresses `nick`: the nick at the start of the body
/// followed by `:`, `,` or a space, or anywhere as a word of its own (not
/// inside a longer word: `@bot` and `bot?` mention `bot`, `robot` does
/// not). Letters are compared without case.
pub fn mentions(body: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let body = body.to_lowercase();
    let nick = nick.to_lowercase();
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_';
    body.match_indices(&nick).any(|(start, _)| {
        let before = body[..start].chars().next_back();
        let after = body[start + nick.len()..].chars().next();
        !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
    })
}

/// What a message from a room the connector is in is, for the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomMessage {
    /// A message for the bot: the request, with `room`, `nick` and (for
    /// `groupchat`) `mention` set.
    Forward(Request),
    /// Not for the bot, and why (for the debug log).
    Ignore(&'static str),
}

/// Classifies a message from `room` (its bare JID), where the connector's
/// nick is `own_nick`: `groupchat` messages by the rules of §7 and `mode`,
/// private messages from occupants as ordinary requests.
///
/// Never forwarded: the bot's own messages, another xmpp-lambda bot's
/// ([`BOT_MARK_NS`]), delayed history, subject changes, messages without
/// a body, messages from the room itself, errors.
pub fn room_message(
    stanza: &Element,
    room: &str,
    own_nick: &str,
    mode: RoomMessages,
) -> RoomMessage {
    let Some(from) = stanza.attr("from") else {
        return RoomMessage::Ignore("no sender");
    };
    let Some((_, nick)) = from.split_once('/') else {
        return RoomMessage::Ignore("from the room itself");
    };
    let message_type = stanza.attr("type");
    if message_type == Some("error") {
        return RoomMessage::Ignore("an error");
    }
    if nick == own_nick {
        return RoomMessage::Ignore("the bot's own message");
    }
    let has = |name: &str, ns: &str| stanza.children().any(|child| child.is(name, ns));
    if has("x", BOT_MARK_NS) {
        return RoomMessage::Ignore("another bot's message");
    }
    if has("delay", DELAY_NS) {
        return RoomMessage::Ignore("room history");
    }
    let Ok(mut request) = stanza_to_request(stanza) else {
        return RoomMessage::Ignore("not addressed");
    };
    request.room = Some(room.to_owned());
    request.nick = Some(nick.to_owned());
    if message_type != Some("groupchat") {
        // A private message through the room: an ordinary request.
        return RoomMessage::Forward(request);
    }
    let Some(body) = request.body.as_deref() else {
        return RoomMessage::Ignore(if has("subject", COMPONENT_NS) {
            "a subject change"
        } else {
            "no body"
        });
    };
    let mention = mentions(body, own_nick);
    request.mention = Some(mention);
    match (mode, mention) {
        (RoomMessages::Mention, false) => RoomMessage::Ignore("no mention of the bot"),
        _ => RoomMessage::Forward(request),
    }
}

/// The presence that joins `occupant` (`room@service/nick`) as `real_jid`,
/// without history (DESIGN §7), with the room's password if it has one.
pub fn join_presence(occupant: &str, real_jid: &str, password: Option<&str>) -> Element {
    let mut history = Element::bare("history", MUC_NS);
    set_attr(&mut history, "maxstanzas", "0");
    let mut muc = Element::bare("x", MUC_NS);
    muc.append_child(history);
    if let Some(password) = password {
        let mut secret = Element::bare("password", MUC_NS);
        secret.append_text_node(password);
        muc.append_child(secret);
    }
    let mut presence = Element::builder("presence", COMPONENT_NS).build();
    set_attr(&mut presence, "to", occupant);
    set_attr(&mut presence, "from", real_jid);
    presence.append_child(muc);
    presence
}

/// The presence that leaves a room.
pub fn leave_presence(occupant: &str, real_jid: &str) -> Element {
    let mut presence = Element::builder("presence", COMPONENT_NS).build();
    set_attr(&mut presence, "to", occupant);
    set_attr(&mut presence, "from", real_jid);
    set_attr(&mut presence, "type", "unavailable");
    presence
}

/// The request that unlocks a room the connector created: accept the
/// default configuration (an "instant room", XEP-0045 §10.1.2). Until then
/// nobody else may enter it.
pub fn instant_room_request(room: &str, real_jid: &str, id: &str) -> Element {
    let mut form = Element::bare("x", "jabber:x:data");
    set_attr(&mut form, "type", "submit");
    let mut query = Element::bare("query", MUC_OWNER_NS);
    query.append_child(form);
    let mut iq = Element::builder("iq", COMPONENT_NS).build();
    set_attr(&mut iq, "type", "set");
    set_attr(&mut iq, "to", room);
    set_attr(&mut iq, "from", real_jid);
    set_attr(&mut iq, "id", id);
    iq.append_child(query);
    iq
}

/// What a presence from a room says about the connector's own membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomPresence {
    /// In the room as `nick`; `created`: the join made the room, which
    /// must be unlocked ([`instant_room_request`]).
    Joined { nick: String, created: bool },
    /// The join failed because the nick is taken.
    NickConflict,
    /// The join failed for another reason: the condition and the room's
    /// text (members-only, password, banned, no such room…).
    Refused {
        condition: String,
        text: Option<String>,
    },
    /// The connector is out of the room: kicked, banned, the room
    /// destroyed or shut down; the reason to log.
    Removed { reason: String },
    /// Someone else's presence, or nothing that concerns membership.
    Other,
}

/// The XEP-0045 status codes of a room presence.
fn status_codes(stanza: &Element) -> Vec<String> {
    stanza
        .get_child("x", MUC_USER_NS)
        .map(|x| {
            x.children()
                .filter(|child| child.is("status", MUC_USER_NS))
                .filter_map(|status| status.attr("code").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a presence from a room the connector is in or joining as
/// `own_nick`.
pub fn room_presence(stanza: &Element, own_nick: &str) -> RoomPresence {
    let nick = stanza
        .attr("from")
        .and_then(|from| from.split_once('/'))
        .map(|(_, nick)| nick);
    let codes = status_codes(stanza);
    let has_code = |code: &str| codes.iter().any(|c| c == code);
    // Status 110 marks presence about oneself; servers that omit it still
    // address it from our own occupant JID.
    let about_self = has_code("110") || nick == Some(own_nick);
    match stanza.attr("type") {
        Some("error") => {
            let error = stanza.children().find(|child| child.name() == "error");
            let condition = error
                .and_then(|e| {
                    e.children()
                        .find(|c| c.ns() == crate::STANZAS_NS && c.name() != "text")
                })
                .map_or_else(|| "undefined-condition".to_owned(), |c| c.name().to_owned());
            if condition == "conflict" {
                return RoomPresence::NickConflict;
            }
            let text = error
                .and_then(|e| e.get_child("text", crate::STANZAS_NS))
                .map(Element::text);
            RoomPresence::Refused { condition, text }
        }
        Some("unavailable") if about_self => {
            let x = stanza.get_child("x", MUC_USER_NS);
            let detail = |parent: Option<&Element>, name: &str| {
                parent
                    .and_then(|p| p.get_child(name, MUC_USER_NS))
                    .map(Element::text)
                    .filter(|t| !t.is_empty())
            };
            let item = x.and_then(|x| x.get_child("item", MUC_USER_NS));
            let destroy = x.and_then(|x| x.get_child("destroy", MUC_USER_NS));
            let cause = if destroy.is_some() {
                "the room was destroyed"
            } else if has_code("301") {
                "banned"
            } else if has_code("307") {
                "kicked"
            } else if has_code("321") {
                "removed by an affiliation change"
            } else if has_code("322") {
                "removed: the room is now members-only"
            } else if has_code("332") {
                "removed: the room's service is shutting down"
            } else if has_code("303") {
                // A nick change: the next presence says the new nick.
                return RoomPresence::Other;
            } else {
                "left the room"
            };
            let why = detail(destroy, "reason").or_else(|| detail(item, "reason"));
            RoomPresence::Removed {
                reason: match why {
                    Some(why) => format!("{cause} ({why})"),
                    None => cause.to_owned(),
                },
            }
        }
        None if about_self => RoomPresence::Joined {
            nick: nick.unwrap_or(own_nick).to_owned(),
            created: has_code("201"),
        },
        _ => RoomPresence::Other,
    }
}

/// An invitation to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// The room's bare JID.
    pub room: String,
    /// Who invited, when known.
    pub from: Option<String>,
    /// The room's password, if the invitation carries one.
    pub password: Option<String>,
}

/// The invitation in a message: XEP-0249 (direct, from the inviter) or
/// XEP-0045 (mediated, from the room).
pub fn invite_of(stanza: &Element) -> Option<Invite> {
    if stanza.name() != "message" || stanza.attr("type") == Some("error") {
        return None;
    }
    if let Some(direct) = stanza.get_child("x", CONFERENCE_NS) {
        return Some(Invite {
            room: bare(direct.attr("jid")?).to_owned(),
            from: stanza.attr("from").map(str::to_owned),
            password: direct.attr("password").map(str::to_owned),
        });
    }
    let x = stanza.get_child("x", MUC_USER_NS)?;
    let invite = x.get_child("invite", MUC_USER_NS)?;
    Some(Invite {
        room: bare(stanza.attr("from")?).to_owned(),
        from: invite.attr("from").map(str::to_owned),
        password: x.get_child("password", MUC_USER_NS).map(Element::text),
    })
}

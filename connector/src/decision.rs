//! What the connector does with a stanza read from the link, decided once
//! ([`decide`]) from the stanza and what the connector knows — its rooms
//! and its routes — before anything is done. The dispatcher then carries
//! the decision out; nothing here writes, sends or counts.

use crate::live::WithoutBody;
use crate::rooms::{RoomEvent, Rooms};
use crate::routes::{Destination, Router};
use minidom::Element;
use std::sync::Arc;
use xmpp_lambda_shared::muc::{RoomMessage, invite_of, room_message};
use xmpp_lambda_shared::{
    ErrorType, Request, StanzaErrorSpec, StanzaKind, error_reply, iq_auto_answer,
    presence_auto_answer, stanza_to_request,
};

/// What becomes of one stanza.
#[derive(Debug)]
pub enum Decision {
    /// Nothing: why, for the debug log.
    Ignore(&'static str),
    /// The connector answers itself with these stanzas (DESIGN §3):
    /// presence to the bot, IQs and messages no bot takes.
    Answer(Vec<Element>),
    /// For the room keeper: a room's presence, an invitation, a room's
    /// refusal.
    Room(RoomEvent),
    /// A request for the bot at `destination`.
    Forward {
        destination: Arc<Destination>,
        request: Request,
    },
    /// A message without a body (a chat state, a receipt, a marker): not
    /// a request, so it costs nothing (DESIGN §10).
    SkipWithoutBody,
}

/// What the connector knows that decides a stanza's fate.
pub struct Knowledge<'a> {
    /// The component's domain, which the connector's own answers come from.
    pub domain: &'a str,
    /// Which bot, if any, takes a stanza of a kind to an address.
    pub router: &'a Router,
    /// The rooms the connector is in, and which of their messages reach
    /// the bot.
    pub rooms: &'a Rooms,
    /// What becomes of a message without a body.
    pub without_body: WithoutBody,
}

/// What becomes of `stanza`.
pub fn decide(stanza: &Element, knows: &Knowledge<'_>) -> Decision {
    match decide_by_address(stanza, knows) {
        Decision::Forward { request, .. }
            if request.is_bodyless_message() && knows.without_body == WithoutBody::Skip =>
        {
            Decision::SkipWithoutBody
        }
        decision => decision,
    }
}

/// What becomes of `stanza`, by where it comes from and goes.
fn decide_by_address(stanza: &Element, knows: &Knowledge<'_>) -> Decision {
    let Ok(kind) = stanza.name().parse::<StanzaKind>() else {
        return Decision::Ignore("an element that is not a stanza");
    };
    if let Some(decision) = decide_for_rooms(stanza, kind, knows) {
        return decision;
    }
    let to = stanza.attr("to").unwrap_or_default();
    let Some(destination) = knows.router.destination(to, kind) else {
        return Decision::Answer(auto_answer(kind, stanza, knows.domain));
    };
    match stanza_to_request(stanza) {
        Ok(request) => Decision::Forward {
            destination,
            request,
        },
        Err(_) => Decision::Ignore("a stanza without the addresses a request needs"),
    }
}

/// The decision for a stanza that concerns the rooms (DESIGN §7), or
/// `None` when it does not.
fn decide_for_rooms(stanza: &Element, kind: StanzaKind, knows: &Knowledge<'_>) -> Option<Decision> {
    let from = stanza.attr("from")?;
    let room = from.split('/').next().unwrap_or(from);
    let own_nick = knows.rooms.nick(room);
    match kind {
        StanzaKind::Presence if own_nick.is_some() => {
            Some(Decision::Room(RoomEvent::Presence(stanza.clone())))
        }
        StanzaKind::Message => {
            if let Some(invite) = invite_of(stanza) {
                return Some(Decision::Room(RoomEvent::Invite(invite)));
            }
            let own_nick = own_nick?;
            Some(
                match room_message(stanza, room, &own_nick, knows.rooms.messages()) {
                    RoomMessage::Forward(request) => {
                        match knows.router.destination(&request.to, StanzaKind::Message) {
                            Some(destination) => Decision::Forward {
                                destination,
                                request,
                            },
                            // Nothing is ever answered into a room unasked:
                            // when messages are not forwarded, room messages
                            // are dropped, not refused.
                            None => Decision::Ignore("room messages are not forwarded"),
                        }
                    }
                    RoomMessage::Ignore(_) if stanza.attr("type") == Some("error") => {
                        Decision::Room(RoomEvent::Refused(stanza.clone()))
                    }
                    RoomMessage::Ignore(why) => Decision::Ignore(why),
                },
            )
        }
        _ => None,
    }
}

/// The connector's own answers (DESIGN §3). A message is only here when
/// no bot takes messages to its address: the sender learns there is no
/// service.
fn auto_answer(kind: StanzaKind, stanza: &Element, domain: &str) -> Vec<Element> {
    match kind {
        StanzaKind::Presence => presence_auto_answer(stanza, domain),
        StanzaKind::Iq => iq_auto_answer(stanza, domain).into_iter().collect(),
        StanzaKind::Message => {
            let spec = StanzaErrorSpec::new(ErrorType::Cancel, "service-unavailable", None);
            stanza_to_request(stanza)
                .ok()
                .and_then(|request| error_reply(&request, &spec))
                .into_iter()
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse_post_url_for;
    use crate::rooms::{InvitePolicy, RoomConfig, RoomDirectory, RoomOptions};
    use crate::routes::{Defaults, build};
    use crate::sigv4::SigningOptions;
    use crate::transport::TransportConfig;
    use std::collections::HashSet;
    use std::time::Duration;
    use xmpp_lambda_shared::muc::RoomMessages;

    const DOMAIN: &str = "bot.example.com";
    const ROOM: &str = "ops@conference.example.com";

    /// A router whose default bot takes `kinds`, and rooms with [`ROOM`]
    /// joined as `bot`.
    fn knowledge_parts(kinds: &[StanzaKind]) -> (Router, Rooms) {
        let transport = TransportConfig::Http {
            post_url: parse_post_url_for("test", "http://127.0.0.1:9/bot").expect("a URL"),
        };
        let kinds: HashSet<StanzaKind> = kinds.iter().copied().collect();
        let defaults = Defaults {
            transport: Some(&transport),
            timeout: Duration::from_secs(1),
            connect_retry: Duration::from_secs(1),
            forwarded_kinds: &kinds,
            signing: &SigningOptions::default(),
            secret: None,
        };
        let (router, _) = build(&[], &defaults, None).expect("a router");
        let options = RoomOptions {
            rooms: vec![RoomConfig {
                room: ROOM.into(),
                nick: "bot".into(),
            }],
            messages: RoomMessages::Mention,
            invites: InvitePolicy::Ignore,
            default_nick: "bot".into(),
        };
        let (writer, _) = tokio::sync::mpsc::unbounded_channel();
        let (rooms, _keeper) = crate::rooms::start(
            &options,
            DOMAIN,
            writer,
            RoomDirectory::default(),
            Default::default(),
        );
        (router, rooms)
    }

    /// `xml` in the component namespace, as the link reads stanzas.
    fn stanza(xml: &str) -> Element {
        let name_end = xml.find([' ', '>']).unwrap_or(xml.len());
        let xml = format!(
            "{} xmlns='jabber:component:accept'{}",
            &xml[..name_end],
            &xml[name_end..]
        );
        xml.parse().expect("test XML is valid")
    }

    /// What becomes of `xml` when the bot takes `kinds`.
    fn decided(kinds: &[StanzaKind], xml: &str) -> Decision {
        let (router, rooms) = knowledge_parts(kinds);
        let knows = Knowledge {
            domain: DOMAIN,
            router: &router,
            rooms: &rooms,
            without_body: WithoutBody::Skip,
        };
        decide(&stanza(xml), &knows)
    }

    const MESSAGES: &[StanzaKind] = &[StanzaKind::Message];

    #[test]
    fn a_message_to_the_bot_is_a_request() {
        let decision = decided(
            MESSAGES,
            "<message from='alice@example.com/x' to='echo@bot.example.com' type='chat' id='1'>\
             <body>hi</body></message>",
        );
        match decision {
            Decision::Forward {
                destination,
                request,
            } => {
                assert_eq!(destination.name, "*");
                assert_eq!(request.body.as_deref(), Some("hi"));
                assert_eq!(request.room, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_bot_does_not_take_the_connector_answers() {
        let answered = |kinds: &[StanzaKind], xml: &str| match decided(kinds, xml) {
            Decision::Answer(answers) => answers,
            other => panic!("{xml}: {other:?}"),
        };
        let pong = answered(
            MESSAGES,
            "<iq from='alice@example.com/x' to='bot.example.com' type='get' id='p'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(pong.len(), 1);
        assert_eq!(pong[0].attr("type"), Some("result"));
        let probe = answered(
            MESSAGES,
            "<presence from='alice@example.com' to='echo@bot.example.com' type='probe'/>",
        );
        assert_eq!(probe.len(), 1);
        let refused = answered(
            &[StanzaKind::Iq],
            "<message from='alice@example.com/x' to='echo@bot.example.com' id='m'>\
             <body>hi</body></message>",
        );
        assert_eq!(refused[0].attr("type"), Some("error"));
        assert!(format!("{:?}", refused[0]).contains("service-unavailable"));
    }

    #[test]
    fn room_stanzas_go_to_the_rooms_or_to_the_bot_when_they_mention_it() {
        let mention = decided(
            MESSAGES,
            "<message from='ops@conference.example.com/alice' to='rooms@bot.example.com/bot' \
             type='groupchat' id='g'><body>bot: deploy?</body></message>",
        );
        match mention {
            Decision::Forward { request, .. } => {
                assert_eq!(request.room.as_deref(), Some(ROOM));
                assert_eq!(request.mention, Some(true));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decided(
                MESSAGES,
                "<message from='ops@conference.example.com/alice' to='rooms@bot.example.com/bot' \
                 type='groupchat' id='g'><body>lunch?</body></message>",
            ),
            Decision::Ignore(_)
        ));
        // Not forwarded messages: a room message is dropped, not refused.
        assert!(matches!(
            decided(
                &[StanzaKind::Iq],
                "<message from='ops@conference.example.com/alice' to='rooms@bot.example.com/bot' \
                 type='groupchat' id='g'><body>bot: hi</body></message>",
            ),
            Decision::Ignore("room messages are not forwarded")
        ));
        assert!(matches!(
            decided(
                MESSAGES,
                "<presence from='ops@conference.example.com/alice' to='rooms@bot.example.com/bot'/>"
            ),
            Decision::Room(RoomEvent::Presence(_))
        ));
        assert!(matches!(
            decided(
                MESSAGES,
                "<message from='ops@conference.example.com' to='rooms@bot.example.com/bot' \
                 type='error'><error type='cancel'><forbidden \
                 xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
            ),
            Decision::Room(RoomEvent::Refused(_))
        ));
        assert!(matches!(
            decided(
                MESSAGES,
                "<message from='alice@example.com/x' to='echo@bot.example.com'>\
                 <x xmlns='jabber:x:conference' jid='dev@conference.example.com'/></message>"
            ),
            Decision::Room(RoomEvent::Invite(_))
        ));
    }

    #[test]
    fn a_message_without_a_body_is_no_request_unless_asked_for() {
        let (router, rooms) = knowledge_parts(MESSAGES);
        let mut knows = Knowledge {
            domain: DOMAIN,
            router: &router,
            rooms: &rooms,
            without_body: WithoutBody::Skip,
        };
        for xml in [
            // A chat state, a receipt, a displayed marker, and a private
            // message from a room's occupant.
            "<message from='alice@example.com/x' to='echo@bot.example.com' type='chat'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
            "<message from='alice@example.com/x' to='echo@bot.example.com' id='r'>\
             <received xmlns='urn:xmpp:receipts' id='m1'/></message>",
            "<message from='alice@example.com/x' to='echo@bot.example.com' type='chat'>\
             <displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>",
            "<message from='ops@conference.example.com/alice' to='rooms@bot.example.com/bot' \
             type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>",
        ] {
            assert!(
                matches!(decide(&stanza(xml), &knows), Decision::SkipWithoutBody),
                "{xml}"
            );
            knows.without_body = WithoutBody::Forward;
            assert!(
                matches!(decide(&stanza(xml), &knows), Decision::Forward { .. }),
                "{xml}"
            );
            knows.without_body = WithoutBody::Skip;
        }
        // An empty body is a body: the person sent something.
        let empty =
            "<message from='alice@example.com/x' to='echo@bot.example.com'><body/></message>";
        assert!(matches!(
            decide(&stanza(empty), &knows),
            Decision::Forward { .. }
        ));
    }

    #[test]
    fn an_element_that_is_not_a_stanza_is_ignored() {
        assert!(matches!(
            decided(MESSAGES, "<handshake>x</handshake>"),
            Decision::Ignore("an element that is not a stanza")
        ));
    }
}

//! The reply rules (DESIGN §2, §6): any bot answer to any of a few real
//! requests, and any JSON pushed as an outbound message, gives only
//! stanzas the link can write, answers every IQ request, never answers an
//! error, and gives every reply message a fresh id.

use crate::input::Input;
use crate::sendable::assert_sendable;
use minidom::Element;
use serde_json::Value;
use xmpp_lambda_shared::{
    BotResponse, outbound_to_stanza, parse_stanza, stanza_to_request, stanzas_to_send,
};

/// The component's domain in every case.
pub const DOMAIN: &str = "bot.example.com";

/// Requests as the connector builds them from what the server routes to
/// the component.
const REQUESTS: &[&str] = &[
    "<message from='alice@example.com/phone' to='echo@bot.example.com' type='chat' id='m1'>\
     <body>hi</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<message from='room@conference.example.com/alice' to='bot.example.com' type='groupchat' \
     id='g1'><body>bot: hi</body></message>",
    "<message from='alice@example.com' to='bot.example.com'><body>no type, no id</body></message>",
    "<iq from='alice@example.com/phone' to='bot.example.com' type='get' id='q1'>\
     <query xmlns='jabber:iq:version'/></iq>",
    "<iq from='alice@example.com/phone' to='echo@bot.example.com' type='set' id='q2'>\
     <command xmlns='urn:x'/></iq>",
    "<iq from='alice@example.com/phone' to='bot.example.com' type='result' id='q3'/>",
    "<presence from='alice@example.com' to='echo@bot.example.com' type='subscribe'/>",
    "<message from='alice@example.com/phone' to='echo@bot.example.com' type='error' id='e1'>\
     <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
     </message>",
];

/// Statuses a bot answers with; 0 is no answer at all.
const STATUSES: &[u16] = &[
    200, 200, 200, 200, 201, 204, 0, 301, 400, 401, 402, 403, 404, 410, 500, 501, 502, 503, 504,
    418, 599,
];

/// Content types; `None` is an answer without one.
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    Some("APPLICATION/JSON"),
    Some("application/jsonx"),
    Some("text/plain"),
    None,
];

/// Checks one case: a request picked by the first byte, a status and a
/// content type by the next two, and the rest as the answer's body.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let xml = REQUESTS[usize::from(input.byte()) % REQUESTS.len()];
    let status = STATUSES[usize::from(input.byte()) % STATUSES.len()];
    let content_type = CONTENT_TYPES[usize::from(input.byte()) % CONTENT_TYPES.len()];
    let body = input.rest();
    let received = parse_stanza(xml).expect("a valid request stanza");
    let request = stanza_to_request(&received).expect("a request");
    let response = if status == 0 {
        BotResponse::no_response()
    } else {
        BotResponse::from_http(status, content_type, body)
    };
    let mut ids = Ids::default();
    let (stanzas, _refusal) = stanzas_to_send(&request, &response, DOMAIN, &mut || ids.next());
    check_stanzas(&received, &stanzas, &ids);
    // The same JSON pushed by a bot (§6): sendable, or refused.
    if let Ok(message) = serde_json::from_slice::<Value>(body) {
        let mut ids = Ids::default();
        let room = |room: &str| {
            (room == "room@conference.example.com").then(|| format!("rooms@{DOMAIN}/bot"))
        };
        if let Ok(stanza) = outbound_to_stanza(&message, DOMAIN, &room, &mut || ids.next()) {
            assert_sendable(&stanza, DOMAIN);
            assert!(ids.made(stanza.attr("id")), "pushed without a fresh id");
        }
    }
}

/// The rules every answer to `received` must keep.
fn check_stanzas(received: &Element, stanzas: &[Element], ids: &Ids) {
    let kind = received.name();
    let stanza_type = received.attr("type");
    if stanza_type == Some("error") {
        assert!(stanzas.is_empty(), "an error answered: {stanzas:?}");
        return;
    }
    for stanza in stanzas {
        assert_sendable(stanza, DOMAIN);
        // Clients drop repeated ids: every reply message gets a new one
        // (an error keeps the request's, so its sender can match it).
        if stanza.name() == "message" && stanza.attr("type") != Some("error") {
            assert!(ids.made(stanza.attr("id")), "a reply without a fresh id");
        }
    }
    if kind == "iq" && matches!(stanza_type, Some("get" | "set")) {
        let answered = stanzas.iter().any(|stanza| {
            stanza.name() == "iq" && matches!(stanza.attr("type"), Some("result" | "error"))
        });
        assert!(answered, "an IQ request left unanswered: {stanzas:?}");
    }
}

/// Fresh ids, and which were handed out.
#[derive(Default)]
struct Ids {
    made: Vec<String>,
}

impl Ids {
    fn next(&mut self) -> String {
        let id = format!("fresh-{}", self.made.len());
        self.made.push(id.clone());
        id
    }

    fn made(&self, id: Option<&str>) -> bool {
        id.is_some_and(|id| self.made.iter().any(|made| made == id))
    }
}

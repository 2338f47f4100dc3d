//! Group chat (XEP-0045) as a test user does it with a real client: join or
//! create a room, talk in it, kick, destroy, invite.

use std::time::Duration;

use minidom::Element;

use crate::{CLIENT_NS, Result, XmppClient, escape_xml};

/// XEP-0045's namespaces.
pub const MUC_NS: &str = "http://jabber.org/protocol/muc";
pub const MUC_USER_NS: &str = "http://jabber.org/protocol/muc#user";
const MUC_ADMIN_NS: &str = "http://jabber.org/protocol/muc#admin";
const MUC_OWNER_NS: &str = "http://jabber.org/protocol/muc#owner";

/// How long the room may take to answer.
const ROOM_WAIT: Duration = Duration::from_secs(15);

/// Joins `room` as `nick` (creating it if need be, and then unlocking it
/// with the default configuration) and waits until the room confirms.
pub async fn join_room(client: &mut XmppClient, room: &str, nick: &str) -> Result<()> {
    let occupant = format!("{room}/{nick}");
    client
        .send(&format!(
            "<presence to='{}'><x xmlns='{MUC_NS}'><history maxstanzas='0'/></x></presence>",
            escape_xml(&occupant)
        ))
        .await?;
    let own = client
        .recv_until(ROOM_WAIT, |stanza| {
            stanza.name() == "presence"
                && stanza.attr("from") == Some(occupant.as_str())
                && (stanza.attr("type") == Some("error") || has_status(stanza, "110"))
        })
        .await
        .ok_or_else(|| format!("{}: no answer from {occupant}", client.jid()))?;
    if own.attr("type") == Some("error") {
        return Err(format!("{}: cannot join {occupant}: {own:?}", client.jid()).into());
    }
    if has_status(&own, "201") {
        let id = uuid::Uuid::new_v4().to_string();
        client
            .send(&format!(
                "<iq type='set' to='{}' id='{id}'><query xmlns='{MUC_OWNER_NS}'>\
                 <x xmlns='jabber:x:data' type='submit'/></query></iq>",
                escape_xml(room)
            ))
            .await?;
        client
            .recv_until(ROOM_WAIT, |stanza| {
                stanza.name() == "iq" && stanza.attr("id") == Some(id.as_str())
            })
            .await
            .ok_or("no answer to the instant-room form")?;
    }
    Ok(())
}

/// Whether a room presence carries a XEP-0045 status code.
pub fn has_status(stanza: &Element, code: &str) -> bool {
    stanza.get_child("x", MUC_USER_NS).is_some_and(|x| {
        x.children()
            .any(|c| c.is("status", MUC_USER_NS) && c.attr("code") == Some(code))
    })
}

/// Sends a groupchat message to `room`.
pub async fn say(client: &mut XmppClient, room: &str, body: &str) -> Result<()> {
    client.send_message_of_type(room, "groupchat", body).await?;
    Ok(())
}

/// Waits for an occupant's available presence in `room` (e.g. the bot
/// joining), skipping everything else.
pub async fn expect_occupant(
    client: &mut XmppClient,
    room: &str,
    nick: &str,
    timeout: Duration,
) -> Result<Element> {
    let occupant = format!("{room}/{nick}");
    client
        .recv_until(timeout, |stanza| {
            stanza.name() == "presence"
                && stanza.attr("from") == Some(occupant.as_str())
                && stanza.attr("type").is_none()
        })
        .await
        .ok_or_else(|| {
            format!(
                "{}: {occupant} did not join within {timeout:?}",
                client.jid()
            )
            .into()
        })
}

/// Waits for a groupchat message from `nick` in `room`; returns its body.
pub async fn expect_groupchat(
    client: &mut XmppClient,
    room: &str,
    nick: &str,
    timeout: Duration,
) -> Result<(String, Element)> {
    let occupant = format!("{room}/{nick}");
    let message = client
        .recv_until(timeout, |stanza| {
            stanza.name() == "message"
                && stanza.attr("type") == Some("groupchat")
                && stanza.attr("from") == Some(occupant.as_str())
                && stanza.get_child("body", CLIENT_NS).is_some()
        })
        .await
        .ok_or_else(|| {
            format!(
                "{}: no groupchat from {occupant} within {timeout:?}",
                client.jid()
            )
        })?;
    let body = message
        .get_child("body", CLIENT_NS)
        .map(Element::text)
        .unwrap_or_default();
    Ok((body, message))
}

/// Every groupchat message with a body from `room` within `window`, as
/// (nick, body).
pub async fn groupchat_within(
    client: &mut XmppClient,
    room: &str,
    window: Duration,
) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + window;
    let mut seen = Vec::new();
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(stanza) = client.recv(remaining).await else {
            return seen;
        };
        let from = stanza.attr("from").unwrap_or_default();
        let Some((from_room, nick)) = from.split_once('/') else {
            continue;
        };
        if stanza.name() == "message"
            && stanza.attr("type") == Some("groupchat")
            && from_room == room
            && let Some(body) = stanza.get_child("body", CLIENT_NS)
        {
            seen.push((nick.to_owned(), body.text()));
        }
    }
}

/// Kicks `nick` from `room` (the client must be a moderator).
pub async fn kick(client: &mut XmppClient, room: &str, nick: &str, reason: &str) -> Result<()> {
    admin(
        client,
        room,
        &format!(
            "<query xmlns='{MUC_ADMIN_NS}'><item nick='{}' role='none'><reason>{}</reason></item></query>",
            escape_xml(nick),
            escape_xml(reason)
        ),
    )
    .await
}

/// Destroys `room` (the client must own it).
pub async fn destroy(client: &mut XmppClient, room: &str, reason: &str) -> Result<()> {
    admin(
        client,
        room,
        &format!(
            "<query xmlns='{MUC_OWNER_NS}'><destroy><reason>{}</reason></destroy></query>",
            escape_xml(reason)
        ),
    )
    .await
}

/// One IQ set to the room, waiting for its result.
async fn admin(client: &mut XmppClient, room: &str, query: &str) -> Result<()> {
    let id = uuid::Uuid::new_v4().to_string();
    client
        .send(&format!(
            "<iq type='set' to='{}' id='{id}'>{query}</iq>",
            escape_xml(room)
        ))
        .await?;
    let answer = client
        .recv_until(ROOM_WAIT, |stanza| {
            stanza.name() == "iq" && stanza.attr("id") == Some(id.as_str())
        })
        .await
        .ok_or("the room did not answer")?;
    if answer.attr("type") != Some("result") {
        return Err(format!("the room refused: {answer:?}").into());
    }
    Ok(())
}

/// Invites `jid` to `room` directly (XEP-0249).
pub async fn invite_directly(client: &mut XmppClient, jid: &str, room: &str) -> Result<()> {
    client
        .send(&format!(
            "<message to='{}'><x xmlns='jabber:x:conference' jid='{}' reason='join us'/></message>",
            escape_xml(jid),
            escape_xml(room)
        ))
        .await
}

/// Invites `jid` to `room` through the room (XEP-0045 mediated).
pub async fn invite_through_room(client: &mut XmppClient, jid: &str, room: &str) -> Result<()> {
    client
        .send(&format!(
            "<message to='{}'><x xmlns='{MUC_USER_NS}'><invite to='{}'><reason>join us</reason></invite></x></message>",
            escape_xml(room),
            escape_xml(jid)
        ))
        .await
}

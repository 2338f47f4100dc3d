//! Group chats (DESIGN §7): the rooms the connector is in.
//!
//! The connector joins each room of `COMPONENT_ROOMS` (and, with
//! `COMPONENT_ROOM_INVITES=accept`, each room it is invited to) as the
//! occupant `room@service/nick`, from the real JID `rooms@<domain>/<nick>`,
//! after every link-up and without history. A taken nick becomes `nick_2`,
//! `nick_3`…; after a kick, a ban, the room's destruction or a refused join
//! it rejoins with backoff (up to 5 minutes), logging one line per attempt.
//!
//! Two halves with a narrow interface between them:
//! * [`Rooms`], the dispatcher's view: it tells which stanzas concern the
//!   rooms ([`Rooms::route`]), turns room messages into requests by the
//!   shared rules, and hands presences and invitations to the keeper;
//! * [`RoomKeeper`], a task that owns every membership: joins, rejoins,
//!   unlocks a room its join created, and leaves at shutdown.
//!
//! [`RoomDirectory`] is what both share with the pusher: each room's real
//! JID and current nick.

use crate::options::{OptionDoc, OptionError, Sources, invalid};
use crate::wake::sleep_until;
use minidom::Element;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xmpp_lambda_component::Backoff;
use xmpp_lambda_component::Shutdown;
use xmpp_lambda_component::{LinkState, Outbound};
use xmpp_lambda_shared::muc::{
    Invite, RoomMessages, RoomPresence, instant_room_request, join_presence, leave_presence,
    room_presence,
};

/// The group chats' options.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_ROOMS",
        aliases: &[],
        meaning: "group chats to be in, comma-separated room@service[/nick] (nick: the \
                  domain's first label)",
        default: "none",
    },
    OptionDoc {
        name: "COMPONENT_ROOM_MESSAGES",
        aliases: &[],
        meaning: "which room messages reach the bot: mention (those that address its nick) or all",
        default: "mention",
    },
    OptionDoc {
        name: "COMPONENT_ROOM_INVITES",
        aliases: &[],
        meaning: "room invitations: ignore or accept",
        default: "ignore",
    },
];

/// The localpart of the real JID the connector joins rooms from.
const ROOMS_LOCALPART: &str = "rooms";
/// How long a join may go unanswered before it counts as failed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The first rejoin waits up to this long…
const REJOIN_FIRST: Duration = Duration::from_secs(2);
/// …and none longer than this (DESIGN §7).
const REJOIN_CAP: Duration = Duration::from_secs(300);
/// A membership that held this long was good: its next loss starts the
/// backoff over.
const STABLE_MEMBERSHIP: Duration = Duration::from_secs(60);
/// `nick_2` … `nick_9`: past that, the taken nick is a refused join.
const MAX_NICK_SUFFIX: u32 = 9;

/// What to do with invitations (`COMPONENT_ROOM_INVITES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitePolicy {
    /// Log and drop them.
    Ignore,
    /// Join the room; rejoin it after relinks while the process runs.
    Accept,
}

/// One room to be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomConfig {
    /// The room's bare JID.
    pub room: String,
    /// The nick to join as.
    pub nick: String,
}

/// The rooms' options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOptions {
    /// `COMPONENT_ROOMS`.
    pub rooms: Vec<RoomConfig>,
    /// `COMPONENT_ROOM_MESSAGES`.
    pub messages: RoomMessages,
    /// `COMPONENT_ROOM_INVITES`.
    pub invites: InvitePolicy,
    /// The nick for rooms that name none: the domain's first label.
    pub default_nick: String,
}

impl RoomOptions {
    pub(crate) fn from_sources(
        sources: &Sources<'_>,
        domain: &str,
    ) -> Result<RoomOptions, OptionError> {
        let default_nick = domain.split('.').next().unwrap_or(domain).to_owned();
        let mut rooms = Vec::new();
        if let Some(list) = sources.get("COMPONENT_ROOMS") {
            for item in list
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
            {
                let room = parse_room(item, &default_nick).ok_or_else(|| {
                    invalid(
                        "COMPONENT_ROOMS",
                        &list,
                        "room@service or room@service/nick, comma-separated",
                    )
                })?;
                if !rooms
                    .iter()
                    .any(|known: &RoomConfig| known.room == room.room)
                {
                    rooms.push(room);
                }
            }
        }
        let messages = match sources.get("COMPONENT_ROOM_MESSAGES").as_deref() {
            None | Some("mention") => RoomMessages::Mention,
            Some("all") => RoomMessages::All,
            Some(other) => {
                return Err(invalid("COMPONENT_ROOM_MESSAGES", other, "mention or all"));
            }
        };
        let invites = match sources.get("COMPONENT_ROOM_INVITES").as_deref() {
            None | Some("ignore") => InvitePolicy::Ignore,
            Some("accept") => InvitePolicy::Accept,
            Some(other) => {
                return Err(invalid("COMPONENT_ROOM_INVITES", other, "ignore or accept"));
            }
        };
        Ok(RoomOptions {
            rooms,
            messages,
            invites,
            default_nick,
        })
    }
}

/// `room@service[/nick]`; `None` unless it is a room JID.
fn parse_room(item: &str, default_nick: &str) -> Option<RoomConfig> {
    let jid = jid::Jid::new(item).ok()?;
    jid.node()?;
    let room = jid.to_bare().to_string();
    let nick = jid
        .resource()
        .map_or_else(|| default_nick.to_owned(), |nick| nick.to_string());
    Some(RoomConfig { room, nick })
}

/// The real JID the connector joins a room from with `nick`.
fn real_jid(domain: &str, nick: &str) -> String {
    format!("{ROOMS_LOCALPART}@{domain}/{nick}")
}

/// One room in the directory.
#[derive(Debug, Clone)]
struct Entry {
    /// The JID the connector is in the room as (and sends from).
    real_jid: String,
    /// Its nick there now (`nick_2` after a conflict).
    nick: String,
}

/// The rooms the connector is in or joining, and its real JID and nick in
/// each. Cheap to clone; every clone sees the same rooms.
#[derive(Debug, Clone, Default)]
pub struct RoomDirectory {
    /// Room bare JID → the connector's place in it.
    rooms: Arc<Mutex<HashMap<String, Entry>>>,
}

impl RoomDirectory {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The real JID the connector is in `room` as, if it is one of its rooms.
    pub fn occupant(&self, room: &str) -> Option<String> {
        self.lock().get(room).map(|entry| entry.real_jid.clone())
    }

    /// The connector's nick in `room`, if it is one of its rooms.
    fn nick(&self, room: &str) -> Option<String> {
        self.lock().get(room).map(|entry| entry.nick.clone())
    }

    fn set(&self, room: &str, real_jid: &str, nick: &str) {
        self.lock().insert(
            room.to_owned(),
            Entry {
                real_jid: real_jid.to_owned(),
                nick: nick.to_owned(),
            },
        );
    }
}

/// What the dispatcher hands the rooms (see [`Rooms::hand_over`]).
#[derive(Debug)]
pub enum RoomEvent {
    /// A presence from one of the rooms: the keeper follows joins, kicks
    /// and nick changes through them.
    Presence(Element),
    /// An invitation; followed or not by `COMPONENT_ROOM_INVITES`.
    Invite(Invite),
    /// A room refused a message the connector sent it.
    Refused(Element),
}

/// The dispatcher's view of the rooms.
pub struct Rooms {
    /// The rooms and the connector's nick in each.
    directory: RoomDirectory,
    /// Which room messages reach the bot.
    messages: RoomMessages,
    /// Whether invitations are followed.
    invites: InvitePolicy,
    /// To the keeper.
    events: mpsc::UnboundedSender<RoomEvent>,
}

impl Rooms {
    /// Whether `from` is a room the connector is in, or an occupant of
    /// one: nothing may be answered there with an error.
    pub fn is_room(&self, from: &str) -> bool {
        let room = from.split('/').next().unwrap_or(from);
        self.directory.nick(room).is_some()
    }

    /// The connector's nick in `room`, if it is one of its rooms.
    pub fn nick(&self, room: &str) -> Option<String> {
        self.directory.nick(room)
    }

    /// Which room messages reach the bot.
    pub fn messages(&self) -> RoomMessages {
        self.messages
    }

    /// Takes what the dispatcher decided concerns the rooms: presences go
    /// to the keeper, invitations too when they are accepted.
    pub fn hand_over(&self, event: RoomEvent) {
        match event {
            RoomEvent::Invite(invite) if self.invites == InvitePolicy::Ignore => info!(
                room = %invite.room,
                from = invite.from.as_deref().unwrap_or("the room"),
                "invitation ignored (COMPONENT_ROOM_INVITES=ignore)"
            ),
            RoomEvent::Refused(stanza) => {
                let room = stanza.attr("from").unwrap_or_default();
                warn!(%room, error = %error_text(&stanza), "a room refused a message");
            }
            event => {
                let _ = self.events.send(event);
            }
        }
    }
}

/// The condition and text of an error stanza, for the log.
fn error_text(stanza: &Element) -> String {
    let Some(error) = stanza.children().find(|child| child.name() == "error") else {
        return "no error element".to_owned();
    };
    let condition = error
        .children()
        .find(|c| c.ns() == xmpp_lambda_shared::STANZAS_NS && c.name() != "text")
        .map_or("undefined-condition", Element::name);
    match error.get_child("text", xmpp_lambda_shared::STANZAS_NS) {
        Some(text) => format!("{condition} ({})", text.text()),
        None => condition.to_owned(),
    }
}

/// Where a membership stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not in the room, and not trying now (the link is down).
    Out,
    /// A join was sent at this time; no answer yet.
    Joining(Instant),
    /// In the room since then.
    Joined(Instant),
    /// Out, rejoining at this time.
    Waiting(Instant),
}

/// The connector's membership of one room.
#[derive(Debug)]
struct Membership {
    /// The room's bare JID.
    room: String,
    /// The nick it asks for first.
    nick: String,
    /// The nick of the current or last attempt.
    current_nick: String,
    /// The suffix of `current_nick` (1: none).
    suffix: u32,
    /// The real JID it joins from.
    real_jid: String,
    /// The room's password, from an invitation.
    password: Option<String>,
    /// Where it stands.
    state: State,
    /// Waits between rejoins.
    backoff: Backoff,
}

impl Membership {
    fn new(room: &str, nick: &str, domain: &str, password: Option<String>) -> Membership {
        Membership {
            room: room.to_owned(),
            nick: nick.to_owned(),
            current_nick: nick.to_owned(),
            suffix: 1,
            real_jid: real_jid(domain, nick),
            password,
            state: State::Out,
            backoff: Backoff::new(REJOIN_FIRST, REJOIN_CAP),
        }
    }

    fn occupant(&self) -> String {
        format!("{}/{}", self.room, self.current_nick)
    }
}

/// The task that keeps the connector in its rooms.
pub struct RoomKeeper {
    /// The component's domain, for the real JIDs of invited rooms.
    domain: String,
    /// The nick for invited rooms.
    default_nick: String,
    /// Every room, configured or invited.
    memberships: Vec<Membership>,
    /// Shared with the dispatcher and the pusher.
    directory: RoomDirectory,
    /// Presences and invitations from the dispatcher.
    events: mpsc::UnboundedReceiver<RoomEvent>,
    /// The link's writer.
    writer: mpsc::UnboundedSender<Outbound>,
    /// `xmpp_lambda_rooms_joined`.
    joined: Gauge,
}

/// The two halves for `options` on the component `domain`; `joined` is
/// kept at the number of rooms the connector is in.
pub fn start(
    options: &RoomOptions,
    domain: &str,
    writer: mpsc::UnboundedSender<Outbound>,
    directory: RoomDirectory,
    joined: Gauge,
) -> (Rooms, RoomKeeper) {
    let (events_tx, events) = mpsc::unbounded_channel();
    let memberships: Vec<Membership> = options
        .rooms
        .iter()
        .map(|room| Membership::new(&room.room, &room.nick, domain, None))
        .collect();
    for membership in &memberships {
        directory.set(&membership.room, &membership.real_jid, &membership.nick);
    }
    let rooms = Rooms {
        directory: directory.clone(),
        messages: options.messages,
        invites: options.invites,
        events: events_tx,
    };
    let keeper = RoomKeeper {
        domain: domain.to_owned(),
        default_nick: options.default_nick.clone(),
        memberships,
        directory,
        events,
        writer,
        joined,
    };
    (rooms, keeper)
}

impl RoomKeeper {
    /// Keeps the connector in its rooms until shutdown, then leaves them.
    /// Returning drops its writer.
    pub async fn run(mut self, mut link: watch::Receiver<LinkState>, mut shutdown: Shutdown) {
        // The link joined for last: every new link needs its own joins,
        // even one that came up before this task saw the old one drop.
        let mut joined_on = None;
        let mut linked = false;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                changed = link.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let state = link.borrow_and_update().clone();
                    linked = state.is_up();
                    match state {
                        LinkState::Up { connection } if joined_on != Some(connection) => {
                            joined_on = Some(connection);
                            self.join_all();
                        }
                        LinkState::Up { .. } => {}
                        _ => {
                            for membership in &mut self.memberships {
                                membership.state = State::Out;
                            }
                        }
                    }
                }
                event = self.events.recv() => match event {
                    Some(RoomEvent::Presence(presence)) => self.on_presence(&presence),
                    Some(RoomEvent::Invite(invite)) => self.on_invite(invite, linked),
                    // Logged by `Rooms::hand_over`; never sent here.
                    Some(RoomEvent::Refused(_)) => {}
                    None => break,
                },
                () = sleep_until(wake) => self.on_timer(),
                () = shutdown.recv() => break,
            }
            let joined = self
                .memberships
                .iter()
                .filter(|membership| matches!(membership.state, State::Joined(_)))
                .count();
            self.joined.set(joined as i64);
        }
        self.leave_all();
    }

    /// After a link-up: every room, at once, with its own nick.
    fn join_all(&mut self) {
        let now = Instant::now();
        for index in 0..self.memberships.len() {
            let membership = &mut self.memberships[index];
            membership.current_nick = membership.nick.clone();
            membership.suffix = 1;
            self.join(index, now);
        }
    }

    fn join(&mut self, index: usize, now: Instant) {
        let membership = &mut self.memberships[index];
        membership.state = State::Joining(now);
        let presence = join_presence(
            &membership.occupant(),
            &membership.real_jid,
            membership.password.as_deref(),
        );
        debug!(room = %membership.room, nick = %membership.current_nick, "joining room");
        self.write(presence);
    }

    fn leave_all(&mut self) {
        for index in 0..self.memberships.len() {
            let membership = &self.memberships[index];
            if matches!(membership.state, State::Joined(_)) {
                let presence = leave_presence(&membership.occupant(), &membership.real_jid);
                self.write(presence);
            }
        }
    }

    fn write(&self, stanza: Element) {
        if self.writer.send(Outbound::stanza(stanza)).is_err() {
            debug!("link has stopped; room stanza not written");
        }
    }

    fn find(&self, room: &str) -> Option<usize> {
        self.memberships.iter().position(|m| m.room == room)
    }

    fn on_presence(&mut self, presence: &Element) {
        let Some(from) = presence.attr("from") else {
            return;
        };
        let room = from.split('/').next().unwrap_or(from);
        let Some(index) = self.find(room) else {
            return;
        };
        let now = Instant::now();
        let own_nick = self.memberships[index].current_nick.clone();
        match room_presence(presence, &own_nick) {
            RoomPresence::Joined { nick, created } => {
                let membership = &mut self.memberships[index];
                if matches!(membership.state, State::Joined(_)) && membership.current_nick == nick {
                    return;
                }
                membership.state = State::Joined(now);
                membership.current_nick = nick.clone();
                self.directory
                    .set(&membership.room, &membership.real_jid, &nick);
                info!(room = %membership.room, %nick, created, "joined room");
                if created {
                    // A room the join created is locked until configured:
                    // accept the defaults so others may enter.
                    let unlock = instant_room_request(
                        &membership.room,
                        &membership.real_jid,
                        &format!("unlock-{}", uuid::Uuid::new_v4()),
                    );
                    self.write(unlock);
                }
            }
            RoomPresence::NickConflict => {
                if self.memberships[index].suffix >= MAX_NICK_SUFFIX {
                    self.retry_later(index, now, "every nick up to the last one is taken");
                    return;
                }
                let membership = &mut self.memberships[index];
                membership.suffix += 1;
                membership.current_nick = format!("{}_{}", membership.nick, membership.suffix);
                info!(room = %membership.room, nick = %membership.current_nick, "nick taken in room; trying another");
                self.join(index, now);
            }
            RoomPresence::Refused { condition, text } => {
                let reason = match text {
                    Some(text) => format!("join refused: {condition} ({text})"),
                    None => format!("join refused: {condition}"),
                };
                self.retry_later(index, now, &reason);
            }
            RoomPresence::Removed { reason } => self.retry_later(index, now, &reason),
            RoomPresence::Other => {}
        }
    }

    /// Out of a room for `reason`: one log line, then a rejoin after the
    /// backoff's next wait.
    fn retry_later(&mut self, index: usize, now: Instant, reason: &str) {
        let membership = &mut self.memberships[index];
        if let State::Joined(since) = membership.state
            && now.duration_since(since) >= STABLE_MEMBERSHIP
        {
            membership.backoff.reset();
        }
        let delay = membership.backoff.next_delay(&mut rand::rng());
        membership.state = State::Waiting(now + delay);
        warn!(
            room = %membership.room,
            reason,
            retry_in_ms = delay.as_millis() as u64,
            "not in room; rejoining later"
        );
    }

    fn on_invite(&mut self, invite: Invite, linked: bool) {
        let now = Instant::now();
        let index = match self.find(&invite.room) {
            Some(index) => {
                if matches!(
                    self.memberships[index].state,
                    State::Joined(_) | State::Joining(_)
                ) {
                    debug!(room = %invite.room, "invited to a room already joined");
                    return;
                }
                if invite.password.is_some() {
                    self.memberships[index].password = invite.password.clone();
                }
                index
            }
            None => {
                let membership = Membership::new(
                    &invite.room,
                    &self.default_nick,
                    &self.domain,
                    invite.password.clone(),
                );
                self.directory
                    .set(&membership.room, &membership.real_jid, &membership.nick);
                self.memberships.push(membership);
                self.memberships.len() - 1
            }
        };
        info!(
            room = %invite.room,
            from = invite.from.as_deref().unwrap_or("the room"),
            "invitation accepted"
        );
        if linked {
            self.join(index, now);
        }
    }

    /// When the next rejoin or join timeout is due.
    fn next_wake(&self) -> Option<Instant> {
        self.memberships
            .iter()
            .filter_map(|membership| match membership.state {
                State::Waiting(at) => Some(at),
                State::Joining(since) => Some(since + JOIN_TIMEOUT),
                State::Out | State::Joined(_) => None,
            })
            .min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        for index in 0..self.memberships.len() {
            match self.memberships[index].state {
                State::Waiting(at) if at <= now => {
                    let membership = &mut self.memberships[index];
                    membership.current_nick = membership.nick.clone();
                    membership.suffix = 1;
                    self.join(index, now);
                }
                State::Joining(since) if since + JOIN_TIMEOUT <= now => {
                    self.retry_later(index, now, "the room did not answer the join");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_name_their_nick_or_take_the_domains_first_label() {
        assert_eq!(
            parse_room("ops@conference.example.com", "bot"),
            Some(RoomConfig {
                room: "ops@conference.example.com".into(),
                nick: "bot".into()
            })
        );
        assert_eq!(
            parse_room("ops@conference.example.com/Helper Bot", "bot"),
            Some(RoomConfig {
                room: "ops@conference.example.com".into(),
                nick: "Helper Bot".into()
            })
        );
        assert_eq!(parse_room("conference.example.com", "bot"), None);
        assert_eq!(parse_room("not a jid@@", "bot"), None);
    }

    #[test]
    fn the_real_jid_is_at_the_component() {
        assert_eq!(
            real_jid("bot.example.com", "bot"),
            "rooms@bot.example.com/bot"
        );
    }
}

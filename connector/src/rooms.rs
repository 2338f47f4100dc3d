//! Group chats (DESIGN §7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The rooms the connector is in or joining, and the real JID it joins each
/// as: pushes to a room default to `groupchat` from that JID. Cheap to
/// clone; every clone sees the same rooms.
#[derive(Debug, Clone, Default)]
pub struct RoomDirectory {
    /// Room bare JID → the connector's real JID in it.
    rooms: Arc<Mutex<HashMap<String, String>>>,
}

impl RoomDirectory {
    /// The real JID the connector is in `room` as, if it is one of its rooms.
    pub fn occupant(&self, room: &str) -> Option<String> {
        self.rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(room)
            .cloned()
    }
}

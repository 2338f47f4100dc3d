//! What a received message asks of the conversation (DESIGN §10): a chat
//! state (XEP-0085), a delivery receipt (XEP-0184), a displayed marker
//! (XEP-0333). Read once, when the stanza becomes a request; [`crate::live`]
//! builds what answers them.

use crate::ChatState;
use minidom::Element;

/// XEP-0085's namespace of chat states.
pub const CHAT_STATES_NS: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0184's namespace of delivery receipts.
pub const RECEIPTS_NS: &str = "urn:xmpp:receipts";
/// XEP-0333's namespace of chat markers.
pub const CHAT_MARKERS_NS: &str = "urn:xmpp:chat-markers:0";

/// What a received message asked of the conversation, read in one pass
/// over its children (every request pays for this, so once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signals {
    /// Its chat state: the first element in [`CHAT_STATES_NS`] that names
    /// a state of XEP-0085. An element of another name there is no state
    /// a client sends, and counts as none.
    pub chat_state: Option<ChatState>,
    /// It asks for a delivery receipt: it carries
    /// `<request xmlns='urn:xmpp:receipts'/>` and an `id` for the receipt
    /// to name (XEP-0184 §5).
    pub receipt_requested: bool,
    /// It is markable: it carries
    /// `<markable xmlns='urn:xmpp:chat-markers:0'/>` and an `id` for the
    /// marker to name (XEP-0333).
    pub markable: bool,
}

/// The [`Signals`] of a received stanza; none for anything but a message.
pub fn signals_of(stanza: &Element) -> Signals {
    let mut signals = Signals::default();
    if stanza.name() != "message" {
        return signals;
    }
    let mut receipt = false;
    let mut markable = false;
    for child in stanza.children() {
        if child.has_ns(CHAT_STATES_NS) {
            if signals.chat_state.is_none() {
                signals.chat_state = ChatState::from_name(child.name());
            }
        } else if child.is("request", RECEIPTS_NS) {
            receipt = true;
        } else if child.is("markable", CHAT_MARKERS_NS) {
            markable = true;
        }
    }
    if receipt || markable {
        let has_id = stanza.attr("id").is_some_and(|id| !id.is_empty());
        signals.receipt_requested = receipt && has_id;
        signals.markable = markable && has_id;
    }
    signals
}

//! The xmpp-lambda protocol, in one place so the connector and the function
//! cannot drift apart.
//!
//! * [`Request`]: the JSON a bot receives (compatible with Prosody's
//!   `mod_component_http`).
//! * [`BotResponse`]: what came back from the bot over HTTP (or nothing).
//! * [`RequestEnvelope`] / [`ReplyEnvelope`] / [`SendEnvelope`]: the
//!   versioned SQS messages.
//! * [`OutboundMessage`]: a message a bot sends on its own (DESIGN §6).
//! * [`signing`]: signed requests (`X-XMPP-Lambda-Signature`), to sign
//!   and to verify.
//! * With the `xml` feature: every mapping rule between stanzas and JSON as
//!   pure functions ([`stanza_to_request`], [`response_to_stanzas`],
//!   [`presence_auto_answer`], [`iq_auto_answer`], [`outbound_to_stanza`]),
//!   and the live conversation rules of [`live`] (typing, receipts,
//!   markers, skipping messages without a body).
//!
//! Nothing here does I/O.

mod envelope;
mod outbound;
mod request;
mod response;
pub mod signing;

pub use envelope::{
    ENVELOPE_VERSION, EnvelopeError, MAX_QUEUE_MESSAGE_BYTES, MAX_REQUEST_ENVELOPE_BYTES,
    MAX_SEND_MESSAGES, ReplyEnvelope, ReplyQueueMessage, RequestEnvelope, SendEnvelope, StreamPart,
};
pub use outbound::OutboundMessage;
pub use request::{
    ChatState, Request, StanzaKind, UnknownKind, conversation_id, conversation_key,
    message_group_id,
};
pub use response::{BotResponse, is_reply_stream};
pub use signing::{SignatureError, Signer};

#[cfg(feature = "xml")]
mod auto;
#[cfg(feature = "xml")]
mod errors;
#[cfg(feature = "xml")]
pub mod live;
#[cfg(feature = "xml")]
pub mod muc;
#[cfg(feature = "xml")]
mod reply;
#[cfg(feature = "xml")]
mod signals;
#[cfg(feature = "xml")]
mod stanza;
#[cfg(feature = "xml")]
mod stream;

#[cfg(feature = "xml")]
pub use auto::{iq_auto_answer, presence_auto_answer};
#[cfg(feature = "xml")]
pub use errors::{
    ErrorType, StanzaErrorSpec, error_for_status, error_reply, no_response_error, too_large_error,
};
#[cfg(feature = "xml")]
pub use outbound::{bad_message_text, outbound_to_stanza};
#[cfg(feature = "xml")]
pub use reply::{
    BadReply, MAX_BODY_BYTES, MAX_REPLIES, MAX_URL_BYTES, OOB_NS, Reply, bad_reply_error,
    response_to_stanzas, stanzas_to_send,
};
/// An attribute name known at compile time, as attribute maps key it.
#[cfg(feature = "xml")]
pub use stanza::name as attribute_name;
#[cfg(feature = "xml")]
pub use stanza::{
    CLIENT_NS, COMPONENT_NS, InvalidStanza, STANZAS_NS, append_stanza_text, client_stanza_text,
    common_name, element_to_string, escape_attribute, escaped_len, is_xml_char, parse_stanza,
    stanza_to_request, wants_answer, with_namespace,
};
#[cfg(feature = "xml")]
pub use stream::{CORRECTION_NS, as_correction, is_message_with_body, line_replaces};

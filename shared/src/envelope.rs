//! The queue messages of the sqs transport (DESIGN §5), versioned.

use crate::{BotResponse, Request};
use serde::{Deserialize, Serialize};

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// Why a queue message could not be read as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the envelope's shape.
    #[error("invalid envelope: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Written by a newer (or unknown) version of xmpp-lambda.
    #[error("unsupported envelope version {0} (this build reads version {ENVELOPE_VERSION})")]
    UnsupportedVersion(u64),
    /// No `v` at all.
    #[error("invalid envelope: missing version field \"v\"")]
    MissingVersion,
    /// A `v` that is not a version number at all (a string, a fraction…).
    #[error("invalid envelope: version field \"v\" is {0}, not a version number")]
    InvalidVersion(String),
    /// A send envelope with no message, or more than SQS could have sent
    /// in one batch.
    #[error("invalid envelope: \"send\" holds {0} messages (expected 1 to {MAX_SEND_MESSAGES})")]
    SendCount(usize),
}

/// The most messages one send envelope carries.
pub const MAX_SEND_MESSAGES: usize = 10;

/// The largest message body SQS accepts (1 MiB, `SendMessage`'s
/// `MessageBody` limit and the default `MaximumMessageSize` of a queue):
/// no envelope may be larger.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 1024 * 1024;

/// The largest request envelope the connector queues. Its reply envelope
/// repeats the request, so the rest of [`MAX_QUEUE_MESSAGE_BYTES`] (256 KiB)
/// is left for the bot's answer.
pub const MAX_REQUEST_ENVELOPE_BYTES: usize = 768 * 1024;

/// A request on its way to the bot: the body of a request-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Always [`ENVELOPE_VERSION`]; checked before anything else is read.
    pub v: u32,
    /// Unique per stanza: the FIFO deduplication id, and how the connector
    /// drops a reply delivered twice.
    pub id: String,
    /// The stanza as the bot sees it.
    pub request: Request,
}

/// A bot's answer on its way back: the body of a reply-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyEnvelope {
    /// Always [`ENVELOPE_VERSION`].
    pub v: u32,
    /// The id of the request envelope this answers.
    pub id: String,
    /// The request again, so the connector needs no state to build the reply.
    pub request: Request,
    /// The bot's HTTP outcome, turned into stanzas by the connector. In a
    /// part of a stream, one line: a reply object as a JSON answer, or the
    /// outcome that stopped the stream.
    pub response: BotResponse,
    /// Set when the answer is streamed (DESIGN §11): each line is an
    /// envelope of its own, sent as soon as it exists, and this says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamPart>,
}

/// One part of a streamed answer over the reply queue. The parts of one
/// request share its envelope id; the connector applies them in `seq`
/// order, each once (a repeat is dropped, one that comes early waits for
/// the ones before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPart {
    /// 0 for the first line, then one more for each.
    pub seq: u64,
    /// This part ends the stream. Its response is the last line, or (when
    /// the stream stopped early) the outcome the sender hears of, or a
    /// `204` when the stream ended after its last line.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last: bool,
}

/// Messages a bot pushes (DESIGN §6): the body of a reply-queue message
/// that answers no request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEnvelope {
    /// Always [`ENVELOPE_VERSION`].
    pub v: u32,
    /// Unique per envelope: the FIFO deduplication id, and how the
    /// connector drops an envelope delivered twice.
    pub id: String,
    /// 1 to [`MAX_SEND_MESSAGES`] outbound message objects, written in
    /// order; kept as JSON so each is checked by the outbound rules, which
    /// name the field at fault.
    pub send: Vec<serde_json::Value>,
}

/// What the connector reads from the reply queue: a bot's answer to a
/// request, or messages a bot sends on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyQueueMessage {
    /// An answer to a request ([`ReplyEnvelope`]).
    Reply(Box<ReplyEnvelope>),
    /// Pushed messages ([`SendEnvelope`]).
    Send(SendEnvelope),
}

/// Checks `v` first, so a newer envelope gives a version error rather than a
/// confusing shape error.
fn check_version(json: &str) -> Result<(), EnvelopeError> {
    #[derive(Deserialize)]
    struct Version {
        v: Option<serde_json::Value>,
    }
    let version: Version = serde_json::from_str(json)?;
    match version.v {
        None => Err(EnvelopeError::MissingVersion),
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(ENVELOPE_VERSION)) => {
            Ok(())
        }
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(version) => Err(EnvelopeError::UnsupportedVersion(version)),
            None => Err(EnvelopeError::InvalidVersion(n.to_string())),
        },
        Some(other) => Err(EnvelopeError::InvalidVersion(other.to_string())),
    }
}

impl RequestEnvelope {
    /// Wraps a request with a fresh id.
    pub fn new(id: impl Into<String>, request: Request) -> Self {
        RequestEnvelope {
            v: ENVELOPE_VERSION,
            id: id.into(),
            request,
        }
    }

    /// Reads a queue message body.
    pub fn from_json(json: &str) -> Result<Self, EnvelopeError> {
        check_version(json)?;
        Ok(serde_json::from_str(json)?)
    }

    /// The queue message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }

    /// The queue message body of the envelope `id` for `request`, written
    /// without a copy of the request: the same text as [`Self::to_json`].
    pub fn json_for(id: &str, request: &Request) -> String {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            v: u32,
            id: &'a str,
            request: &'a Request,
        }
        let envelope = Borrowed {
            v: ENVELOPE_VERSION,
            id,
            request,
        };
        serde_json::to_string(&envelope).expect("an envelope always serialises")
    }

    /// The answer to this request, carrying the same id.
    pub fn reply(&self, response: BotResponse) -> ReplyEnvelope {
        ReplyEnvelope {
            v: ENVELOPE_VERSION,
            id: self.id.clone(),
            request: self.request.clone(),
            response,
            stream: None,
        }
    }

    /// Part `seq` of a streamed answer to this request (`last` ends it).
    pub fn reply_part(&self, response: BotResponse, seq: u64, last: bool) -> ReplyEnvelope {
        ReplyEnvelope {
            stream: Some(StreamPart { seq, last }),
            ..self.reply(response)
        }
    }
}

impl ReplyEnvelope {
    /// Reads a queue message body.
    pub fn from_json(json: &str) -> Result<Self, EnvelopeError> {
        check_version(json)?;
        Ok(serde_json::from_str(json)?)
    }

    /// The queue message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }
}

impl SendEnvelope {
    /// Wraps outbound messages with `id`.
    pub fn new(id: impl Into<String>, send: Vec<serde_json::Value>) -> Self {
        SendEnvelope {
            v: ENVELOPE_VERSION,
            id: id.into(),
            send,
        }
    }

    /// Reads a queue message body.
    pub fn from_json(json: &str) -> Result<Self, EnvelopeError> {
        check_version(json)?;
        let envelope: SendEnvelope = serde_json::from_str(json)?;
        if envelope.send.is_empty() || envelope.send.len() > MAX_SEND_MESSAGES {
            return Err(EnvelopeError::SendCount(envelope.send.len()));
        }
        Ok(envelope)
    }

    /// The queue message body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an envelope always serialises")
    }
}

impl ReplyQueueMessage {
    /// Reads a reply-queue message body: a send envelope when it has a
    /// `send` member, else a reply envelope.
    pub fn from_json(json: &str) -> Result<Self, EnvelopeError> {
        #[derive(Deserialize)]
        struct Probe {
            send: Option<serde::de::IgnoredAny>,
        }
        check_version(json)?;
        let probe: Probe = serde_json::from_str(json)?;
        if probe.send.is_some() {
            SendEnvelope::from_json(json).map(ReplyQueueMessage::Send)
        } else {
            ReplyEnvelope::from_json(json).map(|reply| ReplyQueueMessage::Reply(Box::new(reply)))
        }
    }

    /// The envelope's id.
    pub fn id(&self) -> &str {
        match self {
            ReplyQueueMessage::Reply(reply) => &reply.id,
            ReplyQueueMessage::Send(send) => &send.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            stanza: "<message xmlns='jabber:client'><body>hi</body></message>".into(),
            id: Some("m1".into()),
            ..Request::chat("alice@example.com/x", "echo@bot.example.com", "hi")
        }
    }

    #[test]
    fn request_envelope_round_trips() {
        let envelope = RequestEnvelope::new("0b8c", request());
        let json = envelope.to_json();
        assert!(
            json.starts_with(r#"{"v":1,"id":"0b8c","request":{"#),
            "{json}"
        );
        assert_eq!(RequestEnvelope::from_json(&json).expect("parse"), envelope);
    }

    #[test]
    fn an_envelope_written_from_a_borrowed_request_is_the_same_text() {
        let envelope = RequestEnvelope::new("0b8c", request());
        assert_eq!(
            RequestEnvelope::json_for("0b8c", &request()),
            envelope.to_json()
        );
    }

    #[test]
    fn reply_envelope_round_trips() {
        let envelope = RequestEnvelope::new("0b8c", request()).reply(BotResponse::json("{}"));
        let json = envelope.to_json();
        assert!(
            json.contains(
                r#""response":{"status":200,"content_type":"application/json","body":"{}"}"#
            ),
            "{json}"
        );
        assert_eq!(ReplyEnvelope::from_json(&json).expect("parse"), envelope);
    }

    #[test]
    fn a_stream_part_round_trips_and_a_plain_reply_has_none() {
        let request = RequestEnvelope::new("0b8c", request());
        let part = request.reply_part(BotResponse::json(r#"{"body":"one"}"#), 3, false);
        let json = part.to_json();
        assert!(json.ends_with(r#""stream":{"seq":3}}"#), "{json}");
        assert_eq!(ReplyEnvelope::from_json(&json).expect("parse"), part);
        let last = request.reply_part(BotResponse::from_http(204, None, b""), 4, true);
        assert!(
            last.to_json()
                .ends_with(r#""stream":{"seq":4,"last":true}}"#)
        );
        let plain = request.reply(BotResponse::json("{}"));
        assert!(!plain.to_json().contains("stream"));
        assert_eq!(plain.stream, None);
    }

    #[test]
    fn unknown_version_is_an_error() {
        let json = RequestEnvelope::new("x", request())
            .to_json()
            .replace(r#""v":1"#, r#""v":2"#);
        assert_eq!(
            RequestEnvelope::from_json(&json).unwrap_err().to_string(),
            "unsupported envelope version 2 (this build reads version 1)"
        );
        assert_eq!(
            ReplyEnvelope::from_json(r#"{"id":"x"}"#)
                .unwrap_err()
                .to_string(),
            "invalid envelope: missing version field \"v\""
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let err = RequestEnvelope::from_json("not json").unwrap_err();
        assert!(matches!(err, EnvelopeError::Invalid(_)), "{err}");
        let err = ReplyEnvelope::from_json(r#"{"v":1,"id":"x"}"#).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid envelope: missing field"),
            "{err}"
        );
    }
}

//! A streamed answer (DESIGN §11) as the bot writes it: the
//! [`ReplyWriter`] hands each line on at once, to wherever the trigger's
//! answer goes (the Function URL's response, the reply queue, or a buffer),
//! and the bot's own outcome comes last.
//!
//! The rest of this module reads lines the way the connector will, so that
//! corrections nobody would see can be folded away before they cost a
//! queue message or a byte of a buffered answer.

use crate::reply::Reply;
use futures::SinkExt;
use futures::channel::mpsc;
use serde_json::{Map, Value};
use xmpp_lambda_shared::BotResponse;

/// Lines that may wait between the bot and where they go before
/// [`ReplyWriter::send`] waits: a slow reader slows the bot, never the
/// function's memory.
pub(crate) const LINE_BUFFER: usize = 16;

/// The media type of a streamed answer.
pub(crate) const NDJSON: &str = "application/x-ndjson";

/// What the bot hands on, in order.
#[derive(Debug)]
pub(crate) enum Part {
    /// One line of the stream: a reply object (or `{"replies": [...]}`)
    /// as JSON text on one line.
    Line(String),
    /// The bot is done: its outcome (see [`crate::Bot::answer_streamed`]).
    Last(BotResponse),
}

/// The stream of replies can take no more lines: the Function URL's caller
/// went away, a line could not be queued, or a buffered answer is full.
/// What was sent stays sent; the bot should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the stream of replies is closed: its reader went away or a line could not be sent")]
pub struct StreamClosed;

/// Where a streamed answer's replies go, one line each, as soon as they are
/// written (see [`crate::Bot::answer_streamed`]).
#[derive(Debug)]
pub struct ReplyWriter {
    /// Hands each line to the trigger's side, which sends it on.
    tx: mpsc::Sender<Part>,
    /// Lines handed on so far: whether the answer is a stream at all.
    lines: u64,
}

impl ReplyWriter {
    pub(crate) fn new(tx: mpsc::Sender<Part>) -> ReplyWriter {
        ReplyWriter { tx, lines: 0 }
    }

    /// Sends `reply` as the stream's next line. Waits while earlier lines
    /// are still on their way (over SQS, a line is a queue message).
    pub async fn send(&mut self, reply: Reply) -> Result<(), StreamClosed> {
        self.send_line(reply.to_json().to_string()).await
    }

    /// Sends any reply object, or `{"replies": [...]}`, as the next line:
    /// for what [`Reply`] cannot say. The connector checks it like any
    /// reply and stops the stream at one it refuses.
    pub async fn send_json(&mut self, line: &Value) -> Result<(), StreamClosed> {
        // Compact JSON never holds a raw line break.
        self.send_line(line.to_string()).await
    }

    /// Sends a line as it is (the proxy's lines, already one line each).
    pub(crate) async fn send_line(&mut self, line: String) -> Result<(), StreamClosed> {
        self.tx
            .send(Part::Line(line))
            .await
            .map_err(|_| StreamClosed)?;
        self.lines += 1;
        Ok(())
    }

    /// How many lines were sent so far.
    pub fn lines_sent(&self) -> u64 {
        self.lines
    }

    /// Whether no more lines can be sent (sending would give
    /// [`StreamClosed`]): a bot may stop early.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Hands on the bot's outcome, which ends the stream.
    pub(crate) async fn finish(mut self, last: BotResponse) {
        // Nobody reads any more: the trigger's side already knows why.
        let _ = self.tx.send(Part::Last(last)).await;
    }
}

/// What the bot's outcome adds to a stream that has lines (the rule of
/// [`crate::Bot::answer_streamed`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// A `200` JSON reply: one more line, the last.
    Line(String),
    /// Any other success: the stream ends after its lines.
    Done,
    /// An error, or no response: the stream stopped, and the sender should
    /// hear of it.
    Stopped(BotResponse),
}

/// How a stream with lines ends, given the bot's outcome.
pub(crate) fn stream_end(last: BotResponse) -> StreamEnd {
    if !last.is_success() {
        return StreamEnd::Stopped(last);
    }
    if last.status != 200 || !last.is_json() || last.body.trim().is_empty() {
        return StreamEnd::Done;
    }
    match serde_json::from_str::<Value>(&last.body) {
        Ok(Value::Null) => StreamEnd::Done,
        Ok(reply) => StreamEnd::Line(reply.to_string()),
        // The connector would refuse it as a bad reply: let it say so.
        Err(_) => StreamEnd::Stopped(last),
    }
}

/// A line's reply object when it is exactly one message with text or an
/// attachment: what a correction corrects, and what a correction must be
/// to be folded away (the connector treats anything else otherwise).
fn plain_message(line: &str) -> Option<Map<String, Value>> {
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
        return None;
    };
    let absent = |key: &str| object.get(key).is_none_or(Value::is_null);
    let text_or_absent = |key: &str| object.get(key).is_none_or(|v| v.is_null() || v.is_string());
    let body_ok = object
        .get("body")
        .is_none_or(|v| v.is_null() || v.is_string() || v.is_number());
    let kind_ok = object
        .get("kind")
        .is_none_or(|kind| kind.is_null() || kind == "message");
    let plain = absent("replies")
        && absent("stanza")
        && kind_ok
        && body_ok
        && ["url", "to", "from", "type"]
            .iter()
            .all(|key| text_or_absent(key))
        && (!absent("body") || !absent("url"));
    plain.then_some(object)
}

fn replaces(object: &Map<String, Value>) -> bool {
    object.get("replace") == Some(&Value::Bool(true))
}

/// Whether `line` corrects the stream's previous message and nothing else
/// (`"replace": true` on one plain message): a later such line makes it
/// one nobody needs to see.
pub(crate) fn is_correction(line: &str) -> bool {
    plain_message(line).is_some_and(|object| replaces(&object))
}

/// `correction` folded into `previous`, the line it corrects, when both
/// are plain messages: the newer text in the older one's place (a
/// correction still if the older was one).
fn folded(previous: &str, correction: &str) -> Option<String> {
    let mut newer = plain_message(correction).filter(replaces)?;
    let older = plain_message(previous)?;
    if !replaces(&older) {
        newer.remove("replace");
    }
    Some(Value::Object(newer).to_string())
}

/// The most bytes of lines a buffered answer holds: a buffered Lambda
/// response is at most 6 MB of JSON, in which every quote of a line is
/// escaped.
pub(crate) const MAX_BUFFERED_BYTES: usize = 4 * 1024 * 1024;

/// A stream's lines gathered for one buffered answer. Nobody sees the
/// text grow, so each correction is folded into the message it corrects:
/// the answer holds each message once, with its last text.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    /// The lines so far.
    lines: Vec<String>,
    /// Their bytes, line ends included.
    bytes: usize,
}

impl Gathered {
    /// Adds a line; `false` when it does not fit (it is dropped).
    pub(crate) fn push(&mut self, line: String) -> bool {
        if let Some(last) = self.lines.last_mut()
            && let Some(merged) = folded(last, &line)
        {
            let grown = self.bytes - last.len() + merged.len();
            if grown > MAX_BUFFERED_BYTES {
                return false;
            }
            self.bytes = grown;
            *last = merged;
            return true;
        }
        if self.bytes + line.len() + 1 > MAX_BUFFERED_BYTES {
            return false;
        }
        self.bytes += line.len() + 1;
        self.lines.push(line);
        true
    }

    /// The buffered answer: the bot's outcome as it is when it wrote no
    /// line, else `200` NDJSON with the lines and what the outcome adds.
    /// `last` is `None` when the stream was cut short (full, or the bot
    /// never finished).
    pub(crate) fn answer(mut self, last: Option<BotResponse>) -> BotResponse {
        if self.lines.is_empty() {
            return last.unwrap_or_else(BotResponse::no_response);
        }
        match last.map(stream_end) {
            Some(StreamEnd::Line(line)) => {
                if !self.push(line) {
                    tracing::warn!("a buffered answer is full: its last reply is left out");
                }
            }
            Some(StreamEnd::Done) => {}
            Some(StreamEnd::Stopped(outcome)) => tracing::warn!(
                status = outcome.status,
                lines = self.lines.len(),
                "the bot stopped its stream with an error: the lines before it are sent, \
                 the error cannot follow them on HTTP"
            ),
            None => tracing::warn!(
                lines = self.lines.len(),
                limit = MAX_BUFFERED_BYTES,
                "a buffered answer was cut short"
            ),
        }
        let mut body = String::with_capacity(self.bytes);
        for line in &self.lines {
            body.push_str(line);
            body.push('\n');
        }
        BotResponse::from_http(200, Some(NDJSON), body.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(value: Value) -> String {
        value.to_string()
    }

    #[test]
    fn a_stream_ends_with_the_bots_last_reply_or_its_error() {
        assert_eq!(
            stream_end(BotResponse::json(r#"{ "body": "done" }"#)),
            StreamEnd::Line(r#"{"body":"done"}"#.to_owned())
        );
        assert_eq!(stream_end(BotResponse::json("null")), StreamEnd::Done);
        assert_eq!(stream_end(BotResponse::json(" ")), StreamEnd::Done);
        assert_eq!(
            stream_end(BotResponse::from_http(204, None, b"")),
            StreamEnd::Done
        );
        assert_eq!(
            stream_end(BotResponse::from_http(200, Some("text/plain"), b"hi")),
            StreamEnd::Done
        );
        for stopped in [
            BotResponse::no_response(),
            BotResponse::from_http(503, None, b""),
            BotResponse::json("{not json"),
        ] {
            assert_eq!(stream_end(stopped.clone()), StreamEnd::Stopped(stopped));
        }
    }

    #[test]
    fn only_a_plain_message_with_replace_is_a_correction() {
        assert!(is_correction(&line(
            json!({"body": "a b", "replace": true})
        )));
        assert!(is_correction(&line(
            json!({"url": "https://x.example/", "replace": true})
        )));
        for not in [
            json!({"body": "a b"}),
            json!({"body": "a b", "replace": false}),
            json!({"replace": true}),
            json!({"body": null, "replace": true}),
            json!({"body": true, "replace": true}),
            json!({"stanza": "<message><body>x</body></message>", "replace": true}),
            json!({"replies": [{"body": "x"}], "replace": true}),
            json!({"kind": "presence", "body": "x", "replace": true}),
            json!({"body": "x", "to": 5, "replace": true}),
        ] {
            assert!(!is_correction(&line(not.clone())), "{not}");
        }
        assert!(!is_correction("not json"));
    }

    #[test]
    fn gathered_corrections_fold_into_the_message_they_correct() {
        let mut gathered = Gathered::default();
        for value in [
            json!({"body": "Streams"}),
            json!({"body": "Streams let", "replace": true}),
            json!({"body": "Streams let a bot", "replace": true}),
            json!({"body": "Next."}),
            json!({"stanza": "<presence/>"}),
            json!({"body": "after presence", "replace": true}),
            json!({"body": "after presence, grown", "replace": true}),
        ] {
            assert!(gathered.push(line(value)));
        }
        let answer = gathered.answer(Some(BotResponse::json(r#"{"body":"the end"}"#)));
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type.as_deref(), Some(NDJSON));
        let lines: Vec<Value> = answer
            .body
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(
            lines,
            [
                json!({"body": "Streams let a bot"}),
                json!({"body": "Next."}),
                json!({"stanza": "<presence/>"}),
                // Nothing to correct before it: it stays a correction, and
                // the connector sends it as a message of its own.
                json!({"body": "after presence, grown", "replace": true}),
                json!({"body": "the end"}),
            ]
        );
    }

    #[test]
    fn no_line_is_the_whole_answer_as_it_is() {
        let whole = BotResponse::from_http(503, Some("text/plain"), b"busy");
        assert_eq!(Gathered::default().answer(Some(whole.clone())), whole);
        assert_eq!(Gathered::default().answer(None), BotResponse::no_response());
    }

    #[test]
    fn a_buffered_answer_stops_at_its_limit() {
        let mut gathered = Gathered::default();
        let big = line(json!({"body": "x".repeat(60 * 1024)}));
        let mut taken = 0;
        while gathered.push(big.clone()) {
            taken += 1;
        }
        assert_eq!(taken, MAX_BUFFERED_BYTES / (big.len() + 1));
        // A correction that would grow past it is refused too.
        let grown = line(json!({"body": "y".repeat(120 * 1024), "replace": true}));
        assert!(!gathered.push(grown));
        let answer = gathered.answer(None);
        assert!(answer.body.len() <= MAX_BUFFERED_BYTES);
        assert_eq!(answer.body.lines().count(), taken);
    }
}

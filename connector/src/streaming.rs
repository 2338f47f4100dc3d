//! Streamed replies (DESIGN §11): a bot's answer that is a stream of reply
//! lines, relayed as each line completes.
//!
//! Each line goes through the reply rules of §2 on its own and is written
//! at once, in order. A line with `"replace": true` corrects the stream's
//! previous message (XEP-0308): corrections of one message go out at most
//! once per `COMPONENT_STREAM_EDIT_INTERVAL`, the latest text waiting for
//! its turn, and the last text of a chain is always sent. A line may take
//! `COMPONENT_STREAM_IDLE_TIMEOUT`, the whole stream
//! `COMPONENT_STREAM_MAX`; a timeout or a bad line stops the stream: what
//! was sent stays sent, and the sender then gets the §2 error.

use crate::options::{OptionDoc, OptionError, Sources, invalid, parse_seconds};
use crate::transport::{ReplyStream, StreamError};
use minidom::Element;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_shared::{
    BadReply, BotResponse, Request, as_correction, bad_reply_error, error_for_status, error_reply,
    is_message_with_body, line_replaces, response_to_stanzas,
};

/// The streams' options.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_STREAM_EDIT_INTERVAL",
        aliases: &[],
        meaning: "milliseconds between two corrections of one streamed message (the last text \\
                  is always sent)",
        default: "1000",
    },
    OptionDoc {
        name: "COMPONENT_STREAM_IDLE_TIMEOUT",
        aliases: &[],
        meaning: "seconds a streamed answer may take for its next line",
        default: "30",
    },
    OptionDoc {
        name: "COMPONENT_STREAM_MAX",
        aliases: &[],
        meaning: "seconds a streamed answer may take in all",
        default: "900",
    },
];

/// The streams' options, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// At most one correction of a message per this long.
    pub edit_interval: Duration,
    /// The longest wait for a line.
    pub idle_timeout: Duration,
    /// The longest a stream may run.
    pub max: Duration,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            edit_interval: Duration::from_millis(1000),
            idle_timeout: Duration::from_secs(30),
            max: Duration::from_secs(900),
        }
    }
}

impl StreamOptions {
    pub fn from_sources(sources: &Sources<'_>) -> Result<StreamOptions, OptionError> {
        let edit_interval = match sources.get("COMPONENT_STREAM_EDIT_INTERVAL") {
            None => StreamOptions::default().edit_interval,
            Some(text) => text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms <= 60_000)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    invalid(
                        "COMPONENT_STREAM_EDIT_INTERVAL",
                        &text,
                        "a number of milliseconds, at most 60000",
                    )
                })?,
        };
        Ok(StreamOptions {
            edit_interval,
            idle_timeout: parse_seconds(sources, "COMPONENT_STREAM_IDLE_TIMEOUT", 30)?,
            max: parse_seconds(sources, "COMPONENT_STREAM_MAX", 900)?,
        })
    }
}

/// How a relayed stream ended.
#[derive(Debug)]
pub enum StreamEnd {
    /// The bot ended it; every line was sent.
    Complete,
    /// It stopped early: a bad line, a timeout, a broken connection. The
    /// sender got this error (when one may be sent).
    Stopped(Stop),
}

/// Why a stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("line {line} is refused: {reason}")]
    BadLine { line: usize, reason: BadReply },
    #[error("line {line}: {error}")]
    Unreadable { line: usize, error: StreamError },
    #[error("no line for {0:?}")]
    Idle(Duration),
    #[error("the stream ran past {0:?}")]
    TooLong(Duration),
}

/// A correction waiting for its turn.
struct Pending {
    /// The correction itself.
    stanza: Element,
    /// When it may go out.
    due: Instant,
}

/// The message a stream's corrections apply to.
struct Corrected {
    /// The id it was first sent with, which every correction names.
    first_id: String,
    /// When its last correction went out.
    last_sent: Instant,
}

/// Relays `stream`'s lines for `request` through `write`, each line's
/// stanzas as soon as the line is complete; at the end (or stop) returns
/// how it ended and how many stanzas were written.
pub async fn relay(
    mut stream: ReplyStream<'_>,
    request: &Request,
    domain: &str,
    options: StreamOptions,
    new_id: &mut (dyn FnMut() -> String + Send),
    write: &mut (dyn FnMut(Element) + Send),
) -> (StreamEnd, usize) {
    let started = Instant::now();
    let stop_at = started + options.max;
    let mut written = 0;
    let mut lines = 0;
    let mut corrected: Option<Corrected> = None;
    let mut pending: Option<Pending> = None;
    let end = loop {
        let idle_until = (Instant::now() + options.idle_timeout).min(stop_at);
        let due = pending.as_ref().map(|pending| pending.due);
        let line = tokio::select! {
            line = stream.next_line() => line,
            () = sleep_until(due) => {
                if let Some(pending) = pending.take() {
                    write(pending.stanza);
                    written += 1;
                    if let Some(corrected) = &mut corrected {
                        corrected.last_sent = Instant::now();
                    }
                }
                continue;
            }
            () = tokio::time::sleep_until(idle_until) => {
                break if idle_until == stop_at {
                    Stop::TooLong(options.max)
                } else {
                    Stop::Idle(options.idle_timeout)
                };
            }
        };
        lines += 1;
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => {
                if let Some(pending) = pending.take() {
                    write(pending.stanza);
                    written += 1;
                }
                stream.finish();
                return (StreamEnd::Complete, written);
            }
            Err(error) => break Stop::Unreadable { line: lines, error },
        };
        let replaces = line_replaces(&line);
        let stanzas = match response_to_stanzas(request, &BotResponse::json(line), domain, new_id) {
            Ok(stanzas) => stanzas,
            Err(reason) => {
                break Stop::BadLine {
                    line: lines,
                    reason,
                };
            }
        };
        match (replaces, &mut corrected, &stanzas[..]) {
            // A correction of the previous message: now, or once the
            // interval since the last one has passed.
            (true, Some(chain), [message]) if is_message_with_body(message) => {
                let correction = as_correction(message.clone(), &chain.first_id);
                let due = chain.last_sent + options.edit_interval;
                if due <= Instant::now() {
                    pending = None;
                    write(correction);
                    written += 1;
                    chain.last_sent = Instant::now();
                } else {
                    pending = Some(Pending {
                        stanza: correction,
                        due,
                    });
                }
            }
            _ => {
                // Anything else ends the previous chain: its last text
                // goes first.
                if let Some(pending) = pending.take() {
                    write(pending.stanza);
                    written += 1;
                }
                corrected = None;
                for stanza in stanzas {
                    if is_message_with_body(&stanza) {
                        corrected = stanza.attr("id").map(|id| Corrected {
                            first_id: id.to_owned(),
                            last_sent: Instant::now(),
                        });
                    }
                    write(stanza);
                    written += 1;
                }
            }
        }
    };
    // Stopped: the last text of a chain still goes, then the error.
    if let Some(pending) = pending.take() {
        write(pending.stanza);
        written += 1;
    }
    let error = match &end {
        Stop::BadLine { reason, .. } => bad_reply_error(request, reason),
        Stop::Unreadable { .. } => error_reply(request, &error_for_status(500)),
        Stop::Idle(_) | Stop::TooLong(_) => error_reply(request, &error_for_status(0)),
    };
    if let Some(error) = error {
        write(error);
    }
    (StreamEnd::Stopped(end), written)
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

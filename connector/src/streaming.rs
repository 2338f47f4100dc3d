//! Streamed replies over http (DESIGN §11): a bot's answer that is a
//! stream of reply lines, relayed as each line completes. A line may take
//! `COMPONENT_STREAM_IDLE_TIMEOUT`, the whole stream `COMPONENT_STREAM_MAX`;
//! a timeout or a bad line stops the stream: what was sent stays sent, and
//! the sender then gets the §2 error. What each line writes is
//! [`StreamState`]'s to decide.

use crate::stream_state::{StreamOptions, StreamState};
use crate::transport::{ReplyStream, StreamError};
use crate::wake::sleep_until;
use minidom::Element;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_shared::live::Notified;
use xmpp_lambda_shared::{BadReply, Request, bad_reply_error, error_for_status, error_reply};

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

/// The sender's error for a stream that stopped early.
pub fn stop_error(request: &Request, stop: &Stop) -> Option<Element> {
    match stop {
        Stop::BadLine { reason, .. } => bad_reply_error(request, reason),
        Stop::Unreadable { .. } => error_reply(request, &error_for_status(500)),
        Stop::Idle(_) | Stop::TooLong(_) => error_reply(request, &error_for_status(0)),
    }
}

/// What a stream is relayed for.
pub struct Relay<'a> {
    /// The request the stream answers.
    pub request: &'a Request,
    /// The component's domain, which every reply must come from.
    pub domain: &'a str,
    /// The streams' timeouts and edit interval.
    pub options: StreamOptions,
    /// How long a wait for the next line may take before the sender sees
    /// the bot typing; `None` when typing is off or not shown to them.
    pub typing: Option<Duration>,
    /// What was sent for the request before the stream began.
    pub notified: Notified,
}

/// Relays an http bot's stream of lines through `write`, each line's
/// stanzas as soon as the line is complete, with the conversation's
/// receipt, marker and typing (DESIGN §10); at the end (or stop) returns
/// how it ended and how many reply stanzas were written.
pub async fn relay(
    mut stream: ReplyStream<'_>,
    relay: Relay<'_>,
    new_id: &mut (dyn FnMut() -> String + Send),
    write: &mut (dyn FnMut(Element) + Send),
) -> (StreamEnd, usize) {
    let Relay {
        request,
        domain,
        options,
        typing,
        notified,
    } = relay;
    let stop_at = Instant::now() + options.max;
    let mut out = Vec::new();
    let mut state = StreamState::start(
        request,
        domain,
        options.edit_interval,
        typing,
        notified,
        new_id,
        &mut out,
    );
    let mut lines = 0;
    let stop = loop {
        out.drain(..).for_each(&mut *write);
        let idle_until = (Instant::now() + options.idle_timeout).min(stop_at);
        let line = tokio::select! {
            line = stream.next_line() => line,
            () = sleep_until(state.next_due()) => {
                state.on_time(request, domain, Instant::now(), new_id, &mut out);
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
        match line {
            Ok(Some(line)) => {
                if let Err(reason) =
                    state.line(request, domain, &line, Instant::now(), new_id, &mut out)
                {
                    break Stop::BadLine {
                        line: lines,
                        reason,
                    };
                }
            }
            Ok(None) => {
                let written = state.finish(request, domain, new_id, &mut out);
                out.drain(..).for_each(&mut *write);
                stream.finish();
                return (StreamEnd::Complete, written);
            }
            Err(error) => break Stop::Unreadable { line: lines, error },
        }
    };
    let written = state.stop(
        request,
        domain,
        stop_error(request, &stop),
        new_id,
        &mut out,
    );
    out.drain(..).for_each(&mut *write);
    (StreamEnd::Stopped(stop), written)
}

//! Live conversations (DESIGN §10): what a person chatting with the bot
//! sees while it works, and what never costs a request.
//!
//! Only what a person wrote is a request: a message without a body (a
//! chat state, a receipt, a marker) is not forwarded unless
//! `COMPONENT_MESSAGES_WITHOUT_BODY=forward`.

use crate::options::{OptionDoc, OptionError, Sources, invalid};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The options of live conversations.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_MESSAGES_WITHOUT_BODY",
        aliases: &[],
        meaning: "messages without a body (chat states, receipts, markers): skip (not \
                  forwarded, so they cost no request) or forward",
        default: "skip",
    },
    OptionDoc {
        name: "COMPONENT_TYPING_AFTER",
        aliases: &[],
        meaning: "milliseconds a bot may take before the person sees it typing (only for \
                  clients that sent a chat state; never in rooms), or off",
        default: "500",
    },
];

/// What becomes of a message without a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutBody {
    /// Not forwarded: counted, and nothing more.
    Skip,
    /// Forwarded like any message (what the Prosody module did).
    Forward,
}

/// The options of live conversations, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOptions {
    /// `COMPONENT_MESSAGES_WITHOUT_BODY`.
    pub without_body: WithoutBody,
    /// `COMPONENT_TYPING_AFTER`; `None` when off.
    pub typing_after: Option<Duration>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            without_body: WithoutBody::Skip,
            typing_after: Some(Duration::from_millis(500)),
        }
    }
}

impl LiveOptions {
    pub fn from_sources(sources: &Sources<'_>) -> Result<LiveOptions, OptionError> {
        let without_body = match sources.get("COMPONENT_MESSAGES_WITHOUT_BODY").as_deref() {
            None | Some("skip") => WithoutBody::Skip,
            Some("forward") => WithoutBody::Forward,
            Some(other) => {
                return Err(invalid(
                    "COMPONENT_MESSAGES_WITHOUT_BODY",
                    other,
                    "skip or forward",
                ));
            }
        };
        let typing_after = match sources.get("COMPONENT_TYPING_AFTER").as_deref() {
            None => LiveOptions::default().typing_after,
            Some("off") => None,
            Some(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= 120_000)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        invalid(
                            "COMPONENT_TYPING_AFTER",
                            text,
                            "a number of milliseconds (at most 120000) or off",
                        )
                    })?,
            ),
        };
        Ok(LiveOptions {
            without_body,
            typing_after,
        })
    }
}

/// Runs `work` (a bot call), and once it has taken `after` without an
/// end, calls `composing` (which shows the bot typing, and says whether it
/// could); returns what `work` came to, and whether typing was shown.
/// Without `after` (typing off, or the sender's client shows no chat
/// states) nothing waits beside `work`. `work` is pinned by the caller so
/// that the bot call, the largest part of a request's task, is held once
/// in it rather than copied into this future too.
pub async fn typing_while<F: Future + ?Sized>(
    mut work: Pin<&mut F>,
    after: Option<Duration>,
    composing: impl FnOnce() -> bool,
) -> (F::Output, bool) {
    let Some(after) = after else {
        return (work.await, false);
    };
    tokio::select! {
        output = &mut work => return (output, false),
        () = tokio::time::sleep(after) => {}
    }
    let shown = composing();
    (work.await, shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;

    #[tokio::test(start_paused = true)]
    async fn typing_shows_only_when_the_bot_takes_longer_than_the_delay() {
        let after = Some(Duration::from_millis(500));
        let slow = tokio::time::sleep(Duration::from_millis(2500));
        let (_, shown) = typing_while(pin!(slow), after, || true).await;
        assert!(shown);
        let fast = tokio::time::sleep(Duration::from_millis(100));
        let (_, shown) =
            typing_while(pin!(fast), after, || panic!("not typing for a fast bot")).await;
        assert!(!shown);
        let slow = tokio::time::sleep(Duration::from_secs(5));
        let (_, shown) = typing_while(pin!(slow), None, || panic!("typing is off")).await;
        assert!(!shown);
        // A composing that could not be written is not shown.
        let slow = tokio::time::sleep(Duration::from_secs(1));
        let (_, shown) = typing_while(pin!(slow), after, || false).await;
        assert!(!shown);
    }
}

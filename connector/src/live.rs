//! Live conversations (DESIGN §10): what a person chatting with the bot
//! sees while it works, and what never costs a request.
//!
//! Only what a person wrote is a request: a message without a body (a
//! chat state, a receipt, a marker) is not forwarded unless
//! `COMPONENT_MESSAGES_WITHOUT_BODY=forward`.

use crate::options::{OptionDoc, OptionError, Sources, invalid};
use std::time::Duration;

/// The options of live conversations.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_MESSAGES_WITHOUT_BODY",
        aliases: &[],
        meaning: "messages without a body (chat states, receipts, markers): skip (not \\
                  forwarded, so they cost no request) or forward",
        default: "skip",
    },
    OptionDoc {
        name: "COMPONENT_TYPING_AFTER",
        aliases: &[],
        meaning: "milliseconds a bot may take before the person sees it typing (only for \\
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

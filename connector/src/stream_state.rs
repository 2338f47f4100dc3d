//! Where a stream of replies stands (DESIGN §11), whichever way its lines
//! come: an http bot's NDJSON answer ([`crate::streaming`]) or parts on the
//! reply queue ([`crate::awaiting`]). Each line goes through the reply
//! rules of §2 on its own. A line with `"replace": true` corrects the
//! stream's previous message (XEP-0308): corrections of one message go out
//! at most once per `COMPONENT_STREAM_EDIT_INTERVAL`, the latest text
//! waiting for its turn, and the last text of a chain is always sent.
//! Typing (§10) shows while the stream waits for its next line.

use crate::options::{OptionDoc, OptionError, Sources, invalid, parse_seconds};
use minidom::Element;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_shared::live::{
    Notified, add_active, chat_state_message, delivery_receipt, displayed_marker,
};
use xmpp_lambda_shared::{
    BadReply, BotResponse, ChatState, Request, as_correction, is_message_with_body, line_replaces,
    response_to_stanzas,
};

/// The streams' options.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_STREAM_EDIT_INTERVAL",
        aliases: &[],
        meaning: "milliseconds between two corrections of one streamed message (the last text \
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

/// A correction waiting for its turn.
#[derive(Debug)]
struct Pending {
    /// The correction itself.
    stanza: Element,
    /// When it may go out.
    due: Instant,
}

/// The message a stream's corrections apply to.
#[derive(Debug)]
struct Corrected {
    /// The id it was first sent with, which every correction names.
    first_id: String,
    /// When its last correction went out.
    last_sent: Instant,
}

/// Where a stream of replies stands, whichever way its lines come (an
/// http answer, or parts on the reply queue): which message corrections
/// apply to, a correction waiting for its turn, and whether the sender
/// sees the bot typing. It decides what to write; the caller writes it
/// and keeps the time.
#[derive(Debug)]
pub struct StreamState {
    /// At most one correction of a message per this long.
    edit_interval: Duration,
    /// How long a wait for the next line may take before typing shows;
    /// `None` when it never does.
    typing: Option<Duration>,
    /// The sender sees the bot typing now.
    composing: bool,
    /// When typing will show, if no line comes first.
    typing_due: Option<Instant>,
    /// The message a `replace` line corrects.
    corrected: Option<Corrected>,
    /// The latest correction, waiting for the interval to pass.
    pending: Option<Pending>,
    /// Reply stanzas written so far.
    written: usize,
}

impl StreamState {
    /// A stream that begins now, for `request`: the receipt (unless it went
    /// out already) and the marker go first, since the bot has the message
    /// and is answering.
    pub fn start(
        request: &Request,
        domain: &str,
        edit_interval: Duration,
        typing: Option<Duration>,
        notified: Notified,
        new_id: &mut dyn FnMut() -> String,
        out: &mut Vec<Element>,
    ) -> StreamState {
        if !notified.receipt {
            out.extend(delivery_receipt(request, domain, new_id));
        }
        out.extend(displayed_marker(request, domain, new_id));
        StreamState {
            edit_interval,
            typing,
            composing: notified.composing,
            typing_due: typing.map(|after| Instant::now() + after),
            corrected: None,
            pending: None,
            written: 0,
        }
    }

    /// When something is due without a line: a waiting correction, or
    /// typing.
    pub fn next_due(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|pending| pending.due);
        let typing = self.typing_due.filter(|_| !self.composing);
        match (pending, typing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What is due at `now`: a waiting correction goes out, typing shows.
    pub fn on_time(
        &mut self,
        request: &Request,
        domain: &str,
        now: Instant,
        new_id: &mut dyn FnMut() -> String,
        out: &mut Vec<Element>,
    ) {
        if self
            .pending
            .as_ref()
            .is_some_and(|pending| pending.due <= now)
        {
            self.flush_pending(now, out);
        }
        if !self.composing && self.typing_due.is_some_and(|due| due <= now) {
            self.typing_due = None;
            if let Some(composing) =
                chat_state_message(request, ChatState::Composing, domain, new_id)
            {
                out.push(composing);
                self.composing = true;
            }
        }
    }

    /// One line of the stream: its stanzas to write now (a correction may
    /// wait instead), or why the line is refused.
    pub fn line(
        &mut self,
        request: &Request,
        domain: &str,
        line: &str,
        now: Instant,
        new_id: &mut dyn FnMut() -> String,
        out: &mut Vec<Element>,
    ) -> Result<(), BadReply> {
        let replaces = line_replaces(line);
        let mut stanzas = response_to_stanzas(request, &BotResponse::json(line), domain, new_id)?;
        if add_active(request, &mut stanzas) {
            // A message carries <active/>: typing shows again only if the
            // next line is slow.
            self.composing = false;
            self.typing_due = self.typing.map(|after| now + after);
        }
        match (replaces, &mut self.corrected, &stanzas[..]) {
            // A correction of the previous message: now, or once the
            // interval since the last one has passed.
            (true, Some(chain), [message]) if is_message_with_body(message) => {
                let correction = as_correction(message.clone(), &chain.first_id);
                let due = chain.last_sent + self.edit_interval;
                if due <= now {
                    self.pending = None;
                    chain.last_sent = now;
                    out.push(correction);
                    self.written += 1;
                } else {
                    self.pending = Some(Pending {
                        stanza: correction,
                        due,
                    });
                }
            }
            _ => {
                // Anything else ends the previous chain: its last text
                // goes first.
                self.flush_pending(now, out);
                self.corrected = None;
                for stanza in stanzas {
                    if is_message_with_body(&stanza) {
                        self.corrected = stanza.attr("id").map(|id| Corrected {
                            first_id: id.to_owned(),
                            last_sent: now,
                        });
                    }
                    out.push(stanza);
                    self.written += 1;
                }
            }
        }
        Ok(())
    }

    /// The stream ended after its last line: the last text of a chain
    /// goes, and typing never stays on. Returns the reply stanzas written
    /// in all.
    pub fn finish(
        self,
        request: &Request,
        domain: &str,
        new_id: &mut dyn FnMut() -> String,
        out: &mut Vec<Element>,
    ) -> usize {
        self.stop(request, domain, None, new_id, out)
    }

    /// The stream stopped early: the last text of a chain still goes, then
    /// `error` (the sender's §2 error, if one may be sent), and typing
    /// never stays on.
    pub fn stop(
        mut self,
        request: &Request,
        domain: &str,
        error: Option<Element>,
        new_id: &mut dyn FnMut() -> String,
        out: &mut Vec<Element>,
    ) -> usize {
        self.flush_pending(Instant::now(), out);
        out.extend(error);
        if self.composing {
            out.extend(chat_state_message(
                request,
                ChatState::Active,
                domain,
                new_id,
            ));
        }
        self.written
    }

    /// Sends the waiting correction, if any.
    fn flush_pending(&mut self, now: Instant, out: &mut Vec<Element>) {
        if let Some(pending) = self.pending.take() {
            out.push(pending.stanza);
            self.written += 1;
            if let Some(chain) = &mut self.corrected {
                chain.last_sent = now;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::streaming::{Stop, stop_error};
    use xmpp_lambda_shared::ChatState as State;

    /// A chat message from alice to the echo bot, with the chat state its
    /// client sent.
    pub(crate) fn request(chat_state: Option<State>) -> Request {
        Request {
            id: Some("m1".into()),
            chat_state,
            ..Request::chat("alice@example.com/x", "echo@bot.example.com", "go")
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id{n}")
        }
    }

    /// What `out` holds, as the bodies and chat states of its messages.
    fn seen(out: &mut Vec<Element>) -> Vec<String> {
        out.drain(..)
            .map(|stanza| {
                let body = stanza
                    .get_child("body", "jabber:component:accept")
                    .map(Element::text);
                let replaces = stanza.get_child("replace", xmpp_lambda_shared::CORRECTION_NS);
                let state = stanza
                    .children()
                    .find(|c| c.has_ns(xmpp_lambda_shared::live::CHAT_STATES_NS))
                    .map(Element::name);
                match (body, replaces, state) {
                    (Some(body), Some(_), _) => format!("correction {body}"),
                    (Some(body), None, _) => format!("message {body}"),
                    (None, _, Some(state)) => state.to_owned(),
                    _ => "other".to_owned(),
                }
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn corrections_are_coalesced_and_the_last_text_always_goes() {
        let request = request(None);
        let mut new_id = ids();
        let mut out = Vec::new();
        let interval = Duration::from_secs(1);
        let mut state = StreamState::start(
            &request,
            "bot.example.com",
            interval,
            None,
            Notified::default(),
            &mut new_id,
            &mut out,
        );
        let line = |body: &str, replace: bool| {
            serde_json::json!({ "body": body, "replace": replace }).to_string()
        };
        let mut text = String::from("w0");
        state
            .line(
                &request,
                "bot.example.com",
                &line(&text, false),
                Instant::now(),
                &mut new_id,
                &mut out,
            )
            .expect("a good line");
        assert_eq!(seen(&mut out), vec!["message w0"]);
        // Nine corrections 0.3 s apart: at most one a second goes out, the
        // others wait and are replaced by newer text.
        let mut sent = 0;
        for n in 1..10 {
            tokio::time::advance(Duration::from_millis(300)).await;
            let now = Instant::now();
            state.on_time(&request, "bot.example.com", now, &mut new_id, &mut out);
            text.push_str(&format!(" w{n}"));
            state
                .line(
                    &request,
                    "bot.example.com",
                    &line(&text, true),
                    now,
                    &mut new_id,
                    &mut out,
                )
                .expect("a good line");
            sent += seen(&mut out).len();
        }
        assert!((2..=3).contains(&sent), "{sent} corrections in 2.7 s");
        let written = state.finish(&request, "bot.example.com", &mut new_id, &mut out);
        let last = seen(&mut out);
        assert_eq!(last, vec![format!("correction {text}")], "the final text");
        assert_eq!(written, 1 + sent + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn typing_shows_between_slow_lines_and_never_stays_on() {
        let request = request(Some(State::Active));
        let mut new_id = ids();
        let mut out = Vec::new();
        let mut state = StreamState::start(
            &request,
            "bot.example.com",
            Duration::from_secs(1),
            Some(Duration::from_millis(500)),
            Notified::default(),
            &mut new_id,
            &mut out,
        );
        assert!(out.is_empty(), "no receipt or marker was asked for");
        let due = state.next_due().expect("typing is due");
        tokio::time::advance(due - Instant::now()).await;
        state.on_time(
            &request,
            "bot.example.com",
            Instant::now(),
            &mut new_id,
            &mut out,
        );
        assert_eq!(seen(&mut out), vec!["composing"]);
        assert_eq!(state.next_due(), None, "typing shows once per wait");
        state
            .line(
                &request,
                "bot.example.com",
                r#"{"body":"one"}"#,
                Instant::now(),
                &mut new_id,
                &mut out,
            )
            .expect("a good line");
        // The message ends typing, so it carries <active/>.
        assert_eq!(seen(&mut out), vec!["message one"]);
        assert!(state.next_due().is_some(), "typing may show again");
        tokio::time::advance(Duration::from_millis(600)).await;
        state.on_time(
            &request,
            "bot.example.com",
            Instant::now(),
            &mut new_id,
            &mut out,
        );
        assert_eq!(seen(&mut out), vec!["composing"]);
        // Stopped while typing: the error, then a lone <active/>.
        let error = stop_error(&request, &Stop::Idle(Duration::from_secs(30)));
        state.stop(&request, "bot.example.com", error, &mut new_id, &mut out);
        assert_eq!(seen(&mut out), vec!["other", "active"]);
    }
}

//! Requests on the request queue awaiting their answers (DESIGN §10, §11
//! over sqs).
//!
//! A request's answer comes back later, through the reply poller, maybe
//! in parts. Meanwhile its sender sees the bot typing (after
//! `COMPONENT_TYPING_AFTER`, for clients that show chat states, at most
//! [`MAX_WAIT`]); a streamed answer's parts are applied in order and each
//! once, one that comes early waiting for those before it. What the
//! connector shows meanwhile is only in memory: after a restart an answer
//! still arrives, only without typing having shown.
//!
//! One task keeps the time for every waiting request ([`Awaiting::run`]):
//! typing that is due, a stream's correction whose turn has come, and
//! requests that waited too long.

use crate::stream_state::StreamState;
use crate::wake::sleep_until;
use minidom::Element;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use xmpp_lambda_component::{Outbound, Shutdown};
use xmpp_lambda_shared::live::{Notified, chat_state_message, shows_typing};
use xmpp_lambda_shared::{
    BotResponse, ChatState, ReplyEnvelope, Request, bad_reply_error, error_for_status, error_reply,
};

/// The longest a request is shown as being worked on without an answer.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// The most parts of one stream held while an earlier one is missing;
/// later ones stay on the queue and come back.
pub const MAX_HELD_PARTS: usize = 64;

/// Requests awaiting their answers. Cheap to clone.
#[derive(Clone)]
pub struct Awaiting {
    inner: Arc<Inner>,
}

struct Inner {
    /// By request envelope id.
    entries: Mutex<HashMap<String, Entry>>,
    /// Wakes the timekeeper when something may be due sooner.
    changed: Notify,
    /// The link's writer.
    writer: mpsc::UnboundedSender<Outbound>,
    /// The component's domain, which everything sent comes from.
    domain: String,
    /// `COMPONENT_TYPING_AFTER`; `None` when typing is off.
    typing_after: Option<Duration>,
    /// `COMPONENT_STREAM_EDIT_INTERVAL`.
    edit_interval: Duration,
}

/// One request awaiting its answer.
struct Entry {
    /// The request, without its stanza text (what typing and a streamed
    /// answer need of it).
    request: Request,
    /// When typing shows, unless an answer comes first.
    typing_due: Option<Instant>,
    /// The sender sees the bot typing now.
    composing: bool,
    /// When the connector stops showing anything for it.
    expires: Instant,
    /// Its answer's stream, once a part came.
    stream: Option<Streamed>,
}

/// A streamed answer being applied.
struct Streamed {
    /// Where the stream stands; `None` once it ended (later parts are
    /// repeats).
    state: Option<StreamState>,
    /// The part to apply next.
    next_seq: u64,
    /// Parts that came early, by their `seq`, with the handles to delete
    /// them by once applied.
    held: BTreeMap<u64, (ReplyEnvelope, String)>,
}

/// What to do with a part of a streamed answer.
#[derive(Debug)]
pub enum Part {
    /// Write these stanzas; then the part and the held parts whose handles
    /// are given are done with (delete them).
    Apply {
        stanzas: Vec<Element>,
        also_done: Vec<String>,
    },
    /// Applied before: delete it.
    Repeat,
    /// Early: held until the parts before it come (keep it on the queue
    /// until then).
    Held,
    /// Early, and too many are held: leave it on the queue to come back.
    Later,
}

impl Entry {
    /// An entry for `request` whose typing shows at `typing_due`. What is
    /// kept of it is what the reply rules and notifications read: not its
    /// stanza text, and its body only as being there.
    fn new(request: &Request, typing_due: Option<Instant>) -> Entry {
        Entry {
            request: Request {
                stanza: String::new(),
                body: request.body.as_ref().map(|_| String::new()),
                ..request.clone()
            },
            typing_due,
            composing: false,
            expires: Instant::now() + MAX_WAIT,
            stream: None,
        }
    }
}

impl Awaiting {
    pub fn new(
        writer: mpsc::UnboundedSender<Outbound>,
        domain: &str,
        typing_after: Option<Duration>,
        edit_interval: Duration,
    ) -> Awaiting {
        Awaiting {
            inner: Arc::new(Inner {
                entries: Mutex::new(HashMap::new()),
                changed: Notify::new(),
                writer,
                domain: domain.to_owned(),
                typing_after,
                edit_interval,
            }),
        }
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map is still a consistent map.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `request` is on the request queue as `envelope_id`: its sender will
    /// see the bot typing if its answer takes a while.
    pub fn queued(&self, envelope_id: String, request: &Request) {
        let typing = self.inner.typing_after.filter(|_| shows_typing(request));
        let Some(after) = typing else {
            return;
        };
        let entry = Entry::new(request, Some(Instant::now() + after));
        self.entries().insert(envelope_id, entry);
        self.inner.changed.notify_one();
    }

    /// A whole answer to `envelope_id` came: what was shown meanwhile. The
    /// receipt went out when the request was queued.
    pub fn answered(&self, envelope_id: &str) -> Notified {
        let composing = self
            .entries()
            .remove(envelope_id)
            .is_some_and(|entry| entry.composing);
        Notified {
            composing,
            receipt: true,
        }
    }

    /// A part of a streamed answer came (`envelope.stream` is set), with
    /// the handle to delete it by: what to do with it.
    pub fn part(&self, envelope: ReplyEnvelope, handle: String) -> Part {
        let Some(part) = envelope.stream else {
            return Part::Repeat;
        };
        let id = envelope.id.clone();
        let domain = &self.inner.domain;
        let mut new_id = crate::ids::new_stanza_id;
        let mut stanzas = Vec::new();
        let mut entries = self.entries();
        let entry = entries
            .entry(id)
            .or_insert_with(|| Entry::new(&envelope.request, None));
        entry.expires = Instant::now() + MAX_WAIT;
        // Typing is the stream's to show from its first part on.
        entry.typing_due = None;
        let request = &entry.request;
        let streamed = entry.stream.get_or_insert_with(|| {
            let typing = self.inner.typing_after.filter(|_| shows_typing(request));
            let notified = Notified {
                composing: entry.composing,
                receipt: true,
            };
            Streamed {
                state: Some(StreamState::start(
                    request,
                    domain,
                    self.inner.edit_interval,
                    typing,
                    notified,
                    &mut new_id,
                    &mut stanzas,
                )),
                next_seq: 0,
                held: BTreeMap::new(),
            }
        });
        if streamed.state.is_none()
            || part.seq < streamed.next_seq
            || streamed.held.contains_key(&part.seq)
        {
            return Part::Repeat;
        }
        if part.seq > streamed.next_seq {
            if streamed.held.len() >= MAX_HELD_PARTS {
                return Part::Later;
            }
            streamed.held.insert(part.seq, (envelope, handle));
            self.inner.changed.notify_one();
            return Part::Held;
        }
        let mut also_done = Vec::new();
        let mut current = envelope;
        loop {
            let last = current.stream.is_some_and(|part| part.last);
            streamed.next_seq += 1;
            if let Some(state) = streamed.state.take() {
                streamed.state = apply_part(
                    state,
                    request,
                    domain,
                    &current.response,
                    last,
                    &mut stanzas,
                );
            }
            if streamed.state.is_none() {
                // Ended: anything held past the end is done with too.
                also_done.extend(
                    std::mem::take(&mut streamed.held)
                        .into_values()
                        .map(|(_, h)| h),
                );
                break;
            }
            match streamed.held.remove(&streamed.next_seq) {
                Some((held, handle)) => {
                    also_done.push(handle);
                    current = held;
                }
                None => break,
            }
        }
        drop(entries);
        self.inner.changed.notify_one();
        Part::Apply { stanzas, also_done }
    }

    /// Keeps the time for every waiting request until shutdown: typing
    /// that is due shows, a stream's waiting correction goes out when its
    /// turn comes, and a request that waited [`MAX_WAIT`] is no longer
    /// shown as being worked on.
    pub async fn run(self, mut shutdown: Shutdown) {
        loop {
            let next = self.next_due();
            tokio::select! {
                () = sleep_until(next) => {}
                () = self.inner.changed.notified() => continue,
                () = shutdown.recv() => return,
            }
            let now = Instant::now();
            for stanza in self.on_time(now) {
                let _ = self.inner.writer.send(Outbound::stanza(stanza));
            }
        }
    }

    /// The earliest moment something is due.
    fn next_due(&self) -> Option<Instant> {
        self.entries()
            .values()
            .flat_map(|entry| {
                let typing = entry.typing_due.filter(|_| !entry.composing);
                let stream = entry
                    .stream
                    .as_ref()
                    .and_then(|s| s.state.as_ref())
                    .and_then(StreamState::next_due);
                [Some(entry.expires), typing, stream]
            })
            .flatten()
            .min()
    }

    /// What is due at `now`.
    fn on_time(&self, now: Instant) -> Vec<Element> {
        let mut out = Vec::new();
        let domain = &self.inner.domain;
        let mut new_id = crate::ids::new_stanza_id;
        let mut entries = self.entries();
        entries.retain(|_, entry| {
            if entry.expires <= now {
                // Waited too long: a stream still open is ended as it
                // stands, and typing never stays on.
                match entry.stream.as_mut().and_then(|s| s.state.take()) {
                    Some(state) => {
                        state.finish(&entry.request, domain, &mut new_id, &mut out);
                    }
                    None if entry.composing => out.extend(chat_state_message(
                        &entry.request,
                        ChatState::Active,
                        domain,
                        &mut new_id,
                    )),
                    None => {}
                }
                return false;
            }
            match &mut entry.stream {
                Some(streamed) => {
                    if let Some(state) = &mut streamed.state {
                        state.on_time(&entry.request, domain, now, &mut new_id, &mut out);
                    }
                }
                None if !entry.composing && entry.typing_due.is_some_and(|due| due <= now) => {
                    entry.typing_due = None;
                    if let Some(composing) = chat_state_message(
                        &entry.request,
                        ChatState::Composing,
                        domain,
                        &mut new_id,
                    ) {
                        out.push(composing);
                        entry.composing = true;
                    }
                }
                None => {}
            }
            true
        });
        out
    }
}

/// Applies one part of a stream in order: its line, and when it ends the
/// stream, the end (a last line, or a `204`) or the stop its outcome says
/// (the sender's §2 error). Returns the state, or `None` once the stream
/// ended.
fn apply_part(
    mut state: StreamState,
    request: &Request,
    domain: &str,
    response: &BotResponse,
    last: bool,
    out: &mut Vec<Element>,
) -> Option<StreamState> {
    let mut new_id = crate::ids::new_stanza_id;
    let line = response.is_success() && response.is_json() && !response.body.trim().is_empty();
    if line {
        let now = Instant::now();
        if let Err(reason) = state.line(request, domain, &response.body, now, &mut new_id, out) {
            let error = bad_reply_error(request, &reason);
            state.stop(request, domain, error, &mut new_id, out);
            return None;
        }
    }
    if !last {
        return Some(state);
    }
    if response.is_success() {
        state.finish(request, domain, &mut new_id, out);
    } else {
        let error = error_reply(request, &error_for_status(response.status));
        state.stop(request, domain, error, &mut new_id, out);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream_state::tests::request;
    use xmpp_lambda_shared::RequestEnvelope;

    const DOMAIN: &str = "bot.example.com";

    fn awaiting() -> (Awaiting, mpsc::UnboundedReceiver<Outbound>) {
        let (writer, written) = mpsc::unbounded_channel();
        let awaiting = Awaiting::new(
            writer,
            DOMAIN,
            Some(Duration::from_millis(500)),
            Duration::from_secs(1),
        );
        (awaiting, written)
    }

    /// The chat states and bodies of `stanzas`, in order.
    fn shown(stanzas: &[Element]) -> Vec<String> {
        stanzas
            .iter()
            .map(|stanza| {
                let body = stanza
                    .get_child("body", "jabber:component:accept")
                    .map(Element::text);
                let state = stanza
                    .children()
                    .find(|c| c.has_ns(xmpp_lambda_shared::live::CHAT_STATES_NS))
                    .map(|c| c.name().to_owned());
                match (body, state, stanza.attr("type")) {
                    (_, _, Some("error")) => "error".to_owned(),
                    (Some(body), _, _) => body,
                    (None, Some(state), _) => state,
                    _ => "other".to_owned(),
                }
            })
            .collect()
    }

    fn drain(written: &mut mpsc::UnboundedReceiver<Outbound>) -> Vec<String> {
        let mut stanzas = Vec::new();
        while let Ok(outbound) = written.try_recv() {
            stanzas.push(outbound.element().clone());
        }
        shown(&stanzas)
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_shows_typing_until_its_answer_or_for_two_minutes() {
        let (awaiting, mut written) = awaiting();
        let (stop, shutdown) = xmpp_lambda_component::shutdown_channel();
        let timekeeper = tokio::spawn(awaiting.clone().run(shutdown));
        awaiting.queued("e1".into(), &request(Some(ChatState::Active)));
        awaiting.queued("e2".into(), &request(Some(ChatState::Active)));
        // No chat state from the client: nothing is kept for it.
        awaiting.queued("e3".into(), &request(None));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(drain(&mut written), vec!["composing", "composing"]);
        assert_eq!(
            awaiting.answered("e1"),
            Notified {
                composing: true,
                receipt: true
            }
        );
        assert_eq!(
            awaiting.answered("e3"),
            Notified {
                composing: false,
                receipt: true
            }
        );
        // e2's answer never comes: after two minutes typing stops.
        tokio::time::sleep(MAX_WAIT).await;
        assert_eq!(drain(&mut written), vec!["active"]);
        assert!(!awaiting.answered("e2").composing, "forgotten");
        stop.trigger();
        timekeeper.await.expect("the timekeeper stops");
    }

    #[tokio::test(start_paused = true)]
    async fn a_streams_parts_are_applied_in_order_and_once() {
        let (awaiting, _written) = awaiting();
        let envelope = RequestEnvelope::new("e1", request(None));
        let line = |seq: u64, body: &str, last: bool| {
            let json = serde_json::json!({ "body": body }).to_string();
            envelope.reply_part(BotResponse::json(json), seq, last)
        };
        let applied = |part: Part| match part {
            Part::Apply { stanzas, also_done } => (shown(&stanzas), also_done),
            other => panic!("not applied: {other:?}"),
        };
        assert_eq!(
            applied(awaiting.part(line(0, "one", false), "h0".into())),
            (vec!["one".to_owned()], vec![])
        );
        assert!(matches!(
            awaiting.part(line(0, "one", false), "h0'".into()),
            Part::Repeat
        ));
        // Two comes after three: three waits for it.
        assert!(matches!(
            awaiting.part(line(2, "three", false), "h2".into()),
            Part::Held
        ));
        assert_eq!(
            applied(awaiting.part(line(1, "two", false), "h1".into())),
            (
                vec!["two".to_owned(), "three".to_owned()],
                vec!["h2".to_owned()]
            )
        );
        // The end; anything after it is a repeat.
        let end = envelope.reply_part(BotResponse::from_http(204, None, b""), 3, true);
        assert_eq!(applied(awaiting.part(end, "h3".into())), (vec![], vec![]));
        assert!(matches!(
            awaiting.part(line(4, "late", false), "h4".into()),
            Part::Repeat
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_stopped_by_its_bot_ends_with_the_senders_error() {
        let (awaiting, _written) = awaiting();
        let envelope = RequestEnvelope::new("e1", request(None));
        let first = envelope.reply_part(BotResponse::json(r#"{"body":"one"}"#), 0, false);
        let Part::Apply { stanzas, .. } = awaiting.part(first, "h0".into()) else {
            panic!("applied");
        };
        assert_eq!(shown(&stanzas), vec!["one"]);
        let stop = envelope.reply_part(BotResponse::no_response(), 1, true);
        let Part::Apply { stanzas, .. } = awaiting.part(stop, "h1".into()) else {
            panic!("applied");
        };
        assert_eq!(shown(&stanzas), vec!["error"]);
        assert!(format!("{:?}", stanzas[0]).contains("remote-server-timeout"));
    }
}

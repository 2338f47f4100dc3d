//! A steady stream of chat messages from a few logged-in users to a bot,
//! and what became of each one: replied (how often, when), answered with a
//! stanza error, or never answered at all.
//!
//! Each user has its own task that sends at a fixed pace and reads its
//! stanzas in between, so sending never waits for answers. The bot must
//! answer the way the reference echo bot does, optionally with a tag in
//! front (`A: Did you say u1-7?`), which tells which bot served a reply.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use minidom::Element;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::assertions::STANZAS_NS;
use crate::{CLIENT_NS, Result, XmppClient, body_of};

/// What every echoed body contains before the echoed text.
const ECHO_MARK: &str = "Did you say ";

/// One answer a message got.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A message from the bot echoing the text.
    Reply {
        /// When the client received it.
        at: Instant,
        /// What came before the echo, e.g. `A:` for the bot tagged `A`
        /// (empty for an untagged echo bot).
        tag: String,
    },
    /// A stanza error answering the message's id.
    Error {
        /// When the client received it.
        at: Instant,
        /// `type/condition (text)`, e.g. `wait/remote-server-timeout
        /// (Component unavailable)`.
        error: String,
    },
}

impl Answer {
    /// When it arrived.
    pub fn at(&self) -> Instant {
        match self {
            Answer::Reply { at, .. } | Answer::Error { at, .. } => *at,
        }
    }
}

/// One message of the load and what became of it.
#[derive(Debug, Clone)]
pub struct LoadMessage {
    /// The sender's bare JID.
    pub user: String,
    /// The body, unique over the whole load (`u<user>-<n>`).
    pub text: String,
    /// The stanza id, which an error answer carries.
    pub id: String,
    /// When it was handed to the client for sending.
    pub sent_at: Instant,
    /// Every answer in arrival order: more than one reply is a duplicate.
    pub answers: Vec<Answer>,
}

impl LoadMessage {
    /// The first answer, if any came.
    pub fn first_answer(&self) -> Option<&Answer> {
        self.answers.first()
    }

    /// Whether no answer at all came.
    pub fn is_silent(&self) -> bool {
        self.answers.is_empty()
    }

    /// The first reply (not an error), if any came.
    pub fn first_reply(&self) -> Option<&Answer> {
        self.answers
            .iter()
            .find(|answer| matches!(answer, Answer::Reply { .. }))
    }

    /// Replies beyond the first.
    pub fn duplicate_replies(&self) -> usize {
        self.answers
            .iter()
            .filter(|answer| matches!(answer, Answer::Reply { .. }))
            .count()
            .saturating_sub(1)
    }
}

/// Every message of a finished load.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// All users' messages, in sending order.
    pub messages: Vec<LoadMessage>,
}

impl LoadReport {
    /// The messages that got no answer at all.
    pub fn silent(&self) -> Vec<&LoadMessage> {
        self.messages.iter().filter(|m| m.is_silent()).collect()
    }

    /// How many messages got each kind of error as their first answer.
    pub fn first_errors(&self) -> BTreeMap<String, usize> {
        let mut errors = BTreeMap::new();
        for message in &self.messages {
            if let Some(Answer::Error { error, .. }) = message.first_answer() {
                *errors.entry(error.clone()).or_insert(0) += 1;
            }
        }
        errors
    }

    /// How many messages were first answered with a reply.
    pub fn replied(&self) -> usize {
        self.messages
            .iter()
            .filter(|m| matches!(m.first_answer(), Some(Answer::Reply { .. })))
            .count()
    }

    /// Replies beyond the first, over all messages.
    pub fn duplicate_replies(&self) -> usize {
        self.messages
            .iter()
            .map(LoadMessage::duplicate_replies)
            .sum()
    }
}

/// A running load. Stop it with [`ChatLoad::finish`].
pub struct ChatLoad {
    /// `None` while sending; then how the users wait for the last answers.
    stop: watch::Sender<Option<Drain>>,
    /// One task per user.
    users: Vec<JoinHandle<Result<Vec<LoadMessage>>>>,
    /// Replies received so far over all users.
    replies: watch::Receiver<usize>,
}

impl ChatLoad {
    /// Starts sending `rate` messages a second in all, spread evenly over
    /// `clients` (each sends every `clients / rate` seconds, the users
    /// offset from each other), to `to`.
    pub fn start(clients: Vec<XmppClient>, to: &str, rate: f64) -> ChatLoad {
        let users = clients.len().max(1);
        let interval = Duration::from_secs_f64(users as f64 / rate);
        let (stop, stop_seen) = watch::channel(None);
        let (replies_sender, replies) = watch::channel(0);
        let replies_sender = Arc::new(replies_sender);
        let started = Instant::now();
        let users = clients
            .into_iter()
            .enumerate()
            .map(|(index, client)| {
                let user = User {
                    index,
                    client,
                    to: to.to_owned(),
                    interval,
                    first_send: started + interval.mul_f64(index as f64 / users as f64),
                    stop: stop_seen.clone(),
                    replies: Arc::clone(&replies_sender),
                };
                tokio::spawn(user.run())
            })
            .collect();
        ChatLoad {
            stop,
            users,
            replies,
        }
    }

    /// Waits until `count` replies arrived in all.
    pub async fn wait_for_replies(&self, count: usize, timeout: Duration) -> Result<()> {
        let mut replies = self.replies.clone();
        match tokio::time::timeout(timeout, replies.wait_for(|n| *n >= count)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(format!(
                "{} of {count} replies within {timeout:?}",
                *self.replies.borrow()
            )
            .into()),
        }
    }

    /// Stops sending and waits for answers until each message has one, or
    /// nothing arrived for `settle` (a slow path keeps it waiting as long
    /// as answers still come), or `at_most` has passed; then reports every
    /// message.
    pub async fn finish(self, settle: Duration, at_most: Duration) -> Result<LoadReport> {
        self.stop.send_replace(Some(Drain {
            settle,
            until: Instant::now() + at_most,
        }));
        let mut messages = Vec::new();
        for user in self.users {
            messages.extend(user.await??);
        }
        messages.sort_by_key(|m| m.sent_at);
        Ok(LoadReport { messages })
    }
}

/// How the users wait for the last answers once they stop sending.
#[derive(Debug, Clone, Copy)]
struct Drain {
    /// Stop waiting once no stanza arrived for this long…
    settle: Duration,
    /// …or at this moment at the latest.
    until: Instant,
}

/// One sending user.
struct User {
    /// Its number, in the message texts.
    index: usize,
    /// Its session.
    client: XmppClient,
    /// Where it sends.
    to: String,
    /// Its time between two messages.
    interval: Duration,
    /// When it sends its first message.
    first_send: Instant,
    /// The load's stop signal.
    stop: watch::Receiver<Option<Drain>>,
    /// The load's reply counter.
    replies: Arc<watch::Sender<usize>>,
}

impl User {
    async fn run(mut self) -> Result<Vec<LoadMessage>> {
        let mut messages: Vec<LoadMessage> = Vec::new();
        let mut by_text: HashMap<String, usize> = HashMap::new();
        let mut by_id: HashMap<String, usize> = HashMap::new();
        let mut next_send = self.first_send;
        // When this user last received a stanza, or stopped sending.
        let mut last_activity = Instant::now();
        let mut stopped = false;
        loop {
            let drain = *self.stop.borrow();
            let now = Instant::now();
            if drain.is_some() && !stopped {
                stopped = true;
                last_activity = now;
            }
            let wake = match drain {
                None if now >= next_send => {
                    let text = format!("u{}-{}", self.index, messages.len());
                    let id = self.client.send_message(&self.to, &text).await?;
                    by_text.insert(text.clone(), messages.len());
                    by_id.insert(id.clone(), messages.len());
                    messages.push(LoadMessage {
                        user: self.client.jid().to_owned(),
                        text,
                        id,
                        sent_at: now,
                        answers: Vec::new(),
                    });
                    next_send += self.interval;
                    continue;
                }
                None => next_send,
                Some(Drain { settle, until }) => {
                    let settled = last_activity + settle;
                    if now >= until.min(settled) || messages.iter().all(|m| !m.is_silent()) {
                        break;
                    }
                    until.min(settled)
                }
            };
            tokio::select! {
                stanza = self.client.recv(wake.saturating_duration_since(now)) => {
                    if let Some(stanza) = stanza {
                        last_activity = Instant::now();
                        self.record(&stanza, &mut messages, &by_text, &by_id);
                    } else if let Some(reason) = self.client.disconnected() {
                        return Err(format!("{}: session ended under load: {reason}", self.client.jid()).into());
                    }
                }
                // Stopping: re-check at once rather than after a send slot.
                _ = self.stop.changed() => {}
            }
        }
        Ok(messages)
    }

    /// Files one received stanza under the message it answers.
    fn record(
        &self,
        stanza: &Element,
        messages: &mut [LoadMessage],
        by_text: &HashMap<String, usize>,
        by_id: &HashMap<String, usize>,
    ) {
        if stanza.name() != "message" {
            return;
        }
        let at = Instant::now();
        if stanza.attr("type") == Some("error") {
            let Some(&index) = stanza.attr("id").and_then(|id| by_id.get(id)) else {
                eprintln!("[chat load] an error for no message of ours: {stanza:?}");
                return;
            };
            messages[index].answers.push(Answer::Error {
                at,
                error: describe_error(stanza),
            });
            return;
        }
        let body = body_of(stanza).unwrap_or_default();
        let Some((tag, echoed)) = body.split_once(ECHO_MARK) else {
            eprintln!("[chat load] a message that is no echo: {stanza:?}");
            return;
        };
        let Some(&index) = echoed.strip_suffix('?').and_then(|text| by_text.get(text)) else {
            eprintln!("[chat load] an echo of no message of ours: {body}");
            return;
        };
        messages[index].answers.push(Answer::Reply {
            at,
            tag: tag.trim().to_owned(),
        });
        self.replies.send_modify(|n| *n += 1);
    }
}

/// `type/condition (text)` of a stanza error.
fn describe_error(stanza: &Element) -> String {
    let Some(error) = stanza.get_child("error", CLIENT_NS) else {
        return "error without <error/>".to_owned();
    };
    let condition = error
        .children()
        .find(|child| child.ns() == STANZAS_NS && child.name() != "text")
        .map_or("?", Element::name);
    let mut described = format!("{}/{condition}", error.attr("type").unwrap_or("?"));
    if let Some(text) = error.get_child("text", STANZAS_NS) {
        described.push_str(&format!(" ({})", text.text()));
    }
    described
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_stanza;

    #[test]
    fn describes_an_error_with_and_without_text() {
        let stanza = parse_stanza(
            "<message xmlns='jabber:client' type='error' id='x'><error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Component unavailable</text>\
             </error></message>",
        );
        assert_eq!(
            describe_error(&stanza),
            "wait/remote-server-timeout (Component unavailable)"
        );
        let stanza = parse_stanza(
            "<message xmlns='jabber:client' type='error' id='x'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        );
        assert_eq!(describe_error(&stanza), "cancel/service-unavailable");
    }
}

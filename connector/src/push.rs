//! Messages a bot sends on its own (DESIGN §6), from either way in: a send
//! envelope on the reply queue or `POST /v1/send` on the API.
//!
//! Both ways check every message with the shared outbound rules before any
//! is written (all or nothing), then hand the stanzas to the link in order.
//! The API waits until the link confirms they are flushed; the reply poller
//! does the same before it deletes the envelope.

use crate::ids::new_stanza_id;
use crate::rooms::RoomDirectory;
use minidom::Element;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use xmpp_lambda_component::{LinkState, Outbound};
use xmpp_lambda_shared::{bad_message_text, outbound_to_stanza};

/// Checks pushed messages and writes their stanzas; cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    /// The component's domain: every message must come from inside it.
    domain: Arc<str>,
    /// The link's writer; it outlives reconnects.
    writer: mpsc::UnboundedSender<Outbound>,
    /// Whether the link is up: a push while it is down is refused at once
    /// rather than held for an unknown time.
    link: watch::Receiver<LinkState>,
    /// The rooms the connector is in, for the room defaults of §6.
    rooms: RoomDirectory,
}

/// Why a push was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// A message failed the checks; nothing was written. The text names
    /// the message and the field.
    #[error("{0}")]
    Invalid(String),
    /// The link is down; nothing was written.
    #[error("the XMPP link is down ({0})")]
    LinkDown(String),
    /// The link did not confirm the write in time; the stanzas are
    /// withdrawn unless they were already being written.
    #[error("the XMPP link did not take the messages within {0:?}")]
    NotWritten(Duration),
}

/// Stanzas that passed the checks, ready to write.
#[derive(Debug)]
pub struct Checked {
    /// In the order the messages came.
    pub stanzas: Vec<Element>,
}

impl Checked {
    /// The stanza ids, in order: what the API answers with.
    pub fn ids(&self) -> Vec<String> {
        self.stanzas
            .iter()
            .map(|stanza| stanza.attr("id").unwrap_or_default().to_owned())
            .collect()
    }
}

impl Pusher {
    pub fn new(
        domain: &str,
        writer: mpsc::UnboundedSender<Outbound>,
        link: watch::Receiver<LinkState>,
        rooms: RoomDirectory,
    ) -> Pusher {
        Pusher {
            domain: domain.into(),
            writer,
            link,
            rooms,
        }
    }

    /// The component's domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The link's writer, for replies that need no checks of their own.
    pub fn writer(&self) -> &mpsc::UnboundedSender<Outbound> {
        &self.writer
    }

    /// Checks every message and builds its stanza, or names the first one
    /// that fails (`listed`: the messages came as a list, so the error says
    /// which one).
    pub fn check(&self, messages: &[Value], listed: bool) -> Result<Checked, PushError> {
        let occupant = |room: &str| self.rooms.occupant(room);
        let mut stanzas = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let stanza = outbound_to_stanza(message, &self.domain, &occupant, &mut new_stanza_id)
                .map_err(|reason| {
                PushError::Invalid(bad_message_text(listed.then_some(index), &reason))
            })?;
            stanzas.push(stanza);
        }
        Ok(Checked { stanzas })
    }

    /// Writes checked stanzas in order and waits, at most `wait`, until the
    /// link has flushed them all. Refused at once while the link is down.
    pub async fn write(&self, checked: &Checked, wait: Duration) -> Result<(), PushError> {
        {
            let state = self.link.borrow();
            if !state.is_up() {
                return Err(PushError::LinkDown(state.to_string()));
            }
        }
        // One confirmation per stanza: if we give up waiting, each one not
        // yet written is withdrawn (the link skips abandoned writes).
        let mut confirmations = Vec::with_capacity(checked.stanzas.len());
        for stanza in &checked.stanzas {
            let (written, confirmation) = oneshot::channel();
            if self
                .writer
                .send(Outbound::acknowledged(stanza.clone(), written))
                .is_err()
            {
                return Err(PushError::LinkDown("the connector is stopping".into()));
            }
            confirmations.push(confirmation);
        }
        let all_written = async {
            for confirmation in confirmations {
                if confirmation.await.is_err() {
                    return false;
                }
            }
            true
        };
        match tokio::time::timeout(wait, all_written).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(PushError::LinkDown(
                "the link was lost before the server took the messages".into(),
            )),
            Err(_) => Err(PushError::NotWritten(wait)),
        }
    }
}

//! What the fuzz targets in `fuzz/` drive inside the connector: the bot's
//! HTTP answer read from scripted reads (and its independent reference),
//! and one connection to the API served whole. Not an API: it changes with
//! the targets.

use crate::api::{self, Api, BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_SEND_BODY};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::push::Pusher;
use crate::rooms::RoomDirectory;
use minidom::Element;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use xmpp_lambda_component::{LinkState, Secret, fuzzing::outbound_parts};

pub use crate::transport::http1_reference::{
    Outcome as AnswerOutcome, ours as read_answer, reference as reference_answer,
};

/// The component domain of the API's pushes.
pub const API_DOMAIN: &str = "bot.example.com";
/// The bearer token `/v1/send` takes.
pub const API_TOKEN: &str = "a-fuzzing-token-of-more-than-32-characters";
/// The longest the API may hold a connection that sends one request and
/// then nothing: its head and then its body may each take their timeout.
pub const API_MAX_HELD: Duration = HEADER_READ_TIMEOUT.saturating_add(BODY_READ_TIMEOUT);
/// The largest `/v1/send` body.
pub const API_MAX_BODY: usize = MAX_SEND_BODY;

/// What came of one API connection.
#[derive(Debug)]
pub struct ApiExchange {
    /// Everything the API wrote until it closed the connection.
    pub answer: Vec<u8>,
    /// How long (in the runtime's paused time) it kept the connection.
    pub held: Duration,
    /// The stanzas `/v1/send` handed to the link, in order.
    pub stanzas: Vec<Element>,
    /// Whether serving the connection panicked.
    pub panicked: bool,
}

/// Serves one API connection whose client sends `request` and then waits
/// for the API to close it, with the link up (`/v1/send` writes go to a
/// stand-in that confirms each at once) or down. Run it on a runtime with
/// paused time, so the API's timeouts pass at once.
pub async fn api_exchange(request: &[u8], link_up: bool) -> ApiExchange {
    let (writer, mut outbound) = mpsc::unbounded_channel();
    let state = if link_up {
        LinkState::Up { connection: 1 }
    } else {
        LinkState::Connecting
    };
    let (_link_state, link) = watch::channel(state);
    let pusher = Pusher::new(API_DOMAIN, writer, link.clone(), RoomDirectory::default());
    let (_trigger, shutdown) = xmpp_lambda_component::shutdown_channel();
    let api = Arc::new(Api::new(
        Some(Secret::new(API_TOKEN)),
        pusher,
        Health::new(link, None),
        shutdown,
        Metrics::new(),
    ));
    // The link: takes every stanza and confirms its write. It ends when
    // the API (the last writer) is gone.
    let link = tokio::spawn(async move {
        let mut stanzas = Vec::new();
        while let Some(item) = outbound.recv().await {
            let (stanza, written) = outbound_parts(item);
            if let Some(written) = written {
                let _ = written.send(());
            }
            stanzas.push(stanza);
        }
        stanzas
    });
    let (mut client, server) = tokio::io::duplex(256 * 1024);
    let served = tokio::spawn(async move {
        let _ = api::serve_one(server, &api).await;
    });
    let started = Instant::now();
    // The API may close before it read everything.
    let _ = client.write_all(request).await;
    let mut answer = Vec::new();
    let _ = client.read_to_end(&mut answer).await;
    let held = started.elapsed();
    drop(client);
    let panicked = served.await.is_err();
    let stanzas = link.await.unwrap_or_default();
    ApiExchange {
        answer,
        held,
        stanzas,
        panicked,
    }
}

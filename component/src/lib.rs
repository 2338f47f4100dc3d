//! The XEP-0114 component link for tokio.
//!
//! A component connects to its XMPP server's component port, opens a
//! stream in `jabber:component:accept`, proves the shared secret with a
//! handshake, and then exchanges stanzas with the server for as long as the
//! link holds. This crate does that and nothing else: it knows nothing of
//! what the stanzas mean.
//!
//! * [`run`] keeps a link up forever: it hands every stanza read to a
//!   channel ([`Inbound`]), writes what it gets from another ([`Outbound`],
//!   optionally confirmed once the server has taken it), pings an idle
//!   server, relinks with [`Backoff`] when the link is lost, and stands by
//!   while another instance holds the component ([`LinkState::Standby`]).
//!   It ends cleanly on a [`Shutdown`]: what is queued is written, then the
//!   stream is closed.
//! * [`connect`] makes one link (TCP, stream headers, handshake, each
//!   bounded in time) and returns its [`ComponentStream`], for a caller
//!   that drives the stream itself (the connector's `check` does).
//!
//! Whatever the server sends, reading it is bounded: a stanza may take at
//! most [`MAX_STANZA_BYTES`] of XML, [`MAX_STANZA_MARKUP`] elements and
//! attributes, [`MAX_STANZA_DEPTH`] levels and [`MAX_STANZA_MEMORY`] once
//! parsed. A stanza past a limit is skipped as its bytes come
//! ([`Read::Skipped`], with its start tag so its sender can be told) and
//! the link goes on; XML that is not well-formed ends the link.
//!
//! ```no_run
//! use xmpp_lambda_component::{Inbound, LinkSettings, LinkState, Outbound, Secret, run, shutdown_channel};
//! use std::time::Duration;
//! use tokio::sync::{mpsc, watch};
//!
//! # async fn example() {
//! let settings = LinkSettings {
//!     domain: "bot.example.com".into(),
//!     secret: Secret::new("the shared secret"),
//!     server: "localhost:5347".into(),
//!     ping_interval: Duration::from_secs(60),
//! };
//! let (inbound_tx, mut inbound) = mpsc::channel(64);
//! let (outbound, outbound_rx) = mpsc::unbounded_channel();
//! let (state_tx, _state) = watch::channel(LinkState::Connecting);
//! let (_stop, shutdown) = shutdown_channel();
//! // Nothing to say to a stanza that comes while shutting down.
//! let link = tokio::spawn(run(settings, inbound_tx, outbound_rx, state_tx, Box::new(|_| None), shutdown));
//! while let Some(Inbound::Stanza(stanza)) = inbound.recv().await {
//!     // … answer it through `outbound.send(Outbound::stanza(answer))`.
//! #   let _ = (&stanza, &outbound);
//! }
//! # let _ = link.await;
//! # }
//! ```
//!
//! `examples/echo_component.rs` is a whole component that answers every
//! message with its own body.

mod backoff;
#[cfg(test)]
mod counted_alloc;
mod errors;
/// What the fuzz targets in `fuzz/` drive. Not an API.
#[doc(hidden)]
pub mod fuzzing;
mod handshake;
mod link;
mod outbound;
mod read_limit;
mod secret;
mod settings;
mod shutdown;
mod socket;
mod stream;
mod xml;

pub use backoff::Backoff;
pub use errors::{LinkError, StreamError};
pub use handshake::{HANDSHAKE_TIMEOUT, connect, handshake};
pub use link::{Inbound, LinkState, Unanswered, run};
pub use outbound::Outbound;
pub use read_limit::{MAX_STANZA_BYTES, MAX_STANZA_DEPTH, MAX_STANZA_MARKUP, Oversize};
pub use secret::Secret;
pub use settings::LinkSettings;
pub use shutdown::{Shutdown, ShutdownTrigger, channel as shutdown_channel};
pub use stream::{ComponentStream, Read};
pub use xml::MAX_STANZA_MEMORY;

//! What a link is told: where the server is, who the component is, and how
//! often to ping. The handshake and the link both read it.

use crate::secret::Secret;
use std::time::Duration;

/// What the link needs to know.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The component's domain, sent in the stream header.
    pub domain: String,
    /// The shared secret for the handshake.
    pub secret: Secret,
    /// The server's component port, `host:port`, resolved at every attempt.
    pub server: String,
    /// How often to ping the server.
    pub ping_interval: Duration,
}

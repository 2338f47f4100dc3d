//! What a test needs from an XMPP server, so one test body can run against
//! Prosody and ejabberd alike.

use std::future::Future;

use crate::Result;

/// A running XMPP server on 127.0.0.1 with a user host, a component domain
/// for the connector and a MUC service.
pub trait XmppServer {
    /// Client-to-server port where test clients log in.
    fn c2s_port(&self) -> u16;
    /// XEP-0114 component port where the connector links.
    fn component_port(&self) -> u16;
    /// The user host: users are `name@<domain>`.
    fn domain(&self) -> &str;
    /// The component's domain the connector serves.
    fn component_domain(&self) -> &str;
    /// The multi-user chat service's domain.
    fn muc_domain(&self) -> &str;
    /// The component's shared secret.
    fn secret(&self) -> &str;
    /// Creates an account; returns its bare JID.
    fn register(&self, user: &str, password: &str) -> impl Future<Output = Result<String>> + Send;
    /// Stops and starts the server again on the same ports and data.
    fn restart(&mut self) -> impl Future<Output = Result<()>> + Send;

    /// `127.0.0.1:<component port>`, the connector's `COMPONENT_SERVER`.
    fn component_server(&self) -> String {
        format!("127.0.0.1:{}", self.component_port())
    }

    /// The environment a connector needs to link to this server as its
    /// component (COMPONENT_JID, COMPONENT_SECRET, COMPONENT_SERVER).
    fn component_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("COMPONENT_JID", self.component_domain().to_owned()),
            ("COMPONENT_SECRET", self.secret().to_owned()),
            ("COMPONENT_SERVER", self.component_server()),
        ]
    }
}

//! A whole XMPP component in a page: it links to the server and answers
//! every chat message with its own body.
//!
//! ```sh
//! COMPONENT_JID=echo.localhost COMPONENT_SECRET=secret COMPONENT_SERVER=localhost:5347 \
//!     cargo run -p xmpp-lambda-component --example echo_component
//! ```

use minidom::Element;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use xmpp_lambda_component::{
    Inbound, LinkSettings, LinkState, Outbound, Secret, run, shutdown_channel,
};

const NS: &str = "jabber:component:accept";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let settings = LinkSettings {
        domain: std::env::var("COMPONENT_JID")?,
        secret: Secret::new(std::env::var("COMPONENT_SECRET")?),
        server: std::env::var("COMPONENT_SERVER").unwrap_or_else(|_| "localhost:5347".into()),
        ping_interval: Duration::from_secs(60),
    };
    let (inbound_tx, mut inbound) = mpsc::channel(64);
    let (outbound, outbound_rx) = mpsc::unbounded_channel();
    let (state_tx, _state) = watch::channel(LinkState::Connecting);
    let (stop, shutdown) = shutdown_channel();
    let link = tokio::spawn(run(
        settings,
        inbound_tx,
        outbound_rx,
        state_tx,
        Box::new(|_| None),
        shutdown,
    ));
    loop {
        tokio::select! {
            read = inbound.recv() => match read {
                Some(Inbound::Stanza(stanza)) => {
                    if let Some(echo) = echo(&stanza) {
                        outbound.send(Outbound::stanza(echo))?;
                    }
                }
                // Too large to read: a real component would answer with an error.
                Some(Inbound::Skipped { .. }) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    // Whatever is queued is written, then the stream is closed.
    stop.trigger();
    drop(outbound);
    link.await?;
    Ok(())
}

/// The same body back to whoever sent a chat message.
fn echo(stanza: &Element) -> Option<Element> {
    if !stanza.is("message", NS) || stanza.attr("type") == Some("error") {
        return None;
    }
    let body = stanza.get_child("body", NS)?.text();
    Some(
        Element::builder("message", NS)
            .attr("to".try_into().ok()?, stanza.attr("from")?)
            .attr("from".try_into().ok()?, stanza.attr("to")?)
            .attr(
                "type".try_into().ok()?,
                stanza.attr("type").unwrap_or("chat"),
            )
            .append(Element::builder("body", NS).append(body))
            .build(),
    )
}

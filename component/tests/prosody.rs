//! The link against a real Prosody and a real XMPP client: linked, a
//! message read and answered, a write confirmed by the server, a relink
//! after Prosody restarts, and a clean close at shutdown.

use minidom::Element;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use xmpp_lambda_component::{
    Inbound, LinkSettings, LinkState, Outbound, Secret, run, shutdown_channel,
};
use xmpp_lambda_tests::{Prosody, Result, XmppServer, body_of, login};

const WAIT: Duration = Duration::from_secs(20);
const NS: &str = "jabber:component:accept";

/// A message to `to` from `from` saying `body`.
fn message(from: &str, to: &str, body: &str) -> Element {
    Element::builder("message", NS)
        .attr("from".try_into().expect("a name"), from)
        .attr("to".try_into().expect("a name"), to)
        .attr("type".try_into().expect("a name"), "chat")
        .append(Element::builder("body", NS).append(body))
        .build()
}

/// Waits until the link is up for the `n`th time.
async fn linked(state: &mut watch::Receiver<LinkState>, n: u64) -> Result<()> {
    tokio::time::timeout(
        WAIT,
        state.wait_for(|state| matches!(state, LinkState::Up { connection } if *connection >= n)),
    )
    .await??;
    Ok(())
}

#[tokio::test]
async fn a_message_is_read_and_answered_across_a_restart_and_the_link_closes_cleanly() -> Result<()>
{
    let mut prosody = Prosody::start().await?;
    let settings = LinkSettings {
        domain: prosody.component_domain().to_owned(),
        secret: Secret::new(prosody.secret()),
        server: prosody.component_server(),
        ping_interval: Duration::from_secs(60),
    };
    let bot = format!("echo@{}", prosody.component_domain());
    let (inbound_tx, mut inbound) = mpsc::channel(8);
    let (outbound, outbound_rx) = mpsc::unbounded_channel();
    let (state_tx, mut state) = watch::channel(LinkState::Connecting);
    let (stop, shutdown) = shutdown_channel();
    let link = tokio::spawn(run(
        settings,
        inbound_tx,
        outbound_rx,
        state_tx,
        Box::new(|_| None),
        shutdown,
    ));
    linked(&mut state, 1).await?;
    let mut alice = login(&prosody, "alice").await?;

    for (round, text) in ["before", "after a restart"].into_iter().enumerate() {
        alice.send_message(&bot, text).await?;
        let read = tokio::time::timeout(WAIT, inbound.recv())
            .await?
            .ok_or("the link stopped")?;
        let Inbound::Stanza(stanza) = read else {
            return Err(format!("not a stanza: {read:?}").into());
        };
        assert!(stanza.is("message", NS), "{stanza:?}");
        assert_eq!(
            stanza.get_child("body", NS).map(Element::text).as_deref(),
            Some(text)
        );
        // The answer, confirmed once the server has taken it.
        let (written, confirmed) = oneshot::channel();
        let answer = message(&bot, alice.full_jid(), &format!("{text}!"));
        outbound.send(Outbound::acknowledged(answer, written))?;
        tokio::time::timeout(WAIT, confirmed).await??;
        let reply = alice.expect_message("the answer", WAIT).await?;
        assert_eq!(body_of(&reply), Some(format!("{text}!")));
        if round == 0 {
            prosody.restart().await?;
            linked(&mut state, 2).await?;
            alice = login(&prosody, "alice").await?;
        }
    }

    // Shutdown: what is queued is written, then the stream is closed.
    outbound.send(Outbound::stanza(message(&bot, alice.full_jid(), "bye")))?;
    stop.trigger();
    drop(outbound);
    tokio::time::timeout(WAIT, link).await??;
    assert_eq!(
        *state.borrow(),
        LinkState::Down("closed at shutdown".into())
    );
    let bye = alice.expect_message("the last message", WAIT).await?;
    assert_eq!(body_of(&bye).as_deref(), Some("bye"));
    Ok(())
}

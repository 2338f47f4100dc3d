//! Live conversations (DESIGN §10) end to end: a real Prosody, the
//! connector, a real HTTP bot and real XMPP clients.

use std::time::Duration;

use xmpp_lambda_tests::{
    BotRequest, BotServer, Connector, Prosody, Result, XmppServer, body_of, echo_reply, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";

/// The connector linked to `prosody`, posting to `url`.
async fn connector(prosody: &Prosody, url: &str, env: &[(&str, &str)]) -> Result<Connector> {
    let mut all = vec![("COMPONENT_POST_URL", url)];
    all.extend_from_slice(env);
    let connector = Connector::start_for(prosody, &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

/// A chat state, a delivery receipt and a displayed marker, each alone in
/// a message, as clients send them around what a person writes.
fn notifications(to: &str) -> [String; 3] {
    [
        format!(
            "<message to='{to}' type='chat'>\
             <composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ),
        format!(
            "<message to='{to}' id='r1'><received xmlns='urn:xmpp:receipts' id='m0'/></message>"
        ),
        format!(
            "<message to='{to}' type='chat'>\
             <displayed xmlns='urn:xmpp:chat-markers:0' id='m0'/></message>"
        ),
    ]
}

#[tokio::test]
async fn messages_without_a_body_reach_no_bot_unless_forwarded() -> Result<()> {
    let prosody = Prosody::start().await?;
    let to = format!("echo@{}", prosody.component_domain());
    for (policy, forwarded) in [(None, 0), (Some("forward"), 3)] {
        let bot = BotServer::start(|request: BotRequest| async move { echo_reply(&request.json) })
            .await?;
        let mut env = Vec::new();
        if let Some(policy) = policy {
            env.push(("COMPONENT_MESSAGES_WITHOUT_BODY", policy));
        }
        let connector = connector(&prosody, &bot.url(), &env).await?;
        let mut alice = login(&prosody, "alice").await?;
        for xml in notifications(&to) {
            alice.send(&xml).await?;
        }
        // A message a person wrote, after them: once it is answered, the
        // notifications before it have been handled.
        alice.send_message(&to, "hello").await?;
        let reply = alice
            .recv_until(WAIT, |stanza| {
                body_of(stanza).is_some_and(|body| body.contains("hello"))
            })
            .await
            .ok_or("no answer to hello")?;
        assert_eq!(body_of(&reply).as_deref(), Some("Did you say hello?"));
        let requests = bot.requests();
        let without_body = requests
            .iter()
            .filter(|request| request.json.get("body").is_none())
            .count();
        assert_eq!(without_body, forwarded, "policy {policy:?}: {requests:?}");
        assert_eq!(requests.len(), forwarded + 1, "policy {policy:?}");
        connector.terminate();
    }
    Ok(())
}

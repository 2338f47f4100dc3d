//! The harness proven against the real servers it drives: if these fail,
//! no end-to-end test built on it can be trusted.

use std::time::Duration;

use serde_json::{Value, json};
use xmpp_lambda_tests::{
    BotReply, BotServer, Ejabberd, Moto, Prosody, Result, XmppClient, XmppServer, body_of,
    component_handshake,
};

/// Generous: the machine is shared; a healthy run answers in milliseconds.
const WAIT: Duration = Duration::from_secs(10);

/// Registers alice and bob, logs both in, alice writes to bob: bob must get
/// the body from alice.
async fn users_message_each_other(server: &impl XmppServer) -> Result<()> {
    let alice = server.register("alice", "alice-pw").await?;
    let bob = server.register("bob", "bob-pw").await?;
    let mut alice_client =
        XmppClient::connect("127.0.0.1", server.c2s_port(), &alice, "alice-pw").await?;
    let mut bob_client =
        XmppClient::connect("127.0.0.1", server.c2s_port(), &bob, "bob-pw").await?;
    assert_eq!(alice_client.jid(), "alice@localhost");
    assert!(bob_client.full_jid().starts_with("bob@localhost/"));

    let body = "hello <bob> & 'friends' — ünïcödé";
    let id = alice_client.send_message(&bob, body).await?;
    let message = bob_client
        .recv_message(WAIT)
        .await
        .ok_or("bob got no message")?;
    assert_eq!(body_of(&message).as_deref(), Some(body));
    assert_eq!(message.attr("id"), Some(id.as_str()));
    assert_eq!(message.attr("type"), Some("chat"));
    assert_eq!(message.attr("from"), Some(alice_client.full_jid()));
    Ok(())
}

#[tokio::test]
async fn prosody_users_message_each_other() -> Result<()> {
    let prosody = Prosody::start().await?;
    users_message_each_other(&prosody).await
}

#[tokio::test]
async fn ejabberd_users_message_each_other() -> Result<()> {
    let ejabberd = Ejabberd::start().await?;
    users_message_each_other(&ejabberd).await
}

#[tokio::test]
async fn prosody_answers_a_raw_iq_ping() -> Result<()> {
    let prosody = Prosody::start().await?;
    let alice = prosody.register("alice", "pw").await?;
    let mut client = XmppClient::connect("127.0.0.1", prosody.c2s_port, &alice, "pw").await?;
    client
        .send("<iq type='get' id='ping-1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await?;
    let answer = client
        .recv_until(WAIT, |stanza| {
            stanza.name() == "iq" && stanza.attr("id") == Some("ping-1")
        })
        .await
        .ok_or("no answer to the ping")?;
    assert_eq!(answer.attr("type"), Some("result"));
    assert_eq!(answer.attr("from"), Some("localhost"));
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_is_refused() -> Result<()> {
    let prosody = Prosody::start().await?;
    let alice = prosody.register("alice", "right").await?;
    let refused = XmppClient::connect("127.0.0.1", prosody.c2s_port, &alice, "wrong").await;
    let error = refused.err().ok_or("a wrong password logged in")?;
    assert!(error.to_string().contains("auth_failed"), "{error}");
    Ok(())
}

#[tokio::test]
async fn prosody_restart_keeps_ports_and_users() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let alice = prosody.register("alice", "alice-pw").await?;
    let bob = prosody.register("bob", "bob-pw").await?;
    let (c2s_port, component_port) = (prosody.c2s_port, prosody.component_port);
    let pid_before = prosody.pid().ok_or("no pid")?;
    let mut early_client = XmppClient::connect("127.0.0.1", c2s_port, &alice, "alice-pw").await?;

    prosody.restart().await?;

    assert_ne!(
        prosody.pid(),
        Some(pid_before),
        "the server process was not replaced"
    );
    assert_eq!(
        (prosody.c2s_port, prosody.component_port),
        (c2s_port, component_port)
    );
    // The old session saw its stream end.
    assert!(early_client.recv(WAIT).await.is_none());
    assert!(early_client.disconnected().is_some());
    // The accounts survived: both log in again and talk.
    let mut alice_client = XmppClient::connect("127.0.0.1", c2s_port, &alice, "alice-pw").await?;
    let mut bob_client = XmppClient::connect("127.0.0.1", c2s_port, &bob, "bob-pw").await?;
    alice_client.send_message(&bob, "after the restart").await?;
    let message = bob_client
        .recv_message(WAIT)
        .await
        .ok_or("bob got no message")?;
    assert_eq!(body_of(&message).as_deref(), Some("after the restart"));
    // The component listener is back with the same secret.
    component_handshake(component_port, &prosody.component_domain, &prosody.secret).await?;
    Ok(())
}

#[tokio::test]
async fn prosody_stop_frees_the_ports() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let pid = prosody.pid().ok_or("no pid")?;
    prosody.stop().await;
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || prosody.pid().is_none());
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", prosody.c2s_port))
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn component_listeners_take_the_secret_and_refuse_others() -> Result<()> {
    let prosody = Prosody::start().await?;
    component_handshake(
        prosody.component_port,
        &prosody.component_domain,
        &prosody.secret,
    )
    .await?;
    let wrong =
        component_handshake(prosody.component_port, &prosody.component_domain, "wrong").await;
    assert!(wrong.is_err(), "Prosody accepted a wrong component secret");

    let ejabberd = Ejabberd::start().await?;
    component_handshake(
        ejabberd.component_port,
        &ejabberd.component_domain,
        &ejabberd.secret,
    )
    .await?;
    let wrong =
        component_handshake(ejabberd.component_port, &ejabberd.component_domain, "wrong").await;
    assert!(wrong.is_err(), "ejabberd accepted a wrong component secret");
    Ok(())
}

#[tokio::test]
async fn bot_server_echo_answers_a_post() -> Result<()> {
    let bot = BotServer::echo().await?;
    let response = reqwest::Client::new()
        .post(bot.url())
        .json(&json!({ "to": "echo@bot.localhost", "from": "alice@localhost/r", "kind": "message", "body": "hello" }))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let answer: Value = response.json().await?;
    assert_eq!(answer, json!({ "body": "Did you say hello?" }));

    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].content_type(), Some("application/json"));
    assert_eq!(requests[0].json["from"], "alice@localhost/r");
    Ok(())
}

#[tokio::test]
async fn bot_server_runs_a_programmable_slow_handler() -> Result<()> {
    let delay = Duration::from_millis(300);
    let bot = BotServer::start(move |request| async move {
        let status = request.json["status"].as_u64().unwrap_or(200) as u16;
        BotReply::status(status).with_delay(delay)
    })
    .await?;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    let response = client
        .post(bot.url())
        .json(&json!({ "status": 503 }))
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert!(started.elapsed() >= delay, "answered before the delay");
    assert!(response.headers().get("content-type").is_none());

    let recorded = bot.wait_for_requests(1, WAIT).await?;
    assert_eq!(recorded[0].json["status"], 503);
    Ok(())
}

#[tokio::test]
async fn a_stopped_bot_server_refuses_connections() -> Result<()> {
    let mut bot = BotServer::echo().await?;
    let url = bot.url();
    bot.stop().await;
    let refused = reqwest::Client::new()
        .post(&url)
        .json(&json!({}))
        .send()
        .await;
    assert!(refused.is_err(), "a stopped bot still answered");
    Ok(())
}

#[tokio::test]
async fn moto_serves_sqs_and_resets() -> Result<()> {
    let moto = Moto::start().await?;
    let standard = moto.create_queue("harness-check").await?;
    let fifo = moto.create_queue("harness-check.fifo").await?;
    assert!(standard.starts_with(&moto.endpoint_url()), "{standard}");
    assert!(fifo.ends_with("/harness-check.fifo"), "{fifo}");
    let queues = moto.sqs_action(&[("Action", "ListQueues")]).await?;
    assert!(
        queues.contains(&standard) && queues.contains(&fifo),
        "{queues}"
    );

    moto.reset().await?;
    let queues = moto.sqs_action(&[("Action", "ListQueues")]).await?;
    assert!(!queues.contains("harness-check"), "{queues}");
    Ok(())
}

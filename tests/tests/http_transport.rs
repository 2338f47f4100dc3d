//! The connector with the http transport, end to end: a real XMPP server
//! (Prosody, and ejabberd for the core cases), the connector binary, a real
//! HTTP bot and real XMPP clients. Everything is asserted at the client.
//!
//! The bot is scripted by the message body it receives:
//! `status N` answers status N with no body, `reply JSON` answers 200 with
//! that JSON verbatim, `text T` answers 200 `text/plain`, `slow MS` echoes
//! after MS milliseconds; anything else is echoed like the reference PHP bot.

use std::time::Duration;

use minidom::Element;
use serde_json::json;
use xmpp_lambda_tests::STANZAS_NS;
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, CLIENT_NS, Connector, Ejabberd, Prosody, Result, XmppClient,
    XmppServer, assert_connection_failure, assert_stanza_error, body_of, echo_reply, free_port,
    login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(700);
const LINK_UP: &str = "component link established";

/// The scripted bot's answer to one request (see the module comment).
fn scripted(request: &BotRequest) -> BotReply {
    let body = request.json["body"].as_str().unwrap_or_default();
    if let Some(code) = body.strip_prefix("status ") {
        return BotReply::status(code.parse().unwrap_or(500));
    }
    if let Some(reply) = body.strip_prefix("reply ") {
        return BotReply::raw(200, "application/json", reply);
    }
    if let Some(text) = body.strip_prefix("text ") {
        return BotReply::raw(200, "text/plain", text);
    }
    if let Some(ms) = body.strip_prefix("slow ") {
        let ms = ms
            .split(' ')
            .next()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0);
        return echo_reply(&request.json).with_delay(Duration::from_millis(ms));
    }
    echo_reply(&request.json)
}

async fn scripted_bot() -> Result<BotServer> {
    BotServer::start(|request: BotRequest| async move { scripted(&request) }).await
}

/// The connector linked to `server`, posting to `url`, once its link is up.
async fn connector(server: &impl XmppServer, url: &str, env: &[(&str, &str)]) -> Result<Connector> {
    let mut all = vec![("COMPONENT_POST_URL", url)];
    all.extend_from_slice(env);
    let connector = Connector::start_for(server, &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

fn echo_jid(server: &impl XmppServer) -> String {
    format!("echo@{}", server.component_domain())
}

/// Sends `body` and returns the next message's body.
async fn ask(client: &mut XmppClient, to: &str, body: &str) -> Result<String> {
    client.send_message(to, body).await?;
    let reply = client.expect_message(body, WAIT).await?;
    body_of(&reply).ok_or_else(|| format!("reply to {body:?} has no body: {reply:?}").into())
}

/// The link never dropped: no disconnect was logged.
fn assert_link_held(connector: &Connector) {
    let lost: Vec<String> = connector
        .logs()
        .into_iter()
        .filter(|line| line.contains("component link lost"))
        .collect();
    assert!(lost.is_empty(), "the link dropped: {lost:?}");
}

#[tokio::test]
async fn echo_reply_with_request_json_as_designed() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(&prosody, &bot.url(), &[("LOG_FORMAT", "json")]).await?;
    let mut alice = login(&prosody, "alice").await?;

    let id = alice
        .send_message(&echo_jid(&prosody), "hello <&> ünïcode")
        .await?;
    let reply = alice.expect_message("echo", WAIT).await?;
    assert_eq!(
        body_of(&reply).as_deref(),
        Some("Did you say hello <&> ünïcode?")
    );
    assert_eq!(reply.attr("from"), Some(echo_jid(&prosody).as_str()));
    assert_eq!(reply.attr("to"), Some(alice.full_jid()));
    assert_eq!(reply.attr("type"), Some("chat"));
    assert_ne!(reply.attr("id"), Some(id.as_str()), "replies get fresh ids");

    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.content_type(), Some("application/json"));
    assert_eq!(request.json["to"], json!(echo_jid(&prosody)));
    assert_eq!(request.json["from"], json!(alice.full_jid()));
    assert_eq!(request.json["kind"], json!("message"));
    assert_eq!(request.json["body"], json!("hello <&> ünïcode"));
    assert_eq!(request.json["type"], json!("chat"));
    assert_eq!(request.json["id"], json!(id));
    let stanza: Element = request.json["stanza"]
        .as_str()
        .ok_or("stanza is text")?
        .parse()?;
    assert_eq!(stanza.ns(), CLIENT_NS);
    assert_eq!(body_of(&stanza).as_deref(), Some("hello <&> ünïcode"));
    // Logs are JSON lines, and the secret is in none of them.
    let line = connector.wait_for_log(LINK_UP, WAIT).await?;
    let parsed: serde_json::Value = serde_json::from_str(&line)?;
    assert_eq!(parsed["message"], json!(LINK_UP), "{line}");
    assert_eq!(parsed["level"], json!("INFO"), "{line}");
    let logs = connector.logs();
    assert!(logs.iter().any(|l| l.contains("[redacted]")), "{logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains(prosody.secret())),
        "{logs:?}"
    );
    Ok(())
}

#[tokio::test]
async fn every_error_table_row_and_silent_answers() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);

    let table: &[(u16, &str, &str, Option<&str>)] = &[
        (400, "modify", "bad-request", None),
        (401, "auth", "not-authorized", None),
        (402, "auth", "forbidden", Some("Payment required")),
        (403, "auth", "forbidden", None),
        (404, "cancel", "item-not-found", None),
        (410, "cancel", "gone", None),
        (500, "cancel", "internal-server-error", None),
        (501, "cancel", "feature-not-implemented", None),
        (502, "cancel", "remote-server-timeout", Some("Bad gateway")),
        (
            503,
            "wait",
            "remote-server-timeout",
            Some("Service temporarily unavailable"),
        ),
        (
            504,
            "wait",
            "remote-server-timeout",
            Some("Gateway timeout"),
        ),
        (418, "cancel", "service-unavailable", None),
        (302, "cancel", "service-unavailable", None),
    ];
    for (status, error_type, condition, text) in table {
        let id = alice
            .send_message(&echo, &format!("status {status}"))
            .await?;
        let reply = alice
            .expect_message(&format!("status {status}"), WAIT)
            .await?;
        assert_stanza_error(&reply, &id, error_type, condition, *text);
        assert_eq!(reply.attr("from"), Some(echo.as_str()));
    }

    // 204, another 2xx and a 200 that is not JSON get no answer: in one
    // conversation replies keep their order, so the echo sent after them
    // is the next message if they were silent.
    for silent in ["status 204", "status 201", "text not json"] {
        alice.send_message(&echo, silent).await?;
    }
    assert_eq!(ask(&mut alice, &echo, "after").await?, "Did you say after?");
    assert_link_held(&connector);
    Ok(())
}

#[tokio::test]
async fn a_redirect_is_an_answer_not_a_second_post() -> Result<()> {
    let prosody = Prosody::start().await?;
    let elsewhere = scripted_bot().await?;
    let target = elsewhere.url();
    let bot = BotServer::start(move |_| {
        let target = target.clone();
        async move { BotReply::status(307).with_header("location", &target) }
    })
    .await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let id = alice.send_message(&echo_jid(&prosody), "hi").await?;
    let reply = alice.expect_message("the redirect's error", WAIT).await?;
    assert_stanza_error(&reply, &id, "cancel", "service-unavailable", None);
    assert!(
        elsewhere.requests().is_empty(),
        "the request went nowhere else"
    );
    Ok(())
}

#[tokio::test]
async fn no_response_when_the_bot_is_down_or_too_slow() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);

    // Nothing listens on this port. The connector tries to connect again
    // until its timeout is spent (tests/tests/bot_connection.rs).
    let down = format!("http://127.0.0.1:{}/bot", free_port());
    let mut connector_down = connector(&prosody, &down, &[("COMPONENT_POST_TIMEOUT", "1")]).await?;
    let id = alice.send_message(&echo, "anyone there?").await?;
    let reply = alice.expect_message("bot down", WAIT).await?;
    assert_connection_failure(&reply, &id);
    connector_down.terminate();
    assert!(connector_down.wait_exit(WAIT).await?.success());

    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[("COMPONENT_POST_TIMEOUT", "1")]).await?;
    let started = tokio::time::Instant::now();
    let id = alice.send_message(&echo, "slow 4000").await?;
    let reply = alice.expect_message("bot too slow", WAIT).await?;
    assert_connection_failure(&reply, &id);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(3500),
        "the timeout is 1 s, the error came after {waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn stanza_and_field_replies() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);

    // A whole stanza without addresses: they are filled in, swapped.
    let stanza = json!({ "stanza": "<message type='normal'><body>from a stanza</body><subject>s</subject></message>" });
    alice
        .send_message(&echo, &format!("reply {stanza}"))
        .await?;
    let reply = alice.expect_message("stanza reply", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("from a stanza"));
    assert_eq!(reply.attr("type"), Some("normal"));
    assert_eq!(reply.attr("from"), Some(echo.as_str()));
    assert_eq!(
        reply
            .get_child("subject", CLIENT_NS)
            .map(Element::text)
            .as_deref(),
        Some("s")
    );

    // Fields: a number as body, an explicit type, another JID at the component.
    let other = format!("other@{}", prosody.component_domain());
    let fields = json!({ "body": 42, "type": "normal", "from": other });
    alice
        .send_message(&echo, &format!("reply {fields}"))
        .await?;
    let reply = alice.expect_message("field reply", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("42"));
    assert_eq!(reply.attr("type"), Some("normal"));
    assert_eq!(reply.attr("from"), Some(other.as_str()));

    // The reply type follows the request's: normal in, normal out.
    alice.send_message_of_type(&echo, "normal", "plain").await?;
    let reply = alice.expect_message("typed echo", WAIT).await?;
    assert_eq!(reply.attr("type"), Some("normal"));
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say plain?"));
    Ok(())
}

#[tokio::test]
async fn reply_to_another_user_reaches_that_user() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let mut bob = login(&prosody, "bob").await?;
    let echo = echo_jid(&prosody);

    let to_bob = json!({ "to": bob.full_jid(), "body": "psst, bob" });
    alice
        .send_message(&echo, &format!("reply {to_bob}"))
        .await?;
    let at_bob = bob.expect_message("relayed message", WAIT).await?;
    assert_eq!(body_of(&at_bob).as_deref(), Some("psst, bob"));
    assert_eq!(at_bob.attr("from"), Some(echo.as_str()));
    // Alice gets nothing for it: her next message is the echo below.
    assert_eq!(ask(&mut alice, &echo, "next").await?, "Did you say next?");
    Ok(())
}

#[tokio::test]
async fn bad_bot_replies_become_internal_server_error_and_the_link_stays_up() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);

    let bad_replies = [
        // A `from` outside the component: the server would drop the link.
        json!({ "from": "mallory@localhost", "body": "spoof" }).to_string(),
        json!({ "to": "not a jid@@", "body": "x" }).to_string(),
        json!({ "stanza": "<message><body>unclosed" }).to_string(),
        json!({ "kind": "carrier-pigeon" }).to_string(),
        "{not json".to_owned(),
        "[1, 2]".to_owned(),
    ];
    for bad in &bad_replies {
        let id = alice.send_message(&echo, &format!("reply {bad}")).await?;
        let reply = alice.expect_message(bad, WAIT).await?;
        assert_eq!(reply.attr("type"), Some("error"), "{bad}: {reply:?}");
        let error = reply.get_child("error", CLIENT_NS).ok_or("no error")?;
        assert_eq!(error.attr("type"), Some("cancel"), "{bad}");
        assert!(
            error.has_child("internal-server-error", STANZAS_NS),
            "{bad}: {reply:?}"
        );
        assert_eq!(reply.attr("id"), Some(id.as_str()));
    }
    connector.wait_for_log("bot reply refused", WAIT).await?;
    assert_eq!(
        ask(&mut alice, &echo, "still there").await?,
        "Did you say still there?"
    );
    assert_link_held(&connector);
    Ok(())
}

#[tokio::test]
async fn hostile_stanzas_do_not_cost_the_link() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);

    // tokio-xmpp's typed parser refuses these; the connector must not care.
    alice
        .send(&format!(
            "<message to='{echo}' type='bogus' id='h1'><body>bogus type</body></message>"
        ))
        .await?;
    alice
        .send(&format!(
            "<iq to='{echo}' type='get' id='h2'><query xmlns='http://jabber.org/protocol/disco#info'/><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await?;
    alice
        .send(&format!(
            "<presence to='{echo}' type='nonsense' id='h3'><priority>many</priority></presence>"
        ))
        .await?;
    alice
        .send(&format!(
            "<message to='{echo}' id='h4'><body>two</body><body>bodies</body><thread>&#x1F600;</thread></message>"
        ))
        .await?;
    // Whatever the answers to those, the link is up and echo works.
    let reply = alice
        .recv_until(WAIT, |s| body_of(s).as_deref() == Some("Did you say two?"))
        .await;
    assert!(
        reply.is_some(),
        "no echo for the message with two bodies: {:?}",
        alice.disconnected()
    );
    assert_eq!(ask(&mut alice, &echo, "ok").await?, "Did you say ok?");
    assert_link_held(&connector);
    Ok(())
}

/// Subscribe, probe and unsubscribe to `to`; checks the answers (DESIGN §3).
async fn presence_round(client: &mut XmppClient, to: &str) -> Result<()> {
    let online = format!("{to}/default");
    client
        .send(&format!("<presence to='{to}' type='subscribe'/>"))
        .await?;
    let subscribed = client
        .recv_until(WAIT, |s| {
            s.name() == "presence" && s.attr("type") == Some("subscribed")
        })
        .await
        .ok_or_else(|| format!("no subscribed from {to}"))?;
    assert_eq!(
        subscribed
            .attr("from")
            .map(|f| f.split('/').next().unwrap_or(f)),
        Some(to)
    );
    client
        .recv_until(WAIT, |s| {
            s.name() == "presence"
                && s.attr("type").is_none()
                && s.attr("from") == Some(online.as_str())
        })
        .await
        .ok_or_else(|| format!("no available presence from {online} after subscribing"))?;

    client
        .send(&format!("<presence to='{to}' type='probe'/>"))
        .await?;
    client
        .recv_until(WAIT, |s| {
            s.name() == "presence"
                && s.attr("type").is_none()
                && s.attr("from") == Some(online.as_str())
        })
        .await
        .ok_or_else(|| format!("no available presence from {online} after a probe"))?;

    client
        .send(&format!("<presence to='{to}' type='unsubscribe'/>"))
        .await?;
    client
        .recv_until(WAIT, |s| {
            s.name() == "presence"
                && s.attr("type") == Some("unavailable")
                && s.attr("from") == Some(online.as_str())
        })
        .await
        .ok_or_else(|| format!("no unavailable presence from {online} after unsubscribing"))?;
    Ok(())
}

/// IQ ping, disco#info and an unknown query; checks the answers.
async fn iq_round(client: &mut XmppClient, server: &impl XmppServer) -> Result<()> {
    let echo = echo_jid(server);
    let domain = server.component_domain();
    client
        .send(&format!(
            "<iq to='{echo}' type='get' id='ping1'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await?;
    let pong = client
        .recv_until(WAIT, |s| s.name() == "iq" && s.attr("id") == Some("ping1"))
        .await
        .ok_or("no answer to the ping")?;
    assert_eq!(pong.attr("type"), Some("result"), "{pong:?}");
    assert_eq!(pong.attr("from"), Some(echo.as_str()));

    client
        .send(&format!(
            "<iq to='{domain}' type='get' id='disco1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ))
        .await?;
    let info = client
        .recv_until(WAIT, |s| s.name() == "iq" && s.attr("id") == Some("disco1"))
        .await
        .ok_or("no answer to disco#info")?;
    assert_eq!(info.attr("type"), Some("result"), "{info:?}");
    let query = info
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .ok_or("no disco#info query")?;
    let identity = query
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .ok_or("no identity")?;
    assert_eq!(identity.attr("category"), Some("component"));
    assert!(
        query
            .children()
            .any(|f| f.attr("var") == Some("urn:xmpp:ping"))
    );

    client
        .send(&format!(
            "<iq to='{echo}' type='get' id='version1'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await?;
    let refused = client
        .recv_until(WAIT, |s| {
            s.name() == "iq" && s.attr("id") == Some("version1")
        })
        .await
        .ok_or("no answer to an unknown IQ")?;
    assert_stanza_error(&refused, "version1", "cancel", "service-unavailable", None);
    Ok(())
}

#[tokio::test]
async fn presence_to_bare_and_domain_jids() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    presence_round(&mut alice, &echo_jid(&prosody)).await?;
    presence_round(&mut alice, prosody.component_domain()).await?;
    assert!(
        bot.requests().is_empty(),
        "presence is not forwarded by default"
    );
    Ok(())
}

#[tokio::test]
async fn iq_ping_disco_and_unknown() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    // A host name, resolved by the connector (to ::1 and 127.0.0.1; the
    // server listens on the latter only).
    let server = format!("localhost:{}", prosody.component_port);
    let _connector = connector(&prosody, &bot.url(), &[("COMPONENT_SERVER", &server)]).await?;
    let mut alice = login(&prosody, "alice").await?;
    iq_round(&mut alice, &prosody).await?;
    assert!(
        bot.requests().is_empty(),
        "IQs are not forwarded by default"
    );
    Ok(())
}

#[tokio::test]
async fn forwarded_iq_without_an_iq_answer_gets_service_unavailable() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::start(|_request: BotRequest| async { BotReply::status(204) }).await?;
    let _connector = connector(
        &prosody,
        &bot.url(),
        &[("COMPONENT_POST_STANZAS", "message,iq")],
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);
    alice
        .send(&format!(
            "<iq to='{echo}' type='get' id='fwd1'><ping xmlns='urn:xmpp:ping'/></iq>"
        ))
        .await?;
    let answer = alice
        .recv_until(WAIT, |s| s.name() == "iq" && s.attr("id") == Some("fwd1"))
        .await
        .ok_or("no answer to a forwarded IQ")?;
    assert_stanza_error(&answer, "fwd1", "cancel", "service-unavailable", None);
    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json["kind"], json!("iq"));
    Ok(())
}

#[tokio::test]
async fn order_within_a_conversation_and_independence_across() -> Result<()> {
    let prosody = Prosody::start().await?;
    // Earlier messages take longer: run concurrently, their replies would
    // come back reversed.
    let bot = BotServer::start(|request: BotRequest| async move {
        let body = request.json["body"].as_str().unwrap_or_default().to_owned();
        match body.strip_prefix("n ").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) => scripted(&request).with_delay(Duration::from_millis(5 * (20 - n.min(20)))),
            None => scripted(&request),
        }
    })
    .await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let mut bob = login(&prosody, "bob").await?;
    let echo = echo_jid(&prosody);
    let slow = format!("slow@{}", prosody.component_domain());

    // A slow conversation does not hold up another one of the same user.
    alice.send_message(&slow, "slow 3000").await?;
    for n in 0..20 {
        alice.send_message(&echo, &format!("n {n}")).await?;
        bob.send_message(&echo, &format!("n {n}")).await?;
    }
    for client in [&mut alice, &mut bob] {
        for n in 0..20 {
            let reply = client.expect_message(&format!("n {n}"), WAIT).await?;
            assert_eq!(body_of(&reply), Some(format!("Did you say n {n}?")));
        }
    }
    // The bot, too, saw each conversation in order.
    for user in [alice.full_jid(), bob.full_jid()] {
        let seen: Vec<String> = bot
            .requests()
            .iter()
            .filter(|r| r.json["from"] == json!(user) && r.json["to"] == json!(echo))
            .map(|r| r.json["body"].as_str().unwrap_or_default().to_owned())
            .collect();
        let sent: Vec<String> = (0..20).map(|n| format!("n {n}")).collect();
        assert_eq!(
            seen, sent,
            "requests of {user} reached the bot out of order"
        );
    }
    let last = alice.expect_message("slow reply", WAIT).await?;
    assert_eq!(body_of(&last).as_deref(), Some("Did you say slow 3000?"));
    Ok(())
}

#[tokio::test]
async fn in_flight_limit_holds_stanzas_back_and_drops_none() -> Result<()> {
    const LIMIT: usize = 256;
    const SENT: usize = 400;
    let prosody = Prosody::start().await?;
    // Every request waits at the gate until the test opens it.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let bot = {
        let gate = std::sync::Arc::clone(&gate);
        BotServer::start(move |request: BotRequest| {
            let gate = std::sync::Arc::clone(&gate);
            async move {
                let _pass = gate.acquire().await;
                scripted(&request)
            }
        })
        .await?
    };
    let connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    // One conversation per message, so nothing waits for order's sake.
    for n in 0..SENT {
        alice
            .send_message(
                &format!("n{n}@{}", prosody.component_domain()),
                &format!("m {n}"),
            )
            .await?;
    }
    bot.wait_for_requests(LIMIT, WAIT).await?;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        bot.requests().len(),
        LIMIT,
        "more requests in flight than the limit"
    );

    gate.add_permits(SENT);
    let mut answered = std::collections::HashSet::new();
    while answered.len() < SENT {
        let reply = alice
            .expect_message(&format!("reply {}", answered.len()), WAIT)
            .await?;
        answered.insert(body_of(&reply).ok_or("reply without body")?);
    }
    let expected: std::collections::HashSet<String> =
        (0..SENT).map(|n| format!("Did you say m {n}?")).collect();
    assert_eq!(answered, expected);
    assert_eq!(bot.requests().len(), SENT);
    assert_link_held(&connector);
    Ok(())
}

#[tokio::test]
async fn relinks_after_the_server_restarts() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(&prosody, &bot.url(), &[]).await?;
    let echo = echo_jid(&prosody);
    {
        let mut alice = login(&prosody, "alice").await?;
        assert_eq!(
            ask(&mut alice, &echo, "before").await?,
            "Did you say before?"
        );
    }
    let seen = connector.logs().len();
    prosody.restart().await?;
    connector
        .wait_for_log_from(seen, "component link lost", WAIT)
        .await?;
    connector.wait_for_log_from(seen, LINK_UP, WAIT).await?;
    let mut alice = XmppClient::connect(
        "127.0.0.1",
        prosody.c2s_port,
        "alice@localhost",
        "secret-pw",
    )
    .await?;
    assert_eq!(ask(&mut alice, &echo, "after").await?, "Did you say after?");
    Ok(())
}

#[tokio::test]
async fn reply_made_while_the_link_is_down_is_written_after_relink() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let domain = prosody.component_domain().to_owned();
    let sink = format!("sink@{domain}");
    // The bot holds its answer until told, then sends it to another JID at
    // the component: the server routes it back to the connector, which
    // hands it to the bot as a new request. So the bot itself sees whether
    // the reply was written, however the clients are doing.
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let bot = {
        let release = std::sync::Arc::clone(&release);
        let sink = sink.clone();
        BotServer::start(move |request: BotRequest| {
            let release = std::sync::Arc::clone(&release);
            let sink = sink.clone();
            async move {
                if request.json["to"] == json!(sink) {
                    return BotReply::status(204);
                }
                release.notified().await;
                BotReply::json(json!({ "to": sink, "body": "made while the link was down" }))
            }
        })
        .await?
    };
    let connector = connector(
        &prosody,
        &bot.url(),
        &[("RUST_LOG", "info,xmpp_lambda_connector::dispatch=debug")],
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    alice.send_message(&echo_jid(&prosody), "hold it").await?;
    bot.wait_for_requests(1, WAIT).await?;

    let seen = connector.logs().len();
    prosody.stop().await;
    connector
        .wait_for_log_from(seen, "component link lost", WAIT)
        .await?;
    release.notify_one();
    connector
        .wait_for_log_from(seen, "bot answered", WAIT)
        .await?;
    prosody.restart().await?;
    let requests = bot.wait_for_requests(2, WAIT).await?;
    let relayed = &requests[1];
    assert_eq!(relayed.json["from"], json!(echo_jid(&prosody)));
    assert_eq!(relayed.json["to"], json!(sink));
    assert_eq!(relayed.json["body"], json!("made while the link was down"));
    Ok(())
}

#[tokio::test]
async fn rejected_handshake_is_logged_with_the_servers_reason() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let wrong_secret = Connector::start_for(
        &prosody,
        &[
            ("COMPONENT_POST_URL", &bot.url()),
            ("COMPONENT_SECRET", "wrong"),
        ],
    )
    .await?;
    let line = wrong_secret
        .wait_for_log("component handshake rejected", WAIT)
        .await?;
    assert!(line.contains("not-authorized"), "{line}");
    // The server's own words are kept.
    assert!(line.contains("does not match"), "{line}");
    // It keeps trying, with backoff.
    wrong_secret
        .wait_for_log("reconnecting to the XMPP server", WAIT)
        .await?;

    let _first = connector(&prosody, &bot.url(), &[]).await?;
    let second = Connector::start_for(&prosody, &[("COMPONENT_POST_URL", &bot.url())]).await?;
    // A conflict makes the second one a standby (see the standby tests).
    let line = second.wait_for_log("standing by", WAIT).await?;
    assert!(line.contains("conflict"), "{line}");
    assert!(line.contains("already connected"), "{line}");

    let unknown = Connector::start_for(
        &prosody,
        &[
            ("COMPONENT_POST_URL", &bot.url()),
            ("COMPONENT_JID", "nobody.localhost"),
        ],
    )
    .await?;
    let line = unknown
        .wait_for_log("component handshake rejected", WAIT)
        .await?;
    assert!(line.contains("host-unknown"), "{line}");
    Ok(())
}

#[tokio::test]
async fn idle_link_stays_up_with_keepalive_pings() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(
        &prosody,
        &bot.url(),
        &[
            ("COMPONENT_PING_INTERVAL", "0.3"),
            ("RUST_LOG", "info,xmpp_lambda_component::link=trace"),
        ],
    )
    .await?;
    // Read timeout is two intervals (0.6 s): ten answered pings are three
    // seconds of silence from users, in which an unpinged link would have
    // been declared dead several times over.
    connector
        .wait_for_log_count("keepalive answered", 10, WAIT)
        .await?;
    let mut alice = login(&prosody, "alice").await?;
    assert_eq!(
        ask(&mut alice, &echo_jid(&prosody), "awake").await?,
        "Did you say awake?"
    );
    assert_link_held(&connector);
    Ok(())
}

#[tokio::test]
async fn graceful_shutdown_delivers_in_flight_replies_and_exits_zero() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let mut connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = echo_jid(&prosody);

    alice.send_message(&echo, "slow 1500").await?;
    bot.wait_for_requests(1, WAIT).await?;
    connector.terminate();
    let reply = alice.expect_message("in-flight reply", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say slow 1500?"));
    let status = connector.wait_exit(WAIT).await?;
    assert!(status.success(), "exit status {status}");
    connector
        .wait_for_log("component link closed", WAIT)
        .await?;

    // The component is gone: the server answers for it now.
    let id = alice.send_message(&echo, "hello?").await?;
    let reply = alice.expect_message("server's error", WAIT).await?;
    assert_eq!(reply.attr("id"), Some(id.as_str()));
    assert_eq!(reply.attr("type"), Some("error"));
    assert!(alice.recv_message(QUIET).await.is_none());
    Ok(())
}

#[tokio::test]
async fn start_up_errors_name_the_option_and_exit_2() -> Result<()> {
    let mut missing = Connector::start(&[("COMPONENT_JID", "bot.localhost")]).await?;
    let status = missing.wait_exit(WAIT).await?;
    assert_eq!(status.code(), Some(2));
    let line = missing.wait_for_log("COMPONENT_SECRET", WAIT).await?;
    assert_eq!(
        line,
        "xmpp-lambda-connector: COMPONENT_SECRET is required: the XEP-0114 shared secret"
    );
    Ok(())
}

/// The core cases against ejabberd: echo, an error row, presence, IQs and a
/// hostile stanza, on one server to keep the suite fast.
#[tokio::test]
async fn core_cases_against_ejabberd() -> Result<()> {
    let ejabberd = Ejabberd::start().await?;
    let bot = scripted_bot().await?;
    let connector = connector(
        &ejabberd,
        &bot.url(),
        &[
            ("COMPONENT_PING_INTERVAL", "0.5"),
            ("RUST_LOG", "info,xmpp_lambda_component::link=trace"),
        ],
    )
    .await?;
    let mut alice = login(&ejabberd, "alice").await?;
    let echo = echo_jid(&ejabberd);

    assert_eq!(ask(&mut alice, &echo, "hello").await?, "Did you say hello?");
    let id = alice.send_message(&echo, "status 404").await?;
    let reply = alice.expect_message("404", WAIT).await?;
    assert_stanza_error(&reply, &id, "cancel", "item-not-found", None);

    alice
        .send(&format!(
            "<message to='{echo}' type='bogus' id='h1'><body>bogus</body></message>"
        ))
        .await?;
    let bad = json!({ "from": "mallory@localhost", "body": "spoof" });
    let id = alice.send_message(&echo, &format!("reply {bad}")).await?;
    let reply = alice
        .recv_until(WAIT, |s| s.attr("id") == Some(id.as_str()))
        .await
        .ok_or("no error for a spoofed reply")?;
    assert_stanza_error(
        &reply,
        &id,
        "cancel",
        "internal-server-error",
        Some("The bot sent a reply with an invalid address"),
    );

    iq_round(&mut alice, &ejabberd).await?;
    presence_round(&mut alice, &echo).await?;
    assert_eq!(ask(&mut alice, &echo, "still").await?, "Did you say still?");
    // Keepalive pings make the round trip through ejabberd too.
    connector.wait_for_log("keepalive answered", WAIT).await?;
    assert_link_held(&connector);
    Ok(())
}

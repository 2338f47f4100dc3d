//! Live conversations (DESIGN §10) end to end: a real Prosody, the
//! connector, a real HTTP bot and real XMPP clients.

use std::time::Duration;

use minidom::Element;
use tokio::time::Instant;
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Prosody, Result, XmppClient, XmppServer, body_of,
    echo_reply, login,
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

const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
const RECEIPTS: &str = "urn:xmpp:receipts";
const MARKERS: &str = "urn:xmpp:chat-markers:0";
const OOB: &str = "jabber:x:oob";

/// A bot scripted by the body it gets: `slow MS` echoes after MS
/// milliseconds, `quiet MS` answers 204 after MS, `status N` answers N,
/// `reply JSON` answers that JSON; anything else is echoed.
async fn scripted_bot() -> Result<BotServer> {
    BotServer::start(|request: BotRequest| async move {
        let body = request.json["body"].as_str().unwrap_or_default().to_owned();
        let ms = |text: &str| Duration::from_millis(text.parse().unwrap_or(0));
        if let Some(delay) = body.strip_prefix("slow ") {
            return echo_reply(&request.json).with_delay(ms(delay));
        }
        if let Some(delay) = body.strip_prefix("quiet ") {
            return BotReply::status(204).with_delay(ms(delay));
        }
        if let Some(status) = body.strip_prefix("status ") {
            return BotReply::status(status.parse().unwrap_or(500));
        }
        if let Some(reply) = body.strip_prefix("reply ") {
            return BotReply::raw(200, "application/json", reply.to_owned());
        }
        echo_reply(&request.json)
    })
    .await
}

/// A message as a client that shows chat states, asks for receipts and
/// marks messages sends it (`chat_state`: whether it carries `<active/>`).
fn message_xml(to: &str, id: &str, body: &str, chat_state: bool) -> String {
    let state = if chat_state {
        format!("<active xmlns='{CHAT_STATES}'/>")
    } else {
        String::new()
    };
    format!(
        "<message to='{to}' type='chat' id='{id}'><body>{}</body>{state}\
         <request xmlns='{RECEIPTS}'/><markable xmlns='{MARKERS}'/></message>",
        xmpp_lambda_tests::escape_xml(body)
    )
}

/// Every message alice gets within `within`, and when each came.
async fn messages_for(alice: &mut XmppClient, within: Duration) -> Vec<(Element, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    while let Some(message) = alice
        .recv_message(within.saturating_sub(started.elapsed()))
        .await
    {
        got.push((message, started.elapsed()));
    }
    got
}

fn has(message: &Element, name: &str, ns: &str) -> bool {
    message.get_child(name, ns).is_some()
}

fn marked_id<'m>(message: &'m Element, name: &str, ns: &str) -> Option<&'m str> {
    message.get_child(name, ns).and_then(|mark| mark.attr("id"))
}

#[tokio::test]
async fn a_slow_bot_is_seen_typing_and_its_reply_ends_it() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = format!("echo@{}", prosody.component_domain());

    alice
        .send(&message_xml(&to, "slow1", "slow 2500", true))
        .await?;
    let got = messages_for(&mut alice, Duration::from_secs(4)).await;
    let composing = got
        .iter()
        .find(|(message, _)| has(message, "composing", CHAT_STATES))
        .ok_or_else(|| format!("no <composing/>: {got:?}"))?;
    assert!(
        composing.1 >= Duration::from_millis(300) && composing.1 <= Duration::from_millis(1600),
        "<composing/> after {:?}",
        composing.1
    );
    assert!(body_of(&composing.0).is_none(), "a chat state alone");
    let reply = got
        .iter()
        .find(|(message, _)| body_of(message).is_some())
        .ok_or("no reply")?;
    assert_eq!(body_of(&reply.0).as_deref(), Some("Did you say slow 2500?"));
    assert!(
        has(&reply.0, "active", CHAT_STATES),
        "the reply ends typing: {:?}",
        reply.0
    );
    assert!(reply.1 > composing.1);
    // The bot had it and answered: a receipt and a displayed marker, by id.
    let receipt = got
        .iter()
        .find_map(|(m, _)| marked_id(m, "received", RECEIPTS));
    assert_eq!(receipt, Some("slow1"));
    let marker = got
        .iter()
        .find_map(|(m, _)| marked_id(m, "displayed", MARKERS));
    assert_eq!(marker, Some("slow1"));

    // A fast bot: no typing, but still the receipt and the marker.
    alice.send(&message_xml(&to, "fast1", "hi", true)).await?;
    let got = messages_for(&mut alice, Duration::from_secs(2)).await;
    assert!(
        !got.iter().any(|(m, _)| has(m, "composing", CHAT_STATES)),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|(m, _)| marked_id(m, "received", RECEIPTS) == Some("fast1"))
    );

    // A client that sent no chat state is never shown one.
    alice
        .send(&message_xml(&to, "plain1", "slow 1500", false))
        .await?;
    let got = messages_for(&mut alice, Duration::from_secs(3)).await;
    assert!(
        !got.iter()
            .any(|(m, _)| m.children().any(|c| c.has_ns(CHAT_STATES))),
        "{got:?}"
    );
    assert!(
        got.iter().any(|(m, _)| body_of(m).is_some()),
        "the reply came"
    );
    Ok(())
}

#[tokio::test]
async fn typing_ends_with_a_lone_active_and_errors_get_no_receipt() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = format!("echo@{}", prosody.component_domain());

    // 204 after 2 s: typing, then a standalone <active/>.
    alice
        .send(&message_xml(&to, "q1", "quiet 2000", true))
        .await?;
    let got = messages_for(&mut alice, Duration::from_secs(4)).await;
    let states: Vec<&str> = got
        .iter()
        .filter_map(|(m, _)| {
            m.children()
                .find(|c| c.has_ns(CHAT_STATES))
                .map(Element::name)
        })
        .collect();
    assert_eq!(states, vec!["composing", "active"], "{got:?}");
    assert!(
        got.iter().all(|(m, _)| body_of(m).is_none()),
        "no reply: {got:?}"
    );
    assert!(
        got.iter()
            .any(|(m, _)| marked_id(m, "received", RECEIPTS) == Some("q1"))
    );

    // A 500: the error, and neither receipt nor marker.
    alice
        .send(&message_xml(&to, "e1", "status 500", true))
        .await?;
    let got = messages_for(&mut alice, Duration::from_secs(2)).await;
    assert!(
        got.iter()
            .any(|(m, _)| m.attr("type") == Some("error") && m.attr("id") == Some("e1"))
    );
    assert!(
        !got.iter()
            .any(|(m, _)| has(m, "received", RECEIPTS) || has(m, "displayed", MARKERS))
    );
    Ok(())
}

#[tokio::test]
async fn several_replies_in_order_all_or_nothing_and_attachments() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = scripted_bot().await?;
    let _connector = connector(&prosody, &bot.url(), &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = format!("echo@{}", prosody.component_domain());

    let three = r#"reply {"replies":[{"body":"one"},{"body":"two"},{"body":"three"}]}"#;
    alice.send_message(&to, three).await?;
    let mut ids = Vec::new();
    for expected in ["one", "two", "three"] {
        let message = alice.expect_message(expected, WAIT).await?;
        assert_eq!(body_of(&message).as_deref(), Some(expected));
        ids.push(message.attr("id").unwrap_or_default().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three ids");

    // One bad reply among two: nothing of it is sent, and the sender gets
    // internal-server-error.
    let bad = r#"reply {"replies":[{"body":"fine"},{"body":true}]}"#;
    let id = alice.send_message(&to, bad).await?;
    let answer = alice.expect_message("the error", WAIT).await?;
    assert_eq!(answer.attr("type"), Some("error"), "{answer:?}");
    assert_eq!(answer.attr("id"), Some(id.as_str()));
    assert!(format!("{answer:?}").contains("internal-server-error"));

    // A reply with only a URL: the body is the URL, with XEP-0066's element.
    let url = "https://files.example.com/chart.png";
    alice
        .send_message(&to, &format!(r#"reply {{"url":"{url}"}}"#))
        .await?;
    let message = alice.expect_message("the attachment", WAIT).await?;
    assert_eq!(body_of(&message).as_deref(), Some(url));
    let oob = message.get_child("x", OOB).ok_or("no OOB element")?;
    assert_eq!(
        oob.children()
            .find(|c| c.name() == "url")
            .map(Element::text)
            .as_deref(),
        Some(url)
    );
    Ok(())
}

/// What a client that shows typing sends per message, and what reaches the
/// bot of it with and without `COMPONENT_MESSAGES_WITHOUT_BODY=skip`:
/// slixmpp with its own chat-state, receipt and marker plugins
/// (tests/chatty_client.py). Prints a `chat states:` line for the book (docs/src/protocol.md).
#[tokio::test]
async fn a_client_that_shows_typing_costs_one_request_per_message() -> Result<()> {
    const MESSAGES: usize = 5;
    let prosody = Prosody::start().await?;
    let to = format!("echo@{}", prosody.component_domain());
    let mut requests = Vec::new();
    // Messages with a body the person got back.
    let mut answers = Vec::new();
    let mut sent = 0;
    for policy in ["skip", "forward"] {
        let bot = BotServer::start(|request: BotRequest| async move { echo_reply(&request.json) })
            .await?;
        let connector = connector(
            &prosody,
            &bot.url(),
            &[("COMPONENT_MESSAGES_WITHOUT_BODY", policy)],
        )
        .await?;
        let user = format!("chatty-{policy}");
        let jid = prosody.register(&user, "pw").await?;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("chatty_client.py");
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("/usr/bin/python3")
                .arg(script)
                .args(["--host", "127.0.0.1", "--port"])
                .arg(prosody.c2s_port().to_string())
                .args(["--jid", &jid, "--password", "pw", "--to", &to, "--messages"])
                .arg(MESSAGES.to_string())
                .kill_on_drop(true)
                .output(),
        )
        .await??;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report: serde_json::Value = serde_json::from_str(stdout.trim())
            .map_err(|e| format!("{e}: {stdout} {}", String::from_utf8_lossy(&output.stderr)))?;
        sent = report["sent"].as_u64().unwrap_or_default() as usize;
        answers.push(report["replies"].as_u64().unwrap_or_default() as usize);
        requests.push(bot.requests().len());
        connector.terminate();
    }
    eprintln!(
        "chat states: a client that shows typing sent {sent} messages for {MESSAGES} it wrote; \
         the bot got {} requests with skip, {} with forward, and the person got {} and {} \
         answers back",
        requests[0], requests[1], answers[0], answers[1]
    );
    assert_eq!(requests[0], MESSAGES, "one request per message written");
    assert_eq!(answers[0], MESSAGES, "one answer per message written");
    assert_eq!(requests[1], sent, "every stanza a request when forwarded");
    assert!(sent > MESSAGES, "the client sent chat states");
    Ok(())
}

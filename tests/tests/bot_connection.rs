//! The http transport when the bot cannot be reached, end to end: Prosody,
//! the connector binary, a slixmpp client, and a bot on a raw socket whose
//! every connection and request is counted.
//!
//! A connection to the bot that fails before the request was sent is tried
//! again within `COMPONENT_POST_TIMEOUT`; a request that may have reached
//! the bot is never sent twice.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use xmpp_lambda_tests::{
    Connector, Prosody, RawAnswer, RawBot, Result, XmppServer, assert_connection_failure, body_of,
    echo_json, free_port, json_answer, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(700);
const LINK_UP: &str = "component link established";
/// What the connector logs before it connects again.
const RETRYING: &str = "cannot connect to the bot; retrying";
/// The connector's retries are logged at debug level.
const RETRY_LOGS: &str = "info,xmpp_lambda_connector::transport=debug";

/// Answers 200 with the echo bot's JSON.
fn echo(request: &serde_json::Value) -> RawAnswer {
    RawAnswer::whole(json_answer(&[], &echo_json(request)))
}

/// The echo in chunked transfer coding: two chunks (one with an extension)
/// and a trailer, each written on its own.
fn chunked_echo(request: &serde_json::Value) -> RawAnswer {
    let reply = echo_json(request);
    let (first, second) = reply.split_at(reply.len() / 2);
    RawAnswer::Pieces(
        [
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
             transfer-encoding: chunked\r\n\r\n"
                .to_owned(),
            format!("{:x};part=1\r\n{first}\r\n", first.len()),
            format!("{:x}\r\n{second}\r\n", second.len()),
            "0\r\nx-trailer: done\r\n\r\n".to_owned(),
        ]
        .map(String::into_bytes)
        .into(),
    )
}

/// The connector linked to `prosody`, posting to `url`, once its link is up.
async fn connector(prosody: &Prosody, url: &str, timeout: &str) -> Result<Connector> {
    let connector = Connector::start_for(
        prosody,
        &[
            ("COMPONENT_POST_URL", url),
            ("COMPONENT_POST_TIMEOUT", timeout),
            ("RUST_LOG", RETRY_LOGS),
        ],
    )
    .await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

/// How many connection attempts the connector's last give-up line names.
fn attempts_logged(connector: &Connector) -> Option<usize> {
    let line = connector
        .logs()
        .into_iter()
        .rev()
        .find(|line| line.contains("no response from the bot"))?;
    let value = line.split("attempts=").nth(1)?;
    value.split(' ').next()?.parse().ok()
}

#[tokio::test]
async fn a_bot_that_starts_a_second_late_still_answers() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let port = free_port();
    let connector = connector(&prosody, &format!("http://127.0.0.1:{port}/bot"), "10").await?;

    let sent = Instant::now();
    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "hello")
        .await?;
    // The connector found nothing listening and is trying again.
    connector.wait_for_log(RETRYING, WAIT).await?;
    tokio::time::sleep_until(sent + Duration::from_secs(1)).await;
    let bot = RawBot::serve(TcpListener::bind(("127.0.0.1", port)).await?, echo);

    let reply = alice.expect_message("the late bot's answer", WAIT).await?;
    assert_eq!(reply.attr("type"), Some("chat"), "{reply:?}");
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say hello?"));
    assert_eq!(bot.requests(), 1, "the bot got the request once");
    assert!(alice.recv_message(QUIET).await.is_none(), "one answer only");
    Ok(())
}

#[tokio::test]
async fn a_chunked_answer_is_read_whole_and_its_connection_kept() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = RawBot::start(chunked_echo).await?;
    let _connector = connector(&prosody, bot.url(), "10").await?;

    for text in ["one", "two", "three"] {
        alice
            .send_message(&format!("echo@{}", prosody.component_domain()), text)
            .await?;
        let reply = alice.expect_message("the chunked answer", WAIT).await?;
        assert_eq!(
            body_of(&reply).as_deref(),
            Some(format!("Did you say {text}?").as_str())
        );
    }
    assert_eq!(bot.requests(), 3);
    assert_eq!(bot.connections(), 1, "the connection carried all three");
    Ok(())
}

#[tokio::test]
async fn a_request_the_bot_may_have_seen_is_never_sent_again() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = RawBot::start(|_| RawAnswer::HangUp).await?;
    let connector = connector(&prosody, bot.url(), "5").await?;

    let id = alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "once")
        .await?;
    let reply = alice.expect_message("no response", WAIT).await?;
    assert_connection_failure(&reply, &id);
    tokio::time::sleep(QUIET).await;
    assert_eq!(bot.requests(), 1, "the request was sent again");
    assert_eq!(bot.connections(), 1);
    assert_eq!(
        attempts_logged(&connector),
        Some(1),
        "{:?}",
        connector.logs()
    );
    Ok(())
}

#[tokio::test]
async fn a_bot_down_longer_than_the_timeout_gets_connection_failure_in_time() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    // Nothing listens on this port.
    let url = format!("http://127.0.0.1:{}/bot", free_port());
    let connector = connector(&prosody, &url, "1.5").await?;

    let started = Instant::now();
    let id = alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "anyone?")
        .await?;
    let reply = alice.expect_message("connection failure", WAIT).await?;
    let waited = started.elapsed();
    assert_connection_failure(&reply, &id);
    // The connector kept trying for most of its 1.5 s, and gave up in time
    // (the rest is Prosody and the client).
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_millis(2000),
        "the timeout is 1.5 s, the error came after {waited:?}"
    );
    let attempts = attempts_logged(&connector).ok_or("no give-up line")?;
    assert!(attempts >= 3, "only {attempts} connection attempts");
    Ok(())
}

#[tokio::test]
async fn a_dead_bot_is_known_within_the_connect_retry_window_not_the_timeout() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let url = format!("http://127.0.0.1:{}/bot", free_port());
    // The default window (3 s), then a shorter one, under a 30 s timeout.
    for (window, least, most) in [(None, 2.0, 4.5), (Some("1"), 0.2, 2.2)] {
        let mut env = vec![
            ("COMPONENT_POST_URL", url.as_str()),
            ("COMPONENT_POST_TIMEOUT", "30"),
            ("RUST_LOG", RETRY_LOGS),
        ];
        if let Some(window) = window {
            env.push(("COMPONENT_POST_CONNECT_RETRY", window));
        }
        let connector = Connector::start_for(&prosody, &env).await?;
        connector.wait_for_log(LINK_UP, WAIT).await?;
        let started = Instant::now();
        let id = alice
            .send_message(&format!("echo@{}", prosody.component_domain()), "anyone?")
            .await?;
        let reply = alice.expect_message("connection failure", WAIT).await?;
        let waited = started.elapsed().as_secs_f64();
        assert_connection_failure(&reply, &id);
        assert!(
            (least..most).contains(&waited),
            "window {window:?}: the error came after {waited:.2} s"
        );
        let attempts = attempts_logged(&connector).ok_or("no give-up line")?;
        assert!(attempts >= 3, "only {attempts} connection attempts");
        connector.terminate();
    }
    Ok(())
}

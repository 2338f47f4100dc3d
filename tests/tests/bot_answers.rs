//! Bot answers whose HTTP/1.1 framing is odd or wrong, end to end:
//! Prosody, the connector binary, a slixmpp client and a bot on a raw
//! socket that writes exact bytes and counts its connections.
//!
//! The connector reads answers strictly (RFC 9112): an answer framed two
//! ways is read as chunked and its connection never used again; empty
//! elements of `Transfer-Encoding` count for nothing; an answer it cannot
//! read gets the user the no-response error at once, the reason goes to
//! the log, and the next message is answered on a new connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use xmpp_lambda_tests::{
    Connector, Prosody, RawAnswer, RawBot, Result, XmppClient, XmppServer,
    assert_connection_failure, body_of, echo_json, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
/// The bot timeout the connectors here get: an answer the connector waited
/// on until the timeout would show.
const TIMEOUT: &str = "10";
/// How soon a reply must come when nothing makes the connector wait (the
/// answers are written at once).
const PROMPT: Duration = Duration::from_secs(2);

/// The connector posting to `bot`, once linked to `prosody`.
async fn connector_for(prosody: &Prosody, bot: &RawBot) -> Result<Connector> {
    Connector::linked_to(
        prosody,
        &[
            ("COMPONENT_POST_URL", bot.url()),
            ("COMPONENT_POST_TIMEOUT", TIMEOUT),
        ],
    )
    .await
}

/// The echo in one chunk, under `head` (status line and fields, without
/// the empty line).
fn chunked(head: &str, request: &Value) -> RawAnswer {
    let json = echo_json(request);
    RawAnswer::whole(format!(
        "{head}\r\n\r\n{:x}\r\n{json}\r\n0\r\n\r\n",
        json.len()
    ))
}

/// Sends each text to the echo bot and expects its echo promptly.
async fn expect_echoes(alice: &mut XmppClient, prosody: &Prosody, texts: &[&str]) -> Result<()> {
    let echo = format!("echo@{}", prosody.component_domain());
    for text in texts {
        let sent = Instant::now();
        alice.send_message(&echo, text).await?;
        let reply = alice.expect_message(text, WAIT).await?;
        assert_eq!(
            body_of(&reply).as_deref(),
            Some(format!("Did you say {text}?").as_str()),
            "{reply:?}"
        );
        let waited = sent.elapsed();
        assert!(waited < PROMPT, "{text}: the reply took {waited:?}");
    }
    Ok(())
}

/// Chunked and a Content-Length (which here would cut the body short):
/// the chunked coding wins, the user gets the whole echo, and each answer's
/// connection is closed after it (RFC 9112 §6.3).
#[tokio::test]
async fn an_answer_with_both_framings_is_read_as_chunked_on_a_connection_never_reused() -> Result<()>
{
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = RawBot::start(|request| {
        chunked(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\
             transfer-encoding: chunked",
            request,
        )
    })
    .await?;
    let _connector = connector_for(&prosody, &bot).await?;

    expect_echoes(&mut alice, &prosody, &["one", "two", "three"]).await?;
    assert_eq!(bot.requests(), 3);
    assert_eq!(bot.connections(), 3, "a new connection for each message");
    Ok(())
}

/// A chunked HTTP/1.0 answer, even one that asks to keep the connection:
/// read, then the connection closed (RFC 9112 §6.1).
#[tokio::test]
async fn a_chunked_http_1_0_answer_is_read_then_its_connection_closed() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = RawBot::start(|request| {
        chunked(
            "HTTP/1.0 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n\
             transfer-encoding: chunked",
            request,
        )
    })
    .await?;
    let _connector = connector_for(&prosody, &bot).await?;

    expect_echoes(&mut alice, &prosody, &["one", "two"]).await?;
    assert_eq!(bot.connections(), 2, "a new connection for each message");
    Ok(())
}

/// `Transfer-Encoding: chunked,` is chunked: on a kept-alive connection
/// the reply comes at once (it used to wait for the close that never came,
/// then give the user remote-server-timeout), and the connection carries
/// every message.
#[tokio::test]
async fn an_empty_transfer_coding_element_costs_nothing() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = RawBot::start(|request| {
        chunked(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked,",
            request,
        )
    })
    .await?;
    let _connector = connector_for(&prosody, &bot).await?;

    expect_echoes(&mut alice, &prosody, &["one", "two", "three"]).await?;
    assert_eq!(bot.connections(), 1, "the connection carried all three");
    Ok(())
}

/// An answer the connector will not read (a transfer coding it never asked
/// for): the user gets the no-response error at once, the log says why,
/// the link stays up and the next message is answered on a new connection.
#[tokio::test]
async fn an_unreadable_answer_fails_at_once_and_the_next_is_answered() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let answered = Arc::new(AtomicUsize::new(0));
    let bot = RawBot::start({
        let answered = Arc::clone(&answered);
        move |request| {
            let head = if answered.fetch_add(1, Ordering::SeqCst) == 0 {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 transfer-encoding: gzip, chunked"
            } else {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 transfer-encoding: chunked"
            };
            chunked(head, request)
        }
    })
    .await?;
    let connector = connector_for(&prosody, &bot).await?;

    let sent = Instant::now();
    let id = alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "zipped")
        .await?;
    let reply = alice.expect_message("no response", WAIT).await?;
    assert_connection_failure(&reply, &id);
    assert!(sent.elapsed() < PROMPT, "took {:?}", sent.elapsed());
    let line = connector
        .wait_for_log("no response from the bot", WAIT)
        .await?;
    assert!(
        line.contains(
            "the bot's answer uses the transfer coding \"gzip\", which was not asked for"
        ),
        "{line}"
    );

    expect_echoes(&mut alice, &prosody, &["plain"]).await?;
    assert_eq!(
        bot.connections(),
        2,
        "the refused answer's connection was dropped"
    );
    let links = connector
        .logs()
        .iter()
        .filter(|line| line.contains("component link established"))
        .count();
    assert_eq!(links, 1, "the link stayed up");
    Ok(())
}

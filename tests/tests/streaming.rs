//! Streamed replies (DESIGN §11) end to end: a real Prosody, the connector,
//! a bot that answers with a chunked `application/x-ndjson` stream, and a
//! real XMPP client that sees each message as its line completes.

use std::time::Duration;

use minidom::Element;
use serde_json::json;
use tokio::time::Instant;
use xmpp_lambda_tests::{
    Connector, Prosody, RawBot, Result, XmppClient, XmppServer, body_of, login, ndjson_answer,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(15);
const LINK_UP: &str = "component link established";
const CORRECTION_NS: &str = "urn:xmpp:message-correct:0";

/// Prosody, a connector posting to `bot`, and alice logged in.
async fn rig(bot: &RawBot, env: &[(&str, &str)]) -> Result<(Prosody, Connector, XmppClient)> {
    let prosody = Prosody::start().await?;
    let mut all = vec![("COMPONENT_POST_URL", bot.url())];
    all.extend_from_slice(env);
    let connector = Connector::start_for(&prosody, &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let alice = login(&prosody, "alice").await?;
    Ok((prosody, connector, alice))
}

fn line(body: &str) -> String {
    json!({ "body": body }).to_string()
}

fn correction(body: &str) -> String {
    json!({ "body": body, "replace": true }).to_string()
}

/// The next message within `WAIT`, and when it came.
async fn next_message(alice: &mut XmppClient, what: &str) -> Result<(Element, Instant)> {
    let message = alice.expect_message(what, WAIT).await?;
    Ok((message, Instant::now()))
}

#[tokio::test]
async fn each_line_arrives_as_it_is_written() -> Result<()> {
    let gap = Duration::from_millis(1500);
    let bot = RawBot::start(move |_| {
        ndjson_answer(&[
            (Duration::ZERO, line("one")),
            (gap, line("two")),
            (gap, line("three")),
        ])
    })
    .await?;
    let (prosody, connector, mut alice) = rig(&bot, &[]).await?;
    let sent = Instant::now();
    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "count")
        .await?;
    let mut ids = Vec::new();
    for (n, expected) in ["one", "two", "three"].into_iter().enumerate() {
        let (message, at) = next_message(&mut alice, expected).await?;
        assert_eq!(body_of(&message).as_deref(), Some(expected));
        let after = at - sent;
        if n == 0 {
            assert!(
                after < Duration::from_millis(1200),
                "the first came after {after:?}"
            );
        } else {
            // Not all at the end: each when its line was written.
            let earliest = gap * n as u32 - Duration::from_millis(300);
            assert!(after >= earliest, "message {n} came after {after:?}");
        }
        ids.push(message.attr("id").unwrap_or_default().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct ids: {ids:?}");
    assert_eq!(bot.requests(), 1);
    // The stream's connection was read to its end and is reused.
    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "again")
        .await?;
    next_message(&mut alice, "a second stream").await?;
    assert_eq!(bot.connections(), 1, "one connection for both streams");
    assert!(
        !connector
            .logs()
            .iter()
            .any(|l| l.contains("component link lost"))
    );
    Ok(())
}

#[tokio::test]
async fn corrections_grow_one_message_and_are_coalesced() -> Result<()> {
    // Ten growing lines 0.3 s apart, each but the first a correction.
    let words = [
        "Streams", "let", "a", "bot", "answer", "while", "it", "is", "still", "writing.",
    ];
    let lines: Vec<(Duration, String)> = (0..words.len())
        .map(|n| {
            let text = words[..=n].join(" ");
            let delay = if n == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(300)
            };
            (
                delay,
                if n == 0 {
                    line(&text)
                } else {
                    correction(&text)
                },
            )
        })
        .collect();
    let bot = RawBot::start(move |_| ndjson_answer(&lines)).await?;
    let (prosody, _connector, mut alice) = rig(&bot, &[]).await?;
    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "write")
        .await?;
    let (first, _) = next_message(&mut alice, "the first words").await?;
    assert_eq!(body_of(&first).as_deref(), Some("Streams"));
    assert!(first.get_child("replace", CORRECTION_NS).is_none());
    let first_id = first.attr("id").ok_or("no id")?.to_owned();
    let full = words.join(" ");
    let mut corrections = Vec::new();
    loop {
        let (message, _) = next_message(&mut alice, "a correction").await?;
        let replace = message
            .get_child("replace", CORRECTION_NS)
            .ok_or_else(|| format!("not a correction: {message:?}"))?;
        assert_eq!(
            replace.attr("id"),
            Some(first_id.as_str()),
            "names the first id"
        );
        assert_ne!(
            message.attr("id"),
            Some(first_id.as_str()),
            "a fresh id of its own"
        );
        let body = body_of(&message).unwrap_or_default();
        corrections.push(body.clone());
        if body == full {
            break;
        }
    }
    // 2.7 s of corrections at most one a second: three or four, never nine.
    assert!(
        (1..=6).contains(&corrections.len()),
        "{} corrections: {corrections:?}",
        corrections.len()
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_line_or_a_stall_stops_the_stream_with_an_error_and_keeps_the_link() -> Result<()> {
    let bot = RawBot::start(|request| {
        let stall = request["body"].as_str() == Some("stall");
        let second = if stall {
            // Never comes within the 1 s idle timeout.
            (Duration::from_secs(5), line("too late"))
        } else {
            (Duration::from_millis(200), "{not json".to_owned())
        };
        ndjson_answer(&[(Duration::ZERO, line("good")), second])
    })
    .await?;
    let (prosody, connector, mut alice) =
        rig(&bot, &[("COMPONENT_STREAM_IDLE_TIMEOUT", "1")]).await?;
    let to = format!("echo@{}", prosody.component_domain());
    for (ask, condition) in [
        ("bad", "internal-server-error"),
        ("stall", "remote-server-timeout"),
    ] {
        let id = alice.send_message(&to, ask).await?;
        let (good, _) = next_message(&mut alice, "the good line").await?;
        assert_eq!(body_of(&good).as_deref(), Some("good"));
        let first_came = Instant::now();
        let (error, at) = next_message(&mut alice, "the error").await?;
        assert_eq!(error.attr("type"), Some("error"), "{error:?}");
        assert_eq!(error.attr("id"), Some(id.as_str()));
        assert!(format!("{error:?}").contains(condition), "{ask}: {error:?}");
        if ask == "stall" {
            let waited = at - first_came;
            assert!(
                waited >= Duration::from_millis(800) && waited < Duration::from_millis(2000),
                "the stall was noticed after {waited:?}"
            );
        }
    }
    assert!(
        !connector
            .logs()
            .iter()
            .any(|l| l.contains("component link lost"))
    );
    connector.wait_for_log("bot's stream stopped", WAIT).await?;
    Ok(())
}

//! The connector's memory and CPU budget per stanza (DESIGN §12), proven
//! through a real Prosody: a real client sends the worst stanzas it can
//! construct for each dimension of what a stanza costs to read (long
//! namespaces inherited by many elements, many namespaces, many attributes,
//! deep nesting, long entity runs, many character references, markup
//! characters that grow when escaped again) within Prosody's own limit of
//! 256 KiB per client stanza. Each one is either handed to the bot or
//! answered with `modify/policy-violation`, the link stays up, the
//! connector's peak memory stays under [`PEAK_RSS_LIMIT_KIB`], and no stanza
//! costs its CPU more than [`CPU_RATIO_LIMIT`] times a plain message of the
//! same size (a lookup that scans, say, would make one cost hundreds of
//! times as much). Each case prints a `budget:` line for the book (docs/src/reliability.md).

use std::time::Duration;

use serde_json::json;
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Prosody, RawAnswer, RawBot, Result, XmppClient,
    XmppServer, body_of, login, process_memory,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(30);
/// The peak resident memory the connector may reach, whatever it is sent.
const PEAK_RSS_LIMIT_KIB: u64 = 64 * 1024;
/// The most CPU a worst stanza may cost, as a multiple of a plain message
/// with a body of the same size.
const CPU_RATIO_LIMIT: f64 = 8.0;
/// Prosody's default limit for a stanza from a client.
const CLIENT_STANZA_LIMIT: usize = 256 * 1024;

/// What the worst stanza of one dimension should come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The bot gets it and answers.
    Answered,
    /// The sender gets `modify/policy-violation`.
    TooLarge,
}

/// One worst case: its name, the stanza's payload (what goes inside the
/// message after its body), and what it should come to.
struct Case {
    name: &'static str,
    body: String,
    payload: String,
    outcome: Outcome,
}

fn cases() -> Vec<Case> {
    let long_ns = |bytes: usize| format!("urn:{}", "n".repeat(bytes));
    vec![
        Case {
            name: "long namespace × many elements",
            body: "x".into(),
            payload: format!(
                "<x xmlns='{}'>{}</x>",
                long_ns(200 * 1024),
                "<a/>".repeat(4000)
            ),
            outcome: Outcome::TooLarge,
        },
        Case {
            name: "many namespaces, each an element",
            body: "x".into(),
            payload: (0..3000)
                .map(|n| format!("<p{n}:a xmlns:p{n}='urn:{n}:{}'/>", "n".repeat(40)))
                .collect(),
            outcome: Outcome::Answered,
        },
        // Prosody declares an attribute's namespace again on each element
        // it writes (`<a xmlns:ns0='urn:…' ns0:v='1'/>`).
        Case {
            name: "many prefixed attributes",
            body: "x".into(),
            payload: format!(
                "<x xmlns:p='urn:{}'>{}</x>",
                "p".repeat(100),
                (0..2500)
                    .map(|n| format!("<a p:v='{n}'/>"))
                    .collect::<String>()
            ),
            outcome: Outcome::Answered,
        },
        Case {
            name: "a long prefix × many prefixed attributes (20 MB from Prosody)",
            body: "x".into(),
            payload: format!(
                "<x xmlns:p='{}'>{}</x>",
                long_ns(10 * 1024),
                (0..2000)
                    .map(|n| format!("<a p:v='{n}'/>"))
                    .collect::<String>()
            ),
            outcome: Outcome::TooLarge,
        },
        Case {
            name: "many attributes",
            body: "x".into(),
            payload: format!(
                "<x xmlns='urn:x'{}/>",
                (0..8100).map(|n| format!(" a{n}='v'")).collect::<String>()
            ),
            outcome: Outcome::Answered,
        },
        Case {
            name: "more elements and attributes than the read limit",
            body: "x".into(),
            payload: format!("<x xmlns='urn:x'>{}</x>", "<a/>".repeat(20_000)),
            outcome: Outcome::TooLarge,
        },
        Case {
            name: "deep nesting",
            body: "x".into(),
            payload: format!(
                "{}{}",
                (0..2000)
                    .map(|n| format!("<d{n} xmlns='urn:d'>"))
                    .collect::<String>(),
                (0..2000)
                    .rev()
                    .map(|n| format!("</d{n}>"))
                    .collect::<String>()
            ),
            outcome: Outcome::TooLarge,
        },
        Case {
            name: "long entity runs",
            body: "&".repeat(50_000),
            payload: String::new(),
            outcome: Outcome::Answered,
        },
        Case {
            name: "many character references",
            body: "😀".repeat(60_000),
            payload: String::new(),
            outcome: Outcome::Answered,
        },
        Case {
            name: "> in a body, written back as &gt;",
            body: ">".repeat(250_000),
            payload: String::new(),
            outcome: Outcome::Answered,
        },
        Case {
            name: "' in an attribute, written back as &apos;",
            body: "x".into(),
            payload: format!("<x xmlns='urn:x' a=\"{}\"/>", "'".repeat(250_000)),
            outcome: Outcome::TooLarge,
        },
    ]
}

/// XML-escapes a body the client sends (the case decides the raw text).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;")
}

/// CPU time the process has used so far (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let schedstat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let nanos: u64 = schedstat
            .split_whitespace()
            .next()
            .ok_or("an empty schedstat")?
            .parse()?;
        total += nanos;
    }
    Ok(total as f64 / 1e9)
}

/// Sends one message and waits for what it comes to; returns what it was
/// and the connector's CPU seconds for it.
async fn send_and_measure(
    alice: &mut XmppClient,
    connector: &Connector,
    to: &str,
    id: &str,
    body: &str,
    payload: &str,
) -> Result<(Outcome, f64)> {
    let xml =
        format!("<message to='{to}' type='chat' id='{id}'><body>{body}</body>{payload}</message>");
    assert!(
        xml.len() <= CLIENT_STANZA_LIMIT,
        "{id}: {} bytes is over Prosody's client limit",
        xml.len()
    );
    let before = cpu_seconds(connector.pid())?;
    alice.send(&xml).await?;
    let answer = alice
        .recv_until(WAIT, |stanza| {
            let error = stanza.attr("type") == Some("error") && stanza.attr("id") == Some(id);
            let reply = body_of(stanza).is_some_and(|body| body.starts_with("got "));
            stanza.name() == "message" && (error || reply)
        })
        .await
        .ok_or_else(|| format!("{id}: no answer within {WAIT:?}"))?;
    let spent = cpu_seconds(connector.pid())? - before;
    let outcome = if answer.attr("type") == Some("error") {
        assert_eq!(answer.attr("id"), Some(id), "{answer:?}");
        let error = answer
            .children()
            .find(|child| child.name() == "error")
            .ok_or("an error stanza without <error/>")?;
        assert_eq!(error.attr("type"), Some("modify"), "{answer:?}");
        assert!(
            error.children().any(|c| c.name() == "policy-violation"),
            "{answer:?}"
        );
        Outcome::TooLarge
    } else {
        assert_eq!(body_of(&answer), Some(format!("got {id}")), "{answer:?}");
        Outcome::Answered
    };
    Ok((outcome, spent))
}

#[tokio::test]
async fn the_worst_stanzas_stay_within_the_memory_and_cpu_budget() -> Result<()> {
    let prosody = Prosody::start().await?;
    // Answers briefly, whatever it is sent: the cost measured is reading.
    let bot = BotServer::start(|request: BotRequest| async move {
        let id = request.json["id"].as_str().unwrap_or_default().to_owned();
        BotReply::json(json!({ "body": format!("got {id}") }))
    })
    .await?;
    let connector = Connector::start_for(&prosody, &[("COMPONENT_POST_URL", &bot.url())]).await?;
    connector
        .wait_for_log("component link established", WAIT)
        .await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = format!("echo@{}", prosody.component_domain());
    let memory = || {
        process_memory(connector.pid())
            .map(|memory| memory.peak_kib)
            .ok_or("the connector is not running")
    };
    eprintln!("budget: connector peak RSS at start {} KiB", memory()?);

    // Plain messages first, to measure what reading costs per byte.
    let mut plain_seconds = Vec::new();
    for n in 0..3 {
        let body = "b".repeat(CLIENT_STANZA_LIMIT - 200);
        let id = format!("plain{n}");
        let (outcome, seconds) =
            send_and_measure(&mut alice, &connector, &to, &id, &body, "").await?;
        assert_eq!(outcome, Outcome::Answered);
        plain_seconds.push(seconds);
    }
    plain_seconds.sort_by(f64::total_cmp);
    let plain = plain_seconds[1];
    eprintln!(
        "budget: a plain {} KiB message costs the connector {:.1} ms of CPU",
        CLIENT_STANZA_LIMIT / 1024,
        plain * 1e3
    );

    for (n, case) in cases().into_iter().enumerate() {
        let id = format!("case{n}");
        let (outcome, seconds) = send_and_measure(
            &mut alice,
            &connector,
            &to,
            &id,
            &escape(&case.body),
            &case.payload,
        )
        .await?;
        let peak = memory()?;
        eprintln!(
            "budget: {}: {:?}, {:.1} ms of CPU ({:.2}× a plain message), peak RSS {peak} KiB",
            case.name,
            outcome,
            seconds * 1e3,
            seconds / plain
        );
        assert_eq!(outcome, case.outcome, "{}", case.name);
        assert!(
            seconds <= CPU_RATIO_LIMIT * plain,
            "{}: {:.1} ms against {:.1} ms for a plain message",
            case.name,
            seconds * 1e3,
            plain * 1e3
        );
        assert!(
            peak < PEAK_RSS_LIMIT_KIB,
            "{}: peak RSS {peak} KiB",
            case.name
        );
    }
    let lost: Vec<String> = connector
        .logs()
        .into_iter()
        .filter(|line| line.contains("component link lost"))
        .collect();
    assert!(lost.is_empty(), "the link dropped: {lost:?}");
    Ok(())
}

/// Many large requests at once, to a bot that takes its time: the requests
/// in flight hold at most their memory budget together (the rest wait in
/// the link, and so in Prosody), every message is answered, and the
/// connector's peak memory stays under the same limit.
#[tokio::test]
async fn many_large_requests_at_once_stay_within_the_memory_budget() -> Result<()> {
    const CLIENTS: usize = 4;
    const EACH: usize = 10;
    let prosody = Prosody::start().await?;
    let bot = BotServer::start(|request: BotRequest| async move {
        let id = request.json["id"].as_str().unwrap_or_default().to_owned();
        BotReply::json(json!({ "body": format!("got {id}") }))
            .with_delay(Duration::from_millis(500))
    })
    .await?;
    let connector = Connector::start_for(&prosody, &[("COMPONENT_POST_URL", &bot.url())]).await?;
    connector
        .wait_for_log("component link established", WAIT)
        .await?;
    let to = format!("echo@{}", prosody.component_domain());
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        clients.push(login(&prosody, &format!("user{n}")).await?);
    }
    let body = "b".repeat(CLIENT_STANZA_LIMIT - 200);
    for (n, client) in clients.iter_mut().enumerate() {
        for m in 0..EACH {
            let xml = format!(
                "<message to='{to}' type='chat' id='c{n}m{m}'><body>{body}</body></message>"
            );
            client.send(&xml).await?;
        }
    }
    for client in &mut clients {
        for _ in 0..EACH {
            let reply = client.expect_message("a reply", WAIT).await?;
            assert!(
                body_of(&reply).is_some_and(|body| body.starts_with("got ")),
                "{reply:?}"
            );
        }
    }
    let peak = process_memory(connector.pid())
        .ok_or("the connector is not running")?
        .peak_kib;
    eprintln!(
        "budget: {} messages of {} KiB from {CLIENTS} users at once to a bot that takes 0.5 s: \
         all answered, peak RSS {peak} KiB",
        CLIENTS * EACH,
        CLIENT_STANZA_LIMIT / 1024
    );
    assert_eq!(bot.requests().len(), CLIENTS * EACH);
    assert!(peak < PEAK_RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    Ok(())
}

/// Many bots answering at once with bodies near the largest the connector
/// reads (1 MiB), each body trickling in over half a second (each message
/// to another bot address, so each is its own conversation and none waits
/// for another): answers past 64 KiB are read a few at a time, the others
/// wait (the bot's TCP holds the rest), so the connector's peak memory stays
/// under the same limit; each sender still gets an answer (here the error
/// for a reply over 64 KiB).
#[tokio::test]
async fn many_large_answers_at_once_stay_within_the_memory_budget() -> Result<()> {
    const MESSAGES: usize = 64;
    const PIECE: usize = 100 * 1024;
    let prosody = Prosody::start().await?;
    let bot = RawBot::start(|_| {
        let body = format!("{{\"body\":\"{}\"}}", "x".repeat(10 * PIECE - 11));
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let mut pieces = vec![(Duration::ZERO, head.into_bytes())];
        for chunk in body.as_bytes().chunks(PIECE) {
            pieces.push((Duration::from_millis(50), chunk.to_vec()));
        }
        RawAnswer::Paced(pieces)
    })
    .await?;
    let connector = Connector::start_for(&prosody, &[("COMPONENT_POST_URL", bot.url())]).await?;
    connector
        .wait_for_log("component link established", WAIT)
        .await?;
    let mut alice = login(&prosody, "alice").await?;
    for m in 0..MESSAGES {
        let to = format!("bot{m}@{}", prosody.component_domain());
        alice
            .send(&format!(
                "<message to='{to}' type='chat' id='b{m}'><body>{m}</body></message>"
            ))
            .await?;
    }
    for _ in 0..MESSAGES {
        let answer = alice.expect_message("an answer", WAIT).await?;
        assert_eq!(answer.attr("type"), Some("error"), "{answer:?}");
    }
    let peak = process_memory(connector.pid())
        .ok_or("the connector is not running")?
        .peak_kib;
    eprintln!(
        "budget: {MESSAGES} answers of 1000 KiB, each over 0.5 s, at once: all answered, \
         peak RSS {peak} KiB"
    );
    assert!(peak < PEAK_RSS_LIMIT_KIB, "peak RSS {peak} KiB");
    Ok(())
}

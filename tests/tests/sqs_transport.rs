//! The sqs transport end to end, all local and all real: an XMPP client,
//! Prosody, the connector with `TRANSPORT=sqs`, moto's SQS server, the
//! local SQS trigger, the function (`bootstrap`) under cargo lambda's
//! emulator, and, for `BOT=proxy`, a real HTTP bot. Everything is asserted
//! at the XMPP client, or on the queues.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Moto, Prosody, QueueConsumer, Result, XmppClient,
    XmppServer, assert_stanza_error, body_of, echo_reply, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(20);
/// How long to watch for something that must not happen (a repeat).
const QUIET: Duration = Duration::from_secs(2);
const LINK_UP: &str = "component link established";

/// What answers the requests.
enum Bot<'a> {
    /// The function's built-in echo bot.
    Echo,
    /// The function proxies to this HTTP bot.
    Proxy(&'a BotServer),
}

/// How the whole path is set up.
struct Options<'a> {
    fifo: bool,
    bot: Bot<'a>,
    /// Function + trigger pairs: each pair is one concurrent "Lambda".
    consumers: usize,
    /// The request queue's visibility timeout: how soon a failed request
    /// is retried.
    request_visibility: &'a str,
    /// Receives before a request goes to the dead-letter queue.
    max_receive_count: &'a str,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            fifo: false,
            bot: Bot::Echo,
            consumers: 1,
            request_visibility: "2",
            max_receive_count: "3",
        }
    }
}

/// The serverless side: queues, function(s) and trigger(s).
struct Queues {
    moto: Moto,
    requests: String,
    replies: String,
    dead_letters: String,
    /// Kept for their `Drop`: the processes stop with the test.
    _consumers: Vec<QueueConsumer>,
}

impl Queues {
    async fn start(options: &Options<'_>) -> Result<Queues> {
        let moto = Moto::start().await?;
        let suffix = if options.fifo { ".fifo" } else { "" };
        let dead_letters = moto
            .create_queue_with(&format!("requests-dlq{suffix}"), &[])
            .await?;
        let dlq_arn = moto.queue_attribute(&dead_letters, "QueueArn").await?;
        let redrive = format!(
            r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{}"}}"#,
            options.max_receive_count
        );
        let requests = moto
            .create_queue_with(
                &format!("requests{suffix}"),
                &[
                    ("VisibilityTimeout", options.request_visibility),
                    ("RedrivePolicy", &redrive),
                ],
            )
            .await?;
        let replies = moto
            .create_queue_with(&format!("replies{suffix}"), &[("VisibilityTimeout", "5")])
            .await?;
        let proxy_url;
        let mut bot_env: Vec<(&str, &str)> = match &options.bot {
            Bot::Echo => vec![("BOT", "echo")],
            Bot::Proxy(bot) => {
                proxy_url = bot.url();
                vec![("BOT", "proxy"), ("COMPONENT_POST_URL", proxy_url.as_str())]
            }
        };
        // As the template does: the function answers a request's last
        // delivery instead of leaving it to the dead-letter queue.
        bot_env.push(("MAX_RECEIVE_COUNT", options.max_receive_count));
        let mut consumers = Vec::new();
        for _ in 0..options.consumers {
            consumers.push(QueueConsumer::start(&moto, &requests, &replies, &bot_env).await?);
        }
        Ok(Queues {
            moto,
            requests,
            replies,
            dead_letters,
            _consumers: consumers,
        })
    }

    /// Where the messages are: each queue's depth, for a failure message
    /// that says whether a missing reply is still queued, dead-lettered or
    /// gone.
    async fn depths(&self) -> String {
        let mut report = Vec::new();
        for (name, url) in [
            ("requests", &self.requests),
            ("replies", &self.replies),
            ("dead letters", &self.dead_letters),
        ] {
            match self.moto.queue_depth(url).await {
                Ok(depth) => report.push(format!("{name} {depth}")),
                Err(error) => report.push(format!("{name} unknown ({error})")),
            }
        }
        format!("queued now: {}", report.join(", "))
    }

    /// The connector's environment for these queues.
    fn connector_env(&self) -> Vec<(&'static str, String)> {
        self.moto.sqs_transport_env(&self.requests, &self.replies)
    }
}

/// The connector for `queues`, linked to `prosody`, once its link is up.
async fn connector(
    prosody: &Prosody,
    queues: &Queues,
    extra: &[(&'static str, &str)],
) -> Result<Connector> {
    let env = queues.connector_env();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    let connector = Connector::start_for(prosody, &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

fn jid_at(prosody: &Prosody, name: &str) -> String {
    format!("{name}@{}", prosody.component_domain())
}

/// The bodies of the next `count` messages, in arrival order.
async fn bodies(client: &mut XmppClient, count: usize, within: Duration) -> Result<Vec<String>> {
    let deadline = Instant::now() + within;
    let mut bodies = Vec::with_capacity(count);
    while bodies.len() < count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Some(message) = client.recv_message(remaining).await else {
            return Err(format!(
                "{}: {} of {count} messages within {within:?}; got {bodies:?}",
                client.jid(),
                bodies.len()
            )
            .into());
        };
        bodies.push(body_of(&message).unwrap_or_else(|| format!("(no body) {message:?}")));
    }
    Ok(bodies)
}

/// Nothing more arrives within [`QUIET`].
async fn assert_quiet(client: &mut XmppClient) {
    if let Some(extra) = client.recv_message(QUIET).await {
        panic!("{}: unexpected extra message {extra:?}", client.jid());
    }
}

fn echoed(text: &str) -> String {
    format!("Did you say {text}?")
}

/// Fails unless `got` holds the echo of each of `sent` exactly once, in any
/// order (a standard queue, a retry or a restart may reorder them).
fn assert_each_echoed_once(who: &str, mut got: Vec<String>, sent: &[String]) {
    got.sort();
    let mut expected: Vec<String> = sent.iter().map(|text| echoed(text)).collect();
    expected.sort();
    assert_eq!(got, expected, "{who}: every reply exactly once");
}

/// Sends each of `texts` to `to` and waits until `connector` has put every
/// one on the request queue (it logs each at debug level for the sqs module).
async fn send_until_queued(
    client: &mut XmppClient,
    to: &str,
    texts: &[String],
    connector: &Connector,
) -> Result<()> {
    for text in texts {
        client.send_message(to, text).await?;
    }
    connector
        .wait_for_log_count("request queued", texts.len(), WAIT)
        .await?;
    Ok(())
}

/// A bot that echoes after 3 s: no reply exists yet when a test breaks
/// something right after sending.
async fn slow_echo_bot() -> Result<BotServer> {
    BotServer::start(|request: BotRequest| async move {
        echo_reply(&request.json).with_delay(Duration::from_secs(3))
    })
    .await
}

/// Waits until the queue holds no message at all, visible or in flight.
async fn wait_drained(moto: &Moto, url: &str) -> Result<()> {
    wait_depth(moto, url, 0).await
}

/// Waits until the queue holds exactly `depth` messages.
async fn wait_depth(moto: &Moto, url: &str, depth: u64) -> Result<()> {
    moto.wait_depth(url, depth, WAIT).await
}

/// Sends `signal` to the connector process.
fn signal(connector: &Connector, signal: libc::c_int) {
    // SAFETY: kill(2) on the connector process this test started.
    unsafe {
        libc::kill(connector.pid() as libc::pid_t, signal);
    }
}

async fn echo_round_trip(fifo: bool) -> Result<()> {
    let prosody = Prosody::start().await?;
    let queues = Queues::start(&Options {
        fifo,
        ..Options::default()
    })
    .await?;
    let mut connector = connector(&prosody, &queues, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    let id = alice.send_message(&echo, "hello <&> ünïcode").await?;
    let reply = alice
        .recv_message(WAIT)
        .await
        .ok_or("no echo through the queues")?;
    assert_eq!(
        body_of(&reply).as_deref(),
        Some("Did you say hello <&> ünïcode?")
    );
    assert_eq!(reply.attr("from"), Some(echo.as_str()));
    assert_eq!(reply.attr("to"), Some(alice.full_jid()));
    assert_eq!(reply.attr("type"), Some("chat"));
    assert_ne!(reply.attr("id"), Some(id.as_str()), "replies get fresh ids");
    assert_quiet(&mut alice).await;
    // The reply was deleted once written; the request once answered.
    wait_drained(&queues.moto, &queues.replies).await?;
    wait_drained(&queues.moto, &queues.requests).await?;

    // A graceful stop reports the SQS calls it made.
    connector.terminate();
    let status = connector.wait_exit(WAIT).await?;
    assert!(status.success(), "{status}");
    let stats = connector.wait_for_log("sqs calls", WAIT).await?;
    assert!(stats.contains("requests_sent=1"), "{stats}");
    assert!(stats.contains("replies_deleted=1"), "{stats}");
    Ok(())
}

#[tokio::test]
async fn echo_through_a_standard_queue_pair() -> Result<()> {
    echo_round_trip(false).await
}

#[tokio::test]
async fn echo_through_a_fifo_queue_pair() -> Result<()> {
    echo_round_trip(true).await
}

#[tokio::test]
async fn proxy_bot_gets_the_request_json_and_its_error_reaches_the_user() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::start(|request: BotRequest| async move {
        match request.json["body"].as_str() {
            Some("missing") => BotReply::status(404),
            _ => echo_reply(&request.json),
        }
    })
    .await?;
    let queues = Queues::start(&Options {
        fifo: true,
        bot: Bot::Proxy(&bot),
        ..Options::default()
    })
    .await?;
    let _connector = connector(&prosody, &queues, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    alice.send_message(&echo, "hi bot").await?;
    assert_eq!(bodies(&mut alice, 1, WAIT).await?, [echoed("hi bot")]);
    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json["from"].as_str(), Some(alice.full_jid()));
    assert_eq!(requests[0].json["to"].as_str(), Some(echo.as_str()));
    assert_eq!(requests[0].json["kind"].as_str(), Some("message"));
    assert_eq!(requests[0].json["body"].as_str(), Some("hi bot"));

    // A final error outcome is not retried: it reaches the user as the
    // error table says.
    let id = alice.send_message(&echo, "missing").await?;
    let error = alice.recv_message(WAIT).await.ok_or("no error reply")?;
    assert_stanza_error(&error, &id, "cancel", "item-not-found", None);
    Ok(())
}

#[tokio::test]
async fn fifo_keeps_fifty_fast_messages_in_order() -> Result<()> {
    let prosody = Prosody::start().await?;
    let queues = Queues::start(&Options {
        fifo: true,
        ..Options::default()
    })
    .await?;
    let _connector = connector(&prosody, &queues, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    let sent: Vec<String> = (1..=50).map(|n| format!("message {n}")).collect();
    for text in &sent {
        alice.send_message(&echo, text).await?;
    }
    let expected: Vec<String> = sent.iter().map(|text| echoed(text)).collect();
    assert_eq!(bodies(&mut alice, 50, WAIT).await?, expected);
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn standard_queue_batches_one_users_burst() -> Result<()> {
    const MESSAGES: usize = 40;
    let prosody = Prosody::start().await?;
    let queues = Queues::start(&Options::default()).await?;
    let mut connector = connector(&prosody, &queues, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    let sent: Vec<String> = (1..=MESSAGES).map(|n| format!("burst {n}")).collect();
    for text in &sent {
        alice.send_message(&echo, text).await?;
    }
    // A standard queue keeps no order: every reply, each once.
    let got = bodies(&mut alice, MESSAGES, WAIT).await?;
    assert_each_echoed_once("alice", got, &sent);
    assert_quiet(&mut alice).await;

    connector.terminate();
    connector.wait_exit(WAIT).await?;
    let stats = connector.wait_for_log("sqs calls", WAIT).await?;
    // One conversation's requests share batches instead of waiting for
    // each other (which would take one call per request).
    let calls = stat(&stats, "send_calls")?;
    assert!(
        calls <= MESSAGES / 2,
        "{calls} send calls for {MESSAGES} requests: {stats}"
    );
    Ok(())
}

/// The number `name=N` in the connector's `sqs calls` line.
fn stat(line: &str, name: &str) -> Result<usize> {
    let key = format!(" {name}=");
    let value = line
        .split_once(&key)
        .map(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap_or("")
        })
        .ok_or_else(|| format!("no {name} in {line:?}"))?;
    Ok(value.parse()?)
}

#[tokio::test]
async fn fifo_conversations_progress_independently() -> Result<()> {
    let prosody = Prosody::start().await?;
    // The bot fails the first try of "blocked 1" (a 500, retried after the
    // request queue's visibility timeout); everything else it echoes.
    let failed_once: Arc<Mutex<bool>> = Arc::default();
    let bot = BotServer::start(move |request: BotRequest| {
        let failed_once = Arc::clone(&failed_once);
        async move {
            if request.json["body"].as_str() == Some("blocked 1") {
                let mut failed = failed_once.lock().unwrap_or_else(|e| e.into_inner());
                if !*failed {
                    *failed = true;
                    return BotReply::status(500);
                }
            }
            echo_reply(&request.json)
        }
    })
    .await?;
    let queues = Queues::start(&Options {
        fifo: true,
        bot: Bot::Proxy(&bot),
        request_visibility: "8",
        ..Options::default()
    })
    .await?;
    let _connector = connector(&prosody, &queues, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let blocked = jid_at(&prosody, "blocked");
    let echo = jid_at(&prosody, "echo");

    // One conversation is held up on the queue by its failed first message…
    alice.send_message(&blocked, "blocked 1").await?;
    alice.send_message(&blocked, "blocked 2").await?;
    bot.wait_for_requests(1, WAIT).await?;
    // …while another one goes through at once, in order: all its replies
    // come before the first conversation's retry.
    for n in 1..=5 {
        alice.send_message(&echo, &format!("fast {n}")).await?;
    }
    let mut expected: Vec<String> = (1..=5).map(|n| echoed(&format!("fast {n}"))).collect();
    // The held-up conversation resumes after the retry, still in order.
    expected.extend([echoed("blocked 1"), echoed("blocked 2")]);
    assert_eq!(bodies(&mut alice, 7, WAIT).await?, expected);
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn connector_killed_with_requests_in_flight_loses_nothing() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = slow_echo_bot().await?;
    let queues = Queues::start(&Options {
        bot: Bot::Proxy(&bot),
        ..Options::default()
    })
    .await?;
    let debug = [("RUST_LOG", "info,xmpp_lambda_connector::sqs=debug")];
    let first = connector(&prosody, &queues, &debug).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    let sent: Vec<String> = (1..=10).map(|n| format!("in flight {n}")).collect();
    send_until_queued(&mut alice, &echo, &sent, &first).await?;
    // Every request is on the queue, none answered yet: crash.
    first.kill();
    drop(first);

    // The replies wait on the reply queue for the next connector.
    wait_depth(&queues.moto, &queues.replies, sent.len() as u64).await?;
    let _second = connector(&prosody, &queues, &[]).await?;
    let got = bodies(&mut alice, sent.len(), WAIT).await?;
    assert_quiet(&mut alice).await;
    assert_each_echoed_once("alice", got, &sent);
    wait_drained(&queues.moto, &queues.replies).await?;
    Ok(())
}

#[tokio::test]
async fn replies_queued_while_prosody_restarts_arrive_after_relink() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let bot = slow_echo_bot().await?;
    let queues = Queues::start(&Options {
        bot: Bot::Proxy(&bot),
        ..Options::default()
    })
    .await?;
    let debug = [("RUST_LOG", "info,xmpp_lambda_connector::sqs=debug")];
    let connector = connector(&prosody, &queues, &debug).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    let sent: Vec<String> = (1..=5).map(|n| format!("while down {n}")).collect();
    send_until_queued(&mut alice, &echo, &sent, &connector).await?;
    prosody.stop().await;
    drop(alice);
    // With the link down the replies wait on the reply queue (one poll
    // already under way may have taken some; those wait in the
    // connector, undeleted).
    wait_depth(&queues.moto, &queues.replies, sent.len() as u64).await?;

    // Alice must be back before the replies are written (Prosody keeps no
    // offline messages here): the connector is paused meanwhile.
    signal(&connector, libc::SIGSTOP);
    prosody.restart().await?;
    let mut alice = login(&prosody, "alice").await?;
    signal(&connector, libc::SIGCONT);
    connector.wait_for_new_log(LINK_UP, WAIT).await?;
    let got = bodies(&mut alice, sent.len(), WAIT).await?;
    assert_each_echoed_once("alice", got, &sent);
    wait_drained(&queues.moto, &queues.replies).await?;
    Ok(())
}

#[tokio::test]
async fn bot_errors_are_retried_then_answered_with_the_error_on_the_last_delivery() -> Result<()> {
    let prosody = Prosody::start().await?;
    // "flaky": 500 the first time, then an answer. "broken" and every IQ:
    // always an error.
    let failed_once: Arc<Mutex<HashSet<String>>> = Arc::default();
    let bot = BotServer::start(move |request: BotRequest| {
        let failed_once = Arc::clone(&failed_once);
        async move {
            if request.json["kind"] == "iq" {
                return BotReply::status(503);
            }
            let text = request.json["body"].as_str().unwrap_or_default().to_owned();
            if text.starts_with("broken") {
                return BotReply::status(500);
            }
            if text.starts_with("flaky")
                && failed_once
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(text)
            {
                return BotReply::status(500);
            }
            echo_reply(&request.json)
        }
    })
    .await?;
    let queues = Queues::start(&Options {
        bot: Bot::Proxy(&bot),
        request_visibility: "1",
        max_receive_count: "2",
        ..Options::default()
    })
    .await?;
    let _connector = connector(
        &prosody,
        &queues,
        &[("COMPONENT_POST_STANZAS", "message,iq")],
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    alice.send_message(&echo, "flaky one").await?;
    let broken = alice.send_message(&echo, "broken one").await?;
    alice.send_message(&echo, "fine one").await?;
    alice
        .send(&format!(
            "<iq type='get' to='{echo}' id='version-1'><query xmlns='jabber:iq:version'/></iq>"
        ))
        .await?;

    // Two answers, and on the second (last) delivery the two requests the
    // bot kept failing get their errors: an XMPP error for the message, the
    // error reply an IQ must get.
    let mut answers = Vec::new();
    let mut errors = Vec::new();
    let deadline = Instant::now() + WAIT;
    while answers.len() < 2 || errors.len() < 2 {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let stanza = alice.recv(remaining).await.ok_or_else(|| {
            format!(
                "got {answers:?} and {} errors; expected 2 and 2",
                errors.len()
            )
        })?;
        match (stanza.name(), stanza.attr("type")) {
            (_, Some("error")) => errors.push(stanza),
            ("message", _) => answers.push(body_of(&stanza).unwrap_or_default()),
            _ => {}
        }
    }
    answers.sort();
    assert_eq!(answers, [echoed("fine one"), echoed("flaky one")]);
    errors.sort_by_key(|stanza| stanza.name().to_owned());
    assert_eq!(errors[0].name(), "iq");
    assert_stanza_error(
        &errors[0],
        "version-1",
        "wait",
        "remote-server-timeout",
        Some("Service temporarily unavailable"),
    );
    assert_eq!(errors[1].name(), "message");
    assert_stanza_error(&errors[1], &broken, "cancel", "internal-server-error", None);

    // Nothing was dead-lettered, and nothing else was lost.
    wait_drained(&queues.moto, &queues.requests).await?;
    assert_eq!(queues.moto.queue_depth(&queues.dead_letters).await?, 0);
    let tries: HashMap<String, usize> =
        bot.requests()
            .iter()
            .fold(HashMap::new(), |mut tries, request| {
                let text = match request.json["kind"].as_str() {
                    Some("iq") => "(iq)".to_owned(),
                    _ => request.json["body"].as_str().unwrap_or_default().to_owned(),
                };
                *tries.entry(text).or_default() += 1;
                tries
            });
    assert_eq!(tries.get("flaky one"), Some(&2), "{tries:?}");
    assert_eq!(tries.get("broken one"), Some(&2), "{tries:?}");
    assert_eq!(tries.get("(iq)"), Some(&2), "{tries:?}");
    assert_eq!(tries.get("fine one"), Some(&1), "{tries:?}");
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn a_request_that_cannot_be_queued_gets_an_error_not_silence() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    let replies = moto.create_queue_with("replies", &[]).await?;
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint_url());
    let mut env: Vec<(&str, String)> = moto.aws_env();
    env.push(("TRANSPORT", "sqs".to_owned()));
    env.push(("REQUEST_QUEUE_URL", missing));
    env.push(("REPLY_QUEUE_URL", replies));
    env.push(("COMPONENT_POST_TIMEOUT", "2".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let connector = Connector::start_for(&prosody, &env).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let mut alice = login(&prosody, "alice").await?;

    let started = Instant::now();
    let id = alice
        .send_message(&jid_at(&prosody, "echo"), "anyone there?")
        .await?;
    let error = alice.recv_message(WAIT).await.ok_or("no error reply")?;
    assert_stanza_error(
        &error,
        &id,
        "wait",
        "remote-server-timeout",
        Some("The bot's request queue cannot be reached"),
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(10),
        "the error came after {waited:?}, the timeout is 2 s"
    );
    connector.wait_for_log("request not queued", WAIT).await?;
    Ok(())
}

#[tokio::test]
async fn repeated_and_undecodable_replies() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    let requests = moto.create_queue_with("requests", &[]).await?;
    let replies = moto
        .create_queue_with("replies", &[("VisibilityTimeout", "1")])
        .await?;
    let mut env: Vec<(&str, String)> = moto.aws_env();
    env.push(("TRANSPORT", "sqs".to_owned()));
    env.push(("REQUEST_QUEUE_URL", requests));
    env.push(("REPLY_QUEUE_URL", replies.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let connector = Connector::start_for(&prosody, &env).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    // A reply envelope as the function writes it, delivered twice.
    let reply = serde_json::json!({
        "v": 1,
        "id": "4b8cf0f0-0000-4000-8000-000000000001",
        "request": {
            "to": echo,
            "from": alice.full_jid(),
            "kind": "message",
            "stanza": "<message xmlns='jabber:client'/>",
            "body": "hi",
            "type": "chat",
        },
        "response": {
            "status": 200,
            "content_type": "application/json",
            "body": r#"{"body":"queued hello"}"#,
        },
    })
    .to_string();
    moto.send_message(&replies, &reply, None).await?;
    moto.send_message(&replies, "this is not an envelope", None)
        .await?;
    moto.send_message(&replies, &reply, None).await?;

    assert_eq!(bodies(&mut alice, 1, WAIT).await?, ["queued hello"]);
    assert_quiet(&mut alice).await;
    // Both copies are deleted; the undecodable message stays for the
    // redrive policy, coming back after each visibility timeout.
    wait_depth(&moto, &replies, 1).await?;
    connector
        .wait_for_log("not a reply or send envelope", WAIT)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_burst_of_a_thousand_messages_gets_exactly_a_thousand_replies() -> Result<()> {
    const USERS: usize = 10;
    const PER_USER: usize = 100;
    let prosody = Prosody::start().await?;
    let queues = Queues::start(&Options {
        consumers: 2,
        ..Options::default()
    })
    .await?;
    let mut connector = connector(&prosody, &queues, &[]).await?;
    let mut users = Vec::new();
    for n in 0..USERS {
        users.push(login(&prosody, &format!("user{n}")).await?);
    }
    let echo = jid_at(&prosody, "echo");

    let started = Instant::now();
    // Every user sends its burst at once; then all replies are collected.
    for (n, user) in users.iter_mut().enumerate() {
        for m in 0..PER_USER {
            user.send_message(&echo, &format!("u{n} m{m}")).await?;
        }
    }
    // Generous: the local stand-ins (moto, one trigger per function) are
    // slow on a busy machine; this test is about every reply, exactly once.
    for (n, user) in users.iter_mut().enumerate() {
        let got = match bodies(user, PER_USER, Duration::from_secs(120)).await {
            Ok(got) => got,
            Err(error) => return Err(format!("{error}; {}", queues.depths().await).into()),
        };
        let sent: Vec<String> = (0..PER_USER).map(|m| format!("u{n} m{m}")).collect();
        assert_each_echoed_once(&format!("user{n}"), got, &sent);
    }
    let elapsed = started.elapsed();
    // No repeats: after one quiet period nobody has anything more.
    tokio::time::sleep(QUIET).await;
    for user in &mut users {
        if let Some(extra) = user.recv_message(Duration::from_millis(10)).await {
            panic!("{}: unexpected extra message {extra:?}", user.jid());
        }
    }
    wait_drained(&queues.moto, &queues.replies).await?;
    connector.terminate();
    connector.wait_exit(WAIT).await?;
    let stats = connector.wait_for_log("sqs calls", WAIT).await?;
    eprintln!("{} messages in {elapsed:?}; {stats}", USERS * PER_USER);
    assert!(stats.contains("requests_sent=1000"), "{stats}");
    Ok(())
}

#[tokio::test]
async fn one_message_at_a_time_is_sent_at_once() -> Result<()> {
    let prosody = Prosody::start().await?;
    let queues = Queues::start(&Options::default()).await?;
    let mut connector = connector(&prosody, &queues, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = jid_at(&prosody, "echo");

    const MESSAGES: usize = 5;
    for n in 0..MESSAGES {
        let text = format!("one by one {n}");
        alice.send_message(&echo, &text).await?;
        assert_eq!(bodies(&mut alice, 1, WAIT).await?, [echoed(&text)]);
    }
    connector.terminate();
    connector.wait_exit(WAIT).await?;
    let stats = connector.wait_for_log("sqs calls", WAIT).await?;
    eprintln!("{MESSAGES} messages one at a time; {stats}");
    // Nothing to batch at this rate: one call per request, none lingering.
    assert!(
        stats.contains(&format!("send_calls={MESSAGES} ")),
        "{stats}"
    );
    assert!(
        stats.contains(&format!("requests_sent={MESSAGES} ")),
        "{stats}"
    );
    Ok(())
}

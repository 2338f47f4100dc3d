//! Bots that speak first (DESIGN §6), end to end: the connector's
//! `POST /v1/send` and send envelopes on the reply queue, through a real
//! Prosody to a real client. The connector uses the http transport here, so
//! the reply queue is a push-only queue, as for a bot behind a Function URL.

use std::time::Duration;

use serde_json::{Value, json};
use xmpp_lambda_tests::{
    BotServer, Connector, FakeComponentServer, Moto, Prosody, Result, SqsGate, XmppClient,
    XmppServer, body_of, free_port, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(20);
/// How long to watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(1500);
const LINK_UP: &str = "component link established";
/// The API's bearer token in these tests.
const TOKEN: &str = "push-test-token-0123456789abcdef-xyz";

/// The connector's API as a client sees it.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// POSTs `body` to /v1/send with `token` (none: no header).
    async fn send_raw(&self, token: Option<&str>, body: Vec<u8>) -> Result<reqwest::Response> {
        let mut request = self
            .http
            .post(format!("{}/v1/send", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Ok(request.send().await?)
    }

    /// POSTs a JSON body with the right token; returns status and JSON.
    async fn send(&self, body: &Value) -> Result<(u16, Value)> {
        let response = self
            .send_raw(Some(TOKEN), body.to_string().into_bytes())
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }
}

/// A connector linked to `server` (http transport to `bot`) with its API
/// on a free port, plus `extra` options; returned once linked.
async fn connector_with_api(
    server: &impl XmppServer,
    bot: &BotServer,
    extra: &[(&str, &str)],
) -> Result<(Connector, Api)> {
    let listen = format!("127.0.0.1:{}", free_port());
    let url = bot.url();
    let mut env = vec![
        ("COMPONENT_POST_URL", url.as_str()),
        ("COMPONENT_API_LISTEN", listen.as_str()),
    ];
    env.extend_from_slice(extra);
    let connector = Connector::start_for(server, &env).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    connector.wait_for_log("API listening", WAIT).await?;
    let api = Api {
        base: format!("http://{listen}"),
        http: reqwest::Client::builder().timeout(WAIT).build()?,
    };
    Ok((connector, api))
}

/// The next `count` message bodies alice receives, in order.
async fn bodies(client: &mut XmppClient, count: usize) -> Result<Vec<String>> {
    let mut got = Vec::new();
    for n in 0..count {
        let message = client
            .expect_message(&format!("pushed message {}", n + 1), WAIT)
            .await?;
        got.push(body_of(&message).unwrap_or_default());
    }
    Ok(got)
}

/// Asserts nothing more arrives for a while.
async fn assert_quiet(client: &mut XmppClient) {
    if let Some(extra) = client.recv_message(QUIET).await {
        panic!("{}: unexpected message {extra:?}", client.jid());
    }
}

#[tokio::test]
async fn http_push_reaches_the_user_with_its_id() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let (connector, api) =
        connector_with_api(&prosody, &bot, &[("COMPONENT_API_TOKEN", TOKEN)]).await?;
    let mut alice = login(&prosody, "alice").await?;

    let (status, answer) = api
        .send(&json!({"to": alice.jid(), "body": "deploy finished"}))
        .await?;
    assert_eq!(status, 202, "{answer}");
    let message = alice.expect_message("the push", WAIT).await?;
    assert_eq!(body_of(&message).as_deref(), Some("deploy finished"));
    assert_eq!(message.attr("from"), Some(prosody.component_domain()));
    assert_eq!(message.attr("type"), Some("chat"));
    assert_eq!(answer["ids"], json!([message.attr("id")]), "{answer}");

    // A list is written in order, from a JID at the component.
    let from = format!("alerts@{}", prosody.component_domain());
    let (status, answer) = api
        .send(&json!({"messages": [
            {"to": alice.jid(), "from": from, "body": "first"},
            {"to": alice.jid(), "from": from, "body": "second"},
            {"to": alice.jid(), "from": from, "body": "third"},
        ]}))
        .await?;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ids"].as_array().map(Vec::len), Some(3), "{answer}");
    assert_eq!(bodies(&mut alice, 3).await?, ["first", "second", "third"]);
    assert_quiet(&mut alice).await;
    // The bot was never asked: pushes do not go through it.
    assert!(bot.requests().is_empty());
    // The token is a secret.
    assert!(!connector.logs().iter().any(|line| line.contains(TOKEN)));
    Ok(())
}

#[tokio::test]
async fn http_push_refusals_send_nothing() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let (connector, api) =
        connector_with_api(&prosody, &bot, &[("COMPONENT_API_TOKEN", TOKEN)]).await?;
    let mut alice = login(&prosody, "alice").await?;
    let good = json!({"to": alice.jid(), "body": "hi"})
        .to_string()
        .into_bytes();

    // No token, a wrong one, a wrong scheme: 401.
    for token in [None, Some("wrong-token-0123456789abcdef-0123456789")] {
        let response = api.send_raw(token, good.clone()).await?;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
    }
    let basic = api
        .http
        .post(format!("{}/v1/send", api.base))
        .header("authorization", format!("Basic {TOKEN}"))
        .body(good.clone())
        .send()
        .await?;
    assert_eq!(basic.status(), 401);

    // Bad messages: 400 naming the field, and nothing is sent.
    let domain = prosody.component_domain();
    let cases = [
        (
            json!({"to": alice.jid(), "from": "admin@localhost", "body": "hi"}),
            format!(
                "message \"from\" \"admin@localhost\" is outside the component's domain \"{domain}\""
            ),
        ),
        (
            json!({"body": "to whom?"}),
            "message \"to\" is required".to_owned(),
        ),
        (
            json!({"to": alice.jid(), "body": "bell\u{7}"}),
            "message \"body\" contains U+0007, which XML does not allow".to_owned(),
        ),
        (
            json!({"messages": [
                {"to": alice.jid(), "body": "fine"},
                {"to": alice.jid(), "body": true},
            ]}),
            "messages[1] field \"body\" must be a string or a number".to_owned(),
        ),
    ];
    for (body, error) in cases {
        let (status, answer) = api.send(&body).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], json!(error), "{body}");
    }
    let response = api.send_raw(Some(TOKEN), b"{not json".to_vec()).await?;
    assert_eq!(response.status(), 400);

    // Over 64 KiB: 413, whether the body says its length or not.
    let huge = json!({"to": alice.jid(), "body": "x".repeat(70 * 1024)})
        .to_string()
        .into_bytes();
    let response = api.send_raw(Some(TOKEN), huge.clone()).await?;
    assert_eq!(response.status(), 413);
    assert_eq!(post_chunked(&api.base, TOKEN, &huge).await?, 413);

    // Nothing of the above reached alice: the next push is the next message.
    let (status, _) = api
        .send(&json!({"to": alice.jid(), "body": "after"}))
        .await?;
    assert_eq!(status, 202);
    assert_eq!(bodies(&mut alice, 1).await?, ["after"]);
    assert_quiet(&mut alice).await;
    let refused = connector.logs();
    assert!(
        refused.iter().any(|l| l.contains("pushed message refused")
            && l.contains("is outside the component's domain")),
        "the log says why"
    );
    assert!(!refused.iter().any(|l| l.contains("component link lost")));
    Ok(())
}

/// POSTs `body` to /v1/send in 8 KiB chunks, without a Content-Length
/// (as a client streaming its body would), and returns the status.
async fn post_chunked(base: &str, token: &str, body: &[u8]) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let mut request = format!(
        "POST /v1/send HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(8 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // The server may answer before it has read everything.
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let status_line = String::from_utf8_lossy(&answer);
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {status_line:?}"))?;
    Ok(status)
}

#[tokio::test]
async fn http_push_is_refused_while_the_link_is_down_and_readyz_follows_the_link() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let (connector, api) =
        connector_with_api(&prosody, &bot, &[("COMPONENT_API_TOKEN", TOKEN)]).await?;
    assert_eq!(api.get("/readyz").await?, (200, json!({"ready": true})));

    prosody.stop().await;
    connector.wait_for_log("component link lost", WAIT).await?;
    let (status, answer) = api.get("/readyz").await?;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["ready"], json!(false));
    assert!(
        answer["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("not linked"),
        "{answer}"
    );
    let response = api
        .send_raw(
            Some(TOKEN),
            json!({"to": "alice@localhost", "body": "lost?"})
                .to_string()
                .into_bytes(),
        )
        .await?;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    // Still alive while unlinked.
    assert_eq!(api.get("/healthz").await?.0, 200);

    prosody.restart().await?;
    connector.wait_for_new_log(LINK_UP, WAIT).await?;
    assert_eq!(api.get("/readyz").await?, (200, json!({"ready": true})));
    let mut alice = login(&prosody, "alice").await?;
    // The refused push was not kept for later: only the new one arrives.
    let (status, _) = api
        .send(&json!({"to": alice.jid(), "body": "back"}))
        .await?;
    assert_eq!(status, 202);
    assert_eq!(bodies(&mut alice, 1).await?, ["back"]);
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn without_a_token_send_is_not_served() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let (_connector, api) = connector_with_api(&prosody, &bot, &[]).await?;
    assert_eq!(api.get("/healthz").await?, (200, json!({"status": "ok"})));
    assert_eq!(api.get("/readyz").await?, (200, json!({"ready": true})));
    let response = api.send_raw(Some(TOKEN), b"{}".to_vec()).await?;
    assert_eq!(response.status(), 404);
    assert_eq!(api.get("/nowhere").await?.0, 404);
    let post_health = api
        .http
        .post(format!("{}/healthz", api.base))
        .send()
        .await?;
    assert_eq!(post_health.status(), 405);
    Ok(())
}

/// Moto with a push-only reply queue (and its DLQ after `max_receive`
/// receives) for a connector with the http transport.
struct PushQueue {
    moto: Moto,
    url: String,
    dead_letters: String,
}

impl PushQueue {
    async fn start(fifo: bool, max_receive: u32) -> Result<PushQueue> {
        let moto = Moto::start().await?;
        let suffix = if fifo { ".fifo" } else { "" };
        let dead_letters = moto
            .create_queue_with(&format!("pushes-dlq{suffix}"), &[])
            .await?;
        let dlq_arn = moto.queue_attribute(&dead_letters, "QueueArn").await?;
        let redrive =
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":"{max_receive}"}}"#);
        let url = moto
            .create_queue_with(
                &format!("pushes{suffix}"),
                &[("VisibilityTimeout", "1"), ("RedrivePolicy", &redrive)],
            )
            .await?;
        Ok(PushQueue {
            moto,
            url,
            dead_letters,
        })
    }

    /// Puts a send envelope on the queue.
    async fn push(&self, id: &str, messages: Value) -> Result<()> {
        let body = json!({"v": 1, "id": id, "send": messages}).to_string();
        let group = self.url.ends_with(".fifo").then_some("alerts");
        self.moto.send_message(&self.url, &body, group).await
    }

    /// The connector's environment for this queue through `endpoint`.
    fn env(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let mut env = self.moto.aws_env();
        for (key, value) in &mut env {
            if *key == "AWS_ENDPOINT_URL" {
                *value = endpoint.to_owned();
            }
        }
        env.push(("REPLY_QUEUE_URL", self.url.clone()));
        env
    }

    async fn wait_depth(&self, url: &str, depth: u64) -> Result<()> {
        self.moto.wait_depth(url, depth, WAIT).await
    }
}

/// A connector with the http transport to `bot` and a push queue.
async fn queue_connector(
    prosody: &Prosody,
    bot: &BotServer,
    env: &[(&'static str, String)],
) -> Result<Connector> {
    let url = bot.url();
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("COMPONENT_POST_URL", &url));
    all.push(("RUST_LOG", "info,xmpp_lambda_connector::sqs=debug"));
    let connector = Connector::start_for(prosody, &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

#[tokio::test]
async fn queue_push_arrives_in_order_exactly_once() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let queue = PushQueue::start(true, 5).await?;
    let _connector =
        queue_connector(&prosody, &bot, &queue.env(&queue.moto.endpoint_url())).await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = alice.jid().to_owned();

    queue
        .push(
            "e1",
            json!([
                {"to": to, "body": "one"},
                {"to": to, "body": "two"},
                {"to": to, "body": "three"},
            ]),
        )
        .await?;
    queue
        .push(
            "e2",
            json!([{"to": to, "body": "four"}, {"to": to, "body": "five"}]),
        )
        .await?;
    assert_eq!(
        bodies(&mut alice, 5).await?,
        ["one", "two", "three", "four", "five"]
    );
    queue.wait_depth(&queue.url, 0).await?;
    // The same envelope again (SQS delivers at least once): dropped by id.
    queue
        .push("e1", json!([{"to": to, "body": "one again"}]))
        .await?;
    queue.wait_depth(&queue.url, 0).await?;
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn queue_push_that_fails_the_checks_is_logged_and_dead_lettered() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let queue = PushQueue::start(false, 2).await?;
    let connector = queue_connector(&prosody, &bot, &queue.env(&queue.moto.endpoint_url())).await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = alice.jid().to_owned();

    // One bad message spoils its envelope: nothing of it is sent.
    queue
        .push(
            "bad",
            json!([
                {"to": to, "body": "never"},
                {"to": to, "from": "admin@localhost", "body": "forged"},
            ]),
        )
        .await?;
    let line = connector
        .wait_for_log("send envelope refused", WAIT)
        .await?;
    assert!(
        line.contains("messages[1] \"from\" \"admin@localhost\" is outside the component's domain"),
        "{line}"
    );
    queue.wait_depth(&queue.dead_letters, 1).await?;
    queue.wait_depth(&queue.url, 0).await?;
    // The link held, and pushes after it still arrive.
    queue
        .push("good", json!([{"to": to, "body": "fine"}]))
        .await?;
    assert_eq!(bodies(&mut alice, 1).await?, ["fine"]);
    assert_quiet(&mut alice).await;
    assert!(
        !connector
            .logs()
            .iter()
            .any(|l| l.contains("component link lost"))
    );
    Ok(())
}

#[tokio::test]
async fn queue_push_written_but_not_deleted_before_a_crash_arrives_at_most_twice() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let queue = PushQueue::start(false, 10).await?;
    let gate = SqsGate::start(&queue.moto).await?;
    let env = queue.env(&gate.endpoint_url());
    let first = queue_connector(&prosody, &bot, &env).await?;
    let mut alice = login(&prosody, "alice").await?;
    let to = alice.jid().to_owned();

    // Written to the stream, but the delete fails: then the crash.
    gate.refuse_deletes(true);
    queue
        .push(
            "crash",
            json!([{"to": to, "body": "a"}, {"to": to, "body": "b"}]),
        )
        .await?;
    assert_eq!(bodies(&mut alice, 2).await?, ["a", "b"]);
    first
        .wait_for_log("could not delete written replies", WAIT)
        .await?;
    assert!(gate.refused_deletes() >= 1);
    first.kill();
    drop(first);
    gate.refuse_deletes(false);

    // The next connector knows nothing of what was written: at least once
    // means the envelope comes again, whole and in order, and then it is
    // deleted for good.
    let _second = queue_connector(&prosody, &bot, &env).await?;
    assert_eq!(bodies(&mut alice, 2).await?, ["a", "b"]);
    queue.wait_depth(&queue.url, 0).await?;
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn queue_push_made_while_prosody_is_down_arrives_after_relink() -> Result<()> {
    let mut prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let queue = PushQueue::start(false, 10).await?;
    let connector = queue_connector(&prosody, &bot, &queue.env(&queue.moto.endpoint_url())).await?;

    prosody.stop().await;
    connector.wait_for_log("component link lost", WAIT).await?;
    queue
        .push(
            "while-down",
            json!([{"to": "alice@localhost", "body": "you missed this"}]),
        )
        .await?;
    // Nobody takes it while the link is down.
    tokio::time::sleep(QUIET).await;
    assert_eq!(queue.moto.queue_depth(&queue.url).await?, 1);

    // Alice must be online before it is written (Prosody keeps no offline
    // messages here): the connector is paused while she logs in.
    signal(&connector, libc::SIGSTOP);
    prosody.restart().await?;
    let mut alice = login(&prosody, "alice").await?;
    signal(&connector, libc::SIGCONT);
    connector.wait_for_new_log(LINK_UP, WAIT).await?;
    assert_eq!(bodies(&mut alice, 1).await?, ["you missed this"]);
    queue.wait_depth(&queue.url, 0).await?;
    Ok(())
}

fn signal(connector: &Connector, signal: libc::c_int) {
    // SAFETY: kill(2) on the connector process this test started.
    unsafe {
        libc::kill(connector.pid() as libc::pid_t, signal);
    }
}

#[tokio::test]
async fn a_scheduled_event_through_the_function_reaches_the_user() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let queue = PushQueue::start(true, 5).await?;
    let _connector =
        queue_connector(&prosody, &bot, &queue.env(&queue.moto.endpoint_url())).await?;
    let mut alice = login(&prosody, "alice").await?;
    let function = xmpp_lambda_tests::LambdaFunction::start_example(
        "reminder_bot",
        &queue.moto,
        &queue.url,
        &[
            ("REMINDER_TO", alice.jid()),
            ("REMINDER_TEXT", "Stand-up in 5 minutes"),
        ],
    )
    .await?;

    // What an EventBridge rule delivers when its schedule fires.
    let scheduled = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-30T08:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/daily-reminder"],
        "detail": {}
    });
    let (status, answer) = function.invoke(&scheduled).await?;
    assert_eq!(status, 200, "{answer}");
    let message = alice.expect_message("the reminder", WAIT).await?;
    assert_eq!(body_of(&message).as_deref(), Some("Stand-up in 5 minutes"));
    assert_eq!(message.attr("from"), Some(prosody.component_domain()));
    queue.wait_depth(&queue.url, 0).await?;
    assert_quiet(&mut alice).await;
    Ok(())
}

#[tokio::test]
async fn a_push_is_accepted_only_once_the_server_has_taken_it() -> Result<()> {
    // A server that handles stanzas only when the test says so.
    let mut server = FakeComponentServer::start("bot.localhost").await?;
    let bot = BotServer::echo().await?;
    let listen = format!("127.0.0.1:{}", free_port());
    let url = bot.url();
    let mut env: Vec<(&str, String)> = server.component_env()?;
    env.extend([
        ("COMPONENT_POST_URL", url),
        ("COMPONENT_API_LISTEN", listen.clone()),
        ("COMPONENT_API_TOKEN", TOKEN.to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let connector = Connector::start(&env).await?;
    let mut link = server.accept_link(WAIT).await?;
    connector.wait_for_log("API listening", WAIT).await?;

    let push = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("http://{listen}/v1/send"))
            .bearer_auth(TOKEN)
            .json(&json!({"to": "alice@localhost", "body": "deploy finished"}))
            .send()
            .await
            .map(|response| response.status().as_u16())
    });
    // The message is written, then a ping after it in the same flush.
    link.wait_for("deploy finished", WAIT).await?;
    let written = link.wait_for("</iq>", WAIT).await?;
    let id = written
        .split("id='")
        .chain(written.split("id=\""))
        .filter_map(|rest| rest.split(['\'', '"']).next())
        .find(|id| id.starts_with("keepalive-"))
        .ok_or_else(|| format!("no ping after the message: {written}"))?
        .to_owned();
    tokio::time::sleep(QUIET).await;
    assert!(
        !push.is_finished(),
        "202 before the server took the message"
    );

    // The server routes the ping back to the component: it has taken
    // everything before it.
    link.send(
        format!(
            "<iq xmlns='jabber:component:accept' type='get' from='bot.localhost' \
             to='bot.localhost' id='{id}'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        .as_bytes(),
    )
    .await?;
    let status = tokio::time::timeout(WAIT, push).await???;
    assert_eq!(status, 202);
    Ok(())
}

//! `GET /metrics` (DESIGN §8) end to end: the connector's counters follow
//! what really happened on a real Prosody with a real bot and client.

use std::time::Duration;

use serde_json::json;
use xmpp_lambda_tests::muc::join_room;
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Moto, Prosody, Result, XmppServer, echo_reply,
    free_port, login,
};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "metrics-test-token-0123456789abcdef-0";

/// The value of one sample line (`name{labels}`), or `None`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

async fn scrape(http: &reqwest::Client, listen: &str) -> Result<String> {
    let response = http.get(format!("http://{listen}/metrics")).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    Ok(response.text().await?)
}

/// Scrapes until `series` reaches `value` (counters move a moment after
/// the client sees the reply).
async fn wait_for_sample(
    http: &reqwest::Client,
    listen: &str,
    series: &str,
    value: f64,
) -> Result<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(http, listen).await?;
        if sample(&text, series) == Some(value) {
            return Ok(text);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{series} never reached {value}:\n{text}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_what_happened() -> Result<()> {
    let mut prosody = Prosody::start_with_config("muc_room_locking = false").await?;
    let bot = BotServer::start(|request: BotRequest| async move {
        match request.json["body"].as_str() {
            Some("fail") => BotReply::status(500),
            Some("silent") => BotReply::status(204),
            _ => echo_reply(&request.json),
        }
    })
    .await?;
    let moto = Moto::start().await?;
    let replies = moto.create_queue("pushes").await?;
    let listen = format!("127.0.0.1:{}", free_port());
    let ops = format!("ops@{}", prosody.muc_domain());
    let mut env: Vec<(&str, String)> = moto.aws_env();
    env.extend([
        ("COMPONENT_POST_URL", bot.url()),
        ("COMPONENT_API_LISTEN", listen.clone()),
        ("COMPONENT_API_TOKEN", TOKEN.to_owned()),
        ("REPLY_QUEUE_URL", replies),
        ("COMPONENT_ROOMS", ops.clone()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    let connector = Connector::start_for(&prosody, &env).await?;
    connector.wait_for_log("joined room", WAIT).await?;
    let http = reqwest::Client::builder().timeout(WAIT).build()?;

    let echo = format!("echo@{}", prosody.component_domain());
    for body in ["hello", "fail", "silent", "again"] {
        alice.send_message(&echo, body).await?;
    }
    let push = http
        .post(format!("http://{listen}/v1/send"))
        .bearer_auth(TOKEN)
        .json(&json!({"to": alice.jid(), "body": "pushed"}))
        .send()
        .await?;
    assert_eq!(push.status(), 202);
    let text = wait_for_sample(
        &http,
        &listen,
        "xmpp_lambda_requests_total{outcome=\"replied\"}",
        2.0,
    )
    .await?;
    let expect = [
        ("xmpp_lambda_requests_total{outcome=\"error_5xx\"}", 1.0),
        ("xmpp_lambda_requests_total{outcome=\"no_reply\"}", 1.0),
        ("xmpp_lambda_requests_total{outcome=\"no_response\"}", 0.0),
        ("xmpp_lambda_bot_answer_seconds_count", 4.0),
        ("xmpp_lambda_requests_in_flight", 0.0),
        ("xmpp_lambda_link_up", 1.0),
        ("xmpp_lambda_link_standby", 0.0),
        ("xmpp_lambda_link_connects_total", 1.0),
        ("xmpp_lambda_rooms_joined", 1.0),
        (
            "xmpp_lambda_pushed_messages_total{way=\"http\",outcome=\"sent\"}",
            1.0,
        ),
        ("xmpp_lambda_sqs_call_errors_total", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    assert!(
        sample(
            &text,
            "xmpp_lambda_stanzas_received_total{kind=\"message\"}"
        )
        .is_some_and(|n| n >= 4.0),
        "{text}"
    );
    assert!(
        sample(&text, "xmpp_lambda_sqs_calls_total{api=\"ReceiveMessage\"}")
            .is_some_and(|n| n >= 1.0),
        "the push queue is polled: {text}"
    );

    // A relink shows as a second connect; the link is down meanwhile.
    prosody.stop().await;
    wait_for_sample(&http, &listen, "xmpp_lambda_link_up", 0.0).await?;
    prosody.restart().await?;
    wait_for_sample(&http, &listen, "xmpp_lambda_link_connects_total", 2.0).await?;
    wait_for_sample(&http, &listen, "xmpp_lambda_link_up", 1.0).await?;
    Ok(())
}

//! Streamed answers (DESIGN §11) from the function: the real binaries
//! under cargo lambda's emulator behind a Function URL that streams (or
//! not), the proxy passing a bot's NDJSON stream through, and over SQS one
//! reply envelope per line on moto's queue, in order, the last marked.
//! Every line is checked with the connector's own reply rules.

mod common;

use common::{BotServer, LambdaEmulator, Moto, bootstrap, example, fifo_event, request};
use common::{request_from, sqs_event};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_function::{Handler, ProxyBot};
use xmpp_lambda_shared::{
    BotResponse, ReplyEnvelope, RequestEnvelope, StreamPart, response_to_stanzas,
};

/// The component domain the test requests are sent to.
const DOMAIN: &str = "bot.localhost";
const NDJSON: &str = "application/x-ndjson";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Each line of a streamed response, with when it arrived after `sent`.
async fn timed_lines(response: reqwest::Response, sent: Instant) -> Vec<(Duration, Value)> {
    let mut response = response;
    let mut lines = Vec::new();
    let mut pending = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("the stream reads") {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let value = serde_json::from_slice(&line[..end]).expect("each line is JSON");
            lines.push((sent.elapsed(), value));
        }
    }
    assert!(pending.is_empty(), "the stream ends with a line end");
    lines
}

/// Fails unless the connector's reply rules accept `line` as one line of a
/// stream, and gives the messages' bodies.
fn accepted(line: &Value) -> Vec<String> {
    let mut n = 0;
    let stanzas = response_to_stanzas(
        &request(Some("tell")),
        &BotResponse::json(line.to_string()),
        DOMAIN,
        &mut || {
            n += 1;
            format!("id-{n}")
        },
    )
    .unwrap_or_else(|reason| panic!("the connector refuses {line}: {reason}"));
    stanzas
        .iter()
        .filter_map(|s| s.get_child("body", xmpp_lambda_shared::COMPONENT_NS))
        .map(|body| body.text())
        .collect()
}

/// The story bot's answer to "dragons", as a person reads it in the end.
fn story() -> [String; 3] {
    [
        "Once upon a time someone sent a bot the words \u{201c}dragons\u{201d}, and the bot began to write."
            .to_owned(),
        "It wrote one word at a time, the way a language model does, and every word appeared \
         as soon as it existed, so nobody wondered whether the bot was still there."
            .to_owned(),
        "The end.".to_owned(),
    ]
}

/// The text of each message once its corrections are applied: a line
/// without `replace` starts a message, one with it replaces its text.
fn final_texts(lines: &[Value]) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for line in lines {
        let body = accepted(line).concat();
        match texts.last_mut() {
            Some(last) if line["replace"] == true => *last = body,
            _ => texts.push(body),
        }
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_function_url_sends_each_line_as_the_bot_writes_it() {
    let lambda = LambdaEmulator::start(
        &example("story_bot"),
        &env(&[
            ("FUNCTION_URL_INVOKE_MODE", "RESPONSE_STREAM"),
            ("STORY_WORD_DELAY_MS", "100"),
        ]),
    );
    let body = serde_json::to_string(&request(Some("dragons"))).expect("json");
    let sent = Instant::now();
    let response = lambda.post_url(&body, "application/json").await;
    let head = sent.elapsed();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(NDJSON)
    );
    let lines = timed_lines(response, sent).await;
    let (first, last) = (lines[0].0, lines[lines.len() - 1].0);
    println!(
        "streamed Function URL: head {head:?}, first line {first:?}, last line {last:?}, {} lines",
        lines.len()
    );
    // The first word comes after the model's 100 ms, the whole story of 50
    // words after about 5 s: the lines arrive as they are written.
    assert!(head < Duration::from_millis(1500), "head after {head:?}");
    assert!(
        first < Duration::from_millis(1500),
        "first line after {first:?}"
    );
    assert!(
        last - first > Duration::from_secs(3),
        "all at once: {first:?} to {last:?}"
    );
    let words: usize = story().iter().map(|p| p.split(' ').count()).sum();
    assert_eq!(lines.len(), words, "one line per word");
    let values: Vec<Value> = lines.into_iter().map(|(_, line)| line).collect();
    assert_eq!(values[0], json!({"body": "Once"}));
    assert_eq!(values[1], json!({"body": "Once upon", "replace": true}));
    assert_eq!(final_texts(&values), story());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_function_url_gets_the_finished_answer_as_ndjson() {
    let lambda =
        LambdaEmulator::start(&example("story_bot"), &env(&[("STORY_WORD_DELAY_MS", "5")]));
    let body = serde_json::to_string(&request(Some("dragons"))).expect("json");
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(NDJSON)
    );
    let text = response.text().await.expect("a body");
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    // Nobody saw the text grow: each paragraph is one message, finished.
    let expected: Vec<Value> = story().iter().map(|p| json!({ "body": p })).collect();
    assert_eq!(lines, expected);
    // The same binary's direct invoke gives the same answer.
    let (status, outcome) = lambda
        .invoke(&serde_json::to_value(request(Some("dragons"))).expect("json"))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["content_type"], NDJSON);
    assert_eq!(outcome["body"], text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_passes_a_bots_stream_through_line_by_line() {
    let bot = BotServer::start().await;
    let lambda = LambdaEmulator::start(
        &bootstrap(),
        &env(&[
            ("COMPONENT_POST_URL", &bot.url),
            ("FUNCTION_URL_INVOKE_MODE", "RESPONSE_STREAM"),
            ("COMPONENT_STREAM_IDLE_TIMEOUT", "1"),
        ]),
    );
    let body = serde_json::to_string(&request(Some("stream 3 700"))).expect("json");
    let sent = Instant::now();
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 200);
    let lines = timed_lines(response, sent).await;
    let values: Vec<&Value> = lines.iter().map(|(_, line)| line).collect();
    assert_eq!(
        values,
        [
            &json!({"body": "line 1"}),
            &json!({"body": "line 2"}),
            &json!({"body": "line 3"})
        ]
    );
    assert!(lines[0].0 < Duration::from_millis(1500), "{lines:?}");
    assert!(
        lines[2].0 - lines[0].0 >= Duration::from_millis(1200),
        "passed on as they came, not at the end: {lines:?}"
    );

    // A stream that stalls past the idle timeout ends after what came.
    let body = serde_json::to_string(&request(Some("stall"))).expect("json");
    let sent = Instant::now();
    let response = lambda.post_url(&body, "application/json").await;
    let lines = timed_lines(response, sent).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );

    // A whole answer through the same streaming URL is still whole.
    let body = serde_json::to_string(&request(Some("hello"))).expect("json");
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.expect("JSON reply");
    assert_eq!(reply, json!({"body": "bot heard hello"}));
    let body = serde_json::to_string(&request(Some("status 503"))).expect("json");
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.expect("text"), "scripted 503");
}

/// The reply queue's messages, taken off it, as envelopes in order, with
/// when SQS got each (ms since the epoch).
async fn parts(moto: &Moto, url: &str) -> Vec<(ReplyEnvelope, u64)> {
    moto.drain(url)
        .await
        .iter()
        .map(|message| {
            let sent_at = message
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp))
                .and_then(|t| t.parse().ok())
                .expect("a sent timestamp");
            let envelope = ReplyEnvelope::from_json(message.body().expect("a body"))
                .expect("a reply envelope");
            (envelope, sent_at)
        })
        .collect()
}

fn line_of(part: &ReplyEnvelope) -> Value {
    serde_json::from_str(&part.response.body).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_sqs_each_line_is_a_reply_envelope_as_soon_as_it_exists() {
    let moto = Moto::start();
    let replies = moto.queue("replies.fifo", &[]).await;
    let mut vars = moto.env();
    vars.extend(env(&[
        ("REPLY_QUEUE_URL", &replies),
        ("STORY_WORD_DELAY_MS", "100"),
    ]));
    let lambda = LambdaEmulator::start(&example("story_bot"), &vars);
    let arn = "arn:aws:sqs:us-east-1:123456789012:requests.fifo";
    let event = fifo_event(
        arn,
        &[(
            "r1",
            RequestEnvelope::new("e-story", request(Some("dragons"))).to_json(),
        )],
        1,
    );
    let started = Instant::now();
    let invoke = {
        let url = lambda.invoke_url();
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&event)
                .send()
                .await
                .expect("invoke");
            (
                Instant::now(),
                response.json::<Value>().await.expect("JSON"),
            )
        })
    };
    // The first part is on the queue while the bot is still writing.
    let mut first_seen = None;
    while first_seen.is_none() && started.elapsed() < Duration::from_secs(10) {
        if moto.depth(&replies).await > 0 {
            first_seen = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (finished, outcome) = invoke.await.expect("the invoke ends");
    assert_eq!(outcome, json!({"batchItemFailures": []}));
    let first_seen = first_seen.expect("a part came");
    println!(
        "over SQS: first part queued after {:?}, the invocation took {:?}",
        first_seen - started,
        finished - started
    );
    assert!(
        finished - first_seen > Duration::from_secs(2),
        "the first part came only at the end"
    );

    let sent = parts(&moto, &replies).await;
    let streams: Vec<StreamPart> = sent
        .iter()
        .map(|(part, _)| part.stream.expect("every envelope is a part"))
        .collect();
    let count = streams.len() as u64;
    assert_eq!(
        streams,
        (0..count)
            .map(|seq| StreamPart {
                seq,
                last: seq + 1 == count
            })
            .collect::<Vec<_>>(),
        "numbered in order, the last marked"
    );
    assert!(sent.iter().all(|(part, _)| part.id == "e-story"));
    // 50 words in about 5 s; corrections at most one a second: about a
    // dozen queue messages, not 50.
    println!("over SQS: {count} parts for 50 words");
    assert!((6..=25).contains(&count), "{count} parts");
    // Two corrections in a row are a second apart, unless the second is
    // the last text of its message, which goes when the message is done.
    let replaces = |part: &(ReplyEnvelope, u64)| line_of(&part.0)["replace"] == true;
    for run in sent.windows(3) {
        if run.iter().all(replaces) {
            let apart = run[1].1 - run[0].1;
            assert!(apart >= 900, "two corrections {apart} ms apart");
        }
    }
    let (last, _) = sent.last().expect("parts");
    assert_eq!(last.response.status, 204, "the stream just ended");
    let lines: Vec<Value> = sent[..sent.len() - 1]
        .iter()
        .map(|(part, _)| line_of(part))
        .collect();
    assert_eq!(final_texts(&lines), story());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_streams_over_sqs_and_a_stall_is_the_last_part() {
    let bot = BotServer::start().await;
    let moto = Moto::start();
    let replies = moto.queue("replies", &[]).await;
    let mut vars = moto.env();
    vars.extend(env(&[
        ("COMPONENT_POST_URL", &bot.url),
        ("REPLY_QUEUE_URL", &replies),
        ("COMPONENT_STREAM_IDLE_TIMEOUT", "1"),
    ]));
    let lambda = LambdaEmulator::start(&bootstrap(), &vars);
    let event = sqs_event(
        "sqs_event_standard.json",
        "arn:aws:sqs:us-east-1:123456789012:requests",
        &[
            (
                "a",
                RequestEnvelope::new("e-a", request(Some("stream 3 200"))).to_json(),
            ),
            (
                "b",
                RequestEnvelope::new("e-b", request_from("bob", "stall")).to_json(),
            ),
        ],
    );
    let (status, outcome) = lambda.invoke(&event).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome, json!({"batchItemFailures": []}));
    let sent = parts(&moto, &replies).await;
    let of = |id: &str| -> Vec<(u64, bool, u16, Value)> {
        sent.iter()
            .filter(|(part, _)| part.id == id)
            .map(|(part, _)| {
                let stream = part.stream.expect("a part");
                (stream.seq, stream.last, part.response.status, line_of(part))
            })
            .collect()
    };
    // A standard queue keeps no order: the parts say it.
    let mut a = of("e-a");
    a.sort_by_key(|part| part.0);
    assert_eq!(
        a,
        [
            (0, false, 200, json!({"body": "line 1"})),
            (1, false, 200, json!({"body": "line 2"})),
            (2, false, 200, json!({"body": "line 3"})),
            (3, true, 204, Value::Null),
        ]
    );
    // Stalled after its first line: the sender hears a timeout after it.
    let mut b = of("e-b");
    b.sort_by_key(|part| part.0);
    assert_eq!(
        b,
        [
            (0, false, 200, json!({"body": "line 1"})),
            (1, true, 0, Value::Null),
        ]
    );
}

#[tokio::test]
async fn a_conversation_stays_in_order_around_a_streamed_answer() {
    let bot = BotServer::start().await;
    let moto = Moto::start();
    let replies = moto.queue("replies.fifo", &[]).await;
    let proxy =
        ProxyBot::new(bot.url.parse().expect("url"), Duration::from_secs(5)).expect("proxy");
    let handler = Handler::new(proxy)
        .with_reply_queue(&replies)
        .with_sqs_client(moto.client.clone())
        .with_edit_interval(Duration::ZERO);
    // One conversation: a whole answer, a streamed one, a whole one.
    let event = fifo_event(
        "arn:aws:sqs:us-east-1:123456789012:requests.fifo",
        &[
            (
                "a",
                RequestEnvelope::new("e-a", request(Some("first"))).to_json(),
            ),
            (
                "b",
                RequestEnvelope::new("e-b", request(Some("stream 2 100"))).to_json(),
            ),
            (
                "c",
                RequestEnvelope::new("e-c", request(Some("last"))).to_json(),
            ),
        ],
        1,
    );
    let outcome = handler.handle(event, None).await.expect("handled");
    assert_eq!(outcome, json!({"batchItemFailures": []}));
    let order: Vec<(String, Option<StreamPart>)> = parts(&moto, &replies)
        .await
        .into_iter()
        .map(|(part, _)| (part.id, part.stream))
        .collect();
    let part = |seq, last| Some(StreamPart { seq, last });
    assert_eq!(
        order,
        [
            ("e-a".to_owned(), None),
            ("e-b".to_owned(), part(0, false)),
            ("e-b".to_owned(), part(1, false)),
            ("e-b".to_owned(), part(2, true)),
            ("e-c".to_owned(), None),
        ],
        "the reply before the stream goes first, the one after it last"
    );
}

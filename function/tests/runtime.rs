//! The real binaries under cargo lambda's Runtime API emulator: Function URL
//! requests, direct invokes and SQS events, as Lambda would deliver them.

mod common;

use common::{BotServer, LambdaEmulator, Moto, bootstrap, envelope, example, request, sqs_event};
use serde_json::{Value, json};
use std::process::Command;
use xmpp_lambda_shared::ReplyEnvelope;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_requests_reach_the_http_bot_and_return_its_reply() {
    let bot = BotServer::start().await;
    let lambda = LambdaEmulator::start(&bootstrap(), &env(&[("COMPONENT_POST_URL", &bot.url)]));

    let body = serde_json::to_string(&request(Some("hello"))).expect("json");
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
    let reply: Value = response.json().await.expect("JSON reply");
    assert_eq!(reply, json!({"body": "bot heard hello"}));
    assert_eq!(bot.seen()[0].request(), request(Some("hello")));

    // An error status comes back as it is, for the connector's error table.
    let body = serde_json::to_string(&request(Some("status 503"))).expect("json");
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.text().await.expect("text"), "scripted 503");

    // Prosody's mod_component_http labels its JSON form-urlencoded.
    let body = serde_json::to_string(&request(Some("from prosody"))).expect("json");
    let response = lambda
        .post_url(&body, "application/x-www-form-urlencoded")
        .await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.expect("JSON reply");
    assert_eq!(reply, json!({"body": "bot heard from prosody"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_bot_answers_a_direct_invoke() {
    let lambda = LambdaEmulator::start(&bootstrap(), &[]);
    let (status, outcome) = lambda
        .invoke(&serde_json::to_value(request(Some("hi"))).expect("json"))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], 200);
    assert_eq!(outcome["content_type"], "application/json");
    let reply: Value = serde_json::from_str(outcome["body"].as_str().expect("body")).expect("json");
    assert_eq!(reply, json!({"body": "Did you say hi?"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_bot_answers() {
    let lambda = LambdaEmulator::start(&example("reverse_bot"), &[]);
    let body = serde_json::to_string(&request(Some("stressed"))).expect("json");
    let response = lambda.post_url(&body, "application/json").await;
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.expect("JSON reply");
    assert_eq!(reply, json!({"body": "desserts"}));

    let (_, outcome) = lambda
        .invoke(&serde_json::to_value(request(None)).expect("json"))
        .await;
    assert_eq!(outcome["status"], 204, "{outcome}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_is_a_clear_invocation_error() {
    let mut lambda = LambdaEmulator::start(&bootstrap(), &[]);
    let (status, error) = lambda.invoke(&json!({"hello": "world"})).await;
    assert_ne!(status, 200, "{error}");
    assert_eq!(error["errorType"], "UnrecognisedEvent", "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("got an object with keys [hello]")),
        "{error}"
    );
    // The function survives it and answers the next event.
    let (status, _) = lambda
        .invoke(&serde_json::to_value(request(Some("again"))).expect("json"))
        .await;
    assert_eq!(status, 200);
    assert!(lambda.function_running());
}

#[test]
fn an_unknown_bot_stops_the_start_with_one_clear_line() {
    let output = Command::new(bootstrap())
        .env_clear()
        .env("BOT", "lisp")
        .output()
        .expect("bootstrap runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains(
            r#"cannot start: BOT="lisp" is not a built-in bot (expected "proxy" or "echo")"#
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqs_event_sends_replies_with_the_aws_environment() {
    let moto = Moto::start();
    let replies_url = moto.queue("replies", &[]).await;
    let mut vars = moto.env();
    vars.push(("REPLY_QUEUE_URL".into(), replies_url.clone()));
    let lambda = LambdaEmulator::start(&bootstrap(), &vars);
    let event = sqs_event(
        "sqs_event_standard.json",
        "arn:aws:sqs:us-east-1:123456789012:requests",
        &[("a", envelope("e-a", "one")), ("b", "garbage".into())],
    );
    let (status, result) = lambda.invoke(&event).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        result,
        json!({"batchItemFailures": [{"itemIdentifier": "b"}]})
    );
    let sent = moto.drain(&replies_url).await;
    assert_eq!(sent.len(), 1);
    let reply = ReplyEnvelope::from_json(sent[0].body().expect("body")).expect("reply envelope");
    assert_eq!(reply.id, "e-a");
    assert_eq!(
        reply.response.body,
        json!({"body": "Did you say one?"}).to_string()
    );
}

/// Cold start: from spawning the process to the first event answered
/// through the Runtime API (a direct invoke of the echo bot, so no other
/// server is timed), over a few fresh starts. Prints the figures; set
/// XMPP_LAMBDA_BOOTSTRAP to time another build, e.g. the release zip's
/// `target/lambda/bootstrap/bootstrap`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_answers_the_first_event() {
    const STARTS: usize = 5;
    let event = serde_json::to_value(request(Some("first"))).expect("json");
    let mut cold = Vec::with_capacity(STARTS);
    for _ in 0..STARTS {
        let lambda = LambdaEmulator::start(&bootstrap(), &[]);
        let (status, outcome) = lambda.invoke(&event).await;
        cold.push(lambda.started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200, "{outcome}");
        assert_eq!(outcome["status"], 200, "{outcome}");
    }
    cold.sort_by(f64::total_cmp);
    println!(
        "cold start, process start to first event answered: min {:.1} ms, median {:.1} ms over {STARTS} starts of {}",
        cold[0],
        cold[STARTS / 2],
        bootstrap().display()
    );
}

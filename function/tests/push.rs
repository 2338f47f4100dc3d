//! Bots that speak first, through the real binaries under cargo lambda's
//! emulator: a schedule or a webhook wakes the bot, and its messages land
//! on the reply queue (moto) as send envelopes, the way the connector reads
//! them.

mod common;

use common::{LambdaEmulator, Moto, bootstrap, example, fixture};
use serde_json::{Value, json};
use xmpp_lambda_shared::{
    COMPONENT_NS, OOB_NS, ReplyQueueMessage, SendEnvelope, outbound_to_stanza,
};

fn env(moto: &Moto, reply_queue: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = moto.env();
    env.push(("REPLY_QUEUE_URL".to_owned(), reply_queue.to_owned()));
    env.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// Every send envelope on the queue, taken off it.
async fn send_envelopes(moto: &Moto, url: &str) -> Vec<SendEnvelope> {
    moto.drain(url)
        .await
        .iter()
        .map(
            |message| match ReplyQueueMessage::from_json(message.body().expect("a body")) {
                Ok(ReplyQueueMessage::Send(envelope)) => envelope,
                other => panic!("not a send envelope: {other:?}"),
            },
        )
        .collect()
}

/// The reminder bot reminding `to` (comma-separated JIDs) through a FIFO
/// reply queue of moto's; returns moto, the queue's URL and the function.
async fn reminder_bot(to: &str) -> (Moto, String, LambdaEmulator) {
    let moto = Moto::start();
    let replies = moto.queue("replies.fifo", &[]).await;
    let lambda = LambdaEmulator::start(
        &example("reminder_bot"),
        &env(
            &moto,
            &replies,
            &[
                ("REMINDER_TO", to),
                ("REMINDER_TEXT", "Stand-up in 5 minutes"),
            ],
        ),
    );
    (moto, replies, lambda)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_makes_the_reminder_bot_push() {
    let (moto, replies, lambda) =
        reminder_bot("alice@example.com, ops@conference.example.com").await;

    // EventBridge Scheduler's input as template.yaml sets it up.
    let (status, outcome) = lambda.invoke(&json!({"schedule": "daily"})).await;
    assert_eq!(status, 200, "{outcome}");
    let envelopes = send_envelopes(&moto, &replies).await;
    assert_eq!(envelopes.len(), 2, "one per recipient: {envelopes:?}");
    assert_eq!(
        outcome,
        json!({"envelopes": [envelopes[0].id, envelopes[1].id]})
    );
    assert_eq!(
        envelopes[0].send,
        [json!({"to": "alice@example.com", "body": "Stand-up in 5 minutes"})]
    );
    assert_eq!(
        envelopes[1].send,
        [json!({"to": "ops@conference.example.com", "body": "Stand-up in 5 minutes"})]
    );

    // An EventBridge rule's event does the same.
    let (status, _) = lambda.invoke(&fixture("eventbridge_schedule.json")).await;
    assert_eq!(status, 200);
    assert_eq!(send_envelopes(&moto, &replies).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_schedule_pushes_once() {
    let (moto, replies, lambda) = reminder_bot("alice@example.com, bob@example.com").await;
    // EventBridge Scheduler's input as template.yaml sets it up, with
    // `<aws.scheduler.scheduled-time>` filled in. Lambda retries a failed
    // asynchronous invocation with the same event.
    let fired = json!({"schedule": "xmpp-lambda-schedule", "time": "2026-12-24T08:00:00Z"});
    let (status, first) = lambda.invoke(&fired).await;
    assert_eq!(status, 200, "{first}");
    let (status, retried) = lambda.invoke(&fired).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!(first, retried, "the same envelope ids");
    // The FIFO reply queue drops the repeats (the connector drops them by
    // id on any queue): one message per recipient.
    let envelopes = send_envelopes(&moto, &replies).await;
    let ids: Vec<&str> = envelopes.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(json!({ "envelopes": ids }), first);

    // The next occurrence is new.
    let next = json!({"schedule": "xmpp-lambda-schedule", "time": "2026-12-25T08:00:00Z"});
    let (status, outcome) = lambda.invoke(&next).await;
    assert_eq!(status, 200, "{outcome}");
    assert_ne!(outcome, first);
    assert_eq!(send_envelopes(&moto, &replies).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_without_on_event_pushes_nothing() {
    let moto = Moto::start();
    let replies = moto.queue("replies", &[]).await;
    let lambda = LambdaEmulator::start(&bootstrap(), &env(&moto, &replies, &[("BOT", "echo")]));
    let (status, outcome) = lambda.invoke(&json!({"schedule": "daily"})).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome, json!({"envelopes": []}));
    assert!(moto.drain(&replies).await.is_empty());

    // A webhook to a bot that ignores it: 204, nothing queued.
    let response = lambda
        .post_url_with("/hook", r#"{"anything": 1}"#, &[])
        .await;
    assert_eq!(response.status(), 204);
    assert!(moto.drain(&replies).await.is_empty());
    // Not JSON at all: 400.
    let response = lambda.post_url_with("/hook", "hello", &[]).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alertmanager_webhook_becomes_one_message_per_recipient() {
    let moto = Moto::start();
    let replies = moto.queue("replies", &[]).await;
    let token = "alert-token-0123456789";
    let lambda = LambdaEmulator::start(
        &example("alert_bot"),
        &env(
            &moto,
            &replies,
            &[("ALERT_TO", "alice@example.com"), ("ALERT_TOKEN", token)],
        ),
    );
    let alert = fixture("alertmanager_webhook.json").to_string();

    let response = lambda
        .post_url_with(
            "/alertmanager",
            &alert,
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.expect("JSON answer");
    let envelopes = send_envelopes(&moto, &replies).await;
    assert_eq!(answer, json!({"envelopes": [envelopes[0].id]}));
    // The first alert's Prometheus graph is attached.
    let text = "[FIRING] DiskFull db1: Disk 95% full\n[RESOLVED] DiskFull db2: Disk 80% full";
    assert_eq!(
        envelopes[0].send,
        [json!({
            "to": "alice@example.com",
            "body": text,
            "url": "http://prometheus.example.com:9090/graph",
        })]
    );
    assert_attachment(
        &envelopes[0].send[0],
        text,
        "http://prometheus.example.com:9090/graph",
    );

    // A dashboard named in an annotation wins over the graph; a link the
    // connector would refuse is left out, and the alert still goes.
    for (annotation, attached) in [
        (
            json!({"summary": "Disk 95% full", "dashboard_url": "https://grafana.example.com/d/disk?var-host=db1"}),
            Some("https://grafana.example.com/d/disk?var-host=db1"),
        ),
        (
            json!({"summary": "Disk 95% full", "panel_url": "javascript:alert(1)"}),
            None,
        ),
    ] {
        let mut notification = fixture("alertmanager_webhook.json");
        notification["alerts"][0]["annotations"] = annotation;
        if attached.is_none() {
            notification["alerts"][0]["generatorURL"] = json!("");
        }
        let response = lambda
            .post_url_with(
                "/alertmanager",
                &notification.to_string(),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        assert_eq!(response.status(), 202);
        let envelopes = send_envelopes(&moto, &replies).await;
        assert_eq!(
            envelopes[0].send[0].get("url").and_then(Value::as_str),
            attached
        );
        if let Some(url) = attached {
            assert_attachment(&envelopes[0].send[0], text, url);
        }
    }

    // Without the token the notification is dropped.
    let response = lambda.post_url_with("/alertmanager", &alert, &[]).await;
    assert_eq!(response.status(), 204);
    assert!(moto.drain(&replies).await.is_empty());
}

/// What the connector writes for a pushed message: its text, and the link
/// as XEP-0066 out-of-band data.
fn assert_attachment(message: &Value, text: &str, url: &str) {
    let stanza = outbound_to_stanza(message, "bot.example.com", &|_| None, &mut || "p1".into())
        .expect("the connector accepts the message");
    assert_eq!(
        stanza
            .get_child("body", COMPONENT_NS)
            .map(|body| body.text())
            .as_deref(),
        Some(text)
    );
    let oob = stanza
        .get_child("x", OOB_NS)
        .and_then(|x| x.get_child("url", OOB_NS))
        .map(|link| link.text());
    assert_eq!(oob.as_deref(), Some(url));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_without_a_reply_queue_fails_the_invocation() {
    let lambda = LambdaEmulator::start(
        &example("reminder_bot"),
        &[("REMINDER_TO".to_owned(), "alice@example.com".to_owned())],
    );
    let (status, outcome) = lambda.invoke(&json!({"schedule": "daily"})).await;
    assert_ne!(status, 200, "{outcome}");
    assert_eq!(outcome["errorType"], "PushNotSent", "{outcome}");
    assert_eq!(
        outcome["errorMessage"],
        "pushed messages not sent: REPLY_QUEUE_URL is not set: pushed messages go through the reply queue"
    );
}

//! The local SQS trigger against moto's server and the real function under
//! cargo lambda: successes deleted, failures back after the visibility
//! timeout, then in the dead-letter queue.

mod common;

use aws_lambda_events::event::sqs::SqsEvent;
use common::{BotServer, LambdaEmulator, Moto, bootstrap, envelope, iq_request, request_from};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use xmpp_lambda_shared::{ReplyEnvelope, RequestEnvelope, conversation_id};
use xmpp_lambda_sqs_trigger::{BatchReport, Trigger, TriggerConfig};

/// Requests, replies and a DLQ after two receives, plus the function.
struct Setup {
    moto: Moto,
    requests: String,
    replies: String,
    dead_letters: String,
    bot: BotServer,
    lambda: LambdaEmulator,
}

async fn setup(fifo: bool) -> Setup {
    setup_with(fifo, &[]).await
}

/// [`setup`], with `extra` in the function's environment.
async fn setup_with(fifo: bool, extra: &[(&str, &str)]) -> Setup {
    let moto = Moto::start();
    let suffix = if fifo { ".fifo" } else { "" };
    let dead_letters = moto.queue(&format!("dead-letters{suffix}"), &[]).await;
    let redrive = format!(
        r#"{{"deadLetterTargetArn":"{}","maxReceiveCount":"2"}}"#,
        moto.arn(&dead_letters).await
    );
    let requests = moto
        .queue(
            &format!("requests{suffix}"),
            &[("VisibilityTimeout", "1"), ("RedrivePolicy", &redrive)],
        )
        .await;
    let replies = moto.queue(&format!("replies{suffix}"), &[]).await;
    let bot = BotServer::start().await;
    let mut env = moto.env();
    env.push(("REPLY_QUEUE_URL".into(), replies.clone()));
    env.push(("COMPONENT_POST_URL".into(), bot.url.clone()));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let lambda = LambdaEmulator::start(&bootstrap(), &env);
    Setup {
        moto,
        requests,
        replies,
        dead_letters,
        bot,
        lambda,
    }
}

async fn trigger(setup: &Setup, batch_size: i32) -> Trigger {
    let config = TriggerConfig {
        queue_url: setup.requests.clone(),
        invoke_url: setup.lambda.invoke_url(),
        batch_size,
        wait_seconds: 2,
        invoke_timeout: Duration::from_secs(30),
        visibility_timeout: None,
    };
    Trigger::new(config, setup.moto.client.clone())
        .await
        .expect("trigger starts")
}

/// What one or more polls did, by envelope id (the message bodies say it).
#[derive(Default, Debug)]
struct Seen {
    deleted: BTreeSet<String>,
    failed: BTreeSet<String>,
    receive_counts: BTreeMap<String, String>,
}

fn envelope_id(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

fn record(seen: &mut Seen, report: &BatchReport) {
    let event: SqsEvent = serde_json::from_value(report.event.clone()).expect("an SQS event");
    for record in event.records {
        let id = record.message_id.clone().expect("message id");
        let name = envelope_id(record.body.as_deref().expect("body"));
        let count = record
            .attributes
            .get("ApproximateReceiveCount")
            .cloned()
            .unwrap_or_default();
        seen.receive_counts.insert(name.clone(), count);
        if report.deleted.contains(&id) {
            seen.deleted.insert(name);
        } else if report.failed.contains(&id) {
            seen.failed.insert(name);
        } else {
            panic!("message {id} neither deleted nor failed: {report:?}");
        }
    }
}

/// Polls until `count` messages were delivered (a receive may return fewer
/// than are visible), at most `rounds` times.
async fn poll(trigger: &Trigger, count: usize, rounds: usize) -> Seen {
    let mut seen = Seen::default();
    for _ in 0..rounds {
        let report = trigger.poll_once().await.expect("poll");
        assert!(report.batch_error.is_none(), "{report:?}");
        if !report.event.is_null() {
            record(&mut seen, &report);
        }
        if seen.deleted.len() + seen.failed.len() >= count {
            break;
        }
    }
    seen
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_are_deleted_and_failures_come_back_then_go_to_the_dlq() {
    let setup = setup(false).await;
    for (id, text) in [("e-one", "one"), ("e-two", "two"), ("e-500", "status 500")] {
        setup
            .moto
            .send(&setup.requests, &envelope(id, text), None)
            .await;
    }
    setup.moto.send(&setup.requests, "garbage", None).await;
    let trigger = trigger(&setup, 10).await;

    let first = poll(&trigger, 4, 10).await;
    assert_eq!(first.deleted, set(&["e-one", "e-two"]));
    assert_eq!(first.failed, set(&["e-500", "garbage"]));
    assert!(
        first.receive_counts.values().all(|count| count == "1"),
        "{first:?}"
    );
    let mut replied: Vec<String> = setup
        .moto
        .drain(&setup.replies)
        .await
        .iter()
        .map(|m| {
            ReplyEnvelope::from_json(m.body().expect("body"))
                .expect("reply")
                .id
        })
        .collect();
    replied.sort();
    assert_eq!(replied, ["e-one", "e-two"]);

    // After the visibility timeout the failures are delivered again.
    let second = poll(&trigger, 2, 10).await;
    assert!(second.deleted.is_empty(), "{second:?}");
    assert_eq!(second.failed, set(&["e-500", "garbage"]));
    assert!(
        second.receive_counts.values().all(|count| count == "2"),
        "{second:?}"
    );

    // Past maxReceiveCount the queue's redrive policy moves them to the DLQ.
    let mut dead = Vec::new();
    for _ in 0..10 {
        let report = trigger.poll_once().await.expect("poll");
        assert!(
            report.event.is_null(),
            "nothing left to deliver: {report:?}"
        );
        dead.extend(setup.moto.drain(&setup.dead_letters).await);
        if dead.len() >= 2 {
            break;
        }
    }
    let dead: BTreeSet<String> = dead
        .iter()
        .map(|m| envelope_id(m.body().expect("body")))
        .collect();
    assert_eq!(dead, set(&["e-500", "garbage"]));
    let asked: Vec<String> = setup
        .bot
        .seen()
        .iter()
        .map(|s| s.request().body.unwrap_or_default())
        .collect();
    assert_eq!(
        asked.iter().filter(|text| *text == "status 500").count(),
        2,
        "{asked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_batches_carry_the_group_and_keep_order() {
    let setup = setup(true).await;
    for (id, text) in [("e-a", "a"), ("e-b", "status 500"), ("e-c", "c")] {
        setup
            .moto
            .send(
                &setup.requests,
                &envelope(id, text),
                Some(("conversation-1", id)),
            )
            .await;
    }
    let trigger = trigger(&setup, 10).await;
    let report = trigger.poll_once().await.expect("poll");
    let event: SqsEvent = serde_json::from_value(report.event.clone()).expect("an SQS event");
    assert_eq!(
        event.records.len(),
        3,
        "one FIFO group arrives in one batch"
    );
    for record in &event.records {
        assert!(
            record
                .event_source_arn
                .as_deref()
                .is_some_and(|arn| arn.ends_with(":requests.fifo"))
        );
        assert_eq!(
            record.attributes.get("MessageGroupId").map(String::as_str),
            Some("conversation-1")
        );
        assert!(
            record.attributes.contains_key("SequenceNumber"),
            "{record:?}"
        );
    }
    let mut seen = Seen::default();
    record(&mut seen, &report);
    assert_eq!(seen.deleted, set(&["e-a"]));
    // c waits behind b, though its bot would have answered.
    assert_eq!(seen.failed, set(&["e-b", "e-c"]));
    let replies = setup.moto.drain(&setup.replies).await;
    assert_eq!(replies.len(), 1);

    // After the visibility timeout b and c are delivered again, in order,
    // and c waits behind b once more.
    let mut again = Seen::default();
    for _ in 0..10 {
        let report = trigger.poll_once().await.expect("poll");
        if !report.event.is_null() {
            let event: SqsEvent =
                serde_json::from_value(report.event.clone()).expect("an SQS event");
            let order: Vec<String> = event
                .records
                .iter()
                .map(|r| envelope_id(r.body.as_deref().unwrap_or_default()))
                .collect();
            assert_eq!(order, ["e-b", "e-c"], "the group comes back in order");
            record(&mut again, &report);
        }
        if again.failed.contains("e-b") {
            break;
        }
    }
    assert_eq!(again.failed, set(&["e-b", "e-c"]), "{again:?}");
    assert_eq!(
        again.receive_counts.get("e-b").map(String::as_str),
        Some("2")
    );
}

/// Sends `text` from `user` as the connector would: on a FIFO queue in the
/// conversation's group, deduplicated by the envelope id `id`.
async fn send_from(setup: &Setup, id: &str, user: &str, text: &str) {
    let request = request_from(user, text);
    let group = conversation_id(&request);
    let body = RequestEnvelope::new(id, request).to_json();
    setup
        .moto
        .send(&setup.requests, &body, Some((&group, id)))
        .await;
}

const USERS: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_batch_of_ten_conversations_takes_about_one_bot_call() {
    let setup = setup(true).await;
    for user in USERS {
        send_from(&setup, &format!("e-{user}"), user, "sleep 1000 hello").await;
    }
    let trigger = trigger(&setup, 10).await;
    let started = Instant::now();
    let report = trigger.poll_once().await.expect("poll");
    let took = started.elapsed();
    assert!(report.batch_error.is_none(), "{report:?}");
    assert_eq!(report.deleted.len(), 10, "{report:?}");
    // Ten conversations, each waiting one second for the bot, side by
    // side: one bot call's time, not ten.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(3500),
        "the batch took {took:?}"
    );
    assert_eq!(setup.moto.drain(&setup.replies).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_conversation_is_retried_in_order_while_the_others_are_done() {
    let setup = setup(true).await;
    send_from(&setup, "e-alice-1", "alice", "flaky first").await;
    send_from(&setup, "e-alice-2", "alice", "second").await;
    for user in &USERS[1..] {
        send_from(&setup, &format!("e-{user}"), user, "hello").await;
    }
    let trigger = trigger(&setup, 10).await;

    let first = trigger.poll_once().await.expect("poll");
    eprintln!("FIRST {}", first.event);
    let mut seen = Seen::default();
    record(&mut seen, &first);
    // Alice's first request failed: her second waits behind it. Every other
    // conversation in the batch was answered and deleted.
    assert_eq!(seen.failed, set(&["e-alice-1", "e-alice-2"]), "{seen:?}");
    assert_eq!(seen.deleted.len(), 8, "{seen:?}");

    // The rest arrives; after the visibility timeout Alice's two come back
    // and are answered, in order.
    for _ in 0..10 {
        let report = trigger.poll_once().await.expect("poll");
        assert!(report.batch_error.is_none(), "{report:?}");
        if !report.event.is_null() {
            eprintln!("NEXT {} {:?}", report.event, report.deleted);
            record(&mut seen, &report);
        }
        if seen.deleted.len() == 11 {
            break;
        }
    }
    assert_eq!(seen.deleted.len(), 11, "{seen:?}");
    let asked: Vec<String> = setup
        .bot
        .seen()
        .iter()
        .map(|s| s.request().body.unwrap_or_default())
        .filter(|text| text != "hello")
        .collect();
    assert_eq!(asked, ["flaky first", "flaky first", "second"]);
    let replies: Vec<String> = setup
        .moto
        .drain(&setup.replies)
        .await
        .iter()
        .map(|m| envelope_id(m.body().expect("body")))
        .collect();
    assert_eq!(replies.len(), 11, "{replies:?}");
    let alices: Vec<&str> = replies
        .iter()
        .map(String::as_str)
        .filter(|id| id.starts_with("e-alice"))
        .collect();
    assert_eq!(alices, ["e-alice-1", "e-alice-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_last_receive_the_sender_gets_the_error_and_nothing_is_dead_lettered() {
    // The queue moves a message to its DLQ after 2 receives; the function
    // knows it.
    let setup = setup_with(false, &[("MAX_RECEIVE_COUNT", "2")]).await;
    setup
        .moto
        .send(&setup.requests, &envelope("e-500", "status 500"), None)
        .await;
    let iq = RequestEnvelope::new("e-iq", iq_request()).to_json();
    setup.moto.send(&setup.requests, &iq, None).await;
    setup.moto.send(&setup.requests, "garbage", None).await;
    let trigger = trigger(&setup, 10).await;

    let first = poll(&trigger, 3, 10).await;
    assert_eq!(
        first.failed,
        set(&["e-500", "e-iq", "garbage"]),
        "{first:?}"
    );
    assert!(setup.moto.drain(&setup.replies).await.is_empty());

    // The second receive is the last: the bot fails again, and its failure
    // is the answer.
    let second = poll(&trigger, 3, 10).await;
    assert_eq!(second.deleted, set(&["e-500", "e-iq"]), "{second:?}");
    assert_eq!(second.failed, set(&["garbage"]), "{second:?}");
    assert!(
        second.receive_counts.values().all(|count| count == "2"),
        "{second:?}"
    );
    let mut answered: Vec<(String, u16)> = setup
        .moto
        .drain(&setup.replies)
        .await
        .iter()
        .map(|m| {
            let reply = ReplyEnvelope::from_json(m.body().expect("body")).expect("reply");
            (reply.id, reply.response.status)
        })
        .collect();
    answered.sort();
    assert_eq!(
        answered,
        [("e-500".to_owned(), 500), ("e-iq".to_owned(), 503)]
    );

    // Only the garbage, which has no sender to tell, is dead-lettered.
    let mut dead = Vec::new();
    for _ in 0..10 {
        let report = trigger.poll_once().await.expect("poll");
        assert!(report.event.is_null(), "nothing left: {report:?}");
        dead.extend(setup.moto.drain(&setup.dead_letters).await);
        if !dead.is_empty() {
            break;
        }
    }
    let dead: Vec<&str> = dead.iter().map(|m| m.body().expect("body")).collect();
    assert_eq!(dead, ["garbage"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_size_limits_each_invocation() {
    let setup = setup(false).await;
    for i in 0..5 {
        setup
            .moto
            .send(&setup.requests, &envelope(&format!("e{i}"), "hi"), None)
            .await;
    }
    let trigger = trigger(&setup, 2).await;
    let mut delivered = 0;
    for _ in 0..10 {
        let report = trigger.poll_once().await.expect("poll");
        let records = report.event["Records"].as_array().map_or(0, Vec::len);
        assert!(records <= 2, "{records} records in a batch of size 2");
        delivered += report.deleted.len();
        if delivered == 5 {
            break;
        }
    }
    assert_eq!(delivered, 5);
    assert_eq!(setup.moto.drain(&setup.replies).await.len(), 5);
}

#[tokio::test]
async fn an_invalid_batch_size_is_refused() {
    let moto = Moto::start();
    let queue = moto.queue("requests", &[]).await;
    let config = TriggerConfig {
        queue_url: queue,
        invoke_url: "http://127.0.0.1:9/".into(),
        batch_size: 11,
        wait_seconds: 0,
        invoke_timeout: Duration::from_secs(1),
        visibility_timeout: None,
    };
    let error = Trigger::new(config, moto.client.clone())
        .await
        .err()
        .expect("refused");
    assert_eq!(error.to_string(), "batch size 11 is not between 1 and 10");
}

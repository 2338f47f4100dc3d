//! The handler called directly with real event shapes, against a real HTTP
//! bot and moto's SQS server.

mod common;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use base64::Engine;
use common::{
    BotServer, Moto, envelope, fifo_event, fixture, iq_request, request, request_from, sqs_event,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_function::{EchoBot, Handler, HandlerError, ProxyBot};
use xmpp_lambda_shared::{
    COMPONENT_NS, ReplyEnvelope, RequestEnvelope, STANZAS_NS, conversation_id, stanzas_to_send,
};

fn proxy(bot: &BotServer, timeout: Duration) -> ProxyBot {
    ProxyBot::new(bot.url.parse().expect("bot url"), timeout).expect("proxy bot")
}

fn url_event(body: &str) -> Value {
    let mut event = fixture("function_url_request.json");
    event["body"] = json!(body);
    event
}

fn failures(result: &Value) -> BTreeSet<String> {
    result["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures is an array")
        .iter()
        .map(|item| {
            item["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_owned()
        })
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn replies(messages: &[aws_sdk_sqs::types::Message]) -> Vec<ReplyEnvelope> {
    messages
        .iter()
        .map(|m| ReplyEnvelope::from_json(m.body().expect("body")).expect("a reply envelope"))
        .collect()
}

#[test]
fn fixtures_are_real_event_shapes() {
    let url: LambdaFunctionUrlRequest =
        serde_json::from_value(fixture("function_url_request.json")).expect("Function URL event");
    let again: LambdaFunctionUrlRequest =
        serde_json::from_value(serde_json::to_value(&url).expect("serialise")).expect("reparse");
    assert_eq!(url, again);
    assert_eq!(url.request_context.http.method.as_deref(), Some("POST"));
    assert!(url.body.as_deref().is_some_and(|b| b.contains("hello")));

    for (name, fifo) in [
        ("sqs_event_standard.json", false),
        ("sqs_event_fifo.json", true),
    ] {
        let event: SqsEvent = serde_json::from_value(fixture(name)).expect("SQS event");
        let again: SqsEvent =
            serde_json::from_value(serde_json::to_value(&event).expect("serialise"))
                .expect("reparse");
        assert_eq!(event, again);
        let record = &event.records[0];
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            record
                .event_source_arn
                .as_deref()
                .is_some_and(|a| a.ends_with(".fifo")),
            fifo
        );
        assert_eq!(record.attributes.contains_key("MessageGroupId"), fifo);
        xmpp_lambda_shared::RequestEnvelope::from_json(record.body.as_deref().expect("body"))
            .expect("fixture body is a request envelope");
    }
}

#[tokio::test]
async fn function_url_reaches_the_bot_and_returns_its_answer_verbatim() {
    let bot = BotServer::start().await;
    let handler = Handler::new(proxy(&bot, Duration::from_secs(5)));

    let response = handler
        .handle(fixture("function_url_request.json"), None)
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 200);
    assert_eq!(
        response["headers"]["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(
        response["body"],
        json!({"body": "bot heard hello"}).to_string()
    );
    assert_eq!(response["isBase64Encoded"], false);

    let seen = bot.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(seen[0].request(), request(Some("hello")));

    let body = serde_json::to_string(&request(Some("status 404"))).expect("json");
    let response = handler
        .handle(url_event(&body), None)
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 404);
    assert_eq!(response["headers"]["content-type"], "text/plain");
    assert_eq!(response["body"], "scripted 404");

    let body = serde_json::to_string(&request(Some("plain"))).expect("json");
    let response = handler
        .handle(url_event(&body), None)
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 200);
    assert_eq!(response["headers"]["content-type"], "text/plain");
    assert_eq!(response["body"], "just text");
}

#[tokio::test]
async fn function_url_decodes_a_base64_body() {
    // Prosody labels its JSON form-urlencoded, so Lambda base64-encodes it.
    let handler = Handler::new(EchoBot);
    let body = serde_json::to_string(&request(Some("über <&>"))).expect("json");
    let mut event = url_event(&base64::engine::general_purpose::STANDARD.encode(body));
    event["isBase64Encoded"] = json!(true);
    event["headers"]["content-type"] = json!("application/x-www-form-urlencoded");
    let response = handler.handle(event, None).await.expect("answered");
    assert_eq!(response["statusCode"], 200);
    let reply: Value =
        serde_json::from_str(response["body"].as_str().expect("body")).expect("json");
    assert_eq!(reply, json!({"body": "Did you say über <&>?"}));
}

#[tokio::test]
async fn function_url_refuses_what_is_not_a_request() {
    let handler = Handler::new(EchoBot);
    let mut get = fixture("function_url_request.json");
    get["requestContext"]["http"]["method"] = json!("GET");
    let response = handler.handle(get, None).await.expect("answered");
    assert_eq!(response["statusCode"], 405);

    let half_request = r#"{"to":"a","from":"b","kind":"chat","stanza":"<message/>"}"#;
    for body in ["", "not json", half_request] {
        let response = handler
            .handle(url_event(body), None)
            .await
            .expect("answered");
        assert_eq!(response["statusCode"], 400, "{body:?}");
        assert_eq!(
            response["headers"]["content-type"],
            "text/plain; charset=utf-8"
        );
    }
    // Other JSON is a webhook: a bot without `on_event` sends nothing.
    let response = handler
        .handle(url_event(r#"{"to":"a"}"#), None)
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 204);
    let mut bad64 = url_event("%%%");
    bad64["isBase64Encoded"] = json!(true);
    let response = handler.handle(bad64, None).await.expect("answered");
    assert_eq!(response["statusCode"], 400);
    assert!(response["body"].as_str().expect("text").contains("base64"));
}

#[tokio::test]
async fn function_url_with_the_bot_down_is_a_bad_gateway() {
    let port = common::free_port();
    let down = ProxyBot::new(
        format!("http://127.0.0.1:{port}/").parse().expect("url"),
        Duration::from_secs(5),
    )
    .expect("proxy");
    let response = Handler::new(down)
        .handle(fixture("function_url_request.json"), None)
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 502);
}

#[tokio::test]
async fn direct_invoke_gets_the_bots_outcome() {
    let handler = Handler::new(EchoBot);
    let event = serde_json::to_value(request(Some("hi"))).expect("json");
    let outcome = handler.handle(event, None).await.expect("answered");
    assert_eq!(outcome["status"], 200);
    assert_eq!(outcome["content_type"], "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(outcome["body"].as_str().expect("body")).expect("json"),
        json!({"body": "Did you say hi?"})
    );
}

#[tokio::test]
async fn bad_event_shapes_are_clear_errors() {
    let handler = Handler::new(EchoBot);
    let cases = [
        (
            json!("hello"),
            "UnrecognisedEvent",
            "the event is a string, not a JSON object",
        ),
        (
            json!({"foo": 1}),
            "UnrecognisedEvent",
            "got an object with keys [foo]",
        ),
        (
            json!({"Records": [{"eventSource": "aws:s3", "s3": {}}]}),
            "UnrecognisedEvent",
            r#"Records from "aws:s3" are not supported"#,
        ),
        (
            json!({"requestContext": {"http": {"method": "POST"}}}),
            "InvalidFunctionUrlEvent",
            "invalid Function URL event",
        ),
        (
            json!({"to": "a", "from": "b", "kind": "chat", "stanza": "<x/>"}),
            "InvalidRequest",
            "unknown variant `chat`",
        ),
        (
            fixture("sqs_event_standard.json"),
            "ReplyQueueNotConfigured",
            "REPLY_QUEUE_URL is not set",
        ),
    ];
    for (event, kind, text) in cases {
        let error = handler
            .handle(event.clone(), None)
            .await
            .expect_err("refused");
        assert_eq!(error.kind(), kind, "{event}: {error}");
        assert!(error.to_string().contains(text), "{event}: {error}");
    }
    let mut no_id = fixture("sqs_event_standard.json");
    no_id["Records"][0]
        .as_object_mut()
        .expect("record")
        .remove("messageId");
    let error = Handler::new(EchoBot)
        .with_reply_queue("http://127.0.0.1:9/queue")
        .handle(no_id, None)
        .await
        .expect_err("refused");
    assert!(matches!(error, HandlerError::InvalidSqsEvent(_)), "{error}");
    assert!(
        error.to_string().contains("record 0 has no messageId"),
        "{error}"
    );
}

#[tokio::test]
async fn standard_batch_with_mixed_outcomes() {
    let moto = Moto::start();
    let replies_url = moto.queue("replies", &[]).await;
    let bot = BotServer::start().await;
    let handler = Handler::new(proxy(&bot, Duration::from_secs(1)))
        .with_reply_queue(&replies_url)
        .with_sqs_client(moto.client.clone());

    let event = sqs_event(
        "sqs_event_standard.json",
        "arn:aws:sqs:us-east-1:123456789012:requests",
        &[
            ("ok", envelope("e-ok", "hello")),
            ("e500", envelope("e-500", "status 500")),
            ("e429", envelope("e-429", "status 429")),
            ("e404", envelope("e-404", "status 404")),
            ("e204", envelope("e-204", "status 204")),
            ("slow", envelope("e-slow", "slow")),
            ("garbage", "not an envelope".into()),
            (
                "future",
                envelope("e-v2", "hello").replace(r#""v":1"#, r#""v":2"#),
            ),
        ],
    );
    let result = handler.handle(event, None).await.expect("answered");
    assert_eq!(
        failures(&result),
        ids(&["e500", "e429", "slow", "garbage", "future"])
    );

    let mut sent = replies(&moto.drain(&replies_url).await);
    sent.sort_by(|a, b| a.id.cmp(&b.id));
    let summary: Vec<(&str, u16, &str)> = sent
        .iter()
        .map(|r| (r.id.as_str(), r.response.status, r.response.body.as_str()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("e-204", 204, ""), // HTTP drops a 204's body
            ("e-404", 404, "scripted 404"),
            ("e-ok", 200, r#"{"body":"bot heard hello"}"#),
        ]
    );
    let ok = sent.iter().find(|r| r.id == "e-ok").expect("ok reply");
    assert_eq!(ok.request, request(Some("hello")));
    assert_eq!(
        ok.response.content_type.as_deref(),
        Some("application/json; charset=utf-8")
    );
    // The garbage and the future envelope never reached the bot.
    assert_eq!(bot.seen().len(), 6);
}

const FIFO_ARN: &str = "arn:aws:sqs:us-east-1:123456789012:requests.fifo";

/// A handler proxying to a scripted bot, replying on a FIFO queue of moto's.
struct FifoSetup {
    moto: Moto,
    replies_url: String,
    bot: BotServer,
    handler: Handler<ProxyBot>,
}

impl FifoSetup {
    /// With `max_receive_count`, the handler answers a last delivery.
    async fn start(max_receive_count: Option<u32>) -> FifoSetup {
        let moto = Moto::start();
        let replies_url = moto.queue("replies.fifo", &[]).await;
        let bot = BotServer::start().await;
        let mut handler = Handler::new(proxy(&bot, Duration::from_secs(5)))
            .with_reply_queue(&replies_url)
            .with_sqs_client(moto.client.clone());
        if let Some(count) = max_receive_count {
            handler = handler.with_max_receive_count(count);
        }
        FifoSetup {
            moto,
            replies_url,
            bot,
            handler,
        }
    }
}

fn fifo_envelope(id: &str, user: &str, text: &str) -> String {
    RequestEnvelope::new(id, request_from(user, text)).to_json()
}

fn asked(bot: &BotServer) -> Vec<String> {
    bot.seen()
        .iter()
        .map(|s| s.request().body.unwrap_or_else(|| "(no body)".into()))
        .collect()
}

#[tokio::test]
async fn fifo_batch_fails_only_the_rest_of_the_failing_conversation() {
    let FifoSetup {
        moto,
        replies_url,
        bot,
        handler,
    } = FifoSetup::start(None).await;
    let event = fifo_event(
        FIFO_ARN,
        &[
            ("b1", fifo_envelope("e-b1", "bob", "one")),
            ("a1", fifo_envelope("e-a1", "alice", "status 503")),
            ("c1", fifo_envelope("e-c1", "carol", "three")),
            ("a2", fifo_envelope("e-a2", "alice", "two")),
            ("b2", fifo_envelope("e-b2", "bob", "four")),
            ("a3", fifo_envelope("e-a3", "alice", "status 404")),
        ],
        1,
    );
    let result = handler.handle(event, None).await.expect("answered");
    // Alice's conversation waits behind her failed request; Bob's and
    // Carol's are done.
    assert_eq!(failures(&result), ids(&["a1", "a2", "a3"]));
    // a2 and a3 were not asked: answering them now would overtake a1.
    let mut asked = asked(&bot);
    asked.sort();
    assert_eq!(asked, ["four", "one", "status 503", "three"]);

    let messages = moto.drain(&replies_url).await;
    let sent = replies(&messages);
    let mut sent_ids: Vec<&str> = sent.iter().map(|r| r.id.as_str()).collect();
    let bobs: Vec<&str> = sent_ids
        .iter()
        .copied()
        .filter(|id| id.starts_with("e-b"))
        .collect();
    assert_eq!(
        bobs,
        ["e-b1", "e-b2"],
        "one conversation's replies in order"
    );
    sent_ids.sort();
    assert_eq!(sent_ids, ["e-b1", "e-b2", "e-c1"]);
    for (message, reply) in messages.iter().zip(&sent) {
        let attributes = message.attributes().expect("system attributes");
        assert_eq!(
            attributes
                .get(&MessageSystemAttributeName::MessageGroupId)
                .map(String::as_str),
            Some(conversation_id(&reply.request).as_str())
        );
        assert_eq!(
            attributes
                .get(&MessageSystemAttributeName::MessageDeduplicationId)
                .map(String::as_str),
            Some(reply.id.as_str())
        );
    }
}

#[tokio::test]
async fn fifo_batch_goes_on_past_a_record_that_is_not_an_envelope() {
    let FifoSetup {
        moto,
        replies_url,
        bot,
        handler,
    } = FifoSetup::start(None).await;
    // Both in the fixture's one message group.
    let event = sqs_event(
        "sqs_event_fifo.json",
        FIFO_ARN,
        &[("a", "{}".into()), ("b", envelope("e-b", "two"))],
    );
    let result = handler.handle(event, None).await.expect("answered");
    // The unreadable record goes on to the dead-letter queue; holding the
    // conversation back behind it would only send the rest there too.
    assert_eq!(failures(&result), ids(&["a"]));
    assert_eq!(asked(&bot), ["two"]);
    let sent = replies(&moto.drain(&replies_url).await);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, "e-b");
}

#[tokio::test]
async fn on_the_last_delivery_a_failure_is_answered_not_dead_lettered() {
    let FifoSetup {
        moto,
        replies_url,
        bot: _bot,
        handler,
    } = FifoSetup::start(Some(3)).await;
    let records = [
        ("a1", fifo_envelope("e-a1", "alice", "status 503")),
        ("a2", fifo_envelope("e-a2", "alice", "two")),
        ("q1", RequestEnvelope::new("e-q1", iq_request()).to_json()),
        ("b1", fifo_envelope("e-b1", "bob", "status 500")),
    ];

    // Before the last delivery, failures are retried as ever.
    let second = handler
        .handle(fifo_event(FIFO_ARN, &records, 2), None)
        .await
        .expect("answered");
    assert_eq!(failures(&second), ids(&["a1", "a2", "q1", "b1"]));
    assert!(moto.drain(&replies_url).await.is_empty());

    // On the last one, the bot's failure is the answer.
    let last = handler
        .handle(fifo_event(FIFO_ARN, &records, 3), None)
        .await
        .expect("answered");
    assert_eq!(failures(&last), ids(&[]));
    let mut sent = replies(&moto.drain(&replies_url).await);
    sent.sort_by(|a, b| a.id.cmp(&b.id));
    let outcomes: Vec<(&str, u16)> = sent
        .iter()
        .map(|r| (r.id.as_str(), r.response.status))
        .collect();
    assert_eq!(
        outcomes,
        [("e-a1", 503), ("e-a2", 200), ("e-b1", 500), ("e-q1", 503)]
    );
    // What the connector makes of them: the IQ gets the error reply XMPP
    // requires, the message its sender's error.
    let mut ids = 0;
    let mut new_id = || {
        ids += 1;
        format!("r{ids}")
    };
    let iq = sent
        .iter()
        .find(|r| r.id == "e-q1")
        .expect("the IQ's reply");
    let (stanzas, refused) =
        stanzas_to_send(&iq.request, &iq.response, "bot.localhost", &mut new_id);
    assert!(refused.is_none(), "{refused:?}");
    let [stanza] = stanzas.as_slice() else {
        panic!("one stanza for the IQ: {stanzas:?}");
    };
    assert_eq!(
        (stanza.name(), stanza.attr("type"), stanza.attr("id")),
        ("iq", Some("error"), Some("q1"))
    );
    let error = stanza
        .get_child("error", COMPONENT_NS)
        .expect("an <error/>");
    assert!(
        error.has_child("remote-server-timeout", STANZAS_NS),
        "{stanza:?}"
    );
    let message = sent.iter().find(|r| r.id == "e-b1").expect("bob's reply");
    let (stanzas, _) = stanzas_to_send(
        &message.request,
        &message.response,
        "bot.localhost",
        &mut new_id,
    );
    assert_eq!(stanzas.len(), 1);
    assert_eq!(stanzas[0].attr("type"), Some("error"));
    assert_eq!(stanzas[0].attr("to"), Some("bob@localhost/phone"));
}

#[tokio::test]
async fn a_request_held_behind_a_retry_on_its_last_delivery_gets_the_no_response_error() {
    let FifoSetup {
        moto,
        replies_url,
        bot,
        handler,
    } = FifoSetup::start(Some(3)).await;
    let mut event = fifo_event(
        FIFO_ARN,
        &[
            ("a1", fifo_envelope("e-a1", "alice", "status 503")),
            ("a2", fifo_envelope("e-a2", "alice", "two")),
            ("g", "garbage".into()),
        ],
        2,
    );
    // a2 has been handed out more often than a1 (SQS's counts are
    // approximate), and the garbage is on its last delivery too.
    event["Records"][1]["attributes"]["ApproximateReceiveCount"] = json!("3");
    event["Records"][2]["attributes"]["ApproximateReceiveCount"] = json!("3");
    let result = handler.handle(event, None).await.expect("answered");
    // a1 is retried; a2 is answered without asking the bot (that would
    // overtake a1); the garbage has nobody to answer and is dead-lettered.
    assert_eq!(failures(&result), ids(&["a1", "g"]));
    assert_eq!(asked(&bot), ["status 503"]);
    let sent = replies(&moto.drain(&replies_url).await);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].id.as_str(), sent[0].response.status), ("e-a2", 0));
}

#[tokio::test]
async fn a_reply_that_cannot_be_sent_is_a_failure() {
    let moto = Moto::start();
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint);
    let handler = Handler::new(EchoBot)
        .with_reply_queue(&missing)
        .with_sqs_client(moto.client.clone());
    let event = sqs_event(
        "sqs_event_standard.json",
        "arn:aws:sqs:us-east-1:123456789012:requests",
        &[("a", envelope("e-a", "one")), ("b", envelope("e-b", "two"))],
    );
    let result = handler.handle(event, None).await.expect("answered");
    assert_eq!(failures(&result), ids(&["a", "b"]));
}

#[tokio::test]
async fn large_batches_are_sent_ten_at_a_time() {
    let moto = Moto::start();
    let replies_url = moto.queue("replies", &[]).await;
    let handler = Handler::new(EchoBot)
        .with_reply_queue(&replies_url)
        .with_sqs_client(moto.client.clone());
    let records: Vec<(String, String)> = (0..23)
        .map(|i| {
            (
                format!("m{i}"),
                envelope(&format!("e{i}"), &format!("n{i}")),
            )
        })
        .collect();
    let borrowed: Vec<(&str, String)> = records
        .iter()
        .map(|(id, body)| (id.as_str(), body.clone()))
        .collect();
    let event = sqs_event(
        "sqs_event_standard.json",
        "arn:aws:sqs:us-east-1:123456789012:requests",
        &borrowed,
    );
    let result = handler.handle(event, None).await.expect("answered");
    assert!(failures(&result).is_empty(), "{result}");
    let sent: BTreeSet<String> = replies(&moto.drain(&replies_url).await)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(sent, (0..23).map(|i| format!("e{i}")).collect());
}

#[tokio::test]
async fn a_bot_slower_than_the_deadline_is_retried_in_time() {
    let moto = Moto::start();
    let replies_url = moto.queue("replies", &[]).await;
    let bot = BotServer::start().await;
    let handler = Handler::new(proxy(&bot, Duration::from_secs(30)))
        .with_reply_queue(&replies_url)
        .with_sqs_client(moto.client.clone());
    let event = sqs_event(
        "sqs_event_standard.json",
        "arn:aws:sqs:us-east-1:123456789012:requests",
        &[
            ("fast", envelope("e-fast", "hi")),
            ("slow", envelope("e-slow", "slow")),
        ],
    );
    let started = Instant::now();
    let deadline = started + Duration::from_millis(3500);
    let result = handler
        .handle(event, Some(deadline))
        .await
        .expect("answered");
    // Answered before the invocation's deadline, not after the bot's 30 s.
    assert!(Instant::now() < deadline, "took {:?}", started.elapsed());
    assert_eq!(failures(&result), ids(&["slow"]));
    let sent = replies(&moto.drain(&replies_url).await);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, "e-fast");
}

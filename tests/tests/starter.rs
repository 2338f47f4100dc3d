//! The starter (`starter/`, a bot of your own on xmpp-lambda-function) end
//! to end: an XMPP client talks to it through Prosody, the connector, moto's
//! queues, the local SQS trigger and cargo lambda's emulator running the
//! starter's binary, and its schedule makes it speak first, once per
//! scheduled time. (`scripts/validate-template.sh` builds it with `sam
//! build` from its own template.)

use std::time::Duration;

use serde_json::json;
use xmpp_lambda_tests::{
    Connector, LambdaFunction, Moto, Prosody, Result, SqsTrigger, XmppServer, body_of, login,
};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_secs(2);

#[tokio::test]
async fn the_starter_bot_answers_and_speaks_first_once_per_schedule() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    // Queues as the starter's template makes them (FIFO; the reply queue
    // deduplicates by content).
    let requests = moto
        .create_queue_with("requests.fifo", &[("VisibilityTimeout", "10")])
        .await?;
    let replies = moto
        .create_queue_with("replies.fifo", &[("ContentBasedDeduplication", "true")])
        .await?;
    let mut alice = login(&prosody, "alice").await?;
    let alice_jid = alice.jid().to_owned();
    let function = LambdaFunction::start_bin(
        "my-xmpp-bot",
        &moto,
        &replies,
        &[("RECIPIENTS", &alice_jid), ("MAX_RECEIVE_COUNT", "5")],
    )
    .await?;
    let _trigger = SqsTrigger::start(&moto, &requests, &function, 10).await?;
    let env = moto.sqs_transport_env(&requests, &replies);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let connector = Connector::start_for(&prosody, &env).await?;
    connector
        .wait_for_log("component link established", WAIT)
        .await?;

    let bot = format!("counter@{}", prosody.component_domain());
    alice.send_message(&bot, "hello there world").await?;
    let reply = alice.expect_message("the word count", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("3 words."));
    assert_eq!(reply.attr("from"), Some(bot.as_str()));

    // The schedule fires, as Scheduler delivers it; Lambda retries the run.
    let fired = json!({"schedule": "my-xmpp-bot-schedule", "time": "2026-12-24T08:00:00Z"});
    for _ in 0..2 {
        let (status, answer) = function.invoke(&fired).await?;
        assert_eq!(status, 200, "{answer}");
    }
    let greeting = alice.expect_message("the scheduled greeting", WAIT).await?;
    assert_eq!(
        body_of(&greeting).as_deref(),
        Some("Good morning! Say help to see what I do.")
    );
    assert_eq!(greeting.attr("from"), Some(prosody.component_domain()));
    // Once: the retried run's envelope is a repeat.
    if let Some(again) = alice.recv_message(QUIET).await {
        panic!("a second message: {again:?}");
    }
    Ok(())
}

//! A bot's streamed answer (DESIGN §11) from the function to a real XMPP
//! client, both ways: the connector's http transport posting to the
//! function's streaming Function URL (cargo lambda's emulator, with
//! `FUNCTION_URL_INVOKE_MODE=RESPONSE_STREAM`), and the sqs transport with
//! the function writing one reply envelope per line to moto's reply queue.
//! The bot is the function crate's `story_bot` example, which writes a
//! short story a word at a time, each paragraph one message grown by
//! XEP-0308 corrections.

use std::collections::HashMap;
use std::time::Duration;

use minidom::Element;
use serde_json::json;
use tokio::time::Instant;
use xmpp_lambda_tests::{
    Connector, LambdaFunction, Moto, Prosody, QueueConsumer, RawBot, Result, SqsTrigger,
    XmppClient, XmppServer, body_of, login, ndjson_answer,
};

const WAIT: Duration = Duration::from_secs(20);
const LINK_UP: &str = "component link established";
const CORRECTION_NS: &str = "urn:xmpp:message-correct:0";
/// The model's time per word: the story's 50 words take about 5 s.
const WORD_DELAY_MS: &str = "100";

/// The story as a person reads it in the end, one message per paragraph.
fn story() -> Vec<String> {
    vec![
        "Once upon a time someone sent a bot the words \u{201c}dragons\u{201d}, and the bot \
         began to write."
            .to_owned(),
        "It wrote one word at a time, the way a language model does, and every word appeared \
         as soon as it existed, so nobody wondered whether the bot was still there."
            .to_owned(),
        "The end.".to_owned(),
    ]
}

/// What alice saw of the story: each message's final text (corrections
/// applied by the id they name), when the first message came, and when
/// the last text did.
struct Seen {
    texts: Vec<String>,
    first: Duration,
    finished: Duration,
    corrections: usize,
}

/// Sends "dragons" to the bot and reads messages until the story is told.
async fn read_story(alice: &mut XmppClient, bot: &str) -> Result<Seen> {
    let sent = Instant::now();
    alice.send_message(bot, "dragons").await?;
    let mut order: Vec<String> = Vec::new();
    let mut texts: HashMap<String, String> = HashMap::new();
    let mut first = None;
    let mut corrections = 0;
    let done = story();
    loop {
        let message: Element = alice.expect_message("the story", WAIT).await?;
        let Some(body) = body_of(&message) else {
            continue;
        };
        first.get_or_insert(sent.elapsed());
        let id = match message.get_child("replace", CORRECTION_NS) {
            Some(replace) => {
                corrections += 1;
                replace
                    .attr("id")
                    .ok_or("a correction without an id")?
                    .to_owned()
            }
            None => {
                let id = message
                    .attr("id")
                    .ok_or("a message without an id")?
                    .to_owned();
                order.push(id.clone());
                id
            }
        };
        if !order.contains(&id) {
            return Err(format!("a correction of {id}, which was never sent").into());
        }
        texts.insert(id, body);
        let now: Vec<String> = order.iter().map(|id| texts[id].clone()).collect();
        if now == done {
            return Ok(Seen {
                texts: now,
                first: first.unwrap_or_default(),
                finished: sent.elapsed(),
                corrections,
            });
        }
    }
}

fn assert_told_as_written(seen: &Seen, how: &str) {
    println!(
        "{how}: first message after {:?}, the whole story after {:?}, {} corrections",
        seen.first, seen.finished, seen.corrections
    );
    assert_eq!(seen.texts, story());
    assert!(
        seen.first < Duration::from_millis(2000),
        "{how}: the first words after {:?}",
        seen.first
    );
    assert!(
        seen.finished - seen.first > Duration::from_secs(3),
        "{how}: all at once ({:?} to {:?})",
        seen.first,
        seen.finished
    );
    // The connector sends a correction at most once a second (and the
    // last text of each message): a few, where the bot wrote 47.
    assert!(
        (3..=20).contains(&seen.corrections),
        "{how}: {} corrections",
        seen.corrections
    );
}

#[tokio::test]
async fn a_streaming_function_url_tells_the_story_as_it_is_written() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    let replies = moto.create_queue("replies").await?;
    let function = LambdaFunction::start_example(
        "story_bot",
        &moto,
        &replies,
        &[
            ("FUNCTION_URL_INVOKE_MODE", "RESPONSE_STREAM"),
            ("STORY_WORD_DELAY_MS", WORD_DELAY_MS),
        ],
    )
    .await?;
    let url = format!("{}/lambda-url/_/", function.endpoint());
    let connector = Connector::start_for(&prosody, &[("COMPONENT_POST_URL", &url)]).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = format!("story@{}", prosody.component_domain());
    let seen = read_story(&mut alice, &bot).await?;
    assert_told_as_written(&seen, "http transport, streaming Function URL");
    Ok(())
}

#[tokio::test]
async fn over_sqs_the_story_arrives_as_it_is_written() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    let requests = moto
        .create_queue_with("requests.fifo", &[("VisibilityTimeout", "30")])
        .await?;
    let replies = moto
        .create_queue_with("replies.fifo", &[("ContentBasedDeduplication", "true")])
        .await?;
    let function = LambdaFunction::start_example(
        "story_bot",
        &moto,
        &replies,
        &[("STORY_WORD_DELAY_MS", WORD_DELAY_MS)],
    )
    .await?;
    let _trigger = SqsTrigger::start(&moto, &requests, &function, 10).await?;
    let env = moto.sqs_transport_env(&requests, &replies);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let connector = Connector::start_for(&prosody, &env).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = format!("story@{}", prosody.component_domain());
    let seen = read_story(&mut alice, &bot).await?;
    assert_told_as_written(&seen, "sqs transport");
    // Every part was applied and deleted.
    moto.wait_depth(&replies, 0, WAIT).await?;
    Ok(())
}

/// How the connector reaches the function.
#[derive(Debug, Clone, Copy)]
enum Way {
    /// Its streaming Function URL (http transport).
    FunctionUrl,
    /// The request and reply queues (sqs transport).
    Queues,
}

#[tokio::test]
async fn the_proxy_passes_a_bots_stream_through_either_way() -> Result<()> {
    let gap = Duration::from_millis(1500);
    let bot = RawBot::start(move |_| {
        let line = |body: &str| json!({ "body": body }).to_string();
        ndjson_answer(&[
            (Duration::ZERO, line("one")),
            (gap, line("two")),
            (gap, line("three")),
        ])
    })
    .await?;
    for way in [Way::FunctionUrl, Way::Queues] {
        let prosody = Prosody::start().await?;
        let moto = Moto::start().await?;
        let requests = moto
            .create_queue_with("requests", &[("VisibilityTimeout", "30")])
            .await?;
        let replies = moto.create_queue("replies").await?;
        let proxy = [("BOT", "proxy"), ("COMPONENT_POST_URL", bot.url())];
        let mut connector_env: Vec<(&'static str, String)> = Vec::new();
        let mut _function = None;
        let mut _consumer = None;
        match way {
            Way::FunctionUrl => {
                let mut env = proxy.to_vec();
                env.push(("FUNCTION_URL_INVOKE_MODE", "RESPONSE_STREAM"));
                let function = LambdaFunction::start(&moto, &replies, &env).await?;
                connector_env.push((
                    "COMPONENT_POST_URL",
                    format!("{}/lambda-url/_/", function.endpoint()),
                ));
                _function = Some(function);
            }
            Way::Queues => {
                _consumer = Some(QueueConsumer::start(&moto, &requests, &replies, &proxy).await?);
                connector_env = moto.sqs_transport_env(&requests, &replies);
            }
        }
        let env: Vec<(&str, &str)> = connector_env
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        let connector = Connector::start_for(&prosody, &env).await?;
        connector.wait_for_log(LINK_UP, WAIT).await?;
        let mut alice = login(&prosody, "alice").await?;
        let sent = Instant::now();
        alice
            .send_message(&format!("echo@{}", prosody.component_domain()), "count")
            .await?;
        let mut ids = Vec::new();
        for (n, expected) in ["one", "two", "three"].into_iter().enumerate() {
            let message = alice.expect_message(expected, WAIT).await?;
            let after = sent.elapsed();
            assert_eq!(body_of(&message).as_deref(), Some(expected), "{way:?}");
            println!("{way:?}: {expected:?} after {after:?}");
            if n == 0 {
                assert!(
                    after < Duration::from_millis(1500),
                    "{way:?}: first after {after:?}"
                );
            } else {
                let earliest = gap * n as u32 - Duration::from_millis(300);
                assert!(after >= earliest, "{way:?}: message {n} after {after:?}");
            }
            ids.push(message.attr("id").unwrap_or_default().to_owned());
        }
        ids.dedup();
        assert_eq!(ids.len(), 3, "{way:?}: distinct ids {ids:?}");
    }
    assert_eq!(bot.requests(), 2, "one request each way");
    Ok(())
}

//! One connector, many bots (DESIGN §9), end to end: requests to different
//! localparts land at different bots (HTTP URLs and request queues), each
//! with its own timeout and signing secret, and a bot that is down or slow
//! affects only its own users.

use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::time::Instant;
use xmpp_lambda_shared::signing::{SIGNATURE_HEADER, TIMESTAMP_HEADER, unix_seconds, verify};
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Moto, Prosody, QueueConsumer, Result, TempDir,
    XmppClient, XmppServer, assert_connection_failure, assert_stanza_error, body_of, echo_reply,
    login,
};

const WAIT: Duration = Duration::from_secs(20);
const LINK_UP: &str = "component link established";
const WEATHER_SECRET: &str = "weather-secret-0123456789";
const DEFAULT_SECRET: &str = "default-secret-0123456789";

/// A bot that answers `text` to requests signed with `secret` (401 to any
/// other), after `delay`.
async fn signed_bot(
    text: &'static str,
    secret: &'static str,
    delay: Duration,
) -> Result<BotServer> {
    BotServer::start(move |request: BotRequest| async move {
        let now = unix_seconds(SystemTime::now());
        let checked = verify(
            secret,
            request.header(TIMESTAMP_HEADER),
            request.header(SIGNATURE_HEADER),
            &request.body,
            now,
        );
        match checked {
            Ok(()) => BotReply::json(json!({ "body": text })).with_delay(delay),
            Err(_) => BotReply::status(401),
        }
    })
    .await
}

fn jid(server: &impl XmppServer, localpart: &str) -> String {
    format!("{localpart}@{}", server.component_domain())
}

async fn ask(client: &mut XmppClient, to: &str, body: &str) -> Result<minidom::Element> {
    let id = client.send_message(to, body).await?;
    client
        .recv_until(WAIT, |stanza| {
            stanza.name() == "message" && stanza.attr("id") != Some(id.as_str())
        })
        .await
        .ok_or_else(|| format!("no answer from {to}").into())
}

/// A connector started with a TOML config file holding `text`, plus `env`.
async fn connector_with_file(
    prosody: &Prosody,
    text: &str,
    env: &[(&str, &str)],
) -> Result<(Connector, TempDir)> {
    let dir = TempDir::new("routes")?;
    let path = dir.path().join("connector.toml");
    std::fs::write(&path, text)?;
    let path = path.to_string_lossy().into_owned();
    let component = prosody.component_env();
    let mut all: Vec<(&str, &str)> = component.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(env);
    let connector = Connector::start_with_args(&["--config", &path], &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok((connector, dir))
}

#[tokio::test]
async fn http_routes_reach_their_own_bots_and_a_slow_one_delays_only_its_users() -> Result<()> {
    let prosody = Prosody::start().await?;
    let echo_bot =
        BotServer::start(|request: BotRequest| async move { echo_reply(&request.json) }).await?;
    // The weather bot hangs for longer than its route's timeout.
    let weather_bot = signed_bot("sunny", WEATHER_SECRET, Duration::ZERO).await?;
    let slow_weather = signed_bot("late", WEATHER_SECRET, Duration::from_secs(30)).await?;
    let default_bot = signed_bot("default bot here", DEFAULT_SECRET, Duration::ZERO).await?;
    let config = format!(
        "component_post_url = \"{default}\"\n\
         component_post_secret = \"{DEFAULT_SECRET}\"\n\
         [[route]]\nlocalpart = \"echo\"\nurl = \"{echo}\"\n\
         [[route]]\nlocalpart = \"weather*\"\nurl = \"{weather}\"\nsecret = \"{WEATHER_SECRET}\"\n\
         [[route]]\nlocalpart = \"weather-slow\"\nurl = \"{slow}\"\nsecret = \"{WEATHER_SECRET}\"\ntimeout = 1.5\n",
        default = default_bot.url(),
        echo = echo_bot.url(),
        weather = weather_bot.url(),
        slow = slow_weather.url(),
    );
    let (connector, _dir) = connector_with_file(&prosody, &config, &[]).await?;
    let mut alice = login(&prosody, "alice").await?;

    let echoed = ask(&mut alice, &jid(&prosody, "echo"), "hi").await?;
    assert_eq!(body_of(&echoed).as_deref(), Some("Did you say hi?"));
    // A prefix route, signed with its own secret.
    for localpart in ["weather", "weather-eu"] {
        let answer = ask(&mut alice, &jid(&prosody, localpart), "forecast?").await?;
        assert_eq!(body_of(&answer).as_deref(), Some("sunny"), "{localpart}");
    }
    // Everything else: the default bot, signed with the default secret.
    let answer = ask(&mut alice, &jid(&prosody, "anyone"), "hello").await?;
    assert_eq!(body_of(&answer).as_deref(), Some("default bot here"));
    assert!(
        echo_bot
            .requests()
            .iter()
            .all(|r| r.json["to"] == json!(jid(&prosody, "echo")))
    );
    assert_eq!(weather_bot.requests().len(), 2);
    assert_eq!(default_bot.requests().len(), 1);

    // The slow bot's user waits for its route's timeout; echo's users do
    // not wait for it.
    let mut bob = login(&prosody, "bob").await?;
    let slow_id = bob
        .send_message(&jid(&prosody, "weather-slow"), "forecast?")
        .await?;
    let started = Instant::now();
    let echoed = ask(&mut alice, &jid(&prosody, "echo"), "still there?").await?;
    assert_eq!(
        body_of(&echoed).as_deref(),
        Some("Did you say still there??")
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let timed_out = bob.expect_message("the slow route's timeout", WAIT).await?;
    assert_connection_failure(&timed_out, &slow_id);
    assert!(started.elapsed() >= Duration::from_millis(1400));
    let routes = connector
        .wait_for_log("requests are routed by localpart", WAIT)
        .await?;
    assert!(routes.contains("weather-slow"), "{routes}");
    Ok(())
}

#[tokio::test]
async fn without_a_default_other_localparts_have_no_bot() -> Result<()> {
    let prosody = Prosody::start().await?;
    let echo_bot = BotServer::echo().await?;
    let routes = format!("echo={}", echo_bot.url());
    let connector = Connector::start_for(&prosody, &[("COMPONENT_ROUTES", &routes)]).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let mut alice = login(&prosody, "alice").await?;
    let answer = ask(&mut alice, &jid(&prosody, "echo"), "hi").await?;
    assert_eq!(body_of(&answer).as_deref(), Some("Did you say hi?"));
    let id = alice
        .send_message(&jid(&prosody, "nobody"), "hello?")
        .await?;
    let refused = alice.expect_message("no bot", WAIT).await?;
    assert_stanza_error(&refused, &id, "cancel", "service-unavailable", None);
    assert_eq!(echo_bot.requests().len(), 1);
    Ok(())
}

#[tokio::test]
async fn sqs_routes_reach_their_own_queues_and_functions() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    let echo_requests = moto.create_queue("echo-requests").await?;
    let weather_requests = moto.create_queue("weather-requests").await?;
    let replies = moto.create_queue("replies").await?;
    let weather_bot =
        BotServer::start(|_| async { BotReply::json(json!({"body": "sunny"})) }).await?;
    let _echo = QueueConsumer::start(&moto, &echo_requests, &replies, &[("BOT", "echo")]).await?;
    let weather_url = weather_bot.url();
    let _weather = QueueConsumer::start(
        &moto,
        &weather_requests,
        &replies,
        &[("BOT", "proxy"), ("COMPONENT_POST_URL", &weather_url)],
    )
    .await?;
    let config = format!(
        "transport = \"sqs\"\nreply_queue_url = \"{replies}\"\n\
         [[route]]\nlocalpart = \"echo\"\nrequest_queue_url = \"{echo_requests}\"\n\
         [[route]]\nlocalpart = \"weather\"\nrequest_queue_url = \"{weather_requests}\"\n"
    );
    let aws = moto.aws_env();
    let env: Vec<(&str, &str)> = aws.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_connector, _dir) = connector_with_file(&prosody, &config, &env).await?;
    let mut alice = login(&prosody, "alice").await?;

    let echoed = ask(&mut alice, &jid(&prosody, "echo"), "hi").await?;
    assert_eq!(body_of(&echoed).as_deref(), Some("Did you say hi?"));
    let weather = ask(&mut alice, &jid(&prosody, "weather"), "forecast?").await?;
    assert_eq!(body_of(&weather).as_deref(), Some("sunny"));
    let asked = weather_bot.requests();
    assert_eq!(asked.len(), 1, "only weather's request reached its bot");
    assert_eq!(asked[0].json["to"], json!(jid(&prosody, "weather")));
    Ok(())
}

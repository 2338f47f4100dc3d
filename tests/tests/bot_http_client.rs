//! The http transport's own HTTP client, end to end: Prosody, the
//! connector binary, an XMPP client, and bots behind HTTPS, behind a proxy
//! named in the environment, and behind credentials in the URL.
//!
//! A Lambda Function URL is HTTPS: the connector must verify the bot's
//! certificate against the platform's trust (here `SSL_CERT_FILE`, a CA made
//! for the test), keep the connection open between requests, and refuse a
//! bot it cannot trust without sending it anything.

use std::time::Duration;

use xmpp_lambda_tests::{
    BotServer, Connector, Prosody, Result, TestCa, TlsFront, XmppServer, assert_stanza_error,
    body_of, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";

/// The connector linked to `prosody`, posting to `url`, once its link is up.
async fn connector(prosody: &Prosody, url: &str, env: &[(&str, &str)]) -> Result<Connector> {
    let mut all = vec![("COMPONENT_POST_URL", url)];
    all.extend_from_slice(env);
    let connector = Connector::start_for(prosody, &all).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

#[tokio::test]
async fn an_https_bot_is_answered_over_one_kept_connection() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let ca = TestCa::create()?;
    let bot = BotServer::echo().await?;
    let front = TlsFront::start(&ca, bot.address()).await?;
    let ca_file = ca.ca_file();
    let ca_file = ca_file.to_str().ok_or("temp path is not UTF-8")?;
    let _connector = connector(&prosody, &front.url(), &[("SSL_CERT_FILE", ca_file)]).await?;

    let echo = format!("echo@{}", prosody.component_domain());
    for n in 0..3 {
        let said = format!("secure {n}");
        alice.send_message(&echo, &said).await?;
        let reply = alice.expect_message(&said, WAIT).await?;
        assert_eq!(
            body_of(&reply).as_deref(),
            Some(format!("Did you say {said}?").as_str())
        );
    }
    assert_eq!(front.handshakes(), 1, "one TLS connection for all three");
    let requests = bot.wait_for_requests(3, WAIT).await?;
    let port = front.url().split(':').nth(2).unwrap_or_default().to_owned();
    let host = format!("localhost:{}", port.trim_end_matches("/bot"));
    for request in &requests {
        assert_eq!(request.path, "/bot");
        assert_eq!(request.header("host"), Some(host.as_str()));
        assert_eq!(request.content_type(), Some("application/json"));
        assert!(
            request
                .header("user-agent")
                .is_some_and(|agent| agent.starts_with("xmpp-lambda-connector/")),
            "{:?}",
            request.headers
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_bot_whose_certificate_is_not_trusted_gets_nothing_and_the_user_an_error() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let ca = TestCa::create()?;
    // The connector trusts another authority only.
    let other = TestCa::create()?;
    let bot = BotServer::echo().await?;
    let front = TlsFront::start(&ca, bot.address()).await?;
    let other_file = other.ca_file();
    let other_file = other_file.to_str().ok_or("temp path is not UTF-8")?;
    let connector = connector(
        &prosody,
        &front.url(),
        &[
            ("SSL_CERT_FILE", other_file),
            ("COMPONENT_POST_TIMEOUT", "1"),
        ],
    )
    .await?;

    let id = alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "trust me")
        .await?;
    let reply = alice.expect_message("connection failure", WAIT).await?;
    assert_stanza_error(
        &reply,
        &id,
        "cancel",
        "remote-server-timeout",
        Some("Connection failure"),
    );
    assert!(bot.requests().is_empty(), "the untrusted bot got a request");
    assert_eq!(front.handshakes(), 0);
    let line = connector
        .wait_for_log("no response from the bot", WAIT)
        .await?;
    assert!(
        line.contains("certificate"),
        "the log does not say why: {line}"
    );
    Ok(())
}

#[tokio::test]
async fn a_proxy_named_in_the_environment_carries_the_requests() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    // The "proxy" answers itself, as the bot: what matters is that the
    // request for a host nobody can resolve reached it.
    let proxy = BotServer::echo().await?;
    let proxy_url = format!("http://{}", proxy.address());
    let connector = connector(
        &prosody,
        "http://bot.invalid/bot",
        &[("HTTP_PROXY", proxy_url.as_str())],
    )
    .await?;
    connector
        .wait_for_log("requests to the bot go through the proxy", WAIT)
        .await?;

    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "via proxy")
        .await?;
    let reply = alice.expect_message("the proxied answer", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say via proxy?"));
    let requests = proxy.wait_for_requests(1, WAIT).await?;
    assert_eq!(requests[0].header("host"), Some("bot.invalid"));
    Ok(())
}

#[tokio::test]
async fn credentials_in_the_url_are_sent_as_basic_authorization() -> Result<()> {
    let prosody = Prosody::start().await?;
    let mut alice = login(&prosody, "alice").await?;
    let bot = BotServer::echo().await?;
    let url = format!("http://bot:pa%20ss@{}/bot", bot.address());
    let _connector = connector(&prosody, &url, &[]).await?;

    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), "knock")
        .await?;
    alice.expect_message("the answer", WAIT).await?;
    let requests = bot.wait_for_requests(1, WAIT).await?;
    // base64("bot:pa ss")
    assert_eq!(
        requests[0].header("authorization"),
        Some("Basic Ym90OnBhIHNz")
    );
    Ok(())
}

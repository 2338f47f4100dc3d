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
    BotServer, Connector, Prosody, Result, TestCa, TlsFront, XmppClient, XmppServer,
    assert_connection_failure, body_of, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);

/// The connector linked to `prosody`, posting to `url`.
async fn connector(prosody: &Prosody, url: &str, env: &[(&str, &str)]) -> Result<Connector> {
    Connector::linked_to(prosody, &[&[("COMPONENT_POST_URL", url)], env].concat()).await
}

/// Says `body` to the echo bot and returns the answer's body.
async fn ask_echo(alice: &mut XmppClient, prosody: &Prosody, body: &str) -> Result<String> {
    alice
        .send_message(&format!("echo@{}", prosody.component_domain()), body)
        .await?;
    let reply = alice.expect_message(body, WAIT).await?;
    body_of(&reply).ok_or_else(|| format!("no body in {reply:?}").into())
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

    for n in 0..3 {
        let said = format!("secure {n}");
        let answer = ask_echo(&mut alice, &prosody, &said).await?;
        assert_eq!(answer, format!("Did you say {said}?"));
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
    assert_connection_failure(&reply, &id);
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

    let answer = ask_echo(&mut alice, &prosody, "via proxy").await?;
    assert_eq!(answer, "Did you say via proxy?");
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

    ask_echo(&mut alice, &prosody, "knock").await?;
    let requests = bot.wait_for_requests(1, WAIT).await?;
    // base64("bot:pa ss")
    assert_eq!(
        requests[0].header("authorization"),
        Some("Basic Ym90OnBhIHNz")
    );
    Ok(())
}

//! SigV4 signing of the connector's requests to a Function URL with
//! `AuthType: AWS_IAM`.
//!
//! First the test-side checker ([`xmpp_lambda_tests::sigv4`]) is proven
//! against AWS's published SigV4 test suite. Then the real connector posts
//! to a bot that, like Lambda, recomputes every signature with that checker
//! and answers 403 when it does not match: the echo reaching the XMPP user
//! shows the connector signs right, and a wrong secret gives the user the
//! 403 error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;
use xmpp_lambda_tests::sigv4::{self, SigV4Key};
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Prosody, Result, XmppServer,
    assert_connection_failure, assert_stanza_error, body_of, echo_reply, login,
};

const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";

/// The published test suite's credentials, region and service.
fn suite_key(session_token: Option<&str>) -> SigV4Key {
    SigV4Key {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: session_token.map(str::to_owned),
        region: "us-east-1".into(),
        service: "service".into(),
    }
}

/// A request of the test suite as a bot would have received it.
fn suite_request(method: &str, headers: &[(&str, &str)], body: &[u8]) -> BotRequest {
    BotRequest {
        method: method.into(),
        path: "/".into(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned()))
            .collect(),
        body: body.to_vec(),
        json: serde_json::Value::Null,
    }
}

/// `get-vanilla`, `post-vanilla` and `get-vanilla-with-session-token` of
/// the published suite verify with the published signatures, and fail with
/// one character of the signature, the secret or the token changed.
#[test]
fn checker_accepts_the_published_vanilla_signatures() {
    let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
    let scope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
    let cases = [
        (
            "GET",
            None,
            format!(
                "{scope}, SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            ),
        ),
        (
            "POST",
            None,
            format!(
                "{scope}, SignedHeaders=host;x-amz-date, \
                 Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            ),
        ),
        (
            "GET",
            Some(token),
            format!(
                "{scope}, SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            ),
        ),
    ];
    for (method, session_token, authorization) in cases {
        let mut headers = vec![
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", authorization.as_str()),
        ];
        if let Some(token) = session_token {
            headers.push(("X-Amz-Security-Token", token));
        }
        let request = suite_request(method, &headers, b"");
        let key = suite_key(session_token);
        assert_eq!(
            sigv4::verify(&request, &key),
            Ok(()),
            "{method} {authorization}"
        );

        let mut wrong_signature = request.clone();
        let last = wrong_signature
            .headers
            .iter_mut()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value)
            .expect("authorization header");
        let flipped = if last.ends_with('0') { '1' } else { '0' };
        last.pop();
        last.push(flipped);
        assert!(sigv4::verify(&wrong_signature, &key).is_err());

        // The body is signed through its hash, even with no
        // x-amz-content-sha256 header.
        let mut other_body = request.clone();
        other_body.body = b"{}".to_vec();
        assert!(sigv4::verify(&other_body, &key).is_err());

        let wrong_secret = SigV4Key {
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ".into(),
            ..key.clone()
        };
        assert!(sigv4::verify(&request, &wrong_secret).is_err());
    }
}

/// `post-x-www-form-urlencoded`: the body `Param1=value1` is signed through
/// its hash. The intermediate canonical request and string to sign equal
/// the published files, and another body fails.
#[test]
fn checker_signs_the_body_like_the_published_suite() {
    let authorization = "AWS4-HMAC-SHA256 \
        Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
        SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
        Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
    let body_hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Host", "example.amazonaws.com"),
        ("Content-Length", "13"),
        ("X-Amz-Date", "20150830T123600Z"),
        ("x-amz-content-sha256", body_hash),
        ("Authorization", authorization),
    ];
    let request = suite_request("POST", &headers, b"Param1=value1");
    let auth = sigv4::parse_authorization(authorization).expect("published header parses");

    let canonical =
        sigv4::canonical_request(&request, &auth.signed_headers, body_hash).expect("canonical");
    assert_eq!(
        canonical,
        "POST\n/\n\n\
         content-length:13\n\
         content-type:application/x-www-form-urlencoded\n\
         host:example.amazonaws.com\n\
         x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\n\
         x-amz-date:20150830T123600Z\n\n\
         content-length;content-type;host;x-amz-content-sha256;x-amz-date\n\
         9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
    assert_eq!(
        sigv4::string_to_sign("20150830T123600Z", &auth, &canonical),
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
         b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb"
    );
    assert_eq!(sigv4::verify(&request, &suite_key(None)), Ok(()));

    let mut other_body = request.clone();
    other_body.body = b"Param1=value2".to_vec();
    let error = sigv4::verify(&other_body, &suite_key(None)).expect_err("another body");
    assert!(error.contains("x-amz-content-sha256"), "{error}");
}

/// No credentials from the environment: empty counts as unset for the
/// SDK.
const NO_ENV_CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", ""),
    ("AWS_SECRET_ACCESS_KEY", ""),
    ("AWS_SESSION_TOKEN", ""),
];

/// The key the test bot accepts.
fn lambda_key() -> SigV4Key {
    SigV4Key {
        access_key_id: "AKIATESTCONNECTOR01".into(),
        secret_access_key: "connector/test/secret+key".into(),
        session_token: Some("FQoGZXIvYXdzEXAMPLESESSIONTOKEN//+=".into()),
        region: "eu-west-1".into(),
        service: "lambda".into(),
    }
}

/// A bot that, like a Function URL with IAM auth, answers 403 unless the
/// request is signed with `lambda_key`, and echoes otherwise.
async fn iam_bot() -> Result<BotServer> {
    BotServer::start(|request: BotRequest| async move {
        match sigv4::verify(&request, &lambda_key()) {
            Ok(()) => echo_reply(&request.json),
            Err(reason) => {
                eprintln!("[iam bot] 403: {reason}");
                BotReply::raw(403, "application/json", r#"{"Message":"Forbidden"}"#)
            }
        }
    })
    .await
}

/// The connector posting to `bot` with signing forced on, the AWS
/// credentials in `aws_env`, once its link is up.
async fn signing_connector(
    prosody: &Prosody,
    bot: &BotServer,
    aws_env: &[(&str, &str)],
) -> Result<Connector> {
    let url = bot.url();
    let mut env = vec![
        ("COMPONENT_POST_URL", url.as_str()),
        ("COMPONENT_POST_SIGV4", "on"),
        // Off EC2 the metadata service would only add timeouts.
        ("AWS_EC2_METADATA_DISABLED", "true"),
        // Keep any profile of the machine running the tests out of it.
        ("AWS_CONFIG_FILE", "/nonexistent/aws/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws/credentials",
        ),
    ];
    env.extend_from_slice(aws_env);
    let connector = Connector::start_for(prosody, &env).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

/// Credentials and region from the SDK's chains (environment variables,
/// session token included): the bot accepts the signature and the user
/// gets the echo.
#[tokio::test]
async fn signed_requests_are_accepted_and_answered() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = iam_bot().await?;
    let key = lambda_key();
    let token = key.session_token.clone().unwrap_or_default();
    let _connector = signing_connector(
        &prosody,
        &bot,
        &[
            ("AWS_ACCESS_KEY_ID", &key.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", &key.secret_access_key),
            ("AWS_SESSION_TOKEN", &token),
            ("AWS_REGION", &key.region),
        ],
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());

    for text in ["hello", "ünïcode & <xml> \"quotes\" / ?query=1"] {
        alice.send_message(&echo, text).await?;
        let reply = alice.expect_message(text, WAIT).await?;
        assert_eq!(
            body_of(&reply).as_deref(),
            Some(format!("Did you say {text}?").as_str()),
            "{reply:?}"
        );
    }
    let requests = bot.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let auth = sigv4::parse_authorization(request.header("authorization").unwrap_or(""))?;
        assert_eq!(auth.service, "lambda");
        assert_eq!(auth.region, "eu-west-1");
        for signed in ["content-type", "host", "x-amz-date", "x-amz-security-token"] {
            assert!(
                auth.signed_headers.iter().any(|name| name == signed),
                "{signed} not signed: {auth:?}"
            );
        }
        assert_eq!(request.content_type(), Some("application/json"));
    }
    Ok(())
}

/// A wrong secret: the bot refuses the signature with 403 and the user
/// gets `auth/forbidden`; the explicit region option is the one signed for.
#[tokio::test]
async fn a_wrong_secret_gets_the_user_forbidden() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = iam_bot().await?;
    let key = lambda_key();
    let token = key.session_token.clone().unwrap_or_default();
    let _connector = signing_connector(
        &prosody,
        &bot,
        &[
            ("AWS_ACCESS_KEY_ID", &key.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
            ("AWS_SESSION_TOKEN", &token),
            ("AWS_REGION", "us-east-1"),
            ("COMPONENT_POST_SIGV4_REGION", &key.region),
        ],
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());

    let id = alice.send_message(&echo, "let me in").await?;
    let reply = alice.expect_message("forbidden", WAIT).await?;
    assert_stanza_error(&reply, &id, "auth", "forbidden", None);

    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    let auth = sigv4::parse_authorization(requests[0].header("authorization").unwrap_or(""))?;
    assert_eq!(auth.region, "eu-west-1", "the option wins over AWS_REGION");
    let error = sigv4::verify(&requests[0], &key).expect_err("wrong secret");
    assert!(error.contains("signature mismatch"), "{error}");
    Ok(())
}

/// No credentials anywhere: nothing is sent, the user gets the
/// no-response error, the connector says why once and keeps running.
#[tokio::test]
async fn without_credentials_the_user_gets_connection_failure() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = iam_bot().await?;
    let connector = signing_connector(
        &prosody,
        &bot,
        &[
            NO_ENV_CREDENTIALS.as_slice(),
            &[("COMPONENT_POST_SIGV4_REGION", "eu-west-1")],
        ]
        .concat(),
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());

    for text in ["first", "second"] {
        let id = alice.send_message(&echo, text).await?;
        let reply = alice.expect_message(text, WAIT).await?;
        assert_connection_failure(&reply, &id);
    }
    let line = connector
        .wait_for_log("cannot sign requests to the bot", WAIT)
        .await?;
    assert!(line.contains("no AWS credentials"), "{line}");
    let reported = connector
        .logs()
        .iter()
        .filter(|line| line.contains("cannot sign requests to the bot"))
        .count();
    assert_eq!(reported, 1, "logged once, not per request");
    assert!(bot.requests().is_empty(), "an unsigned request was sent");
    assert!(
        connector
            .logs()
            .iter()
            .all(|line| !line.contains("panicked"))
    );
    Ok(())
}

/// A container-credentials endpoint (as ECS gives a task) that accepts
/// and never answers: every message still gets the no-response error
/// within `COMPONENT_POST_TIMEOUT` (the SDK's own read timeout is 5 s),
/// and nothing unsigned reaches the bot.
#[tokio::test]
async fn a_credential_provider_that_never_answers_costs_only_the_timeout() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = iam_bot().await?;
    let silent = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}/credentials", silent.local_addr()?);
    let asked = Arc::new(AtomicUsize::new(0));
    let holder = tokio::spawn({
        let asked = Arc::clone(&asked);
        async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                asked.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        }
    });
    let connector = signing_connector(
        &prosody,
        &bot,
        &[
            NO_ENV_CREDENTIALS.as_slice(),
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint),
                ("COMPONENT_POST_SIGV4_REGION", "eu-west-1"),
                ("COMPONENT_POST_TIMEOUT", "1.5"),
            ],
        ]
        .concat(),
    )
    .await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());

    for text in ["first", "second"] {
        let sent = Instant::now();
        let id = alice.send_message(&echo, text).await?;
        let reply = alice.expect_message(text, WAIT).await?;
        let waited = sent.elapsed();
        assert_connection_failure(&reply, &id);
        // The timeout is 1.5 s; the rest is Prosody and the client.
        assert!(
            waited >= Duration::from_millis(1400) && waited < Duration::from_millis(3000),
            "{text}: the error came after {waited:?}"
        );
    }
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "the endpoint was never asked"
    );
    let line = connector
        .wait_for_log("cannot sign requests to the bot", WAIT)
        .await?;
    assert!(
        line.contains("no AWS credentials within the request's timeout"),
        "{line}"
    );
    assert!(bot.requests().is_empty(), "an unsigned request was sent");
    holder.abort();
    Ok(())
}

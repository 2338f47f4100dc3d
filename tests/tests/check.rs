//! `xmpp-lambda-connector check` against real parts: Prosody and ejabberd,
//! real HTTP bots, moto's SQS (with its IAM checks for a denied call) and
//! the connector binary itself. Each failure is asserted with its line and
//! the exit code (0 all passed, 1 a check failed, 2 an invalid option), and
//! each pass with what it must not have disturbed: the running connector's
//! link, the bot's traffic, the queues' messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use xmpp_lambda_tests::sigv4::{self, SigV4Key};
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, CheckCommand, Connector, Ejabberd, Moto, Prosody, Result,
    TempDir, XmppServer, body_of, free_port, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";
/// The exit code when a check failed.
const FAILED: i32 = 1;
/// The exit code for an invalid option.
const BAD_OPTION: i32 = 2;

/// A check of `server`'s component with the http transport to `bot`.
fn check_http(server: &impl XmppServer, bot: &BotServer) -> CheckCommand {
    CheckCommand::for_server(server).env("COMPONENT_POST_URL", &bot.url())
}

/// The probe as the bot received it: a bodyless chat message marked as
/// the check's.
fn assert_is_probe(request: &BotRequest, domain: &str) {
    let json = &request.json;
    assert_eq!(request.method, "POST");
    assert_eq!(request.content_type(), Some("application/json"));
    assert_eq!(json["kind"], "message", "{json}");
    assert_eq!(json["type"], "chat", "{json}");
    assert_eq!(json["to"], domain, "{json}");
    assert_eq!(
        json["from"],
        format!("xmpp-lambda-check@{domain}/check"),
        "{json}"
    );
    assert!(json.get("body").is_none(), "the probe has no body: {json}");
    let id = json["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("xmpp-lambda-check-"), "{json}");
    let stanza = json["stanza"].as_str().unwrap_or_default();
    assert!(
        stanza.contains("http://jabber.org/protocol/chatstates"),
        "{stanza}"
    );
}

#[tokio::test]
async fn invalid_options_fail_with_the_loaders_line_and_exit_2() -> Result<()> {
    let run = CheckCommand::new()
        .env("COMPONENT_JID", "bot.example.com")
        .env("COMPONENT_SECRET", "s")
        .env("COMPONENT_POST_URL", "ftp://bot.example.com/")
        .run()
        .await?;
    assert_eq!(run.code, Some(BAD_OPTION));
    run.expect(
        "options",
        "FAIL",
        &[
            r#"COMPONENT_POST_URL "ftp://bot.example.com/" is invalid: expected an http:// or https:// URL"#,
            "fix: see --help",
        ],
    )?;
    for later in ["server", "handshake", "bot"] {
        run.expect(later, "skip", &["needs valid options"])?;
    }
    assert_eq!(run.summary(), "check: 1 of 1 checks failed, 3 skipped");

    let dir = TempDir::new("check-config")?;
    let file = dir.path().join("connector.toml");
    std::fs::write(
        &file,
        "component_jid = \"bot.example.com\"\ncomponent_sekret = \"s\"\n",
    )?;
    let from_file = CheckCommand::new()
        .arg("--config")
        .arg(&file.display().to_string())
        .run()
        .await?;
    assert_eq!(from_file.code, Some(BAD_OPTION));
    from_file.expect("options", "FAIL", &["unknown option \"component_sekret\""])?;

    let help = CheckCommand::new().arg("--help").run().await?;
    assert_eq!(help.code, Some(0));
    assert!(
        help.lines
            .iter()
            .any(|line| line.contains("xmpp-lambda-connector check [--config FILE]")),
        "{:?}",
        help.lines
    );
    Ok(())
}

#[tokio::test]
async fn an_unresolvable_name_and_a_closed_port_fail_the_server_check() -> Result<()> {
    let bot = BotServer::echo().await?;
    let base = CheckCommand::new()
        .env("COMPONENT_JID", "bot.localhost")
        .env("COMPONENT_SECRET", "s")
        .env("COMPONENT_POST_URL", &bot.url());

    let unresolvable = base
        .clone()
        .env("COMPONENT_SERVER", "xmpp.nowhere.invalid:5347")
        .run()
        .await?;
    assert_eq!(unresolvable.code, Some(FAILED));
    unresolvable.expect(
        "server",
        "FAIL",
        &[
            "cannot resolve xmpp.nowhere.invalid",
            "fix: check the host name in COMPONENT_SERVER",
        ],
    )?;
    unresolvable.expect("handshake", "skip", &["needs the server's component port"])?;
    // The bot side is still checked: one run shows every problem.
    unresolvable.expect("bot", "pass", &["answered 200 OK"])?;

    // The same options from a file, as `--config FILE` gives them.
    let port = free_port();
    let dir = TempDir::new("check-config")?;
    let file = dir.path().join("connector.toml");
    std::fs::write(
        &file,
        format!(
            "component_jid = \"bot.localhost\"\ncomponent_secret = \"s\"\n\
             component_server = \"127.0.0.1:{port}\"\ncomponent_post_url = \"{}\"\n",
            bot.url()
        ),
    )?;
    let closed = CheckCommand::new()
        .arg("--config")
        .arg(&file.display().to_string())
        .run()
        .await?;
    assert_eq!(closed.code, Some(FAILED));
    closed.expect(
        "server",
        "FAIL",
        &[
            &format!("nothing takes TCP connections at 127.0.0.1:{port}: Connection refused"),
            "fix: start the XMPP server, or correct COMPONENT_SERVER",
        ],
    )?;
    closed.expect("handshake", "skip", &[])?;
    Ok(())
}

/// Everything passes; then, with a connector linked, the check again
/// passes and says what `server` told it (`second_handshake`), and the
/// running connector keeps its link and still answers a user.
async fn passes_and_leaves_a_running_connector_alone(
    server: &impl XmppServer,
    second_handshake: &[&str],
) -> Result<()> {
    let bot = BotServer::echo().await?;
    let domain = server.component_domain().to_owned();
    let run = check_http(server, &bot).run().await?;
    assert_eq!(run.code, Some(0), "{:?}", run.lines);
    run.expect(
        "options",
        "pass",
        &[&format!(
            "component {domain} at {}, http to {}",
            server.component_server(),
            bot.url()
        )],
    )?;
    run.expect("server", "pass", &["takes TCP connections"])?;
    run.expect(
        "handshake",
        "pass",
        &[&format!("accepted for {domain}"), "link closed again after"],
    )?;
    run.expect("sigv4", "skip", &["requests are not signed"])?;
    run.expect(
        "bot",
        "pass",
        &["answered 200 OK (application/json)", "which no user sees"],
    )?;
    assert_eq!(run.summary(), "check: all 4 checks passed, 1 skipped");
    let probes = bot.requests();
    assert_eq!(probes.len(), 1, "one probe: {probes:?}");
    assert_is_probe(&probes[0], &domain);

    // The check left no link behind: a connector links at once.
    let connector = Connector::start_for(server, &[("COMPONENT_POST_URL", &bot.url())]).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;

    let second = check_http(server, &bot).run().await?;
    assert_eq!(second.code, Some(0), "{:?}", second.lines);
    second.expect("handshake", "pass", second_handshake)?;

    // The running connector kept its link and serves as before.
    let mut alice = login(server, "alice").await?;
    let to = format!("echo@{domain}");
    alice.send_message(&to, "still there?").await?;
    let reply = alice.expect_message("the echo", WAIT).await?;
    assert_eq!(
        body_of(&reply).as_deref(),
        Some("Did you say still there??")
    );
    let logs = connector.logs();
    assert!(
        !logs.iter().any(|line| line.contains("component link lost")),
        "the running connector lost its link:\n{}",
        logs.join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn prosody_passes_and_answers_conflict_while_a_connector_is_linked() -> Result<()> {
    let prosody = Prosody::start().await?;
    passes_and_leaves_a_running_connector_alone(
        &prosody,
        &["secret accepted; another connector is linked (conflict (Component already connected)), and keeps its link"],
    )
    .await
}

#[tokio::test]
async fn ejabberd_passes_and_accepts_a_second_link_while_a_connector_is_linked() -> Result<()> {
    let ejabberd = Ejabberd::start().await?;
    passes_and_leaves_a_running_connector_alone(
        &ejabberd,
        &[
            "accepted for bot.localhost",
            "or the server accepts several links at once (ejabberd does",
        ],
    )
    .await?;
    handshake_refusals(
        &ejabberd,
        &[
            (
                &[("COMPONENT_SECRET", "wrong")],
                &[
                    "the server refused the handshake (not-authorized)",
                    "fix: COMPONENT_SECRET must be the component's secret",
                ],
            ),
            // ejabberd cannot tell an unknown domain from a wrong secret.
            (
                &[("COMPONENT_JID", "nope.localhost")],
                &[
                    "the server refused the handshake (not-authorized)",
                    "ejabberd also answers not-authorized when \"nope.localhost\" is not among those hosts",
                ],
            ),
            (
                &[("COMPONENT_JID", "localhost")],
                &[
                    "localhost is a host the server serves itself (conflict (Unable to register route on existing local domain))",
                    "fix: give the component a domain of its own, e.g. bot.localhost",
                ],
            ),
            (
                &[("COMPONENT_SERVER", &format!("127.0.0.1:{}", ejabberd.c2s_port))],
                &[
                    "the server refused the component stream (invalid-namespace)",
                    "looks like the client port",
                ],
            ),
        ],
    )
    .await
}

/// Options changed from a working setup, and the parts the handshake
/// line must then contain.
type Refusal<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

/// Each case fails the handshake check with a line containing its parts,
/// and nothing else fails.
async fn handshake_refusals(server: &impl XmppServer, cases: &[Refusal<'_>]) -> Result<()> {
    let bot = BotServer::echo().await?;
    for (env, parts) in cases {
        let run = check_http(server, &bot).envs(env).run().await?;
        assert_eq!(run.code, Some(FAILED), "{env:?}: {:?}", run.lines);
        run.expect("server", "pass", &[])?;
        run.expect("handshake", "FAIL", parts)?;
        run.expect("bot", "pass", &[])?;
    }
    Ok(())
}

#[tokio::test]
async fn prosody_refusals_name_the_secret_the_domain_and_the_port() -> Result<()> {
    let prosody = Prosody::start().await?;
    handshake_refusals(
        &prosody,
        &[
            (
                &[("COMPONENT_SECRET", "wrong")],
                &[
                    "the server refused the handshake (not-authorized (Given token does not match calculated token))",
                    "fix: COMPONENT_SECRET must be the component's secret on the server (Prosody: component_secret of Component \"bot.localhost\"",
                ],
            ),
            (
                &[("COMPONENT_JID", "nope.localhost")],
                &[
                    "the server has no component nope.localhost (host-unknown (nope.localhost does not match any configured external components))",
                    "fix: declare it on the server",
                ],
            ),
            (
                &[("COMPONENT_JID", "localhost")],
                &["the server has no component localhost (host-unknown (localhost does not match any configured external components))"],
            ),
            (
                &[("COMPONENT_SERVER", &format!("127.0.0.1:{}", prosody.c2s_port))],
                &[
                    "the server answered as on its client port (host-unknown (This server does not serve bot.localhost))",
                    "fix: COMPONENT_SERVER must be the component port, not the client port (5222)",
                ],
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn bot_failures_name_the_status_and_the_fix() -> Result<()> {
    let prosody = Prosody::start().await?;
    // The bot answers whatever status the test sets, after a delay when
    // the status is 0.
    let status = Arc::new(AtomicU16::new(200));
    let answer = Arc::clone(&status);
    let mut bot = BotServer::start(move |_request| {
        let status = answer.load(Ordering::SeqCst);
        async move {
            if status == 0 {
                BotReply::status(204).with_delay(Duration::from_secs(3))
            } else {
                BotReply::status(status)
            }
        }
    })
    .await?;
    let cases: &[(u16, &str, &[&str])] = &[
        (
            401,
            "FAIL",
            &[
                "answered 401 Unauthorized: the bot wants credentials; users would now get the error auth/not-authorized",
                "fix: put the bot's token where it expects it",
            ],
        ),
        (
            500,
            "FAIL",
            &[
                "answered 500 Internal Server Error: the bot failed; users would now get the error cancel/internal-server-error",
                "fix: see the bot's log",
            ],
        ),
        (
            404,
            "FAIL",
            &[
                "answered 404 Not Found: no bot at this path",
                "fix: correct the path",
            ],
        ),
        (
            400,
            "pass",
            &["the bot is reachable and took the probe", "400 Bad Request"],
        ),
        (204, "pass", &["answered 204 No Content"]),
    ];
    for (answer, expected, parts) in cases {
        status.store(*answer, Ordering::SeqCst);
        let run = check_http(&prosody, &bot).run().await?;
        let code = if *expected == "pass" { 0 } else { FAILED };
        assert_eq!(run.code, Some(code), "{answer}: {:?}", run.lines);
        run.expect("handshake", "pass", &[])?;
        run.expect("bot", expected, parts)?;
    }

    // Slower than COMPONENT_POST_TIMEOUT.
    status.store(0, Ordering::SeqCst);
    let slow = check_http(&prosody, &bot)
        .env("COMPONENT_POST_TIMEOUT", "0.5")
        .run()
        .await?;
    assert_eq!(slow.code, Some(FAILED));
    slow.expect(
        "bot",
        "FAIL",
        &[
            "within 500 ms (COMPONENT_POST_TIMEOUT)",
            "users would now get the error cancel/remote-server-timeout (Connection failure)",
            "a larger COMPONENT_POST_TIMEOUT",
        ],
    )?;

    // Down: nothing listens at its port any more.
    let url = bot.url();
    let port = bot.address().port();
    bot.stop().await;
    let down = CheckCommand::for_server(&prosody)
        .env("COMPONENT_POST_URL", &url)
        .run()
        .await?;
    assert_eq!(down.code, Some(FAILED));
    down.expect(
        "bot",
        "FAIL",
        &[
            &format!("nothing listens at 127.0.0.1:{port} (Connection refused"),
            "fix: start the bot, or correct the host and port in COMPONENT_POST_URL",
        ],
    )?;
    Ok(())
}

/// The test credentials a SigV4-checking bot knows.
fn lambda_key(secret: &str) -> SigV4Key {
    SigV4Key {
        access_key_id: "AKIDCHECKEXAMPLE".into(),
        secret_access_key: secret.into(),
        session_token: None,
        region: "eu-west-1".into(),
        service: "lambda".into(),
    }
}

#[tokio::test]
async fn sigv4_signs_the_probe_and_names_missing_credentials() -> Result<()> {
    let prosody = Prosody::start().await?;
    // Like a Function URL with AuthType AWS_IAM: 403 unless the signature
    // verifies with the key it knows.
    let bot = BotServer::start(|request: BotRequest| async move {
        match sigv4::verify(&request, &lambda_key("right-secret")) {
            Ok(()) => BotReply::status(204),
            Err(_) => BotReply::status(403),
        }
    })
    .await?;
    let signed = check_http(&prosody, &bot)
        .env("COMPONENT_POST_SIGV4", "on")
        .env("COMPONENT_POST_SIGV4_REGION", "eu-west-1");

    let run = signed
        .clone()
        .env("AWS_ACCESS_KEY_ID", "AKIDCHECKEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "right-secret")
        .run()
        .await?;
    assert_eq!(run.code, Some(0), "{:?}", run.lines);
    run.expect(
        "sigv4",
        "pass",
        &["requests are signed for lambda in eu-west-1 with access key …MPLE"],
    )?;
    run.expect("bot", "pass", &["answered 204 No Content"])?;
    let probes = bot.requests();
    assert_eq!(probes.len(), 1);
    sigv4::verify(&probes[0], &lambda_key("right-secret"))?;
    assert_is_probe(&probes[0], "bot.localhost");

    let refused = signed
        .clone()
        .env("AWS_ACCESS_KEY_ID", "AKIDCHECKEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .run()
        .await?;
    assert_eq!(refused.code, Some(FAILED));
    refused.expect(
        "bot",
        "FAIL",
        &[
            "answered 403 Forbidden: the signed probe was refused",
            "lambda:InvokeFunctionUrl",
        ],
    )?;

    let missing = signed.run().await?;
    assert_eq!(missing.code, Some(FAILED));
    missing.expect(
        "sigv4",
        "FAIL",
        &[
            "no AWS credentials to sign with",
            "fix: give this machine credentials through the AWS SDK's chain",
        ],
    )?;
    missing.expect("bot", "skip", &["the probe cannot be signed"])?;
    assert_eq!(bot.requests().len(), 2, "no unsigned probe was sent");
    Ok(())
}

/// moto with a FIFO request queue and a FIFO reply queue whose redrive
/// policy moves a message to its dead-letter queue on its second receive.
struct Queues {
    moto: Moto,
    requests: String,
    replies: String,
}

impl Queues {
    async fn start() -> Result<Queues> {
        let moto = Moto::start().await?;
        let requests = moto.create_queue("check-requests.fifo").await?;
        let dead = moto.create_queue("check-replies-dlq.fifo").await?;
        let dead_arn = moto.queue_attribute(&dead, "QueueArn").await?;
        let redrive = format!(r#"{{"deadLetterTargetArn":"{dead_arn}","maxReceiveCount":"1"}}"#);
        let replies = moto
            .create_queue_with("check-replies.fifo", &[("RedrivePolicy", &redrive)])
            .await?;
        Ok(Queues {
            moto,
            requests,
            replies,
        })
    }

    /// A check of `server` with the sqs transport to these queues.
    fn check(&self, server: &impl XmppServer) -> CheckCommand {
        CheckCommand::for_server(server)
            .env("TRANSPORT", "sqs")
            .env("REQUEST_QUEUE_URL", &self.requests)
            .env("REPLY_QUEUE_URL", &self.replies)
    }
}

#[tokio::test]
async fn sqs_queues_pass_untouched_and_a_missing_queue_is_named() -> Result<()> {
    let prosody = Prosody::start().await?;
    let queues = Queues::start().await?;
    let moto = &queues.moto;
    // A reply waiting for the running connector: the check must not
    // receive it (its first receive would be its last before the DLQ).
    moto.send_message(&queues.replies, "a real reply", Some("g"))
        .await?;

    let run = queues.check(&prosody).envs(&moto.aws_env()).run().await?;
    assert_eq!(run.code, Some(0), "{:?}", run.lines);
    run.expect(
        "aws",
        "pass",
        &[
            "region us-east-1, credentials found (access key …ting)",
            &format!("endpoint {}", moto.endpoint_url()),
        ],
    )?;
    run.expect(
        "request queue",
        "pass",
        &[
            &format!(
                "{} exists, and these credentials may send to it",
                queues.requests
            ),
            "nothing was queued",
        ],
    )?;
    run.expect(
        "reply queue",
        "pass",
        &[&format!(
            "{} exists, and these credentials may receive from it and delete on it",
            queues.replies
        )],
    )?;
    assert_eq!(moto.queue_depth(&queues.requests).await?, 0);
    assert_eq!(
        moto.peek_bodies(&queues.replies).await?,
        vec!["a real reply".to_owned()],
        "the waiting reply was received before (and moved to the DLQ)"
    );

    let missing_url = queues.requests.replace("check-requests", "no-such-queue");
    let missing = queues
        .check(&prosody)
        .envs(&moto.aws_env())
        .env("REQUEST_QUEUE_URL", &missing_url)
        .run()
        .await?;
    assert_eq!(missing.code, Some(FAILED));
    missing.expect(
        "request queue",
        "FAIL",
        &[
            &format!("there is no queue {missing_url}"),
            "fix: set REQUEST_QUEUE_URL to the stack's RequestQueueUrl output",
        ],
    )?;
    missing.expect("reply queue", "pass", &[])?;

    let no_credentials = queues
        .check(&prosody)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint_url())
        .run()
        .await?;
    assert_eq!(no_credentials.code, Some(FAILED));
    no_credentials.expect(
        "aws",
        "FAIL",
        &["no AWS credentials", "fix: give this machine credentials"],
    )?;
    no_credentials.expect("request queue", "skip", &["needs AWS credentials"])?;
    no_credentials.expect("reply queue", "skip", &["needs AWS credentials"])?;
    Ok(())
}

#[tokio::test]
async fn sqs_permission_to_send_is_checked_with_iam_enforced() -> Result<()> {
    let prosody = Prosody::start().await?;
    let queues = Queues::start().await?;
    let moto = &queues.moto;
    // May receive and delete, but not send: the connector's policy with
    // its first statement missing.
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["sqs:ReceiveMessage","sqs:DeleteMessage"],"Resource":"*"}]}"#;
    let (key, secret) = moto.create_iam_user("connector", policy).await?;
    moto.enforce_iam().await?;

    let run = queues
        .check(&prosody)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint_url())
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .run()
        .await?;
    assert_eq!(run.code, Some(FAILED), "{:?}", run.lines);
    run.expect(
        "request queue",
        "FAIL",
        &[
            "these credentials may not send to it (AccessDenied",
            &format!(
                "fix: allow sqs:SendMessage on {} (the stack's ConnectorPolicyArn does)",
                queues.requests
            ),
        ],
    )?;
    run.expect("reply queue", "pass", &[])?;
    Ok(())
}

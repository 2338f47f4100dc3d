//! Signed requests (DESIGN §9), end to end: the connector signs every POST
//! with `COMPONENT_POST_SECRET`, and the verifiers the docs show
//! (`examples/verifiers/`, in PHP, Python and Node) run as real bots that
//! accept what is signed with their secret and refuse everything else.
//!
//! PHP (Debian's `php-cli`) and Python are required; Node is tested when
//! `node` is on PATH.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::process::{Child, Command};
use xmpp_lambda_shared::signing::{
    SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER, unix_seconds, verify,
};
use xmpp_lambda_tests::{
    BotReply, BotRequest, BotServer, Connector, Prosody, Result, XmppServer, assert_stanza_error,
    body_of, echo_reply, free_port, login, wait_for_tcp, workspace_root,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";
/// The secret the bots are given.
const SECRET: &str = "6f1d2c0a9b8e7d6c5b4a39281706f5e4";

fn now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// One of the example bots in `examples/verifiers/`, running on a free
/// port with `COMPONENT_POST_SECRET` set. Dropping it kills it by PID.
struct ExampleBot {
    /// The bot's process (`php -S`, `python3`, `node`).
    child: Child,
    /// Where it listens.
    url: String,
}

impl ExampleBot {
    /// Starts the example in `language` (`php`, `python`, `node`) with
    /// [`SECRET`].
    async fn start(language: &str) -> Result<ExampleBot> {
        Self::start_with_secret(language, Some(SECRET)).await
    }

    /// Starts the example with `secret` as `COMPONENT_POST_SECRET`, or
    /// without one.
    async fn start_with_secret(language: &str, secret: Option<&str>) -> Result<ExampleBot> {
        let dir = workspace_root().join("examples/verifiers");
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut command = match language {
            "php" => {
                let mut command = Command::new("php");
                command.args(["-S", &address, "echo_bot.php"]);
                command
            }
            "python" => {
                let mut command = Command::new("python3");
                command.args(["echo_bot.py", &port.to_string()]);
                command
            }
            "node" => {
                let mut command = Command::new("node");
                command.args(["echo_bot.js", &port.to_string()]);
                command
            }
            other => return Err(format!("no example bot in {other}").into()),
        };
        command.env_remove("COMPONENT_POST_SECRET");
        if let Some(secret) = secret {
            command.env("COMPONENT_POST_SECRET", secret);
        }
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run the {language} example bot: {e}"))?;
        let bot = ExampleBot {
            child,
            url: format!("http://{address}/"),
        };
        if !wait_for_tcp(port, WAIT).await {
            return Err(
                format!("the {language} example bot did not listen within {WAIT:?}").into(),
            );
        }
        Ok(bot)
    }
}

impl Drop for ExampleBot {
    fn drop(&mut self) {
        // kill_on_drop signals the child by its PID; this reaps it early.
        let _ = self.child.start_kill();
    }
}

/// Whether `program` runs here (`node --version`).
fn available(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Signature headers, name and value, as a request carries them.
type Headers = Vec<(&'static str, String)>;

/// POSTs `body` with the given signature headers; returns status and body.
async fn post(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(u16, String)> {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Every way a request can fail the check, and two that pass, against one
/// example bot. The requests are signed by the shared signer, the one the
/// connector and the function use.
async fn check_example_verifier(language: &str) -> Result<()> {
    let bot = ExampleBot::start(language).await?;
    let client = reqwest::Client::new();
    let signer = Signer::new(SECRET);
    let body = serde_json::to_vec(&json!({
        "to": "echo@bot.localhost", "from": "alice@localhost/phone", "kind": "message",
        "stanza": "<message xmlns='jabber:client'><body>hello</body></message>", "body": "hello"
    }))?;
    let signed_at = |at: u64, signer: &Signer, body: &[u8]| signer.headers(at, body).to_vec();

    let (status, answer) =
        post(&client, &bot.url, &signed_at(now(), &signer, &body), &body).await?;
    assert_eq!(status, 200, "{language}: a good request: {answer}");
    let answer: Value = serde_json::from_str(&answer)?;
    assert_eq!(answer, json!({"body": "Did you say hello?"}), "{language}");
    // Within the window, late or early, is still good.
    for at in [now() - 250, now() + 250] {
        let (status, _) = post(&client, &bot.url, &signed_at(at, &signer, &body), &body).await?;
        assert_eq!(status, 200, "{language}: signed at {at}, now {}", now());
    }

    let other = Signer::new("a different secret of the same size!");
    let changed = String::from_utf8(body.clone())?.replace("hello", "hellO");
    let good = signed_at(now(), &signer, &body);
    let refused: Vec<(&str, Headers, &[u8])> = vec![
        ("wrong secret", signed_at(now(), &other, &body), &body),
        (
            "stale timestamp",
            signed_at(now() - 400, &signer, &body),
            &body,
        ),
        (
            "future timestamp",
            signed_at(now() + 400, &signer, &body),
            &body,
        ),
        ("changed body", good.clone(), changed.as_bytes()),
        ("no headers", Vec::new(), &body),
        ("no signature", good[..1].to_vec(), &body),
        ("no timestamp", good[1..].to_vec(), &body),
        (
            "a timestamp that is not the signed one",
            vec![(TIMESTAMP_HEADER, (now() - 1).to_string()), good[1].clone()],
            &body,
        ),
    ];
    for (what, headers, sent) in refused {
        let (status, answer) = post(&client, &bot.url, &headers, sent).await?;
        assert_eq!(status, 401, "{language}: {what} must be refused: {answer}");
    }

    // A bot started without its secret refuses everything, even a request
    // signed with the empty secret it would otherwise compute.
    let unconfigured = ExampleBot::start_with_secret(language, None).await?;
    let empty = signed_at(now(), &Signer::new(""), &body);
    let (status, answer) = post(&client, &unconfigured.url, &empty, &body).await?;
    assert_eq!(status, 401, "{language}: a bot without a secret: {answer}");
    Ok(())
}

#[tokio::test]
async fn php_verifier_accepts_only_signed_requests() -> Result<()> {
    check_example_verifier("php").await
}

#[tokio::test]
async fn python_verifier_accepts_only_signed_requests() -> Result<()> {
    check_example_verifier("python").await
}

#[tokio::test]
async fn node_verifier_accepts_only_signed_requests() -> Result<()> {
    if !available("node") {
        eprintln!("node is not on PATH: the Node verifier is not tested");
        return Ok(());
    }
    check_example_verifier("node").await
}

/// The connector linked to `prosody`, posting to `url` with `secret`.
async fn signing_connector(prosody: &Prosody, url: &str, secret: &str) -> Result<Connector> {
    let connector = Connector::start_for(
        prosody,
        &[
            ("COMPONENT_POST_URL", url),
            ("COMPONENT_POST_SECRET", secret),
        ],
    )
    .await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    Ok(connector)
}

#[tokio::test]
async fn connector_signs_every_post() -> Result<()> {
    let prosody = Prosody::start().await?;
    // A bot that checks every request with the shared verifier.
    let bot = BotServer::start(|request: BotRequest| async move {
        let checked = verify(
            SECRET,
            request.header(TIMESTAMP_HEADER),
            request.header(SIGNATURE_HEADER),
            &request.body,
            now(),
        );
        match checked {
            Ok(()) => echo_reply(&request.json),
            Err(_) => BotReply::status(401),
        }
    })
    .await?;
    let connector = signing_connector(&prosody, &bot.url(), SECRET).await?;
    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());

    for text in ["hello", "über <&> 😀"] {
        alice.send_message(&echo, text).await?;
        let reply = alice.expect_message(text, WAIT).await?;
        assert_eq!(
            body_of(&reply).as_deref(),
            Some(format!("Did you say {text}?").as_str())
        );
    }
    let requests = bot.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let sent_at: u64 = request
            .header(TIMESTAMP_HEADER)
            .ok_or("no timestamp header")?
            .parse()?;
        assert!(now().abs_diff(sent_at) <= 5, "signed at {sent_at}");
        let signature = request.header(SIGNATURE_HEADER).ok_or("no signature")?;
        assert!(signature.starts_with("v1="), "{signature}");
    }
    let logs = connector.logs();
    assert!(
        logs.iter()
            .any(|line| line.contains("signed with COMPONENT_POST_SECRET")),
        "{logs:?}"
    );
    assert!(!logs.iter().any(|line| line.contains(SECRET)), "{logs:?}");
    Ok(())
}

#[tokio::test]
async fn connector_reaches_the_reference_php_bot_only_with_its_secret() -> Result<()> {
    let bot = ExampleBot::start("php").await?;
    let echo = |server: &Prosody| format!("echo@{}", server.component_domain());

    let prosody = Prosody::start().await?;
    let _connector = signing_connector(&prosody, &bot.url, SECRET).await?;
    let mut alice = login(&prosody, "alice").await?;
    alice.send_message(&echo(&prosody), "hello").await?;
    let reply = alice.expect_message("signed echo", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say hello?"));

    // Another connector with the wrong secret: the bot answers 401, which
    // reaches the user as not-authorized (DESIGN §2's table).
    let other = Prosody::start().await?;
    let _impostor = signing_connector(&other, &bot.url, "not the bot's secret at all").await?;
    let mut bob = login(&other, "bob").await?;
    let id = bob.send_message(&echo(&other), "hello").await?;
    let reply = bob.expect_message("refused", WAIT).await?;
    assert_stanza_error(&reply, &id, "auth", "not-authorized", None);
    Ok(())
}

/// The verifier examples the docs show (docs/src/signing.md) are these
/// files, verbatim.
#[test]
fn the_docs_show_the_example_verifiers() -> Result<()> {
    let page = std::fs::read_to_string(workspace_root().join("docs/src/signing.md"))?;
    let examples: &[(&str, &str, &str)] = &[
        ("echo_bot.php", "function xmpp_lambda_verified", "\n}\n"),
        (
            "echo_bot.py",
            "def xmpp_lambda_verified",
            "signature.encode())\n",
        ),
        ("echo_bot.js", "function xmppLambdaVerified", "\n}\n"),
    ];
    for (file, start, end) in examples {
        let path: PathBuf = workspace_root().join("examples/verifiers").join(file);
        let text = std::fs::read_to_string(&path)?;
        let from = text.find(start).ok_or(format!("{file}: no {start:?}"))?;
        let to = from + text[from..].find(end).ok_or(format!("{file}: no end"))? + end.len();
        let verifier = &text[from..to];
        assert!(
            page.contains(verifier),
            "docs/src/signing.md does not show the verifier of {file} as it is:\n{verifier}"
        );
        let lines = verifier.lines().count();
        assert!(lines <= 12, "{file}: the verifier is {lines} lines");
    }
    Ok(())
}

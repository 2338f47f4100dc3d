//! Signed requests (DESIGN §9) in the function: the Function URL handler
//! lets only requests signed with `COMPONENT_POST_SECRET` reach the bot, and
//! the proxy bot signs every POST, checked by the example verifiers the
//! book shows (docs/src/signing.md: `examples/verifiers/`, PHP and Python;
//! Node when `node` is on PATH) and by the real binary under cargo lambda.

mod common;

use base64::Engine;
use common::{BotServer, LambdaEmulator, bootstrap, fixture, free_port, request, workspace_root};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};
use xmpp_lambda_function::{Bot, EchoBot, Handler, ProxyBot};
use xmpp_lambda_shared::signing::{
    SIGNATURE_HEADER, Signer, TIMESTAMP_HEADER, unix_seconds, verify,
};

const SECRET: &str = "6f1d2c0a9b8e7d6c5b4a39281706f5e4";

fn now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// A Function URL event carrying `body` and these headers (Function URLs
/// give header names in lower case).
fn url_event(body: &str, headers: &[(&str, String)]) -> Value {
    let mut event = fixture("function_url_request.json");
    event["body"] = json!(body);
    for (name, value) in headers {
        event["headers"][name.to_ascii_lowercase()] = json!(value);
    }
    event
}

/// Signature headers, name and value, as a request carries them.
type Headers = Vec<(&'static str, String)>;

fn proxy(url: &str) -> ProxyBot {
    ProxyBot::new(url.parse().expect("bot url"), Duration::from_secs(5)).expect("proxy bot")
}

#[tokio::test]
async fn function_url_lets_only_signed_requests_reach_the_bot() {
    let bot = BotServer::start().await;
    let handler = Handler::new(proxy(&bot.url)).with_request_verifier(Signer::new(SECRET));
    let signer = Signer::new(SECRET);
    let body = serde_json::to_string(&request(Some("hello"))).expect("json");

    let response = handler
        .handle(
            url_event(&body, &signer.headers(now(), body.as_bytes())),
            None,
        )
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(
        response["body"],
        json!({"body": "bot heard hello"}).to_string()
    );

    // Base64 (a body not labelled as text): the signature covers the bytes
    // sent, not their encoding.
    let mut encoded = url_event(
        &base64::engine::general_purpose::STANDARD.encode(&body),
        &signer.headers(now(), body.as_bytes()),
    );
    encoded["isBase64Encoded"] = json!(true);
    let response = handler.handle(encoded, None).await.expect("answered");
    assert_eq!(response["statusCode"], 200, "{response}");
    assert_eq!(bot.seen().len(), 2);

    let other = Signer::new("a different secret of the same size!");
    let good = signer.headers(now(), body.as_bytes());
    let changed = body.replace("hello", "hellO");
    let refused: Vec<(&str, Headers, &str)> = vec![
        (
            "wrong secret",
            other.headers(now(), body.as_bytes()).to_vec(),
            &body,
        ),
        (
            "stale",
            signer.headers(now() - 400, body.as_bytes()).to_vec(),
            &body,
        ),
        (
            "future",
            signer.headers(now() + 400, body.as_bytes()).to_vec(),
            &body,
        ),
        ("changed body", good.to_vec(), &changed),
        ("unsigned", Vec::new(), &body),
        ("no timestamp", good[1..].to_vec(), &body),
    ];
    let mut not_base64 = url_event("%%% not base64", &good);
    not_base64["isBase64Encoded"] = json!(true);
    let response = handler.handle(not_base64, None).await.expect("answered");
    assert_eq!(
        response["statusCode"], 401,
        "an undecodable body: {response}"
    );
    for (what, headers, sent) in refused {
        let response = handler
            .handle(url_event(sent, &headers), None)
            .await
            .expect("answered");
        assert_eq!(response["statusCode"], 401, "{what}: {response}");
        assert_eq!(
            response["body"], "the request is not signed with the expected secret",
            "{what}: the reason is logged, not told"
        );
    }
    assert_eq!(bot.seen().len(), 2, "nothing refused was forwarded");

    // Without a verifier, unsigned requests are answered as before.
    let open = Handler::new(EchoBot);
    let response = open
        .handle(url_event(&body, &[]), None)
        .await
        .expect("answered");
    assert_eq!(response["statusCode"], 200, "{response}");
}

#[tokio::test]
async fn proxy_signs_every_post() {
    let bot = BotServer::start().await;
    let signed = proxy(&bot.url).with_signer(Signer::new(SECRET));
    for text in ["hello", "über <&> 😀"] {
        let outcome = signed.answer(&request(Some(text))).await;
        assert_eq!(outcome.status, 200, "{outcome:?}");
    }
    let unsigned = proxy(&bot.url);
    unsigned.answer(&request(Some("plain"))).await;

    let seen = bot.seen();
    assert_eq!(seen.len(), 3);
    for request in &seen[..2] {
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            verify(
                SECRET,
                request.header(TIMESTAMP_HEADER),
                request.header(SIGNATURE_HEADER),
                request.body.as_bytes(),
                now(),
            ),
            Ok(()),
            "{request:?}"
        );
    }
    assert_eq!(seen[2].header(SIGNATURE_HEADER), None);
    assert_eq!(seen[2].header(TIMESTAMP_HEADER), None);
}

/// An example bot of `examples/verifiers/`, killed when dropped.
struct ExampleBot {
    child: std::process::Child,
    url: String,
}

impl ExampleBot {
    fn start(program: &str, script: &str) -> ExampleBot {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut command = Command::new(program);
        if program == "php" {
            command.args(["-S", &address, script]);
        } else {
            command.args([script, &port.to_string()]);
        }
        let mut child = command
            .current_dir(workspace_root().join("examples/verifiers"))
            .env("COMPONENT_POST_SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs (scripts/setup.sh installs it): {e}"));
        common::wait_for_port(port, script, &mut child);
        ExampleBot {
            child,
            url: format!("http://{address}/"),
        }
    }
}

impl Drop for ExampleBot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test]
async fn the_example_verifiers_accept_the_proxys_signature_and_no_other() {
    let mut examples = vec![("php", "echo_bot.php"), ("python3", "echo_bot.py")];
    if node_available() {
        examples.push(("node", "echo_bot.js"));
    } else {
        eprintln!("node is not on PATH: the Node verifier is not tested");
    }
    for (program, script) in examples {
        let bot = ExampleBot::start(program, script);
        let signed = proxy(&bot.url).with_signer(Signer::new(SECRET));
        let outcome = signed.answer(&request(Some("hello"))).await;
        assert_eq!(outcome.status, 200, "{script}: {outcome:?}");
        let reply: Value = serde_json::from_str(&outcome.body).expect("JSON");
        assert_eq!(reply, json!({"body": "Did you say hello?"}), "{script}");

        let wrong = proxy(&bot.url).with_signer(Signer::new("not the bot's secret at all"));
        let outcome = wrong.answer(&request(Some("hello"))).await;
        assert_eq!(outcome.status, 401, "{script}: wrong secret");
        let outcome = proxy(&bot.url).answer(&request(Some("hello"))).await;
        assert_eq!(outcome.status, 401, "{script}: unsigned");
    }
}

/// The real binary: `COMPONENT_POST_SECRET` from the environment both
/// guards the Function URL and signs the proxy's POSTs to the PHP bot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_function_verifies_and_signs_with_its_secret() {
    let bot = ExampleBot::start("php", "echo_bot.php");
    let env: Vec<(String, String)> = [
        ("COMPONENT_POST_URL", bot.url.as_str()),
        ("COMPONENT_POST_SECRET", SECRET),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let lambda = LambdaEmulator::start(&bootstrap(), &env);
    let url = format!(
        "http://127.0.0.1:{}/lambda-url/{}/",
        lambda.port,
        common::FUNCTION
    );
    let body = serde_json::to_string(&request(Some("hello"))).expect("json");
    let client = reqwest::Client::new();
    let post = |headers: Vec<(&'static str, String)>| {
        let mut post = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        for (name, value) in headers {
            post = post.header(name, value);
        }
        post.send()
    };

    let signed = Signer::new(SECRET).headers(now(), body.as_bytes()).to_vec();
    let response = post(signed).await.expect("Function URL request");
    assert_eq!(response.status(), 200);
    let reply: Value = response.json().await.expect("JSON reply");
    assert_eq!(reply, json!({"body": "Did you say hello?"}));

    let response = post(Vec::new()).await.expect("Function URL request");
    assert_eq!(response.status(), 401);
}

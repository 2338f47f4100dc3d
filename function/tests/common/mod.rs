//! Real parts for the function's tests: moto's SQS server, a scripted HTTP
//! bot, and cargo lambda's Runtime API emulator running the real binary.
//! Every process is killed when its guard drops.
#![allow(dead_code)] // each test file uses a different part

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use xmpp_lambda_shared::{Request, RequestEnvelope, StanzaKind, conversation_id};

/// The region every test client and process uses.
pub const REGION: &str = "us-east-1";

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

/// A tool from the workspace's `.venv` (made by scripts/setup.sh), else PATH.
pub fn tool(name: &str) -> PathBuf {
    let venv = workspace_root().join(".venv/bin").join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Waits until something accepts connections on `port`, or panics.
pub fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process, killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's server on a free port, with an SQS client pointed at it.
pub struct Moto {
    pub endpoint: String,
    pub client: aws_sdk_sqs::Client,
    _process: ChildGuard,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        // moto's server with deletes made safe against concurrent calls.
        let launcher = workspace_root().join("scripts/moto_server.py");
        let mut child = Command::new(tool("python"))
            .arg(launcher)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (scripts/setup.sh installs it in .venv)");
        wait_for_port(port, "moto_server", &mut child);
        let endpoint = format!("http://127.0.0.1:{port}");
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .build();
        Moto {
            endpoint,
            client: aws_sdk_sqs::Client::from_conf(config),
            _process: ChildGuard(child),
        }
    }

    /// The environment a process needs to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    /// Creates a queue (FIFO when the name ends `.fifo`) and returns its URL.
    pub async fn queue(&self, name: &str, attributes: &[(&str, &str)]) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        let mut create = self.client.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        for (key, value) in attributes {
            create = create.attributes(QueueAttributeName::from(*key), *value);
        }
        let out = create.send().await.expect("create queue");
        out.queue_url().expect("queue url").to_owned()
    }

    /// The queue's ARN.
    pub async fn arn(&self, url: &str) -> String {
        use aws_sdk_sqs::types::QueueAttributeName;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("get queue attributes");
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .expect("queue arn")
            .clone()
    }

    /// How many messages the queue holds (SQS's approximate count, exact
    /// on moto).
    pub async fn depth(&self, url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("get queue attributes");
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse().ok())
            .expect("a message count")
    }

    /// Takes every visible message off the queue (deleting them), in the
    /// order received.
    pub async fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        use aws_sdk_sqs::types::MessageSystemAttributeName;
        let mut all = Vec::new();
        loop {
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = out.messages().to_vec();
            if messages.is_empty() {
                return all;
            }
            for message in &messages {
                self.client
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle().expect("receipt handle"))
                    .send()
                    .await
                    .expect("delete");
            }
            all.extend(messages);
        }
    }

    /// Sends a message (to a FIFO queue: in `group`, deduplicated by `dedup`).
    pub async fn send(&self, url: &str, body: &str, group: Option<(&str, &str)>) {
        let mut send = self.client.send_message().queue_url(url).message_body(body);
        if let Some((group, dedup)) = group {
            send = send.message_group_id(group).message_deduplication_id(dedup);
        }
        send.send().await.expect("send message");
    }
}

/// One request as the scripted bot saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub content_type: Option<String>,
    /// Every header, name in lower case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl SeenRequest {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn request(&self) -> Request {
        serde_json::from_str(&self.body).expect("the bot got a request JSON")
    }
}

/// A real HTTP bot on loopback whose answer depends on the message text:
/// `status N` → status N (text/plain), `slow` → answers after 30 s,
/// `sleep N …` → answers after N ms, `flaky …` → 500 the first time that
/// text comes, `plain` → 200 text/plain, an IQ → 503, `stream N MS` → a
/// chunked `application/x-ndjson` answer of N lines `{"body": "line K"}`,
/// one every MS ms (the first at once), `stall` → one such line, then
/// nothing for 30 s, anything else → 200 JSON
/// `{"body": "bot heard <text>"}` with a charset parameter.
pub struct BotServer {
    pub url: String,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BotServer {
    pub async fn start() -> BotServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind bot");
        let url = format!("http://{}/bot", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let _ = serve_one(stream, log).await;
                });
            }
        });
        BotServer { url, seen, task }
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for BotServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    mut stream: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<SeenRequest>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let method = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut length = 0;
    let mut content_type = None;
    let mut headers = Vec::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = Some(value.trim().to_owned()),
                _ => {}
            }
        }
    }
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let json = serde_json::from_str::<Value>(&body).unwrap_or_default();
    let text = json
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let is_iq = json.get("kind").and_then(Value::as_str) == Some("iq");
    let seen_before = {
        let mut log = log.lock().expect("lock");
        let seen_before = log.iter().any(|seen| {
            serde_json::from_str::<Value>(&seen.body)
                .ok()
                .is_some_and(|json| json.get("body").and_then(Value::as_str) == Some(&text))
        });
        log.push(SeenRequest {
            method,
            content_type,
            headers,
            body,
        });
        seen_before
    };
    if let Some(ms) = text
        .strip_prefix("sleep ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    if let Some(lines) = stream_script(&text) {
        return write_ndjson(&mut stream, &lines).await;
    }
    let (status, content_type, answer) = if is_iq {
        (503, "text/plain", "no IQs here".to_owned())
    } else if text.starts_with("flaky") && !seen_before {
        (500, "text/plain", "flaky, try again".to_owned())
    } else if let Some(code) = text.strip_prefix("status ") {
        (
            code.parse().unwrap_or(500),
            "text/plain",
            format!("scripted {code}"),
        )
    } else if text == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
        (200, "application/json", json!({"body": "late"}).to_string())
    } else if text == "plain" {
        (200, "text/plain", "just text".to_owned())
    } else {
        (
            200,
            "application/json; charset=utf-8",
            json!({ "body": format!("bot heard {text}") }).to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The lines of a scripted stream and the wait before each, or `None`
/// when `text` asks for no stream.
fn stream_script(text: &str) -> Option<Vec<(Duration, String)>> {
    let line = |n: u64| json!({ "body": format!("line {n}") }).to_string();
    if text == "stall" {
        return Some(vec![
            (Duration::ZERO, line(1)),
            (Duration::from_secs(30), line(2)),
        ]);
    }
    let mut words = text.strip_prefix("stream ")?.split(' ');
    let count: u64 = words.next()?.parse().ok()?;
    let gap = Duration::from_millis(words.next()?.parse().ok()?);
    Some(
        (1..=count)
            .map(|n| (if n == 1 { Duration::ZERO } else { gap }, line(n)))
            .collect(),
    )
}

/// Answers `200 application/x-ndjson`, chunked, each line its own chunk
/// after its wait.
async fn write_ndjson(
    stream: &mut tokio::net::TcpStream,
    lines: &[(Duration, String)],
) -> std::io::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 200 Scripted\r\nContent-Type: application/x-ndjson\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .await?;
    for (wait, line) in lines {
        tokio::time::sleep(*wait).await;
        let chunk = format!("{line}\n");
        stream
            .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
            .await?;
        stream.flush().await?;
    }
    stream.write_all(b"0\r\n\r\n").await?;
    stream.shutdown().await
}

/// A message request as the connector would send it.
pub fn request(text: Option<&str>) -> Request {
    Request {
        body: text.map(str::to_owned),
        stanza: match text {
            Some(text) => format!(
                "<message xmlns='jabber:client' type='chat' id='m1' to='echo@bot.localhost' from='alice@localhost/phone'><body>{text}</body></message>"
            ),
            None => "<message xmlns='jabber:client' type='chat' id='m1' to='echo@bot.localhost' from='alice@localhost/phone'/>".into(),
        },
        id: Some("m1".into()),
        ..Request::chat("alice@localhost/phone", "echo@bot.localhost", "")
    }
}

/// A request envelope body for a message saying `text`.
pub fn envelope(id: &str, text: &str) -> String {
    RequestEnvelope::new(id, request(Some(text))).to_json()
}

/// A message request from `user@localhost` saying `text`: each user is
/// a conversation of its own.
pub fn request_from(user: &str, text: &str) -> Request {
    let mut request = request(Some(text));
    request.from = format!("{user}@localhost/phone");
    request.stanza = request.stanza.replace("alice@", &format!("{user}@"));
    request
}

/// An IQ `get` request from alice (a version query), as the connector
/// forwards it with `COMPONENT_POST_STANZAS=message,iq`.
pub fn iq_request() -> Request {
    Request {
        kind: StanzaKind::Iq,
        stanza: "<iq xmlns='jabber:client' type='get' id='q1' to='echo@bot.localhost' from='alice@localhost/phone'><query xmlns='jabber:iq:version'/></iq>".into(),
        body: None,
        stanza_type: Some("get".into()),
        id: Some("q1".into()),
        ..request(None)
    }
}

/// A FIFO SQS event from the queue `arn`, one record per `(messageId,
/// request envelope)`, each in its conversation's message group as the
/// connector sets it (a body that is no envelope: the group `unreadable`),
/// each delivered `receive_count` times so far.
pub fn fifo_event(arn: &str, records: &[(&str, String)], receive_count: u32) -> Value {
    let mut event = sqs_event("sqs_event_fifo.json", arn, records);
    for record in event["Records"].as_array_mut().expect("records") {
        let body = record["body"].as_str().expect("a body");
        let group = RequestEnvelope::from_json(body)
            .map(|envelope| conversation_id(&envelope.request))
            .unwrap_or_else(|_| "unreadable".to_owned());
        record["attributes"]["MessageGroupId"] = json!(group);
        record["attributes"]["ApproximateReceiveCount"] = json!(receive_count.to_string());
    }
    event
}

pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// An SQS event shaped like `fixture`'s first record, one record per
/// `(messageId, body)`, from the queue `arn`.
pub fn sqs_event(fixture_name: &str, arn: &str, records: &[(&str, String)]) -> Value {
    let template = fixture(fixture_name)["Records"][0].clone();
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(index, (id, body))| {
            let mut record = template.clone();
            record["messageId"] = json!(id);
            record["receiptHandle"] = json!(format!("handle-{id}"));
            record["body"] = json!(body);
            record["eventSourceARN"] = json!(arn);
            if record["attributes"].get("MessageGroupId").is_some() {
                record["attributes"]["MessageDeduplicationId"] = json!(id);
                record["attributes"]["SequenceNumber"] = json!(format!(
                    "{}",
                    18_849_496_460_467_696_128u128 + index as u128
                ));
            }
            record
        })
        .collect();
    json!({ "Records": records })
}

/// cargo lambda's Runtime API emulator (`cargo lambda watch
/// --only-lambda-apis`) with one function process polling it.
pub struct LambdaEmulator {
    pub port: u16,
    pub started: Instant,
    function: ChildGuard,
    _emulator: ChildGuard,
    http: reqwest::Client,
}

/// The name cargo lambda gives the function it does not start itself.
pub const FUNCTION: &str = "_";

impl LambdaEmulator {
    /// Starts the emulator, then `binary` as the function with `env`.
    pub fn start(binary: &std::path::Path, env: &[(String, String)]) -> LambdaEmulator {
        let port = free_port();
        let mut emulator = Command::new(tool("cargo-lambda"))
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo-lambda runs (scripts/setup.sh installs it in .venv)");
        wait_for_port(port, "cargo lambda watch", &mut emulator);
        let emulator = ChildGuard(emulator);
        // Built before the clock starts: a client's TLS set-up is not the
        // function's cold start.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        let started = Instant::now();
        let function = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the function binary runs");
        LambdaEmulator {
            port,
            started,
            function: ChildGuard(function),
            _emulator: emulator,
            http,
        }
    }

    /// The Lambda invoke API URL for the function.
    pub fn invoke_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/2015-03-31/functions/{FUNCTION}/invocations",
            self.port
        )
    }

    /// Invokes the function with `event`; returns the HTTP status and JSON.
    pub async fn invoke(&self, event: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.invoke_url())
            .json(event)
            .send()
            .await
            .expect("invoke");
        let status = response.status().as_u16();
        let body = response.text().await.expect("invoke body");
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, json)
    }

    /// POSTs `body` to the function's Function URL.
    pub async fn post_url(&self, body: &str, content_type: &str) -> reqwest::Response {
        self.http
            .post(format!(
                "http://127.0.0.1:{}/lambda-url/{FUNCTION}/",
                self.port
            ))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("Function URL request")
    }

    /// POSTs `body` to the Function URL at `path` with extra `headers`.
    pub async fn post_url_with(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!(
                "http://127.0.0.1:{}/lambda-url/{FUNCTION}{path}",
                self.port
            ))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("Function URL request")
    }

    /// The function process's id (to freeze it as Lambda does between
    /// invocations).
    pub fn function_pid(&self) -> u32 {
        self.function.0.id()
    }

    /// Whether the function process is still running.
    pub fn function_running(&mut self) -> bool {
        matches!(self.function.0.try_wait(), Ok(None))
    }
}

/// The built `bootstrap` binary.
pub fn bootstrap() -> PathBuf {
    std::env::var_os("XMPP_LAMBDA_BOOTSTRAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_bootstrap")))
}

/// A built example of this crate (`cargo test` builds examples next to
/// the test binaries' `deps` folder).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "example {name} is not built at {}",
        path.display()
    );
    path
}

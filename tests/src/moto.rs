//! moto's AWS server (for SQS) from the workspace's `.venv`, per test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::net::free_port;
use crate::process::kill_blocking;
use crate::{Result, workspace_root};

/// moto is ready in under a second; a loaded machine gets more.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `moto_server` on 127.0.0.1. Dropping it kills it by PID.
#[derive(Debug)]
pub struct Moto {
    /// Its port on 127.0.0.1.
    port: u16,
    /// The server process.
    child: Child,
    /// For readiness checks and resets.
    http: reqwest::Client,
}

impl Moto {
    /// Starts moto's server (`scripts/moto_server.py -H 127.0.0.1 -p PORT`
    /// under `.venv`'s Python) and waits until it answers HTTP.
    pub async fn start() -> Result<Self> {
        let python = venv_python();
        if !python.is_file() {
            return Err(format!(
                "{} is missing: run scripts/setup.sh (it installs moto[server] into .venv)",
                python.display()
            )
            .into());
        }
        let port = free_port();
        let child = Command::new(&python)
            .arg(moto_launcher())
            .arg("-H")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::null())
            // Its request log is noise in test output.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let mut moto = Moto { port, child, http };
        moto.wait_ready().await?;
        Ok(moto)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        let probe = format!("{}/moto-api/", self.endpoint_url());
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("moto_server exited at start ({status})").into());
            }
            if self.http.get(&probe).send().await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("moto_server did not answer within {START_TIMEOUT:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The endpoint for `AWS_ENDPOINT_URL`, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets every queue and message (`POST /moto-api/reset`).
    pub async fn reset(&self) -> Result<()> {
        let response = self
            .http
            .post(format!("{}/moto-api/reset", self.endpoint_url()))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("moto reset answered {}", response.status()).into());
        }
        Ok(())
    }

    /// One SQS query-protocol call (`Action=…&…`), answered in XML. Enough
    /// for test setup without an AWS SDK; moto routes by the service named
    /// in the (unchecked) Authorization header.
    pub async fn sqs_action(&self, params: &[(&str, &str)]) -> Result<String> {
        self.query_action("sqs", "2012-11-05", params).await
    }

    /// One query-protocol call to `service` (`sqs`, `iam`, …) of API
    /// `version`, answered in XML.
    pub async fn query_action(
        &self,
        service: &str,
        version: &str,
        params: &[(&str, &str)],
    ) -> Result<String> {
        let mut form: Vec<String> = params
            .iter()
            .map(|(key, value)| format!("{}={}", form_encode(key), form_encode(value)))
            .collect();
        form.push(format!("Version={version}"));
        let response = self
            .http
            .post(self.endpoint_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0"
                ),
            )
            .body(form.join("&"))
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("{service} {params:?} answered {status}: {text}").into());
        }
        Ok(text)
    }

    /// Creates an IAM user whose only permissions are `policy` (a policy
    /// document in JSON) and returns its access key id and secret. They
    /// matter once [`Moto::enforce_iam`] is called.
    pub async fn create_iam_user(&self, name: &str, policy: &str) -> Result<(String, String)> {
        const IAM_VERSION: &str = "2010-05-08";
        self.query_action(
            "iam",
            IAM_VERSION,
            &[("Action", "CreateUser"), ("UserName", name)],
        )
        .await?;
        self.query_action(
            "iam",
            IAM_VERSION,
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", "only-this"),
                ("PolicyDocument", policy),
            ],
        )
        .await?;
        let answer = self
            .query_action(
                "iam",
                IAM_VERSION,
                &[("Action", "CreateAccessKey"), ("UserName", name)],
            )
            .await?;
        let key = xml_field(&answer, "AccessKeyId");
        let secret = xml_field(&answer, "SecretAccessKey");
        key.zip(secret)
            .ok_or_else(|| format!("no access key in: {answer}").into())
    }

    /// Turns on moto's IAM checks from the next call on: every call must
    /// be signed with the keys of a user moto knows ([`Moto::create_iam_user`])
    /// and is allowed only by that user's policy. The harness's own calls
    /// are refused from then on, so set everything up first.
    pub async fn enforce_iam(&self) -> Result<()> {
        let response = self
            .http
            .post(format!("{}/moto-api/reset-auth", self.endpoint_url()))
            .body("0")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("moto reset-auth answered {}", response.status()).into());
        }
        Ok(())
    }

    /// Creates a queue (a name ending `.fifo` makes a FIFO queue with
    /// content-based deduplication off) and returns its URL.
    pub async fn create_queue(&self, name: &str) -> Result<String> {
        let mut params = vec![("Action", "CreateQueue"), ("QueueName", name)];
        if name.ends_with(".fifo") {
            params.extend([
                ("Attribute.1.Name", "FifoQueue"),
                ("Attribute.1.Value", "true"),
            ]);
        }
        let answer = self.sqs_action(&params).await?;
        let url = answer
            .split_once("<QueueUrl>")
            .and_then(|(_, rest)| rest.split_once("</QueueUrl>"))
            .map(|(url, _)| url.to_owned())
            .ok_or_else(|| format!("no QueueUrl in: {answer}"))?;
        Ok(url)
    }

    /// Creates a queue with attributes (e.g. `VisibilityTimeout`,
    /// `RedrivePolicy`); a name ending `.fifo` makes a FIFO queue. Returns
    /// its URL.
    pub async fn create_queue_with(
        &self,
        name: &str,
        attributes: &[(&str, &str)],
    ) -> Result<String> {
        let mut all: Vec<(&str, &str)> = attributes.to_vec();
        if name.ends_with(".fifo") {
            all.push(("FifoQueue", "true"));
        }
        let keys: Vec<(String, String)> = (1..=all.len())
            .map(|n| {
                (
                    format!("Attribute.{n}.Name"),
                    format!("Attribute.{n}.Value"),
                )
            })
            .collect();
        let mut params = vec![("Action", "CreateQueue"), ("QueueName", name)];
        for ((name_key, value_key), (attribute, value)) in keys.iter().zip(&all) {
            params.push((name_key, attribute));
            params.push((value_key, value));
        }
        let answer = self.sqs_action(&params).await?;
        xml_field(&answer, "QueueUrl").ok_or_else(|| format!("no QueueUrl in: {answer}").into())
    }

    /// One attribute of a queue, e.g. `QueueArn` or
    /// `ApproximateNumberOfMessages`.
    pub async fn queue_attribute(&self, url: &str, attribute: &str) -> Result<String> {
        let answer = self
            .sqs_action(&[
                ("Action", "GetQueueAttributes"),
                ("QueueUrl", url),
                ("AttributeName.1", attribute),
            ])
            .await?;
        let value = answer
            .split("<Attribute>")
            .skip(1)
            .find(|entry| xml_field(entry, "Name").as_deref() == Some(attribute))
            .and_then(|entry| xml_field(entry, "Value"));
        value.ok_or_else(|| format!("no {attribute} in: {answer}").into())
    }

    /// Messages on the queue, visible or not (received, not yet deleted).
    pub async fn queue_depth(&self, url: &str) -> Result<u64> {
        let mut total = 0;
        for attribute in [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ] {
            total += self.queue_attribute(url, attribute).await?.parse::<u64>()?;
        }
        Ok(total)
    }

    /// Waits until the queue holds `depth` messages (visible or not),
    /// polling, for at most `timeout`.
    pub async fn wait_depth(&self, url: &str, depth: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.queue_depth(url).await?;
            if now == depth {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("{url} holds {now} messages, expected {depth}").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Receives up to 10 visible messages (without deleting them) and
    /// returns their bodies, XML-unescaped.
    pub async fn peek_bodies(&self, url: &str) -> Result<Vec<String>> {
        let answer = self
            .sqs_action(&[
                ("Action", "ReceiveMessage"),
                ("QueueUrl", url),
                ("MaxNumberOfMessages", "10"),
                ("WaitTimeSeconds", "0"),
            ])
            .await?;
        Ok(answer
            .split("<Message>")
            .skip(1)
            .filter_map(|message| xml_field(message, "Body"))
            .map(|body| xml_unescape(&body))
            .collect())
    }

    /// Sends one message (to a FIFO queue with `group` and a random
    /// deduplication id).
    pub async fn send_message(&self, url: &str, body: &str, group: Option<&str>) -> Result<()> {
        let dedup = uuid::Uuid::new_v4().to_string();
        let mut params = vec![
            ("Action", "SendMessage"),
            ("QueueUrl", url),
            ("MessageBody", body),
        ];
        if let Some(group) = group {
            params.push(("MessageGroupId", group));
            params.push(("MessageDeduplicationId", &dedup));
        }
        self.sqs_action(&params).await?;
        Ok(())
    }

    /// A connector's environment for the sqs transport on this server:
    /// [`Moto::aws_env`], `TRANSPORT=sqs` and the two queues.
    pub fn sqs_transport_env(&self, requests: &str, replies: &str) -> Vec<(&'static str, String)> {
        let mut env = self.aws_env();
        env.push(("TRANSPORT", "sqs".to_owned()));
        env.push(("REQUEST_QUEUE_URL", requests.to_owned()));
        env.push(("REPLY_QUEUE_URL", replies.to_owned()));
        env
    }

    /// The environment an AWS SDK client needs to use this server: the
    /// endpoint, a region, static test credentials and no metadata lookups.
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            kill_blocking(pid);
        }
    }
}

/// The text of the first `<name>…</name>` in an XML answer.
fn xml_field(xml: &str, name: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    let (value, _) = rest.split_once(&format!("</{name}>"))?;
    Some(value.to_owned())
}

/// Undoes XML escaping of the five predefined entities and numeric
/// character references.
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let Some(end) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(char::from(byte));
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// `.venv/bin/python` in the workspace root: it has moto.
fn venv_python() -> PathBuf {
    workspace_root().join(".venv").join("bin").join("python")
}

/// moto's server with deletes made safe against concurrent calls (see the
/// script).
fn moto_launcher() -> PathBuf {
    workspace_root().join("scripts").join("moto_server.py")
}

//! The serverless side of the sqs transport, all local: the function
//! (`bootstrap`) served by cargo lambda's Runtime API emulator, and the
//! local SQS trigger (`xmpp-lambda-sqs-trigger`) feeding it the request
//! queue the way Lambda's event source mapping does.
//!
//! Both log only warnings into the test output; set
//! `XMPP_LAMBDA_TEST_SERVERLESS_LOG` (a `RUST_LOG` filter, e.g. `info`) to
//! see more.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::net::{free_port, wait_for_tcp};
use crate::process::kill_blocking;
use crate::{Moto, Result, workspace_bin, workspace_example, workspace_root};

/// cargo lambda's emulator starts in well under a second; a busy machine
/// gets more.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The function name cargo lambda gives a function it did not start.
pub const FUNCTION_NAME: &str = "_";

/// The function: `bootstrap` polling `cargo lambda watch --only-lambda-apis`.
/// Dropping it kills both by PID.
#[derive(Debug)]
pub struct LambdaFunction {
    /// The emulator's port (Runtime API and invoke API).
    port: u16,
    /// `cargo lambda watch`.
    emulator: Child,
    /// The function process.
    function: Child,
}

impl LambdaFunction {
    /// Starts the emulator, then the function with moto's AWS settings,
    /// `REPLY_QUEUE_URL` and `env` (e.g. `BOT=echo`, or
    /// `COMPONENT_POST_URL`).
    pub async fn start(moto: &Moto, reply_queue_url: &str, env: &[(&str, &str)]) -> Result<Self> {
        Self::start_binary(&workspace_bin("bootstrap"), moto, reply_queue_url, env).await
    }

    /// Like [`LambdaFunction::start`], with a bot of the function crate's
    /// examples (e.g. `reminder_bot`) as the function.
    pub async fn start_example(
        name: &str,
        moto: &Moto,
        reply_queue_url: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::start_binary(&workspace_example(name), moto, reply_queue_url, env).await
    }

    /// Like [`LambdaFunction::start`], with another binary of the workspace
    /// as the function (the starter's `my-xmpp-bot`).
    pub async fn start_bin(
        name: &str,
        moto: &Moto,
        reply_queue_url: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        Self::start_binary(&workspace_bin(name), moto, reply_queue_url, env).await
    }

    async fn start_binary(
        binary: &std::path::Path,
        moto: &Moto,
        reply_queue_url: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let cargo_lambda = venv_tool("cargo-lambda");
        let port = free_port();
        let mut emulator = Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1"])
            .arg("-P")
            .arg(port.to_string())
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {} (scripts/setup.sh installs it): {e}",
                    cargo_lambda.display()
                )
            })?;
        if !wait_for_tcp(port, START_TIMEOUT).await {
            let _ = emulator.start_kill();
            return Err(
                format!("cargo lambda watch did not listen within {START_TIMEOUT:?}").into(),
            );
        }
        let mut command = Command::new(binary);
        command
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION_NAME)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("REPLY_QUEUE_URL", reply_queue_url);
        serverless_child(&mut command, moto);
        for (key, value) in env {
            command.env(key, value);
        }
        let function = command.spawn()?;
        Ok(LambdaFunction {
            port,
            emulator,
            function,
        })
    }

    /// The Lambda invoke API base URL (for the trigger's `--endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Invokes the function with `event`, as EventBridge or `aws lambda
    /// invoke` would; returns the HTTP status and the function's answer.
    pub async fn invoke(&self, event: &serde_json::Value) -> Result<(u16, serde_json::Value)> {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/2015-03-31/functions/{FUNCTION_NAME}/invocations",
                self.endpoint()
            ))
            .json(event)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        ))
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        for child in [&self.function, &self.emulator] {
            if let Some(pid) = child.id() {
                kill_blocking(pid);
            }
        }
    }
}

/// The local SQS trigger process. Dropping it kills it by PID.
#[derive(Debug)]
pub struct SqsTrigger {
    /// The trigger process.
    child: Child,
}

impl SqsTrigger {
    /// Polls `queue_url` and invokes `function` with batches of up to
    /// `batch_size`.
    pub async fn start(
        moto: &Moto,
        queue_url: &str,
        function: &LambdaFunction,
        batch_size: u32,
    ) -> Result<Self> {
        Self::start_with(moto, queue_url, function, batch_size, &[]).await
    }

    /// Like [`SqsTrigger::start`], with `env` too (e.g. the credentials of
    /// the function's role).
    pub async fn start_with(
        moto: &Moto,
        queue_url: &str,
        function: &LambdaFunction,
        batch_size: u32,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut command = Command::new(workspace_bin("xmpp-lambda-sqs-trigger"));
        command
            .arg("--queue-url")
            .arg(queue_url)
            .arg("--endpoint")
            .arg(function.endpoint())
            .arg("--function")
            .arg(FUNCTION_NAME)
            .arg("--batch-size")
            .arg(batch_size.to_string())
            // Short polls end quickly when the test is over.
            .arg("--wait-seconds")
            .arg("2")
            .arg("--invoke-timeout")
            .arg("60");
        serverless_child(&mut command, moto);
        for (key, value) in env {
            command.env(key, value);
        }
        Ok(SqsTrigger {
            child: command.spawn()?,
        })
    }
}

impl Drop for SqsTrigger {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            kill_blocking(pid);
        }
    }
}

/// A tool installed in the workspace's `.venv` by scripts/setup.sh.
fn venv_tool(name: &str) -> PathBuf {
    workspace_root().join(".venv").join("bin").join(name)
}

/// What the function and the trigger processes both get: moto's endpoint
/// and test credentials, quiet logs unless `XMPP_LAMBDA_TEST_SERVERLESS_LOG`
/// asks for more (on stderr, next to the test's own output), and death with
/// the handle that started them.
fn serverless_child(command: &mut Command, moto: &Moto) {
    command
        .env(
            "RUST_LOG",
            std::env::var("XMPP_LAMBDA_TEST_SERVERLESS_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (key, value) in moto.aws_env() {
        command.env(key, value);
    }
}

/// One "Lambda" consuming a request queue: the function and the trigger
/// that feeds it batches of up to 10, as Lambda's event source mapping
/// would. Dropping it stops both.
#[derive(Debug)]
pub struct QueueConsumer {
    /// Kept for its `Drop`.
    _function: LambdaFunction,
    /// Kept for its `Drop`.
    _trigger: SqsTrigger,
}

impl QueueConsumer {
    /// The function (`bootstrap` with `env`, e.g. `BOT=echo`) answering
    /// `requests` on `replies`.
    pub async fn start(
        moto: &Moto,
        requests: &str,
        replies: &str,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let function = LambdaFunction::start(moto, replies, env).await?;
        let trigger = SqsTrigger::start(moto, requests, &function, 10).await?;
        Ok(QueueConsumer {
            _function: function,
            _trigger: trigger,
        })
    }
}

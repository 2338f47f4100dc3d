//! One run of `xmpp-lambda-connector check`: its exit code and the lines
//! it printed, found by check name.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::connector::CONNECTOR_BIN;
use crate::xmpp_server::XmppServer;
use crate::{Result, workspace_bin};

/// A check that takes longer than this is stuck (its own timeouts are
/// shorter).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// AWS settings a developer's or CI machine may have, removed from every
/// run so each test decides what the AWS SDK finds.
const AWS_ENVIRONMENT: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// `xmpp-lambda-connector check` with its arguments and environment, built
/// up and then run once.
#[derive(Debug, Clone, Default)]
pub struct CheckCommand {
    /// Arguments after `check`, e.g. `--config FILE`.
    args: Vec<String>,
    /// Environment variables set for the run (later ones win).
    env: Vec<(String, String)>,
}

impl CheckCommand {
    /// A check with no options of its own yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A check of the component on `server` (COMPONENT_JID,
    /// COMPONENT_SECRET, COMPONENT_SERVER).
    pub fn for_server(server: &impl XmppServer) -> Self {
        let mut command = Self::new();
        for (key, value) in server.component_env() {
            command = command.env(key, &value);
        }
        command
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets several environment variables.
    pub fn envs<K: AsRef<str>, V: AsRef<str>>(mut self, vars: &[(K, V)]) -> Self {
        for (key, value) in vars {
            self.env
                .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        }
        self
    }

    /// Adds a command-line argument after `check`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Runs the check to its end. The AWS SDK finds only what the test
    /// set: no credentials or region from this machine, no profile files,
    /// no instance metadata.
    pub async fn run(&self) -> Result<CheckRun> {
        let binary = workspace_bin(CONNECTOR_BIN);
        let mut command = Command::new(&binary);
        command
            .arg("check")
            .args(&self.args)
            .env("NO_COLOR", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/xmpp-lambda-check/config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/xmpp-lambda-check/credentials",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for key in AWS_ENVIRONMENT {
            command.env_remove(key);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("check did not finish within {RUN_TIMEOUT:?}"))??;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        eprintln!("[check] exit {:?}\n{stdout}{stderr}", output.status.code());
        Ok(CheckRun {
            code: output.status.code(),
            lines: stdout.lines().map(str::to_owned).collect(),
            stderr,
        })
    }
}

/// What one `check` run printed and how it exited.
#[derive(Debug, Clone)]
pub struct CheckRun {
    /// The exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Every line of its standard output.
    pub lines: Vec<String>,
    /// Its standard error (empty unless something went very wrong).
    pub stderr: String,
}

impl CheckRun {
    /// The line of the check called `name` (`server`, `bot`, `request
    /// queue`, …), e.g. `FAIL  server        cannot resolve …`.
    pub fn line(&self, name: &str) -> Result<&str> {
        self.lines
            .iter()
            .find(|line| line.get(6..).is_some_and(|rest| check_name(rest) == name))
            .map(String::as_str)
            .ok_or_else(|| {
                format!("check printed no {name:?} line:\n{}", self.lines.join("\n")).into()
            })
    }

    /// `pass`, `FAIL` or `skip` for the check called `name`.
    pub fn status(&self, name: &str) -> Result<&str> {
        Ok(&self.line(name)?[..4])
    }

    /// Asserts the check `name` came out `status` and its line contains
    /// each of `parts`; returns the line.
    pub fn expect(&self, name: &str, status: &str, parts: &[&str]) -> Result<&str> {
        let line = self.line(name)?;
        if !line.starts_with(status) {
            return Err(format!("expected {status} for {name:?}, got: {line}").into());
        }
        for part in parts {
            if !line.contains(part) {
                return Err(format!("the {name:?} line lacks {part:?}: {line}").into());
            }
        }
        Ok(line)
    }

    /// The last line: the tally.
    pub fn summary(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }
}

/// The check name at the start of a line's text after the status: names
/// are padded to 13 columns and may contain one space (`request queue`).
fn check_name(rest: &str) -> &str {
    let padded = rest.get(..13).unwrap_or(rest);
    padded.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_by_check_name() {
        let run = CheckRun {
            code: Some(1),
            lines: vec![
                "pass  options       component bot.localhost at 127.0.0.1:1".to_owned(),
                "FAIL  request queue there is no queue; fix: create it".to_owned(),
                "check: 1 of 2 checks failed".to_owned(),
            ],
            stderr: String::new(),
        };
        assert_eq!(run.status("options").ok(), Some("pass"));
        assert!(
            run.expect("request queue", "FAIL", &["no queue", "fix: create"])
                .is_ok()
        );
        assert!(run.line("queue").is_err());
        assert!(run.expect("options", "FAIL", &[]).is_err());
        assert_eq!(run.summary(), "check: 1 of 2 checks failed");
    }
}

//! The product's connector binary under test, with its output captured.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::memory::{ProcessMemory, process_memory};
use crate::process::send_signal;
use crate::xmpp_server::XmppServer;
use crate::{Result, workspace_bin};

/// The connector's binary name in the workspace.
pub const CONNECTOR_BIN: &str = "xmpp-lambda-connector";

/// A running `xmpp-lambda-connector`. Dropping it kills it by PID.
#[derive(Debug)]
pub struct Connector {
    /// The process; `wait_exit` reaps it.
    child: Child,
    /// Its process id, kept after exit for signals and messages.
    pid: u32,
    /// Every line it printed on stdout and stderr, in arrival order.
    lines: Arc<Mutex<Vec<String>>>,
    /// The number of captured lines, to wait for new ones without polling.
    line_count: watch::Receiver<usize>,
}

impl Connector {
    /// Starts the connector with these environment variables (on top of
    /// the test's own environment, with `RUST_LOG=info` unless given).
    pub async fn start(env: &[(&str, &str)]) -> Result<Self> {
        Self::start_with_args(&[], env).await
    }

    /// Starts the connector linked to `server`'s component (COMPONENT_JID,
    /// COMPONENT_SECRET, COMPONENT_SERVER) plus `env`, which wins.
    pub async fn start_for(server: &impl XmppServer, env: &[(&str, &str)]) -> Result<Self> {
        Self::start_for_with(server, env, None).await
    }

    /// [`Connector::start_for`] with the process's open-file limit
    /// (`RLIMIT_NOFILE`) set to `soft` and `hard` before it starts, as a
    /// service manager sets it.
    pub async fn start_with_open_files(
        server: &impl XmppServer,
        env: &[(&str, &str)],
        soft: u64,
        hard: u64,
    ) -> Result<Self> {
        Self::start_for_with(server, env, Some((soft, hard))).await
    }

    async fn start_for_with(
        server: &impl XmppServer,
        env: &[(&str, &str)],
        open_files: Option<(u64, u64)>,
    ) -> Result<Self> {
        let component_env = server.component_env();
        let mut all: Vec<(&str, &str)> = component_env
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        all.extend_from_slice(env);
        Self::spawn(&[], &all, open_files).await
    }

    /// [`Connector::start_for`], returning once the component link is up
    /// (within 10 s).
    pub async fn linked_to(server: &impl XmppServer, env: &[(&str, &str)]) -> Result<Self> {
        let connector = Self::start_for(server, env).await?;
        connector
            .wait_for_log("component link established", Duration::from_secs(10))
            .await?;
        Ok(connector)
    }

    /// Starts the connector with command-line arguments (e.g. `--config
    /// FILE`) and environment variables.
    pub async fn start_with_args(args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        Self::spawn(args, env, None).await
    }

    /// Starts the connector; `open_files` sets its soft and hard open-file
    /// limits.
    async fn spawn(
        args: &[&str],
        env: &[(&str, &str)],
        open_files: Option<(u64, u64)>,
    ) -> Result<Self> {
        let binary = workspace_bin(CONNECTOR_BIN);
        let mut command = Command::new(&binary);
        command
            .args(args)
            .env("RUST_LOG", "info")
            // Plain text, so tests can match log lines by substring.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        if let Some((soft, hard)) = open_files {
            // SAFETY: between fork and exec only setrlimit runs, which is
            // async-signal-safe and allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the connector exited at once")?;

        let lines = Arc::new(Mutex::new(Vec::new()));
        let (count_sender, line_count) = watch::channel(0);
        let count_sender = Arc::new(count_sender);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(capture(
                stdout,
                Arc::clone(&lines),
                Arc::clone(&count_sender),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(capture(
                stderr,
                Arc::clone(&lines),
                Arc::clone(&count_sender),
            ));
        }
        Ok(Connector {
            child,
            pid,
            lines,
            line_count,
        })
    }

    /// Waits for a line containing `needle` among everything printed so
    /// far and from now on; returns that line.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_for_log_from(0, needle, timeout).await
    }

    /// Like [`Connector::wait_for_log`], but only lines printed after this
    /// call count (e.g. the second "connected" after a server restart).
    pub async fn wait_for_new_log(&self, needle: &str, timeout: Duration) -> Result<String> {
        let from = self.lines.lock().unwrap_or_else(|e| e.into_inner()).len();
        self.wait_for_log_from(from, needle, timeout).await
    }

    /// Waits for a line containing `needle` at index `from` or later of
    /// [`Connector::logs`].
    pub async fn wait_for_log_from(
        &self,
        from: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String> {
        let mut lines = self.wait_for_lines(from, needle, 1, timeout).await?;
        Ok(lines.remove(0))
    }

    /// Waits until `count` lines contain `needle` (e.g. one "request
    /// queued" per message sent); returns them.
    pub async fn wait_for_log_count(
        &self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        self.wait_for_lines(0, needle, count, timeout).await
    }

    /// Waits until `count` lines at index `from` or later contain `needle`,
    /// woken by each new line rather than polling.
    async fn wait_for_lines(
        &self,
        from: usize,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let mut seen = self.line_count.clone();
        let deadline = Instant::now() + timeout;
        loop {
            seen.borrow_and_update();
            let found: Vec<String> = {
                let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                lines
                    .iter()
                    .skip(from)
                    .filter(|line| line.contains(needle))
                    .take(count)
                    .cloned()
                    .collect()
            };
            if found.len() >= count {
                return Ok(found);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, seen.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or both output pipes closed (the process ended).
                _ => {
                    return Err(format!(
                        "the connector printed {} of {count} lines containing {needle:?} \
                         within {timeout:?}; its output:\n{}",
                        found.len(),
                        self.logs().join("\n")
                    )
                    .into());
                }
            }
        }
    }

    /// Every line captured so far.
    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its resident memory now and at its peak; `None` once it has exited.
    pub fn memory(&self) -> Option<ProcessMemory> {
        process_memory(self.pid)
    }

    /// Sends SIGTERM (graceful shutdown); see [`Connector::wait_exit`].
    pub fn terminate(&self) {
        send_signal(self.pid, libc::SIGTERM);
    }

    /// Sends SIGKILL (a crash).
    pub fn kill(&self) {
        send_signal(self.pid, libc::SIGKILL);
    }

    /// Waits for the process to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => Err(format!(
                "the connector (pid {}) did not exit within {timeout:?}",
                self.pid
            )
            .into()),
        }
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            send_signal(self.pid, libc::SIGKILL);
        }
    }
}

/// Copies lines of one output pipe into the buffer and to the test's
/// stderr (shown by the test runner when a test fails).
async fn capture(
    pipe: impl AsyncRead + Unpin,
    lines: Arc<Mutex<Vec<String>>>,
    count: Arc<watch::Sender<usize>>,
) {
    let mut reader = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        eprintln!("[connector] {line}");
        let total = {
            let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            lines.push(line);
            lines.len()
        };
        count.send_replace(total);
    }
}

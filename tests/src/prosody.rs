//! A real Prosody (Debian's package) per test, on loopback, from a config
//! generated into a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::net::{free_port, wait_for_tcp};
use crate::process::{kill_blocking, stop_child};
use crate::temp_dir::TempDir;
use crate::xmpp_server::XmppServer;
use crate::{BoxError, Result};

/// How long Prosody may take to listen (it needs 0.1–0.3 s).
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a SIGTERM may take before SIGKILL follows.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Fresh ports are tried this often when another process took one first.
const PORT_ATTEMPTS: usize = 4;

/// A running Prosody with a user host, a component for the bot and a MUC.
///
/// Dropping it kills the server by PID and removes its folder.
#[derive(Debug)]
pub struct Prosody {
    /// Client-to-server port on 127.0.0.1 where test clients log in.
    pub c2s_port: u16,
    /// XEP-0114 component port on 127.0.0.1 where the connector links.
    pub component_port: u16,
    /// The user host (`localhost`): users are `name@localhost`.
    pub domain: String,
    /// The component's domain (`bot.localhost`) the connector serves.
    pub component_domain: String,
    /// The multi-user chat service (`conference.localhost`) for groupchat.
    pub muc_domain: String,
    /// The component's shared secret, random per instance.
    pub secret: String,
    /// The generated config file, also used by `prosodyctl`.
    config_path: PathBuf,
    /// Prosody's log file: read for readiness and shown on failures.
    log_path: PathBuf,
    /// The server process; `None` while stopped.
    child: Option<Child>,
    /// Config, data, logs; removed on drop after the process is gone.
    dir: TempDir,
}

impl Prosody {
    /// Starts Prosody with the default test configuration.
    pub async fn start() -> Result<Self> {
        Self::start_with_config("").await
    }

    /// Starts Prosody with extra global config lines (Lua), e.g.
    /// `network_settings = { read_timeout = 5 }`.
    pub async fn start_with_config(extra_global_config: &str) -> Result<Self> {
        Self::start_with(&[], extra_global_config).await
    }

    /// Starts Prosody with more modules than the test default (e.g.
    /// `smacks` for XEP-0198 acks, `offline` to keep messages for users who
    /// are away) and extra global config lines.
    pub async fn start_with(extra_modules: &[&str], extra_global_config: &str) -> Result<Self> {
        let mut last_error: BoxError = "Prosody was not started".into();
        for _ in 0..PORT_ATTEMPTS {
            let dir = TempDir::new("prosody")?;
            let mut prosody = Prosody {
                c2s_port: free_port(),
                component_port: free_port(),
                domain: "localhost".to_owned(),
                component_domain: "bot.localhost".to_owned(),
                muc_domain: "conference.localhost".to_owned(),
                secret: uuid::Uuid::new_v4().simple().to_string(),
                config_path: dir.path().join("prosody.cfg.lua"),
                log_path: dir.path().join("prosody.log"),
                child: None,
                dir,
            };
            std::fs::create_dir_all(prosody.dir.path().join("data"))?;
            std::fs::create_dir_all(prosody.dir.path().join("certs"))?;
            std::fs::write(
                &prosody.config_path,
                prosody.config(extra_modules, extra_global_config),
            )?;
            match prosody.launch().await {
                Ok(()) => return Ok(prosody),
                Err(StartError::PortTaken(message)) => last_error = message.into(),
                Err(StartError::Failed(error)) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// The Lua config: everything on 127.0.0.1, no TLS, no s2s.
    fn config(&self, extra_modules: &[&str], extra_global_config: &str) -> String {
        let dir = self.dir.path().display();
        let modules: String = [
            "roster", "saslauth", "disco", "ping", "private", "time", "version",
        ]
        .iter()
        .chain(extra_modules)
        .map(|module| format!("\"{module}\""))
        .collect::<Vec<_>>()
        .join(", ");
        format!(
            r#"-- Generated for one test run.
run_as_root = true
data_path = "{dir}/data"
pidfile = "{dir}/prosody.pid"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{log}" }} }}
certificates = "{dir}/certs"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{}}
component_ports = {{ {component} }}
component_interface = "127.0.0.1"
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
{extra_global_config}

VirtualHost "{domain}"

Component "{component_domain}"
    component_secret = "{secret}"

Component "{muc_domain}" "muc"
"#,
            log = self.log_path.display(),
            c2s = self.c2s_port,
            component = self.component_port,
            domain = self.domain,
            component_domain = self.component_domain,
            muc_domain = self.muc_domain,
            secret = self.secret,
        )
    }

    /// Spawns `prosody -F` and waits until both ports listen.
    async fn launch(&mut self) -> std::result::Result<(), StartError> {
        let log_offset = std::fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let console = std::fs::File::create(self.dir.path().join("console.log"))
            .map_err(|e| StartError::Failed(e.into()))?;
        let console_err = console
            .try_clone()
            .map_err(|e| StartError::Failed(e.into()))?;
        let child = Command::new("prosody")
            .arg("-F")
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                StartError::Failed(
                    format!("cannot run prosody (apt-get install prosody): {e}").into(),
                )
            })?;
        self.child = Some(child);

        let c2s_line = format!("Activated service 'c2s' on [127.0.0.1]:{}", self.c2s_port);
        let component_line = format!(
            "Activated service 'component' on [127.0.0.1]:{}",
            self.component_port
        );
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = read_from(&self.log_path, log_offset);
            if log.contains("Failed to open server port") {
                self.kill_now().await;
                return Err(StartError::PortTaken(format!(
                    "Prosody could not bind its ports:\n{}",
                    self.log_tail()
                )));
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(StartError::Failed(
                    format!("Prosody exited at start ({status}):\n{}", self.log_tail()).into(),
                ));
            }
            if log.contains(&c2s_line)
                && log.contains(&component_line)
                && wait_for_tcp(self.c2s_port, Duration::ZERO).await
                && wait_for_tcp(self.component_port, Duration::ZERO).await
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill_now().await;
                return Err(StartError::Failed(
                    format!(
                        "Prosody did not listen within {START_TIMEOUT:?}:\n{}",
                        self.log_tail()
                    )
                    .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates an account with `prosodyctl register`; works while running.
    /// Returns the user's bare JID.
    pub async fn register(&self, user: &str, password: &str) -> Result<String> {
        let output = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config_path)
            .arg("register")
            .arg(user)
            .arg(&self.domain)
            .arg(password)
            .stdin(Stdio::null())
            .output()
            .await?;
        if !output.status.success() {
            return Err(format!(
                "prosodyctl register {user} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(format!("{user}@{}", self.domain))
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period) and
    /// starts it again on the same ports with the same data: accounts,
    /// rosters and the component secret survive.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.launch().await.map_err(StartError::into_box)
    }

    /// Stops the server (SIGTERM, then SIGKILL after a grace period). The
    /// folder stays until drop, so [`Prosody::restart`] can start it again.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGTERM, STOP_GRACE).await;
        }
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The generated config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The data folder (`data_path`), e.g. to delete a roster between tests.
    pub fn data_path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The whole server log so far.
    pub fn log(&self) -> String {
        read_from(&self.log_path, 0)
    }

    /// The end of the server log, for failure messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, libc::SIGKILL, STOP_GRACE).await;
        }
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && let Some(pid) = child.id()
        {
            kill_blocking(pid);
        }
    }
}

impl XmppServer for Prosody {
    fn c2s_port(&self) -> u16 {
        self.c2s_port
    }
    fn component_port(&self) -> u16 {
        self.component_port
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn component_domain(&self) -> &str {
        &self.component_domain
    }
    fn muc_domain(&self) -> &str {
        &self.muc_domain
    }
    fn secret(&self) -> &str {
        &self.secret
    }
    async fn register(&self, user: &str, password: &str) -> Result<String> {
        Prosody::register(self, user, password).await
    }
    async fn restart(&mut self) -> Result<()> {
        Prosody::restart(self).await
    }
}

/// Why a start attempt failed: a port race is retried with fresh ports.
enum StartError {
    /// Another process bound one of our ports between probe and bind.
    PortTaken(String),
    /// Anything else; retrying would not help.
    Failed(BoxError),
}

impl StartError {
    fn into_box(self) -> BoxError {
        match self {
            StartError::PortTaken(message) => message.into(),
            StartError::Failed(error) => error,
        }
    }
}

/// The file's text from `offset` on (empty when missing).
fn read_from(path: &Path, offset: u64) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

//! A real ejabberd (Debian's package) per test, on loopback, from a config
//! generated into a temporary folder.
//!
//! `ejabberdctl foreground` runs as root → `su ejabberd` → `sh` → `beam.smp`;
//! `su` puts the Erlang VM in a session of its own, so the VM is found by
//! its pid file and by walking the process tree, and killed by PID.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::net::{free_port, wait_for_tcp};
use crate::process::{descendants, is_alive, kill_blocking, send_signal, wait_gone};
use crate::temp_dir::TempDir;
use crate::xmpp_server::XmppServer;
use crate::{BoxError, Result};

/// ejabberd needs about 1–2 s to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A graceful stop takes about 2.5 s (mnesia is flushed, so accounts
/// survive a restart); SIGKILL follows after this.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Fresh ports are tried this often when another process took one first.
const PORT_ATTEMPTS: usize = 4;

/// The Debian package runs ejabberd as this user.
const EJABBERD_USER: &str = "ejabberd";

/// A running ejabberd with a user host, a component for the bot and a MUC.
///
/// Dropping it kills the Erlang VM and its launcher by PID and removes the
/// folder.
#[derive(Debug)]
pub struct Ejabberd {
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
    /// Erlang distribution port of this node: `ejabberdctl` reaches the
    /// node through it without epmd, so instances never collide.
    dist_port: u16,
    /// The `ejabberdctl foreground` launcher process; `None` while stopped.
    launcher: Option<Child>,
    /// The Erlang VM (`beam.smp`) serving this instance, once known.
    beam_pid: Option<u32>,
    /// Config, spool, logs; owned by the ejabberd user; removed on drop.
    dir: TempDir,
}

impl Ejabberd {
    /// Starts ejabberd with the default test configuration.
    pub async fn start() -> Result<Self> {
        Self::start_with_config("").await
    }

    /// Starts ejabberd with extra top-level ejabberd.yml options appended,
    /// e.g. `domain_balancing:` for the component's domain.
    pub async fn start_with_config(extra_top_level_yaml: &str) -> Result<Self> {
        let mut last_error: BoxError = "ejabberd was not started".into();
        for _ in 0..PORT_ATTEMPTS {
            let dir = TempDir::new("ejabberd")?;
            let mut server = Ejabberd {
                c2s_port: free_port(),
                component_port: free_port(),
                domain: "localhost".to_owned(),
                component_domain: "bot.localhost".to_owned(),
                muc_domain: "conference.localhost".to_owned(),
                secret: uuid::Uuid::new_v4().simple().to_string(),
                dist_port: free_port(),
                launcher: None,
                beam_pid: None,
                dir,
            };
            server.write_config(extra_top_level_yaml)?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                // Another process bound one of our ports between probe and
                // bind: ejabberd exits; try fresh ports.
                Err(error) if error.to_string().contains("address already in use") => {
                    last_error = error;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    fn write_config(&self, extra_top_level_yaml: &str) -> Result<()> {
        let dir = self.dir.path();
        for sub in ["spool", "logs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(
            dir.join("ejabberd.yml"),
            format!("{}{extra_top_level_yaml}\n", self.config()),
        )?;
        std::fs::write(dir.join("ejabberdctl.cfg"), self.ctl_config())?;
        // Name resolution as the packaged config has it (localhost only).
        std::fs::write(
            dir.join("inetrc"),
            "{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n",
        )?;
        chown_tree(dir, EJABBERD_USER)
    }

    /// ejabberd.yml: c2s without STARTTLS and the component listener, both
    /// on 127.0.0.1; no s2s, HTTP or shapers.
    fn config(&self) -> String {
        format!(
            r#"# Generated for one test run.
loglevel: info
log_rotate_count: 0
hosts:
  - "{domain}"
certfiles: []
listen:
  -
    port: {c2s}
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls_required: false
  -
    port: {component}
    ip: "127.0.0.1"
    module: ejabberd_service
    hosts:
      "{component_domain}":
        password: "{secret}"
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  muc_create:
    allow: local
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_muc:
    host: "{muc_domain}"
    access_create: muc_create
"#,
            domain = self.domain,
            c2s = self.c2s_port,
            component = self.component_port,
            component_domain = self.component_domain,
            secret = self.secret,
            muc_domain = self.muc_domain,
        )
    }

    /// ejabberdctl.cfg: a node name, distribution port and cookie of this
    /// instance's own, so parallel instances and their `ejabberdctl` calls
    /// never meet.
    fn ctl_config(&self) -> String {
        let dir = self.dir.path().display();
        format!(
            "ERLANG_NODE=ejabberd{c2s}@localhost\n\
             ERL_DIST_PORT={dist}\n\
             INET_DIST_INTERFACE=127.0.0.1\n\
             ERL_OPTIONS=\"-setcookie {cookie}\"\n\
             EJABBERD_PID_PATH={dir}/ejabberd.pid\n\
             EJABBERD_BYPASS_WARNINGS=true\n",
            c2s = self.c2s_port,
            dist = self.dist_port,
            cookie = uuid::Uuid::new_v4().simple(),
        )
    }

    /// `ejabberdctl` with this instance's folders, then `args`.
    fn ctl(&self, args: &[&str]) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new("ejabberdctl");
        command
            .arg("--config-dir")
            .arg(dir)
            .arg("--config")
            .arg(dir.join("ejabberd.yml"))
            .arg("--ctl-config")
            .arg(dir.join("ejabberdctl.cfg"))
            .arg("--spool")
            .arg(dir.join("spool"))
            .arg("--logs")
            .arg(dir.join("logs"))
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Spawns `ejabberdctl foreground` and waits until both ports listen.
    async fn launch(&mut self) -> Result<()> {
        let pid_file = self.dir.path().join("ejabberd.pid");
        // A stale pid file from before a restart must not be mistaken for
        // the new VM.
        let _ = std::fs::remove_file(&pid_file);
        let console = std::fs::File::create(self.dir.path().join("console.log"))?;
        let console_err = console.try_clone()?;
        let launcher = self
            .ctl(&["foreground"])
            .stdout(console)
            .stderr(console_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run ejabberdctl (apt-get install ejabberd): {e}"))?;
        self.launcher = Some(launcher);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(launcher) = self.launcher.as_mut()
                && let Ok(Some(status)) = launcher.try_wait()
            {
                self.launcher = None;
                let console = std::fs::read_to_string(self.dir.path().join("console.log"))
                    .unwrap_or_default();
                if console.contains("address already in use") {
                    return Err("ejabberd could not bind a port: address already in use".into());
                }
                return Err(
                    format!("ejabberd exited at start ({status}):\n{}", self.log_tail()).into(),
                );
            }
            if self.beam_pid.is_none() {
                self.beam_pid = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
            }
            if self.beam_pid.is_some()
                && wait_for_tcp(self.c2s_port, Duration::ZERO).await
                && wait_for_tcp(self.component_port, Duration::ZERO).await
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail();
                self.kill_now();
                return Err(
                    format!("ejabberd did not listen within {START_TIMEOUT:?}:\n{tail}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates an account with `ejabberdctl register` (about 0.8 s).
    /// Returns the user's bare JID.
    pub async fn register(&self, user: &str, password: &str) -> Result<String> {
        let output = self
            .ctl(&["register", user, &self.domain, password])
            .output()
            .await?;
        if !output.status.success() {
            return Err(format!(
                "ejabberdctl register {user} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        Ok(format!("{user}@{}", self.domain))
    }

    /// Stops the server gracefully and starts it again on the same ports
    /// with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        self.launch().await
    }

    /// Stops the server: SIGTERM to the Erlang VM (a clean shutdown that
    /// flushes its database), SIGKILL to everything left after a grace
    /// period.
    pub async fn stop(&mut self) {
        let pids = self.pids();
        if let Some(beam) = self.beam_pid.take() {
            send_signal(beam, libc::SIGTERM);
            if !wait_gone(beam, STOP_GRACE).await {
                send_signal(beam, libc::SIGKILL);
            }
        }
        for pid in pids {
            send_signal(pid, libc::SIGKILL);
        }
        if let Some(mut launcher) = self.launcher.take() {
            let _ = launcher.start_kill();
            let _ = launcher.wait().await;
        }
    }

    /// The Erlang VM's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.beam_pid
    }

    /// The ejabberd log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs").join("ejabberd.log"))
            .unwrap_or_default()
    }

    /// Path of the generated ejabberd.yml.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("ejabberd.yml")
    }

    fn log_tail(&self) -> String {
        let console =
            std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default();
        let text = format!("{}\n{console}", self.log());
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The VM, the launcher and everything under them, deepest first.
    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        if let Some(launcher) = self.launcher.as_ref().and_then(Child::id) {
            pids = descendants(launcher);
            pids.reverse();
            pids.push(launcher);
        }
        if let Some(beam) = self.beam_pid
            && !pids.contains(&beam)
        {
            pids.insert(0, beam);
        }
        pids
    }

    fn kill_now(&mut self) {
        for pid in self.pids() {
            if is_alive(pid) {
                kill_blocking(pid);
            }
        }
        self.beam_pid = None;
        self.launcher = None;
    }
}

impl Drop for Ejabberd {
    fn drop(&mut self) {
        self.kill_now();
    }
}

impl XmppServer for Ejabberd {
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
        Ejabberd::register(self, user, password).await
    }
    async fn restart(&mut self) -> Result<()> {
        Ejabberd::restart(self).await
    }
}

/// Gives `path` and everything under it to `user` (ejabberd drops root).
fn chown_tree(path: &Path, user: &str) -> Result<()> {
    let (uid, gid) = user_ids(user)?;
    chown_recursive(path, uid, gid)?;
    Ok(())
}

fn chown_recursive(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_recursive(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The uid and gid of a system user.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let name = CString::new(user)?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we read
    // two integers from it at once, before any other passwd call.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(BoxError::from(format!(
            "no system user `{user}` (apt-get install ejabberd creates it)"
        )));
    }
    // SAFETY: non-null pointer from getpwnam, see above.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok((uid, gid))
}

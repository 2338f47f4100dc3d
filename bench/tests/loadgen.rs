//! The real `xmpp-loadgen` binary against a real Prosody on loopback: every
//! mode completes exactly the requested round trips, and errors are counted
//! as errors, not as replies.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prosody server in a temp dir, killed and removed on drop.
struct Prosody {
    /// The server process.
    child: Child,
    /// Config, data and logs of this instance.
    dir: PathBuf,
    /// Its c2s port.
    c2s_port: u16,
    /// Its component port, where `bot.localhost` links with [`SECRET`].
    component_port: u16,
}

/// The component secret of `bot.localhost`.
const SECRET: &str = "bench-test-secret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Prosody {
    fn start() -> Prosody {
        let dir = std::env::temp_dir().join(format!(
            "loadgen-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(dir.join("data")).expect("data dir");
        std::fs::create_dir_all(dir.join("certs")).expect("certs dir");
        let c2s_port = free_port();
        let component_port = free_port();
        let d = dir.display();
        let config = format!(
            r#"run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}/certs"
log = {{ info = "{d}/prosody.log" }}
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s_port} }}
c2s_direct_tls_ports = {{}}
component_ports = {{ {component_port} }}
component_interface = "127.0.0.1"
modules_enabled = {{ "saslauth", "roster", "disco", "ping" }}
modules_disabled = {{ "s2s" }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
VirtualHost "localhost"
Component "bot.localhost"
  component_secret = "{SECRET}"
"#
        );
        std::fs::write(dir.join("prosody.cfg.lua"), config).expect("config");
        let child = Command::new("prosody")
            .args(["-F", "--config"])
            .arg(dir.join("prosody.cfg.lua"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody is installed (scripts/setup.sh)");
        let prosody = Prosody {
            child,
            dir,
            c2s_port,
            component_port,
        };
        // Prosody opens its listeners one after the other: a component
        // started once c2s answers could still find its port closed.
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [c2s_port, component_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "Prosody did not listen on {port} in 10 s"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        prosody
    }

    fn config(&self) -> PathBuf {
        self.dir.join("prosody.cfg.lua")
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the load generator with `--json` and returns its summary.
fn loadgen(args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_xmpp-loadgen"))
        .args(args)
        .arg("--json")
        .output()
        .expect("xmpp-loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON summary ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn pings_messages_and_errors_are_counted_against_real_prosody() {
    let prosody = Prosody::start();
    let port = prosody.c2s_port.to_string();
    let config = prosody.config();
    let config = config.to_str().expect("utf-8 temp path");
    let common = [
        "--port",
        &port,
        "--domain",
        "localhost",
        "--prosody-config",
        config,
    ];

    // Ping: the server answers every IQ; users are registered on the way.
    let ping = loadgen(
        &[
            &common[..],
            &[
                "--mode",
                "ping",
                "--sessions",
                "3",
                "--in-flight",
                "4",
                "--count",
                "150",
            ],
        ]
        .concat(),
    );
    assert_eq!(ping["failures"], serde_json::json!([]), "{ping}");
    assert_eq!(ping["sent"], 150, "{ping}");
    assert_eq!(ping["round_trips"], 150, "{ping}");
    assert_eq!(ping["errors"], 0, "{ping}");
    assert!(ping["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{ping}");

    // Messages to the sender's own JID come back to it: matched by body tag.
    let to_self = loadgen(
        &[
            &common[..],
            &[
                "--mode",
                "message",
                "--target",
                "load0@localhost",
                "--count",
                "40",
                "--in-flight",
                "5",
                "--size",
                "100",
            ],
        ]
        .concat(),
    );
    assert_eq!(to_self["round_trips"], 40, "{to_self}");
    assert_eq!(to_self["unmatched"], 0, "{to_self}");

    // A domain the server cannot reach answers with errors: no round trips.
    let unreachable = loadgen(
        &[
            &common[..],
            &[
                "--mode",
                "message",
                "--target",
                "echo@nowhere.example",
                "--count",
                "10",
            ],
        ]
        .concat(),
    );
    assert_eq!(unreachable["round_trips"], 0, "{unreachable}");
    assert_eq!(unreachable["errors"], 10, "{unreachable}");
    let conditions = unreachable["error_conditions"]
        .as_object()
        .expect("conditions by name");
    assert_eq!(
        conditions.values().filter_map(|v| v.as_u64()).sum::<u64>(),
        10
    );

    // A wrong password is a failed session, reported as such.
    let refused = loadgen(
        &[
            &["--port", &port, "--password", "wrong"][..],
            &["--mode", "ping", "--count", "5"],
        ]
        .concat(),
    );
    assert_eq!(refused["round_trips"], 0, "{refused}");
    let failure = refused["failures"][0].as_str().unwrap_or_default();
    assert!(failure.contains("not-authorized"), "{refused}");
}

#[test]
fn direct_http_mode_gets_every_echo_from_the_bench_bot() {
    let mut bot = Command::new(env!("CARGO_BIN_EXE_bench-echo-bot"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bench-echo-bot starts");
    let mut line = String::new();
    let stdout = bot.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("readiness line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on URL")
        .to_owned();
    let summary = loadgen(&[
        "--mode",
        "http",
        "--http-url",
        &url,
        "--sessions",
        "2",
        "--in-flight",
        "3",
        "--count",
        "90",
    ]);
    let _ = bot.kill();
    let _ = bot.wait();
    assert_eq!(summary["round_trips"], 90, "{summary}");
    assert_eq!(summary["unmatched"], 0, "{summary}");
}

#[test]
fn the_ceiling_component_answers_every_message_through_prosody() {
    let prosody = Prosody::start();
    let mut component = Command::new(env!("CARGO_BIN_EXE_bench-echo-component"))
        .env("COMPONENT_JID", "bot.localhost")
        .env("COMPONENT_SECRET", SECRET)
        .env(
            "COMPONENT_SERVER",
            format!("127.0.0.1:{}", prosody.component_port),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bench-echo-component starts");
    let mut line = String::new();
    let stdout = component.stdout.take().expect("piped stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
        .expect("readiness line");
    assert_eq!(line.trim(), "component link established");
    let port = prosody.c2s_port.to_string();
    let config = prosody.config();
    let summary = loadgen(&[
        "--port",
        &port,
        "--prosody-config",
        config.to_str().expect("utf-8 temp path"),
        "--target",
        "echo{k}@bot.localhost",
        "--sessions",
        "2",
        "--in-flight",
        "3",
        "--count",
        "60",
    ]);
    let _ = component.kill();
    let _ = component.wait();
    assert_eq!(summary["round_trips"], 60, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["unmatched"], 0, "{summary}");
}

//! End-to-end test harness for xmpp-lambda: real servers and real clients,
//! each started per test on loopback with random free ports and cleaned up
//! by process id when dropped.
//!
//! - [`Prosody`] and [`Ejabberd`]: XMPP servers from Debian's packages with
//!   a generated configuration in a temporary folder, both behind the
//!   [`XmppServer`] trait so a test can run against either.
//! - [`XmppClient`]: a real XMPP client (slixmpp) driven over stdin/stdout.
//! - [`BotServer`]: an HTTP bot with a programmable handler that records
//!   every request it receives.
//! - [`RawBot`]: an HTTP bot on a plain socket whose answers are exact
//!   bytes (framings no HTTP library writes), counting connections.
//! - [`Connector`]: the product's connector binary with captured logs.
//! - [`CheckCommand`]: one run of `xmpp-lambda-connector check`, its lines
//!   found by check name ([`CheckRun`]).
//! - [`ChatLoad`]: a steady stream of chat messages from a few users, and
//!   what became of each (replied, an error, or silence).
//! - [`Moto`]: moto's SQS server.
//! - [`LambdaFunction`] and [`SqsTrigger`]: the function under cargo
//!   lambda's emulator, fed by the local SQS trigger.
//! - [`sigv4`]: an independent AWS SigV4 signature checker for a bot that
//!   stands in for a Function URL with IAM auth.
//! - [`SqsGate`]: a proxy in front of moto that can refuse deletes, to hold
//!   the connector between writing a reply and deleting it.
//! - [`FakeComponentServer`]: a component port that completes the handshake
//!   and then writes whatever a test likes (hostile streams).
//! - [`process_memory`]: a process's resident memory, now and at its peak.

mod assertions;
mod bot_server;
mod chat_load;
mod check_run;
mod component_probe;
mod connector;
mod ejabberd;
mod fake_component_server;
mod memory;
mod moto;
pub mod muc;
mod net;
mod process;
mod prosody;
mod raw_bot;
mod serverless;
pub mod sigv4;
mod sqs_gate;
mod temp_dir;
mod tls_front;
mod xmpp_client;
mod xmpp_server;

use std::path::{Path, PathBuf};

pub use assertions::{
    STANZAS_NS, TEST_PASSWORD, assert_connection_failure, assert_stanza_error, login,
};
pub use bot_server::{BotReply, BotRequest, BotServer, echo_reply};
pub use chat_load::{Answer, ChatLoad, LoadMessage, LoadReport};
pub use check_run::{CheckCommand, CheckRun};
pub use component_probe::component_handshake;
pub use connector::{CONNECTOR_BIN, Connector};
pub use ejabberd::Ejabberd;
pub use fake_component_server::{FakeComponentServer, FakeLink, Flood};
pub use memory::{ProcessMemory, process_memory};
pub use moto::Moto;
pub use net::{free_port, wait_for_tcp};
pub use prosody::Prosody;
pub use raw_bot::{RawAnswer, RawBot, echo_json, json_answer, ndjson_answer};
pub use serverless::{FUNCTION_NAME, LambdaFunction, QueueConsumer, SqsTrigger};
pub use sqs_gate::SqsGate;
pub use temp_dir::TempDir;
pub use tls_front::{TestCa, TlsFront};
pub use xmpp_client::{CLIENT_NS, XmppClient, body_of, escape_xml, parse_stanza};
pub use xmpp_server::XmppServer;

/// Errors in test code are reported, not handled: one boxed type for all.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The result type of every fallible harness call.
pub type Result<T> = std::result::Result<T, BoxError>;

/// The workspace root (the folder holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A binary of this workspace, built by cargo into the same target folder
/// as the running test executable (`target/<profile>/deps/<test>` →
/// `target/<profile>/<name>`).
///
/// A test build does not build the binaries of other packages, so run
/// `cargo build --workspace --bins` first (`make test` does); otherwise a
/// test may find a stale binary or none.
///
/// # Panics
/// When the binary is missing, with the command that builds it.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the path of the running test executable");
    // deps/ holds test executables; the binaries sit one level up.
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.file_name().is_some_and(|n| n == "deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("the test executable lives in a target folder");
    let path = profile_dir.join(name);
    if !path.is_file() {
        panic!(
            "workspace binary `{name}` not found at {}: build the workspace \
             binaries first with `cargo build --workspace --bins`",
            path.display()
        );
    }
    path
}

/// An example of the function crate (e.g. `reminder_bot`), built by cargo
/// into `target/<profile>/examples/`.
///
/// # Panics
/// When it is missing, with the command that builds it.
pub fn workspace_example(name: &str) -> PathBuf {
    let bin = workspace_bin("bootstrap");
    let path = bin
        .parent()
        .map(|profile_dir| profile_dir.join("examples").join(name))
        .unwrap_or_default();
    if !path.is_file() {
        panic!(
            "example `{name}` not found at {}: build it first with \
             `cargo build --workspace --bins --examples`",
            path.display()
        );
    }
    path
}

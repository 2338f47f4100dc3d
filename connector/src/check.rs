//! `xmpp-lambda-connector check`: a one-shot diagnosis of an install.
//!
//! It reads the options exactly as a normal start does, then checks each
//! thing the connector needs, in the order it needs them, and prints one
//! line per check (with the fix when it fails):
//!
//! * `options`: the options are valid (the loader's own one-line error).
//! * `server`: `COMPONENT_SERVER`'s name resolves and its port takes TCP.
//! * `handshake`: the XEP-0114 handshake succeeds on that connection, which
//!   is then closed at once ([`xmpp`]).
//! * `sigv4` (http) or `aws` (sqs): AWS credentials and a region are found
//!   where requests will be signed ([`bot`], [`queues`]).
//! * `bot` (http): the bot's URL answers a probe request ([`bot`]).
//! * `request queue`, `reply queue` (sqs): the queues exist and the
//!   credentials may send, receive and delete, proven by calls SQS must
//!   refuse for their content ([`queues`]).
//!
//! A check that an earlier failure makes meaningless is skipped, and says
//! so. Nothing the check does reaches an XMPP user or a bot's real traffic.
//! Exit code: 0 when every check passed, [`CHECK_FAILED`] when one failed,
//! 2 for an invalid option (as for a normal start).

mod bot;
mod queues;
mod report;
mod xmpp;

use std::process::ExitCode;

use crate::config::{self, Command, Config};
use crate::transport::TransportConfig;
use report::{Outcome, Report, shown_url};

/// The first argument that selects this command.
pub const COMMAND: &str = "check";

/// The exit code when a check failed (2 stays "invalid option").
pub const CHECK_FAILED: u8 = 1;

/// Runs `check` with the command-line arguments after `check`.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut report = Report::default();
    let config = match config::load(args, &|name| std::env::var(name).ok()) {
        Ok(Command::Help) => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(config)) => config,
        Err(error) => {
            report.record(
                "options",
                &Outcome::fail(
                    error.to_string(),
                    "see --help, or deploy/connector.env.example for every option",
                ),
            );
            let reason = "needs valid options";
            report.skip("server", reason);
            report.skip("handshake", reason);
            report.skip("bot", reason);
            println!("{}", report.summary());
            return ExitCode::from(2);
        }
    };
    report.record("options", &Outcome::Pass(describe(&config)));
    // One thread, as for a normal run: the checks run one after another.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("xmpp-lambda-connector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(&config, &mut report));
    println!("{}", report.summary());
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHECK_FAILED)
    }
}

/// The checks after `options`, in order.
async fn run(config: &Config, report: &mut Report) {
    match xmpp::server(&config.component_server).await {
        (outcome, Some(connection)) => {
            report.record("server", &outcome);
            let outcome = xmpp::handshake(connection, config).await;
            report.record("handshake", &outcome);
        }
        (outcome, None) => {
            report.record("server", &outcome);
            report.skip("handshake", "needs the server's component port");
        }
    }
    // The bot side does not depend on the XMPP side: it is checked even
    // when the server is unreachable, so one run shows every problem.
    // The default bot and each routed one.
    let mut request_queue_urls = Vec::new();
    let destinations = config
        .transport
        .iter()
        .chain(config.routes.iter().map(|route| &route.destination));
    for destination in destinations {
        match destination {
            TransportConfig::Http { post_url } => bot::check(config, &post_url.0, report).await,
            TransportConfig::Sqs { request_queue_url } => {
                request_queue_urls.push(request_queue_url.as_str());
            }
        }
    }
    // With http, a reply queue carries the bot's pushed messages.
    if let Some(reply_queue_url) = &config.reply_queue_url {
        queues::check(&request_queue_urls, reply_queue_url, report).await;
    }
}

/// The `options` line: what the connector would link and where requests
/// would go. No secret: URLs are shown without password and query.
fn describe(config: &Config) -> String {
    let mut transport = match &config.transport {
        Some(TransportConfig::Http { post_url }) => format!("http to {}", shown_url(&post_url.0)),
        Some(TransportConfig::Sqs { request_queue_url }) => {
            format!("sqs: requests to {request_queue_url}")
        }
        None => "no default bot".to_owned(),
    };
    if !config.routes.is_empty() {
        transport.push_str(&format!(", {} routes", config.routes.len()));
    }
    if let Some(reply_queue_url) = &config.reply_queue_url {
        transport.push_str(&format!(", replies and pushes from {reply_queue_url}"));
    }
    format!(
        "component {} at {}, {transport}",
        config.component_domain, config.component_server
    )
}

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
mod xmpp;

use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Command, Config, TransportConfig};

/// The first argument that selects this command.
pub const COMMAND: &str = "check";

/// The exit code when a check failed (2 stays "invalid option").
pub const CHECK_FAILED: u8 = 1;

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It works; the text says what was seen.
    Pass(String),
    /// It does not; what was seen and what to change.
    Fail {
        /// What went wrong, with the server's or library's own words.
        problem: String,
        /// What to change so it works.
        fix: String,
    },
    /// Not run: an earlier failure makes it meaningless, or it does not
    /// apply to this configuration. The text says which.
    Skip(String),
}

impl Outcome {
    /// A failure with its fix.
    fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
        Outcome::Fail {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn passed(&self) -> bool {
        matches!(self, Outcome::Pass(_))
    }
}

/// The lines printed so far and the tally for the summary.
#[derive(Debug, Default)]
struct Report {
    /// Checks that passed.
    passed: usize,
    /// Checks that failed.
    failed: usize,
    /// Checks not run.
    skipped: usize,
}

impl Report {
    /// Prints one check's line at once (a slow check later on should not
    /// hold back what is already known) and counts it. Returns whether it
    /// passed.
    fn record(&mut self, name: &str, outcome: &Outcome) -> bool {
        println!("{}", line(name, outcome));
        match outcome {
            Outcome::Pass(_) => self.passed += 1,
            Outcome::Fail { .. } => self.failed += 1,
            Outcome::Skip(_) => self.skipped += 1,
        }
        outcome.passed()
    }

    /// Skips `name` because of `reason`.
    fn skip(&mut self, name: &str, reason: &str) {
        self.record(name, &Outcome::Skip(reason.to_owned()));
    }

    /// The closing line: the tally.
    fn summary(&self) -> String {
        let checks = self.passed + self.failed;
        let mut summary = if self.failed == 0 {
            format!("check: all {checks} checks passed")
        } else {
            format!("check: {} of {checks} checks failed", self.failed)
        };
        if self.skipped > 0 {
            summary.push_str(&format!(", {} skipped", self.skipped));
        }
        summary
    }
}

/// One check's line: `pass`, `FAIL` or `skip`, the check's name, and what
/// was seen (and, for a failure, the fix).
fn line(name: &str, outcome: &Outcome) -> String {
    let text = match outcome {
        Outcome::Pass(text) => format!("pass  {name:<13} {text}"),
        Outcome::Fail { problem, fix } => format!("FAIL  {name:<13} {problem}; fix: {fix}"),
        Outcome::Skip(reason) => format!("skip  {name:<13} {reason}"),
    };
    one_line(&text)
}

/// `text` on one line: some errors (the AWS SDK's list of credential
/// providers tried) span several, one item each.
fn one_line(text: &str) -> String {
    let mut joined = String::with_capacity(text.len());
    for part in text.lines().map(str::trim).filter(|part| !part.is_empty()) {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(part);
    }
    joined
}

/// Runs `check` with the command-line arguments after `check`.
pub fn main(args: impl IntoIterator<Item = String>) -> ExitCode {
    let mut report = Report::default();
    let config = match config::load(args, &|name| std::env::var(name).ok()) {
        Ok(Command::Help) => {
            print!("{}", config::HELP);
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
    if report.failed == 0 {
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

/// A URL as printed: a password or query (where tokens tend to live) is
/// replaced by `redacted`.
fn shown_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password.
        let _ = shown.set_password(Some("redacted"));
    }
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.to_string()
}

/// A duration for people: `850 ms`, `1.5 s`.
fn human(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        let seconds = duration.as_secs_f64();
        if seconds.fract() == 0.0 {
            format!("{seconds} s")
        } else {
            format!("{seconds:.1} s")
        }
    }
}

/// An error and every source below it, in one line, so the root cause
/// (say "Connection refused") is not lost behind a generic outer message.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The innermost cause of `error`: for a refused connection "Connection
/// refused (os error 111)" says it all.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// An AWS access key id as shown: only its last four characters, as the
/// AWS CLI shows it, enough to tell which key is in use.
fn masked_key(access_key_id: &str) -> String {
    let tail: String = access_key_id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_name_the_check_and_give_the_fix() {
        assert_eq!(
            line("server", &Outcome::Pass("up".into())),
            "pass  server        up"
        );
        assert_eq!(
            line("handshake", &Outcome::fail("refused", "set the secret")),
            "FAIL  handshake     refused; fix: set the secret"
        );
        assert_eq!(
            line("bot", &Outcome::Skip("needs valid options".into())),
            "skip  bot           needs valid options"
        );
    }

    #[test]
    fn multi_line_errors_become_one_line() {
        assert_eq!(
            one_line("no credentials. Attempted:\n  Environment: not set\n  Profile: none\n"),
            "no credentials. Attempted: Environment: not set; Profile: none"
        );
    }

    #[test]
    fn summary_counts_failures_and_skips() {
        let mut report = Report {
            passed: 3,
            ..Report::default()
        };
        assert_eq!(report.summary(), "check: all 3 checks passed");
        report.failed = 1;
        report.skipped = 2;
        assert_eq!(report.summary(), "check: 1 of 4 checks failed, 2 skipped");
    }

    #[test]
    fn urls_hide_passwords_and_queries() {
        let url =
            reqwest::Url::parse("https://user:hunter2@bot.example.com/x?token=abc").expect("url");
        assert_eq!(
            shown_url(&url),
            "https://user:redacted@bot.example.com/x?redacted"
        );
    }

    #[test]
    fn durations_and_keys_for_people() {
        assert_eq!(human(Duration::from_millis(850)), "850 ms");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(human(Duration::from_secs(30)), "30 s");
        assert_eq!(masked_key("AKIDEXAMPLE"), "…MPLE");
        assert_eq!(masked_key("ab"), "…ab");
    }
}

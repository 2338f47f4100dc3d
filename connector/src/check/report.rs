//! How `check` reports: one line per check, with the fix when it fails,
//! and the wording of durations, errors and secrets in those lines.

use std::time::Duration;

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
    pub(super) fn fail(problem: impl Into<String>, fix: impl Into<String>) -> Outcome {
        Outcome::Fail {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub(super) fn passed(&self) -> bool {
        matches!(self, Outcome::Pass(_))
    }
}

/// The lines printed so far and the tally for the summary.
#[derive(Debug, Default)]
pub(super) struct Report {
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
    pub(super) fn record(&mut self, name: &str, outcome: &Outcome) -> bool {
        println!("{}", line(name, outcome));
        match outcome {
            Outcome::Pass(_) => self.passed += 1,
            Outcome::Fail { .. } => self.failed += 1,
            Outcome::Skip(_) => self.skipped += 1,
        }
        outcome.passed()
    }

    /// Skips `name` because of `reason`.
    pub(super) fn skip(&mut self, name: &str, reason: &str) {
        self.record(name, &Outcome::Skip(reason.to_owned()));
    }

    /// Whether no check failed.
    pub(super) fn all_passed(&self) -> bool {
        self.failed == 0
    }

    /// The closing line: the tally.
    pub(super) fn summary(&self) -> String {
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
pub(super) fn line(name: &str, outcome: &Outcome) -> String {
    let text = match outcome {
        Outcome::Pass(text) => format!("pass  {name:<13} {text}"),
        Outcome::Fail { problem, fix } => format!("FAIL  {name:<13} {problem}; fix: {fix}"),
        Outcome::Skip(reason) => format!("skip  {name:<13} {reason}"),
    };
    one_line(&text)
}

/// `text` on one line: some errors (the AWS SDK's list of credential
/// providers tried) span several, one item each.
pub(super) fn one_line(text: &str) -> String {
    let mut joined = String::with_capacity(text.len());
    for part in text.lines().map(str::trim).filter(|part| !part.is_empty()) {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(part);
    }
    joined
}

/// A URL as printed: a password or query (where tokens tend to live) is
/// replaced by `redacted`.
pub(super) fn shown_url(url: &reqwest::Url) -> String {
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
pub(super) fn human(duration: Duration) -> String {
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
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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
pub(super) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// An AWS access key id as shown: only its last four characters, as the
/// AWS CLI shows it, enough to tell which key is in use.
pub(super) fn masked_key(access_key_id: &str) -> String {
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

//! The function's options (DESIGN §4), read from the environment once at
//! start-up, so a bad setting fails the cold start with one clear line
//! instead of every invocation.

use crate::bot::Bot;
use crate::echo::EchoBot;
use crate::proxy::{DEFAULT_POST_TIMEOUT, DEFAULT_STREAM_IDLE_TIMEOUT, ProxyBot};
use crate::writer::ReplyWriter;
use std::time::Duration;
use xmpp_lambda_shared::signing::{MIN_SECRET_BYTES, Signer};
use xmpp_lambda_shared::{BotResponse, Request};

/// The least time between two corrections of a streamed message sent over
/// SQS unless `COMPONENT_STREAM_EDIT_INTERVAL` says (the connector's
/// default, so none is sent that it would drop).
pub const DEFAULT_EDIT_INTERVAL: Duration = Duration::from_millis(1000);

/// The longest `COMPONENT_STREAM_EDIT_INTERVAL`, as the connector allows.
const MAX_EDIT_INTERVAL_MS: u64 = 60_000;

/// A setting the function cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `BOT` names no built-in bot.
    #[error("BOT={0:?} is not a built-in bot (expected \"proxy\" or \"echo\")")]
    UnknownBot(String),
    /// `BOT=proxy` without a URL to proxy to.
    #[error("BOT=proxy needs COMPONENT_POST_URL (the bot's http or https URL)")]
    MissingPostUrl,
    /// `COMPONENT_POST_URL` is not an absolute http(s) URL.
    #[error("COMPONENT_POST_URL={url:?} is not an http or https URL: {reason}")]
    InvalidPostUrl {
        /// The value as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `COMPONENT_POST_TIMEOUT` is not a positive number of seconds.
    #[error("COMPONENT_POST_TIMEOUT={0:?} is not a positive number of seconds")]
    InvalidTimeout(String),
    /// `COMPONENT_POST_SECRET` is too short to be safe (its value is never
    /// shown).
    #[error(
        "COMPONENT_POST_SECRET is too short: use at least {MIN_SECRET_BYTES} bytes, \
         e.g. from `openssl rand -hex 32` (the value is not shown)"
    )]
    ShortPostSecret,
    /// `MAX_RECEIVE_COUNT` is not a whole number from 1 up.
    #[error(
        "MAX_RECEIVE_COUNT={0:?} is not a whole number from 1 up \
         (the request queue's maxReceiveCount)"
    )]
    InvalidMaxReceiveCount(String),
    /// `FUNCTION_URL_INVOKE_MODE` is not a Function URL invoke mode.
    #[error(
        "FUNCTION_URL_INVOKE_MODE={0:?} is not BUFFERED or RESPONSE_STREAM \
         (the Function URL's InvokeMode)"
    )]
    InvalidInvokeMode(String),
    /// `COMPONENT_STREAM_EDIT_INTERVAL` is not a number of milliseconds
    /// up to 60000.
    #[error("COMPONENT_STREAM_EDIT_INTERVAL={0:?} is not a number of milliseconds, at most 60000")]
    InvalidEditInterval(String),
    /// `COMPONENT_STREAM_IDLE_TIMEOUT` is not a positive number of seconds.
    #[error("COMPONENT_STREAM_IDLE_TIMEOUT={0:?} is not a positive number of seconds")]
    InvalidIdleTimeout(String),
    /// The HTTP client could not be built (e.g. no TLS roots).
    #[error("cannot build the HTTP client for the proxy bot: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Reads an option; an empty value counts as unset, because deployment
/// templates pass empty strings for options left out.
pub(crate) fn option(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The signer for `COMPONENT_POST_SECRET`: the proxy bot signs its POSTs
/// with it and the Function URL handler verifies requests with it.
pub(crate) fn post_signer(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Signer>, ConfigError> {
    // Not trimmed: the secret is exactly the bytes the other side uses.
    match lookup("COMPONENT_POST_SECRET").filter(|secret| !secret.is_empty()) {
        Some(secret) if secret.len() < MIN_SECRET_BYTES => Err(ConfigError::ShortPostSecret),
        secret => Ok(secret.map(Signer::new)),
    }
}

/// `MAX_RECEIVE_COUNT`: the request queue's `maxReceiveCount`, so the
/// handler knows a request's last delivery; unset, every failure is left
/// to the queue.
pub(crate) fn max_receive_count(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<u32>, ConfigError> {
    option(lookup, "MAX_RECEIVE_COUNT")
        .map(|text| {
            text.parse::<u32>()
                .ok()
                .filter(|count| *count >= 1)
                .ok_or(ConfigError::InvalidMaxReceiveCount(text))
        })
        .transpose()
}

/// How the function's URL sends its responses: its `InvokeMode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InvokeMode {
    /// `BUFFERED`: the whole response at once (a streamed answer is
    /// gathered into one NDJSON response).
    #[default]
    Buffered,
    /// `RESPONSE_STREAM`: the response as it is written, so a streamed
    /// answer reaches the connector line by line.
    ResponseStream,
}

/// `FUNCTION_URL_INVOKE_MODE`: how the Function URL sends responses, as
/// its `InvokeMode` says (`BUFFERED` unless set).
pub(crate) fn invoke_mode(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<InvokeMode, ConfigError> {
    match option(lookup, "FUNCTION_URL_INVOKE_MODE") {
        None => Ok(InvokeMode::default()),
        Some(mode) if mode.eq_ignore_ascii_case("BUFFERED") => Ok(InvokeMode::Buffered),
        Some(mode) if mode.eq_ignore_ascii_case("RESPONSE_STREAM") => {
            Ok(InvokeMode::ResponseStream)
        }
        Some(mode) => Err(ConfigError::InvalidInvokeMode(mode)),
    }
}

/// `COMPONENT_STREAM_EDIT_INTERVAL`: milliseconds between two corrections
/// of a streamed message sent over SQS, as the connector reads it.
pub(crate) fn edit_interval(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Duration, ConfigError> {
    match option(lookup, "COMPONENT_STREAM_EDIT_INTERVAL") {
        None => Ok(DEFAULT_EDIT_INTERVAL),
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms <= MAX_EDIT_INTERVAL_MS)
            .map(Duration::from_millis)
            .ok_or(ConfigError::InvalidEditInterval(text)),
    }
}

/// The bots that ship with the function, chosen by `BOT`.
#[derive(Debug, Clone)]
pub enum BuiltinBot {
    /// `BOT=proxy`: POST to `COMPONENT_POST_URL`.
    Proxy(ProxyBot),
    /// `BOT=echo`: the reference README's echo bot.
    Echo(EchoBot),
}

impl BuiltinBot {
    /// The bot the process environment asks for.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The bot a set of options asks for: `BOT` if set, else `proxy` when
    /// `COMPONENT_POST_URL` is set, else `echo`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let post_url = option(&lookup, "COMPONENT_POST_URL");
        let choice = option(&lookup, "BOT").map(|bot| bot.to_ascii_lowercase());
        let choice =
            choice.unwrap_or_else(|| if post_url.is_some() { "proxy" } else { "echo" }.to_owned());
        match choice.as_str() {
            "echo" => {
                // Checked here too, so a bad setting stops the start whichever
                // bot runs (the handler uses them).
                post_signer(&lookup)?;
                handler_options(&lookup)?;
                Ok(BuiltinBot::Echo(EchoBot))
            }
            "proxy" => {
                let url = post_url.ok_or(ConfigError::MissingPostUrl)?;
                let parsed = parse_post_url(&url)?;
                let timeout = match option(&lookup, "COMPONENT_POST_TIMEOUT") {
                    Some(text) => parse_timeout(&text).ok_or(ConfigError::InvalidTimeout(text))?,
                    None => DEFAULT_POST_TIMEOUT,
                };
                let idle = match option(&lookup, "COMPONENT_STREAM_IDLE_TIMEOUT") {
                    Some(text) => {
                        parse_timeout(&text).ok_or(ConfigError::InvalidIdleTimeout(text))?
                    }
                    None => DEFAULT_STREAM_IDLE_TIMEOUT,
                };
                handler_options(&lookup)?;
                let mut proxy = ProxyBot::new(parsed, timeout)?.with_stream_idle_timeout(idle);
                if let Some(signer) = post_signer(&lookup)? {
                    proxy = proxy.with_signer(signer);
                }
                Ok(BuiltinBot::Proxy(proxy))
            }
            _ => Err(ConfigError::UnknownBot(choice)),
        }
    }

    /// The option value naming this bot, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            BuiltinBot::Proxy(_) => "proxy",
            BuiltinBot::Echo(_) => "echo",
        }
    }
}

impl Bot for BuiltinBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        match self {
            BuiltinBot::Proxy(bot) => bot.answer(request).await,
            BuiltinBot::Echo(bot) => bot.answer(request).await,
        }
    }

    async fn answer_streamed(&self, request: &Request, replies: &mut ReplyWriter) -> BotResponse {
        match self {
            BuiltinBot::Proxy(bot) => bot.answer_streamed(request, replies).await,
            BuiltinBot::Echo(bot) => bot.answer_streamed(request, replies).await,
        }
    }
}

/// The handler's own options, checked with the bot's so that a bad one
/// stops the start in one clear line.
fn handler_options(lookup: &impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    max_receive_count(lookup)?;
    invoke_mode(lookup)?;
    edit_interval(lookup)?;
    Ok(())
}

fn parse_post_url(url: &str) -> Result<reqwest::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidPostUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(invalid(format!("scheme {other:?}"))),
    }
}

/// Seconds, whole or fractional (`30`, `2.5`), as the connector reads them.
fn parse_timeout(text: &str) -> Option<Duration> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn bot(options: &[(&str, &str)]) -> Result<BuiltinBot, ConfigError> {
        let map: HashMap<String, String> = options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        BuiltinBot::from_lookup(move |name| map.get(name).cloned())
    }

    #[test]
    fn default_is_echo_without_a_url_and_proxy_with_one() {
        assert_eq!(bot(&[]).expect("echo").name(), "echo");
        assert_eq!(bot(&[("BOT", "")]).expect("echo").name(), "echo");
        let proxy = bot(&[("COMPONENT_POST_URL", "http://127.0.0.1:8080/bot")]).expect("proxy");
        match proxy {
            BuiltinBot::Proxy(proxy) => {
                assert_eq!(proxy.url().as_str(), "http://127.0.0.1:8080/bot")
            }
            other => panic!("expected proxy, got {other:?}"),
        }
        let echo = bot(&[("BOT", "Echo"), ("COMPONENT_POST_URL", "http://h/")]).expect("echo");
        assert_eq!(echo.name(), "echo");
    }

    #[test]
    fn bad_options_are_clear_errors() {
        assert_eq!(
            bot(&[("BOT", "lisp")]).unwrap_err().to_string(),
            r#"BOT="lisp" is not a built-in bot (expected "proxy" or "echo")"#
        );
        assert_eq!(
            bot(&[("BOT", "proxy")]).unwrap_err().to_string(),
            "BOT=proxy needs COMPONENT_POST_URL (the bot's http or https URL)"
        );
        let err = bot(&[("COMPONENT_POST_URL", "ftp://example.com/")]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidPostUrl { .. }), "{err}");
        let err = bot(&[("COMPONENT_POST_URL", "not a url")]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidPostUrl { .. }), "{err}");
        for timeout in ["0", "-1", "soon", "NaN", "inf"] {
            let err = bot(&[
                ("COMPONENT_POST_URL", "http://127.0.0.1/"),
                ("COMPONENT_POST_TIMEOUT", timeout),
            ])
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("COMPONENT_POST_TIMEOUT={timeout:?} is not a positive number of seconds")
            );
        }
    }

    #[test]
    fn post_secret_signs_the_proxy_and_is_never_shown() {
        const SECRET: &str = "0123456789abcdef-post-secret";
        let proxy = bot(&[
            ("COMPONENT_POST_URL", "http://127.0.0.1:8080/bot"),
            ("COMPONENT_POST_SECRET", SECRET),
        ])
        .expect("proxy");
        let shown = format!("{proxy:?}");
        assert!(shown.contains("Signer([redacted])"), "{shown}");
        assert!(!shown.contains("post-secret"), "{shown}");
        let unsigned = bot(&[("COMPONENT_POST_URL", "http://127.0.0.1:8080/bot")]);
        let shown = format!("{:?}", unsigned.expect("proxy"));
        assert!(!shown.contains("Signer"), "{shown}");

        for (bot_name, url) in [("proxy", "http://127.0.0.1/"), ("echo", "")] {
            let err = bot(&[
                ("BOT", bot_name),
                ("COMPONENT_POST_URL", url),
                ("COMPONENT_POST_SECRET", "hunter2"),
            ])
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "COMPONENT_POST_SECRET is too short: use at least 16 bytes, \
                 e.g. from `openssl rand -hex 32` (the value is not shown)"
            );
        }
        let lookup = |name: &str| (name == "COMPONENT_POST_SECRET").then(String::new);
        assert!(post_signer(&lookup).expect("empty is unset").is_none());
    }

    #[test]
    fn the_invoke_mode_is_the_function_urls() {
        let lookup = |value: &'static str| {
            move |name: &str| (name == "FUNCTION_URL_INVOKE_MODE").then(|| value.to_owned())
        };
        assert_eq!(
            invoke_mode(&|_: &str| None).expect("unset"),
            InvokeMode::Buffered
        );
        assert_eq!(
            invoke_mode(&lookup("")).expect("empty"),
            InvokeMode::Buffered
        );
        assert_eq!(
            invoke_mode(&lookup("BUFFERED")).expect("valid"),
            InvokeMode::Buffered
        );
        assert_eq!(
            invoke_mode(&lookup("response_stream")).expect("valid"),
            InvokeMode::ResponseStream
        );
        let err = bot(&[("FUNCTION_URL_INVOKE_MODE", "STREAM")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"FUNCTION_URL_INVOKE_MODE="STREAM" is not BUFFERED or RESPONSE_STREAM (the Function URL's InvokeMode)"#
        );
    }

    #[test]
    fn the_edit_interval_is_milliseconds_as_the_connector_reads_it() {
        let lookup = |value: &'static str| {
            move |name: &str| (name == "COMPONENT_STREAM_EDIT_INTERVAL").then(|| value.to_owned())
        };
        assert_eq!(
            edit_interval(&|_: &str| None).expect("unset"),
            DEFAULT_EDIT_INTERVAL
        );
        assert_eq!(edit_interval(&lookup("0")).expect("valid"), Duration::ZERO);
        assert_eq!(
            edit_interval(&lookup("60000")).expect("valid"),
            Duration::from_secs(60)
        );
        for bad in ["60001", "-1", "1.5", "soon"] {
            assert!(
                matches!(
                    edit_interval(&lookup(bad)),
                    Err(ConfigError::InvalidEditInterval(_))
                ),
                "{bad}"
            );
        }
        let err = bot(&[("COMPONENT_STREAM_EDIT_INTERVAL", "fast")]).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidEditInterval(_)), "{err}");
    }

    #[test]
    fn max_receive_count_is_a_whole_number_from_one() {
        let lookup = |value: &'static str| {
            move |name: &str| (name == "MAX_RECEIVE_COUNT").then(|| value.to_owned())
        };
        assert_eq!(max_receive_count(&lookup("5")).expect("valid"), Some(5));
        assert_eq!(max_receive_count(&lookup(" ")).expect("unset"), None);
        for bad in ["0", "-1", "five", "2.5"] {
            assert_eq!(
                max_receive_count(&lookup(bad)).unwrap_err().to_string(),
                format!(
                    "MAX_RECEIVE_COUNT={bad:?} is not a whole number from 1 up \
                     (the request queue's maxReceiveCount)"
                )
            );
        }
        let err = bot(&[("MAX_RECEIVE_COUNT", "0")]).unwrap_err();
        assert!(
            matches!(err, ConfigError::InvalidMaxReceiveCount(_)),
            "{err}"
        );
    }

    #[test]
    fn timeouts_may_be_fractional() {
        assert_eq!(
            parse_timeout("2.5").expect("valid"),
            Duration::from_millis(2500)
        );
        assert_eq!(parse_timeout("30").expect("valid"), Duration::from_secs(30));
        let idle = bot(&[
            ("COMPONENT_POST_URL", "http://127.0.0.1/"),
            ("COMPONENT_STREAM_IDLE_TIMEOUT", "never"),
        ])
        .unwrap_err();
        assert_eq!(
            idle.to_string(),
            r#"COMPONENT_STREAM_IDLE_TIMEOUT="never" is not a positive number of seconds"#
        );
    }
}

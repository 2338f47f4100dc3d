//! Command-line flags of `xmpp-loadgen`: everything is a flag, nothing is guessed.

use std::path::PathBuf;
use std::time::Duration;

/// The usage text printed by `--help` and after a flag error.
pub const USAGE: &str = "\
xmpp-loadgen: XMPP client load generator (plain TCP + SASL PLAIN, loopback)

Each session logs in as one user and keeps up to --in-flight requests
outstanding; each reply is matched to its request by a sequence tag in the
message body (or by the IQ id for pings) and timed.

Flags:
  --mode MODE            message (default): chat messages to --target, one reply each
                         stream: chat messages to --target, each answered by a stream
                               of messages (or corrections) whose bodies end in
                               (k/n); a request is done at its (n/n) message, and
                               both the first and the last message are timed
                         ping: XEP-0199 pings to the server's domain (the server's
                               and the generator's own ceiling)
                         http: POST the request JSON a connector would send straight
                               to --http-url (the bot without XMPP)
  --host HOST            server address (default 127.0.0.1)
  --port PORT            c2s port (default 5222)
  --domain DOMAIN        users' domain (default localhost)
  --user PATTERN         user name; {n} is replaced by the session number 0..N-1
                         (default load{n})
  --password PW          password of every user (default load-pw)
  --prosody-config FILE  register the users first with `prosodyctl --config FILE register`
  --target JID           where messages go, any JID (required for --mode message);
                         {n} is replaced by the session number, so load{n}@DOMAIN
                         sends each session's messages to itself (Prosody alone);
                         {k} by the request's slot (its number modulo --in-flight),
                         so echo{k}@DOMAIN makes each request in flight its own
                         conversation
  --http-url URL         the bot's URL (required for --mode http; http:// only)
  --sessions N           concurrent sessions (default 1)
  --in-flight N          requests outstanding per session (default 1)
  --count N              total requests over all sessions (default 1000 unless --duration)
  --duration SECS        send for this long instead of (or as well as) a count
  --size BYTES           message body size (default 32)
  --timeout SECS         a reply later than this counts as a timeout (default 10)
  --warmup N             round trips per session before measuring (default 0)
  --warmup-target JID    where the warm-up messages go instead of --target, each
                         answered by one reply (so a stream mode run can warm up
                         on an echo)
  --json                 print the summary as one JSON object instead of text
  --help                 this text
";

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Chat messages to a target JID, each answered by one reply.
    Message,
    /// Chat messages to a target JID, each answered by a stream of
    /// messages ending with the one marked `(n/n)`.
    Stream,
    /// XEP-0199 pings to the server itself.
    Ping,
    /// The request JSON POSTed directly to a bot URL, no XMPP at all.
    Http,
}

/// The parsed flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// Which kind of round trip to measure.
    pub mode: Mode,
    /// Server address to connect to.
    pub host: String,
    /// The server's c2s port.
    pub port: u16,
    /// Domain of the users' JIDs (and the ping target).
    pub domain: String,
    /// User name pattern; `{n}` becomes the session number.
    pub user_pattern: String,
    /// Password shared by all users.
    pub password: String,
    /// When set, users are registered with this Prosody config first.
    pub prosody_config: Option<PathBuf>,
    /// Where messages are sent in message mode.
    pub target: Option<String>,
    /// The bot's URL in http mode.
    pub http_url: Option<String>,
    /// Number of concurrent sessions (or HTTP connections per in-flight slot).
    pub sessions: usize,
    /// Outstanding requests per session.
    pub in_flight: usize,
    /// Total requests over all sessions; `None` means bounded by duration only.
    pub count: Option<u64>,
    /// Sending stops after this long.
    pub duration: Option<Duration>,
    /// Body size in bytes.
    pub size: usize,
    /// How long a reply may take before it counts as a timeout.
    pub timeout: Duration,
    /// Unmeasured round trips per session first (connection pools, caches).
    pub warmup: u64,
    /// Where the warm-up messages go when not to `target`: a stream takes
    /// seconds, an echo on the same server a millisecond.
    pub warmup_target: Option<String>,
    /// Print JSON instead of text.
    pub json: bool,
}

impl Options {
    /// The user name of session `n`.
    pub fn user(&self, n: usize) -> String {
        self.user_pattern.replace("{n}", &n.to_string())
    }

    /// The options of the warm-up: messages to `warmup_target`, each
    /// answered by one reply, when one is given; else these options.
    pub fn warmup_options(&self) -> Options {
        match &self.warmup_target {
            Some(target) if self.mode != Mode::Ping => Options {
                mode: Mode::Message,
                target: Some(target.clone()),
                ..self.clone()
            },
            _ => self.clone(),
        }
    }

    /// The target JID of session `n`'s requests in slot `k` (`{n}` in the
    /// target becomes the session number, `{k}` the slot).
    pub fn target_of(&self, n: usize, k: usize) -> String {
        self.target
            .as_deref()
            .unwrap_or_default()
            .replace("{n}", &n.to_string())
            .replace("{k}", &k.to_string())
    }
}

/// Why the flags were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("help requested")]
    Help,
    #[error("unknown flag {0}")]
    Unknown(String),
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value:?} for {flag}")]
    Invalid { flag: String, value: String },
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// Parses the flags (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, ArgsError> {
    let mut opts = Options {
        mode: Mode::Message,
        host: "127.0.0.1".into(),
        port: 5222,
        domain: "localhost".into(),
        user_pattern: "load{n}".into(),
        password: "load-pw".into(),
        prosody_config: None,
        target: None,
        http_url: None,
        sessions: 1,
        in_flight: 1,
        count: None,
        duration: None,
        size: 32,
        timeout: Duration::from_secs(10),
        warmup: 0,
        warmup_target: None,
        json: false,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(ArgsError::Help);
        }
        if flag == "--json" {
            opts.json = true;
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| ArgsError::MissingValue(flag.clone()))?;
        let invalid = || ArgsError::Invalid {
            flag: flag.clone(),
            value: value.clone(),
        };
        match flag.as_str() {
            "--mode" => {
                opts.mode = match value.as_str() {
                    "message" => Mode::Message,
                    "stream" => Mode::Stream,
                    "ping" => Mode::Ping,
                    "http" => Mode::Http,
                    _ => return Err(invalid()),
                }
            }
            "--host" => opts.host = value,
            "--port" => opts.port = value.parse().map_err(|_| invalid())?,
            "--domain" => opts.domain = value,
            "--user" => opts.user_pattern = value,
            "--password" => opts.password = value,
            "--prosody-config" => opts.prosody_config = Some(PathBuf::from(value)),
            "--target" => opts.target = Some(value),
            "--http-url" => opts.http_url = Some(value),
            "--sessions" => opts.sessions = positive(&value).ok_or_else(invalid)?,
            "--in-flight" => opts.in_flight = positive(&value).ok_or_else(invalid)?,
            "--count" => opts.count = Some(value.parse().map_err(|_| invalid())?),
            "--duration" => opts.duration = Some(seconds(&value).ok_or_else(invalid)?),
            "--size" => opts.size = value.parse().map_err(|_| invalid())?,
            "--timeout" => opts.timeout = seconds(&value).ok_or_else(invalid)?,
            "--warmup" => opts.warmup = value.parse().map_err(|_| invalid())?,
            "--warmup-target" => opts.warmup_target = Some(value),
            _ => return Err(ArgsError::Unknown(flag)),
        }
    }
    if opts.count.is_none() && opts.duration.is_none() {
        opts.count = Some(1000);
    }
    match opts.mode {
        Mode::Message if opts.target.is_none() => {
            return Err(ArgsError::Inconsistent("--mode message needs --target"));
        }
        Mode::Stream if opts.target.is_none() => {
            return Err(ArgsError::Inconsistent("--mode stream needs --target"));
        }
        Mode::Http if opts.http_url.is_none() => {
            return Err(ArgsError::Inconsistent("--mode http needs --http-url"));
        }
        _ => {}
    }
    Ok(opts)
}

fn positive(value: &str) -> Option<usize> {
    value.parse().ok().filter(|n| *n > 0)
}

fn seconds(value: &str) -> Option<Duration> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_set_their_options() {
        let opts = parse(args(&[
            "--mode",
            "ping",
            "--port",
            "5333",
            "--sessions",
            "4",
            "--in-flight",
            "8",
            "--count",
            "50",
            "--user",
            "u{n}",
            "--json",
        ]))
        .expect("valid flags");
        assert_eq!(opts.mode, Mode::Ping);
        assert_eq!(opts.port, 5333);
        assert_eq!((opts.sessions, opts.in_flight), (4, 8));
        assert_eq!(opts.count, Some(50));
        assert_eq!(opts.user(3), "u3");
        assert!(opts.json);
        let per_session = parse(args(&["--target", "load{n}@localhost"])).expect("valid flags");
        assert_eq!(per_session.target_of(7, 2), "load7@localhost");
        let stream = parse(args(&["--mode", "stream", "--target", "s@bot"])).expect("valid flags");
        assert_eq!(stream.mode, Mode::Stream);
        let warm = parse(args(&["--target", "s@bot", "--warmup-target", "e@bot"])).expect("valid");
        assert_eq!(warm.warmup_target.as_deref(), Some("e@bot"));
        let warm_stream = Options {
            mode: Mode::Stream,
            ..warm
        }
        .warmup_options();
        assert_eq!(warm_stream.mode, Mode::Message);
        assert_eq!(warm_stream.target_of(0, 0), "e@bot");
        let per_slot = parse(args(&["--target", "echo{k}@bot"])).expect("valid flags");
        assert_eq!(per_slot.target_of(7, 2), "echo2@bot");
    }

    #[test]
    fn bad_flags_are_refused() {
        assert_eq!(
            parse(args(&["--mode", "message"])).err(),
            Some(ArgsError::Inconsistent("--mode message needs --target"))
        );
        assert!(matches!(
            parse(args(&["--sessions", "0"])),
            Err(ArgsError::Invalid { .. })
        ));
        assert_eq!(
            parse(args(&["--mode", "stream"])).err(),
            Some(ArgsError::Inconsistent("--mode stream needs --target"))
        );
        assert_eq!(
            parse(args(&["--port"])).err(),
            Some(ArgsError::MissingValue("--port".into()))
        );
        assert_eq!(
            parse(args(&["--bogus", "1"])).err(),
            Some(ArgsError::Unknown("--bogus".into()))
        );
    }

    #[test]
    fn duration_alone_means_no_count() {
        let opts = parse(args(&["--mode", "ping", "--duration", "2.5"])).expect("valid");
        assert_eq!(opts.count, None);
        assert_eq!(opts.duration, Some(Duration::from_millis(2500)));
    }
}

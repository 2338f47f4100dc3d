//! The connector's options (DESIGN §4), composed: each capability owns its
//! options, their parsing and their description (`api`, `rooms`, `routes`,
//! `sigv4`); the link's and the bot's own are here. Where values come from
//! and how errors read is [`crate::options`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;
use xmpp_lambda_shared::StanzaKind;
use xmpp_lambda_shared::signing::MIN_SECRET_BYTES;

use crate::api::ApiOptions;
use crate::live::LiveOptions;
use crate::options::{
    OptionDoc, OptionError, Secret, Sources, help_lines, invalid, parse_kinds, parse_post_url_for,
    parse_seconds,
};
use crate::rooms::RoomOptions;
use crate::routes::{Pattern, RouteConfig};
use crate::sigv4::SigningOptions;
use crate::stream_state::StreamOptions;
use crate::transport::TransportConfig;

/// The link's and the default bot's options.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_JID",
        aliases: &[],
        meaning: "the component's domain, e.g. bot.example.com",
        default: "required",
    },
    OptionDoc {
        name: "COMPONENT_SECRET",
        aliases: &[],
        meaning: "the XEP-0114 shared secret",
        default: "required",
    },
    OptionDoc {
        name: "COMPONENT_SERVER",
        aliases: &[],
        meaning: "the XMPP server's component port, host:port (names resolve)",
        default: "localhost:5347",
    },
    OptionDoc {
        name: "TRANSPORT",
        aliases: &[],
        meaning: "http or sqs",
        default: "http",
    },
    OptionDoc {
        name: "COMPONENT_POST_URL",
        aliases: &[],
        meaning: "where requests are POSTed (required for http)",
        default: "none",
    },
    OptionDoc {
        name: "COMPONENT_POST_STANZAS",
        aliases: &["POST_STANZA_TYPES"],
        meaning: "forwarded kinds, comma-separated: message, presence, iq",
        default: "message",
    },
    OptionDoc {
        name: "COMPONENT_POST_TIMEOUT",
        aliases: &[],
        meaning: "seconds to wait for the bot (sqs: for the request to be queued)",
        default: "30",
    },
    OptionDoc {
        name: "COMPONENT_POST_CONNECT_RETRY",
        aliases: &[],
        meaning: "seconds a bot that refuses connections is tried again (within \
                  COMPONENT_POST_TIMEOUT), so a dead bot is known quickly and one restarting \
                  for a second is still reached",
        default: "3",
    },
    OptionDoc {
        name: "COMPONENT_PING_INTERVAL",
        aliases: &[],
        meaning: "seconds between keepalive pings on the link",
        default: "60",
    },
    OptionDoc {
        name: "COMPONENT_POST_SECRET",
        aliases: &[],
        meaning: "sign every POST for the bot to verify: headers X-XMPP-Lambda-Timestamp and \
                  X-XMPP-Lambda-Signature (HMAC-SHA256); at least 16 bytes, never logged",
        default: "unsigned",
    },
    OptionDoc {
        name: "REQUEST_QUEUE_URL",
        aliases: &[],
        meaning: "SQS queue for requests (required for sqs)",
        default: "none",
    },
    OptionDoc {
        name: "REPLY_QUEUE_URL",
        aliases: &[],
        meaning: "SQS queue for replies and pushed messages (required for sqs; with http, \
                  set it to let bots push through a queue)",
        default: "none",
    },
    OptionDoc {
        name: "LOG_FORMAT",
        aliases: &[],
        meaning: "text or json",
        default: "text",
    },
];

/// Every option, in the order `--help` and the docs list them.
pub fn all_options() -> Vec<OptionDoc> {
    [
        OPTIONS,
        crate::sigv4::OPTIONS,
        crate::routes::OPTIONS,
        crate::rooms::OPTIONS,
        crate::api::OPTIONS,
        crate::live::OPTIONS,
        crate::stream_state::OPTIONS,
    ]
    .concat()
}

/// What `--help` says before the options.
const HELP_HEAD: &str = "\
xmpp-lambda-connector: an XMPP component (XEP-0114) that hands every stanza
addressed to it to a bot, and sends the bot's answer back.

Usage: xmpp-lambda-connector [--config FILE]
       xmpp-lambda-connector check [--config FILE]

check reads the same options, then checks the install once and exits: the
options, the server's name and component port, the handshake (the link is
closed again at once), AWS credentials when they are needed, and the bot
(a probe request no user sees) or the SQS queues (calls SQS must refuse,
so no message is sent, received or deleted). One line per check, with the
fix when it fails.

Options come from the environment or from a TOML file (--config FILE) whose
keys are the lower-case names below; the environment wins.

";

/// What `--help` says after the options.
const HELP_TAIL: &str = "
Environment only:
  RUST_LOG                log filter, e.g. info or xmpp_lambda_connector=debug
                          [default: info]
  AWS_REGION, AWS_ENDPOINT_URL, ...  the AWS SDK's own variables (sqs)
  AWS_ACCESS_KEY_ID, AWS_PROFILE, ...  credentials for SQS and SigV4, from
                          the AWS SDK's default chain (environment, profile,
                          SSO, web identity, ECS, EC2 instance metadata)

Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for a missing
or invalid option. check: 0 when every check passed, 1 when one failed, 2
for a missing or invalid option.
";

/// The text `--help` prints.
pub fn help() -> String {
    format!("{HELP_HEAD}{}{HELP_TAIL}", help_lines(&all_options()))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors such as CloudWatch.
    Json,
}

/// Everything the connector needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The component's domain: stanzas to it and to JIDs at it are ours,
    /// and every reply must come from it.
    pub component_domain: String,
    /// The XEP-0114 shared secret for the handshake.
    pub component_secret: Secret,
    /// The server's component port as `host:port`; the host is resolved
    /// at every connection attempt so a moved server is found again.
    pub component_server: String,
    /// Where requests go by default (`COMPONENT_POST_URL` or
    /// `REQUEST_QUEUE_URL`); `None` when only routes have bots.
    pub transport: Option<TransportConfig>,
    /// Requests to some localparts go elsewhere (DESIGN §9).
    pub routes: Vec<RouteConfig>,
    /// The queue polled for replies (sqs) and pushed messages (either
    /// transport); `None` with http means bots push only through the API.
    pub reply_queue_url: Option<String>,
    /// The connector's own HTTP API.
    pub api: ApiOptions,
    /// The group chats to be in, and what reaches the bot from them.
    pub rooms: RoomOptions,
    /// The stanza kinds handed to the bot; the others are answered by the
    /// connector itself (DESIGN §3).
    pub forwarded_kinds: HashSet<StanzaKind>,
    /// How long to wait for the bot before answering "no response".
    pub post_timeout: Duration,
    /// How long a bot that refuses connections is tried again: a dead bot
    /// is known in seconds, a restarting one still reached.
    pub post_connect_retry: Duration,
    /// Typing, receipts, and messages without a body (DESIGN §10).
    pub live: LiveOptions,
    /// How streamed answers are relayed (DESIGN §11).
    pub streams: StreamOptions,
    /// How often to ping the server so an idle link stays up and a dead
    /// one is noticed.
    pub ping_interval: Duration,
    /// Whether and for which region http requests are SigV4-signed, for a
    /// Function URL that only IAM-authorised callers may invoke.
    pub post_signing: SigningOptions,
    /// The secret every http request is signed with (DESIGN §9), so a bot
    /// at a public URL can tell our requests from anyone's.
    pub post_secret: Option<Secret>,
    /// How log lines are written.
    pub log_format: LogFormat,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Print the help text and exit.
    Help,
    /// Run with this configuration.
    Run(Box<Config>),
}

/// Reads the command line (without the program name) and the options.
/// `env` looks up an environment variable.
pub fn load(
    args: impl IntoIterator<Item = String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, OptionError> {
    let mut config_file = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--config" => {
                config_file = Some(PathBuf::from(
                    args.next().ok_or(OptionError::ConfigFileMissing)?,
                ))
            }
            _ => match arg.strip_prefix("--config=") {
                Some(path) => config_file = Some(PathBuf::from(path)),
                None => return Err(OptionError::UnknownArgument(arg)),
            },
        }
    }
    let sources = Sources::new(env, config_file.as_deref(), &all_options())?;
    Config::from_sources(&sources).map(|config| Command::Run(Box::new(config)))
}

impl Config {
    fn from_sources(sources: &Sources<'_>) -> Result<Config, OptionError> {
        let component_domain = parse_domain(&sources.required(
            "COMPONENT_JID",
            "the component's domain, e.g. bot.example.com",
        )?)?;
        let component_secret =
            Secret::new(sources.required("COMPONENT_SECRET", "the XEP-0114 shared secret")?);
        let component_server = parse_server(
            sources
                .get("COMPONENT_SERVER")
                .unwrap_or_else(|| "localhost:5347".into()),
        )?;
        let sqs = match sources.get("TRANSPORT").as_deref() {
            None | Some("http") => false,
            Some("sqs") => true,
            Some(other) => {
                return Err(invalid("TRANSPORT", other, "http or sqs"));
            }
        };
        let routes = crate::routes::from_sources(sources, sqs)?;
        let has_default_route = routes.iter().any(|route| route.pattern == Pattern::Any);
        // The default destination; with routes it may be left out (then
        // only the routed localparts have a bot).
        let (option, what) = if sqs {
            (
                "REQUEST_QUEUE_URL",
                "the SQS queue for requests (TRANSPORT=sqs)",
            )
        } else {
            (
                "COMPONENT_POST_URL",
                "where requests are POSTed (TRANSPORT=http)",
            )
        };
        let transport = match sources.get(option) {
            Some(_) if has_default_route => return Err(OptionError::TwoDefaultRoutes(option)),
            Some(value) if sqs => Some(TransportConfig::Sqs {
                request_queue_url: value,
            }),
            Some(value) => Some(TransportConfig::Http {
                post_url: parse_post_url_for("COMPONENT_POST_URL", &value)?,
            }),
            None if !routes.is_empty() => None,
            None => return Err(OptionError::Missing { option, what }),
        };
        let uses_request_queues = transport
            .iter()
            .chain(routes.iter().map(|route| &route.destination))
            .any(|destination| matches!(destination, TransportConfig::Sqs { .. }));
        let reply_queue_url = if uses_request_queues {
            Some(sources.required(
                "REPLY_QUEUE_URL",
                "the SQS queue for replies (TRANSPORT=sqs, or a route to a request queue)",
            )?)
        } else {
            sources.get("REPLY_QUEUE_URL")
        };
        let forwarded_kinds = match sources.get("COMPONENT_POST_STANZAS") {
            Some(list) => parse_kinds("COMPONENT_POST_STANZAS", &list)?,
            None => match sources.get("POST_STANZA_TYPES") {
                Some(list) => parse_kinds("POST_STANZA_TYPES", &list)?,
                None => HashSet::from([StanzaKind::Message]),
            },
        };
        let post_timeout = parse_seconds(sources, "COMPONENT_POST_TIMEOUT", 30)?;
        let post_connect_retry = parse_seconds(sources, "COMPONENT_POST_CONNECT_RETRY", 3)?;
        let live = LiveOptions::from_sources(sources)?;
        let streams = StreamOptions::from_sources(sources)?;
        let ping_interval = parse_seconds(sources, "COMPONENT_PING_INTERVAL", 60)?;
        let post_signing = SigningOptions::from_sources(sources)?;
        let api = ApiOptions::from_sources(sources)?;
        let rooms = RoomOptions::from_sources(sources, &component_domain)?;
        let post_secret = match sources.get("COMPONENT_POST_SECRET") {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(OptionError::InvalidSecret {
                    option: "COMPONENT_POST_SECRET",
                    expected: "at least 16 bytes, e.g. from `openssl rand -hex 32`",
                });
            }
            secret => secret.map(Secret::new),
        };
        let log_format = match sources.get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "text or json")),
        };
        Ok(Config {
            component_domain,
            component_secret,
            component_server,
            transport,
            routes,
            reply_queue_url,
            api,
            rooms,
            forwarded_kinds,
            post_timeout,
            post_connect_retry,
            live,
            streams,
            ping_interval,
            post_signing,
            post_secret,
            log_format,
        })
    }
}

/// A component is addressed by a bare domain: no `user@`, no `/resource`.
fn parse_domain(value: &str) -> Result<String, OptionError> {
    let expected = "a domain such as bot.example.com";
    match jid::Jid::new(value) {
        Ok(jid) if jid.node().is_none() && jid.resource().is_none() => {
            Ok(jid.domain().as_str().to_owned())
        }
        _ => Err(invalid("COMPONENT_JID", value, expected)),
    }
}

/// `host:port`, where host is a name, an IPv4 address or `[IPv6]`.
fn parse_server(value: String) -> Result<String, OptionError> {
    let valid = value.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(char::is_whitespace)
            && port.parse::<u16>().is_ok_and(|port| port != 0)
    });
    if valid {
        Ok(value)
    } else {
        Err(invalid(
            "COMPONENT_SERVER",
            &value,
            "host:port, e.g. localhost:5347",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{RedactedUrl, markdown_table};
    use crate::sigv4::SigningMode;
    use reqwest::Url;
    use std::collections::{BTreeSet, HashMap};

    const MINIMAL: &[(&str, &str)] = &[
        ("COMPONENT_JID", "bot.example.com"),
        ("COMPONENT_SECRET", "s3cret"),
        ("COMPONENT_POST_URL", "http://127.0.0.1:8080/bot"),
    ];

    fn load_with(args: &[&str], env: &[(&str, &str)]) -> Result<Command, OptionError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(args.iter().map(|a| a.to_string()), &|name| {
            env.get(name).cloned()
        })
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match load_with(args, env) {
            Ok(Command::Run(config)) => *config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    fn error(args: &[&str], env: &[(&str, &str)]) -> String {
        match load_with(args, env) {
            Err(e) => e.to_string(),
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut env: Vec<_> = MINIMAL
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        env.extend_from_slice(extra);
        env
    }

    /// A config file in a fresh temporary directory; removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(text: &str) -> TempFile {
            let dir =
                std::env::temp_dir().join(format!("connector-config-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            let path = dir.join("connector.toml");
            std::fs::write(&path, text).expect("write config file");
            TempFile(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().expect("temp path is UTF-8")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn defaults() {
        let config = config(&[], MINIMAL);
        assert_eq!(config.component_domain, "bot.example.com");
        assert_eq!(config.component_secret.expose(), "s3cret");
        assert_eq!(config.component_server, "localhost:5347");
        assert_eq!(
            config.transport,
            Some(TransportConfig::Http {
                post_url: RedactedUrl(Url::parse("http://127.0.0.1:8080/bot").expect("url"))
            })
        );
        assert!(config.routes.is_empty());
        assert_eq!(config.forwarded_kinds, HashSet::from([StanzaKind::Message]));
        assert_eq!(config.post_timeout, Duration::from_secs(30));
        assert_eq!(config.ping_interval, Duration::from_secs(60));
        assert_eq!(config.post_signing, SigningOptions::default());
        assert_eq!(config.post_signing.mode, SigningMode::Auto);
        assert_eq!(config.post_secret, None);
        assert_eq!(config.log_format, LogFormat::Text);
    }

    #[test]
    fn help_is_asked_for() {
        assert!(matches!(load_with(&["--help"], &[]), Ok(Command::Help)));
        assert!(matches!(load_with(&["-h"], &[]), Ok(Command::Help)));
    }

    /// The options every branch of the parser reads, over a few complete
    /// configurations.
    fn options_read() -> BTreeSet<&'static str> {
        let common = [
            ("COMPONENT_JID", "bot.example.com"),
            ("COMPONENT_SECRET", "s3cret"),
            ("COMPONENT_SERVER", "xmpp.example.com:5347"),
            ("COMPONENT_PING_INTERVAL", "30"),
            ("COMPONENT_POST_TIMEOUT", "10"),
            ("COMPONENT_POST_SIGV4", "auto"),
            ("COMPONENT_POST_SIGV4_REGION", "eu-west-1"),
            ("COMPONENT_POST_SECRET", "0123456789abcdef0123"),
            ("COMPONENT_API_LISTEN", "127.0.0.1:8780"),
            ("COMPONENT_API_TOKEN", "0123456789abcdef0123456789abcdef"),
            ("COMPONENT_ROOMS", "ops@conference.example.com"),
            ("COMPONENT_ROOM_MESSAGES", "all"),
            ("COMPONENT_ROOM_INVITES", "accept"),
            (
                "COMPONENT_ROUTES",
                "weather=https://weather.example.com/bot",
            ),
            ("LOG_FORMAT", "json"),
        ];
        let http = [
            ("TRANSPORT", "http"),
            ("COMPONENT_POST_URL", "https://bot.example.com/"),
            ("POST_STANZA_TYPES", "message,iq"),
            (
                "REPLY_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/replies",
            ),
        ];
        let sqs = [
            ("TRANSPORT", "sqs"),
            (
                "REQUEST_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/requests",
            ),
            (
                "REPLY_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/replies",
            ),
            ("COMPONENT_POST_STANZAS", "message"),
        ];
        let mut read = BTreeSet::new();
        for transport in [&http[..], &sqs[..]] {
            let env: HashMap<&str, &str> = common.iter().chain(transport).copied().collect();
            let env = |name: &str| env.get(name).map(|value| value.to_string());
            let sources = Sources::new(&env, None, &all_options()).expect("sources");
            Config::from_sources(&sources).expect("a valid configuration");
            read.extend(sources.asked());
        }
        read
    }

    /// `--help`, the docs' table and the parser cannot drift: the parser
    /// reads exactly the options the list documents (names and aliases),
    /// `--help` shows each, and the docs' table is the one the list makes
    /// (`UPDATE_DOCS=1` writes it).
    #[test]
    fn the_parser_help_and_docs_name_the_same_options() {
        let documented: BTreeSet<&'static str> = all_options()
            .iter()
            .flat_map(|doc| std::iter::once(doc.name).chain(doc.aliases.iter().copied()))
            .collect();
        assert_eq!(options_read(), documented);
        let help = help();
        for doc in all_options() {
            assert!(
                help.contains(&format!("  {}", doc.name)),
                "--help lacks {}",
                doc.name
            );
        }
        assert!(help.lines().all(|line| line.len() <= 80), "{help}");
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/src/connector-options.md");
        let page = std::fs::read_to_string(&path).expect("the docs' options page");
        let (start, end) = (
            "<!-- options-table:start -->\n",
            "<!-- options-table:end -->",
        );
        let (before, rest) = page.split_once(start).expect("the table's start marker");
        let (table, after) = rest.split_once(end).expect("the table's end marker");
        let wanted = markdown_table(&all_options());
        if table != wanted && std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{before}{start}{wanted}{end}{after}"))
                .expect("write the docs' options page");
            return;
        }
        assert_eq!(table, wanted, "run with UPDATE_DOCS=1 to write the table");
    }

    #[test]
    fn missing_options_are_named() {
        assert_eq!(
            error(&[], &[]),
            "COMPONENT_JID is required: the component's domain, e.g. bot.example.com"
        );
        assert_eq!(
            error(&[], &[("COMPONENT_JID", "bot.example.com")]),
            "COMPONENT_SECRET is required: the XEP-0114 shared secret"
        );
        assert_eq!(
            error(
                &[],
                &[
                    ("COMPONENT_JID", "bot.example.com"),
                    ("COMPONENT_SECRET", "s")
                ]
            ),
            "COMPONENT_POST_URL is required: where requests are POSTed (TRANSPORT=http)"
        );
        assert_eq!(
            error(&[], &with(&[("TRANSPORT", "sqs")])),
            "REQUEST_QUEUE_URL is required: the SQS queue for requests (TRANSPORT=sqs)"
        );
        assert_eq!(
            error(
                &[],
                &with(&[("TRANSPORT", "sqs"), ("REQUEST_QUEUE_URL", "http://q/req")])
            ),
            "REPLY_QUEUE_URL is required: the SQS queue for replies (TRANSPORT=sqs, or a route to a request queue)"
        );
    }

    #[test]
    fn empty_environment_variable_counts_as_unset() {
        assert_eq!(
            error(&[], &with(&[("COMPONENT_SECRET", "")])),
            "COMPONENT_SECRET is required: the XEP-0114 shared secret"
        );
    }

    #[test]
    fn invalid_options_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("COMPONENT_JID", "alice@bot.example.com")],
                r#"COMPONENT_JID "alice@bot.example.com" is invalid: expected a domain such as bot.example.com"#,
            ),
            (
                &[("COMPONENT_JID", "bot.example.com/x")],
                r#"COMPONENT_JID "bot.example.com/x" is invalid: expected a domain such as bot.example.com"#,
            ),
            (
                &[("COMPONENT_SERVER", "localhost")],
                r#"COMPONENT_SERVER "localhost" is invalid: expected host:port, e.g. localhost:5347"#,
            ),
            (
                &[("COMPONENT_SERVER", "localhost:99999")],
                r#"COMPONENT_SERVER "localhost:99999" is invalid: expected host:port, e.g. localhost:5347"#,
            ),
            (
                &[("TRANSPORT", "smtp")],
                r#"TRANSPORT "smtp" is invalid: expected http or sqs"#,
            ),
            (
                &[("COMPONENT_POST_URL", "ftp://example.com/")],
                r#"COMPONENT_POST_URL "ftp://example.com/" is invalid: expected an http:// or https:// URL"#,
            ),
            (
                &[("COMPONENT_POST_URL", "not a url")],
                r#"COMPONENT_POST_URL "not a url" is invalid: expected an http:// or https:// URL"#,
            ),
            (
                &[("COMPONENT_POST_STANZAS", "message,chat")],
                r#"COMPONENT_POST_STANZAS "message,chat" is invalid: expected a comma-separated list of message, presence, iq"#,
            ),
            (
                &[("POST_STANZA_TYPES", " , ")],
                r#"POST_STANZA_TYPES " , " is invalid: expected a comma-separated list of message, presence, iq"#,
            ),
            (
                &[("COMPONENT_POST_TIMEOUT", "soon")],
                r#"COMPONENT_POST_TIMEOUT "soon" is invalid: expected a number of seconds greater than 0 (at most 86400)"#,
            ),
            (
                &[("COMPONENT_POST_TIMEOUT", "0")],
                r#"COMPONENT_POST_TIMEOUT "0" is invalid: expected a number of seconds greater than 0 (at most 86400)"#,
            ),
            (
                &[("COMPONENT_PING_INTERVAL", "-5")],
                r#"COMPONENT_PING_INTERVAL "-5" is invalid: expected a number of seconds greater than 0 (at most 86400)"#,
            ),
            (
                &[("LOG_FORMAT", "xml")],
                r#"LOG_FORMAT "xml" is invalid: expected text or json"#,
            ),
            (
                &[("COMPONENT_POST_SIGV4", "yes")],
                r#"COMPONENT_POST_SIGV4 "yes" is invalid: expected auto, on or off"#,
            ),
            (
                &[("COMPONENT_POST_SIGV4_REGION", "EU West 1")],
                r#"COMPONENT_POST_SIGV4_REGION "EU West 1" is invalid: expected an AWS region such as eu-west-1"#,
            ),
        ];
        for (env, line) in cases {
            assert_eq!(error(&[], &with(env)), *line);
        }
    }

    #[test]
    fn valid_variants() {
        let config = config(
            &[],
            &with(&[
                ("COMPONENT_SERVER", "[::1]:5347"),
                ("COMPONENT_POST_STANZAS", "message, presence,iq"),
                ("COMPONENT_POST_TIMEOUT", "0.5"),
                ("LOG_FORMAT", "json"),
                ("COMPONENT_POST_SIGV4", "on"),
                ("COMPONENT_POST_SIGV4_REGION", "eu-west-1"),
            ]),
        );
        assert_eq!(
            config.post_signing,
            SigningOptions {
                mode: SigningMode::On,
                region: Some("eu-west-1".into()),
            }
        );
        assert_eq!(config.component_server, "[::1]:5347");
        assert_eq!(
            config.forwarded_kinds,
            HashSet::from([StanzaKind::Message, StanzaKind::Presence, StanzaKind::Iq])
        );
        assert_eq!(config.post_timeout, Duration::from_millis(500));
        assert_eq!(config.log_format, LogFormat::Json);

        let sqs = self::config(
            &[],
            &[
                ("COMPONENT_JID", "bot.example.com"),
                ("COMPONENT_SECRET", "s"),
                ("TRANSPORT", "sqs"),
                ("REQUEST_QUEUE_URL", "http://q/req.fifo"),
                ("REPLY_QUEUE_URL", "http://q/reply.fifo"),
            ],
        );
        assert_eq!(
            sqs.transport,
            Some(TransportConfig::Sqs {
                request_queue_url: "http://q/req.fifo".into(),
            })
        );
        assert_eq!(sqs.reply_queue_url.as_deref(), Some("http://q/reply.fifo"));
    }

    /// A bearer token of the shortest length allowed.
    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_api_and_a_push_queue_with_http() {
        let token = TOKEN;
        let config = config(
            &[],
            &with(&[
                ("COMPONENT_API_LISTEN", "127.0.0.1:8780"),
                ("COMPONENT_API_TOKEN", TOKEN),
                ("REPLY_QUEUE_URL", "http://q/replies"),
            ]),
        );
        assert_eq!(
            config.api.listen,
            Some("127.0.0.1:8780".parse().expect("address"))
        );
        assert_eq!(config.api.token.as_ref().map(Secret::expose), Some(token));
        assert_eq!(config.reply_queue_url.as_deref(), Some("http://q/replies"));
        assert!(
            !format!("{config:?}").contains(token),
            "the token is never shown"
        );
        // Off by default.
        let plain = self::config(&[], MINIMAL);
        assert_eq!(plain.api, crate::api::ApiOptions::default());
        assert_eq!(plain.reply_queue_url, None);
    }

    #[test]
    fn routes_from_the_environment_shorthand() {
        use crate::routes::Pattern;
        let config = config(
            &[],
            &with(&[(
                "COMPONENT_ROUTES",
                "echo=http://127.0.0.1:1/echo, weather*=https://weather.example.com/hook",
            )]),
        );
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[0].pattern, Pattern::Exact("echo".into()));
        assert_eq!(config.routes[1].pattern, Pattern::Prefix("weather".into()));
        assert!(
            config.transport.is_some(),
            "COMPONENT_POST_URL is the default"
        );
        // Without a default: only the routed localparts have a bot.
        let only_routes = self::config(
            &[],
            &[
                ("COMPONENT_JID", "bot.example.com"),
                ("COMPONENT_SECRET", "s"),
                ("COMPONENT_ROUTES", "echo=http://127.0.0.1:1/echo"),
            ],
        );
        assert_eq!(only_routes.transport, None);
        // With sqs the URLs are request queues, and a reply queue is needed.
        assert_eq!(
            error(
                &[],
                &[
                    ("COMPONENT_JID", "bot.example.com"),
                    ("COMPONENT_SECRET", "s"),
                    ("TRANSPORT", "sqs"),
                    ("COMPONENT_ROUTES", "echo=http://q/echo-requests"),
                ]
            ),
            "REPLY_QUEUE_URL is required: the SQS queue for replies (TRANSPORT=sqs, or a route to a request queue)"
        );
        for (routes, line) in [
            (
                "echo",
                r#"COMPONENT_ROUTES "echo" is invalid: expected localpart=URL, comma-separated (localpart: a name, a prefix ending in *, or *)"#,
            ),
            (
                "echo@bot=http://x/",
                r#"COMPONENT_ROUTES "echo@bot=http://x/" is invalid: expected localpart=URL, comma-separated (localpart: a name, a prefix ending in *, or *)"#,
            ),
            (
                "echo=ftp://x/",
                r#"COMPONENT_ROUTES "ftp://x/" is invalid: expected an http:// or https:// URL"#,
            ),
            ("a=http://x/,a=http://y/", r#"two routes for "a""#),
            (
                "*=http://x/",
                r#"COMPONENT_POST_URL and a route "*" both name the default bot: keep one"#,
            ),
        ] {
            assert_eq!(error(&[], &with(&[("COMPONENT_ROUTES", routes)])), line);
        }
    }

    #[test]
    fn route_tables_in_the_file_with_their_own_settings() {
        use crate::routes::Pattern;
        let file = TempFile::new(
            "component_jid = \"bot.example.com\"\n\
             component_secret = \"s\"\n\
             reply_queue_url = \"http://q/replies\"\n\
             [[route]]\n\
             localpart = \"echo\"\n\
             url = \"http://127.0.0.1:1/echo\"\n\
             timeout = 5\n\
             stanzas = [\"message\", \"iq\"]\n\
             secret = \"0123456789abcdef\"\n\
             [[route]]\n\
             localpart = \"*\"\n\
             request_queue_url = \"http://q/requests\"\n",
        );
        let config = config(&["--config", file.arg()], &[]);
        assert_eq!(config.transport, None);
        let echo = &config.routes[0];
        assert_eq!(echo.pattern, Pattern::Exact("echo".into()));
        assert_eq!(echo.timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            echo.stanzas,
            Some(HashSet::from([StanzaKind::Message, StanzaKind::Iq]))
        );
        assert_eq!(
            echo.secret.as_ref().map(Secret::expose),
            Some("0123456789abcdef")
        );
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
        assert_eq!(
            config.routes[1].destination,
            TransportConfig::Sqs {
                request_queue_url: "http://q/requests".into()
            }
        );

        let bad = TempFile::new(
            "component_jid = \"bot.example.com\"\ncomponent_secret = \"s\"\n\
             [[route]]\nlocalpart = \"echo\"\n",
        );
        assert_eq!(
            error(&["--config", bad.arg()], &[]),
            r#"route 1 of the config file: needs exactly one of "url" and "request_queue_url""#
        );
        let unknown = TempFile::new(
            "component_jid = \"bot.example.com\"\ncomponent_secret = \"s\"\n\
             [[route]]\nlocalpart = \"echo\"\nurl = \"http://x/\"\nsecrit = \"x\"\n",
        );
        assert_eq!(
            error(&["--config", unknown.arg()], &[]),
            r#"route 1 of the config file: unknown key "secrit""#
        );
    }

    #[test]
    fn rooms_with_their_nicks_and_policies() {
        use crate::rooms::{InvitePolicy, RoomConfig};
        use xmpp_lambda_shared::muc::RoomMessages;
        let config = config(
            &[],
            &with(&[
                (
                    "COMPONENT_ROOMS",
                    "ops@conference.example.com, dev@conference.example.com/helper",
                ),
                ("COMPONENT_ROOM_MESSAGES", "all"),
                ("COMPONENT_ROOM_INVITES", "accept"),
            ]),
        );
        assert_eq!(
            config.rooms.rooms,
            [
                RoomConfig {
                    room: "ops@conference.example.com".into(),
                    nick: "bot".into()
                },
                RoomConfig {
                    room: "dev@conference.example.com".into(),
                    nick: "helper".into()
                },
            ]
        );
        assert_eq!(config.rooms.messages, RoomMessages::All);
        assert_eq!(config.rooms.invites, InvitePolicy::Accept);
        let plain = self::config(&[], MINIMAL);
        assert!(plain.rooms.rooms.is_empty());
        assert_eq!(plain.rooms.messages, RoomMessages::Mention);
        assert_eq!(plain.rooms.invites, InvitePolicy::Ignore);
        for (env, line) in [
            (
                ("COMPONENT_ROOMS", "conference.example.com"),
                r#"COMPONENT_ROOMS "conference.example.com" is invalid: expected room@service or room@service/nick, comma-separated"#,
            ),
            (
                ("COMPONENT_ROOM_MESSAGES", "some"),
                r#"COMPONENT_ROOM_MESSAGES "some" is invalid: expected mention or all"#,
            ),
            (
                ("COMPONENT_ROOM_INVITES", "yes"),
                r#"COMPONENT_ROOM_INVITES "yes" is invalid: expected ignore or accept"#,
            ),
        ] {
            assert_eq!(error(&[], &with(&[env])), line);
        }
    }

    #[test]
    fn api_option_errors_never_show_the_token() {
        let short = "s3cret-but-short";
        assert_eq!(
            error(
                &[],
                &with(&[
                    ("COMPONENT_API_LISTEN", "127.0.0.1:8780"),
                    ("COMPONENT_API_TOKEN", short)
                ])
            ),
            "COMPONENT_API_TOKEN is invalid: expected at least 32 characters (the value is not shown)"
        );
        assert_eq!(
            error(&[], &with(&[("COMPONENT_API_TOKEN", TOKEN)])),
            "COMPONENT_API_LISTEN is required: where the API listens, for the /v1/send that COMPONENT_API_TOKEN enables"
        );
        assert_eq!(
            error(&[], &with(&[("COMPONENT_API_LISTEN", "localhost")])),
            r#"COMPONENT_API_LISTEN "localhost" is invalid: expected an IP address and port, e.g. 127.0.0.1:8780"#
        );
    }

    #[test]
    fn alias_for_forwarded_kinds_and_the_main_name_wins() {
        let alias = config(&[], &with(&[("POST_STANZA_TYPES", "iq")]));
        assert_eq!(alias.forwarded_kinds, HashSet::from([StanzaKind::Iq]));
        let both = config(
            &[],
            &with(&[
                ("POST_STANZA_TYPES", "iq"),
                ("COMPONENT_POST_STANZAS", "presence"),
            ]),
        );
        assert_eq!(both.forwarded_kinds, HashSet::from([StanzaKind::Presence]));
    }

    #[test]
    fn file_options_and_environment_wins() {
        let file = TempFile::new(
            "component_jid = \"file.example.com\"\n\
             component_secret = \"from-file\"\n\
             component_post_url = \"http://127.0.0.1:9/file\"\n\
             component_post_timeout = 5\n\
             component_post_stanzas = [\"message\", \"iq\"]\n\
             component_ping_interval = 2.5\n\
             component_post_sigv4 = \"off\"\n",
        );
        let from_file = config(&["--config", file.arg()], &[]);
        assert_eq!(from_file.component_domain, "file.example.com");
        assert_eq!(from_file.component_secret.expose(), "from-file");
        assert_eq!(from_file.post_timeout, Duration::from_secs(5));
        assert_eq!(from_file.ping_interval, Duration::from_millis(2500));
        assert_eq!(from_file.post_signing.mode, SigningMode::Off);
        assert_eq!(
            from_file.forwarded_kinds,
            HashSet::from([StanzaKind::Message, StanzaKind::Iq])
        );

        let arg = format!("--config={}", file.arg());
        let env_wins = config(
            &[&arg],
            &[
                ("COMPONENT_JID", "env.example.com"),
                ("COMPONENT_POST_TIMEOUT", "7"),
            ],
        );
        assert_eq!(env_wins.component_domain, "env.example.com");
        assert_eq!(env_wins.component_secret.expose(), "from-file");
        assert_eq!(env_wins.post_timeout, Duration::from_secs(7));
    }

    #[test]
    fn file_errors_are_one_line() {
        let unknown = TempFile::new("component_jid = \"a.example\"\ncomponent_sekret = \"x\"\n");
        assert_eq!(
            error(&["--config", unknown.arg()], &[]),
            format!(
                "config file {:?}: unknown option \"component_sekret\"",
                unknown.0
            )
        );
        let upper = TempFile::new("COMPONENT_JID = \"a.example\"\n");
        assert_eq!(
            error(&["--config", upper.arg()], &[]),
            format!(
                "config file {:?}: unknown option \"COMPONENT_JID\"",
                upper.0
            )
        );
        let wrong_type = TempFile::new("component_secret = true\n");
        assert_eq!(
            error(&["--config", wrong_type.arg()], &[]),
            format!(
                "config file {:?}: option \"component_secret\" must be a string, a number or a list of strings",
                wrong_type.0
            )
        );
        let broken = TempFile::new("component_jid = \"a.example\"\ncomponent_secret = \n");
        let line = error(&["--config", broken.arg()], &[]);
        assert!(
            line.starts_with(&format!(
                "config file {:?}: invalid TOML at line 2: ",
                broken.0
            )),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");

        let missing = error(&["--config", "/nonexistent/connector.toml"], &[]);
        assert!(
            missing.starts_with("config file \"/nonexistent/connector.toml\": "),
            "{missing}"
        );
        assert_eq!(error(&["--config"], &[]), "--config needs a file name");
        assert_eq!(
            error(&["--verbose"], MINIMAL),
            r#"unknown argument "--verbose" (see --help)"#
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = config(
            &[],
            &with(&[(
                "COMPONENT_POST_URL",
                "https://user:hunter2@bot.example.com/x?token=abc123",
            )]),
        );
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("abc123"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("bot.example.com/x"), "{shown}");
    }

    #[test]
    fn post_secret_from_env_or_file_is_never_shown() {
        const SECRET: &str = "0123456789abcdef-post-secret";
        let from_env = config(&[], &with(&[("COMPONENT_POST_SECRET", SECRET)]));
        assert_eq!(
            from_env.post_secret.as_ref().map(Secret::expose),
            Some(SECRET)
        );
        let shown = format!("{from_env:?}");
        assert!(!shown.contains("post-secret"), "{shown}");

        let file = TempFile::new(&format!(
            "component_jid = \"bot.example.com\"\n\
             component_secret = \"s\"\n\
             component_post_url = \"http://127.0.0.1:9/bot\"\n\
             component_post_secret = \"{SECRET}\"\n"
        ));
        let from_file = config(&["--config", file.arg()], &[]);
        assert_eq!(from_file.post_secret, from_env.post_secret);

        // Too short: the error names the option and never the value.
        let line = error(&[], &with(&[("COMPONENT_POST_SECRET", "hunter2")]));
        assert_eq!(
            line,
            "COMPONENT_POST_SECRET is invalid: expected at least 16 bytes, \
             e.g. from `openssl rand -hex 32` (the value is not shown)"
        );
        // Empty counts as unset, like every option.
        let unset = config(&[], &with(&[("COMPONENT_POST_SECRET", "")]));
        assert_eq!(unset.post_secret, None);
    }
}

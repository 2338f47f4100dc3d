//! One connector, many bots (DESIGN §9): requests to `<localpart>@<domain>`
//! go to that localpart's route, each with its own bot URL (and HTTP client
//! pool) or request queue, timeout, forwarded kinds and signing secret; the
//! rest go to the default route (`COMPONENT_POST_URL` / `REQUEST_QUEUE_URL`,
//! or a route `*`).
//!
//! Routes come from `[[route]]` tables in the config file or from
//! `COMPONENT_ROUTES=localpart=URL,…` (the environment wins). A localpart
//! is matched exactly, or by a prefix ending in `*`; the longest match wins.

use crate::options::{
    OptionDoc, OptionError, Secret, Sources, invalid, parse_kinds, parse_post_url_for,
    parse_seconds_text,
};
use crate::sigv4::{RequestSigner, SigningOptions};
use crate::transport::Transport;
use crate::transport::{HttpTransport, TransportConfig};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use xmpp_lambda_shared::StanzaKind;
use xmpp_lambda_shared::signing::MIN_SECRET_BYTES;

/// The routes' option.
pub const OPTIONS: &[OptionDoc] = &[OptionDoc {
    name: "COMPONENT_ROUTES",
    aliases: &[],
    meaning: "other bots for some localparts: localpart=URL,... (URLs: POST URLs, or with \
              TRANSPORT=sqs request queues; localpart: a name, a prefix ending in *, or *; the \
              longest match wins). A config file may give [[route]] tables instead, with \
              localpart, url or request_queue_url, and optional timeout, stanzas, secret. With \
              routes, COMPONENT_POST_URL (or REQUEST_QUEUE_URL) is the default and may be left out",
    default: "none",
}];

/// Which localparts a route takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this localpart.
    Exact(String),
    /// Every localpart starting with this (`alert*`).
    Prefix(String),
    /// Everything else (`*`), and stanzas to the domain itself.
    Any,
}

impl Pattern {
    fn parse(text: &str) -> Option<Pattern> {
        let text = text.trim();
        let valid = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| !c.is_whitespace() && !"@/\"&'<>:".contains(c))
        };
        match text.strip_suffix('*') {
            Some("") => Some(Pattern::Any),
            Some(prefix) if valid(prefix) => Some(Pattern::Prefix(prefix.to_owned())),
            Some(_) => None,
            None if valid(text) => Some(Pattern::Exact(text.to_owned())),
            None => None,
        }
    }

    fn matches(&self, localpart: Option<&str>) -> bool {
        match (self, localpart) {
            (Pattern::Any, _) => true,
            (Pattern::Exact(exact), Some(localpart)) => exact == localpart,
            (Pattern::Prefix(prefix), Some(localpart)) => localpart.starts_with(prefix.as_str()),
            (_, None) => false,
        }
    }

    /// Higher is more specific: an exact localpart, then longer prefixes.
    fn specificity(&self) -> usize {
        match self {
            Pattern::Exact(exact) => usize::MAX / 2 + exact.len(),
            Pattern::Prefix(prefix) => 1 + prefix.len(),
            Pattern::Any => 0,
        }
    }
}

/// One route as configured; unset fields take the connector's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// Which localparts it takes.
    pub pattern: Pattern,
    /// Where its requests go.
    pub destination: TransportConfig,
    /// `COMPONENT_POST_TIMEOUT` for this route.
    pub timeout: Option<Duration>,
    /// `COMPONENT_POST_STANZAS` for this route.
    pub stanzas: Option<HashSet<StanzaKind>>,
    /// `COMPONENT_POST_SECRET` for this route.
    pub secret: Option<Secret>,
}

/// The routes of `COMPONENT_ROUTES` (which wins) or the file's `[[route]]`
/// tables. `sqs`: the shorthand's URLs are request queues.
pub(crate) fn from_sources(
    sources: &Sources<'_>,
    sqs: bool,
) -> Result<Vec<RouteConfig>, OptionError> {
    let routes = match sources.get("COMPONENT_ROUTES") {
        Some(list) => parse_shorthand(&list, sqs)?,
        None => sources
            .file_routes()
            .iter()
            .enumerate()
            .map(|(index, table)| parse_table(index + 1, table))
            .collect::<Result<_, _>>()?,
    };
    let mut seen = HashSet::new();
    for route in &routes {
        if !seen.insert(format!("{:?}", route.pattern)) {
            return Err(OptionError::DuplicateRoute(pattern_text(&route.pattern)));
        }
    }
    Ok(routes)
}

fn pattern_text(pattern: &Pattern) -> String {
    match pattern {
        Pattern::Exact(exact) => exact.clone(),
        Pattern::Prefix(prefix) => format!("{prefix}*"),
        Pattern::Any => "*".to_owned(),
    }
}

/// `localpart=URL,…`.
fn parse_shorthand(list: &str, sqs: bool) -> Result<Vec<RouteConfig>, OptionError> {
    let expected = "localpart=URL, comma-separated (localpart: a name, a prefix ending in *, or *)";
    let mut routes = Vec::new();
    for item in list
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (localpart, url) = item
            .split_once('=')
            .ok_or_else(|| invalid("COMPONENT_ROUTES", list, expected))?;
        let pattern =
            Pattern::parse(localpart).ok_or_else(|| invalid("COMPONENT_ROUTES", list, expected))?;
        let destination = if sqs {
            TransportConfig::Sqs {
                request_queue_url: url.trim().to_owned(),
            }
        } else {
            TransportConfig::Http {
                post_url: parse_post_url_for("COMPONENT_ROUTES", url.trim())?,
            }
        };
        routes.push(RouteConfig {
            pattern,
            destination,
            timeout: None,
            stanzas: None,
            secret: None,
        });
    }
    Ok(routes)
}

/// One `[[route]]` table (`number` counts from 1, for errors).
fn parse_table(number: usize, table: &toml::Table) -> Result<RouteConfig, OptionError> {
    let error = |reason: String| OptionError::Route { number, reason };
    let text = |key: &str| -> Result<Option<String>, OptionError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(text.clone())),
            Some(toml::Value::Integer(n)) if key == "timeout" => Ok(Some(n.to_string())),
            Some(toml::Value::Float(n)) if key == "timeout" => Ok(Some(n.to_string())),
            Some(toml::Value::Array(items)) if key == "stanzas" => {
                let names: Option<Vec<&str>> = items.iter().map(toml::Value::as_str).collect();
                names
                    .map(|names| Some(names.join(",")))
                    .ok_or_else(|| error(format!("{key:?} must be a list of strings")))
            }
            Some(_) => Err(error(format!("{key:?} has the wrong type"))),
        }
    };
    for key in table.keys() {
        if ![
            "localpart",
            "url",
            "request_queue_url",
            "timeout",
            "stanzas",
            "secret",
        ]
        .contains(&key.as_str())
        {
            return Err(error(format!("unknown key {key:?}")));
        }
    }
    let localpart = text("localpart")?.ok_or_else(|| error("\"localpart\" is required".into()))?;
    let pattern = Pattern::parse(&localpart).ok_or_else(|| {
        error(format!(
            "\"localpart\" {localpart:?} is not a localpart, a prefix ending in *, or *"
        ))
    })?;
    let destination = match (text("url")?, text("request_queue_url")?) {
        (Some(url), None) => TransportConfig::Http {
            post_url: parse_post_url_for("url", &url).map_err(|e| error(e.to_string()))?,
        },
        (None, Some(queue)) => TransportConfig::Sqs {
            request_queue_url: queue,
        },
        _ => {
            return Err(error(
                "needs exactly one of \"url\" and \"request_queue_url\"".into(),
            ));
        }
    };
    let timeout = text("timeout")?
        .map(|seconds| parse_seconds_text("timeout", &seconds).map_err(|e| error(e.to_string())))
        .transpose()?;
    let stanzas = text("stanzas")?
        .map(|list| parse_kinds("stanzas", &list).map_err(|e| error(e.to_string())))
        .transpose()?;
    let secret = match text("secret")? {
        Some(secret) if secret.len() < MIN_SECRET_BYTES => {
            return Err(error(format!(
                "\"secret\" is shorter than {MIN_SECRET_BYTES} bytes (the value is not shown)"
            )));
        }
        secret => secret.map(Secret::new),
    };
    Ok(RouteConfig {
        pattern,
        destination,
        timeout,
        stanzas,
        secret,
    })
}

/// Where a route's requests go, and what it forwards.
pub struct Destination {
    /// The route's localpart pattern, for logs.
    pub name: String,
    /// Its way to its bot.
    pub transport: Transport,
    /// The stanza kinds it hands to its bot; the others are answered by
    /// the connector (DESIGN §3).
    pub forwarded_kinds: HashSet<StanzaKind>,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("forwarded_kinds", &self.forwarded_kinds)
            .finish_non_exhaustive()
    }
}

impl Destination {
    pub fn forwards(&self, kind: StanzaKind) -> bool {
        self.forwarded_kinds.contains(&kind)
    }
}

/// Picks the destination of each request.
pub struct Router {
    /// Most specific first; the default (`*`) last, if there is one.
    routes: Vec<(Pattern, Arc<Destination>)>,
}

impl Router {
    /// A router over `routes`, any order.
    pub fn new(mut routes: Vec<(Pattern, Arc<Destination>)>) -> Router {
        routes.sort_by_key(|(pattern, _)| std::cmp::Reverse(pattern.specificity()));
        Router { routes }
    }

    /// The destination for a stanza to `to`, if any route takes it.
    pub fn for_address(&self, to: &str) -> Option<&Arc<Destination>> {
        let localpart = to
            .split('/')
            .next()
            .and_then(|bare| bare.split_once('@'))
            .map(|(localpart, _)| localpart);
        self.routes
            .iter()
            .find(|(pattern, _)| pattern.matches(localpart))
            .map(|(_, destination)| destination)
    }

    /// The routes' names, most specific first.
    /// The bot that takes a stanza of `kind` to `to`, if one does.
    pub fn destination(&self, to: &str, kind: StanzaKind) -> Option<Arc<Destination>> {
        self.for_address(to)
            .filter(|destination| destination.forwards(kind))
            .cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        self.routes
            .iter()
            .map(|(_, destination)| destination.name.as_str())
            .collect()
    }
}

/// What building a route to a request queue needs.
pub struct QueueParts<'a> {
    pub client: &'a aws_sdk_sqs::Client,
    pub stats: &'a Arc<crate::sqs::SqsStats>,
    pub health: &'a Arc<crate::health::QueueHealth>,
}

/// What a route takes from the connector's own options where it sets
/// nothing itself.
pub struct Defaults<'a> {
    /// The default bot (`COMPONENT_POST_URL` / `REQUEST_QUEUE_URL`), if any.
    pub transport: Option<&'a TransportConfig>,
    /// `COMPONENT_POST_TIMEOUT`.
    pub timeout: Duration,
    /// `COMPONENT_POST_CONNECT_RETRY`.
    pub connect_retry: Duration,
    /// `COMPONENT_POST_STANZAS`.
    pub forwarded_kinds: &'a HashSet<StanzaKind>,
    /// SigV4 signing, for routes to Function URLs.
    pub signing: &'a SigningOptions,
    /// `COMPONENT_POST_SECRET`.
    pub secret: Option<&'a Secret>,
}

/// The router for `routes` over `defaults`: the default destination (if
/// any) and every route, each with its own transport. Returns the request
/// queues' batcher tasks too, which end once the router is dropped. `Err`
/// names what could not be built.
pub fn build(
    routes_config: &[RouteConfig],
    defaults: &Defaults<'_>,
    queues: Option<QueueParts<'_>>,
) -> Result<(Router, Vec<tokio::task::JoinHandle<()>>), String> {
    let default = defaults.transport.cloned().map(|destination| RouteConfig {
        pattern: Pattern::Any,
        destination,
        timeout: None,
        stanzas: None,
        secret: None,
    });
    let mut routes = Vec::new();
    let mut batchers = Vec::new();
    for route in default.iter().chain(routes_config) {
        let timeout = route.timeout.unwrap_or(defaults.timeout);
        let transport = match &route.destination {
            TransportConfig::Http { post_url } => {
                let sigv4 = RequestSigner::for_post_url(&post_url.0, defaults.signing);
                let signer = route
                    .secret
                    .as_ref()
                    .or(defaults.secret)
                    .map(|secret| xmpp_lambda_shared::signing::Signer::new(secret.expose()));
                let http = HttpTransport::new(post_url.0.clone(), timeout, sigv4)
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?
                    .with_connect_retry(defaults.connect_retry);
                Transport::Http(http.with_post_signer(signer))
            }
            TransportConfig::Sqs { request_queue_url } => {
                let parts = queues
                    .as_ref()
                    .ok_or("a route to a request queue needs the SQS client")?;
                let (sender, batcher) = crate::sqs::RequestSender::start(
                    parts.client.clone(),
                    request_queue_url.clone(),
                    timeout,
                    Arc::clone(parts.stats),
                    Arc::clone(parts.health),
                );
                batchers.push(batcher);
                Transport::Sqs(sender)
            }
        };
        let destination = Destination {
            name: pattern_text(&route.pattern),
            transport,
            forwarded_kinds: route
                .stanzas
                .clone()
                .unwrap_or_else(|| defaults.forwarded_kinds.clone()),
        };
        routes.push((route.pattern.clone(), Arc::new(destination)));
    }
    Ok((Router::new(routes), batchers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        assert_eq!(Pattern::parse("echo"), Some(Pattern::Exact("echo".into())));
        assert_eq!(
            Pattern::parse("alert*"),
            Some(Pattern::Prefix("alert".into()))
        );
        assert_eq!(Pattern::parse("*"), Some(Pattern::Any));
        assert_eq!(Pattern::parse("a@b"), None);
        assert_eq!(Pattern::parse(""), None);
        assert_eq!(Pattern::parse("a b"), None);
        assert!(Pattern::Prefix("alert".into()).matches(Some("alert-eu")));
        assert!(!Pattern::Prefix("alert".into()).matches(Some("alarm")));
        assert!(Pattern::Any.matches(None));
        assert!(!Pattern::Exact("echo".into()).matches(None));
    }

    #[test]
    fn the_longest_match_wins() {
        let mut patterns = [
            Pattern::Any,
            Pattern::Prefix("w".into()),
            Pattern::Exact("weather".into()),
            Pattern::Prefix("weath".into()),
        ];
        patterns.sort_by_key(|p| std::cmp::Reverse(p.specificity()));
        let pick = |localpart: &str| {
            patterns
                .iter()
                .find(|p| p.matches(Some(localpart)))
                .map(pattern_text)
        };
        assert_eq!(pick("weather").as_deref(), Some("weather"));
        assert_eq!(pick("weathers").as_deref(), Some("weath*"));
        assert_eq!(pick("wind").as_deref(), Some("w*"));
        assert_eq!(pick("echo").as_deref(), Some("*"));
    }
}

//! What every capability's options share (DESIGN §4): where an option's
//! value comes from ([`Sources`]: the environment, which wins, or a TOML
//! file), how a bad one is reported ([`OptionError`], one line naming the
//! option), the checks several capabilities use, and how an option is
//! described ([`OptionDoc`]) so that `--help`, the docs' table and the
//! parser are made from one list.
//!
//! Each capability owns its options and their parsing (`api`, `rooms`,
//! `routes`, `sigv4`, the link's own in `config`); `config` only composes
//! them. This module imports nothing of theirs.

use reqwest::Url;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use xmpp_lambda_component::Secret;
use xmpp_lambda_shared::StanzaKind;

/// Why the connector cannot start. Each is one line naming the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("{option} is required: {what}")]
    Missing {
        option: &'static str,
        what: &'static str,
    },
    #[error("{option} {value:?} is invalid: expected {expected}")]
    Invalid {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    /// Like `Invalid`, without the value: it is a secret.
    #[error("{option} is invalid: expected {expected} (the value is not shown)")]
    InvalidSecret {
        option: &'static str,
        expected: &'static str,
    },
    #[error("route {number} of the config file: {reason}")]
    Route { number: usize, reason: String },
    #[error("two routes for {0:?}")]
    DuplicateRoute(String),
    #[error("{0} and a route \"*\" both name the default bot: keep one")]
    TwoDefaultRoutes(&'static str),
    #[error("unknown argument {0:?} (see --help)")]
    UnknownArgument(String),
    #[error("--config needs a file name")]
    ConfigFileMissing,
    #[error("config file {path:?}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// One option, as `--help` and the docs describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionDoc {
    /// As the environment spells it; a file uses it in lower case.
    pub name: &'static str,
    /// Other names it is read by (a file may use them too).
    pub aliases: &'static [&'static str],
    /// What it is for, one sentence or a few (wrapped by `--help`).
    pub meaning: &'static str,
    /// What it is when unset: `required`, or a value or phrase.
    pub default: &'static str,
}

/// The two places an option can come from.
pub struct Sources<'a> {
    /// The environment, which wins.
    env: &'a dyn Fn(&str) -> Option<String>,
    /// The config file's values, keyed by the upper-case option name.
    file: HashMap<String, String>,
    /// The config file's `[[route]]` tables.
    file_routes: Vec<toml::Table>,
    /// Every option name looked up, so a test can hold the parser to the
    /// documented list.
    asked: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Sources<'a> {
    /// The environment, and the TOML file at `path` if one is given; a
    /// file key that no option in `known` names is refused.
    pub fn new(
        env: &'a dyn Fn(&str) -> Option<String>,
        path: Option<&Path>,
        known: &[OptionDoc],
    ) -> Result<Sources<'a>, OptionError> {
        let (file, file_routes) = match path {
            Some(path) => read_file(path, known)?,
            None => (HashMap::new(), Vec::new()),
        };
        Ok(Sources {
            env,
            file,
            file_routes,
            asked: RefCell::new(BTreeSet::new()),
        })
    }

    /// The config file's `[[route]]` tables.
    pub fn file_routes(&self) -> &[toml::Table] {
        &self.file_routes
    }

    /// The option's value; an empty environment variable counts as unset.
    pub fn get(&self, option: &'static str) -> Option<String> {
        self.asked.borrow_mut().insert(option);
        (self.env)(option)
            .filter(|value| !value.is_empty())
            .or_else(|| self.file.get(option).cloned())
    }

    /// The option's value, or `Missing` saying `what` it is.
    pub fn required(
        &self,
        option: &'static str,
        what: &'static str,
    ) -> Result<String, OptionError> {
        self.get(option)
            .ok_or(OptionError::Missing { option, what })
    }

    /// Every option name looked up so far.
    #[cfg(test)]
    pub fn asked(&self) -> BTreeSet<&'static str> {
        self.asked.borrow().clone()
    }
}

/// Reads a TOML config file into option name → value text, and its
/// `[[route]]` tables.
fn read_file(
    path: &Path,
    known: &[OptionDoc],
) -> Result<(HashMap<String, String>, Vec<toml::Table>), OptionError> {
    let file_error = |reason: String| OptionError::File {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let message = e.message().replace('\n', " ");
        match line {
            Some(line) => file_error(format!("invalid TOML at line {line}: {message}")),
            None => file_error(format!("invalid TOML: {message}")),
        }
    })?;
    let is_known = |option: &str| {
        known
            .iter()
            .any(|doc| doc.name == option || doc.aliases.contains(&option))
    };
    let mut values = HashMap::new();
    let mut routes = Vec::new();
    for (key, value) in table {
        if key == "route" {
            let toml::Value::Array(tables) = value else {
                return Err(file_error("\"route\" must be [[route]] tables".into()));
            };
            for table in tables {
                match table {
                    toml::Value::Table(table) => routes.push(table),
                    _ => return Err(file_error("\"route\" must be [[route]] tables".into())),
                }
            }
            continue;
        }
        let option = key.to_ascii_uppercase();
        if key != key.to_ascii_lowercase() || !is_known(&option) {
            return Err(file_error(format!("unknown option {key:?}")));
        }
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Float(number) => number.to_string(),
            toml::Value::Array(items) => {
                let mut texts = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(text) => texts.push(text),
                        _ => {
                            return Err(file_error(format!(
                                "option {key:?} must be a list of strings"
                            )));
                        }
                    }
                }
                texts.join(",")
            }
            _ => {
                return Err(file_error(format!(
                    "option {key:?} must be a string, a number or a list of strings"
                )));
            }
        };
        values.insert(option, text);
    }
    Ok((values, routes))
}

pub fn invalid(option: &'static str, value: &str, expected: &'static str) -> OptionError {
    OptionError::Invalid {
        option,
        value: value.to_owned(),
        expected,
    }
}

/// A URL whose password and query (where tokens tend to live) are hidden
/// from `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedUrl(pub Url);

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            // Only fails for URLs that cannot have a password.
            let _ = shown.set_password(Some("redacted"));
        }
        if shown.query().is_some() {
            shown.set_query(Some("redacted"));
        }
        write!(f, "{:?}", shown.as_str())
    }
}

/// An http(s) URL given as `option`.
pub fn parse_post_url_for(option: &'static str, value: &str) -> Result<RedactedUrl, OptionError> {
    match Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
            Ok(RedactedUrl(url))
        }
        _ => Err(invalid(option, value, "an http:// or https:// URL")),
    }
}

/// A comma-separated list of stanza kinds given as `option`.
pub fn parse_kinds(option: &'static str, list: &str) -> Result<HashSet<StanzaKind>, OptionError> {
    let expected = "a comma-separated list of message, presence, iq";
    let mut kinds = HashSet::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        kinds.insert(
            name.parse::<StanzaKind>()
                .map_err(|_| invalid(option, list, expected))?,
        );
    }
    if kinds.is_empty() {
        return Err(invalid(option, list, expected));
    }
    Ok(kinds)
}

/// A positive number of seconds, fractions allowed (tests use short ones).
pub fn parse_seconds(
    sources: &Sources<'_>,
    option: &'static str,
    default: u64,
) -> Result<Duration, OptionError> {
    let Some(value) = sources.get(option) else {
        return Ok(Duration::from_secs(default));
    };
    parse_seconds_text(option, &value)
}

/// `value` as a positive number of seconds given as `option`.
pub fn parse_seconds_text(option: &'static str, value: &str) -> Result<Duration, OptionError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            invalid(
                option,
                value,
                "a number of seconds greater than 0 (at most 86400)",
            )
        })
}

/// The options as `--help` lists them: the name, then its meaning wrapped
/// beside it, and its default.
pub fn help_lines(docs: &[OptionDoc]) -> String {
    const NAME_WIDTH: usize = 26;
    const WIDTH: usize = 78;
    let mut out = String::new();
    for doc in docs {
        let mut text = doc.meaning.to_owned();
        if !doc.aliases.is_empty() {
            text.push_str(&format!(" (alias {})", doc.aliases.join(", ")));
        }
        if doc.default == "required" {
            text.push_str(" (required)");
        } else {
            text.push_str(&format!(" [default: {}]", doc.default));
        }
        let mut line = format!("  {}", doc.name);
        if line.len() + 1 > NAME_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        for word in text.split_whitespace() {
            let start = line.is_empty() || line.len() < NAME_WIDTH;
            if start {
                line = format!("{line:NAME_WIDTH$}");
                line.push_str(word);
            } else if line.len() + 1 + word.len() > WIDTH {
                out.push_str(&line);
                out.push('\n');
                line = format!("{:NAME_WIDTH$}{word}", "");
            } else {
                line.push(' ');
                line.push_str(word);
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The options as a Markdown table, as the docs show it (the tests keep
/// the docs' copy equal to it).
#[cfg(test)]
pub fn markdown_table(docs: &[OptionDoc]) -> String {
    let mut out = String::from("| option | meaning | default |\n| --- | --- | --- |\n");
    for doc in docs {
        let mut name = format!("`{}`", doc.name);
        for alias in doc.aliases {
            name.push_str(&format!(" (alias `{alias}`)"));
        }
        out.push_str(&format!(
            "| {name} | {} | {} |\n",
            markdown_text(doc.meaning),
            markdown_text(doc.default)
        ));
    }
    out
}

/// `text` as Markdown shows it literally in a table cell.
#[cfg(test)]
fn markdown_text(text: &str) -> String {
    text.replace('|', "\\|")
        .replace('*', "\\*")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

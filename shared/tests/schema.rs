//! The JSON Schemas in `shared/schema/` (draft 2020-12) against the code's
//! golden cases, so schema and code cannot drift apart.
//!
//! * Every schema is a valid 2020-12 schema whose `$ref`s resolve offline,
//!   and every example in it validates and is read by the code.
//! * Everything the code writes (the request JSON of `golden/request/`, the
//!   envelope fixtures `golden/envelope/{request,reply,send}-*.json`) is
//!   valid, and checked **strictly**: every object schema gets
//!   `unevaluatedProperties: false`, so a field the code writes but the
//!   schema does not declare fails. (The published schemas stay open, so
//!   bots keep working when a later version adds a field.)
//! * Everything a bot writes (reply bodies of `golden/reply/`, outbound
//!   messages of `golden/outbound/`): what the code accepts, the schema
//!   accepts; what the code refuses for a reason a schema can express (a
//!   wrong type, an unknown kind, a character XML forbids, a malformed JID),
//!   the schema refuses too.
//! * Every envelope `golden/envelope/*.toml` refuses is refused by the
//!   schema of its queue.
//!
//! New golden files are picked up by their folder and name; a failure names
//! the file, the case and what the validator said.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xmpp_lambda_shared::{ReplyEnvelope, Request, RequestEnvelope};

/// Where the schemas say they live; `$ref`s are relative to it.
const BASE: &str = "https://raw.githubusercontent.com/xmpp-lambda/xmpp-lambda/main/shared/schema/";
const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";
/// Every schema file, by name (`<name>.schema.json`).
const SCHEMAS: &[&str] = &[
    "defs",
    "request",
    "reply",
    "outbound",
    "request-envelope",
    "reply-envelope",
    "send-envelope",
];

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every file under `dir` (recursively) whose name ends with `suffix`,
/// sorted; none when `dir` does not exist.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(files_ending(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn shown(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", shown(path)));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", shown(path)))
}

/// The schema files as written, by name.
fn schema_files() -> BTreeMap<String, Value> {
    SCHEMAS
        .iter()
        .map(|name| {
            let path = schema_dir().join(format!("{name}.schema.json"));
            ((*name).to_owned(), read_json(&path))
        })
        .collect()
}

/// Adds `unevaluatedProperties: false` to every object schema that lists
/// its properties; returns how many it changed. Examples and constants are
/// instances, not schemas, and are left alone.
fn make_strict(schema: &mut Value) -> usize {
    match schema {
        Value::Object(map) => {
            let mut changed = 0;
            if map.get("type") == Some(&Value::from("object")) && map.contains_key("properties") {
                map.insert("unevaluatedProperties".into(), Value::Bool(false));
                changed += 1;
            }
            for (key, value) in map.iter_mut() {
                if !matches!(key.as_str(), "examples" | "const" | "enum") {
                    changed += make_strict(value);
                }
            }
            changed
        }
        Value::Array(items) => items.iter_mut().map(make_strict).sum(),
        _ => 0,
    }
}

/// A compiled validator for each schema (and for each definition of
/// `defs`, as `defs#name`).
struct Schemas {
    validators: BTreeMap<String, jsonschema::Validator>,
}

impl Schemas {
    /// The schemas as published.
    fn open() -> Schemas {
        Schemas::build(schema_files())
    }

    /// The schemas with undeclared properties refused.
    fn strict() -> Schemas {
        let mut files = schema_files();
        for schema in files.values_mut() {
            make_strict(schema);
        }
        Schemas::build(files)
    }

    fn build(files: BTreeMap<String, Value>) -> Schemas {
        let resources: Vec<(String, Value)> = files
            .iter()
            .map(|(name, schema)| (format!("{BASE}{name}.schema.json"), schema.clone()))
            .collect();
        let registry = jsonschema::Registry::new()
            .extend(resources.iter().map(|(uri, schema)| (uri.as_str(), schema)))
            .and_then(|builder| builder.prepare())
            .unwrap_or_else(|e| panic!("the schemas do not form a registry: {e}"));
        let compile = |schema: &Value, what: &str| {
            jsonschema::options()
                .offline()
                .with_registry(&registry)
                .build(schema)
                .unwrap_or_else(|e| panic!("{what} does not compile offline: {e}"))
        };
        let mut validators = BTreeMap::new();
        for (name, schema) in &files {
            validators.insert(
                name.clone(),
                compile(schema, &format!("{name}.schema.json")),
            );
        }
        let definitions = files["defs"]["$defs"]
            .as_object()
            .expect("defs.schema.json has $defs");
        for definition in definitions.keys() {
            let reference = serde_json::json!({
                "$ref": format!("{BASE}defs.schema.json#/$defs/{definition}")
            });
            validators.insert(
                format!("defs#{definition}"),
                compile(&reference, &format!("$defs/{definition}")),
            );
        }
        Schemas { validators }
    }

    /// `Ok` when `instance` is valid against schema `name`; otherwise every
    /// error with where it is in the instance.
    fn check(&self, name: &str, instance: &Value) -> Result<(), String> {
        let validator = self
            .validators
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name:?}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|error| format!("  at {:?}: {error}", error.instance_path().as_str()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "not valid against {name}.schema.json:\n{}",
                errors.join("\n")
            ))
        }
    }

    /// `Ok` when schema `name` refuses `instance`.
    fn refuses(&self, name: &str, instance: &Value) -> Result<(), String> {
        match self.check(name, instance) {
            Ok(()) => Err(format!(
                "{name}.schema.json accepts what the code refuses: {instance}"
            )),
            Err(_) => Ok(()),
        }
    }
}

/// The failures of a group of checks, each named by file and case.
#[derive(Default)]
struct Report {
    /// How many checks ran, so an empty group cannot pass unseen.
    checked: usize,
    /// `file › case: what went wrong`.
    failures: Vec<String>,
}

impl Report {
    fn check(&mut self, file: &Path, case: &str, outcome: Result<(), String>) {
        self.checked += 1;
        if let Err(message) = outcome {
            self.failures
                .push(format!("{} › {case}: {message}", shown(file)));
        }
    }

    fn assert_passed(self, what: &str) {
        assert!(self.checked > 0, "nothing checked for {what}");
        assert!(
            self.failures.is_empty(),
            "{} of {} {what} failed:\n\n{}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n\n")
        );
    }
}

/// The cases of every golden TOML file whose `rule` is `rule`, with their
/// file and name.
fn golden_cases(dir: &Path, rule: &str) -> Vec<(PathBuf, String, toml::Table)> {
    let mut cases = Vec::new();
    for path in files_ending(dir, ".toml") {
        let text = std::fs::read_to_string(&path).expect("golden file readable");
        let file: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", shown(&path)));
        if file.get("rule").and_then(toml::Value::as_str) != Some(rule) {
            continue;
        }
        let Some(list) = file.get("case").and_then(toml::Value::as_array) else {
            continue;
        };
        for (index, case) in list.iter().enumerate() {
            let table = case.as_table().cloned().unwrap_or_default();
            let name = table
                .get("name")
                .and_then(toml::Value::as_str)
                .map_or_else(|| format!("case #{}", index + 1), str::to_owned);
            cases.push((path.clone(), name, table));
        }
    }
    cases
}

/// Whether the code's reason for refusing a bot's JSON is one a schema can
/// express, so the schema must refuse it too. Other reasons (a `from`
/// outside the component's domain, anything inside the XML of `stanza`, the
/// size in bytes) need the code.
fn schema_can_refuse(reason: &str, json: &Value) -> bool {
    const EXPRESSIBLE: &[&str] = &[
        "is not an object",
        "must be a string",
        "must be a string or a number",
        "must be a list of reply objects",
        "is not message, presence or iq",
        "which XML does not allow",
        "missing field",
        "\"replies\" is empty",
        "\"replies\" holds",
        "cannot be combined with",
        "\"replies\" is only allowed at the top level",
        "\"url\" is only for messages",
        "\"url\" must be http or https",
    ];
    if EXPRESSIBLE.iter().any(|part| reason.contains(part)) {
        return true;
    }
    // `reply "to" "a@b@c" is not a valid JID`: expressible when that value
    // is the JSON field's, not an attribute inside `stanza`.
    reason.ends_with("is not a valid JID")
        && ["to", "from"].iter().any(|field| {
            json[*field]
                .as_str()
                .is_some_and(|value| reason.contains(&format!("{:?}", value)))
        })
}

/// A bot's JSON: valid when the code accepts it; refused when the code
/// refuses it for a reason the schema can express.
fn check_bot_json(
    schemas: &Schemas,
    schema: &str,
    json: &Value,
    refused: Option<&str>,
) -> Result<(), String> {
    match refused {
        None => schemas.check(schema, json),
        Some(reason) if schema_can_refuse(reason, json) => schemas
            .refuses(schema, json)
            .map_err(|e| format!("{e}\n  (the code says: {reason})")),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The schemas themselves.

#[test]
fn every_schema_is_2020_12_with_its_id_a_title_and_examples() {
    let on_disk: Vec<String> = files_ending(&schema_dir(), ".schema.json")
        .iter()
        .map(|path| shown(path))
        .collect();
    let listed: Vec<String> = SCHEMAS
        .iter()
        .map(|name| format!("schema/{name}.schema.json"))
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(on_disk, sorted, "every schema file is listed in SCHEMAS");

    for (name, schema) in schema_files() {
        let file = format!("{name}.schema.json");
        if let Err(error) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{file} is not a valid 2020-12 schema: {error}");
        }
        assert_eq!(schema["$schema"], DRAFT, "{file}");
        assert_eq!(schema["$id"], format!("{BASE}{file}"), "{file}");
        for key in ["title", "description"] {
            assert!(
                schema[key].as_str().is_some_and(|text| !text.is_empty()),
                "{file} has no {key}"
            );
        }
        if name != "defs" {
            assert!(
                schema["examples"].as_array().is_some_and(|e| !e.is_empty()),
                "{file} has no examples"
            );
        }
    }
    // Every $ref resolves without the network.
    Schemas::open();
}

#[test]
fn schema_examples_are_valid_and_read_by_the_code() {
    let schemas = Schemas::strict();
    let mut report = Report::default();
    for (name, schema) in schema_files() {
        let file = schema_dir().join(format!("{name}.schema.json"));
        let examples = schema["examples"].as_array().cloned().unwrap_or_default();
        for (index, example) in examples.iter().enumerate() {
            let case = format!("example #{}", index + 1);
            report.check(&file, &case, schemas.check(&name, example));
            report.check(&file, &case, read_by_the_code(&name, example));
        }
    }
    let defs = schema_dir().join("defs.schema.json");
    for (definition, schema) in schema_files()["defs"]["$defs"].as_object().expect("$defs") {
        for example in schema["examples"].as_array().into_iter().flatten() {
            let case = format!("$defs/{definition} example {example}");
            report.check(
                &defs,
                &case,
                schemas.check(&format!("defs#{definition}"), example),
            );
        }
    }
    report.assert_passed("schema examples");
}

/// Whether the code reads an example of schema `name` as that thing.
fn read_by_the_code(name: &str, example: &Value) -> Result<(), String> {
    let text = example.to_string();
    let refused = |e: &dyn std::fmt::Display| format!("the code refuses it: {e}");
    match name {
        "request" => serde_json::from_value::<Request>(example.clone())
            .map(drop)
            .map_err(|e| refused(&e)),
        "request-envelope" => RequestEnvelope::from_json(&text)
            .map(drop)
            .map_err(|e| refused(&e)),
        "reply-envelope" => ReplyEnvelope::from_json(&text)
            .map(drop)
            .map_err(|e| refused(&e)),
        // A whole answer: one reply object or a list of them.
        #[cfg(feature = "xml")]
        "reply" => xmpp_lambda_shared::Reply::list_from_json(&text)
            .map(drop)
            .map_err(|e| refused(&e)),
        #[cfg(feature = "xml")]
        "outbound" => xmpp_lambda_shared::Reply::from_json(&text)
            .map(drop)
            .map_err(|e| refused(&e)),
        #[cfg(feature = "xml")]
        "send-envelope" => example["send"]
            .as_array()
            .into_iter()
            .flatten()
            .try_for_each(|message| {
                xmpp_lambda_shared::Reply::from_json(&message.to_string())
                    .map(drop)
                    .map_err(|e| refused(&e))
            }),
        _ => Ok(()),
    }
}

#[cfg(feature = "xml")]
#[test]
fn the_jid_pattern_never_refuses_a_jid() {
    let schemas = Schemas::open();
    let jids = [
        "a@b",
        "bot.example.com",
        "alice@example.com/phone",
        "alice@example.com/a resource/with slashes",
        "ålice@exämple.com/☎",
        "room@conference.example.com/Bob ☺",
        "user@[::1]",
        "user@127.0.0.1/x",
    ];
    for jid in jids {
        assert!(jid::Jid::new(jid).is_ok(), "{jid} is a JID");
        assert_eq!(
            schemas.check("defs#jid", &Value::from(jid)),
            Ok(()),
            "{jid}"
        );
    }
    let not_jids = [
        "",
        "a@b@c",
        "a@",
        "@b",
        "b/",
        "not a jid@",
        "a b@c",
        "bob\u{1}@example.com",
        "bob@exa mple.com",
        "bob@example.com/\u{1}",
    ];
    for text in not_jids {
        assert!(jid::Jid::new(text).is_err(), "{text:?} is not a JID");
        assert!(
            schemas.check("defs#jid", &Value::from(text)).is_err(),
            "{text:?} passes the JID pattern"
        );
    }
}

// ---------------------------------------------------------------------------
// What the code writes: valid, with nothing undeclared.

#[test]
fn golden_request_json_matches_the_request_schema() {
    let schemas = Schemas::strict();
    let mut report = Report::default();
    for (file, name, case) in golden_cases(&golden_dir(), "request") {
        let Some(json) = case.get("json").and_then(toml::Value::as_str) else {
            continue; // a stanza that gives no request (its `error` case)
        };
        let outcome = serde_json::from_str(json)
            .map_err(|e| format!("golden json is not JSON: {e}"))
            .and_then(|json| schemas.check("request", &json));
        report.check(&file, &name, outcome);
    }
    report.assert_passed("golden request JSON checks");
}

/// The golden stanza as the component receives it (unprefixed names in
/// `jabber:component:accept`, as `golden.rs` reads them).
#[cfg(feature = "xml")]
fn received_stanza(text: &str) -> Option<minidom::Element> {
    let wrapped = format!("<golden xmlns='jabber:component:accept'>{text}</golden>");
    let wrapper: minidom::Element = wrapped.parse().ok()?;
    wrapper.children().next().cloned()
}

/// The request JSON the code makes from every golden stanza, reply cases
/// included: the rule itself, not only the files, must fit the schema.
#[cfg(feature = "xml")]
#[test]
fn the_request_json_the_code_writes_matches_the_request_schema() {
    let schemas = Schemas::strict();
    let mut report = Report::default();
    for rule in ["request", "reply"] {
        for (file, name, case) in golden_cases(&golden_dir(), rule) {
            let Some(stanza) = case.get("stanza").and_then(toml::Value::as_str) else {
                continue;
            };
            let Some(received) = received_stanza(stanza) else {
                report.check(&file, &name, Err("golden stanza does not parse".into()));
                continue;
            };
            let Ok(request) = xmpp_lambda_shared::stanza_to_request(&received) else {
                continue; // refused, with the error its golden case names
            };
            let outcome = serde_json::to_value(&request)
                .map_err(|e| e.to_string())
                .and_then(|json| schemas.check("request", &json));
            report.check(&file, &name, outcome);
        }
    }
    report.assert_passed("request JSON written by the code");
}

/// The schema of an envelope fixture, by its file name.
fn envelope_schema(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    [
        ("request-", "request-envelope"),
        ("reply-", "reply-envelope"),
        ("send-", "send-envelope"),
    ]
    .into_iter()
    .find_map(|(prefix, schema)| name.starts_with(prefix).then_some(schema))
}

#[test]
fn golden_envelope_fixtures_match_their_schemas() {
    let schemas = Schemas::strict();
    let mut report = Report::default();
    for path in files_ending(&golden_dir().join("envelope"), ".json") {
        let outcome = match envelope_schema(&path) {
            Some(schema) => schemas.check(schema, &read_json(&path)),
            None => Err("no schema for it: names start with request-, reply- or send-".into()),
        };
        report.check(&path, "fixture", outcome);
    }
    report.assert_passed("envelope fixtures");
}

#[test]
fn envelopes_the_code_refuses_the_schemas_refuse() {
    let schemas = Schemas::open();
    let mut report = Report::default();
    for (file, name, case) in golden_cases(&golden_dir(), "envelope") {
        let Some(text) = case.get("json").and_then(toml::Value::as_str) else {
            report.check(&file, &name, Err("no json".into()));
            continue;
        };
        let Ok(json) = serde_json::from_str::<Value>(text) else {
            continue; // not JSON at all: no schema to ask
        };
        // The reply queue carries replies and bots' send envelopes alike.
        let queue_schemas: &[&str] = match case.get("queue").and_then(toml::Value::as_str) {
            Some("request") => &["request-envelope"],
            Some("reply") => &["reply-envelope", "send-envelope"],
            Some("send") => &["send-envelope"],
            other => {
                report.check(&file, &name, Err(format!("unknown queue {other:?}")));
                continue;
            }
        };
        for schema in queue_schemas {
            report.check(&file, &name, schemas.refuses(schema, &json));
        }
    }
    report.assert_passed("invalid envelope checks");
}

// ---------------------------------------------------------------------------
// What bots write: the schema agrees with the code.

#[cfg(feature = "xml")]
#[test]
fn golden_bot_replies_match_the_reply_schema() {
    let schemas = Schemas::open();
    let mut report = Report::default();
    for (file, name, case) in golden_cases(&golden_dir(), "reply") {
        if let Some(outcome) = reply_case(&schemas, &case) {
            report.check(&file, &name, outcome);
        }
    }
    report.assert_passed("golden reply checks");
}

/// One reply case's check, or `None` when the bot's answer is no reply
/// object at all (an error status, not JSON, empty or null, or an answer
/// to an error stanza, which is never read).
#[cfg(feature = "xml")]
fn reply_case(schemas: &Schemas, case: &toml::Table) -> Option<Result<(), String>> {
    let received = received_stanza(case.get("stanza")?.as_str()?)?;
    if received.attr("type") == Some("error") {
        return None;
    }
    let response = case.get("response")?.as_table()?;
    let status = response.get("status")?.as_integer()?;
    let content_type = response.get("content_type").and_then(toml::Value::as_str);
    let body = response
        .get("body")
        .and_then(toml::Value::as_str)
        .unwrap_or("");
    let outcome = xmpp_lambda_shared::BotResponse::from_http(200, content_type, b"");
    if status != 200 || !outcome.is_json() {
        return None;
    }
    let json: Value = serde_json::from_str(body).ok()?;
    if json.is_null() {
        return None;
    }
    let refused = case.get("refused").and_then(toml::Value::as_str);
    Some(check_bot_json(schemas, "reply", &json, refused))
}

/// Where an outbound golden case keeps the message, and how it says the
/// code refuses it.
const OUTBOUND_JSON_KEYS: &[&str] = &["json", "message", "outbound", "send"];
const OUTBOUND_REFUSAL_KEYS: &[&str] = &["error", "refused"];

#[test]
fn golden_outbound_messages_match_the_outbound_schema() {
    let schemas = Schemas::open();
    let mut report = Report::default();
    let dir = golden_dir().join("outbound");
    for path in files_ending(&dir, ".json") {
        let outcome = match read_json(&path) {
            Value::Array(messages) => messages
                .iter()
                .try_for_each(|message| schemas.check("outbound", message)),
            message => schemas.check("outbound", &message),
        };
        report.check(&path, "fixture", outcome);
    }
    for path in files_ending(&dir, ".toml") {
        let text = std::fs::read_to_string(&path).expect("golden file readable");
        let file: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not TOML: {e}", shown(&path)));
        let cases = file.get("case").and_then(toml::Value::as_array);
        for (index, case) in cases.into_iter().flatten().enumerate() {
            let case = case.as_table().cloned().unwrap_or_default();
            let name = case
                .get("name")
                .and_then(toml::Value::as_str)
                .map_or_else(|| format!("case #{}", index + 1), str::to_owned);
            if let Some(outcome) = outbound_case(&schemas, &case) {
                report.check(&path, &name, outcome);
            }
        }
    }
    // The schema's own examples stand in until golden cases exist.
    let examples = schema_files()["outbound"]["examples"].clone();
    for (index, example) in examples.as_array().into_iter().flatten().enumerate() {
        let file = schema_dir().join("outbound.schema.json");
        report.check(
            &file,
            &format!("example #{}", index + 1),
            schemas.check("outbound", example),
        );
    }
    report.assert_passed("outbound message checks");
}

/// One outbound case: the message under one of [`OUTBOUND_JSON_KEYS`] (JSON
/// text or a TOML table), refused by the code when it has one of
/// [`OUTBOUND_REFUSAL_KEYS`]. `None` for a message that is not JSON.
fn outbound_case(schemas: &Schemas, case: &toml::Table) -> Option<Result<(), String>> {
    let Some(raw) = OUTBOUND_JSON_KEYS.iter().find_map(|key| case.get(*key)) else {
        let keys: Vec<&String> = case.keys().collect();
        return Some(Err(format!(
            "no message under {OUTBOUND_JSON_KEYS:?} (keys: {keys:?}); teach schema.rs the format"
        )));
    };
    let json: Value = match raw {
        toml::Value::String(text) => serde_json::from_str(text).ok()?,
        other => serde_json::to_value(other).ok()?,
    };
    let refused = OUTBOUND_REFUSAL_KEYS
        .iter()
        .find_map(|key| case.get(*key))
        .and_then(toml::Value::as_str);
    Some(check_bot_json(schemas, "outbound", &json, refused))
}

// ---------------------------------------------------------------------------
// The harness itself.

#[test]
fn strict_schemas_name_an_undeclared_field() {
    let request = schema_files()["request"]["examples"][0].clone();
    let mut extended = request.clone();
    extended["roomz"] = Value::from("typo");
    assert_eq!(Schemas::open().check("request", &extended), Ok(()));
    let strict = Schemas::strict();
    assert_eq!(strict.check("request", &request), Ok(()));
    let error = strict
        .check("request", &extended)
        .expect_err("strict refuses roomz");
    assert!(error.contains("roomz"), "{error}");

    let mut files = schema_files();
    let changed: usize = files.values_mut().map(make_strict).sum();
    assert!(changed >= 6, "only {changed} object schemas made strict");
}

#[test]
fn a_broken_schema_fails_the_golden_cases_by_name() {
    // The request schema without `iq`: every iq case must fail, by name.
    let mut files = schema_files();
    files.get_mut("defs").expect("defs")["$defs"]["kind"]["enum"] =
        serde_json::json!(["message", "presence"]);
    let broken = Schemas::build(files);
    let mut report = Report::default();
    for (file, name, case) in golden_cases(&golden_dir(), "request") {
        if let Some(json) = case.get("json").and_then(toml::Value::as_str) {
            let json: Value = serde_json::from_str(json).expect("golden JSON");
            report.check(&file, &name, broken.check("request", &json));
        }
    }
    let iq_cases = report.failures.len();
    assert!(iq_cases > 0, "no golden request case failed");
    for failure in &report.failures {
        assert!(
            failure.starts_with("tests/golden/request/") && failure.contains(" › "),
            "{failure}"
        );
        assert!(failure.contains("at \"/kind\""), "{failure}");
    }
}

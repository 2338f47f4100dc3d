//! Golden cases: every protocol rule, as data.
//!
//! Each `tests/golden/**/*.toml` file names the rule its cases exercise
//! (`rule = "reply"`, …) and lists them as `[[case]]` tables; the format is
//! described in `tests/golden/README.md`. Each `tests/golden/envelope/*.json`
//! file is a queue message that must read and write back unchanged.
//!
//! XML is compared as parsed elements, never as text, and every produced
//! stanza must also survive serialise → parse unchanged. A failing case is
//! reported by file and name, with what was expected and what came out; all
//! failures of a rule are reported together.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use xmpp_lambda_shared::{ReplyEnvelope, ReplyQueueMessage, RequestEnvelope, SendEnvelope};

/// The rules a golden file may name; a file naming another is an error, so
/// a typo cannot silently skip a whole file.
const RULES: &[&str] = &[
    "reply",
    "presence",
    "iq",
    "request",
    "parse",
    "envelope",
    "outbound",
    "mention",
    "room-message",
    "room-presence",
    "invite",
    "live",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every file under `dir` whose name ends with `extension`, sorted.
fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(files_with_extension(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// The path of a golden file as shown in failure messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(golden_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The head of every golden TOML file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldenFile {
    /// Which function the cases exercise (one of [`RULES`]).
    rule: String,
    /// The component domain, unless a case gives its own (read by the
    /// stanza rules only).
    #[cfg_attr(not(feature = "xml"), allow(dead_code))]
    domain: Option<String>,
    /// The cases, each checked by the rule's own case type.
    #[serde(rename = "case")]
    cases: Vec<toml::Value>,
}

fn read_golden_file(path: &Path) -> GoldenFile {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", shown(path)));
    toml::from_str(&text).unwrap_or_else(|e| panic!("{} is not a golden file: {e}", shown(path)))
}

/// Collects the failures of one rule's cases, so one run names all of them.
#[derive(Default)]
struct Report {
    /// How many cases ran, so an empty or misnamed file cannot pass unseen.
    cases: usize,
    /// One entry per failing case: where it is and what went wrong.
    failures: Vec<String>,
}

impl Report {
    /// Runs one case; a panic inside the code under test counts as that
    /// case's failure rather than aborting the others.
    fn run(&mut self, file: &Path, name: &str, check: impl FnOnce() -> Result<(), String>) {
        self.cases += 1;
        let outcome = catch_unwind(AssertUnwindSafe(check)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {message}"))
        });
        if let Err(message) = outcome {
            self.failures
                .push(format!("{} › {name}:\n{message}", shown(file)));
        }
    }

    fn assert_all_passed(self, rule: &str) {
        assert!(self.cases > 0, "no golden cases for rule {rule:?}");
        assert!(
            self.failures.is_empty(),
            "{} of {} golden {rule:?} cases failed:\n\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n\n")
        );
    }
}

/// Runs every case of `rule` in every golden file.
fn run_rule<C: DeserializeOwned>(
    rule: &str,
    mut check: impl FnMut(&C, &GoldenFile) -> Result<(), String>,
) {
    let mut report = Report::default();
    for path in files_with_extension(&golden_dir(), "toml") {
        let file = read_golden_file(&path);
        if file.rule != rule {
            continue;
        }
        for (index, raw) in file.cases.iter().enumerate() {
            let name = raw
                .get("name")
                .and_then(toml::Value::as_str)
                .map_or_else(|| format!("case #{}", index + 1), str::to_owned);
            report.run(&path, &name, || {
                // The name is the report's; the rule's case type has the rest.
                let mut fields = raw.clone();
                if let Some(table) = fields.as_table_mut() {
                    table.remove("name");
                }
                let case: C = fields
                    .try_into()
                    .map_err(|e| format!("malformed case: {e}"))?;
                check(&case, &file)
            });
        }
    }
    report.assert_all_passed(rule);
}

/// `Err` with both sides shown when they differ.
fn same<T: PartialEq + Display>(what: &str, expected: T, actual: T) -> Result<(), String> {
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{what}\n  expected: {expected}\n    actual: {actual}"
        ))
    }
}

#[test]
fn every_golden_file_names_a_known_rule() {
    for path in files_with_extension(&golden_dir(), "toml") {
        let file = read_golden_file(&path);
        assert!(
            RULES.contains(&file.rule.as_str()),
            "{}: unknown rule {:?} (known: {RULES:?})",
            shown(&path),
            file.rule
        );
        assert!(!file.cases.is_empty(), "{}: no cases", shown(&path));
    }
}

#[test]
fn golden_case_names_are_unique_per_file() {
    for path in files_with_extension(&golden_dir(), "toml") {
        let file = read_golden_file(&path);
        let mut names = std::collections::HashSet::new();
        for case in &file.cases {
            let name = case.get("name").and_then(toml::Value::as_str);
            let name = name.unwrap_or_else(|| panic!("{}: a case has no name", shown(&path)));
            assert!(
                names.insert(name.to_owned()),
                "{}: duplicate case name {name:?}",
                shown(&path)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Queue envelopes (§5): no XML needed.

/// A queue message that must be refused, with the exact reason.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeCase {
    /// `request` or `reply`: which queue the message came from.
    queue: String,
    /// The message body as read from the queue.
    json: String,
    /// The error's text, exactly.
    error: String,
}

#[test]
fn golden_invalid_envelopes_are_refused_with_their_reason() {
    run_rule("envelope", |case: &EnvelopeCase, _| {
        let error = match case.queue.as_str() {
            "request" => RequestEnvelope::from_json(&case.json).map(drop),
            // What the connector reads from the reply queue: replies and
            // send envelopes alike.
            "reply" => ReplyQueueMessage::from_json(&case.json).map(drop),
            other => return Err(format!("unknown queue {other:?}")),
        };
        match error {
            Ok(()) => Err("accepted, expected an error".into()),
            Err(error) => same("error", case.error.as_str(), error.to_string().as_str()),
        }
    });
}

/// Reads a fixture, writes it back, and checks nothing was lost or added:
/// the written JSON equals the fixture as JSON values (key order and spacing
/// aside) and reads back to the same envelope.
fn envelope_round_trip<E: PartialEq + std::fmt::Debug>(
    text: &str,
    read: fn(&str) -> Result<E, xmpp_lambda_shared::EnvelopeError>,
    write: fn(&E) -> String,
) -> Result<String, String> {
    let envelope = read(text).map_err(|e| format!("fixture refused: {e}"))?;
    let written = write(&envelope);
    let fixture: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let rewritten: serde_json::Value =
        serde_json::from_str(&written).map_err(|e| format!("written JSON unreadable: {e}"))?;
    same("written envelope", &fixture, &rewritten)?;
    let again = read(&written).map_err(|e| format!("written envelope refused: {e}"))?;
    if again != envelope {
        return Err(format!("read back differs:\n{again:?}\n{envelope:?}"));
    }
    Ok(written)
}

/// The envelope fixtures: `request-*.json`, `reply-*.json` and `send-*.json`.
fn envelope_fixtures() -> Vec<(PathBuf, String)> {
    files_with_extension(&golden_dir().join("envelope"), "json")
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("fixture readable");
            (path, text)
        })
        .collect()
}

/// Reads a fixture as the envelope its file name says and writes it back.
fn rewritten_fixture(path: &Path, text: &str) -> Result<String, String> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if file_name.starts_with("request-") {
        envelope_round_trip(text, RequestEnvelope::from_json, RequestEnvelope::to_json)
    } else if file_name.starts_with("reply-") {
        envelope_round_trip(text, ReplyEnvelope::from_json, ReplyEnvelope::to_json)
    } else if file_name.starts_with("send-") {
        envelope_round_trip(text, SendEnvelope::from_json, SendEnvelope::to_json)
    } else {
        Err("fixture names start with request-, reply- or send-".into())
    }
}

#[test]
fn golden_envelope_fixtures_round_trip() {
    let mut report = Report::default();
    for (path, text) in envelope_fixtures() {
        report.run(&path, "round trip", || {
            let written = rewritten_fixture(&path, &text)?;
            // `v` first, then `id`, as DESIGN §5 shows them: a reader in
            // another language may sniff the version from the first bytes.
            if !written.starts_with(r#"{"v":1,"id":""#) {
                return Err(format!(
                    "written envelope does not start with v, id: {written}"
                ));
            }
            // The connector reads the reply queue as either kind; a fixture
            // must come out as the kind its name says.
            let kind = match ReplyQueueMessage::from_json(&text) {
                Ok(ReplyQueueMessage::Reply(_)) => "reply-",
                Ok(ReplyQueueMessage::Send(_)) => "send-",
                Err(_) => "request-",
            };
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            same(
                "reply-queue reading",
                kind,
                &file_name[..kind.len().min(file_name.len())],
            )?;
            Ok(())
        });
    }
    report.assert_all_passed("envelope fixtures");
}

// ---------------------------------------------------------------------------
// The stanza rules (§1–§3): need the `xml` feature.

#[cfg(feature = "xml")]
mod stanza_rules {
    use super::*;
    use minidom::{Element, Node};
    use xmpp_lambda_shared::{
        BotResponse, CLIENT_NS, COMPONENT_NS, ChatState, Request, bad_message_text,
        element_to_string, iq_auto_answer, live, muc, outbound_to_stanza, parse_stanza,
        presence_auto_answer, response_to_stanzas, stanza_to_request, stanzas_to_send,
    };

    /// Parses golden XML: exactly one element, with `default_ns` as the
    /// namespace of unprefixed names unless the XML declares its own, so the
    /// files need not repeat `xmlns` on every stanza.
    pub(super) fn golden_xml(text: &str, default_ns: &str) -> Result<Element, String> {
        // Wrapping makes anything after the element visible as a sibling.
        let wrapped = format!("<golden xmlns='{default_ns}'>{text}</golden>");
        let wrapper: Element = wrapped
            .parse()
            .map_err(|e| format!("golden XML does not parse ({e}): {text}"))?;
        let mut elements = wrapper.children();
        let junk = wrapper.texts().any(|t| !t.trim().is_empty());
        match (elements.next(), elements.next(), junk) {
            (Some(element), None, false) => Ok(element.clone()),
            _ => Err(format!("golden XML must be exactly one element: {text}")),
        }
    }

    /// Drops whitespace-only text between child elements (indentation in
    /// the golden files), keeping all text of elements without children,
    /// where whitespace is content.
    fn without_indentation(element: &Element) -> Element {
        let has_children = element.children().next().is_some();
        let mut copy = Element::builder(element.name(), element.ns()).build();
        *copy.attrs_mut() = element.attrs().clone();
        for node in element.nodes() {
            match node {
                Node::Element(child) => {
                    copy.append_child(without_indentation(child));
                }
                Node::Text(text) if has_children && text.trim().is_empty() => {}
                Node::Text(text) => {
                    copy.append_text_node(text.as_str());
                }
            }
        }
        copy
    }

    /// The check every produced stanza must pass: written as text it parses
    /// back to the same element (so it is valid XML, escaping included, and
    /// declares its namespace).
    fn survives_serialisation(stanza: &Element) -> Result<(), String> {
        let text = element_to_string(stanza);
        let parsed: Element = text
            .parse()
            .map_err(|e| format!("serialised stanza does not parse ({e}): {text}"))?;
        if &parsed != stanza {
            return Err(format!(
                "serialise → parse changed the stanza:\n  before: {stanza:?}\n   after: {parsed:?}"
            ));
        }
        Ok(())
    }

    /// Compares produced stanzas with the expected golden XML, in order.
    fn same_stanzas(expected: &[String], actual: &[Element]) -> Result<(), String> {
        let shown_actual = || {
            actual
                .iter()
                .map(|s| format!("    {}", element_to_string(s)))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if expected.len() != actual.len() {
            return Err(format!(
                "expected {} stanza(s), got {}:\n{}",
                expected.len(),
                actual.len(),
                shown_actual()
            ));
        }
        for (index, (want, got)) in expected.iter().zip(actual).enumerate() {
            let want = without_indentation(&golden_xml(want, COMPONENT_NS)?);
            if want != without_indentation(got) {
                return Err(format!(
                    "stanza {} differs\n  expected: {}\n    actual: {}",
                    index + 1,
                    element_to_string(&want),
                    element_to_string(got)
                ));
            }
            survives_serialisation(got)?;
        }
        Ok(())
    }

    /// `id-1`, `id-2`, …: fresh ids that a golden file can name.
    fn numbered_ids() -> impl FnMut() -> String {
        let mut next = 0;
        move || {
            next += 1;
            format!("id-{next}")
        }
    }

    fn domain<'a>(case_domain: &'a Option<String>, file: &'a GoldenFile) -> &'a str {
        case_domain
            .as_deref()
            .or(file.domain.as_deref())
            .unwrap_or("bot.example.com")
    }

    /// The bot's outcome as a golden file spells it.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outcome {
        status: u16,
        content_type: Option<String>,
        #[serde(default)]
        body: String,
    }

    /// §2: a stanza received, the bot's outcome → what is sent.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ReplyCase {
        /// The stanza as the component receives it.
        stanza: String,
        response: Outcome,
        domain: Option<String>,
        /// Everything written to the stream, in order (for a refused reply:
        /// the error to the sender).
        expect: Vec<String>,
        /// Present when the bot's reply is refused: the logged reason.
        refused: Option<String>,
        /// The room fields the connector adds to a request from a room.
        room: Option<RoomFields>,
    }

    /// A request's room fields (DESIGN §7).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RoomFields {
        room: String,
        nick: String,
        mention: Option<bool>,
    }

    #[test]
    fn golden_reply_rules() {
        run_rule("reply", |case: &ReplyCase, file| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            let mut request = stanza_to_request(&received).map_err(|e| format!("request: {e}"))?;
            if let Some(fields) = &case.room {
                request.room = Some(fields.room.clone());
                request.nick = Some(fields.nick.clone());
                request.mention = fields.mention;
            }
            // The request as the sqs transport carries it: through JSON.
            let json = serde_json::to_string(&request).map_err(|e| e.to_string())?;
            let request: Request = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            let response = BotResponse {
                status: case.response.status,
                content_type: case.response.content_type.clone(),
                body: case.response.body.clone(),
            };
            let domain = domain(&case.domain, file);
            let (stanzas, reason) =
                stanzas_to_send(&request, &response, domain, &mut numbered_ids());
            same(
                "refusal",
                format!("{:?}", case.refused),
                format!("{:?}", reason.as_ref().map(ToString::to_string)),
            )?;
            same_stanzas(&case.expect, &stanzas)?;
            // The lower-level function agrees with the one that logs.
            match response_to_stanzas(&request, &response, domain, &mut numbered_ids()) {
                Ok(direct) if reason.is_none() && direct == stanzas => Ok(()),
                Err(direct) if reason.as_ref() == Some(&direct) => Ok(()),
                other => Err(format!("response_to_stanzas disagrees: {other:?}")),
            }
        });
    }

    /// §10: what the connector sends around a request besides the bot's
    /// replies: typing, receipts, markers; and which messages it skips.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct LiveCase {
        /// The stanza as the component receives it.
        stanza: String,
        /// When: `received` (is it a message without a body?), `working`
        /// (the bot is slow: the `<composing/>` to send), `queued` (sqs: the
        /// receipt once queued), `answered` (everything sent for the
        /// outcome).
        moment: String,
        /// The bot's outcome (`answered` only).
        response: Option<Outcome>,
        /// What went out while the bot worked (`answered` only).
        #[serde(default)]
        notified: Notified,
        /// For `received`: whether it is a message without a body, which
        /// is not forwarded by default.
        bodyless: Option<bool>,
        domain: Option<String>,
        /// Everything sent at that moment, in order.
        #[serde(default)]
        expect: Vec<String>,
        /// For `answered`: the logged reason when the bot's reply is refused.
        refused: Option<String>,
        /// The room fields the connector adds to a request from a room.
        room: Option<RoomFields>,
    }

    /// [`live::Notified`] as a golden file spells it.
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Notified {
        #[serde(default)]
        composing: bool,
        #[serde(default)]
        receipt: bool,
    }

    #[test]
    fn golden_live_conversations() {
        run_rule("live", |case: &LiveCase, file| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            let domain = domain(&case.domain, file);
            if case.moment == "received" {
                let expected = case.bodyless.ok_or("a received case names `bodyless`")?;
                if !case.expect.is_empty() || case.response.is_some() {
                    return Err("a received case sends nothing and has no response".into());
                }
                same(
                    "is_bodyless_message",
                    expected,
                    live::is_bodyless_message(&received),
                )?;
                // The same rule on the request, for one already made.
                let request = stanza_to_request(&received).map_err(|e| format!("request: {e}"))?;
                return same(
                    "Request::is_bodyless_message",
                    expected,
                    request.is_bodyless_message(),
                );
            }
            if case.bodyless.is_some() {
                return Err("`bodyless` is for received cases".into());
            }
            let mut request = stanza_to_request(&received).map_err(|e| format!("request: {e}"))?;
            if let Some(fields) = &case.room {
                request.room = Some(fields.room.clone());
                request.nick = Some(fields.nick.clone());
                request.mention = fields.mention;
            }
            // What the sender asked for must survive the request queue.
            let json = serde_json::to_string(&request).map_err(|e| e.to_string())?;
            let request: Request = serde_json::from_str(&json).map_err(|e| e.to_string())?;
            let ids = &mut numbered_ids();
            let (stanzas, reason) = match (case.moment.as_str(), &case.response) {
                ("working", None) => (
                    live::chat_state_message(&request, ChatState::Composing, domain, ids)
                        .into_iter()
                        .collect(),
                    None,
                ),
                ("queued", None) => (
                    live::delivery_receipt(&request, domain, ids)
                        .into_iter()
                        .collect(),
                    None,
                ),
                ("answered", Some(outcome)) => {
                    let response = BotResponse {
                        status: outcome.status,
                        content_type: outcome.content_type.clone(),
                        body: outcome.body.clone(),
                    };
                    let notified = live::Notified {
                        composing: case.notified.composing,
                        receipt: case.notified.receipt,
                    };
                    live::stanzas_to_send_live(&request, &response, domain, notified, ids)
                }
                (moment, response) => {
                    return Err(format!(
                        "moment {moment:?} with response {:?}: expected received, working, \
                         queued, or answered with a response",
                        response.is_some()
                    ));
                }
            };
            same(
                "refusal",
                format!("{:?}", case.refused),
                format!("{:?}", reason.as_ref().map(ToString::to_string)),
            )?;
            same_stanzas(&case.expect, &stanzas)
        });
    }

    /// The queue fixtures as the connector applies them: every reply
    /// envelope's outcome gives stanzas without a refusal, and every
    /// message of a send envelope is one the push rules take.
    #[test]
    fn golden_envelope_fixtures_give_stanzas() {
        let mut report = Report::default();
        let rooms = |room: &str| {
            (room == "ops@conference.example.com").then(|| "rooms@bot.example.com/bot".to_owned())
        };
        for (path, text) in envelope_fixtures() {
            report.run(&path, "stanzas", || {
                match ReplyQueueMessage::from_json(&text) {
                    Ok(ReplyQueueMessage::Reply(envelope)) => {
                        let (stanzas, reason) = stanzas_to_send(
                            &envelope.request,
                            &envelope.response,
                            "bot.example.com",
                            &mut numbered_ids(),
                        );
                        if let Some(reason) = reason {
                            return Err(format!("refused: {reason}"));
                        }
                        if stanzas.is_empty() {
                            return Err("no stanza".into());
                        }
                        stanzas.iter().try_for_each(survives_serialisation)
                    }
                    Ok(ReplyQueueMessage::Send(envelope)) => envelope
                        .send
                        .iter()
                        .enumerate()
                        .try_for_each(|(index, message)| {
                            outbound_to_stanza(
                                message,
                                "bot.example.com",
                                &rooms,
                                &mut numbered_ids(),
                            )
                            .map_err(|reason| bad_message_text(Some(index), &reason))
                            .and_then(|stanza| survives_serialisation(&stanza))
                        }),
                    // Request envelopes: the round trip checks them.
                    Err(_) => Ok(()),
                }
            });
        }
        report.assert_all_passed("envelope fixture stanzas");
    }

    /// §3: presence the connector answers itself.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AutoCase {
        stanza: String,
        domain: Option<String>,
        expect: Vec<String>,
    }

    #[test]
    fn golden_presence_auto_answers() {
        run_rule("presence", |case: &AutoCase, file| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            let answers = presence_auto_answer(&received, domain(&case.domain, file));
            same_stanzas(&case.expect, &answers)
        });
    }

    #[test]
    fn golden_iq_auto_answers() {
        run_rule("iq", |case: &AutoCase, file| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            let answer = iq_auto_answer(&received, domain(&case.domain, file));
            same_stanzas(&case.expect, answer.as_slice())
        });
    }

    /// §1: a stanza received → the request JSON, or why there is none.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RequestCase {
        stanza: String,
        /// The request JSON; its `stanza` member is compared as XML, with
        /// `jabber:client` as the default namespace.
        json: Option<String>,
        error: Option<String>,
    }

    #[test]
    fn golden_stanza_to_request() {
        run_rule("request", |case: &RequestCase, _| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            let request = match (stanza_to_request(&received), &case.json, &case.error) {
                (Ok(request), Some(_), None) => request,
                (Err(error), None, Some(expected)) => {
                    return same("error", expected.as_str(), error.to_string().as_str());
                }
                (outcome, _, _) => {
                    return Err(format!(
                        "case needs exactly one of json/error; got {outcome:?}"
                    ));
                }
            };
            let expected_json = case.json.as_deref().unwrap_or_default();
            let mut expected: serde_json::Value =
                serde_json::from_str(expected_json).map_err(|e| format!("golden json: {e}"))?;
            let mut actual = serde_json::to_value(&request).map_err(|e| e.to_string())?;
            let take_stanza = |value: &mut serde_json::Value| {
                value
                    .as_object_mut()
                    .and_then(|o| o.remove("stanza"))
                    .and_then(|s| s.as_str().map(str::to_owned))
            };
            let expected_stanza = take_stanza(&mut expected).ok_or("golden json has no stanza")?;
            let actual_stanza = take_stanza(&mut actual).ok_or("request has no stanza")?;
            same("request JSON (stanza aside)", &expected, &actual)?;
            // The text must declare jabber:client itself: the bot parses it
            // without any context.
            let seen: Element = actual_stanza.parse().map_err(|e| {
                format!("request stanza text does not parse ({e}): {actual_stanza}")
            })?;
            let want = golden_xml(&expected_stanza, CLIENT_NS)?;
            if without_indentation(&want) != without_indentation(&seen) {
                return Err(format!(
                    "request stanza differs\n  expected: {}\n    actual: {actual_stanza}",
                    element_to_string(&want)
                ));
            }
            let reread: Request =
                serde_json::from_str(&serde_json::to_string(&request).map_err(|e| e.to_string())?)
                    .map_err(|e| format!("request JSON does not read back: {e}"))?;
            if reread != request {
                return Err(format!("JSON round trip changed the request: {reread:?}"));
            }
            Ok(())
        });
    }

    /// A bot's `stanza` text → the stanza to send, or the exact error.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ParseCase {
        xml: String,
        expect: Option<String>,
        error: Option<String>,
    }

    #[test]
    fn golden_parse_stanza() {
        run_rule("parse", |case: &ParseCase, _| {
            match (parse_stanza(&case.xml), &case.expect, &case.error) {
                (Ok(stanza), Some(expected), None) => {
                    same_stanzas(std::slice::from_ref(expected), &[stanza])
                }
                (Err(error), None, Some(expected)) => {
                    same("error", expected.as_str(), error.to_string().as_str())
                }
                (outcome, _, _) => Err(format!(
                    "case needs exactly one of expect/error; got {outcome:?}"
                )),
            }
        });
    }

    /// §6: an outbound message → the stanza pushed, or why it is refused.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OutboundCase {
        /// The outbound message as JSON text.
        message: String,
        domain: Option<String>,
        /// The rooms the connector is in: room bare JID → its occupant's
        /// real JID.
        #[serde(default)]
        rooms: std::collections::BTreeMap<String, String>,
        /// The stanza written (absent when refused).
        expect: Option<String>,
        /// The reason shown to the pusher, exactly.
        refused: Option<String>,
    }

    #[test]
    fn golden_outbound_messages() {
        run_rule("outbound", |case: &OutboundCase, file| {
            let message: serde_json::Value = serde_json::from_str(&case.message)
                .map_err(|e| format!("golden message is not JSON: {e}"))?;
            let rooms = |room: &str| case.rooms.get(room).cloned();
            let outcome = outbound_to_stanza(
                &message,
                domain(&case.domain, file),
                &rooms,
                &mut numbered_ids(),
            );
            match (outcome, &case.expect, &case.refused) {
                (Ok(stanza), Some(expected), None) => {
                    same_stanzas(std::slice::from_ref(expected), &[stanza])
                }
                (Err(reason), None, Some(expected)) => same(
                    "refusal",
                    expected.as_str(),
                    bad_message_text(None, &reason).as_str(),
                ),
                (outcome, _, _) => Err(format!(
                    "case needs exactly one of expect/refused; got {outcome:?}"
                )),
            }
        });
    }

    /// §7: whether a body mentions a nick.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MentionCase {
        body: String,
        nick: String,
        mention: bool,
    }

    #[test]
    fn golden_mentions() {
        run_rule("mention", |case: &MentionCase, _| {
            same(
                &format!("mentions({:?}, {:?})", case.body, case.nick),
                case.mention,
                muc::mentions(&case.body, &case.nick),
            )
        });
    }

    /// §7: a message from a room → the request for the bot, or why not.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RoomMessageCase {
        stanza: String,
        /// The connector's nick in the room.
        nick: String,
        /// `mention` or `all`.
        mode: String,
        /// The request JSON (its `stanza` member is not compared).
        json: Option<String>,
        /// Why it is not forwarded.
        ignored: Option<String>,
    }

    #[test]
    fn golden_room_messages() {
        run_rule("room-message", |case: &RoomMessageCase, _| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            let room = received
                .attr("from")
                .map(|from| from.split('/').next().unwrap_or(from))
                .ok_or("golden stanza has no from")?;
            let mode = match case.mode.as_str() {
                "mention" => muc::RoomMessages::Mention,
                "all" => muc::RoomMessages::All,
                other => return Err(format!("unknown mode {other:?}")),
            };
            match (
                muc::room_message(&received, room, &case.nick, mode),
                &case.json,
                &case.ignored,
            ) {
                (muc::RoomMessage::Forward(request), Some(json), None) => {
                    let mut expected: serde_json::Value =
                        serde_json::from_str(json).map_err(|e| format!("golden json: {e}"))?;
                    let mut actual = serde_json::to_value(&request).map_err(|e| e.to_string())?;
                    for value in [&mut expected, &mut actual] {
                        if let Some(object) = value.as_object_mut() {
                            object.remove("stanza");
                        }
                    }
                    same("request JSON (stanza aside)", &expected, &actual)
                }
                (muc::RoomMessage::Ignore(why), None, Some(expected)) => {
                    same("ignored because", expected.as_str(), why)
                }
                (outcome, _, _) => Err(format!(
                    "case needs exactly one of json/ignored; got {outcome:?}"
                )),
            }
        });
    }

    /// §7: a presence from a room → what it says about the connector.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RoomPresenceCase {
        stanza: String,
        nick: String,
        /// The outcome as `Debug` prints it.
        expect: String,
    }

    #[test]
    fn golden_room_presences() {
        run_rule("room-presence", |case: &RoomPresenceCase, _| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            same(
                "room presence",
                case.expect.as_str(),
                format!("{:?}", muc::room_presence(&received, &case.nick)).as_str(),
            )
        });
    }

    /// §7: the invitation in a message, if any.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct InviteCase {
        stanza: String,
        /// The invitation as `Debug` prints it, or `None`.
        expect: String,
    }

    #[test]
    fn golden_invites() {
        run_rule("invite", |case: &InviteCase, _| {
            let received = golden_xml(&case.stanza, COMPONENT_NS)?;
            same(
                "invitation",
                case.expect.as_str(),
                format!("{:?}", muc::invite_of(&received)).as_str(),
            )
        });
    }

    /// The stanzas that join and unlock a room, as the connector writes
    /// them.
    #[test]
    fn join_and_unlock_stanzas() {
        let join = muc::join_presence(
            "ops@conference.example.com/bot",
            "rooms@bot.example.com/bot",
            Some("s3cret"),
        );
        let expected = golden_xml(
            "<presence to='ops@conference.example.com/bot' from='rooms@bot.example.com/bot'>\
             <x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/>\
             <password>s3cret</password></x></presence>",
            COMPONENT_NS,
        )
        .expect("valid");
        assert_eq!(join, expected);
        survives_serialisation(&join).expect("writable");
        let unlock = muc::instant_room_request(
            "ops@conference.example.com",
            "rooms@bot.example.com/bot",
            "u1",
        );
        let expected = golden_xml(
            "<iq type='set' to='ops@conference.example.com' from='rooms@bot.example.com/bot' id='u1'>\
             <query xmlns='http://jabber.org/protocol/muc#owner'>\
             <x xmlns='jabber:x:data' type='submit'/></query></iq>",
            COMPONENT_NS,
        )
        .expect("valid");
        assert_eq!(unlock, expected);
        let leave = muc::leave_presence(
            "ops@conference.example.com/bot",
            "rooms@bot.example.com/bot",
        );
        assert_eq!(leave.attr("type"), Some("unavailable"));
    }

    /// The harness itself: a golden file cannot hide a second element or
    /// stray text, and indentation is ignored only between elements.
    #[test]
    fn golden_xml_is_strict() {
        assert!(golden_xml("<a/><b/>", COMPONENT_NS).is_err());
        assert!(golden_xml("<a/> x", COMPONENT_NS).is_err());
        let indented = golden_xml("<a>\n  <b> </b>\n</a>", COMPONENT_NS).expect("valid");
        let compact = golden_xml("<a><b> </b></a>", COMPONENT_NS).expect("valid");
        assert_eq!(without_indentation(&indented), compact);
        let other = golden_xml("<a><b/></a>", COMPONENT_NS).expect("valid");
        assert_ne!(without_indentation(&indented), other);
    }
}

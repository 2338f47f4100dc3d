//! Property tests of the protocol rules: generated stanzas (hostile
//! attributes, huge and odd bodies, any JIDs) and generated bot answers
//! (any status, content type and bytes).
//!
//! Whatever comes in, nothing panics, and every stanza the rules produce
//! is one the connector can write without losing its link: it serialises,
//! parses back to the same tree, is a message, presence or iq in the
//! component namespace, comes `from` a JID inside the component's domain,
//! goes `to` a valid JID, carries no body over [`MAX_BODY_BYTES`], and fits
//! in what Prosody reads from a component at once.
//!
//! The seed is fixed so CI runs the same cases every time; set
//! `PROPTEST_RNG_SEED` (and `PROPTEST_CASES`) to explore others. Each
//! property prints how many cases it ran (`--no-capture`).

#![cfg(feature = "xml")]

use std::sync::atomic::{AtomicUsize, Ordering};

use minidom::Element;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use xmpp_lambda_shared::live::CHAT_STATES_NS;
use xmpp_lambda_shared::{
    BotResponse, CLIENT_NS, COMPONENT_NS, ChatState, MAX_BODY_BYTES, MAX_REPLIES, MAX_URL_BYTES,
    OOB_NS, Reply, ReplyEnvelope, Request, RequestEnvelope, StanzaKind, append_stanza_text,
    element_to_string, error_for_status, error_reply, iq_auto_answer, live, parse_stanza,
    presence_auto_answer, stanza_to_request, stanzas_to_send, with_namespace,
};

/// The component's domain in every case.
const DOMAIN: &str = "bot.example.com";
/// Prosody's default `component_stanza_size_limit`: a larger stanza from
/// the component makes it close the link.
const SERVER_LIMIT: usize = 512 * 1024;
/// The seed of every run unless `PROPTEST_RNG_SEED` says otherwise.
const SEED: u64 = 0x786d_7070_6c61_6d62;

// ---------------------------------------------------------------- runner

/// Runs `test` on `cases` values of `strategy` (or `PROPTEST_CASES`) and
/// prints the count; panics with the smallest failing value.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    // The largest bodies make shrinking slow; a failure is clear without it.
    config.max_shrink_iters = 256;
    // The fixed seed replays a failure; no regression file is needed.
    config.failure_persistence = None;
    let run = AtomicUsize::new(0);
    let result = TestRunner::new(config.clone()).run(&strategy, |value| {
        run.fetch_add(1, Ordering::Relaxed);
        test(value)
    });
    eprintln!(
        "property {name}: {} cases run ({} asked, seed {:?}); stanzas checked: {} errors, \
         {} others; largest: {} bytes",
        run.load(Ordering::Relaxed),
        config.cases,
        config.rng_seed,
        ERRORS_CHECKED.load(Ordering::Relaxed),
        OTHERS_CHECKED.load(Ordering::Relaxed),
        LARGEST_OUTPUT.load(Ordering::Relaxed)
    );
    if let Err(error) = result {
        panic!("property {name} failed: {error}");
    }
}

/// The largest stanza any property produced, in bytes of XML.
static LARGEST_OUTPUT: AtomicUsize = AtomicUsize::new(0);
/// Stanzas produced and checked, errors and the rest.
static ERRORS_CHECKED: AtomicUsize = AtomicUsize::new(0);
static OTHERS_CHECKED: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------- generators

/// Whether XML 1.0 allows `c` (a stanza read from a stream can hold no other).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes text for an attribute value in single quotes (double quotes are
/// left raw, which is valid).
fn escape_attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('\'', "&apos;")
}

/// Any characters at all, the ones XML forbids included (JSON carries them).
fn any_text(max_chars: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 ]{1,6}",
        3 => prop::sample::select(vec![
            "<", ">", "&", "'", "\"", "]]>", "&amp;", "\r", "\n", "\t", "\r\n", "é", "😀",
            "\u{FFFD}", "\u{10FFFF}", "\u{200B}", "\u{202E}", "\u{E000}", "\u{D7FF}", "@", "/",
        ])
        .prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..max_chars).prop_map(|pieces| pieces.concat())
}

/// Text a stanza read from a stream could hold.
fn xml_text(max_chars: usize) -> impl Strategy<Value = String> {
    any_text(max_chars).prop_map(|text| text.chars().filter(|&c| is_xml_char(c)).collect())
}

/// Text content already written as XML: entities, character references,
/// raw `>` and quotes, CDATA, astral characters.
fn xml_content(max_pieces: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 .,!?]{1,8}",
        3 => prop::sample::select(vec![
            "&lt;", "&gt;", "&amp;", "&quot;", "&apos;", ">", "\"", "'", "&#xE9;", "&#128512;",
            "&#x10FFFF;", "&#13;", "<![CDATA[<b>&amp;</b>]]>", "<![CDATA[]]>", "]]&gt;", "\r\n",
            "\t", "é", "😀", "\u{202E}", "\u{FFFD}", "  ",
        ])
        .prop_map(str::to_owned),
        1 => xml_text(3).prop_map(|t| t.replace('&', "&amp;").replace('<', "&lt;")),
    ];
    prop::collection::vec(piece, 0..max_pieces).prop_map(|pieces| pieces.concat())
}

/// A long run of one character, around the size limit or far past it.
fn huge_text() -> impl Strategy<Value = String> {
    let unit = prop::sample::select(vec!["a", ">", "é", "😀", "\"", "&"]);
    let bytes = prop_oneof![
        3 => (MAX_BODY_BYTES - 8)..=(MAX_BODY_BYTES + 8),
        1 => 0..=(2 * MAX_BODY_BYTES),
    ];
    (unit, bytes).prop_map(|(unit, bytes)| unit.repeat(bytes / unit.len()))
}

/// Strings in the place of a reply's `url`: http(s) URLs a parser takes
/// (mixed case, international hosts, spaces, queries), other schemes,
/// broken hosts, sizes around the limit, and any text.
fn any_url() -> BoxedStrategy<String> {
    let scheme = prop::sample::select(vec![
        "https://",
        "http://",
        "HTTPS://",
        "https:",
        "http:/",
        "ftp://",
        "javascript:",
        "data:",
        "file://",
        "",
        "//",
    ]);
    let host = prop_oneof![
        6 => prop::sample::select(vec![
            "example.com", "EXAMPLE.com", "bücher.example", "[::1]", "127.0.0.1",
            "example.com:8443", "user:pw@example.com", "xn--bcher-kva.example",
        ])
        .prop_map(str::to_owned),
        2 => prop::sample::select(vec![
            "exa mple.com", "", "[::1", "example.com:99999", "a<b", "%zz", "999.1.1.1",
        ])
        .prop_map(str::to_owned),
        1 => any_text(4),
    ];
    let path = prop_oneof![
        4 => "[a-z0-9/._?=&#-]{0,20}",
        2 => any_text(8),
        // The limit is in bytes, as given and as sent.
        1 => prop::sample::select(vec!["a", "é", "%41", " "])
            .prop_flat_map(|unit| {
                ((MAX_URL_BYTES - 40)..=(MAX_URL_BYTES + 8)).prop_map(move |bytes| unit.repeat(bytes / unit.len()))
            }),
    ];
    prop_oneof![
        8 => (scheme, host, path).prop_map(|(scheme, host, path)| format!("{scheme}{host}/{path}")),
        1 => any_text(10),
    ]
    .boxed()
}

/// Strings in the places of JIDs: valid JIDs at the component, at other
/// domains and at look-alikes, and things that are not JIDs at all.
fn any_jid() -> BoxedStrategy<String> {
    let domain = prop::sample::select(vec![
        DOMAIN,
        DOMAIN,
        "example.com",
        "sub.bot.example.com",
        "bot.example.com.evil.org",
        "BOT.example.com",
        "bot.example.com.",
        "[::1]",
        "127.0.0.1",
    ]);
    let local = prop_oneof![
        Just(None),
        "[a-z0-9._-]{1,12}".prop_map(Some),
        Just(Some("ålice".to_owned())),
        xml_text(4).prop_map(Some),
    ];
    let resource = prop_oneof![
        Just(None),
        "[a-z0-9]{1,8}".prop_map(Some),
        xml_text(6).prop_map(Some),
    ];
    let built = (local, domain, resource).prop_map(|(local, domain, resource)| {
        let mut jid = String::new();
        if let Some(local) = local {
            jid.push_str(&local);
            jid.push('@');
        }
        jid.push_str(domain);
        if let Some(resource) = resource {
            jid.push('/');
            jid.push_str(&resource);
        }
        jid
    });
    prop_oneof![
        6 => built,
        1 => prop::sample::select(vec![
            "", "@", "a@", "@b", "a@b@c", "/x", "a@/x", "a@b/", " ", "a b@bot.example.com",
            "a\"b@bot.example.com", "a:b@bot.example.com", "a<b@bot.example.com",
        ])
        .prop_map(str::to_owned),
        1 => Just(format!("{}@{DOMAIN}", "a".repeat(1100))),
        1 => any_text(6),
    ]
    .boxed()
}

/// A JID a server would route to the component: a valid JID at its
/// domain.
fn routed_jid() -> impl Strategy<Value = String> {
    (
        prop::option::of("[a-z0-9._-]{1,12}"),
        prop::option::of(xml_text(6)),
    )
        .prop_map(|(local, resource)| {
            let mut jid = local.map(|l| format!("{l}@")).unwrap_or_default();
            jid.push_str(DOMAIN);
            if let Some(resource) = resource.filter(|r| !r.is_empty()) {
                jid.push('/');
                jid.push_str(&resource);
            }
            jid
        })
        .prop_filter("a valid JID", |jid| jid::Jid::new(jid).is_ok())
}

/// An element inside a stanza, nested a few levels at most.
fn child_xml() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        4 => xml_content(6).prop_map(|t| format!("<body>{t}</body>")),
        2 => xml_content(4).prop_map(|t| format!("<body xml:lang='de'>{t}</body>")),
        2 => Just("<body/>".to_owned()),
        // Rare: a body around the limit or far past it (the costliest case).
        1 => huge_text().prop_map(|t| format!("<body>{}</body>", t.replace('&', "&amp;"))),
        3 => xml_content(4).prop_map(|t| format!("<x xmlns='urn:x'>{t}</x>")),
        2 => Just("<ping xmlns='urn:xmpp:ping'/>".to_owned()),
        2 => Just("<query xmlns='http://jabber.org/protocol/disco#info'/>".to_owned()),
        1 => xml_text(4).prop_map(|n| format!(
            "<query xmlns='http://jabber.org/protocol/disco#info' node='{}'/>",
            escape_attr(&n)
        )),
        1 => Just("<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>".to_owned()),
        1 => Just("<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' to='x@y'><body>inner</body></message></forwarded>".to_owned()),
        3 => xml_content(3),
        1 => Just("<p:q xmlns:p='urn:p' p:a='1'/>".to_owned()),
        // What clients add to a message (DESIGN §10), known names and not.
        3 => prop::sample::select(vec![
            "<active xmlns='http://jabber.org/protocol/chatstates'/>",
            "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
            "<gone xmlns='http://jabber.org/protocol/chatstates'/>",
            "<typing xmlns='http://jabber.org/protocol/chatstates'/>",
            "<request xmlns='urn:xmpp:receipts'/>",
            "<received xmlns='urn:xmpp:receipts' id='r1'/>",
            "<markable xmlns='urn:xmpp:chat-markers:0'/>",
            "<displayed xmlns='urn:xmpp:chat-markers:0' id='d1'/>",
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            prop::sample::select(vec!["a", "body", "message", "x:y"]),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(name, children)| {
                let declaration = if name.contains(':') {
                    " xmlns:x='urn:x'"
                } else {
                    ""
                };
                format!("<{name}{declaration}>{}</{name}>", children.concat())
            })
    })
    .boxed()
}

/// Which stanzas to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// What a server delivers to a component: a message, presence or iq
    /// in the stream's namespace, `to` a JID at the component, `from` a
    /// valid JID (the server stamps it).
    Received,
    /// Anything a parser accepts: other names and namespaces, missing or
    /// invalid addresses.
    Any,
}

/// A valid JID anywhere, the component's domain included.
fn valid_jid() -> impl Strategy<Value = String> {
    any_jid().prop_filter("a valid JID", |jid| jid::Jid::new(jid).is_ok())
}

/// A stanza as XML text (the stream's default namespace unless it says
/// otherwise), with hostile attributes and odd children.
fn stanza_xml(shape: Shape) -> BoxedStrategy<String> {
    let (names, namespaces): (Vec<&str>, Vec<&str>) = match shape {
        Shape::Received => (
            vec!["message", "message", "presence", "iq"],
            vec!["", "", " xmlns='jabber:component:accept'"],
        ),
        Shape::Any => (
            vec!["message", "message", "presence", "iq", "foo"],
            vec![
                "",
                "",
                "",
                " xmlns='jabber:client'",
                " xmlns='jabber:component:accept'",
                " xmlns='urn:evil'",
            ],
        ),
    };
    let (to, from) = match shape {
        Shape::Received => (
            routed_jid().prop_map(Some).boxed(),
            valid_jid().prop_map(Some).boxed(),
        ),
        Shape::Any => (
            prop::option::of(any_jid()).boxed(),
            prop::option::of(any_jid()).boxed(),
        ),
    };
    let stanza_type = prop_oneof![
        5 => prop::sample::select(vec![
            "chat", "normal", "groupchat", "headline", "error", "get", "set", "result", "probe",
            "subscribe", "unsubscribe", "subscribed", "unavailable",
        ])
        .prop_map(str::to_owned),
        1 => xml_text(4),
    ];
    let extra = prop::collection::vec(
        (
            prop::sample::select(vec!["xml:lang", "a", "b-c", "d.e", "xmlns:q", "to2"]),
            xml_text(6),
        ),
        0..3,
    )
    .prop_map(|attributes| {
        let mut seen = Vec::new();
        let mut out = String::new();
        for (name, value) in attributes {
            if !seen.contains(&name) {
                seen.push(name);
                let value = if name == "xmlns:q" {
                    "urn:q".to_owned()
                } else {
                    value
                };
                out.push_str(&format!(" {name}='{}'", escape_attr(&value)));
            }
        }
        out
    });
    (
        prop::sample::select(names),
        prop::sample::select(namespaces),
        to,
        from,
        prop::option::of(stanza_type),
        prop::option::of(xml_text(6)),
        extra,
        prop::collection::vec(child_xml(), 0..4),
    )
        .prop_map(
            |(name, namespace, to, from, stanza_type, id, extra, children)| {
                let attribute = |key: &str, value: Option<String>| {
                    value
                        .map(|v| format!(" {key}='{}'", escape_attr(&v)))
                        .unwrap_or_default()
                };
                format!(
                    "<{name}{namespace}{}{}{}{}{extra}>{}</{name}>",
                    attribute("to", to),
                    attribute("from", from),
                    attribute("type", stanza_type),
                    attribute("id", id),
                    children.concat()
                )
            },
        )
        .boxed()
}

/// Parses stanza XML as the component stream would hand it over.
fn read_stanza(xml: &str) -> Option<Element> {
    Element::from_reader_with_prefixes(xml.as_bytes(), Some(COMPONENT_NS.to_owned())).ok()
}

/// Requests as a reply envelope can carry them, forged ones included.
fn any_request() -> BoxedStrategy<Request> {
    (
        any_jid(),
        any_jid(),
        prop::sample::select(vec![
            StanzaKind::Message,
            StanzaKind::Presence,
            StanzaKind::Iq,
        ]),
        prop::option::of(any_text(6)),
        prop::option::of(prop_oneof![
            prop::sample::select(vec!["chat", "groupchat", "error", "get", "set", "result"])
                .prop_map(str::to_owned),
            any_text(3),
        ]),
        prop::option::of(any_text(6)),
        // Some requests come through a room, where no error may be sent.
        any::<bool>(),
        // What the sender's client asked for (DESIGN §10), in any
        // combination, also where no received stanza could carry it.
        (
            prop::option::of(prop::sample::select(ChatState::ALL.to_vec())),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                to,
                from,
                kind,
                body,
                stanza_type,
                id,
                from_room,
                (chat_state, receipt, markable),
            )| {
                let room = from_room.then(|| from.split('/').next().unwrap_or_default().to_owned());
                Request {
                    to,
                    from,
                    kind,
                    stanza: String::new(),
                    body,
                    stanza_type,
                    id,
                    nick: room.as_ref().map(|_| "alice".to_owned()),
                    mention: room.as_ref().map(|_| true),
                    room,
                    chat_state,
                    receipt_requested: receipt,
                    markable,
                }
            },
        )
        .boxed()
}

/// A JSON reply object a working bot might send: mostly valid fields.
fn plausible_reply_json() -> BoxedStrategy<String> {
    let body = prop_oneof![
        8 => xml_text(8),
        1 => any_text(8),
        1 => huge_text(),
    ];
    let kind = prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec!["message", "presence", "iq"]).prop_map(Some),
    ];
    let stanza_type = prop::sample::select(vec![
        "chat",
        "normal",
        "groupchat",
        "headline",
        "result",
        "get",
    ]);
    (
        prop::option::of(body),
        kind,
        prop::option::of(valid_jid()),
        prop::option::of(routed_jid()),
        prop::option::of(stanza_type),
        prop::option::of("[a-z0-9-]{1,12}"),
        prop::option::weighted(0.2, stanza_xml(Shape::Received)),
        prop::option::weighted(
            0.2,
            prop::sample::select(vec![
                "https://example.com/cat.jpg",
                "http://grafana.example.com/render/d/x.png?from=now-1h&to=now",
                "https://bücher.example/ü ä.pdf",
            ]),
        ),
    )
        .prop_map(|(body, kind, to, from, stanza_type, id, stanza, url)| {
            let mut object = Map::new();
            let fields = [
                ("body", body),
                ("kind", kind.map(str::to_owned)),
                ("to", to),
                ("from", from),
                ("type", stanza_type.map(str::to_owned)),
                ("id", id),
                ("stanza", stanza),
                ("url", url.map(str::to_owned)),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    object.insert(key.to_owned(), Value::String(value));
                }
            }
            Value::Object(object).to_string()
        })
        .boxed()
}

/// A JSON reply object, field by field, with wrong types and bad values.
fn reply_json() -> BoxedStrategy<String> {
    let text_or_other = prop_oneof![
        12 => any_text(8).prop_map(Value::String),
        1 => huge_text().prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => Just(serde_json::json!({"a": [1, "b"]})),
    ];
    let stanza = prop_oneof![
        8 => stanza_xml(Shape::Any),
        2 => stanza_xml(Shape::Any).prop_map(|x| format!("\n  {x}\n")),
        2 => stanza_xml(Shape::Any).prop_map(|x| format!("{x}<extra/>")),
        1 => huge_text().prop_map(|t| format!("<message><body>{}</body></message>", t.replace('&', "&amp;"))),
        2 => any_text(10),
    ];
    (
        prop::option::of(text_or_other),
        prop::option::of(prop::sample::select(vec![
            "message", "presence", "iq", "foo", "",
        ])),
        prop::option::of(any_jid()),
        prop::option::of(prop_oneof![routed_jid(), any_jid()]),
        prop::option::of(prop_oneof![
            prop::sample::select(vec![
                "chat",
                "groupchat",
                "headline",
                "result",
                "error",
                "set"
            ])
            .prop_map(str::to_owned),
            any_text(3),
        ]),
        prop::option::of(any_text(6)),
        prop::option::of(stanza),
        prop::option::weighted(
            0.2,
            prop_oneof![
                6 => any_url().prop_map(Value::String),
                1 => any::<i64>().prop_map(Value::from),
                1 => Just(Value::Null),
            ],
        ),
    )
        .prop_map(|(body, kind, to, from, stanza_type, id, stanza, url)| {
            let mut object = Map::new();
            let fields = [
                ("kind", kind.map(|k| Value::String(k.to_owned()))),
                ("to", to.map(Value::String)),
                ("from", from.map(Value::String)),
                ("type", stanza_type.map(Value::String)),
                ("id", id.map(Value::String)),
                ("stanza", stanza.map(Value::String)),
                ("body", body),
                ("url", url),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    object.insert(key.to_owned(), value);
                }
            }
            Value::Object(object).to_string()
        })
        .boxed()
}

/// `{"replies": [...]}`: mostly 1 to 10 replies, sometimes none, too
/// many, a non-object, or a field beside the list.
fn replies_json() -> BoxedStrategy<String> {
    let item = prop_oneof![
        6 => plausible_reply_json(),
        3 => reply_json(),
        1 => prop::sample::select(vec!["null", "\"x\"", "[]", "{\"replies\":[{}]}"]).prop_map(str::to_owned),
    ];
    let beside = prop::option::weighted(
        0.1,
        prop::sample::select(vec![("body", "\"x\""), ("url", "null"), ("debug", "1")]),
    );
    (prop::collection::vec(item, 0..=12), beside)
        .prop_map(|(items, beside)| {
            let extra = beside
                .map(|(k, v)| format!(",\"{k}\":{v}"))
                .unwrap_or_default();
            format!("{{\"replies\":[{}]{extra}}}", items.join(","))
        })
        .boxed()
}

/// Any answer a bot (or a broken proxy in front of it) could give.
fn bot_response() -> BoxedStrategy<BotResponse> {
    let status = prop_oneof![
        8 => Just(200u16),
        1 => Just(0u16),
        1 => Just(204u16),
        2 => prop::sample::select(vec![400u16, 401, 402, 403, 404, 410, 429, 500, 501, 502, 503, 504]),
        1 => any::<u16>(),
    ];
    let content_type = prop_oneof![
        6 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("APPLICATION/JSON ;x=y".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => Just(Some("application/jsonp".to_owned())),
        1 => Just(None),
        1 => any_text(4).prop_map(Some),
    ];
    let body = prop_oneof![
        5 => plausible_reply_json().prop_map(String::into_bytes),
        5 => reply_json().prop_map(String::into_bytes),
        3 => replies_json().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::sample::select(vec!["", " ", "null", "[]", "\"x\"", "{}", "{\"body\":null}", "{\"body\":\"a\"} x", "{\"body\":"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ];
    (status, content_type, body)
        .prop_map(|(status, content_type, body)| {
            BotResponse::from_http(status, content_type.as_deref(), &body)
        })
        .boxed()
}

// ---------------------------------------------------------------- checks

/// Fails unless `stanza` is one the connector can write to the server.
fn assert_sendable(stanza: &Element) -> Result<(), TestCaseError> {
    let text = element_to_string(stanza);
    LARGEST_OUTPUT.fetch_max(text.len(), Ordering::Relaxed);
    let kind = if stanza.attr("type") == Some("error") {
        &ERRORS_CHECKED
    } else {
        &OTHERS_CHECKED
    };
    kind.fetch_add(1, Ordering::Relaxed);
    let again: Element = text
        .parse()
        .map_err(|e| TestCaseError::fail(format!("{text:?} does not parse back: {e}")))?;
    prop_assert_eq!(&again, stanza, "serialise → parse changed {}", text);
    // The link writes it as stream text itself where it can: read in the
    // stream's namespace, that is the same stanza too.
    let mut on_stream = String::new();
    if append_stanza_text(stanza, COMPONENT_NS, &mut on_stream) {
        let wrapped = format!("<stream xmlns='{COMPONENT_NS}'>{on_stream}</stream>");
        let read: Element = wrapped
            .parse()
            .map_err(|e| TestCaseError::fail(format!("{on_stream:?} does not parse: {e}")))?;
        prop_assert_eq!(
            read.children().next(),
            Some(stanza),
            "stream text {}",
            on_stream
        );
        prop_assert_eq!(read.children().count(), 1);
    }
    prop_assert_eq!(stanza.ns(), COMPONENT_NS, "{}", text);
    prop_assert!(
        matches!(stanza.name(), "message" | "presence" | "iq"),
        "not a stanza: {}",
        text
    );
    let from = stanza
        .attr("from")
        .ok_or_else(|| TestCaseError::fail(format!("no from: {text}")))?;
    let from = jid::Jid::new(from)
        .map_err(|e| TestCaseError::fail(format!("from is no JID ({e}): {text}")))?;
    prop_assert_eq!(
        from.domain().as_str(),
        DOMAIN,
        "from outside the domain: {}",
        text
    );
    let to = stanza
        .attr("to")
        .ok_or_else(|| TestCaseError::fail(format!("no to: {text}")))?;
    prop_assert!(jid::Jid::new(to).is_ok(), "to is no JID: {}", text);
    for body in stanza.children().filter(|c| c.name() == "body") {
        prop_assert!(
            body.text().len() <= MAX_BODY_BYTES,
            "a body of {} bytes",
            body.text().len()
        );
    }
    prop_assert!(
        text.len() <= SERVER_LIMIT,
        "{} bytes on the wire",
        text.len()
    );
    Ok(())
}

/// Whether a server could have delivered a stanza with this `to` to the
/// component (its domain is the component's).
fn is_routed_here(to: &str) -> bool {
    jid::Jid::new(to).is_ok_and(|jid| jid.domain().as_str() == DOMAIN)
}

/// A fresh id per call, as the connector makes them.
fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("id-{n}")
    }
}

// ---------------------------------------------------------------- properties

#[test]
fn any_stanza_becomes_a_faithful_request_or_a_clear_refusal() {
    check("stanza → request", 1000, stanza_xml(Shape::Any), |xml| {
        let Some(stanza) = read_stanza(&xml) else {
            // Not well-formed: the stream ends before the rules see it.
            return Ok(());
        };
        let Ok(request) = stanza_to_request(&stanza) else {
            return Ok(());
        };
        prop_assert_eq!(Some(request.to.as_str()), stanza.attr("to"));
        prop_assert_eq!(Some(request.from.as_str()), stanza.attr("from"));
        prop_assert_eq!(request.kind.as_str(), stanza.name());
        // What the sender asked for is only ever read from a message, and
        // a receipt or marker only where there is an id to name.
        let named = request.id.as_deref().is_some_and(|id| !id.is_empty());
        if request.kind != StanzaKind::Message {
            prop_assert_eq!(request.chat_state, None);
        }
        prop_assert!(!request.receipt_requested || (named && request.kind == StanzaKind::Message));
        prop_assert!(!request.markable || (named && request.kind == StanzaKind::Message));
        prop_assert_eq!(
            live::is_bodyless_message(&stanza),
            request.is_bodyless_message()
        );
        prop_assert_eq!(
            request.is_bodyless_message(),
            request.kind == StanzaKind::Message && request.body.is_none()
        );
        // The stanza text a bot gets parses back to the same stanza.
        let seen: Element = request
            .stanza
            .parse()
            .map_err(|e| TestCaseError::fail(format!("request stanza: {e}")))?;
        prop_assert_eq!(seen, with_namespace(&stanza, CLIENT_NS));
        // The JSON and both queue envelopes survive a round trip.
        let json =
            serde_json::to_string(&request).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Request =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&back, &request);
        let envelope = RequestEnvelope::new("e1", request.clone());
        let read = RequestEnvelope::from_json(&envelope.to_json())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&read, &envelope);
        let reply = envelope.reply(BotResponse::from_http(200, Some("x"), b"\xff"));
        let read = ReplyEnvelope::from_json(&reply.to_json())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(read, reply);
        Ok(())
    });
}

#[test]
fn the_request_json_is_written_byte_for_byte_as_serde_writes_it() {
    let request = (any_request(), any_text(40)).prop_map(|(mut request, stanza)| {
        request.stanza = stanza;
        request
    });
    check("request → JSON", 1000, request, |request| {
        let mut ours = Vec::new();
        request.write_json(&mut ours);
        prop_assert_eq!(request.json_len(), ours.len(), "json_len");
        let serde = serde_json::to_vec(&request).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&serde)
        );
        Ok(())
    });
}

#[test]
fn any_bot_answer_to_a_received_stanza_gives_only_sendable_stanzas() {
    let request = stanza_xml(Shape::Received).prop_filter_map("a stanza the rules read", |xml| {
        read_stanza(&xml).and_then(|s| stanza_to_request(&s).ok())
    });
    check(
        "received stanza × bot answer → stanzas",
        2000,
        (request, bot_response()),
        |(request, response)| check_reply(&request, &response),
    );
}

#[test]
fn any_bot_answer_to_a_forged_request_gives_only_sendable_stanzas() {
    check(
        "forged request × bot answer → stanzas",
        2000,
        (any_request(), bot_response()),
        |(request, response)| check_reply(&request, &response),
    );
}

/// The reply rules on one request and one answer.
fn check_reply(request: &Request, response: &BotResponse) -> Result<(), TestCaseError> {
    let (stanzas, reason) = stanzas_to_send(request, response, DOMAIN, &mut ids());
    for stanza in &stanzas {
        assert_sendable(stanza)?;
    }
    // Rule 1: an error is never answered.
    if request.stanza_type.as_deref() == Some("error") {
        prop_assert!(stanzas.is_empty(), "answered an error");
    }
    // Nothing answers a request no received stanza could have made.
    if !is_routed_here(&request.to) || jid::Jid::new(&request.from).is_err() {
        prop_assert!(stanzas.is_empty(), "answered a forged request");
    }
    // A refused reply yields at most the one error to the sender.
    if let Some(reason) = &reason {
        prop_assert!(stanzas.len() <= 1, "{reason}: {stanzas:?}");
        for stanza in &stanzas {
            prop_assert_eq!(stanza.attr("type"), Some("error"), "{}", reason);
        }
    }
    // A bot's stanza over the limit is refused, never sent.
    if response.status == 200 && response.is_json() && !stanzas.is_empty() {
        let oversized = serde_json::from_str::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("stanza").and_then(Value::as_str).map(str::len))
            .is_some_and(|len| len > MAX_BODY_BYTES);
        prop_assert!(
            !oversized || reason.is_some(),
            "an oversized stanza was sent"
        );
    }
    Ok(())
}

#[test]
fn every_auto_answer_to_a_received_stanza_is_sendable() {
    check(
        "received stanza → auto-answers",
        1000,
        stanza_xml(Shape::Received),
        |xml| {
            let Some(stanza) = read_stanza(&xml) else {
                return Ok(());
            };
            for answer in presence_auto_answer(&stanza, DOMAIN) {
                assert_sendable(&answer)?;
            }
            let iq = iq_auto_answer(&stanza, DOMAIN);
            if let Some(answer) = &iq {
                assert_sendable(answer)?;
            }
            // RFC 6120: every IQ get/set is answered.
            let is_request = stanza.name() == "iq"
                && matches!(stanza.attr("type"), Some("get" | "set"))
                && stanza.attr("from").is_some()
                && stanza.attr("to").is_some();
            prop_assert_eq!(iq.is_some(), is_request, "{}", xml);
            if let Ok(request) = stanza_to_request(&stanza) {
                for status in [0, 404, 503] {
                    if let Some(error) = error_reply(&request, &error_for_status(status)) {
                        assert_sendable(&error)?;
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn any_text_as_a_bots_stanza_is_parsed_or_refused() {
    let text = prop_oneof![
        3 => stanza_xml(Shape::Any),
        1 => any_text(20),
        // Cut off halfway.
        1 => stanza_xml(Shape::Any).prop_map(|x| x.chars().take(x.chars().count() / 2).collect()),
    ];
    check("bot stanza text → parse", 1500, text, |xml| {
        if let Ok(stanza) = parse_stanza(&xml) {
            prop_assert_eq!(stanza.ns(), COMPONENT_NS);
            prop_assert!(matches!(stanza.name(), "message" | "presence" | "iq"));
            let again: Element = element_to_string(&stanza)
                .parse()
                .map_err(|e: minidom::Error| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again, stanza);
        }
        Ok(())
    });
}

#[test]
fn any_queue_message_is_read_or_refused() {
    let json = prop_oneof![
        2 => (any_request(), bot_response()).prop_map(|(request, response)| {
            RequestEnvelope::new("x", request).reply(response).to_json()
        }),
        1 => any_text(20),
        1 => prop::sample::select(vec!["{\"v\":1}", "{\"v\":\"1\"}", "{\"v\":1.5,\"id\":\"x\"}", "{\"v\":18446744073709551616}", "[]", "null"])
            .prop_map(str::to_owned),
    ];
    check("queue message → envelope", 1000, json, |json| {
        if let Ok(envelope) = ReplyEnvelope::from_json(&json) {
            prop_assert_eq!(
                ReplyEnvelope::from_json(&envelope.to_json()).ok(),
                Some(envelope)
            );
        }
        let _ = RequestEnvelope::from_json(&json);
        Ok(())
    });
}

/// Prints how often each branch of a property ran and, in the default run
/// (fixed seed, default case count), fails when one ran fewer than
/// `least` times: the generators must keep reaching every branch.
fn assert_exercised(property: &str, branches: &[(&str, usize)], least: usize) {
    let shown: Vec<String> = branches
        .iter()
        .map(|(branch, count)| format!("{branch} {count}"))
        .collect();
    eprintln!("property {property}: {}", shown.join(", "));
    let default_run = std::env::var_os("PROPTEST_CASES").is_none()
        && std::env::var_os("PROPTEST_RNG_SEED").is_none();
    if default_run {
        for (branch, count) in branches {
            assert!(
                *count >= least,
                "property {property}: {branch} ran {count} times, fewer than {least}"
            );
        }
    }
}

/// `stanza` without its children `name` in `namespace`.
fn without_child(stanza: &Element, name: &str, namespace: &str) -> Element {
    let mut copy = Element::builder(stanza.name(), stanza.ns()).build();
    *copy.attrs_mut() = stanza.attrs().clone();
    for node in stanza.nodes() {
        match node {
            minidom::Node::Element(child) if child.is(name, namespace) => {}
            other => copy.append_node(other.clone()),
        }
    }
    copy
}

/// The stanzas with every message's `id` removed: fresh ids differ from
/// one call to another, the rest must not.
fn without_message_ids(stanzas: &[Element]) -> Vec<Element> {
    stanzas
        .iter()
        .map(|stanza| {
            let mut copy = stanza.clone();
            if copy.name() == "message" {
                copy.attrs_mut().retain(|_, name, _| name.as_str() != "id");
            }
            copy
        })
        .collect()
}

/// A message request as a server delivers it.
fn received_message() -> BoxedStrategy<Request> {
    stanza_xml(Shape::Received)
        .prop_filter_map("a message the rules read", |xml| {
            read_stanza(&xml)
                .and_then(|stanza| stanza_to_request(&stanza).ok())
                .filter(|request| request.kind == StanzaKind::Message)
        })
        .boxed()
}

#[test]
fn a_list_of_replies_is_each_replys_stanzas_in_order_or_none_at_all() {
    let replies = prop::collection::vec(
        prop_oneof![4 => plausible_reply_json(), 1 => reply_json()],
        1..=MAX_REPLIES,
    );
    // Lists sent whole and lists refused, so both branches are exercised.
    let outcomes = [const { AtomicUsize::new(0) }; 2];
    check(
        "message × {\"replies\": [...]} → each reply's stanzas",
        1000,
        (received_message(), replies),
        |(request, replies)| {
            let list = format!("{{\"replies\":[{}]}}", replies.join(","));
            let (stanzas, reason) =
                stanzas_to_send(&request, &BotResponse::json(list), DOMAIN, &mut ids());
            for stanza in &stanzas {
                assert_sendable(stanza)?;
            }
            if request.stanza_type.as_deref() == Some("error") {
                prop_assert!(stanzas.is_empty() && reason.is_none());
                return Ok(());
            }
            // Each reply alone, as a single answer.
            let alone: Vec<_> = replies
                .iter()
                .map(|reply| {
                    stanzas_to_send(
                        &request,
                        &BotResponse::json(reply.clone()),
                        DOMAIN,
                        &mut ids(),
                    )
                })
                .collect();
            // Every reply is read before any is built: the list is refused
            // at the first reply that does not read, else at the first
            // that does not build.
            let unreadable = replies
                .iter()
                .position(|reply| Reply::from_json(reply).is_err());
            let unbuildable = alone.iter().position(|(_, reason)| reason.is_some());
            match unreadable.or(unbuildable) {
                None => {
                    prop_assert!(reason.is_none(), "{:?}", reason);
                    let each: Vec<Element> =
                        alone.into_iter().flat_map(|(stanzas, _)| stanzas).collect();
                    prop_assert_eq!(without_message_ids(&stanzas), without_message_ids(&each));
                    let ids: Vec<&str> = stanzas
                        .iter()
                        .filter(|s| s.name() == "message")
                        .filter_map(|s| s.attr("id"))
                        .collect();
                    let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
                    prop_assert_eq!(distinct.len(), ids.len(), "repeated ids: {:?}", ids);
                    outcomes[0].fetch_add(1, Ordering::Relaxed);
                }
                Some(index) => {
                    let single = alone[index]
                        .1
                        .as_ref()
                        .expect("the single reply is refused");
                    prop_assert_eq!(
                        reason.map(|r| r.to_string()),
                        Some(format!("replies[{index}] {}", single.problem()))
                    );
                    // Nothing of the list, only the error its reply alone gets.
                    prop_assert_eq!(&stanzas, &alone[index].0);
                    outcomes[1].fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        },
    );
    let [sent, refused] = outcomes.map(|counter| counter.load(Ordering::Relaxed));
    assert_exercised(
        "replies lists",
        &[("sent whole", sent), ("refused", refused)],
        100,
    );
}

#[test]
fn any_url_is_attached_as_the_http_url_it_parses_to_or_refused() {
    let request = Request {
        id: Some("m1".into()),
        ..Request::chat("alice@example.com/phone", &format!("echo@{DOMAIN}"), "hi")
    };
    let outcomes = [const { AtomicUsize::new(0) }; 2];
    check(
        "reply url → attachment or refusal",
        2000,
        (any_url(), prop::option::of(xml_text(6))),
        |(url, body)| {
            let mut reply = serde_json::json!({ "url": url });
            if let Some(body) = &body {
                reply["body"] = Value::from(body.as_str());
            }
            let (stanzas, reason) = stanzas_to_send(
                &request,
                &BotResponse::json(reply.to_string()),
                DOMAIN,
                &mut ids(),
            );
            for stanza in &stanzas {
                assert_sendable(stanza)?;
            }
            if let Some(reason) = reason {
                let text = reason.to_string();
                prop_assert!(text.starts_with("reply \"url\" "), "{}", text);
                outcomes[1].fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            prop_assert_eq!(stanzas.len(), 1);
            let sent = stanzas[0]
                .get_child("x", OOB_NS)
                .and_then(|x| x.get_child("url", OOB_NS))
                .map(Element::text)
                .ok_or_else(|| TestCaseError::fail("no oob url"))?;
            // What was given is a URL, and what is sent is its written form:
            // http(s), within the limit, and unchanged when read again.
            let parsed = url::Url::parse(&url).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.as_str(), sent.as_str());
            prop_assert!(matches!(parsed.scheme(), "http" | "https"));
            prop_assert!(url.len() <= MAX_URL_BYTES && sent.len() <= MAX_URL_BYTES);
            let again = url::Url::parse(&sent).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(again.as_str(), sent.as_str());
            let shown = stanzas[0]
                .get_child("body", COMPONENT_NS)
                .map(Element::text);
            prop_assert_eq!(shown, Some(body.unwrap_or(sent)));
            outcomes[0].fetch_add(1, Ordering::Relaxed);
            Ok(())
        },
    );
    let [attached, refused] = outcomes.map(|counter| counter.load(Ordering::Relaxed));
    assert_exercised("urls", &[("attached", attached), ("refused", refused)], 200);
}

/// A message as a chat client sends it: a body (mostly), a chat state,
/// a receipt request, markable, each or not, among other children, with
/// any type and perhaps no id.
fn client_message_xml() -> BoxedStrategy<String> {
    let flags = prop::collection::vec(any::<bool>(), 4);
    (
        routed_jid(),
        valid_jid(),
        prop::option::of(prop::sample::select(vec![
            "chat",
            "chat",
            "chat",
            "normal",
            "groupchat",
            "headline",
            "error",
        ])),
        prop::option::weighted(0.85, "[a-z0-9-]{0,8}"),
        prop::sample::select(ChatState::ALL.to_vec()),
        flags,
        prop::collection::vec(child_xml(), 0..2),
    )
        .prop_map(|(to, from, kind, id, state, flags, extra)| {
            let mut children = String::new();
            if flags[0] {
                children.push_str("<body>hi</body>");
            }
            if flags[1] {
                children.push_str(&format!(
                    "<{state} xmlns='http://jabber.org/protocol/chatstates'/>"
                ));
            }
            if flags[2] {
                children.push_str("<request xmlns='urn:xmpp:receipts'/>");
            }
            if flags[3] {
                children.push_str("<markable xmlns='urn:xmpp:chat-markers:0'/>");
            }
            children.push_str(&extra.concat());
            let attribute = |key: &str, value: Option<&str>| {
                value
                    .map(|v| format!(" {key}='{}'", escape_attr(v)))
                    .unwrap_or_default()
            };
            format!(
                "<message to='{}' from='{}'{}{}>{children}</message>",
                escape_attr(&to),
                escape_attr(&from),
                attribute("type", kind),
                attribute("id", id.as_deref()),
            )
        })
        .boxed()
}

#[test]
fn the_live_rules_add_only_what_the_sender_asked_for() {
    let stanza = prop_oneof![3 => client_message_xml(), 1 => stanza_xml(Shape::Received)];
    let request = stanza.prop_filter_map("a stanza the rules read", |xml| {
        read_stanza(&xml).and_then(|s| stanza_to_request(&s).ok())
    });
    // How often each notification was due, so the generators cannot
    // drift into never producing one.
    let due = [const { AtomicUsize::new(0) }; 4];
    check(
        "received stanza × bot answer × notified → live stanzas",
        2000,
        (request, bot_response(), any::<bool>(), any::<bool>()),
        |(request, response, composing, receipt)| {
            let notified = live::Notified { composing, receipt };
            let (base, base_reason) = stanzas_to_send(&request, &response, DOMAIN, &mut ids());
            let (out, reason) =
                live::stanzas_to_send_live(&request, &response, DOMAIN, notified, &mut ids());
            prop_assert_eq!(&reason, &base_reason);
            for stanza in &out {
                assert_sendable(stanza)?;
            }
            // One-to-one messages a person wrote get the notifications,
            // and only what their client asked for.
            let conversation = request.kind == StanzaKind::Message
                && request.body.is_some()
                && matches!(
                    request.stanza_type.as_deref(),
                    None | Some("chat" | "normal")
                );
            let named = request.id.as_deref().is_some_and(|id| !id.is_empty());
            let taken = response.is_success() && reason.is_none();
            let typing = conversation && request.chat_state.is_some();
            let is_reply_message = |s: &Element| {
                s.name() == "message"
                    && !matches!(s.attr("type"), Some("error" | "groupchat"))
                    && s.attr("to") == Some(request.from.as_str())
                    && s.attr("from") == Some(request.to.as_str())
            };
            let receipt_due =
                conversation && request.receipt_requested && named && taken && !receipt;
            let marker_due = conversation && request.markable && named && taken;
            let active_due = typing && composing && !base.iter().any(is_reply_message);
            let head = usize::from(receipt_due) + usize::from(marker_due);
            let actives = out[head..]
                .iter()
                .take(base.len())
                .filter(|s| s.has_child("active", CHAT_STATES_NS))
                .count();
            for (counter, hit) in due
                .iter()
                .zip([receipt_due, marker_due, active_due, actives > 0])
            {
                counter.fetch_add(usize::from(hit), Ordering::Relaxed);
            }
            prop_assert_eq!(out.len(), head + base.len() + usize::from(active_due));
            let first_child =
                |s: &Element| s.children().next().map(|c| (c.name().to_owned(), c.ns()));
            if receipt_due {
                prop_assert_eq!(
                    first_child(&out[0]),
                    Some(("received".into(), "urn:xmpp:receipts".into()))
                );
            }
            if marker_due {
                prop_assert_eq!(
                    first_child(&out[head - 1]),
                    Some(("displayed".into(), "urn:xmpp:chat-markers:0".into()))
                );
            }
            for (sent, plain) in out[head..].iter().zip(&base) {
                let gets_active = typing
                    && is_reply_message(plain)
                    && !plain.children().any(|c| c.has_ns(CHAT_STATES_NS));
                if gets_active {
                    prop_assert!(sent.has_child("active", CHAT_STATES_NS));
                    prop_assert_eq!(&without_child(sent, "active", CHAT_STATES_NS), plain);
                } else {
                    prop_assert_eq!(sent, plain);
                }
            }
            if active_due {
                let last = out.last().expect("the standalone active");
                prop_assert_eq!(
                    first_child(last),
                    Some(("active".into(), CHAT_STATES_NS.into()))
                );
                prop_assert!(last.has_child("no-store", "urn:xmpp:hints"));
            }
            // Every notification is addressed back along the conversation,
            // never into a room.
            for note in out[..head].iter().chain(out.iter().skip(head + base.len())) {
                prop_assert_eq!(note.attr("to"), Some(request.from.as_str()));
                prop_assert_eq!(note.attr("from"), Some(request.to.as_str()));
                prop_assert!(matches!(note.attr("type"), Some("chat" | "normal")));
                prop_assert!(note.get_child("body", COMPONENT_NS).is_none());
            }
            Ok(())
        },
    );
    let [receipts, markers, standalone, replies] =
        due.map(|counter| counter.load(Ordering::Relaxed));
    assert_exercised(
        "live stanzas",
        &[
            ("receipts", receipts),
            ("markers", markers),
            ("standalone active", standalone),
            ("replies with active", replies),
        ],
        10,
    );
}

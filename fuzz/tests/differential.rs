//! The stream reader against rxml on generated streams: stanzas written
//! as servers and clients write them — default and prefixed namespaces
//! (declared, redeclared, undeclared again), `xml:` and foreign-namespace
//! attributes, entities, character references, CDATA, line ends, text of
//! every UTF-8 length — between whitespace keepalives, sometimes with one
//! byte changed, and cut into reads at random. Both read the same trees or
//! both refuse, or they differ as `stream::Difference` documents.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use xmpp_lambda_fuzz::stream::{SERVER_HEADER, check_stream};

/// Character data as written: references, CDATA, markup characters that
/// need none, line ends, any UTF-8 length.
fn content() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 .,!?]{1,8}",
        3 => prop::sample::select(vec![
            "&lt;", "&gt;", "&amp;", "&quot;", "&apos;", ">", "\"", "'", "&#xE9;", "&#128512;",
            "&#x10FFFF;", "&#13;", "&#9;", "<![CDATA[<b>&amp;</b>]]>", "<![CDATA[]]>", "]]&gt;",
            "\r\n", "\r", "\t", "é", "中", "😀", "\u{FFFD}", "  ", "]",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

/// An attribute value as written inside single quotes.
fn value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z0-9 @/.]{1,6}",
        2 => prop::sample::select(vec![
            "&lt;", "&amp;", "&apos;", "\"", ">", "&#x41;", "&#10;", "\t", "\n", "\r\n", "\r", "é",
            "😀",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
}

/// Attributes: plain, `xml:lang`, in a prefix the element may declare,
/// namespace declarations (default, prefixed, undeclared default).
fn attributes() -> impl Strategy<Value = String> {
    let attribute = prop_oneof![
        3 => ("[a-z]{1,3}", value()).prop_map(|(name, v)| format!(" {name}='{v}'")),
        1 => value().prop_map(|v| format!(" xml:lang='{v}'")),
        1 => ("[pq]", value()).prop_map(|(p, v)| format!(" {p}:a='{v}'")),
        1 => prop::sample::select(vec!["urn:a", "urn:b", "jabber:client", "", "urn:a:é"])
            .prop_map(|ns| format!(" xmlns='{ns}'")),
        1 => (prop::sample::select(vec!["p", "q"]), prop::sample::select(vec!["urn:a", "urn:p", "urn:q"]))
            .prop_map(|(p, ns)| format!(" xmlns:{p}='{ns}'")),
    ];
    prop::collection::vec(attribute, 0..4).prop_map(|list| {
        // Each name once (the generator makes no deliberate repeats).
        let mut seen = std::collections::HashSet::new();
        list.into_iter()
            .filter(|attribute| seen.insert(attribute.split('=').next().unwrap_or("").to_owned()))
            .collect()
    })
}

/// An element as text: a name, plain or prefixed, its attributes, and
/// content of text and children, or empty.
fn element() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["body", "x", "a", "thread", "é"]).prop_map(str::to_owned),
        1 => prop::sample::select(vec!["p:x", "q:y"]).prop_map(str::to_owned),
    ];
    let leaf = (name.clone(), attributes(), content()).prop_map(|(name, attributes, text)| {
        if text.is_empty() {
            format!("<{name}{attributes}/>")
        } else {
            format!("<{name}{attributes}>{text}</{name} >")
        }
    });
    leaf.prop_recursive(3, 16, 4, move |inner| {
        (
            name.clone(),
            attributes(),
            prop::collection::vec((inner, content()), 0..4),
        )
            .prop_map(|(name, attributes, children)| {
                let inside: String = children.into_iter().map(|(c, t)| c + &t).collect();
                format!("<{name}{attributes}>{inside}</{name}>")
            })
    })
}

/// A stanza: its own element in the stream's namespace (or declaring the
/// prefixes its children use), with generated children.
fn stanza() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["message", "presence", "iq"]),
        prop::sample::select(vec![
            "",
            " xmlns:p='urn:p'",
            " xmlns:p='urn:p' xmlns:q='urn:q'",
            " xmlns:q='urn:q' xml:lang='en'",
        ]),
        attributes(),
        prop::collection::vec(element(), 0..4),
    )
        .prop_map(|(name, declarations, attributes, children)| {
            format!(
                "<{name}{declarations}{attributes}>{}</{name}>",
                children.concat()
            )
        })
}

/// A stream: the header, stanzas between keepalives, perhaps one byte
/// changed, and the reads it comes in.
fn stream() -> impl Strategy<Value = (Vec<u8>, Vec<usize>)> {
    let keepalive = prop::sample::select(vec!["", "", " ", "\n", "\r\n\t "]);
    (
        prop::collection::vec((stanza(), keepalive), 1..4),
        prop::option::weighted(0.3, (any::<prop::sample::Index>(), any::<u8>())),
        prop::collection::vec(1usize..64, 1..8),
    )
        .prop_map(|(stanzas, change, reads)| {
            let mut bytes = SERVER_HEADER.as_bytes().to_vec();
            for (stanza, keepalive) in stanzas {
                bytes.extend_from_slice(stanza.as_bytes());
                bytes.extend_from_slice(keepalive.as_bytes());
            }
            if let Some((at, byte)) = change {
                let at = SERVER_HEADER.len() + at.index(bytes.len() - SERVER_HEADER.len());
                bytes[at] = byte;
            }
            let sizes = reads.iter().copied().cycle().take(bytes.len()).collect();
            (bytes, sizes)
        })
}

#[test]
fn generated_streams_read_as_rxml_reads_them() {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 1000;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7374_7265_616d);
    }
    config.failure_persistence = None;
    let outcomes = std::sync::Mutex::new(BTreeMap::new());
    let result = TestRunner::new(config).run(&stream(), |(bytes, sizes)| {
        let difference = std::panic::catch_unwind(|| check_stream(&bytes, &sizes))
            .map_err(|_| TestCaseError::fail("the readers disagree (above)"))?;
        *outcomes
            .lock()
            .expect("counts")
            .entry(format!("{difference:?}"))
            .or_insert(0) += 1;
        Ok(())
    });
    eprintln!("generated streams: {:?}", outcomes.lock().expect("counts"));
    if let Err(error) = result {
        panic!("{error}");
    }
}

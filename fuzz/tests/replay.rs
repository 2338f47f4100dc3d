//! The short pass of the fuzz targets that `make test` runs, without
//! libFuzzer or its instrumentation: every committed input (the seed
//! corpus, and in `regressions/` each input a campaign found a fault
//! with) through its target's checks, then the captured server traffic cut
//! into reads in many ways and mutated a few thousand times, from a fixed
//! seed.

use std::path::{Path, PathBuf};
use xmpp_lambda_fuzz::stream::check_stream;
use xmpp_lambda_fuzz::{api, http, input::read_sizes, reply, stream};

/// The committed inputs of `target`, with their names.
fn committed(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut inputs = Vec::new();
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).expect("a corpus file");
            inputs.push((path.display().to_string(), bytes));
        }
    }
    inputs.sort();
    inputs
}

/// Runs `check` on every committed input of `target`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let inputs = committed(target);
    for (name, bytes) in &inputs {
        eprintln!("{target}: {name}");
        check(bytes);
    }
    inputs.len()
}

#[test]
fn the_stream_corpus_replays() {
    assert!(replay("stream", stream::check) >= 10, "the seeds are there");
}

#[test]
fn the_http_answer_corpus_replays() {
    assert!(replay("http_answer", http::check) >= 6);
}

#[test]
fn the_reply_corpus_replays() {
    assert!(replay("reply", reply::check) >= 8);
}

#[test]
fn the_api_request_corpus_replays() {
    assert!(replay("api_request", api::check) >= 5);
}

/// What Prosody and ejabberd sent on a component stream
/// (`make fuzz-capture`).
fn captures() -> Vec<(PathBuf, Vec<u8>)> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    ["prosody.xml", "ejabberd.xml"]
        .iter()
        .map(|name| {
            let path = folder.join(name);
            let bytes = std::fs::read(&path).expect("a committed capture");
            (path, bytes)
        })
        .collect()
}

/// xorshift64: the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % bound.max(1) as u64).unwrap_or(0)
    }
}

/// Bytes a mutation puts in: XML's markup characters and the starts of
/// what it refuses.
const MARKUP: &[&[u8]] = &[
    b"<",
    b">",
    b"/",
    b"'",
    b"\"",
    b"&",
    b";",
    b"=",
    b":",
    b"]]>",
    b"<![CDATA[",
    b"&#x",
    b"&#",
    b"&amp;",
    b"xmlns:p='urn:p' ",
    b"xmlns=''",
    b"p:",
    b"xml:",
    b"\r",
    b"\n",
    b" ",
    b"\0",
    b"\xff",
    b"\xc3",
    b"<!--",
    b"<?",
    b"</a>",
    b"<a>",
];

/// One random change: a byte, a markup piece in, a range out, a range
/// repeated.
fn mutate(bytes: &mut Vec<u8>, rng: &mut Rng) {
    let at = rng.below(bytes.len() + 1);
    match rng.below(5) {
        0 if !bytes.is_empty() => {
            let at = at.min(bytes.len() - 1);
            bytes[at] = u8::try_from(rng.below(256)).unwrap_or(0);
        }
        1 => {
            let piece = MARKUP[rng.below(MARKUP.len())];
            bytes.splice(at..at, piece.iter().copied());
        }
        2 => {
            let end = (at + rng.below(16)).min(bytes.len());
            bytes.drain(at..end);
        }
        3 => {
            let end = (at + rng.below(64)).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
        }
        _ => {
            let end = (at + 1).min(bytes.len());
            bytes.drain(at..end);
        }
    }
}

#[test]
fn captured_traffic_reads_the_same_in_any_reads() {
    for (path, bytes) in captures() {
        for seed in (0..=255u8).step_by(8) {
            check_stream(&bytes, &read_sizes(seed, bytes.len(), 8 * 1024));
        }
        eprintln!("{}: 32 splits", path.display());
    }
}

/// Mutations of real traffic: each stanza of a capture is read, changed
/// a few times, by both readers; they agree or differ as documented.
#[test]
fn mutated_captured_traffic_reads_as_rxml_reads_it() {
    const CASES: usize = 300;
    let mut rng = Rng(0x6361_7074_7572_6573);
    let mut differences = std::collections::BTreeMap::new();
    for (path, bytes) in captures() {
        for _ in 0..CASES {
            let mut mutated = bytes.clone();
            for _ in 0..=rng.below(3) {
                mutate(&mut mutated, &mut rng);
            }
            let seed = u8::try_from(rng.below(256)).unwrap_or(0);
            let difference = check_stream(&mutated, &read_sizes(seed, mutated.len(), 8 * 1024));
            *differences.entry(format!("{difference:?}")).or_insert(0) += 1;
        }
        eprintln!("{}: {CASES} mutations: {differences:?}", path.display());
    }
}

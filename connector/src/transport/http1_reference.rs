//! A differential test of the answer reader ([`super::http1`]): a second,
//! independent reading of the same bytes, and generated and mutated
//! answers on which the two must agree — the same status, content type,
//! body and reuse decision, or both refusing, or both waiting for more.
//!
//! The reference takes the whole answer at once (the reader under test
//! takes it in arbitrary pieces, as a socket gives it) and is written
//! from RFC 9112's grammar, not from the reader: it shares only
//! `httparse` for the syntax of a head, and the reader's documented
//! policies (which answers are refused, where a body is cut).

use super::http1::{exchange, is_idle_and_open};
use futures::FutureExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What became of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Read: what the transport gets, and whether the connection is used
    /// again.
    Answer {
        status: u16,
        content_type: Option<String>,
        body: Vec<u8>,
        reusable: bool,
    },
    /// Refused as not HTTP/1.1 (or cut off by the bot's close).
    Refused,
    /// Incomplete, on a connection still open: the reader waits (until the
    /// request's timeout).
    Waiting,
}

// ------------------------------------------------------------ reference

/// The most bytes of a head, a chunk line or the trailers, as the reader.
const MAX_HEAD: usize = 64 * 1024;
/// The most interim answers, as the reader.
const MAX_INTERIM: usize = 16;

/// Why the reference stopped before an answer.
enum Stop {
    Refused,
    Waiting,
}

/// The answer in `bytes`, all that the bot sent; `closed` when it then
/// closed the connection.
fn reference(bytes: &[u8], closed: bool, max_body: usize) -> Outcome {
    match reference_answer(bytes, closed, max_body) {
        Ok(outcome) => outcome,
        Err(Stop::Refused) => Outcome::Refused,
        Err(Stop::Waiting) => Outcome::Waiting,
    }
}

/// Out of bytes: an error once the bot has closed, else a wait.
fn short(closed: bool) -> Stop {
    if closed { Stop::Refused } else { Stop::Waiting }
}

/// A head as the reference understands it.
struct RefHead {
    status: u16,
    content_type: Option<String>,
    http10: bool,
    /// `Connection: close` seen.
    close: bool,
    /// `Connection: keep-alive` seen.
    keep_alive: bool,
    /// The agreed Content-Length, if any.
    length: Option<u64>,
    /// A Transfer-Encoding field was present (then it is exactly chunked).
    chunked: bool,
}

fn reference_answer(bytes: &[u8], closed: bool, max_body: usize) -> Result<Outcome, Stop> {
    let mut at = 0;
    let mut interims = 0;
    let head = loop {
        let (head, end) = reference_head(&bytes[at..], closed)?;
        at += end;
        if head.status >= 200 {
            break head;
        }
        if head.status == 101 {
            return Err(Stop::Refused);
        }
        interims += 1;
        if interims > MAX_INTERIM {
            return Err(Stop::Refused);
        }
    };
    let rest = &bytes[at..];
    let bodiless = head.status == 204 || head.status == 304;
    // (body, bytes used, whole answer read)
    let (body, used, whole) = if bodiless {
        (Vec::new(), 0, true)
    } else if head.chunked {
        reference_chunked(rest, closed, max_body)?
    } else if let Some(length) = head.length {
        let wanted = usize::try_from(length).unwrap_or(usize::MAX).min(max_body);
        if rest.len() < wanted {
            return Err(short(closed));
        }
        (rest[..wanted].to_vec(), wanted, wanted as u64 == length)
    } else if rest.len() >= max_body {
        (rest[..max_body].to_vec(), max_body, false)
    } else if closed {
        (rest.to_vec(), rest.len(), false)
    } else {
        return Err(Stop::Waiting);
    };
    let persistent = if head.http10 {
        head.keep_alive && !head.close
    } else {
        !head.close
    };
    // Framed two ways (chunked and a length, or chunked in HTTP/1.0): read,
    // then the connection is not trusted again.
    let doubtful = !bodiless && head.chunked && (head.length.is_some() || head.http10);
    let reusable = whole && persistent && !doubtful && used == rest.len() && !closed;
    Ok(Outcome::Answer {
        status: head.status,
        content_type: head.content_type,
        body,
        reusable,
    })
}

/// The head at the start of `bytes` and its length.
fn reference_head(bytes: &[u8], closed: bool) -> Result<(RefHead, usize), Stop> {
    // Lines end in CRLF; the head ends with an empty line, and does not
    // start with one.
    let mut end = None;
    for (i, &byte) in bytes.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        if i == 0 || bytes[i - 1] != b'\r' || i == 1 {
            return Err(Stop::Refused);
        }
        if i >= 3 && &bytes[i - 3..=i] == b"\r\n\r\n" {
            end = Some(i + 1);
            break;
        }
    }
    let Some(end) = end else {
        return Err(if bytes.len() > MAX_HEAD {
            Stop::Refused
        } else {
            short(closed)
        });
    };
    let mut storage = [httparse::EMPTY_HEADER; 128];
    let mut response = httparse::Response::new(&mut storage);
    if !matches!(
        response.parse(&bytes[..end]),
        Ok(httparse::Status::Complete(_))
    ) {
        return Err(Stop::Refused);
    }
    let status = response.code.ok_or(Stop::Refused)?;
    if !(100..600).contains(&status) {
        return Err(Stop::Refused);
    }
    let values = |name: &str| -> Vec<&[u8]> {
        response
            .headers
            .iter()
            .filter(|field| field.name.to_ascii_lowercase() == name)
            .map(|field| field.value)
            .collect()
    };
    let list = |name: &str| -> Vec<String> {
        let joined = values(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        joined
            .split(',')
            .map(|item| item.trim_matches([' ', '\t']).to_owned())
            .collect()
    };

    let content_types = values("content-type");
    if content_types.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err(Stop::Refused);
    }
    let content_type = content_types
        .first()
        .map(|value| String::from_utf8_lossy(value).into_owned());

    let mut length = None;
    if !values("content-length").is_empty() {
        let mut lengths = Vec::new();
        for item in list("content-length") {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Stop::Refused);
            }
            lengths.push(item.parse::<u64>().map_err(|_| Stop::Refused)?);
        }
        if lengths.iter().any(|&value| value != lengths[0]) {
            return Err(Stop::Refused);
        }
        length = lengths.first().copied();
    }

    let chunked = !values("transfer-encoding").is_empty();
    if chunked {
        let codings: Vec<String> = list("transfer-encoding")
            .into_iter()
            .filter(|coding| !coding.is_empty())
            .collect();
        if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
            return Err(Stop::Refused);
        }
    }

    let tokens = list("connection");
    let has = |token: &str| tokens.iter().any(|t| t.eq_ignore_ascii_case(token));
    Ok((
        RefHead {
            status,
            content_type,
            http10: response.version == Some(0),
            close: has("close"),
            keep_alive: has("keep-alive"),
            length,
            chunked,
        },
        end,
    ))
}

/// A chunked body at the start of `bytes`: (what is kept, bytes used,
/// whether all of it was read).
fn reference_chunked(
    bytes: &[u8],
    closed: bool,
    max_body: usize,
) -> Result<(Vec<u8>, usize, bool), Stop> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (line, next) = reference_line(bytes, at, closed)?;
        let size = reference_chunk_size(line)?;
        at = next;
        if size == 0 {
            let mut total = 0;
            loop {
                let (line, next) = reference_line(bytes, at, closed)?;
                at = next;
                if line.is_empty() {
                    return Ok((body, at, true));
                }
                if !reference_field_line(line) {
                    return Err(Stop::Refused);
                }
                total += line.len() + 2;
                if total > MAX_HEAD {
                    return Err(Stop::Refused);
                }
            }
        }
        let room = (max_body - body.len()) as u64;
        let available = (bytes.len() - at) as u64;
        if size > room {
            // Cut at the limit: what fits is kept, the rest never read.
            if available < room {
                return Err(short(closed));
            }
            body.extend_from_slice(&bytes[at..at + room as usize]);
            return Ok((body, at + room as usize, false));
        }
        if available < size + 2 {
            return Err(short(closed));
        }
        let size = size as usize;
        body.extend_from_slice(&bytes[at..at + size]);
        if &bytes[at + size..at + size + 2] != b"\r\n" {
            return Err(Stop::Refused);
        }
        at += size + 2;
    }
}

/// The line starting at `at` (without CRLF) and where the next one starts.
fn reference_line(bytes: &[u8], at: usize, closed: bool) -> Result<(&[u8], usize), Stop> {
    match bytes[at..].iter().position(|&b| b == b'\n') {
        Some(lf) if lf > 0 && bytes[at + lf - 1] == b'\r' => {
            if lf - 1 > MAX_HEAD {
                return Err(Stop::Refused);
            }
            Ok((&bytes[at..at + lf - 1], at + lf + 1))
        }
        Some(_) => Err(Stop::Refused),
        None if bytes.len() - at > MAX_HEAD => Err(Stop::Refused),
        None => Err(short(closed)),
    }
}

/// `chunk-size [ chunk-ext ]`: 1*HEXDIG, then nothing, or `BWS ";"` and
/// extensions free of control characters but HTAB.
fn reference_chunk_size(line: &[u8]) -> Result<u64, Stop> {
    let (size, extensions) = match line.iter().position(|&b| b == b';') {
        Some(semicolon) => {
            let before = &line[..semicolon];
            let trimmed = before.len()
                - before
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
            (&before[..trimmed], &line[semicolon..])
        }
        None => (line, &line[line.len()..]),
    };
    if size.is_empty()
        || !size.iter().all(u8::is_ascii_hexdigit)
        || extensions
            .iter()
            .any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f))
    {
        return Err(Stop::Refused);
    }
    let significant = std::str::from_utf8(size)
        .map_err(|_| Stop::Refused)?
        .trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(significant, 16).map_err(|_| Stop::Refused)
}

/// `field-name ":" field-value` with a token name and a value free of
/// control characters but HTAB.
fn reference_field_line(line: &[u8]) -> bool {
    const SEPARATORS: &[u8] = b"\"(),/:;<=>?@[\\]{} \t";
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = &line[..colon];
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_graphic() && !SEPARATORS.contains(&b))
        && line[colon + 1..]
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

// ------------------------------------------------------------ the reader

/// A connection that hands out `pieces`, one per read (or less when the
/// read asks for less), then the end of the stream when `closed`, or
/// nothing (pending) when open; every write is taken.
struct Scripted {
    pieces: VecDeque<Vec<u8>>,
    closed: bool,
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(piece) = self.pieces.front_mut() else {
            return if self.closed {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        };
        let n = piece.len().min(buf.remaining());
        buf.put_slice(&piece[..n]);
        piece.drain(..n);
        if piece.is_empty() {
            self.pieces.pop_front();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What the reader makes of `bytes` given in pieces of `sizes` (cycled);
/// reusable means the pool would use the connection again: the reader
/// says so and the idle probe finds it open and silent.
fn ours(bytes: &[u8], sizes: &[usize], closed: bool, max_body: usize) -> Outcome {
    let mut pieces = VecDeque::new();
    let mut rest = bytes;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at(size.clamp(1, rest.len()));
        pieces.push_back(piece.to_vec());
        rest = after;
    }
    let mut io = Scripted { pieces, closed };
    let mut buffer = Vec::new();
    let request = b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n";
    // Every byte is there from the start: an exchange that does not finish
    // now waits for bytes that will not come.
    match exchange(&mut io, &mut buffer, request, max_body).now_or_never() {
        None => Outcome::Waiting,
        Some(Err(_)) => Outcome::Refused,
        Some(Ok(answer)) => Outcome::Answer {
            status: answer.status,
            content_type: answer.content_type,
            body: answer.body,
            reusable: answer.reusable && is_idle_and_open(&mut io),
        },
    }
}

// ------------------------------------------------------------ generator

/// Header fields an answer may carry; `{n}` is the body's length.
const FIELDS: &[&str] = &[
    "Content-Type: application/json",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Length: {n}",
    "Content-Length: {n}",
    "Content-Length: {n+1}",
    "Content-Length: {n}, {n}",
    "Content-Length: {n},{n+1}",
    "Content-Length: +{n}",
    "Content-Length: 0{n}",
    "Content-Length: 99999999999999999999",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: chunked",
    "Transfer-Encoding: Chunked ",
    "Transfer-Encoding: chunked,",
    "Transfer-Encoding: , chunked",
    "Transfer-Encoding: gzip, chunked",
    "Transfer-Encoding: chunked, chunked",
    "Transfer-Encoding: ,",
    "Transfer-Encoding:",
    "Connection: close",
    "Connection: keep-alive",
    "Connection: Keep-Alive, Upgrade",
    "X-Filler: some value",
    "X-Folded: a\r\n b",
    "X-Bare: a\nX-After: b",
    "Date: Mon, 01 Jan 2024 00:00:00 GMT",
];

/// Header fields that leave the framing as it is.
const BENIGN_FIELDS: &[&str] = &[
    "Content-Type: application/json",
    "Connection: keep-alive",
    "Connection: close",
    "X-Filler: some value",
    "Server: test",
];

/// How each chunk-size line is written; the first five are valid.
const SIZE_FORMS: &[&str] = &[
    "{x}",
    "{x}",
    "{X}",
    "000{x}",
    "{x};ext=1",
    "{x} ; a=\"b\"",
    "{x}\t;x",
    "+{x}",
    " {x}",
    "{x} ",
    "{x}\t",
    "0x{x}",
];

/// Trailer sections after the last chunk.
const TRAILERS: &[&str] = &[
    "",
    "",
    "",
    "X-Trailer: 1\r\n",
    "X-Trailer: 1\r\n",
    " folded\r\n",
    "X-T: a\x01\r\n",
];

/// What may follow the answer on the connection.
const AFTER: &[&str] = &["", "", "", "", "x", "HTTP/1.1 200 OK\r\n\r\n"];

/// Bytes that make interesting mutations.
const MUTATION_BYTES: &[u8] = b"\r\n \t09afgAFG:;,+-\x00\x7f\xff";

/// One generated answer, before mutation.
#[derive(Debug, Clone)]
struct Plan {
    status_line: &'static str,
    interim: &'static str,
    /// The field that frames the body as it is written (a length, or
    /// chunked), if any; most answers are framed right, so that mutations
    /// and the other fields test a reading that would otherwise succeed.
    framing: Option<&'static str>,
    fields: Vec<&'static str>,
    body: Vec<u8>,
    /// `None`: the body as it is; else chunk lengths and the size form.
    chunks: Option<(Vec<usize>, &'static str, &'static str)>,
    after: &'static str,
}

impl Plan {
    fn bytes(&self) -> Vec<u8> {
        let n = self.body.len();
        let mut out = Vec::new();
        out.extend_from_slice(self.interim.as_bytes());
        out.extend_from_slice(self.status_line.as_bytes());
        for field in self.framing.iter().chain(&self.fields) {
            let field = field
                .replace("{n+1}", &(n + 1).to_string())
                .replace("{n}", &n.to_string());
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        match &self.chunks {
            None => out.extend_from_slice(&self.body),
            Some((lengths, form, trailers)) => {
                let mut rest = &self.body[..];
                for &length in lengths.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (chunk, after) = rest.split_at(length.clamp(1, rest.len()));
                    let size = form
                        .replace("{x}", &format!("{:x}", chunk.len()))
                        .replace("{X}", &format!("{:X}", chunk.len()));
                    out.extend_from_slice(size.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                    rest = after;
                }
                out.extend_from_slice(b"0\r\n");
                out.extend_from_slice(trailers.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(self.after.as_bytes());
        out
    }
}

fn any_plan() -> impl Strategy<Value = Plan> {
    let status_line = prop::sample::select(
        &[
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.1 201 Created\r\n",
            "HTTP/1.1 204 No Content\r\n",
            "HTTP/1.1 304 Not Modified\r\n",
            "HTTP/1.1 404 \r\n",
            "HTTP/1.1 503 Busy\r\n",
            "HTTP/1.0 200 OK\r\n",
            "HTTP/1.0 200 OK\r\n",
            "HTTP/1.1 000 Zero\r\n",
            "HTTP/1.1 600 Six\r\n",
            "HTTP/1.1 101 Switching\r\n",
        ][..],
    );
    let interim = prop::sample::select(
        &[
            "",
            "",
            "",
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
        ][..],
    );
    let fields = prop_oneof![
        1 => prop::collection::vec(prop::sample::select(FIELDS), 0..4),
        1 => prop::collection::vec(prop::sample::select(BENIGN_FIELDS), 0..3),
    ];
    let body = prop::collection::vec(
        prop_oneof![
            3 => prop::sample::select(&b"{}\":abcxyz 0123456789"[..]),
            1 => any::<u8>(),
        ],
        0..40,
    );
    let raw = (
        Just(None),
        prop::sample::select(
            &[
                Some("Content-Length: {n}"),
                Some("Content-Length: {n}"),
                None,
            ][..],
        ),
    );
    let chunked = (
        (
            prop::collection::vec(1usize..12, 1..4),
            prop_oneof![
                3 => prop::sample::select(&SIZE_FORMS[..5]),
                1 => prop::sample::select(SIZE_FORMS),
            ],
            prop::sample::select(TRAILERS),
        )
            .prop_map(Some),
        prop::sample::select(
            &[
                Some("Transfer-Encoding: chunked"),
                Some("Transfer-Encoding: chunked"),
                Some("Transfer-Encoding: chunked,"),
                Some("Transfer-Encoding: , chunked"),
                Some("Transfer-Encoding: Chunked"),
                None,
            ][..],
        ),
    );
    let framed = prop_oneof![raw, chunked];
    let after = prop::sample::select(AFTER);
    (status_line, interim, framed, fields, body, after).prop_map(
        |(status_line, interim, (chunks, framing), fields, body, after)| Plan {
            status_line,
            interim,
            framing,
            fields,
            body,
            chunks,
            after,
        },
    )
}

/// A change of one byte: replace, insert or delete at a position given as
/// a fraction of the length.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(u16, u8),
    Insert(u16, u8),
    Delete(u16),
}

fn any_mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![prop::sample::select(MUTATION_BYTES), any::<u8>()];
    prop_oneof![
        (any::<u16>(), byte.clone()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        (any::<u16>(), byte).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<u16>().prop_map(Mutation::Delete),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let at = |fraction: u16, len: usize| usize::from(fraction) * len / (usize::from(u16::MAX) + 1);
    match *mutation {
        Mutation::Replace(fraction, byte) if !bytes.is_empty() => {
            let i = at(fraction, bytes.len());
            bytes[i] = byte;
        }
        Mutation::Insert(fraction, byte) => {
            let i = at(fraction, bytes.len() + 1);
            bytes.insert(i, byte);
        }
        Mutation::Delete(fraction) if !bytes.is_empty() => {
            let i = at(fraction, bytes.len());
            bytes.remove(i);
        }
        _ => {}
    }
}

/// One case: an answer, its mutations, how it is cut into reads, whether
/// the bot closes after it, and the body limit.
#[derive(Debug, Clone)]
struct Case {
    plan: Plan,
    mutations: Vec<Mutation>,
    reads: Vec<usize>,
    closed: bool,
    max_body: usize,
}

fn any_case() -> impl Strategy<Value = Case> {
    (
        any_plan(),
        prop_oneof![
            1 => Just(Vec::new()),
            1 => prop::collection::vec(any_mutation(), 1..4),
        ],
        prop::collection::vec(1usize..40, 1..8),
        prop::bool::weighted(0.3),
        prop::sample::select(&[4usize, 16, 1024, 1024][..]),
    )
        .prop_map(|(plan, mutations, reads, closed, max_body)| Case {
            plan,
            mutations,
            reads,
            closed,
            max_body,
        })
}

/// The cases run; set `PROPTEST_CASES` for more.
const CASES: u32 = 10_000;
/// The seed of every run unless `PROPTEST_RNG_SEED` says otherwise.
const SEED: u64 = 0x6874_7470_3131;

#[test]
fn the_reader_agrees_with_the_reference_on_generated_and_mutated_answers() {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config.failure_persistence = None;
    let answers = AtomicUsize::new(0);
    let reused = AtomicUsize::new(0);
    let refused = AtomicUsize::new(0);
    let waiting = AtomicUsize::new(0);
    let result = TestRunner::new(config.clone()).run(&any_case(), |case| {
        let mut bytes = case.plan.bytes();
        for mutation in &case.mutations {
            mutate(&mut bytes, mutation);
        }
        let expected = reference(&bytes, case.closed, case.max_body);
        let got = ours(&bytes, &case.reads, case.closed, case.max_body);
        let counter = match &expected {
            Outcome::Answer { reusable: true, .. } => &reused,
            Outcome::Answer { .. } => &answers,
            Outcome::Refused => &refused,
            Outcome::Waiting => &waiting,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if got != expected {
            return Err(TestCaseError::fail(format!(
                "{:?} (closed: {}, limit {}, reads {:?}): the reference says {expected:?}, \
                 the reader {got:?}",
                String::from_utf8_lossy(&bytes),
                case.closed,
                case.max_body,
                case.reads
            )));
        }
        Ok(())
    });
    let counts = [&reused, &answers, &refused, &waiting].map(|c| c.load(Ordering::Relaxed));
    eprintln!(
        "differential: {} cases ({:?}): {} answers kept alive, {} answers closed, {} refused, \
         {} waiting",
        counts.iter().sum::<usize>(),
        config.rng_seed,
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    if let Err(error) = result {
        panic!("{error}");
    }
    // The generator reaches every outcome, each many times.
    for (count, what) in counts
        .iter()
        .zip(["kept alive", "closed", "refused", "waiting"])
    {
        assert!(*count >= 300, "only {count} answers {what}");
    }
}

/// The reference itself, on answers whose reading is known.
#[test]
fn the_reference_reads_known_answers() {
    let answer = |status: u16, body: &[u8], reusable: bool| Outcome::Answer {
        status,
        content_type: None,
        body: body.to_vec(),
        reusable,
    };
    let cases: [(&[u8], bool, Outcome); 8] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", false, answer(200, b"{}", true)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", true, answer(200, b"{}", false)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}", false, Outcome::Waiting),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}", true, Outcome::Refused),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            false,
            answer(200, b"{}", true),
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
            false,
            answer(200, b"x", false),
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+1\r\nx\r\n0\r\n\r\n", false, Outcome::Refused),
        (b"HTTP/1.1 200 OK\r\n\r\nabc", true, answer(200, b"abc", false)),
    ];
    for (bytes, closed, expected) in cases {
        assert_eq!(
            reference(bytes, closed, 1024),
            expected,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
        assert_eq!(ours(bytes, &[3], closed, 1024), expected);
    }
}

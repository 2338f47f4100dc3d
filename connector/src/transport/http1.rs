//! One HTTP/1.1 exchange on a connection the caller holds: the request
//! written in one piece, the answer's head parsed with `httparse` and its
//! body framed as RFC 9112 §6 says (no body for 1xx/204/304, chunked,
//! Content-Length, or up to the close).
//!
//! The exchange runs in the requesting task itself. A general client
//! (hyper's) drives each connection from a task of its own and hands
//! requests and answers across channels: two more wake-ups and several
//! times the instructions per message, which is most of what the connector
//! spends per message on a busy server.
//!
//! The answer is read strictly. What a lenient reader would have to guess
//! at is refused (the user gets the no-response error and the log says
//! why): a line ending in a bare LF, a transfer coding the connector never
//! asked for, a chunk size that is not plain hex, Content-Lengths that
//! disagree. An answer whose framing is doubtful but readable — both
//! `Transfer-Encoding` and `Content-Length`, or `Transfer-Encoding` in an
//! HTTP/1.0 answer — is read as chunked and its connection closed after it
//! (RFC 9112 §6.1, §6.3), so nothing it left behind can be taken for the
//! next answer.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// The most bytes of an answer's head (status line and header fields), of
/// one chunk-size line, and of the trailers together: far over what any
/// bot sends.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields in an answer's head.
const MAX_HEADERS: usize = 128;
/// The most interim (1xx) answers before the final one: a bot cannot keep
/// the exchange busy with an endless stream of `100 Continue`.
const MAX_INTERIM: usize = 16;
/// How much is read from the connection at a time.
const READ_SIZE: usize = 8 * 1024;
/// The most read-buffer memory a connection keeps between exchanges: a
/// large answer does not keep its memory.
const BUFFER_KEPT: usize = 64 * 1024;

/// Why an exchange got no answer. The transport tries again only what was
/// never sent.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Not one byte of the request was written (no connection could be
    /// made, or it was closed already): the bot has not seen it, and it may
    /// go on another connection.
    #[error("the request was not sent: {0}")]
    NotSent(#[source] io::Error),
    /// The bot may have seen the request, but no whole answer came.
    #[error("{0}")]
    Failed(#[source] io::Error),
}

/// What the bot answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// The final status (interim 1xx answers are skipped).
    pub status: u16,
    /// The `Content-Type` field, which decides whether a 200 is a reply.
    pub content_type: Option<String>,
    /// The body, cut at the limit the caller gave.
    pub body: Vec<u8>,
    /// Whether the connection can carry another request: the whole answer
    /// was read, its framing was sound, nothing more came, and neither side
    /// asked to close.
    pub reusable: bool,
}

/// Writes `request` (head and body, already in HTTP/1.1 form) to `io` and
/// reads the answer, at most `max_body` bytes of its body. `buffer` is the
/// connection's read buffer: empty between exchanges. What the tests and
/// the fuzz targets drive; the client itself goes through [`begin`].
pub async fn exchange<T>(
    io: &mut T,
    buffer: &mut Vec<u8>,
    request: &[u8],
    max_body: usize,
) -> Result<Answer, ExchangeError>
where
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let answering = begin(io, buffer, request).await?;
    answering.read_body(io, buffer, max_body).await
}

/// Writes `request` to `io` and reads the head of the final answer
/// (interim 1xx answers are skipped); the body is left to the caller,
/// whole or piece by piece ([`Answering`]).
pub async fn begin<T>(
    io: &mut T,
    buffer: &mut Vec<u8>,
    request: &[u8],
) -> Result<Answering, ExchangeError>
where
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    write_request(io, request).await?;
    let mut start = 0;
    let mut wire = Wire {
        io,
        buffer,
        start: &mut start,
    };
    let head = read_final_head(&mut wire).await.map_err(|error| {
        // Nothing of it is of use to the next exchange.
        wire.buffer.clear();
        ExchangeError::Failed(error)
    })?;
    Ok(Answering {
        status: head.status,
        content_type: head.content_type,
        keep_alive: head.keep_alive,
        body: BodyReader::new(head.framing),
        start,
    })
}

/// An answer whose head is read: its body comes next, read whole
/// ([`Answering::read_body`]) or as it arrives ([`Answering::read_more`],
/// then [`Answering::finish`]), from the same connection and buffer that
/// [`begin`] was given.
#[derive(Debug)]
pub struct Answering {
    /// The final status.
    pub status: u16,
    /// The `Content-Type` field, which decides whether a 200 is a reply
    /// (and whether it is a stream of them).
    pub content_type: Option<String>,
    /// The bot keeps the connection open after this answer, and its
    /// framing leaves no doubt where it ends.
    keep_alive: bool,
    /// Where the body stands.
    body: BodyReader,
    /// Where the unused bytes start in the connection's buffer.
    start: usize,
}

impl Answering {
    /// Reads the whole body, at most `max_body` bytes of it.
    pub async fn read_body<T>(
        mut self,
        io: &mut T,
        buffer: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<Answer, ExchangeError>
    where
        T: AsyncRead + Unpin + ?Sized,
    {
        let mut body = Vec::new();
        let mut wire = Wire {
            io,
            buffer,
            start: &mut self.start,
        };
        let whole = self.body.read_into(&mut wire, &mut body, max_body).await;
        let whole = match whole {
            Ok(whole) => whole,
            Err(error) => {
                buffer.clear();
                return Err(ExchangeError::Failed(error));
            }
        };
        let reusable = self.end(buffer, whole);
        Ok(Answer {
            status: self.status,
            content_type: self.content_type,
            body,
            reusable,
        })
    }

    /// Appends to `out` what of the body has arrived (waiting for at least
    /// one byte), at most `max` bytes; `false` once the body has ended.
    pub async fn read_more<T>(
        &mut self,
        io: &mut T,
        buffer: &mut Vec<u8>,
        out: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<bool>
    where
        T: AsyncRead + Unpin + ?Sized,
    {
        // The wire moves `start` in place, so a call cancelled while it
        // waits for bytes leaves buffer and `start` in step for the next.
        let mut wire = Wire {
            io,
            buffer,
            start: &mut self.start,
        };
        let ready = self.body.ready(&mut wire).await?;
        if ready == 0 {
            return Ok(false);
        }
        let take = ready.min(max);
        out.extend_from_slice(&wire.unused()[..take]);
        self.body.take(&mut wire, take);
        Ok(true)
    }

    /// After [`Answering::read_more`] said the body ended (`whole`), or was
    /// given up: whether the connection can carry another request. Clears
    /// the buffer for it.
    pub fn finish(&mut self, buffer: &mut Vec<u8>, whole: bool) -> bool {
        let whole = whole && self.body.ended();
        self.end(buffer, whole)
    }

    /// Whether the connection can carry another request after a body read
    /// `whole` or not; clears the buffer for the next exchange.
    fn end(&mut self, buffer: &mut Vec<u8>, whole: bool) -> bool {
        // Bytes past the answer mean a bot out of step with us.
        let leftover = self.start < buffer.len();
        buffer.clear();
        if buffer.capacity() > BUFFER_KEPT {
            *buffer = Vec::new();
        }
        self.start = 0;
        whole && self.keep_alive && !leftover
    }
}

/// Writes the whole request and flushes it (TLS holds records until then).
async fn write_request<T>(io: &mut T, request: &[u8]) -> Result<(), ExchangeError>
where
    T: AsyncWrite + Unpin + ?Sized,
{
    let mut written = 0;
    while written < request.len() {
        match io.write(&request[written..]).await {
            Ok(0) => {
                let error = io::ErrorKind::WriteZero.into();
                return Err(if written == 0 {
                    ExchangeError::NotSent(error)
                } else {
                    ExchangeError::Failed(error)
                });
            }
            Ok(n) => written += n,
            Err(error) if written == 0 => return Err(ExchangeError::NotSent(error)),
            Err(error) => return Err(ExchangeError::Failed(error)),
        }
    }
    io.flush().await.map_err(ExchangeError::Failed)
}

/// The connection being read, and what was read of it and not yet used.
struct Wire<'a, T: ?Sized> {
    /// The connection.
    io: &'a mut T,
    /// Bytes read from it; those before `start` are used up.
    buffer: &'a mut Vec<u8>,
    /// Where the unused bytes start in `buffer`: the caller's, so that
    /// it stays in step with `buffer` whenever a read is cancelled.
    start: &'a mut usize,
}

impl<T: AsyncRead + Unpin + ?Sized> Wire<'_, T> {
    /// What was read and not yet used.
    fn unused(&self) -> &[u8] {
        &self.buffer[*self.start..]
    }

    fn consume(&mut self, n: usize) {
        *self.start += n;
    }

    /// Reads more; `false` at the end of the stream. The unused bytes stay
    /// where they are relative to each other, so offsets into them hold.
    async fn fill(&mut self) -> io::Result<bool> {
        if *self.start == self.buffer.len() {
            self.buffer.clear();
            *self.start = 0;
        } else if *self.start > READ_SIZE {
            self.buffer.drain(..*self.start);
            *self.start = 0;
        }
        self.buffer.reserve(READ_SIZE);
        Ok(self.io.read_buf(self.buffer).await? > 0)
    }

    /// Reads more, or fails saying the bot closed the connection in `what`.
    async fn fill_in(&mut self, what: &str) -> io::Result<()> {
        if self.fill().await? {
            Ok(())
        } else {
            Err(invalid(format!("the bot closed the connection in {what}")))
        }
    }

    /// The length of the next line, without its CRLF, once all of it is
    /// read; at most `MAX_HEAD_BYTES`. Each byte is looked at once, however
    /// the line arrives.
    async fn line(&mut self, what: &str) -> io::Result<usize> {
        let mut scanned = 0;
        loop {
            let unused = self.unused();
            if let Some(at) = memchr::memchr(b'\n', &unused[scanned..]) {
                let lf = scanned + at;
                return match lf.checked_sub(1) {
                    Some(cr) if unused[cr] == b'\r' => Ok(cr),
                    _ => Err(bare_lf(what)),
                };
            }
            scanned = unused.len();
            if scanned > MAX_HEAD_BYTES {
                return Err(invalid(format!("{what} is over {MAX_HEAD_BYTES} bytes")));
            }
            self.fill_in(what).await?;
        }
    }
}

/// How the answer's body is delimited (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// No body at all: 1xx, 204 and 304 answers.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the bot closes the connection.
    UntilClose,
}

/// The parts of an answer's head the exchange needs.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// The status code, 100 to 599.
    status: u16,
    /// The `Content-Type` field's value.
    content_type: Option<String>,
    /// How the body is delimited.
    framing: Framing,
    /// The bot keeps the connection open after this answer, and the
    /// framing leaves no doubt where the answer ends.
    keep_alive: bool,
}

/// Reads answer heads until the final one: interim answers (100
/// Continue, 103 Early Hints) come before it.
async fn read_final_head<T>(wire: &mut Wire<'_, T>) -> io::Result<Head>
where
    T: AsyncRead + Unpin + ?Sized,
{
    let mut interim = 0;
    loop {
        let head = read_head(wire).await?;
        if !(100..200).contains(&head.status) {
            return Ok(head);
        }
        if head.status == 101 {
            return Err(invalid("the bot switched protocols".into()));
        }
        interim += 1;
        if interim > MAX_INTERIM {
            return Err(invalid(format!(
                "the bot sent more than {MAX_INTERIM} interim answers"
            )));
        }
    }
}

/// Where the reading of a body stands, by its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyReader {
    /// `left` bytes of a `Content-Length` body to come.
    Length { left: u64 },
    /// Next: a chunk-size line.
    ChunkSize,
    /// `left` bytes of the current chunk to come.
    Chunk { left: u64 },
    /// Next: the CRLF after a chunk's data.
    ChunkEnd,
    /// Everything until the bot closes the connection.
    UntilClose,
    /// The body ended where its framing says: the answer is whole.
    Ended,
    /// The bot closed the connection, which ends a body read to the close
    /// but says nothing of where the answer ended.
    Closed,
}

impl BodyReader {
    fn new(framing: Framing) -> BodyReader {
        match framing {
            Framing::Empty => BodyReader::Ended,
            Framing::Length(length) => BodyReader::Length { left: length },
            Framing::Chunked => BodyReader::ChunkSize,
            Framing::UntilClose => BodyReader::UntilClose,
        }
    }

    /// Whether the body ended where its framing says.
    fn ended(&self) -> bool {
        *self == BodyReader::Ended
    }

    /// Waits until body bytes are at the front of what was read, reading
    /// chunk-size lines, chunk ends and trailers as they come: how many of
    /// the unused bytes are body, or 0 once the body has ended.
    async fn ready<T>(&mut self, wire: &mut Wire<'_, T>) -> io::Result<usize>
    where
        T: AsyncRead + Unpin + ?Sized,
    {
        loop {
            match *self {
                BodyReader::Ended | BodyReader::Closed => return Ok(0),
                BodyReader::Length { left: 0 } => *self = BodyReader::Ended,
                BodyReader::Length { left } | BodyReader::Chunk { left } => {
                    let what = match self {
                        BodyReader::Length { .. } => "the middle of its answer",
                        _ => "the middle of a chunk",
                    };
                    if wire.unused().is_empty() {
                        wire.fill_in(what).await?;
                    }
                    let ready = usize::try_from(left).unwrap_or(usize::MAX);
                    return Ok(ready.min(wire.unused().len()));
                }
                BodyReader::ChunkEnd => {
                    while wire.unused().len() < 2 {
                        wire.fill_in("the middle of a chunk").await?;
                    }
                    if wire.unused()[..2] != *b"\r\n" {
                        return Err(invalid(
                            "a chunk of the bot's answer is longer than its size".into(),
                        ));
                    }
                    wire.consume(2);
                    *self = BodyReader::ChunkSize;
                }
                BodyReader::ChunkSize => {
                    let length = wire.line("a chunk size line").await?;
                    let size = chunk_size(&wire.unused()[..length])?;
                    wire.consume(length + 2);
                    if size == 0 {
                        read_trailers(wire).await?;
                        *self = BodyReader::Ended;
                    } else {
                        *self = BodyReader::Chunk { left: size };
                    }
                }
                BodyReader::UntilClose => {
                    if !wire.unused().is_empty() {
                        return Ok(wire.unused().len());
                    }
                    if !wire.fill().await? {
                        *self = BodyReader::Closed;
                    }
                }
            }
        }
    }

    /// Uses up `n` of the body bytes [`BodyReader::ready`] found.
    fn take<T>(&mut self, wire: &mut Wire<'_, T>, n: usize)
    where
        T: AsyncRead + Unpin + ?Sized,
    {
        wire.consume(n);
        let n = n as u64;
        *self = match *self {
            BodyReader::Length { left } => BodyReader::Length { left: left - n },
            BodyReader::Chunk { left } if left == n => BodyReader::ChunkEnd,
            BodyReader::Chunk { left } => BodyReader::Chunk { left: left - n },
            other => other,
        };
    }

    /// Reads the body into `body`, keeping at most `max_body`; `true` when
    /// all of it (trailers included) was read.
    async fn read_into<T>(
        &mut self,
        wire: &mut Wire<'_, T>,
        body: &mut Vec<u8>,
        max_body: usize,
    ) -> io::Result<bool>
    where
        T: AsyncRead + Unpin + ?Sized,
    {
        loop {
            if body.len() == max_body {
                // Full: whole only if the framing ends right here (the
                // next chunk-size line may say so); a body read to the
                // close is never known to be. Bytes a length still owes
                // are not waited for: they would only be dropped.
                return match *self {
                    BodyReader::Length { left: 1.. }
                    | BodyReader::Chunk { .. }
                    | BodyReader::UntilClose => Ok(false),
                    _ => Ok(self.ready(wire).await? == 0 && self.ended()),
                };
            }
            let ready = self.ready(wire).await?;
            if ready == 0 {
                return Ok(self.ended());
            }
            let take = ready.min(max_body - body.len());
            make_room(body, take, max_body);
            body.extend_from_slice(&wire.unused()[..take]);
            self.take(wire, take);
        }
    }
}

/// Reads and parses one answer head.
async fn read_head<T>(wire: &mut Wire<'_, T>) -> io::Result<Head>
where
    T: AsyncRead + Unpin + ?Sized,
{
    let mut scanned = 0;
    loop {
        if let Some(length) = head_length(wire.unused(), &mut scanned)? {
            let head = parse_head(&wire.unused()[..length])?;
            wire.consume(length);
            return Ok(head);
        }
        if wire.unused().len() > MAX_HEAD_BYTES {
            return Err(invalid(format!(
                "the bot's answer head is over {MAX_HEAD_BYTES} bytes"
            )));
        }
        let what = if wire.unused().is_empty() {
            "without answering"
        } else {
            "in the middle of its answer's head"
        };
        if !wire.fill().await? {
            return Err(invalid(format!("the bot closed the connection {what}")));
        }
    }
}

/// The length of the head at the start of `bytes`, its empty line
/// included, or `None` while it is incomplete. `scanned` is how far
/// earlier calls looked: each byte is looked at once, however the head
/// arrives.
///
/// Every line must end in CRLF. RFC 9112 §2.2 lets a recipient take a bare
/// LF as a line end, but a reader and a proxy in front of the bot that
/// disagree on where a line ends disagree on where the answer ends.
fn head_length(bytes: &[u8], scanned: &mut usize) -> io::Result<Option<usize>> {
    while let Some(at) = memchr::memchr(b'\n', &bytes[*scanned..]) {
        let lf = *scanned + at;
        if lf == 0 || bytes[lf - 1] != b'\r' {
            return Err(bare_lf("its head"));
        }
        if lf == 1 {
            return Err(invalid(
                "the bot's answer does not start with a status line".into(),
            ));
        }
        *scanned = lf + 1;
        if bytes[..=lf].ends_with(b"\r\n\r\n") {
            return Ok(Some(lf + 1));
        }
    }
    *scanned = bytes.len();
    Ok(None)
}

/// Parses a whole answer head (status line, fields, empty line).
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        // Not after the empty line that `head_length` found.
        Ok(httparse::Status::Partial) => {
            return Err(invalid("the bot's answer head is incomplete".into()));
        }
        Err(error) => {
            return Err(invalid(format!(
                "the bot's answer is not HTTP/1.1: {error}"
            )));
        }
    }
    let status = response.code.unwrap_or_default();
    if !(100..=599).contains(&status) {
        return Err(invalid(format!(
            "the bot's answer has the status {status:03}, which HTTP does not define"
        )));
    }
    let http10 = response.version == Some(0);
    // HTTP/1.0 closes after each answer unless told otherwise.
    let mut keep_alive = !http10;
    let mut content_type: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    for field in response.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-type") {
            if content_type.is_some_and(|known| known != field.value) {
                return Err(invalid(
                    "the bot's answer has conflicting Content-Types".into(),
                ));
            }
            content_type = Some(field.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            // Repeated or listed values must agree (RFC 9112 §6.3).
            for value in field.value.split(|&b| b == b',') {
                let value = decimal(trim_ows(value)).ok_or_else(|| {
                    invalid("the bot's answer has an invalid Content-Length".into())
                })?;
                if content_length.is_some_and(|known| known != value) {
                    return Err(invalid(
                        "the bot's answer has conflicting Content-Lengths".into(),
                    ));
                }
                content_length = Some(value);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // A list, perhaps over several fields; empty elements do not
            // count (RFC 9110 §5.6.1). The connector asks for no coding
            // (it sends no TE field), so chunked is the only one a bot may
            // use, and only once (RFC 9112 §6.1, §7).
            for coding in field.value.split(|&b| b == b',') {
                let coding = trim_ows(coding);
                if coding.is_empty() {
                    continue;
                }
                if !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(invalid(format!(
                        "the bot's answer uses the transfer coding {:?}, which was not asked for",
                        String::from_utf8_lossy(&coding[..coding.len().min(32)])
                    )));
                }
                if chunked {
                    return Err(invalid(
                        "the bot's answer applies the chunked coding twice".into(),
                    ));
                }
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        }
    }
    // The framing fields are checked on every answer, even one that has
    // no body, whose framing they do not decide.
    if transfer_encoding && !chunked {
        return Err(invalid(
            "the bot's answer has an empty Transfer-Encoding".into(),
        ));
    }
    let content_type = content_type.map(|value| String::from_utf8_lossy(value).into_owned());
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        // Chunked wins over Content-Length (RFC 9112 §6.3), and an
        // HTTP/1.0 answer should not be chunked at all (§6.1): read it, but
        // never trust the connection again.
        if content_length.is_some() || http10 {
            debug!(
                status,
                http10, "the bot's answer is framed two ways; read as chunked, connection closed"
            );
            keep_alive = false;
        }
        Framing::Chunked
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    Ok(Head {
        status,
        content_type,
        framing,
        keep_alive,
    })
}

/// The value of a string of ASCII digits (nothing else: no sign, no
/// space), or `None` if it is not one or does not fit.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// `bytes` without the spaces and tabs around it (HTTP's optional
/// whitespace).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Makes room for `more` bytes in `body`, growing by doubling as a `Vec`
/// does but never past `limit`: memory follows the bytes that came, not
/// the length an answer claims, and never exceeds the body limit.
fn make_room(body: &mut Vec<u8>, more: usize, limit: usize) {
    let needed = body.len() + more;
    if needed > body.capacity() {
        let target = (body.capacity() * 2).min(limit).max(needed);
        body.reserve_exact(target - body.len());
    }
}

/// Reads the trailer fields after the last chunk, up to the empty line;
/// each must be a field line, and all of them at most `MAX_HEAD_BYTES`.
/// Their values are not used.
async fn read_trailers<T>(wire: &mut Wire<'_, T>) -> io::Result<()>
where
    T: AsyncRead + Unpin + ?Sized,
{
    let mut total = 0;
    loop {
        let length = wire.line("a trailer line").await?;
        if length == 0 {
            wire.consume(2);
            return Ok(());
        }
        if !is_field_line(&wire.unused()[..length]) {
            return Err(invalid(format!(
                "the bot's answer has an invalid trailer field {:?}",
                String::from_utf8_lossy(&wire.unused()[..length.min(32)])
            )));
        }
        total += length + 2;
        if total > MAX_HEAD_BYTES {
            return Err(invalid(format!(
                "the bot's trailers are over {MAX_HEAD_BYTES} bytes"
            )));
        }
        wire.consume(length + 2);
    }
}

/// Whether `line` is `name: value` with a token for a name and no control
/// characters but tabs in the value (RFC 9110 §5.1, §5.5). A line that
/// starts with whitespace (an obsolete folded line) is not.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = memchr::memchr(b':', line) else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name.iter().copied().all(is_token_char)
        && value.iter().all(|&b| b == b'\t' || !b.is_ascii_control())
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The size of a chunk-size line: hex digits only (no sign, no space, no
/// `0x`), then nothing or chunk extensions (`;` after optional whitespace),
/// which are not used but may hold no control characters but tabs.
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let (hex, rest) = line.split_at(digits);
    let extensions_ok = rest.is_empty()
        || (trim_ows(rest).first() == Some(&b';')
            && rest.iter().all(|&b| b == b'\t' || !b.is_ascii_control()));
    if hex.is_empty() || !extensions_ok {
        return Err(invalid(format!(
            "the bot's answer has an invalid chunk size {:?}",
            String::from_utf8_lossy(&line[..line.len().min(32)])
        )));
    }
    hex.iter()
        .try_fold(0u64, |size, &digit| {
            let value = char::from(digit).to_digit(16)?;
            size.checked_mul(16)?.checked_add(u64::from(value))
        })
        .ok_or_else(|| {
            invalid(format!(
                "the bot's answer has a chunk size over {} bytes",
                u64::MAX
            ))
        })
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn bare_lf(what: &str) -> io::Error {
    invalid(format!(
        "the bot's answer has a bare LF (not CRLF) in {what}"
    ))
}

/// Whether an idle connection is still usable: nothing to read, and not
/// closed. A bot closes idle connections at will (it says so with an end of
/// stream), and sends nothing between answers.
pub fn is_idle_and_open<T>(io: &mut T) -> bool
where
    T: AsyncRead + Unpin + ?Sized,
{
    use futures::FutureExt;
    let mut probe = [0u8; 1];
    // Pending is the one good outcome: open, and silent.
    io.read(&mut probe).now_or_never().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncWriteExt, duplex};

    const REQUEST: &[u8] = b"POST /bot HTTP/1.1\r\nhost: bot\r\ncontent-length: 2\r\n\r\n{}";

    /// The answer to one exchange with a bot that sends `answer` (in pieces
    /// of `piece` bytes) and then closes when `close` is set, and the request
    /// the bot saw.
    async fn answered(
        answer: &[u8],
        piece: usize,
        close: bool,
    ) -> (Result<Answer, ExchangeError>, Vec<u8>) {
        let (mut ours, mut bots) = duplex(1 << 20);
        let answer = answer.to_vec();
        let bot = tokio::spawn(async move {
            let mut seen = vec![0u8; REQUEST.len()];
            bots.read_exact(&mut seen).await.expect("request");
            for piece in answer.chunks(piece.max(1)) {
                // The exchange may stop reading (a body over the limit).
                if bots.write_all(piece).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            if !close {
                // Keep the bot's end open until the exchange is over.
                let _ = bots.read(&mut [0u8; 1]).await;
            }
            seen
        });
        let mut buffer = Vec::new();
        let result = exchange(&mut ours, &mut buffer, REQUEST, 1024).await;
        drop(ours);
        let seen = bot.await.expect("bot");
        assert!(buffer.is_empty(), "the buffer is left empty");
        (result, seen)
    }

    fn ok(status: u16, content_type: Option<&str>, body: &[u8], reusable: bool) -> Answer {
        Answer {
            status,
            content_type: content_type.map(str::to_owned),
            body: body.to_vec(),
            reusable,
        }
    }

    /// Asserts that `answer`, sent in each of these piece sizes (the bot
    /// closing after it when `close` is set), reads as `expected`.
    async fn assert_reads(answer: &[u8], pieces: &[usize], close: bool, expected: &Answer) {
        for &piece in pieces {
            let (result, seen) = answered(answer, piece, close).await;
            assert_eq!(seen, REQUEST);
            assert_eq!(
                &result.expect("answer"),
                expected,
                "{:?} in pieces of {piece}",
                String::from_utf8_lossy(answer)
            );
        }
    }

    #[tokio::test]
    async fn content_length_answers_in_any_pieces() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"body\":\"hi\"}";
        let expected = ok(200, Some("application/json"), b"{\"body\":\"hi\"}", true);
        assert_reads(answer, &[1, 2, 7, 64, answer.len()], false, &expected).await;
    }

    #[tokio::test]
    async fn chunked_answers_with_extensions_and_trailers() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                       5;name=value\r\n{\"bod\r\n0008 ; a=\"b\"\r\ny\":\"hi\"}\r\n\
                       0\r\nX-Trailer: 1\r\nX-Other:\tx y\r\n\r\n";
        let expected = ok(200, None, b"{\"body\":\"hi\"}", true);
        assert_reads(answer, &[1, 3, answer.len()], false, &expected).await;
    }

    /// Empty list elements are no codings (RFC 9110 §5.6.1): `chunked,` is
    /// chunked, and its connection stays in use.
    #[tokio::test]
    async fn empty_transfer_encoding_elements_are_ignored() {
        for field in [
            "Transfer-Encoding: chunked,",
            "Transfer-Encoding: , chunked",
            "Transfer-Encoding: ,,chunked , ,",
            "Transfer-Encoding: CHUNKED",
            "Transfer-Encoding:\r\nTransfer-Encoding: chunked",
        ] {
            let answer = format!("HTTP/1.1 200 OK\r\n{field}\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n");
            assert_reads(
                answer.as_bytes(),
                &[100],
                false,
                &ok(200, None, b"{}", true),
            )
            .await;
        }
    }

    /// Framed two ways: the chunked coding wins over Content-Length (RFC
    /// 9112 §6.3), and a chunked HTTP/1.0 answer is read (§6.1); neither
    /// connection is used again, whatever the answer says about it.
    #[tokio::test]
    async fn doubtful_framing_is_read_as_chunked_and_the_connection_dropped() {
        for head in [
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked",
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked",
        ] {
            let answer = format!("{head}\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
            assert_reads(
                answer.as_bytes(),
                &[100],
                false,
                &ok(200, None, b"abc", false),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn bodies_to_the_close_and_closing_answers_are_not_reused() {
        let cases: [(&[u8], bool, Answer); 4] = [
            (
                b"HTTP/1.1 200 OK\r\n\r\n{\"body\":\"x\"}",
                true,
                ok(200, None, b"{\"body\":\"x\"}", false),
            ),
            (
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
                true,
                ok(200, None, b"{}", false),
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                false,
                ok(200, None, b"{}", false),
            ),
            (
                b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}",
                false,
                ok(200, None, b"{}", true),
            ),
        ];
        for (answer, close, expected) in cases {
            assert_reads(answer, &[4, 100], close, &expected).await;
        }
    }

    /// Listed and repeated Content-Lengths that agree are one length.
    #[tokio::test]
    async fn agreeing_content_lengths_are_one() {
        for fields in [
            "Content-Length: 2, 2",
            "Content-Length: 2\r\nContent-Length: 2",
            "Content-Length: 002",
            "Content-Type: text/plain\r\nContent-Type: text/plain\r\nContent-Length: 2",
        ] {
            let answer = format!("HTTP/1.1 200 OK\r\n{fields}\r\n\r\n{{}}");
            let content_type = fields.contains("text/plain").then_some("text/plain");
            let expected = ok(200, content_type, b"{}", true);
            assert_reads(answer.as_bytes(), &[100], false, &expected).await;
        }
    }

    #[tokio::test]
    async fn interim_and_bodiless_answers() {
        let (result, _) = answered(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n\
              HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n",
            5,
            false,
        )
        .await;
        assert_eq!(result.expect("answer"), ok(204, None, b"", true));
        let (result, _) = answered(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 100, false).await;
        assert_eq!(
            result.expect_err("101").to_string(),
            "the bot switched protocols"
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_cut_and_the_connection_given_up() {
        let big = vec![b'a'; 3000];
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n".to_vec();
        answer.extend_from_slice(&big);
        let (result, _) = answered(&answer, 500, false).await;
        assert_eq!(result.expect("answer"), ok(200, None, &big[..1024], false));
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nbb8\r\n".to_vec();
        chunked.extend_from_slice(&big);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let (result, _) = answered(&chunked, 500, false).await;
        assert_eq!(result.expect("answer"), ok(200, None, &big[..1024], false));
    }

    /// A length or chunk size claims no memory: the body grows with the
    /// bytes that came, never past the limit.
    #[tokio::test]
    async fn claimed_lengths_take_no_memory_before_their_bytes() {
        let big = vec![b'a'; 3000];
        for head in [
            "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
        ] {
            let mut answer = head.as_bytes().to_vec();
            answer.extend_from_slice(&big);
            let (result, _) = answered(&answer, 700, false).await;
            let answer = result.expect("answer");
            assert_eq!(
                (answer.body.len(), answer.reusable),
                (1024, false),
                "{head}"
            );
            assert!(
                answer.body.capacity() <= 1024,
                "{head}: {}",
                answer.body.capacity()
            );
        }
        let mut body = Vec::new();
        make_room(&mut body, 10, 1 << 20);
        assert_eq!(body.capacity(), 10, "only what came");
        body.extend_from_slice(&[0; 10]);
        make_room(&mut body, 1, 1 << 20);
        assert_eq!(body.capacity(), 20, "doubling");
        make_room(&mut body, 5, 16);
        assert_eq!(body.capacity(), 20, "room enough");
        body.extend_from_slice(&[0; 10]);
        make_room(&mut body, 6, 26);
        assert_eq!(body.capacity(), 26, "never past the limit");
    }

    #[tokio::test]
    async fn bytes_after_the_answer_make_the_connection_unusable() {
        let (result, _) = answered(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
            100,
            false,
        )
        .await;
        assert_eq!(result.expect("answer"), ok(200, None, b"{}", false));
    }

    /// Every answer a strict reader refuses, with the message the log shows.
    #[tokio::test]
    async fn invalid_answers_fail_with_what_was_wrong() {
        const OK: &str = "HTTP/1.1 200 OK\r\n";
        const CHUNKED: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let cases: Vec<(String, &str)> = vec![
            (
                String::new(),
                "the bot closed the connection without answering",
            ),
            (
                format!("{OK}Content-"),
                "the bot closed the connection in the middle of its answer's head",
            ),
            (
                "SMTP ready\r\n\r\n".into(),
                "the bot's answer is not HTTP/1.1: invalid HTTP version",
            ),
            (
                "HTTP/2.0 200 OK\r\n\r\n".into(),
                "the bot's answer is not HTTP/1.1: invalid HTTP version",
            ),
            (
                "\r\nHTTP/1.1 200 OK\r\n\r\n".into(),
                "the bot's answer does not start with a status line",
            ),
            (
                "HTTP/1.1 600 Beyond\r\n\r\n".into(),
                "the bot's answer has the status 600, which HTTP does not define",
            ),
            (
                "HTTP/1.1 000 Nothing\r\n\r\n".into(),
                "the bot's answer has the status 000, which HTTP does not define",
            ),
            // Bare LF, bare CR, obsolete line folding.
            (
                "HTTP/1.1 200 OK\nContent-Length: 0\n\n".into(),
                "the bot's answer has a bare LF (not CRLF) in its head",
            ),
            (
                format!("{OK}X-A: 1\nContent-Length: 0\r\n\r\n"),
                "the bot's answer has a bare LF (not CRLF) in its head",
            ),
            (
                format!("{OK}X-A: 1\rContent-Length: 0\r\n\r\n"),
                "the bot's answer is not HTTP/1.1: invalid header value",
            ),
            (
                format!("{OK}X-A: 1\r\n Content-Length: 0\r\n\r\n"),
                "the bot's answer is not HTTP/1.1: invalid header name",
            ),
            (
                format!("{OK}{}\r\n", "X-A: 1\r\n".repeat(MAX_HEADERS + 1)),
                "the bot's answer is not HTTP/1.1: too many headers",
            ),
            // Content-Length.
            (
                format!("{OK}Content-Length: 5\r\n\r\n{{}}"),
                "the bot closed the connection in the middle of its answer",
            ),
            (
                format!("{OK}Content-Length: -1\r\n\r\n"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length: +2\r\n\r\n{{}}"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length: 0x2\r\n\r\n{{}}"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length: 2 2\r\n\r\n{{}}"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length: 2,\r\n\r\n{{}}"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length:\r\n\r\n"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length: 18446744073709551616\r\n\r\n"),
                "the bot's answer has an invalid Content-Length",
            ),
            (
                format!("{OK}Content-Length: 2\r\nContent-Length: 3\r\n\r\n{{}}"),
                "the bot's answer has conflicting Content-Lengths",
            ),
            (
                format!("{OK}Content-Length: 2, 3\r\n\r\n{{}}"),
                "the bot's answer has conflicting Content-Lengths",
            ),
            (
                format!(
                    "{OK}Content-Type: application/json\r\nContent-Type: text/html\r\n\
                     Content-Length: 2\r\n\r\n{{}}"
                ),
                "the bot's answer has conflicting Content-Types",
            ),
            // Transfer-Encoding.
            (
                format!("{OK}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
                "the bot's answer uses the transfer coding \"gzip\", which was not asked for",
            ),
            (
                format!("{OK}Transfer-Encoding: identity\r\n\r\n"),
                "the bot's answer uses the transfer coding \"identity\", which was not asked for",
            ),
            (
                format!("{OK}Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n"),
                "the bot's answer uses the transfer coding \"chunked;q=1\", which was not asked for",
            ),
            (
                format!("{OK}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
                "the bot's answer applies the chunked coding twice",
            ),
            (
                format!("{OK}Transfer-Encoding: , ,\r\n\r\n"),
                "the bot's answer has an empty Transfer-Encoding",
            ),
            // Chunk sizes: hex digits only.
            (
                format!("{CHUNKED}zz\r\n"),
                "the bot's answer has an invalid chunk size \"zz\"",
            ),
            (
                format!("{CHUNKED}+2\r\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has an invalid chunk size \"+2\"",
            ),
            (
                format!("{CHUNKED} 2\r\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has an invalid chunk size \" 2\"",
            ),
            (
                format!("{CHUNKED}2 \r\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has an invalid chunk size \"2 \"",
            ),
            (
                format!("{CHUNKED}2\t\r\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has an invalid chunk size \"2\\t\"",
            ),
            (
                format!("{CHUNKED}0x2\r\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has an invalid chunk size \"0x2\"",
            ),
            (
                format!("{CHUNKED}\r\n"),
                "the bot's answer has an invalid chunk size \"\"",
            ),
            (
                format!("{CHUNKED}2;a\rb\r\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has an invalid chunk size \"2;a\\rb\"",
            ),
            (
                format!("{CHUNKED}10000000000000000\r\n"),
                "the bot's answer has a chunk size over 18446744073709551615 bytes",
            ),
            (
                format!("{CHUNKED}2\n{{}}\r\n0\r\n\r\n"),
                "the bot's answer has a bare LF (not CRLF) in a chunk size line",
            ),
            (
                format!("{CHUNKED}2\r\n{{}}}}\r\n0\r\n\r\n"),
                "a chunk of the bot's answer is longer than its size",
            ),
            (
                format!("{CHUNKED}2\r\n{{}}\n0\r\n\r\n"),
                "a chunk of the bot's answer is longer than its size",
            ),
            (
                format!("{CHUNKED}2\r\n{{"),
                "the bot closed the connection in the middle of a chunk",
            ),
            (
                format!("{CHUNKED}2\r\n{{}}\r\n"),
                "the bot closed the connection in a chunk size line",
            ),
            // Trailers: field lines, CRLF, bounded.
            (
                format!("{CHUNKED}0\r\nX-A: 1\n\r\n"),
                "the bot's answer has a bare LF (not CRLF) in a trailer line",
            ),
            (
                format!("{CHUNKED}0\r\nX-A: 1\r\n folded\r\n\r\n"),
                "the bot's answer has an invalid trailer field \" folded\"",
            ),
            (
                format!("{CHUNKED}0\r\nno colon\r\n\r\n"),
                "the bot's answer has an invalid trailer field \"no colon\"",
            ),
            (
                format!("{CHUNKED}0\r\nX-A: \x01\r\n\r\n"),
                "the bot's answer has an invalid trailer field \"X-A: \\u{1}\"",
            ),
            (
                format!(
                    "{CHUNKED}0\r\n{}\r\n",
                    "X-Trailer: 1234567890\r\n".repeat(3000)
                ),
                "the bot's trailers are over 65536 bytes",
            ),
            (
                format!("{CHUNKED}0\r\nX-A: 1\r\n"),
                "the bot closed the connection in a trailer line",
            ),
            // Interim answers: a few, not forever.
            (
                "HTTP/1.1 100 Continue\r\n\r\n".repeat(MAX_INTERIM + 1),
                "the bot sent more than 16 interim answers",
            ),
        ];
        for (answer, message) in cases {
            for piece in [1, 7, 100_000] {
                let (result, _) = answered(answer.as_bytes(), piece, true).await;
                let error = result.expect_err(message);
                assert!(matches!(error, ExchangeError::Failed(_)), "{error:?}");
                assert_eq!(
                    error.to_string(),
                    message,
                    "{answer:?} in pieces of {piece}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_head_without_end_is_refused_at_the_limit() {
        let mut answer = b"HTTP/1.1 200 OK\r\nX-Padding: ".to_vec();
        answer.resize(MAX_HEAD_BYTES + 100, b'a');
        let (mut ours, mut bots) = duplex(1 << 20);
        bots.write_all(&answer).await.expect("answer");
        let error = exchange(&mut ours, &mut Vec::new(), REQUEST, 1024)
            .await
            .expect_err("too long");
        assert_eq!(
            error.to_string(),
            format!("the bot's answer head is over {MAX_HEAD_BYTES} bytes")
        );
        drop(bots);
    }

    #[tokio::test]
    async fn a_chunk_size_line_without_end_is_refused_at_the_limit() {
        let mut answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=".to_vec();
        answer.resize(answer.len() + MAX_HEAD_BYTES + 100, b'a');
        let (mut ours, mut bots) = duplex(1 << 20);
        bots.write_all(&answer).await.expect("answer");
        let error = exchange(&mut ours, &mut Vec::new(), REQUEST, 1024)
            .await
            .expect_err("too long");
        assert_eq!(
            error.to_string(),
            format!("a chunk size line is over {MAX_HEAD_BYTES} bytes")
        );
        drop(bots);
    }

    /// A streamed body read piece by piece, with a read cancelled while it
    /// waited (a stream's timer fired): nothing is lost or read twice.
    #[tokio::test]
    async fn a_body_read_as_it_arrives_survives_a_cancelled_read() {
        let (mut ours, mut bots) = duplex(1 << 16);
        let bot = tokio::spawn(async move {
            let mut seen = vec![0u8; REQUEST.len()];
            bots.read_exact(&mut seen).await.expect("request");
            bots.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n")
                .await
                .expect("first chunk");
            // Until the reader has given up once.
            let mut go = [0u8; 1];
            bots.read_exact(&mut go).await.expect("go");
            bots.write_all(b"2\r\ncd\r\n0\r\n\r\n").await.expect("rest");
            bots
        });
        let mut buffer = Vec::new();
        let mut answering = begin(&mut ours, &mut buffer, REQUEST)
            .await
            .expect("a head");
        let mut body = Vec::new();
        assert!(
            answering
                .read_more(&mut ours, &mut buffer, &mut body, 1024)
                .await
                .expect("read")
        );
        assert_eq!(body, b"ab");
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            answering.read_more(&mut ours, &mut buffer, &mut body, 1024),
        )
        .await;
        assert!(waited.is_err(), "nothing more came yet");
        ours.write_all(b"!").await.expect("go");
        while answering
            .read_more(&mut ours, &mut buffer, &mut body, 1024)
            .await
            .expect("read")
        {}
        assert_eq!(body, b"abcd");
        assert!(
            answering.finish(&mut buffer, true),
            "read to its end: reusable"
        );
        drop(bot.await.expect("bot"));
    }

    #[tokio::test]
    async fn a_closed_connection_fails_before_sending() {
        let (mut ours, bots) = duplex(64);
        drop(bots);
        let error = exchange(&mut ours, &mut Vec::new(), REQUEST, 1024)
            .await
            .expect_err("closed");
        assert!(matches!(error, ExchangeError::NotSent(_)), "{error:?}");
    }

    #[tokio::test]
    async fn idle_connections_are_probed_without_waiting() {
        let (mut ours, mut bots) = duplex(64);
        assert!(is_idle_and_open(&mut ours), "open and silent");
        bots.write_all(b"x").await.expect("write");
        assert!(!is_idle_and_open(&mut ours), "something unasked for came");
        drop(bots);
        let (mut ours, bots) = duplex(64);
        drop(bots);
        assert!(!is_idle_and_open(&mut ours), "closed");
    }

    #[test]
    fn decimals_and_chunk_sizes_are_digits_only() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"0012"), Some(12));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b" 1",
            b"1 ",
            b"1e3",
            b"18446744073709551616",
        ] {
            assert_eq!(decimal(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(chunk_size(b"0").expect("0"), 0);
        assert_eq!(chunk_size(b"00000000000000000000001a").expect("zeros"), 26);
        assert_eq!(chunk_size(b"FfFf").expect("case"), 0xffff);
        assert_eq!(chunk_size(b"ffffffffffffffff").expect("max"), u64::MAX);
        assert_eq!(chunk_size(b"1;a=b").expect("extension"), 1);
        assert_eq!(chunk_size(b"1 \t; a = \"b\tc\"").expect("whitespace"), 1);
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
    }
}

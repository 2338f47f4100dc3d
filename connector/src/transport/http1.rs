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

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The most bytes of an answer's head (status line and header fields), and
/// of a chunk-size line and trailers: far over what any bot sends.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most header fields in an answer's head.
const MAX_HEADERS: usize = 128;
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
    pub status: u16,
    pub content_type: Option<String>,
    /// The body, cut at the limit the caller gave.
    pub body: Vec<u8>,
    /// Whether the connection can carry another request: the whole answer
    /// was read, nothing more came, and neither side asked to close.
    pub reusable: bool,
}

/// Writes `request` (head and body, already in HTTP/1.1 form) to `io` and
/// reads the answer, at most `max_body` bytes of its body. `buffer` is the
/// connection's read buffer: empty between exchanges.
pub async fn exchange<T>(
    io: &mut T,
    buffer: &mut Vec<u8>,
    request: &[u8],
    max_body: usize,
) -> Result<Answer, ExchangeError>
where
    T: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    write_request(io, request).await?;
    let mut wire = Wire {
        io,
        buffer,
        start: 0,
    };
    let answer = read_answer(&mut wire, max_body)
        .await
        .map_err(ExchangeError::Failed);
    let leftover = wire.start < wire.buffer.len();
    wire.buffer.clear();
    if wire.buffer.capacity() > BUFFER_KEPT {
        *wire.buffer = Vec::new();
    }
    answer.map(|mut answer| {
        // Bytes past the answer mean a bot out of step with us.
        answer.reusable &= !leftover;
        answer
    })
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
    io: &'a mut T,
    buffer: &'a mut Vec<u8>,
    /// Where the unused bytes start in `buffer`.
    start: usize,
}

impl<T: AsyncRead + Unpin + ?Sized> Wire<'_, T> {
    /// What was read and not yet used.
    fn unused(&self) -> &[u8] {
        &self.buffer[self.start..]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads more; `false` at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > READ_SIZE {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.reserve(READ_SIZE);
        Ok(self.io.read_buf(self.buffer).await? > 0)
    }

    /// Reads more, or fails with `what` at the end of the stream.
    async fn fill_or(&mut self, what: &str) -> io::Result<()> {
        if self.fill().await? {
            Ok(())
        } else {
            Err(invalid(format!("the bot closed the connection {what}")))
        }
    }

    /// The next line (without its CRLF), consumed; at most `MAX_HEAD_BYTES`.
    async fn line(&mut self, what: &str) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = memchr::memmem::find(self.unused(), b"\r\n") {
                let line = self.unused()[..end].to_vec();
                self.consume(end + 2);
                return Ok(line);
            }
            if self.unused().len() > MAX_HEAD_BYTES {
                return Err(invalid(format!("{what} is over {MAX_HEAD_BYTES} bytes")));
            }
            self.fill_or(&format!("in {what}")).await?;
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
    status: u16,
    content_type: Option<String>,
    framing: Framing,
    /// The bot keeps the connection open after this answer.
    keep_alive: bool,
}

async fn read_answer<T>(wire: &mut Wire<'_, T>, max_body: usize) -> io::Result<Answer>
where
    T: AsyncRead + Unpin + ?Sized,
{
    let head = loop {
        let head = read_head(wire).await?;
        // An interim answer (100 Continue, 103 Early Hints) comes before
        // the real one.
        if !(100..200).contains(&head.status) {
            break head;
        }
        if head.status == 101 {
            return Err(invalid("the bot switched protocols".into()));
        }
    };
    let mut body = Vec::new();
    let whole = match head.framing {
        Framing::Empty => true,
        Framing::Length(length) => read_length(wire, length, max_body, &mut body).await?,
        Framing::Chunked => read_chunked(wire, max_body, &mut body).await?,
        Framing::UntilClose => {
            read_to_close(wire, max_body, &mut body).await?;
            false
        }
    };
    Ok(Answer {
        status: head.status,
        content_type: head.content_type,
        body,
        reusable: whole && head.keep_alive,
    })
}

/// Reads and parses one answer head.
async fn read_head<T>(wire: &mut Wire<'_, T>) -> io::Result<Head>
where
    T: AsyncRead + Unpin + ?Sized,
{
    loop {
        if let Some((length, head)) = parse_head(wire.unused())? {
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
        wire.fill_or(what).await?;
    }
}

/// The head at the start of `bytes` and its length, or `None` while it is
/// incomplete.
fn parse_head(bytes: &[u8]) -> io::Result<Option<(usize, Head)>> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let length = match response.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => {
            return Err(invalid(format!(
                "the bot's answer is not HTTP/1.1: {error}"
            )));
        }
    };
    let status = response.code.unwrap_or_default();
    // HTTP/1.0 closes after each answer unless told otherwise.
    let mut keep_alive = response.version == Some(1);
    let mut content_type = None;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    for field in response.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(String::from_utf8_lossy(field.value).into_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            // Repeated or listed values must agree (RFC 9112 §6.3).
            for value in field.value.split(|&b| b == b',') {
                let value = std::str::from_utf8(value.trim_ascii())
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
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
            // The last coding decides; only a later field can follow.
            transfer_encoding = Some(field.value);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in field.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && response.version == Some(0) {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if let Some(codings) = transfer_encoding {
        let last = codings.rsplit(|&b| b == b',').next().unwrap_or_default();
        if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else if let Some(length) = content_length {
        Framing::Length(length)
    } else {
        Framing::UntilClose
    };
    Ok(Some((
        length,
        Head {
            status,
            content_type,
            framing,
            keep_alive,
        },
    )))
}

/// Reads a body of `length` bytes into `body`, keeping at most `max_body`;
/// `true` when all of it was read.
async fn read_length<T>(
    wire: &mut Wire<'_, T>,
    length: u64,
    max_body: usize,
    body: &mut Vec<u8>,
) -> io::Result<bool>
where
    T: AsyncRead + Unpin + ?Sized,
{
    let wanted = usize::try_from(length).unwrap_or(usize::MAX).min(max_body);
    read_into(wire, wanted, body, "in the middle of its answer").await?;
    Ok(wanted as u64 == length)
}

/// Appends `n` bytes of the connection to `body`.
async fn read_into<T>(
    wire: &mut Wire<'_, T>,
    n: usize,
    body: &mut Vec<u8>,
    what: &str,
) -> io::Result<()>
where
    T: AsyncRead + Unpin + ?Sized,
{
    let mut left = n;
    body.reserve(n.min(READ_SIZE * 8));
    while left > 0 {
        if wire.unused().is_empty() {
            wire.fill_or(what).await?;
        }
        let take = left.min(wire.unused().len());
        body.extend_from_slice(&wire.unused()[..take]);
        wire.consume(take);
        left -= take;
    }
    Ok(())
}

/// Reads a chunked body into `body`, keeping at most `max_body`; `true`
/// when all of it, trailers included, was read.
async fn read_chunked<T>(
    wire: &mut Wire<'_, T>,
    max_body: usize,
    body: &mut Vec<u8>,
) -> io::Result<bool>
where
    T: AsyncRead + Unpin + ?Sized,
{
    loop {
        let line = wire.line("a chunk size line").await?;
        let size = chunk_size(&line)?;
        if size == 0 {
            // Trailers, up to the empty line; their fields are not used.
            let mut trailers = 0;
            loop {
                let line = wire.line("the answer's trailers").await?;
                if line.is_empty() {
                    return Ok(true);
                }
                trailers += line.len();
                if trailers > MAX_HEAD_BYTES {
                    return Err(invalid(format!(
                        "the bot's trailers are over {MAX_HEAD_BYTES} bytes"
                    )));
                }
            }
        }
        let room = max_body - body.len();
        let take = usize::try_from(size).unwrap_or(usize::MAX).min(room);
        read_into(wire, take, body, "in the middle of a chunk").await?;
        if take as u64 != size {
            return Ok(false); // cut at the limit: the rest is not read
        }
        let end = wire.line("a chunk's end").await?;
        if !end.is_empty() {
            return Err(invalid(
                "a chunk of the bot's answer is longer than its size".into(),
            ));
        }
    }
}

/// The size at the start of a chunk-size line (hex digits, then perhaps
/// `;extensions`).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    std::str::from_utf8(digits)
        .ok()
        .filter(|d| !d.is_empty() && d.len() <= 16)
        .and_then(|d| u64::from_str_radix(d, 16).ok())
        .ok_or_else(|| {
            invalid(format!(
                "the bot's answer has an invalid chunk size {:?}",
                String::from_utf8_lossy(&line[..line.len().min(32)])
            ))
        })
}

/// Reads until the bot closes the connection, keeping at most `max_body`.
async fn read_to_close<T>(
    wire: &mut Wire<'_, T>,
    max_body: usize,
    body: &mut Vec<u8>,
) -> io::Result<()>
where
    T: AsyncRead + Unpin + ?Sized,
{
    loop {
        let take = wire.unused().len().min(max_body - body.len());
        body.extend_from_slice(&wire.unused()[..take]);
        wire.consume(take);
        if body.len() == max_body || !wire.fill().await? {
            return Ok(());
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
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

    #[tokio::test]
    async fn content_length_answers_in_any_pieces() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"body\":\"hi\"}";
        for piece in [1, 2, 7, 64, answer.len()] {
            let (result, seen) = answered(answer, piece, false).await;
            assert_eq!(seen, REQUEST);
            assert_eq!(
                result.expect("answer"),
                ok(200, Some("application/json"), b"{\"body\":\"hi\"}", true),
                "in pieces of {piece}"
            );
        }
    }

    #[tokio::test]
    async fn chunked_answers_with_extensions_and_trailers() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                       5;name=value\r\n{\"bod\r\n8\r\ny\":\"hi\"}\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for piece in [1, 3, answer.len()] {
            let (result, _) = answered(answer, piece, false).await;
            assert_eq!(
                result.expect("answer"),
                ok(200, None, b"{\"body\":\"hi\"}", true)
            );
        }
    }

    #[tokio::test]
    async fn bodies_to_the_close_and_closing_answers_are_not_reused() {
        let (result, _) = answered(b"HTTP/1.1 200 OK\r\n\r\n{\"body\":\"x\"}", 4, true).await;
        assert_eq!(
            result.expect("answer"),
            ok(200, None, b"{\"body\":\"x\"}", false)
        );
        let (result, _) = answered(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
            100,
            true,
        )
        .await;
        assert_eq!(result.expect("answer"), ok(200, None, b"{}", false));
        let (result, _) = answered(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            100,
            false,
        )
        .await;
        assert_eq!(
            result.expect("answer"),
            ok(200, None, b"{}", false),
            "HTTP/1.0"
        );
        let (result, _) = answered(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n{}",
            100,
            false,
        )
        .await;
        assert_eq!(
            result.expect("answer"),
            ok(200, None, b"{}", true),
            "HTTP/1.0 kept alive"
        );
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

    #[tokio::test]
    async fn invalid_answers_fail_with_what_was_wrong() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "the bot closed the connection without answering"),
            (
                b"HTTP/1.1 200 OK\r\nContent-",
                "the bot closed the connection in the middle of its answer's head",
            ),
            (
                b"SMTP ready\r\n\r\n",
                "the bot's answer is not HTTP/1.1: invalid HTTP version",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}",
                "the bot closed the connection in the middle of its answer",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "the bot's answer has an invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
                "the bot's answer has conflicting Content-Lengths",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "the bot's answer has an invalid chunk size \"zz\"",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n0\r\n\r\n",
                "a chunk of the bot's answer is longer than its size",
            ),
        ];
        for (answer, message) in cases {
            let (result, _) = answered(answer, 100, true).await;
            let error = result.expect_err(message);
            assert!(matches!(error, ExchangeError::Failed(_)), "{error:?}");
            assert_eq!(error.to_string(), message);
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
}

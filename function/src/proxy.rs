//! The proxy bot: hands each request to a bot behind an HTTP URL, and its
//! answer back: whole, or (an NDJSON answer, DESIGN §11) line by line as
//! the bot writes it.

use crate::bot::Bot;
use crate::reply::no_reply;
use crate::writer::ReplyWriter;
use reqwest::header::CONTENT_TYPE;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use xmpp_lambda_shared::signing::{Signer, unix_seconds};
use xmpp_lambda_shared::{BotResponse, Request, is_reply_stream};

/// How long the proxy waits for the bot unless `COMPONENT_POST_TIMEOUT` says.
pub const DEFAULT_POST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the proxy waits for each line of a streamed answer unless
/// `COMPONENT_STREAM_IDLE_TIMEOUT` says (the connector's default).
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle connection to the bot stays in the pool: under the
/// 5-second keep-alive of common HTTP servers (Node.js, uvicorn, Apache),
/// so a connection the bot has already closed is not reused — above all
/// after Lambda froze the function between invocations, when the close
/// went unnoticed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A POST that fails this soon with the connection closed and not a byte
/// of answer is sent once more, on a new connection: the bot closed a
/// kept-alive connection just as the request went out, so it never saw it
/// (servers with a shorter keep-alive than [`POOL_IDLE_TIMEOUT`], or a
/// close that arrived during a freeze).
const STALE_CONNECTION_WINDOW: Duration = Duration::from_secs(1);

/// The longest line of a streamed answer, as the connector reads one: a
/// reply is at most 64 KiB of stanza, and its JSON a little more.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a stream with a longer line stops.
const TOO_LONG: &str = "a line of the bot's stream is over 65536 bytes";

/// POSTs the request JSON to `COMPONENT_POST_URL` and captures the answer
/// verbatim, exactly as the connector's http transport would: so a bot
/// written for mod_component_http runs unchanged behind the queues.
#[derive(Debug, Clone)]
pub struct ProxyBot {
    /// Built once per process: it pools connections across invocations of a
    /// warm function.
    client: reqwest::Client,
    /// Where the bot listens.
    url: reqwest::Url,
    /// The URL's scheme, host and port: what logs show, since a bot URL's
    /// path or query often carries a secret token.
    origin: String,
    /// Signs every POST with `COMPONENT_POST_SECRET` (DESIGN §9) so the bot
    /// can verify it came from us; `None` sends no signature headers.
    signer: Option<Signer>,
    /// How long the bot may take for a whole answer, or for the head of a
    /// streamed one (`COMPONENT_POST_TIMEOUT`).
    timeout: Duration,
    /// How long a streamed answer may take for each line
    /// (`COMPONENT_STREAM_IDLE_TIMEOUT`); the whole stream is bounded by
    /// the invocation's own deadline.
    idle_timeout: Duration,
}

impl ProxyBot {
    /// A proxy to `url` that gives up after `timeout` (then: no response).
    pub fn new(url: reqwest::Url, timeout: Duration) -> Result<Self, reqwest::Error> {
        // No client-wide timeout: it would cut a streamed answer short.
        let client = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()?;
        let origin = url.origin().ascii_serialization();
        Ok(ProxyBot {
            client,
            url,
            origin,
            signer: None,
            timeout,
            idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
        })
    }

    /// The same proxy, waiting at most `idle` for each line of a streamed
    /// answer (then the stream stops, as the connector stops one).
    pub fn with_stream_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// The same proxy, signing every POST with `signer`: headers
    /// `X-XMPP-Lambda-Timestamp` and `X-XMPP-Lambda-Signature`.
    pub fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The bot's URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// One POST of `body`, signed when a secret is set.
    async fn post(&self, body: &[u8]) -> Result<reqwest::Response, reqwest::Error> {
        let mut post = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(signer) = &self.signer {
            for (name, value) in signer.headers(unix_seconds(SystemTime::now()), body) {
                post = post.header(name, value);
            }
        }
        post.body(body.to_vec()).send().await
    }
}

impl ProxyBot {
    /// POSTs `request` and waits for the head of the answer until
    /// `deadline`; the outcome to give when there is none.
    async fn ask(
        &self,
        request: &Request,
        deadline: Instant,
    ) -> Result<reqwest::Response, BotResponse> {
        // The exact bytes sent are the bytes signed.
        let body = match serde_json::to_vec(request) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "cannot encode the request");
                return Err(BotResponse::no_response());
            }
        };
        let started = Instant::now();
        let sent = tokio::time::timeout_at(deadline, async {
            let mut sent = self.post(&body).await;
            if let Err(error) = &sent
                && started.elapsed() < STALE_CONNECTION_WINDOW
                && closed_before_answer(error)
            {
                tracing::debug!(bot = %self.origin, "the bot closed the connection before answering: sending once more");
                sent = self.post(&body).await;
            }
            sent
        })
        .await;
        match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                tracing::warn!(bot = %self.origin, error = %without_url(error), "no response from the bot");
                Err(BotResponse::no_response())
            }
            Err(_) => {
                tracing::warn!(bot = %self.origin, timeout = ?self.timeout, "no response from the bot in time");
                Err(BotResponse::no_response())
            }
        }
    }

    /// Reads a whole answer's body until `deadline`.
    async fn whole(&self, response: reqwest::Response, deadline: Instant) -> BotResponse {
        let status = response.status().as_u16();
        let content_type = content_type(&response);
        match tokio::time::timeout_at(deadline, response.bytes()).await {
            Ok(Ok(body)) => BotResponse::from_http(status, content_type.as_deref(), &body),
            Ok(Err(error)) => {
                // Half an answer is no answer: the reply rules must not act on it.
                tracing::warn!(bot = %self.origin, status, error = %without_url(error), "the bot's answer broke off");
                BotResponse::no_response()
            }
            Err(_) => {
                tracing::warn!(bot = %self.origin, status, "the bot's answer did not end in time");
                BotResponse::no_response()
            }
        }
    }

    /// Passes a streamed answer's lines on as they complete. What ends it
    /// early ends the stream as the connector would end it: a line over
    /// the limit or not UTF-8, or a broken connection, as `500`; no line
    /// within the idle timeout as no response. Before any line, a broken
    /// answer is no answer (retried over SQS).
    async fn relay(
        &self,
        mut response: reqwest::Response,
        replies: &mut ReplyWriter,
    ) -> BotResponse {
        let mut lines = LineReader::default();
        loop {
            let chunk = match tokio::time::timeout(self.idle_timeout, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(error)) => {
                    tracing::warn!(bot = %self.origin, error = %without_url(error), "the bot's stream broke");
                    return stopped(replies, 500, "the bot's stream broke");
                }
                Err(_) => {
                    tracing::warn!(bot = %self.origin, idle = ?self.idle_timeout, "the bot's stream stalled");
                    // As the connector stops a stalled stream: a timeout.
                    return BotResponse::no_response();
                }
            };
            let complete = match lines.feed(&chunk) {
                Ok(complete) => complete,
                Err(reason) => {
                    tracing::warn!(bot = %self.origin, reason, "the bot's stream is refused");
                    return stopped(replies, 500, reason);
                }
            };
            for line in complete {
                if replies.send_line(line).await.is_err() {
                    // Nobody reads any more: stop reading too.
                    return no_reply();
                }
            }
        }
        match lines.finish() {
            Ok(Some(line)) => {
                if replies.send_line(line).await.is_err() {
                    return no_reply();
                }
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(bot = %self.origin, reason, "the bot's stream is refused");
                return stopped(replies, 500, reason);
            }
        }
        no_reply()
    }
}

/// The outcome of a stream stopped early: `status` once lines went out;
/// before any, no response (a broken answer is no answer).
fn stopped(replies: &ReplyWriter, status: u16, reason: &str) -> BotResponse {
    if replies.lines_sent() == 0 {
        BotResponse::no_response()
    } else {
        BotResponse::from_http(status, Some("text/plain; charset=utf-8"), reason.as_bytes())
    }
}

fn content_type(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl Bot for ProxyBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        let deadline = Instant::now() + self.timeout;
        match self.ask(request, deadline).await {
            Ok(response) => self.whole(response, deadline).await,
            Err(outcome) => outcome,
        }
    }

    async fn answer_streamed(&self, request: &Request, replies: &mut ReplyWriter) -> BotResponse {
        let deadline = Instant::now() + self.timeout;
        let response = match self.ask(request, deadline).await {
            Ok(response) => response,
            Err(outcome) => return outcome,
        };
        if is_reply_stream(
            response.status().as_u16(),
            content_type(&response).as_deref(),
        ) {
            self.relay(response, replies).await
        } else {
            self.whole(response, deadline).await
        }
    }
}

/// Splits a stream's bytes into lines as they arrive, holding no more than
/// the current line: blank lines are skipped, `\r\n` ends a line too.
#[derive(Debug, Default)]
struct LineReader {
    /// The current line so far.
    pending: Vec<u8>,
}

impl LineReader {
    /// The lines `chunk` completes, or why the stream must stop.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<String>, &'static str> {
        let mut complete = Vec::new();
        for piece in chunk.split_inclusive(|byte| *byte == b'\n') {
            // A line at the limit, and its `\r\n`.
            if self.pending.len() + piece.len() > MAX_LINE_BYTES + 2 {
                return Err(TOO_LONG);
            }
            self.pending.extend_from_slice(piece);
            if self.pending.last() != Some(&b'\n') {
                // As the connector reads: no line end within the limit.
                if self.pending.len() > MAX_LINE_BYTES {
                    return Err(TOO_LONG);
                }
            } else {
                let line = std::mem::take(&mut self.pending);
                if let Some(line) = line_text(&line)? {
                    complete.push(line);
                }
            }
        }
        Ok(complete)
    }

    /// The last line, when the stream ended without a line end after it.
    fn finish(self) -> Result<Option<String>, &'static str> {
        line_text(&self.pending)
    }
}

/// A line without its end, or `None` when blank.
fn line_text(line: &[u8]) -> Result<Option<String>, &'static str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_LINE_BYTES {
        return Err(TOO_LONG);
    }
    let text = std::str::from_utf8(line).map_err(|_| "a line of the bot's stream is not UTF-8")?;
    Ok((!text.trim().is_empty()).then(|| text.to_owned()))
}

/// Whether the connection closed before a byte of the answer came (as when
/// the bot had already closed a kept-alive connection): not a timeout, not
/// a refused connection, not a bad answer.
fn closed_before_answer(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    if error.is_timeout() || error.is_connect() || error.is_decode() || error.is_body() {
        return false;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error without the URL reqwest puts in its message (see `origin`).
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_where_they_end_whatever_the_chunks() {
        let mut reader = LineReader::default();
        assert_eq!(
            reader
                .feed(b"{\"body\":\"a\"}\r\n\n  \n{\"bo")
                .expect("fine"),
            ["{\"body\":\"a\"}"]
        );
        assert_eq!(
            reader.feed(b"dy\":\"b\"}").expect("fine"),
            Vec::<String>::new()
        );
        assert_eq!(
            reader.feed(b"\n{\"body\":\"c\"}").expect("fine"),
            ["{\"body\":\"b\"}"]
        );
        assert_eq!(
            reader.finish().expect("fine").as_deref(),
            Some("{\"body\":\"c\"}")
        );
    }

    #[test]
    fn a_line_over_the_limit_or_not_utf8_stops_the_stream() {
        let mut reader = LineReader::default();
        let at_limit = vec![b'x'; MAX_LINE_BYTES];
        assert_eq!(reader.feed(&at_limit).expect("at the limit").len(), 0);
        assert_eq!(reader.feed(b"\n").expect("at the limit").len(), 1);
        let mut reader = LineReader::default();
        assert!(reader.feed(&at_limit).is_ok());
        assert_eq!(
            reader.feed(b"x"),
            Err("a line of the bot's stream is over 65536 bytes")
        );
        let mut reader = LineReader::default();
        assert_eq!(
            reader.feed(b"\xff\n"),
            Err("a line of the bot's stream is not UTF-8")
        );
    }

    #[tokio::test]
    async fn logs_keep_secrets_in_the_url_out() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let url: reqwest::Url = format!("http://127.0.0.1:{port}/hook/s3cret?token=s3cret")
            .parse()
            .expect("url");
        let bot = ProxyBot::new(url.clone(), Duration::from_secs(5)).expect("proxy");
        assert_eq!(bot.origin, format!("http://127.0.0.1:{port}"));
        let error = reqwest::get(url).await.expect_err("nobody listens");
        let text = without_url(error);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("connect"), "{text}");
    }
}

//! A bot's answer that is a stream of replies (DESIGN §11): `200` with
//! `application/x-ndjson` or `application/jsonl`, one reply object per
//! line. The lines are handed out as they complete; a line may take at
//! most [`MAX_LINE_BYTES`], and nothing but the current line is held, so a
//! stream costs the same memory however long it runs.
//!
//! How long a line may take is the caller's to bound (it holds the
//! stream's idle and total timeouts); [`ReplyStream::next_line`] only
//! reads.

use super::bot_client::Pending;
use std::io;

/// The longest line of a stream: a reply is at most 64 KiB of stanza, and
/// its JSON a little more.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a stream stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error("a line of the bot's stream is over {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    /// A line is not UTF-8.
    #[error("a line of the bot's stream is not UTF-8")]
    NotUtf8,
    /// The stream's connection failed, or its framing was bad.
    #[error("the bot's stream broke: {0}")]
    Broken(#[source] io::Error),
}

/// Where the stream's bytes come from.
enum Source<'c> {
    /// Straight from the bot, on one of its client's connections.
    Direct(Pending<'c>),
    /// Through the proxy the environment names.
    Proxied(reqwest::Response),
}

/// A stream of reply lines.
pub struct ReplyStream<'c> {
    /// Where the bytes come from.
    source: Source<'c>,
    /// Bytes read and not yet handed out: the current line, and perhaps
    /// the start of the next.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no line end.
    scanned: usize,
    /// The body has ended: what is pending is the last line.
    ended: bool,
}

impl<'c> ReplyStream<'c> {
    pub(super) fn direct(pending: Pending<'c>) -> ReplyStream<'c> {
        ReplyStream::new(Source::Direct(pending))
    }

    pub(super) fn proxied(response: reqwest::Response) -> ReplyStream<'c> {
        ReplyStream::new(Source::Proxied(response))
    }

    fn new(source: Source<'c>) -> ReplyStream<'c> {
        ReplyStream {
            source,
            pending: Vec::new(),
            scanned: 0,
            ended: false,
        }
    }

    /// The next line that is not blank, without its line end (`\n` or
    /// `\r\n`); `None` at the end of the stream. Cancel-safe: bytes read
    /// before a cancelled call are kept for the next.
    pub async fn next_line(&mut self) -> Result<Option<String>, StreamError> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.pending[self.scanned..]) {
                let end = self.scanned + at;
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                self.scanned = 0;
                match line_text(&line[..end])? {
                    Some(text) => return Ok(Some(text)),
                    None => continue,
                }
            }
            self.scanned = self.pending.len();
            if self.pending.len() > MAX_LINE_BYTES {
                return Err(StreamError::LineTooLong);
            }
            if self.ended {
                let last = std::mem::take(&mut self.pending);
                self.scanned = 0;
                return line_text(&last);
            }
            // At most the room left in a line, and one byte more to tell a
            // line at the limit from one past it.
            let room = MAX_LINE_BYTES + 1 - self.pending.len();
            self.ended = !self.read_more(room).await?;
        }
    }

    /// Appends what has arrived to `pending`, at most `max` bytes; `false`
    /// once the body has ended.
    async fn read_more(&mut self, max: usize) -> Result<bool, StreamError> {
        match &mut self.source {
            Source::Direct(pending) => pending
                .read_more(&mut self.pending, max)
                .await
                .map_err(StreamError::Broken),
            Source::Proxied(response) => match response.chunk().await {
                Ok(Some(chunk)) => {
                    // A chunk over the room makes the line too long anyway.
                    let take = chunk.len().min(max);
                    self.pending.extend_from_slice(&chunk[..take]);
                    Ok(true)
                }
                Ok(None) => Ok(false),
                Err(error) => Err(StreamError::Broken(io::Error::other(error))),
            },
        }
    }

    /// Done with the stream: a direct connection that carried it to its
    /// end goes back to the client for the next request.
    pub fn finish(self) {
        if let Source::Direct(pending) = self.source {
            pending.finish(self.ended && self.pending.is_empty());
        }
    }
}

/// A line as text; `None` when it is blank.
fn line_text(line: &[u8]) -> Result<Option<String>, StreamError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    String::from_utf8(line.to_vec())
        .map(Some)
        .map_err(|_| StreamError::NotUtf8)
}

//! Asking the bot within the invocation's time: its replies go on as it
//! writes them ([`drive`]), to whatever reads them for the trigger.

use crate::bot::Bot;
use crate::reply::no_reply;
use crate::writer::{Gathered, LINE_BUFFER, Part, ReplyWriter};
use futures::StreamExt;
use futures::channel::mpsc;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_shared::{BotResponse, Request, is_reply_stream};

/// Asks the bot for a streamed answer, each line into `tx` as it comes and
/// the bot's outcome last; gives up at `deadline` (then the outcome is no
/// response, which the reply rules and the retry policy already handle).
///
/// A whole answer that is itself NDJSON is handed on line by line too, so
/// every trigger treats it as the stream it is.
pub(crate) async fn drive<B: Bot>(
    bot: &B,
    request: &Request,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Part>,
) {
    let mut writer = ReplyWriter::new(tx);
    let asked = bot.answer_streamed(request, &mut writer);
    let mut last = match deadline {
        None => asked.await,
        Some(deadline) => match tokio::time::timeout_at(deadline, asked).await {
            Ok(last) => last,
            Err(_) => {
                tracing::warn!(from = %request.from, "the bot did not answer before the function's deadline");
                BotResponse::no_response()
            }
        },
    };
    if is_reply_stream(last.status, last.content_type.as_deref()) {
        for line in last.body.lines().filter(|line| !line.trim().is_empty()) {
            if writer.send_line(line.to_owned()).await.is_err() {
                break;
            }
        }
        last = no_reply();
    }
    writer.finish(last).await;
}

/// The bot's answer whole: its outcome when it wrote no line, else `200`
/// NDJSON with its lines (corrections folded into what they correct).
/// For a Function URL that does not stream, and for direct invokes.
pub(crate) async fn answer_by<B: Bot>(
    bot: &B,
    request: &Request,
    deadline: Option<Instant>,
) -> BotResponse {
    let (tx, rx) = mpsc::channel(LINE_BUFFER);
    let ((), answer) = futures::future::join(drive(bot, request, deadline, tx), gather(rx)).await;
    answer
}

/// Reads a streamed answer into one.
async fn gather(mut rx: mpsc::Receiver<Part>) -> BotResponse {
    let mut gathered = Gathered::default();
    let mut last = None;
    while let Some(part) = rx.next().await {
        match part {
            Part::Line(line) => {
                if !gathered.push(line) {
                    // Full: the bot's next send fails, and it stops.
                    rx.close();
                }
            }
            Part::Last(outcome) => last = Some(outcome),
        }
    }
    gathered.answer(last)
}

/// What `bot` answers `request`, as one HTTP-shaped outcome: exactly what
/// a Function URL that does not stream returns for it. A bot's tests can
/// check a streamed answer this way (its lines are the NDJSON body).
///
/// ```
/// use xmpp_lambda_function::{Bot, BotResponse, Reply, ReplyWriter, Request, buffered_answer, no_reply};
///
/// struct Countdown;
///
/// impl Bot for Countdown {
///     async fn answer(&self, _request: &Request) -> BotResponse {
///         no_reply()
///     }
///
///     async fn answer_streamed(&self, _request: &Request, replies: &mut ReplyWriter) -> BotResponse {
///         for n in ["3", "2", "1"] {
///             if replies.send(Reply::text(n)).await.is_err() {
///                 break;
///             }
///         }
///         no_reply()
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let request: Request = xmpp_lambda_function::serde_json::from_str(
///     r#"{"to":"bot@bot.example.com","from":"alice@example.com/a","kind":"message","stanza":"<message/>"}"#,
/// ).unwrap();
/// let answer = buffered_answer(&Countdown, &request).await;
/// assert_eq!(answer.content_type.as_deref(), Some("application/x-ndjson"));
/// assert_eq!(answer.body, "{\"body\":\"3\"}\n{\"body\":\"2\"}\n{\"body\":\"1\"}\n");
/// # });
/// ```
pub async fn buffered_answer<B: Bot>(bot: &B, request: &Request) -> BotResponse {
    answer_by(bot, request, None).await
}

/// `deadline` moved `reserve` earlier (but not into the past), so the
/// handler still has time to report after the bot's time is up.
pub(crate) fn reserve(deadline: Option<Instant>, reserve: Duration) -> Option<Instant> {
    deadline.map(|deadline| {
        deadline
            .checked_sub(reserve)
            .filter(|at| *at > Instant::now())
            .unwrap_or_else(Instant::now)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::{Reply, text_reply};
    use crate::writer::{MAX_BUFFERED_BYTES, NDJSON, StreamClosed};

    fn request() -> Request {
        Request {
            id: Some("m1".into()),
            ..Request::chat("alice@example.com/phone", "bot@bot.example.com", "hi")
        }
    }

    /// A bot written before streams: `answer` only.
    struct Old;

    impl Bot for Old {
        async fn answer(&self, _request: &Request) -> BotResponse {
            text_reply("as ever")
        }
    }

    #[tokio::test]
    async fn a_bot_without_streams_answers_exactly_as_before() {
        assert_eq!(
            buffered_answer(&Old, &request()).await,
            text_reply("as ever")
        );
        // Asked for a stream, it writes no line and gives its one answer.
        let (tx, mut rx) = mpsc::channel(LINE_BUFFER);
        drive(&Old, &request(), None, tx).await;
        match rx.next().await {
            Some(Part::Last(answer)) => assert_eq!(answer, text_reply("as ever")),
            other => panic!("expected the whole answer, got {other:?}"),
        }
        assert!(rx.next().await.is_none());
    }

    /// Writes `count` lines of `bytes` each, then `done`; records how the
    /// last send went.
    struct Writer {
        count: usize,
        bytes: usize,
        done: BotResponse,
        closed: std::sync::Mutex<Option<Result<(), StreamClosed>>>,
    }

    impl Bot for Writer {
        async fn answer(&self, _request: &Request) -> BotResponse {
            BotResponse::no_response()
        }

        async fn answer_streamed(
            &self,
            _request: &Request,
            replies: &mut ReplyWriter,
        ) -> BotResponse {
            let mut last = Ok(());
            for n in 0..self.count {
                // Every line the same length: a three-digit number, padded.
                let text = format!("{n:03}") + &"x".repeat(self.bytes.saturating_sub(3));
                last = replies.send(Reply::text(text)).await;
                if last.is_err() {
                    break;
                }
            }
            *self.closed.lock().expect("lock") = Some(last);
            self.done.clone()
        }
    }

    fn writer(count: usize, bytes: usize, done: BotResponse) -> Writer {
        Writer {
            count,
            bytes,
            done,
            closed: std::sync::Mutex::new(None),
        }
    }

    #[tokio::test]
    async fn a_streamed_answer_buffered_is_its_lines_as_ndjson() {
        let bot = writer(3, 1, text_reply("end"));
        let answer = buffered_answer(&bot, &request()).await;
        assert_eq!(
            (answer.status, answer.content_type.as_deref()),
            (200, Some(NDJSON))
        );
        assert_eq!(
            answer.body,
            "{\"body\":\"000\"}\n{\"body\":\"001\"}\n{\"body\":\"002\"}\n{\"body\":\"end\"}\n"
        );
    }

    #[tokio::test]
    async fn a_whole_ndjson_answer_is_handed_on_line_by_line() {
        struct Ndjson;
        impl Bot for Ndjson {
            async fn answer(&self, _request: &Request) -> BotResponse {
                BotResponse::from_http(
                    200,
                    Some("application/jsonl; charset=utf-8"),
                    b"{\"body\":\"a\"}\r\n\n{\"body\":\"b\"}",
                )
            }
        }
        let (tx, rx) = mpsc::channel(LINE_BUFFER);
        let ((), parts) = futures::future::join(
            drive(&Ndjson, &request(), None, tx),
            rx.collect::<Vec<Part>>(),
        )
        .await;
        let shown: Vec<String> = parts.iter().map(|part| format!("{part:?}")).collect();
        assert_eq!(
            shown,
            [
                r#"Line("{\"body\":\"a\"}")"#,
                r#"Line("{\"body\":\"b\"}")"#,
                r#"Last(BotResponse { status: 204, content_type: None, body: "" })"#,
            ]
        );
    }

    #[tokio::test]
    async fn a_full_buffer_closes_the_stream_and_the_bot_hears_it() {
        let line = 64 * 1024;
        // `{"body":"…"}` and a line end around each.
        let fits = MAX_BUFFERED_BYTES / (line + 12);
        let bot = writer(fits + 40, line, crate::reply::no_reply());
        let answer = buffered_answer(&bot, &request()).await;
        assert_eq!(answer.body.lines().count(), fits);
        assert_eq!(*bot.closed.lock().expect("lock"), Some(Err(StreamClosed)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_stops_a_bot_and_keeps_its_lines() {
        struct Slow;
        impl Bot for Slow {
            async fn answer(&self, _request: &Request) -> BotResponse {
                tokio::time::sleep(Duration::from_secs(60)).await;
                text_reply("late")
            }

            async fn answer_streamed(
                &self,
                _request: &Request,
                replies: &mut ReplyWriter,
            ) -> BotResponse {
                let _ = replies.send(Reply::text("early")).await;
                self.answer(_request).await
            }
        }
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        let answer = answer_by(&Slow, &request(), deadline).await;
        assert_eq!(answer.body, "{\"body\":\"early\"}\n");
        assert_eq!(
            answer_by(&Old, &request(), Some(Instant::now())).await,
            text_reply("as ever"),
            "a bot that is ready is not cut off"
        );
        struct Silent;
        impl Bot for Silent {
            async fn answer(&self, _request: &Request) -> BotResponse {
                std::future::pending().await
            }
        }
        let answer = answer_by(&Silent, &request(), deadline).await;
        assert_eq!(answer, BotResponse::no_response());
    }
}

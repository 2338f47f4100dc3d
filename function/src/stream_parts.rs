//! A streamed answer over SQS (DESIGN §11): each line a reply envelope of
//! its own, sent as soon as it exists, in order (`seq` 0, 1, 2…), the last
//! one marked `last`. The connector applies one request's parts in order
//! and once each, so a retried request's parts (same id, same `seq`) are
//! repeats it drops.
//!
//! Corrections come at most one per edit interval, as the connector would
//! send them on: one that a newer correction replaces before its turn is
//! never a queue message (and never a cost).

use crate::reply::no_reply;
use crate::reply_queue::{Outgoing, fitted_reply_json, send_in_batches};
use crate::writer::{Part, StreamEnd, is_correction, stream_end};
use futures::StreamExt;
use futures::channel::mpsc;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_shared::{BotResponse, RequestEnvelope, conversation_id};

/// Where a request's streamed answer goes: the reply queue.
pub(crate) struct QueuedParts<'a> {
    /// The SQS client the function already has.
    pub client: &'a aws_sdk_sqs::Client,
    /// The reply queue.
    pub queue_url: &'a str,
    /// The request the stream answers: every part carries it and its id.
    pub envelope: &'a RequestEnvelope,
}

impl QueuedParts<'_> {
    /// Sends part `seq`; `false` when the reply queue did not take it.
    pub(crate) async fn send(&self, seq: u64, response: BotResponse, last: bool) -> bool {
        let part = self.envelope.reply_part(response, seq, last);
        let outgoing = Outgoing {
            index: 0,
            body: fitted_reply_json(&part),
            // One conversation's replies, parts included, stay in order.
            group: conversation_id(&part.request),
            // A part is a repeat only of the same part.
            dedup_id: format!("{}:{seq}", part.id),
        };
        let unsent = send_in_batches(self.client, self.queue_url, vec![outgoing], true).await;
        if !unsent.is_empty() {
            tracing::warn!(
                envelope_id = %self.envelope.id,
                seq,
                "a part of a streamed answer was not queued: the request will be retried"
            );
            return false;
        }
        tracing::debug!(envelope_id = %self.envelope.id, seq, last, "queued a part of a streamed answer");
        true
    }
}

/// What became of a request's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Streamed {
    /// The bot wrote no line: its outcome is a whole answer, sent (or
    /// retried) the usual way.
    Whole(BotResponse),
    /// Every part was sent, the last one marked.
    Sent {
        /// How many parts.
        parts: u64,
    },
    /// A part could not be sent (nor what had to go before the first):
    /// the request should be retried.
    NotSent,
}

/// Sends the lines read from `rx` as parts through `send` (`seq`, the
/// part's outcome, whether it is the last) as they come, corrections at
/// most one per `edit_interval`, then the end. Before the first part,
/// `before_first` must send what has to precede it (the conversation's
/// earlier replies); `false` from it stops the stream unsent.
pub(crate) async fn send_parts(
    mut rx: mpsc::Receiver<Part>,
    edit_interval: Duration,
    before_first: impl AsyncFnOnce() -> bool,
    mut send: impl AsyncFnMut(u64, BotResponse, bool) -> bool,
) -> Streamed {
    let mut before_first = Some(before_first);
    // A correction waiting for its turn.
    let mut pending: Option<String> = None;
    // The next part's number: how many were sent.
    let mut seq: u64 = 0;
    // When the last part went.
    let mut last_sent = Instant::now();
    let last = loop {
        let due = pending.as_ref().map(|_| last_sent + edit_interval);
        let part = tokio::select! {
            part = rx.next() => part,
            () = sleep_until(due) => {
                if let Some(line) = pending.take() {
                    if !send(seq, BotResponse::json(line), false).await {
                        return Streamed::NotSent;
                    }
                    seq += 1;
                    last_sent = Instant::now();
                }
                continue;
            }
        };
        let line = match part {
            Some(Part::Line(line)) => line,
            Some(Part::Last(last)) => break last,
            // The bot's side never ends without its outcome; if it did,
            // it gave none.
            None => break BotResponse::no_response(),
        };
        if seq == 0
            && let Some(before_first) = before_first.take()
            && !before_first().await
        {
            return Streamed::NotSent;
        }
        let wait = seq > 0
            && is_correction(&line)
            && (pending.is_some() || Instant::now() < last_sent + edit_interval);
        if wait {
            // A newer correction: the one waiting is never seen.
            pending = Some(line);
            continue;
        }
        for line in pending.take().into_iter().chain([line]) {
            if !send(seq, BotResponse::json(line), false).await {
                return Streamed::NotSent;
            }
            seq += 1;
            last_sent = Instant::now();
        }
    };
    if seq == 0 {
        return Streamed::Whole(last);
    }
    if let Some(line) = pending {
        if !send(seq, BotResponse::json(line), false).await {
            return Streamed::NotSent;
        }
        seq += 1;
    }
    let last = match stream_end(last) {
        StreamEnd::Line(line) => BotResponse::json(line),
        StreamEnd::Done => no_reply(),
        StreamEnd::Stopped(outcome) => {
            tracing::warn!(
                status = outcome.status,
                parts = seq,
                "the bot stopped its stream with an error: the sender hears it after the lines"
            );
            outcome
        }
    };
    if !send(seq, last, true).await {
        return Streamed::NotSent;
    }
    Streamed::Sent { parts: seq + 1 }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! The order and spacing of parts, under paused time; what they become
    //! on a real queue is tested against moto (tests/stream_parts.rs).
    use super::*;
    use crate::answer::drive;
    use crate::bot::Bot;
    use crate::reply::Reply;
    use crate::writer::{LINE_BUFFER, ReplyWriter};
    use serde_json::{Value, json};
    use std::sync::Mutex;
    use xmpp_lambda_shared::Request;

    fn request() -> Request {
        Request {
            id: Some("m1".into()),
            ..Request::chat("alice@example.com/phone", "story@bot.example.com", "tell")
        }
    }

    /// Writes `lines`, each after its delay, then answers `last`.
    struct Scripted {
        lines: Vec<(u64, Reply)>,
        last: BotResponse,
    }

    impl Bot for Scripted {
        async fn answer(&self, _request: &Request) -> BotResponse {
            self.last.clone()
        }

        async fn answer_streamed(
            &self,
            _request: &Request,
            replies: &mut ReplyWriter,
        ) -> BotResponse {
            for (delay_ms, reply) in &self.lines {
                tokio::time::sleep(Duration::from_millis(*delay_ms)).await;
                if replies.send(reply.clone()).await.is_err() {
                    break;
                }
            }
            self.last.clone()
        }
    }

    /// A part as sent: when (ms after the start), its number, its
    /// outcome's status and body, and whether it is the last.
    type Sent = (u64, u64, u16, Value, bool);

    async fn stream(
        bot: &Scripted,
        interval_ms: u64,
        fail_at: Option<u64>,
    ) -> (Streamed, Vec<Sent>) {
        let start = Instant::now();
        let sent = Mutex::new(Vec::new());
        let (tx, rx) = mpsc::channel(LINE_BUFFER);
        let request = request();
        let ((), streamed) = futures::future::join(
            drive(bot, &request, None, tx),
            send_parts(
                rx,
                Duration::from_millis(interval_ms),
                async || true,
                async |seq: u64, response: BotResponse, last: bool| {
                    if fail_at == Some(seq) {
                        return false;
                    }
                    let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
                    let at = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                    sent.lock()
                        .expect("lock")
                        .push((at, seq, response.status, body, last));
                    true
                },
            ),
        )
        .await;
        (streamed, sent.into_inner().expect("lock"))
    }

    fn growing(words: &[&str], gap_ms: u64) -> Vec<(u64, Reply)> {
        (0..words.len())
            .map(|n| {
                let text = Reply::text(words[..=n].join(" "));
                (gap_ms, if n == 0 { text } else { text.replacing() })
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn each_line_is_a_part_at_once_and_the_last_is_marked() {
        let bot = Scripted {
            lines: vec![(0, Reply::text("one")), (1500, Reply::text("two"))],
            last: BotResponse::json(r#"{"body":"three"}"#),
        };
        let (streamed, sent) = stream(&bot, 1000, None).await;
        assert_eq!(streamed, Streamed::Sent { parts: 3 });
        assert_eq!(
            sent,
            [
                (0, 0, 200, json!({"body": "one"}), false),
                (1500, 1, 200, json!({"body": "two"}), false),
                (1500, 2, 200, json!({"body": "three"}), true),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_just_ends_gets_a_last_204_and_an_error_is_its_last_part() {
        let bot = Scripted {
            lines: vec![(0, Reply::text("one"))],
            last: crate::reply::no_reply(),
        };
        let (_, sent) = stream(&bot, 1000, None).await;
        assert_eq!(sent[1], (0, 1, 204, Value::Null, true));
        let failing = Scripted {
            lines: vec![(0, Reply::text("one"))],
            last: BotResponse::from_http(503, None, b""),
        };
        let (streamed, sent) = stream(&failing, 1000, None).await;
        assert_eq!(streamed, Streamed::Sent { parts: 2 });
        assert_eq!(sent[1], (0, 1, 503, Value::Null, true));
    }

    #[tokio::test(start_paused = true)]
    async fn corrections_go_at_most_one_per_interval_and_the_last_text_always() {
        let words = [
            "Streams", "let", "a", "bot", "answer", "while", "it", "is", "still", "writing.",
        ];
        let bot = Scripted {
            lines: growing(&words, 300),
            last: crate::reply::no_reply(),
        };
        let (streamed, sent) = stream(&bot, 1000, None).await;
        // 10 lines over 2.7 s: the first, a correction a second after it
        // and after that one, the last text, and the end.
        let summary: Vec<(u64, String)> = sent
            .iter()
            .map(|(at, _, _, body, _)| (*at, body["body"].as_str().unwrap_or("").to_owned()))
            .collect();
        assert_eq!(
            summary,
            [
                (300, "Streams".to_owned()),
                (1300, "Streams let a bot".to_owned()),
                (2300, "Streams let a bot answer while it".to_owned()),
                (3000, words.join(" ")),
                (3000, String::new()),
            ]
        );
        assert!(
            sent[1..4]
                .iter()
                .all(|(_, _, _, body, _)| body["replace"] == true)
        );
        assert_eq!(streamed, Streamed::Sent { parts: 5 });
        let seqs: Vec<u64> = sent.iter().map(|(_, seq, ..)| *seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_correction_waiting_goes_when_its_turn_comes_though_the_bot_is_quiet() {
        let bot = Scripted {
            lines: vec![
                (0, Reply::text("Thinking")),
                (100, Reply::text("Thinking.").replacing()),
                (5000, Reply::text("Done.")),
            ],
            last: crate::reply::no_reply(),
        };
        let (_, sent) = stream(&bot, 1000, None).await;
        let times: Vec<(u64, Value)> = sent
            .iter()
            .map(|(at, _, _, body, _)| (*at, body.clone()))
            .collect();
        assert_eq!(
            times,
            [
                (0, json!({"body": "Thinking"})),
                (1000, json!({"body": "Thinking.", "replace": true})),
                (5100, json!({"body": "Done."})),
                (5100, Value::Null),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_interval_sends_every_correction() {
        let bot = Scripted {
            lines: growing(&["a", "b", "c", "d"], 10),
            last: crate::reply::no_reply(),
        };
        let (streamed, _) = stream(&bot, 0, None).await;
        assert_eq!(streamed, Streamed::Sent { parts: 5 });
    }

    #[tokio::test(start_paused = true)]
    async fn no_line_is_a_whole_answer_and_a_failed_part_stops_the_stream() {
        let whole = Scripted {
            lines: Vec::new(),
            last: BotResponse::from_http(503, None, b""),
        };
        let (streamed, sent) = stream(&whole, 1000, None).await;
        assert_eq!(
            streamed,
            Streamed::Whole(BotResponse::from_http(503, None, b""))
        );
        assert!(sent.is_empty());

        let bot = Scripted {
            lines: vec![
                (0, Reply::text("one")),
                (10, Reply::text("two")),
                (10, Reply::text("three")),
            ],
            last: crate::reply::no_reply(),
        };
        let (streamed, sent) = stream(&bot, 1000, Some(1)).await;
        assert_eq!(streamed, Streamed::NotSent);
        assert_eq!(sent.len(), 1);
    }
}

//! The one thing a bot must do: answer a request.

use crate::writer::ReplyWriter;
use std::future::Future;
use xmpp_lambda_shared::{BotResponse, OutboundMessage, Request};

/// A bot: given one stanza as a [`Request`], give the HTTP-shaped outcome the
/// reply rules turn into stanzas (status 200 with a JSON object to reply,
/// 204 for no reply, 4xx/5xx for an error to the sender). The helpers build
/// the common ones: [`text_reply`](crate::text_reply),
/// [`no_reply`](crate::no_reply), a [`Reply`](crate::Reply) with an
/// attachment (`.into()`), several with [`replies`](crate::replies).
///
/// Implement it with a plain `async fn`:
///
/// ```
/// use xmpp_lambda_function::{Bot, BotResponse, Request, text_reply};
///
/// struct Hello;
///
/// impl Bot for Hello {
///     async fn answer(&self, request: &Request) -> BotResponse {
///         text_reply(&format!("Hello, {}!", request.from))
///     }
/// }
/// ```
///
/// The function may ask for several answers at once (one per conversation
/// of an SQS batch), hence `Send + Sync`. Under SQS a `429` or `5xx`
/// outcome (and no response) means "try again later": the message is
/// retried, and on its last delivery (`MAX_RECEIVE_COUNT`) the sender gets
/// that error instead of a retry.
pub trait Bot: Send + Sync {
    /// The outcome for one request.
    fn answer(&self, request: &Request) -> impl Future<Output = BotResponse> + Send;

    /// The answer to one request as a stream of replies (DESIGN §11): each
    /// [`ReplyWriter::send`] is on its way to the person at once, so an
    /// answer that takes a while (a language model's) shows while it is
    /// being written, and [`Reply::replacing`](crate::Reply::replacing)
    /// lets one message grow in place (XEP-0308 corrections).
    ///
    /// The function asks every bot this way; by default it returns
    /// [`Bot::answer`]'s outcome and writes no line, which is today's one
    /// answer exactly. The outcome returned says how the answer ends:
    ///
    /// * no line written: it is the whole answer, as from [`Bot::answer`];
    /// * after lines, a `200` JSON reply: one more line, the last;
    /// * after lines, any other success (such as [`no_reply`](crate::no_reply)):
    ///   the stream ends;
    /// * after lines, an error or no response: the stream stopped early.
    ///   Over SQS the sender hears that error after the lines (as from a
    ///   stream that broke); a Function URL can only log it, since its
    ///   `200` went out with the first line.
    ///
    /// Behind a Function URL the lines are the response's NDJSON, streamed
    /// when the URL's invoke mode is `RESPONSE_STREAM`
    /// (`FUNCTION_URL_INVOKE_MODE`), gathered into one NDJSON answer
    /// otherwise; over SQS each line is a reply envelope of its own, sent as
    /// soon as it exists. A line the reader can no longer take (the caller
    /// went away, the queue refused it) fails with
    /// [`StreamClosed`](crate::StreamClosed): stop writing then.
    ///
    /// ```
    /// use xmpp_lambda_function::{Bot, BotResponse, Reply, ReplyWriter, Request, no_reply};
    ///
    /// struct Typist;
    ///
    /// impl Bot for Typist {
    ///     async fn answer(&self, _request: &Request) -> BotResponse {
    ///         no_reply()
    ///     }
    ///
    ///     async fn answer_streamed(&self, _request: &Request, replies: &mut ReplyWriter) -> BotResponse {
    ///         let mut text = String::new();
    ///         for (n, word) in ["Streams", "grow", "in", "place."].into_iter().enumerate() {
    ///             if n > 0 {
    ///                 text.push(' ');
    ///             }
    ///             text.push_str(word);
    ///             let line = if n == 0 { Reply::text(&text) } else { Reply::text(&text).replacing() };
    ///             if replies.send(line).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///         no_reply()
    ///     }
    /// }
    /// ```
    fn answer_streamed(
        &self,
        request: &Request,
        replies: &mut ReplyWriter,
    ) -> impl Future<Output = BotResponse> + Send {
        let _ = replies;
        self.answer(request)
    }

    /// The messages to send when something other than a stanza wakes the
    /// function: a schedule, a webhook. They go out through the reply queue
    /// (`REPLY_QUEUE_URL`) like any pushed message. By default: none.
    ///
    /// ```
    /// use xmpp_lambda_function::{Bot, BotResponse, Event, OutboundMessage, Request};
    ///
    /// struct Reminder;
    ///
    /// impl Bot for Reminder {
    ///     async fn answer(&self, _request: &Request) -> BotResponse {
    ///         BotResponse::from_http(204, None, b"")
    ///     }
    ///
    ///     async fn on_event(&self, event: &Event) -> Vec<OutboundMessage> {
    ///         match event {
    ///             Event::Schedule(_) => vec![OutboundMessage::chat("alice@example.com", "Stand-up in 5 minutes")],
    ///             Event::Webhook(_) => Vec::new(),
    ///         }
    ///     }
    /// }
    /// ```
    fn on_event(&self, event: &Event) -> impl Future<Output = Vec<OutboundMessage>> + Send {
        let _ = event;
        std::future::ready(Vec::new())
    }
}

impl<B: Bot> Bot for &B {
    fn answer(&self, request: &Request) -> impl Future<Output = BotResponse> + Send {
        (**self).answer(request)
    }

    fn answer_streamed(
        &self,
        request: &Request,
        replies: &mut ReplyWriter,
    ) -> impl Future<Output = BotResponse> + Send {
        (**self).answer_streamed(request, replies)
    }

    fn on_event(&self, event: &Event) -> impl Future<Output = Vec<OutboundMessage>> + Send {
        (**self).on_event(event)
    }
}

impl<B: Bot> Bot for std::sync::Arc<B> {
    fn answer(&self, request: &Request) -> impl Future<Output = BotResponse> + Send {
        (**self).answer(request)
    }

    fn answer_streamed(
        &self,
        request: &Request,
        replies: &mut ReplyWriter,
    ) -> impl Future<Output = BotResponse> + Send {
        (**self).answer_streamed(request, replies)
    }

    fn on_event(&self, event: &Event) -> impl Future<Output = Vec<OutboundMessage>> + Send {
        (**self).on_event(event)
    }
}

/// Something other than a stanza that woke the function, for
/// [`Bot::on_event`]: the way a bot gets to speak first (DESIGN §6).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A schedule fired.
    Schedule(ScheduleEvent),
    /// A POST to the Function URL whose body is not a request JSON: a
    /// webhook from monitoring, CI, a form…
    Webhook(WebhookEvent),
}

/// A schedule firing: an EventBridge rule (`"detail-type": "Scheduled
/// Event"`), EventBridge Scheduler with the input `{"schedule": NAME}` (as
/// `template.yaml` sets it up), or a direct invoke of such JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEvent {
    /// The schedule's name: Scheduler's input `schedule`, or the rule's
    /// name from its ARN.
    pub name: Option<String>,
    /// When it fired (RFC 3339), when the event says.
    pub time: Option<String>,
    /// The whole event as it arrived.
    pub payload: serde_json::Value,
}

/// A webhook: the Function URL request, with its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The request path, e.g. `/alertmanager`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body, parsed as JSON.
    pub body: serde_json::Value,
}

impl WebhookEvent {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// A query parameter's raw value (`token` of `?token=abc`).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .as_deref()?
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }
}

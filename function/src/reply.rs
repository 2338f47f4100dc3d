//! Replies without hand-written JSON: a text, an attachment (XEP-0066), a
//! few of them at once, or the lines of a streamed answer.
//!
//! A [`Reply`] is one reply object of the protocol (DESIGN §2, §10, §11);
//! it becomes a whole answer with [`BotResponse::from`] or [`replies`], a
//! line of a stream with [`crate::ReplyWriter::send`], and a pushed message
//! with [`Reply::addressed_to`].

use serde_json::{Map, Value};
use xmpp_lambda_shared::{BotResponse, MAX_SEND_MESSAGES, OutboundMessage};

/// The most replies one answer may hold (`{"replies": [...]}`): the
/// connector refuses more, as it refuses a send envelope of more.
pub const MAX_REPLIES: usize = MAX_SEND_MESSAGES;

/// The longest attachment URL, in bytes, as the connector sends it.
pub const MAX_URL_BYTES: usize = 4096;

/// One reply message: text, an attachment, or both.
///
/// ```
/// use xmpp_lambda_function::{BotResponse, Reply};
///
/// let chart = Reply::text("Today's traffic").with_url("https://grafana.example.com/render/d/x.png");
/// let answer = BotResponse::from(chart);
/// assert_eq!(
///     answer.body,
///     r#"{"body":"Today's traffic","url":"https://grafana.example.com/render/d/x.png"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The text the person reads. Without it, an attachment's body is its
    /// URL (clients show such a message as the file itself).
    pub body: Option<String>,
    /// A file or page to attach (http or https, at most [`MAX_URL_BYTES`]):
    /// the connector adds XEP-0066's `<x xmlns='jabber:x:oob'>`, so clients
    /// show it inline. Check a URL from elsewhere with [`attachment_url`]:
    /// the connector refuses the reply over a bad one.
    pub url: Option<String>,
    /// The recipient, when not the sender of the request (a push needs
    /// one: [`Reply::addressed_to`]).
    pub to: Option<String>,
    /// The sender, a JID at the component, when not the JID the request
    /// was sent to.
    pub from: Option<String>,
    /// The message's `type` (`chat`, `normal`, `groupchat`), when not the
    /// request's.
    pub message_type: Option<String>,
    /// A whole stanza as XML, for what the other fields cannot say; the
    /// connector fills in missing addresses. Excludes `url`.
    pub stanza: Option<String>,
    /// In a streamed answer: this reply corrects the stream's previous
    /// message (XEP-0308), so an answer can grow in place.
    pub replace: bool,
}

impl Reply {
    /// A chat message with `body`.
    pub fn text(body: impl Into<String>) -> Reply {
        Reply {
            body: Some(body.into()),
            ..Reply::default()
        }
    }

    /// A message attaching `url`, its body the URL.
    pub fn attachment(url: impl Into<String>) -> Reply {
        Reply {
            url: Some(url.into()),
            ..Reply::default()
        }
    }

    /// A whole stanza as XML (`<message>`, `<presence>` or `<iq>`).
    pub fn stanza(xml: impl Into<String>) -> Reply {
        Reply {
            stanza: Some(xml.into()),
            ..Reply::default()
        }
    }

    /// The same reply with `url` attached.
    pub fn with_url(mut self, url: impl Into<String>) -> Reply {
        self.url = Some(url.into());
        self
    }

    /// The same reply to `jid` instead of the request's sender.
    pub fn to(mut self, jid: impl Into<String>) -> Reply {
        self.to = Some(jid.into());
        self
    }

    /// The same reply from `jid` (at the component) instead of the JID the
    /// request was sent to.
    pub fn sent_from(mut self, jid: impl Into<String>) -> Reply {
        self.from = Some(jid.into());
        self
    }

    /// The same reply with the message type `message_type`.
    pub fn with_type(mut self, message_type: impl Into<String>) -> Reply {
        self.message_type = Some(message_type.into());
        self
    }

    /// The same reply as a correction of the stream's previous message.
    pub fn replacing(mut self) -> Reply {
        self.replace = true;
        self
    }

    /// The reply object as the protocol spells it.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        let fields = [
            ("body", &self.body),
            ("url", &self.url),
            ("to", &self.to),
            ("from", &self.from),
            ("type", &self.message_type),
            ("stanza", &self.stanza),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                object.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        if self.replace {
            object.insert("replace".to_owned(), Value::Bool(true));
        }
        Value::Object(object)
    }

    /// The same message pushed to `to` (DESIGN §6), for
    /// [`crate::Outbox`] or [`crate::Bot::on_event`]. `replace` has no
    /// meaning outside a stream and is dropped.
    ///
    /// ```
    /// use xmpp_lambda_function::Reply;
    ///
    /// let alert = Reply::text("Disk 95% full").with_url("https://grafana.example.com/d/disk");
    /// let message = alert.addressed_to("ops@example.com");
    /// assert_eq!(message.url.as_deref(), Some("https://grafana.example.com/d/disk"));
    /// ```
    pub fn addressed_to(&self, to: impl Into<String>) -> OutboundMessage {
        OutboundMessage {
            to: to.into(),
            body: self.body.clone(),
            kind: None,
            stanza_type: self.message_type.clone(),
            from: self.from.clone(),
            stanza: self.stanza.clone(),
            url: self.url.clone(),
        }
    }
}

/// A `200 application/json` answer with this one reply.
impl From<Reply> for BotResponse {
    fn from(reply: Reply) -> BotResponse {
        BotResponse::json(reply.to_json().to_string())
    }
}

/// An answer holds more replies than the protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{count} replies in one answer, over the limit of {MAX_REPLIES} (stream them instead)")]
pub struct TooManyReplies {
    /// How many there were.
    pub count: usize,
}

/// A `200 application/json` answer `{"replies": [...]}`: the replies sent
/// in order, each its own message; none at all is a `204` (no reply).
/// More than [`MAX_REPLIES`] is an error here rather than at the
/// connector, where the person would get `internal-server-error`; a bot
/// with more to say streams them ([`crate::Bot::answer_streamed`]).
///
/// ```
/// use xmpp_lambda_function::{Reply, replies};
///
/// let answer = replies([
///     Reply::text("Here is the forecast:"),
///     Reply::attachment("https://weather.example.com/today.png"),
/// ])
/// .expect("two replies");
/// assert_eq!(
///     answer.body,
///     r#"{"replies":[{"body":"Here is the forecast:"},{"url":"https://weather.example.com/today.png"}]}"#
/// );
/// ```
pub fn replies(replies: impl IntoIterator<Item = Reply>) -> Result<BotResponse, TooManyReplies> {
    let list: Vec<Value> = replies.into_iter().map(|reply| reply.to_json()).collect();
    match list.len() {
        0 => Ok(no_reply()),
        count if count > MAX_REPLIES => Err(TooManyReplies { count }),
        _ => {
            let mut answer = Map::new();
            answer.insert("replies".to_owned(), Value::Array(list));
            Ok(BotResponse::json(Value::Object(answer).to_string()))
        }
    }
}

/// A `200 application/json` answer `{"body": text}`: a chat message back to
/// the sender, the most common reply.
pub fn text_reply(text: &str) -> BotResponse {
    BotResponse::from(Reply::text(text))
}

/// A `204`: the bot has the request and nothing to say.
pub fn no_reply() -> BotResponse {
    BotResponse::from_http(204, None, b"")
}

/// Why [`attachment_url`] refused a URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadUrl {
    /// Not a URL at all: the parser's reason.
    #[error("not a valid URL ({0})")]
    Invalid(String),
    /// Not http or https (clients fetch only those).
    #[error("the scheme must be http or https, not {0:?}")]
    Scheme(String),
    /// Longer than [`MAX_URL_BYTES`], as given or as written out.
    #[error("{0} bytes, over the limit of {MAX_URL_BYTES}")]
    TooLong(usize),
    /// A character XML cannot carry.
    #[error("contains U+{0:04X}, which XML does not allow")]
    ForbiddenCharacter(u32),
}

/// `text` as the connector would attach it (DESIGN §10): parsed and
/// written out as a browser reads it, http or https, at most
/// [`MAX_URL_BYTES`]. A URL from elsewhere (a webhook, a database) checked
/// here cannot make the connector refuse the reply or the push it is in.
///
/// ```
/// use xmpp_lambda_function::attachment_url;
///
/// assert_eq!(attachment_url("HTTPS://Example.com").unwrap(), "https://example.com/");
/// assert!(attachment_url("javascript:alert(1)").is_err());
/// ```
pub fn attachment_url(text: &str) -> Result<String, BadUrl> {
    if text.len() > MAX_URL_BYTES {
        return Err(BadUrl::TooLong(text.len()));
    }
    if let Some(bad) = text.chars().find(|c| !is_xml_char(*c)) {
        return Err(BadUrl::ForbiddenCharacter(u32::from(bad)));
    }
    let url = reqwest::Url::parse(text).map_err(|error| BadUrl::Invalid(error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BadUrl::Scheme(url.scheme().to_owned()));
    }
    let url = String::from(url);
    if url.len() > MAX_URL_BYTES {
        return Err(BadUrl::TooLong(url.len()));
    }
    Ok(url)
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    //! Everything built here must be what the connector's rules accept and
    //! mean: each answer goes through shared's `response_to_stanzas`, each
    //! push through `outbound_to_stanza`.
    use super::*;
    use xmpp_lambda_shared::{
        COMPONENT_NS, OOB_NS, Request, outbound_to_stanza, response_to_stanzas,
    };

    const DOMAIN: &str = "bot.example.com";

    fn request() -> Request {
        Request {
            id: Some("m1".into()),
            ..Request::chat("alice@example.com/phone", "echo@bot.example.com", "hi")
        }
    }

    fn stanzas(answer: &BotResponse) -> Vec<minidom::Element> {
        let mut n = 0;
        response_to_stanzas(&request(), answer, DOMAIN, &mut || {
            n += 1;
            format!("id-{n}")
        })
        .expect("the connector accepts the answer")
    }

    fn body(stanza: &minidom::Element) -> Option<String> {
        stanza.get_child("body", COMPONENT_NS).map(|b| b.text())
    }

    fn oob(stanza: &minidom::Element) -> Option<String> {
        stanza
            .get_child("x", OOB_NS)
            .and_then(|x| x.get_child("url", OOB_NS))
            .map(|u| u.text())
    }

    #[test]
    fn a_text_reply_is_a_chat_message_back_to_the_sender() {
        let sent = stanzas(&text_reply("hello"));
        assert_eq!(sent.len(), 1);
        assert_eq!(body(&sent[0]).as_deref(), Some("hello"));
        assert_eq!(sent[0].attr("to"), Some("alice@example.com/phone"));
        assert_eq!(sent[0].attr("type"), Some("chat"));
        assert_eq!(text_reply("hello").body, r#"{"body":"hello"}"#);
    }

    #[test]
    fn an_attachment_is_oob_with_the_url_as_its_body() {
        let url = "https://example.com/cat.jpg";
        let sent = stanzas(&Reply::attachment(url).into());
        assert_eq!(body(&sent[0]).as_deref(), Some(url));
        assert_eq!(oob(&sent[0]).as_deref(), Some(url));

        let captioned = Reply::text("A cat").with_url(url);
        let sent = stanzas(&captioned.into());
        assert_eq!(body(&sent[0]).as_deref(), Some("A cat"));
        assert_eq!(oob(&sent[0]).as_deref(), Some(url));
    }

    #[test]
    fn several_replies_arrive_in_order_each_its_own_message() {
        let answer = replies([
            Reply::text("one"),
            Reply::attachment("https://example.com/two.png"),
            Reply::text("three")
                .to("bob@example.com")
                .sent_from("news@bot.example.com")
                .with_type("normal"),
        ])
        .expect("three replies");
        let sent = stanzas(&answer);
        let bodies: Vec<Option<String>> = sent.iter().map(body).collect();
        assert_eq!(
            bodies,
            [
                Some("one".to_owned()),
                Some("https://example.com/two.png".to_owned()),
                Some("three".to_owned())
            ]
        );
        let ids: Vec<&str> = sent.iter().filter_map(|s| s.attr("id")).collect();
        assert_eq!(ids, ["id-1", "id-2", "id-3"]);
        assert_eq!(
            (
                sent[2].attr("to"),
                sent[2].attr("from"),
                sent[2].attr("type")
            ),
            (
                Some("bob@example.com"),
                Some("news@bot.example.com"),
                Some("normal")
            )
        );
    }

    #[test]
    fn ten_replies_are_an_answer_and_eleven_are_refused_here() {
        let ten = replies((0..MAX_REPLIES).map(|n| Reply::text(n.to_string()))).expect("ten");
        assert_eq!(stanzas(&ten).len(), 10);
        assert_eq!(MAX_REPLIES, xmpp_lambda_shared::MAX_REPLIES);
        let eleven = replies((0..=MAX_REPLIES).map(|n| Reply::text(n.to_string())));
        assert_eq!(eleven, Err(TooManyReplies { count: 11 }));
        // None is no reply, not an empty list the connector would refuse.
        let none = replies([]).expect("none");
        assert_eq!(none.status, 204);
        assert!(stanzas(&none).is_empty());
    }

    #[test]
    fn a_stanza_reply_is_sent_with_its_addresses_filled_in() {
        let sent = stanzas(&Reply::stanza("<message><body>raw</body></message>").into());
        assert_eq!(body(&sent[0]).as_deref(), Some("raw"));
        assert_eq!(sent[0].attr("to"), Some("alice@example.com/phone"));
        assert_eq!(sent[0].attr("from"), Some("echo@bot.example.com"));
    }

    #[test]
    fn a_reply_pushed_is_the_same_message_to_its_recipient() {
        let url = "https://grafana.example.com/d/disk";
        let message = Reply::text("Disk 95% full")
            .with_url(url)
            .replacing()
            .addressed_to("ops@example.com");
        let value = message.to_value();
        assert_eq!(
            value,
            serde_json::json!({"to": "ops@example.com", "body": "Disk 95% full", "url": url})
        );
        let stanza = outbound_to_stanza(&value, DOMAIN, &|_| None, &mut || "p1".to_owned())
            .expect("the connector accepts the push");
        assert_eq!(stanza.attr("to"), Some("ops@example.com"));
        assert_eq!(body(&stanza).as_deref(), Some("Disk 95% full"));
        assert_eq!(oob(&stanza).as_deref(), Some(url));
        // The shared helper for a bare attachment says the same.
        let bare = Reply::attachment(url).addressed_to("ops@example.com");
        assert_eq!(bare, OutboundMessage::attachment("ops@example.com", url));
    }

    #[test]
    fn attachment_url_accepts_exactly_what_the_connector_sends() {
        let accepted = [
            "https://example.com/a b.png",
            "HTTP://EXAMPLE.com/é",
            "https://example.com/?q=1&r=2#frag",
        ];
        for text in accepted {
            let url = attachment_url(text).expect("a valid attachment");
            let sent = stanzas(&Reply::attachment(text).into());
            assert_eq!(oob(&sent[0]), Some(url), "{text}");
        }
        let refused = [
            ("javascript:alert(1)", BadUrl::Scheme("javascript".into())),
            ("file:///etc/passwd", BadUrl::Scheme("file".into())),
            ("https://example.com/\u{1}", BadUrl::ForbiddenCharacter(1)),
        ];
        for (text, reason) in refused {
            assert_eq!(attachment_url(text), Err(reason), "{text}");
            let mut n = 0;
            let answer: BotResponse = Reply::attachment(text).into();
            assert!(
                response_to_stanzas(&request(), &answer, DOMAIN, &mut || {
                    n += 1;
                    n.to_string()
                })
                .is_err(),
                "the connector refuses {text:?} too"
            );
        }
        assert!(matches!(
            attachment_url("not a url"),
            Err(BadUrl::Invalid(_))
        ));
        // Growing past the limit once percent-encoded counts.
        let long = "https://example.com/".to_owned() + &"é".repeat(2000);
        assert_eq!(attachment_url(&long), Err(BadUrl::TooLong(12020)));
        let at_limit = "https://example.com/".to_owned() + &"a".repeat(MAX_URL_BYTES - 20);
        assert_eq!(attachment_url(&at_limit).as_deref(), Ok(at_limit.as_str()));
        let over = at_limit.clone() + "a";
        assert_eq!(attachment_url(&over), Err(BadUrl::TooLong(4097)));
    }
}

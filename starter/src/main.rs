//! Your bot. Two methods: `answer` for every message a person sends it,
//! `on_event` for when it speaks first (the template's ScheduleExpression,
//! or any JSON POSTed to its Function URL).
//!
//! Run it locally with `cargo lambda watch` in this directory; deploy it
//! with `sam build && sam deploy --guided`.

use xmpp_lambda_function::{Bot, BotResponse, Event, OutboundMessage, Request, text_reply};

/// The bot's settings, read once when the function starts.
struct MyBot {
    /// Who hears from the bot when the schedule fires (`RECIPIENTS`, the
    /// template's Recipients parameter: comma-separated JIDs or rooms).
    recipients: Vec<String>,
}

impl MyBot {
    fn from_env() -> MyBot {
        let recipients = std::env::var("RECIPIENTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|jid| !jid.is_empty())
            .map(str::to_owned)
            .collect();
        MyBot { recipients }
    }
}

impl Bot for MyBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        match request.body.as_deref() {
            // A status code is an answer too: 4xx and 5xx reach the sender
            // as XMPP errors (5xx and 429 are retried first under SQS).
            Some("help") => text_reply("Say anything and I count its words."),
            Some(text) => {
                let words = text.split_whitespace().count();
                text_reply(&format!(
                    "{words} word{}.",
                    if words == 1 { "" } else { "s" }
                ))
            }
            // No body: a typing notification or a receipt. 204: nothing to say.
            None => BotResponse::from_http(204, None, b""),
        }
    }

    async fn on_event(&self, event: &Event) -> Vec<OutboundMessage> {
        match event {
            // Sent once per scheduled time, even if Lambda retries the run.
            Event::Schedule(_) => self
                .recipients
                .iter()
                .map(|jid| OutboundMessage::chat(jid, "Good morning! Say help to see what I do."))
                .collect(),
            Event::Webhook(_) => Vec::new(),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), xmpp_lambda_function::Error> {
    xmpp_lambda_function::run(MyBot::from_env()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_lambda_function::ScheduleEvent;
    use xmpp_lambda_function::serde_json::{self, json};

    /// A chat message as the bot gets it (the request JSON, as in the
    /// connector's protocol).
    fn message(body: Option<&str>) -> Request {
        let mut json = json!({
            "to": "bot@bot.example.com",
            "from": "alice@example.com/phone",
            "kind": "message",
            "stanza": "<message/>",
            "type": "chat",
        });
        if let Some(body) = body {
            json["body"] = json!(body);
        }
        serde_json::from_value(json).expect("a request")
    }

    #[tokio::test]
    async fn counts_the_words_of_a_message() {
        let bot = MyBot {
            recipients: Vec::new(),
        };
        let reply = bot.answer(&message(Some("hello there world"))).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, r#"{"body":"3 words."}"#)
        );
        let silent = bot.answer(&message(None)).await;
        assert_eq!(silent.status, 204);
    }

    #[tokio::test]
    async fn the_schedule_greets_every_recipient() {
        let bot = MyBot {
            recipients: vec![
                "alice@example.com".into(),
                "ops@conference.example.com".into(),
            ],
        };
        let schedule = Event::Schedule(ScheduleEvent {
            name: Some("daily".into()),
            time: Some("2026-12-24T08:00:00Z".into()),
            payload: serde_json::Value::Null,
        });
        let messages = bot.on_event(&schedule).await;
        let to: Vec<&str> = messages.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["alice@example.com", "ops@conference.example.com"]);
    }
}

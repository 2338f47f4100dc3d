//! A bot that speaks first: on every schedule it sends a reminder to the
//! JIDs in `REMINDER_TO` (comma-separated; rooms the connector is in work
//! too), with the text `REMINDER_TEXT`. To a chat message it answers with
//! what it does.
//!
//! Deploy it with `template.yaml`'s `ScheduleExpression` (e.g.
//! `cron(0 8 * * ? *)`, every day at 08:00): EventBridge Scheduler invokes
//! the function with `{"schedule": NAME}`, and the reminder goes out through
//! the reply queue and the connector. Try it locally with a direct invoke of
//! `{"schedule": "daily"}` (see the README).

use xmpp_lambda_function::{Bot, BotResponse, Event, OutboundMessage, Request, text_reply};

struct ReminderBot {
    /// Who gets the reminder.
    recipients: Vec<String>,
    /// What it says.
    text: String,
}

impl ReminderBot {
    fn from_env() -> ReminderBot {
        let recipients = std::env::var("REMINDER_TO")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|jid| !jid.is_empty())
            .map(str::to_owned)
            .collect();
        let text = std::env::var("REMINDER_TEXT")
            .ok()
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "Daily reminder: time for the stand-up.".to_owned());
        ReminderBot { recipients, text }
    }
}

impl Bot for ReminderBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        match &request.body {
            Some(_) => text_reply(&format!(
                "I send \"{}\" to {} on a schedule.",
                self.text,
                self.recipients.join(", ")
            )),
            None => BotResponse::from_http(204, None, b""),
        }
    }

    async fn on_event(&self, event: &Event) -> Vec<OutboundMessage> {
        match event {
            Event::Schedule(_) => self
                .recipients
                .iter()
                .map(|jid| OutboundMessage::chat(jid, &self.text))
                .collect(),
            Event::Webhook(_) => Vec::new(),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), xmpp_lambda_function::Error> {
    xmpp_lambda_function::run(ReminderBot::from_env()).await
}

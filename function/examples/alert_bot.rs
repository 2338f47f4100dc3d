//! A webhook receiver written as a bot: Prometheus Alertmanager POSTs its
//! alerts to the function's Function URL, and the bot sends one message
//! per notification to the JIDs (or rooms) in `ALERT_TO`.
//!
//! Alertmanager cannot sign requests with AWS SigV4, so deploy this bot
//! behind a Function URL with `AuthType: NONE` and give Alertmanager the
//! secret `ALERT_TOKEN` as a bearer token (`http_config.authorization`);
//! other notifications are dropped and logged. Alertmanager's receiver:
//!
//! ```yaml
//! receivers:
//!   - name: xmpp
//!     webhook_configs:
//!       - url: https://<id>.lambda-url.<region>.on.aws/alertmanager
//!         http_config:
//!           authorization: { credentials: <ALERT_TOKEN> }
//! ```

use serde_json::Value;
use xmpp_lambda_function::{Bot, BotResponse, Event, OutboundMessage, Request, WebhookEvent};

struct AlertBot {
    /// Who is told.
    recipients: Vec<String>,
    /// The bearer token Alertmanager must present.
    token: String,
}

impl AlertBot {
    fn from_env() -> AlertBot {
        let recipients = std::env::var("ALERT_TO")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|jid| !jid.is_empty())
            .map(str::to_owned)
            .collect();
        let token = std::env::var("ALERT_TOKEN").unwrap_or_default();
        AlertBot { recipients, token }
    }

    /// Whether the webhook carries the token (none configured: no webhook
    /// is trusted).
    fn authorized(&self, webhook: &WebhookEvent) -> bool {
        !self.token.is_empty()
            && webhook.header("authorization") == Some(format!("Bearer {}", self.token).as_str())
    }
}

/// One line per alert: `[FIRING] DiskFull db1: Disk 95% full`.
fn alert_lines(notification: &Value) -> Vec<String> {
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let alerts = notification.get("alerts").and_then(Value::as_array);
    alerts
        .into_iter()
        .flatten()
        .map(|alert| {
            let status = text(alert, "status").unwrap_or_else(|| "firing".to_owned());
            let labels = alert.get("labels").cloned().unwrap_or(Value::Null);
            let annotations = alert.get("annotations").cloned().unwrap_or(Value::Null);
            let name = text(&labels, "alertname").unwrap_or_else(|| "alert".to_owned());
            let mut line = format!("[{}] {name}", status.to_uppercase());
            if let Some(instance) = text(&labels, "instance") {
                line.push_str(&format!(" {instance}"));
            }
            if let Some(summary) = text(&annotations, "summary") {
                line.push_str(&format!(": {summary}"));
            }
            line
        })
        .collect()
}

impl Bot for AlertBot {
    async fn answer(&self, _request: &Request) -> BotResponse {
        // Nothing to say to chat messages.
        BotResponse::from_http(204, None, b"")
    }

    async fn on_event(&self, event: &Event) -> Vec<OutboundMessage> {
        let Event::Webhook(webhook) = event else {
            return Vec::new();
        };
        if !self.authorized(webhook) {
            tracing::warn!(path = %webhook.path, "webhook without the right token: dropped");
            return Vec::new();
        }
        let lines = alert_lines(&webhook.body);
        if lines.is_empty() {
            return Vec::new();
        }
        let text = lines.join("\n");
        self.recipients
            .iter()
            .map(|jid| OutboundMessage::chat(jid, &text))
            .collect()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), xmpp_lambda_function::Error> {
    xmpp_lambda_function::run(AlertBot::from_env()).await
}

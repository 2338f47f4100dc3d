//! A webhook receiver written as a bot: Prometheus Alertmanager POSTs its
//! alerts to the function's Function URL, and the bot sends one message
//! per notification to the JIDs (or rooms) in `ALERT_TO`, with a link to
//! the panel that shows the problem attached (XEP-0066): the first alert's
//! `panel_url` or `dashboard_url` annotation, else its `generatorURL` (the
//! Prometheus graph of the rule's expression).
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
use xmpp_lambda_function::{
    Bot, BotResponse, Event, OutboundMessage, Reply, Request, WebhookEvent, attachment_url,
};

/// Annotations that name a panel or dashboard, most specific first.
const LINK_ANNOTATIONS: [&str; 2] = ["panel_url", "dashboard_url"];

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

/// The link to attach: the first alert's panel or dashboard annotation,
/// else its `generatorURL`. One the connector would refuse is left out
/// (and logged): the alert itself must still get through.
fn panel_link(notification: &Value) -> Option<String> {
    let alert = notification.get("alerts")?.as_array()?.first()?;
    let annotations = alert.get("annotations");
    let link = LINK_ANNOTATIONS
        .iter()
        .find_map(|name| annotations?.get(name)?.as_str())
        .or_else(|| alert.get("generatorURL")?.as_str())
        .filter(|link| !link.is_empty())?;
    match attachment_url(link) {
        Ok(url) => Some(url),
        Err(error) => {
            tracing::warn!(%error, "the alert's link cannot be attached: sent without it");
            None
        }
    }
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
        let mut message = Reply::text(lines.join("\n"));
        message.url = panel_link(&webhook.body);
        self.recipients
            .iter()
            .map(|jid| message.addressed_to(jid))
            .collect()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), xmpp_lambda_function::Error> {
    xmpp_lambda_function::run(AlertBot::from_env()).await
}

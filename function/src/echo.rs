//! The echo bot of the Prosody module's README, built in.

use crate::bot::Bot;
use crate::reply::text_reply;
use xmpp_lambda_shared::{BotResponse, Request};

/// Answers like the PHP example in mod_component_http's README:
/// `{"body": "Did you say <body>?"}` with `Content-Type: application/json`.
/// Like the PHP, a request without a body reads as an empty one.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoBot;

impl Bot for EchoBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        let said = request.body.as_deref().unwrap_or_default();
        text_reply(&format!("Did you say {said}?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: Option<&str>) -> Request {
        Request {
            body: body.map(str::to_owned),
            stanza: "<message/>".into(),
            ..Request::chat("alice@localhost/phone", "echo@bot.localhost", "")
        }
    }

    #[tokio::test]
    async fn echo_answers_like_the_php_bot() {
        let response = EchoBot.answer(&message(Some("héllo <&>\""))).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type.as_deref(), Some("application/json"));
        let json: serde_json::Value = serde_json::from_str(&response.body).expect("JSON body");
        assert_eq!(
            json,
            serde_json::json!({"body": "Did you say héllo <&>\"?"})
        );
    }

    #[tokio::test]
    async fn echo_of_no_body_is_an_empty_question_like_php() {
        let response = EchoBot.answer(&message(None)).await;
        let json: serde_json::Value = serde_json::from_str(&response.body).expect("JSON body");
        assert_eq!(json, serde_json::json!({"body": "Did you say ?"}));
    }
}

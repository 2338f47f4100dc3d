//! The proxy bot: hands each request to a bot behind an HTTP URL.

use crate::bot::Bot;
use reqwest::header::CONTENT_TYPE;
use std::time::Duration;
use xmpp_lambda_shared::{BotResponse, Request};

/// POSTs the request JSON to `COMPONENT_POST_URL` and captures the answer
/// verbatim, exactly as the connector's http transport would: so a bot
/// written for mod_component_http runs unchanged behind the queues.
#[derive(Debug, Clone)]
pub struct ProxyBot {
    /// Built once per process: it pools connections across invocations of a
    /// warm function.
    client: reqwest::Client,
    /// Where the bot listens.
    url: reqwest::Url,
}

impl ProxyBot {
    /// A proxy to `url` that gives up after `timeout` (then: no response).
    pub fn new(url: reqwest::Url, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(ProxyBot { client, url })
    }

    /// The bot's URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }
}

impl Bot for ProxyBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        let sent = self
            .client
            .post(self.url.clone())
            .json(request)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(url = %self.url, error = %error, "no response from the bot");
                return BotResponse::no_response();
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        match response.bytes().await {
            Ok(body) => BotResponse::from_http(status, content_type.as_deref(), &body),
            Err(error) => {
                // Half an answer is no answer: the reply rules must not act on it.
                tracing::warn!(url = %self.url, status, error = %error, "the bot's answer broke off");
                BotResponse::no_response()
            }
        }
    }
}

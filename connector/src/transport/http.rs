//! The http transport: POST the request JSON, capture the answer verbatim.

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use std::time::Duration;
use tracing::warn;
use xmpp_lambda_shared::{BotResponse, Request};

/// The most of a bot's answer that is read. A reply is at most
/// [`xmpp_lambda_shared::MAX_BODY_BYTES`] of text plus JSON around it; a
/// longer answer is cut here and then refused by the reply rules as invalid,
/// instead of filling memory.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Posts requests to the bot's URL over a pooled HTTP client.
#[derive(Debug)]
pub struct HttpTransport {
    /// Shared by every request, so connections to the bot are reused.
    client: reqwest::Client,
    /// Where requests are POSTed.
    url: Url,
}

impl HttpTransport {
    /// A transport posting to `url`; an answer that takes longer than
    /// `timeout` (connecting included) counts as no response.
    pub fn new(url: Url, timeout: Duration) -> Result<HttpTransport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("xmpp-lambda-connector/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpTransport { client, url })
    }

    /// POSTs the request as JSON and returns the bot's status, content type
    /// and body, or no response on a connect failure or timeout.
    pub async fn exchange(&self, request: &Request) -> BotResponse {
        match self.post(request).await {
            Ok(response) => response,
            Err(error) => {
                // The URL may carry a token: keep it out of the log.
                let error = error.without_url();
                warn!(%error, from = %request.from, to = %request.to, "no response from the bot");
                BotResponse::no_response()
            }
        }
    }

    async fn post(&self, request: &Request) -> Result<BotResponse, reqwest::Error> {
        // `json` sets `Content-Type: application/json`.
        let mut response = self
            .client
            .post(self.url.clone())
            .json(request)
            .send()
            .await?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_RESPONSE_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_RESPONSE_BYTES {
                break;
            }
        }
        Ok(BotResponse::from_http(
            status,
            content_type.as_deref(),
            &body,
        ))
    }
}

//! The http transport: POST the request JSON, capture the answer verbatim.

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};
use xmpp_lambda_shared::signing::{Signer, unix_seconds};
use xmpp_lambda_shared::{BotResponse, Request};

use crate::sigv4::RequestSigner;

/// The content type of every request.
const JSON: &str = "application/json";

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
    /// Signs each request for a Function URL with `AuthType: AWS_IAM`;
    /// `None` sends them unsigned. Boxed: it is large and most
    /// deployments do not sign.
    signer: Option<Box<RequestSigner>>,
    /// Signs each request with `COMPONENT_POST_SECRET` (DESIGN §9) so the
    /// bot can verify it came from us; `None` sends no signature headers.
    post_signer: Option<Signer>,
}

impl HttpTransport {
    /// A transport posting to `url`; an answer that takes longer than
    /// `timeout` (connecting included) counts as no response. With a
    /// `signer`, every request is SigV4-signed.
    pub fn new(
        url: Url,
        timeout: Duration,
        signer: Option<RequestSigner>,
    ) -> Result<HttpTransport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("xmpp-lambda-connector/", env!("CARGO_PKG_VERSION")))
            .build()?;
        if let Some(signer) = &signer {
            info!(
                service = crate::sigv4::LAMBDA_SERVICE,
                region = signer.configured_region().unwrap_or("from the AWS SDK"),
                "requests to the bot are SigV4-signed"
            );
        }
        Ok(HttpTransport {
            client,
            url,
            signer: signer.map(Box::new),
            post_signer: None,
        })
    }

    /// Signs every request with `post_signer` (when `Some`): the headers
    /// `X-XMPP-Lambda-Timestamp` and `X-XMPP-Lambda-Signature`.
    pub fn with_post_signer(mut self, post_signer: Option<Signer>) -> Self {
        if post_signer.is_some() {
            info!("requests to the bot are signed with COMPONENT_POST_SECRET");
        }
        self.post_signer = post_signer;
        self
    }

    /// POSTs the request as JSON and returns the bot's status, content type
    /// and body, or no response on a connect failure or timeout.
    pub async fn exchange(&self, request: &Request) -> BotResponse {
        let body = match serde_json::to_vec(request) {
            Ok(body) => body,
            Err(error) => {
                warn!(%error, from = %request.from, to = %request.to, "cannot encode the request");
                return BotResponse::no_response();
            }
        };
        let mut post = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, JSON);
        if let Some(signer) = &self.signer {
            // The signer logs its failure itself, once.
            let Ok(headers) = signer.signing_headers(&self.url, JSON, &body).await else {
                return BotResponse::no_response();
            };
            for (name, value) in headers {
                post = post.header(name, value);
            }
        }
        if let Some(post_signer) = &self.post_signer {
            for (name, value) in post_signer.headers(unix_seconds(SystemTime::now()), &body) {
                post = post.header(name, value);
            }
        }
        match Self::post(post.body(body)).await {
            Ok(response) => response,
            Err(error) => {
                // The URL may carry a token: keep it out of the log.
                let error = error.without_url();
                warn!(%error, from = %request.from, to = %request.to, "no response from the bot");
                BotResponse::no_response()
            }
        }
    }

    async fn post(post: reqwest::RequestBuilder) -> Result<BotResponse, reqwest::Error> {
        let mut response = post.send().await?;
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

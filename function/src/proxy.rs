//! The proxy bot: hands each request to a bot behind an HTTP URL.

use crate::bot::Bot;
use reqwest::header::CONTENT_TYPE;
use std::time::{Duration, Instant, SystemTime};
use xmpp_lambda_shared::signing::{Signer, unix_seconds};
use xmpp_lambda_shared::{BotResponse, Request};

/// How long an idle connection to the bot stays in the pool: under the
/// 5-second keep-alive of common HTTP servers (Node.js, uvicorn, Apache),
/// so a connection the bot has already closed is not reused — above all
/// after Lambda froze the function between invocations, when the close
/// went unnoticed.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A POST that fails this soon with the connection closed and not a byte
/// of answer is sent once more, on a new connection: the bot closed a
/// kept-alive connection just as the request went out, so it never saw it
/// (servers with a shorter keep-alive than [`POOL_IDLE_TIMEOUT`], or a
/// close that arrived during a freeze).
const STALE_CONNECTION_WINDOW: Duration = Duration::from_secs(1);

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
    /// The URL's scheme, host and port: what logs show, since a bot URL's
    /// path or query often carries a secret token.
    origin: String,
    /// Signs every POST with `COMPONENT_POST_SECRET` (DESIGN §9) so the bot
    /// can verify it came from us; `None` sends no signature headers.
    signer: Option<Signer>,
}

impl ProxyBot {
    /// A proxy to `url` that gives up after `timeout` (then: no response).
    pub fn new(url: reqwest::Url, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()?;
        let origin = url.origin().ascii_serialization();
        Ok(ProxyBot {
            client,
            url,
            origin,
            signer: None,
        })
    }

    /// The same proxy, signing every POST with `signer`: headers
    /// `X-XMPP-Lambda-Timestamp` and `X-XMPP-Lambda-Signature`.
    pub fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The bot's URL.
    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// One POST of `body`, signed when a secret is set.
    async fn post(&self, body: &[u8]) -> Result<reqwest::Response, reqwest::Error> {
        let mut post = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(signer) = &self.signer {
            for (name, value) in signer.headers(unix_seconds(SystemTime::now()), body) {
                post = post.header(name, value);
            }
        }
        post.body(body.to_vec()).send().await
    }
}

impl Bot for ProxyBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        // The exact bytes sent are the bytes signed.
        let body = match serde_json::to_vec(request) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "cannot encode the request");
                return BotResponse::no_response();
            }
        };
        let started = Instant::now();
        let mut sent = self.post(&body).await;
        if let Err(error) = &sent
            && started.elapsed() < STALE_CONNECTION_WINDOW
            && closed_before_answer(error)
        {
            tracing::debug!(bot = %self.origin, "the bot closed the connection before answering: sending once more");
            sent = self.post(&body).await;
        }
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(bot = %self.origin, error = %without_url(error), "no response from the bot");
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
                tracing::warn!(bot = %self.origin, status, error = %without_url(error), "the bot's answer broke off");
                BotResponse::no_response()
            }
        }
    }
}

/// Whether the connection closed before a byte of the answer came (as when
/// the bot had already closed a kept-alive connection): not a timeout, not
/// a refused connection, not a bad answer.
fn closed_before_answer(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    if error.is_timeout() || error.is_connect() || error.is_decode() || error.is_body() {
        return false;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error without the URL reqwest puts in its message (see `origin`).
fn without_url(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn logs_keep_secrets_in_the_url_out() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let url: reqwest::Url = format!("http://127.0.0.1:{port}/hook/s3cret?token=s3cret")
            .parse()
            .expect("url");
        let bot = ProxyBot::new(url.clone(), Duration::from_secs(5)).expect("proxy");
        assert_eq!(bot.origin, format!("http://127.0.0.1:{port}"));
        let error = reqwest::get(url).await.expect_err("nobody listens");
        let text = without_url(error);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("connect"), "{text}");
    }
}

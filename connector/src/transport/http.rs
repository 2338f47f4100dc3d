//! The http transport: POST the request JSON, capture the answer verbatim.
//!
//! A connection to the bot that fails before anything was sent (refused,
//! no DNS answer, a TLS handshake that fails) is tried again after a short
//! jittered wait, within the same timeout: a bot restarting for a second
//! does not bounce every user who wrote meanwhile. Once the request may
//! have been sent it is never sent again, since the bot may have acted on it.

use super::bot_client::{BotClient, Pending};
use super::http1::ExchangeError;
use super::reply_stream::ReplyStream;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use reqwest::Url;
use reqwest::header::CONTENT_TYPE;
use std::error::Error;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use xmpp_lambda_shared::signing::{Signer, unix_seconds};
use xmpp_lambda_shared::{BotResponse, Request, is_reply_stream};

use super::headers::{JSON, USER_AGENT};
use crate::sigv4::RequestSigner;
use xmpp_lambda_component::Backoff;

/// The most of a bot's answer that is read. A reply is at most
/// [`xmpp_lambda_shared::MAX_BODY_BYTES`] of text plus JSON around it; a
/// longer answer is cut here and then refused by the reply rules as invalid,
/// instead of filling memory.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How much of an answer is read without a [`LARGE_ANSWERS`] permit: a
/// reply is at most 64 KiB of stanza.
const SMALL_ANSWER_BYTES: usize = 64 * 1024;

/// Answers read past [`SMALL_ANSWER_BYTES`] at once, over every route: a
/// few whole answers (up to [`MAX_RESPONSE_BYTES`] each, such as ten
/// replies of 64 KiB) while the rest wait their turn.
static LARGE_ANSWERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// The longest first wait before connecting again; later waits double (each
/// a random time between half and all of its bound), up to
/// [`CONNECT_RETRY_CAP`]. Short, because a user is waiting.
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The longest wait between two connection attempts.
const CONNECT_RETRY_CAP: Duration = Duration::from_secs(1);

/// Posts requests to the bot's URL over a pooled HTTP client.
#[derive(Debug)]
pub struct HttpTransport {
    /// Shared by every request, so connections to the bot are reused.
    client: Client,
    /// Where requests are POSTed.
    url: Url,
    /// How long one request may take, connection retries included.
    timeout: Duration,
    /// How long connections the bot refuses are tried again, within
    /// `timeout`: a dead bot is known in seconds, not at the timeout.
    connect_retry: Duration,
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
    ) -> Result<HttpTransport, String> {
        let client = match proxy_variable() {
            None => Client::Direct(Box::new(BotClient::new(&url).map_err(|e| e.to_string())?)),
            Some(variable) => {
                info!(
                    variable,
                    "requests to the bot go through the proxy it names"
                );
                // Each attempt gets what is left of `timeout` (see `exchange`).
                let client = reqwest::Client::builder()
                    .connect_timeout(timeout)
                    // A bot's 3xx is an answer (the error table's "other"),
                    // never a second POST elsewhere.
                    .redirect(reqwest::redirect::Policy::none())
                    .user_agent(USER_AGENT)
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
                Client::Proxied(client)
            }
        };
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
            timeout,
            connect_retry: timeout,
            signer: signer.map(Box::new),
            post_signer: None,
        })
    }

    /// Tries refused connections again for at most `connect_retry`.
    pub fn with_connect_retry(mut self, connect_retry: Duration) -> Self {
        self.connect_retry = connect_retry;
        self
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
    /// and body, or no response when the bot cannot be reached or does not
    /// answer within the timeout; or, when the answer is a stream of
    /// replies, the stream, once its head came within the timeout.
    pub async fn exchange(&self, request: &Request) -> Exchanged<'_> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let retry_until = deadline.min(started + self.connect_retry);
        // Room for the JSON at once: growing the buffer step by step copies
        // it each time, and holds two copies while it does (the request's
        // memory budget counts one).
        let mut body = Vec::with_capacity(request.json_len());
        request.write_json(&mut body);
        let signing_headers = match &self.signer {
            // Within the request's timeout: a credential provider that
            // does not answer must not hold the user longer. The signer
            // logs its failure itself, once. Boxed: the AWS credential
            // chain makes its future ~11 KB, and every request's task
            // would otherwise carry (and copy) that much.
            Some(signer) => {
                let signing = signer.signing_headers(&self.url, JSON, &body, deadline);
                match Box::pin(signing).await {
                    Ok(headers) => headers,
                    Err(_) => return Exchanged::Answer(BotResponse::no_response()),
                }
            }
            None => Vec::new(),
        };
        // Signed once: a retry within the timeout is well inside the
        // verifier's 300 s window.
        let post_signature = self
            .post_signer
            .as_ref()
            .map(|signer| signer.headers(unix_seconds(SystemTime::now()), &body));
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        for (name, value) in signing_headers
            .iter()
            .chain(post_signature.iter().flatten())
        {
            // Never sent without a signature it should carry. The signers
            // make only values a header can hold (the SigV4 signer refuses
            // a session token that is not one), so this does not happen;
            // if it did, dropping the header would send the request
            // unsigned.
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => headers.push((name, value)),
                _ => {
                    warn!(header = %name, "cannot send a signing header; request not sent");
                    return Exchanged::Answer(BotResponse::no_response());
                }
            }
        }
        let body = Bytes::from(body);
        let mut backoff = Backoff::new(CONNECT_RETRY_FIRST, CONNECT_RETRY_CAP);
        let mut attempts = 1;
        loop {
            let error = match self.attempt(&headers, &body, deadline).await {
                Ok(exchanged) => return exchanged,
                Err(error) => error,
            };
            // Only a connection that never carried the request is safe to
            // try again: the bot has not seen it.
            if let Attempt::NotSent(_) = error {
                let delay = backoff.next_delay(&mut rand::rng());
                if Instant::now() + delay < retry_until {
                    debug!(
                        %error,
                        attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        "cannot connect to the bot; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempts += 1;
                    continue;
                }
            }
            warn!(
                %error,
                attempts,
                from = %request.from,
                to = %request.to,
                "no response from the bot"
            );
            return Exchanged::Answer(BotResponse::no_response());
        }
    }

    /// One POST, whose answer (its head, for a stream) must come by
    /// `deadline`.
    async fn attempt(
        &self,
        headers: &[(HeaderName, HeaderValue)],
        body: &Bytes,
        deadline: Instant,
    ) -> Result<Exchanged<'_>, Attempt> {
        let late =
            || Attempt::Failed(format!("no answer within {} ms", self.timeout.as_millis()).into());
        match &self.client {
            Client::Direct(client) => {
                let begin = client.begin(headers.iter().cloned(), body);
                let pending = match tokio::time::timeout_at(deadline, begin).await {
                    Ok(Ok(pending)) => pending,
                    Ok(Err(ExchangeError::NotSent(error))) => {
                        return Err(Attempt::NotSent(error.into()));
                    }
                    Ok(Err(ExchangeError::Failed(error))) => {
                        return Err(Attempt::Failed(error.into()));
                    }
                    Err(_) => return Err(late()),
                };
                if is_reply_stream(pending.status(), pending.content_type()) {
                    return Ok(Exchanged::Stream(ReplyStream::direct(pending)));
                }
                let (status, content_type) =
                    (pending.status(), pending.content_type().map(str::to_owned));
                match tokio::time::timeout_at(deadline, read_answer_body(pending)).await {
                    Ok(Ok(body)) => Ok(Exchanged::Answer(BotResponse::from_http_owned(
                        status,
                        content_type,
                        body,
                    ))),
                    Ok(Err(error)) => Err(Attempt::Failed(error.into())),
                    Err(_) => Err(late()),
                }
            }
            Client::Proxied(client) => {
                let mut post = client
                    .post(self.url.clone())
                    .header(CONTENT_TYPE, JSON)
                    .body(body.clone());
                for (name, value) in headers {
                    post = post.header(name, value);
                }
                // The URL may carry a token: keep it out of the log.
                let proxy_error = |error: reqwest::Error| {
                    let connect = error.is_connect();
                    let error = Box::new(error.without_url());
                    if connect {
                        Attempt::NotSent(error)
                    } else {
                        Attempt::Failed(error)
                    }
                };
                let response = match tokio::time::timeout_at(deadline, post.send()).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(error)) => return Err(proxy_error(error)),
                    Err(_) => return Err(late()),
                };
                let status = response.status().as_u16();
                let content_type = response
                    .headers()
                    .get(CONTENT_TYPE)
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
                if is_reply_stream(status, content_type.as_deref()) {
                    return Ok(Exchanged::Stream(ReplyStream::proxied(response)));
                }
                let read = Self::body_through_proxy(response);
                match tokio::time::timeout_at(deadline, read).await {
                    Ok(Ok(body)) => Ok(Exchanged::Answer(BotResponse::from_http(
                        status,
                        content_type.as_deref(),
                        &body,
                    ))),
                    Ok(Err(error)) => Err(proxy_error(error)),
                    Err(_) => Err(late()),
                }
            }
        }
    }

    /// The body of an answer that came through the proxy, at most
    /// `MAX_RESPONSE_BYTES` of it.
    async fn body_through_proxy(
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, reqwest::Error> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            let room = MAX_RESPONSE_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_RESPONSE_BYTES {
                break;
            }
        }
        Ok(body)
    }
}

/// What an exchange with the bot came to.
pub enum Exchanged<'c> {
    /// The bot's whole answer (or no response).
    Answer(BotResponse),
    /// The answer is a stream of replies, read as it comes.
    Stream(ReplyStream<'c>),
}

/// An answer's body, read as it arrives, at most [`MAX_RESPONSE_BYTES`].
/// Past [`SMALL_ANSWER_BYTES`] it first takes one of the
/// [`LARGE_ANSWERS`] permits: whatever bots send, answers hold at most
/// `MAX_IN_FLIGHT` × 64 KiB and a few whole answers together (DESIGN §12).
/// A permit, once held, is held to the end of the body, so no answer waits
/// for one while holding one.
async fn read_answer_body(mut pending: Pending<'_>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut large = None;
    let mut whole = true;
    loop {
        let room = MAX_RESPONSE_BYTES - body.len();
        if room == 0 {
            // Cut: the rest is not read, and the connection not reused.
            whole = false;
            break;
        }
        if body.len() >= SMALL_ANSWER_BYTES && large.is_none() {
            // Never closed, so this waits until a permit is free.
            large = LARGE_ANSWERS.acquire().await.ok();
        }
        let limit = if large.is_some() {
            room
        } else {
            SMALL_ANSWER_BYTES - body.len()
        };
        if !pending.read_more(&mut body, limit).await? {
            break;
        }
    }
    pending.finish(whole);
    Ok(body)
}

/// How requests reach the bot.
#[derive(Debug)]
enum Client {
    /// Straight to the bot: the usual case, and the leanest.
    Direct(Box<BotClient>),
    /// Through the proxy the environment names, which `reqwest` honours
    /// (with `NO_PROXY`).
    Proxied(reqwest::Client),
}

/// Why one attempt got no answer.
#[derive(Debug, thiserror::Error)]
enum Attempt {
    /// No connection carried the request: safe to try again.
    #[error("{0}")]
    NotSent(Box<dyn Error + Send + Sync>),
    /// The bot may have seen the request.
    #[error("{0}")]
    Failed(Box<dyn Error + Send + Sync>),
}

/// The proxy variable set in the environment, if any: the names `reqwest`
/// reads, in either case.
fn proxy_variable() -> Option<&'static str> {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .find(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

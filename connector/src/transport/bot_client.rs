//! The http transport's HTTP/1.1 client: connections to one bot URL, kept
//! open and reused.
//!
//! Every request of a route goes to the same URL, so the pool is one stack
//! of idle connections, and a request is one [`http1::exchange`] on one of
//! them, run by the requesting task itself: the URL is taken apart and the
//! fixed part of the request head written once, here, not for every
//! request, and there are no redirect, retry or proxy layers (a bot's 3xx
//! is an answer; [`super::http`] decides what is tried again). This is
//! what the connector spends most of its own CPU on per message, so it is
//! kept lean. When the environment names a proxy the http transport uses
//! `reqwest` instead, which honours it.

use super::headers::{JSON, USER_AGENT};
#[cfg(test)]
use super::http1::Answer;
use super::http1::{self, ExchangeError};
use base64::Engine;
use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use reqwest::Url;
use rustls::pki_types::ServerName;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tracing::debug;

/// Connections to one bot URL.
pub struct BotClient {
    /// The host connected to (a DNS name, resolved at every connection, or
    /// an IP address).
    host: String,
    /// The port connected to: the URL's, or its scheme's default.
    port: u16,
    /// For an https URL: the TLS client, and the name the bot's
    /// certificate must be valid for.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The request line and the header fields every request carries
    /// (`Host`, `Content-Type`, `User-Agent`, and `Authorization: Basic …`
    /// from credentials written in the URL, as browsers and `reqwest` send
    /// them), each ending in CRLF.
    head: Vec<u8>,
    /// Open connections between requests, with when each became idle; the
    /// most recently used last.
    idle: Mutex<Vec<(Connection, Instant)>>,
}

impl std::fmt::Debug for BotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A byte stream to the bot: TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One open connection to the bot.
struct Connection {
    io: Box<dyn Io>,
    /// What was read and not yet used: empty between exchanges, kept so
    /// its memory is reused.
    buffer: Vec<u8>,
}

/// Why a URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("the URL must be http or https, not {0}")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL's {0} is not valid in a request: {1}")]
    Invalid(&'static str, String),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
}

impl BotClient {
    /// A client for `url` (http or https). TLS trusts what the platform
    /// trusts, as `reqwest` does (on Linux the system's CA bundle, or
    /// `SSL_CERT_FILE`).
    pub fn new(url: &Url) -> Result<BotClient, UrlError> {
        let host = url.host_str().ok_or(UrlError::NoHost)?;
        // An IPv6 literal is written in brackets in a URL, not in a socket
        // address or a TLS server name.
        let bare_host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().ok_or(UrlError::NoHost)?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some((tls_connector()?, server_name(bare_host)?)),
            other => return Err(UrlError::Scheme(other.to_owned())),
        };
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        // Both go into the request head as they are: what would not be
        // valid there is refused now.
        target
            .parse::<Uri>()
            .map_err(|e| UrlError::Invalid("path", e.to_string()))?;
        HeaderValue::from_str(&host_header)
            .map_err(|e| UrlError::Invalid("host", e.to_string()))?;
        let mut head = format!(
            "POST {target} HTTP/1.1\r\nhost: {host_header}\r\ncontent-type: {JSON}\r\n\
             user-agent: {USER_AGENT}\r\n"
        );
        if let Some(credentials) = basic_authorization(url) {
            head.push_str("authorization: ");
            head.push_str(&credentials); // base64: nothing to escape
            head.push_str("\r\n");
        }
        Ok(BotClient {
            host: bare_host.to_owned(),
            port,
            tls,
            head: head.into_bytes(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// POSTs `body` with `headers` (besides `Host`, `Content-Type:
    /// application/json`, `User-Agent` and `Content-Length`, which are
    /// always sent) and reads the answer, at most `max_body` bytes of it.
    /// No time limit: the caller sets one around it. (The transport
    /// itself uses [`BotClient::begin`], to tell a stream from an answer.)
    #[cfg(test)]
    pub async fn post(
        &self,
        headers: impl Iterator<Item = (HeaderName, HeaderValue)>,
        body: &[u8],
        max_body: usize,
    ) -> Result<Answer, ExchangeError> {
        self.begin(headers, body).await?.read_body(max_body).await
    }

    /// POSTs like [`BotClient::post`], but returns once the answer's head
    /// is read: its body is read whole or as it arrives from the
    /// [`Pending`] answer, which gives the connection back when done.
    pub async fn begin(
        &self,
        headers: impl Iterator<Item = (HeaderName, HeaderValue)>,
        body: &[u8],
    ) -> Result<Pending<'_>, ExchangeError> {
        let request = self.request(headers, body);
        let (mut connection, mut fresh) = self.connection().await?;
        loop {
            match http1::begin(&mut *connection.io, &mut connection.buffer, &request).await {
                Ok(answering) => {
                    return Ok(Pending {
                        client: self,
                        connection,
                        answering,
                    });
                }
                // Closed before the request was written (the bot dropped
                // an idle connection): safe on another one.
                Err(ExchangeError::NotSent(error)) if !fresh => {
                    debug!(%error, "idle connection to the bot closed; using another");
                    (connection, fresh) = self.connection().await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Takes back a connection whose answer was read whole, to carry the
    /// next request.
    fn reuse(&self, connection: Connection) {
        let now = Instant::now();
        let mut idle = self.idle();
        // The oldest are first; closing them lets a burst's connections go.
        let expired = idle
            .iter()
            .take_while(|(_, since)| now.duration_since(*since) > IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
        idle.push((connection, now));
    }

    /// The whole request: the fixed head, `headers`, the length and `body`,
    /// to be written at once.
    fn request(
        &self,
        headers: impl Iterator<Item = (HeaderName, HeaderValue)>,
        body: &[u8],
    ) -> Vec<u8> {
        const EXTRA: usize = 256; // signing headers and the length
        let mut request = Vec::with_capacity(self.head.len() + EXTRA + body.len());
        request.extend_from_slice(&self.head);
        for (name, value) in headers {
            request.extend_from_slice(name.as_str().as_bytes());
            request.extend_from_slice(b": ");
            request.extend_from_slice(value.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"content-length: ");
        request.extend_from_slice(body.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\n\r\n");
        request.extend_from_slice(body);
        request
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(Connection, Instant)>> {
        // A poisoned stack of connections is still a stack of connections.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle connection, or else a new one (then `true`).
    async fn connection(&self) -> Result<(Connection, bool), ExchangeError> {
        match self.idle_connection() {
            Some(connection) => Ok((connection, false)),
            // Boxed: connecting (TLS included) is a large future, and every
            // request's task would otherwise carry it.
            None => Ok((Box::pin(self.connect()).await?, true)),
        }
    }

    /// An open connection ready for a request, if one is idle.
    fn idle_connection(&self) -> Option<Connection> {
        let mut idle = self.idle();
        while let Some((mut connection, since)) = idle.pop() {
            if since.elapsed() > IDLE_TIMEOUT {
                // The most recent is too old: so are all the others.
                idle.clear();
                return None;
            }
            if http1::is_idle_and_open(&mut *connection.io) {
                return Some(connection);
            }
        }
        None
    }

    /// A new connection, TLS included. A failure here is
    /// [`ExchangeError::NotSent`]: the bot has not seen the request.
    async fn connect(&self) -> Result<Connection, ExchangeError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(ExchangeError::NotSent)?;
        // Requests are small and waited on: never hold one back.
        tcp.set_nodelay(true).map_err(ExchangeError::NotSent)?;
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, server_name)) => Box::new(
                connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(ExchangeError::NotSent)?,
            ),
        };
        Ok(Connection {
            io,
            buffer: Vec::new(),
        })
    }
}

/// An answer whose head is read, on one of the client's connections.
pub struct Pending<'c> {
    /// The client the connection goes back to.
    client: &'c BotClient,
    /// The connection the answer comes on.
    connection: Connection,
    /// The answer's head, and where its body stands.
    answering: http1::Answering,
}

impl Pending<'_> {
    /// The answer's status.
    pub fn status(&self) -> u16 {
        self.answering.status
    }

    /// The answer's `Content-Type`.
    pub fn content_type(&self) -> Option<&str> {
        self.answering.content_type.as_deref()
    }

    /// Reads the whole body, at most `max_body` bytes of it. (The
    /// transport reads bodies as they arrive, under its memory bounds.)
    #[cfg(test)]
    pub async fn read_body(mut self, max_body: usize) -> Result<Answer, ExchangeError> {
        let answer = self
            .answering
            .read_body(
                &mut *self.connection.io,
                &mut self.connection.buffer,
                max_body,
            )
            .await?;
        if answer.reusable {
            self.client.reuse(self.connection);
        }
        Ok(answer)
    }

    /// Appends what of the body has arrived to `out` (waiting for at
    /// least one byte), at most `max` bytes; `false` once it has ended.
    pub async fn read_more(&mut self, out: &mut Vec<u8>, max: usize) -> std::io::Result<bool> {
        self.answering
            .read_more(
                &mut *self.connection.io,
                &mut self.connection.buffer,
                out,
                max,
            )
            .await
    }

    /// Done with the answer: its connection goes back to the client when
    /// the body was read to its end (`whole`) and may carry another.
    pub fn finish(mut self, whole: bool) {
        if self.answering.finish(&mut self.connection.buffer, whole) {
            self.client.reuse(self.connection);
        }
    }
}

/// How long a connection may wait for its next request before it is
/// closed, as `reqwest`'s pool does: an idle connection to the bot costs
/// both sides a socket, and a server may drop it unannounced anyway.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The TLS client: the platform's trust, HTTP/1.1 announced by ALPN.
fn tls_connector() -> Result<TlsConnector, UrlError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UrlError::Tls(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| UrlError::Tls(e.to_string()))?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

fn server_name(host: &str) -> Result<ServerName<'static>, UrlError> {
    ServerName::try_from(host.to_owned()).map_err(|e| UrlError::Invalid("host", e.to_string()))
}

/// `Basic base64(user:password)` for credentials in the URL, decoded from
/// their percent-encoding first.
fn basic_authorization(url: &Url) -> Option<String> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
    let mut credentials = decode(url.username());
    credentials.push(b':');
    credentials.extend(decode(url.password().unwrap_or_default()));
    let encoded = base64::engine::general_purpose::STANDARD.encode(&credentials);
    Some(format!("Basic {encoded}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP/1.1 bot on a raw socket that answers every request `{}` and
    /// counts the connections it accepted; with `close`, it says so and
    /// closes each connection after one answer.
    async fn counting_bot(close: bool) -> (Url, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = Url::parse(&format!(
            "http://{}/bot",
            listener.local_addr().expect("addr")
        ))
        .expect("url");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    // Each request here fits one read: head and a 2-byte body.
                    while stream.read(&mut buffer).await.is_ok_and(|n| n > 0) {
                        let connection = if close { "close" } else { "keep-alive" };
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             connection: {connection}\r\ncontent-length: 2\r\n\r\n{{}}"
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_reused_until_it_has_been_idle_too_long() {
        use std::sync::atomic::Ordering;
        let (url, connections) = counting_bot(false).await;
        let client = BotClient::new(&url).expect("client");
        let post = || client.post(std::iter::empty(), b"{}", 1024);
        for _ in 0..3 {
            let answer = post().await.expect("answer");
            assert_eq!((answer.status, answer.body.as_slice()), (200, &b"{}"[..]));
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1, "kept open");
        tokio::time::advance(IDLE_TIMEOUT + Duration::from_secs(1)).await;
        post().await.expect("answer");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            2,
            "a new one after the idle timeout"
        );
        assert_eq!(client.idle().len(), 1, "the old one is gone");
    }

    #[tokio::test]
    async fn a_connection_the_bot_closes_is_not_used_again() {
        use std::sync::atomic::Ordering;
        let (url, connections) = counting_bot(true).await;
        let client = BotClient::new(&url).expect("client");
        for n in 1..=3 {
            let answer = client
                .post(std::iter::empty(), b"{}", 1024)
                .await
                .expect("answer");
            assert_eq!(answer.status, 200);
            assert_eq!(connections.load(Ordering::SeqCst), n);
        }
    }

    #[test]
    fn credentials_in_the_url_become_basic_authorization() {
        let url = Url::parse("https://bot%20user:p%40ss@bot.example.com/x").expect("url");
        let value = basic_authorization(&url).expect("credentials");
        // base64("bot user:p@ss")
        assert_eq!(value, "Basic Ym90IHVzZXI6cEBzcw==");
        let plain = Url::parse("https://bot.example.com/x").expect("url");
        assert!(basic_authorization(&plain).is_none());
    }

    #[test]
    fn the_url_is_taken_apart_once() {
        let client = BotClient::new(
            &Url::parse("http://127.0.0.1:8080/bot/path?token=abc#frag").expect("url"),
        )
        .expect("client");
        assert_eq!(client.host, "127.0.0.1");
        assert_eq!(client.port, 8080);
        assert_eq!(
            String::from_utf8_lossy(&client.head),
            format!(
                "POST /bot/path?token=abc HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\
                 content-type: application/json\r\nuser-agent: {USER_AGENT}\r\n"
            )
        );
        assert!(client.tls.is_none());
        let client = BotClient::new(&Url::parse("https://[::1]/").expect("url")).expect("client");
        assert_eq!(client.host, "::1");
        assert_eq!(client.port, 443);
        assert!(
            client
                .head
                .starts_with(b"POST / HTTP/1.1\r\nhost: [::1]\r\n")
        );
        assert!(client.tls.is_some());
        let error =
            BotClient::new(&Url::parse("ftp://bot.example.com/").expect("url")).expect_err("ftp");
        assert_eq!(error.to_string(), "the URL must be http or https, not ftp");
    }
}

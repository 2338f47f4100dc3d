//! Direct HTTP mode: the request JSON a connector would POST, sent straight
//! to the bot, so the bot's own latency is measured in the same run and the
//! XMPP path's added latency is a difference.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

use crate::args::Options;
use crate::loadgen::{Budget, seq_in_body};
use crate::stats::Tally;
use crate::xmpp::escape;

/// Why the HTTP connections could not be set up.
#[derive(Debug, Error)]
pub enum HttpLoadError {
    #[error("only http://host:port/path URLs are supported, not {0}")]
    Url(String),
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP request: {0}")]
    Request(#[from] hyper::http::Error),
}

/// Where requests go, taken apart once.
#[derive(Debug, Clone)]
struct Endpoint {
    /// `host:port`, for connecting and the Host header.
    authority: String,
    /// Path and query of the URL.
    path: String,
}

fn endpoint(url: &str) -> Result<Endpoint, HttpLoadError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| HttpLoadError::Url(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpLoadError::Url(url.to_owned()));
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok(Endpoint {
        authority,
        path: path.to_owned(),
    })
}

/// One session's keep-alive connections, one per in-flight slot (HTTP/1.1
/// carries one request at a time per connection).
pub struct HttpSlots {
    /// Session number, for the request's `from`.
    session: usize,
    /// The bot's address and path.
    endpoint: Endpoint,
    /// Ready connections.
    senders: Vec<SendRequest<Full<Bytes>>>,
}

impl HttpSlots {
    /// Opens `in_flight` connections to the bot.
    pub async fn connect(session: usize, opts: &Options) -> Result<HttpSlots, HttpLoadError> {
        let endpoint = endpoint(opts.http_url.as_deref().unwrap_or(""))?;
        let mut senders = Vec::with_capacity(opts.in_flight);
        for _ in 0..opts.in_flight {
            let stream = TcpStream::connect(&endpoint.authority).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            // The connection task ends when its sender is dropped.
            tokio::spawn(connection);
            senders.push(sender);
        }
        Ok(HttpSlots {
            session,
            endpoint,
            senders,
        })
    }

    /// Sends requests on every connection until the budget is spent.
    pub async fn run(self, opts: &Options, budget: &Budget, tally: &mut Tally) {
        let from = format!(
            "{}@{}/load{}",
            opts.user(self.session),
            opts.domain,
            self.session
        );
        let to = match opts.target_of(self.session, 0) {
            target if target.is_empty() => "echo@bot.localhost".to_owned(),
            target => target,
        };
        let slots = self.senders.into_iter().enumerate().map(|(slot, sender)| {
            let endpoint = &self.endpoint;
            let (from, to) = (&from, &to);
            async move {
                let mut tally = Tally::default();
                let mut sender = sender;
                let padding = "x".repeat(opts.size);
                // Distinct per slot so a stray reply cannot match another slot's request.
                let mut seq = slot as u64 * 1_000_000_000;
                while budget.take() {
                    seq += 1;
                    let tag = format!("#{seq} ");
                    let body = format!("{tag}{}", &padding[..opts.size.saturating_sub(tag.len())]);
                    let request_json = serde_json::json!({
                        "to": to,
                        "from": from,
                        "kind": "message",
                        "type": "chat",
                        "id": format!("m{seq}"),
                        "body": body,
                        "stanza": format!(
                            "<message xmlns='jabber:client' to='{}' from='{}' type='chat' id='m{seq}'><body>{body}</body></message>",
                            escape(to), escape(from)
                        ),
                    });
                    tally.sent += 1;
                    let outcome = tokio::time::timeout(
                        opts.timeout,
                        post(&mut sender, endpoint, request_json.to_string()),
                    )
                    .await;
                    match outcome {
                        Err(_) => {
                            tally.timeouts += 1;
                            // The connection still waits for the old answer: stop this slot.
                            break;
                        }
                        Ok(Err(e)) => {
                            tally.failures.push(format!("HTTP request: {e}"));
                            break;
                        }
                        Ok(Ok((status, sent, reply))) => {
                            if status != 200 {
                                tally.record_error(format!("http/{status}"));
                                continue;
                            }
                            let echoed = serde_json::from_slice::<serde_json::Value>(&reply)
                                .ok()
                                .and_then(|v| v.get("body")?.as_str().and_then(seq_in_body));
                            if echoed == Some(seq) {
                                tally.record(sent.elapsed());
                            } else {
                                tally.unmatched += 1;
                            }
                        }
                    }
                }
                tally
            }
        });
        for slot_tally in futures::future::join_all(slots).await {
            tally.merge(slot_tally);
        }
    }
}

/// POSTs one request; returns the status, when it was sent, and the body.
async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    endpoint: &Endpoint,
    json: String,
) -> Result<(u16, Instant, Bytes), HttpLoadError> {
    sender.ready().await?;
    let request = hyper::Request::post(&endpoint.path)
        .header(hyper::header::HOST, &endpoint.authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json)))?;
    let sent = Instant::now();
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, sent, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart() {
        let e = endpoint("http://127.0.0.1:8080/bot?x=1").expect("valid");
        assert_eq!(e.authority, "127.0.0.1:8080");
        assert_eq!(e.path, "/bot?x=1");
        let e = endpoint("http://localhost").expect("valid");
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("localhost:80", "/")
        );
        assert!(endpoint("https://x/").is_err());
        assert!(endpoint("http:///x").is_err());
    }
}

//! A counting HTTP proxy in front of an SQS server (moto): it forwards every
//! request unchanged and counts API calls by queue and action, so the
//! benchmark can divide calls by messages for each direction.
//!
//! `GET /__counts` returns the counts as JSON (`{"queue Action": n}`);
//! `POST /__counts/reset` zeroes them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex as AsyncMutex;

/// Calls seen so far, by `"queue Action"`.
pub type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// The SQS action and queue name of one API call, from either protocol the
/// SDKs use: JSON (`X-Amz-Target: AmazonSQS.SendMessage`, `"QueueUrl"` in
/// the body) or query (`Action=…&QueueUrl=…` form body).
pub fn classify(target: Option<&str>, body: &[u8]) -> (String, String) {
    if let Some(action) = target.and_then(|t| t.strip_prefix("AmazonSQS.")) {
        let queue = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("QueueUrl")?.as_str().map(queue_name))
            .unwrap_or_default();
        return (action.to_owned(), queue);
    }
    let form = String::from_utf8_lossy(body);
    let field = |name: &str| {
        form.split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .map(|v| v.replace("%2F", "/").replace("%3A", ":"))
    };
    let action = field("Action").unwrap_or_else(|| "unknown".to_owned());
    let queue = field("QueueUrl")
        .map(|u| queue_name(&u))
        .unwrap_or_default();
    (action, queue)
}

/// The last path segment of a queue URL: its name.
fn queue_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or(url).to_owned()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// One downstream connection: forwarded on its own upstream connection,
/// opened on first use (HTTP/1.1 carries one exchange at a time anyway).
async fn forward(
    request: Request<Incoming>,
    upstream_addr: SocketAddr,
    upstream: Arc<AsyncMutex<Option<client_http1::SendRequest<Full<Bytes>>>>>,
    counts: Counts,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/__counts" {
        let snapshot = counts.lock().map(|c| c.clone()).unwrap_or_default();
        let body = serde_json::to_vec(&snapshot).unwrap_or_default();
        return Ok(json_response(StatusCode::OK, body));
    }
    if request.uri().path() == "/__counts/reset" && request.method() == Method::POST {
        if let Ok(mut c) = counts.lock() {
            c.clear();
        }
        return Ok(json_response(StatusCode::OK, b"{}".to_vec()));
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(json_response(StatusCode::BAD_REQUEST, Vec::new()));
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let (action, queue) = classify(target, &body);
    if let Ok(mut c) = counts.lock() {
        *c.entry(format!("{queue} {action}")).or_default() += 1;
    }
    let mut upstream = upstream.lock().await;
    if upstream.as_ref().is_none_or(|s| s.is_closed()) {
        let connected = async {
            let stream = TcpStream::connect(upstream_addr).await.ok()?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = client_http1::handshake(TokioIo::new(stream)).await.ok()?;
            tokio::spawn(connection);
            Some(sender)
        }
        .await;
        *upstream = connected;
    }
    let Some(sender) = upstream.as_mut() else {
        return Ok(json_response(StatusCode::BAD_GATEWAY, Vec::new()));
    };
    let request = Request::from_parts(parts, Full::new(body));
    let answered = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>(Response::from_parts(parts, Full::new(body)))
    }
    .await;
    Ok(answered.unwrap_or_else(|_| json_response(StatusCode::BAD_GATEWAY, Vec::new())))
}

/// Proxies to `upstream` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    upstream_addr: SocketAddr,
    counts: Counts,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let counts = Arc::clone(&counts);
                let upstream = Arc::new(AsyncMutex::new(None));
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        forward(request, upstream_addr, Arc::clone(&upstream), Arc::clone(&counts))
                    });
                    let _ = server_http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_protocol_calls_are_classified() {
        let body =
            br#"{"QueueUrl":"http://127.0.0.1:5000/123456789012/requests.fifo","Entries":[]}"#;
        assert_eq!(
            classify(Some("AmazonSQS.SendMessageBatch"), body),
            ("SendMessageBatch".to_owned(), "requests.fifo".to_owned())
        );
    }

    #[test]
    fn query_protocol_calls_are_classified() {
        let body = b"Action=ReceiveMessage&QueueUrl=http%3A%2F%2Flocalhost%3A5000%2F123%2Freplies&MaxNumberOfMessages=10";
        assert_eq!(
            classify(None, body),
            ("ReceiveMessage".to_owned(), "replies".to_owned())
        );
        assert_eq!(
            classify(None, b"Action=CreateQueue&QueueName=x"),
            ("CreateQueue".to_owned(), String::new())
        );
    }

    #[tokio::test]
    async fn forwards_and_counts() {
        // The upstream: the bench echo bot stands in for an SQS server.
        let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let upstream_addr = upstream.local_addr().expect("addr");
        tokio::spawn(crate::echo_bot::serve(upstream, std::future::pending()));
        let proxy = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let proxy_addr = proxy.local_addr().expect("addr");
        let counts = Counts::default();
        tokio::spawn(serve(
            proxy,
            upstream_addr,
            Arc::clone(&counts),
            std::future::pending(),
        ));

        let stream = TcpStream::connect(proxy_addr).await.expect("connect");
        let (mut sender, connection) = client_http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        for _ in 0..2 {
            let request = Request::post("/")
                .header(hyper::header::HOST, proxy_addr.to_string())
                .header("x-amz-target", "AmazonSQS.SendMessage")
                .body(Full::new(Bytes::from_static(
                    br#"{"QueueUrl":"http://h/1/requests","body":"x"}"#,
                )))
                .expect("request");
            let response = sender.send_request(request).await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            assert_eq!(&body[..], br#"{"body":"Did you say x?"}"#);
        }
        let snapshot = counts.lock().expect("counts").clone();
        assert_eq!(snapshot.get("requests SendMessage"), Some(&2));
    }
}

//! A fast HTTP echo bot: the reference README's PHP example, in Rust, so the
//! bot is never the bottleneck of a benchmark.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer to one request JSON: what the PHP example prints.
///
/// PHP's `"Did you say $received?"` with a missing body reads an empty
/// string, and a number is printed as written.
pub fn echo_reply(request: &[u8]) -> Option<Vec<u8>> {
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    let received = match request.get("body") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::Bool(true)) => "1".to_owned(),
        _ => String::new(),
    };
    serde_json::to_vec(&serde_json::json!({ "body": format!("Did you say {received}?") })).ok()
}

async fn handle(
    request: Request<Incoming>,
    served: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
    };
    served.fetch_add(1, Ordering::Relaxed);
    let Some(reply) = echo_reply(&body) else {
        return Ok(status_only(StatusCode::BAD_REQUEST));
    };
    let mut response = Response::new(Full::new(Bytes::from(reply)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Serves until `shutdown` completes; returns the number of requests served.
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) -> u64 {
    let served = Arc::new(AtomicU64::new(0));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let served = Arc::clone(&served);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(request, Arc::clone(&served)));
                    // A client going away mid-request is normal under load.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    served.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_body(request: &str) -> Option<String> {
        let reply = echo_reply(request.as_bytes())?;
        let value: serde_json::Value = serde_json::from_slice(&reply).ok()?;
        Some(value["body"].as_str()?.to_owned())
    }

    #[test]
    fn answers_like_the_php_example() {
        assert_eq!(
            reply_body(r#"{"body":"hi <&>","kind":"message"}"#).as_deref(),
            Some("Did you say hi <&>?")
        );
        assert_eq!(
            reply_body(r#"{"body":42}"#).as_deref(),
            Some("Did you say 42?")
        );
        assert_eq!(
            reply_body(r#"{"kind":"message"}"#).as_deref(),
            Some("Did you say ?")
        );
        assert_eq!(reply_body("not json"), None);
    }

    #[tokio::test]
    async fn serves_echo_replies_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let request = Request::post("/")
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(br#"{"body":"ping"}"#)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[hyper::header::CONTENT_TYPE],
            "application/json"
        );
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], br#"{"body":"Did you say ping?"}"#);
        let _ = stop.send(());
        assert_eq!(server.await.expect("server task"), 1);
    }
}

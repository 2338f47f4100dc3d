//! A fast HTTP echo bot: the reference README's PHP example, in Rust, so the
//! bot is never the bottleneck of a benchmark.
//!
//! At `/stream?lines=N&interval_ms=M[&replace=1]` it answers instead with a
//! streamed reply (DESIGN §11): `N` NDJSON lines, the first at once and
//! then one every `M` ms, standing in for a model writing its answer. Each
//! line's body ends in `(k/N)` so a client knows the last one when it
//! comes; with `replace=1` every line after the first corrects the first
//! message with a longer text.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The answer's body: whole (an echo, unboxed, as fast as before streams
/// existed), or streamed line by line.
type Body = Either<Full<Bytes>, UnsyncBoxBody<Bytes, Infallible>>;

/// The most lines a streamed answer may be asked for.
const MAX_STREAM_LINES: u32 = 100_000;
/// The longest pause between two lines that may be asked for.
const MAX_STREAM_INTERVAL_MS: u64 = 60_000;

/// A streamed answer, as the request's URL asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPlan {
    /// How many lines the answer has.
    pub lines: u32,
    /// The pause between two lines; the first line goes at once, so the
    /// last is written `(lines - 1) × interval` after the answer starts.
    pub interval: Duration,
    /// Lines after the first are `"replace": true` corrections of the
    /// first message, each text longer than the last, as a model's answer
    /// grows in place.
    pub replace: bool,
}

impl StreamPlan {
    /// The plan of a request to `/stream?lines=N&interval_ms=M[&replace=1]`;
    /// `Ok(None)` for any other path (an echo). The error names what is
    /// wrong with the query.
    pub fn from_uri(uri: &Uri) -> Result<Option<StreamPlan>, String> {
        if uri.path() != "/stream" {
            return Ok(None);
        }
        let mut lines = None;
        let mut interval_ms = 0;
        let mut replace = false;
        for pair in uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "lines" => {
                    lines = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_STREAM_LINES).contains(n));
                    if lines.is_none() {
                        return Err(format!("lines must be 1 to {MAX_STREAM_LINES}"));
                    }
                }
                "interval_ms" => {
                    interval_ms = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms <= MAX_STREAM_INTERVAL_MS)
                        .ok_or_else(|| {
                            format!("interval_ms must be 0 to {MAX_STREAM_INTERVAL_MS}")
                        })?;
                }
                "replace" => replace = matches!(value, "1" | "true"),
                _ => return Err(format!("unknown parameter {key}")),
            }
        }
        let lines = lines.ok_or("lines is required")?;
        Ok(Some(StreamPlan {
            lines,
            interval: Duration::from_millis(interval_ms),
            replace,
        }))
    }

    /// Line `k` (1 to `lines`) of the answer to a message saying
    /// `received`, with its line end.
    pub fn line(&self, received: &str, k: u32) -> Vec<u8> {
        let n = self.lines;
        let value = if self.replace {
            // The text so far: the echo, then one word per line after the first.
            let grown = " more".repeat(k.saturating_sub(1) as usize);
            let body = format!("Did you say {received}?{grown} ({k}/{n})");
            if k == 1 {
                serde_json::json!({ "body": body })
            } else {
                serde_json::json!({ "body": body, "replace": true })
            }
        } else {
            serde_json::json!({ "body": format!("Did you say {received}? ({k}/{n})") })
        };
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        line
    }

    /// The answer's body: each line written at its time, measured from
    /// now (so a slow write delays no later line), then the end.
    fn body(self, received: String) -> Body {
        let start = tokio::time::Instant::now();
        let lines = futures::stream::unfold(1, move |k| {
            let line = (k <= self.lines).then(|| self.line(&received, k));
            async move {
                let line = line?;
                // A timer already due still waits for the timer's next
                // tick (a millisecond): the first line must not.
                let due = start + self.interval * (k - 1);
                if due > tokio::time::Instant::now() {
                    tokio::time::sleep_until(due).await;
                }
                Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), k + 1))
            }
        });
        Either::Right(BodyExt::boxed_unsync(StreamBody::new(lines)))
    }
}

/// What the request's `body` says, as PHP's `"$received"` prints it: a
/// missing body reads an empty string, a number as written.
fn received_text(request: &serde_json::Value) -> String {
    match request.get("body") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::Bool(true)) => "1".to_owned(),
        _ => String::new(),
    }
}

/// The answer to one request JSON: what the PHP example prints.
///
/// PHP's `"Did you say $received?"` with a missing body reads an empty
/// string, and a number is printed as written.
pub fn echo_reply(request: &[u8]) -> Option<Vec<u8>> {
    let request: serde_json::Value = serde_json::from_slice(request).ok()?;
    let received = received_text(&request);
    serde_json::to_vec(&serde_json::json!({ "body": format!("Did you say {received}?") })).ok()
}

async fn handle(
    request: Request<Incoming>,
    served: Arc<AtomicU64>,
) -> Result<Response<Body>, Infallible> {
    let plan = StreamPlan::from_uri(request.uri());
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
    };
    served.fetch_add(1, Ordering::Relaxed);
    let (body, content_type) = match plan {
        Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
        Ok(None) => match echo_reply(&body) {
            Some(reply) => (
                Either::Left(Full::new(Bytes::from(reply))),
                "application/json",
            ),
            None => return Ok(status_only(StatusCode::BAD_REQUEST)),
        },
        Ok(Some(plan)) => match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(request) => (plan.body(received_text(&request)), "application/x-ndjson"),
            Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
        },
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    Ok(response)
}

fn status_only(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
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

    fn plan(uri: &str) -> Result<Option<StreamPlan>, String> {
        StreamPlan::from_uri(&uri.parse::<Uri>().expect("a URI"))
    }

    #[test]
    fn streams_are_asked_for_by_the_url() {
        assert_eq!(plan("/"), Ok(None));
        assert_eq!(plan("/bot?lines=3"), Ok(None));
        assert_eq!(
            plan("/stream?lines=20&interval_ms=100"),
            Ok(Some(StreamPlan {
                lines: 20,
                interval: Duration::from_millis(100),
                replace: false,
            }))
        );
        assert_eq!(
            plan("/stream?replace=1&lines=2").map(|p| p.map(|p| (p.replace, p.interval))),
            Ok(Some((true, Duration::ZERO)))
        );
        assert!(plan("/stream").is_err());
        assert!(plan("/stream?lines=0").is_err());
        assert!(plan("/stream?lines=2&interval_ms=x").is_err());
        assert!(plan("/stream?lines=2&colour=red").is_err());
    }

    fn line_json(plan: &StreamPlan, k: u32) -> serde_json::Value {
        let line = plan.line("#7 hi", k);
        assert_eq!(line.last(), Some(&b'\n'), "one line each");
        assert!(!line[..line.len() - 1].contains(&b'\n'));
        serde_json::from_slice(&line).expect("each line is JSON")
    }

    #[test]
    fn lines_are_numbered_and_corrections_grow() {
        let mut plan = StreamPlan {
            lines: 3,
            interval: Duration::ZERO,
            replace: false,
        };
        assert_eq!(
            line_json(&plan, 2),
            serde_json::json!({ "body": "Did you say #7 hi? (2/3)" })
        );
        plan.replace = true;
        assert_eq!(
            line_json(&plan, 1),
            serde_json::json!({ "body": "Did you say #7 hi? (1/3)" })
        );
        assert_eq!(
            line_json(&plan, 3),
            serde_json::json!({ "body": "Did you say #7 hi? more more (3/3)", "replace": true })
        );
    }

    /// Starts the bot on a free port; returns its address and its stop switch.
    async fn start() -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<u64>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    #[tokio::test]
    async fn streams_each_line_at_its_time() {
        let (addr, stop, server) = start().await;
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let request = Request::post("/stream?lines=3&interval_ms=500")
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from_static(br##"{"body":"#1 go"}"##)))
            .expect("request");
        let sent = tokio::time::Instant::now();
        let response = sender.send_request(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[hyper::header::CONTENT_TYPE],
            "application/x-ndjson"
        );
        let mut body = response.into_body();
        let mut text = Vec::new();
        let mut arrivals = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("a frame").into_data() {
                let lines = data.iter().filter(|b| **b == b'\n').count();
                arrivals.extend(std::iter::repeat_n(sent.elapsed(), lines));
                text.extend_from_slice(&data);
            }
        }
        let text = String::from_utf8(text).expect("UTF-8");
        let bodies: Vec<String> = text
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                value["body"].as_str().expect("a body").to_owned()
            })
            .collect();
        assert_eq!(
            bodies,
            ["(1/3)", "(2/3)", "(3/3)"].map(|end| format!("Did you say #1 go? {end}"))
        );
        // The first line comes before the second is due, the others on time.
        assert!(arrivals[0] < Duration::from_millis(450), "{arrivals:?}");
        assert!(arrivals[1] >= Duration::from_millis(500), "{arrivals:?}");
        assert!(arrivals[2] >= Duration::from_millis(1000), "{arrivals:?}");
        let _ = stop.send(());
        assert_eq!(server.await.expect("server task"), 1);
    }

    #[tokio::test]
    async fn serves_echo_replies_over_http() {
        let (addr, stop, server) = start().await;
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

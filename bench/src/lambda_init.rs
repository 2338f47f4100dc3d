//! Cold-start meter for the Lambda function: a local Lambda Runtime API that
//! hands one event to a freshly started `bootstrap` process and times
//! process start → first `next` request (init) and → the event's answer
//! (first event handled).

use std::convert::Infallible;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The event given to the function unless another is chosen: a bare
/// request JSON, as `aws lambda invoke` would pass it.
pub const DEFAULT_EVENT: &str = r#"{"to":"echo@bot.localhost","from":"user@localhost/phone","kind":"message","type":"chat","id":"m1","body":"hello","stanza":"<message xmlns='jabber:client' to='echo@bot.localhost' from='user@localhost/phone' type='chat' id='m1'><body>hello</body></message>"}"#;

/// What the Runtime API saw during one run.
#[derive(Debug)]
enum RuntimeEvent {
    /// The function asked for its first event: init is over.
    FirstNext(Instant),
    /// The function answered the event (`response`) or reported an `error`.
    Answered {
        at: Instant,
        kind: &'static str,
        body: Bytes,
    },
}

/// State shared by the Runtime API's connections.
struct RuntimeApi {
    /// The event every run receives.
    event: Bytes,
    /// Whether this run's event has been handed out (later `next` calls wait forever).
    delivered: AtomicBool,
    /// Where the API reports what happened to the measuring loop.
    events: mpsc::UnboundedSender<RuntimeEvent>,
}

async fn handle(
    request: Request<Incoming>,
    api: Arc<RuntimeApi>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let now = Instant::now();
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path.ends_with("/runtime/invocation/next") {
        if api.delivered.swap(true, Ordering::SeqCst) {
            // One event per process: the next one never comes.
            std::future::pending::<()>().await;
        }
        let _ = api.events.send(RuntimeEvent::FirstNext(now));
        let deadline_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() + 30_000);
        let response = Response::builder()
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", "bench-request")
            .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
            .header(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .header(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(api.event.clone()));
        return Ok(response.unwrap_or_else(|_| status_only(StatusCode::INTERNAL_SERVER_ERROR)));
    }
    if request.method() == Method::POST {
        let kind = if path.ends_with("/response") {
            "response"
        } else {
            "error"
        };
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let _ = api.events.send(RuntimeEvent::Answered {
            at: Instant::now(),
            kind,
            body,
        });
        return Ok(status_only(StatusCode::ACCEPTED));
    }
    Ok(status_only(StatusCode::NOT_FOUND))
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The figures of a set of cold starts.
#[derive(Debug, Serialize)]
pub struct InitReport {
    /// Cold starts measured.
    pub runs: usize,
    /// Process start → first `next`, milliseconds: min, median, max.
    pub init_ms: [f64; 3],
    /// Process start → the first event's answer, milliseconds: min, median, max.
    pub first_event_ms: [f64; 3],
    /// `response` or `error`: how the function answered.
    pub outcome: String,
    /// What it answered (the last run).
    pub answer: String,
}

/// Why the meter failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("runtime API: {0}")]
    Io(#[from] std::io::Error),
    #[error("the function did not answer within {0:?} (run {1})")]
    NoAnswer(Duration, usize),
}

/// Starts `bootstrap` `runs` times, each with one event, and times it.
pub async fn measure(
    bootstrap: &Path,
    event: Bytes,
    runs: usize,
    env: &[(String, String)],
) -> Result<InitReport, InitError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let api = Arc::new(RuntimeApi {
        event,
        delivered: AtomicBool::new(false),
        events: events_tx,
    });
    let server_api = Arc::clone(&api);
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let api = Arc::clone(&server_api);
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(request, Arc::clone(&api)));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let limit = Duration::from_secs(10);
    let (mut inits, mut firsts) = (Vec::new(), Vec::new());
    let (mut outcome, mut answer) = (String::new(), String::new());
    for run in 0..runs {
        api.delivered.store(false, Ordering::SeqCst);
        let mut command = tokio::process::Command::new(bootstrap);
        command
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn()?;
        let mut init = None;
        let answered = tokio::time::timeout(limit, async {
            while let Some(event) = events.recv().await {
                match event {
                    RuntimeEvent::FirstNext(at) => init = Some(at - started),
                    RuntimeEvent::Answered { at, kind, body } => return Some((at, kind, body)),
                }
            }
            None
        })
        .await;
        let _ = child.kill().await;
        let Ok(Some((at, kind, body))) = answered else {
            server.abort();
            return Err(InitError::NoAnswer(limit, run));
        };
        inits.push(init.unwrap_or(at - started).as_secs_f64() * 1000.0);
        firsts.push((at - started).as_secs_f64() * 1000.0);
        outcome = kind.to_owned();
        answer = String::from_utf8_lossy(&body).into_owned();
    }
    server.abort();
    Ok(InitReport {
        runs,
        init_ms: spread(&mut inits),
        first_event_ms: spread(&mut firsts),
        outcome,
        answer,
    })
}

/// Min, median and max.
fn spread(values: &mut [f64]) -> [f64; 3] {
    if values.is_empty() {
        return [0.0; 3];
    }
    values.sort_by(f64::total_cmp);
    [
        values[0],
        values[values.len() / 2],
        values[values.len() - 1],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(spread(&mut [3.0, 1.0, 2.0]), [1.0, 2.0, 3.0]);
        assert_eq!(spread(&mut []), [0.0; 3]);
    }
}

//! A gate in front of moto: it forwards every SQS call unchanged, except
//! that it can be told to refuse deletes. A test closes it to hold the
//! connector between "written to the stream" and "deleted from the queue",
//! the window a crash must not lose anything in.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Moto, Result};

/// The action the SDK names in `X-Amz-Target` for batch deletes.
const DELETE_BATCH: &str = "AmazonSQS.DeleteMessageBatch";

/// A forwarding proxy to moto on a free loopback port. Dropping it stops it.
#[derive(Debug)]
pub struct SqsGate {
    /// Where it listens.
    address: SocketAddr,
    /// What the handlers share.
    state: Arc<GateState>,
    /// The accept loop.
    server: JoinHandle<()>,
}

#[derive(Debug)]
struct GateState {
    /// moto's endpoint, where calls are forwarded.
    upstream: String,
    /// While set, DeleteMessageBatch is answered with an error.
    refuse_deletes: AtomicBool,
    /// DeleteMessageBatch calls refused so far.
    refused: AtomicU64,
    /// Forwards the calls.
    http: reqwest::Client,
}

impl SqsGate {
    /// Starts a gate in front of `moto`, open.
    pub async fn start(moto: &Moto) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(GateState {
            upstream: moto.endpoint_url(),
            refuse_deletes: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let server = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(SqsGate {
            address,
            state,
            server,
        })
    }

    /// The endpoint for `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Refuses (`true`) or forwards (`false`) DeleteMessageBatch from now on.
    pub fn refuse_deletes(&self, refuse: bool) {
        self.state.refuse_deletes.store(refuse, Ordering::SeqCst);
    }

    /// DeleteMessageBatch calls refused so far.
    pub fn refused_deletes(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for SqsGate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<GateState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(pass(&state, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Forwards one call, or refuses it.
async fn pass(state: &GateState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if target == DELETE_BATCH && state.refuse_deletes.load(Ordering::SeqCst) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        // A client error, so the SDK does not retry it.
        return answer(
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.0",
            br#"{"__type":"com.amazonaws.sqs#AccessDenied","message":"deletes refused by the test gate"}"#
                .to_vec(),
        );
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_GATEWAY, "text/plain", b"body".to_vec());
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut forward = state
        .http
        .request(parts.method, format!("{}{path}", state.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    match forward.send().await {
        Ok(response) => {
            let status = response.status();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-amz-json-1.0")
                .to_owned();
            let body = response.bytes().await.unwrap_or_default().to_vec();
            answer(status, &content_type, body)
        }
        Err(_) => answer(StatusCode::BAD_GATEWAY, "text/plain", b"moto".to_vec()),
    }
}

fn answer(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

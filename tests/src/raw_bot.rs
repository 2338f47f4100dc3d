//! An HTTP bot on a plain socket, for answers no HTTP library would write:
//! each answer is the exact bytes a test gives (written piece by piece),
//! and every connection and request that reaches the bot is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::Result;

/// What the bot does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawAnswer {
    /// Writes these pieces, each flushed on its own, then waits for the
    /// next request on the same connection.
    Pieces(Vec<Vec<u8>>),
    /// Writes each piece after its delay (counted from the one before),
    /// each flushed on its own: a streamed answer. Then waits for the next
    /// request on the same connection.
    Paced(Vec<(std::time::Duration, Vec<u8>)>),
    /// Closes the connection without a byte of answer.
    HangUp,
}

impl RawAnswer {
    /// An answer written in one piece.
    pub fn whole(bytes: impl Into<Vec<u8>>) -> RawAnswer {
        RawAnswer::Pieces(vec![bytes.into()])
    }
}

/// Decides the answer to a request from its JSON body.
type Answerer = Arc<dyn Fn(&Value) -> RawAnswer + Send + Sync>;

/// A running raw bot. Dropping it stops accepting.
pub struct RawBot {
    /// Where it listens.
    url: String,
    /// Connections accepted.
    connections: Arc<AtomicUsize>,
    /// Requests read in full.
    requests: Arc<AtomicUsize>,
    /// The accept loop; aborted on drop.
    server: JoinHandle<()>,
}

impl RawBot {
    /// A bot on a free loopback port, answering each request with
    /// `answer`.
    pub async fn start(
        answer: impl Fn(&Value) -> RawAnswer + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::serve(listener, answer))
    }

    /// A bot on `listener` (e.g. one bound late, to a port chosen earlier).
    pub fn serve(
        listener: TcpListener,
        answer: impl Fn(&Value) -> RawAnswer + Send + Sync + 'static,
    ) -> Self {
        let url = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}/bot"),
            Err(_) => String::new(),
        };
        let answer: Answerer = Arc::new(answer);
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let server = tokio::spawn({
            let (connections, requests) = (Arc::clone(&connections), Arc::clone(&requests));
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    let (requests, answer) = (Arc::clone(&requests), Arc::clone(&answer));
                    tokio::spawn(async move {
                        let _ = serve_connection(stream, &*answer, &requests).await;
                    });
                }
            }
        });
        RawBot {
            url,
            connections,
            requests,
            server,
        }
    }

    /// The URL to POST to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests read in full so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RawBot {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The echo bot's reply to a request, as JSON text:
/// `{"body":"Did you say <body>?"}`.
pub fn echo_json(request: &Value) -> String {
    let said = request["body"].as_str().unwrap_or_default();
    json!({ "body": format!("Did you say {said}?") }).to_string()
}

/// A `200` answer carrying `json` with a Content-Length, after `fields`
/// (each `name: value`).
pub fn json_answer(fields: &[&str], json: &str) -> Vec<u8> {
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
    for field in fields {
        head.push_str(field);
        head.push_str("\r\n");
    }
    format!("{head}content-length: {}\r\n\r\n{json}", json.len()).into_bytes()
}

/// A streamed answer (DESIGN §11): the head of a chunked
/// `application/x-ndjson` answer at once, then each line as a chunk after
/// its delay, then the last chunk. A line is sent as given (a `\n` is
/// added).
pub fn ndjson_answer(lines: &[(std::time::Duration, String)]) -> RawAnswer {
    let mut pieces = vec![(
        std::time::Duration::ZERO,
        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n\
          transfer-encoding: chunked\r\n\r\n"
            .to_vec(),
    )];
    for (delay, line) in lines {
        let line = format!("{line}\n");
        pieces.push((
            *delay,
            format!("{:x}\r\n{line}\r\n", line.len()).into_bytes(),
        ));
    }
    pieces.push((std::time::Duration::ZERO, b"0\r\n\r\n".to_vec()));
    RawAnswer::Paced(pieces)
}

/// Reads requests from one connection and answers each.
async fn serve_connection(
    mut stream: TcpStream,
    answer: &(dyn Fn(&Value) -> RawAnswer + Send + Sync),
    requests: &AtomicUsize,
) -> Result<()> {
    let mut buffer = Vec::new();
    loop {
        let body = read_request(&mut stream, &mut buffer).await?;
        requests.fetch_add(1, Ordering::SeqCst);
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match answer(&request) {
            RawAnswer::HangUp => return Ok(()),
            RawAnswer::Pieces(pieces) => {
                for piece in pieces {
                    stream.write_all(&piece).await?;
                    stream.flush().await?;
                }
            }
            RawAnswer::Paced(pieces) => {
                for (delay, piece) in pieces {
                    tokio::time::sleep(delay).await;
                    stream.write_all(&piece).await?;
                    stream.flush().await?;
                }
            }
        }
    }
}

/// Reads one request's head and Content-Length body; returns the body.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                let body = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                return Ok(body);
            }
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("the connector closed the connection".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

//! The proxy bot's kept-alive connections against bots that close them:
//! a connection the bot closed (while the function was frozen, or just as
//! a request went out) must not turn into "no response".

mod common;

use common::{LambdaEmulator, bootstrap, request};
use serde_json::{Value, json};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use xmpp_lambda_function::{Bot, POOL_IDLE_TIMEOUT, ProxyBot};

/// How a [`KeepAliveBot`] ends a kept-alive connection.
#[derive(Clone, Copy)]
enum Close {
    /// Reads the connection's second request, then closes without a word:
    /// its keep-alive ran out just as the request arrived.
    OnSecondRequest,
    /// Closes a connection idle for this long, as servers' keep-alive
    /// timeouts do.
    WhenIdle(Duration),
    /// Stops answering a connection idle for this long, without closing
    /// it: the close never reached the function (lost while it was
    /// frozen, or dropped by a middlebox).
    SilentlyWhenIdle(Duration),
}

/// A real HTTP/1.1 bot that keeps connections alive and answers
/// `{"body": "answer N"}`, closing connections as `close` says.
struct KeepAliveBot {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KeepAliveBot {
    async fn start(close: Close) -> KeepAliveBot {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/bot", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, answered) = (Arc::clone(&connections), Arc::clone(&requests));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, close, Arc::clone(&answered)));
            }
        });
        KeepAliveBot {
            url,
            connections,
            requests,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for KeepAliveBot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(stream: TcpStream, close: Close, requests: Arc<AtomicUsize>) {
    let mut stream = BufReader::new(stream);
    for on_connection in 1.. {
        let head = match close {
            Close::WhenIdle(idle) => match tokio::time::timeout(idle, read_head(&mut stream)).await
            {
                Ok(head) => head,
                Err(_) => return,
            },
            Close::SilentlyWhenIdle(idle) => {
                match tokio::time::timeout(idle, read_head(&mut stream)).await {
                    Ok(head) => head,
                    Err(_) => {
                        // Holds the connection open, deaf, until the test ends.
                        std::future::pending::<()>().await;
                        return;
                    }
                }
            }
            Close::OnSecondRequest => read_head(&mut stream).await,
        };
        let Some(length) = head else { return };
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(close, Close::OnSecondRequest) && on_connection == 2 {
            return;
        }
        let answer = json!({ "body": format!("answer {n}") }).to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if stream
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Reads a request head; returns its Content-Length, or `None` at the end
/// of the connection.
async fn read_head(stream: &mut BufReader<TcpStream>) -> Option<usize> {
    let mut length = 0;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(length);
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
}

#[tokio::test]
async fn a_request_on_a_connection_the_bot_just_closed_is_sent_again() {
    let bot = KeepAliveBot::start(Close::OnSecondRequest).await;
    let proxy =
        ProxyBot::new(bot.url.parse().expect("url"), Duration::from_secs(5)).expect("proxy");

    let first = proxy.answer(&request(Some("one"))).await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, r#"{"body":"answer 1"}"#)
    );
    // Reuses the kept-alive connection, which the bot closes unanswered:
    // the request goes out once more, on a new connection.
    let second = proxy.answer(&request(Some("two"))).await;
    assert_eq!(
        (second.status, second.body.as_str()),
        (200, r#"{"body":"answer 3"}"#)
    );
    assert_eq!((bot.connections(), bot.requests()), (2, 3));
}

/// Sends SIGSTOP or SIGCONT to `pid`, as Lambda freezes and thaws.
fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {name} {pid}");
}

/// Freezes the function for `frozen` while a second Function URL request
/// arrives, as Lambda delivers the next event to a frozen function; returns
/// that request's answer.
async fn second_request_across_a_freeze(
    lambda: &LambdaEmulator,
    frozen: Duration,
) -> reqwest::Response {
    let body = serde_json::to_string(&request(Some("one"))).expect("json");
    let first = lambda.post_url(&body, "application/json").await;
    assert_eq!(first.status(), 200);
    let pid = lambda.function_pid();
    signal("-STOP", pid);
    let url = format!(
        "http://127.0.0.1:{}/lambda-url/{}/",
        lambda.port,
        common::FUNCTION
    );
    let body = serde_json::to_string(&request(Some("two"))).expect("json");
    let second = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
    });
    tokio::time::sleep(frozen).await;
    signal("-CONT", pid);
    second.await.expect("joined").expect("Function URL request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_frozen_past_the_bots_keep_alive_still_gets_its_answer() {
    let bot = KeepAliveBot::start(Close::WhenIdle(Duration::from_millis(200))).await;
    let lambda = LambdaEmulator::start(
        &bootstrap(),
        &[("COMPONENT_POST_URL".to_owned(), bot.url.clone())],
    );
    // The bot's close of the kept-alive connection and the next event are
    // both waiting when the function thaws.
    let second = second_request_across_a_freeze(&lambda, Duration::from_millis(800)).await;
    assert_eq!(second.status(), 200, "not a bad gateway");
    let reply: Value = second.json().await.expect("JSON reply");
    assert_eq!(reply["body"], "answer 2");
    assert_eq!(bot.requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_idle_past_the_pool_timeout_is_never_reused() {
    let bot = KeepAliveBot::start(Close::SilentlyWhenIdle(Duration::from_millis(200))).await;
    let lambda = LambdaEmulator::start(
        &bootstrap(),
        &[
            ("COMPONENT_POST_URL".to_owned(), bot.url.clone()),
            ("COMPONENT_POST_TIMEOUT".to_owned(), "3".to_owned()),
        ],
    );
    // Frozen longer than the pool keeps idle connections: the dead one is
    // dropped instead of waiting out the bot timeout on it.
    let frozen = POOL_IDLE_TIMEOUT + Duration::from_millis(500);
    let second = second_request_across_a_freeze(&lambda, frozen).await;
    assert_eq!(second.status(), 200, "not a bad gateway");
    let reply: Value = second.json().await.expect("JSON reply");
    assert_eq!(reply["body"], "answer 2");
    assert_eq!(bot.connections(), 2);
}

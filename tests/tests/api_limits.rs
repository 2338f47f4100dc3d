//! The connector's API listener under a flood, end to end: the connector
//! binary with the open-file limit a service usually gets (1,024), Prosody,
//! a real XMPP client, an HTTP echo bot, and 1,100 connections to the API
//! that each send half a request head and stay open.
//!
//! Without bounds those connections took every file descriptor: `/healthz`
//! stopped answering and the connector could open no connection to its
//! bot. Now at most a quarter of the descriptors (128 here) go to API
//! connections, the rest are closed as soon as they are accepted, and a
//! head must come within 5 s.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use xmpp_lambda_tests::{
    BotServer, Connector, Prosody, Result, XmppServer, body_of, free_port, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";
/// The connections of the flood: more than the 1,024 descriptors the
/// connector gets.
const FLOOD: usize = 1_100;
/// The connector's header read timeout (`api::HEADER_READ_TIMEOUT`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Lets this test process hold the flood's sockets (a soft limit of 1,024
/// would not); the hard limit must allow it.
fn raise_own_open_file_limit(needed: u64) -> Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read or write one rlimit through a
    // valid pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error().into());
            }
        }
    }
    if limit.rlim_cur < needed {
        return Err(format!(
            "this test needs {needed} open files; the hard limit is {}",
            limit.rlim_max
        )
        .into());
    }
    Ok(())
}

/// `GET /healthz` on a new connection: the status, or `None` when the
/// connection was refused, closed or silent for a second.
async fn healthz(listen: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = TcpStream::connect(listen).await.ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        String::from_utf8_lossy(answer.get(9..12)?).parse().ok()
    };
    timeout(Duration::from_secs(1), exchange)
        .await
        .ok()
        .flatten()
}

/// Asks `/healthz` until it answers 200; how long that took.
async fn healthz_answers(listen: &str, within: Duration) -> Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if healthz(listen).await == Some(200) {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("/healthz did not answer within {within:?}").into())
}

/// Whether the connector closed `stream` (end of stream or reset) within
/// `within`.
async fn closed_by_connector(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_flood_of_half_open_connections_leaves_the_connector_working() -> Result<()> {
    raise_own_open_file_limit(FLOOD as u64 + 512)?;
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let listen = format!("127.0.0.1:{}", free_port());
    let url = bot.url();
    let connector = Connector::start_with_open_files(
        &prosody,
        &[
            ("COMPONENT_POST_URL", url.as_str()),
            ("COMPONENT_API_LISTEN", listen.as_str()),
        ],
        1024,
        1024,
    )
    .await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    let listening = connector.wait_for_log("API listening", WAIT).await?;
    assert!(listening.contains("max_connections=128"), "{listening}");
    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());

    // Each connection sends half a head and stays open; the ones beyond
    // the cap find themselves closed.
    let flood_started = Instant::now();
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let mut stream = timeout(WAIT, TcpStream::connect(&listen)).await??;
        // A connection closed at once may refuse the write: that is fine.
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await;
        flood.push(stream);
    }
    let flooded_in = flood_started.elapsed();

    // While the flood holds what it can, the bot is still reached.
    let sent = Instant::now();
    alice.send_message(&echo, "still there").await?;
    let reply = alice
        .expect_message("the echo during the flood", WAIT)
        .await?;
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say still there?"));
    let replied_in = sent.elapsed();
    assert!(
        replied_in < Duration::from_secs(3),
        "the echo took {replied_in:?}"
    );

    // /healthz answers again once the header timeout frees the slots.
    let healthy_after = flood_started.elapsed() + healthz_answers(&listen, WAIT).await?;
    assert!(
        healthy_after < HEADER_READ_TIMEOUT + flooded_in + Duration::from_secs(3),
        "/healthz answered {healthy_after:?} after the flood started"
    );

    // Every flood connection was closed by the connector: at once beyond
    // the cap, at the header timeout within it.
    let mut still_open = 0;
    for stream in &mut flood {
        let left = (flood_started + HEADER_READ_TIMEOUT + Duration::from_secs(5))
            .saturating_duration_since(Instant::now());
        if !closed_by_connector(stream, left).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "flood connections left open");
    drop(flood);

    let line = connector
        .wait_for_log("API connection limit reached", WAIT)
        .await?;
    assert!(line.contains("max_connections=128"), "{line}");
    let logs = connector.logs();
    assert!(
        !logs.iter().any(|line| line.contains("API accept failed")),
        "the connector ran out of descriptors"
    );
    assert!(!logs.iter().any(|line| line.contains("panicked")));
    assert_eq!(healthz(&listen).await, Some(200), "at once after the flood");
    eprintln!(
        "flood of {FLOOD} connections in {flooded_in:?}; echo in {replied_in:?} during it; \
         /healthz answered {healthy_after:?} after it started"
    );
    Ok(())
}

/// A soft open-file limit below the hard one is raised at start, logged,
/// and sizes the API's connection cap.
#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit_at_start() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let url = bot.url();
    for (soft, hard, cap) in [(256, 4096, 128), (200, 200, 50)] {
        let listen = format!("127.0.0.1:{}", free_port());
        let connector = Connector::start_with_open_files(
            &prosody,
            &[
                ("COMPONENT_POST_URL", url.as_str()),
                ("COMPONENT_API_LISTEN", listen.as_str()),
            ],
            soft,
            hard,
        )
        .await?;
        let listening = connector.wait_for_log("API listening", WAIT).await?;
        assert!(
            listening.contains(&format!("max_connections={cap}")),
            "{listening}"
        );
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", connector.pid()))?;
        let open_files = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .ok_or("no open-file line")?;
        let figures: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
        assert_eq!(
            figures,
            [hard.to_string(), hard.to_string()],
            "{open_files}"
        );
        if soft < hard {
            let line = connector
                .wait_for_log("raised the open-file limit", WAIT)
                .await?;
            assert!(
                line.contains(&format!("from={soft}")) && line.contains(&format!("to={hard}")),
                "{line}"
            );
        } else {
            let line = connector.wait_for_log("open-file limit", WAIT).await?;
            assert!(line.contains(&format!("open_files={hard}")), "{line}");
        }
    }
    Ok(())
}

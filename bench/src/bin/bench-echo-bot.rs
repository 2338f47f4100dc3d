//! `bench-echo-bot [--listen ADDR]`: the PHP example echo bot as a fast Rust
//! HTTP server, which also streams NDJSON answers at
//! `/stream?lines=N&interval_ms=M[&replace=1]`. Prints
//! `listening on http://ADDR/` once ready and serves until SIGINT or SIGTERM.

use std::process::ExitCode;

use xmpp_lambda_bench::echo_bot;
use xmpp_lambda_bench::server::{self, StopSignal};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            _ => {
                eprintln!("usage: bench-echo-bot [--listen ADDR]");
                return ExitCode::from(2);
            }
        }
    }
    // Signals first: the bench script may stop a server as soon as it
    // has read the "listening" line.
    let (stop, listener) = match (
        StopSignal::install("bench-echo-bot"),
        server::bind_announced("bench-echo-bot", &listen).await,
    ) {
        (Ok(stop), Ok(listener)) => (stop, listener),
        (Err(line), _) | (_, Err(line)) => {
            eprintln!("{line}");
            return ExitCode::FAILURE;
        }
    };
    let served = echo_bot::serve(listener, stop.received()).await;
    eprintln!("bench-echo-bot: served {served} requests");
    ExitCode::SUCCESS
}

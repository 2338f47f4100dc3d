//! `bench-echo-bot [--listen ADDR]`: the PHP example echo bot as a fast Rust
//! HTTP server. Prints `listening on http://ADDR/` once ready and serves
//! until SIGINT or SIGTERM.

use std::io::Write;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use xmpp_lambda_bench::echo_bot;

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
    let listener = match TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bench-echo-bot: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("bench-echo-bot: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{addr}/");
    let _ = std::io::stdout().flush();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("bench-echo-bot: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let served = echo_bot::serve(listener, async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    eprintln!("bench-echo-bot: served {served} requests");
    ExitCode::SUCCESS
}

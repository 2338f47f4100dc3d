//! `bench-sqs-counter --upstream HOST:PORT [--listen ADDR]`: a proxy in
//! front of an SQS server that counts API calls by queue and action.
//! Prints `listening on http://ADDR/` once ready; serves until SIGINT or
//! SIGTERM. `GET /__counts` returns the counts.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use xmpp_lambda_bench::sqs_counter::{self, Counts};

const USAGE: &str = "usage: bench-sqs-counter --upstream HOST:PORT [--listen ADDR]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_owned();
    let mut upstream: Option<SocketAddr> = None;
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--listen", Some(addr)) => listen = addr,
            ("--upstream", Some(addr)) => match addr.parse() {
                Ok(addr) => upstream = Some(addr),
                Err(_) => {
                    eprintln!("--upstream needs IP:PORT, not {addr}\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(upstream) = upstream else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("bench-sqs-counter: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        eprintln!("bench-sqs-counter: no local address");
        return ExitCode::FAILURE;
    };
    println!("listening on http://{addr}/");
    let _ = std::io::stdout().flush();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("bench-sqs-counter: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    sqs_counter::serve(listener, upstream, Counts::default(), async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    ExitCode::SUCCESS
}

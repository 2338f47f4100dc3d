//! `bench-sqs-counter --upstream HOST:PORT [--listen ADDR]`: a proxy in
//! front of an SQS server that counts API calls by queue and action.
//! Prints `listening on http://ADDR/` once ready; serves until SIGINT or
//! SIGTERM. `GET /__counts` returns the counts.

use std::net::SocketAddr;
use std::process::ExitCode;

use xmpp_lambda_bench::server::{self, StopSignal};
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
    // Signals first: the bench script may stop a server as soon as it
    // has read the "listening" line.
    let (stop, listener) = match (
        StopSignal::install("bench-sqs-counter"),
        server::bind_announced("bench-sqs-counter", &listen).await,
    ) {
        (Ok(stop), Ok(listener)) => (stop, listener),
        (Err(line), _) | (_, Err(line)) => {
            eprintln!("{line}");
            return ExitCode::FAILURE;
        }
    };
    sqs_counter::serve(listener, upstream, Counts::default(), stop.received()).await;
    ExitCode::SUCCESS
}

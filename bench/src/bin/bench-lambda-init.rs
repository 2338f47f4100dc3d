//! `bench-lambda-init --bootstrap PATH [--runs N] [--event FILE] [--env K=V]…`:
//! cold-starts the Lambda function against a local Runtime API and prints
//! init and first-event times as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use xmpp_lambda_bench::lambda_init;

const USAGE: &str =
    "usage: bench-lambda-init --bootstrap PATH [--runs N] [--event FILE] [--env KEY=VALUE]...";

#[tokio::main]
async fn main() -> ExitCode {
    let mut bootstrap = None;
    let mut runs = 10usize;
    let mut event = Bytes::from_static(lambda_init::DEFAULT_EVENT.as_bytes());
    let mut env = vec![("BOT".to_owned(), "echo".to_owned())];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--bootstrap" => bootstrap = Some(PathBuf::from(value)),
            "--runs" => match value.parse() {
                Ok(n) if n > 0 => runs = n,
                _ => {
                    eprintln!("--runs needs a positive number\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--event" => match std::fs::read(&value) {
                Ok(bytes) => event = Bytes::from(bytes),
                Err(e) => {
                    eprintln!("cannot read {value}: {e}");
                    return ExitCode::from(2);
                }
            },
            "--env" => match value.split_once('=') {
                Some((k, v)) => env.push((k.to_owned(), v.to_owned())),
                None => {
                    eprintln!("--env needs KEY=VALUE\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(bootstrap) = bootstrap else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match lambda_init::measure(&bootstrap, event, runs, &env).await {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("bench-lambda-init: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("bench-lambda-init: {e}");
            ExitCode::FAILURE
        }
    }
}

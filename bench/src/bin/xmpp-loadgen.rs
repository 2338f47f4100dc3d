//! `xmpp-loadgen`: measures XMPP round trips (or direct HTTP ones); see `--help`.

use std::process::ExitCode;

use xmpp_lambda_bench::args::{self, ArgsError};
use xmpp_lambda_bench::loadgen;

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match args::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(ArgsError::Help) => {
            print!("{}", args::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xmpp-loadgen: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let json = opts.json;
    let summary = loadgen::run(opts).await;
    if json {
        match serde_json::to_string(&summary) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("xmpp-loadgen: cannot encode the summary: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", summary.to_text());
    }
    // Every session failing means nothing was measured.
    if summary.round_trips == 0 && summary.sent == 0 {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

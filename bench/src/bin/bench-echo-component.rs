//! `bench-echo-component`: the ceiling of `make bench`, a trivial XEP-0114
//! echo component (no HTTP). Configured like the connector, from
//! `COMPONENT_JID`, `COMPONENT_SECRET` and `COMPONENT_SERVER` (`host:port`);
//! prints `component link established` once linked and answers messages
//! until SIGINT or SIGTERM.

use std::process::ExitCode;

use xmpp_lambda_bench::echo_component::{ComponentSettings, EchoComponent};
use xmpp_lambda_bench::server::StopSignal;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(domain), Some(secret), Some(server)) = (
        var("COMPONENT_JID"),
        var("COMPONENT_SECRET"),
        var("COMPONENT_SERVER"),
    ) else {
        eprintln!(
            "usage: COMPONENT_JID=DOMAIN COMPONENT_SECRET=SECRET COMPONENT_SERVER=HOST:PORT \
             bench-echo-component"
        );
        return ExitCode::from(2);
    };
    let stop = match StopSignal::install("bench-echo-component") {
        Ok(stop) => stop,
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::FAILURE;
        }
    };
    let settings = ComponentSettings {
        server,
        domain,
        secret,
    };
    let component = match EchoComponent::link(&settings).await {
        Ok(component) => component,
        Err(e) => {
            eprintln!(
                "bench-echo-component: cannot link to {}: {e}",
                settings.server
            );
            return ExitCode::FAILURE;
        }
    };
    println!("component link established");
    match component.serve(stop.received()).await {
        Ok(served) => {
            eprintln!(
                "bench-echo-component: {} replies in {} writes",
                served.replies, served.writes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench-echo-component: link lost: {e}");
            ExitCode::FAILURE
        }
    }
}

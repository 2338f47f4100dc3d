//! `xmpp-lambda-sqs-trigger`: feeds a queue to a locally running function
//! the way Lambda's SQS event source mapping would. A development tool,
//! never deployed.

use std::process::ExitCode;
use std::time::Duration;
use xmpp_lambda_sqs_trigger::{MAX_BATCH_SIZE, Trigger, TriggerConfig};

const USAGE: &str = "\
usage: xmpp-lambda-sqs-trigger --queue-url URL [options]

Long-polls URL, invokes the function with SQS events shaped like Lambda's
event source mapping, deletes what the function handled and leaves the
records it reports in batchItemFailures for the queue's visibility timeout
and redrive policy. Stop it with Ctrl-C.

options:
  --queue-url URL         queue to poll (env REQUEST_QUEUE_URL)
  --endpoint URL          Lambda invoke API base (default http://127.0.0.1:9000,
                          where `cargo lambda watch` listens)
  --function NAME         function name (default bootstrap)
  --invoke-url URL        full invoke URL, instead of --endpoint and --function
  --batch-size N          messages per invocation, 1-10 (default 10)
  --wait-seconds N        long-poll wait, 0-20 (default 20)
  --invoke-timeout SECS   the function's timeout (default 900)
  --visibility-timeout N  visibility timeout for received messages
                          (default: the queue's)

AWS settings come from the SDK's environment: AWS_ENDPOINT_URL, AWS_REGION,
credentials.";

/// The command line, parsed.
struct Args {
    /// The trigger's settings.
    config: TriggerConfig,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut queue_url = std::env::var("REQUEST_QUEUE_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let mut endpoint = "http://127.0.0.1:9000".to_owned();
    let mut function = "bootstrap".to_owned();
    let mut invoke_url = None;
    let mut batch_size = MAX_BATCH_SIZE;
    let mut wait_seconds = 20;
    let mut invoke_timeout = Duration::from_secs(900);
    let mut visibility_timeout = None;
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |value: &str| {
            value
                .parse::<i32>()
                .map_err(|_| format!("{flag} {value:?} is not a whole number"))
        };
        match flag.as_str() {
            "--queue-url" => queue_url = Some(value),
            "--endpoint" => endpoint = value,
            "--function" => function = value,
            "--invoke-url" => invoke_url = Some(value),
            "--batch-size" => batch_size = number(&value)?,
            "--wait-seconds" => wait_seconds = number(&value)?,
            "--invoke-timeout" => {
                let seconds = value
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| {
                        format!("--invoke-timeout {value:?} is not a positive number")
                    })?;
                invoke_timeout = Duration::from_secs_f64(seconds);
            }
            "--visibility-timeout" => visibility_timeout = Some(number(&value)?),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let queue_url = queue_url.ok_or("--queue-url (or REQUEST_QUEUE_URL) is required")?;
    let invoke_url = invoke_url.unwrap_or_else(|| {
        format!(
            "{}/2015-03-31/functions/{function}/invocations",
            endpoint.trim_end_matches('/')
        )
    });
    Ok(Some(Args {
        config: TriggerConfig {
            queue_url,
            invoke_url,
            batch_size,
            wait_seconds,
            invoke_timeout,
            visibility_timeout,
        },
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("xmpp-lambda-sqs-trigger: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let trigger = match Trigger::new(args.config.clone(), sqs).await {
        Ok(trigger) => trigger,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        queue = %args.config.queue_url,
        arn = trigger.source_arn(),
        invoke = %args.config.invoke_url,
        batch_size = args.config.batch_size,
        "polling"
    );
    trigger.run(shutdown_signal()).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// Completes on Ctrl-C or SIGTERM: the one way the trigger stops.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

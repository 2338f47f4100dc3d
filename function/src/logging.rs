//! Logs in the shape Lambda's logging controls ask for.

/// Installs a `tracing` subscriber on stdout: JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT=JSON` (CloudWatch parses them), text otherwise;
/// the level from `AWS_LAMBDA_LOG_LEVEL` (Lambda's `ApplicationLogLevel`),
/// else `RUST_LOG`, else `info`. Does nothing if the program already
/// installed one.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .map(|level| filter_for_lambda_level(&level))
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Lambda stamps every line itself.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT")
        .is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    // An error here means a subscriber is already installed: keep it.
    let _ = if json {
        // The span (the invocation's request id) once, not also as a list:
        // CloudWatch bills every byte.
        builder.json().with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
}

/// The `tracing` filter for one of Lambda's application log levels
/// (`TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL`): the same level,
/// except `FATAL`, which `tracing` lacks, keeps errors only.
fn filter_for_lambda_level(level: &str) -> String {
    match level.trim().to_ascii_lowercase().as_str() {
        "fatal" => "error".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lambda_level_is_a_valid_filter() {
        for (lambda, filter) in [
            ("TRACE", "trace"),
            ("DEBUG", "debug"),
            ("INFO", "info"),
            ("WARN", "warn"),
            ("ERROR", "error"),
            ("FATAL", "error"),
        ] {
            assert_eq!(filter_for_lambda_level(lambda), filter);
            assert!(tracing_subscriber::EnvFilter::try_new(filter).is_ok());
        }
    }
}

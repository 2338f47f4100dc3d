//! xmpp-lambda-connector: an XMPP component (XEP-0114) that hands every
//! stanza addressed to it to a bot and sends the bot's answer back.
//!
//! * [`config`]: options from the environment or a TOML file.
//! * [`link`]: the component link to the XMPP server, kept up forever.
//! * [`dispatch`]: auto-answers, and requests to the bot in conversation order.
//! * [`transport`]: how requests reach the bot (http or sqs).
//! * [`sqs`]: the request queue's sender and the reply queue's poller.
//! * [`sigv4`]: AWS SigV4 signatures for Function URLs with IAM auth.
//! * [`shutdown`]: the one signal that winds everything down.

mod backoff;
mod config;
mod dispatch;
mod link;
mod shutdown;
mod sigv4;
mod sqs;
mod transport;

use config::{Command, Config, LogFormat, TransportConfig};
use dispatch::Dispatcher;
use link::LinkSettings;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use transport::{HttpTransport, Transport};

/// Stanzas read but not yet taken by the dispatcher. Small: when the
/// dispatcher is at its limit the link should stop reading soon.
const INBOUND_QUEUE: usize = 64;
/// Time for closing the stream after the last request is answered.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned());
    let config = match config::load(args, &|name| std::env::var(name).ok()) {
        Ok(Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(config)) => config,
        Err(error) => return usage_error(&error.to_string()),
    };
    if let Err(line) = init_logging(config.log_format) {
        return usage_error(&line);
    }
    // One thread: the connector only moves bytes between sockets, and on a
    // small VM next to the XMPP server every extra thread costs wake-ups
    // (cross-thread hand-offs were the largest item in its profile).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(*config))
}

/// A start-up error: one line naming the problem, exit code 2.
fn usage_error(line: &str) -> ExitCode {
    eprintln!("xmpp-lambda-connector: {line}");
    ExitCode::from(2)
}

/// Logs go to stderr, as text or JSON lines, filtered by `RUST_LOG`.
fn init_logging(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(&directives)
            .map_err(|e| format!("RUST_LOG {directives:?} is invalid: {e}"))?,
        _ => EnvFilter::new("info"),
    };
    // Colours only for a person at a terminal who has not opted out.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    Ok(())
}

/// Runs the connector until SIGTERM or SIGINT, then shuts down gracefully.
async fn run(config: Config) -> ExitCode {
    let (mut terminate, mut interrupt) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(terminate), Ok(interrupt)) => (terminate, interrupt),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, "cannot listen for signals");
            return ExitCode::FAILURE;
        }
    };
    let (trigger, shutdown) = shutdown::channel();
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (link_up_tx, link_up_rx) = watch::channel(false);
    // The sqs transport's parts besides the transport itself.
    let mut sqs_parts = None;
    let transport = match &config.transport {
        TransportConfig::Http { post_url } => {
            let signer = sigv4::RequestSigner::for_post_url(&post_url.0, &config.post_signing);
            match HttpTransport::new(post_url.0.clone(), config.post_timeout, signer) {
                Ok(http) => Transport::Http(http.with_post_signer(config.post_signer())),
                Err(e) => {
                    error!(error = %e, "cannot build the HTTP client");
                    return ExitCode::FAILURE;
                }
            }
        }
        TransportConfig::Sqs {
            request_queue_url,
            reply_queue_url,
        } => {
            let client = sqs::client().await;
            let stats = Arc::new(sqs::SqsStats::default());
            let (requests, batcher) = sqs::RequestSender::start(
                client.clone(),
                request_queue_url.clone(),
                config.post_timeout,
                Arc::clone(&stats),
            );
            let poller = sqs::ReplyPoller::new(
                client,
                reply_queue_url.clone(),
                config.component_domain.clone(),
                outbound_tx.clone(),
                link_up_rx,
                Arc::clone(&stats),
            );
            sqs_parts = Some((poller, batcher, stats));
            Transport::Sqs(requests)
        }
    };
    info!(?config, "starting");

    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let dispatcher = Dispatcher::new(
        config.component_domain.clone(),
        config.forwarded_kinds.clone(),
        transport,
        outbound_tx,
    );
    let settings = LinkSettings {
        domain: config.component_domain.clone(),
        secret: config.component_secret.clone(),
        server: config.component_server.clone(),
        ping_interval: config.ping_interval,
    };
    let link = tokio::spawn(link::run(
        settings,
        inbound_tx,
        outbound_rx,
        link_up_tx,
        shutdown.clone(),
    ));
    let (poller, batcher, stats) = match sqs_parts {
        Some((poller, batcher, stats)) => (
            Some(tokio::spawn(poller.run(shutdown.clone()))),
            Some(batcher),
            Some(stats),
        ),
        None => (None, None, None),
    };
    let dispatch = tokio::spawn(dispatcher.run(inbound_rx, shutdown));
    let finished = async move {
        // The dispatcher ends once in-flight requests are answered (or
        // queued); the reply poller once the replies it took are written
        // and deleted; the link then writes what is left and closes.
        let _ = dispatch.await;
        if let Some(batcher) = batcher {
            let _ = batcher.await;
        }
        if let Some(poller) = poller {
            let _ = poller.await;
        }
        let _ = link.await;
        if let Some(stats) = stats {
            stats.log_summary();
        }
    };
    let mut finished = std::pin::pin!(finished);

    tokio::select! {
        _ = terminate.recv() => info!(signal = "SIGTERM", "shutting down"),
        _ = interrupt.recv() => info!(signal = "SIGINT", "shutting down"),
        () = &mut finished => {
            error!("connector stopped unexpectedly");
            return ExitCode::FAILURE;
        }
    }
    trigger.trigger();
    // In-flight requests end within the bot timeout; then replies are
    // written and the stream is closed.
    let grace = config.post_timeout + CLOSE_GRACE;
    tokio::select! {
        result = tokio::time::timeout(grace, &mut finished) => match result {
            Ok(()) => {
                info!("shutdown complete");
                ExitCode::SUCCESS
            }
            Err(_) => {
                warn!(grace_ms = grace.as_millis() as u64, "shutdown took too long; exiting");
                ExitCode::FAILURE
            }
        },
        _ = terminate.recv() => {
            warn!("second signal: exiting without waiting");
            ExitCode::FAILURE
        }
        _ = interrupt.recv() => {
            warn!("second signal: exiting without waiting");
            ExitCode::FAILURE
        }
    }
}

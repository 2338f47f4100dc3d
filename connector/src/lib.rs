//! xmpp-lambda-connector: an XMPP component (XEP-0114) that hands every
//! stanza addressed to it to a bot and sends the bot's answer back. The
//! link itself (connect, read, write, keepalive, relink, the one shutdown
//! signal) is the `xmpp-lambda-component` crate.
//!
//! * [`config`]: options from the environment or a TOML file.
//! * [`decision`]: what becomes of each stanza, decided once.
//! * [`dispatch`]: carries decisions out: requests to the bot in
//!   conversation order, within the in-flight and memory limits.
//! * [`transport`]: how requests reach the bot (http or sqs).
//! * [`sqs`]: the request queue's sender and the reply queue's poller.
//! * [`sigv4`]: AWS SigV4 signatures for Function URLs with IAM auth.
//! * [`push`]: messages a bot sends on its own, from the queue or the API.
//! * [`rooms`]: group chats the connector is in.
//! * [`api`]: the HTTP API: health, readiness, metrics, `/v1/send`.
//! * [`metrics`]: what `/metrics` reports.
//! * [`health`]: what `/readyz` answers.
//! * [`descriptors`]: the open-file limit, raised at start.
//! * [`check`]: `xmpp-lambda-connector check`, a one-shot diagnosis.
//!
//! It is a library only so that the fuzz targets in `fuzz/` reach the
//! parsers they exercise ([`fuzzing`]); the program is [`main`].

mod api;
mod awaiting;
mod check;
mod config;
mod decision;
mod descriptors;
mod dispatch;
mod health;
mod ids;
mod live;
mod metrics;
mod options;
mod push;
mod request_memory;
// The component crate's counting allocator, for the memory tests here.
#[cfg(test)]
#[path = "../../component/src/counted_alloc.rs"]
mod counted_alloc;
mod rooms;
mod routes;
mod sigv4;
mod sqs;
mod stream_state;
mod streaming;
mod timer_anchor;
mod transport;
mod wake;

/// What the fuzz targets drive: the parsers of what the connector reads
/// from bots and API clients. Not an API.
#[doc(hidden)]
pub mod fuzzing;

use config::{Command, Config, LogFormat};
use dispatch::Dispatcher;
use health::{Health, QueueHealth};
use metrics::Metrics;
use push::Pusher;
use rooms::RoomDirectory;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use xmpp_lambda_component::{LinkSettings, LinkState};

/// Stanzas read but not yet taken by the dispatcher. Small: when the
/// dispatcher is at its limit the link should stop reading soon.
const INBOUND_QUEUE: usize = 64;
/// Time for closing the stream after the last request is answered.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The program: `check`, `--help`, or the connector itself until a
/// signal.
pub fn main() -> ExitCode {
    let mut args = std::env::args_os()
        .skip(1)
        .map(|arg| arg.to_string_lossy().into_owned())
        .peekable();
    if args.next_if(|arg| arg == check::COMMAND).is_some() {
        return check::main(args);
    }
    let config = match config::load(args, &|name| std::env::var(name).ok()) {
        Ok(Command::Help) => {
            print!("{}", config::help());
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

/// Raises the open-file limit as far as allowed (every connection is a
/// descriptor) and returns it, saying so when it changed.
fn open_file_limit() -> u64 {
    match descriptors::raise() {
        Ok(limits) => {
            match limits.raised_from {
                Some(from) => info!(
                    from,
                    to = limits.soft,
                    "raised the open-file limit (RLIMIT_NOFILE) to the hard limit"
                ),
                None => info!(open_files = limits.soft, "open-file limit (RLIMIT_NOFILE)"),
            }
            limits.soft
        }
        Err(error) => {
            let soft = descriptors::get().map_or(1024, |(soft, _)| soft);
            warn!(%error, open_files = soft, "cannot raise the open-file limit (RLIMIT_NOFILE)");
            soft
        }
    }
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
    let open_files = open_file_limit();
    // Bound first: a taken port stops the start before anything links.
    let api_listener = match config.api.listen {
        Some(addr) => match api::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                error!(%addr, error = %e, "cannot listen for the API (COMPONENT_API_LISTEN)");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let (trigger, shutdown) = xmpp_lambda_component::shutdown_channel();
    tokio::spawn(timer_anchor::hold());
    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (link_state_tx, link_state) = watch::channel(LinkState::Connecting);
    let metrics = Metrics::new();
    let directory = RoomDirectory::default();
    let (rooms, room_keeper) = rooms::start(
        &config.rooms,
        &config.component_domain,
        outbound_tx.clone(),
        directory.clone(),
        metrics.rooms_joined.clone(),
    );
    let pusher = Pusher::new(
        &config.component_domain,
        outbound_tx.clone(),
        link_state.clone(),
        directory,
    );
    // SQS is used by request queues and by a reply queue for pushes.
    let uses_sqs = config.reply_queue_url.is_some();
    let sqs_client = if uses_sqs {
        Some(sqs::client().await)
    } else {
        None
    };
    let stats = Arc::new(sqs::SqsStats::counting(&metrics.sqs));
    let queue_health =
        uses_sqs.then(|| Arc::new(QueueHealth::counting(metrics.sqs.errors.clone())));
    let queue_parts = match (&sqs_client, &queue_health) {
        (Some(client), Some(health)) => Some(routes::QueueParts {
            client,
            stats: &stats,
            health,
        }),
        _ => None,
    };
    let defaults = routes::Defaults {
        transport: config.transport.as_ref(),
        timeout: config.post_timeout,
        connect_retry: config.post_connect_retry,
        forwarded_kinds: &config.forwarded_kinds,
        signing: &config.post_signing,
        secret: config.post_secret.as_ref(),
    };
    let (router, batchers) = match routes::build(&config.routes, &defaults, queue_parts) {
        Ok(built) => built,
        Err(e) => {
            error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    if !config.routes.is_empty() {
        info!(routes = ?router.names(), "requests are routed by localpart");
    }
    // Answers that come back through the reply queue: typing shown while
    // they are awaited, streamed parts applied in order.
    let awaiting = uses_sqs.then(|| {
        awaiting::Awaiting::new(
            outbound_tx.clone(),
            &config.component_domain,
            config.live.typing_after,
            config.streams.edit_interval,
        )
    });
    let poller = match (
        &config.reply_queue_url,
        sqs_client,
        &queue_health,
        &awaiting,
    ) {
        (Some(url), Some(client), Some(health), Some(awaiting)) => Some(
            sqs::ReplyPoller::new(
                client,
                url.clone(),
                pusher.clone(),
                link_state.clone(),
                Arc::clone(&stats),
                Arc::clone(health),
                metrics.clone(),
            )
            .with_awaiting(awaiting.clone()),
        ),
        _ => None,
    };
    info!(?config, "starting");

    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let dispatcher = Dispatcher::new(
        config.component_domain.clone(),
        router,
        outbound_tx,
        rooms,
        request_memory::RequestMemory::new(request_memory::MAX_REQUEST_MEMORY),
        dispatch::ConversationOptions {
            live: config.live,
            streams: config.streams,
            awaiting: awaiting.clone(),
        },
        metrics.clone(),
    );
    let settings = LinkSettings {
        domain: config.component_domain.clone(),
        secret: config.component_secret.clone(),
        server: config.component_server.clone(),
        ping_interval: config.ping_interval,
    };
    let link = tokio::spawn(xmpp_lambda_component::run(
        settings,
        inbound_tx,
        outbound_rx,
        link_state_tx,
        Box::new(dispatch::restarting_answer),
        shutdown.clone(),
    ));
    let poller = poller.map(|poller| tokio::spawn(poller.run(shutdown.clone())));
    if let Some(awaiting) = awaiting {
        tokio::spawn(awaiting.run(shutdown.clone()));
    }
    let room_keeper = tokio::spawn(room_keeper.run(link_state.clone(), shutdown.clone()));
    tokio::spawn(metrics.clone().follow_link(link_state.clone()));
    let api_server = api_listener.map(|listener| {
        let health = Health::new(link_state.clone(), queue_health.clone());
        let api = api::Api::new(
            config.api.token.clone(),
            pusher.clone(),
            health,
            shutdown.clone(),
            metrics.clone(),
        );
        let max_connections = api::connection_cap(open_files);
        tokio::spawn(api::serve(listener, api, max_connections, shutdown.clone()))
    });
    // The pusher's writer handle lives on in the API and the poller only.
    drop(pusher);
    let dispatch = tokio::spawn(dispatcher.run(inbound_rx, shutdown));
    let finished = async move {
        // The dispatcher ends once in-flight requests are answered (or
        // queued); the reply poller once the replies it took are written
        // and deleted; the API once its connections are done; the link then
        // writes what is left and closes.
        let _ = dispatch.await;
        for batcher in batchers {
            let _ = batcher.await;
        }
        if let Some(poller) = poller {
            let _ = poller.await;
        }
        if let Some(api_server) = api_server {
            let _ = api_server.await;
        }
        // The keeper has written its rooms' leave presences by now.
        let _ = room_keeper.await;
        let _ = link.await;
        if uses_sqs {
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

//! What the bench's small HTTP servers share: a listener announced on
//! stdout, so the bench script can wait for it, and one stop signal.

use std::io::Write;

use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Binds `listen` and prints `listening on http://ADDR/` once it accepts.
/// The error is the line to print, naming the server.
pub async fn bind_announced(name: &str, listen: &str) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("{name}: cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("{name}: no local address: {e}"))?;
    println!("listening on http://{addr}/");
    let _ = std::io::stdout().flush();
    Ok(listener)
}

/// The stop signals (SIGTERM, SIGINT), installed before serving so that
/// neither is missed.
pub struct StopSignal {
    /// SIGTERM: how the bench script stops a server.
    terminate: Signal,
    /// SIGINT: Ctrl-C when a server is run by hand.
    interrupt: Signal,
}

impl StopSignal {
    /// Installs the handlers; the error is the line to print.
    pub fn install(name: &str) -> Result<StopSignal, String> {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(terminate), Ok(interrupt)) => Ok(StopSignal {
                terminate,
                interrupt,
            }),
            _ => Err(format!("{name}: cannot install signal handlers")),
        }
    }

    /// Completes at the first of the two signals.
    pub async fn received(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

//! Loopback ports: picking free ones and waiting for a server to listen.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// Ports already handed out by this process, so two servers of one test
/// never get the same port even though each probe socket is closed at once.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
/// released), never the same twice within one process.
///
/// # Panics
/// When the loopback interface refuses to bind, which no test could survive.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("local address of a bound socket")
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Polls until something accepts TCP connections on `127.0.0.1:port`.
/// Returns false when `timeout` passes first.
pub async fn wait_for_tcp(port: u16, timeout: Duration) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(address).await.is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        // Polling interval, not a readiness guess: we retry until it listens.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

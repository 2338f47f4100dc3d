//! The one shutdown signal every task listens to.
//!
//! `main` flips a `watch` channel when SIGTERM or SIGINT arrives; each task
//! holds a [`Shutdown`] and decides itself how to wind down (stop taking
//! stanzas, finish what is in flight, close the stream). Tasks report that
//! they are done by dropping their channel ends, not through this signal.

use tokio::sync::watch;

/// Listens for the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// Becomes `true` once, when shutdown starts.
    signal: watch::Receiver<bool>,
}

/// Starts the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger {
    /// The sending side of every [`Shutdown`]'s channel.
    signal: watch::Sender<bool>,
}

/// A trigger and its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (signal_tx, signal_rx) = watch::channel(false);
    (
        ShutdownTrigger { signal: signal_tx },
        Shutdown { signal: signal_rx },
    )
}

impl ShutdownTrigger {
    /// Tells every listener to shut down.
    pub fn trigger(&self) {
        self.signal.send_replace(true);
    }
}

impl Shutdown {
    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        *self.signal.borrow()
    }

    /// Waits until shutdown starts (at once if it has). If the trigger is
    /// gone without firing, nobody can start a shutdown any more, so this
    /// waits forever.
    pub async fn recv(&mut self) {
        if self.signal.wait_for(|started| *started).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_listener_sees_the_trigger() {
        let (trigger, first) = channel();
        let mut second = first.clone();
        assert!(!first.is_shutdown());
        let waiting = tokio::spawn(async move { second.recv().await });
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("listener woke up")
            .expect("listener task ran");
        assert!(first.is_shutdown());
        // A listener created after the trigger sees it at once.
        let mut late = first.clone();
        tokio::time::timeout(Duration::from_secs(1), late.recv())
            .await
            .expect("late listener returns at once");
    }
}

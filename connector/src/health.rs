//! Whether the connector can serve right now, for `/readyz`: linked to the
//! XMPP server and, when it uses SQS, able to reach its queues.

use prometheus_client::metrics::counter::Counter;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use xmpp_lambda_component::LinkState;

/// The last outcome of the connector's SQS calls; shared by the request
/// sender and the reply poller, read by `/readyz`.
#[derive(Debug, Default)]
pub struct QueueHealth {
    /// The last call's error, or `None` after a call that worked.
    last_error: Mutex<Option<String>>,
    /// Every failed call (`xmpp_lambda_sqs_call_errors_total`).
    errors: Counter,
}

impl QueueHealth {
    /// Health that counts failed calls in `errors`.
    pub fn counting(errors: Counter) -> QueueHealth {
        QueueHealth {
            last_error: Mutex::default(),
            errors,
        }
    }

    /// A call worked.
    pub fn record_ok(&self) {
        *self.lock() = None;
    }

    /// A call failed.
    pub fn record_error(&self, error: &str) {
        self.errors.inc();
        *self.lock() = Some(error.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Readiness: the link's state and, with SQS, the queues'.
#[derive(Debug, Clone)]
pub struct Health {
    /// The link, as the link task reports it.
    link: watch::Receiver<LinkState>,
    /// The queues, when the connector uses any.
    queues: Option<Arc<QueueHealth>>,
}

impl Health {
    pub fn new(link: watch::Receiver<LinkState>, queues: Option<Arc<QueueHealth>>) -> Health {
        Health { link, queues }
    }

    /// `Ok` when the connector can serve, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        let link = self.link.borrow().clone();
        if !link.is_up() {
            return Err(match link {
                LinkState::Standby(_) => link.to_string(),
                other => format!("not linked: {other}"),
            });
        }
        let queue_error = self
            .queues
            .as_ref()
            .and_then(|queues| queues.lock().clone());
        match queue_error {
            Some(error) => Err(format!("the last SQS call failed: {error}")),
            None => Ok(()),
        }
    }
}

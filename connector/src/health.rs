//! Whether the connector can serve right now, for `/readyz`: linked to the
//! XMPP server and, when it uses SQS, able to reach its queues.

use prometheus_client::metrics::counter::Counter;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use xmpp_lambda_component::LinkState;

/// Which of the connector's SQS calls an outcome is about: the request
/// queue's sends and the reply queue's polls fail for different reasons
/// and recover apart, so one working must not hide the other failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueCall {
    /// SendMessageBatch to a request queue.
    Send,
    /// ReceiveMessage on the reply queue.
    Poll,
}

/// The last outcome of the connector's SQS calls, each kind apart; shared
/// by the request senders and the reply poller, read by `/readyz`.
#[derive(Debug, Default)]
pub struct QueueHealth {
    /// The last send's error, or `None` after a send that worked.
    send_error: Mutex<Option<String>>,
    /// The last poll's error, or `None` after a poll that worked: while
    /// the reply queue cannot be read, no answer or push reaches anyone.
    poll_error: Mutex<Option<String>>,
    /// Every failed call (`xmpp_lambda_sqs_call_errors_total`).
    errors: Counter,
}

impl QueueHealth {
    /// Health that counts failed calls in `errors`.
    pub fn counting(errors: Counter) -> QueueHealth {
        QueueHealth {
            errors,
            ..QueueHealth::default()
        }
    }

    /// A call of kind `call` worked.
    pub fn record_ok(&self, call: QueueCall) {
        *lock(self.slot(call)) = None;
    }

    /// A call of kind `call` failed with `error`.
    pub fn record_error(&self, call: QueueCall, error: &str) {
        self.errors.inc();
        *lock(self.slot(call)) = Some(error.to_owned());
    }

    /// A call failed that does not decide readiness (a delete, whose
    /// message comes back and is dropped as a repeat): counted only.
    pub fn count_error(&self) {
        self.errors.inc();
    }

    /// Why the queues are not usable now, if they are not.
    fn problem(&self) -> Option<String> {
        if let Some(error) = lock(&self.poll_error).clone() {
            return Some(format!("the reply queue cannot be polled: {error}"));
        }
        lock(&self.send_error)
            .clone()
            .map(|error| format!("the request queue cannot be sent to: {error}"))
    }

    fn slot(&self, call: QueueCall) -> &Mutex<Option<String>> {
        match call {
            QueueCall::Send => &self.send_error,
            QueueCall::Poll => &self.poll_error,
        }
    }
}

fn lock(slot: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
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
        match self.queues.as_ref().and_then(|queues| queues.problem()) {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linked(queues: &Arc<QueueHealth>) -> Health {
        let (_, link) = watch::channel(LinkState::Up { connection: 1 });
        Health::new(link, Some(Arc::clone(queues)))
    }

    #[test]
    fn a_working_send_does_not_hide_a_failing_poll() {
        let queues = Arc::new(QueueHealth::default());
        let health = linked(&queues);
        assert_eq!(health.readiness(), Ok(()));
        queues.record_error(QueueCall::Poll, "ReceiveMessage timed out");
        queues.record_ok(QueueCall::Send);
        assert_eq!(
            health.readiness(),
            Err("the reply queue cannot be polled: ReceiveMessage timed out".into())
        );
        queues.record_error(QueueCall::Send, "AccessDenied");
        queues.record_ok(QueueCall::Poll);
        assert_eq!(
            health.readiness(),
            Err("the request queue cannot be sent to: AccessDenied".into())
        );
        queues.record_ok(QueueCall::Send);
        queues.count_error();
        assert_eq!(health.readiness(), Ok(()));
        assert_eq!(queues.errors.get(), 3);
    }
}

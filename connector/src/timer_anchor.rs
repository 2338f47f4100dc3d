//! One timer always pending, so that new timers wake nobody.
//!
//! tokio's timer driver writes to its wake-up eventfd whenever a timer is
//! registered that is earlier than every timer pending when the runtime
//! last looked (the thread might be asleep until then). Every request's
//! timeout is such a timer unless something earlier is pending: one system
//! call, and one more turn of the event loop (another `epoll_wait`), per
//! request, although the connector's one thread is awake registering it.
//! A timer that is always pending and never more than [`PERIOD`] away
//! spares that for every timeout of at least [`PERIOD`], for one wake-up
//! per [`PERIOD`].

use std::time::Duration;

/// How far ahead the anchor timer stays: no longer than the shortest
/// request timeout worth sparing (`COMPONENT_POST_TIMEOUT` is 30 s unless
/// set lower).
pub const PERIOD: Duration = Duration::from_secs(1);

/// Keeps a timer at most [`PERIOD`] away, forever (the runtime drops it at
/// exit).
pub async fn hold() {
    let mut ticks = tokio::time::interval(PERIOD);
    // Late ticks need no catching up: one pending timer is all it takes.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
    }
}

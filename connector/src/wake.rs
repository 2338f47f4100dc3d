//! Waiting for a deadline that may not exist: the typing keeper, the room
//! keeper and a stream's relay each select on their next due time, and
//! have none while nothing is due.

use tokio::time::Instant;

/// Sleeps until `at`, or forever without one.
pub async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

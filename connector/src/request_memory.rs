//! The memory requests hold while they are in flight (DESIGN §12).
//!
//! A request holds its text (the stanza as XML, its body, its addresses)
//! until it is answered, and the JSON it is sent as while it is sent: at
//! most twice its text, since JSON escapes a character in at most two
//! (XML text has no other controls than tab and line ends). Up to
//! [`crate::dispatch::MAX_IN_FLIGHT`] requests may be in flight, so their
//! bytes are bounded together: each takes its cost from a [`Semaphore`]
//! counted in KiB before it is accepted, and gives it back when it is done.
//! At the limit the dispatcher waits, and with it the link's reading, as
//! at the request-count limit. A request that costs more than half the
//! whole budget is refused outright, so one user's huge stanzas cannot
//! starve everyone's small ones.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use xmpp_lambda_shared::Request;

/// The most bytes the requests in flight may hold together.
pub const MAX_REQUEST_MEMORY: usize = 24 * 1024 * 1024;

/// The unit the budget is counted in: a semaphore counts at most
/// `u32::MAX` permits at a time.
const UNIT: usize = 1024;

/// What one request's text and JSON may hold, beyond their bytes: the
/// allocations behind each string.
const REQUEST_OVERHEAD: usize = 512;

/// The budget shared by the requests in flight.
#[derive(Clone)]
pub struct RequestMemory {
    /// One permit per [`UNIT`] not held by a request.
    free: Arc<Semaphore>,
    /// The whole budget, in units.
    units: usize,
}

/// Bytes a request holds against the budget until it is dropped.
#[derive(Debug)]
pub struct Held {
    _permit: OwnedSemaphorePermit,
    /// The bytes held, for the gauge.
    bytes: usize,
}

impl Held {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A request that costs more than one request may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge {
    /// The most one request may hold.
    pub limit: usize,
}

impl RequestMemory {
    pub fn new(limit: usize) -> RequestMemory {
        let units = limit / UNIT;
        RequestMemory {
            free: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// What `request` holds while in flight: its text (as allocated, which
    /// may be more than its length), and its JSON.
    pub fn cost(request: &Request) -> usize {
        let texts = [
            Some(&request.to),
            Some(&request.from),
            Some(&request.stanza),
            request.body.as_ref(),
            request.stanza_type.as_ref(),
            request.id.as_ref(),
            request.room.as_ref(),
            request.nick.as_ref(),
        ];
        let (length, allocated) = texts
            .into_iter()
            .flatten()
            .fold((0, 0), |(length, allocated), text| {
                (length + text.len(), allocated + text.capacity())
            });
        allocated + 2 * length + REQUEST_OVERHEAD
    }

    /// The most one request may hold: half the budget.
    pub fn largest(&self) -> usize {
        self.units / 2 * UNIT
    }

    /// Takes `bytes` from the budget, waiting while it is spent; refuses a
    /// request larger than [`Self::largest`].
    pub async fn reserve(&self, bytes: usize) -> Result<Held, TooLarge> {
        if bytes > self.largest() {
            return Err(TooLarge {
                limit: self.largest(),
            });
        }
        let units = bytes.div_ceil(UNIT).max(1);
        // At most half of `units`, which came from a `usize` limit / 1024:
        // it fits a `u32` for any budget this side of four terabytes.
        let wanted = u32::try_from(units).unwrap_or(u32::MAX);
        match Arc::clone(&self.free).acquire_many_owned(wanted).await {
            Ok(permit) => Ok(Held {
                _permit: permit,
                bytes: units * UNIT,
            }),
            // The semaphore is never closed.
            Err(_) => Err(TooLarge {
                limit: self.largest(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counted_alloc::peak_of;
    use minidom::Element;
    use xmpp_lambda_shared::stanza_to_request;

    /// What a request holds, and what writing its JSON allocates, stay
    /// within what the request is charged, for the stanzas whose JSON
    /// costs most per byte received.
    #[test]
    fn a_request_and_its_json_take_no_more_than_its_cost() {
        let message = |inside: &str| {
            format!(
                "<message xmlns='jabber:component:accept' from='alice@example.com/x' \
                 to='echo@bot.example.com' id='m' type='chat'>{inside}</message>"
            )
        };
        let cases = [
            message(&format!("<body>{}</body>", "&lt;&amp;\"\\".repeat(50_000))),
            message(&format!("<body>{}</body>", "\t\n\r".repeat(100_000))),
            message(&"<x xmlns='urn:x' a='&apos;&quot;'/>".repeat(8000)),
            message(&format!("<body>{}</body>", "é".repeat(500_000))),
        ];
        for xml in cases {
            let stanza: Element = xml.parse().expect("valid XML");
            let request = stanza_to_request(&stanza).expect("a stanza");
            let held = live_size(&request);
            // As the http transport writes it.
            let (json, writing) = peak_of(|| {
                let mut json = Vec::with_capacity(request.json_len());
                request.write_json(&mut json);
                json
            });
            assert_eq!(json.len(), json.capacity(), "the buffer never grew");
            let cost = RequestMemory::cost(&request);
            assert!(
                held + writing <= cost,
                "{} bytes of JSON: held {held} + writing {writing} > cost {cost}",
                json.len()
            );
        }
    }

    /// The bytes a request's strings hold.
    fn live_size(request: &Request) -> usize {
        let texts = [
            Some(&request.to),
            Some(&request.from),
            Some(&request.stanza),
            request.body.as_ref(),
            request.stanza_type.as_ref(),
            request.id.as_ref(),
        ];
        texts.into_iter().flatten().map(String::capacity).sum()
    }

    #[tokio::test(start_paused = true)]
    async fn requests_wait_for_room_and_the_largest_is_refused() {
        let memory = RequestMemory::new(64 * UNIT);
        assert_eq!(memory.largest(), 32 * UNIT);
        assert_eq!(
            memory.reserve(32 * UNIT + 1).await.map(|held| held.bytes()),
            Err(TooLarge { limit: 32 * UNIT })
        );
        let first = memory.reserve(32 * UNIT).await.expect("fits");
        let second = memory.reserve(30 * UNIT + 1).await.expect("fits");
        assert_eq!(second.bytes(), 31 * UNIT);
        // One unit is left: a request of two waits until one is done.
        let waiting = tokio::spawn({
            let memory = memory.clone();
            async move { memory.reserve(2 * UNIT).await.map(|held| held.bytes()) }
        });
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "no room yet");
        drop(first);
        assert_eq!(waiting.await.ok(), Some(Ok(2 * UNIT)));
        drop(second);
    }
}

//! How long to wait before the next connection attempt: exponential, with
//! jitter so many connectors restarted together do not reconnect in step.

use rand::Rng;
use std::time::Duration;

/// Exponential backoff with "equal jitter": attempt `n` waits a random time
/// between half of and the whole of `min(cap, first * 2^n)`, optionally
/// after a few attempts that do not double yet.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// The upper bound of the first wait; later waits double from it.
    first: Duration,
    /// No wait is longer than this.
    cap: Duration,
    /// Attempts that wait up to `first` before the doubling starts.
    steady: u32,
    /// Failed attempts since the last reset.
    attempt: u32,
}

impl Backoff {
    pub fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff {
            first,
            cap,
            steady: 0,
            attempt: 0,
        }
    }

    /// The link's backoff: a retry every half second for the first five
    /// seconds (a server restarting is back in a second or two, and users
    /// get "Component unavailable" until the link is), then doubling up to
    /// 30 s.
    pub fn for_link() -> Backoff {
        Backoff {
            steady: 10,
            ..Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let doublings = self.attempt.saturating_sub(self.steady);
        // 2^20 × first is far past any sensible cap; stop doubling there.
        let factor = 1u32 << doublings.min(20);
        self.attempt = self.attempt.saturating_add(1);
        let ceiling = self.first.saturating_mul(factor).min(self.cap);
        let half = ceiling / 2;
        half + rng.random_range(Duration::ZERO..=ceiling - half)
    }

    /// Back to short waits, after a connection that held.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(backoff: &mut Backoff, count: usize) -> Vec<Duration> {
        let mut rng = rand::rng();
        (0..count).map(|_| backoff.next_delay(&mut rng)).collect()
    }

    #[test]
    fn first_retry_is_well_under_a_second() {
        for _ in 0..1000 {
            let first = delays(&mut Backoff::for_link(), 1)[0];
            assert!(first <= Duration::from_millis(500), "{first:?}");
            assert!(first >= Duration::from_millis(250), "{first:?}");
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let waits = delays(&mut backoff, 40);
        for (n, wait) in waits.iter().enumerate() {
            let ceiling = Duration::from_millis(500)
                .saturating_mul(1 << n.min(20))
                .min(Duration::from_secs(30));
            assert!(*wait <= ceiling, "attempt {n}: {wait:?} > {ceiling:?}");
            assert!(
                *wait >= ceiling / 2,
                "attempt {n}: {wait:?} < {ceiling:?}/2"
            );
        }
        // After enough failures every wait is between 15 and 30 s.
        assert!(waits[10..].iter().all(|w| *w >= Duration::from_secs(15)));
    }

    #[test]
    fn the_link_retries_every_half_second_for_five_seconds_then_doubles() {
        let waits = delays(&mut Backoff::for_link(), 16);
        let half = Duration::from_millis(500);
        assert!(
            waits[..10].iter().all(|w| *w <= half && *w >= half / 2),
            "{waits:?}"
        );
        assert!(waits[..10].iter().sum::<Duration>() <= Duration::from_secs(5));
        assert!(waits[10] <= half, "{waits:?}");
        assert!(waits[11] > half / 2 && waits[11] <= 2 * half, "{waits:?}");
        assert!(waits[15] >= Duration::from_secs(8), "{waits:?}");
    }

    #[test]
    fn jitter_spreads_waits() {
        let mut rng = rand::rng();
        let waits: std::collections::HashSet<Duration> = (0..50)
            .map(|_| {
                let mut backoff = Backoff::for_link();
                backoff.next_delay(&mut rng);
                backoff.next_delay(&mut rng)
            })
            .collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::for_link();
        delays(&mut backoff, 12);
        backoff.reset();
        assert!(delays(&mut backoff, 1)[0] <= Duration::from_millis(500));
    }
}

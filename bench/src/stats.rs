//! What one session saw, merged into one summary for the whole run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// Counts and latencies gathered by one session (or merged from many).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Round-trip time of every successful reply, in microseconds.
    pub latencies_us: Vec<u32>,
    /// Requests written to the wire (measured phase only).
    pub sent: u64,
    /// Replies of `type="error"`, by `type/condition`.
    pub errors: BTreeMap<String, u64>,
    /// Requests with no reply within the timeout.
    pub timeouts: u64,
    /// Replies that matched no outstanding request (late, duplicate or foreign).
    pub unmatched: u64,
    /// Sessions that failed (login, connection lost), with the reason.
    pub failures: Vec<String>,
}

impl Tally {
    /// Adds another session's tally to this one.
    pub fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.sent += other.sent;
        for (condition, n) in other.errors {
            *self.errors.entry(condition).or_default() += n;
        }
        self.timeouts += other.timeouts;
        self.unmatched += other.unmatched;
        self.failures.extend(other.failures);
    }

    /// Records one successful round trip.
    pub fn record(&mut self, rtt: Duration) {
        let us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
    }

    /// Records one error reply.
    pub fn record_error(&mut self, condition: String) {
        *self.errors.entry(condition).or_default() += 1;
    }
}

/// The figures printed at the end of a run.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `message`, `ping` or `http`.
    pub mode: &'static str,
    /// Concurrent sessions.
    pub sessions: usize,
    /// Outstanding requests per session.
    pub in_flight: usize,
    /// Requests sent in the measured phase.
    pub sent: u64,
    /// Successful round trips.
    pub round_trips: u64,
    /// Error replies in all.
    pub errors: u64,
    /// Error replies by `type/condition`.
    pub error_conditions: BTreeMap<String, u64>,
    /// Requests that got no reply in time.
    pub timeouts: u64,
    /// Replies that matched nothing outstanding.
    pub unmatched: u64,
    /// Sessions that failed, with the reason.
    pub failures: Vec<String>,
    /// Measured wall time in seconds, first send to last reply.
    pub elapsed_s: f64,
    /// Successful round trips per second.
    pub rate_per_s: f64,
    /// Latency percentiles in milliseconds (`None` with no round trip).
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    /// CPU seconds the generator itself used (user + system), so a run
    /// shows whether the generator or the server was the limit.
    pub generator_cpu_s: Option<f64>,
}

impl Summary {
    /// Computes the summary of a finished run.
    pub fn new(
        mode: &'static str,
        sessions: usize,
        in_flight: usize,
        mut tally: Tally,
        elapsed: Duration,
    ) -> Summary {
        tally.latencies_us.sort_unstable();
        let lat = &tally.latencies_us;
        let pct = |p: f64| -> Option<f64> {
            if lat.is_empty() {
                return None;
            }
            // Nearest rank: the smallest value with at least p of the samples at or below it.
            let rank = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
            Some(f64::from(lat[rank - 1]) / 1000.0)
        };
        let round_trips = lat.len() as u64;
        let elapsed_s = elapsed.as_secs_f64();
        let mean_ms = (!lat.is_empty())
            .then(|| lat.iter().map(|v| f64::from(*v)).sum::<f64>() / lat.len() as f64 / 1000.0);
        Summary {
            mode,
            sessions,
            in_flight,
            sent: tally.sent,
            round_trips,
            errors: tally.errors.values().sum(),
            error_conditions: tally.errors,
            timeouts: tally.timeouts,
            unmatched: tally.unmatched,
            failures: tally.failures,
            elapsed_s,
            rate_per_s: if elapsed_s > 0.0 {
                round_trips as f64 / elapsed_s
            } else {
                0.0
            },
            p50_ms: pct(0.50),
            p90_ms: pct(0.90),
            p99_ms: pct(0.99),
            max_ms: pct(1.0),
            mean_ms,
            generator_cpu_s: own_cpu_seconds(),
        }
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let mut out = format!(
            "mode {} sessions {} in-flight {}\n\
             sent {} round trips {} errors {} timeouts {} unmatched {}\n\
             {:.0} round trips/s over {:.3} s\n\
             latency ms: p50 {} p90 {} p99 {} max {} mean {}\n\
             generator CPU {} s\n",
            self.mode,
            self.sessions,
            self.in_flight,
            self.sent,
            self.round_trips,
            self.errors,
            self.timeouts,
            self.unmatched,
            self.rate_per_s,
            self.elapsed_s,
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.max_ms),
            ms(self.mean_ms),
            ms(self.generator_cpu_s),
        );
        for (condition, n) in &self.error_conditions {
            out.push_str(&format!("error {condition}: {n}\n"));
        }
        for failure in &self.failures {
            out.push_str(&format!("session failed: {failure}\n"));
        }
        out
    }
}

/// User + system CPU seconds of this process, from `/proc/self/stat`
/// (Linux reports them in USER_HZ, which is 100 on every architecture).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut tally = Tally::default();
        for ms in 1..=100u64 {
            tally.record(Duration::from_millis(ms));
        }
        tally.record_error("cancel/item-not-found".into());
        let summary = Summary::new("ping", 1, 1, tally, Duration::from_secs(2));
        assert_eq!(summary.round_trips, 100);
        assert_eq!(summary.p50_ms, Some(50.0));
        assert_eq!(summary.p90_ms, Some(90.0));
        assert_eq!(summary.p99_ms, Some(99.0));
        assert_eq!(summary.max_ms, Some(100.0));
        assert_eq!(summary.rate_per_s, 50.0);
        assert_eq!(summary.errors, 1);
    }

    #[test]
    fn merging_adds_everything() {
        let mut a = Tally::default();
        a.record(Duration::from_millis(1));
        a.record_error("wait/x".into());
        a.sent = 2;
        let mut b = Tally::default();
        b.record_error("wait/x".into());
        b.timeouts = 3;
        b.sent = 4;
        a.merge(b);
        assert_eq!(a.sent, 6);
        assert_eq!(a.errors["wait/x"], 2);
        assert_eq!(a.timeouts, 3);
        assert_eq!(a.latencies_us.len(), 1);
    }
}

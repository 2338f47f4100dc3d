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
    /// Streamed answers only: time from sending to the first message of
    /// each completed stream, in microseconds (`latencies_us` is then the
    /// time to the last), since a stream's point is that these differ.
    pub first_latencies_us: Vec<u32>,
    /// Streamed answers only: how many messages each completed stream
    /// delivered, corrections included: what coalescing saves the user.
    pub messages_per_request: Vec<u32>,
    /// Streamed answers only: how many of those messages were XEP-0308
    /// corrections.
    pub corrections: u64,
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
        self.first_latencies_us.extend(other.first_latencies_us);
        self.messages_per_request.extend(other.messages_per_request);
        self.corrections += other.corrections;
    }

    /// Records one successful round trip.
    pub fn record(&mut self, rtt: Duration) {
        self.latencies_us.push(micros(rtt));
    }

    /// Records one completed stream: when its first and its last message
    /// came, and how many messages it took.
    pub fn record_stream(&mut self, first: Duration, last: Duration, messages: u32) {
        self.first_latencies_us.push(micros(first));
        self.record(last);
        self.messages_per_request.push(messages);
    }

    /// Records one error reply.
    pub fn record_error(&mut self, condition: String) {
        *self.errors.entry(condition).or_default() += 1;
    }
}

/// A duration in whole microseconds, saturated (a u32 holds 71 minutes).
fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The `p` quantile (0 < p <= 1) of sorted microseconds, in milliseconds,
/// by nearest rank: the smallest value with at least `p` of the samples at
/// or below it.
fn percentile_ms(sorted_us: &[u32], p: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Some(f64::from(sorted_us[rank - 1]) / 1000.0)
}

/// What a run of streamed answers adds to its summary. The summary's own
/// percentiles are then the time to each stream's last message.
#[derive(Debug, Serialize)]
pub struct StreamFigures {
    /// Time from sending to the first message, in milliseconds.
    pub first_p50_ms: Option<f64>,
    pub first_p90_ms: Option<f64>,
    pub first_p99_ms: Option<f64>,
    pub first_max_ms: Option<f64>,
    /// Messages received for completed streams, corrections included.
    pub messages: u64,
    /// How many of them were corrections.
    pub corrections: u64,
    /// Fewest, mean and most messages one stream took.
    pub messages_per_request_min: Option<u32>,
    pub messages_per_request_mean: Option<f64>,
    pub messages_per_request_max: Option<u32>,
}

impl StreamFigures {
    fn new(mut first_us: Vec<u32>, per_request: &[u32], corrections: u64) -> StreamFigures {
        first_us.sort_unstable();
        let messages: u64 = per_request.iter().map(|n| u64::from(*n)).sum();
        StreamFigures {
            first_p50_ms: percentile_ms(&first_us, 0.50),
            first_p90_ms: percentile_ms(&first_us, 0.90),
            first_p99_ms: percentile_ms(&first_us, 0.99),
            first_max_ms: percentile_ms(&first_us, 1.0),
            messages,
            corrections,
            messages_per_request_min: per_request.iter().min().copied(),
            messages_per_request_mean: (!per_request.is_empty())
                .then(|| messages as f64 / per_request.len() as f64),
            messages_per_request_max: per_request.iter().max().copied(),
        }
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
    /// `stream` mode only: the first message's timing and the messages
    /// per stream (absent in other modes, whose output stays as it was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamFigures>,
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
        let pct = |p: f64| percentile_ms(lat, p);
        let round_trips = lat.len() as u64;
        let elapsed_s = elapsed.as_secs_f64();
        let mean_ms = (!lat.is_empty())
            .then(|| lat.iter().map(|v| f64::from(*v)).sum::<f64>() / lat.len() as f64 / 1000.0);
        let stream = (mode == "stream").then(|| {
            StreamFigures::new(
                std::mem::take(&mut tally.first_latencies_us),
                &tally.messages_per_request,
                tally.corrections,
            )
        });
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
            stream,
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
        if let Some(stream) = &self.stream {
            out.push_str(&format!(
                "first message ms: p50 {} p90 {} p99 {} max {} (latency above: the last)\n\
                 messages {} corrections {} per stream: min {} mean {} max {}\n",
                ms(stream.first_p50_ms),
                ms(stream.first_p90_ms),
                ms(stream.first_p99_ms),
                ms(stream.first_max_ms),
                stream.messages,
                stream.corrections,
                stream
                    .messages_per_request_min
                    .map_or("-".to_owned(), |n| n.to_string()),
                stream
                    .messages_per_request_mean
                    .map_or("-".to_owned(), |n| format!("{n:.2}")),
                stream
                    .messages_per_request_max
                    .map_or("-".to_owned(), |n| n.to_string()),
            ));
        }
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
    fn streams_report_first_and_last_message_apart() {
        let mut tally = Tally::default();
        for n in 1..=10u64 {
            tally.record_stream(
                Duration::from_millis(n),
                Duration::from_millis(1900 + n),
                n as u32,
            );
        }
        tally.corrections = 7;
        let mut other = Tally::default();
        other.record_stream(Duration::from_millis(50), Duration::from_millis(2000), 20);
        tally.merge(other);
        let summary = Summary::new("stream", 1, 1, tally, Duration::from_secs(1));
        let stream = summary.stream.as_ref().expect("stream figures");
        assert_eq!(summary.round_trips, 11);
        assert_eq!(summary.p50_ms, Some(1906.0));
        assert_eq!(summary.max_ms, Some(2000.0));
        assert_eq!(stream.first_p50_ms, Some(6.0));
        assert_eq!(stream.first_max_ms, Some(50.0));
        assert_eq!(stream.messages, 55 + 20);
        assert_eq!(stream.corrections, 7);
        assert_eq!(stream.messages_per_request_min, Some(1));
        assert_eq!(stream.messages_per_request_max, Some(20));
        assert_eq!(stream.messages_per_request_mean, Some(75.0 / 11.0));
        assert!(summary.to_text().contains("first message ms: p50 6.000"));
        // Other modes print what they printed before.
        let ping = Summary::new("ping", 1, 1, Tally::default(), Duration::from_secs(1));
        let json = serde_json::to_value(&ping).expect("serialises");
        assert!(json.get("stream").is_none(), "{json}");
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

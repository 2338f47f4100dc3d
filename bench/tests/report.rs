//! scripts/bench_report.py reads what xmpp-loadgen prints: feed it real
//! summaries (built by the library, serialised as the binary does) so a
//! change on either side that breaks `make bench` fails here.

use std::process::Command;
use std::time::Duration;

use xmpp_lambda_bench::stats::{Summary, Tally};

/// A summary of `n` streams, each with its first message after `first_ms`,
/// its last after `last_ms`, in `messages` messages of which
/// `corrections` were corrections.
fn stream_summary(
    sessions: usize,
    n: u64,
    first_ms: u64,
    last_ms: u64,
    messages: u32,
    corrections: u64,
) -> String {
    let mut tally = Tally::default();
    for _ in 0..n {
        tally.record_stream(
            Duration::from_millis(first_ms),
            Duration::from_millis(last_ms),
            messages,
        );
    }
    tally.sent = n;
    tally.corrections = corrections * n;
    let summary = Summary::new("stream", sessions, 1, tally, Duration::from_secs(2));
    serde_json::to_string(&summary).expect("a summary serialises")
}

/// A summary of `n` round trips of `ms` milliseconds each.
fn summary(mode: &'static str, sessions: usize, in_flight: usize, n: u64, ms: u64) -> String {
    let mut tally = Tally::default();
    for _ in 0..n {
        tally.record(Duration::from_millis(ms));
    }
    tally.sent = n;
    let summary = Summary::new(mode, sessions, in_flight, tally, Duration::from_secs(1));
    serde_json::to_string(&summary).expect("a summary serialises")
}

#[test]
fn the_report_reads_loadgen_summaries() {
    let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let lines = [
        format!(r#"{{"figure":"ping","data":{}}}"#, summary("ping", 1, 1, 100, 1)),
        r#"{"figure":"connector_idle","data":{"rss_kib":6000,"hwm_kib":6100}}"#.to_owned(),
        format!(
            r#"{{"figure":"echo","data":{{"level":"1x1","xmpp":{},"connector_cpu_s":0.5,"prosody_cpu_s":1.0,"bot_cpu_s":0.1,"rss_kib":7000,"hwm_kib":8192}}}}"#,
            summary("message", 1, 1, 100, 3)
        ),
        format!(
            r#"{{"figure":"self","data":{{"level":"1x1","xmpp":{},"prosody_cpu_s":0.2}}}}"#,
            summary("message", 1, 1, 100, 1)
        ),
        format!(
            r#"{{"figure":"direct_http","data":{{"level":"1x1","http":{}}}}}"#,
            summary("http", 1, 1, 100, 1)
        ),
        format!(
            r#"{{"figure":"ceiling","data":{{"kind":"connector","level":"4x4","conversations":"per_request","xmpp":{},"component_cpu_s":0.003,"prosody_cpu_s":0.02,"bot_cpu_s":0.001,"segments":{{"in":50,"out":25}}}}}}"#,
            summary("message", 4, 4, 100, 2)
        ),
        format!(
            r#"{{"figure":"ceiling","data":{{"kind":"ceiling","level":"4x4","conversations":"per_request","xmpp":{},"component_cpu_s":0.001,"prosody_cpu_s":0.03,"bot_cpu_s":0.0,"segments":null}}}}"#,
            summary("message", 4, 4, 200, 1)
        ),
        format!(
            r#"{{"figure":"stream","data":{{"kind":"messages","level":"1x1","lines":20,"interval_ms":100,"xmpp":{},"connector_cpu_s":0.02,"prosody_cpu_s":0.04}}}}"#,
            stream_summary(1, 10, 1, 1902, 20, 0)
        ),
        format!(
            r#"{{"figure":"stream","data":{{"kind":"replace","level":"1x1","lines":20,"interval_ms":100,"xmpp":{},"connector_cpu_s":0.003,"prosody_cpu_s":0.006}}}}"#,
            stream_summary(1, 10, 1, 1905, 3, 2)
        ),
        format!(
            r#"{{"figure":"stream_memory","data":{{"level":"10x10","streams":100,"lines":60,"interval_ms":100,"xmpp":{},"idle_rss_kib":7168,"rss_samples_kib":[7168,9216,10240,8192],"after_rss_kib":8192,"hwm_kib":10752,"hwm_reset":true,"connector_cpu_s":0.6,"prosody_cpu_s":1.2}}}}"#,
            stream_summary(10, 100, 2, 5910, 60, 0)
        ),
        r#"{"figure":"sqs_unavailable","data":"not available"}"#.to_owned(),
        r#"{"figure":"init","data":{"runs":3,"init_ms":[1.0,2.0,3.0],"first_event_ms":[1.5,2.5,3.5],"outcome":"response","answer":"{}"}}"#.to_owned(),
        r#"{"figure":"zip","data":{"bytes":3000000}}"#.to_owned(),
        r#"{"figure":"timing","data":{"total_s":100,"build_s":40}}"#.to_owned(),
    ];
    let results = dir.join("results.jsonl");
    std::fs::write(&results, lines.join("\n")).expect("results");
    let out = dir.join("results.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/bench_report.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&results)
        .arg(&out)
        .args(["100", "0"])
        .output()
        .expect("python3 runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("results.json")).expect("JSON");
    let _ = std::fs::remove_dir_all(&dir);

    let echo = &report["echo"][0];
    assert_eq!(echo["added_p50_ms"], 2.0, "{report}");
    // 3 ms echo - 1 ms HTTP - 2 x 1 ms to self.
    assert_eq!(echo["connector_alone_p50_ms_est"], 0.0, "{report}");
    assert_eq!(echo["connector_cpu_s_per_10k"], 50.0, "{report}");
    assert_eq!(report["connector_memory"]["peak_hwm_kib"], 8192);
    assert_eq!(report["zip_bytes"], 3_000_000);
    assert_eq!(report["sqs"], "not available");
    assert!(table.contains("echo via Prosody + connector"), "{table}");

    // The connector against the ceiling at 4x4: 100/s vs 200/s, Prosody
    // 200 vs 150 us per message, the connector 30 us per message.
    let pair = &report["ceiling"][0];
    let close = |value: &serde_json::Value, expected: f64| {
        value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-9)
    };
    assert!(close(&pair["throughput_ratio"], 0.5), "{pair}");
    assert!(close(&pair["prosody_cpu_ratio"], 200.0 / 150.0), "{pair}");
    assert!(close(&pair["connector_cpu_us_per_msg"], 30.0), "{pair}");
    assert!(close(&pair["p50_delta_ms"], 1.0), "{pair}");
    assert!(
        close(&pair["connector"]["segments_in_per_msg"], 0.5),
        "{pair}"
    );
    assert!(pair["ceiling"]["segments_in_per_msg"].is_null(), "{pair}");
    assert!(table.contains("Against the ceiling"), "{table}");

    // Streams: 10 of 20 lines each, the last 2 ms after the bot's last
    // line (written at 1.9 s); 200 messages for 0.02 s of connector CPU.
    let messages = &report["streams"][0];
    assert_eq!(messages["streams"], 10, "{messages}");
    assert!(close(&messages["first_p50_ms"], 1.0), "{messages}");
    assert!(close(&messages["last_p99_ms"], 1902.0), "{messages}");
    assert!(
        close(&messages["last_over_schedule_p50_ms"], 2.0),
        "{messages}"
    );
    assert!(
        close(&messages["connector_cpu_us_per_message"], 100.0),
        "{messages}"
    );
    // Corrections: 3 messages per stream, 2 of them corrections.
    let replace = &report["streams"][1];
    assert_eq!(replace["messages_per_stream_max"], 3, "{replace}");
    assert_eq!(replace["corrections"], 20, "{replace}");
    // 100 streams of 60 lines: 6,000 lines for 0.6 s of connector CPU.
    let memory = &report["stream_memory"];
    assert_eq!(memory["completed"], 100, "{memory}");
    assert_eq!(memory["max_sampled_rss_kib"], 10240, "{memory}");
    assert_eq!(memory["median_sampled_rss_kib"], 8192, "{memory}");
    assert_eq!(memory["hwm_since_start"], false, "{memory}");
    assert!(
        close(&memory["connector_cpu_us_per_line"], 100.0),
        "{memory}"
    );
    assert!(table.contains("Streamed replies"), "{table}");
    assert!(
        table.contains("20 lines 100 ms apart, as corrections"),
        "{table}"
    );
    assert!(table.contains("| 2.00 / 2.00 "), "{table}");
    assert!(table.contains("peak (VmHWM) 10.5"), "{table}");
    assert!(table.contains("0.50 [>= 0.8] (missed)"), "{table}");
    assert!(table.contains("30.0 [<= 30] (met)"), "{table}");
    assert!(
        table.contains("2.98") || table.contains("3.00 MB"),
        "{table}"
    );
}

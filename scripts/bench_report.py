#!/usr/bin/env python3
"""Turns scripts/bench.sh's result lines into one table and results.json.

usage: bench_report.py RESULTS.jsonl OUT.json ELAPSED_SECONDS QUICK
       bench_report.py --create-queue SQS_ENDPOINT NAME   (prints the queue URL)
"""
import json
import os
import platform
import subprocess
import sys
import time


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        prosody = subprocess.run(["prosodyctl", "about"], capture_output=True, text=True, timeout=10).stdout
        # "Prosody 0.12.3", not a warning such as "Prosody was unable to find lua-unbound".
        version = next((l.split()[1] for l in prosody.splitlines()
                        if l.startswith("Prosody ") and l.split()[1][:1].isdigit()), "?")
    except (OSError, subprocess.SubprocessError):
        version = "?"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "prosody": version,
    }


def fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def main():
    results_path, out_path, elapsed, quick = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    lines = [json.loads(l) for l in open(results_path) if l.strip()]
    by = {}
    for line in lines:
        by.setdefault(line["figure"], []).append(line["data"])

    # BENCH_ONLY: the sections that ran; the others are left out, not
    # reported as missing.
    only = [name for name in ((by.get("timing") or [{}])[0].get("only") or "").replace(" ", ",").split(",")
            if name]
    ran = lambda section: not only or section in only
    rows = []  # (figure, level, rate/s, p50, p99, note)
    summary = {"machine": machine(), "quick": quick, "elapsed_s": elapsed,
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    ping = by.get("ping", [])
    summary["ping"] = ping
    for p in ping:
        rows.append(("c2s ping (Prosody + generator ceiling)", f"{p['sessions']}x{p['in_flight']}",
                     p["rate_per_s"], p["p50_ms"], p["p99_ms"],
                     f"gen CPU {fmt(p.get('generator_cpu_s'))} s" + failures(p)))

    echo = by.get("echo", [])
    direct = {d["level"]: d["http"] for d in by.get("direct_http", [])}
    to_self = {d["level"]: d for d in by.get("self", [])}
    summary["echo"] = []
    for e in echo:
        x, h, me = e["xmpp"], direct.get(e["level"]), to_self.get(e["level"])
        n = max(x["round_trips"] + x["errors"], 1)
        per10k = lambda cpu: cpu * 10000 / n if cpu is not None else None
        entry = {"level": e["level"], "xmpp": x, "direct_http": h,
                 "self_message": me["xmpp"] if me else None,
                 "connector_cpu_s_per_10k": per10k(e["connector_cpu_s"]),
                 "prosody_cpu_s_per_10k": per10k(e["prosody_cpu_s"]),
                 "bot_cpu_s_per_10k": per10k(e.get("bot_cpu_s")),
                 "generator_cpu_s_per_10k": per10k(x.get("generator_cpu_s")),
                 "connector_rss_kib": e["rss_kib"], "connector_hwm_kib": e["hwm_kib"]}
        if h and h["p50_ms"] is not None and x["p50_ms"] is not None:
            entry["added_p50_ms"] = x["p50_ms"] - h["p50_ms"]
            entry["added_p99_ms"] = x["p99_ms"] - h["p99_ms"]
            if me and me["xmpp"]["p50_ms"] is not None and e["level"] == "1x1":
                # Echo crosses Prosody twice (c2s->component, component->c2s),
                # a message to self once; only meaningful without queueing (1x1).
                entry["connector_alone_p50_ms_est"] = (
                    x["p50_ms"] - h["p50_ms"] - 2 * me["xmpp"]["p50_ms"])
        summary["echo"].append(entry)
        rows.append(("echo via Prosody + connector", e["level"], x["rate_per_s"], x["p50_ms"], x["p99_ms"],
                     f"CPU s/10k: connector {fmt(entry['connector_cpu_s_per_10k'])}, "
                     f"Prosody {fmt(entry['prosody_cpu_s_per_10k'])}, bot {fmt(entry['bot_cpu_s_per_10k'])}, "
                     f"generator {fmt(entry['generator_cpu_s_per_10k'])}" + failures(x)))
        if h:
            rows.append(("echo bot, direct HTTP", e["level"], h["rate_per_s"], h["p50_ms"], h["p99_ms"],
                         failures(h).lstrip("; ")))
        if me:
            m = me["xmpp"]
            rows.append(("message to self (Prosody alone)", e["level"], m["rate_per_s"], m["p50_ms"], m["p99_ms"],
                         f"Prosody CPU s/10k {fmt(me['prosody_cpu_s'] * 10000 / max(m['round_trips'], 1))}"
                         + failures(m)))
        if "added_p50_ms" in entry:
            note = ""
            if "connector_alone_p50_ms_est" in entry:
                note = (f"connector alone p50 ~ {entry['connector_alone_p50_ms_est']:.3f} ms "
                        "(echo - HTTP - 2 x self)")
            rows.append(("  added by XMPP path (echo - HTTP)", e["level"], None,
                         entry["added_p50_ms"], entry["added_p99_ms"], note))
    if "echo_unavailable" in by:
        rows.append(("echo via Prosody + connector", "-", None, None, None, "not available: connector did not start"))

    ceiling_rows, summary["ceiling"] = ceiling(by.get("ceiling", []))
    rows.extend(ceiling_rows)

    idle = (by.get("connector_idle") or [None])[0]
    if idle:
        peak = max((e["hwm_kib"] for e in echo), default=None)
        summary["connector_memory"] = {"idle_rss_kib": idle["rss_kib"], "peak_hwm_kib": peak}
        rows.append(("connector RSS idle / peak (MiB)", "-", None, None, None,
                     f"{idle['rss_kib'] / 1024:.1f} / {fmt(peak / 1024 if peak else None, 1)}"))

    summary["streams"], summary["stream_memory"] = streams(by)

    if not ran("sqs"):
        summary["sqs"] = "not run"
    elif "sqs" in by:
        summary["sqs"] = by["sqs"]
        for s in by["sqs"]:
            rows.append(("sqs transport (moto)", s.get("level", "-"), s.get("rate_per_s"), s.get("p50_ms"),
                         s.get("p99_ms"), f"calls/msg out {fmt(s.get('calls_per_msg_out'))}, "
                                          f"in {fmt(s.get('calls_per_msg_in'))}"))
    else:
        summary["sqs"] = "not available"
        rows.append(("sqs transport (moto)", "-", None, None, None, "not available"))

    init = (by.get("init") or [None])[0]
    summary["function_init"] = init
    if not ran("function"):
        pass
    elif init:
        rows.append(("function init, start -> first next (ms)", f"{init['runs']} runs", None,
                     init["init_ms"][1], init["init_ms"][2], f"min {init['init_ms'][0]:.2f} ms (p50 col = median, p99 col = max)"))
        rows.append(("function start -> first event answered (ms)", f"{init['runs']} runs", None,
                     init["first_event_ms"][1], init["first_event_ms"][2], f"outcome: {init['outcome']}"))
    else:
        rows.append(("function init", "-", None, None, None, "not available"))
    zip_ = (by.get("zip") or [None])[0]
    summary["zip_bytes"] = zip_["bytes"] if zip_ else None
    if ran("function"):
        rows.append(("function release zip", "-", None, None, None,
                     f"{zip_['bytes'] / 1e6:.2f} MB" if zip_ else "not available"))

    timing = (by.get("timing") or [{}])[0]
    summary["timing"] = timing
    m = summary["machine"]
    print()
    print(f"xmpp-lambda benchmark{' (QUICK: tiny counts, figures not meaningful)' if quick else ''}: "
          f"{m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Prosody {m['prosody']}; "
          f"{elapsed} s ({timing.get('build_s', '?')} s building)"
          + (f"; only {', '.join(only)}" if only else ""))
    header = ("figure", "level", "rt/s", "p50 ms", "p99 ms", "notes")
    table = [header] + [(r[0], r[1], fmt(r[2], 0), fmt(r[3], 3), fmt(r[4], 3), r[5]) for r in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(5)]
    print("| " + " | ".join(str(h).ljust(widths[i]) if i < 5 else h for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "| --- |")
    for r in table[1:]:
        cells = [str(c).rjust(widths[i]) if 1 < i < 5 else str(c).ljust(widths[i]) for i, c in enumerate(r[:5])]
        print("| " + " | ".join(cells) + f" | {r[5]} |")
    print("level = sessions x in-flight requests per session")
    print_ceiling_table(summary["ceiling"])
    print_stream_tables(summary["streams"], summary["stream_memory"], "stream_unavailable" in by)
    with open(out_path, "w") as f:
        json.dump(summary, f, indent=2)
    print(f"figures written to {out_path}")


# Targets against the ceiling: throughput ratio by level, and the rest.
THROUGHPUT_TARGETS = {"16x8": 0.9, "4x4": 0.8}
PROSODY_CPU_TARGET = 1.05
CONNECTOR_CPU_US_TARGET = 30.0
P50_1X1_TARGET_MS = 0.15


def per_message(run):
    """CPU per message (microseconds) and component-stream segments per
    message of one `ceiling` record."""
    x = run["xmpp"]
    n = max(x["round_trips"] + x["errors"], 1)
    segments = run.get("segments")
    return {
        "level": run["level"], "conversations": run["conversations"], "xmpp": x,
        "prosody_cpu_us_per_msg": run["prosody_cpu_s"] * 1e6 / n,
        "component_cpu_us_per_msg": run["component_cpu_s"] * 1e6 / n,
        "bot_cpu_us_per_msg": run["bot_cpu_s"] * 1e6 / n if run.get("bot_cpu_s") is not None else None,
        "segments_in_per_msg": segments["in"] / n if segments else None,
        "segments_out_per_msg": segments["out"] / n if segments else None,
    }


def ceiling(runs):
    """Pairs each connector run with the ceiling's run at the same level and
    conversation pattern; returns table rows and the JSON summary."""
    by_key = {}
    for run in runs:
        by_key.setdefault((run["level"], run["conversations"]), {})[run["kind"]] = per_message(run)
    rows, pairs = [], []
    for (level, conversations), kinds in by_key.items():
        label = level if conversations == "per_request" else f"{level} (1 conv/session)"
        ours, best = kinds.get("connector"), kinds.get("ceiling")
        if best:
            b = best["xmpp"]
            rows.append(("ceiling: trivial echo component, no HTTP", label, b["rate_per_s"], b["p50_ms"], b["p99_ms"],
                         f"CPU us/msg: Prosody {fmt(best['prosody_cpu_us_per_msg'], 1)}, "
                         f"component {fmt(best['component_cpu_us_per_msg'], 1)}; Prosody reads "
                         f"{fmt(best['segments_in_per_msg'], 3)} segments/msg" + failures(b)))
        if not (ours and best):
            rows.append(("connector vs ceiling", label, None, None, None, "not available"))
            continue
        o, b = ours["xmpp"], best["xmpp"]
        ratio = lambda a, c: a / c if a is not None and c else None
        pair = {
            "level": level, "conversations": conversations, "connector": ours, "ceiling": best,
            "throughput_ratio": ratio(o["rate_per_s"], b["rate_per_s"]),
            "prosody_cpu_ratio": ratio(ours["prosody_cpu_us_per_msg"], best["prosody_cpu_us_per_msg"]),
            "connector_cpu_us_per_msg": ours["component_cpu_us_per_msg"],
            "p50_delta_ms": (o["p50_ms"] - b["p50_ms"]) if o["p50_ms"] is not None and b["p50_ms"] is not None
            else None,
        }
        pairs.append(pair)
        rows.append(("echo via Prosody + connector, vs ceiling", label, o["rate_per_s"], o["p50_ms"], o["p99_ms"],
                     f"throughput {fmt(pair['throughput_ratio'])} of ceiling; Prosody CPU/msg "
                     f"{fmt(pair['prosody_cpu_ratio'])}x; connector {fmt(pair['connector_cpu_us_per_msg'], 1)} us/msg; "
                     f"p50 {fmt(pair['p50_delta_ms'], 3)} ms over; Prosody reads "
                     f"{fmt(ours['segments_in_per_msg'], 3)} segments/msg" + failures(o)))
    return rows, pairs


def verdict(value, ok):
    if value is None or ok is None:
        return ""
    return " (met)" if ok else " (missed)"


def print_ceiling_table(pairs):
    if not pairs:
        return
    print()
    print("Against the ceiling (same run; targets in brackets):")
    header = ("level", "conversations", "throughput / ceiling", "Prosody CPU per msg / ceiling's",
              "connector CPU us/msg", "p50 over ceiling, ms")
    table = [header]
    for p in pairs:
        level, tput, pcpu, ccpu, dp50 = (p["level"], p["throughput_ratio"], p["prosody_cpu_ratio"],
                                         p["connector_cpu_us_per_msg"], p["p50_delta_ms"])
        per_request = p["conversations"] == "per_request"
        tput_target = THROUGHPUT_TARGETS.get(level) if per_request else None
        table.append((
            level,
            "one per request" if per_request else "one per session",
            fmt(tput) + (f" [>= {tput_target}]" + verdict(tput, tput >= tput_target)
                         if tput_target and tput is not None else ""),
            fmt(pcpu) + (f" [<= {PROSODY_CPU_TARGET}]" + verdict(pcpu, pcpu <= PROSODY_CPU_TARGET)
                         if pcpu is not None else ""),
            fmt(ccpu, 1) + (f" [<= {CONNECTOR_CPU_US_TARGET:.0f}]" + verdict(ccpu, ccpu <= CONNECTOR_CPU_US_TARGET)
                            if ccpu is not None else ""),
            fmt(dp50, 3) + (f" [<= {P50_1X1_TARGET_MS}]" + verdict(dp50, dp50 <= P50_1X1_TARGET_MS)
                            if level == "1x1" and dp50 is not None else ""),
        ))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    print("| " + " | ".join(str(h).ljust(widths[i]) for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table[1:]:
        print("| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)) + " |")


def streams(by):
    """Streamed answers: per row, the first and last message's timing and
    the messages per stream; for the memory row, the connector's RSS while
    every stream runs, and CPU per line. Returns (rows, memory)."""
    rows = []
    for run in by.get("stream", []):
        x = run["xmpp"]
        st = x.get("stream") or {}
        # The bot writes its last line this long after its first.
        schedule_ms = (run["lines"] - 1) * run["interval_ms"]
        messages = st.get("messages") or 0
        rows.append({
            "kind": run["kind"], "level": run["level"], "lines": run["lines"],
            "interval_ms": run["interval_ms"], "streams": x["round_trips"], "sent": x["sent"],
            "errors": x["errors"], "error_conditions": x["error_conditions"], "timeouts": x["timeouts"],
            "failures": x["failures"], "first_p50_ms": st.get("first_p50_ms"), "first_p99_ms": st.get("first_p99_ms"),
            "last_p50_ms": x["p50_ms"], "last_p99_ms": x["p99_ms"],
            "last_line_written_ms": schedule_ms,
            "last_over_schedule_p50_ms": x["p50_ms"] - schedule_ms if x["p50_ms"] is not None else None,
            "last_over_schedule_p99_ms": x["p99_ms"] - schedule_ms if x["p99_ms"] is not None else None,
            "messages": messages, "corrections": st.get("corrections"),
            "messages_per_stream_min": st.get("messages_per_request_min"),
            "messages_per_stream_mean": st.get("messages_per_request_mean"),
            "messages_per_stream_max": st.get("messages_per_request_max"),
            "connector_cpu_us_per_message": run["connector_cpu_s"] * 1e6 / messages if messages else None,
            "prosody_cpu_us_per_message": run["prosody_cpu_s"] * 1e6 / messages if messages else None,
        })
    memory = None
    run = (by.get("stream_memory") or [None])[0]
    if run:
        x = run["xmpp"]
        messages = (x.get("stream") or {}).get("messages") or 0
        samples = sorted(run["rss_samples_kib"])
        memory = {
            "level": run["level"], "streams": run["streams"], "lines": run["lines"],
            "interval_ms": run["interval_ms"], "completed": x["round_trips"], "errors": x["errors"],
            "error_conditions": x["error_conditions"],
            "timeouts": x["timeouts"], "failures": x["failures"], "messages": messages,
            "last_p50_ms": x["p50_ms"], "last_p99_ms": x["p99_ms"],
            "first_p50_ms": (x.get("stream") or {}).get("first_p50_ms"),
            "first_p99_ms": (x.get("stream") or {}).get("first_p99_ms"),
            "idle_rss_kib": run["idle_rss_kib"], "samples": len(samples),
            "max_sampled_rss_kib": samples[-1] if samples else None,
            "median_sampled_rss_kib": samples[(len(samples) - 1) // 2] if samples else None,
            "rss_samples_kib": run["rss_samples_kib"],
            "after_rss_kib": run["after_rss_kib"], "hwm_kib": run["hwm_kib"],
            "hwm_since_start": not run["hwm_reset"],
            "connector_cpu_us_per_line": run["connector_cpu_s"] * 1e6 / messages if messages else None,
            "prosody_cpu_us_per_line": run["prosody_cpu_s"] * 1e6 / messages if messages else None,
        }
    return rows, memory


def print_stream_tables(rows, memory, unavailable):
    if unavailable:
        print()
        print("Streamed replies: not available (the connector did not start)")
        return
    if not rows and not memory:
        return
    print()
    # CPU per message is left to results.json here: these rows carry too few
    # messages for /proc's 10 ms ticks; the memory row below has enough.
    print("Streamed replies (NDJSON; the bot writes line k at (k-1) x interval; times from sending):")
    header = ("answer", "level", "streams", "first message p50 / p99 ms", "last message p50 / p99 ms",
              "last over the bot's last line, p50 / p99 ms", "messages per stream (min-max)")
    table = [header]
    for r in rows:
        kind = (f"{r['lines']} lines {r['interval_ms']} ms apart"
                + (", as corrections" if r["kind"] == "replace" else ""))
        spread = (f"{fmt(r['messages_per_stream_mean'])} ({r['messages_per_stream_min']}-"
                  f"{r['messages_per_stream_max']})" if r["messages_per_stream_mean"] is not None else "-")
        table.append((
            kind, r["level"],
            f"{r['streams']} of {r['sent']}" + failures(r),
            f"{fmt(r['first_p50_ms'], 2)} / {fmt(r['first_p99_ms'], 2)}",
            f"{fmt(r['last_p50_ms'], 1)} / {fmt(r['last_p99_ms'], 1)}",
            f"{fmt(r['last_over_schedule_p50_ms'], 2)} / {fmt(r['last_over_schedule_p99_ms'], 2)}",
            spread,
        ))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    print("| " + " | ".join(str(h).ljust(widths[i]) for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in table[1:]:
        print("| " + " | ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)) + " |")
    if memory:
        mib = lambda kib: fmt(kib / 1024, 1) if kib is not None else "-"
        m = memory
        print(f"{m['streams']} streams at once ({m['level']}), {m['lines']} lines {m['interval_ms']} ms apart: "
              f"{m['completed']} complete" + failures(m) + f"; first / last message p50 "
              f"{fmt(m['first_p50_ms'], 2)} / {fmt(m['last_p50_ms'], 1)} ms, p99 "
              f"{fmt(m['first_p99_ms'], 2)} / {fmt(m['last_p99_ms'], 1)} ms")
        print(f"  connector RSS MiB: before {mib(m['idle_rss_kib'])}, during {mib(m['median_sampled_rss_kib'])} "
              f"(median) / {mib(m['max_sampled_rss_kib'])} (max of {m['samples']} samples), after "
              f"{mib(m['after_rss_kib'])}, peak (VmHWM{', since start' if m['hwm_since_start'] else ''}) "
              f"{mib(m['hwm_kib'])}")
        print(f"  CPU per line: connector {fmt(m['connector_cpu_us_per_line'], 1)} us, "
              f"Prosody {fmt(m['prosody_cpu_us_per_line'], 1)} us")


def failures(summary):
    notes = []
    if summary.get("errors"):
        notes.append(f"errors {summary['errors']} {summary.get('error_conditions')}")
    if summary.get("timeouts"):
        notes.append(f"timeouts {summary['timeouts']}")
    if summary.get("failures"):
        notes.append(f"failed sessions {len(summary['failures'])}: {summary['failures'][0]}")
    return "".join("; " + n for n in notes)


def create_queue(endpoint, name):
    """CreateQueue in SQS's JSON protocol. moto picks the service from the
    credential scope, so an unsigned Authorization header naming sqs is enough."""
    import urllib.request
    request = urllib.request.Request(endpoint + "/", data=json.dumps({"QueueName": name}).encode(), headers={
        "X-Amz-Target": "AmazonSQS.CreateQueue",
        "Content-Type": "application/x-amz-json-1.0",
        "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/sqs/aws4_request, "
                         "SignedHeaders=host, Signature=0",
    })
    with urllib.request.urlopen(request, timeout=10) as r:
        url = json.loads(r.read()).get("QueueUrl")
    if not url:
        sys.exit("CreateQueue returned no QueueUrl")
    print(url)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--create-queue"]:
        create_queue(sys.argv[2], sys.argv[3])
    else:
        main()

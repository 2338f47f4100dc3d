#!/usr/bin/env bash
# `make bench`: measures the connector and the function on this machine and
# prints one table; the same figures go to target/bench/results.json.
#
#   BENCH_QUICK=1   tiny counts: a smoke test of the whole script (~1 min)
#   BENCH_OUT=DIR   where results.json goes (default target/bench)
#   BENCH_CONNECTOR=PATH  measure this connector binary instead of the one
#                   built here (e.g. an older release, for before/after)
#   BENCH_ONLY=LIST only these sections, comma-separated, of: ping echo
#                   ceiling stream sqs function (default all); without sqs
#                   and function, only the bench tools and the connector
#                   are built
#
# Everything runs on loopback: Prosody from a generated config (rate limits
# off), a Rust HTTP echo bot (which also streams NDJSON answers), the
# connector (http transport), the ceiling (`bench-echo-component`, a trivial
# echo component without HTTP), and the load generator `xmpp-loadgen` from
# bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# The Python tools (cargo-lambda, zig, moto) live in .venv (scripts/setup.sh).
export PATH=$ROOT/.venv/bin:$HOME/.cargo/bin:$PATH
QUICK=${BENCH_QUICK:-0}
ONLY=${BENCH_ONLY:-}
# Whether section $1 runs.
wanted() { [ -z "$ONLY" ] || [[ ",${ONLY// /,}," == *",$1,"* ]]; }
OUT=${BENCH_OUT:-$ROOT/target/bench}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/xmpp-lambda-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
STARTED=$(date +%s)

# Counts: full run vs smoke test. Concurrency levels are sessions x in-flight.
if [ "$QUICK" = 1 ]; then
  PING_COUNT=2000; ECHO_COUNT=300; INIT_RUNS=3; SQS_LOW_COUNT=20; SQS_HIGH_COUNT=300
  LEVELS=("1x1" "10x10")
  CEILING_LEVELS=("1x1" "4x4")
else
  PING_COUNT=100000; ECHO_COUNT=30000; INIT_RUNS=20; SQS_LOW_COUNT=100; SQS_HIGH_COUNT=3000
  LEVELS=("1x1" "4x4" "10x10" "20x25")
  CEILING_LEVELS=("1x1" "4x4" "16x8")
fi
PING_LEVELS=("1x1" "10x10" "20x25")
# Streamed answers (DESIGN §11): STREAM_LINES lines STREAM_INTERVAL_MS apart,
# one at a time and STREAM_SESSIONS conversations at once, as messages and
# as corrections; then MEMORY_LEVEL (sessions x streams each) long streams
# of MEMORY_LINES lines at once, for the connector's memory: one stream per
# user, as when that many people each ask a model-backed bot at once (with
# several per session, Prosody's writes of lines due at the same moment to
# one client wait on each other). Each row lasts about count / concurrency
# x the stream's length.
STREAM_LINES=20; STREAM_INTERVAL_MS=100
if [ "$QUICK" = 1 ]; then
  STREAM_ONE_COUNT=2; STREAM_SESSIONS=4; STREAM_MANY_COUNT=8; REPLACE_COUNT=2
  MEMORY_LEVEL=20x1; MEMORY_LINES=20
else
  STREAM_ONE_COUNT=12; STREAM_SESSIONS=10; STREAM_MANY_COUNT=100; REPLACE_COUNT=10
  MEMORY_LEVEL=100x1; MEMORY_LINES=60
fi

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench: $*" >&2; }

# free_port, wait_for_line, start_bench_prosody, register_load_users.
source "$ROOT/scripts/bench_common.sh"

# Appends one result line: figure name, then a JSON object.
record() { printf '{"figure":"%s","data":%s}\n' "$1" "$2" >>"$RESULTS"; }

# CPU seconds (user+system) used so far by PID.
cpu_seconds() {
  local ticks
  ticks=$(sed -e 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}')
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}
delta() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# VmRSS or VmHWM of PID in KiB.
mem_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# ---------------------------------------------------------------- build
log "building release binaries"
# The connector and the function are measured when they build; the tools must.
if ! wanted sqs && ! wanted function; then
  cargo build --release -q -p xmpp-lambda-bench
  cargo build --release -q -p xmpp-lambda-connector || log "the connector does not build"
elif ! cargo build --release -q -p xmpp-lambda-bench -p xmpp-lambda-connector -p xmpp-lambda-function \
    -p xmpp-lambda-sqs-trigger; then
  log "the connector or the function does not build: measuring what does"
  cargo build --release -q -p xmpp-lambda-bench
  cargo build --release -q -p xmpp-lambda-connector || true
  cargo build --release -q -p xmpp-lambda-function || true
fi
BIN=$ROOT/target/release
LOADGEN=$BIN/xmpp-loadgen
CONNECTOR=${BENCH_CONNECTOR:-$BIN/xmpp-lambda-connector}
BUILD_S=$(($(date +%s) - STARTED))

# ---------------------------------------------------------------- Prosody
start_bench_prosody "$WORK/prosody"
PIDS+=("$PROSODY_PID")

# Registers users load0..loadN-1 once (the load generator can, but one
# prosodyctl per user per level would dominate a quick run).
max_sessions=1
for level in "${LEVELS[@]}" "${PING_LEVELS[@]}" "${CEILING_LEVELS[@]}" "${STREAM_SESSIONS}x1" "$MEMORY_LEVEL"; do
  s=${level%x*}
  [ "$s" -gt "$max_sessions" ] && max_sessions=$s
done
register_load_users "$max_sessions"

# Runs the load generator; prints its JSON summary.
# A run where every session failed still prints its JSON (with the reasons).
loadgen() { "$LOADGEN" --host 127.0.0.1 --port "$C2S_PORT" --domain localhost --json "$@" || true; }

# ---------------------------------------------------------------- echo bot
ECHO_LOG=$WORK/echo-bot.log
"$BIN/bench-echo-bot" >"$ECHO_LOG" 2>&1 &
ECHO_PID=$!
PIDS+=("$ECHO_PID")
wait_for_line "$ECHO_LOG" "listening on" 10 "$ECHO_PID"
ECHO_URL=$(sed -n 's/^listening on //p' "$ECHO_LOG" | head -1)

# ---------------------------------------------------------------- 0: the generator's and Prosody's ceiling
if wanted ping; then
  for level in "${PING_LEVELS[@]}"; do
    s=${level%x*}; w=${level#*x}
    log "ping ${s}x${w}: $PING_COUNT round trips to the server itself"
    record ping "$(loadgen --mode ping --sessions "$s" --in-flight "$w" --count "$PING_COUNT")"
  done
fi

# ---------------------------------------------------------------- connector (http transport)
start_connector() { # TRANSPORT, log file; extra env from the caller
  local log_file=$2
  COMPONENT_JID=bot.localhost COMPONENT_SECRET=$SECRET \
    COMPONENT_SERVER=127.0.0.1:$COMPONENT_PORT TRANSPORT=$1 \
    RUST_LOG=${RUST_LOG:-info} "$CONNECTOR" >"$log_file" 2>&1 &
  CONNECTOR_PID=$!
  PIDS+=("$CONNECTOR_PID")
  if ! wait_for_line "$log_file" "component link established" 15 "$CONNECTOR_PID"; then
    kill "$CONNECTOR_PID" 2>/dev/null || true
    return 1
  fi
}

CONNECTOR_LOG=$WORK/connector-http.log
if ! wanted echo; then
  :
elif COMPONENT_POST_URL=$ECHO_URL start_connector http "$CONNECTOR_LOG"; then
  sleep 1 # let start-up allocations settle before reading idle memory
  record connector_idle "{\"rss_kib\":$(mem_kib "$CONNECTOR_PID" VmRSS),\"hwm_kib\":$(mem_kib "$CONNECTOR_PID" VmHWM)}"
  for level in "${LEVELS[@]}"; do
    s=${level%x*}; w=${level#*x}
    log "echo ${s}x${w}: $ECHO_COUNT round trips through Prosody, the connector and the bot"
    cpu0=$(cpu_seconds "$CONNECTOR_PID"); pcpu0=$(cpu_seconds "$PROSODY_PID"); bcpu0=$(cpu_seconds "$ECHO_PID")
    xmpp=$(loadgen --mode message --target echo@bot.localhost --sessions "$s" --in-flight "$w" \
      --count "$ECHO_COUNT" --warmup 10)
    cpu1=$(cpu_seconds "$CONNECTOR_PID"); pcpu1=$(cpu_seconds "$PROSODY_PID"); bcpu1=$(cpu_seconds "$ECHO_PID")
    rss=$(mem_kib "$CONNECTOR_PID" VmRSS); hwm=$(mem_kib "$CONNECTOR_PID" VmHWM)
    record echo "{\"level\":\"$level\",\"xmpp\":$xmpp,\"connector_cpu_s\":$(delta "$cpu0" "$cpu1"),\"prosody_cpu_s\":$(delta "$pcpu0" "$pcpu1"),\"bot_cpu_s\":$(delta "$bcpu0" "$bcpu1"),\"rss_kib\":$rss,\"hwm_kib\":$hwm}"
    log "message to self ${s}x${w}: Prosody's own routing, no component"
    pcpu0=$(cpu_seconds "$PROSODY_PID")
    self=$(loadgen --mode message --target 'load{n}@localhost' --sessions "$s" --in-flight "$w" \
      --count "$ECHO_COUNT" --warmup 10)
    record self "{\"level\":\"$level\",\"xmpp\":$self,\"prosody_cpu_s\":$(delta "$pcpu0" "$(cpu_seconds "$PROSODY_PID")")}"
    log "direct HTTP ${s}x${w}: the same bot without XMPP"
    record direct_http "{\"level\":\"$level\",\"http\":$(loadgen --mode http --http-url "$ECHO_URL" \
      --target echo@bot.localhost --sessions "$s" --in-flight "$w" --count "$ECHO_COUNT" --warmup 10)}"
  done
  kill "$CONNECTOR_PID" 2>/dev/null || true
  wait "$CONNECTOR_PID" 2>/dev/null || true
else
  log "connector (http transport) did not link within 15 s: echo figures not available"
  tail -5 "$CONNECTOR_LOG" >&2 || true
  record echo_unavailable '"the connector did not start"'
fi

# ---------------------------------------------------------------- ceiling: connector vs a trivial component
# The same Prosody, the same load, once through the connector (http
# transport, the echo bot) and once through `bench-echo-component`, which
# answers in place without HTTP: what Prosody carries and spends per message
# with it is what any component could hope for. Each request in flight is
# its own conversation (`echo{k}`): the connector keeps a conversation's
# requests one after the other (the order rule), and a trivial component
# answers a conversation's whole window at once, so with one conversation
# per session the depth would measure that rule rather than the connector.
# One pair at the deepest level does measure it (one conversation per
# session). Prosody's side of the component stream is counted in TCP
# segments (`ss`): how many writes it had to read, whatever the timing.
CEILING_PID=
start_ceiling() { # log file
  local log_file=$1 attempt
  # Prosody may not have seen the previous component go yet: it refuses a
  # second link for the domain until then.
  for attempt in 1 2 3; do
    COMPONENT_JID=bot.localhost COMPONENT_SECRET=$SECRET COMPONENT_SERVER=127.0.0.1:$COMPONENT_PORT \
      "$BIN/bench-echo-component" >"$log_file" 2>&1 &
    CEILING_PID=$!
    PIDS+=("$CEILING_PID")
    wait_for_line "$log_file" "component link established" 10 "$CEILING_PID" && return 0
    kill "$CEILING_PID" 2>/dev/null || true
    wait "$CEILING_PID" 2>/dev/null || true
    sleep 0.5
  done
  return 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# Data segments Prosody received and sent on the component stream so far.
component_segments() {
  command -v ss >/dev/null || { echo "null null"; return; }
  ss -tinH state established "( sport = :$COMPONENT_PORT )" | awk '
    { for (i = 1; i <= NF; i++) {
        if ($i ~ /^data_segs_in:/) { split($i, a, ":"); din += a[2] }
        if ($i ~ /^data_segs_out:/) { split($i, a, ":"); dout += a[2] } } }
    END { print din + 0, dout + 0 }'
}
# Runs one level against the component with PID $2; records it.
measure_component() { # kind pid level target conversations
  local kind=$1 pid=$2 level=$3 target=$4 conversations=$5 s w cpu0 pcpu0 bcpu0 segs0 segs1 run
  s=${level%x*}; w=${level#*x}
  log "ceiling ${s}x${w} ($conversations): $ECHO_COUNT round trips through the $kind"
  cpu0=$(cpu_seconds "$pid"); pcpu0=$(cpu_seconds "$PROSODY_PID"); bcpu0=$(cpu_seconds "$ECHO_PID")
  segs0=$(component_segments)
  run=$(loadgen --mode message --target "$target" --sessions "$s" --in-flight "$w" \
    --count "$ECHO_COUNT" --warmup 10)
  segs1=$(component_segments)
  record ceiling "{\"kind\":\"$kind\",\"level\":\"$level\",\"conversations\":\"$conversations\",\"xmpp\":$run,\"component_cpu_s\":$(delta "$cpu0" "$(cpu_seconds "$pid")"),\"prosody_cpu_s\":$(delta "$pcpu0" "$(cpu_seconds "$PROSODY_PID")"),\"bot_cpu_s\":$(delta "$bcpu0" "$(cpu_seconds "$ECHO_PID")"),\"segments\":$(segments_json "$segs0" "$segs1")}"
}
segments_json() { # "in out" before, "in out" after
  set -- $1 $2
  if [ "$1" = null ] || [ "$3" = null ]; then echo null; return; fi
  echo "{\"in\":$(($3 - $1)),\"out\":$(($4 - $2))}"
}
ceiling_pair() { # level target conversations
  local level=$1 target=$2 conversations=$3
  if COMPONENT_POST_URL=$ECHO_URL start_connector http "$WORK/ceiling-connector.log"; then
    measure_component connector "$CONNECTOR_PID" "$level" "$target" "$conversations"
    stop_pid "$CONNECTOR_PID"
  else
    log "ceiling: the connector did not link"
  fi
  if start_ceiling "$WORK/ceiling.log"; then
    measure_component ceiling "$CEILING_PID" "$level" "$target" "$conversations"
    stop_pid "$CEILING_PID"
  else
    log "ceiling: bench-echo-component did not link"
    tail -3 "$WORK/ceiling.log" >&2 || true
  fi
}
if wanted ceiling; then
  for level in "${CEILING_LEVELS[@]}"; do
    ceiling_pair "$level" 'echo{k}@bot.localhost' per_request
  done
  deepest=${CEILING_LEVELS[${#CEILING_LEVELS[@]}-1]}
  ceiling_pair "$deepest" 'echo@bot.localhost' per_session
fi

# ---------------------------------------------------------------- streamed replies
# One connector, the echo bot's /stream answers routed by localpart:
# stream* gets STREAM_LINES separate messages, replace* the same lines as
# corrections of one message (coalesced to one per second by default),
# long* MEMORY_LINES messages. Each stream is its own conversation. The
# generator times each request's first message and its last (the one
# marked (n/n)) and counts the messages in between. Each session first
# makes one echo round trip: a new session's first message through any
# component (the trivial one too) waits about 40 ms in Prosody here.
stream_url() { echo "${ECHO_URL}stream?lines=$1&interval_ms=$STREAM_INTERVAL_MS${2:-}"; }
STREAM_ROUTES="stream*=$(stream_url "$STREAM_LINES"),replace*=$(stream_url "$STREAM_LINES" '&replace=1')"
STREAM_ROUTES+=",long*=$(stream_url "$MEMORY_LINES")"
stream_row() { # kind level target count lines
  local kind=$1 level=$2 target=$3 count=$4 lines=$5 s w cpu0 pcpu0 run
  s=${level%x*}; w=${level#*x}
  log "stream ($kind) ${s}x${w}: $count answers of $lines lines, $STREAM_INTERVAL_MS ms apart"
  cpu0=$(cpu_seconds "$CONNECTOR_PID"); pcpu0=$(cpu_seconds "$PROSODY_PID")
  run=$(loadgen --mode stream --target "$target" --sessions "$s" --in-flight "$w" --count "$count" \
    --timeout 60 --warmup 1 --warmup-target echo@bot.localhost)
  record stream "{\"kind\":\"$kind\",\"level\":\"$level\",\"lines\":$lines,\"interval_ms\":$STREAM_INTERVAL_MS,\"xmpp\":$run,\"connector_cpu_s\":$(delta "$cpu0" "$(cpu_seconds "$CONNECTOR_PID")"),\"prosody_cpu_s\":$(delta "$pcpu0" "$(cpu_seconds "$PROSODY_PID")")}"
}
# The memory row: every stream at once, the connector's VmRSS sampled every
# 0.1 s meanwhile, and its VmHWM after. The peak is reset first (clear_refs
# 5, Linux 4.0+), so it is this row's, not the earlier rows'.
stream_memory_row() {
  local level=$MEMORY_LEVEL s w count hwm_reset=false idle cpu0 pcpu0 cpu pcpu run sampler
  s=${level%x*}; w=${level#*x}; count=$((s * w))
  local samples=$WORK/rss-samples stop=$WORK/rss-stop
  : >"$samples"; rm -f "$stop"
  echo 5 2>/dev/null >"/proc/$CONNECTOR_PID/clear_refs" && hwm_reset=true
  idle=$(mem_kib "$CONNECTOR_PID" VmRSS)
  log "stream memory: $count streams of $MEMORY_LINES lines at once (${s}x${w})"
  (
    while [ ! -e "$stop" ] && kill -0 "$CONNECTOR_PID" 2>/dev/null; do
      mem_kib "$CONNECTOR_PID" VmRSS >>"$samples" 2>/dev/null || true
      sleep 0.1
    done
  ) &
  sampler=$!
  PIDS+=("$sampler")
  cpu0=$(cpu_seconds "$CONNECTOR_PID"); pcpu0=$(cpu_seconds "$PROSODY_PID")
  run=$(loadgen --mode stream --target 'long{n}@bot.localhost' --sessions "$s" --in-flight "$w" \
    --count "$count" --timeout 60 --warmup 1 --warmup-target echo@bot.localhost)
  cpu=$(delta "$cpu0" "$(cpu_seconds "$CONNECTOR_PID")"); pcpu=$(delta "$pcpu0" "$(cpu_seconds "$PROSODY_PID")")
  touch "$stop"
  wait "$sampler" 2>/dev/null || true
  record stream_memory "{\"level\":\"$level\",\"streams\":$count,\"lines\":$MEMORY_LINES,\"interval_ms\":$STREAM_INTERVAL_MS,\"xmpp\":$run,\"idle_rss_kib\":$idle,\"rss_samples_kib\":[$(grep -E '^[0-9]+$' "$samples" | paste -sd, -)],\"after_rss_kib\":$(mem_kib "$CONNECTOR_PID" VmRSS),\"hwm_kib\":$(mem_kib "$CONNECTOR_PID" VmHWM),\"hwm_reset\":$hwm_reset,\"connector_cpu_s\":$cpu,\"prosody_cpu_s\":$pcpu}"
}
if ! wanted stream; then
  :
elif COMPONENT_POST_URL=$ECHO_URL COMPONENT_ROUTES=$STREAM_ROUTES start_connector http "$WORK/connector-stream.log"; then
  stream_row messages 1x1 'stream0@bot.localhost' "$STREAM_ONE_COUNT" "$STREAM_LINES"
  stream_row messages "${STREAM_SESSIONS}x1" 'stream{n}@bot.localhost' "$STREAM_MANY_COUNT" "$STREAM_LINES"
  stream_row replace 1x1 'replace0@bot.localhost' "$REPLACE_COUNT" "$STREAM_LINES"
  stream_memory_row
  stop_pid "$CONNECTOR_PID"
else
  log "streamed replies: the connector did not link"
  tail -5 "$WORK/connector-stream.log" >&2 || true
  record stream_unavailable '"the connector did not start"'
fi

# ---------------------------------------------------------------- SQS transport through moto
# moto behind bench-sqs-counter, which counts API calls by queue and action:
# the connector's calls on the request queue / messages = the request
# direction, its calls on the reply queue / messages = the reply direction,
# at a low rate (one message at a time) and a high one.
bench_sqs() {
  [ -x "$ROOT/.venv/bin/moto_server" ] || return 1
  local moto_port moto_pid counter_log=$WORK/sqs-counter.log
  moto_port=$(free_port)
  "$ROOT/.venv/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$moto_port" >"$WORK/moto.log" 2>&1 &
  moto_pid=$!
  PIDS+=("$moto_pid")
  wait_for_line "$WORK/moto.log" "Running on" 15 "$moto_pid" || return 1
  "$BIN/bench-sqs-counter" --upstream "127.0.0.1:$moto_port" >"$counter_log" 2>&1 &
  PIDS+=("$!")
  wait_for_line "$counter_log" "listening on" 10 "$!" || return 1
  local endpoint
  endpoint=$(sed -n 's/^listening on //p' "$counter_log" | head -1)
  endpoint=${endpoint%/}
  export AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_EC2_METADATA_DISABLED=true
  local req rep
  req=$(python3 "$ROOT/scripts/bench_report.py" --create-queue "$endpoint" bench-requests) || return 1
  rep=$(python3 "$ROOT/scripts/bench_report.py" --create-queue "$endpoint" bench-replies) || return 1
  # The function behind a local Runtime API, proxying to the echo bot, and
  # the local sqs trigger feeding it the request queue.
  local lambda_port lambda_pid
  lambda_port=$(free_port)
  (cd "$ROOT" && exec "$ROOT/.venv/bin/cargo-lambda" lambda watch --only-lambda-apis \
    -A 127.0.0.1 -P "$lambda_port") >"$WORK/cargo-lambda.log" 2>&1 &
  lambda_pid=$!
  PIDS+=("$lambda_pid")
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$lambda_port") 2>/dev/null && break
    kill -0 "$lambda_pid" 2>/dev/null || return 1
    sleep 0.1
  done
  AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:$lambda_port/.rt AWS_LAMBDA_FUNCTION_NAME=_ \
    AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
    BOT=proxy COMPONENT_POST_URL=$ECHO_URL REPLY_QUEUE_URL=$rep RUST_LOG=warn \
    "$BIN/bootstrap" >"$WORK/function.log" 2>&1 &
  PIDS+=("$!")
  RUST_LOG=warn "$BIN/xmpp-lambda-sqs-trigger" --queue-url "$req" \
    --endpoint "http://127.0.0.1:$lambda_port" --function _ >"$WORK/sqs-trigger.log" 2>&1 &
  PIDS+=("$!")
  REQUEST_QUEUE_URL=$req REPLY_QUEUE_URL=$rep start_connector sqs "$WORK/connector-sqs.log" || return 1
  # Calls each way per message, from the counts by queue and action: only
  # the connector sends to the request queue and reads the reply queue (the
  # trigger reads the request queue, the function sends to the reply queue).
  local level s w count run counts
  for level in "1x1:$SQS_LOW_COUNT" "10x10:$SQS_HIGH_COUNT"; do
    count=${level#*:}; level=${level%:*}
    s=${level%x*}; w=${level#*x}
    log "sqs ${s}x${w}: $count round trips through the queues and the function"
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/__counts/reset", method="POST"), timeout=10)' "$endpoint"
    run=$(loadgen --mode message --target echo@bot.localhost --sessions "$s" --in-flight "$w" --count "$count")
    counts=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1] + "/__counts", timeout=10).read().decode())' "$endpoint")
    record sqs "$(python3 - "$level" "$run" "$counts" <<'PY'
import json, sys
level, run, counts = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
messages = max(run.get("round_trips", 0), 1)
out = counts.get("bench-requests SendMessageBatch", 0) + counts.get("bench-requests SendMessage", 0)
into = sum(n for key, n in counts.items() if key.startswith("bench-replies ")
           and key.split(" ", 1)[1] in ("ReceiveMessage", "DeleteMessageBatch", "DeleteMessage"))
print(json.dumps({"level": level, "rate_per_s": run.get("rate_per_s"), "p50_ms": run.get("p50_ms"),
                  "p99_ms": run.get("p99_ms"), "round_trips": run.get("round_trips"),
                  "errors": run.get("errors"), "calls_per_msg_out": out / messages,
                  "calls_per_msg_in": into / messages, "counts": counts}))
PY
)"
  done
  kill "$CONNECTOR_PID" 2>/dev/null || true
  wait "$CONNECTOR_PID" 2>/dev/null || true
  return 0
}
if ! wanted sqs; then
  :
elif log "sqs transport through moto" && ! bench_sqs; then
  log "sqs transport: not available"
  record sqs_unavailable '"not available: the connector sqs transport or the local trigger did not start"'
fi

# ---------------------------------------------------------------- function: init time and zip size
FUNCTION_BIN=$BIN/bootstrap
if wanted function && [ -x "$ROOT/.venv/bin/cargo-lambda" ]; then
  log "cargo lambda build --release (zip)"
  lambda_started=$(date +%s)
  if cargo lambda build --release -q -p xmpp-lambda-function --output-format zip >"$WORK/lambda-build.log" 2>&1; then
    zip=$ROOT/target/lambda/bootstrap/bootstrap.zip
    record zip "{\"bytes\":$(stat -c %s "$zip")}"
    [ -x "$ROOT/target/lambda/bootstrap/bootstrap" ] && FUNCTION_BIN=$ROOT/target/lambda/bootstrap/bootstrap
  else
    log "cargo lambda build failed: zip size not available"
    tail -5 "$WORK/lambda-build.log" >&2 || true
  fi
  BUILD_S=$((BUILD_S + $(date +%s) - lambda_started))
fi
if wanted function && [ -x "$FUNCTION_BIN" ]; then
  log "function init: $INIT_RUNS cold starts of $FUNCTION_BIN"
  if init=$("$BIN/bench-lambda-init" --bootstrap "$FUNCTION_BIN" --runs "$INIT_RUNS" --env BOT=echo); then
    record init "$init"
  else
    log "function init: not available"
  fi
fi

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - STARTED))
record timing "{\"total_s\":$ELAPSED,\"build_s\":$BUILD_S,\"only\":\"$ONLY\"}"
python3 "$ROOT/scripts/bench_report.py" "$RESULTS" "$OUT/results.json" "$ELAPSED" "$QUICK"

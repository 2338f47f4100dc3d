#!/usr/bin/env bash
# `make profile`: the connector's instructions per message under callgrind,
# the load-independent figure the book's benchmarks page quotes (CPU
# time moves with the machine; instruction counts repeat to a fraction of a
# percent). Builds the connector with symbols (the `profiling` profile:
# release with line tables), runs Prosody, the echo bot and the connector
# under callgrind on loopback, and at each level counts the instructions of
# PROFILE_COUNT round trips after a warm-up.
#
#   PROFILE_COUNT=N       round trips measured per level (default 2000)
#   PROFILE_LEVELS="..."  sessions x in-flight (default "1x1 16x8")
#   PROFILE_OUT=DIR       where the callgrind files go (default target/profile)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$HOME/.cargo/bin:$PATH
COUNT=${PROFILE_COUNT:-2000}
read -r -a LEVELS <<<"${PROFILE_LEVELS:-1x1 16x8}"
OUT=${PROFILE_OUT:-$ROOT/target/profile}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/xmpp-lambda-profile.XXXXXX)

log() { echo "profile: $*" >&2; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

source "$ROOT/scripts/bench_common.sh"

if ! command -v valgrind >/dev/null; then
  log "apt-get install valgrind"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi

log "building the connector with symbols, the echo bot and the load generator"
cargo build -q --profile profiling -p xmpp-lambda-connector
cargo build -q --release -p xmpp-lambda-bench
CONNECTOR=$ROOT/target/profiling/xmpp-lambda-connector
BIN=$ROOT/target/release

start_bench_prosody "$WORK/prosody"
PIDS+=("$PROSODY_PID")
max_sessions=1
for level in "${LEVELS[@]}"; do
  [ "${level%x*}" -gt "$max_sessions" ] && max_sessions=${level%x*}
done
register_load_users "$max_sessions"

"$BIN/bench-echo-bot" >"$WORK/echo-bot.log" 2>&1 &
PIDS+=("$!")
wait_for_line "$WORK/echo-bot.log" "listening on" 10 "$!"
ECHO_URL=$(awk '/^listening on / { print $3; exit }' "$WORK/echo-bot.log")

loadgen() { # sessions in-flight count
  "$BIN/xmpp-loadgen" --host 127.0.0.1 --port "$C2S_PORT" --domain localhost --json \
    --mode message --target 'echo{k}@bot.localhost' --sessions "$1" --in-flight "$2" --count "$3"
}

printf '%-6s %12s %14s\n' level messages instr/message
for level in "${LEVELS[@]}"; do
  s=${level%x*}; w=${level#*x}
  COMPONENT_JID=bot.localhost COMPONENT_SECRET=$SECRET COMPONENT_SERVER=127.0.0.1:$COMPONENT_PORT \
    TRANSPORT=http COMPONENT_POST_URL=$ECHO_URL RUST_LOG=info \
    valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.%p" "$CONNECTOR" \
    >"$WORK/connector-$level.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  # Under valgrind the link takes a few seconds.
  wait_for_line "$WORK/connector-$level.log" "component link established" 60 "$pid"
  loadgen "$s" "$w" 300 >/dev/null # warm-up: connections, buffers, the allocator
  callgrind_control -z "$pid" >/dev/null 2>&1
  loadgen "$s" "$w" "$COUNT" >"$WORK/load-$level.json"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # The dump just asked for (callgrind.PID.1), not the one at exit.
  dump=$WORK/callgrind.$pid.1
  cp "$dump" "$OUT/callgrind-$level.out"
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$dump")
  printf '%-6s %12s %14s\n' "$level" "$COUNT" "$((total / COUNT))"
  # sed, not head: it reads to the end, so the pipe never breaks.
  callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '1,60p' \
    >"$OUT/top-$level.txt"
done
log "callgrind files and the top functions by inclusive cost: $OUT"

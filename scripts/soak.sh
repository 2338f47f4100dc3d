#!/usr/bin/env bash
# `make soak`: the long soak on this machine, against real servers, and one
# table (tests/tests/soak.rs does the work; `make test` runs a short one).
#
#   SOAK_MESSAGES=N            messages over all users (default 10000)
#   SOAK_USERS=N               users, one XMPP session each (default 20)
#   SOAK_PROSODY_RESTARTS=N    Prosody restarts per run (default 2)
#   SOAK_CONNECTOR_KILLS=N     connector SIGKILLs in the sqs run (default 2)
#   SOAK_WINDOW=N              unanswered messages per user at once (default 2)
#   SOAK_QUEUE=standard        standard SQS queues instead of FIFO
#
# The table and details go to target/soak/report.md, the whole output to
# target/soak/soak.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$HOME/.cargo/bin:$PATH
export AWS_EC2_METADATA_DISABLED=true
export SOAK_MESSAGES=${SOAK_MESSAGES:-10000}
export SOAK_PROSODY_RESTARTS=${SOAK_PROSODY_RESTARTS:-2}
export SOAK_CONNECTOR_KILLS=${SOAK_CONNECTOR_KILLS:-2}
OUT=$ROOT/target/soak
mkdir -p "$OUT"
export SOAK_REPORT=$OUT/rows.md
: >"$SOAK_REPORT"

log() { echo "soak: $*" >&2; }

# The end-to-end tests run the workspace binaries from target/debug.
log "building"
cargo build -q --workspace --bins
cargo test -q -p xmpp-lambda-tests --test soak --no-run

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "running $SOAK_MESSAGES messages per transport (load average $load_before); output in $OUT/soak.log"
status=0
# One run at a time: both at once would share the two cores.
cargo test -q -p xmpp-lambda-tests --test soak -- --test-threads=1 --nocapture \
  >"$OUT/soak.log" 2>&1 || status=$?
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "Soak on $(nproc) cores, $(date -u +%Y-%m-%d), load average $load_before before and $load_after after."
  echo
  echo "| transport | users × messages | faults (messages sent when injected; time until the connector linked again) | answered | lost | replies | errors | duplicates | re-sent | from offline storage | connector RSS start / peak / end (MiB) | time |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  grep '^|' "$SOAK_REPORT" || true
  echo
  grep -v '^|' "$SOAK_REPORT" || true
} >"$OUT/report.md"
cat "$OUT/report.md"
if [ "$status" -ne 0 ]; then
  log "a soak run failed; the end of its output:"
  grep -v '^\[connector\]' "$OUT/soak.log" | tail -40 >&2
fi
exit "$status"

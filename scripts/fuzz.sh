#!/usr/bin/env bash
# `make fuzz`: a coverage-guided campaign (libFuzzer through cargo-fuzz) on
# each target in fuzz/fuzz_targets, for a bounded time in all, then a table
# of executions per target. Installs cargo-fuzz if it is missing.
#
#   FUZZ_SECONDS    the whole campaign's time, shared evenly (default 600)
#   FUZZ_TARGETS    which targets (default: stream http_answer reply api_request)
#   FUZZ_SANITIZER  none (default) or address: ASan halves the executions
#                   and the targets hold little unsafe code
#   FUZZ_JOBS       libFuzzer processes per target (default 1)
#
# The stable toolchain builds the targets: RUSTC_BOOTSTRAP=1 lets cargo-fuzz
# pass the flags it needs (-Zsanitizer only with ASan; the coverage passes
# are stable -C flags). The workspace's release profile (fat LTO, stripped)
# is overridden for a faster build that keeps symbols for crash reports.
#
# What the campaign learns goes to target/fuzz/corpus/<target> (kept between
# runs, never committed); an input that breaks an invariant is written to
# target/fuzz/artifacts/<target>/ and the script fails at the end (only
# this run's inputs count). To keep
# one as a regression, copy it to fuzz/regressions/<target>/: `make test`
# replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-600}
targets=(${FUZZ_TARGETS:-stream http_answer reply api_request})
sanitizer=${FUZZ_SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  echo "fuzz: cargo install cargo-fuzz $cargo_fuzz_version"
  cargo install --locked --quiet cargo-fuzz --version "$cargo_fuzz_version"
fi

export RUSTC_BOOTSTRAP=1
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_STRIP=false
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
build=(-s "$sanitizer" --features libfuzzer --codegen-units 16)

echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
cargo fuzz build "${build[@]}"

work=${CARGO_TARGET_DIR:-target}/fuzz
per_target=$(( seconds / ${#targets[@]} ))
[ "$per_target" -ge 1 ] || per_target=1
# More than one job makes libFuzzer fork workers that log to files of
# their own in the current folder (fuzz-N.log); it copies them into the
# run's output when they end, so they are removed after each run.
parallel=()
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
declare -A max_len=([stream]=65536 [http_answer]=8192 [reply]=16384 [api_request]=16384)
report=()
failed=()
# Faults are counted among the inputs this run writes; those of earlier
# runs stay in the artifacts folder until someone keeps or deletes them.
started=$(mktemp)
trap 'rm -f "$started"' EXIT
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target"
  log="$work/$target.log"
  mkdir -p "$corpus" "$artifacts"
  seeds=(fuzz/corpus/"$target")
  [ -d fuzz/regressions/"$target" ] && seeds+=(fuzz/regressions/"$target")
  echo "fuzz: $target for ${per_target}s (log: $log)"
  status=0
  cargo fuzz run "${build[@]}" "$target" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$per_target" -max_len="${max_len[$target]:-16384}" \
    -dict=fuzz/dict/"$target".dict -timeout=10 -rss_limit_mb=2048 \
    "${parallel[@]}" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  rm -f fuzz-[0-9]*.log
  runs=$(grep -h '^stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  coverage=$(grep -ho 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  inputs=$(find "$corpus" -type f | wc -l)
  found=$(find "$artifacts" -type f -newer "$started" | wc -l)
  report+=("$(printf '%-12s %12s %10s %8s %8s %6s' "$target" "$runs" "$(( runs / per_target ))" "${coverage:-?}" "$inputs" "$found")")
  if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
    failed+=("$target")
    grep -h -m3 -A12 "panicked at\|ERROR: libFuzzer" "$log" || true
  fi
done

echo
printf '%-12s %12s %10s %8s %8s %6s\n' target executions "per s" coverage corpus faults
printf '%s\n' "${report[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: faults in ${failed[*]}: inputs in $work/artifacts/"
  exit 1
fi

#!/usr/bin/env bash
# Builds the axon fuzz targets (fuzz/fuzz_targets/) and runs each one for a short, bounded time.
# Fails if a target finds a crash (panic, sanitizer error, timeout or out-of-memory), after running all of them.
#
#   bash fuzz/ci.sh                       # every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=300 bash fuzz/ci.sh axon_request
#   FUZZ_SANITIZER=none bash fuzz/ci.sh    # faster build and runs, no AddressSanitizer
#
# Needs a nightly toolchain (AddressSanitizer). Without one it tries stable with RUSTC_BOOTSTRAP=1 and no
# sanitizer; if that cannot build either, it prints SKIPPED and exits 0 (the only case that skips).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$(date +%s)
step() { printf '\n== fuzz: %s (%ds)\n' "$*" "$(( $(date +%s) - started ))"; }

CARGO_FUZZ_VERSION=0.13.2
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
RSS_LIMIT_MB=${FUZZ_RSS_LIMIT_MB:-2048}
ALL_TARGETS=(package_decoder session_handshake axon_request)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${ALL_TARGETS[@]}"); fi
# Longest input per target: a few KiB covers real packages, heartbeats and requests while keeping runs fast.
max_len() {
  case "$1" in
    session_handshake) echo 4096 ;;
    *) echo 8192 ;;
  esac
}

export CARGO_TERM_COLOR=never
export PATH="$root/fuzz/.tools/bin:$PATH"

step "cargo-fuzz $CARGO_FUZZ_VERSION"
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$root/fuzz/.tools"
fi
cargo fuzz --version

step "toolchain"
fuzz=(cargo fuzz)
build_flags=()
# FUZZ_STABLE=1 forces the stable fallback (to test it on a machine that has nightly).
if [ -z "${FUZZ_STABLE:-}" ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
  # FUZZ_SANITIZER=none: about half the cold build time and 3x the exec/s, without AddressSanitizer.
  build_flags=(--sanitizer "${FUZZ_SANITIZER:-address}")
  echo "nightly: $(rustc +nightly --version), sanitizer: ${FUZZ_SANITIZER:-address}"
else
  echo "no nightly toolchain: trying $(rustc --version) with RUSTC_BOOTSTRAP=1 and no sanitizer"
  export RUSTC_BOOTSTRAP=1
  build_flags=(--sanitizer none)
fi

step "build (${targets[*]})"
build_log=fuzz/target/ci-build.log
mkdir -p fuzz/target
: >"$build_log"
build_started=$(date +%s)
for target in "${targets[@]}"; do
  if ! "${fuzz[@]}" build "${build_flags[@]}" "$target" >>"$build_log" 2>&1; then
    tail -40 "$build_log" >&2
    # A compile error in the code is a failure whatever the toolchain; only a toolchain that cannot build
    # fuzz targets at all (no nightly, stable refusing the flags) skips.
    if [ -z "${RUSTC_BOOTSTRAP:-}" ] || grep -qE '^error\[E[0-9]+\]' "$build_log"; then
      echo "fuzz: the build failed" >&2
      exit 1
    fi
    echo "SKIPPED: fuzz targets cannot be built without a nightly toolchain (stable + RUSTC_BOOTSTRAP failed)" >&2
    exit 0
  fi
done
echo "built in $(( $(date +%s) - build_started ))s"

failed=()
summary=()
for target in "${targets[@]}"; do
  step "run $target (${SECONDS_PER_TARGET}s)"
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  log="fuzz/target/ci-$target.log"
  run_started=$(date +%s)
  status=0
  # -timeout: one input taking this long is a hang; -rss_limit_mb: an input that needs this much is an OOM.
  "${fuzz[@]}" run "${build_flags[@]}" "$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" -max_len="$(max_len "$target")" \
    -timeout=10 -dict="fuzz/dict/$target.dict" -print_final_stats=1 >"$log" 2>&1 || status=$?
  took=$(( $(date +%s) - run_started ))
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(echo "$done_line" | grep -oE 'cov: [0-9]+' || true)
  ft=$(echo "$done_line" | grep -oE 'ft: [0-9]+' || true)
  corpus=$(echo "$done_line" | grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' || true)
  line="$target: ${took}s, ${execs:-?} execs, ${rate:-?} exec/s, ${cov:-cov: ?}, ${ft:-ft: ?}, ${corpus:-corp: ?}"
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    line="$line, FAILED (exit $status)"
    echo "---- $target: last lines of $log" >&2
    grep -E -A40 'panicked at|ERROR: (libFuzzer|AddressSanitizer)|SUMMARY' "$log" | head -80 >&2 || tail -60 "$log" >&2
    ls -1 "fuzz/artifacts/$target" >&2 || true
    echo "reproduce: ${fuzz[*]} run ${build_flags[*]} $target fuzz/artifacts/$target/<file>" >&2
  fi
  echo "$line"
  summary+=("$line")
done

step "summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashes found in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/target/ci-*.log)" >&2
  exit 1
fi
echo "fuzz: no crash"

#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) and runs
# each for a bounded time, one after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 s, every target
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0 fuzz_wire_message   until N executions instead
#
# Each target starts from a temporary copy of tests/fuzz/corpus/<target>/
# (what it adds is thrown away: the repository stays clean) and prints its
# executions and exec/s. Exits non-zero on any crash, leak, timeout, OOM or
# sanitizer report; the input that caused it is kept under
# $FUZZ_BUILD_DIR/artifacts/<target>/ (reproduce: the target binary with the
# file as its argument).
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_BUILD_TYPE
# (RelWithDebInfo), FUZZ_RUNS (run until N executions, no time limit),
# FUZZ_ARGS (more libFuzzer flags), JOBS (build parallelism, default nproc),
# CC/CXX (default clang/clang++).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
[[ $# -gt 0 ]] && shift
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
build=${FUZZ_BUILD_DIR:-build-fuzz}
runs=${FUZZ_RUNS:-}
jobs=${JOBS:-$(nproc)}

all=()
for f in tests/fuzz/fuzz_*.cc; do all+=("$(basename "$f" .cc)"); done
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")
for t in "${targets[@]}"; do
  if [[ ! -f tests/fuzz/$t.cc ]]; then
    echo "fuzz.sh: no target $t (have: ${all[*]})" >&2
    exit 2
  fi
done

export CC=${CC:-clang} CXX=${CXX:-clang++}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${FUZZ_BUILD_TYPE:-RelWithDebInfo}" -DNDO_FUZZ=ON >/dev/null
cmake --build "$build" -j "$jobs" --target "${targets[@]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/ndo-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# UBSan aborts (-fno-sanitize-recover), so libFuzzer sees it as a crash; the
# stack is printed either way.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

limit=(-max_total_time="$seconds")
[[ -n $runs ]] && limit=(-runs="$runs")
# shellcheck disable=SC2206  # FUZZ_ARGS is a list of flags
extra=(${FUZZ_ARGS:-})

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t
  mkdir -p "$corpus" "$build/artifacts/$t"
  [[ -d tests/fuzz/corpus/$t ]] && cp -r "tests/fuzz/corpus/$t/." "$corpus/"
  log=$work/$t.log
  echo "== $t: ${runs:+$runs runs}${runs:-$seconds s}"
  rc=0
  "$build/tests/fuzz/$t" "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t/" "${extra[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log")
  added=$(awk '/^stat::new_units_added:/ {print $2}' "$log")
  rss=$(awk '/^stat::peak_rss_mb:/ {print $2}' "$log")
  verdict=ok
  if [[ $rc -ne 0 ]] ||
    grep -Eq 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|invariant failed' "$log"; then
    verdict="FAILED (exit $rc)"
    failed+=("$t")
    echo "-- $t failed; the end of its log:"
    tail -n 60 "$log"
    grep -E '^artifact_prefix=|Test unit written to' "$log" || true
  fi
  line=$(printf '%-24s %12s executions %8s exec/s %5s new units %6s MB peak  %s' \
    "$t" "${execs:-?}" "${rate:-?}" "${added:-?}" "${rss:-?}" "$verdict")
  echo "$line"
  summary+=("$line")
done

echo
echo "== fuzz summary (${runs:+$runs runs}${runs:-$seconds s} per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: findings in ${failed[*]} (inputs under $build/artifacts/)" >&2
  exit 1
fi

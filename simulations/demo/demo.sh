#!/usr/bin/env bash
# make demo: a small loopback lab, scanned by ndo, scoped to 127.0.0.0/8.
#   127.42.0.0/28, seven service ports: some open, one filtered (a listener
#   whose accept queue is full drops SYNs), the rest closed (RST).
# It leaves nothing running: the lab is stopped on exit, whatever happens.
set -euo pipefail
build=${BUILD_DIR:-build}
ndo="$build/src/cli/ndo"
targets="$build/simulations/demo/ndo-demo-targets"
work=$(mktemp -d)
lab_pid=""
cleanup() {
  [[ -n "$lab_pid" ]] && kill "$lab_pid" 2>/dev/null && wait "$lab_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$targets" --ready "$work/ready" \
  --open 127.42.0.1:2222 --open 127.42.0.1:8080 \
  --open 127.42.0.2:5432 --open 127.42.0.2:8443 \
  --open 127.42.0.3:6379 --open 127.42.0.3:8080 --open 127.42.0.3:9200 \
  --open 127.42.0.9:3306 \
  --filtered 127.42.0.5:8443 &
lab_pid=$!
for _ in $(seq 100); do [[ -f "$work/ready" ]] && break; sleep 0.05; done
[[ -f "$work/ready" ]] || { echo "demo: the loopback lab did not start" >&2; exit 1; }

echo "== ndo scan 127.42.0.0/28 -p 2222,3306,5432,6379,8080,8443,9200 --scope 127.0.0.0/8 --store-all"
"$ndo" scan 127.42.0.0/28 -p 2222,3306,5432,6379,8080,8443,9200 --scope 127.0.0.0/8 \
  --store-all --seed 2019 --data-dir "$work/data" --no-progress
echo
echo "== stored scans: ndo scans"
"$ndo" scans --data-dir "$work/data"
id=$("$ndo" scans --data-dir "$work/data" | awk 'NR==2 {print $1}')
echo
echo "== ndo results $id --state open,filtered --format csv"
"$ndo" results "$id" --state open,filtered --format csv --data-dir "$work/data"
echo
echo "== a scope violation is refused before anything is sent:"
"$ndo" scan 127.42.0.1 192.0.2.1 -p 80 --scope 127.0.0.0/8 --data-dir "$work/data" || echo "(exit code $?)"

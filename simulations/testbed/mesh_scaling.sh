#!/usr/bin/env bash
# mesh_scaling.sh: does a distributed scan scale with its nodes? N = 1, 2, 4,
# 8 ndo nodes (a secured mesh on the scanner namespace's loopback), each
# capped at R probes/s (--rate, per node), scan the namespace testbed
# together; aggregate throughput against N x R (the acceptance asks for at
# least 0.9 x N x R, the 2019 prototype's linear-scaling claim).
#
#   sudo simulations/testbed/mesh_scaling.sh [--rate R] [--nodes "1 2 4 8"]
#        [--seconds S] [--hosts N] [--alive F] [--filtered-prob P] [--shard-seconds T]
#
# Each run scans S seconds' worth of probes at N x R (the port count is
# chosen to match), in shards of about T seconds at a node's rate. The
# scanning window is measured from the daemons' logs: from the first lease
# the coordinator granted to the last shard declared done (so the mesh's
# start-up, a few seconds of membership convergence and coordinator
# stabilisation, is not counted; it is printed apart). Everything runs in
# the testbed's namespaces: no packet leaves them.
# Exit status: 0 ok, 2 usage/tool error, 77 namespaces unavailable (SKIP).
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
BUILD=${BUILD_DIR:-$REPO_ROOT/build}
ndo=$BUILD/src/cli/ndo
rate=2000
node_counts="1 2 4 8"
seconds=40
hosts=4096
alive=1
filtered=0
shard_seconds=4
while [[ $# -gt 0 ]]; do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --nodes) node_counts=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    --alive) alive=$2; shift 2 ;;
    --filtered-prob) filtered=$2; shift 2 ;;
    --shard-seconds) shard_seconds=$2; shift 2 ;;
    *) echo "usage: see the top of $0" >&2; exit 2 ;;
  esac
done
[[ $(id -u) == 0 ]] || { echo "mesh_scaling: needs root (network namespaces)"; exit 77; }
[[ -x $ndo ]] || { echo "mesh_scaling: build first (no $ndo)" >&2; exit 2; }

export NDO_TESTBED_NAME=ms
ns=ndo-ms-scan
work=$(mktemp -d)
pids=()
stop_nodes() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  pkill -9 -f -- "--data-dir $work/node" 2>/dev/null || true
}
cleanup() {
  stop_nodes
  "$SCRIPT_DIR/testbed.sh" down >/dev/null 2>&1 || true
  [[ -n "${KEEP:-}" ]] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Ports so that the scan is S seconds of N x R: hosts x ports = S x N x R.
ms() { date +%s%3N; }
log_ms() {  # the ts= of a logfmt line, in ms
  local ts=${1#ts=}
  ts=${ts%% *}
  echo $(($(date -d "${ts%.*}Z" +%s) * 1000 + 10#$(sed 's/.*\.\([0-9]*\)Z/\1/' <<<"$ts")))
}

printf '%-5s %10s %9s %10s %12s %12s %9s %9s\n' nodes probes shards window_s probes_per_s n_x_r efficiency startup_s
for n in $node_counts; do
  probes_wanted=$((seconds * n * rate))
  ports_n=$(((probes_wanted + hosts - 1) / hosts))
  [[ $ports_n -gt 60000 ]] && { echo "too many ports; raise --hosts" >&2; exit 2; }
  ports="10001-$((10000 + ports_n))"
  "$SCRIPT_DIR/testbed.sh" up --hosts "$hosts" --ports 80 --alive "$alive" --open-prob 0.15 \
    --filtered-prob "$filtered" --seed 1 >"$work/testbed.log" 2>&1 || { cat "$work/testbed.log"; exit 77; }
  rm -rf "$work"/node*
  # node1 submits (the operator ndo init makes); the others only scan.
  "$ndo" init --data-dir "$work/node1" --vantage bench >/dev/null
  tok=$("$ndo" token create --data-dir "$work/node1" --role scanner --uses 0 --ttl 1h --format json)
  token=$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$tok")
  ca=$(sed -n 's/.*"ca_hash":"\([^"]*\)".*/\1/p' <<<"$tok")
  t_start=$(ms)
  for i in $(seq 1 "$n"); do
    args=(--listen "127.0.0.$i:17000" --data-dir "$work/node$i" --vantage bench --name "node$i" --allow 127.0.0.0/8)
    if [[ $i == 1 ]]; then
      nsenter --net="/var/run/netns/$ns" -- "$ndo" agent "${args[@]}" --priority 1 >"$work/node$i.log" 2>&1 &
    else
      nsenter --net="/var/run/netns/$ns" -- "$ndo" join 127.0.0.1:17000 "${args[@]}" --token "$token" --ca-hash "$ca" \
        >"$work/node$i.log" 2>&1 &
    fi
    pids+=($!)
  done
  for _ in $(seq 600); do
    alive_now=$("$ndo" members --data-dir "$work/node1" 2>/dev/null | grep -c ' alive ' || true)
    coord=$("$ndo" members --data-dir "$work/node1" 2>/dev/null | grep -c '^coordinator: node' || true)
    [[ $alive_now == "$n" && $coord == 1 ]] && break
    sleep 0.1
  done
  t_ready=$(ms)
  shards=$(((probes_wanted + rate * shard_seconds - 1) / (rate * shard_seconds)))
  id=$("$ndo" scan "198.18.0.0/$((32 - $(awk -v h="$hosts" 'BEGIN{print int(log(h)/log(2)+0.5)}')))" -p "$ports" \
    --scope 198.18.0.0/15 --rate "$rate" --shards "$shards" --data-dir "$work/node1" 2>/dev/null)
  until "$ndo" scan status "$id" --data-dir "$work/node1" 2>/dev/null | grep -q ' complete '; do sleep 0.5; done
  first=$(grep -h 'msg="lease granted"' "$work"/node*.log | sort | head -1)
  last=$(grep -h 'msg="shard done"' "$work"/node*.log | sort | tail -1)
  window=$(awk -v a="$(log_ms "$first")" -v b="$(log_ms "$last")" 'BEGIN{printf "%.2f", (b-a)/1000}')
  probes=$((hosts * ports_n))
  awk -v n="$n" -v p="$probes" -v s="$shards" -v w="$window" -v r="$rate" -v st="$(((t_ready - t_start)))" \
    'BEGIN{tput=p/w; printf "%-5d %10d %9d %10.2f %12.0f %12d %9.3f %9.1f\n", n, p, s, w, tput, n*r, tput/(n*r), st/1000}'
  stop_nodes
  "$SCRIPT_DIR/testbed.sh" down >/dev/null 2>&1 || true
done

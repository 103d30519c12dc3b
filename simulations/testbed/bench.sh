#!/usr/bin/env bash
# bench.sh — run ndo, nmap -sT and masscan against the namespace testbed and
# compare wall time, peak RSS and recall of open ports against the ground truth.
#
# Every scanner runs inside the scanner namespace (ip netns exec ndo-tb-scan),
# whose only route leads to the target namespace (see README.md).
#
# Exit status: 0 ok, 2 usage/tool error, 77 namespaces unavailable (SKIP).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
TESTBED=$SCRIPT_DIR/testbed.sh

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 2; }

usage() {
  cat <<EOF
usage: $(basename "$0") [options]

Testbed:
  --hosts N             target hosts, power of two (default 4096 -> 198.18.0.0/20)
  --ports LIST          ports (default: nmap's top 50)
  --alive F             alive fraction (default 0.35)
  --open-prob P         (default 0.15)
  --filtered-prob P     (default 0.02)
  --loss PCT            random TCP loss on the link, both ways (default 0)
  --loss-at WHERE       target (default) or scanner; see testbed.sh --help
  --seed S              testbed seed (default 1)
  --listener PATH       ndo-testbed-listener binary (see testbed.sh --help)
Tools:
  --ndo PATH            ndo binary (default \$REPO/build/src/cli/ndo)
  --ndo-args "ARGS"     extra arguments appended to the ndo scan command
  --only TOOL           run only TOOL (ndo, nmap or masscan)
  --skip-ndo | --skip-nmap | --skip-masscan
  --runs K              run each tool K times (default 1)
  --timeout SECS        wall-clock limit for each ndo or nmap run (default 1800)
  --nmap-timeout SECS   same, for nmap only
  --nmap-args "ARGS"    extra nmap arguments
  --masscan-rate PPS    (default 20000)
  --masscan-wait SECS   (default 3)
  --masscan-args "ARGS" extra masscan arguments
Output:
  --out-dir DIR         keep truth, raw outputs and results.tsv in DIR (default: a temp dir,
                        removed at exit)
  --self-test           check the output parsers against built-in samples and exit

Env: NDO_TESTBED_NAME / NDO_TESTBED_STATE / NDO_TESTBED_INSTALL as for testbed.sh.
EOF
}

# ---------------------------------------------------------------- parsers ---
# Each prints "ADDRESS PORT" for every open port found, sorted and unique.

# ndo JSON Lines: one object per line, e.g.
#   {"scan":"ab12","address":"198.18.0.5","port":22,"state":"open","rtt_us":120,"time":"..."}
# Tolerates whitespace, key order, other keys and non-result lines (no address/state).
parse_ndo_jsonl() {
  awk '
    function strval(line, key,   re, v) {
      re = "\"" key "\"[ \t]*:[ \t]*\"[^\"]*\""
      if (!match(line, re)) return ""
      v = substr(line, RSTART, RLENGTH)
      sub(/^"[^"]*"[ \t]*:[ \t]*"/, "", v); sub(/"$/, "", v)
      return v
    }
    function numval(line, key,   re, v) {
      re = "\"" key "\"[ \t]*:[ \t]*\"?[0-9]+"
      if (!match(line, re)) return ""
      v = substr(line, RSTART, RLENGTH)
      sub(/^"[^"]*"[ \t]*:[ \t]*"?/, "", v)
      return v
    }
    {
      sub(/\r$/, "")
      if (strval($0, "state") != "open") next
      a = strval($0, "address"); if (a == "") a = strval($0, "ip")
      p = numval($0, "port")
      if (a != "" && p != "") print a, p + 0
    }' "$@" | sort -u
}

# nmap XML (-oX): works whatever the line layout, by splitting on "<".
parse_nmap_xml() {
  awk '
    BEGIN { RS = "<" }
    function attr(rec, name) {
      if (match(rec, name "=\"[^\"]*\"")) return substr(rec, RSTART + length(name) + 2, RLENGTH - length(name) - 3)
      return ""
    }
    /^host[ \t\n>]/ { host = "" }
    /^address[ \t\n]/ { if (attr($0, "addrtype") == "ipv4") host = attr($0, "addr") }
    /^port[ \t\n]/ { port = attr($0, "portid"); proto = attr($0, "protocol") }
    /^state[ \t\n]/ { if (port != "" && proto == "tcp" && attr($0, "state") == "open") print host, port; port = "" }
  ' "$@" | sort -u
}

# masscan list output (-oL): "open tcp PORT ADDRESS TIMESTAMP".
parse_masscan_list() {
  awk '$1 == "open" && $2 == "tcp" { print $4, $3 }' "$@" | sort -u
}

self_test() {
  local d rc=0 got
  d=$(mktemp -d)
  cat >"$d/ndo.jsonl" <<'EOF'
{"scan":"ab12cd","address":"198.18.0.5","port":22,"state":"open","rtt_us":120,"time":"2025-01-01T00:00:00Z"}
{"scan":"ab12cd","address":"198.18.0.5","port":23,"state":"closed","rtt_us":90,"time":"2025-01-01T00:00:00Z"}
{ "state" : "open", "port" : 8080 , "address" : "198.18.1.7", "rtt_us": 5 }
{"scan":"ab12cd","address":"198.18.0.6","port":80,"state":"filtered","rtt_us":null,"time":"x"}
{"scan":"ab12cd","address":"198.18.0.5","port":22,"state":"open","rtt_us":130,"time":"dup"}
{"type":"summary","hosts":4096,"open":2}
{"scan":"ab12cd","address":"198.18.15.255","port":"443","state":"open"}
EOF
  printf '\r\n' >>"$d/ndo.jsonl"
  got=$(parse_ndo_jsonl "$d/ndo.jsonl" | tr '\n' ';')
  if [[ "$got" == "198.18.0.5 22;198.18.1.7 8080;198.18.15.255 443;" ]]; then
    echo "ok   ndo jsonl parser"
  else
    echo "FAIL ndo jsonl parser: $got"; rc=1
  fi
  cat >"$d/nmap.xml" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -sT" start="1" version="7.93" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="2" services="22,80"/>
<host starttime="1" endtime="1"><status state="up" reason="user-set" reason_ttl="0"/>
<address addr="198.18.0.1" addrtype="ipv4"/>
<hostnames>
</hostnames>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/><service name="ssh" method="table" conf="3"/></port>
<port protocol="tcp" portid="80"><state state="closed" reason="conn-refused" reason_ttl="0"/></port>
</ports>
</host>
<host starttime="1" endtime="1"><status state="up" reason="user-set" reason_ttl="0"/>
<address addr="198.18.0.2" addrtype="ipv4"/><address addr="02:00:00:00:00:01" addrtype="mac"/>
<ports><extraports state="filtered" count="1"><extrareasons reason="no-response" count="1"/></extraports>
<port protocol="tcp" portid="80"><state state="open" reason="syn-ack" reason_ttl="0"/></port>
</ports></host>
</nmaprun>
EOF
  got=$(parse_nmap_xml "$d/nmap.xml" | tr '\n' ';')
  if [[ "$got" == "198.18.0.1 22;198.18.0.2 80;" ]]; then
    echo "ok   nmap xml parser"
  else
    echo "FAIL nmap xml parser: $got"; rc=1
  fi
  printf '#masscan\nopen tcp 22 198.18.0.1 1700000000\nopen tcp 80 198.18.0.2 1700000000\nopen tcp 22 198.18.0.1 1700000001\n# end\n' >"$d/masscan.txt"
  got=$(parse_masscan_list "$d/masscan.txt" | tr '\n' ';')
  if [[ "$got" == "198.18.0.1 22;198.18.0.2 80;" ]]; then
    echo "ok   masscan list parser"
  else
    echo "FAIL masscan list parser: $got"; rc=1
  fi
  printf '198.18.0.1 22\n198.18.0.9 9\n' >"$d/found"
  printf '198.18.0.1 22\n198.18.0.2 80\n' >"$d/truth"
  got=$(score "$d/found" "$d/truth")
  if [[ "$got" == "2 1 50.00 1" ]]; then
    echo "ok   scoring"
  else
    echo "FAIL scoring: $got"; rc=1
  fi
  rm -rf "$d"
  if ((rc == 0)); then echo "4 passed, 0 failed"; else echo "self-test failed"; fi
  return $rc
}

# score FOUND TRUTH_OPEN -> "found true_positives recall_pct false_positives"
score() {
  local found=$1 truth=$2 nf nt tp
  nf=$(wc -l <"$found")
  nt=$(wc -l <"$truth")
  tp=$(comm -12 "$found" "$truth" | wc -l)
  awk -v nf="$nf" -v nt="$nt" -v tp="$tp" \
    'BEGIN { printf "%d %d %.2f %d\n", nf, tp, nt ? 100 * tp / nt : 0, nf - tp }'
}

# ------------------------------------------------------------------ main ---
hosts=4096 ports="" alive=0.35 open_prob=0.15 filtered_prob=0.02 loss=0 loss_at=target seed=1
listener="" ndo=$REPO_ROOT/build/src/cli/ndo ndo_args="" nmap_args="" masscan_args=""
run_ndo=1 run_nmap=1 run_masscan=1 runs=1 timeout_s=1800 nmap_timeout="" out_dir=""
masscan_rate=20000 masscan_wait=3
while (($#)); do
  case $1 in
    --hosts) hosts=${2:?}; shift 2 ;;
    --ports) ports=${2:?}; shift 2 ;;
    --alive) alive=${2:?}; shift 2 ;;
    --open-prob) open_prob=${2:?}; shift 2 ;;
    --filtered-prob) filtered_prob=${2:?}; shift 2 ;;
    --loss) loss=${2:?}; shift 2 ;;
    --loss-at) loss_at=${2:?}; shift 2 ;;
    --seed) seed=${2:?}; shift 2 ;;
    --listener) listener=${2:?}; shift 2 ;;
    --ndo) ndo=${2:?}; shift 2 ;;
    --ndo-args) ndo_args=${2?}; shift 2 ;;
    --nmap-args) nmap_args=${2?}; shift 2 ;;
    --masscan-args) masscan_args=${2?}; shift 2 ;;
    --only)
      case ${2:?} in
        ndo) run_nmap=0 run_masscan=0 ;;
        nmap) run_ndo=0 run_masscan=0 ;;
        masscan) run_ndo=0 run_nmap=0 ;;
        *) die "--only takes ndo, nmap or masscan" ;;
      esac
      shift 2 ;;
    --skip-ndo) run_ndo=0; shift ;;
    --skip-nmap) run_nmap=0; shift ;;
    --skip-masscan) run_masscan=0; shift ;;
    --runs) runs=${2:?}; shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --nmap-timeout) nmap_timeout=${2:?}; shift 2 ;;
    --masscan-rate) masscan_rate=${2:?}; shift 2 ;;
    --masscan-wait) masscan_wait=${2:?}; shift 2 ;;
    --out-dir) out_dir=${2:?}; shift 2 ;;
    --self-test) self_test; exit $? ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer"
nmap_timeout=${nmap_timeout:-$timeout_s}
[[ "$nmap_timeout" =~ ^[1-9][0-9]*$ ]] || die "--nmap-timeout must be a positive integer"
[[ "$masscan_rate" =~ ^[1-9][0-9]*$ ]] || die "--masscan-rate must be a positive integer"
[[ "$masscan_wait" =~ ^[0-9]+$ ]] || die "--masscan-wait must be a non-negative integer"
((run_ndo + run_nmap + run_masscan > 0)) || die "nothing to run"

# Tools. The Makefile may set NDO_TESTBED_INSTALL=1 to apt-get missing ones.
need() {
  local path=$1 pkg=$2
  if [[ "$path" == /* ]]; then [[ -x "$path" ]] && return 0; else command -v "$path" >/dev/null 2>&1 && return 0; fi
  if [[ "${NDO_TESTBED_INSTALL:-0}" == 1 ]]; then
    log "installing $pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >&2 || die "apt-get install $pkg failed"
    return 0
  fi
  die "$path not found: install it with 'apt-get install -y $pkg' (or set NDO_TESTBED_INSTALL=1)"
}
need /usr/bin/time time
need timeout coreutils
need ip iproute2
need nft nftables
((run_nmap)) && need nmap nmap
((run_masscan)) && need masscan masscan
if ((run_ndo)) && [[ ! -x "$ndo" ]]; then
  if ((run_nmap + run_masscan == 0)); then die "ndo binary not found: $ndo (build it or pass --ndo)"; fi
  log "ndo binary not found at $ndo: skipping ndo (build it or pass --ndo PATH)"
  run_ndo=0
fi
[[ $EUID -eq 0 ]] || { echo "SKIP: network namespaces unavailable (need root)"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ndo-bench.XXXXXX")
if [[ -n "$out_dir" ]]; then mkdir -p "$out_dir"; out_dir=$(cd "$out_dir" && pwd); else out_dir=$work/out; mkdir -p "$out_dir"; fi
# The testbed's own state dir (NDO_TESTBED_STATE or its default), so that a
# testbed brought up by hand before is found and replaced cleanly.
STATE_DIR=$("$TESTBED" state-dir)
KICKER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$KICKER_PID" ]]; then kill "$KICKER_PID" 2>/dev/null || true; fi
  "$TESTBED" down >/dev/null 2>&1 || log "warning: testbed down failed"
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ testbed up ---
up_args=(--hosts "$hosts" --alive "$alive" --open-prob "$open_prob" --filtered-prob "$filtered_prob"
  --loss "$loss" --loss-at "$loss_at" --seed "$seed" --truth "$out_dir/truth.txt")
[[ -n "$ports" ]] && up_args+=(--ports "$ports")
[[ -n "$listener" ]] && up_args+=(--listener "$listener")
set +e
"$TESTBED" up "${up_args[@]}"
rc=$?
set -e
if ((rc == 77)); then exit 77; fi
((rc == 0)) || die "testbed up failed ($rc)"

cfg() { sed -n "s/^.*\b$1=\([^ ]*\).*$/\1/p" "$STATE_DIR/config" | head -n1; }
SCAN_NS=$(cfg scan_ns)
range=$(cfg range)
ports=$(cfg ports)
scan_if=$(cfg scan_if)
scan_addr=$(cfg scan_addr)
scan_mac=$(cfg scan_mac)
target_addr=$(cfg target_addr)
target_mac=$(cfg target_mac)
nports=$(cfg nports)
awk '$3 == "open" { print $1, $2 }' "$out_dir/truth.txt" | sort -u >"$out_dir/truth_open.txt"
truth_open=$(wc -l <"$out_dir/truth_open.txt")
log "testbed: $range ($hosts hosts) x $nports ports, $truth_open open, loss ${loss}% at $loss_at"

# ----------------------------------------------------------------- runs ---
results=$out_dir/results.tsv
printf 'tool\trun\twall_s\tpeak_rss_kb\tfound_open\ttrue_pos\trecall_pct\tfalse_pos\tstatus\n' >"$results"

# in_ns LIMIT TIMEFILE CMD...: run CMD in the scanner namespace under /usr/bin/time,
# bounded by timeout LIMIT. Returns the command's status (124 on timeout).
in_ns() {
  local limit=$1 tf=$2
  shift 2
  local rc=0
  ip netns exec "$SCAN_NS" /usr/bin/time -f "%e %M" -o "$tf" \
    timeout -k 10 "$limit" "$@" || rc=$?
  return $rc
}

record() { # tool run timefile foundfile rc
  local tool=$1 run=$2 tf=$3 found=$4 rc=$5 wall rss status=ok
  # /usr/bin/time writes "Command exited with non-zero status N" before the numbers.
  read -r wall rss < <(grep -E '^[0-9.]+ [0-9]+$' "$tf" 2>/dev/null | tail -n1 || true)
  wall=${wall:-NA} rss=${rss:-NA}
  if ((rc == 124 || rc == 137)); then status=TIMEOUT; elif ((rc != 0)); then status="exit=$rc"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$run" "$wall" "$rss" \
    "$(score "$found" "$out_dir/truth_open.txt" | tr ' ' '\t')" "$status" >>"$results"
}

for ((k = 1; k <= runs; k++)); do
  if ((run_ndo)); then
    log "run $k: ndo"
    data=$work/ndo-data.$k
    rm -rf "$data"; mkdir -p "$data"
    rc=0
    # shellcheck disable=SC2086  # --ndo-args is split on purpose
    in_ns "$timeout_s" "$out_dir/ndo.$k.time" "$ndo" scan "$range" -p "$ports" \
      --scope 198.18.0.0/15 --seed 1 --data-dir "$data" --format json \
      -o "$out_dir/ndo.$k.jsonl" $ndo_args >"$out_dir/ndo.$k.log" 2>&1 || rc=$?
    ((rc == 0)) || log "ndo exited with status $rc (see $out_dir/ndo.$k.log)"
    touch "$out_dir/ndo.$k.jsonl"
    parse_ndo_jsonl "$out_dir/ndo.$k.jsonl" >"$out_dir/ndo.$k.open"
    record ndo "$k" "$out_dir/ndo.$k.time" "$out_dir/ndo.$k.open" "$rc"
    rm -rf "$data"
  fi

  if ((run_nmap)); then
    log "run $k: nmap -sT -T4 (limit ${nmap_timeout}s)"
    rc=0
    # shellcheck disable=SC2086
    in_ns "$nmap_timeout" "$out_dir/nmap.$k.time" nmap -sT -Pn -n -T4 -p "$ports" "$range" \
      -oX "$out_dir/nmap.$k.xml" $nmap_args >"$out_dir/nmap.$k.log" 2>&1 || rc=$?
    ((rc == 124 || rc == 137)) && log "nmap hit the ${nmap_timeout}s limit; counting what it wrote"
    touch "$out_dir/nmap.$k.xml"
    parse_nmap_xml "$out_dir/nmap.$k.xml" >"$out_dir/nmap.$k.open"
    record nmap "$k" "$out_dir/nmap.$k.time" "$out_dir/nmap.$k.open" "$rc"
  fi

  if ((run_masscan)); then
    log "run $k: masscan --rate $masscan_rate"
    # masscan 1.3.2's receive thread blocks in libpcap until a packet arrives,
    # so on a silent veth it never notices the scan has ended. A trickle of
    # kernel connects to the target's link address (closed port -> RST) keeps
    # it awake; masscan ignores them (other source port).
    ip netns exec "$SCAN_NS" bash -c \
      "while :; do (exec 3<>/dev/tcp/$target_addr/9) 2>/dev/null; sleep 0.2; done" &
    KICKER_PID=$!
    probes=$((hosts * nports))
    limit=$((probes / masscan_rate + masscan_wait + 60))
    rc=0
    # shellcheck disable=SC2086
    in_ns "$limit" "$out_dir/masscan.$k.time" masscan "$range" -p "$ports" --rate "$masscan_rate" \
      --adapter "$scan_if" --adapter-ip "$scan_addr" --adapter-mac "$scan_mac" \
      --router-mac "$target_mac" --wait "$masscan_wait" -oL "$out_dir/masscan.$k.txt" $masscan_args \
      >"$out_dir/masscan.$k.log" 2>&1 || rc=$?
    kill "$KICKER_PID" 2>/dev/null || true
    wait "$KICKER_PID" 2>/dev/null || true
    KICKER_PID=""
    ((rc == 124 || rc == 137)) && log "masscan hit the ${limit}s limit"
    touch "$out_dir/masscan.$k.txt"
    parse_masscan_list "$out_dir/masscan.$k.txt" >"$out_dir/masscan.$k.open"
    record masscan "$k" "$out_dir/masscan.$k.time" "$out_dir/masscan.$k.open" "$rc"
  fi
done

# ---------------------------------------------------------------- table ---
echo
echo "testbed: $range ($hosts hosts) x $nports ports = $((hosts * nports)) probes;" \
  "alive $alive, open-prob $open_prob, filtered-prob $filtered_prob, loss ${loss}% ($loss_at), seed $seed"
echo "truth: $truth_open open"
awk -F'\t' 'NR == 1 { next }
  { printf "%-8s %4s %10s %12s %10s %9s %8s  %s\n", $1, $2, $3,
      ($4 == "NA" ? "NA" : sprintf("%.1f", $4 / 1024)), $5, $7, $8, $9 }
  BEGIN { printf "%-8s %4s %10s %12s %10s %9s %8s  %s\n", "tool", "run", "wall_s", "peak_rss_MB",
            "open_found", "recall_%", "false_+", "status" }' "$results"
if [[ "$out_dir" != "$work/out" ]]; then echo "outputs: $out_dir"; fi

#!/usr/bin/env bash
# testbed.sh — a two-namespace TCP scan testbed for ndo (and nmap/masscan).
#
#   testbed.sh up   [options]   create (or re-create) the testbed
#   testbed.sh down             tear it down (idempotent)
#   testbed.sh status           show what is there
#   testbed.sh top-ports [N]    print nmap's top N TCP ports (default 50), comma-separated
#
# Layout (see README.md): namespace ndo-tb-scan (the scanner, 198.19.255.1/30,
# route 198.18.0.0/15 via the target, no default route) joined by one veth pair
# to namespace ndo-tb-target (198.19.255.2/30), where an AnyIP route makes
# 198.18.0.0/<prefix> local, nftables decides per host:port between
# open (accept -> ndo-testbed-listener), closed (RST) and filtered (drop), and
# forwarding is off. Nothing is created in, or routed through, the root namespace.
#
# Exit status: 0 ok, 2 usage/tool error, 77 namespaces unavailable (SKIP).
set -euo pipefail

# NDO_TESTBED_NAME (1-6 lowercase letters/digits, default "tb") names the
# namespaces and interfaces, so that two testbeds can exist side by side.
TB_NAME=${NDO_TESTBED_NAME:-tb}
if [[ ! "$TB_NAME" =~ ^[a-z0-9]{1,6}$ ]]; then
  printf 'testbed: error: NDO_TESTBED_NAME must be 1-6 lowercase letters or digits\n' >&2
  exit 2
fi
SCAN_NS=ndo-$TB_NAME-scan
TARGET_NS=ndo-$TB_NAME-target
SCAN_IF=ndo$TB_NAME-scan
TARGET_IF=ndo$TB_NAME-tgt
SCAN_ADDR=198.19.255.1
TARGET_ADDR=198.19.255.2
LINK_PREFIX=30
SCAN_MAC=02:6e:64:6f:00:01
TARGET_MAC=02:6e:64:6f:00:02
ROUTED_RANGE=198.18.0.0/15
NFT_TABLE=ndo_testbed

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

log() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: error: %s\n' "$*" >&2; exit 2; }

usage() {
  cat <<EOF
usage: $(basename "$0") up [options] | down | status | top-ports [N] | state-dir

up options:
  --hosts N           target hosts, a power of two 1..65536, from 198.18.0.0 (default 4096)
  --ports LIST        TCP ports, comma list with ranges (default: nmap's top 50)
  --top-ports N       use nmap's top N TCP ports instead
  --alive FRACTION    probability that a host is alive (default 0.35)
  --open-prob P       probability that a port of an alive host is open (default 0.15)
  --filtered-prob P   probability that a port of an alive host is filtered (default 0.02)
  --loss PCT          random TCP loss in % on the scanner<->target link, both ways (default 0;
                      up to two decimals)
  --loss-at WHERE     target (default): drop in the target namespace's prerouting/postrouting,
                      which also affects raw-socket scanners such as masscan;
                      scanner: drop in the scanner namespace's input/output chains (only
                      affects kernel sockets: nmap -sT, ndo; masscan's raw packets bypass it)
  --seed S            seed for the choice of alive hosts and open/filtered ports (default 1)
  --truth FILE        write the ground truth, one "ADDRESS PORT STATE" line per host:port
  --listener PATH     ndo-testbed-listener binary
                      (default: \$REPO/build/simulations/testbed/ndo-testbed-listener; if that is
                      missing, it is compiled with c++ into the state directory)
  --listener-rst      the listener closes accepted connections with RST instead of FIN
  --state-dir DIR     where pid/config files go (default /run/ndo-testbed or \$TMPDIR/ndo-testbed)

Env: NDO_TESTBED_INSTALL=1 lets the script apt-get install missing tools (used by a Makefile).
     NDO_TESTBED_NAME=x (1-6 of [a-z0-9], default tb) -> namespaces ndo-x-scan/ndo-x-target,
     interfaces ndox-scan/ndox-tgt, state dir /run/ndo-testbed-x: a second testbed beside the first.
     NDO_TESTBED_STATE=DIR sets the state dir.
EOF
}

state_dir_default() {
  if [[ -n "${NDO_TESTBED_STATE:-}" ]]; then
    printf '%s\n' "$NDO_TESTBED_STATE"
    return
  fi
  local base=ndo-testbed
  [[ $TB_NAME == tb ]] || base=ndo-testbed-$TB_NAME
  if [[ -d /run && -w /run ]]; then
    printf '/run/%s\n' "$base"
  else
    printf '%s/%s\n' "${TMPDIR:-/tmp}" "$base"
  fi
}
STATE_DIR=$(state_dir_default)

# need_tool CMD PACKAGE: make sure CMD exists; install PACKAGE only when allowed.
need_tool() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [[ "${NDO_TESTBED_INSTALL:-0}" == 1 ]]; then
    log "installing $pkg (for $cmd)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >&2 || die "apt-get install $pkg failed"
    command -v "$cmd" >/dev/null 2>&1 && return 0
  fi
  die "'$cmd' not found: install it with 'apt-get install -y $pkg' (or set NDO_TESTBED_INSTALL=1)"
}

# expand_ports "21-23,80" -> "21,22,23,80" (sorted, unique); dies on bad input.
expand_ports() {
  local spec=$1 out
  out=$(printf '%s\n' "$spec" | tr ',' '\n' | awk '
    /^[[:space:]]*$/ { next }
    /^[0-9]+$/ { if ($1 < 1 || $1 > 65535) { bad = 1; exit } print $1 + 0; next }
    /^[0-9]+-[0-9]+$/ { split($0, r, "-"); lo = r[1] + 0; hi = r[2] + 0
                        if (lo < 1 || hi > 65535 || lo > hi) { bad = 1; exit }
                        for (p = lo; p <= hi; p++) print p; next }
    { bad = 1; exit }
    END { if (bad) exit 1 }' | sort -n -u | paste -sd, -) || die "bad port list: $spec"
  [[ -n "$out" ]] || die "empty port list"
  printf '%s\n' "$out"
}

# top_ports N: nmap's top N TCP ports, from nmap itself (no target given, so it sends
# nothing) or from nmap-services sorted by frequency.
top_ports() {
  local n=${1:-50} list=""
  if command -v nmap >/dev/null 2>&1; then
    list=$(nmap -sT --top-ports "$n" -oX - -n -Pn 2>/dev/null |
      sed -n 's/.*<scaninfo [^>]*services="\([^"]*\)".*/\1/p' | head -n1) || true
  fi
  if [[ -z "$list" ]]; then
    local svc
    for svc in /usr/share/nmap/nmap-services /usr/local/share/nmap/nmap-services; do
      [[ -r $svc ]] || continue
      list=$(awk '!/^#/ && $2 ~ /\/tcp$/ { split($2, a, "/"); print $3, a[1] }' "$svc" |
        sort -k1,1gr -k2,2n | head -n "$n" | awk '{ print $2 }' | paste -sd, -)
      break
    done
  fi
  if [[ -z "$list" ]]; then
    [[ "$n" == 50 ]] || die "cannot determine the top $n ports without nmap"
    # nmap 7.93's top 50 TCP ports, for machines without nmap.
    list=21-23,25-26,53,80-81,110-111,113,135,139,143,179,199,443,445,465,514-515,548,554,587,646,993,995,1025-1027,1433,1720,1723,2000-2001,3306,3389,5060,5666,5900,6001,8000,8008,8080,8443,8888,10000,32768,49152,49154
  fi
  expand_ports "$list"
}

ns_exists() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep -qx "$1"; }

listener_pid_ok() {
  local pid=$1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'ndo-testbed-listener'
}

# kill_pid PID: TERM, wait up to 5 s, then KILL.
kill_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

cmd_down() {
  local pid ns
  if [[ -f "$STATE_DIR/listener.pid" ]]; then
    pid=$(cat "$STATE_DIR/listener.pid" 2>/dev/null || true)
    if listener_pid_ok "$pid"; then
      log "stopping listener (pid $pid)"
      kill_pid "$pid"
      if [[ -f "$STATE_DIR/listener.log" ]]; then
        sed -n 's/^ndo-testbed-listener: \(accepted .*\)$/listener \1/p' "$STATE_DIR/listener.log" |
          while IFS= read -r line; do log "$line"; done
      fi
    fi
  fi
  # Anything else still running inside our namespaces was started into them by
  # this testbed or its bench (scanners, listener); end them by pid.
  for ns in "$TARGET_NS" "$SCAN_NS"; do
    if ns_exists "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
        log "ending pid $pid left in $ns"
        kill_pid "$pid"
      done
    fi
  done
  for ns in "$SCAN_NS" "$TARGET_NS"; do
    if ns_exists "$ns"; then
      log "deleting namespace $ns"
      ip netns del "$ns" || log "warning: could not delete $ns"
    fi
  done
  if [[ -d "$STATE_DIR" ]]; then
    rm -f "$STATE_DIR"/listener.pid "$STATE_DIR"/listener.ready "$STATE_DIR"/config \
      "$STATE_DIR"/ports "$STATE_DIR"/counts "$STATE_DIR"/rules.nft "$STATE_DIR"/sets.nft "$STATE_DIR"/scan.nft
    rm -f "$STATE_DIR"/listener.log "$STATE_DIR"/ndo-testbed-listener
    rmdir "$STATE_DIR" 2>/dev/null || true
  fi
  return 0
}

cmd_status() {
  local ns up=0
  for ns in "$SCAN_NS" "$TARGET_NS"; do
    if ns_exists "$ns"; then echo "namespace $ns: present"; up=1; else echo "namespace $ns: absent"; fi
  done
  if [[ -f "$STATE_DIR/listener.pid" ]] && listener_pid_ok "$(cat "$STATE_DIR/listener.pid")"; then
    echo "listener: running (pid $(cat "$STATE_DIR/listener.pid"))"
  else
    echo "listener: not running"
  fi
  [[ -f "$STATE_DIR/config" ]] && sed 's/^/config: /' "$STATE_DIR/config"
  [[ $up == 1 ]] && return 0 || return 3
}

# to_threshold PCT SCALE: "2.5" 100 -> 250 (PCT with up to two decimals, times SCALE/100*100)
pct_to_basis_points() {
  awk -v p="$1" 'BEGIN { if (p !~ /^[0-9]+(\.[0-9]+)?$/ || p + 0 > 100) exit 1
                         printf "%d\n", p * 100 + 0.5 }' || die "bad --loss: $1 (0..100)"
}

is_prob() { awk -v p="$1" 'BEGIN { exit !(p ~ /^[0-9]*\.?[0-9]+$/ && p + 0 <= 1) }'; }

cmd_up() {
  local hosts=4096 ports="" top_n="" alive=0.35 open_prob=0.15 filtered_prob=0.02
  local loss=0 loss_at=target seed=1 truth="" listener="" listener_rst=0
  while (($#)); do
    case $1 in
      --hosts) hosts=${2:?}; shift 2 ;;
      --ports) ports=${2:?}; shift 2 ;;
      --top-ports) top_n=${2:?}; shift 2 ;;
      --alive) alive=${2:?}; shift 2 ;;
      --open-prob) open_prob=${2:?}; shift 2 ;;
      --filtered-prob) filtered_prob=${2:?}; shift 2 ;;
      --loss) loss=${2:?}; shift 2 ;;
      --loss-at) loss_at=${2:?}; shift 2 ;;
      --seed) seed=${2:?}; shift 2 ;;
      --truth) truth=${2:?}; shift 2 ;;
      --listener) listener=${2:?}; shift 2 ;;
      --listener-rst) listener_rst=1; shift ;;
      --state-dir) STATE_DIR=${2:?}; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown option: $1" ;;
    esac
  done

  [[ "$hosts" =~ ^[0-9]+$ ]] || die "--hosts must be a number"
  local bits=0
  while ((1 << bits < hosts)); do bits=$((bits + 1)); done
  ((hosts >= 1 && hosts <= 65536 && (1 << bits) == hosts)) ||
    die "--hosts must be a power of two between 1 and 65536"
  local prefix=$((32 - bits))
  is_prob "$alive" || die "--alive must be in [0,1]"
  is_prob "$open_prob" || die "--open-prob must be in [0,1]"
  is_prob "$filtered_prob" || die "--filtered-prob must be in [0,1]"
  awk -v a="$open_prob" -v b="$filtered_prob" 'BEGIN { exit !(a + b <= 1) }' ||
    die "--open-prob + --filtered-prob must not exceed 1"
  [[ "$seed" =~ ^[0-9]+$ ]] || die "--seed must be a non-negative integer"
  [[ "$loss_at" == target || "$loss_at" == scanner ]] || die "--loss-at must be target or scanner"
  local loss_bp
  loss_bp=$(pct_to_basis_points "$loss")

  need_tool ip iproute2
  need_tool nft nftables
  need_tool awk mawk
  if [[ -n "$top_n" ]]; then
    [[ -z "$ports" ]] || die "give --ports or --top-ports, not both"
    [[ "$top_n" =~ ^[0-9]+$ && "$top_n" -ge 1 ]] || die "bad --top-ports"
    ports=$(top_ports "$top_n")
  elif [[ -z "$ports" ]]; then
    ports=$(top_ports 50)
  else
    ports=$(expand_ports "$ports")
  fi
  local nports
  nports=$(awk -F, '{ print NF }' <<<"$ports")

  if [[ $EUID -ne 0 ]]; then
    echo "SKIP: network namespaces unavailable (need root)"
    exit 77
  fi

  # Start from nothing, whatever was there.
  cmd_down
  mkdir -p "$STATE_DIR"
  chmod 700 "$STATE_DIR"

  # Listener binary: given, built by CMake, or compiled here as a fallback.
  if [[ -z "$listener" ]]; then
    listener=$REPO_ROOT/build/simulations/testbed/ndo-testbed-listener
    if [[ ! -x "$listener" ]]; then
      local cxx
      cxx=$(command -v c++ || command -v g++ || true)
      [[ -n "$cxx" ]] || die "no listener at $listener and no C++ compiler; build ndo-testbed-listener or pass --listener"
      log "no listener at $listener; compiling $SCRIPT_DIR/listener.cc"
      "$cxx" -std=c++20 -O2 -o "$STATE_DIR/ndo-testbed-listener" "$SCRIPT_DIR/listener.cc" ||
        die "compiling listener.cc failed"
      listener=$STATE_DIR/ndo-testbed-listener
    fi
  fi
  [[ -x "$listener" ]] || die "listener not executable: $listener"

  # From here on, a failure tears down what was built.
  # shellcheck disable=SC2154  # rc is assigned inside the trap string
  trap 'rc=$?; if ((rc != 0)); then log "up failed (status $rc); cleaning up"; cmd_down; fi' EXIT

  if ! ip netns add "$SCAN_NS" 2>/dev/null; then
    trap - EXIT
    cmd_down >/dev/null 2>&1 || true
    echo "SKIP: network namespaces unavailable"
    exit 77
  fi
  ip netns add "$TARGET_NS"

  # Both namespaces: no forwarding, no IPv6 (so no router solicitations or other chatter).
  local ns
  for ns in "$SCAN_NS" "$TARGET_NS"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 2>/dev/null || true
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
    ip -n "$ns" link set lo up
  done

  # The veth pair is created directly inside the namespaces: it never exists in
  # the root namespace.
  ip -n "$SCAN_NS" link add "$SCAN_IF" address "$SCAN_MAC" type veth \
    peer name "$TARGET_IF" address "$TARGET_MAC" netns "$TARGET_NS"
  ip -n "$SCAN_NS" addr add "$SCAN_ADDR/$LINK_PREFIX" dev "$SCAN_IF"
  ip -n "$TARGET_NS" addr add "$TARGET_ADDR/$LINK_PREFIX" dev "$TARGET_IF"
  ip -n "$SCAN_NS" link set "$SCAN_IF" up
  ip -n "$TARGET_NS" link set "$TARGET_IF" up
  # Scanner: the target range via the target, and nothing else (no default route).
  ip -n "$SCAN_NS" route add "$ROUTED_RANGE" via "$TARGET_ADDR" dev "$SCAN_IF"
  # Target: every address of 198.18.0.0/<prefix> is local (AnyIP).
  ip -n "$TARGET_NS" route add local "198.18.0.0/$prefix" dev lo

  # Scanner-side kernel tuning for fast connect scans.
  ip netns exec "$SCAN_NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  ip netns exec "$SCAN_NS" sysctl -qw net.ipv4.tcp_tw_reuse=1
  # Target-side: big accept/SYN queues.
  ip netns exec "$TARGET_NS" sysctl -qw net.core.somaxconn=65535
  ip netns exec "$TARGET_NS" sysctl -qw net.ipv4.tcp_max_syn_backlog=65535
  ip netns exec "$TARGET_NS" sysctl -qw net.ipv4.tcp_max_tw_buckets=262144 2>/dev/null || true

  # Ground truth and nftables sets, drawn with a portable Park-Miller PRNG so
  # mawk and gawk agree for the same seed.
  local sets_file=$STATE_DIR/sets.nft truth_tmp=/dev/null
  [[ -n "$truth" ]] && truth_tmp="$truth.tmp.$$"
  awk -v hosts="$hosts" -v ports="$ports" -v alive="$alive" -v popen="$open_prob" \
    -v pfilt="$filtered_prob" -v seed="$seed" -v table="$NFT_TABLE" \
    -v truth="$truth_tmp" -v sets="$sets_file" '
    function rnd() { st = (st * 16807) % 2147483647; return st / 2147483647 }
    function flush(name) {
      if (cnt[name] > 0) printf "add element inet %s %s { %s }\n", table, name, buf[name] > sets
      cnt[name] = 0; buf[name] = ""
    }
    function add(name, elem) {
      buf[name] = cnt[name] ? buf[name] ", " elem : elem
      if (++cnt[name] >= 512) flush(name)
    }
    BEGIN {
      st = (seed % 2147483646) + 1
      for (w = 0; w < 16; w++) rnd()
      np = split(ports, P, ",")
      nalive = nopen = nfilt = nclosed = 0
      for (i = 0; i < hosts; i++) {
        addr = "198.18." int(i / 256) "." (i % 256)
        if (rnd() < alive) {
          nalive++
          add("alive", addr)
          for (j = 1; j <= np; j++) {
            r = rnd()
            if (r < popen) { s = "open"; nopen++; add("open", addr " . " P[j]) }
            else if (r < popen + pfilt) { s = "filtered"; nfilt++; add("filtered", addr " . " P[j]) }
            else { s = "closed"; nclosed++ }
            print addr, P[j], s > truth
          }
        } else {
          for (j = 1; j <= np; j++) print addr, P[j], "filtered" > truth
        }
      }
      flush("alive"); flush("open"); flush("filtered")
      printf "alive=%d open=%d closed=%d filtered_alive=%d dead_probes=%d\n",
        nalive, nopen, nclosed, nfilt, (hosts - nalive) * np
    }' >"$STATE_DIR/counts"
  touch "$sets_file"
  [[ -n "$truth" ]] && mv -f "$truth_tmp" "$truth"

  # Target-namespace ruleset. Set elements come from sets.nft, loaded in the same
  # nft -f transaction.
  local rules=$STATE_DIR/rules.nft
  {
    cat <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
	# Hosts that exist; every other address of the range drops everything.
	set alive { type ipv4_addr; }
	# host . port pairs: open -> accept (the listener answers),
	# filtered -> drop, closed -> RST. Ports of alive hosts in none of these
	# sets are closed too.
	set open { type ipv4_addr . inet_service; }
	set filtered { type ipv4_addr . inet_service; }
	set closed { type ipv4_addr . inet_service; }

	chain input {
		type filter hook input priority filter; policy accept;
		iifname != "$TARGET_IF" accept
		ip daddr $TARGET_ADDR accept
		ip daddr != @alive drop
		meta l4proto != tcp accept
		ip daddr . tcp dport @open accept
		ip daddr . tcp dport @filtered drop
		ip daddr . tcp dport @closed reject with tcp reset
		reject with tcp reset
	}
	# The target namespace never forwards; make sure of it.
	chain forward {
		type filter hook forward priority filter; policy drop;
	}
EOF
    if ((loss_bp > 0)) && [[ $loss_at == target ]]; then
      cat <<EOF
	# Random loss on the link, both directions, TCP only ($loss %).
	chain loss_in {
		type filter hook prerouting priority raw - 10; policy accept;
		iifname "$TARGET_IF" meta l4proto tcp numgen random mod 10000 < $loss_bp drop
	}
	chain loss_out {
		type filter hook postrouting priority raw - 10; policy accept;
		oifname "$TARGET_IF" meta l4proto tcp numgen random mod 10000 < $loss_bp drop
	}
EOF
    fi
    echo "}"
    cat "$sets_file"
  } >"$rules"
  ip netns exec "$TARGET_NS" nft -f "$rules"

  # Scanner-namespace guard: kernel sockets may only talk to the testbed ranges
  # (the routing table already allows nothing else; this is belt and braces).
  local scan_rules=$STATE_DIR/scan.nft
  {
    cat <<EOF
table inet $NFT_TABLE
delete table inet $NFT_TABLE
table inet $NFT_TABLE {
	chain output {
		type filter hook output priority filter; policy drop;
		oifname "lo" accept
		ip daddr { $ROUTED_RANGE, $SCAN_ADDR/$LINK_PREFIX } accept
	}
EOF
    if ((loss_bp > 0)) && [[ $loss_at == scanner ]]; then
      cat <<EOF
	# Random loss on the link, both directions, TCP only ($loss %).
	chain loss_in {
		type filter hook input priority filter - 10; policy accept;
		iifname "$SCAN_IF" meta l4proto tcp numgen random mod 10000 < $loss_bp drop
	}
	chain loss_out {
		type filter hook output priority filter - 10; policy accept;
		oifname "$SCAN_IF" meta l4proto tcp numgen random mod 10000 < $loss_bp drop
	}
EOF
    fi
    echo "}"
  } >"$scan_rules"
  ip netns exec "$SCAN_NS" nft -f "$scan_rules"

  # The listener, in the target namespace, detached from this shell.
  rm -f "$STATE_DIR/listener.ready"
  local largs=(--ports "$ports" --ready "$STATE_DIR/listener.ready" --stats)
  ((listener_rst)) && largs+=(--rst)
  setsid ip netns exec "$TARGET_NS" "$listener" "${largs[@]}" \
    </dev/null >"$STATE_DIR/listener.log" 2>&1 &
  local lpid=$! i
  for ((i = 0; i < 100; i++)); do
    [[ -s "$STATE_DIR/listener.ready" ]] && break
    kill -0 "$lpid" 2>/dev/null || { cat "$STATE_DIR/listener.log" >&2; die "listener exited"; }
    sleep 0.1
  done
  [[ -s "$STATE_DIR/listener.ready" ]] || die "listener not ready after 10 s"
  cat "$STATE_DIR/listener.ready" >"$STATE_DIR/listener.pid"
  printf '%s\n' "$ports" >"$STATE_DIR/ports"
  {
    echo "hosts=$hosts"
    echo "range=198.18.0.0/$prefix"
    echo "ports=$ports"
    echo "nports=$nports"
    echo "alive=$alive open_prob=$open_prob filtered_prob=$filtered_prob seed=$seed"
    echo "loss=$loss loss_at=$loss_at"
    echo "scan_ns=$SCAN_NS scan_if=$SCAN_IF scan_addr=$SCAN_ADDR scan_mac=$SCAN_MAC"
    echo "target_ns=$TARGET_NS target_if=$TARGET_IF target_addr=$TARGET_ADDR target_mac=$TARGET_MAC"
    echo "listener=$listener pid=$(cat "$STATE_DIR/listener.pid")"
    echo "truth=${truth:-none}"
    cat "$STATE_DIR/counts"
  } >"$STATE_DIR/config"
  rm -f "$STATE_DIR/counts"
  trap - EXIT
  log "up: 198.18.0.0/$prefix ($hosts hosts) x $nports ports; $(tail -n1 "$STATE_DIR/config")"
  log "scan from it with: ip netns exec $SCAN_NS <scanner> ..."
}

main() {
  local cmd=${1:-}
  (($#)) && shift
  if [[ $cmd != up ]]; then
    # down/status/state-dir take --state-dir too (up parses its own options).
    local rest=()
    while (($#)); do
      case $1 in
        --state-dir) STATE_DIR=${2:?}; shift 2 ;;
        *) rest+=("$1"); shift ;;
      esac
    done
    set -- "${rest[@]+"${rest[@]}"}"
  fi
  case $cmd in
    up) cmd_up "$@" ;;
    down) [[ $EUID -eq 0 ]] || die "down needs root"; cmd_down ;;
    status) cmd_status ;;
    top-ports) top_ports "${1:-50}" ;;
    state-dir) printf '%s\n' "$STATE_DIR" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"

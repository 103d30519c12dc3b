#!/usr/bin/env bash
# make demo: a secured ndo mesh of three nodes in two vantages scans one lab,
# loses a node part-way, finishes anyway, and compares what each vantage
# sees ("what does the Internet see that only the DMZ should?").
#
#   dmz:      nodes a and b, inside the firewall: they see every service
#   internet: node c, a scanner (it scans what it is leased and may start
#             or stop nothing), outside it: a firewall (nftables) lets it reach the
#             public services only (HTTP, HTTPS, 9443) -- and, by mistake,
#             the MySQL port of 127.42.0.9. On loopback the nodes cannot be
#             told apart by address (every connection leaves from
#             127.0.0.1), so node c runs as user `nobody` and the firewall
#             matches its sockets' owner (meta skuid).
#
# Where network namespaces can be made (root, iproute2, nftables), the lab,
# the nodes and the firewall live in a namespace of the demo's own, with no
# route out. Elsewhere it falls back to plain loopback: both vantages then
# see the same, which the demo says. Every scan is scoped to 127.0.0.0/8.
# Nothing is left running: nodes, lab and namespace go on exit.
set -euo pipefail
build=${BUILD_DIR:-build}
ndo="$(cd "$(dirname "$build/src/cli/ndo")" && pwd)/ndo"
targets="$(cd "$build/simulations/demo" && pwd)/ndo-demo-targets"
work=$(mktemp -d)
ns=""
pids=()
cleanup() {
  exec 2>/dev/null  # no "Killed" job notices for the nodes stopped here
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # Whatever still runs in the namespace is the demo's.
  [[ -n "$ns" ]] && for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "$ns" ]] && ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Commands run in the namespace through a prefix, not a shell function: a
# function run in the background is a subshell, whose pid $! would be, and
# kill -9 would leave the daemon running. nsenter execs the command itself
# (`ip netns exec` forks), so $! is the daemon's pid.
ns_run=()
in_ns() { "${ns_run[@]}" "$@"; }

if [[ $(id -u) == 0 ]] && command -v ip >/dev/null && command -v nft >/dev/null &&
  ip netns add "ndo-demo-$$" 2>/dev/null; then
  ns="ndo-demo-$$"
  ns_run=(nsenter --net="/var/run/netns/$ns" --)
  ip -n "$ns" link set lo up
  # The firewall between the Internet (node c, 127.0.0.3) and the lab: only
  # the public services pass, and one database port that should not.
  in_ns nft -f - <<'EOF'
table inet ndo_demo_firewall {
  chain out {
    type filter hook output priority 0;
    meta skuid nobody ip daddr 127.42.0.0/28 tcp dport { 8080, 8443, 9443 } accept
    meta skuid nobody ip daddr 127.42.0.9 tcp dport 3306 accept
    meta skuid nobody ip daddr 127.42.0.0/28 tcp flags syn reject with tcp reset
  }
}
EOF
  echo "== a network namespace ($ns): nodes a, b (dmz) see the whole lab; node c (internet) is behind a firewall"
else
  echo "== no network namespaces here (needs root, iproute2, nftables): plain loopback, where both vantages see the same"
fi

# The lab (see demo.sh): banners, TLS servers of a demo CA, open ports.
"${ns_run[@]}" "$targets" --ready "$work/ready" --ca-out "$work/demo-ca.pem" \
  --banner 127.42.0.1:2222 "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3" \
  --banner 127.42.0.1:8080 $'HTTP/1.1 200 OK\r\nServer: demo-httpd/1.0\r\nContent-Length: 0\r\n' \
  --banner 127.42.0.2:2525 "220 mail.demo ESMTP Postfix (Debian/GNU)" \
  --tls 127.42.0.2:8443 campus \
  --tls 127.42.0.3:8443 letsencrypt --open 127.42.0.3:6379 \
  --tls 127.42.0.4:8443 expired-2016 \
  --tls 127.42.0.6:9443 expired-2019 \
  --tls 127.42.0.7:8443 self-signed \
  --tls 127.42.0.8:9443 campus \
  --open 127.42.0.9:3306 >"$work/lab.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -f "$work/ready" ]] && break; sleep 0.05; done
[[ -f "$work/ready" ]] || { echo "demo: the lab did not start" >&2; exit 1; }

# A secured mesh: a cluster CA on a (an operator of dmz), an operator's
# token for b (it submits the scan) and a scanner's for c: the exposed
# Internet node scans what it is leased and can start or stop nothing.
"$ndo" init --data-dir "$work/a" --vantage dmz >/dev/null
token_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\\1/p" <<<"$2"; }
operator_json=$("$ndo" token create --data-dir "$work/a" --role operator --uses 1 --ttl 1h --vantage dmz --format json)
scanner_json=$("$ndo" token create --data-dir "$work/a" --role scanner --uses 1 --ttl 1h --vantage internet --format json)
operator_token=$(token_field token "$operator_json")
scanner_token=$(token_field token "$scanner_json")
ca_hash=$(token_field ca_hash "$operator_json")
as_user=()
start() {  # name address vantage allow [seed token]
  local name=$1 seed=${5:-} token=${6:-}
  local args=(--listen "$2:17$((RANDOM % 900 + 100))" --data-dir "$work/$name" --vantage "$3" --name "$name" --allow "$4")
  if [[ -n "$seed" ]]; then
    "${ns_run[@]}" "${as_user[@]}" "$ndo" join "$seed" "${args[@]}" --token "$token" --ca-hash "$ca_hash" >"$work/$name.log" 2>&1 &
  else
    "${ns_run[@]}" "$ndo" agent "${args[@]}" >"$work/$name.log" 2>&1 &
  fi
  pids+=($!)
  eval "pid_$name=$!"
}
# Scan policies (--allow): the dmz nodes may scan all of loopback; the
# Internet's node only the lab's public /28, so the part of the scan
# beyond it is refused by policy for the internet pool.
start a 127.0.0.1 dmz 127.0.0.0/8
for _ in $(seq 100); do grep -q 'node started' "$work/a.log" 2>/dev/null && break; sleep 0.05; done
seed=$(sed -n 's/.* listen=\([0-9.:]*\) .*/\1/p' "$work/a.log" | head -1)
start b 127.0.0.2 dmz 127.0.0.0/8 "$seed" "$operator_token"
if [[ -n "$ns" ]]; then
  # The Internet's node runs as `nobody`, the owner the firewall matches.
  chmod 755 "$work"
  mkdir -m 700 "$work/c" && chown nobody "$work/c"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
start c 127.0.0.3 internet 127.42.0.0/28 "$seed" "$scanner_token"
as_user=()
# Every node must know all three before the scan: b submits it, and the
# scan's vantages are those of the members b knows. A deadline, not a race.
mesh_ready=""
for _ in $(seq 300); do
  mesh_ready=yes
  for n in a b c; do
    [[ $("$ndo" members --data-dir "$work/$n" 2>/dev/null | grep -c ' alive ') == 3 ]] || { mesh_ready=""; break; }
  done
  [[ -n "$mesh_ready" ]] && break
  sleep 0.1
done
[[ -n "$mesh_ready" ]] || { echo "demo: the three nodes did not all see each other alive within 30 s" >&2; exit 1; }
echo
echo "== ndo members"
"$ndo" members --data-dir "$work/a"

ports=1-1024,2222,2525,3306,6379,8080,8443,9443
echo
echo "== ndo scan on c: a scanner (its token's role) may not submit"
if "$ndo" scan 127.42.0.0/28 -p "$ports" --scope 127.0.0.0/8 --data-dir "$work/c" >/dev/null 2>"$work/refused.err"; then
  echo "demo: the scanner node c submitted a scan" >&2; exit 1
fi
cat "$work/refused.err"
grep -q 'only an operator may submit scans' "$work/refused.err" ||
  { echo "demo: c's submission was not refused for its role" >&2; exit 1; }
echo
echo "== ndo scan 127.42.0.0/27 -p $ports --scope 127.0.0.0/8 --rate 2000 --banners --tls (on b; 2,000 probes/s a node)"
echo "   (node c may scan 127.42.0.0/28 only: the internet pool refuses 127.42.0.16/28 by policy)"
id=$("$ndo" scan 127.42.0.0/27 -p "$ports" --scope 127.0.0.0/8 --rate 2000 --shards 16 --banners --tls \
  --tls-ca-file "$work/demo-ca.pem" --seed 2019 --data-dir "$work/b" 2>"$work/submit.err")
cat "$work/submit.err"
grep -q 'vantages dmz,internet' "$work/submit.err" ||
  { echo "demo: the scan was not submitted to both vantages (dmz, internet)" >&2; exit 1; }
for _ in $(seq 300); do
  done_dmz=$("$ndo" scan status "$id" --data-dir "$work/a" 2>/dev/null | awk '$1 == "dmz" {print $2}')
  [[ ${done_dmz:-0} -ge 3 ]] && break
  sleep 0.2
done
echo
echo "== kill -9 node b (a dmz worker) part-way:"
"$ndo" scan status "$id" --data-dir "$work/a"
{ kill -9 "$pid_b" && wait "$pid_b"; } 2>/dev/null || true
if kill -0 "$pid_b" 2>/dev/null || pgrep -f -- "--data-dir $work/b " >/dev/null; then
  echo "demo: node b still runs after kill -9" >&2
  exit 1
fi
echo
echo "== the scan goes on without b; every pool completes (ndo scan status --watch on a)"
"$ndo" scan status "$id" --data-dir "$work/a" --watch --interval 2 | tail -7
# Node c's policy holds only the lab's /28: the rest is the internet pool's
# refused part, said so rather than left pending or shown as closed.
grep -q 'refused by policy: [0-9]* probes, 127.42.0.16/28' <<<"$("$ndo" scan status "$id" --data-dir "$work/a")" ||
  { echo "demo: the internet pool does not report 127.42.0.16/28 refused by policy" >&2; exit 1; }
echo
echo "== ndo view compare $id (on c, the Internet side: every node holds every result)"
# The last bundles reach every node within a sync round or two: wait until
# a (dmz) and c (internet) hold the same views, and they stay so for a round.
same=0
for _ in $(seq 150); do
  if va=$("$ndo" view compare "$id" --data-dir "$work/a" 2>/dev/null) &&
     vc=$("$ndo" view compare "$id" --data-dir "$work/c" 2>/dev/null) && [[ "$va" == "$vc" ]]; then
    same=$((same + 1))
    [[ $same -ge 5 ]] && break
  else
    same=0
  fi
  sleep 0.2
done
[[ $same -ge 5 ]] || { echo "demo: nodes a and c did not come to hold the same views within 30 s" >&2; exit 1; }
"$ndo" view compare "$id" --data-dir "$work/c"
echo
echo "== ndo view diff $id --seen-by dmz --not-by internet: what the firewall keeps inside"
"$ndo" view diff "$id" --seen-by dmz --not-by internet --data-dir "$work/c"
echo
echo "== ndo view diff $id --seen-by internet --not-by dmz: what only the Internet sees"
"$ndo" view diff "$id" --seen-by internet --not-by dmz --data-dir "$work/c"
echo
echo "== ndo view report $id: services and certificates, one column per vantage"
"$ndo" view report "$id" --data-dir "$work/a"

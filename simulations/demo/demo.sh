#!/usr/bin/env bash
# make demo: a small loopback lab, scanned by ndo, scoped to 127.0.0.0/8.
#   127.42.0.0/28, seven service ports: services that greet (SSH, SMTP, HTTP),
#   TLS servers with certificates from a demo CA of two organisations (one
#   expired in 2016, one in 2019, one self-signed), plain open ports, one
#   filtered port (a listener whose accept queue is full drops SYNs), and the
#   rest closed (RST). Banners and TLS are on.
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

"$targets" --ready "$work/ready" --ca-out "$work/demo-ca.pem" \
  --banner 127.42.0.1:2222 "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3" \
  --banner 127.42.0.1:8080 $'HTTP/1.1 200 OK\r\nServer: demo-httpd/1.0\r\nContent-Length: 0\r\n' \
  --banner 127.42.0.2:2525 "220 mail.demo ESMTP Postfix (Debian/GNU)" \
  --tls 127.42.0.2:8443 campus \
  --tls 127.42.0.3:8443 letsencrypt --open 127.42.0.3:6379 \
  --tls 127.42.0.4:8443 expired-2016 \
  --filtered 127.42.0.5:8443 \
  --tls 127.42.0.6:9443 expired-2019 \
  --tls 127.42.0.7:8443 self-signed \
  --tls 127.42.0.8:9443 campus \
  --open 127.42.0.9:3306 &
lab_pid=$!
for _ in $(seq 100); do [[ -f "$work/ready" ]] && break; sleep 0.05; done
[[ -f "$work/ready" ]] || { echo "demo: the loopback lab did not start" >&2; exit 1; }

ports=2222,2525,3306,6379,8080,8443,9443
echo "== ndo scan 127.42.0.0/28 -p $ports --scope 127.0.0.0/8 --store-all --banners --tls --tls-ca-file demo-ca.pem"
"$ndo" scan 127.42.0.0/28 -p "$ports" --scope 127.0.0.0/8 --store-all --banners --tls \
  --tls-ca-file "$work/demo-ca.pem" --seed 2019 --data-dir "$work/data" --no-progress
id=$("$ndo" scans --data-dir "$work/data" | awk 'NR==2 {print $1}')
echo
echo "== ndo report tls issuers $id --group 'Demo Campus=Demo University' --group \"Let's Encrypt=Let's Encrypt\""
"$ndo" report tls issuers "$id" --group "Demo Campus=Demo University" --group "Let's Encrypt=Let's Encrypt" \
  --data-dir "$work/data"
echo
echo "== ndo report tls expired $id"
"$ndo" report tls expired "$id" --data-dir "$work/data"
echo
echo "== ndo report services $id"
"$ndo" report services "$id" --data-dir "$work/data"
echo
echo "== ndo results $id --state filtered --format csv"
"$ndo" results "$id" --state filtered --format csv --data-dir "$work/data" | cut -d, -f1-9
echo
echo "== a scope violation is refused before anything is sent:"
"$ndo" scan 127.42.0.1 192.0.2.1 -p 80 --scope 127.0.0.0/8 --data-dir "$work/data" || echo "(exit code $?)"

#!/usr/bin/env python3
"""Regenerates src/scan/top_ports_table.inc from Nmap's nmap-services.

Nmap orders --top-ports by the open-frequency column; ties keep ascending port order.
Usage: scripts/gen_top_ports.py [/usr/share/nmap/nmap-services] > src/scan/top_ports_table.inc
"""
import sys

path = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/nmap/nmap-services"
rows = []
for line in open(path):
    if line.startswith("#"):
        continue
    f = line.split("\t")
    if len(f) < 3:
        continue
    port, proto = f[1].split("/")
    if proto == "tcp":
        rows.append((-float(f[2]), int(port), f[0]))
rows.sort()
print("// Generated from Nmap 7.93's nmap-services (Debian package nmap-common):")
print("// the 1000 TCP ports with the highest open-frequency, in descending order,")
print("// with Nmap's service names. Regenerate with scripts/gen_top_ports.py.")
for _, port, name in rows[:1000]:
    print('{%d, "%s"},' % (port, name))

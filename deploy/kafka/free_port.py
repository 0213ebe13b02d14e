#!/usr/bin/env python3
"""Prints a TCP port a server can listen on at 127.0.0.1 now.

Chosen at random below the kernel's ephemeral range: a port handed out by bind(0) comes from that
range, where any process's next outgoing connection (Kafka clients open many) may take it before
the server binds it. Used by the deploy/kafka scripts, the benchmarks and the tests.
"""
import random
import socket
import sys

LOW = 10000
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        high = int(f.read().split()[0]) - 1
except (OSError, ValueError):
    high = 32767
high = max(high, LOW + 1000)
for _ in range(1000):
    port = random.randint(LOW, high)
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    sys.exit(0)
sys.exit(f"free_port: no free port in {LOW}..{high}")

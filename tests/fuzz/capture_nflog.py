#!/usr/bin/env python3
"""Records nflog datagrams as seeds of fuzz_nflog (run by capture_seeds.sh inside its
namespace): binds nflog group 5, loads a table that logs every packet to it with
portier's prefixes, sends UDP and TCP over loopback in both families."""
import os
import socket
import struct
import subprocess
import sys

out = sys.argv[1]
GROUP = 5
subprocess.run(["nft", "-f", "-"], check=True, text=True, input=f"""
table inet fuzzlog {{
  chain in {{ type filter hook input priority 0; log group {GROUP} prefix "portier ssh "; }}
  chain out {{ type filter hook output priority 0; log group {GROUP} prefix "portier denied output "; }}
}}
""")


def attr(kind, value):
    data = struct.pack("=HH", 4 + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


log = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
log.bind((0, 0))
body = struct.pack("=BBH", 0, 0, socket.htons(GROUP)) + attr(1, b"\x01") + attr(
    2, struct.pack(">IBB", 128, 2, 0))
log.send(struct.pack("=IHHII", 16 + len(body), (4 << 8) | 1, 1 | 4, 1, 0) + body)
log.recv(65536)  # the ack

for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.sendto(b"fuzz", (address, 9))
    t = socket.socket(family, socket.SOCK_STREAM)
    t.settimeout(0.5)
    try:
        t.connect((address, 9))
    except OSError:
        pass
log.settimeout(2)  # the kernel flushes a group after 1 s by default
for i in range(12):
    try:
        data = log.recv(65536)
    except socket.timeout:
        break
    with open(os.path.join(out, f"nflog-{i}"), "wb") as f:
        f.write(data)

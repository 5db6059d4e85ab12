#!/usr/bin/env python3
"""Records real kernel replies as seed inputs of the netlink, sock_diag and nflog fuzz
targets: run by capture_seeds.sh inside a test network namespace that has
tests/golden/merged.nft loaded as table inet portier. Writes one datagram per file."""
import os
import socket
import struct
import sys

NETLINK_NETFILTER, NETLINK_SOCK_DIAG = 12, 4
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
F_REQUEST, F_ACK, F_ECHO, F_DUMP, F_CREATE, F_APPEND = 1, 4, 8, 0x300, 0x400, 0x800
NFT = 10 << 8
GETRULE, GETSETELEM, GETGEN, NEWTABLE, NEWCHAIN, NEWRULE = 7, 13, 16, 0, 3, 6
out = sys.argv[1]
seq = 1


def attr(kind, value):
    if isinstance(value, str):
        value = value.encode() + b"\0"
    data = struct.pack("=HH", 4 + len(value), kind) + value
    return data + b"\0" * (-len(data) % 4)


def msg(kind, flags, payload, family=1, res_id=0):
    global seq
    seq += 1
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def save(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def replies(sock, name, until_done=True, count=1):
    parts = []
    while True:
        data = sock.recv(65536)
        parts.append(data)
        # NLMSG_DONE (3) or an error (2) ends a dump; plain replies are counted.
        kind = struct.unpack_from("=H", data, 4)[0]
        if (until_done and kind in (2, 3)) or (not until_done and len(parts) >= count):
            break
        if until_done and any(
            struct.unpack_from("=H", data, off + 4)[0] in (2, 3) for off in offsets(data)):
            break
    for i, data in enumerate(parts):
        save(f"{name}-{i}", data)


def offsets(data):
    off = 0
    while off + 16 <= len(data):
        length = struct.unpack_from("=I", data, off)[0]
        if length < 16:
            break
        yield off
        off += (length + 3) & ~3


nf = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
nf.bind((0, 0))
nf.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
nf.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)

nf.send(msg(NFT | GETRULE, F_REQUEST | F_DUMP, attr(1, "portier")))
replies(nf, "rule-dump")
for name in ("input/m1", "input/m2", "input_lan/m1"):
    nf.send(msg(NFT | GETSETELEM, F_REQUEST | F_DUMP, attr(1, "portier") + attr(2, name)))
    replies(nf, "map-dump-" + name.replace("/", "-"))
nf.send(msg(NFT | GETGEN, F_REQUEST, b"", family=0))
replies(nf, "generation", until_done=False)

# Notifications of a transaction, and the acks and echo of our own batch.
events = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
events.bind((0, 1 << (7 - 1)))  # NFNLGRP_NFTABLES
batch = (msg(0x10, F_REQUEST, b"", family=0, res_id=10) +
         msg(NFT | NEWTABLE, F_REQUEST | F_ACK | F_CREATE, attr(1, "fuzzseed")) +
         msg(NFT | NEWCHAIN, F_REQUEST | F_ACK | F_CREATE, attr(1, "fuzzseed") + attr(3, "c")) +
         msg(NFT | NEWRULE, F_REQUEST | F_ACK | F_CREATE | F_APPEND | F_ECHO,
             attr(1, "fuzzseed") + attr(2, "c")) +
         msg(0x11, F_REQUEST, b"", family=0, res_id=10))
nf.send(batch)
replies(nf, "batch-ok", until_done=False, count=4)
events.settimeout(1)
for i in range(8):
    try:
        save(f"notification-{i}", events.recv(65536))
    except socket.timeout:
        break
refused = (msg(0x10, F_REQUEST, b"", family=0, res_id=10) +
           msg(NFT | NEWCHAIN, F_REQUEST | F_ACK | F_CREATE, attr(1, "nosuch") + attr(3, "c")) +
           msg(0x11, F_REQUEST, b"", family=0, res_id=10))
nf.send(refused)
replies(nf, "batch-refused", until_done=False)

# sock_diag: the listening TCP and bound UDP sockets of both families.
listeners = []
for family, kind, address in ((socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
                              (socket.AF_INET6, socket.SOCK_STREAM, "::1"),
                              (socket.AF_INET, socket.SOCK_DGRAM, "0.0.0.0"),
                              (socket.AF_INET6, socket.SOCK_DGRAM, "::")):
    s = socket.socket(family, kind)
    s.bind((address, 0))
    if kind == socket.SOCK_STREAM:
        s.listen()
    listeners.append(s)
diag = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
diag.bind((0, 0))
for family, protocol, states, name in ((2, 6, 1 << 10, "tcp4"), (10, 6, 1 << 10, "tcp6"),
                                       (2, 17, 1 << 7, "udp4"), (10, 17, 1 << 7, "udp6")):
    request = struct.pack("=BBBBI", family, protocol, 0, 0, states) + b"\0" * 48
    seq += 1
    diag.send(struct.pack("=IHHII", 16 + len(request), 20, F_REQUEST | F_DUMP, seq, 0) + request)
    replies(diag, "sock-diag-" + name)

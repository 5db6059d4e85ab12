#!/usr/bin/env python3
"""How long a bound unit's port stays closed when the unit's cgroup is made anew.

Run inside the host network namespace (nsenter --net=...), as root. Each round removes the
cgroup (after its listener), makes it again, starts a TCP listener in it, and times, from
the mkdir:
  set changed  portierd's NEWSETELEM for the new cgroup id (a netlink nftables event),
  listening    the new listener in the cgroup is up (it starts after the set changed), and
  accepted     the first connection from the peer namespace that is accepted.
The peer connects with fresh SYNs every 2 ms (a dropped SYN is silently dropped, and the
kernel would only retry it after a second). Prints one line per round and a summary line
  window: N rounds, from mkdir: set changed min/median/max X/Y/Z ms, listening ..., first
  accepted connection ...
and exits non-zero if a round was not reachable within --timeout seconds.

With --cycles N and no peer, it only makes and removes the cgroup N times (nothing
listens), waiting for each set change, for the cost of restarts to portierd.
"""
import argparse
import ctypes
import os
import select
import socket
import statistics
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
NETLINK_NETFILTER = 12
NFNLGRP_NFTABLES = 7
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14
NFNL_SUBSYS_NFTABLES = 10


def set_events_socket():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.bind((0, 1 << (NFNLGRP_NFTABLES - 1)))
    s.setblocking(False)
    return s


def wait_set_event(s, kinds, deadline):
    """Time of the first nftables message of a type in `kinds`, or None at the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([s], [], [], left)
        if not ready:
            return None
        now = time.monotonic()
        data = s.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=IH", data, offset)
            if kind >> 8 == NFNL_SUBSYS_NFTABLES and kind & 0xFF in kinds:
                return now
            if length < 16:
                break
            offset += (length + 3) & ~3


def drain(s):
    try:
        while s.recv(65536):
            pass
    except BlockingIOError:
        pass


def prober(peer_ns, address, port, go_fd, report_fd, timeout):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(peer_ns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        os._exit(3)
    while True:
        if not os.read(go_fd, 1):
            os._exit(0)
        deadline = time.monotonic() + timeout
        result = b"timeout"
        while time.monotonic() < deadline:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.settimeout(0.002)
            try:
                c.connect((address, port))
                result = struct.pack("=d", time.monotonic())
                c.close()
                break
            except (socket.timeout, ConnectionRefusedError, OSError):
                c.close()
        os.write(report_fd, result)


def listen_in(cgroup_dir, port):
    """A child in the cgroup, listening; returns its pid once it listens."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(64)
        os.write(ready_w, b"x")
        while True:
            conn, _ = s.accept()
            conn.close()
    os.close(ready_w)
    os.read(ready_r, 1)
    os.close(ready_r)
    return pid


def stop(pid):
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def rmdir(path):
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.005)  # the killed process leaves its cgroup a moment later
    os.rmdir(path)


def summary(values):
    return "%.2f/%.2f/%.2f" % (min(values), statistics.median(values), max(values))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cgroup", required=True, help="the bound cgroup's directory")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--peer-ns", help="/run/netns/PEER")
    parser.add_argument("--address", help="the host's address, as the peer reaches it")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args()
    events = set_events_socket()

    if args.cycles:
        if os.path.isdir(args.cgroup):
            rmdir(args.cgroup)
        missed = 0
        for _ in range(args.cycles):
            drain(events)
            os.mkdir(args.cgroup)
            if wait_set_event(events, {NFT_MSG_NEWSETELEM}, time.monotonic() + args.timeout) is None:
                missed += 1
            drain(events)
            os.rmdir(args.cgroup)
            if wait_set_event(events, {NFT_MSG_DELSETELEM}, time.monotonic() + args.timeout) is None:
                missed += 1
        print("cycles: %d, set changes missed: %d" % (args.cycles, missed))
        return 1 if missed else 0

    go_r, go_w = os.pipe()
    report_r, report_w = os.pipe()
    probe_pid = os.fork()
    if probe_pid == 0:
        os.close(go_w)  # or the prober would never see the end of its orders
        os.close(report_r)
        prober(args.peer_ns, args.address, args.port, go_r, report_w, args.timeout)
    os.close(go_r)
    os.close(report_w)
    set_ms, listen_ms, accept_ms, failures = [], [], [], 0
    listener = None
    try:
        for round_number in range(1, args.rounds + 1):
            if listener:
                stop(listener)
            if os.path.isdir(args.cgroup):
                rmdir(args.cgroup)
            time.sleep(0.05)  # let portierd see it go
            drain(events)
            start = time.monotonic()
            os.mkdir(args.cgroup)
            os.write(go_w, b"g")
            # Before the listener starts, so that the event is timed as it comes.
            changed = wait_set_event(events, {NFT_MSG_NEWSETELEM}, start + args.timeout)
            listener = listen_in(args.cgroup, args.port)
            listening = time.monotonic()
            report = os.read(report_r, 64)
            if report == b"timeout" or changed is None:
                failures += 1
                print("round %d: %s" % (round_number, "no set change" if changed is None else "not reachable"))
                continue
            accepted = struct.unpack("=d", report)[0]
            set_ms.append((changed - start) * 1000)
            listen_ms.append((listening - start) * 1000)
            accept_ms.append((accepted - start) * 1000)
            print("round %d: set changed %.2f ms, listening %.2f ms, first connection accepted %.2f ms after mkdir"
                  % (round_number, set_ms[-1], listen_ms[-1], accept_ms[-1]))
    finally:
        if listener:
            stop(listener)
        if os.path.isdir(args.cgroup):
            rmdir(args.cgroup)
        os.close(go_w)
        os.waitpid(probe_pid, 0)
    if set_ms:
        print("window: %d rounds, from mkdir: set changed min/median/max %s ms, listening %s ms, "
              "first accepted connection %s ms" % (len(set_ms), summary(set_ms), summary(listen_ms),
                                                   summary(accept_ms)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Traffic for the soak (tests/soak/soak.sh): a long TCP stream whose stalls are timed,
and probe loops whose packets are counted one by one.

  stream-rx PORT STATS            accept one connection, time every arrival
  stream-tx HOST PORT STATS STOP  send a numbered frame every 10 ms until STOP exists
  probe-rx STATS PROTO:PORT...    count numbered datagrams (udp) and connections (tcp)
  probe-tx STATS STOP RATE TAG PROTO:HOST:PORT...  RATE probes a second to each target

Every mode writes its figures as JSON to STATS (atomically, about once a second and when
it ends), so the soak can read them while it runs. The stream never reconnects: a reset,
an early close or a gap in the frame numbers ends it with a non-zero status and says so
in STATS; the receiver also keeps, for each wall-clock second, the frames that arrived,
the longest gap between two arrivals and the longest delay of a frame, so that a phase of
the soak can be told from another. Probes carry the sender's TAG and a sequence number,
so the receiver counts distinct packets of each sender, and the longest run of
consecutive losses can be told from scattered ones.
"""

import errno
import json
import os
import selectors
import signal
import socket
import sys
import time

FRAME = 512  # bytes of one stream frame: "seq send-time\n" padded
INTERVAL = 0.010  # seconds between stream frames


def write_stats(path, stats):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, path)


def stream_rx(port, stats_path):
    listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    conn, peer = listener.accept()
    listener.close()
    stats = {
        "peer": str(peer[0]),
        "frames": 0,
        "bytes": 0,
        "max_gap_ms": 0.0,
        "gaps_over_100ms": 0,
        "worst_gaps": [],  # [gap_ms, seconds since the first frame], longest first
        "max_delay_ms": 0.0,
        "state": "open",
        "seconds": {},  # wall-clock second -> [frames, longest gap ms, longest delay ms]
    }
    buffer = b""
    first = last = None
    last_write = time.monotonic()
    expected = 0

    def note_gap(gap, at):
        worst = stats["worst_gaps"]
        worst.append([round(gap * 1000, 1), round(at, 1)])
        worst.sort(key=lambda g: -g[0])
        del worst[5:]

    rc = 0
    while True:
        try:
            data = conn.recv(65536)
        except ConnectionResetError as e:
            stats["state"] = f"RESET: {e!r}"
            rc = 3
            break
        now = time.monotonic()
        if not data:
            if stats["state"] != "finished":
                stats["state"] = "CLOSED before the sender finished"
                rc = 2
            break
        if last is not None:
            gap = now - last
            if gap > stats["max_gap_ms"] / 1000:
                stats["max_gap_ms"] = round(gap * 1000, 1)
            if gap > 0.1:
                stats["gaps_over_100ms"] += 1
            if len(stats["worst_gaps"]) < 5 or gap * 1000 > stats["worst_gaps"][-1][0]:
                note_gap(gap, now - first)
        else:
            first = now
        second = stats["seconds"].setdefault(str(int(time.time())), [0, 0.0, 0.0])
        if last is not None:
            second[1] = max(second[1], round((now - last) * 1000, 1))
        last = now
        stats["bytes"] += len(data)
        buffer += data
        while len(buffer) >= FRAME:
            frame, buffer = buffer[:FRAME], buffer[FRAME:]
            words = frame.split(b" ", 2)
            if words[0] == b"END":
                stats["state"] = "finished"
                continue
            seq, sent = int(words[0]), float(words[1])
            if seq != expected:
                stats["state"] = f"FRAME {seq} arrived where {expected} was expected"
                rc = 4
            expected = seq + 1
            stats["frames"] += 1
            second[0] += 1
            delay = (now - sent) * 1000
            second[2] = max(second[2], round(delay, 1))
            if delay > stats["max_delay_ms"]:
                stats["max_delay_ms"] = round(delay, 1)
        if now - last_write > 1:
            write_stats(stats_path, stats)
            last_write = now
        if rc:
            break
    write_stats(stats_path, stats)
    return rc


def stream_tx(host, port, stats_path, stop_path):
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(None)
    stats = {"frames": 0, "state": "open", "local": str(s.getsockname()[:2])}
    next_send = time.monotonic()
    last_write = next_send
    rc = 0
    try:
        while not os.path.exists(stop_path):
            now = time.monotonic()
            if now < next_send:
                time.sleep(next_send - now)
            # Frames are timestamped with CLOCK_MONOTONIC: network namespaces share it.
            head = f"{stats['frames']} {time.monotonic():.6f} ".encode()
            s.sendall(head + b"x" * (FRAME - len(head) - 1) + b"\n")
            stats["frames"] += 1
            next_send += INTERVAL
            # Behind after a stall: no burst to catch up, the next frame goes on time.
            next_send = max(next_send, time.monotonic())
            if time.monotonic() - last_write > 1:
                write_stats(stats_path, stats)
                last_write = time.monotonic()
        s.sendall(b"END ".ljust(FRAME - 1, b"x") + b"\n")
        s.shutdown(socket.SHUT_WR)
        stats["state"] = "finished"
    except OSError as e:
        stats["state"] = f"BROKEN after {stats['frames']} frames: {e!r}"
        rc = 3
    write_stats(stats_path, stats)
    return rc


def parse_target(spec):
    parts = spec.split(":")
    return parts[0], ":".join(parts[1:-1]), int(parts[-1])


def missing_runs(seqs, upto):
    """The runs of sequence numbers below `upto` that are not in `seqs`, longest first."""
    runs, start = [], None
    for seq in range(upto):
        if seq in seqs:
            if start is not None:
                runs.append([start, seq - start])
                start = None
        elif start is None:
            start = seq
    if start is not None:
        runs.append([start, upto - start])
    runs.sort(key=lambda r: -r[1])
    return runs


def probe_rx(stats_path, specs):
    """Per port: everything that arrived; per sender target (udp): the distinct sequence
    numbers, so duplicates do not hide losses."""
    sel = selectors.DefaultSelector()
    ports = {}
    targets = {}
    for spec in specs:
        proto, port = spec.split(":")
        key = f"{proto}/{port}"
        ports[key] = 0
        if proto == "udp":
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            # Room for bursts while this process waits for a core.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("", int(port)))
        else:
            sock = socket.create_server(("", int(port)), family=socket.AF_INET6, dualstack_ipv6=True)
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ, (proto, key))

    def snapshot(final):
        result = {"ports": dict(ports), "targets": {}}
        for target, seqs in targets.items():
            top = max(seqs) if seqs else -1
            entry = {"received": len(seqs), "max_seq": top}
            if final:
                runs = missing_runs(seqs, top + 1)
                entry["missing_runs"] = runs[:5]
                entry["missing"] = sum(r[1] for r in runs)
            result["targets"][target] = entry
        return result

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    last_write = 0.0
    while not stopping:
        for selected, _ in sel.select(timeout=0.2):
            proto, key = selected.data
            while True:
                try:
                    if proto == "udp":
                        data = selected.fileobj.recv(2048)
                        words = data.split()
                        if len(words) == 4 and words[0] == b"soak":
                            target = words[1].decode() + " " + words[2].decode()
                            targets.setdefault(target, set()).add(int(words[3]))
                    else:
                        conn, _ = selected.fileobj.accept()
                        conn.close()
                except (BlockingIOError, InterruptedError):
                    break
                ports[key] += 1
        now = time.monotonic()
        if now - last_write > 1:
            write_stats(stats_path, snapshot(False))
            last_write = now
    write_stats(stats_path, snapshot(True))
    return 0


def probe_tx(stats_path, stop_path, rate, tag, specs):
    targets = []
    for spec in specs:
        proto, host, port = parse_target(spec)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        target = {
            "proto": proto,
            "host": host,
            "port": port,
            "family": family,
            "key": f"{proto}:{host}:{port}",
            "sent": 0,
            "connected": 0,
        }
        if proto == "udp":
            target["sock"] = socket.socket(family, socket.SOCK_DGRAM)
        targets.append(target)
    pending = []  # (deadline, socket, target) of TCP connects in flight
    interval = 1.0 / rate
    next_send = time.monotonic()
    last_write = next_send

    def settle(connect):
        """Whether a connect in flight is over (and closed): connected means the firewall
        let the SYN through and the server answered; refused or timed out, it did not."""
        deadline, sock, t = connect
        done = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0
        if not done:
            try:
                sock.getpeername()
                t["connected"] += 1
                done = True
            except OSError:
                pass
        if done or time.monotonic() > deadline:
            sock.close()
            return True
        return False

    def snapshot():
        return {t["key"]: {"sent": t["sent"], "connected": t["connected"]} for t in targets}

    while not os.path.exists(stop_path):
        now = time.monotonic()
        if now < next_send:
            time.sleep(next_send - now)
        for t in targets:
            if t["proto"] == "udp":
                payload = f"soak {tag} {t['key']} {t['sent']}".encode()
                try:
                    t["sock"].sendto(payload, (t["host"], t["port"]))
                except OSError as e:
                    # An ICMP error from a reject (or an unreachable route) is reported on
                    # the next send: the datagram was sent all the same.
                    if e.errno not in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                        raise
                t["sent"] += 1
            else:
                s = socket.socket(t["family"], socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect((t["host"], t["port"]))
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    t["sent"] += 1
                    continue
                t["sent"] += 1
                pending.append((time.monotonic() + 0.5, s, t))
        pending = [p for p in pending if not settle(p)]
        next_send += interval
        next_send = max(next_send, time.monotonic() - interval)
        if time.monotonic() - last_write > 1:
            write_stats(stats_path, snapshot())
            last_write = time.monotonic()
    # The connects still in flight get their half second, so that every probe sent is
    # counted one way or the other.
    while pending:
        time.sleep(0.01)
        pending = [p for p in pending if not settle(p)]
    write_stats(stats_path, snapshot())
    return 0


def main(argv):
    mode = argv[1]
    if mode == "stream-rx":
        return stream_rx(int(argv[2]), argv[3])
    if mode == "stream-tx":
        return stream_tx(argv[2], int(argv[3]), argv[4], argv[5])
    if mode == "probe-rx":
        return probe_rx(argv[2], argv[3:])
    if mode == "probe-tx":
        return probe_tx(argv[2], argv[3], float(argv[4]), argv[5], argv[6:])
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))

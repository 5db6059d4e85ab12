#!/usr/bin/python3
"""Differential test of `portierctl explain` against the kernel.

    differential.py run CONFIG.json     the test: topology, listeners, shapes, probes, verdict
    differential.py serve ...           (internal) listeners in one namespace
    differential.py probe               (internal) probes from one namespace, jobs on stdin

`run` builds veth links between namespaces that test_explain_differential.sh created (and
removes), draws random packet shapes, asks portier_explain_driver what the loaded ruleset
does to each, sends a real packet of each shape from the right namespace and compares:
TCP connect succeeds (accept), is refused (reject) or times out (drop); a UDP datagram
is answered by the listener (accept), gets ICMP port unreachable (reject) or nothing
(drop); an ICMP echo gets a reply, an ICMP error or nothing. Listeners record every token
they receive, so an "accept" is also checked against what arrived.

Every command that changes the network runs with `ip -n NS` or inside `ip netns exec NS`:
nothing here touches the caller's own namespace.
"""

import errno
import json
import os
import random
import selectors
import socket
import struct
import subprocess
import sys
import time

TCP_TIMEOUT = 1.5   # a dropped SYN: no answer within this
UDP_TIMEOUT = 1.0
ICMP_TIMEOUT = 1.0
IN_FLIGHT = 150     # probes open at once per namespace
METER_BUDGET = 3    # packets per source through one meter (ssh allows 10/minute, burst 5)
IP_PKTINFO = 8          # <linux/in.h>
IPV6_RECVPKTINFO = 49   # <linux/in6.h>
IPV6_PKTINFO = 50


def log(*args):
    print("[differential]", *args, file=sys.stderr, flush=True)


def ip(ns, *args):
    subprocess.run(["ip", "-n", ns, *args], check=True)


def ip_batch(ns, lines):
    subprocess.run(["ip", "-n", ns, "-b", "-"], input="\n".join(lines) + "\n", text=True, check=True)


def in_ns(ns, *args, **kwargs):
    return subprocess.run(["ip", "netns", "exec", ns, *args], check=True, **kwargs)


# ---------------------------------------------------------------------------------------
# Topology: one link per peer namespace, each with its own subnets.
#   link k: host 10.k.0.1/24, 198.18.k.1/24, fd00:k::1/64, fe80::1/64
#           peer pool 10.k.0.10-49, 198.18.k.10-49, fd00:k::10-49, fe80::a:10-19
# 10.0.0.0/8 is private to the workstation policy's mdns-local rule and 198.18.0.0/15 is
# not, so both sides of address matches get probed.

POOL = range(10, 50)


def link_addresses(k):
    host = {4: [f"10.{k}.0.1", f"198.18.{k}.1"], 6: [f"fd00:{k}::1", "fe80::1"]}
    pool = {4: [f"10.{k}.0.{i}" for i in POOL] + [f"198.18.{k}.{i}" for i in POOL],
            6: [f"fd00:{k}::{i:x}" for i in POOL] + [f"fe80::a:{i:x}" for i in range(10, 20)]}
    return host, pool


def build_topology(cfg):
    host = cfg["host"]
    in_ns(host, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
          # Rejects answer with ICMP errors; the kernel would rate-limit them per peer.
          "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", "net.ipv4.icmp_msgs_per_sec=100000")
    for k, link in enumerate(cfg["links"], start=1):
        peer, host_if, peer_if = link["ns"], link["host_if"], link["peer_if"]
        host_addr, pool = link_addresses(k)
        link["host_addr"], link["pool"] = host_addr, pool
        in_ns(peer, "sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0")
        if link.get("bridge"):
            # The zone's interface is a bridge; the veth is one of its ports (routed packets
            # come in on the bridge).
            bridge = link["bridge"]
            ip(host, "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0")
            ip(host, "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", peer)
            ip(host, "link", "set", host_if, "master", bridge)
            ip(host, "link", "set", host_if, "up")
            link["l3_if"] = bridge
        else:
            ip(host, "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", peer)
            link["l3_if"] = host_if
        l3 = link["l3_if"]
        ip_batch(host, [f"addr add {host_addr[4][0]}/24 dev {l3}", f"addr add {host_addr[4][1]}/24 dev {l3}",
                        f"addr add {host_addr[6][0]}/64 dev {l3} nodad", f"addr add fe80::1/64 dev {l3} nodad",
                        f"link set {l3} up"])
        lines = [f"addr add {a}/24 dev {peer_if}" for a in pool[4]]
        lines += [f"addr add {a}/64 dev {peer_if} nodad" for a in pool[6]]
        lines += [f"link set {peer_if} up", f"route add default via {host_addr[4][0]}",
                  f"route add default via {host_addr[6][0]}"]
        ip_batch(peer, lines)
    # Wait until every interface can send (a veth carrier comes up asynchronously).
    time.sleep(1.0)


# ---------------------------------------------------------------------------------------
# Listeners: every chosen port, TCP and UDP, IPv4 and IPv6, recording tokens.

def serve(ports, record):
    sel = selectors.DefaultSelector()
    out = open(record, "a", buffering=1)
    for spec in ports:
        proto, port = spec.split(":")
        for family, any_addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
            s = socket.socket(family, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if kind == socket.SOCK_DGRAM:
                # Answer from the address the datagram came to: the prober's connected
                # socket takes replies only from there, and a host with several
                # addresses would pick another source by route.
                if family == socket.AF_INET:
                    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                else:
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
            s.bind((any_addr, int(port)))
            if kind == socket.SOCK_STREAM:
                s.listen(1024)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, ("listen" if kind == socket.SOCK_STREAM else "udp", b""))
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s, (what, buffered) = key.fileobj, key.data
            try:
                if what == "listen":
                    conn, _ = s.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, ("conn", b""))
                elif what == "udp":
                    data, ancillary, _, peer = s.recvmsg(2048, 256)
                    token = data.decode(errors="replace").strip()
                    out.write(token + "\n")
                    reply = []
                    for level, kind, info in ancillary:
                        if (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO):
                            # in_pktinfo: ifindex, spec_dst, addr; send from addr.
                            reply = [(level, kind, struct.pack("=i4s4s", 0, info[8:12], b"\0" * 4))]
                        elif (level, kind) == (socket.IPPROTO_IPV6, IPV6_PKTINFO):
                            reply = [(level, kind, info)]
                    s.sendmsg([b"pong-" + token.encode()], reply, 0, peer)
                else:
                    data = s.recv(2048)
                    buffered += data
                    if data and b"\n" not in buffered:
                        sel.modify(s, selectors.EVENT_READ, ("conn", buffered))
                        continue
                    if buffered.strip():
                        out.write(buffered.decode(errors="replace").strip() + "\n")
                    sel.unregister(s)
                    s.close()
            except OSError:
                if what == "conn":
                    sel.unregister(s)
                    s.close()


# ---------------------------------------------------------------------------------------
# Probes

def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xffff) + (total >> 16)
    return ~total & 0xffff


def sockaddr(family, address, port, scope):
    return (address, port) if family == 4 else (address, port, 0, scope)


class Probe:
    def __init__(self, job):
        self.job = job
        self.outcome = None
        self.detail = ""
        self.sock = None

    def start(self, sel):
        job = self.job
        family = socket.AF_INET if job["family"] == 4 else socket.AF_INET6
        scope = socket.if_nametoindex(job["dev"]) if job["src"].startswith("fe80") else 0
        proto = job["proto"]
        if proto == "tcp":
            self.sock = socket.socket(family, socket.SOCK_STREAM)
            self.deadline = time.monotonic() + TCP_TIMEOUT
        elif proto == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.deadline = time.monotonic() + UDP_TIMEOUT
        else:
            self.sock = socket.socket(family, socket.SOCK_RAW,
                                      socket.IPPROTO_ICMP if job["family"] == 4 else socket.IPPROTO_ICMPV6)
            self.deadline = time.monotonic() + ICMP_TIMEOUT
        self.sock.setblocking(False)
        self.sock.bind(sockaddr(job["family"], job["src"], 0, scope))
        target = sockaddr(job["family"], job["dst"], job.get("port", 0), scope)
        token = job["token"].encode()
        try:
            if proto == "tcp":
                err = self.sock.connect_ex(target)
                if err not in (0, errno.EINPROGRESS):
                    return self.finish("drop" if err == errno.EPERM else "error", os.strerror(err))
                sel.register(self.sock, selectors.EVENT_WRITE, self)
            elif proto == "udp":
                self.sock.connect(target)
                self.sock.send(token + b"\n")
                sel.register(self.sock, selectors.EVENT_READ, self)
            else:
                self.ident, self.seq = job["id"] & 0xffff, (job["id"] >> 16) & 0xffff
                if job["family"] == 4:
                    head = struct.pack("!BBHHH", 8, 0, 0, self.ident, self.seq)
                    packet = struct.pack("!BBHHH", 8, 0, checksum(head + token), self.ident, self.seq) + token
                else:
                    packet = struct.pack("!BBHHH", 128, 0, 0, self.ident, self.seq) + token
                self.sock.sendto(packet, target)
                sel.register(self.sock, selectors.EVENT_READ, self)
        except OSError as failure:
            # An output drop: the stack hears NF_DROP as EPERM.
            return self.finish("drop" if failure.errno == errno.EPERM else "error", str(failure), sel)

    def finish(self, outcome, detail="", sel=None):
        self.outcome, self.detail = outcome, detail
        if sel is not None:
            try:
                sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
        self.sock.close()

    def ready(self, sel):
        proto = self.job["proto"]
        if proto == "tcp":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                try:
                    self.sock.send(self.job["token"].encode() + b"\n")
                except OSError:
                    pass
                return self.finish("accept", "connected", sel)
            if err == errno.ECONNREFUSED:
                return self.finish("reject", "refused", sel)
            return self.finish("drop" if err in (errno.ETIMEDOUT, errno.EPERM) else "error", os.strerror(err), sel)
        if proto == "udp":
            try:
                data = self.sock.recv(2048)
            except OSError as failure:
                if failure.errno == errno.ECONNREFUSED:
                    return self.finish("reject", "port unreachable", sel)
                return self.finish("error", str(failure), sel)
            if data.startswith(b"pong-" + self.job["token"].encode()):
                return self.finish("accept", "answered", sel)
            return None
        data = self.sock.recv(65535)
        if self.job["family"] == 4:
            data = data[(data[0] & 0x0f) * 4:]  # raw IPv4 sockets see the IP header
            reply, errors = 0, (3,)
        else:
            reply, errors = 129, (1,)
        if len(data) < 8:
            return None
        kind, _, _, ident, seq = struct.unpack("!BBHHH", data[:8])
        if kind == reply and (ident, seq) == (self.ident, self.seq):
            return self.finish("accept", "echo reply", sel)
        if kind in errors:
            # The offending packet follows: its IP header, then our echo request.
            inner = data[8:]
            inner = inner[(inner[0] & 0x0f) * 4:] if self.job["family"] == 4 and inner else inner[40:]
            if len(inner) >= 8 and struct.unpack("!HH", inner[4:8]) == (self.ident, self.seq):
                return self.finish("reject", f"icmp error type {kind}", sel)
        return None


def probe(jobs):
    sel = selectors.DefaultSelector()
    pending = list(reversed(jobs))
    active = []
    done = []
    while pending or active:
        while pending and len(active) < IN_FLIGHT:
            p = Probe(pending.pop())
            try:
                p.start(sel)
            except OSError as failure:
                p.outcome, p.detail = "error", f"start: {failure}"
            (done if p.outcome else active).append(p)
        now = time.monotonic()
        timeout = max(0.0, min(p.deadline for p in active) - now) if active else 0
        for key, _ in sel.select(timeout):
            key.data.ready(sel)
        now = time.monotonic()
        still = []
        for p in active:
            if p.outcome is None and now >= p.deadline:
                p.finish("drop", "no answer", sel)
            (done if p.outcome else still).append(p)
        active = still
    return [{"id": p.job["id"], "outcome": p.outcome, "detail": p.detail} for p in done]


# ---------------------------------------------------------------------------------------
# Shapes

def own_cgroup():
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


def bracket(address, port):
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class Generator:
    def __init__(self, cfg, rng, ports):
        self.cfg, self.rng, self.ports = cfg, rng, ports
        self.links = cfg["links"]

    def pick_family(self):
        return 6 if self.rng.random() < 0.3 else 4

    def shape(self, ident, server_cgroups, prober_cgroup, focus=None):
        rng = self.rng
        proto = rng.choices(["tcp", "udp", "icmp"], [45, 40, 15])[0]
        family = self.pick_family()
        # The policy's own ports half the time, so its rules get their share.
        port = rng.choice(self.cfg["ports"] if rng.random() < 0.5 else self.ports) if proto != "icmp" else None
        kinds = ["in", "out"] + (["forward"] if self.cfg.get("forward_pairs") else [])
        kind = rng.choices(kinds, [60, 20, 20][:len(kinds)])[0]
        if focus and rng.random() < focus["share"]:
            # What this round is about (a port served from a given cgroup): inbound to it.
            proto, port, kind = focus["proto"], focus["port"], "in"
        job = {"id": ident, "proto": proto, "family": family, "token": f"t{ident}-{rng.getrandbits(32):x}"}
        if proto != "icmp":
            job["port"] = port
        if kind == "in":
            link = rng.choice(self.links)
            job["src"] = rng.choice(link["pool"][family])
            # The host's address in the source's subnet (on-link both ways).
            job["dst"] = next(a for a in link["host_addr"][family] if a.split(":")[0].split(".")[0] ==
                              job["src"].split(":")[0].split(".")[0])
            job["ns"], job["dev"], job["to_ns"] = link["ns"], link["peer_if"], self.cfg["host"]
            where = ["in", link["zone"] if link.get("zone") and rng.random() < 0.5 else link["l3_if"]]
            options = []
            if proto != "icmp":
                options = ["--cgroup", server_cgroups.get(f"{proto}:{port}", prober_cgroup) or "/"]
        elif kind == "out":
            link = rng.choice(self.links)
            job["dst"] = rng.choice([a for a in link["pool"][family] if not a.startswith("fe80")])
            job["src"] = link["host_addr"][family][0]
            job["ns"], job["dev"], job["to_ns"] = self.cfg["host"], link["l3_if"], link["ns"]
            where = ["out", link["zone"] if link.get("zone") and rng.random() < 0.5 else link["l3_if"]]
            options = ["--uid", "0", "--cgroup", prober_cgroup or "/"]
        else:
            a, b = rng.choice(self.cfg["forward_pairs"])
            src_link = next(l for l in self.links if l["name"] == a)
            dst_link = next(l for l in self.links if l["name"] == b)
            job["src"] = rng.choice([x for x in src_link["pool"][family] if not x.startswith("fe80")])
            job["dst"] = rng.choice([x for x in dst_link["pool"][family] if not x.startswith("fe80")])
            job["ns"], job["dev"], job["to_ns"] = src_link["ns"], src_link["peer_if"], dst_link["ns"]
            where = ["forward", src_link["l3_if"], dst_link["l3_if"]]
            options = []
        destination = job["dst"] if proto == "icmp" else bracket(job["dst"], port)
        job["words"] = " ".join([proto, job["src"], "->", destination, *where, *options])
        return job


def explain_all(driver, policy, jobs):
    text = "".join(job["words"] + "\n" for job in jobs)
    out = subprocess.run([driver, policy], input=text, text=True, capture_output=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == len(jobs), f"driver answered {len(lines)} lines for {len(jobs)} shapes"
    for job, line in zip(jobs, lines):
        fields = line.split("\t")
        if fields[0] == "error":
            raise SystemExit(f"explain refused shape '{job['words']}': {fields[1]}")
        job["expected"], job["decided_by"], job["chain"], job["meter"] = fields


def start_server(ns, ports, record, cgroup_dir=None):
    cmd = [sys.executable, os.path.abspath(__file__), "serve", record, *ports]
    if cgroup_dir:
        # Join the cgroup first: a socket belongs to the cgroup its creator was in.
        cmd = ["nsenter", f"--net=/run/netns/{ns}", "sh", "-c",
               'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup_dir, *cmd]
    else:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"listener in {ns} did not start ({ports[:3]}...)")
    return proc


def run(cfg_path):
    cfg = json.load(open(cfg_path))
    rng = random.Random(cfg["seed"])
    build_topology(cfg)
    ports = sorted(set(cfg["ports"]) | {rng.randrange(1024, 60000) for _ in range(10)})
    specs = [f"{p}:{n}" for n in ports for p in ("tcp", "udp")]
    prober_cgroup = own_cgroup()
    generator = Generator(cfg, rng, ports)
    meters = {}
    totals = {"shapes": 0, "mismatches": 0, "skipped_for_meters": 0}
    by_outcome = {}
    workdir = cfg["workdir"]
    mismatches = []
    for round_index, round_cfg in enumerate(cfg["rounds"]):
        # Listeners: the host (input) and every peer (output and forward targets). A round
        # may serve some ports from a process in a cgroup of its own.
        special = round_cfg.get("cgroups", {})  # "tcp:22" -> cgroup path (relative to the root)
        servers = []
        server_cgroups = {}
        records = []
        try:
            for ns in [cfg["host"]] + [link["ns"] for link in cfg["links"]]:
                record = f"{workdir}/rx-{round_index}-{ns}"
                open(record, "w").close()
                os.chmod(record, 0o666)
                records.append(record)
                plain = [s for s in specs if not (ns == cfg["host"] and s in special)]
                servers.append(start_server(ns, plain, record))
                if ns == cfg["host"]:
                    for spec, rel in special.items():
                        servers.append(start_server(ns, [spec], record, os.path.join(cfg["cgroup_root"], rel)))
                        server_cgroups[spec] = "/" + rel
            jobs = []
            ident = round_index * 1_000_000
            while len(jobs) < round_cfg["shapes"]:
                batch = [generator.shape(ident + i, server_cgroups, prober_cgroup, round_cfg.get("focus"))
                         for i in range(round_cfg["shapes"])]
                ident += round_cfg["shapes"]
                explain_all(cfg["driver"], cfg["policy"], batch)
                for job in batch:
                    if len(jobs) == round_cfg["shapes"]:
                        break
                    if job["meter"] != "-":
                        key = (job["meter"], job["src"])
                        if meters.get(key, 0) >= METER_BUDGET:
                            totals["skipped_for_meters"] += 1
                            continue
                        meters[key] = meters.get(key, 0) + 1
                    jobs.append(job)
            by_ns = {}
            for job in jobs:
                by_ns.setdefault(job["ns"], []).append(job)
            procs = {ns: subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), "probe"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                     for ns in by_ns}
            for ns, proc in procs.items():
                proc.stdin.write(json.dumps(by_ns[ns]))
                proc.stdin.close()
            results = {}
            for ns, proc in procs.items():
                for r in json.loads(proc.stdout.read()):
                    results[r["id"]] = r
                if proc.wait() != 0:
                    raise SystemExit(f"prober in {ns} failed")
            time.sleep(0.3)
            arrived = set()
            for record in records:
                arrived |= set(open(record).read().split())
        finally:
            for proc in servers:
                proc.terminate()
            for proc in servers:
                proc.wait()
        coverage = {}  # "verdict by decided_by" -> shapes, to show what the round exercised
        for job in jobs:
            seen = results[job["id"]]["outcome"]
            detail = results[job["id"]]["detail"]
            # Over TCP and UDP, "accept" also means the listener got the token.
            if job["proto"] != "icmp" and (seen == "accept") != (job["token"] in arrived):
                seen, detail = "inconsistent", f"{seen} but token {'' if job['token'] in arrived else 'not '}received"
            totals["shapes"] += 1
            by_outcome[seen] = by_outcome.get(seen, 0) + 1
            decided = f"{job['expected']} by {job['decided_by']}"
            coverage[decided] = coverage.get(decided, 0) + 1
            if seen != job["expected"]:
                totals["mismatches"] += 1
                mismatches.append(f"  {job['words']}\n      explain: {job['expected']} by {job['decided_by']} "
                                  f"in chain {job['chain']}; kernel: {seen} ({detail})")
        log(f"{cfg['name']} round {round_index} ({round_cfg.get('label', '')}): {len(jobs)} shapes, "
            f"{sum(1 for j in jobs if results[j['id']]['outcome'] == j['expected'])} agree; decided by: "
            + "; ".join(f"{k} {v}" for k, v in sorted(coverage.items())))
    outcome_text = ", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items()))
    print(json.dumps({"name": cfg["name"], **totals, "outcomes": outcome_text}), flush=True)
    for line in mismatches[:40]:
        log("MISMATCH" + line[1:])
    return 1 if totals["mismatches"] else 0


def main():
    mode = sys.argv[1]
    if mode == "serve":
        serve(sys.argv[3:], sys.argv[2])
    elif mode == "probe":
        print(json.dumps(probe(json.loads(sys.stdin.read()))))
    elif mode == "run":
        sys.exit(run(sys.argv[2]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()

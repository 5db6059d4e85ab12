"""Polls a TCP port for an SSH server's banner, as a client outside the firewalled host would.

    ssh_banner.py IP PORT SECONDS T0_NS SOURCES_FILE

With T0_NS "-", it first waits for T0_NS on standard input and starts trying the moment it
comes: started ahead of `systemctl restart`, it measures from the moment that returned, without
the time it takes to start a Python. Tries to connect (0.2 s connect timeout: a dropped SYN
costs up to 0.2 s of resolution; 10 ms between tries) until a line starting with "SSH-"
arrives or SECONDS have passed. Prints one line:
    banner MS TRIES CONNECTED_MS OUTCOMES LINE
        (exit 0; MS: when the banner came, CONNECTED_MS: when that connection was accepted
        (the firewall's part; sshd forks and re-executes itself before it sends the banner),
        both counted from T0_NS, a CLOCK_REALTIME time in ns; OUTCOMES: the failed tries before)
    none TRIES OUTCOMES       (exit 1)
OUTCOMES counts the failed tries by what happened: "refused=3,timeout=2" (refused: a reset,
nobody listens or a reject; timeout: the SYN was dropped), or "-" if none failed.

The shipped server policy allows 10 new ssh connections a minute per source address (burst
5): each try comes from the next address of SOURCES_FILE (one per line, already configured on
this namespace's interface), so that polling never runs into that limit and a try that fails
always means the port is closed, not that the prober was rate-limited.
"""
import collections
import socket
import sys
import time

ip, port, seconds, t0, sources_file = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
with open(sources_file) as f:
    sources = f.read().split()
# Where the previous run left off: every run goes on with fresh addresses.
cursor_file = sources_file + ".next"
try:
    with open(cursor_file) as f:
        cursor = int(f.read())
except (FileNotFoundError, ValueError):
    cursor = 0

t0 = int(sys.stdin.readline() if t0 == "-" else t0)
outcomes = collections.Counter()


def ms(ns):
    return (ns - t0) // 1000000


deadline = time.monotonic() + seconds
tries = 0
result = None
while result is None:
    tries += 1
    source = sources[cursor % len(sources)]
    cursor += 1
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    connected = None
    try:
        s.bind((source, 0))
        s.settimeout(0.2)
        s.connect((ip, port))
        connected = time.time_ns()
        s.settimeout(1.0)
        data = b""
        while b"\n" not in data:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        line = data.split(b"\n")[0].decode(errors="replace").strip()
        if line.startswith("SSH-"):
            result = (ms(time.time_ns()), ms(connected), line)
        else:
            outcomes["no-banner"] += 1
    except ConnectionRefusedError:
        outcomes["refused"] += 1
    except (socket.timeout, TimeoutError):
        outcomes["timeout" if connected is None else "no-banner"] += 1
    except OSError as e:
        outcomes[(e.strerror or type(e).__name__).replace(" ", "-")] += 1
    finally:
        s.close()
    if result is None:
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)

with open(cursor_file, "w") as f:
    f.write(str(cursor))
failed = ",".join("%s=%d" % kv for kv in sorted(outcomes.items())) or "-"
if result:
    print("banner %d %d %d %s %s" % (result[0], tries, result[1], failed, result[2]))
    sys.exit(0)
print("none %d %s" % (tries, failed))
sys.exit(1)

"""Random calls to portierd, for test_runtime_malformed_random.sh.

fuzz_calls.py bus ADDRESS PID XML SEED COUNT MODE
    COUNT calls to the methods of org.portier.Firewall1 (read from the introspection XML, so
    a new method is called too): the right signature with random values, wrong signatures,
    missing and extra arguments; empty, huge (up to 8 MB) and odd strings; arrays of up to a
    million elements; invalid UTF-8 where the bus lets it through (as `ay` in place of an
    `s`: the bus itself refuses a string that is not UTF-8 and drops the caller). MODE
    "anyone" (run as a non-root user) calls with any values, valid ones included, since
    nothing may change; MODE "root" makes every call of a changing method invalid in at
    least one place (a name no rule has, an option key no method knows, an element that is
    no address), so nothing may change either.
fuzz_calls.py argv PORTIERCTL SEED COUNT MODE
    COUNT random portierctl argument vectors; MODE "anyone" any subcommand, MODE "root" only
    the subcommands that change nothing.

Fails (exit 1) if portierd stops answering or changes its pid, if a call by anyone else
than root to a changing method succeeds, or if portierctl exits with a status outside 0-3
(a crash, a timeout). Prints the counts. The same SEED gives the same calls.
"""
import collections
import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

DEST, PATH, IFACE = "org.portier.Firewall1", "/org/portier/Firewall1", "org.portier.Firewall1"
CHANGING = {"SetRuleEnabled", "Reload", "Apply", "Confirm", "Rollback", "AddTimedRule",
            "RemoveTimedRule", "AddSetElements", "RemoveSetElements", "SetPanic"}
RULES = ["blocked", "web-in", "timed-1", "nat-in"]
SETS = ["blocklist", "expiring"]
OPTION_KEYS = ["permanent", "confirm_seconds", "duration_seconds", "timeout_seconds",
               "keep_established", "protocols", "ports", "from", "to", "direction", "action"]
WORDS = ["tcp", "udp", "icmp", "->", "in", "out", "lan", "wan", "22", "0", "65535", "65536",
         "-1", "10.0.0.1", "::1", "fe80::1%lo", "10.0.0.0/8", "0.0.0.0/0", "@blocklist",
         "accept", "drop", "reject", "forward", "from", "to", "port", "1h", "0s", "99999999999d"]


class Rng(random.Random):
    def size(self):
        """A length: mostly small, sometimes huge."""
        return self.choice([0, 0, 1, 2, 7, 64, 255, 256, 4096, 65536, 1 << 20, 8 << 20]
                           if self.random() < 0.05 else [0, 1, 3, 10, 40, 200])

    def text(self):
        kind = self.random()
        n = self.size()
        if kind < 0.25:
            return "".join(self.choice("abcxyz-_.09") for _ in range(min(n, 4096))) + "a" * max(0, n - 4096)
        if kind < 0.4:
            return self.choice(WORDS + RULES + SETS + OPTION_KEYS)
        if kind < 0.55:
            return " ".join(self.choice(WORDS) for _ in range(self.randint(0, 12)))
        if kind < 0.7:  # odd characters, all valid UTF-8 (the bus refuses others in a string)
            return "".join(self.choice(["\t", "\n", "\\", '"', "'", "[", "]", "=", "{", "}",
                                        "\u00e9", "\u202e", "\U0001f525", "\ufeff", "%s", "%n",
                                        "$(", "\u0001", "/", ".."]) for _ in range(min(n, 2000)))
        if kind < 0.8:  # policy-like text, for Check and for paths
            return "\n".join(self.choice(["[policy]", 'input = "drop"', "[[rule]]", 'name = "x"',
                                          "ports = [22, 99999]", 'protocols = "tcp"', "[set.s]",
                                          'family = "ipv4"', 'elements = ["1.2.3.4"]', "[zone.z]",
                                          'interfaces = ["eth0"]', 'file = "/etc/shadow"',
                                          'file = "/dev/zero"', "include = '/etc/shadow'",
                                          "x = ", "[[", "= 1"]) for _ in range(self.randint(0, 30)))
        if kind < 0.9:
            return self.choice(["/", "/dev/null", "/dev/zero", "/proc/self/mem", "/etc/shadow",
                                "/nonexistent.toml", "relative.toml", "/tmp", "/" + "a" * 5000])
        return "x" * n


def signature_types(sig):
    """Splits a D-Bus signature into its complete types."""
    out, i = [], 0
    while i < len(sig):
        j = i
        depth = 0
        while True:
            c = sig[j]
            if c in "({":
                depth += 1
            elif c in ")}":
                depth -= 1
            j += 1
            if depth == 0 and c != "a":
                break
        out.append(sig[i:j])
        i = j
    return out


def random_signature(rng, depth=0):
    basic = ["s", "b", "u", "i", "t", "x", "y", "n", "q", "d", "o", "g"]
    r = rng.random()
    if depth > 2 or r < 0.55:
        return rng.choice(basic)
    if r < 0.7:
        return "a" + random_signature(rng, depth + 1)
    if r < 0.8:
        return "a{" + rng.choice(basic) + random_signature(rng, depth + 1) + "}"
    if r < 0.9:
        return "v"
    return "(" + "".join(random_signature(rng, depth + 1) for _ in range(rng.randint(1, 3))) + ")"


class Values:
    def __init__(self, dbus, rng, poison):
        self.dbus, self.rng, self.poison = dbus, rng, poison
        self.budget = 6 << 20  # characters per call: the bus drops a caller whose message is over 32 MB
        self.items = 1_200_000  # values per call, so that nested big arrays stay small

    def many(self, n):
        """How many of n elements an array or dictionary gets within the call's budget."""
        n = max(0, min(n, self.items))
        self.items -= n
        return n

    def spend(self, text):
        text = text[:max(0, self.budget)]
        self.budget -= len(text) + 1
        return text

    def of(self, sig, role=""):
        d, rng = self.dbus, self.rng
        c = sig[0]
        if c == "s":
            return d.String(self.string(role))
        if c == "b":
            return d.Boolean(rng.random() < 0.5)
        if c in "ynqiuxt":
            bits = {"y": 8, "n": 16, "q": 16, "i": 32, "u": 32, "x": 64, "t": 64}[c]
            signed = c in "nix"
            edge = [0, 1, 2, 5, 60, 3600, (1 << bits) - 1, (1 << (bits - 1)) - 1]
            v = (rng.choice(edge) if rng.random() < 0.7 else rng.getrandbits(bits)) & ((1 << bits) - 1)
            if signed:
                v = rng.choice([v % (1 << (bits - 1)), -(v % (1 << (bits - 1))) - 1])
            return {"y": d.Byte, "n": d.Int16, "q": d.UInt16, "i": d.Int32, "u": d.UInt32,
                    "x": d.Int64, "t": d.UInt64}[c](v)
        if c == "d":
            return d.Double(rng.choice([0.0, -1.5, 1e308, float("inf"), float("nan")]))
        if c == "o":
            return d.ObjectPath(rng.choice(["/", "/org/portier/Firewall1", "/a/b_c/d1"]))
        if c == "g":
            return d.Signature(rng.choice(["", "s", "a{sv}", "(ii)"]))
        if c == "v":
            inner = random_signature(rng)
            return self.variant(inner, self.of(inner))
        if sig.startswith("a{"):
            key, value = signature_types(sig[2:-1])
            return d.Dictionary(self.dict_items(key, value, role), signature=key + value)
        if c == "a":
            return self.array(sig[1:], role)
        if c == "(":
            return d.Struct([self.of(t) for t in signature_types(sig[1:-1])], signature=sig[1:-1])
        raise ValueError(sig)

    def variant(self, sig, value):
        if isinstance(value, (self.dbus.Array, self.dbus.Dictionary, self.dbus.Struct)):
            return value.__class__(value, signature=value.signature, variant_level=1)
        return value.__class__(value, variant_level=1)

    def string(self, role):
        rng = self.rng
        if role in ("name", "set") and self.poison:
            return "no-such-" + self.spend(rng.text())
        if role in ("name", "set") and rng.random() < 0.5:
            return rng.choice(RULES if role == "name" else SETS)
        if role == "element" and rng.random() < 0.5:
            return rng.choice(["192.0.2.1", "10.0.0.0/8", "2001:db8::1", "300.1.1.1", "1.2.3.4/33",
                               "", " ", "-", "0x1", "192.0.2.1 "])
        return self.spend(rng.text())

    def dict_items(self, key, value, role):
        d, rng = self.dbus, self.rng
        n = self.many(rng.choice([0, 0, 1, 2, 3, 5, 50]) if rng.random() < 0.98 else 100000)
        items = {}
        for _ in range(n):
            k = d.String(rng.choice(OPTION_KEYS) if key == "s" and rng.random() < 0.7 else
                         self.string("")) if key == "s" else self.of(key)
            items[k] = self.variant_value(k if isinstance(k, str) else "") if value == "v" else self.of(value)
        if self.poison and key == "s":
            items[d.String("no-such-option")] = d.Boolean(True, variant_level=1)
        return items

    def variant_value(self, key):
        """Option values: mostly of the type the option takes, sometimes of another."""
        d, rng = self.dbus, self.rng
        if rng.random() < 0.6:
            typed = {"permanent": "b", "keep_established": "b", "confirm_seconds": "u",
                     "duration_seconds": "u", "timeout_seconds": "u", "protocols": "as", "ports": "as",
                     "from": "as", "to": "as", "direction": "s", "action": "s"}.get(key)
            if typed:
                return self.variant(typed, self.of(typed))
        inner = random_signature(rng)
        return self.variant(inner, self.of(inner))

    def array(self, element, role):
        d, rng = self.dbus, self.rng
        if element == "y":
            blob = rng.choice([b"", b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"a\x00b",
                               bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))])
            return d.ByteArray(blob)
        r = rng.random()
        n = rng.randint(0, 5) if r < 0.9 else rng.choice([100, 10000, 100000])
        if role == "elements" and r > 0.99:
            n = 1_000_000
        n = self.many(n)
        if element == "s" and n > 100:
            # Large arrays: cheap strings, generated as a batch.
            base = rng.choice(["10.%d.%d.%d", "x%d.%d.%d", "%d.%d.%d.0/24"])
            items = [base % ((i >> 16) & 255, (i >> 8) & 255, i & 255) for i in range(n)]
        else:
            sub = "element" if role == "elements" else ""
            items = [self.of(element, sub) for _ in range(n)]
        if self.poison and role == "elements":
            items.append("not an address")
        return d.Array(items, signature=element)


def role_of(method, index, sig):
    if method in ("SetRuleEnabled", "RemoveTimedRule") and index == 0:
        return "name"
    if method in ("AddSetElements", "RemoveSetElements", "ListSetElements") and index == 0:
        return "set"
    if method in ("AddSetElements", "RemoveSetElements") and index == 1:
        return "elements"
    return ""


def fuzz_bus(address, pid, xml, seed, count, mode):
    import logging
    import dbus
    # dbus-python logs every value it cannot marshal, whole (megabytes): counted instead.
    logging.getLogger("dbus.connection").setLevel(logging.CRITICAL)
    bus = dbus.bus.BusConnection(address)
    dropped = 0
    rng = Rng(seed)
    root = ET.parse(xml).getroot()
    methods = {}
    for node in root.iter("interface"):
        if node.get("name") != IFACE:
            continue
        for m in node.iter("method"):
            methods[m.get("name")] = "".join(a.get("type") for a in m.iter("arg") if a.get("direction", "in") == "in")
    assert methods, "no methods in " + xml
    counts = collections.Counter()
    errors = collections.Counter()
    recent = collections.deque(maxlen=20)
    failures = []

    def alive(after):
        try:
            bus.call_blocking(DEST, PATH, IFACE, "GetStatus", "", (), timeout=30)
        except dbus.DBusException as e:
            failures.append(f"portierd does not answer GetStatus after {after}: {e.get_dbus_name()}: {str(e)[:300]}")
            return False
        return True

    names = sorted(methods)
    for n in range(count):
        method = "AddSetElements" if n == 0 else rng.choice(names)
        right = methods[method]
        changing = method in CHANGING
        poison = mode == "root" and changing
        shape = rng.choices(["right", "wrong", "fewer", "more"], weights=[6, 2, 1, 1])[0]
        # Root may not call a changing method with a valid call; a method without
        # arguments (Reload, Confirm, Rollback) is only ever valid with none.
        if poison and right == "" and shape in ("right", "fewer"):
            shape = "more"
        if poison and shape == "fewer":
            shape = "wrong"
        types = signature_types(right)
        if shape == "right":
            sig_types = types
        elif shape == "fewer":
            sig_types = types[:-1] if types else []
        elif shape == "more":
            sig_types = types + [random_signature(rng) for _ in range(rng.randint(1, 3))]
        else:
            sig_types = []
            while "".join(sig_types) == right:
                sig_types = [random_signature(rng) for _ in range(rng.randint(0, 4))]
            # invalid UTF-8 in place of a string
            if rng.random() < 0.2:
                sig_types = [("ay" if t == "s" else t) for t in types] or ["ay"]
                if "".join(sig_types) == right:
                    sig_types.append("ay")
        values = Values(dbus, rng, poison)
        args = [values.of(t, role_of(method, i, t) if shape == "right" else "") for i, t in enumerate(sig_types)]
        if n == 0:  # once in every run: a million elements (valid ones, but for the poison)
            sig_types, shape = signature_types(right), "right"
            args = [dbus.String("blocklist"),
                    dbus.Array([f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(1_000_000)]
                               + (["not an address"] if poison else []), signature="s"),
                    dbus.Dictionary({"no-such-option": dbus.Boolean(True, variant_level=1)} if poison else {},
                                    signature="sv")]
        sig = "".join(sig_types)
        label = f"#{n} {method}({sig}) {shape}"
        recent.append(label)
        counts[(method, shape)] += 1
        try:
            bus.call_blocking(DEST, PATH, IFACE, method, sig, args, timeout=120)
            errors["success"] += 1
            if changing and (mode != "root" or poison):
                failures.append(f"{label}: a changing call {'by a non-root caller' if mode != 'root' else 'meant to be invalid'} succeeded")
        except dbus.DBusException as e:
            errors[e.get_dbus_name() or "?"] += 1
            if e.get_dbus_name() == "org.freedesktop.DBus.Error.Disconnected":
                # The bus (not portierd) drops a caller whose message breaks its rules;
                # whether portierd is still there is checked on a new connection.
                dropped += 1
                bus = dbus.bus.BusConnection(address)
                if not alive(label):
                    break
            elif e.get_dbus_name() in ("org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.ServiceUnknown",
                                       "org.freedesktop.DBus.Error.NameHasNoOwner"):
                failures.append(f"{label}: {e.get_dbus_name()}: {str(e)[:300]}")
        except Exception as e:  # dbus-python refused to marshal it: nothing was sent
            errors["not sendable (" + type(e).__name__ + ")"] += 1
        if failures or n % 50 == 49:
            if not alive(label) or failures:
                break
        if not os.path.exists(f"/proc/{pid}"):
            failures.append(f"portierd (pid {pid}) is gone after {label}")
            break
    print(f"{mode}: {sum(counts.values())} calls (seed {seed})")
    for method in names:
        row = ", ".join(f"{shape} {counts[(method, shape)]}" for shape in ("right", "wrong", "fewer", "more"))
        print(f"  {method:20} {row}")
    print("  answers: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()))
    print(f"  connections the bus dropped (message over its limits): {dropped}")
    if failures:
        print("FAILURES:\n" + "\n".join(failures) + "\nthe last calls:\n  " + "\n  ".join(recent))
        return 1
    return 0 if alive("the last call") else 1


SUBCOMMANDS = ["status", "rules", "enable", "disable", "reload", "apply", "confirm", "rollback",
               "allow", "set", "panic", "explain", "ports", "check", "show", "diff", "version",
               "__complete", "help", "", "-", "--", "nosuch"]
READ_ONLY = ["status", "rules", "explain", "check", "show", "diff", "version", "help", "",
             "nosuch", "--help", "-h"]
ARGS = ["--json", "--exact", "--permanent", "--confirm", "--for", "--from", "--to", "--timeout",
        "--file", "--keep-established", "--policy", "--verbose", "--nft", "--no-ask-password",
        "--help", "-h", "--version", "--", "-", "on", "off", "add", "del", "list", "all",
        "blocklist", "expiring", "web-in", "blocked", "timed-1", "tcp/22", "udp/0", "tcp/65536",
        "icmp/1", "30", "0", "-1", "1h", "1x", "99999999999999999999", "/dev/null",
        "/nonexistent", "/etc/shadow", "/proc/self/status", "192.0.2.1", "10.0.0.0/8", "::1",
        "rules", "names", "sets", "=", "--json=1", "--confirm=0", "\u00e9\u202e", "%s%n", "a" * 5000]


def fuzz_argv(portierctl, seed, count, mode):
    rng = Rng(seed)
    statuses = collections.Counter()
    failures = []
    for n in range(count):
        sub = rng.choice(SUBCOMMANDS if mode == "anyone" else READ_ONLY)
        argv = [portierctl] + ([sub] if sub else [])
        for _ in range(rng.randint(0, 6)):
            # (not a path that never ends: portierctl reading /dev/zero is no finding)
            word = rng.choice(ARGS) if rng.random() < 0.85 else rng.text()[:3000].replace("\0", "")
            argv.append("/dev/null" if word in ("/dev/zero", "/proc/self/mem") else word)
        if mode == "root":
            # root's vectors must change nothing: only read-only subcommands come first, and
            # "set" (its "list" is read-only) is left out.
            argv = [a for a in argv if a not in ("enable", "disable", "reload", "apply", "confirm",
                                                   "rollback", "allow", "set", "panic")] or [portierctl]
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, timeout=60)
            status = result.returncode
        except subprocess.TimeoutExpired:
            status = "timeout"
        statuses[status] += 1
        # A sanitizer report (UBSan's goes to stderr) fails the run whatever the status.
        if status != "timeout" and re.search(rb": runtime error: |^==[0-9]+==ERROR: [A-Za-z]+Sanitizer", result.stderr, re.M):
            status = f"{status} with a sanitizer report"
        if status not in (0, 1, 2, 3):
            shown = [a if len(a) < 80 else a[:40] + f"...({len(a)} characters)" for a in argv[1:]]
            failures.append(f"#{n} portierctl {shown}: exit {status}: {result.stderr[-500:] if status != 'timeout' else ''}")
    print(f"{mode}: {count} portierctl argument vectors (seed {seed}); exit statuses: " +
          ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
    if failures:
        print("FAILURES:\n" + "\n".join(failures[:20]))
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "bus":
        sys.exit(fuzz_bus(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]))
    sys.exit(fuzz_argv(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))

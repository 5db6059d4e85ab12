#!/usr/bin/env bash
# A guided tour of portier on this machine, without touching its own firewall: builds, then
# runs portierd with rules/policies/workstation.toml inside a throwaway network namespace
# joined to a "peer" namespace, on a private D-Bus system bus, and shows what portierctl and
# nft see and what real traffic from the peer does. Everything is removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash tests/setup.sh

export PORTIER_SOURCE_DIR=$PWD
export PORTIER_BUILD_DIR=$PWD/${BUILD_DIR:-build}
# shellcheck source=integration/lib.sh
source tests/integration/lib.sh
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (network namespaces, nftables)" >&2; exit 1; }
PORTIER_REQUIRE_INTEGRATION=1 require_root_or_skip
require_binaries

step() { printf '\n==> %s\n' "$*"; }
# portierctl talks to portierd over the private bus from DBUS_SYSTEM_BUS_ADDRESS.
ctl() {
  printf '$ portierctl %s\n' "$*"
  env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$PORTIERCTL" "$@" || printf '(exit status %s)\n' "$?"
}

POLICY=rules/policies/workstation.toml
if [[ ! -f "$POLICY" ]]; then
  POLICY="$WORKDIR/demo.toml"
  cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "ssh-in"
direction = "in"
protocols = "tcp"
ports     = ["ssh"]
action    = "accept"

[[rule]]
name      = "netbios-in"
direction = "in"
protocols = ["tcp", "udp"]
ports     = ["137-139"]
action    = "drop"
TOML
fi
POLICY=$(realpath "$POLICY")

step "Namespaces: portierd runs in one, traffic comes from the other"
make_ns_pair
echo "host namespace $HOST_NS ($HOST_IP), peer namespace $PEER_NS ($PEER_IP)"

step "Private system bus"
start_bus
echo "DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDRESS"

step "portierd --policy $POLICY (waiting for READY=1)"
start_portierd "$HOST_NS" "$POLICY"
echo "portierd pid $PORTIERD_PID is ready and owns org.portier.Firewall1"

step "portierctl status"
ctl status
step "portierctl rules"
ctl rules
step "nft list table inet portier (inside $HOST_NS)"
printf '$ ip netns exec %s nft list table inet portier\n' "$HOST_NS"
ip netns exec "$HOST_NS" nft list table inet portier

# Pick ports to try from the policy itself: TCP ports opened or closed for new inbound
# connections, and one no rule mentions.
mapfile -t picks < <("$PYTHON" - "$POLICY" <<'EOF'
import re, socket, sys, tomllib
with open(sys.argv[1], "rb") as f:
    doc = tomllib.load(f)
default_in = doc.get("policy", {}).get("input", "accept")
def ports(rule):
    items = rule.get("ports", [])
    items = items if isinstance(items, list) else [items]
    for item in items:
        text = str(item)
        if re.fullmatch(r"\d+-\d+", text):
            a, b = text.split("-")
            yield int(a), int(b)
        elif text.isdigit():
            yield int(text), int(text)
        else:
            try:
                p = socket.getservbyname(text, "tcp")
                yield p, p
            except OSError:
                pass
def protos(rule):
    p = rule.get("protocols", [])
    return p if isinstance(p, list) else [p]
mentioned, allowed, blocked, toggle = [], None, None, None
for rule in doc.get("rule", []):
    if rule.get("direction") != "in" or "tcp" not in protos(rule):
        continue
    for a, b in ports(rule):
        mentioned.append((a, b))
        if not rule.get("enabled", True):
            if rule.get("action") == "accept" and toggle is None:
                toggle = (rule["name"], a)
            continue
        if rule.get("action") == "accept" and allowed is None:
            allowed = (a, rule["name"])
        if rule.get("action") in ("drop", "reject") and blocked is None:
            blocked = (a, rule["name"], rule["action"])
free = next(p for p in range(2300, 2400) if not any(a <= p <= b for a, b in mentioned))
if allowed:
    print(f"probe {allowed[0]} arrives (rule {allowed[1]}: accept)")
if blocked:
    print(f"probe {blocked[0]} blocked (rule {blocked[1]}: {blocked[2]})")
verdict = "arrives" if default_in == "accept" else "blocked"
print(f"probe {free} {verdict} (no rule; input policy {default_in})")
if toggle:
    print(f"toggle {toggle[0]} {toggle[1]}")
EOF
)

try_port() {
  local port=$1 expect=$2 seen
  if probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp "$port"; then seen=arrives; else seen=blocked; fi
  printf 'tcp %-5s %-8s expected: %s\n' "$port" "$seen" "$expect"
}

step "Traffic from $PEER_NS to $HOST_IP (a listener in $HOST_NS records what arrives)"
toggle=
for pick in "${picks[@]}"; do
  read -r kind a b <<<"$pick"
  case $kind in
    probe) try_port "$a" "$b" ;;
    toggle) toggle="$a $b" ;;
  esac
done

step "portierctl rules (the counters now include that traffic)"
ctl rules

if [[ -n "$toggle" ]]; then
  read -r name port <<<"$toggle"
  step "Rule $name is disabled in the policy: enable it at run time, then disable it again"
  ctl enable "$name"
  try_port "$port" "arrives (rule $name enabled)"
  ctl disable "$name"
  try_port "$port" "blocked (rule $name disabled)"
fi

step "portierd's log"
cat "$PORTIERD_LOG"

step "Cleaning up: namespaces, processes and files go away"
DONE_MESSAGE="done; namespaces $HOST_NS and $PEER_NS, the bus and portierd are gone"

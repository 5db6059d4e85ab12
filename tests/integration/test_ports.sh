#!/usr/bin/env bash
# portierctl ports against real traffic: what the exposure report says and what probes from
# real peers see must agree, port for port and zone for zone.
#
#   peer a (lan)  --- veth-a \
#   peer b (dmz)  --- veth-b  host namespace: portierd + listeners
#   peer c (none) --- veth-c /   (veth-c is in no zone: "anywhere")
#
# Listeners in the host namespace: TCP on the wildcard (open everywhere), TCP on 127.0.0.1
# (a rule would allow it, but loopback is reachable from nowhere outside), UDP from lan and
# dmz, a TCP port the policy rejects, a TCP port open from lan only, a dual-stack TCP6
# socket (reached over IPv4) open from dmz only, and a [[bind]] port served from the wrong
# cgroup (closed, with a warning) and then from the right one (open, no warning).
#
# portierd and the cgroup listener enter the namespace with nsenter, so cgroup2 stays
# visible (for the bind and for the sockets' cgroup paths).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
require_root_or_skip
require_binaries
require_cmd nsenter
find_cgroup2_root

_claim_test_id
N=$TEST_ID
HOST_NS="portier-$N-h"
new_netns NS_A a
new_netns NS_B b
new_netns NS_C c
# Three /26 links, all inside 10.200.N.0/24 (only ever configured in these namespaces).
declare -A HOST_IP=([a]="10.200.$N.1" [b]="10.200.$N.65" [c]="10.200.$N.129")
declare -A PEER_IP=([a]="10.200.$N.2" [b]="10.200.$N.66" [c]="10.200.$N.130")
declare -A PEER_NS=([a]="$NS_A" [b]="$NS_B" [c]="$NS_C")
for side in a b c; do
  veth_link "$HOST_NS" "veth-$side" "${PEER_NS[$side]}" "peer-$side"
  ip -n "$HOST_NS" addr add "${HOST_IP[$side]}/26" dev "veth-$side"
  ip -n "${PEER_NS[$side]}" addr add "${PEER_IP[$side]}/26" dev "peer-$side"
done
# Which peer stands for which column of the report.
declare -A PEER_OF_ZONE=([lan]=a [dmz]=b [anywhere]=c)
ZONES=(lan dmz anywhere)

CG_BASE="portier-test-$N-$$"
make_cgroup "$CG_BASE/allowed"
make_cgroup "$CG_BASE/other"

POLICY="$WORKDIR/ports.toml"
cat >"$POLICY" <<TOML
[policy]
input = "drop"

[zone.lan]
interfaces = ["veth-a"]

[zone.dmz]
interfaces = ["veth-b"]

[[rule]]
name = "web-in"
protocols = "tcp"
ports = [8080]
action = "accept"

[[rule]]
name = "local-in"
protocols = "tcp"
ports = [8081]
action = "accept"

[[rule]]
name = "mdns-inside"
from = ["lan", "dmz"]
protocols = "udp"
ports = [5353]
action = "accept"

[[rule]]
name = "no-9000"
protocols = "tcp"
ports = [9000]
action = "reject"

[[rule]]
name = "admin-from-lan"
from = "lan"
protocols = "tcp"
ports = [8443]
action = "accept"

[[rule]]
name = "dual-from-dmz"
from = "dmz"
protocols = "tcp"
ports = [8600]
action = "accept"

[[rule]]
name = "lab-in"
protocols = "tcp"
ports = [8500]
action = "accept"

[[bind]]
name = "lab-owner"
protocols = "tcp"
ports = [8500]
cgroup = "$CG_BASE/allowed"
TOML

# serve PROTO PORT SOCAT_ADDRESS: a listener in the host namespace whose arrivals go where
# lib.sh's probe looks for them.
serve() {
  local proto=$1 port=$2 address=$3
  local key="$HOST_NS-$proto-$port" file="$WORKDIR/rx-$HOST_NS-$proto-$port"
  : >"$file"
  spawn "listen-$key" ip netns exec "$HOST_NS" socat -u "$address" "OPEN:$file,append"
  _LISTENERS[$key]=$SPAWNED_PID
  _wait_listening "$HOST_NS" "$proto" "$port"
}

serve tcp 8080 "TCP4-LISTEN:8080,reuseaddr,fork"
serve tcp 8081 "TCP4-LISTEN:8081,bind=127.0.0.1,reuseaddr,fork"
serve udp 5353 "UDP4-RECV:5353,reuseaddr"
serve tcp 9000 "TCP4-LISTEN:9000,reuseaddr,fork"
serve tcp 8443 "TCP4-LISTEN:8443,reuseaddr,fork"
serve tcp 8600 "TCP6-LISTEN:8600,ipv6only=0,reuseaddr,fork"
listen_in_cgroup "$HOST_NS" tcp 8500 "$CG_BASE/other"
LAB_PID=${_LISTENERS[$HOST_NS-tcp-8500]}

start_portierd_hostfs "$HOST_NS" "$POLICY"

# report_lines: `portierctl ports --json` as one line per socket and zone:
#   PROTO PORT ADDRESS SCOPE ZONE open|closed DECIDED_BY...
# and one line per socket: `socket PROTO PORT ADDRESS PID PROCESS USER CGROUP`, and per warning
# `warning TEXT`. Sets REPORT_JSON.
report_lines() {
  pctl ports --json
  assert_rc 0 "portierctl ports --json"
  REPORT_JSON=$OUT
  printf '%s\n' "$OUT" >"$WORKDIR/ports.json"
  "$PYTHON" - "$WORKDIR/ports.json" <<'EOF'
import json, sys
ports = json.load(open(sys.argv[1]))
assert isinstance(ports, list), "not an array"
keys = ["protocol", "family", "address", "port", "scope", "pid", "process", "uid", "user", "unit", "cgroup", "zones", "warnings"]
for p in ports:
    missing = [k for k in keys if k not in p]
    assert not missing, f"missing keys {missing} in {p}"
    print("socket", p["protocol"], p["port"], p["address"], p["pid"], p["process"] or "-", p["user"] or "-", p["cgroup"] or "-")
    for z in p["zones"]:
        print(p["protocol"], p["port"], p["address"], p["scope"], z["zone"], "open" if z["open"] else "closed", z["decided_by"])
    for w in p["warnings"]:
        print("warning", w)
EOF
}

# verdict PROTO PORT ZONE: open or closed, from the last report (exactly one socket on it).
verdict() {
  local found
  found=$(awk -v p="$1" -v n="$2" -v z="$3" '$1 == p && $2 == n && $5 == z { print $6 }' <<<"$REPORT")
  [[ $(wc -l <<<"$found") -eq 1 && -n "$found" ]] ||
    fail "expected one report line for $1/$2 from $3, found '$found' in:
$REPORT"
  printf '%s\n' "$found"
}

# check_port PROTO PORT EXPECTED...: one expectation (open|closed) per zone in ZONES order.
# The report must say it, and a probe from that zone's peer must agree.
check_port() {
  local proto=$1 port=$2
  shift 2
  local zone expected said seen i=0
  for zone in "${ZONES[@]}"; do
    expected=$1
    shift
    said=$(verdict "$proto" "$port" "$zone")
    local side=${PEER_OF_ZONE[$zone]}
    if probe "${PEER_NS[$side]}" "$HOST_NS" "${HOST_IP[$side]}" "$proto" "$port"; then seen=open; else seen=closed; fi
    [[ "$said" == "$seen" ]] ||
      fail "$proto/$port from $zone: portierctl ports says $said, but a probe from ${PEER_NS[$side]} finds it $seen ($PROBE_DETAIL)
report:
$REPORT"
    [[ "$said" == "$expected" ]] ||
      fail "$proto/$port from $zone: report and probe agree on $said, but the policy means $expected"
    log "ok: $proto/$port from $zone: $said (report and probe agree)"
  done
}

REPORT=$(report_lines) || fail "cannot read the JSON of portierctl ports: $REPORT_JSON"
log "report:
$REPORT"

#                  lan    dmz    anywhere
check_port tcp 8080 open   open   open
check_port tcp 8081 closed closed closed
check_port udp 5353 open   open   closed
check_port tcp 9000 closed closed closed
check_port tcp 8443 open   closed closed
check_port tcp 8600 closed open   closed
check_port tcp 8500 closed closed closed

assert_match "$REPORT" '^tcp 8081 127\.0\.0\.1 loopback lan closed bound to loopback$' "the loopback listener's row"
assert_match "$REPORT" '^tcp 8080 0\.0\.0\.0 wildcard anywhere open web-in$' "the wildcard listener from anywhere"
assert_match "$REPORT" '^tcp 9000 0\.0\.0\.0 wildcard lan closed no-9000$' "the rejected port"
assert_match "$REPORT" '^tcp 8500 0\.0\.0\.0 wildcard dmz closed lab-owner$' "the bind port served from the wrong cgroup"
assert_match "$REPORT" '^tcp 8600 :: wildcard dmz open dual-from-dmz' "the dual-stack socket from dmz"
assert_match "$REPORT" "^socket tcp 8500 0\.0\.0\.0 $LAB_PID socat root $CG_BASE/other\$" "the bind port's owner"
assert_contains "$REPORT" \
  "warning port 8500/tcp is tied to cgroup $CG_BASE/allowed by bind 'lab-owner' but served by socat (pid $LAB_PID, $CG_BASE/other)" \
  "the bind warning"
assert_contains "$REPORT" "warning port 8080/tcp listens on all addresses and is open from anywhere (web-in)" \
  "the warning for a wildcard port open from anywhere"
[[ $(grep -c '^warning ' <<<"$REPORT") -eq 2 ]] || fail "expected exactly two warnings:
$REPORT"

# The table: one column per zone and ANYWHERE, no colour when not on a terminal.
pctl ports
assert_rc 0 "portierctl ports"
assert_match "$(head -n1 <<<"$OUT")" '^PROTO +ADDRESS +PORT +PROCESS +USER +UNIT +LAN +DMZ +ANYWHERE$' "the table header"
assert_match "$OUT" '^tcp +0\.0\.0\.0 +8080 +socat\[[0-9]+\] +root +- +open \(web-in\) +open \(web-in\) +open \(web-in\)$' "the row of 8080"
assert_match "$OUT" '^tcp +0\.0\.0\.0 +8443 +socat\[[0-9]+\] +root +- +open \(admin-from-lan\) +closed +closed$' "the row of 8443"
assert_contains "$OUT" "port 8500/tcp is tied to cgroup $CG_BASE/allowed by bind 'lab-owner'" "the warnings under the table"
[[ "$OUT" != *$'\033'* ]] || fail "portierctl ports printed colour codes into a pipe"
# On a terminal there is colour, unless NO_COLOR says otherwise.
tty_out=$(env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" script -qec "$PORTIERCTL ports" /dev/null)
[[ "$tty_out" == *$'\033['* ]] || fail "portierctl ports on a terminal printed no colour:
$tty_out"
tty_out=$(env NO_COLOR=1 DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" script -qec "$PORTIERCTL ports" /dev/null)
[[ "$tty_out" != *$'\033['* ]] || fail "portierctl ports printed colour with NO_COLOR set"
log "ok: table header, rows, warnings; colour only on a terminal without NO_COLOR"

# --- The bind's port served from the owner's cgroup: open, and no warning.
unlisten "$HOST_NS" tcp 8500
listen_in_cgroup "$HOST_NS" tcp 8500 "$CG_BASE/allowed"
LAB_PID=${_LISTENERS[$HOST_NS-tcp-8500]}
REPORT=$(report_lines) || fail "cannot read the JSON of portierctl ports: $REPORT_JSON"
check_port tcp 8500 open open open
assert_match "$REPORT" "^socket tcp 8500 0\.0\.0\.0 $LAB_PID socat root $CG_BASE/allowed\$" "the bind port's owner"
assert_no_match "$REPORT" "warning port 8500/tcp is tied to" "the report once the bind's owner serves the port"

unlisten "$HOST_NS" tcp 8500
stop_portierd
assert_no_host_table

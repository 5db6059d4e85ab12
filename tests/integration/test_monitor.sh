#!/usr/bin/env bash
# `portierctl monitor` follows portierd: toggles, reloads, and the packets the policy logs to
# its nflog group, relayed by portierd from real dropped traffic; at most 50 a second, then
# one count of the rest. SIGTERM ends it with status 0; without portierd it exits 3.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

make_ns_pair

write_policy() {
  cat >"$POLICY" <<TOML
[policy]
input     = "accept"
output    = "accept"
log_group = $1

[[rule]]
name      = "netbios-in"
protocols = ["tcp", "udp"]
ports     = ["137-139"]
action    = "drop"
log       = true

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [$2]
action    = "accept"
TOML
}
POLICY="$WORKDIR/policy.toml"
write_policy 7 8080

# wait_for FILE ERE WHAT: up to 10 s for a line matching ERE.
wait_for() {
  local file=$1 re=$2 what=$3 i
  for ((i = 0; i < 100; i++)); do
    grep -Eq -- "$re" "$file" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$what: no line matching /$re/ within 10 s in $file:
$(cat "$file")"
}
# Nobody serves org.portier.Firewall1 yet: exit 3 at once.
start_bus
pctl monitor --json
assert_rc 3 "portierctl monitor without portierd"
assert_contains "$ERR" "portierd is not running" "portierctl monitor without portierd"

start_portierd "$HOST_NS" "$POLICY"
wait_for "$PORTIERD_LOG" 'relaying packets logged to nflog group 7' "portierd's log at start"

# Two monitors: JSON for the checks, and the human format.
spawn monitor-json "$PORTIERCTL" monitor --json
MONITOR_JSON_PID=$SPAWNED_PID
MONITOR_JSON="$WORKDIR/logs/monitor-json.log"
spawn monitor-text "$PORTIERCTL" monitor
MONITOR_TEXT_PID=$SPAWNED_PID
MONITOR_TEXT="$WORKDIR/logs/monitor-text.log"

wait_for "$MONITOR_JSON" '"event":"monitoring"' "the JSON monitor's first line"
wait_for "$MONITOR_TEXT" '^[0-9]{2}:[0-9]{2}:[0-9]{2} monitoring portierd: generation [0-9]+' "the text monitor's first line"

# The JSON lines are checked with python: EXPRESSION over `events`, the parsed lines.
cat >"$WORKDIR/check.py" <<'EOF'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
sys.exit(0 if eval("(" + sys.argv[2] + ")") else 1)
EOF
# json_wait WHAT EXPRESSION: up to 10 s for EXPRESSION to hold.
json_wait() {
  local what=$1 expression=$2 i
  for ((i = 0; i < 50; i++)); do
    "$PYTHON" "$WORKDIR/check.py" "$MONITOR_JSON" "$expression" && return 0
    sleep 0.2
  done
  fail "$what: not true within 10 s: $expression
monitor output (last 60 lines):
$(tail -n 60 "$MONITOR_JSON")"
}

# Toggles, and a reload of a changed policy (a reload of the same one changes nothing).
pctl disable web-in
assert_rc 0 "portierctl disable web-in"
pctl enable web-in
assert_rc 0 "portierctl enable web-in"
write_policy 7 8081
pctl reload
assert_rc 0 "portierctl reload"
json_wait "rule-changed lines" \
  'any(e["event"] == "rule-changed" and e["rule"] == "web-in" and e["enabled"] is False for e in events) and
   any(e["event"] == "rule-changed" and e["rule"] == "web-in" and e["enabled"] is True for e in events)'
json_wait "applied lines for the toggles and the reload" \
  'sum(e["event"] == "applied" and e["reason"] == "toggle" for e in events) == 2 and
   any(e["event"] == "applied" and e["reason"] == "reload" and e["generation"] > 0 for e in events)'
wait_for "$MONITOR_TEXT" '^[0-9:]{8} rule web-in disabled$' "text monitor: the toggle"
wait_for "$MONITOR_TEXT" '^[0-9:]{8} applied generation [0-9]+ \(reload\)$' "text monitor: the reload"
log "ok: toggles and the reload reach the monitor"

# Real dropped packets from the peer: a TCP SYN to 139 and a UDP datagram to 137.
in_ns "$PEER_NS" timeout 3 socat -u /dev/null "TCP:$HOST_IP:139,connect-timeout=1" >/dev/null 2>&1 &&
  fail "tcp 139 connected although netbios-in drops it"
printf 'x\n' | in_ns "$PEER_NS" socat -u - "UDP-SENDTO:$HOST_IP:137,sourceport=40137"
json_wait "a PacketLogged line for the TCP SYN" \
  "any(e['event'] == 'packet' and e['rule'] == 'netbios-in' and e['verdict'] == 'dropped' and
       e['prefix'] == 'portier netbios-in ' and e['family'] == 'ipv4' and e['protocol'] == 'tcp' and
       e['source'] == '$PEER_IP' and e['destination'] == '$HOST_IP' and e['sport'] > 0 and
       e['dport'] == 139 and e['in'] == 'veth0' and e['out'] == '' for e in events)"
json_wait "a PacketLogged line for the UDP datagram" \
  "any(e['event'] == 'packet' and e['rule'] == 'netbios-in' and e['protocol'] == 'udp' and
       e['source'] == '$PEER_IP' and e['sport'] == 40137 and e['dport'] == 137 for e in events)"
wait_for "$MONITOR_TEXT" \
  "^[0-9:]{8} dropped tcp ${PEER_IP//./\\.}:[0-9]+ -> ${HOST_IP//./\\.}:139 in veth0 by netbios-in\$" \
  "text monitor: the dropped SYN"
assert_match "$(cat "$PORTIERD_LOG")" \
  "portierd: dropped udp ${PEER_IP//./\\.}:40137 -> ${HOST_IP//./\\.}:137 in veth0 by netbios-in" \
  "portierd's own line for the relayed packet (journal)"
log "ok: dropped packets reach the monitor with rule, addresses, ports and interface"

# Rate limit. portier's log statements are themselves limited by the kernel (10 a minute),
# so a flood through them would never reach portierd's own limit: a second table of ours,
# in the host namespace, logs every packet of the flood to the same group, unlimited.
in_ns "$HOST_NS" nft -f - <<'NFT'
table inet monitor_flood {
  chain input {
    type filter hook input priority -50;
    udp dport 4000 log prefix "portier flood " group 7 drop
  }
}
NFT
sleep 1.5  # let the relay's current window (if any) end
BEFORE=$(grep -c '^{' "$MONITOR_JSON")
in_ns "$PEER_NS" "$PYTHON" - "$HOST_IP" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(1000):
    s.sendto(b"flood", (sys.argv[1], 4000))
EOF
flood_check() {
  local what=$1 expression=$2
  json_wait "$what" "(lambda flood: $expression)([e for e in events[$BEFORE:]])"
}
# The summary comes once the second is over.
flood_check "a summary of the suppressed packets" 'any(e["event"] == "suppressed" for e in flood)'
sleep 1.5  # nothing more may come for this flood
flood_check "at most 50 relayed packets of the flood and one summary of the rest" \
  'sum(e["event"] == "packet" for e in flood) == 50 and
   all(e["prefix"] == "portier flood " and e["verdict"] == "logged" and e["dport"] == 4000
       for e in flood if e["event"] == "packet") and
   [e["count"] for e in flood if e["event"] == "suppressed"] == [950]'
wait_for "$MONITOR_TEXT" '^[0-9:]{8} 950 more logged packets suppressed$' "text monitor: the summary"
assert_match "$(cat "$PORTIERD_LOG")" 'portierd: 950 more logged packets suppressed' "portierd's log of the summary"
in_ns "$HOST_NS" nft delete table inet monitor_flood
log "ok: a flood of 1000 gives 50 PacketLogged signals and one summary of 950"

# A reload with another group: portierd binds the new one.
write_policy 9 8081
pctl reload
assert_rc 0 "portierctl reload (log_group 9)"
assert_match "$(nft_table "$HOST_NS")" 'log prefix "portier netbios-in " group 9' "the ruleset after the reload"
wait_for "$PORTIERD_LOG" 'relaying packets logged to nflog group 9' "portierd's log after the reload"
printf 'y\n' | in_ns "$PEER_NS" socat -u - "UDP-SENDTO:$HOST_IP:138,sourceport=40138"
json_wait "a PacketLogged line from group 9" \
  "any(e['event'] == 'packet' and e['rule'] == 'netbios-in' and e['sport'] == 40138 and e['dport'] == 138 for e in events)"
log "ok: after a reload with log_group 9 packets still reach the monitor"

# SIGTERM ends both monitors with status 0.
rc=0
stop_pid "$MONITOR_JSON_PID" || rc=$?
assert_eq 0 "$rc" "exit status of portierctl monitor --json on SIGTERM"
rc=0
stop_pid "$MONITOR_TEXT_PID" || rc=$?
assert_eq 0 "$rc" "exit status of portierctl monitor on SIGTERM"
assert_no_match "$(grep -v '^{' "$MONITOR_JSON")" '.' "lines of portierctl monitor --json that are not JSON"

# Anyone may follow (reading is open to everyone); SIGINT ends it with status 0 too.
_run_capture setpriv --reuid=65534 --regid=65534 --clear-groups \
  env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" timeout --preserve-status -s INT 2 "$PORTIERCTL" monitor
assert_rc 0 "portierctl monitor as uid 65534, ended by SIGINT"
assert_match "$OUT" '^[0-9:]{8} monitoring portierd: generation [0-9]+, mode normal' "portierctl monitor as uid 65534"
stop_portierd

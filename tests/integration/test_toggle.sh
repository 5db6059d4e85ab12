#!/usr/bin/env bash
# `portierctl disable/enable NAME` change what real traffic does, `portierctl rules` shows the
# state, and a rule's packet and byte counters grow with the traffic it matches.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "block-9000"
direction = "in"
protocols = "tcp"
ports     = [9000]
action    = "reject"

[[rule]]
name      = "web-in"
direction = "in"
protocols = ["tcp"]
ports     = ["8080"]
action    = "accept"

[[rule]]
name      = "dns-in"
direction = "in"
protocols = "udp"
ports     = [5353]
action    = "accept"
enabled   = false
TOML

start_portierd "$HOST_NS" "$POLICY"

assert_eq enabled "$(rule_field web-in state)" "state of web-in in 'portierctl rules'"
assert_eq disabled "$(rule_field dns-in state)" "state of dns-in (enabled = false in the policy)"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in enabled"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 5353 "dns-in disabled, input drop"

# Disable an accepting rule: its port falls back to the input policy (drop).
pctl disable web-in
assert_rc 0 "portierctl disable web-in"
assert_eq disabled "$(rule_field web-in state)" "state of web-in after disable"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in disabled"
pctl enable web-in
assert_rc 0 "portierctl enable web-in"
assert_eq enabled "$(rule_field web-in state)" "state of web-in after enable"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in enabled again"

# Enable a rule the policy ships disabled.
pctl enable dns-in
assert_rc 0 "portierctl enable dns-in"
assert_eq enabled "$(rule_field dns-in state)" "state of dns-in after enable"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 5353 "dns-in enabled"
pctl disable dns-in
assert_rc 0 "portierctl disable dns-in"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 5353 "dns-in disabled again"

# A rejecting rule answers with a reset; disabled, the port is silently dropped instead.
probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9000 && fail "tcp 9000 arrived although block-9000 rejects it"
[[ "$PROBE_DETAIL" == *"Connection refused"* ]] ||
  fail "tcp 9000 with block-9000 (reject) enabled: expected 'Connection refused', seen: $PROBE_DETAIL"
pctl disable block-9000
assert_rc 0 "portierctl disable block-9000"
probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9000 && fail "tcp 9000 arrived with input policy drop"
[[ "$PROBE_DETAIL" != *"Connection refused"* ]] ||
  fail "tcp 9000 with block-9000 disabled: expected a silent drop (input drop), seen: $PROBE_DETAIL"
pctl enable block-9000
assert_rc 0 "portierctl enable block-9000"
log "ok: block-9000 rejects when enabled, input policy drops when disabled"

# Unknown rule names are an error.
pctl disable no-such-rule
assert_rc 1 "portierctl disable no-such-rule"
assert_match "$ERR$OUT" 'no-such-rule' "error message for an unknown rule"

# Counters: every new connection to 8080 passes web-in once (its SYN).
packets0=$(rule_field web-in packets)
bytes0=$(rule_field web-in bytes)
for i in 1 2 3 4 5; do
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "counted connection $i"
done
packets1=$(rule_field web-in packets)
bytes1=$(rule_field web-in bytes)
assert_int_ge "$packets1" $((packets0 + 5)) "web-in packet counter after 5 new connections (was $packets0)"
# A SYN is at least 40 bytes (IPv4 + TCP headers).
assert_int_ge "$bytes1" $((bytes0 + 5 * 40)) "web-in byte counter after 5 new connections (was $bytes0)"
log "ok: web-in counters $packets0/$bytes0 -> $packets1/$bytes1"

# UDP datagrams to an enabled accept rule, each from a new source port (a new flow).
pctl enable dns-in
assert_rc 0 "portierctl enable dns-in"
udp0=$(rule_field dns-in packets)
for i in 1 2 3; do
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 5353 "counted datagram $i"
done
udp1=$(rule_field dns-in packets)
assert_int_ge "$udp1" $((udp0 + 3)) "dns-in packet counter after 3 datagrams (was $udp0)"
log "ok: dns-in counter $udp0 -> $udp1"

# A rule does not count traffic to other ports.
other0=$(rule_field block-9000 packets)
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "one more connection"
assert_eq "$other0" "$(rule_field block-9000 packets)" "block-9000 packets after traffic to another port"

#!/usr/bin/env bash
# NetBIOS (137-139, tcp and udp) dropped inbound: real packets from a peer namespace to those
# ports never reach a listener, while the ports around them and an explicitly allowed port do.
# Input defaults to accept here, so only the netbios rule can be what stops the traffic.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "accept"
output = "accept"

[[rule]]
name      = "netbios-in"
direction = "in"
protocols = ["tcp", "udp"]
ports     = ["137-139"]
action    = "drop"

[[rule]]
name      = "web-in"
direction = "in"
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML

# Without a firewall every port arrives: the listeners and the wire work.
for port in 137 138 139; do
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp $port "no firewall yet"
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" udp $port "no firewall yet"
done

start_portierd "$HOST_NS" "$POLICY"

for port in 137 138 139; do
  assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp $port "netbios-in drops it"
  assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" udp $port "netbios-in drops it"
done
# Drop, not reject: the SYN gets no answer at all.
probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 139 || true
[[ "$PROBE_DETAIL" != *"Connection refused"* ]] ||
  fail "tcp to port 139 was refused (RST), expected a silent drop: $PROBE_DETAIL"

# The range ends where it says.
for port in 136 140; do
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp $port "outside 137-139"
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" udp $port "outside 137-139"
done
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in accepts it"

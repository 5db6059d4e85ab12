#!/usr/bin/env bash
# Input policy drop: connections the host opens get their replies (ct established,related),
# connections the peer opens to a port no rule allows never arrive, loopback always works.
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
name      = "ssh-in"
direction = "in"
protocols = "tcp"
ports     = ["ssh"]
action    = "accept"
TOML

listen_echo "$PEER_NS" tcp 7000
listen_echo "$PEER_NS" udp 7001
# The host's listeners exist and are reachable before the firewall.
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 2222 "no firewall yet"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 2223 "no firewall yet"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 22 "no firewall yet"

start_portierd "$HOST_NS" "$POLICY"

# Outbound connections and their replies.
reply=$(request "$HOST_NS" "$PEER_IP" tcp 7000)
assert_eq "pong-ping" "$reply" "reply over a TCP connection the host opened (input drop, ct established)"
log "ok: tcp reply from the peer arrives"
reply=$(request "$HOST_NS" "$PEER_IP" udp 7001)
assert_eq "pong-ping" "$reply" "reply to a UDP datagram the host sent (input drop, ct established)"
log "ok: udp reply from the peer arrives"

# New inbound connections only where a rule allows them.
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 2222 "input policy drop"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 2223 "input policy drop"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 22 "ssh-in accepts it"

# Loopback is always accepted, even for ports no rule opens.
assert_arrives "$HOST_NS" "$HOST_NS" 127.0.0.1 tcp 2222 "loopback"
assert_arrives "$HOST_NS" "$HOST_NS" 127.0.0.1 udp 2223 "loopback"

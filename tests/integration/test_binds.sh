#!/usr/bin/env bash
# Binds: only the named owner may serve a port.
#  - cgroup= (input): a TCP listener on 8081 in cgroup <root>/portier-test-<id>/allowed is
#    reachable from the peer; the same listener started from .../other gets no SYN (dropped,
#    not refused), while that cgroup serves an unbound port fine.
#  - user= (output): a TCP and a UDP server on 8082 answer when run as nobody (the owner);
#    run as root, the SYN or the datagram arrives but the answer never leaves.
#  - a bind whose cgroup does not exist: portierd says where and why
#    (FILE:LINE:COL: error: 'NAME': cgroup ... does not exist ...), falls back, and
#    `portierctl status` shows it did not load the policy.
# Input and output default to accept, so only the binds can be what stops traffic.
#
# portierd and the cgroup listeners enter the namespace with nsenter, not `ip netns exec`,
# which mounts a fresh /sys and so hides the cgroup2 mount.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
require_root_or_skip
require_binaries
require_cmd nsenter
find_cgroup2_root
getent passwd nobody >/dev/null || skip "no user 'nobody'"
NOBODY_UID=$(id -u nobody)

make_ns_pair

CG_BASE="portier-test-$TEST_ID-$$"
make_cgroup "$CG_BASE/allowed"
make_cgroup "$CG_BASE/other"
log "cgroups $CGROUP2_ROOT/$CG_BASE/{allowed,other}"

POLICY="$WORKDIR/binds.toml"
cat >"$POLICY" <<TOML
[policy]
input  = "accept"
output = "accept"

[[bind]]
name      = "web-owner"
protocols = "tcp"
ports     = [8081]
cgroup    = "$CG_BASE/allowed"

[[bind]]
name      = "nobody-owner"
protocols = ["tcp", "udp"]
ports     = [8082]
user      = "nobody"
TOML

# web_owner_drops: the packets the kernel counted on the web-owner bind's rule.
web_owner_drops() {
  local line
  line=$(nft_table "$HOST_NS" | grep 'comment "web-owner"') ||
    fail "no rule with comment \"web-owner\" in the loaded table:
$(nft_table "$HOST_NS")"
  [[ "$line" =~ counter\ packets\ ([0-9]+) ]] || fail "web-owner's rule has no counter: $line"
  printf '%s\n' "${BASH_REMATCH[1]}"
}

# --- Without a firewall, a listener in either cgroup is reachable, and root answers on 8082.
listen_in_cgroup "$HOST_NS" tcp 8081 "$CG_BASE/other"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "no firewall yet, listener in $CG_BASE/other"
unlisten "$HOST_NS" tcp 8081
assert_connects "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 8082 8082 4 "$PEER_IP" "no firewall yet, server runs as root"
unlisten_src "$HOST_NS" udp 8082 4

start_portierd_hostfs "$HOST_NS" "$POLICY"
pctl status
assert_rc 0 "portierctl status"
assert_match "$OUT" '^loaded: +policy$' "portierctl status with every bind's cgroup present"

# --- cgroup bind on input.
listen_in_cgroup "$HOST_NS" tcp 8081 "$CG_BASE/allowed"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "listener in $CG_BASE/allowed, the bind's owner"
unlisten "$HOST_NS" tcp 8081

drops_before=$(web_owner_drops)
listen_in_cgroup "$HOST_NS" tcp 8081 "$CG_BASE/other"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "listener in $CG_BASE/other, not the bind's owner"
[[ "$PROBE_DETAIL" != *"Connection refused"* ]] ||
  fail "tcp to 8081 served from $CG_BASE/other was refused (RST), expected the SYN dropped: $PROBE_DETAIL"
drops_after=$(web_owner_drops)
assert_int_ge "$((drops_after - drops_before))" 1 \
  "packets counted by web-owner's drop rule for the connect to the listener in other (before $drops_before, after $drops_after)"
# The cgroup itself is fine: a port no bind names is served from it.
listen_in_cgroup "$HOST_NS" tcp 8083 "$CG_BASE/other"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8083 "no bind on 8083, listener in $CG_BASE/other"
unlisten "$HOST_NS" tcp 8083
unlisten "$HOST_NS" tcp 8081

# Back in the owner's cgroup, the port works again.
listen_in_cgroup "$HOST_NS" tcp 8081 "$CG_BASE/allowed"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "listener back in $CG_BASE/allowed"
unlisten "$HOST_NS" tcp 8081

# --- user bind on output: only nobody may answer from 8082.
for proto in tcp udp; do
  listen_src "$HOST_NS" $proto 8082 4 "$NOBODY_UID"
  assert_connects "$PEER_NS" "$HOST_NS" "$HOST_IP" $proto 8082 8082 4 "$PEER_IP" "server runs as nobody, the bind's owner"
  unlisten_src "$HOST_NS" $proto 8082 4
done

listen_src "$HOST_NS" tcp 8082 4
assert_no_connection "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8082 8082 4 "server runs as root: its SYN-ACK is dropped"
[[ "$PROBE_DETAIL" != *"Connection refused"* ]] ||
  fail "tcp to 8082 served by root was refused, expected no answer at all: $PROBE_DETAIL"
unlisten_src "$HOST_NS" tcp 8082 4

listen_src "$HOST_NS" udp 8082 4
probe_src "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 8082 8082 4 ||
  fail "udp to 8082 served by root: expected the datagram to ARRIVE (only the answer is the bind's business), the server saw nothing ($PROBE_DETAIL)"
[[ "$PROBE_REPLY" != *pong-* ]] ||
  fail "udp server on 8082 running as root: expected its answer to be dropped by nobody-owner, but the peer got '$PROBE_REPLY'"
log "ok: udp to 8082 served by root arrives, its answer is dropped ($PROBE_DETAIL)"
unlisten_src "$HOST_NS" udp 8082 4

stop_portierd

# --- A bind whose cgroup does not exist: an error with its place, and a fallback.
MISSING="$CG_BASE/missing"
[[ ! -e "$CGROUP2_ROOT/$MISSING" ]] || fail "$CGROUP2_ROOT/$MISSING exists, but this test needs it absent"
GHOST="$WORKDIR/ghost.toml"
cat >"$GHOST" <<TOML
[policy]
input  = "accept"
output = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8081]
action    = "accept"

[[bind]]
name      = "ghost-owner"
protocols = "tcp"
ports     = [8081]
cgroup    = "$MISSING"
TOML
ghost_line=$(grep -n '^\[\[bind\]\]' "$GHOST" | cut -d: -f1)

start_portierd_hostfs "$HOST_NS" "$GHOST"
expected="$GHOST:$ghost_line:1: error: 'ghost-owner': cgroup $MISSING does not exist under $CGROUP2_ROOT"
assert_contains "$(cat "$PORTIERD_LOG")" "$expected" "portierd's log for a bind on a missing cgroup"
log "ok: portierd reports $(grep -F "'ghost-owner'" "$PORTIERD_LOG")"
pctl status
assert_rc 0 "portierctl status after the fallback"
loaded=$(awk '$1 == "loaded:" { print $2 }' <<<"$OUT")
[[ -n "$loaded" ]] || fail "portierctl status has no 'loaded:' line:
$OUT"
[[ "$loaded" != policy ]] ||
  fail "portierctl status says 'loaded: policy', but the policy's bind names a missing cgroup and cannot have been loaded:
$OUT"
# A fresh state dir has no last good policy, so the fallback is the fail-closed one.
assert_eq fail-closed "$loaded" "'loaded:' in portierctl status after the fallback"
assert_contains "$(cat "$PORTIERD_LOG")" "loaded the built-in fail-closed policy" "portierd's log after the fallback"
assert_no_match "$(nft_table "$HOST_NS")" 'ghost-owner|web-in' "the table loaded after the fallback"
log "ok: portierctl status shows loaded: $loaded"
stop_portierd

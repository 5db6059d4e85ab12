#!/usr/bin/env bash
# Binds: only the named owner may serve a port.
#  - cgroup= (input): a TCP listener on 8081 in cgroup <root>/portier-test-<id>/allowed is
#    reachable from the peer; the same listener started from .../other gets no SYN (dropped,
#    not refused), while that cgroup serves an unbound port fine.
#  - user= (output): a TCP and a UDP server on 8082 answer when run as nobody (the owner);
#    run as root, the SYN or the datagram arrives but the answer never leaves.
#  - binds follow their units: a policy naming a cgroup and a unit that do not exist yet
#    loads (`loaded: policy`, status says they are not running) and nobody may serve their
#    ports; when the cgroup appears its listener is reachable and others are not; the
#    unit's cgroup made anew 20 times, a new listener each time, is reachable every time
#    (bind_window.py prints the window from mkdir to set change and to the first accepted
#    connection), and the chain's rules and the generation stay as they were.
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

# --- Binds that follow their units: the policy names a cgroup and a unit that do not exist
# yet. It loads (a missing unit is a state, not an error); their ports are served by nobody
# until they appear; each appearance changes only the bind's set.
UNIT_SLICE="portier-test-$TEST_ID-$$.slice"
UNIT="portier-bindtest-$$.service"
LATER="$CG_BASE/later"
[[ ! -e "$CGROUP2_ROOT/$LATER" && ! -e "$CGROUP2_ROOT/$UNIT_SLICE" ]] ||
  fail "$CGROUP2_ROOT/$LATER or $UNIT_SLICE exists, but this test needs them absent"
FOLLOW="$WORKDIR/follow.toml"
cat >"$FOLLOW" <<TOML
[policy]
input  = "accept"
output = "accept"

[[bind]]
name      = "later-owner"
protocols = "tcp"
ports     = [8084]
cgroup    = "$LATER"

[[bind]]
name      = "unit-owner"
protocols = "tcp"
ports     = [8085]
unit      = "$UNIT"
TOML

# `check` warns (and succeeds): the units are not running now.
check_out=$("$PORTIERCTL" check "$FOLLOW" 2>&1) || fail "portierctl check failed on a policy whose units do not run:
$check_out"
unit_line=$(grep -n '^unit ' "$FOLLOW" | cut -d: -f1)
assert_contains "$check_out" \
  "$FOLLOW:$((unit_line - 4)):1: warning: bind 'unit-owner': $UNIT is not running now: nobody may serve its ports until it runs" \
  "portierctl check of a policy whose unit does not run"

start_portierd_hostfs "$HOST_NS" "$FOLLOW"
pctl status
assert_rc 0 "portierctl status with no bound cgroup present"
assert_match "$OUT" '^loaded: +policy$' "portierctl status: a bind on a cgroup not there yet still loads the policy"
assert_match "$OUT" "bind later-owner: cgroup $LATER not running" "portierctl status names the bound cgroup that is not there"
assert_match "$OUT" "bind unit-owner: $UNIT not running" "portierctl status names the bound unit that does not run"
assert_contains "$(cat "$PORTIERD_LOG")" "bind unit-owner: $UNIT is not running: nobody may serve its ports until it runs" \
  "portierd's log at start"
# Nobody may serve the port meanwhile, not even from a cgroup that exists.
listen_in_cgroup "$HOST_NS" tcp 8084 "$CG_BASE/other"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8084 "later-owner's cgroup does not exist yet, listener in $CG_BASE/other"
unlisten "$HOST_NS" tcp 8084

# The cgroup appears: its listener is reachable, one outside it still is not.
handles_before=$(nsenter --net="/run/netns/$HOST_NS" nft -a list chain inet portier input | grep -c handle)
make_cgroup "$LATER"
listen_in_cgroup "$HOST_NS" tcp 8084 "$LATER"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8084 "listener in $LATER, made after portierd started"
unlisten "$HOST_NS" tcp 8084
listen_in_cgroup "$HOST_NS" tcp 8084 "$CG_BASE/other"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8084 "listener in $CG_BASE/other while $LATER exists"
unlisten "$HOST_NS" tcp 8084
pctl status
assert_match "$OUT" "bind later-owner: cgroup $LATER running \\(cgroup $LATER, id $(stat -c %i "$CGROUP2_ROOT/$LATER")\\)" \
  "portierctl status once the cgroup exists"
assert_contains "$(nft_table "$HOST_NS")" "set cgroups_later-owner" "the loaded table"
pctl rules
assert_match "$OUT" "bind later-owner +cgroup $LATER +running +$(stat -c %i "$CGROUP2_ROOT/$LATER") " "portierctl rules' owner table"

# The unit: made anew 20 times (a restart each), a new listener each time, reachable every
# time. bind_window.py times each round from the mkdir to the set change and to the first
# accepted connection.
make_cgroup "$UNIT_SLICE"
UNIT_DIR="$CGROUP2_ROOT/$UNIT_SLICE/$UNIT"
on_exit "rmdir_cgroup '$UNIT_DIR'"
window=$(nsenter --net="/run/netns/$HOST_NS" "$PYTHON" "$PORTIER_SOURCE_DIR/tests/integration/bind_window.py" \
  --cgroup "$UNIT_DIR" --port 8085 --peer-ns "/run/netns/$PEER_NS" --address "$HOST_IP" --rounds 20 2>&1) ||
  fail "a listener of $UNIT was not reachable in every round:
$window"
log "$(grep '^window:' <<<"$window")"
[[ $(grep -c '^round .* first connection accepted' <<<"$window") -eq 20 ]] || fail "expected 20 reachable rounds:
$window"
assert_contains "$(cat "$PORTIERD_LOG")" "bind unit-owner: $UNIT started (cgroup id" "portierd's log when the unit starts"
assert_contains "$(cat "$PORTIERD_LOG")" "bind unit-owner: $UNIT stopped" "portierd's log when the unit stops"
# Only sets changed: the input chain has the same rules as before, and no new generation.
handles_after=$(nsenter --net="/run/netns/$HOST_NS" nft -a list chain inet portier input | grep -c handle)
assert_eq "$handles_before" "$handles_after" "rules in the input chain before and after 20 restarts"
pctl status
assert_match "$OUT" '^generation: +1$' "the generation after the binds followed their units (no reload)"
stop_portierd

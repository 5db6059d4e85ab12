#!/usr/bin/env bash
# portierd started with a broken policy file still loads a firewall before anything else:
# - with a last good policy in its state directory, that one (its log names the file:line:col
#   of the error and says it fell back; real traffic shows the last good policy);
# - without one, the built-in fail-closed policy: new inbound connections are dropped,
#   loopback works, the host's own outbound connections work, and a connection established
#   before the start keeps flowing.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "stream-in"
protocols = "tcp"
ports     = [5001]
action    = "accept"
TOML
BROKEN="$WORKDIR/broken.toml"
cat >"$BROKEN" <<'TOML'
[policy]
input  = "dorp"
output = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML
broken_error="$BROKEN:2:10: error: unknown action 'dorp'"

# --- 1. a good start leaves last-good.toml; a broken file then falls back to it ----------------
start_portierd "$HOST_NS" "$POLICY"
state=$STATE_DIR
[[ -s "$state/last-good.toml" ]] || fail "portierd started with a good policy but wrote no $state/last-good.toml"
stop_portierd
# Something else in the table, so that the fallback start visibly replaces it.
in_ns "$HOST_NS" nft delete table inet portier
PORTIERD_STATE_DIR=$state start_portierd "$HOST_NS" "$BROKEN"
log_text=$(cat "$PORTIERD_LOG")
assert_contains "$log_text" "$broken_error" "portierd's log when the policy file is broken"
assert_contains "$log_text" "loaded the last good policy from $state/last-good.toml" "portierd's log when it falls back to the last good policy"
log "ok: the log names the error ($broken_error...) and the fallback"
assert_status loaded last-good "started with a broken file and a last good policy"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "last good policy: web-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "last good policy: input reject"
# A reload of the still broken file changes nothing and says why.
pctl reload
assert_rc 1 "portierctl reload of the broken file"
assert_contains "$ERR" "$broken_error" "portierctl reload of the broken file"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "last good policy after a failed reload"
stop_portierd
in_ns "$HOST_NS" nft delete table inet portier

# --- 2. no last good policy: fail-closed --------------------------------------------------------
# A connection made while the good policy is in force (so conntrack knows it) must survive
# the switch to fail-closed.
PORTIERD_STATE_DIR='' start_portierd "$HOST_NS" "$POLICY"
stream_start pre "$PEER_NS" "$HOST_NS" "$HOST_IP" 5001
stop_portierd
empty_state="$WORKDIR/empty-state"
PORTIERD_STATE_DIR=$empty_state start_portierd "$HOST_NS" "$BROKEN"
log_text=$(cat "$PORTIERD_LOG")
assert_contains "$log_text" "$broken_error" "portierd's log when the policy file is broken and no last good policy exists"
assert_contains "$log_text" "fail-closed" "portierd's log when it loads the fail-closed policy"
assert_status loaded fail-closed "started with a broken file and an empty state directory"
listing=$(nft_table "$HOST_NS")
assert_match "$listing" 'hook input .*policy drop;' "fail-closed ruleset: the input chain drops"

assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "fail-closed: new inbound tcp"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" udp 5353 "fail-closed: new inbound udp"
# Loopback inside the host namespace.
listen "$HOST_NS" tcp 8081
token="loopback-$$"
printf '%s\n' "$token" | in_ns "$HOST_NS" timeout 5 socat -u - TCP:127.0.0.1:8081,connect-timeout=2 ||
  fail "fail-closed: a loopback tcp connection in $HOST_NS failed"
wait_until 3 "the loopback token at the listener" grep -qx -- "$token" "$WORKDIR/rx-$HOST_NS-tcp-8081"
log "ok: fail-closed: loopback tcp works"
# The host's own new outbound connection, and the answer that comes back on it.
listen_echo "$PEER_NS" tcp 9090
reply=$(request "$HOST_NS" "$PEER_IP" tcp 9090)
[[ "$reply" == *pong-ping* ]] || fail "fail-closed: host -> peer tcp 9090 should connect and get its answer back, got: $reply"
log "ok: fail-closed: outbound connection and its replies (established) work"
assert_stream_flows pre "fail-closed: a connection established before the start"
stop_portierd

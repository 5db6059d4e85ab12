#!/usr/bin/env bash
# Panic mode: `portierctl panic on` drops everything but loopback: new inbound and outbound
# connections and an established stream too (it stalls, without a reset); `panic on
# --keep-established` keeps the stream flowing while new connections are still dropped;
# `panic off` brings the policy back and the stalled stream resumes on the same connection.
# Panic mode survives a daemon restart.
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
name      = "stream-in"
protocols = "tcp"
ports     = [5001]
action    = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML

start_portierd "$HOST_NS" "$POLICY"
listen "$HOST_NS" tcp 8081
listen_echo "$PEER_NS" tcp 9090

loopback_works() {
  local token="loopback-$$-$RANDOM"
  printf '%s\n' "$token" | in_ns "$HOST_NS" timeout 5 socat -u - TCP:127.0.0.1:8081,connect-timeout=2 2>/dev/null &&
    wait_until 3 "the loopback token at the listener" grep -qx -- "$token" "$WORKDIR/rx-$HOST_NS-tcp-8081"
}
outbound_reply() { request "$HOST_NS" "$PEER_IP" tcp 9090; }

stream_start panic "$PEER_NS" "$HOST_NS" "$HOST_IP" 5001
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "before panic"
[[ "$(outbound_reply)" == *pong-ping* ]] || fail "before panic: host -> peer tcp 9090 gets no answer"

# --- panic on ---------------------------------------------------------------------------------
pctl panic on
assert_rc 0 "portierctl panic on"
assert_status mode panic "panic on"
assert_stream_stalled panic "panic on drops established traffic"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "panic on: new inbound"
reply=$(outbound_reply)
[[ "$reply" != *pong-ping* ]] || fail "panic on: host -> peer tcp 9090 should be dropped, but got the answer: $reply"
log "ok: panic on: new outbound dropped ($reply)"
loopback_works || fail "panic on: loopback tcp in $HOST_NS should still work"
log "ok: panic on: loopback works"
pctl apply "$POLICY"
assert_rc 1 "portierctl apply while panic mode is on"
assert_match "$ERR" 'panic' "portierctl apply while panic mode is on"

# Panic mode is runtime state: a restart keeps it.
restart_portierd "$HOST_NS" "$POLICY"
assert_status mode panic "after a restart in panic mode"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "panic on, after a restart"
assert_stream_stalled panic "panic on, after a restart"

# --- panic off: the same connection resumes ----------------------------------------------------
pctl panic off
assert_rc 0 "portierctl panic off"
assert_status mode normal "panic off"
assert_stream_flows panic "panic off: the stalled stream resumes on the same connection"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "panic off"
[[ "$(outbound_reply)" == *pong-ping* ]] || fail "panic off: host -> peer tcp 9090 gets no answer"

# --- panic on --keep-established ----------------------------------------------------------------
pctl panic on --keep-established
assert_rc 0 "portierctl panic on --keep-established"
assert_status mode panic "panic on --keep-established"
assert_stream_flows panic "panic on --keep-established" 5
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "panic on --keep-established: new inbound"
reply=$(outbound_reply)
[[ "$reply" != *pong-ping* ]] || fail "panic on --keep-established: host -> peer tcp 9090 (new) should be dropped, got: $reply"
loopback_works || fail "panic on --keep-established: loopback tcp in $HOST_NS should still work"
assert_stream_flows panic "panic on --keep-established, a while later" 5
pctl panic off
assert_rc 0 "portierctl panic off"
assert_status mode normal "panic off again"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "panic off again"
assert_stream_flows panic "at the end"
stop_portierd

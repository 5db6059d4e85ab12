#!/usr/bin/env bash
# An established TCP connection (a stream sending 50 KiB/s from the peer to the host) lives
# through 100 reloads, 50 of the same policy and 50 alternating with a changed one, and
# through apply --confirm + rollback and apply --confirm + the automatic rollback: the very
# same connection (no reset, no reconnect) keeps delivering data. Reports reload latency.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$WORKDIR/a.toml" <<'TOML'
[policy]
input  = "drop"
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
# B: the same stream rule, web-in gone, other rules and a set added: a different table.
cat >"$WORKDIR/b.toml" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[set.friends]
family   = "ipv4"
elements = ["192.0.2.0/24"]

[[rule]]
name      = "friends-in"
from      = "@friends"
action    = "accept"

[[rule]]
name      = "stream-in"
protocols = "tcp"
ports     = [5001]
action    = "accept"

[[rule]]
name      = "alt-in"
protocols = ["tcp", "udp"]
ports     = ["9000-9100"]
action    = "accept"
TOML
cp "$WORKDIR/a.toml" "$POLICY"

start_portierd "$HOST_NS" "$POLICY"
stream_start reload "$PEER_NS" "$HOST_NS" "$HOST_IP" 5001
generation0=$(status_field generation)

# reload_n N FILE_A [FILE_B]: N reloads, the policy file alternating between A and B.
times=()
reload_n() {
  local n=$1 a=$2 b=${3:-$2} i t
  for ((i = 0; i < n; i++)); do
    if ((i % 2 == 0)); then cp "$a" "$POLICY"; else cp "$b" "$POLICY"; fi
    t=$EPOCHREALTIME
    pctl reload
    assert_rc 0 "portierctl reload #$i ($( ((i % 2 == 0)) && echo "${a##*/}" || echo "${b##*/}"))"
    times+=("$(awk -v a="$t" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }')")
    assert_stream_alive reload "during reload #$i"
  done
}

reload_n 50 "$WORKDIR/a.toml"
assert_stream_flows reload "after 50 reloads of the same policy"
reload_n 50 "$WORKDIR/a.toml" "$WORKDIR/b.toml"
assert_stream_flows reload "after 50 reloads alternating between two different policies"
generation=$(status_field generation)
log "generation $generation0 -> $generation after 100 reloads"
stats=$(printf '%s\n' "${times[@]}" | sort -g | awk '{ v[NR] = $1; s += $1 } END {
  printf "mean %.1f ms, p50 %.1f ms, max %.1f ms", 1000 * s / NR, 1000 * v[int(NR * 0.5)], 1000 * v[NR] }')
log "portierctl reload (command, D-Bus call and kernel transaction): $stats"
# The last reload loaded b.toml: its rules are in force.
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "b.toml in force after the last reload"

# apply --confirm, then rollback: two table replacements.
pctl apply "$WORKDIR/a.toml" --confirm 60
assert_rc 0 "portierctl apply a.toml --confirm 60"
assert_stream_flows reload "after apply --confirm 60"
pctl rollback
assert_rc 0 "portierctl rollback"
assert_status mode normal "after rollback"
assert_stream_flows reload "after apply --confirm + rollback"
# apply --confirm 2 and the daemon's own rollback.
pctl apply "$WORKDIR/a.toml" --confirm 2
assert_rc 0 "portierctl apply a.toml --confirm 2"
wait_until 8 "the automatic rollback (mode normal again)" eval '[[ "$(status_field mode)" == normal ]]'
assert_stream_flows reload "after apply --confirm 2 and the automatic rollback"

bytes=$(stream_bytes reload)
log "ok: the same TCP connection carried $bytes bytes through 100 reloads and two apply/rollback cycles"
stop_portierd

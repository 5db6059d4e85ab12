#!/usr/bin/env bash
# Timed rules: `portierctl allow tcp/PORT --for 4s` opens the port at once and closes it by
# itself after 4 s. A timed rule survives a daemon restart (SIGTERM, start again with the
# same state directory) with its remaining time, and still expires on time; one that
# expired while the daemon was down is gone as soon as the daemon is back.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair

# input = reject: a closed port answers with a reset at once, so the probes are quick and
# the moment a port closes can be seen to a fraction of a second.
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
TOML
start_portierd "$HOST_NS" "$POLICY"
for port in 9000 9001 9002; do listen "$HOST_NS" tcp "$port"; done
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 9000 "no timed rule yet"

# timed_left NAME: the "for Ns" of a timed rule in `portierctl rules`, as N; empty if the
# rule is not listed.
timed_left() {
  pctl rules
  ((RC == 0)) || fail "portierctl rules exited $RC: $ERR"
  awk -v n="$1" 'NR > 1 && $1 == n { if (match($0, /for [0-9]+s/)) print substr($0, RSTART + 4, RLENGTH - 5) }' <<<"$OUT"
}
timed_listed() { pctl rules && awk -v n="$1" 'NR > 1 && $1 == n { found = 1 } END { exit !found }' <<<"$OUT"; }
port_refused() { ! probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp "$1" && [[ "$PROBE_DETAIL" == *"Connection refused"* ]]; }
# in_range VALUE LOW HIGH (decimals allowed)
in_range() { awk -v v="$1" -v l="$2" -v h="$3" 'BEGIN { exit !(v >= l && v <= h) }'; }

# --- 1. --for 4s: open now, closed after 4 s --------------------------------------------------
t0=$(now_s)
pctl allow tcp/9000 --for 4s
assert_rc 0 "portierctl allow tcp/9000 --for 4s"
name=$(awk '{ print $1; exit }' <<<"$OUT")
[[ "$name" == timed-* ]] || fail "portierctl allow should name the timed rule, said: $OUT"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9000 "timed rule $name"
left=$(timed_left "$name")
[[ "$left" =~ ^[0-9]+$ ]] && ((left >= 2 && left <= 4)) ||
  fail "portierctl rules should show $name with 2 to 4 s left, seen '${left}': $OUT"
pctl status
assert_match "$OUT" '^rules: +2 ' "portierctl status counts the timed rule"
sleep 2.5
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9000 "timed rule $name, $(elapsed_since "$t0") s after it was added"
wait_until 10 "tcp 9000 to close after the 4 s timed rule" port_refused 9000
closed=$(elapsed_since "$t0")
in_range "$closed" 3.8 6 || fail "tcp 9000 closed $closed s after allow --for 4s, expected about 4 s"
log "ok: tcp 9000 closed again $closed s after allow --for 4s"
timed_listed "$name" && fail "portierctl rules still lists $name after it expired: $OUT"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "the policy's own rule after the expiry"

# --- 2. across a restart -----------------------------------------------------------------
t1=$(now_s)
pctl allow tcp/9001 --for 20s
assert_rc 0 "portierctl allow tcp/9001 --for 20s"
long=$(awk '{ print $1; exit }' <<<"$OUT")
pctl allow tcp/9002 --for 5s
assert_rc 0 "portierctl allow tcp/9002 --for 5s"
short=$(awk '{ print $1; exit }' <<<"$OUT")
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9001 "timed rule $long"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9002 "timed rule $short"
stop_portierd
log "portierd stopped $(elapsed_since "$t1") s after the timed rules were added; $short expires while it is down"
sleep 6
PORTIERD_STATE_DIR=$STATE_DIR start_portierd "$HOST_NS" "$POLICY"
back=$(elapsed_since "$t1")
log "portierd is back $back s after the timed rules were added"
wait_until 3 "$short (expired while portierd was down) to be gone after the restart" port_refused 9002
log "ok: $short, expired while portierd was down, closed $WAITED s after the restart"
timed_listed "$short" && fail "portierctl rules lists $short, which expired while portierd was down: $OUT"
left=$(timed_left "$long")
expected=$(awk -v b="$back" 'BEGIN { printf "%d", 20 - b }')
[[ "$left" =~ ^[0-9]+$ ]] && ((left >= expected - 2 && left <= expected + 1)) ||
  fail "after the restart portierctl rules should show $long with about $expected s left, seen '${left}':
$OUT"
log "ok: after the restart $long is listed with $left s left (expected about $expected)"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9001 "timed rule $long after the restart"
# Still open shortly before its end, closed shortly after.
pause=$(awk -v e="$(elapsed_since "$t1")" 'BEGIN { p = 18.5 - e; if (p < 0) p = 0; printf "%.1f", p }')
sleep "$pause"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9001 "timed rule $long $(elapsed_since "$t1") s after it was added (20 s)"
wait_until 10 "tcp 9001 to close at the end of its 20 s" port_refused 9001
closed=$(elapsed_since "$t1")
in_range "$closed" 19.5 22.5 || fail "tcp 9001 closed $closed s after allow --for 20s (across a restart), expected about 20 s"
log "ok: tcp 9001 closed $closed s after allow --for 20s, across a restart"
timed_listed "$long" && fail "portierctl rules still lists $long after it expired: $OUT"
pctl status
assert_match "$OUT" '^rules: +1 ' "portierctl status after every timed rule expired"
stop_portierd

#!/usr/bin/env bash
# portierctl's exit codes: 0 ok, 1 error, 2 usage, 3 daemon or bus not reachable (README).
# Needs no root: offline commands, and a private bus on which no portierd runs.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_cmd dbus-daemon
require_binaries

GOOD="$WORKDIR/good.toml"
cat >"$GOOD" <<'TOML'
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
BAD="$WORKDIR/bad.toml"
cat >"$BAD" <<'TOML'
[policy]
input  = "dorp"
output = "accept"
TOML

pctl frobnicate
assert_rc 2 "portierctl frobnicate"
pctl enable
assert_rc 2 "portierctl enable without a rule name"
pctl check
assert_rc 2 "portierctl check without a file"

pctl check "$GOOD"
assert_rc 0 "portierctl check of a valid policy"
pctl check "$BAD"
assert_rc 1 "portierctl check of an invalid policy"
assert_contains "$OUT$ERR" "$BAD:2:10: error: unknown action 'dorp' for 'input' (did you mean 'drop'?)" \
  "portierctl check of an invalid policy"
pctl check "$WORKDIR/missing.toml"
assert_rc 1 "portierctl check of a file that does not exist"
assert_contains "$OUT$ERR" "$WORKDIR/missing.toml" "portierctl check of a file that does not exist"
pctl show --policy "$BAD"
assert_rc 1 "portierctl show --policy of an invalid policy"
[[ "$OUT" != *"table inet portier"* ]] || fail "portierctl show --policy of an invalid policy printed a ruleset:
$OUT"
pctl show --policy "$GOOD"
assert_rc 0 "portierctl show --policy of a valid policy"
assert_contains "$OUT" "table inet portier" "portierctl show --policy of a valid policy"
pctl panic off --keep-established
assert_rc 2 "portierctl panic off --keep-established"
pctl set del blocklist 192.0.2.1 --timeout 1m
assert_rc 2 "portierctl set del --timeout"
# 307445734561825861 minutes wrapped around 64 bits to 44 s before durations were checked.
for duration in 307445734561825861m 4294967296s 1d1; do
  pctl allow tcp/8080 --for "$duration"
  assert_rc 2 "portierctl allow --for $duration"
  assert_contains "$ERR" "--for takes a duration" "portierctl allow --for $duration"
  pctl set add blocklist 192.0.2.1 --timeout "$duration"
  assert_rc 2 "portierctl set add --timeout $duration"
done
# A --file is checked line by line before portierctl looks for the bus.
printf '192.0.2.1\n192.0.2.300\n' >"$WORKDIR/elements.txt"
pctl set add blocklist --file "$WORKDIR/elements.txt"
assert_rc 2 "portierctl set add --file with a bad line"
assert_contains "$ERR" "$WORKDIR/elements.txt:2:1: error: '192.0.2.300' is not an address, a network or a port" \
  "portierctl set add --file with a bad line"
log "ok: usage 2, offline check/show 0 and 1"

# A bus with nobody on it, and no bus at all.
start_bus
printf '192.0.2.1\n' >"$WORKDIR/one.txt"
for cmd in status rules "disable ssh-in" reload "set add blocklist --file $WORKDIR/one.txt" "explain tcp 22"; do
  # shellcheck disable=SC2086
  pctl $cmd
  assert_rc 3 "portierctl $cmd with no portierd on the bus"
done
BUS_ADDRESS="unix:path=$WORKDIR/no-such-socket"
pctl status
assert_rc 3 "portierctl status with no bus at $BUS_ADDRESS"
log "ok: 3 when the daemon or the bus is not there"

#!/usr/bin/env bash
# Drift repair for real: portierd started with --no-table-owner loads its table without the
# owner flag (as on kernels before 5.12), so nft in the same namespace can delete it, flush
# a chain of it or add a rule to it. Each time portierd notices through the kernel's
# nftables notifications and puts its own table back: listed exactly as before (counters
# aside), within a bounded time (printed; the aim is 100 ms), with one DriftRepaired signal
# and a log line, and real traffic filtered as before. portierd's own changes (a toggle, set
# elements) are no drift, and a repair does not set off another one.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd dbus-monitor

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[set.blocklist]
family   = "ipv4"
elements = ["203.0.113.0/24"]

[[rule]]
name      = "blocked"
from      = "@blocklist"
action    = "drop"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML

start_portierd "$HOST_NS" "$POLICY" --no-table-owner
watch_signals

listing=$(nft_table "$HOST_NS")
assert_no_match "$listing" '^[[:space:]]*flags .*owner' "the table of portierd --no-table-owner"
assert_no_match "$listing" '# progname' "the table of portierd --no-table-owner"
before=$(table_shape "$HOST_NS")
chain=$(awk '$1 == "chain" { print $2; exit }' <<<"$before")
[[ -n "$chain" ]] || fail "no chain in portierd's table:
$before"
grep -q "chain input " <<<"$before" && chain=input

assert_filters() {
  local why=$1
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in ($why)"
  assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "input reject ($why)"
}
assert_filters "as loaded"

# portierd logs "table changed from outside (...)" before a repair, "restored in N ms" after.
repairs_logged() { grep -c 'table changed from outside' "$PORTIERD_LOG" || true; }
restores_logged() { grep -c 'table inet portier restored in' "$PORTIERD_LOG" || true; }

# outside_change WHAT NFT_ARGS...: runs nft in portierd's namespace (it must succeed: the
# table is not owned), then polls the listing as fast as it can until it is portierd's again.
# The figure counts from just before nft started, so it includes nft's own run time.
outside_change() {
  local what=$1
  shift
  local signals=$(signal_count DriftRepaired) logged=$(repairs_logged) t0 t1 rc=0 out ms nft_ms now
  t0=$EPOCHREALTIME
  out=$(in_ns "$HOST_NS" nft "$@" 2>&1) || rc=$?
  t1=$EPOCHREALTIME
  ((rc == 0)) || fail "'nft $*' failed (exit $rc) although the table has no owner flag: $out"
  while :; do
    now=$(table_shape "$HOST_NS")
    [[ "$now" == "$before" ]] && break
    if (($(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { print (b - a > 2) }'))); then
      assert_same_text "$before" "$now" "table inet portier 2 s after '$what'"
    fi
  done
  ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  nft_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  wait_until 2 "a DriftRepaired signal after '$what'" signal_seen DriftRepaired $((signals + 1))
  wait_until 2 "portierd to log the repair after '$what'" test "$(restores_logged)" -gt "$logged"
  assert_eq "$(restores_logged)" "$(repairs_logged)" "repairs begun and finished in portierd's log"
  local took
  took=$(grep -o 'restored in [0-9.]* ms' "$PORTIERD_LOG" | tail -n1)
  log "ok: '$what' repaired: table back within $ms ms of starting nft (nft itself ran $nft_ms ms); portierd: $took"
  REPAIR_MS+=("$what: $ms ms")
  # One change, one repair: no second one follows, and the repair set off no other.
  sleep 0.5
  assert_eq $((signals + 1)) "$(signal_count DriftRepaired)" "DriftRepaired signals after '$what'"
  assert_eq $((logged + 1)) "$(repairs_logged)" "repairs logged after '$what'"
  assert_same_text "$before" "$(table_shape "$HOST_NS")" "table inet portier 0.5 s after the repair of '$what'"
  kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd died after '$what': $(cat "$PORTIERD_LOG")"
}
REPAIR_MS=()

outside_change "nft delete table inet portier" delete table inet portier
assert_filters "after nft delete table"
outside_change "nft flush chain inet portier $chain" flush chain inet portier "$chain"
assert_filters "after nft flush chain"
outside_change "nft insert rule inet portier $chain tcp dport 7070 accept" \
  insert rule inet portier "$chain" tcp dport 7070 accept
assert_filters "after nft insert rule"
# The policy's element, from whichever kernel set of the table holds it as listed.
delete_element=$(awk '$1 == "set" { set = $2 }
  /203\.0\.113\.0\/24/ && set != "" { print "delete element inet portier " set " { 203.0.113.0/24 }"; set = "" }' <<<"$before")
[[ -n "$delete_element" ]] || fail "no set of the table lists 203.0.113.0/24:
$before"
outside_change "nft $delete_element" -f - <<<"$delete_element"
outside_change "nft flush ruleset" flush ruleset
assert_filters "after nft flush ruleset"

# The signal says what happened.
assert_match "$(signal_args DriftRepaired)" 'table inet portier changed by another process' "DriftRepaired's argument"

# portierd's own changes are not drift.
signals=$(signal_count DriftRepaired)
logged=$(repairs_logged)
pctl disable web-in
assert_rc 0 "portierctl disable web-in"
pctl set add blocklist 198.51.100.7
assert_rc 0 "portierctl set add blocklist 198.51.100.7"
pctl reload
assert_rc 0 "portierctl reload"
pctl enable web-in
assert_rc 0 "portierctl enable web-in"
pctl set del blocklist 198.51.100.7
assert_rc 0 "portierctl set del blocklist 198.51.100.7"
sleep 0.5
assert_eq "$signals" "$(signal_count DriftRepaired)" "DriftRepaired signals after portierd's own changes"
assert_eq "$logged" "$(repairs_logged)" "repairs logged after portierd's own changes"
assert_same_text "$before" "$(table_shape "$HOST_NS")" "table inet portier after portierd's own changes and their undoing"
log "ok: portierd's own toggles, set edits and reload set off no repair"

# Another table in the namespace is none of portierd's business.
in_ns "$HOST_NS" nft add table inet other
in_ns "$HOST_NS" nft add chain inet other c
sleep 0.3
assert_eq "$signals" "$(signal_count DriftRepaired)" "DriftRepaired signals after a change to another table"
in_ns "$HOST_NS" nft delete table inet other

log "repair times (from the start of nft to the table listed as before): ${REPAIR_MS[*]}"
stop_portierd
# Without the owner flag the table stays after portierd exits, too.
assert_same_text "$before" "$(table_shape "$HOST_NS")" "table inet portier after portierd exited"

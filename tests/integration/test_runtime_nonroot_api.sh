#!/usr/bin/env bash
# Every method that changes the firewall, called directly on the bus (gdbus and busctl, not
# through portierctl) by uid 65534, fails with org.portier.Firewall1.Error.AccessDenied (no
# polkitd on this bus), and nothing changes: not the ruleset, not the state files, not the
# pending apply, the timed rule or the set elements root made. Reading stays open.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd gdbus busctl

setpriv --reuid=65534 --regid=65534 --clear-groups true ||
  skip "setpriv cannot switch to uid 65534 here"

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[set.blocklist]
family   = "ipv4"

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
OTHER="$WORKDIR/other.toml"
cat >"$OTHER" <<'TOML'
[policy]
input  = "accept"
output = "accept"
TOML
chmod 644 "$POLICY" "$OTHER"

start_portierd "$HOST_NS" "$POLICY"
# State that the refused calls would change: a pending apply (of the same policy, so traffic
# stays as it is), a timed rule, a set element.
pctl allow tcp/9000 --for 10m
assert_rc 0 "portierctl allow tcp/9000 --for 10m (root)"
timed=$(awk '{ print $1; exit }' <<<"$OUT")
pctl set add blocklist 203.0.113.7
assert_rc 0 "portierctl set add blocklist 203.0.113.7 (root)"
cp "$POLICY" "$WORKDIR/pending.toml"
chmod 644 "$WORKDIR/pending.toml"
pctl apply "$WORKDIR/pending.toml" --confirm 600
assert_rc 0 "portierctl apply --confirm 600 (root)"

snapshot() {
  printf '%s\n' "$(table_shape "$HOST_NS")"
  local f
  for f in "$STATE_DIR"/* "$POLICY"; do
    printf '== %s\n' "$f"
    cat "$f"
  done
}
status_without_clock() { fw_gdbus GetStatus && sed -E 's/<uint64 [0-9]+>/<t>/g' <<<"$OUT"; }
before=$(snapshot)
status_before=$(status_without_clock)
generation_before=$(status_field generation)

denied='org.portier.Firewall1.Error.AccessDenied'
# method | gdbus arguments (GVariant texts, separated by ;) | busctl signature and arguments
calls=(
  "SetRuleEnabled|web-in;false;{'permanent': <true>}|sba{sv} web-in false 1 permanent b true"
  "SetRuleEnabled|web-in;false;{}|sba{sv} web-in false 0"
  "Reload||"
  "Apply|$OTHER;{}|sa{sv} $OTHER 0"
  "Apply|$OTHER;{'confirm_seconds': <uint32 30>}|sa{sv} $OTHER 1 confirm_seconds u 30"
  "Confirm||"
  "Rollback||"
  "AddTimedRule|{'ports': <['22']>, 'protocols': <['tcp']>, 'duration_seconds': <uint32 60>}|a{sv} 3 ports as 1 22 protocols as 1 tcp duration_seconds u 60"
  "RemoveTimedRule|$timed|s $timed"
  "AddSetElements|blocklist;['$PEER_IP'];{}|sasa{sv} blocklist 1 $PEER_IP 0"
  "RemoveSetElements|blocklist;['203.0.113.7']|sas blocklist 1 203.0.113.7"
  "SetPanic|true;{}|ba{sv} true 0"
  "SetPanic|false;{'keep_established': <true>}|ba{sv} false 1 keep_established b true"
)
for entry in "${calls[@]}"; do
  IFS='|' read -r method gargs bargs <<<"$entry"
  IFS=';' read -ra gargv <<<"$gargs"
  fw_gdbus --nobody "$method" "${gargv[@]}"
  assert_error_name "$denied" "$method($gargs) via gdbus as uid 65534"
  assert_contains "$ERR" "(caller uid 65534)" "$method via gdbus as uid 65534: the message names the caller"
  # shellcheck disable=SC2086
  _run_capture setpriv --reuid=65534 --regid=65534 --clear-groups \
    timeout 60 busctl --address="$BUS_ADDRESS" call "$FW_DEST" "$FW_PATH" "$FW_IFACE" "$method" $bargs
  ((RC != 0)) || fail "$method via busctl as uid 65534 succeeded: $OUT"
  assert_contains "$ERR" "permission denied" "$method($bargs) via busctl as uid 65534"
  log "ok: $method refused for uid 65534 (gdbus and busctl)"
done

assert_same_text "$before" "$(snapshot)" "ruleset, state files and policy file after the refused calls"
assert_same_text "$status_before" "$(status_without_clock)" "GetStatus after the refused calls"
assert_eq "$generation_before" "$(status_field generation)" "generation after the refused calls"
assert_status mode pending-confirm "the pending apply was neither confirmed nor rolled back"
log "ok: nothing changed"

# Reading is open to uid 65534.
for method in GetStatus ListRules GetRuleset; do
  fw_gdbus --nobody "$method"
  assert_rc 0 "$method as uid 65534"
done
fw_gdbus --nobody ListSetElements blocklist
assert_rc 0 "ListSetElements as uid 65534"
assert_contains "$OUT" "203.0.113.7" "ListSetElements as uid 65534"
fw_gdbus --nobody Check "'[policy]'" "'x.toml'"
assert_rc 0 "Check as uid 65534"

# Traffic as before; and root may do what uid 65534 may not.
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 9000 "timed rule $timed"
fw_gdbus Confirm
assert_rc 0 "Confirm as root"
fw_gdbus SetRuleEnabled web-in false "@a{sv} {}"
assert_rc 0 "SetRuleEnabled as root"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in disabled by root"
stop_portierd

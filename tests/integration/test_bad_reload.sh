#!/usr/bin/env bash
# A reload of an invalid policy fails with file:line:col and leaves the kernel's ruleset as it
# was; portierd started with an invalid policy reports it the same way and falls back to the
# last good policy, or to a fail-closed one.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
write_good_policy() {
  cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "web-in"
direction = "in"
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML
}
write_good_policy
start_portierd "$HOST_NS" "$POLICY"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "input drop"

# A good reload does change the ruleset (so "unchanged" below means something).
cat >>"$POLICY" <<'TOML'

[[rule]]
name      = "alt-in"
direction = "in"
protocols = "tcp"
ports     = [8081]
action    = "accept"
TOML
table0=$(nft_table "$HOST_NS")
pctl reload
assert_rc 0 "portierctl reload of a valid, changed policy"
table1=$(nft_table "$HOST_NS")
[[ "$table1" != "$table0" ]] || fail "a reload that adds rule alt-in left the ruleset unchanged:
$table1"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "alt-in after the reload"
table1=$(nft_table "$HOST_NS")  # again: the probe moved alt-in's counter

# Now break it: line 16, the value of direction starts in column 13.
cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "web-in"
direction = "in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "alt-in"
protocols = "tcp"
ports     = [8081]
direction = "sideways"
action    = "accept"
TOML
expected="$POLICY:16:13: error: 'direction' must be \"in\", \"out\" or \"forward\""

pctl check "$POLICY"
assert_rc 1 "portierctl check of the invalid policy"
assert_contains "$OUT$ERR" "$expected" "portierctl check of the invalid policy"

pctl reload
assert_rc 1 "portierctl reload of an invalid policy"
assert_contains "$ERR$OUT" "$expected" "portierctl reload of an invalid policy"
log "ok: reload refused with: $expected"
assert_same_text "$table1" "$(nft_table "$HOST_NS")" "ruleset after the refused reload"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "alt-in still loaded after the refused reload"

pctl status
assert_rc 0 "portierctl status after a refused reload"
assert_match "$OUT" '^ *policy:' "portierctl status after a refused reload"
assert_match "$OUT" '^ *rules:' "portierctl status after a refused reload"
kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd died after the refused reload"
stop_portierd

# Starting with an invalid policy: portierd reports it with file:line:col and still puts a
# ruleset in place before READY=1 (commit 60f3133): the last policy the kernel accepted,
# kept in the state directory, or else the built-in fail-closed one. It never leaves the
# host without a firewall and never exits over a bad file.
first_state=$STATE_DIR
[[ -f "$first_state/last-good.toml" ]] ||
  fail "portierd kept no last-good.toml in its state directory $first_state: $(ls -A "$first_state")"

start_portierd "$HOST_NS" "$POLICY"
assert_contains "$(cat "$PORTIERD_LOG")" "$expected" "stderr of portierd started with an invalid policy"
assert_contains "$(cat "$PORTIERD_LOG")" "fail-closed" "stderr of portierd started with an invalid policy and no last good one"
pctl status
assert_rc 0 "portierctl status with the fail-closed policy"
assert_match "$OUT" '^loaded: +fail-closed$' "portierctl status after a start with an invalid policy and a fresh state directory"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "fail-closed, although web-in allowed it before"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "fail-closed, although alt-in allowed it before"
log "ok: invalid policy and no last good one: fail-closed ruleset"
stop_portierd

PORTIERD_STATE_DIR=$first_state start_portierd "$HOST_NS" "$POLICY"
assert_contains "$(cat "$PORTIERD_LOG")" "$expected" "stderr of portierd started with an invalid policy"
pctl status
assert_rc 0 "portierctl status with the last good policy"
assert_match "$OUT" '^loaded: +last-good$' "portierctl status after a start with an invalid policy and a last good one"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in from the last good policy"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "alt-in from the last good policy"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8082 "input drop of the last good policy"
log "ok: invalid policy with a last good one: the last good ruleset"

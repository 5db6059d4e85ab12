#!/usr/bin/env bash
# A reload of an invalid policy fails with file:line:col and leaves the kernel's ruleset as it
# was; portierd started with an invalid policy exits non-zero with the same kind of message.
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

# Starting with an invalid policy: non-zero exit, the message on stderr, no ruleset, no READY.
new_netns fresh_ns f
rc=0
in_ns "$fresh_ns" env -u NOTIFY_SOCKET timeout 20 "$PORTIERD" --policy "$POLICY" \
  --state-dir "$WORKDIR/state-bad" >"$WORKDIR/bad.out" 2>"$WORKDIR/bad.err" || rc=$?
((rc != 0 && rc != 124)) ||
  fail "portierd with an invalid policy: expected a non-zero exit, seen status $rc (124: still running after 20 s)"
assert_contains "$(cat "$WORKDIR/bad.err")" "$expected" "stderr of portierd with an invalid policy"
log "ok: portierd with an invalid policy exits $rc: $expected"
if in_ns "$fresh_ns" nft list table inet portier >/dev/null 2>&1; then
  fail "portierd with an invalid policy left a table inet portier in $fresh_ns"
fi

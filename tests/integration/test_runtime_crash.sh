#!/usr/bin/env bash
# kill -9 of portierd leaves its ruleset in force: the table stays listed and real traffic is
# still filtered (an owned table is persistent, docs/nftables-owner.md). While no portierd
# runs, the orphaned table is anyone's to change; a new portierd with the same state
# directory takes it over and puts the policy back exactly (the intruder's rule is gone), with
# the runtime toggles of the crashed one; its status and toggles work, and an established
# connection lives through all of it.
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

[[rule]]
name      = "extra-in"
protocols = "tcp"
ports     = [6060]
action    = "accept"

[[rule]]
name      = "app-in"
protocols = "tcp"
ports     = [7070]
action    = "accept"
enabled   = false
TOML

# The table without what legitimately differs between two loads of the same policy: counters,
# the owner's comment, and the flags line (an orphan lists as "flags " without "owner").
shape() { table_shape "$HOST_NS" | grep -Ev '^[[:space:]]*flags( |$)'; }

start_portierd "$HOST_NS" "$POLICY"
first_pid=$PORTIERD_PID
stream_start crash "$PEER_NS" "$HOST_NS" "$HOST_IP" 5001
pctl disable extra-in
assert_rc 0 "portierctl disable extra-in (a runtime toggle for the next daemon to find)"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 6060 "extra-in disabled at run time"
before=$(shape)
[[ -n "$before" ]] || fail "no table inet portier in $HOST_NS after start"
owned=0
grep -Eq '^[[:space:]]*flags owner' <<<"$(nft_table "$HOST_NS")" && owned=1

# --- kill -9 ------------------------------------------------------------------------------
crash_portierd
log "portierd (pid $first_pid) killed with SIGKILL"
after=$(shape)
[[ -n "$after" ]] || fail "table inet portier is gone after kill -9 of portierd: a crash must not open the host"
assert_same_text "$before" "$after" "table inet portier after kill -9 of portierd"
log "ok: table inet portier still loaded after kill -9:
$(nft_table "$HOST_NS" | head -3)"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "after the crash: web-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "after the crash: app-in still off, input reject"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 6060 "after the crash: extra-in still off"
assert_stream_flows crash "after kill -9 of portierd"
pctl status
assert_rc 3 "portierctl status with no portierd on the bus"

# --- someone changes the orphan -----------------------------------------------------------
out=$(in_ns "$HOST_NS" nft insert rule inet portier input tcp dport 7070 accept 2>&1) ||
  fail "nft insert rule into the orphaned table failed (docs/nftables-owner.md says anyone may): $out"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "the intruder's rule in the orphaned table"

# --- a new portierd with the same state directory takes over ----------------------------------
PORTIERD_STATE_DIR=$STATE_DIR start_portierd "$HOST_NS" "$POLICY"
log "new portierd (pid $PORTIERD_PID) took over"
assert_same_text "$before" "$(shape)" "table inet portier after the new portierd took over (the intruder's rule must be gone)"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "the new portierd removed the intruder's rule"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 6060 "extra-in still disabled: runtime toggle kept across the crash"
assert_eq disabled "$(rule_field extra-in state)" "extra-in after the takeover"
assert_status mode normal "the new portierd"
if ((owned)); then
  assert_match "$(nft_table "$HOST_NS")" '^[[:space:]]*flags owner' "the table after the takeover: owned by the new portierd"
  in_ns "$HOST_NS" nft delete table inet portier 2>/dev/null &&
    fail "after the takeover another process could delete table inet portier: the new portierd does not own it"
  log "ok: the new portierd owns the table again (nft delete table refused)"
fi
assert_status loaded policy "the new portierd"
pctl enable app-in
assert_rc 0 "portierctl enable app-in on the new portierd"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "app-in enabled by the new portierd"
pctl disable app-in
assert_rc 0 "portierctl disable app-in on the new portierd"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "app-in disabled again by the new portierd"
pctl enable extra-in
assert_rc 0 "portierctl enable extra-in on the new portierd"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 6060 "extra-in enabled by the new portierd"
pctl reload
assert_rc 0 "portierctl reload on the new portierd"
assert_stream_flows crash "after the takeover, toggles and a reload"

# The new portierd owns the table as the first did: a second kill -9 and takeover work too.
crash_portierd
[[ -n "$(shape)" ]] || fail "table inet portier is gone after the second kill -9"
PORTIERD_STATE_DIR=$STATE_DIR start_portierd "$HOST_NS" "$POLICY"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 6060 "extra-in (enabled before the second crash)"
assert_stream_flows crash "after the second crash and takeover"
stop_portierd

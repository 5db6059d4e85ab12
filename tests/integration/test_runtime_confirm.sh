#!/usr/bin/env bash
# `portierctl apply FILE --confirm N`: the new policy is in force at once; unless confirmed
# within N seconds portierd goes back to the old one by itself, with no client connected
# (portierctl returns as soon as the policy is loaded); `confirm` keeps it and installs it as
# the policy file; `rollback` goes back at once, to the policy before a pending apply or,
# with none pending, to the previous good policy.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd dbus-monitor

make_ns_pair

# OLD: 8080 open, 7070 closed. NEW: 8080 rejected (quick to probe), 7070 open.
# THIRD: like NEW, but 6060 open and 7070 rejected.
POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "app-off"
protocols = "tcp"
ports     = [7070]
action    = "reject"
TOML
cp "$POLICY" "$WORKDIR/old.toml"
cat >"$WORKDIR/new.toml" <<'TOML'
# the new policy: the web port closes, the app port opens
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "web-off"
protocols = "tcp"
ports     = [8080]
action    = "reject"

[[rule]]
name      = "app-in"
protocols = "tcp"
ports     = [7070]
action    = "accept"
TOML
cat >"$WORKDIR/third.toml" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "web-off"
protocols = "tcp"
ports     = [8080]
action    = "reject"

[[rule]]
name      = "app-off"
protocols = "tcp"
ports     = [7070]
action    = "reject"

[[rule]]
name      = "other-in"
protocols = "tcp"
ports     = [6060]
action    = "accept"
TOML

start_portierd "$HOST_NS" "$POLICY"
watch_signals
# Listeners first, so that the probes inside the confirm window are quick.
listen "$HOST_NS" tcp 8080
listen "$HOST_NS" tcp 7070
listen "$HOST_NS" tcp 6060
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "old policy: web-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "old policy: app-off"
assert_status mode normal "before any apply"

# --- 1. Not confirmed: rolled back by the daemon alone ------------------------------------
t0=$(now_s)
pctl apply "$WORKDIR/new.toml" --confirm 3
assert_rc 0 "portierctl apply new.toml --confirm 3"
took=$(elapsed_since "$t0")
awk -v t="$took" 'BEGIN { exit !(t < 2.5) }' ||
  fail "portierctl apply --confirm 3 took $took s: it should return as soon as the policy is loaded"
log "ok: apply --confirm 3 returned after $took s; no client is connected from now on"
# Inside the 3 s window (the probes below are quick: accept or reject, no drop).
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "new policy in force: web-off"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "new policy in force: app-in"
pctl status
assert_match "$OUT" '^mode: +pending-confirm$' "portierctl status while the apply waits for confirmation"
assert_match "$OUT" '^confirm by: ' "portierctl status while the apply waits for confirmation"
in_window=$(elapsed_since "$t0")
awk -v t="$in_window" 'BEGIN { exit !(t < 3) }' ||
  fail "the checks of the new policy took until $in_window s after the apply, past the 3 s deadline: cannot tell which policy they saw"
log "ok: new policy in force and pending-confirm, checked $in_window s after the apply"

wait_until 10 "a RolledBack signal after the unconfirmed apply" signal_seen RolledBack 1
rolled=$(elapsed_since "$t0")
awk -v t="$rolled" 'BEGIN { exit !(t >= 2.8 && t <= 6) }' ||
  fail "the rollback came $rolled s after apply --confirm 3, expected about 3 s"
assert_contains "$(signal_args RolledBack)" 'string "not confirmed in time"' "RolledBack signal's reason"
log "ok: rolled back by itself $rolled s after the apply"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "old policy back: web-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "old policy back: app-off"
assert_status mode normal "after the automatic rollback"
pctl status
assert_no_match "$OUT" '^confirm by:' "portierctl status after the automatic rollback"
cmp -s "$POLICY" "$WORKDIR/old.toml" || fail "the policy file changed although the apply was rolled back:
$(diff -u "$WORKDIR/old.toml" "$POLICY")"
pctl confirm
assert_rc 1 "portierctl confirm with nothing pending"
assert_match "$ERR" 'no apply is waiting' "portierctl confirm with nothing pending"

# --- 2. Confirmed: kept, and installed as the policy file ------------------------------------
pctl apply "$WORKDIR/new.toml" --confirm 60
assert_rc 0 "portierctl apply new.toml --confirm 60"
assert_status mode pending-confirm "apply --confirm 60"
pctl confirm
assert_rc 0 "portierctl confirm"
assert_status mode normal "after confirm"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "confirmed new policy: web-off"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "confirmed new policy: app-in"
cmp -s "$POLICY" "$WORKDIR/new.toml" || fail "after confirm, the policy file $POLICY should be new.toml byte for byte:
$(diff -u "$WORKDIR/new.toml" "$POLICY")"
log "ok: confirm installed new.toml as the policy file"
# A reload now reads the installed file: still the new policy.
pctl reload
assert_rc 0 "portierctl reload after confirm"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "reload after confirm: app-in"
rolled_before=$(signal_count RolledBack)

# --- 3. rollback of a pending apply: back at once, no waiting ------------------------------
pctl apply "$WORKDIR/third.toml" --confirm 60
assert_rc 0 "portierctl apply third.toml --confirm 60"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 6060 "third policy: other-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "third policy: app-off"
t1=$(now_s)
pctl rollback
assert_rc 0 "portierctl rollback of the pending apply"
# The next probe, right after the command, sees the confirmed policy again.
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "rolled back to the confirmed policy: app-in"
log "ok: rollback took effect within $(elapsed_since "$t1") s (command and probe)"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "rolled back to the confirmed policy: web-off"
assert_status mode normal "after rollback"
assert_eq $((rolled_before + 1)) "$(signal_count RolledBack)" "RolledBack signals after portierctl rollback"
assert_contains "$(signal_args RolledBack)" 'string "rollback requested"' "RolledBack signal's reason"
cmp -s "$POLICY" "$WORKDIR/new.toml" || fail "the rolled back apply changed the policy file:
$(diff -u "$WORKDIR/new.toml" "$POLICY")"

# --- 4. rollback with nothing pending: the previous good policy (old.toml) --------------------
pctl rollback
assert_rc 0 "portierctl rollback with nothing pending"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "rolled back to the previous good policy: web-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "rolled back to the previous good policy: app-off"
assert_status loaded last-good "after rollback to the previous good policy"
assert_status mode normal "after rollback to the previous good policy"

kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd died: $(cat "$PORTIERD_LOG")"
stop_portierd

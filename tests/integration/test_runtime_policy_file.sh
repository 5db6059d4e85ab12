#!/usr/bin/env bash
# What is loaded and what starts at boot never disagree, or status says so. Every path
# through apply, confirm, rollback, reload, a bad file at start, the last good policy,
# fail-closed, panic and a restart, as docs/man/portierd.8 (POLICY FILE AND RESTARTS) lists
# them: what is in force now (portierctl rules, status) and after a restart.
#  - apply --confirm, then confirm, then rollback: the previous policy file comes back byte
#    for byte (comments and all), and a restart loads it (the port the rolled-back policy
#    opened stays closed);
#  - the same for an apply without --confirm;
#  - a pending apply, a start that fell back to the last good or the fail-closed policy, a
#    rollback whose file cannot be put back, and a file edited since it was loaded: status
#    says "policy file: differs from what is loaded (...)", status --json has
#    policy_file = "differs" and the detail, reload says what it does;
#  - panic survives a restart; the file agrees throughout.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
# the site policy: only the web port is open
[policy]
input  = "reject"
output = "accept"

[[rule]]
name      = "web-in"   # kept whole across a rollback, this comment too
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML
cp "$POLICY" "$WORKDIR/original.toml"
cat >"$WORKDIR/open.toml" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "open-5000"
protocols = "tcp"
ports     = [5000]
action    = "accept"
TOML

STATE="$WORKDIR/site.state"
mkdir -p "$STATE"
restart() { PORTIERD_STATE_DIR=$STATE restart_portierd "$HOST_NS" "$POLICY"; }

# The rule names in force, one line.
rule_names() {
  pctl rules
  ((RC == 0)) || fail "portierctl rules exited $RC: $ERR"
  awk 'NR > 1 && NF { print $1 }' <<<"$OUT" | sort | tr '\n' ' ' | sed 's/ $//'
}
assert_rules() { assert_eq "$1" "$(rule_names)" "rules in force ($2)"; }

# json_check EXPR WHAT: OUT is one line of JSON and the python expression EXPR over it (j) holds.
json_check() {
  local expr=$1 what=$2 result
  result=$("$PYTHON" -c '
import json, sys
j = json.loads(sys.stdin.read())
print(bool(eval(sys.argv[1])))' "$expr" <<<"$OUT" 2>&1) || fail "$what: not JSON ($result):
$OUT"
  [[ "$result" == True ]] || fail "$what: expected $expr, seen:
$OUT"
}

# assert_file_same WHY / assert_file_differs PATTERN WHY: the policy file line of status and
# the policy_file keys of status --json.
assert_file_same() {
  pctl status
  assert_contains "$OUT" "policy file: same as loaded" "portierctl status ($1)"
  pctl status --json
  json_check "j['policy_file'] == 'same' and 'policy_file_detail' not in j" "status --json ($1)"
}
assert_file_differs() {
  local pattern=$1 why=$2
  pctl status
  assert_match "$OUT" "^policy file: differs from what is loaded \(.*$pattern.*\)$" "portierctl status ($why)"
  pctl status --json
  json_check "j['policy_file'] == 'differs' and '$pattern' in j['policy_file_detail']" "status --json ($why)"
  log "ok: status says the policy file differs ($why)"
}

listen "$HOST_NS" tcp 5000
PORTIERD_STATE_DIR=$STATE start_portierd "$HOST_NS" "$POLICY"

# --- start, restart: the file is what is loaded -------------------------------------------------
assert_rules "web-in" "start"
assert_file_same "start"
restart
assert_file_same "restart"

# --- the issue's case: apply --confirm, confirm, rollback, restart -----------------------------
pctl apply "$WORKDIR/open.toml" --confirm 30
assert_rc 0 "apply open.toml --confirm 30"
assert_file_differs "waiting for confirmation" "apply --confirm pending"
pctl confirm
assert_rc 0 "confirm"
cmp -s "$POLICY" "$WORKDIR/open.toml" || fail "confirm did not install open.toml as the policy file"
assert_file_same "after confirm"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 5000 "open.toml confirmed: tcp/5000"
pctl rollback
assert_rc 0 "rollback after confirm"
assert_rules "web-in" "rollback after confirm"
assert_status loaded last-good "rollback after confirm"
cmp -s "$POLICY" "$WORKDIR/original.toml" || fail "rollback after confirm did not put the previous policy file back whole:
$(diff -u "$WORKDIR/original.toml" "$POLICY")"
log "ok: rollback after confirm put the previous policy file back byte for byte"
assert_file_same "rollback after confirm"
restart
assert_rules "web-in" "restart after the rollback"
assert_status loaded policy "restart after the rollback"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 5000 "restart after the rollback: tcp/5000 stays closed"
assert_file_same "restart after the rollback"

# --- apply without --confirm, rollback, restart ---------------------------------------------------
pctl apply "$WORKDIR/open.toml"
assert_rc 0 "apply open.toml"
cmp -s "$POLICY" "$WORKDIR/open.toml" || fail "apply did not install open.toml as the policy file"
assert_file_same "after apply"
pctl rollback
assert_rc 0 "rollback after apply"
cmp -s "$POLICY" "$WORKDIR/original.toml" || fail "rollback after apply did not put the previous policy file back:
$(diff -u "$WORKDIR/original.toml" "$POLICY")"
assert_rules "web-in" "rollback after apply"
assert_file_same "rollback after apply"
restart
assert_rules "web-in" "restart after rollback after apply"

# --- a pending apply, then a restart: the file (the old policy) is loaded -----------------------
pctl apply "$WORKDIR/open.toml" --confirm 60
assert_rc 0 "apply open.toml --confirm 60"
assert_rules "open-5000 web-in" "apply pending"
assert_file_differs "a rollback or a restart loads" "apply pending"
pctl reload
assert_rc 1 "reload while an apply is pending"
assert_contains "$ERR" "an apply is waiting for confirmation" "reload while an apply is pending"
restart
assert_rules "web-in" "restart while an apply was pending"
assert_status mode normal "restart while an apply was pending"
assert_file_same "restart while an apply was pending"

# --- a pending apply whose deadline passes: back by itself, the file never changed -------------------
pctl apply "$WORKDIR/open.toml" --confirm 1
assert_rc 0 "apply open.toml --confirm 1"
wait_until 10 "the unconfirmed apply rolled back" bash -c "DBUS_SYSTEM_BUS_ADDRESS='$BUS_ADDRESS' '$PORTIERCTL' status | grep -q '^mode: *normal'"
assert_rules "web-in" "deadline passed"
cmp -s "$POLICY" "$WORKDIR/original.toml" || fail "an apply whose deadline passed changed the policy file"
assert_file_same "deadline passed"

# --- an apply, then the file edited and reloaded: a rollback leaves the administrator's file ---------
pctl apply "$WORKDIR/open.toml"
assert_rc 0 "apply open.toml (to be edited)"
printf '# edited by hand after the apply\n' >>"$POLICY"
cp "$POLICY" "$WORKDIR/edited.toml"
pctl reload
assert_rc 0 "reload of the edited file"
pctl rollback
assert_rc 0 "rollback after apply, edit and reload"
cmp -s "$POLICY" "$WORKDIR/edited.toml" || fail "rollback overwrote a policy file edited after the apply"
assert_file_differs "a restart or reload loads the file" "rollback after apply, edit and reload"
cp "$WORKDIR/original.toml" "$POLICY"
pctl reload
assert_rc 0 "reload of the original file"
assert_rules "web-in" "reload of the original file"
assert_file_same "reload of the original file"

# --- a pending apply rolled back: the file never changed ------------------------------------------
pctl apply "$WORKDIR/open.toml" --confirm 60
pctl rollback
assert_rc 0 "rollback of a pending apply"
assert_rules "web-in" "rollback of a pending apply"
cmp -s "$POLICY" "$WORKDIR/original.toml" || fail "a rolled back pending apply changed the policy file"
assert_file_same "rollback of a pending apply"

# --- the file edited by hand, not reloaded; reload says what it does --------------------------
printf '\n[[rule]]\nname      = "ssh-in"\nprotocols = "tcp"\nports     = [22]\naction    = "accept"\n' >>"$POLICY"
assert_file_differs "changed since it was loaded: reload loads it" "file edited, not reloaded"
pctl reload
assert_rc 0 "reload of the edited file"
assert_contains "$OUT" "the policy file differs from what is loaded" "portierctl reload of the edited file"
assert_contains "$OUT" "loading the file" "portierctl reload of the edited file"
assert_rules "ssh-in web-in" "reload of the edited file"
assert_file_same "after reload"
pctl reload
assert_rc 0 "reload of an unchanged file"
assert_no_match "$OUT" "differs" "portierctl reload of an unchanged file"

# --- rollback with no file to put back (the edit was not an apply's): status says so --------------
pctl rollback
assert_rc 0 "rollback after a reload"
assert_rules "web-in" "rollback after a reload: the previous good policy"
assert_file_differs "a restart or reload loads the file" "rollback after a reload"
grep -q ssh-in "$POLICY" || fail "rollback changed a policy file that no apply wrote"
restart
assert_rules "ssh-in web-in" "restart after a rollback that left the file"
assert_file_same "restart after a rollback that left the file"

# --- a bad file at start: the last good policy; then fixed and reloaded -------------------------
cp "$POLICY" "$WORKDIR/good.toml"
printf '\n[[rule]]\nname = "broken"\naction = "sideways"\n' >>"$POLICY"
restart
assert_status loaded last-good "start with a bad policy file"
assert_rules "ssh-in web-in" "start with a bad policy file"
assert_file_differs "could not be loaded at start" "start with a bad policy file"
pctl reload
assert_rc 1 "reload of the bad file"
assert_file_differs "could not be loaded at start" "after a failed reload"
cp "$WORKDIR/good.toml" "$POLICY"
pctl reload
assert_rc 0 "reload of the fixed file"
assert_status loaded policy "reload of the fixed file"
assert_file_same "reload of the fixed file"

# --- a permanent toggle edits the file: it agrees, and a restart keeps it -------------------------
pctl disable ssh-in --permanent
assert_rc 0 "disable ssh-in --permanent"
assert_file_same "permanent toggle"
restart
assert_eq disabled "$(rule_field ssh-in state)" "ssh-in after a permanent toggle and a restart"
pctl enable ssh-in --permanent
assert_rc 0 "enable ssh-in --permanent"

# --- panic: in force across a restart; the file still agrees -----------------------------------
pctl panic on
assert_rc 0 "panic on"
assert_file_same "panic on"
restart
assert_status mode panic "restart in panic mode"
assert_file_same "restart in panic mode"
pctl panic off
assert_rc 0 "panic off"
assert_status mode normal "panic off"
assert_rules "ssh-in web-in" "panic off"
stop_portierd

# --- fail-closed: a bad file and no last good policy --------------------------------------------
printf '\n[[rule]]\nname = "broken"\naction = "sideways"\n' >>"$POLICY"
start_portierd "$HOST_NS" "$POLICY"
assert_status loaded fail-closed "a bad file, a fresh state directory"
assert_file_differs "fail-closed" "a bad file, a fresh state directory"
stop_portierd

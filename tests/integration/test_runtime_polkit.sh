#!/usr/bin/env bash
# Authorization with a real polkitd. With polkitd on the bus, a non-root caller may change
# the firewall exactly when polkit grants org.portier.Firewall1.manage: here a JS rule grants
# it to one user (uid 1, "daemon"), and the shipped action's default (auth_admin_keep) can
# not be met without an authentication agent, so uid 65534 is refused. Reading stays open
# to everyone. Once polkitd is gone, only root may change anything again.
#
# polkitd reads its actions and rules from fixed places (/usr/share/polkit-1/actions,
# /etc/polkit-1/rules.d, /usr/share/polkit-1/rules.d); it runs in a private mount namespace
# where those are bind mounts of folders of this test, so the host's files stay untouched
# and the mounts vanish with the process. It drops to its own user by itself.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd gdbus unshare mount

require_polkitd

GRANTED_UID=1
DENIED_UID=65534
GRANTED_USER=$(getent passwd "$GRANTED_UID" | cut -d: -f1)
[[ -n "$GRANTED_USER" ]] || skip "no user with uid $GRANTED_UID in the passwd database"
for uid in "$GRANTED_UID" "$DENIED_UID"; do
  setpriv --reuid="$uid" --regid="$uid" --clear-groups true || skip "setpriv cannot switch to uid $uid here"
done

# --- polkitd on a private bus ---------------------------------------------------------------
PK_ACTIONS="$WORKDIR/polkit/actions"
PK_RULES="$WORKDIR/polkit/rules.d"
PK_NO_RULES="$WORKDIR/polkit/no-rules.d"
mkdir -p "$PK_ACTIONS" "$PK_RULES" "$PK_NO_RULES"
cp "$PORTIER_SOURCE_DIR/systemd/org.portier.Firewall1.policy" "$PK_ACTIONS/"
cat >"$PK_RULES/50-portier-test.rules" <<JS
polkit.addRule(function(action, subject) {
  if (action.id == "org.portier.Firewall1.manage" && subject.user == "$GRANTED_USER")
    return polkit.Result.YES;
});
JS
chmod -R a+rX "$WORKDIR/polkit"

start_bus "$POLKIT_BUS_CONF"

# The host's own rules (/usr/share/polkit-1/rules.d) are hidden too: only ours decide.
start_test_polkitd() { start_polkitd "$PK_ACTIONS" "$PK_RULES" "$PK_NO_RULES"; }
start_test_polkitd

# polkit itself agrees with the rule, before portierd is involved: pkcheck asks for a
# process of each user (a sleep started under setpriv).
if command -v pkcheck >/dev/null 2>&1; then
  for uid in "$GRANTED_UID" "$DENIED_UID"; do
    setpriv --reuid="$uid" --regid="$uid" --clear-groups sleep 30 &
    sleeper=$!
    on_exit "kill $sleeper"
    rc=0
    out=$(DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDRESS timeout 10 pkcheck --action-id org.portier.Firewall1.manage \
      --process "$sleeper" 2>&1) || rc=$?
    kill "$sleeper" 2>/dev/null || true
    log "pkcheck for uid $uid: exit $rc${out:+ ($out)}"
    if ((uid == GRANTED_UID)); then
      ((rc == 0)) || fail "pkcheck says polkit does not grant org.portier.Firewall1.manage to uid $uid (exit $rc): $out"
    else
      ((rc != 0)) || fail "pkcheck says polkit grants org.portier.Firewall1.manage to uid $uid"
    fi
  done
fi

# --- portierd -------------------------------------------------------------------------------
new_netns FW_NS fw
POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[set.blocklist]
family = "ipv4"

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
chmod 644 "$POLICY"
start_portierd "$FW_NS" "$POLICY"

# as UID CMD...: CMD as that uid and gid with no supplementary groups, on the private bus.
as() {
  local uid=$1
  shift
  _run_capture setpriv --reuid="$uid" --regid="$uid" --clear-groups \
    env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" timeout 30 "$@"
}
pctl_as() {
  local uid=$1
  shift
  as "$uid" "$PORTIERCTL" "$@"
}
gdbus_as() {
  local uid=$1 method=$2
  shift 2
  as "$uid" gdbus call --address "$BUS_ADDRESS" --dest "$FW_DEST" --object-path "$FW_PATH" \
    --method "$FW_IFACE.$method" "$@"
}

shape() { table_shape "$FW_NS"; }
has_web_rule() { grep -q 'tcp dport 8080' <<<"$(shape)"; }
has_element() { grep -q "$1" <<<"$(shape)"; }

# Every read works for every caller.
assert_reads_open() {
  local why=$1 uid
  for uid in 0 "$GRANTED_UID" "$DENIED_UID"; do
    pctl_as "$uid" status
    assert_rc 0 "portierctl status as uid $uid ($why)"
    pctl_as "$uid" rules
    assert_rc 0 "portierctl rules as uid $uid ($why)"
    assert_match "$OUT" 'web-in' "portierctl rules as uid $uid ($why)"
    pctl_as "$uid" set list blocklist
    assert_rc 0 "portierctl set list blocklist as uid $uid ($why)"
    gdbus_as "$uid" GetRuleset
    assert_rc 0 "GetRuleset as uid $uid ($why)"
  done
  log "ok: reads open to uid 0, $GRANTED_UID and $DENIED_UID ($why)"
}

# assert_refused_changes UID WHY REASON: every kind of change by UID is refused with
# AccessDenied, quickly, with REASON in the message; the kernel's table and portierd's
# generation stay as they were.
assert_refused_changes() {
  local uid=$1 why=$2 reason=$3 before generation t0 ms
  before=$(shape)
  generation=$(status_field generation)
  t0=$EPOCHREALTIME
  gdbus_as "$uid" SetRuleEnabled web-in false '{}'
  ms=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }')
  assert_error_name org.portier.Firewall1.Error.AccessDenied "SetRuleEnabled web-in false as uid $uid ($why)"
  assert_match "$ERR" "org.portier.Firewall1.manage" "the AccessDenied message names the polkit action ($why)"
  assert_contains "$ERR" "$reason" "the AccessDenied message says why ($why)"
  log "ok: SetRuleEnabled as uid $uid refused in $ms ms ($why): ${ERR##*: }"
  ((ms < 3000)) || fail "refusing uid $uid took $ms ms ($why): a polkit call waited for a timeout"
  gdbus_as "$uid" Reload
  assert_error_name org.portier.Firewall1.Error.AccessDenied "Reload as uid $uid ($why)"
  gdbus_as "$uid" AddSetElements blocklist "['203.0.113.66']" '{}'
  assert_error_name org.portier.Firewall1.Error.AccessDenied "AddSetElements as uid $uid ($why)"
  gdbus_as "$uid" SetPanic true '{}'
  assert_error_name org.portier.Firewall1.Error.AccessDenied "SetPanic true as uid $uid ($why)"
  pctl_as "$uid" disable web-in
  ((RC != 0)) || fail "portierctl disable web-in as uid $uid succeeded ($why)"
  assert_match "$ERR" 'permission denied' "portierctl disable web-in as uid $uid ($why)"
  pctl_as "$uid" set add blocklist 203.0.113.66
  ((RC != 0)) || fail "portierctl set add as uid $uid succeeded ($why)"
  assert_same_text "$before" "$(shape)" "table inet portier after refused changes by uid $uid ($why)"
  assert_eq "$generation" "$(status_field generation)" "generation after refused changes by uid $uid ($why)"
  assert_status mode normal "after refused changes by uid $uid ($why)"
  log "ok: every change by uid $uid refused with AccessDenied, nothing changed ($why)"
}

# --- with polkitd -----------------------------------------------------------------------------
assert_reads_open "polkitd running"
# Without an agent, or for a call that does not allow interactive authorization (gdbus,
# portierctl without a terminal), auth_admin_keep is a refusal that says authentication
# was wanted. test_runtime_polkit_agent covers the password prompt.
needs_auth='polkit wants the caller to authenticate'
assert_refused_changes "$DENIED_UID" "polkitd running, no rule for uid $DENIED_UID" "$needs_auth"

# The granted user changes the firewall, and the kernel's table follows.
has_web_rule || fail "the table has no rule for tcp dport 8080 to begin with:
$(shape)"
generation=$(status_field generation)
pctl_as "$GRANTED_UID" disable web-in
assert_rc 0 "portierctl disable web-in as uid $GRANTED_UID (granted by the polkit rule)"
! has_web_rule || fail "portierctl disable web-in as uid $GRANTED_UID succeeded but the kernel still has the rule:
$(shape)"
assert_eq disabled "$(rule_field web-in state)" "web-in state after uid $GRANTED_UID disabled it"
pctl_as "$GRANTED_UID" enable web-in
assert_rc 0 "portierctl enable web-in as uid $GRANTED_UID"
has_web_rule || fail "portierctl enable web-in as uid $GRANTED_UID succeeded but the kernel has no rule for it"
pctl_as "$GRANTED_UID" set add blocklist 203.0.113.9
assert_rc 0 "portierctl set add blocklist 203.0.113.9 as uid $GRANTED_UID"
has_element 203.0.113.9 || fail "the element uid $GRANTED_UID added is not in the kernel:
$(shape)"
pctl_as "$GRANTED_UID" set del blocklist 203.0.113.9
assert_rc 0 "portierctl set del blocklist 203.0.113.9 as uid $GRANTED_UID"
! has_element 203.0.113.9 || fail "the element uid $GRANTED_UID removed is still in the kernel"
add_rule_to_policy() {
  cat >>"$POLICY" <<TOML

[[rule]]
name      = "port-$1"
protocols = "tcp"
ports     = [$1]
action    = "accept"
TOML
}
add_rule_to_policy 2222
pctl_as "$GRANTED_UID" reload
assert_rc 0 "portierctl reload as uid $GRANTED_UID"
grep -q 'tcp dport 2222' <<<"$(shape)" || fail "portierctl reload as uid $GRANTED_UID did not load the policy's new rule:
$(shape)"
gdbus_as "$GRANTED_UID" SetRuleEnabled web-in false '{}'
assert_rc 0 "SetRuleEnabled web-in false over gdbus as uid $GRANTED_UID"
! has_web_rule || fail "SetRuleEnabled web-in false as uid $GRANTED_UID left the rule in the kernel"
gdbus_as "$GRANTED_UID" SetRuleEnabled web-in true '{}'
assert_rc 0 "SetRuleEnabled web-in true over gdbus as uid $GRANTED_UID"
(($(status_field generation) > generation)) || fail "the generation did not move while uid $GRANTED_UID changed things"
log "ok: uid $GRANTED_UID (granted by a polkit rule) disabled, enabled, added and removed set elements, reloaded"

# The granted user's changes did not open the door for others. From here on the policy file
# has a rule the kernel does not: a Reload that got through would show.
add_rule_to_policy 3333
assert_refused_changes "$DENIED_UID" "after uid $GRANTED_UID's changes" "$needs_auth"
grep -q 'polkit check failed' "$PORTIERD_LOG" && fail "portierd logged a failed polkit check:
$(grep 'polkit' "$PORTIERD_LOG")"

# --- without polkitd --------------------------------------------------------------------------
stop_pid "$POLKITD_PID" || true
for ((i = 0; i < 50; i++)); do
  bus_name_has_owner org.freedesktop.PolicyKit1 || break
  sleep 0.1
done
! bus_name_has_owner org.freedesktop.PolicyKit1 || fail "org.freedesktop.PolicyKit1 still owned after polkitd stopped"
log "ok: polkitd stopped"
assert_reads_open "no polkitd"
no_polkit='polkit is not running, so only root may'
assert_refused_changes "$GRANTED_UID" "no polkitd: root only" "$no_polkit"
assert_refused_changes "$DENIED_UID" "no polkitd: root only" "$no_polkit"
grep -q 'polkit check failed' "$PORTIERD_LOG" && fail "portierd logged a failed polkit check for a missing polkitd:
$(grep 'polkit' "$PORTIERD_LOG")"

# Root needs no polkit.
pctl disable web-in
assert_rc 0 "portierctl disable web-in as root without polkitd"
! has_web_rule || fail "root's disable web-in left the rule in the kernel"
pctl enable web-in
assert_rc 0 "portierctl enable web-in as root without polkitd"
has_web_rule || fail "root's enable web-in did not put the rule back"
pctl reload
assert_rc 0 "portierctl reload as root without polkitd"
grep -q 'tcp dport 3333' <<<"$(shape)" || fail "root's reload did not load the policy's new rule"

# And with polkitd back, the rule counts again.
start_test_polkitd
pctl_as "$GRANTED_UID" disable web-in
assert_rc 0 "portierctl disable web-in as uid $GRANTED_UID once polkitd is back"
! has_web_rule || fail "uid $GRANTED_UID's disable web-in (polkitd back) left the rule in the kernel"
pctl_as "$GRANTED_UID" enable web-in
assert_rc 0 "portierctl enable web-in as uid $GRANTED_UID once polkitd is back"

# A polkitd that does not know the action (portier's .policy file not installed) refuses
# even the rule's user, and portierd says why in its log.
stop_pid "$POLKITD_PID" || true
rm "$PK_ACTIONS/org.portier.Firewall1.policy"
for ((i = 0; i < 50; i++)); do
  bus_name_has_owner org.freedesktop.PolicyKit1 || break
  sleep 0.1
done
start_test_polkitd
gdbus_as "$GRANTED_UID" SetRuleEnabled web-in false '{}'
assert_error_name org.portier.Firewall1.Error.AccessDenied "SetRuleEnabled as uid $GRANTED_UID with the action not installed"
has_web_rule || fail "uid $GRANTED_UID disabled web-in although polkit does not know the action"
wait_until 5 "portierd to log the failed polkit check" grep -q 'polkit check failed.*not registered' "$PORTIERD_LOG"
log "ok: action not installed: refused, portierd logged: $(grep 'polkit check failed' "$PORTIERD_LOG" | tail -n1)"
stop_portierd

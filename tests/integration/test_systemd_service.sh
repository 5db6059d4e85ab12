#!/usr/bin/env bash
# The installed unit under a real systemd (PID 1 in a systemd-nspawn container with its own
# network namespace): Type=notify start succeeds once the ruleset is loaded, the hardening
# leaves netlink and D-Bus working, ExecReload reloads, stop leaves the ruleset in place, and
# the installed bus policy lets a non-root user read but not change.
#
# The container boots the cached minimal Debian 12 root of lib_nspawn.sh with a volatile
# overlay, so the cached root is never modified.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_nspawn.sh"
require_root_or_skip
require_nspawn
require_cmd cmake
require_binaries
ensure_rootfs

# --- what cmake --install puts on a machine -------------------------------------------------
DEST="$WORKDIR/dest"
out=$(DESTDIR="$DEST" cmake --install "$PORTIER_BUILD_DIR" 2>&1) || fail "cmake --install failed: $out"
unit=$(cd "$DEST" && find . -path '*/systemd/system/portierd.service' -type f | head -n1)
unit=${unit#.}
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$DEST$unit")
prefix=${exec_start%/sbin/portierd}
[[ -n "$unit" && "$prefix" != "$exec_start" && -x "$DEST$exec_start" ]] ||
  fail "cannot find the installed unit and its ExecStart under $DEST (unit '$unit', ExecStart '$exec_start')"
buspolicy="$prefix/share/dbus-1/system.d/org.portier.Firewall1.conf"
[[ -f "$DEST$buspolicy" ]] || fail "cmake --install put no bus policy at $buspolicy"
POLICY_SRC="$PORTIER_SOURCE_DIR/rules/policies/workstation.toml"
[[ -f "$POLICY_SRC" ]] || fail "no shipped policy $POLICY_SRC"

binds=(
  "--bind-ro=$DEST$unit:$unit"
  "--bind=$WORKDIR/policy.toml:/etc/portier/policy.toml"
)
# Every installed file on its own (with prefix /usr, binding the folder would hide the
# container's own /usr).
while IFS= read -r file; do
  binds+=("--bind-ro=$DEST$file:$file")
done < <(cd "$DEST" && find ".$prefix" -type f | sed 's/^\.//')
# A copy, so the test can change it before `systemctl reload`.
cp "$POLICY_SRC" "$WORKDIR/policy.toml"
# dbus-daemon reads /usr/share/dbus-1/system.d and /etc/dbus-1/system.d only: with another
# prefix the admin puts the policy into /etc, as done here.
case $buspolicy in
  /usr/share/dbus-1/system.d/*) ;;
  *) binds+=("--bind-ro=$DEST$buspolicy:/etc/dbus-1/system.d/org.portier.Firewall1.conf") ;;
esac

# --- boot ---------------------------------------------------------------------------------
boot_container -D "$ROOTFS" --volatile=overlay --private-network "${binds[@]}"
log "ok: container booted in $BOOT_MS ms (pid 1 is $PID1 on the host, state $BOOT_STATE)"

# --- start: Type=notify returns once READY=1 came -----------------------------------------------
START=$(date +%s%N)
_run_capture in_ct systemctl start portierd
((RC == 0)) || fail "systemctl start portierd exited $RC: $ERR
$(unit_state)
$(journal)"
state=$(unit_state)
assert_match "$state" '^ActiveState=active$' "portierd.service after start"
assert_match "$state" '^SubState=running$' "portierd.service after start"
pid=$(sed -n 's/^MainPID=//p' <<<"$state")
table=$(in_ct nft list table inet portier 2>&1) ||
  fail "portierd.service is active but the container has no table inet portier: $table
$(journal)"
assert_contains "$table" 'comment "netbios-in"' "ruleset in the container"
log "ok: systemctl start portierd returned in $(ms_since "$START") ms: active (running), main pid $pid, ruleset loaded"
# The journal has the daemon's own start line.
assert_contains "$(journal)" "portierd: loaded /etc/portier/policy.toml into table inet portier (policy, generation 1)" \
  "journalctl -u portierd"
log "ok: journalctl -u portierd has the start line"

# --- portierctl over the real system bus, as root and as nobody ---------------------------------
_run_capture in_ct portierctl status
assert_rc 0 "portierctl status in the container"
assert_match "$OUT" '^ *policy: +/etc/portier/policy\.toml$' "portierctl status in the container"
gen1=$(awk '$1 == "generation:" { print $2 }' <<<"$OUT")
_run_capture in_ct setpriv --reuid=65534 --regid=65534 --clear-groups portierctl rules
assert_rc 0 "portierctl rules as uid 65534 through the installed bus policy"
assert_match "$OUT" '^netbios-in +enabled' "portierctl rules as uid 65534"
_run_capture in_ct setpriv --reuid=65534 --regid=65534 --clear-groups portierctl enable ssh-in
assert_rc 1 "portierctl enable ssh-in as uid 65534"
assert_match "$ERR$OUT" '[Pp]ermission|[Dd]enied' "portierctl enable ssh-in as uid 65534"
_run_capture in_ct portierctl enable ssh-in
assert_rc 0 "portierctl enable ssh-in as root (needs netlink under the unit's hardening)"
assert_contains "$(in_ct nft list table inet portier 2>&1)" 'comment "ssh-in"' "ruleset after enable ssh-in"
log "ok: portierctl works over the system bus; uid 65534 reads but may not change"

# --- reload: ExecReload sends SIGHUP; same process, the changed file loaded -----------------------
# (An unchanged file would be a no-op: portierd leaves an identical ruleset alone.)
cat >>"$WORKDIR/policy.toml" <<'TOML'

[[rule]]
name      = "added-before-reload"
protocols = "tcp"
ports     = [2999]
action    = "accept"
TOML
_run_capture in_ct systemctl reload portierd
assert_rc 0 "systemctl reload portierd"
for ((i = 0; i < 100; i++)); do
  [[ "$(in_ct nft list table inet portier 2>&1)" == *'comment "added-before-reload"'* ]] && break
  sleep 0.1
done
[[ "$(in_ct nft list table inet portier 2>&1)" == *'comment "added-before-reload"'* ]] ||
  fail "10 s after systemctl reload the ruleset lacks the rule added to the policy file:
$(in_ct nft list table inet portier 2>&1)
$(journal)"
state=$(unit_state)
assert_match "$state" '^SubState=running$' "portierd.service after reload"
assert_eq "MainPID=$pid" "$(grep '^MainPID=' <<<"$state")" "main pid after reload"
_run_capture in_ct portierctl status
gen2=$(awk '$1 == "generation:" { print $2 }' <<<"$OUT")
# enable ssh-in made one generation, the reload another.
[[ "$gen2" =~ ^[0-9]+$ && "$gen1" =~ ^[0-9]+$ ]] && ((gen2 >= gen1 + 2)) ||
  fail "generation after enable and reload: expected at least $((gen1 + 2)), seen '$gen2'
$(journal)"
assert_contains "$(in_ct nft list table inet portier 2>&1)" 'comment "ssh-in"' \
  "ruleset after reload (the run-time toggle of ssh-in survives a reload)"
log "ok: systemctl reload portierd: same pid, file re-read, generation $gen1 -> $gen2"

# --- stop: exit 0, ruleset stays ----------------------------------------------------------------
before=$(in_ct nft list table inet portier 2>&1)
_run_capture in_ct systemctl stop portierd
assert_rc 0 "systemctl stop portierd"
state=$(unit_state)
assert_match "$state" '^ActiveState=inactive$' "portierd.service after stop"
assert_match "$state" '^Result=success$' "portierd.service after stop (SIGTERM must exit 0)"
after=$(in_ct nft list table inet portier 2>&1) || fail "no ruleset left after systemctl stop: $after"
# The rules stay exactly as they were at the stop (the table's owner goes with portierd).
assert_same_text "$(without_table_owner <<<"$before")" "$(without_table_owner <<<"$after")" \
  "ruleset after systemctl stop portierd"
log "ok: systemctl stop portierd: inactive (success), ruleset left in place"

assert_no_host_table

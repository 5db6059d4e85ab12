#!/usr/bin/env bash
# The boot path of a server, end to end (issue 12): portier's Debian package with the shipped
# server policy, whose [[bind]] gives port 22 to ssh.service, on a Debian root that also has
# Debian's openssh-server, booted with a real systemd as PID 1 (systemd-nspawn).
# portierd starts first (before network-pre.target), ssh.service later; a client in another
# network namespace, joined to the container's by a veth pair, must see sshd's banner once
# ssh.service runs, after `systemctl restart ssh` and after a crash of sshd that systemd
# restarts (Restart=on-failure), each of which gives the unit a new cgroup; not while ssh is
# stopped (not even from another sshd outside ssh.service); and again after `systemctl start ssh`.
#
# The container boots the cached root of lib_nspawn.sh through an overlay whose upper layer
# is this test's own: the package is installed there with dpkg before the boot.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_nspawn.sh"
require_root_or_skip
require_nspawn
require_cmd cmake cpack dpkg-deb dpkg-buildflags chroot unshare mount
require_binaries
ensure_rootfs
[[ -f "$ROOTFS/lib/systemd/system/ssh.service" && -n "$(ls "$ROOTFS"/etc/ssh/ssh_host_*_key 2>/dev/null)" ]] ||
  fail "the cached root $ROOTFS has no ssh.service or no ssh host keys (openssh-server missing?)"

# --- the package, installed on an overlay of the cached root -----------------------------------
build_package
deb=$PACKAGE_DEB

ROOT="$WORKDIR/root"
mkdir -p "$ROOT/upper" "$ROOT/work" "$ROOT/merged"
OVERLAY="lowerdir=$ROOTFS,upperdir=$ROOT/upper,workdir=$ROOT/work"
cp "$deb" "$WORKDIR/portier.deb"
# As an admin would: install, then put the shipped server policy in place of the default.
# A private mount namespace: the overlay and /proc go away with it, whatever happens.
out=$(unshare -m --propagation private bash -c '
  set -e
  mount -t overlay overlay -o "$2" "$1"
  mount --bind /proc "$1/proc"
  cp "$3" "$1/tmp/portier.deb"
  chroot "$1" dpkg -i /tmp/portier.deb
  rm "$1/tmp/portier.deb"
  cp "$1/usr/share/portier/policies/server.toml" "$1/etc/portier/policy.toml"
  chroot "$1" portierctl check /etc/portier/policy.toml
  # A machine has something that brings up its network, which puts network.target into the
  # boot: then ssh.service (After=network.target) waits for network-pre.target and so for
  # portierd, as on a real server. A bare minbase root has nothing of the kind, and sshd
  # could start before portierd. systemd-networkd with no .network file of its own for
  # these interfaces leaves them as the test configured them.
  chroot "$1" systemctl enable --quiet systemd-networkd
  echo "--- enabled"
  chroot "$1" systemctl is-enabled portierd ssh
' _ "$ROOT/merged" "$OVERLAY" "$WORKDIR/portier.deb" 2>&1) || fail "installing the package failed:
$out"
assert_same_text $'enabled\nenabled' "$(sed '1,/^--- enabled$/d' <<<"$out")" \
  "systemctl is-enabled portierd ssh in the root"
log "ok: $(basename "$deb") installed with the server policy; portierd and ssh enabled"

# --- the network: the container in HOST_NS, the client in PEER_NS ------------------------------
make_ns_pair
# Fresh source addresses for the prober (see ssh_banner.py): the shipped policy rate-limits
# new ssh connections per source.
SOURCES="$WORKDIR/sources"
for ((i = 10; i < 250; i++)); do echo "10.200.$TEST_ID.$i"; done >"$SOURCES"
sed 's|.*|addr add &/24 dev veth1|' "$SOURCES" | ip -n "$PEER_NS" -batch - ||
  fail "cannot add the prober's source addresses to $PEER_NS"
# banner SECONDS: polls port 22 of the container from PEER_NS; sets BANNER to the prober's line,
# returns 0 once sshd's banner came.
PROBER=("$PYTHON" "$PORTIER_SOURCE_DIR/tests/integration/ssh_banner.py" "$HOST_IP" 22)
banner() {
  local rc=0
  BANNER=$(nsenter --net="/run/netns/$PEER_NS" "${PROBER[@]}" "$1" "$(date +%s%N)" "$SOURCES" 2>&1) ||
    rc=$?
  return "$rc"
}
# banner_arm SECONDS, then banner_fire: the prober is started first and waits; banner_fire hands
# it the time of that moment and it starts polling at once, so that the figures measure the
# firewall and sshd, not a Python starting. banner_fire sets BANNER and returns as banner does.
banner_arm() {
  rm -f "$WORKDIR/t0.fifo"
  mkfifo "$WORKDIR/t0.fifo"
  (exec nsenter --net="/run/netns/$PEER_NS" "${PROBER[@]}" "$1" - "$SOURCES" \
    <"$WORKDIR/t0.fifo" >"$WORKDIR/banner.out" 2>&1) &
  PROBER_PID=$!
  on_exit "kill $PROBER_PID"
  exec 3>"$WORKDIR/t0.fifo"
}
banner_fire() {
  local rc=0
  date +%s%N >&3
  exec 3>&-
  wait "$PROBER_PID" || rc=$?
  BANNER=$(cat "$WORKDIR/banner.out")
  return "$rc"
}

# --- boot ----------------------------------------------------------------------------------
printf -v BOOT_PREPARE 'mount -t overlay overlay -o %q %q' "$OVERLAY" "$ROOT/merged"
# A network namespace of our own is not "private networking" to nspawn, which then drops
# CAP_NET_ADMIN: give it back, portierd needs it.
boot_container -D "$ROOT/merged" --network-namespace-path="/run/netns/$HOST_NS" --capability=CAP_NET_ADMIN
log "ok: container booted in $BOOT_MS ms (pid 1 is $PID1 on the host, state $BOOT_STATE)"

journal() { in_ct journalctl -u portierd --no-pager -o cat 2>&1 | tail -n 40; }
status() { in_ct portierctl status 2>&1; }
details() {
  printf -- '--- portierctl status\n%s\n--- journalctl -u portierd\n%s\n--- ssh.service (cgroup id %s)\n%s\n--- nft list table inet portier\n%s\n' \
    "$(status)" "$(journal)" "$(ssh_cgroup_id)" "$(in_ct systemctl status --no-pager ssh 2>&1 | head -n 12)" \
    "$(in_ct nft list table inet portier 2>&1 | head -n 80)"
}
show() { in_ct systemctl show -p "$2" --value "$1"; }
# The inode number of ssh.service's cgroup, which is its cgroup id (changes with every start).
ssh_cgroup_id() {
  in_ct sh -c 'for d in /sys/fs/cgroup/unified /sys/fs/cgroup; do
    [ -d "$d/system.slice/ssh.service" ] && exec stat -c %i "$d/system.slice/ssh.service"; done; echo none'
}

for unit in portierd ssh; do
  [[ "$(show "$unit" ActiveState)" == active ]] ||
    fail "$unit.service is not active after boot
$(details)"
done
# The order the issue is about: portierd ready before sshd was even started.
portierd_ready=$(show portierd ActiveEnterTimestampMonotonic)
ssh_started=$(show ssh ExecMainStartTimestampMonotonic)
[[ "$portierd_ready" =~ ^[0-9]+$ && "$ssh_started" =~ ^[0-9]+$ ]] && ((portierd_ready < ssh_started)) ||
  fail "expected portierd.service ready before ssh.service started, seen portierd ready at $portierd_ready us, sshd started at $ssh_started us"
log "ok: portierd.service was ready $(((ssh_started - portierd_ready) / 1000)) ms before ssh.service started"

# --- ssh answers once it runs ---------------------------------------------------------------
banner 5 || fail "ssh.service runs, but port 22 gives no ssh banner from outside within 5 s ($BANNER)
$(details)"
assert_match "$BANNER" '^banner [0-9]+ [0-9]+ [0-9]+ [^ ]+ SSH-2\.0-OpenSSH' "the banner on port 22 after boot"
log "ok: ssh answers after boot: ${BANNER#banner * * * * }"
_run_capture in_ct portierctl status
assert_rc 0 "portierctl status in the container"
assert_match "$OUT" '^loaded: +policy$' "portierctl status after boot (the policy itself, not a fallback)"
log "ok: portierctl status says loaded: policy"

# --- systemctl restart ssh: a new cgroup, and the bind follows -----------------------------------
id_before=$(ssh_cgroup_id)
banner_arm 5
_run_capture in_ct systemctl restart ssh
rc=0
banner_fire || rc=$?
assert_rc 0 "systemctl restart ssh"
id_after=$(ssh_cgroup_id)
((rc == 0)) || fail "after systemctl restart ssh (cgroup id $id_before -> $id_after), port 22 gives no banner within 5 s ($BANNER)
$(details)"
read -r _ restart_ms restart_tries restart_connect_ms restart_failed _ <<<"$BANNER"
log "ok: ssh answers after systemctl restart ssh: first banner $restart_ms ms after systemctl returned (connection accepted at $restart_connect_ms ms, $restart_tries tries, failed: $restart_failed; cgroup id $id_before -> $id_after)"

# --- sshd crashes: Restart=on-failure (Debian's ssh.service) starts it again ----------------------
main_pid=$(show ssh MainPID)
banner_arm 10
in_ct kill -KILL "$main_pid" || fail "cannot kill sshd (pid $main_pid in the container)"
rc=0
banner_fire || rc=$?
((rc == 0)) || fail "after sshd (pid $main_pid in the container) was killed, port 22 gives no banner within 10 s ($BANNER)
$(details)"
[[ "$(show ssh MainPID)" != "$main_pid" ]] || fail "the banner after killing sshd came from the same sshd (pid $main_pid)"
read -r _ crash_ms crash_tries crash_connect_ms crash_failed _ <<<"$BANNER"
log "ok: ssh answers after sshd was killed and systemd restarted it: first banner $crash_ms ms after the kill (connection accepted at $crash_connect_ms ms, $crash_tries tries, failed: $crash_failed; cgroup id now $(ssh_cgroup_id), restarts $(show ssh NRestarts))"

# --- systemctl stop ssh: closed, even to another sshd outside ssh.service -------------------------
_run_capture in_ct systemctl stop ssh
assert_rc 0 "systemctl stop ssh"
if banner 2; then
  fail "ssh.service is stopped, yet port 22 answers: $BANNER"
fi
log "ok: port 22 closed while ssh.service is stopped (${BANNER#none })"
# The bind's point: only ssh.service serves port 22. An sshd in a unit of its own, listening
# on port 22 while ssh.service is down, must not be reached.
_run_capture in_ct systemd-run --unit=impostor -p RuntimeDirectory=sshd /usr/sbin/sshd -D
assert_rc 0 "systemd-run --unit=impostor sshd -D"
for ((i = 0; i < 50; i++)); do
  [[ -n "$(in_ct ss -ltnH 'sport = :22' 2>/dev/null)" ]] && break
  sleep 0.1
done
[[ -n "$(in_ct ss -ltnH 'sport = :22' 2>/dev/null)" ]] ||
  fail "the impostor sshd does not listen on port 22: $(in_ct systemctl status --no-pager impostor 2>&1 | tail -n 5)"
if banner 2; then
  fail "an sshd outside ssh.service (impostor.service) is reached on port 22: $BANNER
$(details)"
fi
log "ok: an sshd in impostor.service listening on port 22 is not reached (${BANNER#none })"
_run_capture in_ct systemctl stop impostor
assert_rc 0 "systemctl stop impostor"

# --- systemctl start ssh: open again ---------------------------------------------------------------
banner_arm 5
_run_capture in_ct systemctl start ssh
rc=0
banner_fire || rc=$?
assert_rc 0 "systemctl start ssh"
((rc == 0)) || fail "after systemctl start ssh, port 22 gives no banner within 5 s ($BANNER)
$(details)"
read -r _ start_ms start_tries start_connect_ms start_failed _ <<<"$BANNER"
log "ok: ssh answers after systemctl start ssh: first banner $start_ms ms after systemctl returned (connection accepted at $start_connect_ms ms, $start_tries tries, failed: $start_failed; cgroup id $(ssh_cgroup_id))"

_run_capture in_ct portierctl status
assert_match "$OUT" '^loaded: +policy$' "portierctl status at the end"
log "figures: boot $BOOT_MS ms; connection accepted / banner, from systemctl returning: restart $restart_connect_ms / $restart_ms ms, start $start_connect_ms / $start_ms ms; from the kill of sshd: $crash_connect_ms / $crash_ms ms"
assert_no_host_table

# A minimal Debian 12 root booted under systemd-nspawn, for the tests of the unit and the
# package (source after lib.sh). The root is made once by debootstrap (about 45 s and 260 MB)
# in $PORTIER_ROOTFS_CACHE (default /var/cache/portier-tests); each boot runs it with a
# volatile overlay and its own network namespace, so the cached root is never modified and
# no rule reaches the host.

# netbase: /etc/services, which policies with service names need (Debian installs it by default).
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,nftables,iproute2,libsdbus-c++1,libtomlplusplus3,procps,util-linux,netbase
CACHE=${PORTIER_ROOTFS_CACHE:-/var/cache/portier-tests}
ROOTFS="$CACHE/rootfs-bookworm-$(printf '%s' "$ROOTFS_PACKAGES" | cksum | cut -d' ' -f1)"

apt_mirror() {
  local uri
  uri=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v security | head -n1)
  [[ -n "$uri" ]] || uri=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*\) bookworm .*/\2/p' \
    /etc/apt/sources.list 2>/dev/null | head -n1)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# Makes $ROOTFS unless it is there (under a lock: two tests may want it at once).
ensure_rootfs() {
  mkdir -p "$CACHE"
  (
    flock 9
    if [[ ! -x "$ROOTFS/lib/systemd/systemd" ]]; then
      mirror=$(apt_mirror)
      log "creating $ROOTFS with debootstrap from $mirror (once)"
      rm -rf "$ROOTFS.tmp"
      debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" bookworm "$ROOTFS.tmp" "$mirror" \
        >"$WORKDIR/logs/debootstrap.log" 2>&1 ||
        fail "debootstrap of $ROOTFS failed (network or mirror $mirror?), see debootstrap.log"
      mv "$ROOTFS.tmp" "$ROOTFS"
    fi
  ) 9>"$CACHE/.lock"
}

require_hybrid_cgroups() {
  [[ -d /sys/fs/cgroup/unified && -d /sys/fs/cgroup/systemd ]] ||
    skip "expects the hybrid cgroup layout (/sys/fs/cgroup/unified and /sys/fs/cgroup/systemd)"
}

# boot_container [NSPAWN-ARGS...]: boots $ROOTFS (volatile overlay, private network) and
# waits until systemd is up. Sets PID1 (the container's systemd, as the host sees it) and
# NSPAWN_PID; the container is powered off and its cgroups removed on exit.
boot_container() {
  # Without a systemd on the host, nspawn puts its cgroups where it runs: give it its own.
  CGROUP="portier-$TEST_NAME-$$"
  on_exit remove_cgroups
  mkdir -p "/sys/fs/cgroup/unified/$CGROUP" "/sys/fs/cgroup/systemd/$CGROUP"
  spawn nspawn bash -c '
    echo $$ >"/sys/fs/cgroup/unified/$1/cgroup.procs"
    echo $$ >"/sys/fs/cgroup/systemd/$1/cgroup.procs"
    shift
    exec systemd-nspawn "$@"' _ "$CGROUP" \
    -D "$ROOTFS" --register=no --keep-unit -b --private-network --volatile=overlay \
    --machine="portier-$$" "$@"
  NSPAWN_PID=$SPAWNED_PID

  BOOT_START=$(date +%s%N)
  PID1=
  local i c state
  for ((i = 0; i < 100; i++)); do
    for c in $(cat /proc/"$NSPAWN_PID"/task/*/children 2>/dev/null); do
      [[ "$(cat /proc/"$c"/comm 2>/dev/null)" == systemd ]] && PID1=$c
    done
    [[ -n "$PID1" ]] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || fail "systemd-nspawn exited (see nspawn.log)"
    sleep 0.1
  done
  [[ -n "$PID1" ]] || fail "no systemd inside the container after 10 s (see nspawn.log)"
  on_exit poweroff_container

  for ((i = 0; i < 100; i++)); do
    state=$(in_ct systemctl is-system-running 2>/dev/null || true)
    [[ "$state" == running || "$state" == degraded ]] && break
    sleep 0.1
  done
  [[ "$state" == running || "$state" == degraded ]] ||
    fail "systemd in the container did not finish booting in 10 s (state '$state')"
  log "ok: container booted in $(ms_since "$BOOT_START") ms (pid 1 is $PID1 on the host, state $state)"
}

# The container's last processes leave their cgroups a moment after nspawn exits: retry.
remove_cgroups() {
  local i
  for ((i = 0; i < 50; i++)); do
    find "/sys/fs/cgroup/unified/$CGROUP" "/sys/fs/cgroup/systemd/$CGROUP" -depth -type d \
      -exec rmdir {} + 2>/dev/null
    [[ -d "/sys/fs/cgroup/unified/$CGROUP" || -d "/sys/fs/cgroup/systemd/$CGROUP" ]] || return 0
    sleep 0.1
  done
  log "warning: could not remove the cgroups $CGROUP"
}

# Power off at once (SIGRTMIN+4); the stop_pid registered by spawn then only reaps nspawn.
poweroff_container() {
  local i
  kill -RTMIN+4 "$PID1"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$NSPAWN_PID" 2>/dev/null || return 0
    sleep 0.1
  done
}

in_ct() { nsenter -t "$PID1" -a "$@"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
journal() { in_ct journalctl -u portierd --no-pager -o cat 2>&1 | tail -n 30; }
unit_state() { in_ct systemctl show -p ActiveState -p SubState -p Result -p MainPID portierd; }

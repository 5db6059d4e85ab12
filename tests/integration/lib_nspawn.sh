# A real systemd as PID 1: a systemd-nspawn container booted from a cached minimal Debian 12
# root. Source it after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib_nspawn.sh"
#   require_nspawn
#   ensure_rootfs                  # sets ROOTFS (made by debootstrap once, then cached)
#   boot_container -D "$ROOTFS" --volatile=overlay --private-network ...
#   in_ct systemctl status portierd
#
# The root is made once (about 60 s and 300 MB) in $PORTIER_ROOTFS_CACHE (default
# /var/cache/portier-tests), named by a checksum of its package list, and shared by every test
# that boots a container; each boots it through an overlay, so the cached root never changes.

# netbase: /etc/services, which policies with service names need (Debian installs it by default).
# openssh-server: the real ssh.service that the server policy binds port 22 to
# (test_systemd_ssh_boot); its postinst makes the host keys here, once.
ROOTFS_PACKAGES=systemd,systemd-sysv,dbus,nftables,iproute2,libsdbus-c++1,libtomlplusplus3,procps,util-linux,netbase,openssh-server
ROOTFS_CACHE=${PORTIER_ROOTFS_CACHE:-/var/cache/portier-tests}

require_nspawn() {
  require_cmd systemd-nspawn debootstrap nsenter flock
  [[ -d /sys/fs/cgroup/unified && -d /sys/fs/cgroup/systemd ]] ||
    skip "expects the hybrid cgroup layout (/sys/fs/cgroup/unified and /sys/fs/cgroup/systemd)"
}

# The mirror apt's own sources name (the machine may have no other).
apt_mirror() {
  local uri
  uri=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -v security | head -n1)
  [[ -n "$uri" ]] || uri=$(sed -n 's/^deb \(\[[^]]*\] \)\?\(http[^ ]*\) bookworm .*/\2/p' \
    /etc/apt/sources.list 2>/dev/null | head -n1)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# Sets ROOTFS; debootstraps it first if it is not cached (one test at a time, under a lock).
ensure_rootfs() {
  ROOTFS="$ROOTFS_CACHE/rootfs-bookworm-$(printf '%s' "$ROOTFS_PACKAGES" | cksum | cut -d' ' -f1)"
  mkdir -p "$ROOTFS_CACHE"
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
  ) 9>"$ROOTFS_CACHE/.lock"
}

# boot_container NSPAWN_ARGS...: boots the container and waits until systemd in it has
# finished booting (running or degraded). Sets NSPAWN_PID, PID1 (container's systemd, as the
# host sees it) and BOOT_MS. Registers the power-off and the removal of its cgroups.
# With BOOT_PREPARE set, that shell snippet runs first in a private mount namespace that
# nspawn then inherits (for example to mount an overlay as the container's root): whatever it
# mounts goes away with the container.
boot_container() {
  # Without a systemd on the host, nspawn puts its cgroups where it runs: give it its own.
  CT_CGROUP="portier-$TEST_NAME-$$"
  on_exit _remove_ct_cgroups
  mkdir -p "/sys/fs/cgroup/unified/$CT_CGROUP" "/sys/fs/cgroup/systemd/$CT_CGROUP"
  local start
  start=$(date +%s%N)
  spawn nspawn unshare -m --propagation private bash -c '
    set -e
    echo $$ >"/sys/fs/cgroup/unified/$1/cgroup.procs"
    echo $$ >"/sys/fs/cgroup/systemd/$1/cgroup.procs"
    eval "$2"
    shift 2
    exec systemd-nspawn "$@"' _ "$CT_CGROUP" "${BOOT_PREPARE:-:}" \
    --register=no --keep-unit -b --machine="portier-$$" "$@"
  NSPAWN_PID=$SPAWNED_PID

  PID1=
  local i c state=
  for ((i = 0; i < 100; i++)); do
    for c in $(cat /proc/"$NSPAWN_PID"/task/*/children 2>/dev/null); do
      [[ "$(cat /proc/"$c"/comm 2>/dev/null)" == systemd ]] && PID1=$c
    done
    [[ -n "$PID1" ]] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || fail "systemd-nspawn exited (see nspawn.log)"
    sleep 0.1
  done
  [[ -n "$PID1" ]] || fail "no systemd inside the container after 10 s (see nspawn.log)"
  # Power off at once (SIGRTMIN+4); the stop_pid registered by spawn then only reaps nspawn.
  on_exit _poweroff_container

  for ((i = 0; i < 100; i++)); do
    state=$(in_ct systemctl is-system-running 2>/dev/null || true)
    [[ "$state" == running || "$state" == degraded ]] && break
    sleep 0.1
  done
  [[ "$state" == running || "$state" == degraded ]] ||
    fail "systemd in the container did not finish booting in 10 s (state '$state')"
  BOOT_MS=$((($(date +%s%N) - start) / 1000000))
  BOOT_STATE=$state
}

in_ct() { nsenter -t "$PID1" -a "$@"; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
journal() { in_ct journalctl -u portierd --no-pager -o cat 2>&1 | tail -n 30; }
unit_state() { in_ct systemctl show -p ActiveState -p SubState -p Result -p MainPID portierd; }

_poweroff_container() {
  local i
  kill -RTMIN+4 "$PID1"
  for ((i = 0; i < 50; i++)); do
    kill -0 "$NSPAWN_PID" 2>/dev/null || return 0
    sleep 0.1
  done
}

# The container's last processes leave their cgroups a moment after nspawn exits: retry.
_remove_ct_cgroups() {
  local i
  for ((i = 0; i < 50; i++)); do
    find "/sys/fs/cgroup/unified/$CT_CGROUP" "/sys/fs/cgroup/systemd/$CT_CGROUP" -depth -type d \
      -exec rmdir {} + 2>/dev/null
    [[ -d "/sys/fs/cgroup/unified/$CT_CGROUP" || -d "/sys/fs/cgroup/systemd/$CT_CGROUP" ]] || return 0
    sleep 0.1
  done
  log "warning: could not remove the cgroups $CT_CGROUP"
}

# build_package: the .deb as a packager makes it: a build tree configured *without*
# -DCMAKE_INSTALL_PREFIX=/usr (so /usr/local: the package must force /usr and /etc) and with
# Debian's flags, beside the test build so that later runs rebuild only what changed, then
# `cpack -G DEB`. Sets PACKAGE_DEB and PACKAGE_DDEB (its -dbgsym) in $WORKDIR/pkg.
build_package() {
  local build=${PORTIER_DEB_BUILD_DIR:-$PORTIER_BUILD_DIR/deb-tree} out prefix start
  (
    flock 9
    if [[ ! -f "$build/build.ninja" ]]; then
      out=$(cmake -S "$PORTIER_SOURCE_DIR" -B "$build" -G Ninja -DPORTIER_DEBIAN_FLAGS=ON \
        -DPORTIER_WERROR=ON -DBUILD_TESTING=OFF 2>&1) || fail "configuring $build failed: $out"
    fi
    prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
    [[ "$prefix" != /usr ]] || fail "$build is configured for /usr: it would not show that the package forces it"
    start=$(date +%s%N)
    cmake --build "$build" >"$WORKDIR/logs/deb-build.log" 2>&1 ||
      fail "building $build failed, see deb-build.log: $(grep -m3 -E 'error|warning' "$WORKDIR/logs/deb-build.log")"
    log "ok: package build $build (prefix $prefix, Debian's flags) up to date in $((($(date +%s%N) - start) / 1000000)) ms"
  ) 9>"$PORTIER_BUILD_DIR/.deb-tree.lock" || exit 1
  out=$(cd "$build" && cpack -G DEB -B "$WORKDIR/pkg" 2>&1) || fail "cpack failed: $out"
  PACKAGE_DEB=$(find "$WORKDIR/pkg" -maxdepth 1 -name 'portier_*_amd64.deb' | head -n1)
  PACKAGE_DDEB=$(find "$WORKDIR/pkg" -maxdepth 1 -name 'portier-dbgsym_*_amd64.ddeb' | head -n1)
  [[ -f "$PACKAGE_DEB" ]] || fail "cpack made no portier_*.deb: $out"
  [[ -f "$PACKAGE_DDEB" ]] || fail "cpack made no portier-dbgsym_*.ddeb: $out"
}

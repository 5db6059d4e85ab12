#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` of the build has the right dependencies, conffile and
# maintainer scripts, and `dpkg -i` of it on a fresh Debian root (the one test_systemd_service
# debootstrapped, through a throwaway overlay so the cached root is never changed) installs,
# enables portierd the Debian way, and leaves a working portierctl and default policy.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_cmd cpack dpkg-deb chroot unshare mount
require_binaries

CACHE=${PORTIER_ROOTFS_CACHE:-/var/cache/portier-tests}
ROOTFS=$(find "$CACHE" -maxdepth 1 -type d -name 'rootfs-bookworm-*' 2>/dev/null | head -n1)
[[ -n "$ROOTFS" && -x "$ROOTFS/usr/bin/dpkg" ]] ||
  fail "no cached Debian root under $CACHE (test_systemd_service makes it; it runs before this one)"

# --- the package -----------------------------------------------------------------------------
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$PORTIER_BUILD_DIR/CMakeCache.txt")
[[ "$prefix" == /usr ]] || fail "the build is configured for $prefix; a Debian package needs /usr (tests/setup.sh does that)"
out=$(cd "$PORTIER_BUILD_DIR" && cpack -G DEB -B "$WORKDIR/pkg" 2>&1) || fail "cpack failed: $out"
deb=$(find "$WORKDIR/pkg" -maxdepth 1 -name 'portier_*_amd64.deb' | head -n1)
[[ -f "$deb" ]] || fail "cpack made no portier_*.deb: $out"

info=$(dpkg-deb -I "$deb")
assert_contains "$info" "Depends: libnftnl11, libmnl0, libsdbus-c++1, libsystemd0, libtomlplusplus3, netbase, dbus" \
  "the package's dependencies"
assert_eq "/etc/portier/policy.toml" "$(dpkg-deb -I "$deb" conffiles)" "the package's conffiles"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/sbin/portierd ./usr/bin/portierctl ./lib/systemd/system/portierd.service \
  ./usr/share/dbus-1/system.d/org.portier.Firewall1.conf ./usr/share/polkit-1/actions/org.portier.Firewall1.policy \
  ./usr/share/portier/policies/home-router.toml ./usr/share/man/man1/portierctl.1 \
  ./usr/share/bash-completion/completions/portierctl ./etc/portier/policy.toml; do
  grep -qxF -- "$path" <<<"$contents" || fail "the package lacks $path"
done
log "ok: package $(basename "$deb") with dependencies, conffile and every file"

# --- dpkg -i on a fresh root ------------------------------------------------------------------
mkdir -p "$WORKDIR/root/upper" "$WORKDIR/root/work" "$WORKDIR/root/merged"
cp "$deb" "$WORKDIR/portier.deb"
# A private mount namespace: the overlay and /proc go away with it, whatever happens.
out=$(unshare -m --propagation private bash -c '
  set -e
  root=$1
  mount -t overlay overlay -o "lowerdir=$2,upperdir=$root/upper,workdir=$root/work" "$root/merged"
  mount --bind /proc "$root/merged/proc"
  cp "$3" "$root/merged/tmp/portier.deb"
  chroot "$root/merged" dpkg -i /tmp/portier.deb
  echo "--- after"
  chroot "$root/merged" dpkg-query -W -f "\${Status}\n" portier
  chroot "$root/merged" readlink /etc/systemd/system/multi-user.target.wants/portierd.service
  chroot "$root/merged" portierctl check /etc/portier/policy.toml
  chroot "$root/merged" portierctl version
' _ "$WORKDIR/root" "$ROOTFS" "$WORKDIR/portier.deb" 2>&1) || fail "dpkg -i on a fresh Debian root failed:
$out"
after=${out#*--- after}
assert_contains "$after" "install ok installed" "dpkg's status of portier"
assert_contains "$after" "/lib/systemd/system/portierd.service" "the unit enabled by the maintainer script"
assert_contains "$after" "/etc/portier/policy.toml: ok" "portierctl check of the installed default policy"
assert_contains "$after" "portierctl 0.1.0" "the installed portierctl"
log "ok: dpkg -i installed and enabled portierd on a fresh root"

#!/usr/bin/env bash
# The Debian package, made as a packager would: a build configured with Debian's flags but
# *without* -DCMAKE_INSTALL_PREFIX=/usr (so /usr/local), then `cpack -G DEB`. The package must
# still install into /usr and /etc, ship stripped and hardened binaries (their symbols in a
# -dbgsym package), and `apt install ./portier_*.deb` on a fresh Debian 12 booted under
# systemd (lib_nspawn.sh) must leave portierd running with the default policy loaded and a
# working portierctl. cpack of a build without Debian's flags must refuse, saying why.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_cmd cmake cpack dpkg-deb dpkg-buildflags file readelf systemd-nspawn debootstrap nsenter flock
require_binaries
source "$(dirname "${BASH_SOURCE[0]}")/lib_nspawn.sh"
require_nspawn

# --- the package build (lib_nspawn.sh) ----------------------------------------------------------
build_package
deb=$PACKAGE_DEB
ddeb=$PACKAGE_DDEB

# --- cpack of a build that cannot give a right package refuses ---------------------------------
if ! grep -q '^PORTIER_DEBIAN_FLAGS:BOOL=ON' "$PORTIER_BUILD_DIR/CMakeCache.txt"; then
  _run_capture bash -c 'cd "$1" && cpack -G DEB -B "$2"' _ "$PORTIER_BUILD_DIR" "$WORKDIR/refused"
  ((RC != 0)) || fail "cpack of $PORTIER_BUILD_DIR (no Debian flags) made a package"
  # cmake wraps the message: compare with the line breaks taken out.
  assert_contains "$(tr -s ' \n' ' ' <<<"$OUT $ERR")" "refusing to make a .deb of $PORTIER_BUILD_DIR: it is not built with Debian's flags" \
    "cpack of a build without Debian's flags"
  [[ -z "$(find "$WORKDIR/refused" -maxdepth 1 -name '*.deb' 2>/dev/null)" ]] ||
    fail "the refused cpack left a .deb behind"
  log "ok: cpack of $PORTIER_BUILD_DIR (no Debian flags) refuses, saying how to make the package"
fi

# --- what is in the package --------------------------------------------------------------------
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
stray=$(grep -vE '^\./$|^\./(usr|etc|lib)/' <<<"$contents" || true)
stray+=$(grep -E '^\./usr/local/' <<<"$contents" || true)
[[ -z "$stray" ]] || fail "the package has paths outside /usr, /etc and /lib: $stray"

mkdir -p "$WORKDIR/unpacked" "$WORKDIR/dbgsym"
dpkg-deb -x "$deb" "$WORKDIR/unpacked"
dpkg-deb -x "$ddeb" "$WORKDIR/dbgsym"
assert_match "$(grep '^ExecStart=' "$WORKDIR/unpacked/lib/systemd/system/portierd.service")" \
  '^ExecStart=/usr/sbin/portierd ' "the packaged unit"
for bin in usr/sbin/portierd usr/bin/portierctl; do
  f="$WORKDIR/unpacked/$bin"
  assert_match "$(file -b "$f")" ', stripped$' "file(1) of /$bin in the package"
  sections=$(readelf -SW "$f")
  assert_no_match "$sections" '\.debug_' "the sections of /$bin"
  # Hardening: full RELRO (relro and bindnow), stack protector, _FORTIFY_SOURCE's checked calls.
  assert_match "$(readelf -lW "$f")" 'GNU_RELRO' "the program headers of /$bin"
  assert_match "$(readelf -dW "$f")" 'FLAGS.*(BIND_NOW|NOW)' "the dynamic section of /$bin"
  symbols=$(readelf --dyn-syms -W "$f")
  assert_match "$symbols" '__stack_chk_fail' "the imports of /$bin (-fstack-protector-strong)"
  assert_match "$symbols" '__[a-z]+_chk' "the imports of /$bin (-D_FORTIFY_SOURCE=2)"
  # The symbols are in the -dbgsym package, under the binary's build id.
  id=$(readelf -nW "$f" | sed -n 's/.*Build ID: *//p')
  [[ -n "$id" && -f "$WORKDIR/dbgsym/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" ]] ||
    fail "no debug symbols for /$bin (build id '$id') in $(basename "$ddeb")"
done
log "ok: $(basename "$deb") ($(stat -c %s "$deb") bytes; $(basename "$ddeb") $(stat -c %s "$ddeb") bytes):" \
  "/usr and /etc paths only, binaries stripped with full RELRO, stack protector and fortify"

# --- apt install on a fresh Debian 12 under systemd ---------------------------------------------
ensure_rootfs
boot_container -D "$ROOTFS" --volatile=overlay --private-network "--bind-ro=$deb:/root/$(basename "$deb")"
log "ok: container booted in $BOOT_MS ms (pid 1 is $PID1 on the host, state $BOOT_STATE)"
# The container has no network (its own, empty namespace): every dependency is in the root
# already, the Recommends (polkitd) cannot be fetched and are left out.
_run_capture in_ct bash -c 'cd /root && DEBIAN_FRONTEND=noninteractive apt install -y --no-install-recommends ./portier_*.deb'
((RC == 0)) || fail "apt install ./portier_*.deb in the container exited $RC: $OUT $ERR"
_run_capture in_ct dpkg-query -W -f '${Status}\n' portier
assert_eq "install ok installed" "$OUT" "dpkg's status of portier"
assert_eq "/lib/systemd/system/portierd.service" \
  "$(in_ct readlink /etc/systemd/system/multi-user.target.wants/portierd.service)" \
  "the unit enabled by the maintainer script"
# The maintainer script started it: Type=notify, so active means the ruleset is loaded.
assert_match "$(unit_state)" '^ActiveState=active$' "portierd.service after apt install (journal: $(journal))"
_run_capture in_ct portierctl status
assert_rc 0 "portierctl status after apt install"
assert_match "$OUT" '^loaded: +policy$' "portierctl status after apt install"
assert_match "$OUT" '^ *policy: +/etc/portier/policy\.toml$' "portierctl status after apt install"
table=$(in_ct nft list table inet portier 2>&1) || fail "no table inet portier in the container: $table"
assert_contains "$table" 'comment "netbios-in"' "the ruleset loaded from the packaged default policy"
# The bus policy is where dbus-daemon reads it: a non-root user may read.
_run_capture in_ct setpriv --reuid=65534 --regid=65534 --clear-groups portierctl rules
assert_rc 0 "portierctl rules as uid 65534 through the packaged bus policy"
_run_capture in_ct portierctl check /etc/portier/policy.toml
assert_contains "$OUT" "/etc/portier/policy.toml: ok" "portierctl check of the installed default policy"
files=$(in_ct dpkg -L portier)
stray=$(grep -vE '^/\.$|^/(usr|etc|lib)(/|$)' <<<"$files" || true)
[[ -z "$stray" ]] || fail "dpkg -L portier lists paths outside /usr, /etc and /lib: $stray"
log "ok: apt install on a fresh Debian 12: portierd active with the packaged policy loaded, portierctl works"

#!/usr/bin/env bash
# The installed systemd unit passes `systemd-analyze verify` without a single message, and
# the bus policy is installed where dbus-daemon looks. Nothing is installed on this machine:
# `cmake --install` goes to a DESTDIR, and the folder the unit's ExecStart points into is
# replaced by the DESTDIR copy only inside a private mount namespace.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_cmd systemd-analyze unshare cmake
require_binaries

DEST="$WORKDIR/dest"
out=$(DESTDIR="$DEST" cmake --install "$PORTIER_BUILD_DIR" 2>&1) || fail "cmake --install failed: $out"

unit=$(find "$DEST" -path '*/systemd/system/portierd.service' -type f | head -n1)
[[ -n "$unit" ]] || fail "cmake --install put no portierd.service under .../systemd/system:
$(cd "$DEST" && find . -type f)"
policy=$(find "$DEST" -path '*/share/dbus-1/system.d/org.portier.Firewall1.conf' -type f | head -n1)
[[ -n "$policy" ]] || fail "cmake --install put no bus policy under .../share/dbus-1/system.d:
$(cd "$DEST" && find . -type f)"
cmp -s "$policy" "$PORTIER_SOURCE_DIR/systemd/org.portier.Firewall1.conf" ||
  fail "installed bus policy differs from systemd/org.portier.Firewall1.conf"
log "ok: installed ${unit#"$DEST"} and ${policy#"$DEST"}"

exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
[[ "$exec_start" == /*/portierd ]] || fail "ExecStart of the installed unit is not an absolute path to portierd: '$exec_start'"
[[ -x "$DEST$exec_start" ]] || fail "ExecStart=$exec_start, but cmake --install put no executable at that path"
sbindir=${exec_start%/*}
[[ -d "$sbindir" ]] || skip "$sbindir does not exist on this machine, cannot overlay it for the check"

# With no messages at all (systemd-analyze verify exits 0 on many warnings).
out=$(unshare -m --propagation private bash -c '
  mount --bind "$1" "$2" && exec systemd-analyze verify "$3"' _ "$DEST$sbindir" "$sbindir" "$unit" 2>&1) ||
  fail "systemd-analyze verify ${unit#"$DEST"} failed:
$out"
[[ -z "$out" ]] || fail "systemd-analyze verify ${unit#"$DEST"} printed messages (any is a failure):
$out"
log "ok: systemd-analyze verify is silent"

for key in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" "Restart=on-failure" \
  "Before=network-pre.target" "Wants=network-pre.target" "StateDirectory=portier" \
  "ConfigurationDirectory=portier" "CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_PTRACE CAP_DAC_READ_SEARCH" \
  "RestrictAddressFamilies=AF_UNIX AF_NETLINK" "NoNewPrivileges=yes"; do
  grep -qxF -- "$key" "$unit" || fail "installed unit lacks the line '$key'"
done
assert_contains "$(grep '^ExecStart=' "$unit")" \
  "portierd --policy /etc/portier/policy.toml --state-dir /var/lib/portier" "ExecStart of the unit"

# Exposure score (0 best, 10 an unhardened service); keep the hardening from eroding.
out=$(systemd-analyze security --offline=yes --threshold=20 "$unit" 2>&1) ||
  fail "systemd-analyze security rates the unit's exposure above 2.0:
$(tail -n 1 <<<"$out")"
log "ok: $(tail -n 1 <<<"$out")"

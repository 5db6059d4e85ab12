#!/usr/bin/env bash
# Two back ends, one ruleset: what portierd loads over netlink must list exactly like what
# nft itself loads from `portierctl show --policy FILE`. Checked for a policy that uses every
# feature and for every shipped policy in rules/policies/.
#
# Socket owners (binds, user, unit) need care: portierd resolves cgroup paths to ids below
# the cgroup2 mount it finds in /proc/self/mountinfo, nft below /sys/fs/cgroup. So the named
# cgroups are created where missing (and only those removed), portierd enters its namespace
# with nsenter (`ip netns exec` hides the cgroup mounts), and nft runs with cgroup2 mounted at
# /sys/fs/cgroup in a private mount namespace (lib_topology.sh).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
require_root_or_skip
require_binaries
require_cmd nsenter unshare mount
find_cgroup2_root

FEATURES="$WORKDIR/features.toml"
printf '198.51.100.0/24\n# a comment line\n198.51.100.77\n' >"$WORKDIR/blocked.txt"
cat >"$FEATURES" <<'TOML'
# Every feature of the policy format at least once.
[policy]
input   = "reject"
output  = "drop"
forward = "drop"
log     = "denied"

[zone.wan]
interfaces = ["eth0", "ppp*"]

[zone.lan]
interfaces = ["br-lan"]
networks   = ["192.168.1.0/24", "fd00::/8"]
input      = "accept"
forward_to = ["wan"]

[nat]
masquerade = ["wan"]

[set.blocklist]
family   = "ipv4"
elements = ["203.0.113.0/24", "198.51.100.7"]
timeout  = "1h30m"

[set.blocklist6]
family   = "ipv6"
elements = ["2001:db8::/32"]

[set.fromfile]
family = "ipv4"
file   = "blocked.txt"

[set.webports]
family   = "port"
elements = [80, 443, "8000-8010"]

[[rule]]
name   = "blocked"
from   = ["@blocklist", "@blocklist6", "@fromfile"]
action = "drop"
log    = true

[[rule]]
name      = "netbios-in"
direction = "in"
protocols = ["tcp", "udp"]
ports     = ["137-139", 445]
action    = "drop"

[[rule]]
name      = "ssh-in"
protocols = "tcp"
ports     = "ssh"
from      = ["lan", "10.0.0.0/8", "2001:db8:1::/48"]
limit     = "10/minute"
action    = "accept"
comment   = "ssh from inside"

[[rule]]
name      = "web-in"
protocols = ["tcp"]
ports     = [80, "https", "8000-8010", 9090]
action    = "accept"

[[rule]]
name      = "ping"
protocols = ["icmp", "icmpv6"]
limit     = "10/second"
action    = "accept"

[[rule]]
name      = "dns-out"
direction = "out"
protocols = ["udp", "tcp"]
ports     = ["domain"]
action    = "accept"

[[rule]]
name      = "smtp-out"
direction = "out"
to        = "0.0.0.0/0"
protocols = "tcp"
ports     = 25
action    = "reject"

[[rule]]
name      = "web-out-www"
direction = "out"
protocols = "tcp"
ports     = ["http", "https"]
user      = "www-data"
action    = "accept"

[[rule]]
name      = "apt-out"
direction = "out"
unit      = "apt-daily.service"
action    = "accept"

[[rule]]
name      = "mdns-in"
protocols = "udp"
ports     = [5353]
from      = "lan"
action    = "accept"
enabled   = false

[[rule]]
name      = "netbios-routed"
direction = "forward"
to        = "wan"
protocols = ["tcp", "udp"]
ports     = ["137-139"]
action    = "drop"

[[bind]]
name      = "ssh-owner"
protocols = "tcp"
ports     = "ssh"
unit      = "ssh.service"

[[bind]]
name      = "web-owner"
protocols = "tcp"
ports     = [8443]
user      = "www-data"

[[bind]]
name      = "dns-owner"
protocols = ["tcp", "udp"]
ports     = "domain"
cgroup    = "/system.slice/unbound.service"

[[forward]]
name      = "nas-web"
from      = "wan"
protocols = ["tcp"]
ports     = ["8080"]
to        = "192.168.1.10:80"

[[forward]]
name      = "wg6"
from      = "wan"
protocols = "udp"
ports     = [51820]
to        = "[fd00::2]:51821"
enabled   = false
TOML

start_bus

# oracle POLICY: the listing after portierd equals the listing after `nft -f` of show.
oracle() {
  local policy=$1 label=$2 daemon_ns nft_ns

  pctl check "$policy"
  assert_rc 0 "portierctl check $label"
  pctl show --policy "$policy"
  assert_rc 0 "portierctl show --policy $label"
  local shown=$OUT
  [[ -n "$shown" ]] || fail "portierctl show --policy $label printed nothing"
  printf '%s\n' "$shown" >"$WORKDIR/shown.nft"

  local cgroup
  while read -r cgroup; do
    [[ -n "$cgroup" && ! -d "$CGROUP2_ROOT/$cgroup" ]] || continue
    make_cgroup "$cgroup"
    log "$label: created cgroup $CGROUP2_ROOT/$cgroup for its socket matches"
  done < <(grep -oP 'socket cgroupv2 level [0-9]+ (!= )?"\K[^"]+' <<<"$shown" | sort -u)

  new_netns daemon_ns "d$ORACLE_SEQ"
  new_netns nft_ns "n$ORACLE_SEQ"
  ORACLE_SEQ=$((ORACLE_SEQ + 1))

  start_portierd_hostfs "$daemon_ns" "$policy"
  pctl status
  assert_rc 0 "portierctl status after portierd loaded $label"
  assert_match "$OUT" '^loaded: +policy$' "portierctl status after portierd started with $label (log: $(cat "$PORTIERD_LOG"))"
  local from_daemon
  from_daemon=$(cgroupfs_ns "$daemon_ns" nft list table inet portier 2>&1) ||
    fail "nft list table inet portier after portierd loaded $label: $from_daemon"

  local from_nft
  from_nft=$(cgroupfs_ns "$nft_ns" sh -c 'nft -f "$1" && nft list table inet portier' sh "$WORKDIR/shown.nft" 2>&1) ||
    fail "nft -f rejected the output of 'portierctl show --policy $label', or listing it failed:
$from_nft
--- the text ---
$shown"

  # Who owns the table and the live cgroup elements are left out (lib.sh), the rest compared.
  assert_same_text "$(without_table_owner <<<"$from_nft" | without_cgroup_elements)" \
    "$(without_table_owner <<<"$from_daemon" | without_cgroup_elements)" \
    "$label: nft's listing after 'nft -f <(portierctl show)' (expected) vs after portierd (seen)"

  # SIGTERM: exit 0 and the ruleset stays in the kernel, unchanged.
  stop_portierd
  assert_same_text "$(without_table_owner <<<"$from_daemon")" \
    "$(cgroupfs_ns "$daemon_ns" nft list table inet portier 2>&1 | without_table_owner)" \
    "$label: ruleset after portierd exited on SIGTERM"
  del_netns "$daemon_ns"
  del_netns "$nft_ns"
  log "ok: $label loads the same through portierd and through nft"
}
ORACLE_SEQ=0

oracle "$FEATURES" "features.toml"

shopt -s nullglob
shipped=("$PORTIER_SOURCE_DIR"/rules/policies/*.toml)
((${#shipped[@]})) || log "note: no shipped policies in rules/policies/ yet"
for policy in "${shipped[@]}"; do
  oracle "$policy" "rules/policies/${policy##*/}"
done

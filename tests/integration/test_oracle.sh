#!/usr/bin/env bash
# Two back ends, one ruleset: what portierd loads over netlink must list exactly like what
# nft itself loads from `portierctl show --policy FILE`. Checked for a policy that uses every
# feature and for every shipped policy in rules/policies/.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

FEATURES="$WORKDIR/features.toml"
cat >"$FEATURES" <<'TOML'
# Every feature of the policy format once.
[policy]
input  = "reject"
output = "drop"

[[rule]]
name      = "netbios-in"
direction = "in"
protocols = ["tcp", "udp"]
ports     = ["137-139"]
action    = "drop"

[[rule]]
name      = "ssh-in"
direction = "in"
protocols = "tcp"
ports     = ["ssh"]
action    = "accept"

[[rule]]
name      = "web-in"
direction = "in"
protocols = ["tcp"]
ports     = [80, "https", "8000-8010", 9090]
action    = "accept"

[[rule]]
name      = "dns-out"
direction = "out"
protocols = ["udp", "tcp"]
ports     = ["domain"]
action    = "accept"

[[rule]]
name      = "ntp-out"
direction = "out"
protocols = "udp"
ports     = [123]
action    = "accept"

[[rule]]
name      = "smtp-out"
direction = "out"
protocols = "tcp"
ports     = [25]
action    = "reject"

[[rule]]
name      = "dns-in"
direction = "in"
protocols = "udp"
ports     = [53]
action    = "reject"

[[rule]]
name      = "mdns-in"
direction = "in"
protocols = "udp"
ports     = [5353]
action    = "accept"
enabled   = false

[[rule]]
name      = "all-udp-out"
direction = "out"
protocols = "udp"
action    = "accept"
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

  new_netns daemon_ns "d$ORACLE_SEQ"
  new_netns nft_ns "n$ORACLE_SEQ"
  ORACLE_SEQ=$((ORACLE_SEQ + 1))

  start_portierd "$daemon_ns" "$policy"
  local from_daemon
  from_daemon=$(in_ns "$daemon_ns" nft list table inet portier 2>&1) ||
    fail "nft list table inet portier after portierd loaded $label: $from_daemon"

  local nft_out
  nft_out=$(in_ns "$nft_ns" nft -f "$WORKDIR/shown.nft" 2>&1) ||
    fail "nft -f rejected the output of 'portierctl show --policy $label':
$nft_out
--- the text ---
$shown"
  local from_nft
  from_nft=$(in_ns "$nft_ns" nft list table inet portier 2>&1) ||
    fail "nft list table inet portier after nft -f of show output ($label): $from_nft"

  assert_same_text "$from_nft" "$from_daemon" \
    "$label: nft's listing after 'nft -f <(portierctl show)' (expected) vs after portierd (seen)"

  # SIGTERM: exit 0 and the ruleset stays in the kernel, unchanged.
  stop_portierd
  assert_same_text "$from_daemon" "$(nft_table "$daemon_ns")" "$label: ruleset after portierd exited on SIGTERM"
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

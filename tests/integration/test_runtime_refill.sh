#!/usr/bin/env bash
# A reload over the table portierd loaded keeps the table and its chains (their kernel
# handles stay) and replaces their contents; a reload whose chains differ (another default
# policy) replaces the table whole. Either way the kernel holds portier's rendering of the
# new policy, and traffic follows it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

make_ns_pair

# The table's and the chains' handles, as `nft -a list` prints them.
handles() { ip netns exec "$HOST_NS" nft -a list table inet portier | grep -E '^table|^\s*(chain|set|map) '; }
# The rendering of the policy file, listed by nft from a namespace of its own.
rendered() {
  "$PORTIERCTL" show --policy "$POLICY" >"$WORKDIR/rendered.nft"
  unshare -n sh -c 'nft -f "$1" && nft list table inet portier' sh "$WORKDIR/rendered.nft" |
    without_table_owner
}

POLICY="$WORKDIR/policy.toml"
write_policy() {
  cat >"$POLICY" <<TOML
[policy]
input  = "$1"
output = "accept"

[set.admins]
family   = "ipv4"
elements = ["$2"]

[[rule]]
name      = "web-in"
direction = "in"
protocols = "tcp"
ports     = [$3]
action    = "accept"

[[rule]]
name      = "admin-ssh"
from      = "@admins"
protocols = "tcp"
ports     = [22]
action    = "accept"
TOML
}
write_policy drop 192.0.2.1 8080
start_portierd "$HOST_NS" "$POLICY"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in on 8080"
before=$(handles)
assert_match "$before" 'chain input \{ # handle [0-9]+' "the input chain's handle"

# The same chains: a port and a set's elements change.
write_policy drop 198.51.100.0/24 8081
pctl reload
assert_rc 0 "portierctl reload (same chains)"
after=$(handles)
assert_eq "$(grep -E '^table|chain ' <<<"$after")" "$(grep -E '^table|chain ' <<<"$before")" \
  "the table's and chains' handles after a reload with the same chains"
assert_same_text "$(nft_table "$HOST_NS" | without_table_owner | without_cgroup_elements)" \
  "$(rendered | without_cgroup_elements)" "the table after the refill"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "web-in on 8081 after the refill"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "8080 after the refill"

# Another default policy: the input chain is another, so the table is made anew.
write_policy reject 198.51.100.0/24 8081
pctl reload
assert_rc 0 "portierctl reload (other chains)"
[[ "$(handles | grep '^table')" != "$(grep '^table' <<<"$after")" ]] ||
  fail "a reload with other chains kept the table: $(handles)"
assert_same_text "$(nft_table "$HOST_NS" | without_table_owner | without_cgroup_elements)" \
  "$(rendered | without_cgroup_elements)" "the table after the whole replacement"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "web-in after the whole replacement"
stop_portierd
log "PASS"

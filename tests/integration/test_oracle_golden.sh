#!/usr/bin/env bash
# The netlink oracle over every golden policy (tests/golden/*.toml) and every shipped one
# (rules/policies/*.toml): `nft list table inet portier` after portierd loaded the policy
# in a fresh namespace equals the listing after `nft -f` of `portierctl show --policy FILE`
# in another fresh namespace.
#
# Policies with binds or units match sockets by cgroup: portierd resolves those paths to ids
# itself (below the cgroup2 mount of /proc/self/mountinfo), nft resolves them below
# /sys/fs/cgroup, both when loading and when listing. So the cgroups named in the ruleset are
# created where missing (and only those are removed afterwards), portierd enters its
# namespace with nsenter (`ip netns exec` hides the cgroup mounts), and every nft here runs
# in a private mount namespace with cgroup2 mounted at /sys/fs/cgroup.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
require_root_or_skip
require_binaries
require_cmd nsenter unshare mount
find_cgroup2_root

# portierd owns its table (flags owner and persist: owned by its netlink socket, kept after
# it exits), which `nft -f` of the show output cannot reproduce from a process that exits
# at once. The owner's marks, the `# progname` comment and the table's flags line (see
# without_table_owner in lib.sh), and only they, are left out of both listings.
# And the elements of cgroup sets (lib.sh); their encoding is test_oracle_encoder's (byte for
# byte, its cgroup case).
strip_table_flags() { without_table_owner | without_cgroup_elements; }

start_bus

ORACLE_SEQ=0
PASSED=()
oracle_golden() {
  local policy=$1 label=$2 daemon_ns nft_ns

  pctl show --policy "$policy"
  assert_rc 0 "portierctl show --policy $label"
  local shown=$OUT
  [[ -n "$shown" ]] || fail "portierctl show --policy $label printed nothing"
  printf '%s\n' "$shown" >"$WORKDIR/shown.nft"

  # Owners the ruleset names: cgroups must exist, users are already resolved to uids by show.
  local cgroup
  while read -r cgroup; do
    [[ -n "$cgroup" ]] || continue
    if [[ ! -d "$CGROUP2_ROOT/$cgroup" ]]; then
      make_cgroup "$cgroup"
      log "$label: created cgroup $CGROUP2_ROOT/$cgroup for its socket matches"
    fi
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
    fail "nft -f of 'portierctl show --policy $label' and listing it failed:
$from_nft
--- the text ---
$shown"

  if grep -qP '^\tflags ' <<<"$from_daemon"; then
    log "$label: leaving out the table flags line of portierd's table: $(grep -P '^\tflags ' <<<"$from_daemon")"
  fi
  assert_same_text "$(strip_table_flags <<<"$from_nft")" "$(strip_table_flags <<<"$from_daemon")" \
    "$label: nft's listing after 'nft -f <(portierctl show --policy)' (expected) vs after portierd (seen)"

  stop_portierd
  del_netns "$daemon_ns"
  del_netns "$nft_ns"
  PASSED+=("$label")
  log "ok: $label lists the same through portierd and through nft"
}

shopt -s nullglob
policies=("$PORTIER_SOURCE_DIR"/tests/golden/*.toml "$PORTIER_SOURCE_DIR"/rules/policies/*.toml)
((${#policies[@]})) || fail "no policies found in tests/golden/ or rules/policies/"
for policy in "${policies[@]}"; do
  oracle_golden "$policy" "${policy#"$PORTIER_SOURCE_DIR"/}"
done

# A long policy, whose chains the compiler cuts into parts (rules/split_chains.h): 1,300
# rules in the input chain and 700 in a zone's, with rules that stay in the chain between.
# Blocks of 100 alternate between logged rules (they stay rules) and plain ones, which
# merge into maps (rules/merge_rules.h). And a set of 12,000 addresses, whose hash set is
# declared with a size.
for ((i = 0; i < 12000; i++)); do printf '10.%d.%d.%d\n' $((i / 65536)) $((i / 256 % 256)) $((i % 256)); done >"$WORKDIR/many.txt"
{
  printf '[policy]\ninput = "drop"\n[zone.lan]\ninterfaces = ["lan0"]\n'
  printf '[set.many]\nfamily = "ipv4"\nfile = "many.txt"\n[[rule]]\nname = "many-out"\nfrom = "@many"\naction = "drop"\n'
  for ((i = 0; i < 2000; i++)); do
    from='"10.0.0.0/8"'
    ((i % 3 == 0)) && from='"lan"'
    action=accept
    ((i % 10 == 0)) && action=drop
    ((i % 97 == 0)) && action=reject
    printf '[[rule]]\nname = "r%d"\nprotocols = ["tcp", "udp"]\nports = [%d]\nfrom = %s\naction = "%s"\n' \
      "$i" $((1000 + i)) "$from" "$action"
    if ((i % 250 == 1)); then
      printf 'log = true\nlimit = "10/minute"\n'
    elif (((i / 100) % 2 == 1)); then
      printf 'log = true\n'
    fi
  done
} >"$WORKDIR/long.toml"
oracle_golden "$WORKDIR/long.toml" "a generated 2,000-rule policy"
grep -q 'jump input/1' "$WORKDIR/shown.nft" || fail "the 2,000-rule policy's input chain was not split into parts"
grep -q 'th dport vmap @input/m' "$WORKDIR/shown.nft" || fail "the 2,000-rule policy's plain rules were not merged into maps"
grep -q 'size 32768' "$WORKDIR/shown.nft" || fail "the 12,000-address hash set was not declared with a size"
DONE_MESSAGE="PASS (${#PASSED[@]} policies: ${PASSED[*]})"

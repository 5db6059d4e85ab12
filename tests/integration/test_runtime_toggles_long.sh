#!/usr/bin/env bash
# Toggles in a long policy, whose input chain the compiler cuts into parts (input/1, ...,
# rules/split_chains.h): each toggle is a small edit of one part in the real kernel. After
# every round of random toggles, the kernel's table must be exactly what `nft -f` of
# portierd's own rendering of its state gives (`portierctl show`), and real traffic must
# follow the toggled rules.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair
new_netns NFT_NS n

RULES=1500
POLICY="$WORKDIR/policy.toml"
{
  printf '[policy]\ninput = "reject"\n'
  for ((i = 0; i < RULES; i++)); do
    action=accept
    ((i % 10 == 9)) && action=drop
    printf '[[rule]]\nname = "r%04d"\nprotocols = "tcp"\nports = [%d]\nfrom = "%s"\naction = "%s"\n' \
      "$i" $((20000 + i)) "$PEER_IP" "$action"
  done
} >"$POLICY"

start_portierd "$HOST_NS" "$POLICY"
listing=$(nft_table "$HOST_NS")
grep -q 'jump input/1' <<<"$listing" || fail "a $RULES-rule input chain was not cut into parts: $(head -20 <<<"$listing")"
parts=$(grep -c '^	chain input/' <<<"$listing")
log "the input chain is in $parts parts"

# kernel_equals_rendering WHAT: the kernel's table (counters and owner left out) equals
# what nft itself makes of portierd's rendering of its current state.
kernel_equals_rendering() {
  pctl show
  assert_rc 0 "portierctl show ($1)"
  # Without the owner flag: a table owned by nft's own socket would go when nft exits.
  grep -v '^	flags owner$' <<<"$OUT" >"$WORKDIR/shown.nft"
  ip netns exec "$NFT_NS" nft delete table inet portier 2>/dev/null || true
  ip netns exec "$NFT_NS" nft -f "$WORKDIR/shown.nft" || fail "nft -f of portierctl show failed ($1)"
  assert_same_text "$(table_shape "$NFT_NS" | without_table_owner)" "$(table_shape "$HOST_NS" | without_table_owner)" \
    "nft's listing of portierd's rendering (expected) vs the kernel's table after toggles ($1)"
}

RANDOM=7
declare -A STATE
for round in 1 2 3; do
  for ((k = 0; k < 25; k++)); do
    i=$((RANDOM % RULES))
    name=$(printf 'r%04d' "$i")
    if ((RANDOM % 2)); then verb=disable; else verb=enable; fi
    pctl "$verb" "$name"
    assert_rc 0 "portierctl $verb $name"
    STATE[$name]=$verb
  done
  kernel_equals_rendering "round $round, ${#STATE[@]} rules toggled so far"
  # Every rule toggled so far is in the kernel, or not, as its last toggle said.
  listing=$(nft_table "$HOST_NS")
  for name in "${!STATE[@]}"; do
    if [[ ${STATE[$name]} == enable ]]; then
      grep -q "comment \"$name\"" <<<"$listing" || fail "$name was enabled last but is not in the kernel's table"
    else
      grep -q "comment \"$name\"" <<<"$listing" && fail "$name was disabled last but is still in the kernel's table"
    fi
  done
  log "ok: round $round: the kernel holds exactly the rendering, every toggled rule as toggled"
done

# Real traffic through a rule deep in the chain (part 3 of the input chain).
port=$((20000 + 700))
pctl enable r0700
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp "$port" "r0700 enabled"
pctl disable r0700
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" "$port" "r0700 disabled: the default rejects"
pctl enable r0700
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp "$port" "r0700 enabled again"
kernel_equals_rendering "after the traffic checks"
DONE_MESSAGE="PASS ($RULES rules in $parts parts, 75 random toggles)"

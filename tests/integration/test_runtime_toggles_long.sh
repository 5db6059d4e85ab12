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
  # Blocks of 50: plain rules (one shape, so they merge into a map) and logged ones
  # (they stay rules, 2 kernel rules each, and make the chain long enough for parts).
  for ((i = 0; i < RULES; i++)); do
    action=accept
    ((i % 10 == 9)) && action=drop
    log=false
    (((i / 50) % 2 == 1)) && log=true
    printf '[[rule]]\nname = "r%04d"\nprotocols = "tcp"\nports = [%d]\nfrom = "%s"\naction = "%s"\nlog = %s\n' \
      "$i" $((20000 + i)) "$PEER_IP" "$action" "$log"
  done
} >"$POLICY"

start_portierd "$HOST_NS" "$POLICY"
listing=$(nft_table "$HOST_NS")
grep -q 'jump input/1' <<<"$listing" || fail "a $RULES-rule input chain was not cut into parts: $(head -20 <<<"$listing")"
parts=$(grep -c '^	chain input/' <<<"$listing")
maps=$(grep -c '^	map input' <<<"$listing")
((maps == 15)) || fail "expected the 15 blocks of plain rules as 15 maps, found $maps"
log "the input chain is in $parts parts, with $maps maps of merged rules"

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
  kernel_equals_rendering "$HOST_NS" "$NFT_NS" "round $round, ${#STATE[@]} rules toggled so far"
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

# Real traffic through a rule deep in the chain: r0700 is an element of a map, r0760 a
# logged rule in a later part of the input chain.
for name in r0700 r0760; do
  port=$((20000 + 10#${name#r}))
  pctl enable "$name"
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp "$port" "$name enabled"
  pctl disable "$name"
  assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" "$port" "$name disabled: the default rejects"
  pctl enable "$name"
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp "$port" "$name enabled again"
  # The counter portierctl shows is the map element's (r0700) or the rule's (r0760).
  packets=$(rule_field "$name" packets)
  [[ "$packets" != 0 ]] || fail "portierctl rules shows no packets for $name after a connection through it"
  log "ok: portierctl rules counts $packets packets for $name"
done
kernel_equals_rendering "$HOST_NS" "$NFT_NS" "after the traffic checks"
DONE_MESSAGE="PASS ($RULES rules: $maps maps and $parts parts, 75 random toggles)"

#!/usr/bin/env bash
# Named set elements at run time: `portierctl set add blocklist ADDR` blocks that peer at once
# (and only that address: the same peer from another address still gets in), `set del`
# unblocks it, and `set add ... --timeout 3s` expires by itself (the kernel drops the element,
# portierd forgets it). Set elements survive a daemon restart.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair
PEER_IP2="10.200.$TEST_ID.3"
ip -n "$PEER_NS" addr add "$PEER_IP2/24" dev veth1

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[set.blocklist]
family  = "ipv4"
timeout = "1h"

[[rule]]
name      = "blocked"
from      = "@blocklist"
action    = "drop"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"
TOML

start_portierd "$HOST_NS" "$POLICY"
listen "$HOST_NS" tcp 8080

# from_addr_arrives SRC: a TCP connection from the peer's address SRC to 8080 arrives. (Only
# for one-off checks: socat's bind= may reuse the last source port, and a quick second
# connection on the same 4-tuple can lose its data.)
from_addr_arrives() {
  local src=$1 token="from-$1-$RANDOM"
  printf '%s\n' "$token" | in_ns "$PEER_NS" timeout 5 \
    socat -u - "TCP:$HOST_IP:8080,bind=$src,connect-timeout=2" >/dev/null 2>&1 || return 1
  local i
  for ((i = 0; i < 20; i++)); do
    grep -qx -- "$token" "$WORKDIR/rx-$HOST_NS-tcp-8080" && return 0
    sleep 0.05
  done
  return 1
}
set_list() {
  pctl set list blocklist
  ((RC == 0)) || fail "portierctl set list blocklist exited $RC: $ERR"
  printf '%s\n' "$OUT"
}
blocked_now() { ! probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080; }
open_now() { probe "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080; }

assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "empty blocklist"

# --- add / del ---------------------------------------------------------------------------------
t0=$(now_s)
pctl set add blocklist "$PEER_IP"
assert_rc 0 "portierctl set add blocklist $PEER_IP"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "$PEER_IP in blocklist (probed right after set add)"
log "ok: blocked from the first probe after set add ($(elapsed_since "$t0") s including the 2 s probe timeout)"
from_addr_arrives "$PEER_IP2" || fail "the peer's other address $PEER_IP2 is not in the blocklist but cannot connect"
log "ok: $PEER_IP2 (not in the blocklist) still connects"
assert_contains "$(set_list)" "$PEER_IP" "portierctl set list blocklist after set add"
listing=$(nft_table "$HOST_NS")
assert_match "$listing" "elements = \\{ $PEER_IP " "the kernel's set blocklist after set add"

# Kept across a restart.
restart_portierd "$HOST_NS" "$POLICY"
assert_contains "$(set_list)" "$PEER_IP" "portierctl set list blocklist after a restart"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "$PEER_IP in blocklist after a restart"

pctl set del blocklist "$PEER_IP"
assert_rc 0 "portierctl set del blocklist $PEER_IP"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "$PEER_IP removed from blocklist (probed right after set del)"
[[ "$(set_list)" != *"$PEER_IP"* ]] || fail "portierctl set list blocklist still shows $PEER_IP after set del: $(set_list)"

# --- --timeout 3s --------------------------------------------------------------------------------
t1=$(now_s)
pctl set add blocklist "$PEER_IP" --timeout 3s
assert_rc 0 "portierctl set add blocklist $PEER_IP --timeout 3s"
blocked_now || fail "$PEER_IP connects right after set add --timeout 3s"
log "ok: blocked right after set add --timeout 3s"
wait_until 10 "$PEER_IP to get in again after its 3 s timeout" open_now
opened=$(elapsed_since "$t1")
awk -v t="$opened" 'BEGIN { exit !(t >= 2.5 && t <= 6) }' ||
  fail "$PEER_IP got in again $opened s after set add --timeout 3s, expected about 3 s"
log "ok: $PEER_IP unblocked by itself $opened s after set add --timeout 3s"
wait_until 5 "portierctl set list to forget the expired element" eval '[[ "$(set_list)" != *"$PEER_IP"* ]]'
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "after the timeout"

# Errors: a bad element, and a timeout on a set element that must not have one.
pctl set add blocklist 10.0.0.256
assert_rc 1 "portierctl set add blocklist 10.0.0.256"
pctl set add nosuchset "$PEER_IP"
assert_rc 1 "portierctl set add nosuchset"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "after the refused set changes"
stop_portierd

# --- a big set, declared with a size, grown past it -------------------------------------
# 12,000 addresses from the policy: the hash set is declared with room for 32,768. Adding
# 30,000 more at run time goes past it; the kernel refuses the add, and portierd loads the
# set anew with a larger size instead, keeping every element and the peer blocked.
for ((i = 0; i < 12000; i++)); do printf '10.1.%d.%d\n' $((i / 256)) $((i % 256)); done >"$WORKDIR/big.txt"
printf '%s\n' "$PEER_IP" >>"$WORKDIR/big.txt"
sed -e 's/^timeout = "1h"$/file = "big.txt"/' "$POLICY" >"$WORKDIR/big.toml"
start_portierd "$HOST_NS" "$WORKDIR/big.toml"
assert_match "$(ip netns exec "$HOST_NS" nft list set inet portier blocklist_hosts | head -5)" 'size 32768' \
  "the 12,001-address hash set's size"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "$PEER_IP in the big set"
for ((i = 0; i < 30000; i++)); do printf '10.2.%d.%d\n' $((i / 256)) $((i % 256)); done >"$WORKDIR/more.txt"
pctl set add blocklist --file "$WORKDIR/more.txt"
assert_rc 0 "portierctl set add blocklist --file (30,000 more, past the set's size)"
assert_contains "$(cat "$PORTIERD_LOG")" "portierd: set blocklist changed by reloading it" "portierd's log after an add past the size"
listing=$(ip netns exec "$HOST_NS" nft list set inet portier blocklist_hosts)
assert_match "$(head -5 <<<"$listing")" 'size 131072' "the hash set's size after growing to 42,001 addresses"
count=$(grep -oE '10\.2\.[0-9]+\.[0-9]+' <<<"$listing" | wc -l)
assert_eq 30000 "$count" "addresses of the runtime add in the kernel's set"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "$PEER_IP still in the grown set"
stop_portierd

#!/usr/bin/env bash
# Whether replacing the whole table drops packets that both rulesets accept, without
# portierd: portier's renderings of the soak's policies A and B (`portierctl show
# --policy`) are loaded in turn with nft -f on the soak's router while unanswered UDP
# probes to a port both allow are forwarded through it, in two ways:
#
#   replace  as rendered, and as portierd loads it: `table; delete table; table {...}`
#   flush    `table; flush table; table {...}`: the same rules, the chains kept
#
# Prints the probes lost in each. Not part of the test suite (it measures, it does not
# judge): docs/soak.md says what it found. Usage: bash tests/soak/replace_window.sh
# [REPLACEMENTS] (default 300), as root, with a build (PORTIER_BUILD_DIR).
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib_topology.sh"
require_root_or_skip
require_binaries
N=${1:-300}
TRAFFIC=$PORTIER_SOURCE_DIR/tests/soak/traffic.py

make_router_topology
source "$(dirname "${BASH_SOURCE[0]}")/lib_soak.sh"
write_soak_policies "$WORKDIR"
for p in a b; do
  "$PORTIERCTL" show --policy "$WORKDIR/$p.toml" >"$WORKDIR/$p-replace.nft" || fail "cannot render $p.toml"
  [[ $(sed -n 2p "$WORKDIR/$p-replace.nft") == "delete table inet portier" ]] ||
    fail "the rendering of $p.toml no longer starts with table; delete table"
  sed '2s/^delete table inet portier$/flush table inet portier/' "$WORKDIR/$p-replace.nft" >"$WORKDIR/$p-flush.nft"
done
ip netns exec "$ROUTER_NS" nft -f "$WORKDIR/a-replace.nft"
spawn probe-rx ip netns exec "$LAN_NS" "$PYTHON" "$TRAFFIC" probe-rx "$WORKDIR/rx.json" udp:6001
RX_PID=$SPAWNED_PID
_wait_listening "$LAN_NS" udp 6001

for mode in replace flush; do
  spawn "probe-$mode" ip netns exec "$WAN_NS" "$PYTHON" "$TRAFFIC" probe-tx "$WORKDIR/tx-$mode.json" \
    "$WORKDIR/stop-$mode" 1000 "$mode" "udp:$LAN_IP:6001"
  tx=$SPAWNED_PID
  sleep 1
  for ((i = 0; i < N; i++)); do
    ((i % 2)) && f=a || f=b
    ip netns exec "$ROUTER_NS" nft -f "$WORKDIR/$f-$mode.nft" || fail "nft -f $f-$mode.nft"
  done
  sleep 0.5
  touch "$WORKDIR/stop-$mode"
  wait "$tx" || fail "the probe sender ($mode) failed"
done
sleep 1.5
stop_pid "$RX_PID" || true
for mode in replace flush; do
  "$PYTHON" - "$WORKDIR/tx-$mode.json" "$WORKDIR/rx.json" "$mode" "udp:$LAN_IP:6001" "$N" <<'EOF'
import json, sys
tx, rx, mode, key, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4], sys.argv[5]
sent = tx[key]["sent"]
got = rx["targets"].get(f"{mode} {key}", {})
print(f"{mode}: {n} loads, {sent} probes sent, {sent - got.get('received', 0)} lost, "
      f"runs lost (first, length): {got.get('missing_runs', [])}")
EOF
done

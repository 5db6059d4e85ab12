#!/usr/bin/env bash
# Whether replacing the whole table drops packets that both rulesets accept, without
# portierd: portier's renderings of the soak's policies A and B (`portierctl show
# --policy`) are loaded in turn with nft -f on the soak's router while unanswered UDP
# probes to a port both allow are forwarded through it, in two ways:
#
#   replace  as rendered: `table; delete table; table {...}`
#   flush    `table; flush table; table {...}`: the same rules, the chains kept
#
# Then with A and A2 (A with ssh-lan on another port: the same chains, so that portierd can
# keep them):
#
#   replace-same  the renderings of A and A2 with nft -f, `delete table` as above
#   portierd      portierd in the router, `portierctl reload` of A and A2 in turn: the table
#                 refilled in place (Kernel::refill; a whole replacement between A and B)
#   idle          no load at all, 50 ms per round (A2 in force): what is lost anyway
#
# Prints the probes lost in each. Not part of the test suite (it measures, it does not
# judge): docs/soak.md says what it found. Usage: bash tests/soak/replace_window.sh
# [REPLACEMENTS] (default 300), as root, with a build (PORTIER_BUILD_DIR); REPLACE_WINDOW_MODES
# picks modes (default all five).
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
sed 's/^ports = \[22\]$/ports = [2222]/' "$WORKDIR/a.toml" >"$WORKDIR/a2.toml"
cmp -s "$WORKDIR/a.toml" "$WORKDIR/a2.toml" && fail "a2.toml is a.toml: ssh-lan's port not found"
"$PORTIERCTL" show --policy "$WORKDIR/a2.toml" >"$WORKDIR/a2-replace-same.nft" || fail "cannot render a2.toml"
cp "$WORKDIR/a-replace.nft" "$WORKDIR/a-replace-same.nft"
[[ $(grep -c '^\s*chain ' "$WORKDIR/a-replace.nft") == $(grep -c '^\s*chain ' "$WORKDIR/a2-replace-same.nft") ]] ||
  fail "a.toml and a2.toml render different chains"
ip netns exec "$ROUTER_NS" nft -f "$WORKDIR/a-replace.nft"
spawn probe-rx ip netns exec "$LAN_NS" "$PYTHON" "$TRAFFIC" probe-rx "$WORKDIR/rx.json" udp:6001
RX_PID=$SPAWNED_PID
_wait_listening "$LAN_NS" udp 6001

POLICY=$WORKDIR/policy.toml
MODES=${REPLACE_WINDOW_MODES:-replace flush replace-same portierd idle}
for mode in $MODES; do
  if [[ $mode == portierd ]]; then
    ip netns exec "$ROUTER_NS" nft delete table inet portier
    cp "$WORKDIR/a.toml" "$POLICY"
    start_portierd "$ROUTER_NS" "$POLICY"
  fi
  spawn "probe-$mode" ip netns exec "$WAN_NS" "$PYTHON" "$TRAFFIC" probe-tx "$WORKDIR/tx-$mode.json" \
    "$WORKDIR/stop-$mode" 1000 "$mode" "udp:$LAN_IP:6001"
  tx=$SPAWNED_PID
  sleep 1
  for ((i = 0; i < N; i++)); do
    other=b
    [[ $mode == replace-same || $mode == portierd ]] && other=a2
    ((i % 2)) && f=a || f=$other
    if [[ $mode == idle ]]; then
      sleep 0.05
    elif [[ $mode == portierd ]]; then
      cp "$WORKDIR/$f.toml" "$POLICY"
      pctl reload
      assert_rc 0 "portierctl reload of $f.toml"
    else
      ip netns exec "$ROUTER_NS" nft -f "$WORKDIR/$f-$mode.nft" || fail "nft -f $f-$mode.nft"
    fi
  done
  sleep 0.5
  touch "$WORKDIR/stop-$mode"
  wait "$tx" || fail "the probe sender ($mode) failed"
  if [[ $mode == portierd ]]; then
    # Its table stays (persistent, owned by nobody now); nft -f cannot load over the
    # owner flag, so it goes, and the next mode's first load makes it again.
    stop_portierd
    ip netns exec "$ROUTER_NS" nft delete table inet portier
    ip netns exec "$ROUTER_NS" nft -f "$WORKDIR/a-replace.nft"
  fi
done
sleep 1.5
stop_pid "$RX_PID" || true
for mode in $MODES; do
  "$PYTHON" - "$WORKDIR/tx-$mode.json" "$WORKDIR/rx.json" "$mode" "udp:$LAN_IP:6001" "$N" <<'EOF'
import json, sys
tx, rx, mode, key, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4], sys.argv[5]
sent = tx[key]["sent"]
got = rx["targets"].get(f"{mode} {key}", {})
print(f"{mode}: {n} loads, {sent} probes sent, {sent - got.get('received', 0)} lost, "
      f"runs lost (first, length): {got.get('missing_runs', [])}")
EOF
done

#!/usr/bin/env bash
# Benchmark 5: per-packet cost. TCP throughput with iperf3 between two network namespaces
# over a veth pair, into a host that has the home-router policy (interface names adapted)
# plus 1,000 open ports and a 100k-entry blocklist set, relative to the same setup with no
# ruleset at all. Two identical namespace pairs (one without, one with the ruleset); the
# runs alternate between them. Prints one markdown table row (after a header).
#
# usage: bench/datapath.sh PORTIER_BENCH WORKDIR [SECONDS] [REPETITIONS]
# Everything it makes (namespaces, iperf3 servers) it removes again on exit.
set -euo pipefail

BENCH=$1
DIR=$2
SECONDS_PER_RUN=${3:-5}
REPS=${4:-3}
SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=/usr/bin/python3
PORT=20999  # the last of the 1,000 open ports: the SYN walks every rule before it

TAG="pbench$$"
NAMESPACES=()
PIDS=()
cleanup() {
  local pid ns
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT

# make_pair N: namespaces $TAG-N-srv (veth "wan0", 10.201.N.1) and $TAG-N-cli (10.201.N.2).
make_pair() {
  local n=$1 srv="$TAG-$1-srv" cli="$TAG-$1-cli"
  ip netns add "$srv"
  NAMESPACES+=("$srv")
  ip netns add "$cli"
  NAMESPACES+=("$cli")
  ip -n "$srv" link set lo up
  ip -n "$cli" link set lo up
  ip -n "$srv" link add wan0 type veth peer name eth0 netns "$cli"
  ip -n "$srv" addr add "10.201.$n.1/24" dev wan0
  ip -n "$cli" addr add "10.201.$n.2/24" dev eth0
  ip -n "$srv" link set wan0 up
  ip -n "$cli" link set eth0 up
  ip netns exec "$srv" iperf3 -s -p "$PORT" -B "10.201.$n.1" >/dev/null 2>&1 &
  PIDS+=($!)
}

# The policy: home-router with its WAN on wan0 and LAN on lan0, a blocklist set of 100k
# entries with a drop rule, and 1,000 single-port accept rules from the WAN.
policy="$DIR/datapath.toml"
sed -e 's/interfaces = \["eth0", "ppp\*"\]/interfaces = ["wan0"]/' \
    -e 's/interfaces = \["br-lan"\]/interfaces = ["lan0"]/' \
    "$SOURCE_DIR/rules/policies/home-router.toml" >"$policy"
grep -q '"wan0"' "$policy" || { echo "datapath: could not adapt home-router.toml's interfaces" >&2; exit 1; }
"$BENCH" generate set 100000 "$DIR/datapath-blocklist.txt"
{
  printf '\n[set.blocklist]\nfamily = "ipv4"\nfile = "datapath-blocklist.txt"\n'
  printf '\n[[rule]]\nname = "blocked"\nfrom = "@blocklist"\naction = "drop"\n'
  for ((port = 20000; port <= PORT; port++)); do
    printf '\n[[rule]]\nname = "open-%d"\nfrom = "wan"\nprotocols = "tcp"\nports = %d\naction = "accept"\n' "$port" "$port"
  done
} >>"$policy"

make_pair 1  # no ruleset
make_pair 2  # the ruleset
ip netns exec "$TAG-2-srv" "$BENCH" load "$policy"
# Counted outside the published chains, which hold a copy of each input rule for ports the
# neighbours (Docker, ...) publish.
rules=$(ip netns exec "$TAG-2-srv" nft list table inet portier |
  awk '/^\tchain / { copy = ($2 ~ /^published/) } !copy' | grep -o 'comment "open-[0-9]*"' | wc -l)
[[ "$rules" == 1000 ]] || { echo "datapath: expected 1000 open-port rules (kernel rules or map elements) in the kernel, found $rules" >&2; exit 1; }

# The firewall must really be in the way: a port that no rule opens is dropped with it
# (the connect times out) and refused without it.
closed() { ip netns exec "$TAG-$1-cli" timeout 2 bash -c "exec 3<>/dev/tcp/10.201.$1.1/22" 2>&1 || true; }
[[ "$(closed 1)" == *refused* ]] || { echo "datapath: port 22 without a ruleset was not refused" >&2; exit 1; }
[[ "$(closed 2)" != *refused* ]] || { echo "datapath: port 22 with the ruleset was not dropped" >&2; exit 1; }

sleep 0.5  # iperf3 servers listening
throughput() {  # throughput N: Gbit/s received in one run
  local n=$1 json
  json=$(ip netns exec "$TAG-$n-cli" timeout $((SECONDS_PER_RUN + 20)) \
    iperf3 -c "10.201.$n.1" -p "$PORT" -t "$SECONDS_PER_RUN" -J)
  "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)' <<<"$json"
}
without=()
with=()
for ((i = 0; i < REPS; i++)); do
  if ((i % 2 == 0)); then
    without+=("$(throughput 1)")
    with+=("$(throughput 2)")
  else
    with+=("$(throughput 2)")
    without+=("$(throughput 1)")
  fi
done

"$BENCH" row --header 1 --unit Gbit/s --higher-is-better 1 \
  --what "**TCP throughput**, iperf3 over veth, ${SECONDS_PER_RUN} s × $REPS, home-router + 1,000 open ports (iperf3 on the last) + 100k-entry blocklist set" \
  --portier "${with[*]}" --baseline-name "no ruleset at all (same setup)" --baseline "${without[*]}" \
  --target ">= 0.9x" --target-ratio 0.9

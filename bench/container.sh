#!/usr/bin/env bash
# Benchmark 5b: per-packet cost with a container as one end. TCP throughput with iperf3 from
# a client namespace to a port that dockerd (Debian's docker.io, in the host namespace,
# tests/integration/lib_docker.sh) publishes to a container (-p PORT:PORT, iperf3 serving in
# the container's network namespace), through Docker's DNAT, br_netfilter and docker0;
# relative to the same setup with Docker's rules only (portier's table deleted). The runs
# alternate between the two. Prints one markdown table row (after a header).
#
# usage: bench/container.sh PORTIER_BENCH WORKDIR [SECONDS] [REPETITIONS]
SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$1
BENCH_DIR=$2
SECONDS_PER_RUN=${3:-5}
REPS=${4:-3}
# shellcheck source=../tests/integration/lib.sh
source "$SOURCE_DIR/tests/integration/lib.sh"
source "$SOURCE_DIR/tests/integration/lib_docker.sh"
DONE_MESSAGE="done"
PORT=5201
require_root_or_skip
require_cmd dockerd docker containerd runc busybox nsenter unshare tar iperf3

# H (dockerd, the ruleset) --wan0/eth0-- C (the iperf3 client).
new_netns H srv
new_netns C cli
ip -n "$H" link add wan0 type veth peer name eth0 netns "$C"
ip -n "$H" addr add "10.200.$TEST_ID.1/24" dev wan0
ip -n "$C" addr add "10.200.$TEST_ID.2/24" dev eth0
ip -n "$H" link set wan0 up
ip -n "$C" link set eth0 up

start_dockerd "$H" false
import_busybox_image bb "$WORKDIR/rootfs" sh sleep
run_container --name srv -p "$PORT:$PORT" bb sleep 100000
record_container_pids srv
CONTAINER_PID=$(docker inspect -f '{{.State.Pid}}' srv)
[[ "$CONTAINER_PID" -gt 0 ]] || fail "no pid for the container"
spawn iperf3-container nsenter --net="/proc/$CONTAINER_PID/ns/net" iperf3 -s -p "$PORT"
for ((i = 0; i < 50; i++)); do
  nsenter --net="/proc/$CONTAINER_PID/ns/net" ss -Hltn "sport = :$PORT" | grep -q . && break
  sleep 0.1
done

# The policy: the workstation policy with a rule opening the published port (decided in
# portier's published chain, on the port before NAT), its interfaces as they are here.
policy="$BENCH_DIR/container.toml"
cp "$SOURCE_DIR/rules/policies/workstation.toml" "$policy"
printf '\n[[rule]]\nname = "published-iperf"\nprotocols = "tcp"\nports = %d\naction = "accept"\n' \
  "$PORT" >>"$policy"
load() { ip netns exec "$H" "$BENCH" load "$policy" >/dev/null || fail "cannot load $policy"; }
unload() { ip netns exec "$H" nft delete table inet portier; }

# portier must really be in the way: port 5202, published without a rule, is dropped with
# the ruleset (the connect times out) and refused by the container without it.
run_container --name other -p 5202:5202 bb sleep 100000
record_container_pids other
closed() { ip netns exec "$C" timeout 2 bash -c "exec 3<>/dev/tcp/10.200.$TEST_ID.1/5202" 2>&1 || true; }
[[ "$(closed)" == *refused* ]] || fail "port 5202 without portier was not refused"
load
[[ "$(closed)" != *refused* ]] || fail "port 5202 with portier was not dropped"
unload

throughput() {  # Gbit/s received in one run
  local json
  json=$(ip netns exec "$C" timeout $((SECONDS_PER_RUN + 20)) \
    iperf3 -c "10.200.$TEST_ID.1" -p "$PORT" -t "$SECONDS_PER_RUN" -J) || fail "iperf3 failed: $json"
  "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)' <<<"$json"
}
without=()
with=()
for ((i = 0; i < REPS; i++)); do
  if ((i % 2 == 0)); then
    without+=("$(throughput)")
    load
    with+=("$(throughput)")
  else
    load
    with+=("$(throughput)")
    unload
    without+=("$(throughput)")
    continue
  fi
  unload
done

"$BENCH" row --unit Gbit/s --higher-is-better 1 \
  --what "**TCP throughput to a container**, iperf3 to a Docker-published port (DNAT, docker0), ${SECONDS_PER_RUN} s × $REPS, workstation + a rule for the port" \
  --portier "${with[*]}" --baseline-name "Docker's rules only (same setup)" --baseline "${without[*]}" \
  --target ">= 0.9x" --target-ratio 0.9

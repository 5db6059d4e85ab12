#!/usr/bin/env bash
# Benchmark 7: binds that follow their units. portierd (in a network namespace of its own,
# on a private bus) binds tcp/8085 to a unit; the unit's cgroup is made anew again and
# again, as systemd does on every restart:
#  - the window: from the mkdir to portierd's change of the bind's kernel set (an nftables
#    netlink event) and to the first connection from a peer namespace that is accepted
#    (tests/integration/bind_window.py; a fresh SYN every 2 ms);
#  - 1,000 restarts (mkdir + rmdir, each waited for until the set changed): portierd's
#    CPU time and its RSS before and after.
# Prints markdown table rows (after a header).
#
# usage: PORTIER_BUILD_DIR=BUILD bench/binds.sh   (BENCH_BIND_ROUNDS, BENCH_BIND_CYCLES)
SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/integration/lib.sh
source "$SOURCE_DIR/tests/integration/lib.sh"
source "$SOURCE_DIR/tests/integration/lib_topology.sh"
DONE_MESSAGE="done"
ROUNDS=${BENCH_BIND_ROUNDS:-50}
CYCLES=${BENCH_BIND_CYCLES:-1000}
require_root_or_skip
require_binaries
find_cgroup2_root

make_ns_pair
SLICE="portier-bench-$TEST_ID-$$.slice"
UNIT="portier-bench-$$.service"
make_cgroup "$SLICE"
UNIT_DIR="$CGROUP2_ROOT/$SLICE/$UNIT"
on_exit "rmdir_cgroup '$UNIT_DIR'"
cat >"$WORKDIR/policy.toml" <<TOML
[policy]
input = "accept"

[[bind]]
name      = "bench-owner"
protocols = "tcp"
ports     = [8085]
unit      = "$UNIT"
TOML
start_portierd_hostfs "$HOST_NS" "$WORKDIR/policy.toml"

window() { nsenter --net="/run/netns/$HOST_NS" "$PYTHON" "$SOURCE_DIR/tests/integration/bind_window.py" "$@"; }
out=$(window --cgroup "$UNIT_DIR" --port 8085 --peer-ns "/run/netns/$PEER_NS" --address "$HOST_IP" \
  --rounds "$ROUNDS") || fail "a round was not reachable: $out"
summary=$(grep '^window:' <<<"$out")
# "window: N rounds, from mkdir: set changed A/B/C ms, listening D/E/F ms, first accepted connection G/H/I ms"
read -r set_min set_med set_max < <(sed -E 's/.*set changed min\/median\/max ([0-9.]+)\/([0-9.]+)\/([0-9.]+).*/\1 \2 \3/' <<<"$summary")
read -r acc_min acc_med acc_max < <(sed -E 's/.*first accepted connection ([0-9.]+)\/([0-9.]+)\/([0-9.]+).*/\1 \2 \3/' <<<"$summary")
read -r lis_min lis_med lis_max < <(sed -E 's/.*listening ([0-9.]+)\/([0-9.]+)\/([0-9.]+).*/\1 \2 \3/' <<<"$summary")

cpu_ms() { awk '{ printf "%d", ($14 + $15) * 1000 / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
sleep 1
cpu_before=$(cpu_ms "$PORTIERD_PID")
rss_before=$(rss_kib "$PORTIERD_PID")
started=$(date +%s%N)
cycles=$(window --cgroup "$UNIT_DIR" --cycles "$CYCLES") || fail "set changes were missed: $cycles"
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
sleep 1
cpu_after=$(cpu_ms "$PORTIERD_PID")
rss_after=$(rss_kib "$PORTIERD_PID")
cpu=$((cpu_after - cpu_before))

printf '| measure | min / median / max | note |\n|---|---|---|\n'
printf '| mkdir of the unit'"'"'s cgroup -> bind set changed | %s / %s / %s ms | %d rounds |\n' "$set_min" "$set_med" "$set_max" "$ROUNDS"
printf '| mkdir -> new listener in the cgroup up | %s / %s / %s ms | the test'"'"'s own fork and listen, after the set changed |\n' "$lis_min" "$lis_med" "$lis_max"
printf '| mkdir -> first connection accepted | %s / %s / %s ms | a fresh SYN every 2 ms from the peer |\n' "$acc_min" "$acc_med" "$acc_max"
printf '| %d restarts (mkdir + rmdir): portierd CPU | %d ms in all, %d us a restart | %s (%d ms wall clock) |\n' \
  "$CYCLES" "$cpu" "$((cpu * 1000 / CYCLES))" "$cycles" "$elapsed_ms"
printf '| portierd RSS before / after the restarts | %d / %d KiB | growth %d KiB |\n' \
  "$rss_before" "$rss_after" "$((rss_after - rss_before))"

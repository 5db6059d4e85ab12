#!/usr/bin/env bash
# explain against the kernel: for each shipped policy, loaded into a "host" namespace with
# a peer namespace per zone (and one on an interface in no zone), thousands of random
# packet shapes (TCP, UDP, ICMP echo; IPv4 and IPv6; in, out and, on the router, forward)
# are explained by portier_explain_driver (explain_packet, as portierctl explain) and sent
# for real: every verdict must be the kernel's. tests/explain/differential.py does the
# probing; this script makes and removes the namespaces and cgroups and loads the rules.
#
# PORTIER_DIFF_SEED picks the random shapes (default: a new seed, printed); a failure
# prints each disagreeing shape with both verdicts.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"

require_root_or_skip
require_cmd nsenter unshare
[[ -x "$PORTIERCTL" ]] || fail "portierctl not built: $PORTIERCTL missing (build with tests/setup.sh)"
DRIVER=${PORTIER_EXPLAIN_DRIVER:-$PORTIER_BUILD_DIR/tests/explain/portier_explain_driver}
[[ -x "$DRIVER" ]] || fail "$DRIVER is not built (tests/explain needs add_subdirectory(explain) in tests/CMakeLists.txt)"
DIFFERENTIAL=$PORTIER_SOURCE_DIR/tests/explain/differential.py
POLICIES=$PORTIER_SOURCE_DIR/rules/policies
SEED=${PORTIER_DIFF_SEED:-$RANDOM$RANDOM}
log "seed $SEED (PORTIER_DIFF_SEED=$SEED repeats this run)"

find_cgroup2_root
CG=portier-explain-$$
make_cgroup "$CG/ssh.service/child"
make_cgroup "$CG/other"

# load_policy NS FILE: what `portierctl show` prints, loaded with nft in NS only. nft
# resolves `socket cgroupv2` paths below /sys/fs/cgroup, so it runs where cgroup2 is there.
load_policy() {
  local ns=$1 file=$2
  "$PORTIERCTL" show --policy "$file" >"$file.nft" 2>"$WORKDIR/show.err" || fail "portierctl show --policy $file: $(cat "$WORKDIR/show.err")"
  cgroupfs_ns "$ns" nft -f "$file.nft" || fail "nft -f of $file's ruleset failed in $ns"
  in_ns "$ns" nft list table inet portier >/dev/null || fail "no table inet portier in $ns after loading $file"
}

# run_policy NAME CONFIG_JSON: the differential run for one policy (namespaces exist).
TOTAL_SHAPES=0
TOTAL_MISMATCHES=0
run_policy() {
  local name=$1 config=$WORKDIR/$1.json rc=0
  printf '%s\n' "$2" >"$config"
  spawn "differential-$name" "$PYTHON" "$DIFFERENTIAL" run "$config"
  wait "$SPAWNED_PID" || rc=$?
  local log_file=$WORKDIR/logs/differential-$name.log summary
  summary=$(grep '^{' "$log_file" | tail -n1)
  grep -v '^{' "$log_file" >&2 || true
  [[ -n "$summary" ]] || fail "$name: the differential run ended (status $rc) without a summary"
  local shapes mismatches
  shapes=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["shapes"])' "$summary")
  mismatches=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["mismatches"])' "$summary")
  log "$name: $summary"
  TOTAL_SHAPES=$((TOTAL_SHAPES + shapes))
  TOTAL_MISMATCHES=$((TOTAL_MISMATCHES + mismatches))
  ((rc == 0 || mismatches > 0)) || fail "$name: the differential run failed (status $rc)"
}

common() {  # the JSON fields every policy shares
  printf '"workdir": "%s", "driver": "%s", "cgroup_root": "%s", "seed": %s' \
    "$WORKDIR" "$DRIVER" "$CGROUP2_ROOT" "$SEED"
}

# ---------------------------------------------------------------------------------------
# workstation: one peer; mDNS from private networks (10/8 pool) but not 198.18/15 or ULA.
new_netns WS_H ws-h
new_netns WS_A ws-a
cp "$POLICIES/workstation.toml" "$WORKDIR/workstation.toml"
load_policy "$WS_H" "$WORKDIR/workstation.toml"
run_policy workstation "{ $(common), \"name\": \"workstation\", \"policy\": \"$WORKDIR/workstation.toml\",
  \"host\": \"$WS_H\", \"ports\": [22, 137, 138, 139, 445, 5353, 53, 80, 443],
  \"links\": [{\"name\": \"a\", \"ns\": \"$WS_A\", \"host_if\": \"eth0\", \"peer_if\": \"up0\"}],
  \"rounds\": [{\"shapes\": 1200, \"label\": \"all\"}] }"

# ---------------------------------------------------------------------------------------
# server: the ssh bind names a cgroup of ours instead of ssh.service's (same level, 2), and
# each round serves tcp/22 from another cgroup: the bind's, another at its level, a child
# of the bind's, and a shallower one (level 1, where `socket cgroupv2 level 2` breaks).
new_netns SV_H sv-h
new_netns SV_A sv-a
sed "s|^unit *= *\"ssh.service\"|cgroup    = \"/$CG/ssh.service\"|" "$POLICIES/server.toml" >"$WORKDIR/server.toml"
grep -q "cgroup    = \"/$CG/ssh.service\"" "$WORKDIR/server.toml" || fail "server.toml: the ssh bind's unit line was not found for sed"
load_policy "$SV_H" "$WORKDIR/server.toml"
run_policy server "{ $(common), \"name\": \"server\", \"policy\": \"$WORKDIR/server.toml\",
  \"host\": \"$SV_H\", \"ports\": [22, 80, 443, 137, 138, 139, 445, 53],
  \"links\": [{\"name\": \"a\", \"ns\": \"$SV_A\", \"host_if\": \"eth0\", \"peer_if\": \"up0\"}],
  \"rounds\": [
    {\"shapes\": 400, \"label\": \"tcp/22 served from the bind's cgroup\", \"cgroups\": {\"tcp:22\": \"$CG/ssh.service\"}, \"focus\": {\"proto\": \"tcp\", \"port\": 22, \"share\": 0.15}},
    {\"shapes\": 400, \"label\": \"tcp/22 served from another cgroup\", \"cgroups\": {\"tcp:22\": \"$CG/other\"}, \"focus\": {\"proto\": \"tcp\", \"port\": 22, \"share\": 0.15}},
    {\"shapes\": 400, \"label\": \"tcp/22 served from below the bind's cgroup\", \"cgroups\": {\"tcp:22\": \"$CG/ssh.service/child\"}, \"focus\": {\"proto\": \"tcp\", \"port\": 22, \"share\": 0.15}},
    {\"shapes\": 400, \"label\": \"tcp/22 served from a level-1 cgroup\", \"cgroups\": {\"tcp:22\": \"$CG\"}, \"focus\": {\"proto\": \"tcp\", \"port\": 22, \"share\": 0.15}}] }"

# ---------------------------------------------------------------------------------------
# home-router: wan on eth0 and on ppp0 (the ppp* wildcard), lan behind the bridge br-lan,
# and a peer on eth9, in no zone. The policy's interface names are the test's: no sed.
new_netns RT_H rt-h
new_netns RT_W rt-w
new_netns RT_P rt-p
new_netns RT_L rt-l
new_netns RT_X rt-x
cp "$POLICIES/home-router.toml" "$WORKDIR/home-router.toml"
load_policy "$RT_H" "$WORKDIR/home-router.toml"
run_policy home-router "{ $(common), \"name\": \"home-router\", \"policy\": \"$WORKDIR/home-router.toml\",
  \"host\": \"$RT_H\", \"ports\": [22, 53, 67, 68, 80, 137, 138, 139, 443, 445, 546, 547, 8080],
  \"links\": [
    {\"name\": \"wan\", \"ns\": \"$RT_W\", \"host_if\": \"eth0\", \"peer_if\": \"up0\", \"zone\": \"wan\"},
    {\"name\": \"ppp\", \"ns\": \"$RT_P\", \"host_if\": \"ppp0\", \"peer_if\": \"up0\"},
    {\"name\": \"lan\", \"ns\": \"$RT_L\", \"host_if\": \"lanport\", \"peer_if\": \"lan0\", \"bridge\": \"br-lan\", \"zone\": \"lan\"},
    {\"name\": \"x\", \"ns\": \"$RT_X\", \"host_if\": \"eth9\", \"peer_if\": \"up0\"}],
  \"forward_pairs\": [[\"lan\", \"wan\"], [\"lan\", \"ppp\"], [\"lan\", \"x\"], [\"wan\", \"lan\"], [\"ppp\", \"lan\"], [\"x\", \"wan\"], [\"x\", \"lan\"]],
  \"rounds\": [{\"shapes\": 1800, \"label\": \"all\"}] }"

assert_no_host_table
((TOTAL_MISMATCHES == 0)) || fail "$TOTAL_MISMATCHES of $TOTAL_SHAPES shapes: explain and the kernel disagree (seed $SEED; shapes above)"
DONE_MESSAGE="PASS: $TOTAL_SHAPES shapes, explain agrees with the kernel on every one (seed $SEED)"

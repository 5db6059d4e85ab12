#!/usr/bin/env bash
# Benchmark 3a: the reload users run. `portierctl reload` as a whole process, against a
# running portierd (private D-Bus bus, its own network namespace) that holds a 10,000-rule
# policy, beside `nft -f` of that policy's rendering over its loaded table and `nft -f` of
# the hand-written plain file, each in a namespace of its own, alternating in one run.
# Each reload finds the policy file changed (two versions that differ in one rule's port,
# in turn; the renderings alternate the same way): portierd loads nothing when the file
# compiles to what the kernel already has, which would time no load at all.
# Also portierd's own CPU time per reload (utime + stime from /proc, around the reloads),
# and the same reloads after the daemon idled past its heap decay (BENCH_RELOAD_IDLE_*).
# Prints markdown table rows after a header.
#
# usage: PORTIER_BUILD_DIR=BUILD bench/reload.sh   (BENCH_RELOAD_RULES, BENCH_RELOAD_RUNS,
#        BENCH_RELOAD_IDLE_RUNS, BENCH_RELOAD_IDLE_SECONDS)
SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../tests/integration/lib.sh
source "$SOURCE_DIR/tests/integration/lib.sh"
DONE_MESSAGE="done"
BENCH=$PORTIER_BUILD_DIR/bench/portier_bench
RULES=${BENCH_RELOAD_RULES:-10000}
RUNS=${BENCH_RELOAD_RUNS:-9}
IDLE_RUNS=${BENCH_RELOAD_IDLE_RUNS:-5}
IDLE_SECONDS=${BENCH_RELOAD_IDLE_SECONDS:-11}
require_binaries

# cpu_ms PID: the process's user + system CPU time so far, in milliseconds.
cpu_ms() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" '{ sub(/^.*\) /, ""); printf "%d", ($12 + $13) * 1000 / hz }' "/proc/$1/stat"
}

# one_run CMD...: one whole-process wall time in ms (portier_bench time, one run).
one_run() { "$BENCH" time --runs 1 -- "$@"; }

start_bus
new_netns DNS reload
new_netns RNS rendered
new_netns PNS plain
POLICY="$WORKDIR/policy.toml"
"$BENCH" generate policy "$RULES" "$WORKDIR/a.toml"
# The second version: the first rule's port is another.
sed '0,/^ports = 1024$/s//ports = 1023/' "$WORKDIR/a.toml" >"$WORKDIR/b.toml"
cmp -s "$WORKDIR/a.toml" "$WORKDIR/b.toml" && fail "the two versions of the policy are the same"
"$BENCH" generate plain "$RULES" "$WORKDIR/plain.nft"
# The form portierd loads: the table replaced in one transaction.
for v in a b; do "$PORTIERCTL" show --policy "$WORKDIR/$v.toml" >"$WORKDIR/$v.nft"; done
cp "$WORKDIR/a.toml" "$POLICY"
start_portierd "$DNS" "$POLICY"
nsenter --net="/run/netns/$RNS" nft -f "$WORKDIR/a.nft"
nsenter --net="/run/netns/$PNS" nft -f "$WORKDIR/plain.nft"

CTL=() RENDERED=() PLAIN=() CPU=()
for ((run = 0; run < RUNS; run++)); do
  v=$([[ $((run % 2)) == 0 ]] && echo b || echo a)
  cp "$WORKDIR/$v.toml" "$POLICY"
  before=$(cpu_ms "$PORTIERD_PID")
  CTL+=("$(one_run "$PORTIERCTL" reload)")
  after=$(cpu_ms "$PORTIERD_PID")
  CPU+=("$((after - before))")
  RENDERED+=("$(one_run nsenter --net="/run/netns/$RNS" nft -f "$WORKDIR/$v.nft")")
  PLAIN+=("$(one_run nsenter --net="/run/netns/$PNS" nft -f "$WORKDIR/plain.nft")")
done
# The reloads changed nothing: the kernel holds what portierd renders (the oracle's check).
[[ "$(nft_table "$DNS" | without_table_owner)" == "$(nft_table "$RNS" | without_table_owner)" ]] ||
  fail "after the reloads, portierd's table differs from nft -f of its rendering"
# The same after the daemon idled past its heap decay (portierd gives the heap a whole load
# freed back once no load came for 10 s: kHeapDecayUsec in daemon/main.cpp), as a single
# reload after a quiet time finds it. The runs above come about a second apart and keep it.
IDLE_CTL=() IDLE_CPU=()
for ((run = 0; run < IDLE_RUNS; run++)); do
  v=$([[ $(((RUNS + run) % 2)) == 0 ]] && echo b || echo a)
  cp "$WORKDIR/$v.toml" "$POLICY"
  sleep "$IDLE_SECONDS"
  before=$(cpu_ms "$PORTIERD_PID")
  IDLE_CTL+=("$(one_run "$PORTIERCTL" reload)")
  after=$(cpu_ms "$PORTIERD_PID")
  IDLE_CPU+=("$((after - before))")
done
stop_portierd

n=$(printf '%d' "$RULES" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')
printf '| benchmark | portier min / median | baseline | baseline min / median | ratio | target |\n|---|---|---|---|---|---|\n'
"$BENCH" row --what "**\`portierctl reload\`**, whole process and portierd, $n rules (table loaded)" \
  --portier "${CTL[*]}" --baseline-name "\`nft -f\` of its rendering (table loaded)" \
  --baseline "${RENDERED[*]}" --target "<= 1.0x" --target-ratio 1.0
"$BENCH" row --what "**\`portierctl reload\`**, $n rules" --portier "${CTL[*]}" \
  --baseline-name "\`nft -f\` of the plain file (loaded again)" --baseline "${PLAIN[*]}" \
  --target "<= 0.5x" --target-ratio 0.5
"$BENCH" row --what "portierd's CPU time per reload (utime + stime), $n rules" --portier "${CPU[*]}" \
  --baseline-name "\`nft -f\` of its rendering, wall clock" --baseline "${RENDERED[*]}"
"$BENCH" row --what "**\`portierctl reload\`** after $IDLE_SECONDS s idle (the heap given back), $n rules" \
  --portier "${IDLE_CTL[*]}" --baseline-name "\`nft -f\` of its rendering (table loaded)" \
  --baseline "${RENDERED[*]}" --target "<= 1.0x" --target-ratio 1.0
"$BENCH" row --what "**\`portierctl reload\`** after $IDLE_SECONDS s idle, $n rules" --portier "${IDLE_CTL[*]}" \
  --baseline-name "\`nft -f\` of the plain file (loaded again)" --baseline "${PLAIN[*]}" \
  --target "<= 0.5x" --target-ratio 0.5
"$BENCH" row --what "portierd's CPU time per reload after $IDLE_SECONDS s idle, $n rules" \
  --portier "${IDLE_CPU[*]}" --baseline-name "\`nft -f\` of its rendering, wall clock" \
  --baseline "${RENDERED[*]}"

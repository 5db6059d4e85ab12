#!/usr/bin/env bash
# 20 clients at once, each making 1,000 calls (GetStatus and ListRules in turn, over its own
# connection), all get answers; then 20 x 25 short-lived connections (busctl, a process and a
# bus connection per call). portierd's resident memory (VmRSS) before and after stays within
# 20 MB, and it still answers and filters. Prints the latency figures.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd busctl
"$PYTHON" -c 'import dbus' 2>/dev/null || skip "$PYTHON has no dbus module (Debian: python3-dbus)"

CLIENTS=20
CALLS=1000
MAX_GROWTH_KB=$((20 * 1024))

make_ns_pair

POLICY="$WORKDIR/policy.toml"
{
  printf '[policy]\ninput  = "reject"\noutput = "accept"\n'
  for i in $(seq 1 40); do
    printf '\n[[rule]]\nname      = "svc-%d"\nprotocols = ["tcp", "udp"]\nports     = [%d]\naction    = "accept"\n' "$i" $((10000 + i))
  done
} >"$POLICY"

start_portierd "$HOST_NS" "$POLICY"
# Warm up (first calls allocate sd-bus and policy caches), then measure.
for i in 1 2 3; do
  pctl status >/dev/null
  pctl rules >/dev/null
done
rss_start=$(rss_kb "$PORTIERD_PID")
log "portierd VmRSS before the load: $rss_start kB"

cat >"$WORKDIR/client.py" <<'EOF'
import sys, time
import dbus
bus = dbus.bus.BusConnection(sys.argv[1])
calls = int(sys.argv[2])
latencies = []
errors = 0
for i in range(calls):
    method = "GetStatus" if i % 2 == 0 else "ListRules"
    t = time.monotonic()
    try:
        reply = bus.call_blocking("org.portier.Firewall1", "/org/portier/Firewall1",
                                  "org.portier.Firewall1", method, "", (), timeout=30)
        if method == "GetStatus" and "generation" not in reply:
            raise RuntimeError(f"GetStatus without generation: {reply}")
        if method == "ListRules" and len(reply) != 40:
            raise RuntimeError(f"ListRules returned {len(reply)} rules, expected 40")
    except Exception as e:
        errors += 1
        print(f"error on call {i} ({method}): {e}", file=sys.stderr, flush=True)
        if errors > 10:
            break
    latencies.append(time.monotonic() - t)
print(len(latencies) - errors, errors, " ".join(f"{x:.6f}" for x in latencies))
EOF

# --- 20 x 1000 over long-lived connections ---------------------------------------------------
t0=$(now_s)
pids=()
for ((c = 0; c < CLIENTS; c++)); do
  "$PYTHON" "$WORKDIR/client.py" "$BUS_ADDRESS" "$CALLS" >"$WORKDIR/client-$c.out" 2>"$WORKDIR/logs/client-$c.err" &
  pids+=($!)
  on_exit "kill ${pids[-1]} 2>/dev/null"
done
peak=0
while :; do
  running=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && running=1; done
  r=$(rss_kb "$PORTIERD_PID" 2>/dev/null || echo 0)
  ((r > peak)) && peak=$r
  ((running)) || break
  (($(awk -v e="$(elapsed_since "$t0")" 'BEGIN { print (e > 110) }'))) && fail "the $CLIENTS clients did not finish within 110 s"
  sleep 0.2
done
for ((c = 0; c < CLIENTS; c++)); do
  wait "${pids[c]}" || fail "client $c exited with an error: $(cat "$WORKDIR/logs/client-$c.err")"
done
total=$(elapsed_since "$t0")
answered=0
for ((c = 0; c < CLIENTS; c++)); do
  read -r ok errors rest <"$WORKDIR/client-$c.out"
  ((errors == 0 && ok == CALLS)) ||
    fail "client $c: $ok of $CALLS calls answered, $errors errors: $(head -5 "$WORKDIR/logs/client-$c.err")"
  answered=$((answered + ok))
done
stats=$(for ((c = 0; c < CLIENTS; c++)); do cut -d' ' -f3- "$WORKDIR/client-$c.out" | tr ' ' '\n'; done |
  sort -g | awk '{ v[NR] = $1; s += $1 } END {
    printf "mean %.1f ms, p50 %.1f ms, p99 %.1f ms, max %.1f ms", 1000 * s / NR, 1000 * v[int(NR * 0.5)], 1000 * v[int(NR * 0.99)], 1000 * v[NR] }')
log "ok: $answered calls from $CLIENTS concurrent clients answered in $total s ($(awk -v n="$answered" -v t="$total" 'BEGIN { printf "%.0f", n / t }') calls/s); latency $stats"
rss_mid=$(rss_kb "$PORTIERD_PID")
log "portierd VmRSS: $rss_start kB before, peak $peak kB during, $rss_mid kB after the $answered calls"

# --- 20 x 25 short-lived connections ---------------------------------------------------------
t1=$(now_s)
pids=()
for ((c = 0; c < CLIENTS; c++)); do
  (
    for ((i = 0; i < 25; i++)); do
      busctl --address="$BUS_ADDRESS" call "$FW_DEST" "$FW_PATH" "$FW_IFACE" GetStatus >/dev/null || exit 1
    done
  ) 2>"$WORKDIR/logs/busctl-$c.err" &
  pids+=($!)
  on_exit "kill ${pids[-1]} 2>/dev/null"
done
for ((c = 0; c < CLIENTS; c++)); do
  wait "${pids[c]}" || fail "busctl client $c failed: $(cat "$WORKDIR/logs/busctl-$c.err")"
done
log "ok: $((CLIENTS * 25)) calls over as many short-lived connections answered in $(elapsed_since "$t1") s"

rss_end=$(rss_kb "$PORTIERD_PID")
growth=$((rss_end - rss_start))
log "portierd VmRSS: $rss_start kB before, $rss_end kB after everything (growth $growth kB; peak $peak kB)"
# Under AddressSanitizer freed memory waits in its quarantine (256 MB) and every allocation
# carries redzones: RSS says nothing there, and LeakSanitizer checks leaks at exit instead.
if is_asan_build "$PORTIERD"; then
  log "ASan build: portierd's RSS growth is not bounded here (its quarantine keeps freed memory)"
else
  ((growth <= MAX_GROWTH_KB)) ||
    fail "portierd's VmRSS grew by $growth kB under load ($rss_start -> $rss_end kB), more than $MAX_GROWTH_KB kB"
fi

# Still answering, still filtering, still changing the ruleset.
assert_status mode normal "after the load"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 10001 "svc-1 after the load"
pctl disable svc-1
assert_rc 0 "portierctl disable svc-1 after the load"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 10001 "svc-1 disabled after the load"
stop_portierd

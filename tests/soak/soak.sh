#!/usr/bin/env bash
# The soak: portierd on a router between a client and a server, changed over and over by
# four portierctl workers at once while real traffic flows through it:
#
#   client (wan0) ---- (eth0) router, portierd (br-lan) ---- (lan0) server
#
#   - policy: reloads alternating between two policies (a.toml, b.toml), and every so
#     often an apply --confirm of a third (c.toml) followed by a rollback;
#   - toggles: portierctl disable/enable of two rules, in turn;
#   - sets: set-element changes, in batches from a file (as a user adds a list) and one
#     element per call.
#
# Meanwhile, from the client (tests/soak/traffic.py):
#   (a) one TCP stream to the server, a numbered frame every 10 ms: it must never be reset
#       or closed, and every frame must arrive in order; its longest stall is reported;
#   (b) probes to ports that every policy of the soak forbids (forwarded to the server, and
#       to the router itself): the number that arrive must be 0;
#   (c) probes to a port that every policy allows: the number lost is reported.
# The same probes are first sent with no firewall at all, and must all arrive: a probe
# that cannot arrive proves nothing about the firewall.
#
# At the end: every worker's calls succeeded; the kernel's table is exactly nft's own
# reading of portierd's rendering of its state; the toggles and set elements are what the
# workers left; portierd's file descriptors did not grow (a leak fails), and its RSS is
# reported (more than twice the start fails: a sanity bound, not a target).
#
# Counts (environment): SOAK_RELOADS, SOAK_TOGGLES, SOAK_SET_CHANGES (of which
# SOAK_SET_SINGLES one element a call, the rest in files of SOAK_BATCH elements),
# SOAK_CYCLES (apply + rollback), SOAK_BASELINE (seconds of traffic before any change),
# SOAK_PROBE_RATE (probes a second per target). The defaults are the short run of
# the test suite; tests/soak/run.sh --full runs the issue's counts and writes docs/soak.md
# from SOAK_REPORT, the figures this script writes there as `key value` lines.
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib_topology.sh"
source "$(dirname "${BASH_SOURCE[0]}")/../integration/lib_runtime.sh"
require_root_or_skip
require_binaries

SOAK_RELOADS=${SOAK_RELOADS:-100}
SOAK_TOGGLES=${SOAK_TOGGLES:-100}
SOAK_SET_CHANGES=${SOAK_SET_CHANGES:-1000}
SOAK_CYCLES=${SOAK_CYCLES:-10}
SOAK_SET_SINGLES=${SOAK_SET_SINGLES:-$((${SOAK_SET_CHANGES:-1000} / 2))}
SOAK_BATCH=${SOAK_BATCH:-100}
SOAK_BASELINE=${SOAK_BASELINE:-3}
SOAK_PROBE_RATE=${SOAK_PROBE_RATE:-100}
SOAK_REPORT=${SOAK_REPORT:-}
TRAFFIC=$PORTIER_SOURCE_DIR/tests/soak/traffic.py
for n in SOAK_RELOADS SOAK_TOGGLES SOAK_SET_CHANGES SOAK_SET_SINGLES SOAK_CYCLES SOAK_BATCH SOAK_BASELINE SOAK_PROBE_RATE; do
  [[ ${!n} =~ ^[0-9]+$ ]] || fail "$n must be a whole number, not '${!n}'"
done
((SOAK_BATCH >= 3 && SOAK_BATCH <= 250)) || fail "SOAK_BATCH must be 3 to 250"
((SOAK_SET_SINGLES <= SOAK_SET_CHANGES)) || fail "SOAK_SET_SINGLES must not exceed SOAK_SET_CHANGES"
((SOAK_PROBE_RATE >= 1)) || fail "SOAK_PROBE_RATE must be at least 1"

# report KEY VALUE: one figure, logged and kept for SOAK_REPORT.
report() {
  log "figure: $1 = $2"
  printf '%s %s\n' "$1" "$2" >>"$WORKDIR/report"
}
: >"$WORKDIR/report"

make_router_topology
CLIENT_NS=$WAN_NS
SERVER_NS=$LAN_NS
SERVER_IP=$LAN_IP
SERVER_IP6=$LAN_IP6

# ---------------------------------------------------------------------------------------
# Policies (lib_soak.sh)

source "$(dirname "${BASH_SOURCE[0]}")/lib_soak.sh"
write_soak_policies "$WORKDIR"
POLICY=$WORKDIR/policy.toml
cp "$WORKDIR/a.toml" "$POLICY"
for p in a b c; do
  "$PORTIERCTL" check "$WORKDIR/$p.toml" >"$WORKDIR/logs/check-$p.log" 2>&1 ||
    fail "$p.toml does not check: $(cat "$WORKDIR/logs/check-$p.log")"
done

# ---------------------------------------------------------------------------------------
# Traffic

FORBIDDEN_SERVER=(udp:7001 tcp:7002 tcp:9000)
FORBIDDEN_ROUTER=(udp:7001 tcp:7002)
FORBIDDEN_TARGETS=("udp:$SERVER_IP:7001" "udp:$SERVER_IP6:7001" "tcp:$SERVER_IP:7002" "tcp:$SERVER_IP:9000"
  "udp:$ROUTER_WAN_IP:7001" "tcp:$ROUTER_WAN_IP:7002")
ALLOWED_TARGETS=("udp:$SERVER_IP:6001" "udp:$SERVER_IP6:6001")

spawn probe-rx-server ip netns exec "$SERVER_NS" "$PYTHON" "$TRAFFIC" probe-rx "$WORKDIR/rx-server.json" \
  udp:6001 "${FORBIDDEN_SERVER[@]}"
RX_SERVER_PID=$SPAWNED_PID
spawn probe-rx-router ip netns exec "$ROUTER_NS" "$PYTHON" "$TRAFFIC" probe-rx "$WORKDIR/rx-router.json" \
  "${FORBIDDEN_ROUTER[@]}"
RX_ROUTER_PID=$SPAWNED_PID
for spec in udp:6001 "${FORBIDDEN_SERVER[@]}"; do _wait_listening "$SERVER_NS" "${spec%%:*}" "${spec#*:}"; done
for spec in "${FORBIDDEN_ROUTER[@]}"; do _wait_listening "$ROUTER_NS" "${spec%%:*}" "${spec#*:}"; done

# json FILE EXPR: a value from one of traffic.py's stats files (EXPR in Python, on `s`).
json() { "$PYTHON" -c 'import json, sys; s = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# probes_start TAG: UDP probes to every target at SOAK_PROBE_RATE a second, TCP connects to
# the forbidden TCP ports at a fifth of that; stopped by probes_stop TAG.
probes_start() {
  local tag=$1 udp=() tcp=() t
  for t in "${FORBIDDEN_TARGETS[@]}" "${ALLOWED_TARGETS[@]}"; do
    [[ $t == udp:* ]] && udp+=("$t") || tcp+=("$t")
  done
  rm -f "$WORKDIR/stop-$tag"
  spawn "probe-$tag-udp" ip netns exec "$CLIENT_NS" "$PYTHON" "$TRAFFIC" probe-tx "$WORKDIR/tx-$tag-udp.json" \
    "$WORKDIR/stop-$tag" "$SOAK_PROBE_RATE" "$tag" "${udp[@]}"
  PROBE_UDP_PID=$SPAWNED_PID
  spawn "probe-$tag-tcp" ip netns exec "$CLIENT_NS" "$PYTHON" "$TRAFFIC" probe-tx "$WORKDIR/tx-$tag-tcp.json" \
    "$WORKDIR/stop-$tag" "$(((SOAK_PROBE_RATE + 4) / 5))" "$tag" "${tcp[@]}"
  PROBE_TCP_PID=$SPAWNED_PID
}

# probes_stop: the senders write their final counts; then in-flight packets land and the
# receivers write theirs (they keep running: their counts only grow).
probes_stop() {
  local tag=$1 pid rc
  touch "$WORKDIR/stop-$tag"
  for pid in "$PROBE_UDP_PID" "$PROBE_TCP_PID"; do
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || fail "probe sender $pid ($tag) exited $rc: $(cat "$WORKDIR"/logs/probe-"$tag"-*.log)"
  done
  sleep 1.5
}

# rx_count FILE KEY: what arrived at one port ("udp/7001"), from anyone.
rx_port() { json "$1" "s['ports']['$2']"; }
# rx_target FILE TAG TARGET: distinct probes of one sender that arrived.
rx_target() { json "$1" "s['targets'].get('$2 $3', {}).get('received', 0)"; }
tx_sent() { json "$WORKDIR/tx-$1-${2%%:*}.json" "s['$2']['sent']"; }

# --- Without a firewall every probe target is reachable, and nothing is lost.
probes_start open
sleep 2
probes_stop open
for t in "${FORBIDDEN_TARGETS[@]}" "${ALLOWED_TARGETS[@]}"; do
  sent=$(tx_sent open "$t")
  ((sent > 0)) || fail "the probe sender sent nothing to $t"
  host=${t#*:}
  host=${host%:*}
  [[ $host == "$ROUTER_WAN_IP" ]] && file=$WORKDIR/rx-router.json || file=$WORKDIR/rx-server.json
  if [[ $t == udp:* ]]; then
    got=$(rx_target "$file" open "$t")
  else
    got=$(json "$WORKDIR/tx-open-tcp.json" "s['$t']['connected']")
  fi
  ((got == sent)) || fail "with no firewall, $got of $sent probes to $t arrived: the topology is broken, not the firewall"
done
declare -A RX_BEFORE=()
for spec in "${FORBIDDEN_SERVER[@]}"; do RX_BEFORE[server-$spec]=$(rx_port "$WORKDIR/rx-server.json" "${spec/:/\/}"); done
for spec in "${FORBIDDEN_ROUTER[@]}"; do RX_BEFORE[router-$spec]=$(rx_port "$WORKDIR/rx-router.json" "${spec/:/\/}"); done
log "ok: with no firewall, every probe to ${#FORBIDDEN_TARGETS[@]} forbidden and ${#ALLOWED_TARGETS[@]} allowed targets arrived"

# --- portierd, and the stream.
start_portierd "$ROUTER_NS" "$POLICY"
spawn stream-rx ip netns exec "$SERVER_NS" "$PYTHON" "$TRAFFIC" stream-rx 5001 "$WORKDIR/stream-rx.json"
STREAM_RX_PID=$SPAWNED_PID
_wait_listening "$SERVER_NS" tcp 5001
spawn stream-tx ip netns exec "$CLIENT_NS" "$PYTHON" "$TRAFFIC" stream-tx "$SERVER_IP" 5001 \
  "$WORKDIR/stream-tx.json" "$WORKDIR/stop-stream"
STREAM_TX_PID=$SPAWNED_PID
wait_until 10 "the stream's first stats" test -s "$WORKDIR/stream-rx.json"

stream_alive() {
  kill -0 "$STREAM_TX_PID" 2>/dev/null ||
    fail "the stream's sender exited ($1): $(cat "$WORKDIR/stream-tx.json" "$WORKDIR/logs/stream-tx.log" 2>&1)"
  kill -0 "$STREAM_RX_PID" 2>/dev/null ||
    fail "the stream's receiver exited ($1): $(cat "$WORKDIR/stream-rx.json" "$WORKDIR/logs/stream-rx.log" 2>&1)"
}

probes_start soak
# Warm-up: one change of each kind, so that what portierd opens once (the state writer's
# files, the last-good copies) is open before the file descriptors are counted.
warm_up() {
  pctl "$@"
  assert_rc 0 "portierctl $* (warm-up)"
}
warm_up reload
warm_up disable web
warm_up enable web
warm_up set add friends 198.19.255.1
warm_up set del friends 198.19.255.1
warm_up apply "$WORKDIR/c.toml" --confirm 300
warm_up rollback

fd_count() { find "/proc/$PORTIERD_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
fd_list() { ls -l "/proc/$PORTIERD_PID/fd" | awk 'NR > 1 { print $(NF - 2), $NF }'; }
# net_counters TAG: the kernel's drop and error counters of every namespace, to tell a
# packet lost in the firewall from one lost in a socket buffer or to a neighbour.
NET_COUNTERS='^(Ip|Ip6)(InDiscards|OutDiscards|InNoRoutes|OutNoRoutes|InAddrErrors|InHdrErrors)$|^Udp6?(InErrors|RcvbufErrors|SndbufErrors|NoPorts)$|^IpExt(InNoRoutes)$|^TcpExt(TCPAbortOnData|TCPAbortOnClose)$|^Tcp(AttemptFails|EstabResets|OutRsts|RetransSegs)$|^TcpExt(TCPTimeouts|TCPLossProbes)$'
net_counters() {
  local ns
  for ns in "$CLIENT_NS" "$ROUTER_NS" "$SERVER_NS"; do
    ip netns exec "$ns" nstat -asz 2>/dev/null | awk -v ns="${ns##*-}" -v re="$NET_COUNTERS" '$1 ~ re { print ns "_" $1, $2 }'
  done | sort >"$WORKDIR/net-$1"
}
net_counters start
RSS_START=$(rss_kb "$PORTIERD_PID")
FD_START=$(fd_count)
fd_list >"$WORKDIR/fds-start"
GENERATION_START=$(status_field generation)

BASELINE_FROM=${EPOCHREALTIME%.*}
sleep "$SOAK_BASELINE"
BASELINE_TO=${EPOCHREALTIME%.*}
stream_alive "the baseline, before any change"

# ---------------------------------------------------------------------------------------
# Workers. Each runs in a subshell of its own with its own portierctl output files
# (CAPTURE_TAG) and latency log; a failed call ends it with fail's message in its log.

# timed WORKER OP CMD...: runs CMD (a pctl call) and logs how long it took, in µs.
timed() {
  local worker=$1 op=$2 t=${EPOCHREALTIME/./}
  shift 2
  "$@"
  printf '%s %d\n' "$op" $((${EPOCHREALTIME/./} - t)) >>"$WORKDIR/latency-$worker"
}

worker_policy() {
  CAPTURE_TAG=-policy
  local i cycles=0 every=0 file=a.toml
  ((SOAK_CYCLES > 0)) && every=$(((SOAK_RELOADS + SOAK_CYCLES - 1) / SOAK_CYCLES))
  cycle() {
    timed policy apply pctl apply "$WORKDIR/c.toml" --confirm 300
    assert_rc 0 "portierctl apply c.toml --confirm 300 (cycle $cycles)"
    [[ "$(status_field mode)" == pending-confirm ]] || fail "mode after apply --confirm (cycle $cycles): $OUT"
    timed policy rollback pctl rollback
    assert_rc 0 "portierctl rollback (cycle $cycles)"
    [[ "$(status_field mode)" == normal ]] || fail "mode after rollback (cycle $cycles): $OUT"
    cycles=$((cycles + 1))
  }
  for ((i = 0; i < SOAK_RELOADS; i++)); do
    ((i % 2 == 0)) && file=b.toml || file=a.toml
    cp "$WORKDIR/$file" "$POLICY.tmp" && mv "$POLICY.tmp" "$POLICY"
    timed policy reload pctl reload
    assert_rc 0 "portierctl reload #$i ($file)"
    if ((every > 0 && (i + 1) % every == 0 && cycles < SOAK_CYCLES)); then cycle; fi
  done
  while ((cycles < SOAK_CYCLES)); do cycle; done
  printf '%s\n' "$file" >"$WORKDIR/policy-last"
}

worker_toggles() {
  CAPTURE_TAG=-toggles
  local i rule verb
  for ((i = 0; i < SOAK_TOGGLES; i++)); do
    ((i % 2 == 0)) && rule=deny-7001 || rule=web
    (((i / 2) % 2 == 0)) && verb=disable || verb=enable
    timed toggles "$verb" pctl "$verb" "$rule"
    assert_rc 0 "portierctl $verb $rule (toggle #$i)"
    printf '%s %s\n' "$rule" "$verb" >>"$WORKDIR/toggles-last"
  done
}

# Set changes: SOAK_SET_SINGLES of them one element a call, in rounds of 8 adds and 8
# removals; the rest as files of SOAK_BATCH elements (two of them networks), each added
# and later removed, with the single changes in between. As users do, some calls change
# nothing (not counted as changes): the first element of each round of singles is added
# twice, and at the end one of the policy's own elements (198.18.0.1) is added again and
# then removed, which takes it out of the set. What is left added at the end is in
# $WORKDIR/set-left.
worker_sets() {
  CAPTURE_TAG=-sets
  local rounds=$(((SOAK_SET_CHANGES - SOAK_SET_SINGLES) / (2 * SOAK_BATCH)))
  local singles=$((SOAK_SET_CHANGES - rounds * 2 * SOAK_BATCH))
  local per_round=$singles r k=0 j window=()
  ((rounds > 0)) && per_round=$((singles / rounds))
  single() {
    local element
    if (((k / 8) % 2 == 0)); then
      element="198.19.$((k / 250 % 250)).$((k % 250 + 1))"
      timed sets add-1 pctl set add friends "$element"
      assert_rc 0 "portierctl set add friends $element"
      if ((k % 16 == 0)); then
        timed sets add-again pctl set add friends "$element"
        assert_rc 0 "portierctl set add friends $element (again)"
      fi
      window+=("$element")
    else
      element=${window[0]}
      timed sets del-1 pctl set del friends "$element"
      assert_rc 0 "portierctl set del friends $element"
      window=("${window[@]:1}")
    fi
    k=$((k + 1))
  }
  for ((r = 0; r < rounds; r++)); do
    local file=$WORKDIR/batch-$((r % 2)).txt
    {
      for ((j = 1; j <= SOAK_BATCH - 2; j++)); do printf '198.18.%d.%d\n' $((r % 100 + 1)) "$j"; done
      printf '198.18.%d.0/28\n198.18.%d.16/28\n' $((r % 100 + 101)) $((r % 100 + 101))
    } >"$file"
    timed sets add-batch pctl set add friends --file "$file"
    assert_rc 0 "portierctl set add friends --file (batch $r)"
    for ((j = 0; j < per_round; j++)); do single; done
    timed sets del-batch pctl set del friends --file "$file"
    assert_rc 0 "portierctl set del friends --file (batch $r)"
  done
  while ((k < singles)); do single; done
  timed sets add-again pctl set add friends 198.18.0.1
  assert_rc 0 "portierctl set add friends 198.18.0.1 (one of the policy's own)"
  timed sets del-1 pctl set del friends 198.18.0.1
  assert_rc 0 "portierctl set del friends 198.18.0.1 (one of the policy's own)"
  printf '%s\n' "${window[@]}" >"$WORKDIR/set-left"
}

declare -A WORKERS=()
for w in policy toggles sets; do
  (worker_$w) >"$WORKDIR/logs/worker-$w.log" 2>&1 &
  WORKERS[$w]=$!
  on_exit "kill ${WORKERS[$w]} 2>/dev/null"
done
SOAK_FROM=${EPOCHREALTIME%.*}
t_soak=$EPOCHREALTIME
log "soak: $SOAK_RELOADS reloads, $SOAK_CYCLES apply/rollback cycles, $SOAK_TOGGLES toggles, $SOAK_SET_CHANGES set changes"

# Wait for the workers; the first that fails ends the soak. The stream is watched meanwhile.
while ((${#WORKERS[@]})); do
  for w in "${!WORKERS[@]}"; do
    pid=${WORKERS[$w]}
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" || rc=$?
    unset "WORKERS[$w]"
    ((rc == 0)) || fail "worker $w failed (exit $rc): $(tail -n 20 "$WORKDIR/logs/worker-$w.log")"
    log "worker $w done after $(elapsed_since "$t_soak") s"
  done
  stream_alive "during the soak"
  kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd died during the soak: $(tail -n 20 "$PORTIERD_LOG")"
  sleep 0.2
done
SOAK_TO=${EPOCHREALTIME%.*}
SOAK_SECONDS=$(elapsed_since "$t_soak")
log "all workers done in $SOAK_SECONDS s"

# ---------------------------------------------------------------------------------------
# Checks and figures

net_counters end
RSS_END=$(rss_kb "$PORTIERD_PID")
FD_END=$(fd_count)
fd_list >"$WORKDIR/fds-end"

probes_stop soak
# The receivers write their final figures (with the runs of lost probes) when stopped.
stop_pid "$RX_SERVER_PID" || true
stop_pid "$RX_ROUTER_PID" || true
touch "$WORKDIR/stop-stream"
rc=0
wait "$STREAM_TX_PID" || rc=$?
((rc == 0)) || fail "the stream's sender: $(cat "$WORKDIR/stream-tx.json")"
rc=0
wait "$STREAM_RX_PID" || rc=$?
((rc == 0)) || fail "the stream's receiver (exit $rc): $(cat "$WORKDIR/stream-rx.json")"
stream_state=$(json "$WORKDIR/stream-rx.json" "s['state']")
[[ $stream_state == finished ]] || fail "the stream ended as: $stream_state"
frames_sent=$(json "$WORKDIR/stream-tx.json" "s['frames']")
frames_got=$(json "$WORKDIR/stream-rx.json" "s['frames']")
((frames_sent == frames_got)) || fail "the stream's sender sent $frames_sent frames, the receiver got $frames_got"
# phase_max FROM TO FIELD: the largest per-second figure (1 gap, 2 delay) of the stream
# within [FROM, TO).
phase_max() {
  json "$WORKDIR/stream-rx.json" \
    "max([v[$3] for k, v in s['seconds'].items() if $1 <= int(k) < $2] or [0])"
}
report stream_resets 0
report stream_frames "$frames_got"
report stream_max_gap_ms "$(phase_max "$SOAK_FROM" "$SOAK_TO" 1)"
report stream_max_delay_ms "$(phase_max "$SOAK_FROM" "$SOAK_TO" 2)"
report stream_baseline_max_gap_ms "$(phase_max "$BASELINE_FROM" "$BASELINE_TO" 1)"
report stream_baseline_max_delay_ms "$(phase_max "$BASELINE_FROM" "$BASELINE_TO" 2)"
report stream_gaps_over_100ms "$(json "$WORKDIR/stream-rx.json" "s['gaps_over_100ms']")"
report stream_worst_gaps "$(json "$WORKDIR/stream-rx.json" "' '.join(f'{g}ms@{t}s' for g, t in s['worst_gaps'])")"

# (b) Nothing reached a forbidden port (counted at the port, from anyone) after the open run.
admitted=0
forbidden_sent=0
for spec in "${FORBIDDEN_SERVER[@]}"; do
  n=$(($(rx_port "$WORKDIR/rx-server.json" "${spec/:/\/}") - RX_BEFORE[server-$spec]))
  ((n == 0)) || log "FORBIDDEN: $n packets or connections reached $spec on the server"
  admitted=$((admitted + n))
done
for spec in "${FORBIDDEN_ROUTER[@]}"; do
  n=$(($(rx_port "$WORKDIR/rx-router.json" "${spec/:/\/}") - RX_BEFORE[router-$spec]))
  ((n == 0)) || log "FORBIDDEN: $n packets or connections reached $spec on the router"
  admitted=$((admitted + n))
done
for t in "${FORBIDDEN_TARGETS[@]}"; do forbidden_sent=$((forbidden_sent + $(tx_sent soak "$t"))); done
tcp_connected=$(json "$WORKDIR/tx-soak-tcp.json" "sum(v['connected'] for v in s.values())")
report forbidden_sent "$forbidden_sent"
report forbidden_admitted "$admitted"
report forbidden_tcp_connected "$tcp_connected"

# (c) Losses on the allowed port, per target.
lost_total=0
allowed_sent=0
for t in "${ALLOWED_TARGETS[@]}"; do
  sent=$(tx_sent soak "$t")
  got=$(rx_target "$WORKDIR/rx-server.json" soak "$t")
  runs=$(json "$WORKDIR/rx-server.json" "s['targets'].get('soak $t', {}).get('missing_runs', [])")
  allowed_sent=$((allowed_sent + sent))
  lost_total=$((lost_total + sent - got))
  log "allowed $t: sent $sent, arrived $got, longest runs lost (first seq, length): $runs"
done
report allowed_sent "$allowed_sent"
report allowed_lost "$lost_total"

# State: what the workers left is what portierd has, and what the kernel has.
touch "$WORKDIR/toggles-last"
for rule in deny-7001 web; do
  want=$(awk -v r="$rule" '$1 == r { v = $2 } END { print v }' "$WORKDIR/toggles-last")
  [[ -n "$want" ]] || continue
  assert_eq "${want}d" "$(rule_field "$rule" state)" "state of $rule after its last toggle ($want)"
done
pctl set list friends
assert_rc 0 "portierctl set list friends"
expected=$( (printf '198.18.255.0/24\n'; cat "$WORKDIR/set-left") | sed '/^$/d' | sort)
assert_same_text "$expected" "$(sort <<<"$OUT")" \
  "elements of friends after the soak (the policy's but 198.18.0.1, which the set worker removed, and what it left)"
last=$(cat "$WORKDIR/policy-last")
assert_same_text "$(cat "$WORKDIR/$last")" "$(cat "$POLICY")" "the policy file after the last reload ($last)"
assert_status mode normal "after the soak"
generation_end=$(status_field generation)
changes=$((generation_end - GENERATION_START))
((changes >= SOAK_RELOADS)) || fail "generation went from $GENERATION_START to $generation_end: fewer than $SOAK_RELOADS reloads took effect"
new_netns NFT_NS n
kernel_equals_rendering "$ROUTER_NS" "$NFT_NS" "after the soak"
log "ok: toggles, set elements, policy file and kernel table are what the workers left"

# Counters that moved during the soak (the namespaces: w client, h router, l server).
while read -r name before after; do
  if ((after != before)); then report "net_$name" $((after - before)); fi
done < <(join "$WORKDIR/net-start" "$WORKDIR/net-end")
report soak_seconds "$SOAK_SECONDS"
report generations "$changes"
report rss_start_kb "$RSS_START"
report rss_end_kb "$RSS_END"
report fd_start "$FD_START"
report fd_end "$FD_END"
report portierd_log_lines "$(wc -l <"$PORTIERD_LOG")"
# How long each kind of call took (the whole portierctl command), as figures, not verdicts.
for op in $(cat "$WORKDIR"/latency-* | awk '{ print $1 }' | sort -u); do
  report "latency_$op" "$(cat "$WORKDIR"/latency-* | awk -v op="$op" '$1 == op { print $2 }' | sort -n | awk '
    { v[NR] = $1 }
    END { p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
      printf "n=%d p50=%.1fms p99=%.1fms max=%.1fms", NR, v[int((NR + 1) / 2)] / 1000, v[p99] / 1000, v[NR] / 1000 }')"
done

if [[ -n "$SOAK_REPORT" ]]; then
  {
    printf 'counts reloads=%s cycles=%s toggles=%s set_changes=%s set_singles=%s batch=%s probe_rate=%s baseline=%s\n' \
      "$SOAK_RELOADS" "$SOAK_CYCLES" "$SOAK_TOGGLES" "$SOAK_SET_CHANGES" "$SOAK_SET_SINGLES" "$SOAK_BATCH" \
      "$SOAK_PROBE_RATE" "$SOAK_BASELINE"
    cat "$WORKDIR/report"
  } >"$SOAK_REPORT"
fi

# The verdicts, after every figure is out.
((admitted == 0)) || fail "$admitted forbidden packets or connections arrived (of $forbidden_sent sent)"
((tcp_connected == 0)) || fail "$tcp_connected TCP connections to forbidden ports were established"
((FD_END <= FD_START)) || fail "portierd's file descriptors grew from $FD_START to $FD_END:
$(diff "$WORKDIR/fds-start" "$WORKDIR/fds-end")"
((RSS_END <= 2 * RSS_START)) || fail "portierd's RSS grew from $RSS_START kB to $RSS_END kB (more than twice)"
stop_portierd
DONE_MESSAGE="PASS (soak of $SOAK_SECONDS s: stream gap max $(phase_max "$SOAK_FROM" "$SOAK_TO" 1) ms, forbidden admitted 0 of $forbidden_sent, allowed lost $lost_total of $allowed_sent, RSS $RSS_START -> $RSS_END kB, fds $FD_START -> $FD_END)"

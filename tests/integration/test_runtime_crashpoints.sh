#!/usr/bin/env bash
# SIGKILL of portierd at random moments during reloads, toggles, set changes and confirms
# (PORTIER_CRASHPOINTS kills, default 200; PORTIER_CRASHPOINT_SEED picks the moments; the
# seed is printed, so a failure can be run again). The runtime state is three bits - which
# of two policies, one rule toggled off, one set element added - and each of its 8 values
# has an expected listing: `nft -f` of `portierctl show --policy` of that state written as
# a policy file, listed in a scratch namespace. After each kill:
# - the kernel's table is exactly the state before the change or the state after it;
# - a restarted portierd on the same state directory loads exactly the state its files on
#   disk (the policy file and runtime.toml) describe;
# - a change portierctl acknowledged (exit 0) before the kill is in that state.
# One kill in four is not timed but aimed at the write of the state file: portierd is
# killed the moment runtime.toml.tmp (or the policy file's temporary) appears.
# The full state directory (a small tmpfs) is test_runtime_durable's.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

KILLS=${PORTIER_CRASHPOINTS:-200}
SEED=${PORTIER_CRASHPOINT_SEED:-$(((EPOCHSECONDS ^ $$) % 32768))}
RANDOM=$SEED
log "seed $SEED (PORTIER_CRASHPOINT_SEED=$SEED runs these moments again), $KILLS kills"

make_ns_pair
new_netns SCRATCH_NS s

# policy_text P TOG EL: the policy of state (P, TOG, EL): P a or b (the rule web-in on port
# 8080 or 8081), TOG on/off (rule tog-in enabled or not), EL in/out (192.0.2.0/28 in set blk).
# "a on out" is what the files start with; every other state differs in one place.
policy_text() {
  local port=8080 enabled=true elements='"203.0.113.1"'
  [[ $1 == b ]] && port=8081
  [[ $2 == off ]] && enabled=false
  [[ $3 == in ]] && elements='"192.0.2.0/28", "203.0.113.1"'
  cat <<TOML
[policy]
input  = "reject"
output = "accept"

[set.blk]
family   = "ipv4"
elements = [$elements]

[[rule]]
name   = "blocked"
from   = "@blk"
action = "drop"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [$port]
action    = "accept"

[[rule]]
name      = "tog-in"
protocols = "tcp"
ports     = [7070]
action    = "accept"
enabled   = $enabled
TOML
}

# A table listing without what differs between two loads of one state: counters, and who
# owns the table (an orphan lists without "owner", nft -f's table has no flags).
shape_of() { without_table_owner | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/'; }
kernel_shape() { nft_table "$HOST_NS" | shape_of; }

declare -A EXPECTED=()
for p in a b; do
  for t in on off; do
    for e in in out; do
      policy_text $p $t $e >"$WORKDIR/state-$p-$t-$e.toml"
      pctl show --policy "$WORKDIR/state-$p-$t-$e.toml"
      assert_rc 0 "portierctl show --policy of state $p $t $e"
      printf '%s\n' "$OUT" >"$WORKDIR/state.nft"
      listing=$(in_ns "$SCRATCH_NS" sh -c 'nft delete table inet portier 2>/dev/null; nft -f "$1" && nft list table inet portier' sh "$WORKDIR/state.nft" 2>&1) ||
        fail "nft -f of the rendering of state $p $t $e: $listing"
      EXPECTED["$p $t $e"]=$(shape_of <<<"$listing")
    done
  done
done
cp "$WORKDIR/state-a-on-out.toml" "$WORKDIR/a.toml"
cp "$WORKDIR/state-b-on-out.toml" "$WORKDIR/b.toml"
POLICY="$WORKDIR/policy.toml"
cp "$WORKDIR/a.toml" "$POLICY"

# which_state SHAPE: the state whose listing SHAPE is, or "none".
which_state() {
  local s
  for s in "${!EXPECTED[@]}"; do
    [[ "${EXPECTED[$s]}" == "$1" ]] && { printf '%s\n' "$s"; return 0; }
  done
  printf 'none\n'
}

# disk_state: the state that the files in the state directory and the policy file describe.
disk_state() {
  local p=none t=on e=out runtime="$STATE/runtime.toml"
  cmp -s "$POLICY" "$WORKDIR/a.toml" && p=a
  cmp -s "$POLICY" "$WORKDIR/b.toml" && p=b
  if [[ -f "$runtime" ]]; then
    grep -Eq '^[[:space:]]*tog-in = false' "$runtime" && t=off
    grep -Eq "^element = ['\"]192\.0\.2\.0/28['\"]" "$runtime" && e=in
  fi
  printf '%s %s %s\n' "$p" "$t" "$e"
}

STATE="$WORKDIR/crash.state"
mkdir -p "$STATE"
PORTIERD_STATE_DIR=$STATE start_portierd "$HOST_NS" "$POLICY"
assert_same_text "${EXPECTED[a on out]}" "$(kernel_shape)" \
  "the table of the first portierd (expected: the rendering of the policy file)"

# The watcher for the aimed kills: inotify on the two folders (state directory, policy
# file's), SIGKILL to portierd as soon as a temporary file is created in one of them.
cat >"$WORKDIR/kill_on_write.py" <<'EOF'
import ctypes, os, signal, struct, sys
IN_CREATE, IN_MOVED_TO = 0x100, 0x80
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
pid = int(sys.argv[1])
for folder in sys.argv[2:]:
    if libc.inotify_add_watch(fd, folder.encode(), IN_CREATE) < 0:
        sys.exit(f"inotify_add_watch {folder}: {os.strerror(ctypes.get_errno())}")
print("watching", flush=True)
while True:
    data = os.read(fd, 4096)
    offset = 0
    while offset < len(data):
        _, mask, _, size = struct.unpack_from("iIII", data, offset)
        name = data[offset + 16:offset + 16 + size].rstrip(b"\0").decode()
        offset += 16 + size
        if name.endswith(".tmp"):
            os.kill(pid, signal.SIGKILL)
            print(f"killed at {name}", flush=True)
            sys.exit(0)
EOF

# The time one change takes, for the spread of the timed kills: 20 toggles.
start=$EPOCHREALTIME
for ((i = 0; i < 10; i++)); do
  pctl disable tog-in && pctl enable tog-in
done
assert_rc 0 "portierctl enable tog-in (calibration)"
SPREAD_US=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) / 20 * 1e6 * 1.2 }')
log "one change takes about $((SPREAD_US * 10 / 12 / 1000)) ms: timed kills land 0-$((SPREAD_US / 1000)) ms after the call starts"

# race_kill AIM CMD...: runs CMD (portierctl) in the background and kills portierd, either
# after a random delay (AIM "timed") or when a temporary file appears (AIM "write"; if the
# call writes none, portierd is killed once the call is answered). Sets ACKED (1: CMD
# exited 0, the change was acknowledged before the kill) and KILL_NOTE.
race_kill() {
  local aim=$1 rc=0 watcher= i
  shift
  if [[ $aim == write ]]; then
    : >"$WORKDIR/watch.out"
    "$PYTHON" "$WORKDIR/kill_on_write.py" "$PORTIERD_PID" "$STATE" "$WORKDIR" >"$WORKDIR/watch.out" 2>&1 &
    watcher=$!
    for ((i = 0; i < 500; i++)); do
      [[ -s "$WORKDIR/watch.out" ]] && break
      sleep 0.01
    done
    grep -q '^watching' "$WORKDIR/watch.out" || fail "the write watcher did not start: $(cat "$WORKDIR/watch.out")"
  fi
  env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" timeout 30 "$PORTIERCTL" "$@" >"$WORKDIR/out" 2>"$WORKDIR/err" &
  local cli=$!
  if [[ $aim == timed ]]; then
    local delay_us=$(((RANDOM * 32768 + RANDOM) % (SPREAD_US + 1)))
    sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
    KILL_NOTE="timed, after $((delay_us / 1000)) ms"
    kill -KILL "$PORTIERD_PID" 2>/dev/null || true
    wait "$cli" || rc=$?
  else
    wait "$cli" || rc=$?
    kill -KILL "$PORTIERD_PID" 2>/dev/null || true
    kill "$watcher" 2>/dev/null || true
    wait "$watcher" 2>/dev/null || true
    KILL_NOTE="after the answer (no temporary file appeared)"
    grep -q '^killed at' "$WORKDIR/watch.out" && KILL_NOTE="aimed, $(grep '^killed at' "$WORKDIR/watch.out")"
  fi
  keep_sanitizer_report "$WORKDIR/err"
  ACKED=$((rc == 0))
  portierd_gone
}

declare -A COUNT=() WON=()
AIMED=0
cur="a on out"
for ((k = 1; k <= KILLS; k++)); do
  read -r p t e <<<"$cur"
  aim=timed
  ((RANDOM % 4 == 0)) && aim=write
  case $((RANDOM % 4)) in
    0)
      op=reload
      other=a
      [[ $p == a ]] && other=b
      cp "$WORKDIR/$other.toml" "$POLICY.new" && mv "$POLICY.new" "$POLICY"
      new="$other $t $e"
      race_kill "$aim" reload
      ;;
    1)
      op=toggle
      if [[ $t == on ]]; then verb=disable new="$p off $e"; else verb=enable new="$p on $e"; fi
      race_kill "$aim" "$verb" tog-in
      ;;
    2)
      op=set
      if [[ $e == out ]]; then verb=add new="$p $t in"; else verb=del new="$p $t out"; fi
      race_kill "$aim" set "$verb" blk 192.0.2.0/28
      ;;
    3)
      op=confirm
      other=a
      [[ $p == a ]] && other=b
      new="$other $t $e"
      pctl apply "$WORKDIR/$other.toml" --confirm 600
      assert_rc 0 "kill $k: portierctl apply $other.toml --confirm 600"
      race_kill "$aim" confirm
      ;;
  esac
  COUNT[$op]=$((${COUNT[$op]:-0} + 1))
  [[ $KILL_NOTE == aimed* ]] && AIMED=$((AIMED + 1))
  seen=$(which_state "$(kernel_shape)")
  what="kill $k ($op '$cur' -> '$new', $KILL_NOTE, acknowledged: $ACKED)"
  [[ $seen == "$cur" || $seen == "$new" ]] ||
    fail "$what: the table is neither the old state nor the new one (it is: $seen):
$(diff -u <(printf '%s\n' "${EXPECTED[$new]}") <(kernel_shape) | tail -n +3)"
  if ((ACKED)) && [[ $seen != "$new" ]]; then
    fail "$what: acknowledged, but the table holds the old state"
  fi
  disk=$(disk_state)
  PORTIERD_STATE_DIR=$STATE start_portierd "$HOST_NS" "$POLICY"
  restarted=$(which_state "$(kernel_shape)")
  [[ $restarted == "$disk" ]] ||
    fail "$what: the restarted portierd loaded state '$restarted', its files say '$disk':
$(diff -u <(printf '%s\n' "${EXPECTED[$disk]:-}") <(kernel_shape) | tail -n +3)
runtime.toml: $(cat "$STATE/runtime.toml" 2>&1)"
  if ((ACKED)) && [[ $restarted != "$new" && $op != reload ]]; then
    fail "$what: acknowledged, but the restarted portierd has '$restarted' (the change was lost)"
  fi
  [[ $restarted == "$new" ]] && WON[$op]=$((${WON[$op]:-0} + 1))
  grep -q "runtime changes not restored" "$PORTIERD_LOG" &&
    fail "$what: the restarted portierd complained about its state file: $(cat "$PORTIERD_LOG")"
  ((k % 20 == 0)) && log "$k kills so far, state now '$restarted'"
  cur=$restarted
  # Logs of the portierds gone by: only the last ones matter for a post-mortem.
  old_log="$WORKDIR/logs/portierd-$((PORTIERD_SEQ - 3)).log"
  [[ -f "$old_log" ]] && keep_sanitizer_report "$old_log"
  rm -f "$old_log" "$WORKDIR/logs/portierd-$((PORTIERD_SEQ - 3))-notify.log"
done

report=
for op in reload toggle set confirm; do
  report+=" $op ${COUNT[$op]:-0} (the new state after ${WON[$op]:-0}),"
done
log "ok: $KILLS kills (seed $SEED):${report%,}; $AIMED of them at the creation of a temporary file; no table was ever between two states, every restart loaded its files' state, no acknowledged change was lost"
stop_portierd

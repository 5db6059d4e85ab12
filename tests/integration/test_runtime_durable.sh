#!/usr/bin/env bash
# An acknowledged change is durable. After each of 32 changes (a toggle, a set element, a
# timed rule, panic on and off), portierd is killed with SIGKILL the moment portierctl has
# its answer; the next portierd, on the same state directory, has every change answered so
# far. Then a full state directory (a small tmpfs): the change is in force but portierctl
# says it could not be saved, and why; portierd logs it; the previous runtime.toml stays
# whole, with no temporary left beside it, also across a SIGKILL and a restart on the still
# full disk; once there is room again, the next change saves both.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd mount

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[set.allowed]
family   = "ipv4"
elements = ["192.0.2.1"]

[[rule]]
name      = "r0"
protocols = "tcp"
ports     = [8000]
action    = "accept"

[[rule]]
name      = "r1"
protocols = "tcp"
ports     = [8001]
action    = "accept"

[[rule]]
name      = "r2"
protocols = "tcp"
ports     = [8002]
action    = "accept"

[[rule]]
name      = "r3"
protocols = "tcp"
ports     = [8003]
action    = "accept"

[[rule]]
name   = "from-allowed"
from   = "@allowed"
action = "accept"
TOML

# change_then_kill WHAT ARGS...: portierctl ARGS, and SIGKILL to portierd as soon as it
# returns: no capture, no fork in between (the answer must mean "on disk"). Then waits for
# portierd to be gone.
change_then_kill() {
  local what=$1 rc=0
  shift
  DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$PORTIERCTL" "$@" >"$WORKDIR/out" 2>"$WORKDIR/err" || rc=$?
  kill -KILL "$PORTIERD_PID"
  ((rc == 0)) || fail "$what: portierctl $* exited $rc: $(cat "$WORKDIR/err")"
  portierd_gone
}

STATE="$WORKDIR/durable.state"
mkdir -p "$STATE"
PORTIERD_STATE_DIR=$STATE start_portierd "$HOST_NS" "$POLICY"

declare -A want=([r0]=enabled [r1]=enabled [r2]=enabled [r3]=enabled)
elements=(192.0.2.1)
timed=0
panic=normal
cycles=${PORTIER_DURABLE_CYCLES:-32}

# Everything answered so far is what the restarted portierd has.
check_all() {
  local why=$1 rule
  pctl rules
  ((RC == 0)) || fail "portierctl rules ($why) exited $RC: $ERR"
  for rule in r0 r1 r2 r3; do
    local seen
    seen=$(awk -v n="$rule" '$1 == n { print $2 }' <<<"$OUT")
    [[ "$seen" == "${want[$rule]}" ]] ||
      fail "$why: $rule should be ${want[$rule]} after the restart, is '$seen' (an acknowledged change was lost)
$OUT
runtime.toml:
$(cat "$STATE/runtime.toml" 2>&1)"
  done
  pctl set list allowed
  ((RC == 0)) || fail "portierctl set list allowed ($why) exited $RC: $ERR"
  local element
  for element in "${elements[@]}"; do
    grep -qx "$element" <<<"$OUT" ||
      fail "$why: set element $element (acknowledged) missing after the restart: $OUT"
  done
  assert_eq "$timed" "$(status_field rules | sed -E 's/.* ([0-9]+) timed\)$/\1/')" "timed rules after the restart ($why)"
  assert_eq "$panic" "$(status_field mode)" "mode after the restart ($why)"
}

for ((i = 0; i < cycles; i++)); do
  case $((i % 4)) in
    0)
      rule="r$(((i / 4) % 4))"
      if [[ ${want[$rule]} == enabled ]]; then verb=disable want[$rule]=disabled; else verb=enable want[$rule]=enabled; fi
      what="$verb $rule"
      change_then_kill "$what" "$verb" "$rule"
      ;;
    1)
      element="198.51.100.$((i + 1))"
      what="set add allowed $element"
      change_then_kill "$what" set add allowed "$element"
      elements+=("$element")
      ;;
    2)
      what="allow tcp/$((9000 + i)) --for 1h"
      change_then_kill "$what" allow "tcp/$((9000 + i))" --for 1h
      timed=$((timed + 1))
      ;;
    3)
      if [[ $panic == normal ]]; then verb=on panic=panic; else verb=off panic=normal; fi
      what="panic $verb"
      change_then_kill "$what" panic "$verb"
      ;;
  esac
  PORTIERD_STATE_DIR=$STATE start_portierd "$HOST_NS" "$POLICY"
  check_all "cycle $i, SIGKILL right after '$what'"
done
log "ok: $cycles changes, each followed at once by SIGKILL: none lost"
[[ -e "$STATE/runtime.toml.tmp" ]] && fail "runtime.toml.tmp left in the state directory"
stop_portierd

# --- a full state directory ------------------------------------------------------------------
FULL="$WORKDIR/full.state"
mkdir -p "$FULL"
mount -t tmpfs -o size=256k,mode=0700 portier-test-full "$FULL" || fail "cannot mount a tmpfs on $FULL"
on_exit "umount -l '$FULL'"
PORTIERD_STATE_DIR=$FULL start_portierd "$HOST_NS" "$POLICY"
full_log=$PORTIERD_LOG
pctl disable r1
assert_rc 0 "portierctl disable r1 (room on the state tmpfs)"
assert_contains "$(cat "$FULL/runtime.toml")" "r1 = false" "runtime.toml after disable r1"
cp "$FULL/runtime.toml" "$WORKDIR/runtime.before"
dd if=/dev/zero of="$FULL/filler" bs=4k 2>/dev/null || true
pctl disable r2
((RC != 0)) || fail "portierctl disable r2 on a full state directory succeeded; it must say the change is not saved"
assert_contains "$ERR" "could not be saved" "portierctl disable r2 on a full disk"
assert_contains "$ERR" "No space left on device" "portierctl disable r2 on a full disk"
log "ok: portierctl disable r2 on a full disk: exit $RC: $ERR"
cmp -s "$WORKDIR/runtime.before" "$FULL/runtime.toml" || fail "runtime.toml changed although its write failed:
$(diff -u "$WORKDIR/runtime.before" "$FULL/runtime.toml")"
[[ -e "$FULL/runtime.toml.tmp" ]] && fail "a failed write left runtime.toml.tmp on the full disk"
assert_contains "$(cat "$full_log")" "runtime changes not saved" "portierd's log on a full disk"
assert_contains "$(cat "$full_log")" "No space left on device" "portierd's log on a full disk"
assert_eq disabled "$(rule_field r2 state)" "r2 (in force, though not saved)"
log "ok: the previous runtime.toml survived whole, and the error was logged"
# SIGKILL with the disk still full: a new portierd starts on it and has the last saved
# state (r1 off, r2 on: its change was answered as not saved); a change is refused again.
crash_portierd
PORTIERD_STATE_DIR=$FULL start_portierd "$HOST_NS" "$POLICY"
assert_eq disabled "$(rule_field r1 state)" "r1 after SIGKILL and a restart on the full disk"
assert_eq enabled "$(rule_field r2 state)" "r2 after SIGKILL and a restart on the full disk (never saved)"
cmp -s "$WORKDIR/runtime.before" "$FULL/runtime.toml" || fail "runtime.toml changed across the restart on the full disk"
pctl disable r2
assert_contains "$ERR" "No space left on device" "portierctl disable r2 after the restart on the full disk"
log "ok: after SIGKILL on the full disk the previous state survived, and the restarted portierd serves"
rm -f "$FULL/filler"
pctl disable r3
assert_rc 0 "portierctl disable r3 once there is room again"
crash_portierd
PORTIERD_STATE_DIR=$FULL start_portierd "$HOST_NS" "$POLICY"
assert_eq disabled "$(rule_field r1 state)" "r1 after the restart"
assert_eq disabled "$(rule_field r2 state)" "r2 after the restart (saved with the next change)"
assert_eq disabled "$(rule_field r3 state)" "r3 after the restart"
stop_portierd

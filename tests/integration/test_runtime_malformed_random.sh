#!/usr/bin/env bash
# Random calls, where test_runtime_malformed has chosen ones (fuzz_calls.py says what they
# are): to every method of org.portier.Firewall1, as uid 65534 and as root, and random
# portierctl argument vectors, as both. PORTIER_MALFORMED_CALLS (default 600) calls and
# PORTIER_MALFORMED_ARGV (default 100) vectors per caller; PORTIER_MALFORMED_SEED repeats a
# run (the seed is printed). Every call is one that may not change anything (uid 65534 may
# change nothing; root's calls are all invalid somewhere), so after each phase portierd is
# the same process, still answering, and the table, `portierctl status`, runtime.toml and
# the policy file are what they were.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
"$PYTHON" -c 'import dbus' 2>/dev/null || skip "$PYTHON has no dbus module (Debian: python3-dbus)"
setpriv --reuid=65534 --regid=65534 --clear-groups true || skip "setpriv cannot switch to uid 65534 here"

CALLS=${PORTIER_MALFORMED_CALLS:-600}
VECTORS=${PORTIER_MALFORMED_ARGV:-100}
SEED=${PORTIER_MALFORMED_SEED:-$(((EPOCHSECONDS ^ $$) % 1000000))}
log "seed $SEED (PORTIER_MALFORMED_SEED=$SEED repeats this run): $CALLS calls and $VECTORS portierctl vectors per caller"

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cp "$PORTIER_SOURCE_DIR/tests/integration/malformed.toml" "$POLICY"  # test_runtime_malformed's

start_portierd "$HOST_NS" "$POLICY"
# Something in runtime.toml too, so that a lost or rewritten one shows.
pctl set add blocklist 192.0.2.9
assert_rc 0 "portierctl set add blocklist 192.0.2.9"
pctl disable web-in
assert_rc 0 "portierctl disable web-in"
pid=$PORTIERD_PID
# Everything that must stay as it is; status without the line that counts down.
snapshot() {
  table_shape "$HOST_NS"
  pctl status
  grep -v '^confirm by:' <<<"$OUT"
  cat "$STATE_DIR/runtime.toml" "$POLICY"
}
before=$(snapshot)

FUZZ=$PORTIER_SOURCE_DIR/tests/integration/fuzz_calls.py
XML=$PORTIER_SOURCE_DIR/daemon/org.portier.Firewall1.xml
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

# phase WHAT CMD...: runs one fuzz_calls.py phase, prints its counts, and checks portierd.
phase() {
  local what=$1 rc=0
  shift
  log "$what"
  timeout 900 "$@" >"$WORKDIR/logs/fuzz.log" 2>&1 || rc=$?
  cat "$WORKDIR/logs/fuzz.log" >&2
  ((rc == 0)) || fail "$what: exit $rc (see above)"
  kill -0 "$pid" 2>/dev/null || fail "$what: portierd (pid $pid) is gone: $(tail -20 "$PORTIERD_LOG")"
  assert_same_text "$before" "$(snapshot)" "$what: the table, status, runtime.toml and the policy file (before vs after)"
  log "ok: $what: portierd (pid $pid) still serves, nothing changed"
}

phase "random calls as uid 65534" "${NOBODY[@]}" env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" \
  "$PYTHON" "$FUZZ" bus "$BUS_ADDRESS" "$pid" "$XML" "$SEED" "$CALLS" anyone
phase "random calls as root" "$PYTHON" "$FUZZ" bus "$BUS_ADDRESS" "$pid" "$XML" $((SEED + 1)) "$CALLS" root
phase "random portierctl vectors as uid 65534" "${NOBODY[@]}" env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" \
  "$PYTHON" "$FUZZ" argv "$PORTIERCTL" $((SEED + 2)) "$VECTORS" anyone
phase "random portierctl vectors as root" env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" \
  "$PYTHON" "$FUZZ" argv "$PORTIERCTL" $((SEED + 3)) "$VECTORS" root
DONE_MESSAGE="PASS: $((2 * CALLS)) random calls and $((2 * VECTORS)) random portierctl vectors (seed $SEED), portierd pid $pid throughout, nothing changed"
stop_portierd

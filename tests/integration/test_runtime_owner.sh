#!/usr/bin/env bash
# While portierd runs, its table belongs to its netlink socket (docs/nftables-owner.md): other
# processes in the namespace cannot delete it, flush it away or add rules to it; the table
# stays listed exactly as it was and real traffic stays filtered. Should the kernel let a
# change through anyway (a table loaded without the owner flag), portierd must put its table
# back by itself and say so with a DriftRepaired signal.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries
require_cmd dbus-monitor

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "reject"
output = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "stream-in"
protocols = "tcp"
ports     = [5001]
action    = "accept"
TOML

shape() { table_shape "$HOST_NS"; }
shape_as_before() { [[ "$(shape)" == "$before" ]]; }

start_portierd "$HOST_NS" "$POLICY"
watch_signals
stream_start owner "$PEER_NS" "$HOST_NS" "$HOST_IP" 5001
listing=$(nft_table "$HOST_NS")
grep -Eq '^[[:space:]]*flags owner' <<<"$listing" ||
  log "note: the table is not listed with 'flags owner'; the checks below show whether others can change it"
before=$(shape)

assert_table_intact() {
  local why=$1
  assert_same_text "$before" "$(shape)" "table inet portier after $why"
  assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "after $why: web-in"
  assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "after $why: input reject"
  assert_stream_flows owner "after $why" 5
  kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd died after $why: $(cat "$PORTIERD_LOG")"
}

# --- nft delete table ---------------------------------------------------------------------
rc=0
out=$(in_ns "$HOST_NS" nft delete table inet portier 2>&1) || rc=$?
((rc != 0)) || fail "'nft delete table inet portier' by another process succeeded while portierd runs; the table now:
$(nft_table "$HOST_NS")"
assert_match "$out" 'Operation not permitted' "the error of 'nft delete table inet portier' while portierd owns it"
log "ok: nft delete table refused: $(head -n1 <<<"$out")"
assert_table_intact "nft delete table inet portier"

# --- nft flush ruleset ----------------------------------------------------------------------
# The kernel skips the owned table here (nft itself may or may not report an error).
rc=0
out=$(in_ns "$HOST_NS" nft flush ruleset 2>&1) || rc=$?
log "nft flush ruleset: exit $rc${out:+: $out}"
assert_table_intact "nft flush ruleset"

# --- nft add rule / add chain / add set element -----------------------------------------------
drift_before=$(signal_count DriftRepaired)
rc=0
out=$(in_ns "$HOST_NS" nft insert rule inet portier input tcp dport 7070 accept 2>&1) || rc=$?
if ((rc != 0)); then
  assert_match "$out" 'Operation not permitted' "the error of 'nft insert rule' into portierd's table"
  log "ok: nft insert rule refused: $(head -n1 <<<"$out")"
  rc=0
  out=$(in_ns "$HOST_NS" nft add chain inet portier intruder 2>&1) || rc=$?
  ((rc != 0)) || fail "'nft add chain inet portier intruder' by another process succeeded while portierd runs"
  log "ok: nft add chain refused: $(head -n1 <<<"$out")"
  assert_table_intact "nft insert rule and nft add chain"
  assert_eq "$drift_before" "$(signal_count DriftRepaired)" "DriftRepaired signals when nothing changed"
  log "note: with the owner flag nobody else can change the table while portierd runs, so there is no drift to repair here"
else
  # Not owned (a kernel before 5.12, or the fallback): portierd must repair it.
  log "nft insert rule into portierd's table succeeded: expecting portierd to repair it"
  wait_until 5 "a DriftRepaired signal after 'nft insert rule'" signal_seen DriftRepaired $((drift_before + 1))
  wait_until 5 "portierd to restore its table after 'nft insert rule'" shape_as_before
  assert_table_intact "nft insert rule and portierd's repair"
fi

# portierd still serves and changes its table.
pctl disable web-in
assert_rc 0 "portierctl disable web-in after the attempts"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in disabled"
pctl enable web-in
assert_rc 0 "portierctl enable web-in"
assert_stream_flows owner "at the end" 5
stop_portierd

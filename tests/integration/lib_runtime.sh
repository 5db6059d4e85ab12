# shellcheck shell=bash
# Helpers for the runtime integration tests (test_runtime_*.sh): portierd's state across
# restarts and crashes, long-lived TCP streams that must survive ruleset changes, direct
# D-Bus calls (busctl, or python for arguments too big for a command line), signal watching
# and polling with a deadline. Source it after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
#
# Like lib.sh, everything started here is registered with on_exit, and nothing runs in the
# caller's own network namespace.

FW_DEST=org.portier.Firewall1
FW_PATH=/org/portier/Firewall1
FW_IFACE=org.portier.Firewall1

# ---------------------------------------------------------------------------------------
# Polling

# wait_until SECONDS WHAT CMD...: runs CMD every 0.1 s until it succeeds; fails naming WHAT
# after SECONDS.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds)) start=$EPOCHREALTIME
  while ! "$@" >/dev/null 2>&1; do
    ((SECONDS <= deadline)) || fail "waited ${seconds} s for: $what"
    sleep 0.1
  done
  WAITED=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
}

# Seconds since the epoch with a fraction, and the difference of two of them.
now_s() { printf '%s\n' "$EPOCHREALTIME"; }
elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------
# portierd: status, restarts, crashes

# status_field FIELD: the value of one line of `portierctl status` ("mode", "loaded",
# "generation", "policy", "rules"), e.g. "normal".
status_field() {
  pctl status
  ((RC == 0)) || fail "portierctl status exited $RC: $ERR"
  local v
  v=$(awk -v f="$1:" '$1 == f { $1 = ""; sub(/^ +/, ""); print; exit }' <<<"$OUT")
  printf '%s\n' "$v"
}

assert_status() {
  local field=$1 expected=$2 why=$3 seen
  seen=$(status_field "$field")
  [[ "$seen" == "$expected" ]] || fail "portierctl status, $field ($why): expected '$expected', seen '$seen'
$OUT"
  log "ok: status $field is $expected ($why)"
}

# restart_portierd NS POLICY [ARGS...]: SIGTERM (exit status 0 expected), then a new portierd
# with the same state directory. The table stays loaded in between.
restart_portierd() {
  local ns=$1 policy=$2 state=$STATE_DIR
  shift 2
  stop_portierd
  PORTIERD_STATE_DIR=$state start_portierd "$ns" "$policy" "$@"
}

# crash_portierd: SIGKILL to portierd (it gets no chance to clean up), waits for it to go.
crash_portierd() {
  kill -KILL "$PORTIERD_PID" 2>/dev/null || fail "portierd (pid $PORTIERD_PID) is not running, cannot kill it"
  portierd_gone
}

# portierd_gone: waits for a killed portierd to be reaped and to have left the bus; its
# notify listener goes too (tests that restart portierd hundreds of times would pile them up).
portierd_gone() {
  wait "$PORTIERD_PID" 2>/dev/null || true
  stop_pid "$PORTIERD_NOTIFY_PID" || true
  local i
  for ((i = 0; i < 50; i++)); do
    bus_name_has_owner "$FW_DEST" || return 0
    sleep 0.1
  done
  fail "$FW_DEST still has an owner on the bus 5 s after portierd was killed"
}

# rss_kb PID: resident set size from /proc/PID/status, in kB.
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

# The table's listing without what changes by itself (counters, the owner comment).
table_shape() {
  nft_table "$1" | sed -E 's/counter packets [0-9]+ bytes [0-9]+/counter/; s/[[:space:]]*# progname .*$//; s/[[:space:]]+$//'
}

# kernel_equals_rendering NS NFT_NS WHAT: the kernel's table in NS (counters and owner left
# out) equals what nft itself makes of portierd's rendering of its current state
# (`portierctl show`), loaded into the spare namespace NFT_NS.
kernel_equals_rendering() {
  local ns=$1 nft_ns=$2 what=$3
  pctl show
  assert_rc 0 "portierctl show ($what)"
  # Without the owner flag: a table owned by nft's own socket would go when nft exits.
  grep -v '^	flags owner$' <<<"$OUT" >"$WORKDIR/shown.nft"
  ip netns exec "$nft_ns" nft delete table inet portier 2>/dev/null || true
  ip netns exec "$nft_ns" nft -f "$WORKDIR/shown.nft" || fail "nft -f of portierctl show failed ($what)"
  assert_same_text "$(table_shape "$nft_ns" | without_table_owner)" "$(table_shape "$ns" | without_table_owner)" \
    "nft's listing of portierd's rendering (expected) vs the kernel's table ($what)"
}

# ---------------------------------------------------------------------------------------
# Direct D-Bus calls

# fw_gdbus [--nobody] METHOD ARGS...: gdbus call to portierd (as uid/gid 65534 with no groups
# under --nobody). ARGS are GVariant text, typed from portierd's introspection data, e.g.
# fw_gdbus SetRuleEnabled web-in false "{'permanent': <true>}". Unlike busctl, gdbus names
# the D-Bus error of a failed call. Sets OUT, ERR and RC.
fw_gdbus() {
  local -a as_user=()
  if [[ $1 == --nobody ]]; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    shift
  fi
  local method=$1
  shift
  _run_capture "${as_user[@]}" timeout 60 gdbus call --address "$BUS_ADDRESS" --dest "$FW_DEST" \
    --object-path "$FW_PATH" --method "$FW_IFACE.$method" "$@"
}

# assert_error_name NAME WHAT: the last fw_gdbus call failed with D-Bus error NAME.
assert_error_name() {
  local name=$1 what=$2
  ((RC != 0)) || fail "$what: expected error $name, the call succeeded: $OUT"
  [[ "$ERR" == *"GDBus.Error:$name:"* ]] || fail "$what: expected error $name, seen (exit $RC): $ERR"
}

# ---------------------------------------------------------------------------------------
# Signals: a dbus-monitor on the private bus writes every signal of portier's interface.

SIGNAL_LOG=
watch_signals() {
  SIGNAL_LOG="$WORKDIR/logs/signals.log"
  spawn signals dbus-monitor --address "$BUS_ADDRESS" "type='signal',interface='$FW_IFACE'"
  # dbus-monitor adds its match rules first, then prints what arrives, starting with the
  # NameAcquired the bus sends every new connection: once that is printed, it listens.
  local i
  for ((i = 0; i < 50; i++)); do
    grep -q 'member=NameAcquired' "$SIGNAL_LOG" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "dbus-monitor on $BUS_ADDRESS printed nothing within 5 s"
}

# signal_count MEMBER: how many MEMBER signals the watcher saw so far.
signal_count() { grep -c "interface=$FW_IFACE; member=$1\$" "$SIGNAL_LOG" || true; }

# signal_seen MEMBER N: at least N MEMBER signals so far (for wait_until).
signal_seen() { (($(signal_count "$1") >= $2)); }

# signal_args MEMBER: the argument lines after every MEMBER signal.
signal_args() {
  awk -v m="member=$1" 'index($0, "signal ") == 1 { on = ($NF == m) ; next } on { print }' "$SIGNAL_LOG"
}

# ---------------------------------------------------------------------------------------
# Long-lived TCP streams: a python sender in one namespace writes 1 KiB every 20 ms to a
# socat receiver in the other, which appends what it gets to a file. The sender never
# reconnects: if the connection is reset it says so and exits, so "still running and the
# file still grows" means the very same connection survived.

_stream_sender() {
  [[ -f "$WORKDIR/stream_send.py" ]] && return 0
  cat >"$WORKDIR/stream_send.py" <<'EOF'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=5)
s.settimeout(None)
print(f"connected from {s.getsockname()}", flush=True)
chunk = b"x" * 1023 + b"\n"
sent = 0
try:
    while True:
        s.sendall(chunk)
        sent += len(chunk)
        time.sleep(0.02)
except OSError as e:
    print(f"STREAM BROKEN after {sent} bytes: {e!r}", flush=True)
    sys.exit(3)
EOF
}

declare -A _STREAM_RX=() _STREAM_TX=() _STREAM_RX_PID=()

# stream_start NAME FROM_NS TO_NS IP PORT: opens the stream (the policy must let it in).
stream_start() {
  local name=$1 from=$2 to=$3 ip=$4 port=$5
  local file="$WORKDIR/stream-$name.rx"
  _stream_sender
  : >"$file"
  spawn "stream-$name-rx" ip netns exec "$to" socat -u "TCP-LISTEN:$port,reuseaddr" "OPEN:$file,append"
  _STREAM_RX_PID[$name]=$SPAWNED_PID
  _wait_listening "$to" tcp "$port"
  spawn "stream-$name-tx" ip netns exec "$from" "$PYTHON" "$WORKDIR/stream_send.py" "$ip" "$port"
  _STREAM_TX[$name]=$SPAWNED_PID
  _STREAM_RX[$name]=$file
  local i
  for ((i = 0; i < 50; i++)); do
    (($(stream_bytes "$name") > 0)) && break
    sleep 0.1
  done
  (($(stream_bytes "$name") > 0)) ||
    fail "stream $name ($from -> $ip:$port) did not get going: $(cat "$WORKDIR/logs/stream-$name-tx.log")"
  log "ok: stream $name $from -> $ip:$port flowing"
}

stream_bytes() { stat -c %s "${_STREAM_RX[$1]}"; }

# The sender and receiver are still the ones we started (no reset, no reconnect).
assert_stream_alive() {
  local name=$1 why=$2
  kill -0 "${_STREAM_TX[$name]}" 2>/dev/null ||
    fail "stream $name ($why): the sender exited: $(cat "$WORKDIR/logs/stream-$name-tx.log")"
  kill -0 "${_STREAM_RX_PID[$name]}" 2>/dev/null ||
    fail "stream $name ($why): the receiver exited (connection closed): $(cat "$WORKDIR/logs/stream-$name-rx.log")"
}

# assert_stream_flows NAME WHY [SECONDS]: the receiver gets at least 8 KiB more within
# SECONDS (default 15: after a stall TCP retransmits with back-off).
assert_stream_flows() {
  local name=$1 why=$2 seconds=${3:-15} before now i
  before=$(stream_bytes "$name")
  for ((i = 0; i < seconds * 10; i++)); do
    assert_stream_alive "$name" "$why"
    now=$(stream_bytes "$name")
    ((now >= before + 8192)) && {
      log "ok: stream $name flows ($why): $before -> $now bytes"
      return 0
    }
    sleep 0.1
  done
  fail "stream $name ($why): expected data to keep arriving, but the receiver got only $((now - before)) bytes in $seconds s (total $now)"
}

# assert_stream_stalled NAME WHY: nothing arrives for 2 s (after 1 s to let in-flight data
# land), while the sender is still connected.
assert_stream_stalled() {
  local name=$1 why=$2 before after
  sleep 1
  before=$(stream_bytes "$name")
  sleep 2
  after=$(stream_bytes "$name")
  assert_stream_alive "$name" "$why"
  ((after == before)) ||
    fail "stream $name ($why): expected no data to arrive, but $((after - before)) bytes did in 2 s"
  log "ok: stream $name stalled ($why): $after bytes, none in 2 s"
}

# ---------------------------------------------------------------------------------------
# Probes that answer quickly

# assert_refused FROM TO IP PORT WHY: a TCP connection to a port with a listener is answered
# with a reset (a `reject` rule): quick, unlike a drop, which takes the probe's 2 s timeout.
assert_refused() {
  local from=$1 to=$2 ip=$3 port=$4 why=$5
  if probe "$from" "$to" "$ip" tcp "$port"; then
    fail "expected tcp to $ip:$port from $from to be REFUSED ($why), but the listener in $to received it ($PROBE_DETAIL)"
  fi
  [[ "$PROBE_DETAIL" == *"Connection refused"* ]] ||
    fail "expected tcp to $ip:$port from $from to be refused with a reset ($why), seen: $PROBE_DETAIL"
  log "ok: tcp $from -> $ip:$port refused ($why)"
}

# ---------------------------------------------------------------------------------------
# polkitd on the test's bus (start_bus "$POLKIT_BUS_CONF" first)

POLKITD=/usr/lib/polkit-1/polkitd
POLKIT_BUS_CONF=/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf

# require_polkitd: skips unless polkitd, its bus policy and its folders are where
# start_polkitd expects them.
require_polkitd() {
  [[ -x "$POLKITD" && -f "$POLKIT_BUS_CONF" ]] || skip "polkitd not installed (Debian package polkitd; run tests/setup.sh)"
  local d
  for d in /usr/share/polkit-1/actions /usr/share/polkit-1/rules.d /etc/polkit-1/rules.d; do
    [[ -d "$d" ]] || skip "$d missing: polkitd's folders are not where this test expects them"
  done
}

# start_polkitd ACTIONS ETC_RULES USR_RULES: polkitd reads its actions and rules from fixed
# places; it runs in a private mount namespace where /usr/share/polkit-1/actions,
# /etc/polkit-1/rules.d and /usr/share/polkit-1/rules.d are bind mounts of these folders of
# the test, so only the test's rules decide, the host's files stay untouched and the mounts
# vanish with the process. It drops to its own user by itself. Sets POLKITD_PID.
start_polkitd() {
  spawn polkitd env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" unshare -m --propagation private sh -c '
    mount --bind "$1" /usr/share/polkit-1/actions &&
      mount --bind "$2" /etc/polkit-1/rules.d &&
      mount --bind "$3" /usr/share/polkit-1/rules.d &&
      exec "$4" --no-debug' sh "$1" "$2" "$3" "$POLKITD"
  POLKITD_PID=$SPAWNED_PID
  local i
  for ((i = 0; i < 100; i++)); do
    bus_name_has_owner org.freedesktop.PolicyKit1 && break
    kill -0 "$POLKITD_PID" 2>/dev/null || fail "polkitd exited at start: $(cat "$WORKDIR/logs/polkitd.log")"
    sleep 0.05
  done
  bus_name_has_owner org.freedesktop.PolicyKit1 || fail "polkitd did not take org.freedesktop.PolicyKit1 within 5 s"
  log "ok: polkitd (pid $POLKITD_PID, user $(ps -o user= -p "$POLKITD_PID")) owns org.freedesktop.PolicyKit1"
}

# Shared helpers for portier's integration tests. Source it from a test script:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   require_root_or_skip
#   make_ns_pair            # sets HOST_NS PEER_NS HOST_IP PEER_IP
#   start_bus               # sets BUS_ADDRESS
#   start_portierd "$HOST_NS" policy.toml
#
# Everything a test creates (namespaces, processes, files) is registered for cleanup and
# removed by an EXIT trap, whatever the outcome. Nothing here touches the caller's own
# network namespace: nft and portierd only ever run inside namespaces made here.
#
# Environment: PORTIER_BUILD_DIR (default: <source>/build), PORTIER_SOURCE_DIR (default: the
# checkout this file is in), PORTIER_REQUIRE_INTEGRATION=1 turns every skip into a failure,
# PORTIER_KEEP_TMP=1 keeps the temporary folder for a post-mortem.

set -euo pipefail

PORTIER_SOURCE_DIR=${PORTIER_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PORTIER_BUILD_DIR=${PORTIER_BUILD_DIR:-$PORTIER_SOURCE_DIR/build}
PORTIERD=$PORTIER_BUILD_DIR/daemon/portierd
PORTIERCTL=$PORTIER_BUILD_DIR/cli/portierctl
# Root's python3 on PATH may be a pyenv shim that other users cannot run.
PYTHON=/usr/bin/python3

TEST_NAME=$(basename "$0" .sh)
WORKDIR=$(mktemp -d "/tmp/portier-$TEST_NAME.XXXXXX")
# uid 65534 must reach the bus socket in here (test_nonroot).
chmod 755 "$WORKDIR"
mkdir -p "$WORKDIR/logs"

# Sanitizers. A build with PORTIER_SANITIZE=ON (ASan+UBSan, -fno-sanitize-recover) stops a
# process at its first report and writes the report to $SANITIZER_DIR/KIND.PID, whichever
# user the process runs as (hence 1777: portierctl runs as uid 65534 too); the EXIT trap
# fails the test if any report is there, so a report in a process whose exit status the
# test ignores (a killed portierd, a portierctl expected to fail) still fails the run.
# LeakSanitizer runs at each sanitized process's exit. The options are harmless to
# binaries built without sanitizers; options given by the caller come last and win.
SANITIZER_DIR=$WORKDIR/sanitizer
mkdir -p -m 1777 "$SANITIZER_DIR"
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:log_path=$SANITIZER_DIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$SANITIZER_DIR/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="log_path=$SANITIZER_DIR/lsan${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# UBSan linked with ASan (GCC 12) ignores log_path and reports on stderr: the stderr of every
# portierctl run through _run_capture and the logs of spawned processes are searched too.
SANITIZER_REPORT_RE=': runtime error: |^==[0-9]+==ERROR: [A-Za-z]+Sanitizer'
_SANITIZER_SEQ=0
# keep_sanitizer_report FILE: a copy of FILE into $SANITIZER_DIR if it holds a report.
keep_sanitizer_report() {
  grep -Eq "$SANITIZER_REPORT_RE" "$1" 2>/dev/null || return 0
  _SANITIZER_SEQ=$((_SANITIZER_SEQ + 1))
  cp "$1" "$SANITIZER_DIR/stderr-$_SANITIZER_SEQ.${1##*/}"
}

# ---------------------------------------------------------------------------------------
# Messages, failure, skipping

# Whether a binary is linked with AddressSanitizer. Not `ldd | grep -q`: under pipefail grep's
# early exit gives ldd a SIGPIPE, and the pipeline then reports "no" at random.
is_asan_build() {
  local libs
  libs=$(ldd "$1" 2>/dev/null) || return 1
  [[ $libs == *libasan* ]]
}

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }

_dump_logs() {
  local f
  for f in "$WORKDIR"/logs/*; do
    [[ -s "$f" ]] || continue
    printf -- '----- %s (last 40 lines) -----\n' "${f##*/}" >&2
    tail -n 40 "$f" >&2
  done
}

fail() {
  printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
  exit 1
}

skip() {
  if [[ "${PORTIER_REQUIRE_INTEGRATION:-0}" == 1 ]]; then
    fail "cannot run ($*), and PORTIER_REQUIRE_INTEGRATION=1 forbids skipping"
  fi
  printf '[%s] SKIP: %s\n' "$TEST_NAME" "$*" >&2
  exit 77
}

require_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || skip "command '$c' not found (run tests/setup.sh)"
  done
}

require_root_or_skip() {
  [[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, nftables)"
  require_cmd ip nft socat ss dbus-daemon dbus-send setpriv timeout setsid "$PYTHON"
  ip netns list >/dev/null 2>&1 || skip "'ip netns' does not work here"
}

require_binaries() {
  [[ -x "$PORTIERD" ]] || fail "portierd not built: $PORTIERD missing (build with tests/setup.sh)"
  [[ -x "$PORTIERCTL" ]] || fail "portierctl not built: $PORTIERCTL missing (build with tests/setup.sh)"
}

# ---------------------------------------------------------------------------------------
# Cleanup registry: commands run in reverse order of registration from the EXIT trap.

_CLEANUPS=()
on_exit() { _CLEANUPS+=("$*"); }

# Each command runs in a function of its own, so the variables it sets stay its own.
_run_one_cleanup() {
  local i
  eval "$1"
}

_run_cleanups() {
  local rc=$? _cleanup_index
  set +eu
  trap - EXIT INT TERM
  if ((rc != 0 && rc != 77)); then _dump_logs; fi
  for ((_cleanup_index = ${#_CLEANUPS[@]} - 1; _cleanup_index >= 0; _cleanup_index--)); do
    _run_one_cleanup "${_CLEANUPS[_cleanup_index]}" >/dev/null 2>&1
  done
  # After the cleanups: a process stopped there has written its leak report by now.
  local report
  for report in "$WORKDIR"/logs/*; do keep_sanitizer_report "$report"; done
  for report in "$SANITIZER_DIR"/*; do
    [[ -s "$report" ]] || continue
    printf '[%s] FAIL: sanitizer report %s:\n' "$TEST_NAME" "${report##*/}" >&2
    cat "$report" >&2
    rc=1
  done
  if [[ "${PORTIER_KEEP_TMP:-0}" == 1 ]]; then
    log "kept $WORKDIR"
  else
    rm -rf "$WORKDIR"
  fi
  if ((rc == 0)); then log "${DONE_MESSAGE:-PASS}"; fi
  exit "$rc"
}
trap _run_cleanups EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in its own session (so it and anything it forks form one process group)
# with output to logs/NAME.log, and registers it for termination. Sets SPAWNED_PID.
# setsid does not fork here (a background job is never a group leader), so the pid is the
# command's own and also its process group id.
spawn() {
  local name=$1
  shift
  setsid "$@" >"$WORKDIR/logs/$name.log" 2>&1 </dev/null &
  SPAWNED_PID=$!
  on_exit "stop_pid $SPAWNED_PID"
}

# Stops a process group we spawned: TERM, then KILL after 3 s. Returns the exit status.
stop_pid() {
  local pid=$1 i rc=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return "$rc"; }
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  # Up to 30 s: portierd finishes its state file's fsync before it exits, and on ext4 an
  # fsync waits for the other writers' data too: with other tests beside this one (ctest -j:
  # package builds, dpkg in containers) 3 s and once even 10 s were too little.
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  # Whatever else is left in the group (e.g. socat's forked children).
  kill -KILL -- "-$pid" 2>/dev/null || true
  return "$rc"
}

# ---------------------------------------------------------------------------------------
# Network namespaces
#
# Every test claims a number N (10..249) by creating the namespace portier-N-h; `ip netns add`
# fails if the name exists, so concurrent tests get distinct numbers and distinct addresses
# 10.200.N.0/24 (private, and only ever configured inside our own namespaces).

TEST_ID=
_claim_test_id() {
  [[ -z "$TEST_ID" ]] || return 0
  local start n i
  start=$(($(printf '%s' "$TEST_NAME" | cksum | cut -d' ' -f1) % 240 + 10))
  for ((i = 0; i < 240; i++)); do
    n=$(((start - 10 + i) % 240 + 10))
    if ip netns add "portier-$n-h" 2>/dev/null; then
      TEST_ID=$n
      on_exit "ip netns del portier-$n-h"
      ip -n "portier-$n-h" link set lo up
      return 0
    fi
  done
  fail "no free namespace number (portier-*-h all taken?)"
}

# new_netns VAR SUFFIX: creates namespace portier-N-SUFFIX with lo up, stores its name in VAR.
# (Not meant for $(...): the cleanup must be registered in the test's own shell.)
new_netns() {
  _claim_test_id
  local ns="portier-$TEST_ID-$2"
  ip netns add "$ns" || fail "cannot create network namespace $ns"
  on_exit "ip netns del $ns"
  ip -n "$ns" link set lo up
  printf -v "$1" '%s' "$ns"
}

# Deletes a namespace made by new_netns before the end of the test (kill its processes first).
del_netns() { ip netns del "$1" 2>/dev/null || true; }

# make_ns_pair: the "host" namespace (where portierd runs) and a "peer", joined by a veth
# pair. Sets HOST_NS PEER_NS HOST_IP PEER_IP.
make_ns_pair() {
  _claim_test_id
  HOST_NS="portier-$TEST_ID-h"
  new_netns PEER_NS p
  HOST_IP="10.200.$TEST_ID.1"
  PEER_IP="10.200.$TEST_ID.2"
  ip -n "$HOST_NS" link add veth0 type veth peer name veth1 netns "$PEER_NS"
  ip -n "$HOST_NS" addr add "$HOST_IP/24" dev veth0
  ip -n "$PEER_NS" addr add "$PEER_IP/24" dev veth1
  ip -n "$HOST_NS" link set veth0 up
  ip -n "$PEER_NS" link set veth1 up
  # Check the wire before any firewall exists, so later failures mean the firewall: a TCP
  # connect to a closed port must come back refused (RST), not time out.
  local i out
  for ((i = 0; i < 20; i++)); do
    out=$(ip netns exec "$PEER_NS" timeout 3 socat -u /dev/null "TCP:$HOST_IP:9,connect-timeout=1" 2>&1) || true
    [[ "$out" == *"Connection refused"* ]] && return 0
    sleep 0.1
  done
  fail "veth link $PEER_NS -> $HOST_NS ($HOST_IP) does not work even without a firewall: $out"
}

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# The ruleset portierd loaded, as nft prints it (empty output if there is none).
nft_table() { ip netns exec "$1" nft list table inet portier 2>&1 || true; }

# Filter: a table listing without what says who owns the table. portierd may own its table
# (flags owner, persist: tied to its netlink socket, kept after it exits); nft then prints
# "# progname portierd" after the table's name and a table-level flags line (one tab deep;
# set flags are two) followed by a blank line, which change when portierd exits and which
# `nft -f` from a process that exits at once cannot reproduce. Everything else is kept.
# without_cgroup_elements: a listing without the elements of its cgroup sets. portierd and
# `portierctl show` fill them from the live cgroup tree, where tests beside this one (ctest
# -j) make and remove cgroups such as system.slice/ssh.service at any moment.
without_cgroup_elements() { sed '/^\t\ttype cgroupsv2$/{n;/^\t\telements = /d}'; }

without_table_owner() {
  sed -E -e 's/^(table [a-z0-9]+ [A-Za-z0-9_-]+ \{) # progname .*/\1/' \
    -e '/^\tflags /{N;/\n$/d;D}'
}

# ---------------------------------------------------------------------------------------
# A private system bus on a unix path socket

# start_bus [CONF...]: extra bus policy files (e.g. polkitd's, to let it own its name) go
# into the bus's policy folder beside portier's own.
BUS_ADDRESS=
start_bus() {
  local dir="$WORKDIR/bus"
  mkdir -p "$dir/system.d"
  cp "$PORTIER_SOURCE_DIR/systemd/org.portier.Firewall1.conf" "$@" "$dir/system.d/"
  cat >"$dir/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$dir/socket</listen>
  <!-- The default policy of /usr/share/dbus-1/system.conf. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
  </policy>
  <includedir>$dir/system.d</includedir>
</busconfig>
EOF
  spawn dbus-daemon dbus-daemon --config-file="$dir/bus.conf" --nofork --nopidfile
  local pid=$SPAWNED_PID i
  for ((i = 0; i < 100; i++)); do
    [[ -S "$dir/socket" ]] && break
    kill -0 "$pid" 2>/dev/null || fail "dbus-daemon exited at start (see dbus-daemon.log)"
    sleep 0.05
  done
  [[ -S "$dir/socket" ]] || fail "dbus-daemon did not create $dir/socket within 5 s"
  BUS_ADDRESS="unix:path=$dir/socket"
  export DBUS_SYSTEM_BUS_ADDRESS=$BUS_ADDRESS
}

bus_name_has_owner() {
  dbus-send --bus="$BUS_ADDRESS" --print-reply=literal --dest=org.freedesktop.DBus \
    /org/freedesktop/DBus org.freedesktop.DBus.NameHasOwner string:"$1" 2>/dev/null |
    grep -q true
}

# ---------------------------------------------------------------------------------------
# portierd

# Writes the notify listener once; it binds an AF_UNIX datagram socket, logs every message
# with the sender's pid (SO_PASSCRED) and touches PATH.ready when READY=1 arrives.
_notify_listener() {
  cat >"$WORKDIR/notify.py" <<'EOF'
import os, socket, struct, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
open(path + ".bound", "w").close()
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    lines = msg.decode(errors="replace").split("\n")
    print(f"pid={pid} {lines}", flush=True)
    if "READY=1" in lines:
        with open(path + ".ready", "a") as f:
            f.write(f"{pid}\n")
EOF
}

# start_portierd NS POLICY [EXTRA_ARGS...]: starts portierd in namespace NS on the private
# bus, waits for READY=1 from that very process and for its bus name. Sets PORTIERD_PID,
# PORTIERD_NOTIFY_PID (its notify listener), STATE_DIR, PORTIERD_LOG. One portierd per test
# at a time (they share the bus name).
# A fresh state directory each time, unless PORTIERD_STATE_DIR names one to reuse.
PORTIERD_SEQ=0
start_portierd() {
  local ns=$1 policy=$2
  shift 2
  [[ -n "$BUS_ADDRESS" ]] || start_bus
  PORTIERD_SEQ=$((PORTIERD_SEQ + 1))
  local tag="portierd-$PORTIERD_SEQ"
  local sock="$WORKDIR/$tag.notify"
  STATE_DIR=${PORTIERD_STATE_DIR:-$WORKDIR/$tag.state}
  mkdir -p "$STATE_DIR"
  [[ -f "$WORKDIR/notify.py" ]] || _notify_listener
  spawn "$tag-notify" "$PYTHON" "$WORKDIR/notify.py" "$sock"
  PORTIERD_NOTIFY_PID=$SPAWNED_PID
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -e "$sock.bound" ]] && break
    sleep 0.05
  done
  [[ -e "$sock.bound" ]] || fail "notify listener did not bind $sock"

  spawn "$tag" env NOTIFY_SOCKET="$sock" DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" \
    ip netns exec "$ns" "$PORTIERD" --policy "$policy" --state-dir "$STATE_DIR" "$@"
  PORTIERD_PID=$SPAWNED_PID
  PORTIERD_LOG="$WORKDIR/logs/$tag.log"
  # A loaded CI machine needs seconds for a big policy (the kernel's share of a 2,000-rule
  # load alone was 7 s of system time with 24 runnable tasks on 2 cores): wait by the clock.
  local ready_seconds=${PORTIERD_READY_SECONDS:-30}
  local deadline=$((SECONDS + ready_seconds))
  while ((SECONDS < deadline)); do
    [[ -s "$sock.ready" ]] && break
    if ! kill -0 "$PORTIERD_PID" 2>/dev/null; then
      local rc=0
      wait "$PORTIERD_PID" || rc=$?
      fail "portierd exited (status $rc) before READY=1; stderr: $(cat "$PORTIERD_LOG")"
    fi
    sleep 0.05
  done
  [[ -s "$sock.ready" ]] || fail "portierd sent no READY=1 within $ready_seconds s (notify: $(cat "$WORKDIR/logs/$tag-notify.log"))"
  local sender
  sender=$(head -n1 "$sock.ready")
  [[ "$sender" == "$PORTIERD_PID" ]] ||
    fail "READY=1 came from pid $sender, expected portierd's pid $PORTIERD_PID"
  # READY=1 means the ruleset is in the kernel; check that right away.
  in_ns "$ns" nft list table inet portier >/dev/null 2>&1 ||
    fail "portierd sent READY=1 but namespace $ns has no table inet portier"
  for ((i = 0; i < 100; i++)); do
    bus_name_has_owner org.portier.Firewall1 && return 0
    kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd exited after READY=1; stderr: $(cat "$PORTIERD_LOG")"
    sleep 0.05
  done
  fail "portierd did not take org.portier.Firewall1 on the bus within 5 s"
}

# Sends SIGTERM and expects exit status 0.
stop_portierd() {
  local rc=0
  stop_pid "$PORTIERD_PID" || rc=$?
  stop_pid "$PORTIERD_NOTIFY_PID" || true
  ((rc == 0)) || fail "portierd exited with status $rc on SIGTERM, expected 0"
}

# ---------------------------------------------------------------------------------------
# portierctl. Each sets OUT, ERR and RC (never fails by itself). Shells that call it at the
# same time (the soak's workers) each set CAPTURE_TAG, so that they use files of their own.

_run_capture() {
  RC=0
  "$@" >"$WORKDIR/out${CAPTURE_TAG:-}" 2>"$WORKDIR/err${CAPTURE_TAG:-}" || RC=$?
  keep_sanitizer_report "$WORKDIR/err${CAPTURE_TAG:-}"
  OUT=$(cat "$WORKDIR/out${CAPTURE_TAG:-}")
  ERR=$(cat "$WORKDIR/err${CAPTURE_TAG:-}")
}

pctl() {
  _run_capture env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" timeout 30 "$PORTIERCTL" "$@"
}

# portierctl as uid/gid 65534 with no supplementary groups.
pctl_nobody() {
  _run_capture setpriv --reuid=65534 --regid=65534 --clear-groups \
    env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" timeout 30 "$PORTIERCTL" "$@"
}

# A field of one rule's row in `portierctl rules`:
# NAME STATE DIRECTION ACTION PACKETS BYTES MATCH...
rule_field() {
  local name=$1 field=$2 col
  case $field in
    state) col=2 ;; direction) col=3 ;; action) col=4 ;; packets) col=5 ;; bytes) col=6 ;;
    *) fail "rule_field: unknown field $field" ;;
  esac
  pctl rules
  ((RC == 0)) || fail "portierctl rules exited $RC: $ERR"
  local v
  v=$(awk -v n="$name" -v c="$col" 'NR > 1 && $1 == n { print $c }' <<<"$OUT")
  [[ -n "$v" ]] || fail "portierctl rules has no row for rule '$name':
$OUT"
  printf '%s\n' "$v"
}

# ---------------------------------------------------------------------------------------
# Traffic probes. A listener (socat) in one namespace appends whatever arrives to a file;
# a sender in the other namespace sends a unique token; the probe succeeds if the token
# shows up. TCP senders give up after 2 s (a dropped SYN), UDP probes wait 1.5 s.

declare -A _LISTENERS=()

_wait_listening() {
  local ns=$1 proto=$2 port=$3 i flag
  [[ $proto == tcp ]] && flag=-ltnH || flag=-lunH
  for ((i = 0; i < 100; i++)); do
    [[ -n "$(in_ns "$ns" ss $flag "sport = :$port" 2>/dev/null)" ]] && return 0
    sleep 0.05
  done
  fail "$proto listener on port $port in $ns did not come up"
}

# listen NS PROTO PORT: idempotent; received bytes go to $WORKDIR/rx-NS-PROTO-PORT.
listen() {
  local ns=$1 proto=$2 port=$3
  local key="$ns-$proto-$port" file="$WORKDIR/rx-$ns-$proto-$port"
  [[ -n "${_LISTENERS[$key]:-}" ]] && return 0
  : >"$file"
  if [[ $proto == tcp ]]; then
    spawn "listen-$key" ip netns exec "$ns" socat -u \
      "TCP-LISTEN:$port,reuseaddr,fork" "OPEN:$file,append"
  else
    spawn "listen-$key" ip netns exec "$ns" socat -u \
      "UDP-RECV:$port,reuseaddr" "OPEN:$file,append"
  fi
  _LISTENERS[$key]=$SPAWNED_PID
  _wait_listening "$ns" "$proto" "$port"
}

# A reply server: answers every TCP connection / UDP datagram with "pong-<what it got>".
listen_echo() {
  local ns=$1 proto=$2 port=$3
  local key="$ns-$proto-$port-echo"
  [[ -n "${_LISTENERS[$key]:-}" ]] && return 0
  local addr
  [[ $proto == tcp ]] && addr="TCP-LISTEN:$port,reuseaddr,fork" || addr="UDP-RECVFROM:$port,reuseaddr,fork"
  spawn "listen-$key" ip netns exec "$ns" socat "$addr" SYSTEM:'read l; echo pong-$l'
  _LISTENERS[$key]=$SPAWNED_PID
  _wait_listening "$ns" "$proto" "$port"
}

_PROBE_SEQ=0
# probe FROM_NS TO_NS TO_IP PROTO PORT: 0 if a fresh token sent from FROM_NS reached the
# listener in TO_NS, 1 if not. Sets PROBE_DETAIL (what the sender said).
probe() {
  local from=$1 to=$2 ip=$3 proto=$4 port=$5
  listen "$to" "$proto" "$port"
  _PROBE_SEQ=$((_PROBE_SEQ + 1))
  local token="token-$$-$_PROBE_SEQ-$proto-$port" file="$WORKDIR/rx-$to-$proto-$port" rc=0 i
  if [[ $proto == tcp ]]; then
    PROBE_DETAIL=$(printf '%s\n' "$token" | in_ns "$from" timeout 5 \
      socat -u - "TCP:$ip:$port,connect-timeout=2" 2>&1) || rc=$?
    PROBE_DETAIL="sender exit $rc${PROBE_DETAIL:+: $PROBE_DETAIL}"
    for ((i = 0; i < 10; i++)); do
      grep -qx -- "$token" "$file" && return 0
      ((rc != 0)) && break  # no connection: nothing can arrive
      sleep 0.05
    done
  else
    PROBE_DETAIL=$(printf '%s\n' "$token" | in_ns "$from" timeout 5 \
      socat -u - "UDP-SENDTO:$ip:$port" 2>&1) || rc=$?
    PROBE_DETAIL="sender exit $rc${PROBE_DETAIL:+: $PROBE_DETAIL}"
    for ((i = 0; i < 30; i++)); do
      grep -qx -- "$token" "$file" && return 0
      sleep 0.05
    done
  fi
  return 1
}

# request FROM_NS IP PROTO PORT: sends "ping" to a listen_echo server, prints the reply.
request() {
  local from=$1 ip=$2 proto=$3 port=$4
  if [[ $proto == tcp ]]; then
    printf 'ping\n' | in_ns "$from" timeout 5 socat -T 3 - "TCP:$ip:$port,connect-timeout=2" 2>&1 || true
  else
    printf 'ping\n' | in_ns "$from" timeout 5 socat -T 2 - "UDP:$ip:$port" 2>&1 || true
  fi
}

# ---------------------------------------------------------------------------------------
# Assertions: each names what was expected and what was seen.

assert_arrives() {
  local from=$1 to=$2 ip=$3 proto=$4 port=$5 why=${6:-}
  probe "$@" ||
    fail "expected $proto to $ip:$port from $from to ARRIVE${why:+ ($why)}, but the listener in $to saw nothing ($PROBE_DETAIL)"
  log "ok: $proto $from -> $ip:$port arrives${why:+ ($why)}"
}

assert_blocked() {
  local from=$1 to=$2 ip=$3 proto=$4 port=$5 why=${6:-}
  if probe "$@"; then
    fail "expected $proto to $ip:$port from $from to be BLOCKED${why:+ ($why)}, but the listener in $to received it ($PROBE_DETAIL)"
  fi
  # Nothing arrived: make sure that is not because the listener is gone.
  local pid=${_LISTENERS[$to-$proto-$port]}
  kill -0 "$pid" 2>/dev/null ||
    fail "the $proto listener on port $port in $to died; cannot tell whether the firewall blocked the probe"
  log "ok: $proto $from -> $ip:$port blocked${why:+ ($why)} ($PROBE_DETAIL)"
}

assert_eq() {
  local expected=$1 seen=$2 what=$3
  [[ "$expected" == "$seen" ]] || fail "$what: expected '$expected', seen '$seen'"
}

assert_rc() {
  local expected=$1 what=$2
  [[ "$RC" == "$expected" ]] ||
    fail "$what: expected exit status $expected, seen $RC
stdout: $OUT
stderr: $ERR"
}

# assert_match TEXT ERE WHAT
assert_match() {
  local text=$1 re=$2 what=$3
  grep -Eq -- "$re" <<<"$text" || fail "$what: expected a line matching /$re/, seen:
$text"
}

# assert_contains TEXT STRING WHAT: STRING (taken literally) occurs in TEXT.
assert_contains() {
  local text=$1 needle=$2 what=$3
  [[ "$text" == *"$needle"* ]] || fail "$what: expected the text
$needle
seen:
$text"
}

assert_no_match() {
  local text=$1 re=$2 what=$3
  if grep -Eq -- "$re" <<<"$text"; then
    fail "$what: expected no line matching /$re/, seen:
$text"
  fi
}

# assert_same_text EXPECTED SEEN WHAT: shows a unified diff on mismatch.
assert_same_text() {
  local a=$1 b=$2 what=$3
  if [[ "$a" != "$b" ]]; then
    fail "$what: texts differ (--- expected, +++ seen):
$(diff -u <(printf '%s\n' "$a") <(printf '%s\n' "$b") | tail -n +3)"
  fi
}

assert_int_ge() {
  local seen=$1 min=$2 what=$3
  [[ "$seen" =~ ^[0-9]+$ ]] || fail "$what: expected a plain integer, seen '$seen'"
  ((seen >= min)) || fail "$what: expected at least $min, seen $seen"
}

# Asserts the caller's own network namespace has no portier table.
assert_no_host_table() {
  local tables
  tables=$(nft list tables 2>&1) || fail "nft list tables failed in the host namespace: $tables"
  assert_no_match "$tables" 'portier' "tables in the host's own network namespace"
}

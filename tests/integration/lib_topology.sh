# Helpers for integration tests that need more than lib.sh's host + peer pair: a router
# between two hosts, servers that record who connected, cgroup v2 groups, and tools that
# must see this machine's cgroup2 mount. Source it after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
#
# Like lib.sh, everything made here is registered with on_exit, and nothing runs in the
# caller's own network namespace.

# ---------------------------------------------------------------------------------------
# Entering a namespace without losing /sys/fs/cgroup
#
# `ip netns exec` mounts a fresh sysfs on /sys in a new mount namespace, which hides the
# cgroup mounts below /sys/fs/cgroup. Anything that needs cgroup paths (portierd resolving
# bind owners, a process joining a cgroup) enters only the network namespace instead.

# in_ns_hostfs NS CMD...: runs CMD in network namespace NS with this machine's mounts.
in_ns_hostfs() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}

# start_portierd_hostfs NS POLICY [ARGS...]: lib.sh's start_portierd (same checks: READY=1
# from portierd's own pid, table loaded, bus name taken), but portierd enters NS with
# nsenter, so it finds cgroup2 in /proc/self/mountinfo. start_portierd runs `ip netns exec
# NS ...`; for the length of the call, an `ip` first on PATH turns exactly that into
# `nsenter --net=/run/netns/NS ...` and passes everything else to the real ip.
start_portierd_hostfs() {
  local bin="$WORKDIR/hostfs-bin"
  if [[ ! -x "$bin/ip" ]]; then
    mkdir -p "$bin"
    cat >"$bin/ip" <<EOF
#!/bin/sh
if [ "\$1" = netns ] && [ "\$2" = exec ]; then
  ns=\$3
  shift 3
  exec nsenter --net="/run/netns/\$ns" "\$@"
fi
exec $(command -v ip) "\$@"
EOF
    chmod 755 "$bin/ip"
  fi
  PATH="$bin:$PATH" start_portierd "$@"
}

# cgroupfs_ns NS CMD...: runs CMD in network namespace NS and in a private mount namespace
# where cgroup2 is mounted at /sys/fs/cgroup. nft resolves `socket cgroupv2` paths (when it
# loads a ruleset) and ids (when it lists one) below /sys/fs/cgroup, and on this kind of
# machine the v2 hierarchy is elsewhere (/sys/fs/cgroup/unified). The mount goes away with
# the mount namespace when CMD exits.
cgroupfs_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" unshare -m --propagation private \
    sh -c 'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"' sh "$@"
}

# ---------------------------------------------------------------------------------------
# cgroup v2

# Where cgroup2 is mounted (first cgroup2 entry of /proc/self/mountinfo). Sets CGROUP2_ROOT;
# skips the test if there is none.
find_cgroup2_root() {
  CGROUP2_ROOT=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
    /proc/self/mountinfo)
  [[ -n "$CGROUP2_ROOT" && -d "$CGROUP2_ROOT" ]] || skip "cgroup v2 is not mounted"
}

# rmdir_cgroup DIR: removes a cgroup once the processes in it are gone (a killed process
# leaves its cgroup a moment after wait returns).
rmdir_cgroup() {
  local dir=$1 i
  for ((i = 0; i < 50; i++)); do
    rmdir "$dir" 2>/dev/null && return 0
    [[ -d "$dir" ]] || return 0
    sleep 0.1
  done
  log "warning: could not remove cgroup $dir: $(cat "$dir/cgroup.procs" 2>/dev/null | tr '\n' ' ')"
  return 1
}

# make_cgroup REL: creates $CGROUP2_ROOT/REL and whatever of its parents is missing, and
# registers the removal of exactly the directories it created (deepest first).
make_cgroup() {
  local rel=$1 path=$CGROUP2_ROOT part
  [[ -n "$CGROUP2_ROOT" ]] || find_cgroup2_root
  local -a parts
  IFS=/ read -ra parts <<<"${rel#/}"
  for part in "${parts[@]}"; do
    [[ -n "$part" ]] || continue
    path+="/$part"
    if [[ ! -d "$path" ]]; then
      mkdir "$path" || fail "cannot create cgroup $path"
      on_exit "rmdir_cgroup '$path'"
      CGROUPS_CREATED+=("$path")
    fi
  done
}
CGROUPS_CREATED=()

# spawn_in_cgroup NAME REL NS CMD...: like lib.sh's spawn, but the process joins cgroup
# $CGROUP2_ROOT/REL before it execs CMD in network namespace NS, so every socket CMD opens
# belongs to that cgroup (a socket's cgroup is fixed when the socket is created).
spawn_in_cgroup() {
  local name=$1 rel=$2 ns=$3
  shift 3
  spawn "$name" sh -c 'echo $$ >"$1/cgroup.procs" || exit 125; ns=$2; shift 2; exec nsenter --net="/run/netns/$ns" "$@"' \
    sh "$CGROUP2_ROOT/$rel" "$ns" "$@"
}

# ---------------------------------------------------------------------------------------
# Topology: wan host -- router -- lan host

# veth_link NS_A IF_A NS_B IF_B: a veth pair between two namespaces, both ends up.
veth_link() {
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

# make_router_topology: three namespaces. The router's uplink is called eth0 and its LAN side
# is a bridge br-lan with the veth to the lan host enslaved (the names the shipped
# home-router policy uses). Forwarding is on for IPv4 and IPv6. Sets
#   ROUTER_NS WAN_NS LAN_NS
#   ROUTER_WAN_IP WAN_IP ROUTER_LAN_IP LAN_IP            (IPv4)
#   ROUTER_WAN_IP6 WAN_IP6 ROUTER_LAN_IP6 LAN_IP6        (IPv6 ULA, routed, no NAT)
# The WAN is 10.200.N.0/24; the LAN is 192.168.1.0/24 because home-router's port forward
# names 192.168.1.10. All of them exist only inside these namespaces. The wan host routes
# the LAN prefixes via the router (as a neighbour on a shared segment could), so "wan ->
# lan fails" is the firewall's doing, not a missing route.
make_router_topology() {
  _claim_test_id
  local n=$TEST_ID
  ROUTER_NS="portier-$n-h"
  new_netns WAN_NS w
  new_netns LAN_NS l
  ROUTER_WAN_IP="10.200.$n.1"
  WAN_IP="10.200.$n.2"
  ROUTER_LAN_IP="192.168.1.1"
  LAN_IP="192.168.1.10"
  ROUTER_WAN_IP6="fd00:200:$n:1::1"
  WAN_IP6="fd00:200:$n:1::2"
  ROUTER_LAN_IP6="fd00:200:$n:2::1"
  LAN_IP6="fd00:200:$n:2::10"

  veth_link "$ROUTER_NS" eth0 "$WAN_NS" wan0
  ip -n "$ROUTER_NS" link add br-lan type bridge stp_state 0 forward_delay 0
  veth_link "$ROUTER_NS" lanport "$LAN_NS" lan0
  ip -n "$ROUTER_NS" link set lanport master br-lan
  ip -n "$ROUTER_NS" link set br-lan up

  ip -n "$ROUTER_NS" addr add "$ROUTER_WAN_IP/24" dev eth0
  ip -n "$ROUTER_NS" addr add "$ROUTER_WAN_IP6/64" dev eth0 nodad
  ip -n "$ROUTER_NS" addr add "$ROUTER_LAN_IP/24" dev br-lan
  ip -n "$ROUTER_NS" addr add "$ROUTER_LAN_IP6/64" dev br-lan nodad
  ip netns exec "$ROUTER_NS" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

  ip -n "$WAN_NS" addr add "$WAN_IP/24" dev wan0
  ip -n "$WAN_NS" addr add "$WAN_IP6/64" dev wan0 nodad
  ip -n "$WAN_NS" route add 192.168.1.0/24 via "$ROUTER_WAN_IP"
  ip -n "$WAN_NS" -6 route add "fd00:200:$n:2::/64" via "$ROUTER_WAN_IP6"

  ip -n "$LAN_NS" addr add "$LAN_IP/24" dev lan0
  ip -n "$LAN_NS" addr add "$LAN_IP6/64" dev lan0 nodad
  ip -n "$LAN_NS" route add default via "$ROUTER_LAN_IP"
  ip -n "$LAN_NS" -6 route add default via "$ROUTER_LAN_IP6"
}

# ---------------------------------------------------------------------------------------
# Servers that record the peer's address, and probes that check it

# One line per TCP connection / UDP datagram: "<peer address as socat gives it> <first line>".
_recorder_script() {
  [[ -f "$WORKDIR/record.sh" ]] && return 0
  cat >"$WORKDIR/record.sh" <<'EOF'
#!/bin/sh
read -r line
printf '%s %s\n' "$SOCAT_PEERADDR" "$line" >>"$1"
printf 'pong-%s\n' "$line"
EOF
}

_wait_listening_family() {
  local ns=$1 proto=$2 port=$3 family=$4 i flag
  [[ $proto == tcp ]] && flag=-ltnH || flag=-lunH
  for ((i = 0; i < 100; i++)); do
    [[ -n "$(in_ns "$ns" ss $flag "-$family" "sport = :$port" 2>/dev/null)" ]] && return 0
    sleep 0.05
  done
  fail "$proto IPv$family server on port $port in $ns did not come up"
}

# listen_src NS PROTO PORT FAMILY(4|6) [UID]: a server on PORT that answers "pong-<line>" and
# records each peer address with the line in $WORKDIR/src-NS-PROTO-PORT-FAMILY. With UID, it
# runs as that user and group (no supplementary groups). Idempotent; unlisten_src stops it.
declare -A _SRC_LISTENERS=()
listen_src() {
  local ns=$1 proto=$2 port=$3 family=$4 uid=${5:-}
  local key="$ns-$proto-$port-$family"
  local file="$WORKDIR/src-$key" addr
  [[ -n "${_SRC_LISTENERS[$key]:-}" ]] && return 0
  _recorder_script
  : >"$file"
  case $proto$family in
    tcp4) addr="TCP4-LISTEN:$port,reuseaddr,fork" ;;
    tcp6) addr="TCP6-LISTEN:$port,reuseaddr,fork,ipv6only=1" ;;
    udp4) addr="UDP4-RECVFROM:$port,reuseaddr,fork" ;;
    udp6) addr="UDP6-RECVFROM:$port,reuseaddr,fork,ipv6only=1" ;;
    *) fail "listen_src: unknown protocol/family $proto/$family" ;;
  esac
  local -a as_user=()
  if [[ -n "$uid" ]]; then
    as_user=(setpriv --reuid="$uid" --regid="$uid" --clear-groups)
    chmod 666 "$file"
  fi
  _SRC_SEQ=$((_SRC_SEQ + 1))
  spawn "src-$key-$_SRC_SEQ" ip netns exec "$ns" "${as_user[@]}" \
    socat "$addr" EXEC:"/bin/sh $WORKDIR/record.sh $file"
  _SRC_LISTENERS[$key]=$SPAWNED_PID
  _wait_listening_family "$ns" "$proto" "$port" "$family"
}
_SRC_SEQ=0

# unlisten_src NS PROTO PORT FAMILY: stops that listen_src server and waits for the port to
# be free.
unlisten_src() {
  local key="$1-$2-$3-$4"
  local pid=${_SRC_LISTENERS[$key]:-}
  [[ -n "$pid" ]] || return 0
  stop_pid "$pid" || true
  unset "_SRC_LISTENERS[$key]"
  _wait_port_free "$1" "$2" "$3"
}

_wait_port_free() {
  local ns=$1 proto=$2 port=$3 i flag
  [[ $proto == tcp ]] && flag=-ltnH || flag=-lunH
  for ((i = 0; i < 100; i++)); do
    [[ -z "$(in_ns "$ns" ss $flag "sport = :$port" 2>/dev/null)" ]] && return 0
    sleep 0.05
  done
  fail "$proto port $port in $ns is still in use after its server was stopped"
}

# listen_in_cgroup NS PROTO PORT REL: lib.sh's listen (same file, so probe, assert_arrives and
# assert_blocked work with it), but the listener runs in cgroup $CGROUP2_ROOT/REL. unlisten
# stops it, so that the next one can serve the port from elsewhere.
_CG_SEQ=0
listen_in_cgroup() {
  local ns=$1 proto=$2 port=$3 rel=$4
  local key="$ns-$proto-$port" file="$WORKDIR/rx-$ns-$proto-$port" addr
  [[ -z "${_LISTENERS[$key]:-}" ]] || fail "listen_in_cgroup: $proto port $port in $ns already has a listener"
  : >"$file"
  [[ $proto == tcp ]] && addr="TCP-LISTEN:$port,reuseaddr,fork" || addr="UDP-RECV:$port,reuseaddr"
  _CG_SEQ=$((_CG_SEQ + 1))
  spawn_in_cgroup "listen-$key-cg$_CG_SEQ" "$rel" "$ns" socat -u "$addr" "OPEN:$file,append"
  _LISTENERS[$key]=$SPAWNED_PID
  _wait_listening "$ns" "$proto" "$port"
  grep -qx "$SPAWNED_PID" "$CGROUP2_ROOT/$rel/cgroup.procs" ||
    fail "the $proto listener on port $port (pid $SPAWNED_PID) is not in cgroup $rel: $(cat "/proc/$SPAWNED_PID/cgroup" 2>&1)"
}

# unlisten NS PROTO PORT: stops the lib.sh-style listener on that port.
unlisten() {
  local key="$1-$2-$3"
  local pid=${_LISTENERS[$key]:-}
  [[ -n "$pid" ]] || return 0
  stop_pid "$pid" || true
  unset "_LISTENERS[$key]"
  _wait_port_free "$1" "$2" "$3"
}

# An address in one canonical spelling (socat writes IPv6 peers as [fd00:0001:...]).
canonical_ip() {
  "$PYTHON" -c 'import ipaddress, sys; print(ipaddress.ip_address(sys.argv[1].strip("[]")))' "$1"
}

_SRC_PROBE_SEQ=0
# probe_src FROM TO_NS IP PROTO DPORT LPORT FAMILY: sends a fresh token from FROM to IP:DPORT;
# the listen_src server on LPORT in TO_NS should get it (LPORT differs from DPORT across a
# port forward). Returns 0 if the token arrived. Sets PROBE_SRC (the peer address the server
# saw, canonical), PROBE_REPLY (what came back to the sender) and PROBE_DETAIL.
probe_src() {
  local from=$1 to=$2 ip=$3 proto=$4 dport=$5 lport=$6 family=$7
  listen_src "$to" "$proto" "$lport" "$family"
  _SRC_PROBE_SEQ=$((_SRC_PROBE_SEQ + 1))
  local token="src-$$-$_SRC_PROBE_SEQ-$proto$family-$dport"
  local file="$WORKDIR/src-$to-$proto-$lport-$family" host=$ip rc=0 i seen=
  [[ $family == 6 ]] && host="[$ip]"
  PROBE_SRC=
  if [[ $proto == tcp ]]; then
    PROBE_REPLY=$(printf '%s\n' "$token" | in_ns "$from" timeout 6 \
      socat -T 3 - "TCP$family:$host:$dport,connect-timeout=2" 2>&1) || rc=$?
  else
    PROBE_REPLY=$(printf '%s\n' "$token" | in_ns "$from" timeout 6 \
      socat -T 1.5 - "UDP$family:$host:$dport" 2>&1) || rc=$?
  fi
  PROBE_DETAIL="sender exit $rc${PROBE_REPLY:+, said: $PROBE_REPLY}"
  for ((i = 0; i < 20; i++)); do
    seen=$(awk -v t="$token" '$2 == t { print $1; exit }' "$file")
    [[ -n "$seen" ]] && break
    [[ $proto == tcp ]] && ((rc != 0)) && [[ "$PROBE_REPLY" != *pong-* ]] && break
    sleep 0.05
  done
  [[ -n "$seen" ]] || return 1
  PROBE_SRC=$(canonical_ip "$seen")
  PROBE_TOKEN=$token
  return 0
}

# assert_connects FROM TO_NS IP PROTO DPORT LPORT FAMILY EXPECTED_SOURCE WHY: the probe
# arrives, the server saw EXPECTED_SOURCE as the peer ("-": any; PROBE_SRC has it), and its
# answer came back.
assert_connects() {
  local from=$1 to=$2 ip=$3 proto=$4 dport=$5 lport=$6 family=$7 want=$8 why=$9
  probe_src "$from" "$to" "$ip" "$proto" "$dport" "$lport" "$family" ||
    fail "expected $proto/IPv$family $from -> [$ip]:$dport to ARRIVE at port $lport in $to ($why), but the server saw nothing ($PROBE_DETAIL)"
  [[ "$want" == - ]] || want=$(canonical_ip "$want")
  [[ "$want" == - || "$PROBE_SRC" == "$want" ]] ||
    fail "$proto/IPv$family $from -> [$ip]:$dport ($why): expected the server in $to to see source $want, seen $PROBE_SRC"
  [[ "$PROBE_REPLY" == *"pong-$PROBE_TOKEN"* ]] ||
    fail "$proto/IPv$family $from -> [$ip]:$dport ($why): arrived from $PROBE_SRC, but the answer did not come back ($PROBE_DETAIL)"
  log "ok: $proto/IPv$family $from -> [$ip]:$dport arrives from $PROBE_SRC and is answered ($why)"
}

# assert_no_connection FROM TO_NS IP PROTO DPORT LPORT FAMILY WHY: nothing arrives.
assert_no_connection() {
  local from=$1 to=$2 ip=$3 proto=$4 dport=$5 lport=$6 family=$7 why=$8
  if probe_src "$from" "$to" "$ip" "$proto" "$dport" "$lport" "$family"; then
    fail "expected $proto/IPv$family $from -> [$ip]:$dport to be BLOCKED ($why), but the server on port $lport in $to got it from $PROBE_SRC"
  fi
  local pid=${_SRC_LISTENERS[$to-$proto-$lport-$family]}
  kill -0 "$pid" 2>/dev/null ||
    fail "the $proto/IPv$family server on port $lport in $to died; cannot tell whether the firewall blocked the probe"
  log "ok: $proto/IPv$family $from -> [$ip]:$dport blocked ($why; $PROBE_DETAIL)"
}

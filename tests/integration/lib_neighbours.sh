# Helpers for the tests that run another network stack's daemon next to portierd (podman,
# libvirt). Source it after lib.sh and lib_topology.sh.
#
# Those daemons keep their state below fixed paths (/run, /var/lib, /etc/...). Each test runs
# them in a private mount namespace where tmpfs mounts cover those paths, so nothing they
# write reaches this machine's folders, and nothing of this machine's (its system bus, its
# own containers or networks) is seen by them.

# shipped_policies: sets POLICIES to the shipped policies the neighbour tests run under, and
# makes what they need: server.toml binds port 22 to ssh.service, and portierd resolves
# that unit's cgroup, so it must exist.
shipped_policies() {
  POLICIES=(workstation server home-router k3s-node)
  local p
  for p in "${POLICIES[@]}"; do
    [[ -f "$PORTIER_SOURCE_DIR/rules/policies/$p.toml" ]] || fail "missing shipped policy $p.toml"
  done
  find_cgroup2_root
  make_cgroup system.slice/ssh.service
}

# neighbour_uplink: namespaces H (portierd and the stack's daemon) and I (the uplink and the
# internet), joined by a veth eth0 (H) / up0 (I). H has 10.200.N.1 and its default route via
# I's 10.200.N.2; I also has 10.200.N.3 on the link and 203.0.113.1 behind it, where a web
# server answers "internet-ok" on port 8000. I routes nothing.
# Sets H I HOST_IP PEER_IP PEER2_IP NET_IP.
neighbour_uplink() {
  new_netns H host
  new_netns I i
  ip -n "$H" link add eth0 type veth peer name up0 netns "$I"
  HOST_IP="10.200.$TEST_ID.1"
  PEER_IP="10.200.$TEST_ID.2"
  PEER2_IP="10.200.$TEST_ID.3"
  NET_IP=203.0.113.1
  ip -n "$H" addr add "$HOST_IP/24" dev eth0
  ip -n "$I" addr add "$PEER_IP/24" dev up0
  ip -n "$I" addr add "$PEER2_IP/24" dev up0
  ip -n "$I" addr add "$NET_IP/32" dev lo
  ip -n "$H" link set eth0 up
  ip -n "$I" link set up0 up
  ip -n "$H" route add default via "$PEER_IP"
  mkdir -p "$WORKDIR/www-net"
  echo internet-ok >"$WORKDIR/www-net/index.html"
  spawn httpd-net ip netns exec "$I" busybox httpd -f -p "$NET_IP:8000" -h "$WORKDIR/www-net"
  _wait_listening "$I" tcp 8000
}

# busybox_rootfs DIR: a root file system of busybox and its applets, with a web root /www
# whose index says "container-web" (for `podman import`: no registry here).
busybox_rootfs() {
  local dir=$1 applet
  mkdir -p "$dir/bin" "$dir/www" "$dir/tmp"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  for applet in sh wget httpd timeout sleep nc cat echo ip ls nslookup; do
    ln -s busybox "$dir/bin/$applet"
  done
  echo container-web >"$dir/www/index.html"
}

# spawn_private_mounts NAME NS MOUNTS CMD...: lib.sh's spawn of CMD in network namespace NS
# and a new mount namespace (private propagation: nothing mounted there is seen outside),
# after the shell commands MOUNTS ran there (say, `mount -t tmpfs tmpfs /run`). Sets
# SPAWNED_PID; the mount namespace lives as long as that process or anything started in it.
spawn_private_mounts() {
  local name=$1 ns=$2 mounts=$3
  shift 3
  spawn "$name" nsenter --net="/run/netns/$ns" unshare -m --propagation private \
    sh -c "set -e; $mounts; exec \"\$@\"" sh "$@"
}

# in_mounts PID CMD...: runs CMD in the network and mount namespaces of PID.
in_mounts() {
  local pid=$1
  shift
  nsenter -t "$pid" -m -n "$@"
}

# kill_mount_namespace PID: kills (KILL) every process but PID in PID's mount namespace, by
# pid: what a daemon there started in a session of its own (libvirt's dnsmasq, podman's
# conmon) and so outlives a stop of its process group.
kill_mount_namespace() {
  local ns pid
  ns=$(stat -L -c %i "/proc/$1/ns/mnt" 2>/dev/null) || return 0
  # One stat for all (a readlink per process takes seconds on a busy machine).
  for pid in $(stat -L -c '%i %n' /proc/[0-9]*/ns/mnt 2>/dev/null |
    awk -v ns="$ns" '$1 == ns { split($2, p, "/"); print p[3] }'); do
    [[ "$pid" == "$1" ]] || kill -KILL "$pid" 2>/dev/null || true
  done
}

# peer_fetch SOURCE_IP PORT: GET / of HOST_IP:PORT from I, bound to SOURCE_IP; prints the
# last line of the answer (empty: no answer).
peer_fetch() {
  printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$I" timeout 3 \
    socat -t 2 - "TCP:$HOST_IP:$2,bind=$1,connect-timeout=1" 2>/dev/null | tail -n 1 || true
}

# host_fetch PORT: the same from H itself, to its own HOST_IP.
host_fetch() {
  printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$H" timeout 4 \
    socat -t 2 - "TCP:$HOST_IP:$1,connect-timeout=2" 2>/dev/null | tail -n 1 || true
}

# expect_fetch WHAT EXPECTED GOT / expect_no_fetch WHAT GOT; the message names $POLICY_NAME.
expect_fetch() {
  [[ "$3" == "$2" ]] || fail "$1: expected '$2', got '$3' (policy ${POLICY_NAME:-none}${PROXY:+, proxy $PROXY})"
}
expect_no_fetch() {
  [[ -z "$2" ]] || fail "$1: expected no answer, got '$2' (policy ${POLICY_NAME:-none}${PROXY:+, proxy $PROXY})"
}

# policy_with_port_rules NAME PORT [RULE]: prints the path of a copy of shipped policy NAME
# with two disabled rules for tcp/PORT: RULE (default "pub-web", from anywhere) and
# RULE-peer (from PEER_IP only).
policy_with_port_rules() {
  local file="$WORKDIR/$1.toml" rule=${3:-pub-web}
  cp "$PORTIER_SOURCE_DIR/rules/policies/$1.toml" "$file"
  cat >>"$file" <<EOF

[[rule]]
name      = "$rule"
protocols = "tcp"
ports     = $2
action    = "accept"
enabled   = false

[[rule]]
name      = "$rule-peer"
protocols = "tcp"
ports     = $2
from      = "$PEER_IP"
action    = "accept"
enabled   = false
EOF
  printf '%s\n' "$file"
}

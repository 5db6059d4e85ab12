#!/usr/bin/env bash
# Real podman next to portier. Debian's podman 4.3, rootful, with netavark (whose firewall
# driver in Debian 12, netavark 1.4, is iptables: iptables-nft, tables ip nat / ip filter;
# 1.4 has no nftables driver) and runc, in the test's "host" namespace H. Its storage (vfs),
# run root, tmp dir and network configs are folders of the test (containers.conf and
# storage.conf via CONTAINERS_CONF / CONTAINERS_STORAGE_CONF); what podman keeps at fixed
# paths (/run/containers, /run/netns, /var/lib/containers/cache, its locks in /dev/shm) lands
# on tmpfs mounts in a private mount namespace held by a sleeping process, which every podman
# call enters. H's eth0 leads to I, the uplink and the internet (lib_neighbours.sh). The image
# is busybox, imported from a tar.
#
# With each shipped policy loaded by portierd in H, checked with real traffic:
#   - a container on podman's default network (bridge podman0) reaches the internet, and
#     another container on it;
#   - the published port (-p 8080:80, netavark's DNAT) is closed from I, open after `enable`
#     of a rule, closed after `disable`; a rule `from = <address>` admits that address only;
#     `portierctl allow tcp/8080` opens it; the host itself always reaches it;
#   - status names the podman bridges;
#   - (first policy) a new connection from I to a container's own address (netavark lets it
#     through) is refused;
#   - (first policy) a reload and a portierd restart keep it working, the timed rule expires.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_neighbours.sh"
require_root_or_skip
require_binaries
require_cmd podman conmon runc busybox nsenter unshare tar socat
NETAVARK=/usr/lib/podman/netavark
[[ -x "$NETAVARK" ]] || skip "podman's netavark ($NETAVARK) is not installed"
shipped_policies

neighbour_uplink

# --- podman's configuration: everything it may keep in a folder of its own goes to $P.
P="$WORKDIR/podman"
mkdir -p "$P"
# No CAP_SYS_RESOURCE in some CI containers: podman's default rlimits (nofile 1048576)
# would exceed the hard limits runc may set, so ask for ones below them.
cat >"$P/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$P/events.log"
runtime = "runc"
tmp_dir = "$P/tmp"
volume_path = "$P/volumes"
static_dir = "$P/root/libpod"

[network]
network_backend = "netavark"
network_config_dir = "$P/networks"
EOF
cat >"$P/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$P/root"
runroot = "$P/run"
EOF

# The mount namespace podman runs in; /tmp (the test's folder) stays shared.
spawn_private_mounts podman-mounts "$H" \
  'for d in /run /var/lib /dev/shm; do mount -t tmpfs tmpfs "$d"; done' sleep 1000000
HOLDER=$SPAWNED_PID
for ((i = 0; i < 100; i++)); do
  [[ "$(cat "/proc/$HOLDER/comm" 2>/dev/null)" == sleep ]] && break
  sleep 0.05
done
[[ "$(readlink "/proc/$HOLDER/ns/mnt")" != "$(readlink /proc/self/ns/mnt)" ]] ||
  fail "podman's mount namespace holder did not start (see podman-mounts.log)"

# Every podman call, killed after 60 s.
pm() {
  CONTAINERS_CONF="$P/containers.conf" CONTAINERS_STORAGE_CONF="$P/storage.conf" \
    timeout -s KILL 60 nsenter -t "$HOLDER" -m -n podman "$@"
}

# Container init pids as podman reports them, for the cleanup of a failed run.
: >"$WORKDIR/container-pids"
record_container_pids() {
  pm inspect -f '{{.State.Pid}}' web cli cli2 >>"$WORKDIR/container-pids" 2>/dev/null || true
}
# On any exit (before the holder stops): containers away, then whatever of ours is left
# (conmon, container inits), by pid.
cleanup_podman() {
  kill -0 "$HOLDER" 2>/dev/null && pm rm -a -f -t 0 >/dev/null 2>&1 || true
  local pid
  for pid in $(cat "$WORKDIR/container-pids"); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  kill_mount_namespace "$HOLDER"
}
on_exit cleanup_podman

# in_container NAME SECONDS CMD...: runs CMD in a running container, killed after SECONDS.
in_container() {
  local name=$1 seconds=$2
  shift 2
  pm exec "$name" timeout "$seconds" "$@"
}

# --- Containers: web (published 8080 -> 80) and cli, on podman's default network.
ROOTFS="$WORKDIR/rootfs"
busybox_rootfs "$ROOTFS"
tar -C "$ROOTFS" -c . | pm import - bb >/dev/null || fail "podman import failed"
pm run -d --name web -p 8080:80 bb httpd -f -p 80 -h /www >/dev/null ||
  fail "podman run web failed"
pm run -d --name cli bb sleep 100000 >/dev/null || fail "podman run cli failed"
# A network of its own has DNS: aardvark-dns answers on its bridge's address, in H.
pm network create net2 >/dev/null || fail "podman network create net2 failed"
pm run -d --name cli2 --network net2 bb sleep 100000 >/dev/null || fail "podman run cli2 failed"
record_container_pids
WEB_IP=$(pm inspect -f '{{.NetworkSettings.IPAddress}}' web)
[[ -n "$WEB_IP" ]] || fail "no address for container web"
CLI2_IP=$(pm inspect -f '{{.NetworkSettings.Networks.net2.IPAddress}}' cli2)
[[ -n "$CLI2_IP" ]] || fail "no address for container cli2"
ip -n "$H" link show podman0 >/dev/null 2>&1 || fail "podman made no bridge podman0"
# netavark's rules are iptables-nft's: DNAT of 8080 in ip nat, its forward chain in ip filter.
assert_match "$(ip netns exec "$H" nft list table ip nat 2>&1)" 'dnat to [0-9.]+:80' \
  "netavark's DNAT of the published port"
log "podman up; web at $WEB_IP, published on $HOST_IP:8080"

# One exec for both fetches (a podman exec takes a second or two).
check_egress() {
  local got
  got=$(in_container cli 9 sh -c "echo net=\$(timeout 4 wget -q -O - http://$NET_IP:8000/);
    echo web=\$(timeout 4 wget -q -O - http://$WEB_IP:80/)" 2>/dev/null || true)
  expect_fetch "cli to the internet" internet-ok "$(sed -n 's/^net=//p' <<<"$got")"
  expect_fetch "cli to web on podman0" container-web "$(sed -n 's/^web=//p' <<<"$got")"
  got=$(in_container cli2 9 sh -c "nslookup -type=a cli2; wget -q -O - http://$NET_IP:8000/" 2>&1 || true)
  assert_match "$got" "Address: $CLI2_IP" "cli2 looks up its name with aardvark-dns (policy ${POLICY_NAME:-none})"
  assert_match "$got" '^internet-ok$' "cli2 (net2) to the internet (policy ${POLICY_NAME:-none})"
}

# I to the container's own address, not through the published port (I routes podman's
# network via H, as a neighbour on the uplink could): netavark's chains let it through.
ip -n "$I" route add 10.88.0.0/16 via "$HOST_IP"
direct_fetch() {
  printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$I" timeout 3 \
    socat -t 2 - "TCP:$WEB_IP:80,connect-timeout=1" 2>/dev/null | tail -n 1 || true
}

POLICY_NAME=
check_egress
expect_fetch "I to web's own address, no firewall" container-web "$(direct_fetch)"
expect_fetch "I to the published port" container-web "$(peer_fetch "$PEER_IP" 8080)"
expect_fetch "the host itself to its published port" container-web "$(host_fetch 8080)"
log "ok: without portier, egress, container to container and the published port work"

# The published port under a policy: closed, opened by a rule, from one address, by allow.
check_published() {
  expect_no_fetch "I to the published port, no rule" "$(peer_fetch "$PEER_IP" 8080)"
  expect_fetch "the host itself to its published port" container-web "$(host_fetch 8080)"
  pctl enable pub-web
  assert_rc 0 "enable pub-web"
  expect_fetch "I to the published port after enable pub-web" container-web "$(peer_fetch "$PEER_IP" 8080)"
  pctl disable pub-web
  assert_rc 0 "disable pub-web"
  expect_no_fetch "I to the published port after disable pub-web" "$(peer_fetch "$PEER_IP" 8080)"
  pctl enable pub-web-peer
  assert_rc 0 "enable pub-web-peer"
  expect_fetch "$PEER_IP to the published port (from = $PEER_IP)" container-web "$(peer_fetch "$PEER_IP" 8080)"
  expect_no_fetch "$PEER2_IP to the published port (from = $PEER_IP)" "$(peer_fetch "$PEER2_IP" 8080)"
  pctl disable pub-web-peer
  assert_rc 0 "disable pub-web-peer"
  pctl allow tcp/8080 --for "$1"
  assert_rc 0 "allow tcp/8080"
  expect_fetch "I to the published port after allow tcp/8080" container-web "$(peer_fetch "$PEER2_IP" 8080)"
}

# The timed rule of check_published closes again once it expired.
check_allow_expires() {
  local i got
  for ((i = 0; i < 20; i++)); do
    got=$(peer_fetch "$PEER2_IP" 8080)
    [[ -n "$got" ]] || break
    sleep 0.5
  done
  expect_no_fetch "I to the published port after the timed rule expired" "$got"
}

full=1
for p in "${POLICIES[@]}"; do
  POLICY_NAME=$p
  policy=$(policy_with_port_rules "$p" 8080)
  start_portierd_hostfs "$H" "$policy"
  pctl status
  assert_rc 0 "status"
  assert_match "$OUT" '^neighbours: podman \(podman0, podman1\)$' "status under $p"
  check_egress
  if ((full)); then
    expect_no_fetch "I to web's own address (nobody published it)" "$(direct_fetch)"
    check_published 4s
    check_allow_expires
    pctl reload
    assert_rc 0 "reload"
    check_egress
    stop_portierd
    start_portierd_hostfs "$H" "$policy"
    check_egress
    expect_no_fetch "I to the published port after a portierd restart" "$(peer_fetch "$PEER_IP" 8080)"
    full=0
  else
    check_published 1h
  fi
  stop_portierd
  log "ok: $p"
done

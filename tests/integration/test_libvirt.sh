#!/usr/bin/env bash
# Real libvirt next to portier. Debian's libvirtd 9.0 (package libvirt-daemon; its network
# driver drives iptables-nft, tables ip filter / ip nat / ip mangle, and starts dnsmasq) runs
# in the test's "host" namespace H, in a private mount namespace: tmpfs on /run, /var/lib,
# /var/cache and /var/log (libvirt's fixed state paths; it also finds no system bus there,
# so no firewalld), a folder of the test on /etc/libvirt (libvirtd.conf: no polkit on its
# socket), an empty /etc/resolv.conf, and copies of /etc/passwd and /etc/group with the
# users libvirt-daemon-system would create (the QEMU driver refuses to start without
# libvirt-qemu, and libvirtd with it).
# Its default NAT network (libvirt's default.xml, plus a DNS host entry for a name to
# resolve) comes up with `virsh net-start default`. A "guest" namespace G is attached to
# virbr0 through a veth. H's eth0 leads to I, the uplink and the internet (lib_neighbours.sh).
#
# Without portier, and then with each shipped policy loaded by portierd in H, checked:
#   - G gets a DHCP and a DHCPv6 lease from libvirt's dnsmasq, resolves a name through it,
#     and reaches the internet through libvirt's NAT (I sees the host's address);
#   - the guest's other input to the host follows the policy's default (a port of H that
#     nothing opens is closed from G);
#   - status names the libvirt bridge;
#   - (first policy) a new connection from I to the guest is refused;
#   - (first policy) a reload, a portierd restart and a restart of the libvirt network
#     (libvirt recreates its rules and dnsmasq) keep it working.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_neighbours.sh"
require_root_or_skip
require_binaries
require_cmd libvirtd virsh dnsmasq busybox dhclient nsenter unshare socat
shipped_policies

neighbour_uplink
new_netns G g

# --- libvirt's configuration and users.
L="$WORKDIR/libvirt"
mkdir -p "$L/etc"
cat >"$L/etc/libvirtd.conf" <<'EOF'
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
EOF
cp /etc/passwd "$L/passwd"
cp /etc/group "$L/group"
cat >>"$L/passwd" <<'EOF'
libvirt-qemu:x:64055:64055:Libvirt Qemu:/nonexistent:/usr/sbin/nologin
libvirt-dnsmasq:x:64056:64056:Libvirt Dnsmasq:/nonexistent:/usr/sbin/nologin
EOF
cat >>"$L/group" <<'EOF'
libvirt-qemu:x:64055:
libvirt-dnsmasq:x:64056:
kvm:x:64057:
libvirt:x:64058:
EOF
# libvirt's default network (libvirt-daemon-config-network's default.xml), plus a name for
# the guest to look up and an IPv6 range (its dnsmasq then also serves DHCPv6).
cat >"$L/default.xml" <<EOF
<network>
  <name>default</name>
  <bridge name='virbr0'/>
  <forward/>
  <dns>
    <host ip='$NET_IP'><hostname>internet.test</hostname></host>
  </dns>
  <ip family='ipv6' address='fd00:122::1' prefix='64'>
    <dhcp>
      <range start='fd00:122::100' end='fd00:122::1ff'/>
    </dhcp>
  </ip>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
EOF
BRIDGE_IP=192.168.122.1
# No upstream name servers for its dnsmasq: what it does not know itself it refuses at once,
# instead of asking this machine's resolvers from inside the test.
: >"$L/resolv.conf"

spawn_private_mounts libvirtd "$H" \
  "for d in /run /var/lib /var/cache /var/log; do mount -t tmpfs tmpfs \$d; done
   mount --bind '$L/etc' /etc/libvirt
   mount --bind '$L/passwd' /etc/passwd
   mount --bind '$L/group' /etc/group
   mount --bind '$L/resolv.conf' /etc/resolv.conf" libvirtd
LIBVIRTD_PID=$SPAWNED_PID
vsh() { in_mounts "$LIBVIRTD_PID" timeout 30 virsh -q -c qemu:///system "$@"; }
# On any exit (before libvirtd stops): the network down (its dnsmasq with it), then what is
# left in libvirtd's mount namespace, by pid (dnsmasq runs in a session of its own).
cleanup_libvirt() {
  kill -0 "$LIBVIRTD_PID" 2>/dev/null || return 0
  vsh net-destroy default >/dev/null 2>&1 || true
  kill_mount_namespace "$LIBVIRTD_PID"
}
on_exit cleanup_libvirt
for ((i = 0; i < 300; i++)); do
  vsh net-list --all >/dev/null 2>&1 && break
  kill -0 "$LIBVIRTD_PID" 2>/dev/null || fail "libvirtd exited at start (see libvirtd.log)"
  sleep 0.1
done
vsh net-list --all >/dev/null 2>&1 || fail "libvirtd did not answer within 30 s"
vsh net-define "$L/default.xml" >/dev/null || fail "virsh net-define failed"

# start_network: `virsh net-start default`, the guest's veth on virbr0, and a wait until the
# bridge forwards on it (libvirt turns STP on: listening and learning take 2 x 2 s).
start_network() {
  vsh net-start default >/dev/null || fail "virsh net-start default failed"
  ip -n "$H" link show vnet0 >/dev/null 2>&1 ||
    ip -n "$H" link add vnet0 type veth peer name eth0 netns "$G"
  ip -n "$H" link set vnet0 master virbr0 up
  ip -n "$G" link set eth0 up
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(ip netns exec "$H" bridge link show dev vnet0)" == *"state forwarding"* ]] && return 0
    sleep 0.1
  done
  fail "virbr0 does not forward on vnet0 after 10 s: $(ip netns exec "$H" bridge link show dev vnet0)"
}
start_network
log "libvirtd up, network default active on virbr0"

# --- The guest's DHCP clients: busybox udhcpc, with a script that applies the lease, and
# for DHCPv6 (busybox has no udhcpc6) ISC's dhclient, with a script that records it. Only
# IPv4 addresses are flushed: DHCPv6 needs the link-local one.
cat >"$WORKDIR/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    ip route replace default via "$router" dev "$interface"
    echo "$ip $router $dns" >"$LEASE" ;;
esac
EOF
# (dhclient gives its script an environment of its own: the path is written in.)
cat >"$WORKDIR/dhclient6.script" <<EOF
#!/bin/sh
case "\$reason" in
  BOUND6 | RENEW6 | REBIND6) echo "\$new_ip6_address" >"$WORKDIR/lease6" ;;
esac
EOF
chmod 755 "$WORKDIR/udhcpc.script" "$WORKDIR/dhclient6.script"

# check_guest [keep]: a fresh lease (unless "keep": the one it has), a name looked up, the
# internet reached through the NAT.
check_guest() {
  local lease
  [[ "${1:-}" != keep ]] || { check_lookup_and_nat; return; }
  rm -f "$WORKDIR/lease"
  ip -n "$G" -4 addr flush dev eth0
  LEASE="$WORKDIR/lease" ip netns exec "$G" timeout 20 busybox udhcpc -i eth0 -n -q -f \
    -t 6 -T 1 -s "$WORKDIR/udhcpc.script" >"$WORKDIR/logs/udhcpc.log" 2>&1 || true
  lease=$(cat "$WORKDIR/lease" 2>/dev/null || true)
  assert_match "$lease" "^192\.168\.122\.[0-9]+ $BRIDGE_IP $BRIDGE_IP\$" \
    "the guest's DHCP lease from libvirt's dnsmasq (policy ${POLICY_NAME:-none}; udhcpc: $(tail -n 3 "$WORKDIR/logs/udhcpc.log"))"
  GUEST_IP=${lease%% *}
  check_lease6
  check_lookup_and_nat
}

# A DHCPv6 lease: dhclient -6 in the foreground until it recorded one.
DHCLIENT_SEQ=0
check_lease6() {
  local i lease6
  rm -f "$WORKDIR/lease6" "$WORKDIR/dhclient6.leases"
  DHCLIENT_SEQ=$((DHCLIENT_SEQ + 1))
  spawn "dhclient6-$DHCLIENT_SEQ" ip netns exec "$G" \
    dhclient -6 -1 -d -v -sf "$WORKDIR/dhclient6.script" -lf "$WORKDIR/dhclient6.leases" \
    -pf "$WORKDIR/dhclient6.pid" eth0
  for ((i = 0; i < 150; i++)); do
    [[ -s "$WORKDIR/lease6" ]] && break
    sleep 0.1
  done
  stop_pid "$SPAWNED_PID" || true
  lease6=$(cat "$WORKDIR/lease6" 2>/dev/null || true)
  assert_match "$lease6" '^fd00:122::1[0-9a-f]{2}$' \
    "the guest's DHCPv6 lease from libvirt's dnsmasq (policy ${POLICY_NAME:-none}; dhclient: $(tail -n 3 "$WORKDIR/logs/dhclient6-$DHCLIENT_SEQ.log"))"
}

check_lookup_and_nat() {
  local got
  got=$(ip netns exec "$G" timeout 5 busybox nslookup -type=a internet.test "$BRIDGE_IP" 2>&1 || true)
  assert_match "$got" "Address: $NET_IP" "the guest's lookup of internet.test through dnsmasq (policy ${POLICY_NAME:-none})"
  got=$(ip netns exec "$G" timeout 4 busybox wget -q -O - "http://$NET_IP:8000/" 2>/dev/null || true)
  expect_fetch "the guest to the internet" internet-ok "$got"
  # Through libvirt's NAT: I sees the host's address. (The fetch above saw the answers; the
  # recorder's answer can miss socat's half-close window on a loaded machine.)
  probe_src "$G" "$I" "$NET_IP" tcp 9000 9000 4 ||
    fail "the guest's connection to the internet did not arrive (policy ${POLICY_NAME:-none}; $PROBE_DETAIL)"
  [[ "$PROBE_SRC" == "$HOST_IP" ]] ||
    fail "the guest's connection arrived from $PROBE_SRC, expected the host's $HOST_IP (libvirt's NAT; policy ${POLICY_NAME:-none})"
}

# A port of the host that no rule opens: open without portier, closed under each policy.
listen "$H" tcp 2222
POLICY_NAME=
check_guest
assert_arrives "$G" "$H" "$BRIDGE_IP" tcp 2222 "the guest to the host's tcp/2222, no firewall"
log "ok: without portier, DHCP, DNS and the NAT work for the guest (lease $GUEST_IP)"

full=1
for p in "${POLICIES[@]}"; do
  POLICY_NAME=$p
  start_portierd_hostfs "$H" "$PORTIER_SOURCE_DIR/rules/policies/$p.toml"
  pctl status
  assert_rc 0 "status"
  assert_match "$OUT" '^neighbours: libvirt \(virbr0\)$' "status under $p"
  check_guest
  assert_blocked "$G" "$H" "$BRIDGE_IP" tcp 2222 "the guest to the host's tcp/2222 under $p (input default)"
  if ((full)); then
    # New connections from outside to the guest stay refused (libvirt rejects them; portier
    # accepts nothing of the kind in their place). I routes the guests' network via H.
    ip -n "$I" route replace 192.168.122.0/24 via "$HOST_IP"
    assert_blocked "$I" "$G" "$GUEST_IP" tcp 8081 "I to the guest's own address under $p"
    pctl reload
    assert_rc 0 "reload"
    check_guest keep
    stop_portierd
    start_portierd_hostfs "$H" "$PORTIER_SOURCE_DIR/rules/policies/$p.toml"
    check_guest keep
    # libvirt takes its rules and its dnsmasq down and makes them again.
    vsh net-destroy default >/dev/null || fail "virsh net-destroy default failed"
    start_network
    check_guest
    full=0
  fi
  stop_portierd
  log "ok: $p"
done

#!/usr/bin/env bash
# The shipped home-router policy on a real three-namespace router:
#
#   wan host (wan0) ---- (eth0) router (br-lan) ---- (lan0) lan host 192.168.1.10
#
# The router's interfaces carry the names the policy uses (eth0, and a bridge br-lan), so
# rules/policies/home-router.toml is loaded exactly as shipped. Checked with real traffic:
# from the wan nothing on the router answers (nmap finds no open port, NetBIOS datagrams do
# not arrive, and netbios-from-wan counts them) while the lan reaches the same services; lan
# -> wan works over TCP and UDP and leaves with the router's wan address (masquerade);
# wan -> lan new connections fail; the port forward nas-web works only once enabled;
# IPv6 is routed both ways for lan-initiated traffic (neighbour discovery across the
# dropping input policy) and closed to wan-initiated traffic.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
require_root_or_skip
require_binaries
require_cmd nmap nsenter

POLICY_SOURCE="$PORTIER_SOURCE_DIR/rules/policies/home-router.toml"
[[ -f "$POLICY_SOURCE" ]] || fail "missing $POLICY_SOURCE"
POLICY="$WORKDIR/home-router.toml"
cp "$POLICY_SOURCE" "$POLICY"
# The topology uses the policy's own interface names; if they change, this test must too.
assert_match "$(grep -A1 '^\[zone.wan\]' "$POLICY")" '^interfaces *= *\["eth0"' "home-router.toml's wan zone"
assert_match "$(grep -A1 '^\[zone.lan\]' "$POLICY")" '^interfaces *= *\["br-lan"\]' "home-router.toml's lan zone"

make_router_topology
log "router $ROUTER_NS: eth0 $ROUTER_WAN_IP $ROUTER_WAN_IP6, br-lan $ROUTER_LAN_IP $ROUTER_LAN_IP6"

ROUTER_TCP_PORTS=(22 80 139 445)

# nmap_open_ports: the TCP ports 1-1024 of the router's wan address that nmap from the wan
# host reports open, one per line.
nmap_open_ports() {
  local out rc=0
  out=$(in_ns "$WAN_NS" timeout 90 nmap -Pn -n -sS -p1-1024 --max-retries 1 "$ROUTER_WAN_IP" 2>&1) || rc=$?
  ((rc == 0)) || fail "nmap from $WAN_NS exited $rc: $out"
  printf '%s\n' "$out" >"$WORKDIR/nmap-last.txt"
  printf '%s\n' "$out" >>"$WORKDIR/logs/nmap.log"
  grep -q "Nmap done: 1 IP address (1 host up)" <<<"$out" ||
    fail "nmap did not scan $ROUTER_WAN_IP as an up host:
$out"
  awk '$1 ~ /^[0-9]+\/tcp$/ && $2 == "open" { sub("/tcp", "", $1); print $1 }' <<<"$out"
}

# --- Without a firewall: the wire, the routes and the listeners work, and nmap sees them.
for port in "${ROUTER_TCP_PORTS[@]}"; do listen "$ROUTER_NS" tcp "$port"; done
listen "$ROUTER_NS" udp 137
listen "$ROUTER_NS" udp 138
open=$(nmap_open_ports | tr '\n' ' ')
assert_eq "22 80 139 445 " "$open" "TCP ports nmap finds open on $ROUTER_WAN_IP before any firewall"
assert_arrives "$WAN_NS" "$ROUTER_NS" "$ROUTER_WAN_IP" udp 137 "no firewall yet"
assert_connects "$LAN_NS" "$WAN_NS" "$WAN_IP" tcp 5000 5000 4 "$LAN_IP" "no firewall yet, so no masquerade"
assert_connects "$WAN_NS" "$LAN_NS" "$LAN_IP" tcp 80 80 4 "$WAN_IP" "no firewall yet: the wan host routes to the lan"
assert_connects "$LAN_NS" "$WAN_NS" "$WAN_IP6" tcp 5006 5006 6 "$LAN_IP6" "no firewall yet"
assert_connects "$WAN_NS" "$LAN_NS" "$LAN_IP6" tcp 8086 8086 6 "$WAN_IP6" "no firewall yet"

# Forget the neighbours learnt so far: under the firewall, neighbour discovery must work anew.
for ns in "$ROUTER_NS" "$WAN_NS" "$LAN_NS"; do ip -n "$ns" neigh flush all; done

start_portierd "$ROUTER_NS" "$POLICY"
log "portierd loaded home-router.toml in $ROUTER_NS"

# --- From the wan, nothing on the router answers; from the lan, the same services do.
open=$(nmap_open_ports | tr '\n' ' ')
assert_eq "" "$open" "TCP ports nmap finds open on $ROUTER_WAN_IP from the wan (input drop; listeners on ${ROUTER_TCP_PORTS[*]})"
grep -Eq "(Not shown: 1024 filtered tcp ports|All 1024 scanned ports on $ROUTER_WAN_IP are in ignored states)" "$WORKDIR/nmap-last.txt" ||
  fail "expected nmap to report all 1024 ports filtered (dropped, no RST); its output:
$(cat "$WORKDIR/nmap-last.txt")"
log "ok: nmap from the wan finds ports 1-1024 of $ROUTER_WAN_IP all filtered"

netbios_before=$(rule_field netbios-from-wan packets)
assert_blocked "$WAN_NS" "$ROUTER_NS" "$ROUTER_WAN_IP" udp 137 "netbios-from-wan"
assert_blocked "$WAN_NS" "$ROUTER_NS" "$ROUTER_WAN_IP" udp 138 "netbios-from-wan"
netbios_after=$(rule_field netbios-from-wan packets)
assert_int_ge "$((netbios_after - netbios_before))" 2 \
  "packets counted by netbios-from-wan for the two NetBIOS datagrams from the wan (before $netbios_before, after $netbios_after)"
# The scan's SYNs to 139 and 445 went through the same rule.
assert_int_ge "$netbios_before" 2 "packets counted by netbios-from-wan after the nmap scan (SYNs to 139 and 445)"
log "ok: netbios-from-wan counted $netbios_after packets"

for port in "${ROUTER_TCP_PORTS[@]}"; do
  assert_arrives "$LAN_NS" "$ROUTER_NS" "$ROUTER_LAN_IP" tcp "$port" "lan input accept"
done
assert_arrives "$LAN_NS" "$ROUTER_NS" "$ROUTER_LAN_IP" udp 137 "lan input accept"
assert_arrives "$LAN_NS" "$ROUTER_NS" "$ROUTER_LAN_IP" udp 138 "lan input accept"

# --- lan -> wan: forwarded, masqueraded behind the router's wan address, answered.
assert_connects "$LAN_NS" "$WAN_NS" "$WAN_IP" tcp 5000 5000 4 "$ROUTER_WAN_IP" "lan forward_to wan, masquerade"
assert_connects "$LAN_NS" "$WAN_NS" "$WAN_IP" udp 5001 5001 4 "$ROUTER_WAN_IP" "lan forward_to wan, masquerade"

# --- wan -> lan: no new connections, though the wan host has a route to the lan.
assert_no_connection "$WAN_NS" "$LAN_NS" "$LAN_IP" tcp 80 80 4 "forward from wan defaults to drop"
assert_no_connection "$WAN_NS" "$LAN_NS" "$LAN_IP" udp 5002 5002 4 "forward from wan defaults to drop"

# --- The port forward nas-web: wan tcp 8080 -> 192.168.1.10:80, off until enabled.
assert_eq disabled "$(rule_field nas-web state)" "state of nas-web as shipped"
assert_no_connection "$WAN_NS" "$LAN_NS" "$ROUTER_WAN_IP" tcp 8080 80 4 "nas-web is disabled"
pctl enable nas-web
assert_rc 0 "portierctl enable nas-web"
assert_eq enabled "$(rule_field nas-web state)" "state of nas-web after portierctl enable"
assert_connects "$WAN_NS" "$LAN_NS" "$ROUTER_WAN_IP" tcp 8080 80 4 "$WAN_IP" "nas-web enabled: dnat to $LAN_IP:80"
# Only the forwarded port opened.
assert_no_connection "$WAN_NS" "$LAN_NS" "$LAN_IP" tcp 80 80 4 "the lan host itself stays closed with nas-web on"

# --- IPv6, routed without NAT: lan -> wan works both ways, wan -> lan new fails. The
# source address is checked last, so a NAT problem does not hide the other outcomes.
assert_connects "$LAN_NS" "$WAN_NS" "$WAN_IP6" tcp 5006 5006 6 - "lan forward_to wan over IPv6, reply comes back"
tcp6_source=$PROBE_SRC
assert_connects "$LAN_NS" "$WAN_NS" "$WAN_IP6" udp 5007 5007 6 - "lan forward_to wan over IPv6"
udp6_source=$PROBE_SRC
assert_no_connection "$WAN_NS" "$LAN_NS" "$LAN_IP6" tcp 8086 8086 6 "forward from wan defaults to drop"
# The wan host resolved the router's link address through the dropping input policy.
neigh=$(ip -n "$WAN_NS" -6 neigh show "$ROUTER_WAN_IP6" dev wan0)
assert_match "$neigh" 'lladdr .* (REACHABLE|STALE|DELAY|PROBE)' \
  "the wan host's neighbour entry for the router ($ROUTER_WAN_IP6)"
log "ok: IPv6 neighbour discovery across input drop: $neigh"
# home-router masquerades IPv4 only; the lan's IPv6 addresses are routed as they are.
assert_eq "$(canonical_ip "$LAN_IP6")" "$tcp6_source" \
  "source of the lan host's TCP/IPv6 connection as the wan host sees it (routed, not masqueraded)"
assert_eq "$(canonical_ip "$LAN_IP6")" "$udp6_source" \
  "source of the lan host's UDP/IPv6 datagram as the wan host sees it (routed, not masqueraded)"
log "ok: IPv6 from the lan arrives from $LAN_IP6, not NATed"

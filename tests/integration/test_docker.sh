#!/usr/bin/env bash
# Real Docker next to portier. dockerd (Debian's docker.io) runs in the test's "host"
# namespace H, with its own data root, exec root, socket and pid file, in a private mount
# namespace (nothing it mounts is seen outside), joined by a veth "eth0" to a namespace I
# that plays the uplink and the internet (10.200.N.2 and .3 on the link, 203.0.113.1 behind
# it, H's default route). The image is busybox, imported from a tar (no registry here).
#
# With each shipped policy loaded by portierd in H, and dockerd first with
# --userland-proxy=true, then restarted (containers come back: --restart always) with
# --userland-proxy=false, checked with real traffic:
#   - containers on the default bridge and on a `docker network create` network reach the
#     internet; a container reaches another on its bridge;
#   - the published port (-p 8080:80) is closed from I, open after `enable` of a rule or
#     `portierctl allow tcp/8080`, closed again after `disable`; a rule `from = <address>`
#     admits that address of I only; the host itself always reaches it;
#   - a reload, a portierd restart and the dockerd restart keep all of it working, and a
#     container's established connection survives a reload;
#   - panic cuts the containers off too;
#   - under workstation, `portierctl ports` lists the published port with its verdict before
#     and after a rule opens it, and `explain` names the rule, in both proxy modes.
# dockerd starts twice in all (it is slow to start): both proxy modes, one restart.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_docker.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_neighbours.sh"
require_root_or_skip
require_binaries
require_cmd dockerd docker containerd runc busybox nsenter unshare tar
shipped_policies  # lib_neighbours.sh

# --- Topology: H (portierd, dockerd) --eth0/up0-- I (uplink, and the internet's web server
# on 203.0.113.1), lib_neighbours.sh; dockerd turns forwarding on, I routes nothing. And a
# line collector for long connections on the internet.
neighbour_uplink
: >"$WORKDIR/long.txt"
spawn long-net ip netns exec "$I" socat -u "TCP-LISTEN:9000,bind=$NET_IP,reuseaddr,fork" \
  "OPEN:$WORKDIR/long.txt,append"
_wait_listening "$I" tcp 9000

# --- The image: busybox and its applets, a web root; dockerd in H (lib_docker.sh).
ROOTFS="$WORKDIR/rootfs"
mkdir -p "$ROOTFS/www"
echo container-web >"$ROOTFS/www/index.html"

# container_fetch NAME URL: what a GET of URL from the container printed (empty: nothing).
container_fetch() { in_container "$1" 4 wget -q -O - "$2" 2>/dev/null || true; }

# peer_fetch, expect_fetch and expect_no_fetch: lib_neighbours.sh.

# --- Containers: web (published 8080 -> 80) and cli on the default bridge, cli2 on net2.
PROXY=true
POLICY_NAME=none
start_dockerd "$H" true
import_busybox_image bb "$ROOTFS" sh wget httpd timeout sleep nc cat echo ip ls
timeout 30 docker network create net2 >/dev/null || fail "docker network create net2 failed"
run_container --restart always --name web -p 8080:80 bb httpd -f -p 80 -h /www
run_container --restart always --name cli bb sleep 100000
run_container --restart always --name cli2 --network net2 bb sleep 100000
record_container_pids web cli cli2
[[ -n "$(pgrep -P "$DOCKERD_PID" -x docker-proxy || true)" ]] ||
  fail "no docker-proxy for the published port with --userland-proxy=true"
WEB_IP=$(container_ip web)
[[ -n "$WEB_IP" ]] || fail "no address for container web"
log "dockerd up; web at $WEB_IP, published on $HOST_IP:8080"

# --- The checks, with portierd running a policy (or none).
check_egress() {
  expect_fetch "cli (default bridge) to the internet" internet-ok "$(container_fetch cli "http://$NET_IP:8000/")"
  expect_fetch "cli2 (net2) to the internet" internet-ok "$(container_fetch cli2 "http://$NET_IP:8000/")"
  expect_fetch "cli to web on docker0" container-web "$(container_fetch cli "http://$WEB_IP:80/")"
}

check_host_reaches_published() {
  local got
  got=$(printf 'GET / HTTP/1.0\r\n\r\n' | ip netns exec "$H" timeout 4 socat -t 2 - \
    "TCP:$HOST_IP:8080,connect-timeout=2" 2>/dev/null | tail -n 1 || true)
  expect_fetch "the host itself to its published port" container-web "$got"
}

check_all_open() {  # no firewall: everything answers
  check_egress
  expect_fetch "I to the published port" container-web "$(peer_fetch "$PEER_IP" 8080)"
  check_host_reaches_published
}

# The published port under a policy: closed, opened by a rule, by allow, from one address.
check_published() {
  expect_no_fetch "I to the published port, no rule" "$(peer_fetch "$PEER_IP" 8080)"
  check_host_reaches_published
  pctl enable docker-web
  assert_rc 0 "enable docker-web"
  expect_fetch "I to the published port after enable docker-web" container-web "$(peer_fetch "$PEER_IP" 8080)"
  pctl disable docker-web
  assert_rc 0 "disable docker-web"
  expect_no_fetch "I to the published port after disable docker-web" "$(peer_fetch "$PEER_IP" 8080)"
  pctl enable docker-web-peer
  assert_rc 0 "enable docker-web-peer"
  expect_fetch "$PEER_IP to the published port (from = $PEER_IP)" container-web "$(peer_fetch "$PEER_IP" 8080)"
  expect_no_fetch "$PEER2_IP to the published port (from = $PEER_IP)" "$(peer_fetch "$PEER2_IP" 8080)"
  pctl disable docker-web-peer
  assert_rc 0 "disable docker-web-peer"
  # A timed rule (there is no command to take one back early): open, then closed again once
  # it expired.
  pctl allow tcp/8080 --for 4s
  assert_rc 0 "allow tcp/8080"
  local timed i got
  timed=$(grep -oE 'timed-[0-9]+' <<<"$OUT" | head -n 1)
  [[ -n "$timed" ]] || fail "allow printed no timed rule name: $OUT"
  expect_fetch "I to the published port after allow tcp/8080" container-web "$(peer_fetch "$PEER2_IP" 8080)"
  for ((i = 0; i < 20; i++)); do
    got=$(peer_fetch "$PEER2_IP" 8080)
    [[ -n "$got" ]] || break
    sleep 0.5
  done
  expect_no_fetch "I to the published port after $timed expired" "$got"
}

# portierctl ports lists the published port beside the native listeners (with
# --userland-proxy=false no socket carries it: the DNAT rule in Docker's ip nat DOCKER is
# what is read), with the verdict from anywhere before and after a rule opens it; explain
# of a packet to it names the deciding rule, the published chain's copy of the input rule.
check_ports_published() {
  local row="^tcp +0\.0\.0\.0 +8080 +${WEB_IP//./\\.}:80 +docker0 +ip nat DOCKER +"
  local shape=(tcp "$PEER_IP:40000" "->" "$HOST_IP:8080" in eth0)
  local dnat="\(published port: DNAT to ${WEB_IP//./\\.}:80 by ip nat DOCKER\)"
  pctl ports
  assert_rc 0 "ports (proxy $PROXY)"
  printf '%s\n' "$OUT" >"$WORKDIR/logs/ports-proxy-$PROXY-closed.txt"
  assert_match "$OUT" "${row}closed\$" "ports: the published port, no rule (proxy $PROXY)"
  pctl explain "${shape[@]}"
  assert_rc 0 "explain to the published port (proxy $PROXY)"
  assert_match "$OUT" "^drop by default input in chain published $dnat\$" "explain, no rule (proxy $PROXY)"
  pctl enable docker-web
  assert_rc 0 "enable docker-web (ports)"
  pctl ports
  printf '%s\n' "$OUT" >"$WORKDIR/logs/ports-proxy-$PROXY-open.txt"
  assert_match "$OUT" "${row}open \(docker-web\)\$" "ports: the published port after enable (proxy $PROXY)"
  pctl explain "${shape[@]}"
  printf '%s\n' "$OUT" >"$WORKDIR/logs/explain-proxy-$PROXY-open.txt"
  assert_match "$OUT" "^accept by rule docker-web \([^)]*\) in chain published $dnat\$" \
    "explain after enable (proxy $PROXY)"
  pctl disable docker-web
  assert_rc 0 "disable docker-web (ports)"
  log "ok: ports lists the published port and explain names its rule (proxy $PROXY)"
}

# A connection from a container that stays open across a reload.
check_established_survives_reload() {
  local token="long-$POLICY_NAME-$PROXY"
  timeout -s KILL 20 docker exec cli sh -c \
    "(echo $token-1; sleep 3; echo $token-2) | timeout 8 nc $NET_IP 9000" >/dev/null 2>&1 &
  local job=$! i
  for ((i = 0; i < 40; i++)); do
    grep -qx "$token-1" "$WORKDIR/long.txt" && break
    sleep 0.1
  done
  grep -qx "$token-1" "$WORKDIR/long.txt" || fail "the long connection's first line did not arrive ($POLICY_NAME)"
  pctl reload
  assert_rc 0 "reload during the long connection"
  wait "$job" || true
  grep -qx "$token-2" "$WORKDIR/long.txt" ||
    fail "a container's established connection did not survive a reload (policy $POLICY_NAME, proxy $PROXY)"
}

check_panic() {
  pctl panic on
  assert_rc 0 "panic on"
  expect_no_fetch "cli to the internet in panic mode" "$(container_fetch cli "http://$NET_IP:8000/")"
  pctl panic off
  assert_rc 0 "panic off"
  expect_fetch "cli to the internet after panic off" internet-ok "$(container_fetch cli "http://$NET_IP:8000/")"
}

check_all_open
log "ok: without portier, egress, container to container and the published port work"

run_policy_checks() {  # NAME FULL(1: also reload, restart, panic)
  POLICY_NAME=$1
  local policy
  policy=$(policy_with_port_rules "$1" 8080 docker-web)
  start_portierd_hostfs "$H" "$policy"
  # status names the stacks it sees: Docker's default bridge and net2's br-<id>.
  pctl status
  assert_rc 0 "status"
  assert_match "$OUT" '^neighbours: docker \(br-[0-9a-f]+, docker0\)$' "status under $1"
  check_egress
  check_published
  # proxy=true here; proxy=false after the dockerd restart below.
  [[ $1 != workstation || $2 != 1 ]] || check_ports_published
  if [[ $2 == 1 ]]; then
    check_established_survives_reload
    check_egress
    stop_portierd
    start_portierd_hostfs "$H" "$policy"
    check_egress
    expect_no_fetch "I to the published port after a portierd restart" "$(peer_fetch "$PEER_IP" 8080)"
    check_panic
  fi
  log "ok: $POLICY_NAME with userland-proxy=$PROXY"
}

for p in "${POLICIES[@]}"; do
  run_policy_checks "$p" 1
  stop_portierd
done

# --- dockerd restarted under portier, now without the userland proxy: no socket listens on
# 8080, the DNAT alone serves the published port.
POLICY_NAME=workstation
policy=$(policy_with_port_rules workstation 8080 docker-web)
start_portierd_hostfs "$H" "$policy"
stop_dockerd
PROXY=false
start_dockerd "$H" false
for ((i = 0; i < 100; i++)); do
  [[ "$(docker inspect -f '{{.State.Running}}' web cli cli2 2>/dev/null | sort -u)" == true ]] && break
  sleep 0.1
done
record_container_pids web cli cli2
# The containers came back in some order: addresses may have moved.
WEB_IP=$(container_ip web)
[[ -n "$WEB_IP" ]] || fail "no address for container web after the dockerd restart"
# dockerd itself holds the port open (to reserve it) in both modes; what differs is the
# docker-proxy that would carry the connections.
[[ -z "$(pgrep -P "$DOCKERD_PID" -x docker-proxy || true)" ]] ||
  fail "a docker-proxy runs with --userland-proxy=false"
check_egress
check_published
check_ports_published
log "ok: a dockerd restart (now userland-proxy=false) under workstation keeps it working"
stop_portierd

for p in "${POLICIES[@]}"; do
  run_policy_checks "$p" 0
  stop_portierd
done

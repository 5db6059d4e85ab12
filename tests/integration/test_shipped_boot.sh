#!/usr/bin/env bash
# Every shipped policy boots as itself with none of its bound units running: portierd runs
# in a cgroup namespace whose tree is empty (a fresh container at boot, portierd first), and
# `portierctl status` says `loaded: policy` (never last-good or fail-closed) and names each
# bound unit as not running. Then, for the server policy, ssh.service "starts" inside that
# container's tree (system.slice/ssh.service, two levels below the container's root and so
# deeper in the real tree): a listener in it on port 22 is reachable from the peer, and one
# in another cgroup is not. That is the bind working where the daemon cannot see the real
# root, which is why it matches a cgroup at every level.
#
# portierd enters its namespaces through a stand-in for `ip netns exec`: nsenter (which
# keeps the cgroup mounts), then into the test's empty cgroup, `unshare -C -m`, and a fresh
# cgroup2 mount over the host's, so that it sees the empty cgroup as the root.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_topology.sh"
require_root_or_skip
require_binaries
require_cmd nsenter unshare
find_cgroup2_root
unshare -C true 2>/dev/null || skip "no cgroup namespaces here (unshare -C)"

make_ns_pair
CONTAINER="portier-test-$TEST_ID-$$/container"
make_cgroup "$CONTAINER"

shim="$WORKDIR/container-bin"
mkdir -p "$shim"
# enter-container NS CMD...: the container's network namespace and cgroup, a cgroup
# namespace rooted there, and a cgroup2 mount that shows it as the root.
cat >"$shim/enter-container" <<SH
#!/bin/sh
set -e
ns=\$1
shift
echo \$\$ >"$CGROUP2_ROOT/$CONTAINER/cgroup.procs"
exec nsenter --net="/run/netns/\$ns" unshare -C -m --propagation private \\
  sh -c 'umount -l "$CGROUP2_ROOT" && mount -t cgroup2 none "$CGROUP2_ROOT" && exec "\$@"' sh "\$@"
SH
cat >"$shim/ip" <<SH
#!/bin/sh
if [ "\$1" = netns ] && [ "\$2" = exec ]; then
  shift 2
  exec "$shim/enter-container" "\$@"
fi
exec $(command -v ip) "\$@"
SH
chmod 755 "$shim/ip" "$shim/enter-container"

# Every shipped policy, the server policy last (it stays loaded for what follows).
policies=()
for policy in "$PORTIER_SOURCE_DIR"/rules/policies/*.toml; do
  [[ $(basename "$policy") == server.toml ]] || policies+=("$policy")
done
policies+=("$PORTIER_SOURCE_DIR/rules/policies/server.toml")
for policy in "${policies[@]}"; do
  name=$(basename "$policy" .toml)
  PATH="$shim:$PATH" start_portierd "$HOST_NS" "$policy"
  root=$(nsenter -t "$PORTIERD_PID" -C cat "/proc/$PORTIERD_PID/cgroup" 2>/dev/null | sed -n "s/^0:://p")
  assert_eq "/" "$root" "portierd's own cgroup as it sees it ($name): the container's root"
  pctl status
  assert_rc 0 "portierctl status with $name"
  assert_match "$OUT" '^loaded: +policy$' "portierctl status after booting $name with no bound unit running"
  binds=$(grep -c '^\[\[bind\]\]' "$policy" || true)
  not_running=$(grep -c ' not running: its ports are closed' <<<"$OUT" || true)
  assert_eq "$(grep -cE '^unit +=|^cgroup +=' "$policy" || true)" "$not_running" \
    "bound units shown as not running by status with $name ($binds binds)"
  log "ok: $name boots as itself ($not_running bound units not running)"
  [[ $name == server ]] && break
  stop_portierd
done

# The server policy is still loaded: ssh.service starts inside the container's tree.
[[ $name == server ]] || fail "no shipped server policy"
make_cgroup "$CONTAINER/system.slice/ssh.service"
make_cgroup "$CONTAINER/system.slice/other.service"
listen_in_cgroup "$HOST_NS" tcp 22 "$CONTAINER/system.slice/ssh.service"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 22 "the container's ssh.service serves port 22"
pctl status
assert_match "$OUT" "bind ssh-owner: ssh.service running \\(cgroup system.slice/ssh.service, id $(stat -c %i "$CGROUP2_ROOT/$CONTAINER/system.slice/ssh.service")\\)" \
  "portierctl status once ssh.service runs in the container"
unlisten "$HOST_NS" tcp 22
listen_in_cgroup "$HOST_NS" tcp 22 "$CONTAINER/system.slice/other.service"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 22 "another unit of the container on port 22"
unlisten "$HOST_NS" tcp 22
stop_portierd

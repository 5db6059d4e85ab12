# A real dockerd (Debian's docker.io) in a test's network namespace, with its own data root,
# exec root, socket and pid file, in a private mount namespace (nothing it mounts is seen
# outside), and a busybox image imported from a tar (no registry is reachable here). Used
# by test_docker.sh and bench/container.sh. Source it after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/lib_docker.sh"
#
# It sets D (dockerd's folder) and exports DOCKER_HOST. The first start_dockerd registers
# cleanup_docker with on_exit (so it runs before the namespaces made earlier go):
# containers away, dockerd stopped, then whatever of ours is left, by pid.

D="$WORKDIR/docker"
mkdir -p "$D"
export DOCKER_HOST="unix://$D/d.sock"
DOCKERD_PID=
_DOCKER_CLEANUP=

# Container init pids as docker reports them, for the cleanup of a failed run.
: >"$WORKDIR/container-pids"

# start_dockerd NS PROXY: dockerd in NS with --userland-proxy=PROXY (true or false); waits
# until it answers.
start_dockerd() {
  local ns=$1 proxy=$2 i
  if [[ -z "$_DOCKER_CLEANUP" ]]; then
    _DOCKER_CLEANUP=1
    on_exit cleanup_docker
  fi
  spawn "dockerd-$proxy" nsenter --net="/run/netns/$ns" unshare -m --propagation private \
    dockerd --data-root "$D/root" --exec-root "$D/exec" -H "$DOCKER_HOST" --pidfile "$D/d.pid" \
    --storage-driver vfs --iptables=true --ip-forward=true --userland-proxy="$proxy" \
    --bridge=docker0
  DOCKERD_PID=$SPAWNED_PID
  for ((i = 0; i < 600; i++)); do
    timeout 5 docker version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || fail "dockerd exited at start (see dockerd-$proxy.log)"
    sleep 0.1
  done
  fail "dockerd did not answer within 60 s"
}

# SIGTERM and wait: it stops its containers and its containerd.
stop_dockerd() {
  [[ -n "$DOCKERD_PID" ]] || return 0
  kill -TERM "$DOCKERD_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$DOCKERD_PID" || true
  DOCKERD_PID=
}

cleanup_docker() {
  if [[ -n "$DOCKERD_PID" ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    local ids
    ids=$(timeout 10 docker ps -aq 2>/dev/null || true)
    [[ -z "$ids" ]] || timeout -s KILL 30 docker rm -f $ids >/dev/null 2>&1 || true
  fi
  stop_dockerd
  local pid
  for pid in $(pgrep -f -- "$D/" || true) $(cat "$WORKDIR/container-pids"); do
    [[ "$pid" != "$$" ]] && kill -KILL "$pid" 2>/dev/null || true
  done
  # The mounts were in dockerd's own mount namespace; any that leaked out still go.
  local mnt
  for mnt in $(awk -v d="$D/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$mnt" 2>/dev/null || true
  done
}

# import_busybox_image NAME ROOTFS APPLET...: a directory ROOTFS with /bin/busybox and links
# for the applets (the caller may add files to it first), imported as image NAME.
import_busybox_image() {
  local name=$1 rootfs=$2 applet
  shift 2
  mkdir -p "$rootfs/bin" "$rootfs/tmp"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for applet in "$@"; do ln -sf busybox "$rootfs/bin/$applet"; done
  tar -C "$rootfs" -c . | timeout 60 docker import - "$name" >/dev/null || fail "docker import failed"
}

# run_container ARGS...: docker run -d ARGS, failing the test if it fails.
run_container() {
  timeout -s KILL 60 docker run -d "$@" >/dev/null || fail "docker run $* failed"
}

# record_container_pids NAME...: remembers their init pids for cleanup_docker.
record_container_pids() {
  local name
  for name in "$@"; do
    docker inspect -f '{{.State.Pid}}' "$name" >>"$WORKDIR/container-pids" 2>/dev/null || true
  done
}

# in_container NAME SECONDS CMD...: runs CMD in a running container, killed after SECONDS.
in_container() {
  local name=$1 seconds=$2
  shift 2
  timeout -s KILL "$((seconds + 5))" docker exec "$name" timeout "$seconds" "$@"
}

# container_ip NAME: its address on the default bridge.
container_ip() { docker inspect -f '{{.NetworkSettings.IPAddress}}' "$1"; }

#!/usr/bin/env bash
# Installs what portier needs to build and test (Debian packages), then configures and builds
# into $BUILD_DIR (default: build). Idempotent: apt-get runs only when something is missing,
# and ninja rebuilds only what changed. Extra cmake arguments can be passed after the script
# name, e.g. `bash tests/setup.sh -DPORTIER_SANITIZE=ON`.
set -euo pipefail
trap 'echo "setup: FAILED (line $LINENO, exit $?); see the messages above" >&2' ERR

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  # the clang build of the suite (Debian 12's clang, 14)
  clang
  # cpack -G DEB: `file` finds the binaries whose debug information goes into -dbgsym
  file
  libnftnl-dev libmnl-dev libtomlplusplus-dev libsdbus-c++-dev libsdbus-c++-bin
  doctest-dev libsystemd-dev
  nftables dbus iproute2 socat procps util-linux
  # /etc/services: policies name ports by service (workstation.toml does)
  netbase
  # systemd-analyze, for the unit check
  systemd
  # the notify-socket listener of the tests and the demo
  python3
  # test_systemd_service: the unit under a real systemd in a container
  systemd-container debootstrap
  # test_router: the port scan from the wan side
  nmap
  # test_runtime_polkit(_agent): a real polkitd (and pkcheck, pkttyagent) deciding for
  # non-root callers; gdbus for the calls those tests make by hand
  polkitd libglib2.0-bin
  # test_docker: a real dockerd (with containerd and runc) in a test namespace, and busybox
  # for the image it imports (no registry) and the test's web servers
  docker.io busybox-static
  # test_podman: podman (rootful; runc comes with docker.io) with its netavark network
  # backend and aardvark-dns
  podman netavark aardvark-dns
  # test_libvirt: libvirtd with its network driver (libvirt-daemon; libvirt-daemon-system
  # would add users and may start a libvirtd, its default network on autostart, in this
  # machine's own namespace), virsh, the dnsmasq it runs for its guests, and a DHCPv6
  # client for the guest (busybox has none)
  libvirt-daemon libvirt-clients dnsmasq-base isc-dhcp-client
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing missing packages: ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: error: need root to install packages (or install them yourself): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD_DIR=${BUILD_DIR:-build}
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  echo "setup: configuring $BUILD_DIR" >&2
  # /usr, as a Debian package installs it (test_systemd_service installs this build).
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_INSTALL_PREFIX=/usr "$@" >/dev/null
elif (($#)); then
  # Re-apply explicitly given options to an existing build directory.
  cmake -S . -B "$BUILD_DIR" "$@" >/dev/null
fi
echo "setup: building $BUILD_DIR" >&2
cmake --build "$BUILD_DIR"

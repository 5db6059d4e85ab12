#!/usr/bin/env bash
# Re-records the kernel replies in the seed corpora of fuzz_netlink, fuzz_sock_diag and
# fuzz_nflog (needs root): in a network namespace of its own, with tests/golden/merged.nft
# loaded, capture_seeds.py asks the kernel and saves each datagram; the nflog seeds are
# packets that a `log group` rule of that namespace logged.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ $(id -u) -ne 0 ]]; then
  echo "capture_seeds: needs root (a network namespace and nf_tables)" >&2
  exit 77
fi
ns=portier-fuzzseed-$$
work=$(mktemp -d)
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT
ip netns add "$ns"
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }
in_ns ip link set lo up
in_ns nft -f tests/golden/merged.nft
in_ns python3 tests/fuzz/capture_seeds.py "$work"
corpus=tests/fuzz/corpus
mkdir -p "$corpus/fuzz_netlink" "$corpus/fuzz_sock_diag" "$corpus/fuzz_nflog"
for f in "$work"/*; do
  case $(basename "$f") in
    sock-diag-*) cp "$f" "$corpus/fuzz_sock_diag/" ;;
    *) cp "$f" "$corpus/fuzz_netlink/" ;;
  esac
done
in_ns python3 tests/fuzz/capture_nflog.py "$corpus/fuzz_nflog"
ls -l "$corpus/fuzz_netlink" "$corpus/fuzz_sock_diag" "$corpus/fuzz_nflog" >&2

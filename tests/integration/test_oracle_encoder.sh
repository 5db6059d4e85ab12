#!/usr/bin/env bash
# The netlink encoder against nft itself: for each built-in ruleset of portier_oracle, what
# NetlinkKernel::apply() loads must list exactly like what `nft -f` loads from
# render_nft_replace() of the same IR, each in its own fresh network namespace. Also: a
# batch the kernel refuses names the rule and leaves the previous table untouched, and
# read_counters()/table_exists() see what the kernel has.
#
# And byte for byte: the batch encode_replace_batch() builds, printed by libmnl, must be
# the batch `nft --debug=mnl -f` prints for the rendering (our extra NLM_F_ACK aside).
#
# Every kernel change happens inside `unshare -n` namespaces that vanish with their
# process; the only thing to clean up is the temporary folder.
set -euo pipefail

TEST_NAME=test_oracle_encoder
PORTIER_SOURCE_DIR=${PORTIER_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
PORTIER_BUILD_DIR=${PORTIER_BUILD_DIR:-$PORTIER_SOURCE_DIR/build}
ORACLE=${PORTIER_ORACLE:-$PORTIER_BUILD_DIR/tests/oracle/portier_oracle}

log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}
skip() {
  if [[ "${PORTIER_REQUIRE_INTEGRATION:-0}" == 1 ]]; then
    fail "cannot run ($*), and PORTIER_REQUIRE_INTEGRATION=1 forbids skipping"
  fi
  log "SKIP: $*"
  exit 77
}

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, nftables)"
for cmd in nft unshare ip; do
  command -v "$cmd" >/dev/null 2>&1 || skip "command '$cmd' not found (run tests/setup.sh)"
done
unshare -n true 2>/dev/null || skip "'unshare -n' does not work here"
[[ -x "$ORACLE" ]] || skip "$ORACLE not built (tests/CMakeLists.txt must add_subdirectory(oracle))"

WORKDIR=$(mktemp -d "/tmp/portier-$TEST_NAME.XXXXXX")
trap 'rm -rf "$WORKDIR"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The batch in libmnl's debug print, colours removed, from BATCH_BEGIN to BATCH_END, with
# sequence numbers made relative to the first and the ack flag (which nft does not ask
# for; the unit tests check it) dropped.
batch_only() {
  sed 's/\x1b\[[0-9;]*m//g; s/| R-A- |/| R--- |/' | awk '
    { line[NR] = $0 }
    /^\| 00016 \| / && !begin { begin = NR - 2 }
    /^\| 00017 \| / && begin { end = NR + 5 }
    END {
      for (i = begin; i <= end; i++) {
        if (line[i] ~ /sequence number/ && match(line[i], /[0-9]+/)) {
          seq = substr(line[i], RSTART, RLENGTH) + 0
          if (first == "") first = seq
          line[i] = sprintf("| %12d | sequence number", seq - first)
        }
        print line[i]
      }
    }'
}

table_of() { [[ $1 == other-table ]] && echo portier-test || echo portier; }

# 1. Both back ends list the same, case by case.
for case in $("$ORACLE" cases); do
  [[ $case == broken ]] && continue
  table=$(table_of "$case")
  "$ORACLE" render "$case" >"$WORKDIR/$case.nft"
  unshare -n sh -c 'nft -f "$1" && nft list table inet "$2"' sh "$WORKDIR/$case.nft" "$table" \
    >"$WORKDIR/$case.cli" 2>&1 || { cat "$WORKDIR/$case.cli" >&2; fail "$case: nft -f refused the rendering"; }
  unshare -n sh -c '"$1" apply "$2" && nft list table inet "$3"' sh "$ORACLE" "$case" "$table" \
    >"$WORKDIR/$case.netlink" 2>&1 || { cat "$WORKDIR/$case.netlink" >&2; fail "$case: NetlinkKernel::apply failed"; }
  if ! diff -u "$WORKDIR/$case.cli" "$WORKDIR/$case.netlink" >&2; then
    fail "$case: 'nft list' differs between nft -f (---) and NetlinkKernel (+++)"
  fi
  log "same listing: $case ($(wc -l <"$WORKDIR/$case.cli") lines)"

  # nft prints its cache requests first; keep BATCH_BEGIN (type 16) .. BATCH_END (type 17).
  # Sequence numbers are compared relative to the batch's first; nft does not ask for acks.
  unshare -n nft --debug=mnl -f "$WORKDIR/$case.nft" >"$WORKDIR/$case.debug" 2>&1 || true
  "$ORACLE" dump "$case" | batch_only >"$WORKDIR/$case.ours"
  batch_only <"$WORKDIR/$case.debug" >"$WORKDIR/$case.theirs"
  grep -q 'message length' "$WORKDIR/$case.theirs" || fail "$case: no batch in nft's debug output"
  if ! diff -u "$WORKDIR/$case.theirs" "$WORKDIR/$case.ours" >"$WORKDIR/$case.bytes.diff"; then
    head -n 60 "$WORKDIR/$case.bytes.diff" >&2
    fail "$case: the netlink batch differs from nft's (---: nft, +++: encode_replace_batch)"
  fi
  log "same bytes: $case ($(grep -c 'message length' "$WORKDIR/$case.ours") messages)"
done

# 2. A refused batch: the error names the rule, the previous table stays as it was, and
# replacing works again afterwards (also replacing a table by a different one).
unshare -n bash -s "$ORACLE" "$WORKDIR" <<'SCRIPT' || fail "refused-batch checks failed"
set -euo pipefail
oracle=$1 dir=$2
if "$oracle" exists portier; then echo "table exists in a fresh namespace" >&2; exit 1; fi
if "$oracle" apply broken 2>"$dir/error1"; then echo "broken ruleset was accepted" >&2; exit 1; fi
if "$oracle" exists portier; then echo "a refused first load left a table behind" >&2; exit 1; fi
"$oracle" apply verdicts
nft list table inet portier >"$dir/before"
if "$oracle" apply broken 2>"$dir/error2"; then echo "broken ruleset was accepted" >&2; exit 1; fi
nft list table inet portier >"$dir/after"
diff -u "$dir/before" "$dir/after" >&2 || { echo "a refused batch changed the table" >&2; exit 1; }
expected='portier_oracle: kernel refused rule "broken" in chain input: No such file or directory'
for f in error1 error2; do
  [[ $(cat "$dir/$f") == "$expected" ]] || { echo "unexpected error text: $(cat "$dir/$f")" >&2; exit 1; }
done
"$oracle" apply basic
"$oracle" apply basic
nft list table inet portier >"$dir/replaced"
"$oracle" render basic | sed 1,2d >"$dir/basic.nft"
unshare -n sh -c 'nft -f "$1" && nft list table inet portier' sh "$dir/basic.nft" >"$dir/basic.cli"
diff -u "$dir/basic.cli" "$dir/replaced" >&2 || { echo "replacing a table did not give the new table" >&2; exit 1; }
SCRIPT
log "refused batch: error names the rule, previous table untouched"

# 3. Counters and table_exists() against real packets on loopback.
unshare -n bash -s "$ORACLE" <<'SCRIPT' >"$WORKDIR/counters" || fail "counter checks failed"
set -euo pipefail
oracle=$1
ip link set lo up
"$oracle" apply counted
"$oracle" exists portier
for i in 1 2 3; do echo hi >/dev/udp/127.0.0.1/9; done
"$oracle" counters portier
SCRIPT
# Three datagrams to the discard port: each 28 header bytes + "hi\n".
expected=$'input\tlo-in\nTOTAL\ninput\t\t0\t0\noutput\tdiscard-out\t3\t93\noutput\tlo-out\t0\t0'
got=$(awk -F'\t' 'NR == 1 { if ($3 >= 3 && $4 > 0) print $1 "\t" $2 "\nTOTAL"; else print "bad: " $0; next } { print }' \
  "$WORKDIR/counters")
[[ $got == "$expected" ]] || { cat "$WORKDIR/counters" >&2; fail "read_counters() gave unexpected counters"; }
log "read_counters: per-rule chain, comment and counter values as the kernel counted"

log "PASS"

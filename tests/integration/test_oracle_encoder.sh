#!/usr/bin/env bash
# The netlink encoder against nft itself: for each built-in ruleset of portier_oracle, what
# NetlinkKernel::apply() loads must list exactly like what `nft -f` loads from
# render_nft_replace() of the same IR, each in its own fresh network namespace. Also: a
# batch the kernel refuses names the rule and leaves the previous table untouched, and
# read_counters()/table_exists() see what the kernel has.
#
# And byte for byte: the batch encode_replace_batch() builds, printed by libmnl, must be
# the batch `nft --debug=mnl -f` prints for the rendering (our extra NLM_F_ACK, and the
# NLM_F_ECHO on rules that returns their handles, aside).
#
# Owned tables (`flags owner`) vanish with the socket that made them, so for those both
# sides list from inside the loading process: `nft -i` includes the rendering and lists,
# NetlinkKernel lists through `portier_oracle apply CASE CMD`. nft 1.0.6 cannot write the
# `persist` flag: that case's rendering lacks it, and its bytes are not compared.
#
# Every kernel change happens inside `unshare -n` namespaces that vanish with their
# process (with a private mount namespace where cgroup2 is mounted on /sys/fs/cgroup, as
# nft expects it for `socket cgroupv2`); the things to clean up are the temporary folder
# and the test's cgroup directories.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ORACLE=${PORTIER_ORACLE:-$PORTIER_BUILD_DIR/tests/oracle/portier_oracle}

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, nftables)"
require_cmd nft unshare ip
unshare -n true 2>/dev/null || skip "'unshare -n' does not work here"
[[ -x "$ORACLE" ]] || skip "$ORACLE not built (tests/CMakeLists.txt must add_subdirectory(oracle))"

# The `cgroup` case matches sockets in portier-oracle.test/leaf of the cgroup2 hierarchy.
CGROUP2=$(findmnt -n -t cgroup2 -o TARGET 2>/dev/null | head -n 1 || true)
CGROUP_DIR=
on_exit '[[ -n $CGROUP_DIR ]] && rmdir "$CGROUP_DIR/leaf" "$CGROUP_DIR"'

# The batch in libmnl's debug print, colours removed, from BATCH_BEGIN to BATCH_END, with
# sequence numbers made relative to the first and the ack and echo flags (which nft does
# not ask for; the unit tests check them) dropped.
batch_only() {
  sed 's/\x1b\[[0-9;]*m//g; s/| R-A[-E] |/| R--- |/' | awk '
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

# A fresh network namespace whose /sys/fs/cgroup is the cgroup2 hierarchy.
netns() {
  unshare -n -m --propagation private sh -c \
    'if [ -n "$0" ]; then mount -t cgroup2 none /sys/fs/cgroup; fi; exec "$@"' "$CGROUP2" "$@"
}

# nft sends flags 0 in the first NEWTABLE (`table inet portier`); for an owned table the
# encoder sends none (see docs/nftables-owner.md): drop that attribute from nft's batch.
without_first_table_flags() {
  awk '
    { line[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) if (line[i] ~ /^\| 02560 \|/) { start = i; break }
      # The message ends at the second separator line: the first closes its header.
      for (i = start; i <= NR && seen < 2; i++) if (line[i] ~ /^-+\t-+$/) seen++
      end = i
      for (i = 1; i <= NR; i++) {
        if (i == start - 1) sub(/0000000040/, "0000000032", line[i])
        if (i > start && i < end && line[i] ~ /^\|00008\|--\|00002\|/) { i++; continue }
        print line[i]
      }
    }'
}

if [[ -n $CGROUP2 ]]; then
  mkdir -p "$CGROUP2/portier-oracle.test/leaf"
  CGROUP_DIR=$CGROUP2/portier-oracle.test
fi

# 1. Both back ends list the same, case by case.
for case in $("$ORACLE" cases); do
  [[ $case == broken || $case == million ]] && continue
  # Until render_nft() prints RuleMaps, section 5 compares the maps case with hand-written text.
  if [[ $case == maps ]] && ! grep -q 'vmap @' <<<"$("$ORACLE" render maps 2>/dev/null)"; then
    log "maps: render_nft() has no RuleMaps yet; compared with tests/oracle/maps.nft below"
    continue
  fi
  if [[ $case == cgroup && -z $CGROUP2 ]]; then
    log "skipped: $case (no cgroup2 hierarchy mounted)"
    continue
  fi
  table=$(table_of "$case")
  netns "$ORACLE" render "$case" >"$WORKDIR/$case.nft"
  owned=0
  [[ $case == owner || $case == persist ]] && owned=1
  if ((owned)); then
    printf 'include "%s"\nlist table inet %s\n' "$WORKDIR/$case.nft" "$table" |
      netns nft -i >"$WORKDIR/$case.cli" 2>&1 || { cat "$WORKDIR/$case.cli" >&2; fail "$case: nft -i refused the rendering"; }
    netns "$ORACLE" apply "$case" "nft list table inet $table" >"$WORKDIR/$case.netlink" 2>&1 ||
      { cat "$WORKDIR/$case.netlink" >&2; fail "$case: NetlinkKernel::apply failed"; }
    # The listing names the owning process.
    sed -i 's/ # progname .*//' "$WORKDIR/$case.cli" "$WORKDIR/$case.netlink"
  else
    netns sh -c 'nft -f "$1" && nft list table inet "$2"' sh "$WORKDIR/$case.nft" "$table" \
      >"$WORKDIR/$case.cli" 2>&1 || { cat "$WORKDIR/$case.cli" >&2; fail "$case: nft -f refused the rendering"; }
    netns sh -c '"$1" apply "$2" && nft list table inet "$3"' sh "$ORACLE" "$case" "$table" \
      >"$WORKDIR/$case.netlink" 2>&1 || { cat "$WORKDIR/$case.netlink" >&2; fail "$case: NetlinkKernel::apply failed"; }
  fi
  if ! diff -u "$WORKDIR/$case.cli" "$WORKDIR/$case.netlink" >&2; then
    fail "$case: 'nft list' differs between nft -f (---) and NetlinkKernel (+++)"
  fi
  log "same listing: $case ($(wc -l <"$WORKDIR/$case.cli") lines)"

  if [[ $case == persist ]]; then
    log "bytes not compared: $case (nft 1.0.6 cannot express the persist flag)"
    continue
  fi
  # nft prints its cache requests first; keep BATCH_BEGIN (type 16) .. BATCH_END (type 17).
  # Sequence numbers are compared relative to the batch's first; nft does not ask for acks.
  netns nft --debug=mnl -f "$WORKDIR/$case.nft" >"$WORKDIR/$case.debug" 2>&1 || true
  netns "$ORACLE" dump "$case" | batch_only >"$WORKDIR/$case.ours"
  if ((owned)); then
    batch_only <"$WORKDIR/$case.debug" | without_first_table_flags >"$WORKDIR/$case.theirs"
  else
    batch_only <"$WORKDIR/$case.debug" >"$WORKDIR/$case.theirs"
  fi
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

# 4. Owned tables (docs/nftables-owner.md): gone with their socket unless persistent; the
# owning socket replaces them again and again; others cannot touch them while it lives; a
# new process adopts an orphaned persistent table; an owned ruleset replaces a plain table.
unshare -n bash -s "$ORACLE" <<'SCRIPT' || fail "owner/persist checks failed"
set -euo pipefail
oracle=$1
expect_fail() { if "$@" 2>/dev/null; then echo "unexpectedly succeeded: $*" >&2; exit 1; fi; }
"$oracle" apply owner,owner,owner "nft list table inet portier >/dev/null"
if "$oracle" exists portier; then echo "an owned table outlived its socket" >&2; exit 1; fi
"$oracle" apply basic
"$oracle" apply owner,persist "nft list table inet portier >/dev/null"
"$oracle" exists portier || { echo "a persistent table died with its socket" >&2; exit 1; }
"$oracle" apply persist,persist \
  "! nft delete table inet portier 2>/dev/null && ! '$oracle' apply basic 2>/dev/null"
"$oracle" exists portier
expect_fail "$oracle" apply basic  # flags 0 on an orphan: EOPNOTSUPP
nft delete table inet portier      # but anyone may delete an orphan
if "$oracle" exists portier; then echo "the orphan was not deleted" >&2; exit 1; fi
SCRIPT
log "owner/persist: owned tables behave as docs/nftables-owner.md says"

# 5. RuleMaps (merged rules), against tests/oracle/maps.nft, the maps case's IR as nft text
# written by hand: the same listing and the same bytes as `nft -f` of it; edit() takes
# an element out and puts it back with its comment and a fresh counter; read_counters()
# reports each element's counter as the kernel counted real packets; a refused map edit
# names the map.
MAPS_NFT=$PORTIER_SOURCE_DIR/tests/oracle/maps.nft
netns sh -c 'nft -f "$1" && nft list table inet portier' sh "$MAPS_NFT" >"$WORKDIR/maps.cli" 2>&1 ||
  { cat "$WORKDIR/maps.cli" >&2; fail "maps: nft -f refused tests/oracle/maps.nft"; }
netns sh -c '"$1" apply maps && nft list table inet portier' sh "$ORACLE" >"$WORKDIR/maps.netlink" 2>&1 ||
  { cat "$WORKDIR/maps.netlink" >&2; fail "maps: NetlinkKernel::apply failed"; }
diff -u "$WORKDIR/maps.cli" "$WORKDIR/maps.netlink" >&2 ||
  fail "maps: 'nft list' differs between nft -f maps.nft (---) and NetlinkKernel (+++)"
log "same listing: maps.nft and the maps case ($(wc -l <"$WORKDIR/maps.cli") lines)"
netns nft --debug=mnl -f "$MAPS_NFT" 2>&1 | batch_only >"$WORKDIR/maps.theirs" || true
"$ORACLE" dump maps | batch_only >"$WORKDIR/maps.ours"
grep -q 'message length' "$WORKDIR/maps.theirs" || fail "maps: no batch in nft's debug output"
diff -u "$WORKDIR/maps.theirs" "$WORKDIR/maps.ours" >&2 ||
  fail "maps: the netlink batch differs from nft's (---: nft, +++: encode_replace_batch)"
log "same bytes: maps.nft and the maps case ($(grep -c 'message length' "$WORKDIR/maps.ours") messages)"

unshare -n bash -s "$ORACLE" "$WORKDIR" <<'SCRIPT' || fail "map edit and element counter checks failed"
set -euo pipefail
oracle=$1 dir=$2
ip link set lo up
"$oracle" apply maps
# output/m4 accepts udp to 127.0.0.2 port 9 (disc2) and drops 127.0.0.3 ports 9-10 (disc3).
for i in 1 2 3; do echo hi >/dev/udp/127.0.0.2/9; done
for i in 1 2; do echo hi >/dev/udp/127.0.0.3/10 2>/dev/null || true; done
"$oracle" counters portier output/m4 input/m3 >"$dir/map-counters"
# Three and two datagrams of 28 header bytes + "hi\n"; rbtree elements come in kernel order.
expected=$'output\tdiscard\t0\t0\noutput/m4\tdisc2\t3\t93\noutput/m4\tdisc3\t2\t62'
got=$(grep -e '^output' "$dir/map-counters")
[[ $got == "$expected" ]] || { cat "$dir/map-counters" >&2; echo "unexpected element counters" >&2; exit 1; }
[[ $(grep -c '^input/m3' "$dir/map-counters") == 5 ]] ||
  { cat "$dir/map-counters" >&2; echo "input/m3 should report its 5 elements" >&2; exit 1; }
grep -q 'comment "disc3"' <<<"$(nft list map inet portier output/m4)" || { echo "disc3 missing" >&2; exit 1; }

# Toggling merged rules: take elements out of a concatenated and an rbtree map, and back.
"$oracle" map-edit remove disc3
"$oracle" map-edit remove ssh
"$oracle" map-edit remove low  # its end boundary shares the key of next-to-low's start
if grep -q disc3 <<<"$(nft list map inet portier output/m4)"; then echo "disc3 not removed" >&2; exit 1; fi
if grep -q -e ssh -e '"low"' <<<"$(nft list map inet portier input/m3)"; then echo "ssh or low not removed" >&2; exit 1; fi
grep -q '6-10 counter packets [0-9]* bytes [0-9]* comment "next-to-low" : accept' <<<"$(nft list map inet portier input/m3)" ||
  { nft list map inet portier input/m3 >&2; echo "removing low changed next-to-low" >&2; exit 1; }
for i in 1 2; do echo hi >/dev/udp/127.0.0.3/10; done  # no longer dropped
"$oracle" map-edit add disc3
"$oracle" map-edit add ssh
"$oracle" map-edit add low
grep -q '127.0.0.3 . 9-10 counter packets 0 bytes 0 comment "disc3" : drop' <<<"$(nft list map inet portier output/m4)" ||
  { nft list map inet portier output/m4 >&2; echo "disc3 not back with its comment and a fresh counter" >&2; exit 1; }
grep -q '22 counter packets 0 bytes 0 comment "ssh" : accept' <<<"$(nft list map inet portier input/m3)" ||
  { nft list map inet portier input/m3 >&2; echo "ssh not back with its comment and a fresh counter" >&2; exit 1; }
echo hi >/dev/udp/127.0.0.3/10 2>/dev/null && { echo "disc3 does not drop again" >&2; exit 1; }
[[ $("$oracle" counters portier output/m4 | grep disc3) == $'output/m4\tdisc3\t1\t31' ]] ||
  { "$oracle" counters portier output/m4 >&2; echo "disc3 did not count its drop" >&2; exit 1; }
# After the round trip the table lists as a fresh load of maps.nft but for the counters.
nft list table inet portier | sed 's/counter packets [0-9]* bytes [0-9]*/counter/g' >"$dir/maps.after"
sed 's/counter packets [0-9]* bytes [0-9]*/counter/g' "$dir/maps.cli" >"$dir/maps.expected"
diff -u "$dir/maps.expected" "$dir/maps.after" >&2 || { echo "the map edits changed more than counters" >&2; exit 1; }

# A refused edit names the map; an unknown map in read_counters() too.
"$oracle" apply basic
if "$oracle" map-edit remove r1 2>"$dir/map-error"; then echo "edit of a missing map succeeded" >&2; exit 1; fi
expected='portier_oracle: kernel refused deletion of elements of map input/m1: No such file or directory'
[[ $(cat "$dir/map-error") == "$expected" ]] || { echo "unexpected error text: $(cat "$dir/map-error")" >&2; exit 1; }
if "$oracle" counters portier input/m1 2>"$dir/map-error"; then echo "counters of a missing map" >&2; exit 1; fi
[[ $(cat "$dir/map-error") == 'portier_oracle: table inet portier has no map input/m1' ]] ||
  { echo "unexpected error text: $(cat "$dir/map-error")" >&2; exit 1; }
SCRIPT
log "maps: edit() removes and restores elements with comment and counter; element counters count packets"

# 6. A refill (a reload over the table portierd loaded: encode_refill_batch) keeps the table
# and its chains, with their handles, and then lists exactly as a first load of the new
# ruleset's rendering by nft -f: rules, sets and maps gone, changed and added. Packets meet
# the new rules; a set that went is gone.
for pair in basic:basic-refilled maps:maps-refilled; do
  loaded=${pair%%:*} next=${pair#*:}
  netns "$ORACLE" render "$next" >"$WORKDIR/$next.nft"
  netns sh -c 'nft -f "$1" && nft list table inet portier' sh "$WORKDIR/$next.nft" \
    >"$WORKDIR/$next.cli" 2>&1 || { cat "$WORKDIR/$next.cli" >&2; fail "$next: nft -f refused the rendering"; }
  netns sh -c '"$1" apply "$2" && nft -a list table inet portier | grep -E "^table|^\s*chain" >"$4.before" &&
      "$1" refill "$2" "$3" && nft -a list table inet portier | grep -E "^table|^\s*chain" >"$4.after-handles" &&
      nft list table inet portier' \
    sh "$ORACLE" "$loaded" "$next" "$WORKDIR/$next" >"$WORKDIR/$next.netlink" 2>&1 ||
    { cat "$WORKDIR/$next.netlink" >&2; fail "$next: NetlinkKernel::refill over $loaded failed"; }
  diff -u "$WORKDIR/$next.before" "$WORKDIR/$next.after-handles" >&2 ||
    fail "$next: the refill over $loaded made the table or a chain anew (handles --- before, +++ after)"
  grep -q "chain input { # handle" "$WORKDIR/$next.before" || fail "$next: no chain handles listed"
  diff -u "$WORKDIR/$next.cli" "$WORKDIR/$next.netlink" >&2 ||
    fail "$next: after the refill over $loaded, 'nft list' differs from nft -f of the rendering (+++: refilled)"
  log "refill $loaded -> $next: table and chains kept, listing as a first load ($(wc -l <"$WORKDIR/$next.cli") lines)"
done
if "$ORACLE" refill basic maps 2>"$WORKDIR/refill-error"; then fail "refill accepted two rulesets of different chains"; fi
assert_contains "$(cat "$WORKDIR/refill-error")" "differ in their chains" "refill of different chains"

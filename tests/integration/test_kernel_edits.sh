#!/usr/bin/env bash
# NetlinkKernel's small changes against the real kernel (portier_oracle edits, see
# tests/oracle/kernel_edits.cpp), each part compared with what nft itself shows:
#  - apply() returns the handle of every rule: the same as `nft -a list` prints;
#  - edit() inserts (at the start, after a handle, two after the same handle in order, after
#    a rule it removes, into another chain) and removes rules in one transaction: `nft list`
#    equals the listing of the equivalent IR loaded with `nft -f` in another namespace;
#    counters of the untouched rules keep their values; the handles it returns are the
#    ones `nft -a list` prints; a refused edit names the object and changes nothing;
#  - edit_set() adds and removes elements (a/32, prefixes, 5000 at once, per-element
#    timeouts in a hash set): `nft list set` equals nft's listing of the expected set;
#  - changed_by_others(): false after our own apply/edit/edit_set, true after `nft add rule`
#    from another process (once), false after a change to another table or a refused one.
# The in-process checks are in kernel_edits.cpp; this script compares the files it writes.
# Then it prints what a plain event subscriber sees, and the timing figures
# (PORTIER_EDIT_SIZES: set sizes to time, default "1000 100000"; "" skips the timing).
#
# Every kernel change happens inside `unshare -n` namespaces that vanish with their
# process; the only thing to clean up is the temporary folder.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ORACLE=${PORTIER_ORACLE:-$PORTIER_BUILD_DIR/tests/oracle/portier_oracle}
SIZES=${PORTIER_EDIT_SIZES-1000 100000}

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, nftables)"
require_cmd nft unshare ip
unshare -n true 2>/dev/null || skip "'unshare -n' does not work here"
[[ -x "$ORACLE" ]] || skip "$ORACLE not built (tests/CMakeLists.txt must add_subdirectory(oracle))"

trap 'exit 143' TERM
D=$WORKDIR

unshare -n "$ORACLE" edits "$D" >&2 || fail "the edit scenario failed (see above)"

# `nft -a list` as "chain comment handle" lines, for rules with a comment.
handles_listed() {
  awk '
    /^\tchain / { chain = $2 }
    /comment ".*" # handle [0-9]+$/ {
      match($0, /comment "[^"]*"/); comment = substr($0, RSTART + 9, RLENGTH - 10)
      print chain, comment, $NF
    }' "$1" | sort
}
# Counter values differ by design between the two sides: compare them apart.
zero_counters() { sed -E 's/packets [0-9]+ bytes [0-9]+/packets 0 bytes 0/' "$1"; }
# What nft lists after loading FILE in a fresh namespace; $2: what to list.
nft_listing() { unshare -n sh -c 'nft -f "$1" && nft list $2' sh "$1" "$2"; }
same() {  # same FILE1 FILE2 WHAT
  diff -u "$1" "$2" >&2 || fail "$3"
}

# 1. apply(): the handles are the kernel's.
sort "$D/apply.handles" >"$D/apply.handles.sorted"
handles_listed "$D/apply.listing" >"$D/apply.handles.listed"
[[ $(wc -l <"$D/apply.handles.sorted") -eq 9 ]] || fail "apply() did not report 9 rules"
same "$D/apply.handles.listed" "$D/apply.handles.sorted" "apply() handles differ from nft -a list (---: nft)"
log "apply: the returned handles are the ones nft -a list prints"

# 2. edit(): the listing is that of the equivalent IR, the returned handles are right,
# and the counters of untouched rules kept their values (3 datagrams before the edit).
nft_listing "$D/edit.expected.nft" "table inet portier" >"$D/edit.cli"
same <(zero_counters "$D/edit.cli") <(zero_counters "$D/edit.listing") \
  "after edit(), nft list differs from nft -f of the expected IR (---: nft -f, +++: edit)"
grep -q 'udp dport 9 counter packets 3 bytes 93 comment "count9"' "$D/edit.listing" ||
  fail "the counter of an untouched input rule did not survive the edit"
grep -q 'udp dport 9 counter packets 3 bytes 93 accept comment "out9"' "$D/edit.listing" ||
  fail "the counter of an untouched output rule did not survive the edit"
sort "$D/edit.handles" >"$D/edit.handles.sorted"
handles_listed "$D/edit.listing-a" | grep -Ff <(awk '{ print $1 " " $2 " " }' "$D/edit.handles") \
  >"$D/edit.handles.listed" || true
same "$D/edit.handles.listed" "$D/edit.handles.sorted" "edit() handles differ from nft -a list (---: nft)"
log "edit: listing as nft -f of the expected IR, handles as nft -a list, counters kept"

expected='kernel refused deletion of rule handle 999999 in chain input: No such file or directory'
[[ $(cat "$D/edit.error") == "$expected" ]] || fail "unexpected edit error: $(cat "$D/edit.error")"
expected='kernel refused rule "nowhere" in chain input: No such file or directory'
[[ $(cat "$D/edit.error2") == "$expected" ]] || fail "unexpected edit error: $(cat "$D/edit.error2")"
same <(zero_counters "$D/edit.listing") <(zero_counters "$D/edit.listing-after-error") \
  "a refused edit changed the table"
log "edit: a refused edit names the object and changes nothing"

# 3. edit_set(): interval set after small edits, with 5000 more, and back again.
nft_listing "$D/set1.expected.nft" "set inet portier block4" >"$D/set1.cli"
same "$D/set1.cli" "$D/set1.listing" "after edit_set(), the interval set differs (---: nft -f)"
nft_listing "$D/set2.expected.nft" "set inet portier block4" >"$D/set2.cli"
same "$D/set2.cli" "$D/set2.listing" "after adding 5000 elements, the set differs (---: nft -f)"
same "$D/set1.listing" "$D/set3.listing" "removing the 5000 elements did not restore the set"
expected='kernel refused deletion of elements of set block4: No such file or directory'
[[ $(cat "$D/set.error") == "$expected" ]] || fail "unexpected set edit error: $(cat "$D/set.error")"
same "$D/set1.listing" "$D/set4.listing" "a refused set edit changed the set"
elements=$(grep -o 'elements = {.*}' "$D/hash.listing" | sed -E 's/ expires [0-9a-z]+//g')
[[ $elements == 'elements = { 2.2.2.2 timeout 1h, 3.3.3.3 timeout 1h }' ||
  $elements == 'elements = { 3.3.3.3 timeout 1h, 2.2.2.2 timeout 1h }' ]] ||
  { cat "$D/hash.listing" >&2; fail "hash set elements with timeouts not as expected"; }
log "edit_set: interval and hash sets list as expected; a refused edit changes nothing"
log "events: own apply/edit/edit_set not reported; nft add rule/flush chain by others reported once"

# 4. For the record: what a plain subscriber sees (nlmsg_pid is the sender's port id).
unshare -n "$ORACLE" watch >&2 || fail "watch failed"

# 5. Timing.
if [[ -n $SIZES ]]; then
  # shellcheck disable=SC2086  # one argument per size
  unshare -n "$ORACLE" time-edits $SIZES >&2 || fail "timing failed"
fi

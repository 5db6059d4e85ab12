#!/usr/bin/env bash
# Every portierctl command against one running portierd: what it prints (human and --json,
# with the keys of docs/portierctl-json.md and their values), its exit codes (0 ok, 1
# failure, 2 usage, 3 portierd or the bus not there), no escape codes off a terminal or
# with NO_COLOR, and the progress line of `set add --file` on a real terminal (script(1)).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_cmd script
require_binaries
unset NO_COLOR

make_ns_pair
LAN_NET="10.200.$TEST_ID.0/24"
POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<TOML
[policy]
input   = "drop"
output  = "accept"
forward = "drop"

[zone.lan]
interfaces = ["veth0"]
networks   = ["$LAN_NET"]

[set.blocklist]
family   = "ipv4"
elements = ["203.0.113.0/24"]
timeout  = "1h"

[[rule]]
name      = "blocked"
from      = "@blocklist"
action    = "drop"

[[rule]]
name      = "ssh-in"
direction = "in"
protocols = "tcp"
ports     = [22]
from      = "lan"
action    = "accept"

[[forward]]
name      = "nas-web"
from      = "lan"
protocols = "tcp"
ports     = [8080]
to        = "$PEER_IP:80"
enabled   = false
TOML
SSH_RULE_LINE=$(grep -n '^name      = "ssh-in"' "$POLICY" | cut -d: -f1)
SSH_RULE_LINE=$((SSH_RULE_LINE - 1))  # the [[rule]] header above it
BLOCKED_RULE_LINE=$(($(grep -n '^name      = "blocked"' "$POLICY" | cut -d: -f1) - 1))

# Every human output of this test, to check for escape codes at the end.
ALL_OUTPUT="$WORKDIR/all-output"
: >"$ALL_OUTPUT"
ctl() {
  pctl "$@"
  printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL_OUTPUT"
}

# json_check EXPR WHAT: OUT is one line of JSON, and the python expression EXPR over it (j)
# is true.
json_check() {
  local expr=$1 what=$2 result
  [[ "$OUT" != *$'\n'* ]] || fail "$what: --json printed more than one line:
$OUT"
  result=$("$PYTHON" -c '
import json, sys
j = json.loads(sys.stdin.read())
print(bool(eval(sys.argv[1])))' "$expr" <<<"$OUT" 2>&1) || fail "$what: not JSON ($result):
$OUT"
  [[ "$result" == True ]] || fail "$what: expected $expr, seen:
$OUT"
}

# json_value EXPR: the python expression over OUT's JSON, printed.
json_value() {
  "$PYTHON" -c 'import json, sys; j = json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1" <<<"$OUT"
}

# on_tty CMD: runs CMD on a pseudo-terminal (stdout and stderr both), output in TTY_OUT
# with the terminal's \r\n turned back into \n; exit status in RC.
on_tty() {
  RC=0
  script -qec "$*" /dev/null >"$WORKDIR/tty-out" 2>&1 </dev/null || RC=$?
  TTY_OUT=$(sed 's/\r$//' "$WORKDIR/tty-out")
}

ok() { log "ok: $*"; }

# --- offline: check, show, version, help ----------------------------------------------
VERSION=$(sed -n 's/^project(portier VERSION \([0-9.]*\).*/\1/p' "$PORTIER_SOURCE_DIR/CMakeLists.txt")
ctl version
assert_rc 0 "portierctl version"
assert_eq "portierctl $VERSION" "$OUT" "portierctl version"
ctl version extra
assert_rc 2 "portierctl version extra"
assert_contains "$ERR" "portierctl version: takes no arguments" "portierctl version extra"

ctl --help
assert_rc 0 "portierctl --help"
assert_contains "$OUT" "usage: portierctl [--no-ask-password] COMMAND [ARGS]" "portierctl --help"
assert_contains "$OUT" "--no-ask-password refuses instead" "portierctl --help says what --no-ask-password does"
for command in status rules enable disable reload apply confirm rollback allow set panic monitor explain ports check show diff version; do
  assert_match "$OUT" "^  $command +[a-z]" "portierctl --help lists $command"
done
[[ "$OUT" != *__complete* ]] || fail "portierctl --help lists the hidden __complete"
ctl set --help
assert_rc 0 "portierctl set --help"
assert_contains "$OUT" "portierctl set add|del SET --file FILE [--timeout DURATION] [--json]" "portierctl set --help"
assert_contains "$OUT" "each call is one kernel transaction" "portierctl set --help"

ctl check "$POLICY"
assert_rc 0 "portierctl check of the test policy"
assert_eq "$POLICY: ok, 2 rules" "$OUT" "portierctl check of the test policy"
BAD="$WORKDIR/bad.toml"
printf '[policy]\ninput  = "dorp"\n' >"$BAD"
ctl check "$BAD"
assert_rc 1 "portierctl check of a bad policy"
assert_contains "$ERR" "$BAD:2:10: error: unknown action 'dorp' for 'input' (did you mean 'drop'?)" "portierctl check of a bad policy"
[[ -z "$OUT" ]] || fail "portierctl check of a bad policy printed to stdout: $OUT"
ctl check
assert_rc 2 "portierctl check without a file"
ctl show --policy "$POLICY"
assert_rc 0 "portierctl show --policy"
assert_contains "$OUT" "table inet portier {" "portierctl show --policy"
assert_match "$OUT" 'tcp dport 22 .*comment "ssh-in"' "portierctl show --policy: the ssh-in rule"
ctl show "$POLICY"
assert_rc 2 "portierctl show without --policy"
ok "version, --help, check, show"

# --- status -----------------------------------------------------------------------------
start_portierd "$HOST_NS" "$POLICY"
listen "$HOST_NS" tcp 22
ctl status
assert_rc 0 "portierctl status"
[[ -z "$ERR" ]] || fail "portierctl status wrote to stderr: $ERR"
assert_eq "portierd $VERSION: running" "$(head -n1 <<<"$OUT")" "portierctl status, first line"
assert_contains "$OUT" "policy:     $POLICY" "portierctl status"
assert_contains "$OUT" "table:      inet portier" "portierctl status"
assert_contains "$OUT" "rules:      3 (2 enabled, 0 timed)" "portierctl status (2 rules and a disabled forward)"
assert_contains "$OUT" "mode:       normal" "portierctl status"
assert_contains "$OUT" "loaded:     policy" "portierctl status"
assert_match "$OUT" '^generation: [0-9]+$' "portierctl status"
assert_match "$OUT" "^applied:    $(date +%Y-%m-%d) " "portierctl status: applied today"
assert_no_match "$OUT" '^confirm by:' "portierctl status with nothing pending"
ctl
assert_rc 0 "portierctl without a command"
assert_eq "portierd $VERSION: running" "$(head -n1 <<<"$OUT")" "portierctl without a command is status"

ctl status --json
assert_rc 0 "portierctl status --json"
NOW_USEC=$(($(date +%s) * 1000000))
json_check "j['version'] == '$VERSION' and j['policy_path'] == '$POLICY' and j['table'] == 'portier'" "status --json"
json_check "j['mode'] == 'normal' and j['loaded_from'] == 'policy' and 'confirm_deadline_usec' not in j" "status --json"
json_check "j['rules'] == 3 and j['rules_enabled'] == 2 and j['timed_rules'] == 0" "status --json counts"
json_check "type(j['generation']) is int and j['generation'] >= 1" "status --json generation"
json_check "abs(j['last_applied_usec'] - $NOW_USEC) < 120 * 10**6" "status --json last_applied_usec is now"
GENERATION=$(json_value "j['generation']")
ctl status --bogus
assert_rc 2 "portierctl status --bogus"
assert_contains "$ERR" "portierctl status: takes only --json" "portierctl status --bogus"
ok "status, human and JSON"

# --- rules ------------------------------------------------------------------------------
ctl rules
assert_rc 0 "portierctl rules"
assert_match "$(head -n1 <<<"$OUT")" '^NAME +STATE +DIRECTION +ACTION +PACKETS +BYTES +MATCH$' "portierctl rules header"
assert_match "$OUT" '^blocked +enabled +in +drop +[0-9]+ +[0-9]+ +any from @blocklist$' "portierctl rules: blocked"
assert_match "$OUT" '^ssh-in +enabled +in +accept +[0-9]+ +[0-9]+ +tcp 22 from lan$' "portierctl rules: ssh-in"
assert_match "$OUT" "^nas-web +disabled +forward +dnat +0 +0 +tcp 8080 from lan to $PEER_IP:80\$" "portierctl rules: nas-web"
assert_eq 4 "$(wc -l <<<"$OUT")" "portierctl rules: header and three rows"
assert_eq "blocked ssh-in nas-web" "$(awk 'NR > 1 { printf "%s%s", sep, $1; sep = " " }' <<<"$OUT")" "portierctl rules: policy order"
ctl rules --json
assert_rc 0 "portierctl rules --json"
json_check "[r['name'] for r in j] == ['blocked', 'ssh-in', 'nas-web']" "rules --json order"
json_check "all(set(r) >= {'name', 'enabled', 'direction', 'action', 'match', 'packets', 'bytes'} for r in j)" "rules --json keys"
json_check "j[1] == dict(j[1], enabled=True, direction='in', action='accept', match='tcp 22 from lan')" "rules --json ssh-in"
json_check "j[2]['enabled'] is False and j[2]['action'] == 'dnat' and j[2]['packets'] == 0 and j[2]['bytes'] == 0" "rules --json nas-web"
json_check "all(type(r['packets']) is int and type(r['bytes']) is int for r in j)" "rules --json counters are numbers"
ctl rules --exact --json
assert_rc 0 "portierctl rules --exact --json"
ctl rules extra
assert_rc 2 "portierctl rules extra"
ok "rules, human and JSON"

# --- enable / disable ---------------------------------------------------------------------
ctl disable ssh-in
assert_rc 0 "portierctl disable ssh-in"
assert_eq "ssh-in disabled (at run time; the policy file is unchanged)" "$OUT" "portierctl disable ssh-in"
ctl rules --json
json_check "j[1]['name'] == 'ssh-in' and j[1]['enabled'] is False" "rules --json after disable"
# show without --policy: what portierd has loaded, the runtime toggle included.
ctl show
assert_rc 0 "portierctl show (the loaded ruleset)"
assert_contains "$OUT" "table inet portier {" "portierctl show"
assert_contains "$OUT" 'comment "blocked"' "portierctl show: the blocked rule is loaded"
[[ "$OUT" != *'comment "ssh-in"'* ]] || fail "portierctl show still shows ssh-in after it was disabled: $OUT"
ctl enable ssh-in
assert_rc 0 "portierctl enable ssh-in"
assert_eq "ssh-in enabled (at run time; the policy file is unchanged)" "$OUT" "portierctl enable ssh-in"
ctl show
assert_match "$OUT" 'tcp dport 22 .*comment "ssh-in"' "portierctl show after ssh-in was enabled again"
ctl rules --json
json_check "j[1]['enabled'] is True" "rules --json after enable"
ctl disable nas-web --permanent
assert_rc 0 "portierctl disable nas-web --permanent"
assert_eq "nas-web disabled (in the policy file too)" "$OUT" "portierctl disable --permanent"
ctl enable nosuch
assert_rc 1 "portierctl enable of an unknown rule"
assert_eq "portierctl: no rule or forward named 'nosuch' in the policy" "$ERR" "portierctl enable nosuch"
ctl enable
assert_rc 2 "portierctl enable without a name"
ctl disable ssh-in blocked
assert_rc 2 "portierctl disable with two names"
ctl enable ssh-in --forever
assert_rc 2 "portierctl enable --forever"
assert_contains "$ERR" "portierctl enable: unknown option '--forever'" "portierctl enable --forever"
ok "enable and disable"

# --- reload -----------------------------------------------------------------------------
ctl reload
assert_rc 0 "portierctl reload"
RELOAD_OUT=$OUT
ctl status --json
GENERATION=$(json_value "j['generation']")
assert_eq "policy $POLICY reloaded (generation $GENERATION)" "$RELOAD_OUT" "portierctl reload"
cp "$POLICY" "$WORKDIR/policy.good"
printf '\n[[rule]]\nname = "broken"\naction = "sideways"\n' >>"$POLICY"
ctl reload
assert_rc 1 "portierctl reload of a broken policy file"
assert_contains "$ERR" "$POLICY:" "portierctl reload of a broken policy names the file"
assert_contains "$ERR" "sideways" "portierctl reload of a broken policy names the mistake"
cp "$WORKDIR/policy.good" "$POLICY"
ctl status --json
json_check "j['generation'] == $GENERATION" "the broken reload changed nothing"
ctl reload now
assert_rc 2 "portierctl reload now"
ok "reload"

# --- allow --------------------------------------------------------------------------------
ctl allow tcp/8080 --from lan --for 30m
assert_rc 0 "portierctl allow"
assert_match "$OUT" '^timed-[0-9]+ added: it removes itself in 1800 s$' "portierctl allow"
TIMED=${OUT%% *}
ctl rules --json
json_check "[r for r in j if r['name'] == '$TIMED'][0]['direction'] == 'in'" "rules --json has the timed rule"
assert_match "$(json_value "[r['match'] for r in j if r['name'] == '$TIMED'][0]")" '^tcp 8080 from lan for 1[78][0-9][0-9]s$' "the timed rule's match"
ctl status --json
json_check "j['timed_rules'] == 1 and j['rules'] == 4" "status --json counts the timed rule"
ctl allow tcp/8080
assert_rc 2 "portierctl allow without --for"
assert_contains "$ERR" "needs --for DURATION" "portierctl allow without --for"
ctl allow tcp/8080 --for soon
assert_rc 2 "portierctl allow --for soon"
ctl allow tcp/8080 --from nowhere --for 1m
assert_rc 1 "portierctl allow from an unknown zone"
ok "allow"

# --- set add / del / list -----------------------------------------------------------------
ctl set add blocklist 198.51.100.7
assert_rc 0 "portierctl set add"
assert_eq "added 1 element to set blocklist" "$OUT" "portierctl set add"
ctl set list blocklist
assert_rc 0 "portierctl set list"
assert_eq $'203.0.113.0/24\n198.51.100.7' "$OUT" "portierctl set list"
ctl set list blocklist --json
assert_rc 0 "portierctl set list --json"
json_check "j == ['203.0.113.0/24', '198.51.100.7']" "set list --json"
ctl set del blocklist 198.51.100.7 --json
assert_rc 0 "portierctl set del --json"
json_check "j == {'set': 'blocklist', 'action': 'del', 'elements': 1, 'calls': 1}" "set del --json"
ctl set add blocklist 198.51.100.8 198.51.100.9 --timeout 10m
assert_rc 0 "portierctl set add two with --timeout"
assert_eq "added 2 elements to set blocklist" "$OUT" "portierctl set add two"
ctl set del blocklist 198.51.100.8 198.51.100.9
assert_eq "removed 2 elements from set blocklist" "$OUT" "portierctl set del two"
ctl set add nosuch 192.0.2.1
assert_rc 1 "portierctl set add to an unknown set"
assert_eq "portierctl: no set named 'nosuch' in the policy" "$ERR" "portierctl set add nosuch"
ctl set add blocklist 2001:db8::1
assert_rc 1 "portierctl set add of an ipv6 address to an ipv4 set"
assert_eq "portierctl: '2001:db8::1' is not an element of set 'blocklist' (ipv4)" "$ERR" "set add ipv6 to ipv4"
for usage in "set" "set add" "set add blocklist" "set swap blocklist 192.0.2.1" "set list blocklist extra" \
  "set del blocklist 192.0.2.1 --timeout 1m" "set add blocklist 192.0.2.1 --bogus" "set add blocklist --timeout" \
  "set add blocklist --file"; do
  # shellcheck disable=SC2086
  ctl $usage
  assert_rc 2 "portierctl $usage"
done

# --file: small, with --timeout, from stdin, bad lines, the wrong family.
SMALL="$WORKDIR/small.txt"
printf '# three addresses\n10.9.0.1\n\n  10.9.0.2   # the second\n10.9.0.0/30\n' >"$SMALL"
ctl set add blocklist --file "$SMALL" --timeout 5m
assert_rc 0 "portierctl set add --file --timeout"
assert_eq "added 3 elements to set blocklist" "$OUT" "portierctl set add --file"
[[ -z "$ERR" ]] || fail "portierctl set add --file off a terminal wrote to stderr: $ERR"
assert_match "$(nft_table "$HOST_NS")" '10\.9\.0\.1 timeout 5m' "the kernel's blocklist after set add --file --timeout 5m"
ctl set del blocklist --file - <"$SMALL"
assert_rc 0 "portierctl set del --file -"
assert_eq "removed 3 elements from set blocklist" "$OUT" "portierctl set del --file -"
ctl set add blocklist - < <(printf '10.9.1.1\n10.9.1.2\n')
assert_rc 0 "portierctl set add - (stdin)"
assert_eq "added 2 elements to set blocklist" "$OUT" "portierctl set add -"
ctl set list blocklist
BEFORE=$OUT
BADLINES="$WORKDIR/badlines.txt"
printf '10.9.2.1\n10.9.2.2\n10.9.2.300\n  2001:db8::2\n' >"$BADLINES"
ctl set add blocklist --file "$BADLINES"
assert_rc 2 "portierctl set add --file with bad lines"
assert_contains "$ERR" "$BADLINES:3:1: error: '10.9.2.300' is not an address, a network or a port" "set add --file bad line"
assert_contains "$ERR" "$BADLINES:4:3: error: '2001:db8::2' is an ipv6 address, but line 1 holds an ipv4 address: a set holds one family" "set add --file mixed families"
assert_contains "$ERR" "portierctl set: nothing was sent: $BADLINES has bad lines" "set add --file bad lines"
ctl set list blocklist
assert_eq "$BEFORE" "$OUT" "the blocklist after a --file with bad lines (nothing sent)"
V6="$WORKDIR/v6.txt"
printf '# ipv6, for an ipv4 set\n2001:db8::1\n2001:db8::2\n' >"$V6"
ctl set add blocklist --file "$V6"
assert_rc 2 "portierctl set add --file of the wrong family (portierd's GetStatus names each set's family)"
assert_contains "$ERR" "$V6:2:1: error: '2001:db8::1' is an ipv6 address, but set 'blocklist' holds ipv4 addresses" "set add --file of the wrong family"
assert_contains "$ERR" "portierctl set: nothing was sent: $V6 holds elements of another family" "set add --file of the wrong family"
ctl set list blocklist
assert_eq "$BEFORE" "$OUT" "the blocklist after a --file of the wrong family (nothing sent)"
# A refusal by portierd itself (here: no such set) names the call and its lines.
ctl set add nosuchset --file "$V6"
assert_rc 1 "portierctl set add --file into a set the policy does not have"
assert_contains "$ERR" "portierctl set: call 1 of 1 (lines 2-3 of $V6) failed" "set add --file refused by portierd"
assert_contains "$ERR" "no set named 'nosuchset'" "set add --file refused by portierd"
ctl set add blocklist --file "$WORKDIR/missing.txt"
assert_rc 1 "portierctl set add --file of a missing file"
assert_eq "portierctl set: cannot read $WORKDIR/missing.txt" "$ERR" "set add --file missing"
printf '# nothing\n\n' >"$WORKDIR/empty.txt"
ctl set add blocklist --file "$WORKDIR/empty.txt"
assert_rc 2 "portierctl set add --file of a file without elements"
ctl set add blocklist 10.9.3.1 --file "$SMALL"
assert_rc 2 "portierctl set add ELEMENT --file"
ok "set add, del, list, --file small"

# --file big: 120,000 elements, three calls; progress on a terminal only.
BIG="$WORKDIR/big.txt"
"$PYTHON" -c '
for i in range(120000):
    print("10.%d.%d.%d" % (100 + i // 65536, i // 256 % 256, i % 256))' >"$BIG"
on_tty "$PORTIERCTL set add blocklist --file $BIG"
assert_rc 0 "portierctl set add --file (120k) on a terminal"
for step in "0 of 120k elements added (0%)" "50k of 120k elements added (41%)" \
  "100k of 120k elements added (83%)" "120k of 120k elements added (100%)"; do
  grep -qF -- $'\r'"blocklist: $step" "$WORKDIR/tty-out" ||
    fail "portierctl set add --file on a terminal: no progress line '\\rblocklist: $step' in:
$(od -c "$WORKDIR/tty-out" | head -40)"
done
assert_eq "added 120000 elements to set blocklist" "$(tail -n1 <<<"$TTY_OUT" | sed 's/.*\r//')" "the summary after the progress"
ctl set list blocklist --json
json_check "len(j) == 1 + 2 + 120000 and '10.101.212.191' in j" "set list --json after adding 120k"
ctl set del blocklist --file "$BIG" --json
assert_rc 0 "portierctl set del --file (120k) --json"
json_check "j == {'set': 'blocklist', 'action': 'del', 'elements': 120000, 'calls': 3}" "set del --file --json"
[[ -z "$ERR" ]] || fail "portierctl set del --file off a terminal wrote to stderr: $ERR"
ctl set add blocklist --file "$BIG"
assert_rc 0 "portierctl set add --file (120k) off a terminal"
assert_eq "added 120000 elements to set blocklist" "$OUT" "set add --file off a terminal"
[[ -z "$ERR" ]] || fail "portierctl set add --file off a terminal showed progress: $ERR"
on_tty "$PORTIERCTL set del blocklist --file $BIG --json"
assert_rc 0 "portierctl set del --file --json on a terminal"
[[ "$TTY_OUT" != *"elements removed ("* ]] || fail "portierctl set del --json on a terminal showed progress: $TTY_OUT"
assert_eq '{"set":"blocklist","action":"del","elements":120000,"calls":3}' "$TTY_OUT" "set del --json on a terminal"
ctl set list blocklist
assert_eq "$BEFORE" "$OUT" "the blocklist after adding and removing the big file"
ok "set --file of 120k elements: progress lines on a terminal, none off it or with --json"

# --- explain --------------------------------------------------------------------------------
ctl explain tcp "$PEER_IP:40000" '->' 22 in lan
assert_rc 0 "portierctl explain"
assert_eq "accept by rule ssh-in ($POLICY:$SSH_RULE_LINE:1) in chain input_lan" "$OUT" "portierctl explain of ssh from lan"
ctl explain tcp 203.0.113.9:40000 '->' 22 in lan --verbose
assert_rc 0 "portierctl explain --verbose"
assert_eq "drop by rule blocked ($POLICY:$BLOCKED_RULE_LINE:1) in chain input_lan" "$(head -n1 <<<"$OUT")" "portierctl explain from the blocklist"
assert_eq '  input: iifname vmap { "veth0" : goto input_lan }
  input_lan: ip saddr @blocklist counter drop comment "blocked"' "$(tail -n +2 <<<"$OUT")" "portierctl explain --verbose trace"
ctl explain tcp "$PEER_IP:40000" '->' 22 in lan --json
assert_rc 0 "portierctl explain --json"
json_check "j['verdict'] == 'accept' and j['decided_by'] == 'ssh-in' and j['chain'] == 'input_lan'" "explain --json"
json_check "j['where'] == '$POLICY:$SSH_RULE_LINE:1' and type(j['trace']) is list and 'ssh-in' in j['trace'][-1]" "explain --json where and trace"
ctl explain udp "$PEER_IP:40000" '->' 53 in lan --json
json_check "j['verdict'] == 'drop' and j['decided_by'] == 'default input from lan' and j['where'] == ''" "explain --json of a default"
ctl explain tcp "$PEER_IP:40000" '->' 22 in lan --policy "$POLICY"
assert_rc 0 "portierctl explain --policy"
assert_eq "accept by rule ssh-in ($POLICY:$SSH_RULE_LINE:1) in chain input_lan" "$OUT" "explain offline says what portierd says"
ctl explain bogus
assert_rc 2 "portierctl explain of a shape portierd cannot read"
assert_contains "$ERR" "portierctl explain: unknown protocol 'bogus'" "portierctl explain bogus"
ctl explain bogus --policy "$POLICY"
assert_rc 2 "portierctl explain --policy of a bad shape"
ctl explain
assert_rc 2 "portierctl explain without a shape"
ok "explain"

# --- ports --------------------------------------------------------------------------------
LISTENER_PID=${_LISTENERS[$HOST_NS-tcp-22]}
ctl ports
assert_rc 0 "portierctl ports"
assert_match "$(head -n1 <<<"$OUT")" '^PROTO +ADDRESS +PORT +PROCESS +USER +UNIT +LAN +ANYWHERE$' "portierctl ports header"
assert_match "$OUT" "^tcp +0\\.0\\.0\\.0 +22 +socat\\[$LISTENER_PID\\] +root +- +open \\(ssh-in\\) +closed\$" "portierctl ports: the ssh listener"
ctl ports --json
assert_rc 0 "portierctl ports --json"
json_check "len([p for p in j if p['port'] == 22]) == 1" "ports --json has port 22"
PORT22="[p for p in j if p['port'] == 22][0]"
json_check "set($PORT22) >= {'protocol', 'family', 'address', 'port', 'scope', 'pid', 'process', 'uid', 'user', 'unit', 'cgroup', 'zones', 'warnings'}" "ports --json keys"
json_check "$PORT22 == dict($PORT22, protocol='tcp', family='ipv4', address='0.0.0.0', scope='wildcard', pid=$LISTENER_PID, process='socat', uid=0, user='root', warnings=[])" "ports --json values"
json_check "$PORT22['zones'] == [{'zone': 'lan', 'open': True, 'decided_by': 'ssh-in'}, {'zone': 'anywhere', 'open': False, 'decided_by': 'chain policy'}]" "ports --json zones"
ctl ports --all
assert_rc 2 "portierctl ports --all"
ok "ports"

# --- diff, apply, confirm, rollback --------------------------------------------------------
NEW="$WORKDIR/new.toml"
sed -e '/^\[\[rule\]\]$/,$d' "$POLICY" >"$NEW"
cat >>"$NEW" <<TOML
[[rule]]
name      = "ssh-in"
direction = "in"
protocols = "tcp"
ports     = [22, 2222]
from      = "lan"
action    = "accept"

[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[forward]]
name      = "nas-web"
from      = "lan"
protocols = "tcp"
ports     = [8080]
to        = "$PEER_IP:80"
enabled   = false
TOML
ctl check "$NEW"
assert_rc 0 "portierctl check of the new policy"
ctl diff "$NEW"
assert_rc 0 "portierctl diff"
assert_eq "- rule blocked: in drop any from @blocklist
~ rule ssh-in: in accept tcp 22 from lan -> in accept tcp 22,2222 from lan
+ rule web-in: in accept tcp 8080" "$OUT" "portierctl diff"
ctl diff "$NEW" --json
assert_rc 0 "portierctl diff --json"
json_check "j == [{'change': 'removed', 'kind': 'rule', 'name': 'blocked', 'detail': 'in drop any from @blocklist'}, {'change': 'changed', 'kind': 'rule', 'name': 'ssh-in', 'detail': 'in accept tcp 22 from lan -> in accept tcp 22,2222 from lan'}, {'change': 'added', 'kind': 'rule', 'name': 'web-in', 'detail': 'in accept tcp 8080'}]" "diff --json"
ctl diff "$NEW" --nft
assert_rc 0 "portierctl diff --nft"
assert_contains "$OUT" "--- active" "portierctl diff --nft"
assert_contains "$OUT" "+++ proposed" "portierctl diff --nft"
assert_match "$OUT" '^\+.*tcp dport 8080 .*comment "web-in"' "portierctl diff --nft adds web-in"
ctl diff "$POLICY" --json
json_check "j == []" "diff --json of the loaded policy"
ctl diff "$POLICY"
assert_eq "no rule or forward changes" "$OUT" "portierctl diff of the loaded policy"
ctl diff "$BAD"
assert_rc 1 "portierctl diff of a bad policy"
ctl diff
assert_rc 2 "portierctl diff without a file"

ctl status --json
GENERATION=$(json_value "j['generation']")
ctl apply "$NEW" --confirm 60
assert_rc 0 "portierctl apply --confirm"
assert_eq "$NEW applied (generation $((GENERATION + 1))). Run \`portierctl confirm\` within 60 s to keep it;
otherwise portierd goes back to the previous policy by itself." "$OUT" "portierctl apply --confirm"
ctl status
assert_contains "$OUT" "mode:       pending-confirm" "portierctl status while a confirm is pending"
assert_match "$OUT" '^confirm by: [0-9-]+ [0-9:]+ [A-Z]+ \(or it rolls back\)$' "portierctl status while a confirm is pending"
ctl status --json
NOW_USEC=$(($(date +%s) * 1000000))
json_check "j['mode'] == 'pending-confirm' and 50 * 10**6 < j['confirm_deadline_usec'] - $NOW_USEC <= 61 * 10**6" "status --json confirm_deadline_usec"
ctl rollback
assert_rc 0 "portierctl rollback"
assert_eq "rolled back (generation $((GENERATION + 2)))" "$OUT" "portierctl rollback"
ctl rules --json
json_check "'web-in' not in [r['name'] for r in j] and 'blocked' in [r['name'] for r in j]" "rules after the rollback"
ctl status --json
json_check "j['mode'] == 'normal' and 'confirm_deadline_usec' not in j" "status --json after the rollback"
ctl apply "$NEW" --confirm 60
assert_rc 0 "portierctl apply --confirm, again"
ctl confirm
assert_rc 0 "portierctl confirm"
assert_eq "confirmed: the applied policy stays and is installed as the policy" "$OUT" "portierctl confirm"
ctl rules --json
json_check "[r['name'] for r in j if not r['name'].startswith('timed-')] == ['ssh-in', 'web-in', 'nas-web']" "rules after confirm"
ctl diff "$NEW"
assert_eq "no rule or forward changes" "$OUT" "portierctl diff after confirm"
ctl confirm
assert_rc 1 "portierctl confirm with nothing pending"
assert_eq "portierctl: no apply is waiting for confirmation" "$ERR" "portierctl confirm with nothing pending"
ctl apply "$WORKDIR/missing.toml"
assert_rc 1 "portierctl apply of a missing file"
assert_eq "portierctl apply: cannot find $WORKDIR/missing.toml" "$ERR" "portierctl apply missing"
ctl apply "$BAD"
assert_rc 1 "portierctl apply of a bad policy"
assert_contains "$ERR" "unknown action 'dorp'" "portierctl apply of a bad policy"
ctl apply "$NEW" --confirm 0
assert_rc 2 "portierctl apply --confirm 0"
ctl apply
assert_rc 2 "portierctl apply without a file"
ctl confirm now
assert_rc 2 "portierctl confirm now"
ctl rollback now
assert_rc 2 "portierctl rollback now"
ok "diff, apply, confirm, rollback"

# --- panic ----------------------------------------------------------------------------------
ctl panic on
assert_rc 0 "portierctl panic on"
assert_eq "panic mode on: everything but loopback is dropped" "$OUT" "portierctl panic on"
ctl status --json
json_check "j['mode'] == 'panic'" "status --json in panic mode"
ctl panic on --keep-established
assert_eq "panic mode on: everything but loopback and existing connections is dropped" "$OUT" "portierctl panic on --keep-established"
ctl panic off
assert_rc 0 "portierctl panic off"
assert_eq "panic mode off: the policy is back" "$OUT" "portierctl panic off"
ctl status --json
json_check "j['mode'] == 'normal'" "status --json after panic off"
for usage in "panic" "panic sideways" "panic off --keep-established" "panic on --later" "panic on off extra"; do
  # shellcheck disable=SC2086
  ctl $usage
  assert_rc 2 "portierctl $usage"
done
ok "panic"

# --- monitor ------------------------------------------------------------------------------
# Human, ended by SIGINT (exit 0), and --json, ended by SIGTERM.
timeout -s INT --preserve-status 20 env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$PORTIERCTL" monitor \
  >"$WORKDIR/monitor.out" 2>"$WORKDIR/monitor.err" &
MONITOR_PID=$!
on_exit "kill $MONITOR_PID"
spawn monitor-json env DBUS_SYSTEM_BUS_ADDRESS="$BUS_ADDRESS" "$PORTIERCTL" monitor --json
MONITOR_JSON_PID=$SPAWNED_PID
for ((i = 0; i < 100; i++)); do
  grep -q monitoring "$WORKDIR/monitor.out" && grep -q monitoring "$WORKDIR/logs/monitor-json.log" && break
  sleep 0.1
done
ctl status --json
GENERATION=$(json_value "j['generation']")
ctl disable web-in
assert_rc 0 "portierctl disable web-in (for monitor)"
for ((i = 0; i < 100; i++)); do
  grep -q 'rule web-in disabled' "$WORKDIR/monitor.out" && grep -q '(toggle)' "$WORKDIR/monitor.out" &&
    grep -q rule-changed "$WORKDIR/logs/monitor-json.log" && grep -q '"toggle"' "$WORKDIR/logs/monitor-json.log" && break
  sleep 0.1
done
kill -INT "$MONITOR_PID"
MONITOR_RC=0
wait "$MONITOR_PID" || MONITOR_RC=$?
assert_eq 0 "$MONITOR_RC" "portierctl monitor's exit status on SIGINT"
MONITOR_OUT=$(cat "$WORKDIR/monitor.out")
cat "$WORKDIR/monitor.out" "$WORKDIR/monitor.err" >>"$ALL_OUTPUT"
assert_match "$MONITOR_OUT" "^[0-2][0-9]:[0-5][0-9]:[0-5][0-9] monitoring portierd: generation $GENERATION, mode normal, $POLICY\$" "portierctl monitor's first line"
assert_match "$MONITOR_OUT" '^[0-9:]{8} rule web-in disabled$' "portierctl monitor: the toggle"
assert_match "$MONITOR_OUT" "^[0-9:]{8} applied generation $((GENERATION + 1)) \\(toggle\\)\$" "portierctl monitor: the ruleset change"
stop_pid "$MONITOR_JSON_PID" || fail "portierctl monitor --json exited $? on SIGTERM, expected 0"
OUT=$(cat "$WORKDIR/logs/monitor-json.log")
cat >"$WORKDIR/check_monitor.py" <<'EOF'
import json, re, sys
generation, policy = int(sys.argv[1]), sys.argv[2]
lines = [json.loads(line) for line in sys.stdin.read().splitlines()]
for line in lines:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
first = lines[0]
assert first == dict(first, event="monitoring", generation=generation, mode="normal", policy_path=policy), first
assert any(l["event"] == "rule-changed" and l["rule"] == "web-in" and l["enabled"] is False for l in lines), lines
assert any(l["event"] == "applied" and l["generation"] == generation + 1 and l["reason"] == "toggle" for l in lines), lines
EOF
"$PYTHON" "$WORKDIR/check_monitor.py" "$GENERATION" "$POLICY" <<<"$OUT" || fail "portierctl monitor --json:
$OUT"
ctl monitor --follow
assert_rc 2 "portierctl monitor --follow"
ok "monitor, human (ended by SIGINT) and --json (ended by SIGTERM)"

# --- terminals and colour -------------------------------------------------------------------
on_tty "$PORTIERCTL rules"
assert_rc 0 "portierctl rules on a terminal"
[[ "$TTY_OUT" == *$'\033[1mNAME'* ]] || fail "portierctl rules on a terminal has no bold header (so the checks below prove nothing): $TTY_OUT"
on_tty "NO_COLOR=1 $PORTIERCTL rules"
[[ "$TTY_OUT" != *$'\033'* ]] || fail "portierctl rules with NO_COLOR on a terminal printed escape codes: $(od -c <<<"$TTY_OUT" | head)"
assert_match "$TTY_OUT" '^NAME +STATE' "portierctl rules with NO_COLOR on a terminal"
on_tty "NO_COLOR=1 $PORTIERCTL status"
[[ "$TTY_OUT" != *$'\033'* ]] || fail "portierctl status with NO_COLOR on a terminal printed escape codes"
assert_contains "$TTY_OUT" "portierd $VERSION: running" "portierctl status with NO_COLOR on a terminal"
on_tty "NO_COLOR=1 $PORTIERCTL diff $POLICY"
[[ "$TTY_OUT" != *$'\033'* ]] || fail "portierctl diff with NO_COLOR on a terminal printed escape codes"
on_tty "NO_COLOR=1 $PORTIERCTL ports"
[[ "$TTY_OUT" != *$'\033'* ]] || fail "portierctl ports with NO_COLOR on a terminal printed escape codes"
if grep -q $'\033' "$ALL_OUTPUT"; then
  fail "portierctl printed escape codes off a terminal: $(grep -n $'\033' "$ALL_OUTPUT" | head -5 | od -c | head)"
fi
ok "escape codes only on a terminal without NO_COLOR"

# --- 3: portierd gone, and no bus ------------------------------------------------------------
stop_portierd
for cmd in "status" "status --json" "rules" "rules --json" "enable ssh-in" "disable ssh-in" "reload" \
  "apply $NEW" "confirm" "rollback" "allow tcp/8080 --for 1m" "set add blocklist 192.0.2.1" \
  "set add blocklist --file $SMALL" "set del blocklist 192.0.2.1" "set list blocklist" "panic on" \
  "ports" "explain tcp $PEER_IP:40000 -> 22 in lan" "diff $NEW" "monitor"; do
  # shellcheck disable=SC2086
  ctl $cmd
  assert_rc 3 "portierctl $cmd with portierd stopped"
  assert_contains "$ERR" "portierctl: portierd is not running (nobody owns org.portier.Firewall1 on the system bus)." "portierctl $cmd with portierd stopped"
  [[ -z "$OUT" ]] || fail "portierctl $cmd with portierd stopped printed to stdout: $OUT"
done
# Usage is checked before the bus: a bad --file is 2 even without portierd.
ctl set add blocklist --file "$BADLINES"
assert_rc 2 "portierctl set add --file with bad lines and no portierd"
# Offline commands do not need it.
for cmd in "version" "check $NEW" "show --policy $NEW" "explain tcp $PEER_IP:40000 -> 22 in lan --policy $NEW"; do
  # shellcheck disable=SC2086
  ctl $cmd
  assert_rc 0 "portierctl $cmd with portierd stopped"
done
BUS_ADDRESS="unix:path=$WORKDIR/no-such-socket"
for cmd in status "set add blocklist --file $SMALL" monitor; do
  # shellcheck disable=SC2086
  ctl $cmd
  assert_rc 3 "portierctl $cmd with no bus"
  assert_contains "$ERR" "portierctl: cannot reach the system bus" "portierctl $cmd with no bus"
done
if grep -q $'\033' "$ALL_OUTPUT"; then fail "portierctl printed escape codes off a terminal (errors)"; fi
ok "3 when portierd or the bus is not there; offline commands still 0"

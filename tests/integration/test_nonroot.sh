#!/usr/bin/env bash
# An unprivileged caller (uid 65534) may read (status, rules) but is refused every change
# (enable, disable, reload), and the ruleset in the kernel stays exactly as it was. The same
# calls from root succeed, so the refusal is about the caller.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$PORTIERCTL" ||
  skip "uid 65534 cannot execute $PORTIERCTL (a parent folder is not world-searchable)"

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
[policy]
input  = "drop"
output = "accept"

[[rule]]
name      = "web-in"
direction = "in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
name      = "mdns-in"
direction = "in"
protocols = "udp"
ports     = [5353]
action    = "accept"
enabled   = false
TOML
chmod 644 "$POLICY"

start_portierd "$HOST_NS" "$POLICY"
before=$(nft_table "$HOST_NS")

pctl_nobody status
assert_rc 0 "portierctl status as uid 65534"
assert_match "$OUT" '^ *policy:' "portierctl status as uid 65534"
assert_match "$OUT" '^ *rules:' "portierctl status as uid 65534"
pctl_nobody rules
assert_rc 0 "portierctl rules as uid 65534"
assert_match "$OUT" '^web-in +enabled +in +accept +[0-9]+ +[0-9]+' "portierctl rules as uid 65534"
assert_match "$OUT" '^mdns-in +disabled +in +accept +[0-9]+ +[0-9]+' "portierctl rules as uid 65534"
log "ok: uid 65534 can read status and rules"

# Changes, including a reload of a changed policy file, are refused.
cat >>"$POLICY" <<'TOML'

[[rule]]
name      = "added-by-edit"
direction = "in"
protocols = "tcp"
ports     = [7777]
action    = "accept"
TOML
for args in "disable web-in" "enable mdns-in" "reload"; do
  # shellcheck disable=SC2086
  pctl_nobody $args
  assert_rc 1 "portierctl $args as uid 65534"
  assert_match "$ERR$OUT" '[Pp]ermission|[Dd]enied' "message of portierctl $args as uid 65534"
  log "ok: portierctl $args refused for uid 65534: $ERR"
done
assert_same_text "$before" "$(nft_table "$HOST_NS")" "ruleset after refused calls from uid 65534"
assert_eq enabled "$(rule_field web-in state)" "state of web-in after a refused disable"
assert_eq disabled "$(rule_field mdns-in state)" "state of mdns-in after a refused enable"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in still enabled"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7777 "the refused reload did not load added-by-edit"

# Root is allowed the same calls.
pctl disable web-in
assert_rc 0 "portierctl disable web-in as root"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in disabled by root"
pctl reload
assert_rc 0 "portierctl reload as root"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7777 "added-by-edit loaded by root's reload"

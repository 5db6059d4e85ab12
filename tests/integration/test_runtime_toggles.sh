#!/usr/bin/env bash
# Runtime toggles (`portierctl enable/disable NAME`) leave the policy file alone and survive a
# daemon restart with the same state directory. `--permanent` writes the change into the
# policy file: the rule's `enabled` line only (or a new one under its name), every comment and
# the layout kept; checked with diff against the expected file.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_runtime.sh"
require_root_or_skip
require_binaries

make_ns_pair

POLICY="$WORKDIR/policy.toml"
cat >"$POLICY" <<'TOML'
# portier test policy: the comments must survive --permanent edits
[policy]
input  = "reject"   # closed ports answer at once
output = "accept"

# the web server
[[rule]]
name      = "web-in"
protocols = "tcp"
ports     = [8080]
action    = "accept"

[[rule]]
  name      = "app-in"   # the app, indented on purpose
  protocols = "tcp"
  ports     = [7070]
  action    = "accept"
  enabled   = false      # off until launch

# trailing comment
TOML
cp "$POLICY" "$WORKDIR/original.toml"

start_portierd "$HOST_NS" "$POLICY"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in enabled in the file"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "app-in disabled in the file"

# --- runtime toggles --------------------------------------------------------------------
pctl disable web-in
assert_rc 0 "portierctl disable web-in"
pctl enable app-in
assert_rc 0 "portierctl enable app-in"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in disabled at run time"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "app-in enabled at run time"
cmp -s "$POLICY" "$WORKDIR/original.toml" || fail "a runtime toggle changed the policy file:
$(diff -u "$WORKDIR/original.toml" "$POLICY")"

restart_portierd "$HOST_NS" "$POLICY"
assert_eq disabled "$(rule_field web-in state)" "web-in after a restart (disabled at run time)"
assert_eq enabled "$(rule_field app-in state)" "app-in after a restart (enabled at run time)"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in still disabled after the restart"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "app-in still enabled after the restart"
# A reload keeps them too.
pctl reload
assert_rc 0 "portierctl reload"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in still disabled after a reload"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "app-in still enabled after a reload"
# A fresh state directory starts from the file alone: the toggles live in the state dir.
runtime_state=$STATE_DIR
stop_portierd
start_portierd "$HOST_NS" "$POLICY"
assert_eq enabled "$(rule_field web-in state)" "web-in with a fresh state directory"
assert_eq disabled "$(rule_field app-in state)" "app-in with a fresh state directory"
stop_portierd
PORTIERD_STATE_DIR=$runtime_state start_portierd "$HOST_NS" "$POLICY"
assert_eq disabled "$(rule_field web-in state)" "web-in, back on the first state directory"

# --- --permanent ------------------------------------------------------------------------
# app-in has an `enabled` line: only its value changes, the comment after it stays.
sed 's/^  enabled   = false      # off until launch$/  enabled   = true      # off until launch/' \
  "$WORKDIR/original.toml" >"$WORKDIR/expected-1.toml"
pctl enable app-in --permanent
assert_rc 0 "portierctl enable app-in --permanent"
diff -u "$WORKDIR/expected-1.toml" "$POLICY" >"$WORKDIR/diff-1" ||
  fail "enable app-in --permanent should change only app-in's enabled line (--- expected, +++ file):
$(cat "$WORKDIR/diff-1")"
log "ok: enable --permanent changed only app-in's enabled line; comments kept"

# web-in has none: a line `enabled = false` appears under its name.
awk '{ print } $0 == "name      = \"web-in\"" { print "enabled = false" }' \
  "$WORKDIR/expected-1.toml" >"$WORKDIR/expected-2.toml"
pctl disable web-in --permanent
assert_rc 0 "portierctl disable web-in --permanent"
diff -u "$WORKDIR/expected-2.toml" "$POLICY" >"$WORKDIR/diff-2" ||
  fail "disable web-in --permanent should add one enabled line under its name (--- expected, +++ file):
$(cat "$WORKDIR/diff-2")"
log "ok: disable --permanent added 'enabled = false' under web-in's name; comments kept"
pctl check "$POLICY"
assert_rc 0 "portierctl check of the edited policy file"

assert_eq disabled "$(rule_field web-in state)" "web-in after disable --permanent"
assert_eq enabled "$(rule_field app-in state)" "app-in after enable --permanent"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in disabled permanently"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "app-in enabled permanently"

# The file says it now: a fresh state directory gives the same.
stop_portierd
start_portierd "$HOST_NS" "$POLICY"
assert_eq disabled "$(rule_field web-in state)" "web-in from the edited file, fresh state directory"
assert_eq enabled "$(rule_field app-in state)" "app-in from the edited file, fresh state directory"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 8080 "web-in from the edited file"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 7070 "app-in from the edited file"

# And back again: the very file we started with.
pctl enable web-in --permanent
assert_rc 0 "portierctl enable web-in --permanent"
pctl disable app-in --permanent
assert_rc 0 "portierctl disable app-in --permanent"
sed 's/^enabled = false$/enabled = true/' "$WORKDIR/expected-2.toml" |
  sed 's/^  enabled   = true      # off until launch$/  enabled   = false      # off until launch/' \
    >"$WORKDIR/expected-3.toml"
diff -u "$WORKDIR/expected-3.toml" "$POLICY" >"$WORKDIR/diff-3" ||
  fail "enable web-in / disable app-in --permanent (--- expected, +++ file):
$(cat "$WORKDIR/diff-3")"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8080 "web-in enabled permanently again"
assert_refused "$PEER_NS" "$HOST_NS" "$HOST_IP" 7070 "app-in disabled permanently again"
stop_portierd

#!/usr/bin/env bash
# SIGHUP reloads the policy (the unit's ExecReload sends it): a valid change gets loaded, an
# invalid one is logged with file:line:col and the ruleset and the daemon stay as they were.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
require_binaries

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
TOML
start_portierd "$HOST_NS" "$POLICY"
assert_blocked "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "input drop"

cat >>"$POLICY" <<'TOML'

[[rule]]
name      = "alt-in"
direction = "in"
protocols = "tcp"
ports     = [8081]
action    = "accept"
TOML
kill -HUP "$PORTIERD_PID"
for ((i = 0; i < 100; i++)); do
  [[ "$(nft_table "$HOST_NS")" == *'"alt-in"'* ]] && break
  kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd died on SIGHUP: $(cat "$PORTIERD_LOG")"
  sleep 0.05
done
[[ "$(nft_table "$HOST_NS")" == *'"alt-in"'* ]] ||
  fail "5 s after SIGHUP the ruleset still lacks rule alt-in:
$(nft_table "$HOST_NS")"
assert_arrives "$PEER_NS" "$HOST_NS" "$HOST_IP" tcp 8081 "alt-in, loaded by SIGHUP"
pctl status
assert_rc 0 "portierctl status after SIGHUP"
assert_match "$OUT" '^ *rules: +2\b' "portierctl status after SIGHUP"

before=$(nft_table "$HOST_NS")
sed -i 's/^action    = "accept"$/action    = "permit"/' "$POLICY"
# Both rules now say "permit": every error is reported, each at its value.
message="error: unknown action 'permit' for 'action': use accept, drop or reject"
kill -HUP "$PORTIERD_PID"
for ((i = 0; i < 100; i++)); do
  grep -qF -- "$POLICY:17:13: $message" "$PORTIERD_LOG" && break
  sleep 0.05
done
assert_contains "$(cat "$PORTIERD_LOG")" "$POLICY:10:13: $message" "portierd's log after SIGHUP with an invalid policy"
assert_contains "$(cat "$PORTIERD_LOG")" "$POLICY:17:13: $message" "portierd's log after SIGHUP with an invalid policy"
kill -0 "$PORTIERD_PID" 2>/dev/null || fail "portierd exited on SIGHUP with an invalid policy: $(cat "$PORTIERD_LOG")"
assert_same_text "$before" "$(nft_table "$HOST_NS")" "ruleset after SIGHUP with an invalid policy"
stop_portierd

#!/usr/bin/env bash
# The tests load rules only inside their own namespaces: the host's own network namespace
# must never get a portier table. Named to run after the other integration tests.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root_or_skip
assert_no_host_table
log "ok: no portier table in the host namespace"

#!/usr/bin/env bash
# Runs the soak (tests/soak/soak.sh) and writes its figures to docs/soak.md.
#
#   bash tests/soak/run.sh          the short counts of the test suite
#   bash tests/soak/run.sh --full   the counts of issue 14: 1,000 reloads, 1,000 toggles,
#                                   10,000 set-element changes, 100 apply/rollback cycles
#
# Any SOAK_* variable set in the environment wins over both (see soak.sh). Needs root and
# a build (PORTIER_BUILD_DIR, default build/); runs niced, as the machine may be shared.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

mode=short
case ${1:-} in
  --full) mode=full ;;
  "") ;;
  *)
    echo "usage: $0 [--full]" >&2
    exit 64
    ;;
esac
if [[ $mode == full ]]; then
  export SOAK_RELOADS=${SOAK_RELOADS:-1000} SOAK_TOGGLES=${SOAK_TOGGLES:-1000}
  export SOAK_SET_CHANGES=${SOAK_SET_CHANGES:-10000} SOAK_SET_SINGLES=${SOAK_SET_SINGLES:-1000}
  export SOAK_CYCLES=${SOAK_CYCLES:-100} SOAK_BASELINE=${SOAK_BASELINE:-10}
else
  export SOAK_RELOADS=${SOAK_RELOADS:-100} SOAK_TOGGLES=${SOAK_TOGGLES:-100}
  export SOAK_SET_CHANGES=${SOAK_SET_CHANGES:-600} SOAK_SET_SINGLES=${SOAK_SET_SINGLES:-200}
  export SOAK_CYCLES=${SOAK_CYCLES:-10}
fi
export PORTIER_BUILD_DIR=${PORTIER_BUILD_DIR:-$PWD/build}
figures=$(mktemp /tmp/portier-soak-figures.XXXXXX)
trap 'rm -f "$figures"' EXIT
log=$(mktemp /tmp/portier-soak-log.XXXXXX)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
# What ran: the checkout as the run starts (portierd and portierctl as last built from it).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain -- daemon cli rules tests/soak 2>/dev/null | head -1)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rc=0
SOAK_REPORT=$figures nice -n 10 bash tests/soak/soak.sh 2>&1 | tee "$log" || rc=$?
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if ((rc != 0)) || [[ ! -s $figures ]]; then
  echo "run.sh: the soak failed (exit $rc); docs/soak.md is unchanged; its log: $log" >&2
  exit 1
fi

# figure KEY: one value of the soak's report.
figure() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print; exit }' "$figures"; }
counts=$(figure counts)
count() { tr ' ' '\n' <<<"$counts" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
{
  cat <<MD
# The soak: portierd changed over and over under live traffic

Written by \`tests/soak/run.sh${1:+ $1}\` (issue 14, item 4); what is checked, and how, is
described at the top of [tests/soak/soak.sh](../tests/soak/soak.sh). The test suite runs
the same script with short counts (\`integration.test_soak\`).

Run of $started on commit $commit${dirty:+ (with uncommitted changes)}, kernel $(uname -r),
$(nproc) cores, load average $load_before before and $load_after after (the machine was
shared with other work: the times below are those of a loaded machine).

## What was done

portierd ran on a router namespace between a client and a server, loaded with policy A
and changed by three portierctl workers at the same time, for $(figure soak_seconds) s:

| worker | changes |
| --- | --- |
| policy | $(count reloads) reloads alternating between policies A and B, and $(count cycles) cycles of \`apply C --confirm 300\` then \`rollback\` |
| toggles | $(count toggles) \`disable\`/\`enable\` of two rules in turn |
| sets | $(count set_changes) set-element changes: $(count set_singles) one element a call, the rest in files of $(count batch) elements (\`set add/del --file\`) |

portierd counted $(figure generations) ruleset generations in that time.

## What the traffic saw

| check | figure | verdict |
| --- | --- | --- |
| (a) established TCP stream (a 512-byte frame every 10 ms), resets | $(figure stream_resets) of $(figure stream_frames) frames in order | must be 0 |
| (a) its longest stall (gap between two arrivals) during the soak | $(figure stream_max_gap_ms) ms (longest frame delay $(figure stream_max_delay_ms) ms) | reported |
| (a) the same, during $(count baseline) s of traffic before any change | $(figure stream_baseline_max_gap_ms) ms (delay $(figure stream_baseline_max_delay_ms) ms) | for comparison |
| (a) gaps over 100 ms; the five longest (gap@seconds into the stream) | $(figure stream_gaps_over_100ms); $(figure stream_worst_gaps) | reported |
| (b) probes to ports every policy forbids (UDP 7001, TCP 7002 and 9000 on the server, UDP 7001 and TCP 7002 on the router), sent | $(figure forbidden_sent) | |
| (b) of them arrived | $(figure forbidden_admitted) (TCP connections made: $(figure forbidden_tcp_connected)) | must be 0 |
| (c) probes to UDP 6001 (allowed by every policy; IPv4 and IPv6), sent | $(figure allowed_sent) at $(count probe_rate)/s per address | |
| (c) of them lost | $(figure allowed_lost) | reported |

Every probe target was checked first with no firewall: all probes arrived.

## portierd itself

| | at the start | at the end | verdict |
| --- | --- | --- | --- |
| RSS (VmRSS) | $(figure rss_start_kb) kB | $(figure rss_end_kb) kB | fails above 2x |
| open file descriptors | $(figure fd_start) | $(figure fd_end) | fails if they grow |

The start is taken after one change of each kind (warm-up), so what portierd opens once
is already open.

## How long each call took (the whole \`portierctl\` command, on the loaded machine)

| call | figures |
| --- | --- |
MD
  awk '$1 ~ /^latency_/ { k = $1; sub(/^latency_/, "", k); $1 = ""; sub(/^ /, ""); printf "| %s | %s |\n", k, $0 }' "$figures"
  cat <<MD

## Kernel counters that moved

Drop and error counters of the three namespaces (w client, h router, l server) that changed
during the soak, to tell a packet lost in the firewall from one lost elsewhere:

MD
  if grep -q '^net_' "$figures"; then
    printf '| counter | change |\n| --- | --- |\n'
    awk '$1 ~ /^net_/ { k = $1; sub(/^net_/, "", k); printf "| %s | %s |\n", k, $2 }' "$figures"
  else
    printf 'none.\n'
  fi
} >docs/soak.md
echo "run.sh: wrote docs/soak.md" >&2

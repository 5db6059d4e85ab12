#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz, two at a time, each for a fixed time on its
# seed corpus (tests/fuzz/corpus/TARGET; what a run adds goes to a scratch folder, not
# there). Fails if any target reports a crash, a leak, a UBSan report, a timeout or an
# out-of-memory input; the input is kept and its path printed.
#
#   tests/fuzz/run.sh [--seconds N] [--runs N] [--jobs N] [--report FILE] [TARGET...]
#
# --seconds: per target (default 600); --runs: stop a target once it has run this many
# inputs (libFuzzer's -runs; --seconds stays the limit); --jobs: targets at once (default
# 2); --report:
# write the figures (execs, exec/s, coverage) as FILE (docs/fuzzing.md). BUILD_DIR (default
# build-fuzz) is configured with clang and PORTIER_FUZZ and built if needed; the suite
# (tests/run-suite.sh) runs this with --seconds 60.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

seconds=600
runs=-1
jobs=2
report=
targets=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
ALL_TARGETS=(fuzz_policy fuzz_set_file fuzz_explain_shape fuzz_element_file fuzz_netlink
             fuzz_sock_diag fuzz_nflog)
((${#targets[@]})) || targets=("${ALL_TARGETS[@]}")

BUILD_DIR=${BUILD_DIR:-build-fuzz}
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  echo "fuzz: configuring $BUILD_DIR" >&2
  # -O1: what libFuzzer's documentation suggests, and quicker to compile than -O2.
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DPORTIER_FUZZ=ON -DPORTIER_WERROR=ON -DBUILD_TESTING=OFF \
    >/dev/null
fi
echo "fuzz: building $BUILD_DIR" >&2
nice -n 10 cmake --build "$BUILD_DIR" --target portier_fuzz

work=$(mktemp -d /tmp/portier-fuzz.XXXXXX)
echo "fuzz: logs, new inputs and crash inputs in $work" >&2

run_one() {
  local target=$1
  mkdir -p "$work/corpus/$target"
  local rc=0 began=$SECONDS
  # -timeout: an input that takes this long is a finding too (the daemon would hang on it).
  nice -n 10 "$BUILD_DIR/tests/fuzz/$target" -max_total_time="$seconds" -runs="$runs" -timeout=30 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/$target-" \
    "$work/corpus/$target" "tests/fuzz/corpus/$target" </dev/null >"$work/$target.log" 2>&1 || rc=$?
  echo "$rc" >"$work/$target.rc"
  echo "$((SECONDS - began))" >"$work/$target.seconds"
}

running=0
for target in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n
    running=$((running - 1))
  fi
  echo "fuzz: $target for ${seconds}s$( ((runs > 0)) && echo " or $runs inputs")" >&2
  run_one "$target" &
  running=$((running + 1))
done
wait

stat() { sed -n "s/^stat::$2: *//p" "$work/$1.log" | tail -1; }
failed=()
rows=()
rows_need=()
for target in "${targets[@]}"; do
  rc=$(cat "$work/$target.rc")
  execs=$(stat "$target" number_of_executed_units)
  rate=$(stat "$target" average_exec_per_sec)
  rss=$(stat "$target" peak_rss_mb)
  last=$(grep -E '^#[0-9]+.*cov: ' "$work/$target.log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
  result=clean
  if [[ $rc != 0 ]]; then
    result="FAILED (exit $rc)"
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $rc); the end of its log:" >&2
    tail -60 "$work/$target.log" >&2
    for input in "$work/$target"-*; do
      [[ -f $input ]] || continue
      echo "fuzz: $target: input kept as $input; as hex:" >&2
      od -An -tx1 -v "$input" | head -40 >&2
    done
  fi
  printf 'fuzz: %-20s %10s execs %8s exec/s  cov %5s  ft %6s  corpus %5s  peak RSS %s MB  %s\n' \
    "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}" "$result" >&2
  rows+=("| \`$target\` | $(cat "$work/$target.seconds") | ${execs:-?} | ${rate:-?} | ${cov:-?} | ${ft:-?} | ${corp:-?} | ${rss:-?} | $result |")
  if [[ -n $rate && $rate -gt 0 ]]; then
    need=$(( (10000000 + rate - 1) / rate ))
    rows_need+=("| \`$target\` | $need |")
  fi
done

if [[ -n $report ]]; then
  {
    cat tests/fuzz/fuzzing-head.md
    echo
    echo "## The last long run"
    echo
    echo "\`tests/fuzz/run.sh --seconds $seconds$( ((runs > 0)) && echo " --runs $runs") --jobs $jobs --report $report\`, $(date -u '+%Y-%m-%d %H:%M UTC'),"
    echo "on $(nproc) cores shared with other work (nice 10), $(clang++ --version | head -1)."
    echo "cov: code edges covered, ft: libFuzzer's features (edges with hit counts, comparisons),"
    echo "corpus: inputs libFuzzer kept, all at the end of the run."
    echo
    echo "| target | seconds | execs | exec/s | cov | ft | corpus | peak RSS MB | result |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "## Reaching 10 million executions per target"
    echo
    echo "At the rates above, each target needs about this many seconds (one core each):"
    echo
    echo "| target | seconds for 10M |"
    echo "|---|---|"
    printf '%s\n' "${rows_need[@]}"
    echo
    echo "\`tests/fuzz/run.sh --runs 10000000 --seconds S --report docs/fuzzing.md\` runs each"
    echo "target until it has run 10 million inputs, with S as the limit (the largest from this"
    echo "table, or more on a busy machine)."
    echo
    cat tests/fuzz/findings.md
  } >"$report"
  echo "fuzz: wrote $report" >&2
fi

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all clean ($work)" >&2

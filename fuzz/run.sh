#!/bin/sh
# fuzz/run.sh [OUT [HARNESS...]]
#
# Runs each harness built by fuzz/build.sh (all by default) for
# FUZZ_SECONDS (30) with libFuzzer's -max_total_time, one after the other,
# starting from its seed corpus fuzz/corpus/NAME (read only) and what
# earlier runs found in OUT/corpus/NAME, where new inputs go.  Prints per
# harness the executions, the speed and the coverage of libFuzzer's final
# stats.  Fails if any harness finds a crash, a leak, a timeout or a
# broken property; the reproducer is left as OUT/artifacts/NAME-*, and
# the whole log as OUT/logs/NAME.log.
#
# FUZZ_ARGS adds libFuzzer options (e.g. -runs=N, -seed=N, -jobs=N).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/fuzz}
[ $# -gt 0 ] && shift
seconds=${FUZZ_SECONDS:-30}
harnesses=${*:-json ndjson topic msg_id params zone}

mkdir -p "$out/corpus" "$out/artifacts" "$out/logs"

# input size bounds: JSON bodies past 16 KiB (the size the validator is
# tuned for), the others a little over their longest valid input
max_len() {
    case $1 in
    json)    echo 24576 ;;
    ndjson)  echo 8192 ;;
    topic)   echo 600 ;;
    msg_id)  echo 64 ;;
    params)  echo 64 ;;
    zone)    echo 512 ;;
    *)       echo 4096 ;;
    esac
}

dict() {
    case $1 in
    ndjson)  echo "$root/fuzz/dict/json.dict" ;;
    *)       echo "$root/fuzz/dict/$1.dict" ;;
    esac
}

failed=
npassed=0
nfailed=0
printf '%-8s %12s %8s %10s %7s %7s %12s  %s\n' harness execs seconds \
    exec/s cov ft corpus result

for h in $harnesses; do
    bin="$out/bin/fuzz_$h"
    log="$out/logs/$h.log"
    [ -x "$bin" ] || { echo "$0: $bin is not built" >&2; exit 1; }

    mkdir -p "$out/corpus/$h"
    rm -f "$out/artifacts/$h"-*
    d=$(dict "$h")
    [ -f "$d" ] && d="-dict=$d" || d=

    start=$(date +%s)
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -max_len="$(max_len "$h")" $d \
        -artifact_prefix="$out/artifacts/$h-" ${FUZZ_ARGS:-} \
        "$out/corpus/$h" "$root/fuzz/corpus/$h" > "$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')

    if [ "$rc" -eq 0 ]; then
        result=ok
        npassed=$((npassed + 1))
    else
        result="FAILED (exit $rc)"
        failed="$failed $h"
        nfailed=$((nfailed + 1))
    fi

    printf '%-8s %12s %8s %10s %7s %7s %12s  %s\n' "$h" "${execs:-?}" \
        "$secs" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"

    if [ "$rc" -ne 0 ]; then
        grep -E 'ERROR|SUMMARY|property failed|runtime error|Test unit' \
            "$log" | head -20 | sed 's/^/    /'
        echo "    log: $log"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: findings in:$failed (reproducers: $out/artifacts/)"
fi

echo "fuzz: $npassed passed, $nfailed failed"
[ -z "$failed" ]

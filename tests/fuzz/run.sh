#!/bin/sh
# Runs the libFuzzer targets of a -DOH_FUZZ=ON build (`make fuzz`).
#
#   tests/fuzz/run.sh BUILD_DIR [TARGET...]      all targets when none named
#
# Environment: FUZZ_SECONDS per target (60), FUZZ_JOBS targets at a time (1).
#
# Each target starts from its committed seeds (tests/fuzz/corpus/NAME, only
# read) and writes what it finds interesting to a scratch corpus,
# BUILD_DIR/fuzz/NAME/corpus, kept between runs (dict/NAME.dict, when there
# is one, gives libFuzzer the grammar's words); a crashing input goes to
# BUILD_DIR/fuzz/NAME/ (crash-*, leak-*, timeout-*) with the log beside it.
# A crash belongs in the committed corpus once it is fixed, so the replay
# tests keep it fixed.  The summary gives executions, time and findings per
# target; the exit status is non-zero when anything was found.
set -u

build=${1:?usage: $0 BUILD_DIR [TARGET...]}
shift
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
src=$(cd "$(dirname "$0")" && pwd)
bin=$build/tests/fuzz

if [ $# -eq 0 ]; then
	for d in "$src"/corpus/*/; do
		name=$(basename "$d")
		[ -x "$bin/fuzz_$name" ] && set -- "$@" "$name"
	done
fi
[ $# -gt 0 ] || { echo "no fuzz targets in $bin (configure with -DOH_FUZZ=ON)" >&2; exit 1; }

run_one() {
	name=$1
	work=$build/fuzz/$name
	mkdir -p "$work/corpus"
	start=$(date +%s)
	# stdin closed: an input naming /dev/stdin as a file cannot block.
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
	UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	dict=
	[ -f "$src/dict/$name.dict" ] && dict=-dict=$src/dict/$name.dict
	"$bin/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$work/" $dict \
		"$work/corpus" "$src/corpus/$name" </dev/null >"$work/log" 2>&1
	echo $? >"$work/status"
	echo $(($(date +%s) - start)) >"$work/seconds"
}

running=0
for name in "$@"; do
	if [ ! -x "$bin/fuzz_$name" ]; then
		echo "no target $name in $bin" >&2
		exit 1
	fi
	echo "fuzzing $name for ${seconds}s"
	run_one "$name" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

found=0
printf '\n%-12s %12s %8s %8s  %s\n' target executions seconds exec/s findings
for name in "$@"; do
	work=$build/fuzz/$name
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
	secs=$(cat "$work/seconds")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -n 1)
	artifacts=$(cd "$work" && ls crash-* leak-* timeout-* oom-* slow-unit-* 2>/dev/null | tr '\n' ' ')
	if [ "$(cat "$work/status")" != 0 ] || [ -n "$artifacts" ]; then
		found=1
		result="FOUND ${artifacts:-(see log)} in $work (log: $work/log)"
	else
		result=none
	fi
	printf '%-12s %12s %8s %8s  %s\n' "$name" "${runs:-?}" "${secs:-?}" "${rate:-?}" "$result"
done
exit $found

#!/bin/bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs them for a
# bounded time in all: tests/fuzz/run.sh [SECONDS] (default 60).
#
# Environment: FUZZ_BUILD (build folder, default build-fuzz; configured once
# with --enable-fuzzing CC=clang), FUZZ_JOBS (parallel fuzzing processes,
# default 1), FUZZ_ARGS (more libFuzzer flags, e.g. "-seed=1 -runs=300000"
# for a run that is the same on every machine, as scripts/test-all does).
# The seed corpus (tests/fuzz/corpus) is read, never written: new inputs go
# to $FUZZ_BUILD/fuzz-corpus, crashes to $FUZZ_BUILD/fuzz-artifacts.
# Prints one line per target, "fuzz TARGET: N executions in S s, no finding"
# (or the finding), and exits non-zero on a finding.
set -uo pipefail
seconds=${1:-60}
cd "$(dirname "$0")/../.."
src=$(pwd)
build=${FUZZ_BUILD:-build-fuzz}
jobs=${FUZZ_JOBS:-1}

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang is missing: apt-get install -y clang libclang-rt-14-dev" >&2
	exit 1
fi
# Every target: its name, its seed corpus, its dictionary (- for none).
targets=(
	"fuzz_dispatch tests/fuzz/corpus tests/fuzz/bayeux.dict"
	"fuzz_token tests/fuzz/corpus-token -"
	"fuzz_json_scan tests/fuzz/corpus-json-scan tests/fuzz/bayeux.dict"
	"fuzz_config tests/fuzz/corpus-config -"
	"fuzz_retain tests/fuzz/corpus-retain -"
	"fuzz_bus_header tests/fuzz/corpus-bus -"
	"fuzz_ws tests/fuzz/corpus-ws tests/fuzz/bayeux.dict"
)

[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p "$build"
if [ ! -f "$build/Makefile" ]; then
	(cd "$build" && "$src/configure" -q --enable-fuzzing --disable-tests CC=clang) || {
		echo "fuzz: configure failed (see $build/config.log)" >&2
		exit 1
	}
fi
make -s -C "$build" -j"$(nproc)" $(for t in "${targets[@]}"; do echo "tests/fuzz/${t%% *}"; done) >/dev/null || {
	echo "fuzz: the build failed" >&2
	exit 1
}

export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
status=0
# Each target: its seed corpus and dictionary; SECONDS is split between them
# (the request path gets half; the other targets share the rest equally).
n_other=$((${#targets[@]} - 1))
for entry in "${targets[@]}"; do
	read -r target seeds dictfile <<<"$entry"
	dict=()
	[ "$dictfile" != "-" ] && dict=(-dict="$dictfile")
	if [ "$target" = fuzz_dispatch ]; then
		t=$((seconds / 2))
	else
		t=$(((seconds - seconds / 2) / n_other))
	fi
	[ "$t" -ge 1 ] || t=1
	work="$build/fuzz-corpus/$target"
	art="$build/fuzz-artifacts/$target"
	log="$build/fuzz-$target.log"
	mkdir -p "$work" "$art"
	"$build/tests/fuzz/$target" -max_total_time="$t" -timeout=10 -rss_limit_mb=2048 \
		-max_len=65536 -print_final_stats=1 "${dict[@]}" \
		-artifact_prefix="$art/" -jobs="$jobs" -workers="$jobs" ${FUZZ_ARGS:-} \
		"$work" "$seeds" >"$log" 2>&1
	rc=$?
	[ "$jobs" -gt 1 ] && cat fuzz-*.log >>"$log" 2>/dev/null && rm -f fuzz-*.log
	runs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{s += $2} END {print s + 0}')
	if [ "$rc" -eq 0 ]; then
		echo "fuzz $target: $runs executions (limit $t s), no finding (corpus: $(ls "$work" | wc -l) inputs)"
	else
		echo "fuzz $target: FINDING (exit $rc) after $runs executions; see $log and $art/"
		grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==' "$log" | head -20
		status=1
	fi
done
exit $status

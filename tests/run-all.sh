#!/bin/bash
# Runs every test of one build: the Criterion unit tests, then the Node
# integration and browser tests against that build's daemon. Prints one line
# "LABEL: N passed, M failed" and writes "N M" to $BUILDDIR/test-counts.
#
# Environment: BUILDDIR (the build to test; default: the current folder),
# UNIT_TESTS (unit test programs relative to BUILDDIR; default: all built),
# LABEL (default: the build folder's name), NODE_TESTS (default: all files;
# "none" runs none: `make distcheck`, see Makefile.am).
# Sanitizer builds: every ASan/UBSan report the daemon writes is a failure.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/lib/node-tests.sh"
BUILDDIR=${BUILDDIR:-$(pwd)}
LABEL=${LABEL:-$(basename "$BUILDDIR")}
out="$BUILDDIR/test-output"
rm -rf "$out"
mkdir -p "$out/sanitizer"
export ASAN_OPTIONS="log_path=$out/sanitizer/asan:detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="log_path=$out/sanitizer/ubsan:print_stacktrace=1:${UBSAN_OPTIONS:-}"
export TEST_OUTPUT="$out"

passed=0
failed=0

# ---- unit tests (Criterion) -----------------------------------------------
if [ -z "${UNIT_TESTS:-}" ]; then
	UNIT_TESTS=$(cd "$BUILDDIR" && ls tests/unit/test_* 2>/dev/null | grep -v '\.[a-z]*$' || true)
fi
for t in $UNIT_TESTS; do
	log="$out/$(basename "$t").log"
	"$BUILDDIR/$t" >"$log" 2>&1
	rc=$?
	line=$(grep 'Synthesis:' "$log" | tail -1)
	tested=$(echo "$line" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	ok=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	if [ -z "$tested" ]; then
		echo "not ok - $t did not finish (exit $rc); see $log"
		failed=$((failed + 1))
		continue
	fi
	bad=$((tested - ok))
	[ "$rc" -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
	passed=$((passed + ok))
	failed=$((failed + bad))
	echo "$t: $line"
	[ "$bad" -gt 0 ] && grep -E '^\[(----|FAIL)\]' "$log" | head -40
done
# Criterion's own workers may leave sanitizer logs; they are the unit tests'.
rm -f "$out"/sanitizer/*

# ---- the layering rules (docs/ARCHITECTURE.md) --------------------------------
log="$out/layers.log"
bash "$src/tests/layers/check.sh" "$BUILDDIR" >"$log" 2>&1
lp=$(sed -n 's/^layers: \([0-9]*\) passed.*/\1/p' "$log")
lf=$(sed -n 's/^layers: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$log")
if [ -z "$lp" ]; then
	echo "tests/layers/check.sh did not finish; see $log"
	failed=$((failed + 1))
else
	passed=$((passed + lp))
	failed=$((failed + lf))
	echo "tests/layers/check.sh: $lp passed, $lf failed"
	[ "$lf" -gt 0 ] && grep -v '^ok' "$log"
fi

# ---- integration and browser tests (node --test) -----------------------------
export BAYEUXD="$BUILDDIR/src/bayeuxd"
node_files=${NODE_TESTS:-$(ls "$src"/tests/integration/*.test.mjs "$src"/tests/browser/*.test.mjs 2>/dev/null)}
[ "$node_files" = none ] && node_files="" && echo "node tests: not run (NODE_TESTS=none)"
if [ -n "$node_files" ]; then
	log="$out/node-tests.tap"
	run_node_tests "$src" "$log" 120000 $node_files
	passed=$((passed + NODE_PASSED))
	failed=$((failed + NODE_FAILED))
	echo "node tests: $NODE_PASSED passed, $NODE_FAILED failed ($log)"
fi

# ---- sanitizer reports from the daemon -----------------------------------------
reports=$(ls "$out"/sanitizer/ 2>/dev/null | wc -l)
if [ "$reports" -gt 0 ]; then
	echo "sanitizer reports from bayeuxd ($reports files), each counted as a failure:"
	for f in "$out"/sanitizer/*; do
		head -30 "$f"
	done
	failed=$((failed + reports))
fi

echo "$passed $failed" >"$BUILDDIR/test-counts"
echo "$LABEL: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

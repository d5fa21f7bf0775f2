# node-tests.sh — sourced by tests/run-all.sh and tests/valgrind/run.sh: runs
# Node test files and counts them the same way for both.
#
# run_node_tests SRC LOG TIMEOUT_MS FILE...
#   runs `node --test` (TAP) from SRC into LOG and sets NODE_PASSED and
#   NODE_FAILED. A run that does not finish counts as one failure; so does a
#   non-zero exit with no failing test (a file that crashed after its tests).
#   Prints the failing tests' names, or the log's tail.
run_node_tests() {
	local src=$1 log=$2 timeout=$3
	shift 3
	(cd "$src" && node --test --test-reporter=tap --test-timeout="$timeout" "$@") >"$log" 2>&1
	local rc=$?
	NODE_PASSED=$(grep -E '^# pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
	NODE_FAILED=$(grep -E '^# fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
	if [ -z "$NODE_PASSED" ]; then
		echo "node tests did not finish (exit $rc); see $log"
		tail -30 "$log"
		NODE_PASSED=0
		NODE_FAILED=1
		return
	fi
	[ "$rc" -ne 0 ] && [ "$NODE_FAILED" -eq 0 ] && NODE_FAILED=1
	if [ "$NODE_FAILED" -gt 0 ]; then
		grep -E '^\s*not ok' "$log" | head -40
	fi
}

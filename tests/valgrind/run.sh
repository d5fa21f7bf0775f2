#!/bin/bash
# Runs a set of the Node integration tests with the daemon under valgrind
# (memcheck): any invalid read or write, use of uninitialised memory, or
# definitely lost block makes the daemon exit 99 (--error-exitcode), which
# fails the test that stops it (lib/daemon.mjs stopDaemonClean).
#
# The set covers the parsers and the paths the ASan build also runs (history
# and replay, the cluster and its history in Redis, the wire, SSE, timesync,
# backend publish, Faye's client). Left out: tests that measure time or
# memory (WebSocket's slow-consumer RSS bound, poll-timeout counts, the
# bad-input table's 30 s waits), which valgrind's slowdown and overhead
# make fail without a memory error.
#
# Usage: tests/valgrind/run.sh BUILDDIR. Prints "valgrind: N passed, M failed"
# and writes "N M" to BUILDDIR/valgrind-counts.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/tests/lib/node-tests.sh"
build=$(cd "${1:?usage: tests/valgrind/run.sh BUILDDIR}" && pwd)
counts="$build/valgrind-counts"
echo "0 1" >"$counts"
if ! command -v valgrind >/dev/null; then
	echo "valgrind: not installed (scripts/setup installs it)"
	exit 1
fi
files=""
for f in history cluster-history cluster ack wire sse timesync backend-publish faye-client; do
	files="$files $src/tests/integration/$f.test.mjs"
done
log="$build/test-output/valgrind.tap"
mkdir -p "$build/test-output"
echo "valgrind: $(echo $files | wc -w) test files, the daemon under memcheck"
export BAYEUXD="$build/src/bayeuxd"
export BAYEUXD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --quiet"
export BAYEUXD_SLOW=10
run_node_tests "$src" "$log" 300000 $files
echo "$NODE_PASSED $NODE_FAILED" >"$counts"
echo "valgrind: $NODE_PASSED passed, $NODE_FAILED failed"
if [ "$NODE_FAILED" -gt 0 ]; then
	grep -E '==[0-9]+==' "$log" | head -40 # valgrind's own report, if that was it
	exit 1
fi
exit 0

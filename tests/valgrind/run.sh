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
(cd "$src" && node --test --test-reporter=tap --test-timeout=300000 $files) >"$log" 2>&1
rc=$?
p=$(grep -E '^# pass [0-9]+' "$log" | tail -1 | awk '{print $3}')
f=$(grep -E '^# fail [0-9]+' "$log" | tail -1 | awk '{print $3}')
if [ -z "$p" ]; then
	echo "valgrind: the tests did not finish (exit $rc); see $log"
	tail -30 "$log"
	exit 1
fi
echo "$p $f" >"$counts"
echo "valgrind: $p passed, $f failed"
if [ "$f" -gt 0 ]; then
	grep -E '^\s*not ok' "$log" | head -20
	grep -E '==[0-9]+==' "$log" | head -40
	exit 1
fi
exit 0

#!/bin/sh
# Integration tests: the real CometD and Faye clients, and raw HTTP, against bayeuxd.
#
#   tests/integration/run.sh [--reporter tap|spec] [test files...]
#
# Environment (see lib/daemon.mjs):
#   BAYEUXD=path/to/bayeuxd        default: <repo>/src/bayeuxd
#   BAYEUXD_WRAPPER="valgrind --error-exitcode=99 --leak-check=full"
#   BAYEUXD_SLOW=10                scale time limits for slow wrappers
#   TEST_CONCURRENCY=N             test files run in parallel (default: node's choice;
#                                  1 when BAYEUXD_WRAPPER is set)
#
# Prints the node test runner's report; the TAP summary ends with "# pass N" and
# "# fail M". Exits non-zero when a test fails or the daemon is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

reporter=tap
if [ "${1:-}" = "--reporter" ]; then
  reporter=$2
  shift 2
fi

if [ -z "${BAYEUX_PEER:-}" ]; then
  BAYEUXD=${BAYEUXD:-$repo/src/bayeuxd}
  export BAYEUXD
  if [ ! -x "$BAYEUXD" ]; then
    echo "Bail out! $BAYEUXD is missing or not executable (build it first: make)"
    exit 1
  fi
fi
if [ ! -d "$repo/node_modules/cometd" ] || [ ! -d "$repo/node_modules/faye" ]; then
  echo "Bail out! npm modules missing: run 'npm ci' in $repo"
  exit 1
fi

if [ $# -eq 0 ]; then
  set -- "$here"/*.test.mjs
fi

concurrency=${TEST_CONCURRENCY:-}
if [ -z "$concurrency" ] && [ -n "${BAYEUXD_WRAPPER:-}" ]; then
  concurrency=1
fi

set -- --test --test-reporter="$reporter" ${concurrency:+--test-concurrency="$concurrency"} "$@"

# A test cancelled because its file's before() hook failed (daemon did not start) or its
# parent timed out did not pass: the TAP summary's "# fail" counts it too, so whoever adds
# up "# pass"/"# fail" lines sees it. Node's own exit status is kept.
status_file=$(mktemp)
trap 'rm -f "$status_file"' EXIT
{ node "$@"; echo $? > "$status_file"; } | awk '
  /^# cancelled [0-9]+$/ { cancelled = $3 }
  /^# fail [0-9]+$/ { fail = $3; held = 1; next }
  held && /^# cancelled [0-9]+$/ {
    print "# fail " (fail + cancelled)
    print $0
    if (cancelled > 0) print "# (the fail count includes " cancelled " cancelled tests)"
    held = 0; next
  }
  { print; fflush() }
  END { if (held) print "# fail " fail }
'
status=$(cat "$status_file")
exit "${status:-1}"

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


if [ -n "$concurrency" ]; then
  exec node --test --test-reporter="$reporter" --test-concurrency="$concurrency" "$@"
fi
exec node --test --test-reporter="$reporter" "$@"

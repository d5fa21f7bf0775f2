#!/bin/sh
# publish.sh — publish one message to bayeuxd from a shell, with curl.
#
#   examples/publish.sh CHANNEL JSON
#   BAYEUX_URL=http://127.0.0.1:8080 BAYEUX_TOKEN_FILE=/etc/bayeuxd/token \
#       examples/publish.sh /chat/demo '{"text":"hello"}'
#
# It uses the plain form, POST /publish/<channel> with the data as the body;
# the Bayeux form, POST /cometd with [{"channel":…,"data":…}], is the same
# publish (see examples/publish.py). The token goes in an Authorization
# header read from a file, never on the command line (ps would show it).
# Exits 0 when the broker accepted the message, non-zero otherwise, and
# prints the broker's JSON answer either way.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 CHANNEL JSON   (env: BAYEUX_URL, BAYEUX_TOKEN_FILE)" >&2
	exit 2
fi
channel=$1
data=$2
url=${BAYEUX_URL:-http://127.0.0.1:8080}

case $channel in
/*) ;;
*) echo "$0: the channel must start with /, got '$channel'" >&2; exit 2 ;;
esac

# curl reads the header from stdin ("-H @-"), so the token is not in argv.
header=""
if [ -n "${BAYEUX_TOKEN_FILE:-}" ]; then
	header="Authorization: Bearer $(cat "$BAYEUX_TOKEN_FILE")"
fi

printf '%s\n' "$header" | curl --silent --show-error --fail-with-body \
	--max-time 10 \
	-H @- \
	-H 'Content-Type: application/json' \
	--data-binary "$data" \
	"$url/publish$channel"

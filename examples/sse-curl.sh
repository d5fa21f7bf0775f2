#!/bin/sh
# Watch channels of a running bayeuxd with nothing but curl: a plain
# Server-Sent Events stream, one event per message.
#
#   examples/sse-curl.sh '/chat/**' [more channels...]
#
# BAYEUX_URL is the Bayeux endpoint (default http://127.0.0.1:8080/cometd).
# Each message arrives as
#
#   id: <session>-<n>
#   data: {"channel":"/chat/room","data":{...}}
#
# with a ":" comment line every --sse-heartbeat when nothing happens. Try it:
#   bayeuxd --allow-local-publish &
#   examples/sse-curl.sh '/chat/**' &
#   curl -d '{"text":"hello"}' http://127.0.0.1:8080/publish/chat/room
set -eu
url=${BAYEUX_URL:-http://127.0.0.1:8080/cometd}
if [ $# -eq 0 ]; then
	echo "usage: $0 CHANNEL [CHANNEL...]   (e.g. '/chat/**')" >&2
	exit 2
fi
query=""
for ch in "$@"; do
	query="$query${query:+&}subscribe=$ch"
done
# -N: print each event as it arrives (no output buffering).
exec curl -sS -N -H 'Accept: text/event-stream' "$url/sse?$query"

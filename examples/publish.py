#!/usr/bin/env python3
"""publish.py — publish to bayeuxd from Python with the standard library only.

    examples/publish.py CHANNEL JSON [JSON...]
    BAYEUX_URL=http://127.0.0.1:8080/cometd BAYEUX_TOKEN_FILE=/etc/bayeuxd/token \\
        examples/publish.py /chat/demo '{"text": "hello"}'

Sends one Bayeux request, a JSON array with one publish message per JSON
argument and no clientId (no handshake: a backend's publish), with the
publish token as "Authorization: Bearer <token>". Prints the broker's replies
and exits 0 when every message was accepted, 1 otherwise.
"""
import json
import os
import sys
import urllib.error
import urllib.request


def publish(url, channel, datas, token=None, timeout=10):
    """Publishes each of datas on channel; returns the list of replies."""
    messages = [{"channel": channel, "data": d, "id": str(i + 1)}
                for i, d in enumerate(datas)]
    req = urllib.request.Request(url, data=json.dumps(messages).encode("utf-8"),
                                 method="POST")
    req.add_header("Content-Type", "application/json; charset=utf-8")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    channel = argv[1]
    try:
        datas = [json.loads(a) for a in argv[2:]]
    except ValueError as e:
        print(f"publish.py: not JSON: {e}", file=sys.stderr)
        return 2
    url = os.environ.get("BAYEUX_URL", "http://127.0.0.1:8080/cometd")
    token = None
    if os.environ.get("BAYEUX_TOKEN_FILE"):
        with open(os.environ["BAYEUX_TOKEN_FILE"], encoding="utf-8") as f:
            token = f.read().strip()
    try:
        replies = publish(url, channel, datas, token)
    except urllib.error.HTTPError as e:
        print(f"publish.py: HTTP {e.code}: {e.read().decode('utf-8', 'replace')}",
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"publish.py: cannot reach {url}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(replies))
    return 0 if all(r.get("successful") for r in replies) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

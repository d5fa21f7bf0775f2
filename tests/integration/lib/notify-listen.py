#!/usr/bin/env python3
# Binds a unix datagram socket (argv[1]) as systemd's NOTIFY_SOCKET would be,
# prints "bound" once it is, then each datagram received on one line (newlines
# inside a datagram shown as '|'). Exits after argv[2] seconds (default 60)
# or when stdin closes. Used by tests/integration/daemon.test.mjs: Node has no
# unix datagram sockets.
import os, select, socket, sys, time

path = sys.argv[1]
limit = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("bound", flush=True)
end = time.monotonic() + limit
while time.monotonic() < end:
    r, _, _ = select.select([s, sys.stdin], [], [], 0.2)
    if sys.stdin in r and not sys.stdin.readline():
        break
    if s in r:
        data = s.recv(65536).decode("utf-8", "replace")
        print(data.replace("\n", "|"), flush=True)
s.close()
os.unlink(path)

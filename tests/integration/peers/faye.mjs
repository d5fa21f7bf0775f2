#!/usr/bin/env node
// Peer server: Faye's Node adapter, started the way the tests start bayeuxd.
// Used only to validate the harness.
import http from 'node:http';
import faye from 'faye';
import {parseArgs} from './args.mjs';

const opts = parseArgs(process.argv.slice(2));
const bayeux = new faye.NodeAdapter({mount: opts.path, timeout: opts.timeout / 1000});
const server = http.createServer((req, res) => {
  res.statusCode = 404;
  res.end();
});
bayeux.attach(server);
server.listen(opts.port, opts.host, () => {
  const {port} = server.address();
  console.error(`faye peer: listening on http://${opts.host}:${port}${opts.path}`);
});
function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

#!/usr/bin/env node
// Peer server: the CometD project's own Node.js server (cometd-nodejs-server),
// started the way the tests start bayeuxd. Used only to validate the harness.
import http from 'node:http';
import cometdServerPkg from 'cometd-nodejs-server';
import {parseArgs} from './args.mjs';

const opts = parseArgs(process.argv.slice(2));
const cometd = cometdServerPkg.createCometDServer({
  timeout: opts.timeout, interval: opts.interval, maxInterval: opts.maxInterval,
  logLevel: 'info',
});
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === opts.path || url.pathname.startsWith(opts.path + '/')) {
    cometd.handle(req, res);
  } else {
    res.statusCode = 404;
    res.end();
  }
});
server.listen(opts.port, opts.host, () => {
  const {port} = server.address();
  console.error(`cometd peer: listening on http://${opts.host}:${port}${opts.path}`);
});
function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

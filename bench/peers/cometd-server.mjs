// cometd-nodejs-server (the CometD project's Node server), for bench/compare.
// It binds sessions to the BAYEUX_BROWSER cookie: clients must keep cookies.
import http from 'node:http';
import cometd from 'cometd-nodejs-server';
import { parseArgs, exitOnSignal } from './common.mjs';

const opts = parseArgs('cometd-server.mjs', process.argv.slice(2));
const cometdServer = cometd.createCometDServer({ timeout: opts.timeout });
const server = http.createServer(cometdServer.handle);
exitOnSignal(server);
server.listen(opts.port, opts.host, () => {
  const { address, port } = server.address();
  console.log(`ready cometd-nodejs-server http://${address}:${port}/cometd timeout=${opts.timeout}ms pid=${process.pid}`);
});

// Faye (npm `faye`, NodeAdapter) mounted at /cometd, for bench/compare.
import http from 'node:http';
import faye from 'faye';
import { parseArgs, exitOnSignal } from './common.mjs';

const opts = parseArgs('faye-server.mjs', process.argv.slice(2));
// Faye's timeout is in seconds; ours is in milliseconds.
const bayeux = new faye.NodeAdapter({ mount: '/cometd', timeout: opts.timeout / 1000 });
const server = http.createServer();
bayeux.attach(server);
exitOnSignal(server);
server.listen(opts.port, opts.host, () => {
  const { address, port } = server.address();
  console.log(`ready faye ${faye.VERSION} http://${address}:${port}/cometd timeout=${opts.timeout}ms pid=${process.pid}`);
});

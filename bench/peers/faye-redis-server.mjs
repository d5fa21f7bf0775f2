// Faye (npm `faye`, NodeAdapter) at /cometd with the faye-redis engine, for the
// cluster benchmark (bench/cluster.mjs): several of these share one Redis.
//   node bench/peers/faye-redis-server.mjs --port P --timeout MS --redis-port R
import http from 'node:http';
import { createRequire } from 'node:module';
import faye from 'faye';
import { parseArgs, exitOnSignal } from './common.mjs';

const require = createRequire(import.meta.url);
const fayeRedis = require('faye-redis');

const argv = process.argv.slice(2);
const at = argv.indexOf('--redis-port');
if (at < 0 || !Number.isInteger(Number(argv[at + 1]))) {
  console.error('faye-redis-server.mjs: --redis-port PORT is required');
  process.exit(2);
}
const redisPort = Number(argv[at + 1]);
argv.splice(at, 2);
const opts = parseArgs('faye-redis-server.mjs', argv);
const bayeux = new faye.NodeAdapter({
  mount: '/cometd',
  timeout: opts.timeout / 1000,
  engine: { type: fayeRedis, host: '127.0.0.1', port: redisPort, namespace: 'fayebench' },
});
const server = http.createServer();
bayeux.attach(server);
exitOnSignal(server);
server.listen(opts.port, opts.host, () => {
  const { address, port } = server.address();
  console.log(`ready faye ${faye.VERSION} + faye-redis http://${address}:${port}/cometd pid=${process.pid}`);
});

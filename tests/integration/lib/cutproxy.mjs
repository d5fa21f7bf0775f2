// A fault-injecting TCP proxy on loopback for the ack tests: bytes from the client go
// to the daemon untouched; of the responses that carry deliveries (a chunk holding
// `"data":`), a share is cut in the middle of its body: the first half is forwarded,
// then both connections are destroyed, as a proxy restart or a phone changing cells
// would do. The choice is made by a seeded generator, so a run is repeatable.
import net from 'node:net';

/** Mulberry32: a small seeded generator (same cuts for the same seed and traffic). */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Starts the proxy in front of 127.0.0.1:targetPort. share: 0..1, the fraction of
 * delivery-carrying responses to cut. Resolves {port, stats, close()}; stats counts
 * responses seen with deliveries (`withData`) and cut (`cut`).
 */
export function startCutProxy(targetPort, {share = 0.2, seed = 12} = {}) {
  const random = rng(seed);
  const stats = {connections: 0, withData: 0, cut: 0};
  const sockets = new Set();
  const server = net.createServer((client) => {
    stats.connections += 1;
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d) => {
      const text = d.toString('latin1');
      if (text.includes('"data":')) {
        stats.withData += 1;
        if (random() < share) {
          stats.cut += 1;
          // Cut inside the body: after the headers (when this chunk has them) and
          // half of what follows.
          const head = text.indexOf('\r\n\r\n');
          const bodyStart = head >= 0 ? head + 4 : 0;
          const at = bodyStart + Math.max(1, Math.floor((d.length - bodyStart) / 2));
          client.write(d.subarray(0, at), drop);
          return;
        }
      }
      client.write(d);
    });
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        stats,
        close: () => new Promise((res) => {
          for (const s of sockets) s.destroy();
          server.close(() => res());
        }),
      });
    });
  });
}

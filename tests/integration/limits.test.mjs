// Limits against a real bayeuxd (docs/SECURITY.md, "Limits"): slow and half-open
// connections time out (--connection-timeout) without holding up other clients;
// --max-subscriptions; the per-address limits leave loopback clients alone. Loopback only.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {startDaemon, stopDaemonClean, SLOW} from './lib/daemon.mjs';
import {RawSession} from './lib/wire.mjs';

const CONN_TIMEOUT_S = 2;
let daemon;

before(async () => {
  daemon = await startDaemon(['--timeout', '5000', '--connection-timeout', String(CONN_TIMEOUT_S),
    '--max-subscriptions', '2', '--max-sessions-per-ip', '1', '--max-handshakes-per-ip', '1']);
});

after(async () => {
  await stopDaemonClean(daemon);
});

/** Opens a connection, writes `bytes`, never finishes; resolves ms until the server closes it. */
function halfSent(bytes, limitMs) {
  return new Promise((resolve) => {
    const started = performance.now();
    const sock = net.connect(daemon.port, '127.0.0.1', () => sock.write(bytes));
    const timer = setTimeout(() => { sock.destroy(); resolve(Infinity); }, limitMs);
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(timer); resolve(performance.now() - started); });
    sock.resume();
  });
}

describe('slowloris: half-sent requests are closed after --connection-timeout', () => {
  test('20 half-sent requests are closed, and meanwhile another client gets its message at once',
    {timeout: 30000}, async () => {
      const path = new URL(daemon.url).pathname;
      const limit = (CONN_TIMEOUT_S * 1000 + 4000) * SLOW;
      const slow = [];
      for (let i = 0; i < 10; i++) {
        slow.push(halfSent(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `, limit)); // headers never end
        slow.push(halfSent(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          'Content-Length: 1000\r\n\r\n[{"chan', limit)); // body never ends
      }
      // While they hang: a whole Bayeux conversation, each step answered promptly.
      const a = new RawSession(daemon.url);
      const b = new RawSession(daemon.url);
      await a.handshake();
      await a.connect({advice: {timeout: 0}});
      await a.subscribe('/slow/ok');
      await b.handshake();
      const held = a.connect();
      const t0 = performance.now();
      const pub = await b.exchange([b.publishMessage('/slow/ok', {n: 1})]);
      assert.equal(pub[0].successful, true);
      const res = await held;
      assert.ok(res.json?.some((m) => m.channel === '/slow/ok' && m.data?.n === 1), res.text);
      assert.ok(performance.now() - t0 < 1000 * SLOW, `delivery took ${performance.now() - t0} ms`);
      const closed = await Promise.all(slow);
      for (const ms of closed) {
        assert.ok(ms !== Infinity, 'a half-sent request was never closed');
        assert.ok(ms >= (CONN_TIMEOUT_S - 0.5) * 1000, `closed after ${ms} ms, before the timeout`);
      }
    });

  test('an idle connection that sends nothing is closed too', {timeout: 20000}, async () => {
    const ms = await halfSent('', (CONN_TIMEOUT_S * 1000 + 4000) * SLOW);
    assert.ok(ms !== Infinity && ms >= (CONN_TIMEOUT_S - 0.5) * 1000, `closed after ${ms} ms`);
  });

  test('a held /meta/connect is not cut by --connection-timeout (held longer than it)',
    {timeout: 20000}, async () => {
      const s = new RawSession(daemon.url);
      await s.handshake();
      await s.connect({advice: {timeout: 0}});
      const res = await s.connect({}, {timeoutMs: 15000});
      assert.equal(res.status, 200, res.text);
      assert.ok(res.elapsedMs > CONN_TIMEOUT_S * 1000 + 1000, `returned after ${res.elapsedMs} ms`);
      assert.equal(res.json?.[0]?.successful, true, res.text);
    });
});

describe('limits', () => {
  test('--max-subscriptions 2: a third subscription is 403::too_many_subscriptions', {timeout: 10000},
    async () => {
      const s = new RawSession(daemon.url);
      await s.handshake();
      await s.subscribe(['/l/a', '/l/b']);
      const r = await s.exchange([{channel: '/meta/subscribe', clientId: s.clientId, subscription: '/l/c',
        id: 'x'}]);
      assert.equal(r[0].successful, false);
      assert.equal(r[0].error, '403::too_many_subscriptions');
    });

  test('loopback clients are not limited per address (the proxy on this host limits)', {timeout: 10000},
    async () => {
      for (let i = 0; i < 5; i++) {
        const s = new RawSession(daemon.url);
        await s.handshake(); // throws unless successful
      }
    });
});

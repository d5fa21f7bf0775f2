// WebSocket (PROTOCOL.md §9): the real CometD client (npm cometd + cometd-nodejs-client,
// whose WebSocket is the `ws` package) and Faye's Node client (faye-websocket) with
// their default transports, beside long-polling clients; the raw RFC 6455 wire for every
// bad input (our own frame encoder, lib/ws.mjs); a consumer that never reads.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {describe, test} from 'node:test';
import {AckExtension} from 'cometd';

import {CometDClient, FayeClient, sleep, uniqueChannel, waitFor, withTimeout} from './lib/clients.mjs';
import {SLOW, daemonArgv, runDaemonOnce, startDaemon, stopDaemonClean, withDaemon} from './lib/daemon.mjs';
import {request} from './lib/wire.mjs';
import {acceptFor, upgrade} from './lib/ws.mjs';

// An ASan build keeps freed memory in quarantine: its RSS says nothing about ours.
const SANITIZED = (() => {
  try {
    return fs.readFileSync(daemonArgv([]).at(-1)).includes('__asan_init');
  } catch {
    return false;
  }
})();

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

/** Handshake and subscribe over a raw socket, CometD's way. Resolves the clientId. */
async function rawBayeux(ws, channel) {
  ws.sendJson([{channel: '/meta/handshake', id: '1', version: '1.0',
    supportedConnectionTypes: ['websocket']}]);
  const [hs] = await ws.nextJson((a) => a[0] && a[0].channel === '/meta/handshake');
  assert.equal(hs.successful, true, JSON.stringify(hs));
  const clientId = hs.clientId;
  if (channel) {
    ws.sendJson([{channel: '/meta/subscribe', id: '2', clientId, subscription: channel}]);
    const [sub] = await ws.nextJson((a) => a[0] && a[0].channel === '/meta/subscribe');
    assert.equal(sub.successful, true, JSON.stringify(sub));
  }
  return clientId;
}

describe('CometD client, default transports', () => {
  test('first handshake succeeds over websocket; messages round-trip with a long-polling client', async () => {
    await withDaemon([], async (d) => {
      const ws = new CometDClient(d.url, {websocket: true});
      const lp = new CometDClient(d.url);
      const handshakes = [];
      ws.cometd.addListener('/meta/handshake', (m) => handshakes.push(m));
      try {
        const reply = await ws.handshake();
        assert.ok(reply.supportedConnectionTypes.includes('websocket'));
        assert.equal(handshakes.length, 1);
        assert.equal(handshakes[0].successful, true, 'no failed handshake first');
        assert.equal(ws.transportType(), 'websocket');
        await lp.handshake();
        assert.equal(lp.transportType(), 'long-polling');
        const ch = uniqueChannel('/chat/ws');
        const gotWs = [];
        const gotLp = [];
        await ws.subscribe(ch, (m) => gotWs.push(m.data));
        await lp.subscribe(ch, (m) => gotLp.push(m.data));
        const pub = await ws.publish(ch, {text: 'from ws'});
        assert.equal(pub.successful, true);
        await lp.publish(ch, {text: 'from lp'});
        await waitFor(() => gotWs.length === 2 && gotLp.length === 2, 5000, 'both deliveries');
        assert.deepEqual(gotWs.map((x) => x.text).sort(), ['from lp', 'from ws']);
        assert.deepEqual(gotLp.map((x) => x.text).sort(), ['from lp', 'from ws']);
        // Everything went over one socket: still websocket, still connected.
        assert.equal(ws.transportType(), 'websocket');
      } finally {
        await ws.disconnect();
        await lp.disconnect();
      }
    });
  });

  test('a held connect over the socket is answered at the poll timeout (heartbeat)', async () => {
    await withDaemon(['--timeout', '600'], async (d) => {
      const c = new CometDClient(d.url, {websocket: true});
      try {
        await c.handshake();
        await c.waitConnected();
        const before = c.metaConnects.length;
        await sleep(2000 * SLOW);
        const n = c.metaConnects.length - before;
        assert.ok(n >= 2 && n <= 5, `${n} connect replies in 2 s with a 600 ms timeout`);
        assert.ok(c.metaConnects.every((m) => m.successful));
        assert.equal(c.transportType(), 'websocket');
      } finally {
        await c.disconnect();
      }
    });
  });

  test('--websocket 0: not offered, the upgrade gets 400, the client falls back to long polling', async () => {
    await withDaemon(['--websocket', '0'], async (d) => {
      const r = await upgrade(d.url);
      assert.equal(r.status, 400);
      assert.match(r.text, /--websocket 0/);
      const c = new CometDClient(d.url, {websocket: true});
      try {
        // The client reports the failed upgrade as a failed handshake, then falls back
        // by itself (no disconnect in between, as a page would).
        const seen = [];
        const ok = new Promise((resolve) => {
          c.cometd.addListener('/meta/handshake', (m) => {
            seen.push(m);
            if (m.successful) resolve(m);
          });
        });
        c.cometd.handshake();
        const reply = await withTimeout(ok, 10000, 'a handshake after the fallback');
        assert.equal(seen[0].successful, false, 'the failed upgrade is reported first');
        assert.ok(!reply.supportedConnectionTypes.includes('websocket'));
        assert.equal(c.transportType(), 'long-polling');
        const ch = uniqueChannel('/chat/fallback');
        const got = [];
        await c.subscribe(ch, (m) => got.push(m.data));
        await c.publish(ch, {n: 1});
        await waitFor(() => got.length === 1, 5000, 'delivery over long polling');
      } finally {
        await c.disconnect();
      }
    });
  });

  test('a broker restart mid-chat: the client re-handshakes over websocket and chats again', async () => {
    let d = await startDaemon([]);
    const port = d.port;
    const c = new CometDClient(d.url, {websocket: true,
      config: {maxBackoff: 500, backoffIncrement: 100}});
    const ch = uniqueChannel('/chat/restart');
    const got = [];
    const subscribe = () => c.cometd.subscribe(ch, (m) => got.push(m.data));
    let handshakes = 0;
    c.cometd.addListener('/meta/handshake', (m) => {
      if (m.successful) {
        handshakes += 1;
        subscribe();
      }
    });
    try {
      await c.handshake();
      await waitFor(() => handshakes === 1);
      await sleep(200);
      await c.publish(ch, {n: 1});
      await waitFor(() => got.length === 1, 5000, 'first delivery');
      await stopDaemonClean(d);
      d = await startDaemon(['--listen', `127.0.0.1:${port}`], {listen: false});
      await waitFor(() => handshakes === 2, 20000, 're-handshake after the restart');
      assert.equal(c.transportType(), 'websocket');
      await sleep(300);
      await c.publish(ch, {n: 2});
      await waitFor(() => got.some((x) => x.n === 2), 5000, 'delivery after the restart');
    } finally {
      await c.disconnect().catch(() => {});
      await stopDaemonClean(d);
    }
  });

  test('1,000 messages from one publisher reach a websocket and a long-polling subscriber in order', async () => {
    await withDaemon([], async (d) => {
      const pub = new CometDClient(d.url, {websocket: true});
      const ws = new CometDClient(d.url, {websocket: true});
      const lp = new CometDClient(d.url);
      const ch = uniqueChannel('/load/order');
      const gotWs = [];
      const gotLp = [];
      try {
        await pub.handshake();
        await ws.handshake();
        await lp.handshake();
        await ws.subscribe(ch, (m) => gotWs.push(m.data.n));
        await lp.subscribe(ch, (m) => gotLp.push(m.data.n));
        const acks = [];
        for (let i = 0; i < 1000; i++) acks.push(pub.publish(ch, {n: i}, 30000));
        await Promise.all(acks);
        await waitFor(() => gotWs.length >= 1000 && gotLp.length >= 1000, 20000, '1,000 deliveries each');
        const want = Array.from({length: 1000}, (_, i) => i);
        assert.deepEqual(gotWs, want);
        assert.deepEqual(gotLp, want);
      } finally {
        await pub.disconnect();
        await ws.disconnect();
        await lp.disconnect();
      }
    });
  });
});

describe('--auth hmac and --acl over a socket', () => {
  test('a handshake over the socket needs a token; the grants and the ACL decide subscribes and publishes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-ws-auth-'));
    const secret = path.join(dir, 'secret');
    const acl = path.join(dir, 'acl');
    fs.writeFileSync(secret, 'a websocket-test secret of more than 32 bytes\n', {mode: 0o600});
    fs.writeFileSync(acl, 'allow authenticated subscribe /chat/**\nallow authenticated publish /chat/**\n'
      + 'deny user:bob subscribe /chat/admin/**\n');
    const mint = async (...args) => {
      const r = await runDaemonOnce(['token', '--secret-file', secret, ...args]);
      assert.equal(r.code, 0, r.stderr);
      return r.stdout.trim();
    };
    try {
      await withDaemon(['--auth', 'hmac', '--auth-secret-file', secret, '--acl', acl], async (d) => {
        const {ws} = await upgrade(d.url);
        const hs = {channel: '/meta/handshake', id: 'h', version: '1.0', supportedConnectionTypes: ['websocket']};
        ws.sendJson([hs]);
        const [denied] = await ws.nextJson();
        assert.equal(denied.successful, false, JSON.stringify(denied));
        assert.match(denied.error, /^403:/);
        const token = await mint('--sub', 'bob', '--subscribe', '/chat/**', '--publish', '/chat/lobby');
        ws.sendJson([{...hs, ext: {auth: {token}}}]);
        const [ok] = await ws.nextJson();
        assert.equal(ok.successful, true, JSON.stringify(ok));
        const clientId = ok.clientId;
        const exchange = async (msg) => {
          ws.sendJson([{...msg, clientId}]);
          const [r] = await ws.nextJson((a) => a[0].id === msg.id);
          return r;
        };
        assert.equal((await exchange({channel: '/meta/subscribe', id: 's1', subscription: '/chat/lobby'})).successful, true);
        const admin = await exchange({channel: '/meta/subscribe', id: 's2', subscription: '/chat/admin/x'});
        assert.equal(admin.successful, false, 'the ACL denies bob');
        const other = await exchange({channel: '/chat/other', id: 'p1', data: {x: 1}});
        assert.equal(other.successful, false, 'the token grants /chat/lobby only');
        ws.destroy();
      });
    } finally {
      fs.rmSync(dir, {recursive: true, force: true});
    }
  });
});

describe('CometD client with the ack extension over websocket', () => {
  test('deliveries come with connect replies (ext.ack), in order, none lost', async () => {
    await withDaemon([], async (d) => {
      const sub = new CometDClient(d.url, {websocket: true});
      sub.cometd.registerExtension('ack', new AckExtension());
      const pub = new CometDClient(d.url, {websocket: true});
      const ch = uniqueChannel('/ack/ws');
      const got = [];
      try {
        const hs = await sub.handshake();
        assert.ok(hs.ext && hs.ext.ack, JSON.stringify(hs));
        assert.equal(sub.transportType(), 'websocket');
        await sub.subscribe(ch, (m) => got.push(m.data.n));
        await pub.handshake();
        for (let i = 0; i < 50; i++) await pub.publish(ch, {n: i});
        await waitFor(() => got.length >= 50, 10000, 'acked deliveries');
        assert.deepEqual(got, Array.from({length: 50}, (_, i) => i));
        // The connect replies carried the batches.
        assert.ok(sub.metaConnects.some((m) => m.ext && typeof m.ext.ack === 'number' && m.ext.ack > 0),
          JSON.stringify(sub.metaConnects.slice(-3)));
      } finally {
        await sub.disconnect();
        await pub.disconnect();
      }
    });
  });
});

describe('Faye client, default transports', () => {
  test('Faye ends up on websocket and chats with a long-polling Faye client', async () => {
    await withDaemon([], async (d) => {
      const ws = new FayeClient(d.url, {websocket: true});
      const lp = new FayeClient(d.url);
      const ch = uniqueChannel('/chat/faye');
      const gotWs = [];
      const gotLp = [];
      try {
        await ws.handshake();
        await lp.handshake();
        await ws.subscribe(ch, (c, data) => gotWs.push(data));
        await lp.subscribe(ch, (c, data) => gotLp.push(data));
        await waitFor(() => ws.transportType() === 'websocket', 10000, 'Faye on websocket');
        assert.equal(lp.transportType(), 'long-polling');
        await ws.publish(ch, {text: 'ws'});
        await lp.publish(ch, {text: 'lp'});
        await waitFor(() => gotWs.length === 2 && gotLp.length === 2, 5000, 'both deliveries');
        assert.deepEqual(gotWs.map((x) => x.text).sort(), ['lp', 'ws']);
        assert.deepEqual(gotLp.map((x) => x.text).sort(), ['lp', 'ws']);
      } finally {
        await ws.disconnect();
        await lp.disconnect();
      }
    });
  });
});

describe('the raw wire (RFC 6455)', () => {
  test('the opening handshake: 101 with the right Sec-WebSocket-Accept; pushed deliveries; publish replies without data', async () => {
    await withDaemon(['--allow-local-publish'], async (d) => {
      // RFC 6455 §1.3's own example key.
      const r = await upgrade(d.url + '/handshake', {key: 'dGhlIHNhbXBsZSBub25jZQ=='});
      assert.equal(r.status, 101);
      assert.equal(r.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      assert.equal(acceptFor('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
      assert.equal(r.headers.upgrade.toLowerCase(), 'websocket');
      const ws = r.ws;
      const ch = uniqueChannel('/raw/push');
      const clientId = await rawBayeux(ws, ch);
      // A connect held until a message? No: the message is pushed, the connect stays held.
      ws.sendJson([{channel: '/meta/connect', id: '3', clientId, connectionType: 'websocket',
        advice: {timeout: 0}}]);
      const [first] = await ws.nextJson((a) => a[0].channel === '/meta/connect');
      assert.equal(first.successful, true);
      ws.sendJson([{channel: '/meta/connect', id: '4', clientId, connectionType: 'websocket'}]);
      await sleep(100);
      const pubRes = await request(d.url, {body: [{channel: ch, data: {n: 1}}]});
      assert.equal(pubRes.status, 200);
      const [msg] = await ws.nextJson((a) => a[0].channel === ch);
      assert.deepEqual(msg.data, {n: 1});
      assert.equal(ws.frames.filter((f) => f.opcode === 1).length, 0, 'the held connect was not answered');
      // A publish over the socket: the reply has no data, the delivery does.
      ws.sendJson([{channel: ch, id: '5', clientId, data: {n: 2}}]);
      const got = [];
      while (got.length < 2) got.push(...await ws.nextJson());
      const reply = got.find((m) => m.id === '5' && m.successful !== undefined);
      assert.ok(reply, JSON.stringify(got));
      assert.equal(reply.data, undefined);
      assert.ok(got.some((m) => m.data && m.data.n === 2));
      ws.destroy();
    });
  });

  test('a socket whose first message is not a handshake is bound to its clientId\'s session', async () => {
    await withDaemon(['--allow-local-publish'], async (d) => {
      const a = (await upgrade(d.url)).ws;
      const ch = uniqueChannel('/raw/rebind');
      const clientId = await rawBayeux(a, ch);
      a.destroy();
      await sleep(100);
      // Published while no socket is open: queued in the session.
      await request(d.url, {body: [{channel: ch, data: {n: 1}}]});
      const b = (await upgrade(d.url)).ws;
      b.sendJson([{channel: '/meta/connect', id: '9', clientId, connectionType: 'websocket',
        advice: {timeout: 0}}]);
      const frames = [];
      while (!frames.some((m) => m.channel === '/meta/connect')) frames.push(...await b.nextJson());
      assert.ok(frames.some((m) => m.channel === ch && m.data.n === 1), JSON.stringify(frames));
      await request(d.url, {body: [{channel: ch, data: {n: 2}}]});
      const [m2] = await b.nextJson((x) => x[0].channel === ch);
      assert.equal(m2.data.n, 2);
      b.destroy();
    });
  });

  test('a closed socket leaves its session for --max-interval, then it expires', async () => {
    await withDaemon(['--max-interval', '1000'], async (d) => {
      const a = (await upgrade(d.url)).ws;
      const clientId = await rawBayeux(a, '/raw/expiry');
      a.destroy();
      await sleep(2500 * SLOW);
      const b = (await upgrade(d.url)).ws;
      b.sendJson([{channel: '/meta/connect', id: 'x', clientId, connectionType: 'websocket'}]);
      const [r] = await b.nextJson();
      assert.equal(r.successful, false, JSON.stringify(r));
      assert.match(r.error, /^402::/);
      assert.equal(r.advice.reconnect, 'handshake');
      b.destroy();
    });
  });

  test('a message over --max-body closes 1009', async () => {
    await withDaemon(['--max-body', '2048'], async (d) => {
      const {ws} = await upgrade(d.url);
      ws.sendText(JSON.stringify([{channel: '/meta/handshake', pad: 'x'.repeat(4000)}]));
      const c = await ws.nextClose();
      assert.equal(c.code, 1009);
      await ws.waitClosed();
    });
  });

  test('invalid UTF-8 in a text frame closes 1007', async () => {
    await withDaemon([], async (d) => {
      const {ws} = await upgrade(d.url);
      ws.send(1, Buffer.from([0x5b, 0x22, 0xc3, 0x28, 0x22, 0x5d])); // ["\xc3("]
      const c = await ws.nextClose();
      assert.equal(c.code, 1007);
      await ws.waitClosed();
    });
  });

  test('an unmasked client frame closes 1002', async () => {
    await withDaemon([], async (d) => {
      const {ws} = await upgrade(d.url);
      ws.send(1, '[]', {mask: false});
      const c = await ws.nextClose();
      assert.equal(c.code, 1002);
      await ws.waitClosed();
    });
  });

  test('a binary frame closes 1003', async () => {
    await withDaemon([], async (d) => {
      const {ws} = await upgrade(d.url);
      ws.send(2, Buffer.from([1, 2, 3]));
      assert.equal((await ws.nextClose()).code, 1003);
    });
  });

  test('malformed JSON and a non-Bayeux array get the HTTP answers; the socket stays open', async () => {
    await withDaemon([], async (d) => {
      const httpBad = await request(d.url, {body: '[{"channel":'});
      const httpOdd = await request(d.url, {body: '[1,2]'});
      const {ws} = await upgrade(d.url);
      ws.sendText('[{"channel":');
      const [e1] = await ws.nextJson();
      assert.equal(e1.successful, false);
      assert.ok(e1.error.startsWith(`${httpBad.status}::`), e1.error);
      assert.ok(e1.error.includes(httpBad.text.trim()), `${e1.error} vs ${httpBad.text}`);
      ws.sendText('[1,2]');
      const odd = await ws.nextJson();
      if (httpOdd.status === 200) assert.deepEqual(odd, httpOdd.json);
      else assert.ok(odd[0].error.startsWith(`${httpOdd.status}::`));
      // Still open: a handshake works.
      await rawBayeux(ws);
      ws.destroy();
    });
  });

  test('Origin: its own host and --allow-origin are upgraded; another site gets 403', async () => {
    await withDaemon(['--allow-origin', 'http://app.example'], async (d) => {
      const own = await upgrade(d.url, {headers: {Origin: d.origin}});
      assert.equal(own.status, 101);
      own.ws.destroy();
      const allowed = await upgrade(d.url, {headers: {Origin: 'http://app.example'}});
      assert.equal(allowed.status, 101);
      allowed.ws.destroy();
      const evil = await upgrade(d.url, {headers: {Origin: 'http://evil.example'}});
      assert.equal(evil.status, 403);
      const nul = await upgrade(d.url, {headers: {Origin: 'null'}});
      assert.equal(nul.status, 403);
    });
  });

  test('bad upgrades: wrong version 426, bad key 400', async () => {
    await withDaemon([], async (d) => {
      const v = await upgrade(d.url, {headers: {'Sec-WebSocket-Version': '8'}});
      assert.equal(v.status, 426);
      assert.equal(v.headers['sec-websocket-version'], '13');
      const k = await upgrade(d.url, {key: 'short'});
      assert.equal(k.status, 400);
    });
  });

  test('an idle socket gets a ping; a peer that answers nothing is closed', async () => {
    await withDaemon(['--ws-ping', '300'], async (d) => {
      const {ws} = await upgrade(d.url);
      const ping = await ws.next((f) => f.opcode === 9, 2000, 'a ping');
      assert.ok(ping);
      await ws.waitClosed(3000);
      // One that answers stays.
      const ok = (await upgrade(d.url)).ws;
      const t0 = Date.now();
      while (Date.now() - t0 < 1500 * SLOW) {
        const p = await ok.next((f) => f.opcode === 9, 2000, 'a ping');
        ok.send(10, p.payload);
      }
      assert.equal(ok.closed, false);
      ok.destroy();
    });
  });

  test('a consumer that never reads: RSS stays bounded, closed 1008, a healthy subscriber gets all 20,000', async () => {
    await withDaemon(['--allow-local-publish', '--max-queue', '2000', '--ws-max-pending', '1048576'], async (d) => {
      const ch = uniqueChannel('/load/slow');
      const slow = (await upgrade(d.url)).ws;
      await rawBayeux(slow, ch);
      slow.sock.pause(); // never reads again (until the end)
      const healthy = new CometDClient(d.url, {websocket: true});
      let got = 0;
      let inOrder = true;
      await healthy.handshake();
      await healthy.subscribe(ch, (m) => {
        if (m.data.n !== got) inOrder = false;
        got += 1;
      });
      const rss0 = rssKiB(d.pid);
      const pad = 'x'.repeat(1000);
      let maxRss = rss0;
      for (let i = 0; i < 20000; i += 200) {
        const batch = [];
        for (let j = i; j < i + 200; j++) batch.push({channel: ch, data: {n: j, pad}});
        const r = await request(d.url, {body: batch});
        assert.equal(r.status, 200);
        maxRss = Math.max(maxRss, rssKiB(d.pid));
      }
      await waitFor(() => got >= 20000, 30000, `healthy subscriber: ${got} of 20000`);
      assert.equal(got, 20000);
      assert.ok(inOrder, 'in order');
      const grew = maxRss - rss0;
      console.log(`# RSS ${rss0} KiB before, at most ${maxRss} KiB during (+${grew} KiB) for 20 MB published`);
      if (!SANITIZED) assert.ok(grew < 12 * 1024, `RSS grew ${grew} KiB`);
      // The slow socket was closed with 1008 after the frames it was sent.
      slow.sock.resume();
      const c = await slow.nextClose(10000);
      assert.equal(c.code, 1008);
      await healthy.disconnect();
    });
  });
});

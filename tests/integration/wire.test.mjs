// Raw HTTP against a real bayeuxd: the wire rules of PROTOCOL.md §1–§5 and §7, the
// daemon's command line and its shutdown. Every request goes to 127.0.0.1.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {startDaemon, stopDaemonClean, runDaemonOnce, SLOW, PEER} from './lib/daemon.mjs';
import {RawSession, request, newId, sleep} from './lib/wire.mjs';

// Main daemon: a 5 s poll timeout, long enough to observe a held connect, short enough
// that a forgotten one does not stall a test.
const HOLD_MS = 5000;
let daemon;

before(async () => {
  daemon = await startDaemon(['--timeout', String(HOLD_MS)]);
});

after(async () => {
  await stopDaemonClean(daemon);
});

/**
 * A handshaken session whose first connect has been done. Like the CometD JS client, the
 * first connect carries advice {timeout: 0} (answer at once); the test 'the first connect
 * after handshake returns at once' checks the same without that advice.
 */
async function connectedSession(url = daemon.url) {
  const s = new RawSession(url);
  await s.handshake();
  const first = await s.connect({advice: {timeout: 0}});
  assert.equal(first.status, 200, first.text);
  const r = first.json.find((m) => m.channel === '/meta/connect');
  assert.equal(r?.successful, true, `first connect: ${first.text}`);
  return s;
}

/** Start a connect that should be held; returns {promise, settled()} without awaiting it. */
function startHeld(s, extra = {}, opts = {}) {
  let settled = false;
  const promise = s.connect(extra, {timeoutMs: HOLD_MS + 10000, ...opts});
  promise.then(() => { settled = true; }, () => { settled = true; });
  return {promise, settled: () => settled};
}

function reply(res, channel, id) {
  const r = res.json?.find((m) => m.channel === channel && (id === undefined || m.id === id));
  assert.ok(r, `no ${channel} reply${id ? ` with id ${id}` : ''} in HTTP ${res.status}: ${res.text.slice(0, 400)}`);
  return r;
}

describe('handshake', () => {
  test('handshake reply: successful, alphanumeric clientId (22+), version, long-polling offered, retry advice',
    {timeout: 10000}, async () => {
      const s = new RawSession(daemon.url);
      const res = await s.post([{channel: '/meta/handshake', version: '1.0', minimumVersion: '1.0',
        supportedConnectionTypes: ['long-polling', 'callback-polling'], id: 'hs-1'}]);
      assert.equal(res.status, 200, res.text);
      assert.match(res.headers['content-type'] || '', /^application\/json/);
      assert.ok(Array.isArray(res.json), res.text);
      const r = reply(res, '/meta/handshake', 'hs-1');
      assert.equal(r.successful, true, res.text);
      assert.match(r.clientId, /^[A-Za-z0-9]{22,}$/);
      assert.equal(r.version, '1.0');
      assert.ok(Array.isArray(r.supportedConnectionTypes) && r.supportedConnectionTypes.includes('long-polling'),
        res.text);
      assert.equal(r.advice?.reconnect, 'retry', res.text);
    });

  test('two handshakes get different clientIds', {timeout: 10000}, async () => {
    const a = new RawSession(daemon.url);
    const b = new RawSession(daemon.url);
    const ra = await a.handshake();
    const rb = await b.handshake();
    assert.notEqual(ra.clientId, rb.clientId);
  });

  test('handshake sets the BAYEUX_BROWSER cookie', {timeout: 10000}, async () => {
    const s = new RawSession(daemon.url);
    const res = await s.post([{channel: '/meta/handshake', version: '1.0',
      supportedConnectionTypes: ['long-polling'], id: newId()}]);
    const cookies = res.headers['set-cookie'] || [];
    assert.ok(cookies.some((c) => /^BAYEUX_BROWSER=[^;]+/.test(c)), `Set-Cookie: ${JSON.stringify(cookies)}`);
  });

  test('handshake offering only unknown connection types is refused with 301::connection_types_unsupported',
    {timeout: 10000}, async () => {
      const s = new RawSession(daemon.url);
      const res = await s.post([{channel: '/meta/handshake', version: '1.0',
        supportedConnectionTypes: ['carrier-pigeon', 'smoke-signals'], id: 'hs-301'}]);
      assert.equal(res.status, 200, res.text);
      const r = reply(res, '/meta/handshake', 'hs-301');
      assert.equal(r.successful, false, res.text);
      assert.equal(r.error, '301::connection_types_unsupported');
      assert.equal(r.clientId, undefined, 'no session for a refused handshake');
      assert.ok(Array.isArray(r.supportedConnectionTypes) && r.supportedConnectionTypes.includes('long-polling'),
        `reply should list the server's types: ${res.text}`);
    });
});

describe('envelope and HTTP', () => {
  test('a single JSON object (not an array) is accepted as a one-message batch', {timeout: 10000}, async () => {
    const s = new RawSession(daemon.url);
    const res = await s.post({channel: '/meta/handshake', version: '1.0',
      supportedConnectionTypes: ['long-polling'], id: 'obj-1'});
    assert.equal(res.status, 200, res.text);
    assert.ok(Array.isArray(res.json), `response must be an array: ${res.text}`);
    assert.equal(res.json.length, 1);
    assert.equal(reply(res, '/meta/handshake', 'obj-1').successful, true);
  });

  for (const [name, body] of [
    ['truncated array', '[{"channel":"/meta/handshake",'],
    ['plain text', 'hello there'],
    ['trailing garbage', '[{"channel":"/meta/handshake"}] x'],
    ['empty body', ''],
  ]) {
    test(`malformed JSON (${name}) gets HTTP 400`, {timeout: 10000}, async () => {
      const res = await request(daemon.url, {body});
      assert.equal(res.status, 400, `HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    });
  }

  test('every reply echoes the request id (handshake, connect, subscribe, publish, unsubscribe, disconnect)',
    {timeout: 10000}, async () => {
      const s = new RawSession(daemon.url);
      const hs = await s.post([{channel: '/meta/handshake', version: '1.0',
        supportedConnectionTypes: ['long-polling'], id: 'id-hs'}]);
      s.clientId = reply(hs, '/meta/handshake', 'id-hs').clientId;
      const c = await s.connect({id: 'id-conn', advice: {timeout: 0}});
      assert.equal(reply(c, '/meta/connect').id, 'id-conn');
      const ch = `/echo/ids/${process.pid}`;
      const batch = await s.post([
        {channel: '/meta/subscribe', clientId: s.clientId, subscription: ch, id: 'id-sub'},
        {channel: ch, clientId: s.clientId, data: {v: 1}, id: 'id-pub'},
        {channel: '/meta/unsubscribe', clientId: s.clientId, subscription: ch, id: 'id-unsub'},
      ]);
      assert.equal(batch.status, 200, batch.text);
      assert.equal(reply(batch, '/meta/subscribe').id, 'id-sub');
      assert.equal(reply(batch, '/meta/unsubscribe').id, 'id-unsub');
      const pub = batch.json.find((m) => m.channel === ch && m.successful !== undefined);
      assert.ok(pub, `no publish reply: ${batch.text}`);
      assert.equal(pub.id, 'id-pub');
      const d = await s.post([{channel: '/meta/disconnect', clientId: s.clientId, id: 'id-disc'}]);
      assert.equal(reply(d, '/meta/disconnect').id, 'id-disc');
    });

  test('Bayeux responses carry Cache-Control: no-cache, no-store', {timeout: 10000}, async () => {
    const s = new RawSession(daemon.url);
    const hs = await s.post([{channel: '/meta/handshake', version: '1.0',
      supportedConnectionTypes: ['long-polling'], id: newId()}]);
    s.clientId = reply(hs, '/meta/handshake').clientId;
    const c = await s.connect({advice: {timeout: 0}});
    const p = await s.post([s.publishMessage(`/cc/${process.pid}`, {x: 1})]);
    for (const [what, res] of [['handshake', hs], ['connect', c], ['publish', p]]) {
      const cc = (res.headers['cache-control'] || '').toLowerCase();
      assert.ok(cc.includes('no-cache') && cc.includes('no-store'), `${what}: Cache-Control '${cc}'`);
    }
    await s.disconnect();
  });

  test('sub-paths /cometd/handshake, /cometd/connect, /cometd/disconnect and /cometd/any/thing are the endpoint',
    {timeout: 10000}, async () => {
      const s = new RawSession(daemon.url);
      const hs = await s.post([{channel: '/meta/handshake', version: '1.0',
        supportedConnectionTypes: ['long-polling'], id: 'sp-hs'}], {path: '/handshake'});
      assert.equal(hs.status, 200, hs.text);
      s.clientId = reply(hs, '/meta/handshake', 'sp-hs').clientId;
      const c = await s.post([s.connectMessage({id: 'sp-c', advice: {timeout: 0}})], {path: '/connect'});
      assert.equal(c.status, 200, c.text);
      assert.equal(reply(c, '/meta/connect', 'sp-c').successful, true);
      const p = await s.post([s.publishMessage(`/sp/${process.pid}`, {x: 1}, {id: 'sp-p'})], {path: '/any/thing'});
      assert.equal(p.status, 200, p.text);
      assert.equal(reply(p, `/sp/${process.pid}`, 'sp-p').successful, true);
      const d = await s.post([{channel: '/meta/disconnect', clientId: s.clientId, id: 'sp-d'}],
        {path: '/disconnect'});
      assert.equal(d.status, 200, d.text);
      assert.equal(reply(d, '/meta/disconnect', 'sp-d').successful, true);
    });

  test('GET without jsonp gets HTTP 400', {timeout: 10000}, async () => {
    const res = await request(daemon.url, {method: 'GET'});
    assert.equal(res.status, 400, `HTTP ${res.status}: ${res.text.slice(0, 200)}`);
    const res2 = await request(`${daemon.url}/connect?message=%5B%5D`, {method: 'GET'});
    assert.equal(res2.status, 400, `HTTP ${res2.status}: ${res2.text.slice(0, 200)}`);
  });

  test('a body over the default 512 KiB cap gets HTTP 413', {timeout: 15000}, async () => {
    const s = new RawSession(daemon.url);
    await s.handshake();
    const big = JSON.stringify([s.publishMessage(`/big/${process.pid}`, {blob: 'x'.repeat(600 * 1024)})]);
    assert.ok(big.length > 512 * 1024);
    const res = await request(daemon.url, {body: big}).catch((e) => ({status: `error ${e.code || e.message}`}));
    assert.equal(res.status, 413);
  });

  test('a body under the cap (400 KiB) is accepted and delivered whole', {timeout: 15000}, async () => {
    const ch = `/big/ok/${process.pid}`;
    const sub = await connectedSession();
    await sub.subscribe(ch);
    const pub = new RawSession(daemon.url);
    await pub.handshake();
    const blob = 'y'.repeat(400 * 1024);
    const {replies} = await pub.publish(ch, {blob});
    assert.equal(replies.find((m) => m.channel === ch)?.successful, true, JSON.stringify(replies).slice(0, 300));
    const res = await sub.connect();
    const got = res.json.filter((m) => m.channel === ch && m.data);
    assert.equal(got.length, 1);
    assert.equal(got[0].data.blob.length, blob.length);
    await Promise.all([sub.disconnect(), pub.disconnect()]);
  });

  test('batches: subscribe and publish in one POST get both replies in one response', {timeout: 10000}, async () => {
    const s = await connectedSession();
    const ch = `/batch/${process.pid}`;
    const res = await s.post([
      {channel: '/meta/subscribe', clientId: s.clientId, subscription: ch, id: 'b-sub'},
      s.publishMessage(ch, {n: 1}, {id: 'b-pub1'}),
      s.publishMessage(ch, {n: 2}, {id: 'b-pub2'}),
    ]);
    assert.equal(res.status, 200, res.text);
    assert.equal(reply(res, '/meta/subscribe', 'b-sub').successful, true);
    assert.equal(res.json.filter((m) => m.channel === ch && m.successful === true).length, 2, res.text);
    // The two copies for this subscriber come back either with this response or together
    // in the next connect response, in order, once.
    const c = await s.connect({advice: {timeout: 0}});
    const delivered = [...res.json, ...c.json].filter((m) => m.channel === ch && m.data).map((m) => m.data.n);
    assert.deepEqual(delivered, [1, 2], `${res.text}\n${c.text}`);
    await s.disconnect();
  });
});

describe('connect', () => {
  test('the first connect after handshake returns at once', {timeout: 10000}, async () => {
    const s = new RawSession(daemon.url);
    await s.handshake();
    const res = await s.connect();
    assert.equal(res.status, 200, res.text);
    assert.equal(reply(res, '/meta/connect').successful, true);
    assert.ok(res.elapsedMs < 1000 * SLOW, `first connect took ${res.elapsedMs} ms`);
    await s.disconnect();
  });

  test('a held connect is released by a publish and carries the message before the connect reply',
    {timeout: 15000}, async () => {
      const ch = `/held/pub/${process.pid}`;
      const s = await connectedSession();
      await s.subscribe(ch);
      const held = startHeld(s, {id: 'held-1'});
      await sleep(500);
      assert.equal(held.settled(), false, 'second connect was answered at once instead of held');
      const pub = new RawSession(daemon.url);
      await pub.handshake();
      const t0 = performance.now();
      await pub.publish(ch, {wake: 'up'});
      const res = await held.promise;
      const sincePublish = performance.now() - t0;
      assert.equal(res.status, 200, res.text);
      assert.ok(res.elapsedMs >= 450, `held only ${res.elapsedMs} ms`);
      assert.ok(sincePublish < 1000 * SLOW, `released ${sincePublish} ms after the publish`);
      const idxMsg = res.json.findIndex((m) => m.channel === ch);
      const idxConn = res.json.findIndex((m) => m.channel === '/meta/connect');
      assert.ok(idxMsg >= 0 && idxConn >= 0, res.text);
      assert.ok(idxMsg < idxConn, `queued messages must precede the connect reply: ${res.text}`);
      const msg = res.json[idxMsg];
      assert.deepEqual(msg.data, {wake: 'up'});
      assert.equal(msg.clientId, undefined, 'delivery must not carry the publisher clientId');
      const cr = res.json[idxConn];
      assert.equal(cr.successful, true);
      assert.equal(cr.id, 'held-1');
      await Promise.all([s.disconnect(), pub.disconnect()]);
    });

  test('a connect with advice {timeout: 0} is answered at once', {timeout: 10000}, async () => {
    const s = await connectedSession();
    const res = await s.connect({advice: {timeout: 0}});
    assert.equal(res.status, 200, res.text);
    assert.equal(reply(res, '/meta/connect').successful, true);
    assert.ok(res.elapsedMs < 1000 * SLOW, `took ${res.elapsedMs} ms`);
    await s.disconnect();
  });

  test('a second connect from the same client releases the first with HTTP 500', {timeout: 20000}, async () => {
    const s = await connectedSession();
    const first = startHeld(s, {id: 'dup-1'});
    await sleep(400);
    assert.equal(first.settled(), false, 'first held connect answered early');
    const t0 = performance.now();
    const second = startHeld(s, {id: 'dup-2'});
    const r1 = await first.promise;
    const released = performance.now() - t0;
    assert.equal(r1.status, 500, `first connect got HTTP ${r1.status}: ${r1.text}`);
    assert.ok(released < 1000 * SLOW, `first released ${released} ms after the second arrived`);
    await sleep(300);
    assert.equal(second.settled(), false, 'the second connect should now be the held one');
    await s.disconnect();
    const r2 = await second.promise;
    assert.equal(r2.status, 200, r2.text);
  });

  test('disconnect releases a held connect with reconnect "none"', {timeout: 15000}, async () => {
    const s = await connectedSession();
    const held = startHeld(s, {id: 'dr-1'});
    await sleep(400);
    assert.equal(held.settled(), false, 'connect was not held');
    const t0 = performance.now();
    const d = await s.disconnect();
    assert.equal(reply({json: d, status: 200, text: JSON.stringify(d)}, '/meta/disconnect').successful, true);
    const res = await held.promise;
    const released = performance.now() - t0;
    assert.ok(released < 1000 * SLOW, `held connect released ${released} ms after disconnect`);
    assert.equal(res.status, 200, res.text);
    const cr = reply(res, '/meta/connect', 'dr-1');
    assert.equal(cr.advice?.reconnect, 'none', res.text);
  });

  test('a connect with an unknown clientId gets 402::session_unknown with handshake advice',
    {timeout: 10000}, async () => {
      const s = new RawSession(daemon.url);
      s.clientId = 'unknownclient0000000000000000000';
      const res = await s.connect({id: 'unk-1'});
      assert.equal(res.status, 200, res.text);
      const r = reply(res, '/meta/connect', 'unk-1');
      assert.equal(r.successful, false);
      assert.equal(r.error, '402::session_unknown');
      assert.equal(r.advice?.reconnect, 'handshake');
      assert.equal(r.advice?.interval, 0);
    });
});

describe('connect timeout', () => {
  let short;
  before(async () => { short = await startDaemon(['--timeout', '1000']); });
  after(async () => { await stopDaemonClean(short); });

  test('with --timeout 1000 a held connect is answered successfully after about 1 s', {timeout: 15000}, async () => {
    const s = await connectedSession(short.url);
    const res = await s.connect({id: 'to-1'}, {timeoutMs: 10000});
    assert.equal(res.status, 200, res.text);
    assert.ok(res.elapsedMs >= 900, `answered after ${res.elapsedMs} ms, expected to be held ~1000 ms`);
    assert.ok(res.elapsedMs < 3000 * SLOW, `held ${res.elapsedMs} ms, expected ~1000 ms`);
    assert.equal(res.json.length, 1, `only the connect reply expected: ${res.text}`);
    const r = reply(res, '/meta/connect', 'to-1');
    assert.equal(r.successful, true);
    await s.disconnect();
  });
});

describe('subscribe and publish rules', () => {
  let s;
  before(async () => { s = await connectedSession(); });
  after(async () => { await s.disconnect(); });

  for (const ch of ['nochannelslash', '/a//b', '/a/b/', '/a/b c', '/a/<script>']) {
    test(`publish to invalid channel ${JSON.stringify(ch)} gets 405::channel_invalid`, {timeout: 10000}, async () => {
      const res = await s.post([s.publishMessage(ch, {x: 1}, {id: 'inv'})]);
      assert.equal(res.status, 200, res.text);
      const r = res.json.find((m) => m.id === 'inv');
      assert.ok(r, `no reply with id: ${res.text}`);
      assert.equal(r.successful, false, res.text);
      assert.equal(r.error, '405::channel_invalid');
    });
  }

  test('a publish with no channel gets 400::channel_missing', {timeout: 10000}, async () => {
    const res = await s.post([{clientId: s.clientId, data: {x: 1}, id: 'nochan'}]);
    assert.equal(res.status, 200, res.text);
    const r = res.json.find((m) => m.id === 'nochan');
    assert.ok(r, res.text);
    assert.equal(r.successful, false);
    assert.equal(r.error, '400::channel_missing');
  });

  test('publish to a wildcard channel is refused', {timeout: 10000}, async () => {
    for (const ch of [`/pw/${process.pid}/*`, `/pw/${process.pid}/**`]) {
      const res = await s.post([s.publishMessage(ch, {x: 1}, {id: 'pw'})]);
      assert.equal(res.status, 200, res.text);
      const r = res.json.find((m) => m.id === 'pw');
      assert.equal(r?.successful, false, `${ch}: ${res.text}`);
    }
  });

  test('publish to /meta/foo gets 403:denied_by_security_policy:channel_create_denied', {timeout: 10000}, async () => {
    const res = await s.post([s.publishMessage('/meta/foo', {x: 1}, {id: 'mf'})]);
    assert.equal(res.status, 200, res.text);
    const r = res.json.find((m) => m.id === 'mf');
    assert.ok(r, res.text);
    assert.equal(r.successful, false);
    assert.equal(r.error, '403:denied_by_security_policy:channel_create_denied');
  });

  test('subscribe to /meta/** is refused with 403', {timeout: 10000}, async () => {
    for (const sub of ['/meta/**', '/meta/connect']) {
      const res = await s.post([{channel: '/meta/subscribe', clientId: s.clientId, subscription: sub, id: 'sm'}]);
      const r = reply(res, '/meta/subscribe', 'sm');
      assert.equal(r.successful, false, `${sub}: ${res.text}`);
      assert.equal(r.error, '403:denied_by_security_policy:subscribe_denied', sub);
    }
  });

  test('subscribe to an invalid channel gets 403::subscription_invalid', {timeout: 10000}, async () => {
    for (const sub of ['nochannelslash', '/a//b', '/a/*/b']) {
      const res = await s.post([{channel: '/meta/subscribe', clientId: s.clientId, subscription: sub, id: 'si'}]);
      const r = reply(res, '/meta/subscribe', 'si');
      assert.equal(r.successful, false, `${sub}: ${res.text}`);
      assert.equal(r.error, '403::subscription_invalid', sub);
    }
  });

  test('a subscription array is accepted and echoed', {timeout: 10000}, async () => {
    const subs = [`/arr/${process.pid}/a`, `/arr/${process.pid}/b`];
    const res = await s.post([{channel: '/meta/subscribe', clientId: s.clientId, subscription: subs, id: 'sa'}]);
    const r = reply(res, '/meta/subscribe', 'sa');
    assert.equal(r.successful, true, res.text);
    assert.deepEqual(r.subscription, subs);
  });

  test('a subscriber matched by several subscriptions gets one copy', {timeout: 10000}, async () => {
    const base = `/once/${process.pid}`;
    const sub = await connectedSession();
    await sub.subscribe([`${base}/a`, `${base}/*`, `${base}/**`]);
    const pub = new RawSession(daemon.url);
    await pub.handshake();
    await pub.publish(`${base}/a`, {n: 1});
    const res = await sub.connect();
    const copies = res.json.filter((m) => m.channel === `${base}/a` && m.data);
    assert.equal(copies.length, 1, res.text);
    await Promise.all([sub.disconnect(), pub.disconnect()]);
  });

  test('a publish reply has no data; deliveries have channel and data but no clientId', {timeout: 10000}, async () => {
    const ch = `/shape/${process.pid}`;
    const sub = await connectedSession();
    await sub.subscribe(ch);
    const pub = new RawSession(daemon.url);
    await pub.handshake();
    const {replies} = await pub.publish(ch, {shape: true});
    const ack = replies.find((m) => m.channel === ch);
    assert.equal(ack.successful, true);
    assert.equal('data' in ack, false, `publish reply must not carry data: ${JSON.stringify(ack)}`);
    const res = await sub.connect();
    const d = res.json.find((m) => m.channel === ch);
    assert.deepEqual(d.data, {shape: true});
    assert.equal('clientId' in d, false, JSON.stringify(d));
    await Promise.all([sub.disconnect(), pub.disconnect()]);
  });

  test('a /service publish is not delivered to subscribers of that channel', {timeout: 10000}, async () => {
    const svc = `/service/raw/${process.pid}`;
    const sub = await connectedSession();
    const r = await sub.subscribe(svc);
    assert.equal(r.successful, true);
    const pub = new RawSession(daemon.url);
    await pub.handshake();
    await pub.publish(svc, {hidden: true});
    const res = await sub.connect({advice: {timeout: 0}});
    assert.deepEqual(res.json.filter((m) => m.channel === svc && m.data), [], res.text);
    await Promise.all([sub.disconnect(), pub.disconnect()]);
  });
});

describe('robustness', () => {
  test('bad bodies from one connection do not harm a connected client, which still receives publishes',
    {timeout: 30000}, async () => {
      const ch = `/robust/${process.pid}`;
      const victim = await connectedSession();
      await victim.subscribe(ch);
      const held = startHeld(victim, {id: 'victim'});
      await sleep(300);
      const bad = [
        '[{"channel":',
        '\u0000\u0001\u0002',
        Buffer.from([0x5b, 0xff, 0xfe, 0x5d]), // [ invalid UTF-8 ]
        '[1, 2, "x", null]',
        '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
        '['.repeat(100000),
        '[{"channel":"/meta/connect","clientId":{"nested":true}}]',
        '[{"channel":12,"data":"x"}]',
        '[{"channel":"/meta/subscribe","clientId":"nope","subscription":[1,{}]}]',
        JSON.stringify([{channel: ch, data: 'z'.repeat(700 * 1024)}]),
      ];
      for (const body of bad) {
        const big = body.length > 512 * 1024;
        const res = await request(daemon.url, {body}).catch((e) => {
          // A server may close the socket while an oversized body is still being sent.
          if (big && ['ECONNRESET', 'EPIPE'].includes(e.code)) return {status: 413};
          throw e;
        });
        assert.ok(res.status === 200 || (res.status >= 400 && res.status < 500),
          `bad body ${JSON.stringify(String(body).slice(0, 60))} got HTTP ${res.status}`);
      }
      assert.equal(held.settled(), false, 'the held connect of the other client was disturbed');
      const pub = new RawSession(daemon.url);
      await pub.handshake();
      await pub.publish(ch, {still: 'alive'});
      const res = await held.promise;
      assert.equal(res.status, 200, res.text);
      const got = res.json.filter((m) => m.channel === ch && m.data);
      assert.deepEqual(got.map((m) => m.data), [{still: 'alive'}], res.text);
      await Promise.all([victim.disconnect(), pub.disconnect()]);
    });
});

describe('daemon command line and signals', () => {
  // [flag, value, what the message must quote, what shows the allowed range]
  const bad = [
    ['--timeout', '-5', '-5', /\d+\s*(\.\.|-|to|and)\s*\d+/],
    ['--timeout', 'abc', 'abc', /\d+\s*(\.\.|-|to|and)\s*\d+/],
    ['--interval', '-1', '-1', /\d+\s*(\.\.|-|to|and)\s*\d+/],
    ['--max-interval', 'soon', 'soon', /\d+\s*(\.\.|-|to|and)\s*\d+/],
    // For HOST:PORT the offending part is the port.
    ['--listen', '127.0.0.1:99999', '99999', /65535/],
    ['--log-level', 'loud', 'loud', /debug/],
  ];
  for (const [flag, value, quoted, range] of bad) {
    test(`bad flag value ${flag} ${value} exits with code 2 naming the flag, the value and the range`,
      {timeout: 15000}, async (t) => {
        if (PEER) return t.skip('peer servers do not validate flags');
        const r = await runDaemonOnce(['--listen', '127.0.0.1:0', flag, value]);
        const out = r.stderr + r.stdout;
        assert.equal(r.timedOut, false, `daemon kept running with ${flag} ${value}: ${out}`);
        assert.equal(r.code, 2, `exit code ${r.code} (signal ${r.signal}); output: ${out}`);
        assert.ok(out.includes(flag), `message does not name ${flag}: ${out}`);
        assert.ok(out.includes(quoted), `message does not quote the value ${quoted}: ${out}`);
        assert.match(out, range, `message does not give the allowed range: ${out}`);
      });
  }

  test('--version prints a version and exits 0', {timeout: 10000}, async (t) => {
    if (PEER) return t.skip('peer servers have no --version');
    const r = await runDaemonOnce(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout + r.stderr, /\d+\.\d+/);
  });

  test('--help prints usage naming the flags and exits 0', {timeout: 10000}, async (t) => {
    if (PEER) return t.skip('peer servers have no --help');
    const r = await runDaemonOnce(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['--listen', '--path', '--timeout', '--interval', '--max-interval', '--log-level']) {
      assert.ok((r.stdout + r.stderr).includes(f), `--help does not mention ${f}`);
    }
  });

  test('--path changes the endpoint', {timeout: 15000}, async () => {
    const d = await startDaemon(['--path', '/bayeux']);
    try {
      assert.match(d.url, /\/bayeux$/);
      const s = new RawSession(d.url);
      await s.handshake();
      const c = await s.connect({advice: {timeout: 0}});
      assert.equal(reply(c, '/meta/connect').successful, true);
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('SIGTERM answers a held connect with reconnect "retry" and the daemon exits 0 within 2 s',
    {timeout: 20000}, async () => {
      const d = await startDaemon(['--timeout', '30000']);
      let code;
      try {
        const s = await connectedSession(d.url);
        const held = startHeld(s, {id: 'term-1'}, {timeoutMs: 10000});
        await sleep(500);
        assert.equal(held.settled(), false, 'connect was not held');
        const t0 = performance.now();
        d.proc.kill('SIGTERM');
        const [res, exit] = await Promise.all([held.promise, d.exited]);
        const took = performance.now() - t0;
        code = exit.code;
        assert.equal(res.status, 200, res.text);
        const r = reply(res, '/meta/connect', 'term-1');
        assert.equal(r.advice?.reconnect, 'retry', res.text);
        assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}; stderr: ${d.stderr().slice(-2000)}`);
        assert.ok(took <= 2000 * SLOW, `exit took ${took} ms`);
      } finally {
        if (code === undefined) await d.stop().catch(() => {});
      }
    });
});

// The official CometD JavaScript client (npm cometd 9, in Node via cometd-nodejs-client,
// long polling) against a real bayeuxd started on a free loopback port.
import {describe, test, before, after, afterEach} from 'node:test';
import assert from 'node:assert/strict';
import {startDaemon, stopDaemonClean} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';
import {RawSession} from './lib/wire.mjs';

let daemon;
let clients = [];

async function client(opts) {
  const c = new CometDClient(daemon.url, opts);
  clients.push(c);
  await c.handshake();
  return c;
}

function channelsOf(c) {
  return c.received.map((m) => m.channel);
}

before(async () => {
  daemon = await startDaemon([]);
});

afterEach(async () => {
  const cs = clients;
  clients = [];
  await Promise.allSettled(cs.map((c) => c.disconnect(5000)));
});

after(async () => {
  await stopDaemonClean(daemon);
});

describe('CometD JS client over long polling', () => {
  test('handshake uses long-polling and yields an alphanumeric clientId of 22+ characters',
    {timeout: 15000}, async () => {
      const c = await client();
      assert.equal(c.transportType(), 'long-polling');
      assert.match(c.clientId, /^[A-Za-z0-9]{22,}$/);
      assert.ok(c.handshakeReply.supportedConnectionTypes.includes('long-polling'),
        `server types: ${JSON.stringify(c.handshakeReply.supportedConnectionTypes)}`);
      await c.waitConnected();
    });

  test('round trip: a message published by one client reaches a subscriber with its data intact',
    {timeout: 15000}, async () => {
      const ch = uniqueChannel('/rt');
      const a = await client();
      const b = await client();
      const got = [];
      await a.subscribe(ch, (m) => got.push(m));
      const data = {text: 'héllo wörld ✓', n: 42, nested: {list: [1, 2.5, null, true], empty: {}}};
      const reply = await b.publish(ch, data);
      assert.equal(reply.successful, true);
      await waitFor(() => got.length >= 1, 5000, 'delivery to subscriber');
      await sleep(200);
      assert.equal(got.length, 1, 'exactly one copy');
      assert.equal(got[0].channel, ch);
      assert.deepEqual(got[0].data, data);
      assert.equal(got[0].clientId, undefined, 'delivery must not reveal the publisher clientId');
    });

  test('a publish reply carries no data (so the client does not mistake it for a delivery)',
    {timeout: 15000}, async () => {
      const ch = uniqueChannel('/ack');
      const b = await client();
      const reply = await b.publish(ch, {x: 1});
      assert.equal(reply.successful, true);
      assert.equal(reply.channel, ch);
      assert.equal(b.received.length, 0, `unexpected messages: ${JSON.stringify(b.received)}`);
    });

  test('a subscribed publisher receives its own message', {timeout: 15000}, async () => {
    const ch = uniqueChannel('/self');
    const a = await client();
    const got = [];
    await a.subscribe(ch, (m) => got.push(m));
    await a.publish(ch, {me: true});
    await waitFor(() => got.length >= 1, 5000, 'own message');
    assert.deepEqual(got[0].data, {me: true});
  });

  test('wildcard /x/* delivers /x/a but not /x, /x/a/b or /xy/a', {timeout: 15000}, async () => {
    const base = uniqueChannel('/wild1');
    const a = await client();
    const b = await client();
    const got = [];
    await a.subscribe(`${base}/*`, (m) => got.push(m));
    // Non-matches first, then matches: per-publisher order means once the last match
    // has arrived any wrongly routed non-match would have arrived too.
    await b.publish(base, {k: 'parent'});
    await b.publish(`${base}/a/b`, {k: 'grandchild'});
    await b.publish(`${base}x/a`, {k: 'sibling-prefix'});
    await b.publish(`${base}/a`, {k: 'child-a'});
    await b.publish(`${base}/zz`, {k: 'child-zz'});
    await waitFor(() => a.received.some((m) => m.data.k === 'child-zz'), 5000, 'last match');
    await sleep(200);
    assert.deepEqual(channelsOf(a), [`${base}/a`, `${base}/zz`]);
    assert.deepEqual(got.map((m) => m.data.k), ['child-a', 'child-zz']);
  });

  test('wildcard /x/** delivers /x/a and /x/a/b/c but not /x or /xy/a', {timeout: 15000}, async () => {
    const base = uniqueChannel('/wild2');
    const a = await client();
    const b = await client();
    await a.subscribe(`${base}/**`, () => {});
    await b.publish(base, {k: 'parent'});
    await b.publish(`${base}x/a`, {k: 'sibling-prefix'});
    await b.publish(`${base}/a`, {k: 'one'});
    await b.publish(`${base}/a/b/c`, {k: 'three'});
    await b.publish(`${base}/q/r`, {k: 'two'});
    await waitFor(() => a.received.some((m) => m.data.k === 'two'), 5000, 'last match');
    await sleep(200);
    assert.deepEqual(a.received.map((m) => m.data.k), ['one', 'three', 'two']);
  });

  test('a client subscribed to a wildcard can publish to concrete channels that reach exact subscribers',
    {timeout: 15000}, async () => {
      // The other direction: the wildcard subscriber publishes, an exact subscriber receives.
      const base = uniqueChannel('/wild3');
      const w = await client();
      const e = await client();
      await w.subscribe(`${base}/**`, () => {});
      await e.subscribe(`${base}/deep/er`, () => {});
      await w.publish(`${base}/deep/er`, {from: 'wild'});
      await waitFor(() => e.received.length >= 1 && w.received.length >= 1, 5000, 'both deliveries');
      await sleep(200);
      assert.deepEqual(e.received.map((m) => [m.channel, m.data]), [[`${base}/deep/er`, {from: 'wild'}]]);
      assert.deepEqual(w.received.map((m) => [m.channel, m.data]), [[`${base}/deep/er`, {from: 'wild'}]]);
    });

  test('unsubscribe stops delivery on that channel', {timeout: 15000}, async () => {
    const ch = uniqueChannel('/unsub');
    const sentinel = `${ch}-sentinel`;
    const a = await client();
    const b = await client();
    const {handle} = await a.subscribe(ch, () => {});
    await a.subscribe(sentinel, () => {});
    await b.publish(ch, {phase: 'before'});
    await waitFor(() => a.received.length >= 1, 5000, 'delivery before unsubscribe');
    const reply = await a.unsubscribe(handle);
    assert.equal(reply.successful, true);
    await b.publish(ch, {phase: 'after'});
    await b.publish(sentinel, {phase: 'sentinel'});
    await waitFor(() => a.received.some((m) => m.channel === sentinel), 5000, 'sentinel');
    await sleep(200);
    assert.deepEqual(a.received.map((m) => m.data.phase), ['before', 'sentinel']);
  });

  test('1,000 messages arrive in order with none lost or duplicated', {timeout: 60000}, async () => {
    const ch = uniqueChannel('/seq');
    const a = await client();
    const b = await client();
    const got = [];
    await a.subscribe(ch, (m) => got.push(m.data.n));
    const acks = [];
    for (let n = 0; n < 1000; n++) acks.push(b.publish(ch, {n, pad: 'x'.repeat(n % 50)}, 30000));
    const replies = await Promise.all(acks);
    assert.ok(replies.every((r) => r.successful === true));
    await waitFor(() => got.length >= 1000, 30000, `1000 deliveries (have ${got.length})`)
      .catch((e) => { throw new Error(`${e.message}; received ${got.length}`); });
    await sleep(300);
    assert.equal(got.length, 1000);
    assert.deepEqual(got, Array.from({length: 1000}, (_, i) => i));
  });

  test('50 concurrent clients on separate channels each get exactly their own messages',
    {timeout: 60000}, async () => {
      const N = 50;
      const PER = 10;
      const base = uniqueChannel('/conc');
      const cs = await Promise.all(Array.from({length: N}, () => client()));
      await Promise.all(cs.map((c, i) => c.subscribe(`${base}/${i}`, () => {})));
      // Each client publishes PER messages to its neighbour's channel, all at once.
      await Promise.all(cs.map(async (c, i) => {
        const to = (i + 1) % N;
        for (let k = 0; k < PER; k++) await c.publish(`${base}/${to}`, {from: i, k}, 30000);
      }));
      await waitFor(() => cs.every((c) => c.received.length >= PER), 30000,
        'all deliveries').catch((e) => {
        const counts = cs.map((c) => c.received.length);
        throw new Error(`${e.message}; counts ${JSON.stringify(counts)}`);
      });
      await sleep(300);
      cs.forEach((c, i) => {
        const from = (i + N - 1) % N;
        assert.deepEqual(c.received.map((m) => [m.channel, m.data.from, m.data.k]),
          Array.from({length: PER}, (_, k) => [`${base}/${i}`, from, k]), `client ${i}`);
      });
    });

  test('a /service channel message is not broadcast to other subscribers', {timeout: 15000}, async () => {
    const svc = uniqueChannel('/service/echo');
    const sentinel = uniqueChannel('/svc-sentinel');
    const a = await client();
    const b = await client();
    await a.subscribe(svc, () => {});
    await a.subscribe(sentinel, () => {});
    await b.subscribe(svc, () => {});
    const reply = await new Promise((resolve) => b.cometd.publish(svc, {secret: 1}, resolve));
    assert.equal(reply.channel, svc);
    await b.publish(sentinel, {s: 1});
    await waitFor(() => a.received.some((m) => m.channel === sentinel), 5000, 'sentinel');
    await sleep(200);
    assert.deepEqual(channelsOf(a), [sentinel], 'subscriber A got the service message');
    assert.deepEqual(channelsOf(b), [], 'publisher B got its own service message back');
  });

  test('after disconnect, a /meta/connect with the old clientId gets 402::session_unknown and handshake advice',
    {timeout: 15000}, async () => {
      const a = await client();
      await a.waitConnected();
      const oldId = a.clientId;
      const reply = await a.disconnect();
      assert.equal(reply.successful, true, `disconnect reply ${JSON.stringify(reply)}`);
      const raw = new RawSession(daemon.url);
      raw.clientId = oldId;
      const res = await raw.connect({id: 'reuse1'});
      assert.equal(res.status, 200, res.text);
      const r = res.json.find((m) => m.channel === '/meta/connect');
      assert.ok(r, `no connect reply in ${res.text}`);
      assert.equal(r.successful, false);
      assert.equal(r.error, '402::session_unknown');
      assert.equal(r.id, 'reuse1');
      assert.equal(r.advice?.reconnect, 'handshake');
      assert.equal(r.advice?.interval, 0);
    });
});

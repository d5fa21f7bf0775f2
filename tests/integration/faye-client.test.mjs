// The Faye client (npm faye 1.4, WebSocket and EventSource disabled, so it long-polls)
// against a real bayeuxd started on a free loopback port.
import {describe, test, before, after, afterEach} from 'node:test';
import assert from 'node:assert/strict';
import {startDaemon, stopDaemonClean} from './lib/daemon.mjs';
import {FayeClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';

let daemon;
let clients = [];

async function client() {
  const c = new FayeClient(daemon.url);
  clients.push(c);
  await c.handshake();
  return c;
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

describe('Faye client over long polling', () => {
  test('handshake succeeds and the client selects long-polling', {timeout: 15000}, async () => {
    const c = await client();
    assert.match(c.clientId, /^[A-Za-z0-9]{22,}$/);
    assert.equal(c.transportType(), 'long-polling');
  });

  test('round trip: a message published by one client reaches a subscriber with its data intact',
    {timeout: 15000}, async () => {
      const ch = uniqueChannel('/frt');
      const a = await client();
      const b = await client();
      const got = [];
      await a.subscribe(ch, (channel, data) => got.push({channel, data}));
      const data = {text: 'héllo ✓', n: 7, nested: {list: [1, null, false, 'x'], o: {}}};
      await b.publish(ch, data);
      await waitFor(() => got.length >= 1, 5000, 'delivery');
      await sleep(200);
      assert.deepEqual(got, [{channel: ch, data}]);
      assert.equal(a.received.length, 1);
      assert.equal(a.received[0].clientId, undefined, 'delivery must not reveal the publisher clientId');
    });

  test('wildcard /x/* delivers /x/a but not /x, /x/a/b or /xy/a', {timeout: 15000}, async () => {
    const base = uniqueChannel('/fwild1');
    const a = await client();
    const b = await client();
    await a.subscribe(`${base}/*`, () => {});
    await b.publish(base, {k: 'parent'});
    await b.publish(`${base}/a/b`, {k: 'grandchild'});
    await b.publish(`${base}x/a`, {k: 'sibling-prefix'});
    await b.publish(`${base}/a`, {k: 'child-a'});
    await b.publish(`${base}/zz`, {k: 'child-zz'});
    await waitFor(() => a.received.some((m) => m.data.k === 'child-zz'), 5000, 'last match');
    await sleep(200);
    assert.deepEqual(a.received.map((m) => [m.channel, m.data.k]),
      [[`${base}/a`, 'child-a'], [`${base}/zz`, 'child-zz']]);
  });

  test('wildcard /x/** delivers /x/a and /x/a/b/c but not /x or /xy/a', {timeout: 15000}, async () => {
    const base = uniqueChannel('/fwild2');
    const a = await client();
    const b = await client();
    const got = [];
    await a.subscribe(`${base}/**`, (channel, data) => got.push([channel, data.k]));
    await b.publish(base, {k: 'parent'});
    await b.publish(`${base}x/a`, {k: 'sibling-prefix'});
    await b.publish(`${base}/a`, {k: 'one'});
    await b.publish(`${base}/a/b/c`, {k: 'three'});
    await b.publish(`${base}/q/r`, {k: 'two'});
    await waitFor(() => a.received.some((m) => m.data.k === 'two'), 5000, 'last match');
    await sleep(200);
    const expected = [[`${base}/a`, 'one'], [`${base}/a/b/c`, 'three'], [`${base}/q/r`, 'two']];
    assert.deepEqual(a.received.map((m) => [m.channel, m.data.k]), expected);
    assert.deepEqual(got, expected);
  });

  test('a wildcard subscriber publishing to a concrete channel reaches the exact subscriber',
    {timeout: 15000}, async () => {
      const base = uniqueChannel('/fwild3');
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
    const ch = uniqueChannel('/funsub');
    const sentinel = `${ch}-sentinel`;
    const a = await client();
    const b = await client();
    const sub = await a.subscribe(ch, () => {});
    await a.subscribe(sentinel, () => {});
    await b.publish(ch, {phase: 'before'});
    await waitFor(() => a.received.length >= 1, 5000, 'delivery before unsubscribe');
    const reply = await a.unsubscribe(sub, ch);
    assert.equal(reply.successful, true);
    await b.publish(ch, {phase: 'after'});
    await b.publish(sentinel, {phase: 'sentinel'});
    await waitFor(() => a.received.some((m) => m.channel === sentinel), 5000, 'sentinel');
    await sleep(200);
    assert.deepEqual(a.received.map((m) => m.data.phase), ['before', 'sentinel']);
  });

  test('1,000 messages published one after another arrive in order with none lost or duplicated',
    {timeout: 60000}, async () => {
      const ch = uniqueChannel('/fseq');
      const a = await client();
      const b = await client();
      const got = [];
      await a.subscribe(ch, (channel, data) => got.push(data.n));
      for (let n = 0; n < 1000; n++) await b.publish(ch, {n}, 30000);
      await waitFor(() => got.length >= 1000, 30000, 'deliveries')
        .catch((e) => { throw new Error(`${e.message}; received ${got.length}`); });
      await sleep(300);
      assert.equal(got.length, 1000);
      assert.deepEqual(got, Array.from({length: 1000}, (_, i) => i));
    });

  // Published without waiting, Faye batches the 1,000 messages into ~40 POSTs that it
  // sends at once on separate connections (batches in both directions).
  async function fireThousand(prefix) {
    const ch = uniqueChannel(prefix);
    const a = await client();
    const b = await client();
    const got = [];
    await a.subscribe(ch, (channel, data) => got.push(data.n));
    const acks = [];
    for (let n = 0; n < 1000; n++) acks.push(b.publish(ch, {n}, 30000));
    await Promise.all(acks);
    await waitFor(() => got.length >= 1000, 30000, 'deliveries')
      .catch((e) => { throw new Error(`${e.message}; received ${got.length}`); });
    await sleep(300);
    return got;
  }

  test('1,000 messages published without waiting all arrive exactly once', {timeout: 60000}, async () => {
    const got = await fireThousand('/ffire');
    assert.equal(got.length, 1000);
    assert.deepEqual([...got].sort((x, y) => x - y), Array.from({length: 1000}, (_, i) => i));
  });

  // Order across those concurrent POSTs is not promised: they arrive on separate
  // connections, which bayeuxd handles on parallel threads (README, "Ordering").
  // Order within a POST, and for publishes sent one after another, is tested above.

  test('50 concurrent clients on separate channels each get exactly their own messages',
    {timeout: 60000}, async () => {
      const N = 50;
      const PER = 10;
      const base = uniqueChannel('/fconc');
      const cs = await Promise.all(Array.from({length: N}, () => client()));
      await Promise.all(cs.map((c, i) => c.subscribe(`${base}/${i}`, () => {})));
      await Promise.all(cs.map(async (c, i) => {
        const to = (i + 1) % N;
        for (let k = 0; k < PER; k++) await c.publish(`${base}/${to}`, {from: i, k}, 30000);
      }));
      await waitFor(() => cs.every((c) => c.received.length >= PER), 30000, 'all deliveries')
        .catch((e) => {
          throw new Error(`${e.message}; counts ${JSON.stringify(cs.map((c) => c.received.length))}`);
        });
      await sleep(300);
      cs.forEach((c, i) => {
        const from = (i + N - 1) % N;
        assert.deepEqual(c.received.map((m) => [m.channel, m.data.from, m.data.k]),
          Array.from({length: PER}, (_, k) => [`${base}/${i}`, from, k]), `client ${i}`);
      });
    });
});

// History across nodes (issue 13, "History across nodes"): with --redis and --retain,
// a retained channel's history lives in a Redis Stream (<prefix>:history:<channel>),
// appended and published by one script, so every node delivers a retained publish with
// the same replay id, any node replays it, and a replay that races live publishes on
// other nodes ends with every id exactly once, in order. A real redis-server.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {startDaemon, stopDaemonClean, runDaemonOnce, PEER} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';
import {ReplayExtension} from '../../web/replay-extension.js';
import {request, RawSession, newId} from './lib/wire.mjs';
import {startRedis, commandCalls} from './lib/redis.mjs';

const skip = PEER ? 'clustering is bayeuxd behaviour' : false;
const PREFIX = 'bxh';
const KEEP = 50;

let redis;
const nodes = [];
const sessions = [];

async function node(name) {
  const d = await startDaemon(['--redis', redis.url, '--redis-prefix', PREFIX, '--node-id', name,
    '--allow-local-publish', '--retain', `/hist/**=${KEEP}`]);
  await waitFor(() => d.stderr().includes('redis: connected'), 10000, `${name} connected to Redis`);
  return d;
}

async function backendPublish(d, channel, data) {
  const r = await request(`${d.origin}/publish${channel}`, {body: data});
  assert.equal(r.status, 200, `publish ${channel}: ${r.text}`);
  return r.json;
}

/** A raw session on node d subscribed to ch (with ext.replay when given). */
async function subscribe(d, ch, replay) {
  const s = new RawSession(d.url);
  await s.handshake();
  sessions.push(s);
  const msg = {channel: '/meta/subscribe', clientId: s.clientId, subscription: ch, id: newId()};
  if (replay !== undefined) msg.ext = {replay: {[ch]: replay}};
  const replies = await s.exchange([msg]);
  return {s, reply: replies.find((m) => m.channel === '/meta/subscribe')};
}

/** A raw session on node d subscribed to pattern with the whole ext.replay map. */
async function subscribeMap(d, pattern, replay) {
  const s = new RawSession(d.url);
  await s.handshake();
  sessions.push(s);
  const replies = await s.exchange([{channel: '/meta/subscribe', clientId: s.clientId,
    subscription: pattern, id: newId(), ext: {replay}}]);
  return {s, reply: replies.find((m) => m.channel === '/meta/subscribe')};
}

/** Connects until `want` deliveries arrived (or connects stay empty). */
async function drain(s, want, {max = 200} = {}) {
  const messages = [];
  let empty = 0;
  for (let i = 0; i < max && messages.length < want && empty < 4; i++) {
    const res = await s.connect({advice: {timeout: 1000}}, {timeoutMs: 30000});
    assert.equal(res.status, 200, res.text);
    const got = res.json.filter((m) => !m.channel.startsWith('/meta/'));
    empty = got.length ? 0 : empty + 1;
    messages.push(...got);
  }
  return messages;
}

before(async () => {
  if (skip) return;
  redis = await startRedis();
  for (const name of ['h1', 'h2', 'h3']) nodes.push(await node(name));
});

after(async () => {
  for (const s of sessions) await s.disconnect().catch(() => {});
  for (const d of nodes) await stopDaemonClean(d);
  if (redis) await redis.stop();
});

describe('cluster history', {skip}, () => {
  test('a retained publish on node 1 reaches nodes 2 and 3 with the same replay id', async () => {
    const ch = uniqueChannel('/hist/live');
    const a = await subscribe(nodes[1], ch);
    const b = await subscribe(nodes[2], ch);
    assert.equal(a.reply.successful, true, JSON.stringify(a.reply));
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await backendPublish(nodes[0], ch, {i})).ext.replayId);
    assert.deepEqual(ids, [1, 2, 3], 'ids count from 1 per channel');
    for (const sub of [a, b]) {
      const got = await drain(sub.s, 3);
      assert.deepEqual(got.map((m) => [m.data.i, m.ext.replayId]), [[0, 1], [1, 2], [2, 3]]);
    }
  });

  test('ids are shared: publishes on three nodes interleave in one sequence', async () => {
    const ch = uniqueChannel('/hist/shared');
    const ids = [];
    for (let i = 0; i < 9; i++) ids.push((await backendPublish(nodes[i % 3], ch, {i})).ext.replayId);
    assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The stream itself holds them under the same ids.
    assert.equal(redis.cli('XLEN', `${PREFIX}:history:${ch}`), '9');
  });

  test('any node replays what another node published, with the publisher\'s ids', async () => {
    const ch = uniqueChannel('/hist/replay');
    for (let i = 0; i < 5; i++) await backendPublish(nodes[0], ch, {i});
    for (const d of nodes) {
      const {s, reply} = await subscribe(d, ch, 2);
      assert.equal(reply.successful, true, JSON.stringify(reply));
      const got = await drain(s, 3);
      assert.deepEqual(got.map((m) => [m.data.i, m.ext.replayId]), [[2, 3], [3, 4], [4, 5]]);
    }
    // -2: all of it, on a node that never saw the channel.
    const {s} = await subscribe(nodes[2], ch, -2);
    assert.deepEqual((await drain(s, 5)).map((m) => m.ext.replayId), [1, 2, 3, 4, 5]);
  });

  test('a wildcard replays every retained channel it matches, on a node that never saw them',
    async () => {
      const base = uniqueChannel('/hist/wild');
      for (const [ch, n] of [['a', 3], ['b', 2], ['a/deep', 2]]) {
        for (let i = 0; i < n; i++) await backendPublish(nodes[0], `${base}/${ch}`, {ch, i});
      }
      // One segment: a and b (in channel order, ids in order), not a/deep.
      const one = await subscribeMap(nodes[2], `${base}/*`, {[`${base}/*`]: -2});
      assert.equal(one.reply.successful, true, JSON.stringify(one.reply));
      assert.deepEqual((await drain(one.s, 5)).map((m) => [m.channel.slice(base.length), m.ext.replayId]),
        [['/a', 1], ['/a', 2], ['/a', 3], ['/b', 1], ['/b', 2]]);
      // Any depth, the pattern's value -1 (nothing) but a channel named with its last id.
      const named = await subscribeMap(nodes[1], `${base}/**`,
        {[`${base}/**`]: -1, [`${base}/a`]: 2, [`${base}/a/deep`]: 0});
      assert.equal(named.reply.successful, true, JSON.stringify(named.reply));
      assert.deepEqual((await drain(named.s, 3)).map((m) => [m.channel.slice(base.length), m.ext.replayId]),
        [['/a', 3], ['/a/deep', 1], ['/a/deep', 2]]);
      // Live ones follow on every channel of the pattern.
      await backendPublish(nodes[0], `${base}/b`, {live: true});
      assert.deepEqual((await drain(named.s, 1)).map((m) => [m.channel.slice(base.length), m.ext.replayId]),
        [['/b', 3]]);
    });

  test('the stream is trimmed to the retained count; an expired id is reported as a gap',
    async () => {
      const ch = uniqueChannel('/hist/trim');
      for (let i = 0; i < KEEP + 10; i += 10) {
        await Promise.all(Array.from({length: 10}, (_, k) =>
          backendPublish(nodes[(i / 10) % 3], ch, {i: i + k})));
      }
      assert.equal(redis.cli('XLEN', `${PREFIX}:history:${ch}`), String(KEEP));
      const {s, reply} = await subscribe(nodes[1], ch, 3);
      assert.deepEqual(reply.ext?.replayGap, {[ch]: {after: 3, resumedFrom: 11}});
      const got = await drain(s, KEEP);
      assert.deepEqual(got.map((m) => m.ext.replayId),
        Array.from({length: KEEP}, (_, k) => 11 + k));
    });

  test('a replay racing publishes on other nodes: every id exactly once, in order', async () => {
    const ch = uniqueChannel('/hist/race');
    const N = 400;
    let sent = 0;
    let stop = false;
    // Two publishers on nodes 1 and 3, one id sequence for the channel.
    const pubs = [0, 2].map(async (k) => {
      while (!stop && sent < N) {
        sent += 1;
        await backendPublish(nodes[k], ch, {k});
      }
    });
    // Subscribers with replay join on node 2 while the publishers run: five to the
    // channel, two to a wildcard over it (its only channel).
    const parent = ch.slice(0, ch.lastIndexOf('/'));
    const joins = [];
    for (let j = 0; j < 7; j++) {
      await sleep(40);
      joins.push(j < 5 ? await subscribe(nodes[1], ch, -2)
        : await subscribeMap(nodes[1], `${parent}/*`, {[`${parent}/*`]: -2}));
    }
    await Promise.all(pubs);
    stop = true;
    const total = Number(redis.cli('GET', `${PREFIX}:histseq:${ch}`));
    assert.ok(total >= N, `${total} published`);
    for (const [j, {s, reply}] of joins.entries()) {
      assert.equal(reply.successful, true, JSON.stringify(reply));
      const got = (await drain(s, Math.min(total, KEEP))).map((m) => m.ext.replayId);
      // KEEP retained at the cut, then everything live: consecutive, no repeat.
      for (let i = 1; i < got.length; i++) {
        if (got[i] !== got[i - 1] + 1) assert.fail(`join ${j}: ${got[i - 1]} then ${got[i]}`);
      }
      assert.equal(got[got.length - 1], total, `join ${j} ends at the last id`);
    }
  });

  test('CometD\'s client over WebSocket replays on node 2 what node 1 published', async () => {
    const ch = uniqueChannel('/hist/ws');
    for (let i = 0; i < 4; i++) await backendPublish(nodes[0], ch, {i});
    const c = new CometDClient(nodes[1].url, {websocket: true});
    c.cometd.registerExtension('replay', new ReplayExtension({initial: -2}));
    const got = [];
    await c.handshake();
    assert.equal(c.transportType(), 'websocket');
    await new Promise((resolve, reject) => {
      c.cometd.subscribe(ch, (m) => got.push(m), (reply) => (reply.successful ? resolve() : reject(new Error(JSON.stringify(reply)))));
    });
    await backendPublish(nodes[2], ch, {i: 4});
    await waitFor(() => got.length >= 5, 10000, 'four replayed and one live');
    await sleep(200);
    assert.deepEqual(got.map((m) => [m.data.i, m.ext.replayId]), [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
    await c.disconnect().catch(() => {});
  });

  test('a node that does not retain the channel still delivers it (as a plain message)',
    async () => {
      const d = await startDaemon(['--redis', redis.url, '--redis-prefix', PREFIX,
        '--node-id', 'h4', '--allow-local-publish', '--retain', '/other/**=5']);
      try {
        await waitFor(() => d.stderr().includes('redis: connected'), 10000, 'h4 connected');
        const ch = uniqueChannel('/hist/mixed');
        const {s} = await subscribe(d, ch);
        await backendPublish(nodes[0], ch, {i: 1});
        const got = await drain(s, 1);
        assert.deepEqual(got.map((m) => m.data), [{i: 1}]);
        assert.equal(got[0].ext, undefined, 'no replay id where nothing is retained');
      } finally {
        await stopDaemonClean(d);
      }
    });

  test('one PUBLISH per retained publish (the script appends and publishes)', async () => {
    const ch = uniqueChannel('/hist/cost');
    await subscribe(nodes[1], ch);
    await subscribe(nodes[2], ch);
    const before = commandCalls(redis).publish || 0;
    for (let i = 0; i < 20; i++) await backendPublish(nodes[0], ch, {i});
    assert.equal(commandCalls(redis).publish - before, 20);
  });
});

describe('cluster history: what a node does not serve, and faults', {skip}, () => {
  test('GET /history/<channel> answers 501 and names the way to replay', async () => {
    const r = await request(`${nodes[0].origin}/history/hist/anything`, {method: 'GET'});
    assert.equal(r.status, 501, r.text);
    assert.match(r.text, /ext\.replay/);
  });

  test('Redis down: a retained publish and a replay fail with a Bayeux error, no crash; back, they work',
    async () => {
      const ch = uniqueChannel('/hist/down');
      await backendPublish(nodes[0], ch, {before: true});
      redis.kill9();
      await waitFor(() => nodes.every((d) => d.stderr().includes('redis: lost')), 10000,
        'every node saw Redis go');
      const r = await request(`${nodes[0].origin}/publish${ch}`, {body: {during: true}});
      assert.equal(r.status, 500, r.text); // a backend publish's status follows its error
      assert.equal(r.json.successful, false, r.text);
      assert.equal(r.json.error, '500::history_store_failed');
      const {reply} = await subscribe(nodes[1], ch, -2);
      assert.equal(reply.successful, false, JSON.stringify(reply));
      assert.equal(reply.error, '500::history_store_failed');
      await redis.restart();
      await waitFor(() => nodes.every((d) => (d.stderr().match(/redis: connected/g) || []).length >= 2),
        15000, 'every node reconnected');
      // Redis without persistence lost the history: ids count from 1 again.
      const again = await backendPublish(nodes[2], ch, {after: true});
      assert.equal(again.ext.replayId, 1);
      const {s, reply: ok} = await subscribe(nodes[1], ch, -2);
      assert.equal(ok.successful, true, JSON.stringify(ok));
      assert.deepEqual((await drain(s, 1)).map((m) => m.data), [{after: true}]);
      for (const d of nodes) assert.equal(d.proc.exitCode, null, 'still running');
    });
});

describe('cluster history: flags', {skip}, () => {
  test('--store with --redis is refused: history lives in Redis', async () => {
    const r = await runDaemonOnce(['--redis', 'redis://127.0.0.1:1', '--retain', '/a=1',
      '--store', '/tmp/nowhere']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--store.*--redis/);
  });
});

// Several bayeuxd nodes sharing one real redis-server (issue 13, --redis): CometD
// clients on different nodes, interest visible in Redis itself (PUBSUB NUMSUB), order,
// backend publish on any node, exactly one PUBLISH per publish, and Redis killed and
// restarted under a running publisher.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {startDaemon, stopDaemonClean, runDaemonOnce, PEER} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';
import {request} from './lib/wire.mjs';
import {startRedis, numsub, commandCalls} from './lib/redis.mjs';

const skip = PEER ? 'clustering is bayeuxd behaviour' : false;
const PREFIX = 'bxt';

let redis;
const nodes = [];
const clients = [];

async function node(name, extra = []) {
  const d = await startDaemon(['--redis', redis.url, '--redis-prefix', PREFIX, '--node-id', name,
    '--allow-local-publish', ...extra]);
  await waitFor(() => d.stderr().includes('redis: connected'), 10000, `${name} connected to Redis`);
  return d;
}

async function client(d) {
  const c = new CometDClient(d.url);
  await c.handshake();
  clients.push(c);
  return c;
}

/** Subscribe c to ch; the returned array collects the data of each delivery. */
async function sub(c, ch) {
  const got = [];
  const {handle} = await c.subscribe(ch, (m) => got.push(m.data));
  return {got, handle};
}

/** The node's /metrics samples without labels, as {name: value}. */
async function metrics(d) {
  const r = await request(`${d.origin}/metrics`, {method: 'GET'});
  assert.equal(r.status, 200);
  const out = {};
  for (const line of r.text.split('\n')) {
    const m = /^(bayeux_cluster_[a-z_]+) (\d+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

function backendPublish(d, ch, data) {
  return request(`${d.origin}/publish${ch}`, {body: data});
}

before(async () => {
  if (skip) return;
  redis = await startRedis();
  for (const name of ['n1', 'n2', 'n3']) nodes.push(await node(name));
});

after(async () => {
  for (const c of clients) await c.disconnect().catch(() => {});
  for (const d of nodes) await stopDaemonClean(d);
  if (redis) await redis.stop();
});

describe('cluster: delivery across nodes', {skip}, () => {
  test('clients on nodes 2 and 3 get a publish from node 1 exactly once, overlapping wildcards included', async () => {
    const base = uniqueChannel('/cl/once');
    const ch = `${base}/a`;
    const pub = await client(nodes[0]);
    // Node 2: one client with three overlapping subscriptions, another with the exact one.
    const c2 = await client(nodes[1]);
    const a = await sub(c2, ch);
    const b = await sub(c2, `${base}/*`);
    const c = await sub(c2, `${base}/**`);
    const c2b = await client(nodes[1]);
    const d = await sub(c2b, ch);
    // Node 3: a deep wildcard only.
    const c3 = await client(nodes[2]);
    const e = await sub(c3, `${base}/**`);
    await pub.publish(ch, {n: 1});
    await waitFor(() => a.got.length && b.got.length && c.got.length && d.got.length &&
      e.got.length, 5000, 'every subscription got it');
    await sleep(500); // room for a duplicate to show up
    // The CometD client calls each matching subscription's callback for one delivery:
    // c2 saw one message on the wire, c2b one, c3 one.
    const wire = (cl) => cl.received.filter((m) => m.channel === ch).length;
    assert.equal(wire(c2), 1, 'node 2, overlapping subscriptions: one delivery');
    assert.equal(wire(c2b), 1);
    assert.equal(wire(c3), 1);
    assert.deepEqual(e.got, [{n: 1}]);
  });

  test('a one-segment wildcard stays one segment across nodes (Redis * crosses /)', async () => {
    const base = uniqueChannel('/cl/seg');
    const pub = await client(nodes[0]);
    const c2 = await client(nodes[1]);
    const one = await sub(c2, `${base}/*`);
    await pub.publish(`${base}/x/deeper`, {deep: true});
    await pub.publish(`${base}/x`, {shallow: true});
    await waitFor(() => one.got.length === 1, 5000, 'the one-segment delivery');
    await sleep(300);
    assert.deepEqual(one.got, [{shallow: true}]);
  });

  test('2,000 messages from one publisher arrive in order on every node', async () => {
    const ch = uniqueChannel('/cl/order');
    const subs = [];
    for (const d of nodes) subs.push(await sub(await client(d), ch));
    const pub = await client(nodes[0]);
    const N = 2000;
    for (let i = 0; i < N; i += 100) {
      const acks = [];
      pub.cometd.batch(() => {
        for (let k = i; k < i + 100; k++) acks.push(pub.publish(ch, k));
      });
      await Promise.all(acks);
    }
    await waitFor(() => subs.every((s) => s.got.length >= N), 30000, 'all 2,000 on every node');
    for (const [i, s] of subs.entries()) {
      assert.equal(s.got.length, N, `node ${i + 1}: count`);
      for (let k = 0; k < N; k++) if (s.got[k] !== k) assert.fail(`node ${i + 1}: message ${k} is ${s.got[k]}`);
    }
  });

  test('a backend HTTP publish on node 3 reaches nodes 1 and 2', async () => {
    const ch = uniqueChannel('/cl/backend');
    const s1 = await sub(await client(nodes[0]), ch);
    const s2 = await sub(await client(nodes[1]), ch);
    const r = await backendPublish(nodes[2], ch, {from: 'backend'});
    assert.equal(r.status, 200, r.text);
    await waitFor(() => s1.got.length && s2.got.length, 5000, 'both nodes');
    assert.deepEqual(s1.got, [{from: 'backend'}]);
    assert.deepEqual(s2.got, [{from: 'backend'}]);
  });

  test('the subscribe reply waits until Redis confirmed the subscription', async () => {
    const c2 = await client(nodes[1]);
    const ch = uniqueChannel('/cl/gate');
    redis.cli('CLIENT', 'PAUSE', '800', 'ALL'); // Redis answers no one for 800 ms
    const t0 = Date.now();
    const s = await sub(c2, ch);
    const waited = Date.now() - t0;
    assert.ok(waited >= 500, `the subscribe reply came after ${waited} ms, before Redis confirmed`);
    const r = await backendPublish(nodes[0], ch, {v: 'after'});
    assert.equal(r.status, 200);
    await waitFor(() => s.got.length === 1, 5000, 'the publish right after the reply');
  });

  test('a Redis that does not answer delays the subscribe reply by 3 s at most', async () => {
    const c2 = await client(nodes[1]);
    const ch = uniqueChannel('/cl/hung');
    redis.cli('CLIENT', 'PAUSE', '6000', 'ALL');
    const t0 = Date.now();
    await sub(c2, ch); // successful: the local subscription stands
    const waited = Date.now() - t0;
    assert.ok(waited >= 2500 && waited < 5500, `the reply came after ${waited} ms`);
    redis.cli('CLIENT', 'UNPAUSE');
  });

  test('a publish right after the subscribe reply is never missed', async () => {
    const c2 = await client(nodes[1]);
    for (let i = 0; i < 20; i++) {
      const ch = uniqueChannel('/cl/race');
      const s = await sub(c2, ch);
      const r = await backendPublish(nodes[0], ch, i);
      assert.equal(r.status, 200);
      await waitFor(() => s.got.length === 1, 5000, `publish ${i} after the subscribe reply`);
    }
  });

  test('service channels stay local', async () => {
    const ch = uniqueChannel('/service/cl');
    const pub = await client(nodes[0]);
    const before = commandCalls(redis).publish || 0;
    await pub.publish(ch, {x: 1});
    await sleep(200);
    assert.equal(commandCalls(redis).publish || 0, before);
  });
});

describe('cluster: interest in Redis', {skip}, () => {
  test('PUBSUB NUMSUB counts the nodes with a subscriber; the last unsubscribe removes it', async () => {
    const ch = uniqueChannel('/cl/interest');
    const key = `${PREFIX}:${ch}`;
    assert.equal(numsub(redis, key)[key], 0, 'no subscriber, no channel subscription');
    const c2 = await client(nodes[1]);
    const c2b = await client(nodes[1]);
    const c3 = await client(nodes[2]);
    const a = await sub(c2, ch);
    // Confirmed before the reply: visible in Redis the moment the reply arrives.
    assert.equal(numsub(redis, key)[key], 1);
    const b = await sub(c2b, ch);
    const c = await sub(c3, ch);
    assert.equal(numsub(redis, key)[key], 2, 'two nodes, three subscribers: two subscriptions');
    await c2.unsubscribe(a.handle);
    await sleep(600); // past the linger
    assert.equal(numsub(redis, key)[key], 2, 'node 2 still has a subscriber');
    await c2b.unsubscribe(b.handle);
    await waitFor(() => numsub(redis, key)[key] === 1, 3000, 'node 2 withdrew');
    await c3.unsubscribe(c.handle);
    await waitFor(() => numsub(redis, key)[key] === 0, 3000, 'node 3 withdrew');
  });

  test('a wildcard is one PSUBSCRIBE per node, gone with its last subscriber or session', async () => {
    const base = uniqueChannel('/cl/pat');
    const pattern = `${PREFIX}:${base}/*`;
    const pats = () => redis.cli('PUBSUB', 'NUMPAT');
    const before = Number(pats());
    const c2 = await client(nodes[1]);
    await sub(c2, `${base}/*`);
    await sub(c2, `${base}/**`); // the same Redis pattern
    assert.equal(Number(pats()), before + 1);
    // The pattern as Redis holds it: CLIENT LIST shows psub=1 on one connection more.
    await c2.disconnect();
    await waitFor(() => Number(pats()) === before, 3000, `${pattern} withdrawn after disconnect`);
  });

  test('one PUBLISH per Bayeux publish, whatever the number of subscribers', async () => {
    const ch = uniqueChannel('/cl/cost');
    const subs = [];
    for (const d of nodes) for (let i = 0; i < 3; i++) subs.push(await sub(await client(d), ch));
    const pub = await client(nodes[0]);
    const before = commandCalls(redis).publish || 0;
    const m0 = await Promise.all(nodes.map(metrics));
    for (let i = 0; i < 50; i++) await pub.publish(ch, i);
    await waitFor(() => subs.every((s) => s.got.length === 50), 5000, 'all delivered');
    assert.equal((commandCalls(redis).publish || 0) - before, 50);
    // The same seen from /metrics: node 1 sent 50, nodes 2 and 3 received 50 each.
    const m1 = await Promise.all(nodes.map(metrics));
    const d = (i, k) => m1[i][k] - m0[i][k];
    assert.equal(d(0, 'bayeux_cluster_published_total'), 50);
    assert.equal(d(1, 'bayeux_cluster_received_total'), 50);
    assert.equal(d(2, 'bayeux_cluster_received_total'), 50);
    assert.equal(m1[0].bayeux_cluster_up, 1);
  });
});

describe('cluster: faults', {skip}, () => {
  test('Redis killed and restarted: local delivery never stops, cross-node resumes, no crash', async () => {
    const ch = uniqueChannel('/cl/fault');
    const local = await sub(await client(nodes[0]), ch);
    const remote = await sub(await client(nodes[1]), ch);
    const pub = await client(nodes[0]);
    let n = 0;
    let stop = false;
    const publisher = (async () => {
      while (!stop) {
        await pub.publish(ch, n++);
        await sleep(20);
      }
    })();
    await waitFor(() => remote.got.length > 5, 5000, 'cross-node before the kill');
    await redis.kill9();
    const localAtKill = local.got.length;
    await sleep(1500);
    assert.ok(local.got.length > localAtKill + 20,
      `local delivery went on while Redis was down (${local.got.length - localAtKill} in 1.5 s)`);
    await waitFor(() => nodes[0].stderr().includes('redis: lost'), 2000, 'node 1 logged the loss');
    const down = await request(`${nodes[0].origin}/healthz`, {method: 'GET'});
    assert.equal(down.status, 503, `/healthz while Redis is down: ${down.status} ${down.text}`);
    assert.match(down.text, /degraded: cluster bus unreachable, local delivery continues/);
    assert.match(down.text, /cluster bus/);
    const remoteAtRestart = remote.got.length;
    const nAtRestart = n;
    await redis.restart();
    // Cross-node delivery resumes within seconds: a message published after the restart
    // reaches node 2.
    await waitFor(() => remote.got.some((v) => v > nAtRestart + 5), 8000, 'cross-node after the restart');
    const up = await request(`${nodes[0].origin}/healthz`, {method: 'GET'});
    assert.equal(up.status, 200, `/healthz after Redis came back: ${up.status} ${up.text}`);
    stop = true;
    await publisher;
    assert.ok(remote.got.length > remoteAtRestart);
    // In order, no duplicates, on both nodes.
    for (const s of [local, remote]) {
      for (let i = 1; i < s.got.length; i++) assert.ok(s.got[i] > s.got[i - 1], 'in order, once');
    }
    assert.deepEqual(local.got, [...Array(n).keys()], 'node 1 got every message');
    // The outage was logged once, not once per retry.
    const losses = nodes[0].stderr().split('\n').filter((l) => /redis: (lost|down)/.test(l));
    assert.equal(losses.length, 1, losses.join('\n'));
    for (const d of nodes) assert.equal(d.proc.exitCode, null, 'still running');
  });
});

describe('cluster: flags', {skip}, () => {
  test('a bad --redis, --redis-prefix or --node-id is a clear error', async () => {
    for (const [flags, re] of [
      [['--redis', 'http://x'], /--redis http:\/\/x: unknown scheme/],
      [['--redis', 'redis://127.0.0.1:99999'], /bad port/],
      [['--redis', 'redis://h', '--redis-prefix', 'a b'], /--redis-prefix must be/],
      [['--redis', 'redis://h', '--node-id', ''], /--node-id must be/],
      [['--node-id', 'n1'], /--node-id needs --redis/],
    ]) {
      const r = await runDaemonOnce(['--listen', '127.0.0.1:0', ...flags]);
      assert.notEqual(r.code, 0, flags.join(' '));
      assert.match(r.stderr, re);
    }
  });
});

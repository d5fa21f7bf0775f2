// History and replay (issue 12, item 3; README "History and replay"): --retain,
// --store (LMDB), replay ids on deliveries and publish replies, ext.replay on
// /meta/subscribe (-2, -1, after an id, wildcards, gaps, bad values), replay racing
// live publishes, kill -9 and restart on the same store, GET /history/<channel>, the
// web/replay-extension.js CometD extension, and a 10,000-message replay over long
// polling. Real daemon, real CometD client, raw wire where exact bytes matter.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, runDaemonOnce, PEER, SLOW} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';
import {request, RawSession, newId} from './lib/wire.mjs';
import {ReplayExtension} from '../../web/replay-extension.js';

const skip = PEER ? 'history is bayeuxd behaviour' : false;
const TOKEN = 'hist_' + 'Qm2LpZ9vR4sT8wY1nB5cD3x7';

let tmp;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-history-')); });
after(() => { fs.rmSync(tmp, {recursive: true, force: true}); });

function origin(url) {
  return new URL(url).origin;
}

/** Backend publish through POST /publish/<channel>; resolves the reply object. */
async function backendPublish(url, channel, data, headers = {}) {
  const r = await request(`${origin(url)}/publish${channel}`, {body: data, headers});
  assert.equal(r.status, 200, `publish ${channel}: ${r.text}`);
  return r.json;
}

/** A raw session subscribed with ext.replay; returns {s, reply}. */
async function rawSubscribe(url, subscription, replay) {
  const s = new RawSession(url);
  await s.handshake();
  const msg = {channel: '/meta/subscribe', clientId: s.clientId, subscription, id: newId()};
  if (replay !== undefined) msg.ext = {replay};
  const replies = await s.exchange([msg]);
  return {s, reply: replies.find((m) => m.channel === '/meta/subscribe')};
}

/** Connects until `want` deliveries arrived (or a connect comes back empty after
 * some arrived); returns {messages, exchanges}. */
async function drain(s, want, {max = 50} = {}) {
  const messages = [];
  let exchanges = 0;
  while (messages.length < want && exchanges < max) {
    // A short poll: a connect with nothing to deliver ends the loop soon.
    const res = await s.connect({advice: {timeout: 2000}}, {timeoutMs: 40000});
    exchanges += 1;
    assert.equal(res.status, 200, res.text);
    const got = res.json.filter((m) => !m.channel.startsWith('/meta/'));
    messages.push(...got);
    if (!got.length && exchanges > 3) break;
  }
  return {messages, exchanges};
}

/** Connects with a short poll so an empty answer comes quickly. */
async function drainQuiet(s) {
  const res = await s.connect({advice: {timeout: 300}}, {timeoutMs: 10000});
  return res.json.filter((m) => !m.channel.startsWith('/meta/'));
}

describe('flags', {skip}, () => {
  test('bad --retain values are refused with a clear message', async () => {
    for (const [flag, want] of [
      ['/chat', /no '=' in it/],
      ['chat=3', /not a channel name or pattern/],
      ['/meta/**=3', /never retained/],
      ['/a=0', /COUNT after '=' must be a whole number from 1 to 10000000/],
      ['/a=5,10', /AGE must be a number with a unit/],
      ['/a=5,400d', /at most 366d/],
      ['/a=5x', /after COUNT comes nothing or ',AGE'/],
    ]) {
      const r = await runDaemonOnce(['--retain', flag]);
      assert.equal(r.code, 2, `--retain ${flag}: ${r.stderr}`);
      assert.match(r.stderr, want, `--retain ${flag}`);
    }
    const r = await runDaemonOnce(['--store', path.join(tmp, 'nothing')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--store needs at least one --retain rule/);
  });
});

describe('in memory', {skip}, () => {
  let d;
  before(async () => {
    d = await startDaemon(['--allow-local-publish', '--retain', '/cnt/**=3',
      '--retain', '/age/**=100,600ms', '--retain', '/bulk/**=20000', '--retain', '/**=1000']);
  });
  after(async () => { await stopDaemonClean(d); });

  test('the handshake offers replay; publishes get increasing ids per channel', async () => {
    const s = new RawSession(d.url);
    const hs = await s.handshake();
    assert.deepEqual(hs.ext, {replay: true});
    const a = uniqueChannel('/ids');
    const b = uniqueChannel('/ids');
    const ids = [];
    for (const ch of [a, a, b, a]) ids.push((await backendPublish(d.url, ch, {ch})).ext.replayId);
    assert.deepEqual(ids, [1, 2, 1, 3]);
    // A session's publish reply carries it too, with the message id.
    const replies = await s.exchange([s.publishMessage(a, 'x', {id: 'p1'})]);
    assert.deepEqual(replies, [{channel: a, successful: true, id: 'p1', ext: {replayId: 4}}]);
  });

  test('replay sits beside the ack and timesync extensions in one ext', async () => {
    const s = new RawSession(d.url);
    const tc = Date.now();
    const hs = await s.handshake({ext: {ack: true, timesync: {tc, l: 0, o: 0}}});
    assert.equal(hs.ext.ack, true);
    assert.equal(hs.ext.replay, true);
    assert.equal(typeof hs.ext.timesync.ts, 'number');
    // A subscribe reporting a gap keeps timesync too.
    const ch = uniqueChannel('/cnt');
    for (let i = 1; i <= 5; i++) await backendPublish(d.url, ch, {i});
    const msg = {channel: '/meta/subscribe', clientId: s.clientId, subscription: ch, id: newId(),
      ext: {replay: {[ch]: 0}, timesync: {tc: Date.now(), l: 0, o: 0}}};
    const [reply] = await s.exchange([msg]);
    assert.deepEqual(reply.ext.replayGap, {[ch]: {after: 0, resumedFrom: 3}});
    assert.equal(typeof reply.ext.timesync.ts, 'number');
    const pub = await s.exchange([s.publishMessage(ch, 6)]);
    assert.deepEqual(pub[0].ext, {replayId: 6});
  });

  test('replay -2 gives all, -1 nothing, N what came after N; live ones follow with their ids',
    async () => {
      const ch = uniqueChannel('/r');
      for (let i = 1; i <= 5; i++) await backendPublish(d.url, ch, {i});
      const all = await rawSubscribe(d.url, ch, {[ch]: -2});
      assert.equal(all.reply.successful, true);
      const got = (await drain(all.s, 5)).messages;
      assert.deepEqual(got.map((m) => m.data.i), [1, 2, 3, 4, 5]);
      assert.deepEqual(got.map((m) => m.ext.replayId), [1, 2, 3, 4, 5]);

      const none = await rawSubscribe(d.url, ch, {[ch]: -1});
      assert.deepEqual(await drainQuiet(none.s), []);
      const absent = await rawSubscribe(d.url, ch);
      assert.deepEqual(await drainQuiet(absent.s), []);

      const after3 = await rawSubscribe(d.url, ch, {[ch]: 3});
      assert.equal(after3.reply.ext, undefined, 'no gap: 4 is retained');
      assert.deepEqual((await drain(after3.s, 2)).messages.map((m) => m.ext.replayId), [4, 5]);

      await backendPublish(d.url, ch, {i: 6});
      for (const s of [all.s, none.s, after3.s]) {
        const live = (await drain(s, 1)).messages;
        assert.deepEqual(live.map((m) => [m.data.i, m.ext.replayId]), [[6, 6]]);
      }
    });

  test('COUNT keeps the last N; an older id is not refused: the reply names the gap',
    async () => {
      const ch = uniqueChannel('/cnt');
      for (let i = 1; i <= 10; i++) await backendPublish(d.url, ch, {i});
      const {s, reply} = await rawSubscribe(d.url, ch, {[ch]: 2});
      assert.equal(reply.successful, true);
      assert.deepEqual(reply.ext, {replayGap: {[ch]: {after: 2, resumedFrom: 8}}});
      assert.deepEqual((await drain(s, 3)).messages.map((m) => m.ext.replayId), [8, 9, 10]);
      // Asking from 7 on is no gap.
      const ok = await rawSubscribe(d.url, ch, {[ch]: 7});
      assert.equal(ok.reply.ext, undefined);
    });

  test('AGE drops what is older', async () => {
    const ch = uniqueChannel('/age');
    await backendPublish(d.url, ch, {i: 1});
    await backendPublish(d.url, ch, {i: 2});
    await sleep(800);
    await backendPublish(d.url, ch, {i: 3});
    const {s} = await rawSubscribe(d.url, ch, {[ch]: -2});
    assert.deepEqual((await drain(s, 1)).messages.map((m) => m.data.i), [3]);
    assert.deepEqual(await drainQuiet(s), []);
  });

  test('a wildcard replays every retained channel it matches, in order per channel',
    async () => {
      const root = uniqueChannel('/w');
      const chans = [`${root}/a`, `${root}/b`, `${root}/c/deep`];
      for (let i = 0; i < 12; i++) await backendPublish(d.url, chans[i % 3], {i});
      await backendPublish(d.url, uniqueChannel('/other'), {i: 'not matched'});
      const {s} = await rawSubscribe(d.url, `${root}/**`, {[`${root}/**`]: -2});
      const got = (await drain(s, 12)).messages;
      assert.equal(got.length, 12);
      for (const ch of chans) {
        const mine = got.filter((m) => m.channel === ch);
        assert.deepEqual(mine.map((m) => m.ext.replayId), [1, 2, 3, 4]);
      }
      // /* is one level: c/deep is not under it.
      const one = await rawSubscribe(d.url, `${root}/*`, {[`${root}/*`]: -2});
      const got1 = (await drain(one.s, 8)).messages;
      assert.deepEqual([...new Set(got1.map((m) => m.channel))].sort(), chans.slice(0, 2));
      // Under a wildcard, a channel named on its own uses its own id.
      const per = await rawSubscribe(d.url, `${root}/*`,
        {[`${root}/*`]: -1, [`${root}/a`]: 2});
      assert.deepEqual((await drain(per.s, 2)).messages.map((m) => [m.channel, m.ext.replayId]),
        [[chans[0], 3], [chans[0], 4]]);
    });

  test('bad replay values get a Bayeux error naming the entry', async () => {
    const ch = uniqueChannel('/bad');
    for (const replay of [{[ch]: 'x'}, {[ch]: -3}, {[ch]: 1.5}, {[ch]: 2 ** 60}, {[ch]: null},
      {[ch]: {id: 1}}, [1], 'all', 7]) {
      const {reply} = await rawSubscribe(d.url, ch, replay);
      assert.equal(reply.successful, false, JSON.stringify(replay));
      assert.match(reply.error, /^400:.*:replay_invalid$/);
      assert.match(reply.hint, /-2 \(every retained message\), -1 \(only new ones\)/);
      assert.equal(reply.subscription, ch);
    }
    const {reply} = await rawSubscribe(d.url, ch, {[ch]: 'x'});
    assert.equal(reply.error, `400:${ch}:replay_invalid`);
  });

  test('replay racing live publishes: no gap, no duplicate, in order', {timeout: 60000},
    async () => {
      const ch = uniqueChannel('/race');
      const N = 600;
      const clients = [];
      let published = 0;
      const publisher = (async () => {
        // Four publishers in flight at a time, each message numbered.
        const next = async () => {
          while (published < N) {
            const i = ++published;
            await backendPublish(d.url, ch, {i});
          }
        };
        await Promise.all([next(), next(), next(), next()]);
      })();
      // Subscribers with replay -2 join while the publishes go on.
      for (let k = 0; k < 5; k++) {
        await waitFor(() => published >= (k + 1) * N / 7, 30000, 'publishes under way');
        const c = new CometDClient(d.url);
        await c.handshake();
        const got = [];
        await new Promise((resolve, reject) => {
          c.cometd.subscribe(ch, (m) => got.push(m), {ext: {replay: {[ch]: -2}}}, (r) =>
            r.successful ? resolve() : reject(new Error(JSON.stringify(r))));
        });
        clients.push({c, got});
      }
      await publisher;
      for (const {c, got} of clients) {
        await waitFor(() => got.length >= N, 30000, `subscriber got ${got.length} of ${N}`);
        await sleep(200);
        const ids = got.map((m) => m.ext.replayId);
        assert.equal(ids.length, N, 'no duplicate');
        assert.deepEqual(ids, Array.from({length: N}, (_, i) => i + 1), 'every id, in order');
        await c.disconnect();
      }
    });

  test('replaying 10,000 messages over long polling takes a handful of replies',
    {timeout: 120000}, async () => {
      const ch = uniqueChannel('/bulk');
      // Published in batches through the Bayeux endpoint (a backend's batch).
      for (let i = 0; i < 10000; i += 500) {
        const body = Array.from({length: 500}, (_, k) => ({channel: ch, data: {i: i + k}}));
        const r = await request(d.url, {body});
        assert.equal(r.status, 200);
      }
      const t0 = performance.now();
      const {s} = await rawSubscribe(d.url, ch, {[ch]: -2});
      const {messages, exchanges} = await drain(s, 10000);
      const ms = performance.now() - t0;
      assert.equal(messages.length, 10000);
      assert.deepEqual(messages.slice(0, 3).map((m) => m.data.i), [0, 1, 2]);
      assert.equal(messages[9999].ext.replayId, 10000);
      console.log(`# replayed 10,000 messages in ${exchanges} connect replies, ${ms.toFixed(0)} ms`);
      assert.ok(exchanges <= 5, `${exchanges} exchanges`);
    });

  test('the CometD replay extension (web/) resumes after the last id it saw', async () => {
    const ch = uniqueChannel('/ext');
    const ext = new ReplayExtension({initial: -1});
    const a = new CometDClient(d.url);
    a.cometd.registerExtension('replay', ext);
    await a.handshake();
    assert.equal(ext.serverReplays, true);
    const got = [];
    await a.subscribe(ch, (m) => got.push(m.data.i));
    for (let i = 1; i <= 3; i++) await backendPublish(d.url, ch, {i});
    await waitFor(() => got.length === 3, 10000, 'live messages');
    assert.equal(ext.lastId(ch), 3);
    await a.disconnect();
    for (let i = 4; i <= 6; i++) await backendPublish(d.url, ch, {i});
    // A new client (a reloaded page keeping the extension's memory) subscribes again.
    const b = new CometDClient(d.url);
    b.cometd.registerExtension('replay', ext);
    await b.handshake();
    const got2 = [];
    await b.subscribe(ch, (m) => got2.push(m.data.i));
    await waitFor(() => got2.length === 3, 10000, 'replayed messages');
    await sleep(200);
    assert.deepEqual(got2, [4, 5, 6]);
    await b.disconnect();
  });
});

describe('GET /history/<channel>', {skip}, () => {
  let d;
  let tokenFile;
  before(async () => {
    tokenFile = path.join(tmp, 'token');
    fs.writeFileSync(tokenFile, TOKEN, {mode: 0o600});
    d = await startDaemon(['--publish-token-file', tokenFile, '--retain', '/h/**=50']);
  });
  after(async () => { await stopDaemonClean(d); });

  test('authorized like POST /publish/: bearer token, else 403', async () => {
    const ch = uniqueChannel('/h');
    const auth = {Authorization: `Bearer ${TOKEN}`};
    for (let i = 1; i <= 4; i++) await backendPublish(d.url, ch, {i}, auth);
    const url = `${origin(d.url)}/history${ch}`;
    let r = await request(url, {method: 'GET', headers: auth});
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /application\/json/);
    assert.deepEqual(r.json.map((m) => [m.channel, m.data.i, m.ext.replayId]),
      [[ch, 1, 1], [ch, 2, 2], [ch, 3, 3], [ch, 4, 4]]);
    r = await request(`${url}?after=1&limit=2`, {method: 'GET', headers: auth});
    assert.deepEqual(r.json.map((m) => m.ext.replayId), [2, 3]);
    r = await request(`${url}?after=4`, {method: 'GET', headers: auth});
    assert.deepEqual(r.json, []);
    // Without the token (loopback is not enough without --allow-local-publish).
    r = await request(url, {method: 'GET'});
    assert.equal(r.status, 403);
    assert.equal(r.json.error, '403::history_denied');
    r = await request(url, {method: 'GET', headers: {Authorization: 'Bearer wrong-token-123456'}});
    assert.equal(r.status, 403);
    // Bad queries, a channel not retained, a wildcard, another method.
    for (const q of ['?after=x', '?after=-1', '?limit=0', '?limit=10001', '?after=']) {
      r = await request(url + q, {method: 'GET', headers: auth});
      assert.equal(r.status, 400, q);
      assert.equal(r.json.error, '400::history_query_invalid');
    }
    r = await request(`${origin(d.url)}/history/not/retained`, {method: 'GET', headers: auth});
    assert.equal(r.status, 404);
    r = await request(`${origin(d.url)}/history/h/**`, {method: 'GET', headers: auth});
    assert.equal(r.status, 400);
    r = await request(url, {method: 'POST', headers: auth, body: '{}'});
    assert.equal(r.status, 405);
  });

  test('--allow-local-publish lets loopback read', async () => {
    const d2 = await startDaemon(['--allow-local-publish', '--retain', '/h/**=5']);
    try {
      const ch = uniqueChannel('/h');
      await backendPublish(d2.url, ch, 1);
      const r = await request(`${origin(d2.url)}/history${ch}`, {method: 'GET'});
      assert.equal(r.status, 200);
      assert.equal(r.json.length, 1);
    } finally {
      await stopDaemonClean(d2);
    }
  });
});

describe('with --store (LMDB)', {skip}, () => {
  test('kill -9 right after the acks loses nothing acknowledged; ids continue', {timeout: 60000},
    async () => {
      const dir = path.join(tmp, 'store-kill');
      const flags = ['--allow-local-publish', '--retain', '/k/**=100000', '--store', dir];
      const d = await startDaemon(flags);
      const ch = '/k/durable';
      const acked = new Set();
      let stop = false;
      // 20 publishers in flight; each ack is recorded the moment it arrives.
      const workers = Array.from({length: 20}, async (_, w) => {
        for (let i = 0; !stop; i++) {
          try {
            const r = await request(`${origin(d.url)}/publish${ch}`, {body: {w, i}});
            if (r.status === 200 && r.json.successful) acked.add(r.json.ext.replayId);
          } catch {
            return; // the broker died under us
          }
        }
      });
      await waitFor(() => acked.size >= 300, 30000, 'acks');
      d.proc.kill('SIGKILL');
      stop = true;
      await Promise.all(workers);
      await d.exited;
      const n = acked.size;
      const d2 = await startDaemon(flags);
      try {
        const r = await request(`${origin(d2.url)}/history${ch}?limit=10000`, {method: 'GET'});
        const ids = new Set(r.json.map((m) => m.ext.replayId));
        const lost = [...acked].filter((id) => !ids.has(id));
        assert.deepEqual(lost, [], `acknowledged but lost after kill -9 (of ${n})`);
        const max = Math.max(...ids);
        // Ids are dense: 1..max, each once.
        assert.equal(r.json.length, max);
        // A subscriber replaying everything gets every acknowledged message, in order.
        const {s} = await rawSubscribe(d2.url, ch, {[ch]: -2});
        const replayed = (await drain(s, max)).messages.map((m) => m.ext.replayId);
        assert.deepEqual(replayed, Array.from({length: max}, (_, i) => i + 1));
        const next = await backendPublish(d2.url, ch, {after: 'restart'});
        assert.equal(next.ext.replayId, max + 1, 'ids continue');
        console.log(`# kill -9 after ${n} acknowledged publishes: all ${n} replayed, ${max} stored`);
      } finally {
        await stopDaemonClean(d2);
      }
    });

  test('a replay after a clean restart gives the same messages, in order', async () => {
    const dir = path.join(tmp, 'store-clean');
    const flags = ['--allow-local-publish', '--retain', '/s/**=3', '--store', dir];
    let d = await startDaemon(flags);
    for (let i = 1; i <= 5; i++) await backendPublish(d.url, '/s/x', {i});
    await stopDaemonClean(d);
    d = await startDaemon(flags);
    try {
      const {s, reply} = await rawSubscribe(d.url, '/s/x', {'/s/x': 1});
      assert.deepEqual(reply.ext, {replayGap: {'/s/x': {after: 1, resumedFrom: 3}}});
      assert.deepEqual((await drain(s, 3)).messages.map((m) => [m.data.i, m.ext.replayId]),
        [[3, 3], [4, 4], [5, 5]]);
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('concurrent publishes share commits (group commit), shown on /metrics', async () => {
    const dir = path.join(tmp, 'store-group');
    const d = await startDaemon(['--allow-local-publish', '--retain', '/g/**=1000', '--store', dir]);
    try {
      await Promise.all(Array.from({length: 50}, async (_, w) => {
        for (let i = 0; i < 10; i++) await backendPublish(d.url, `/g/${w % 5}`, {w, i});
      }));
      const r = await request(`${origin(d.url)}/metrics`, {method: 'GET'});
      assert.equal(r.status, 200);
      const val = (name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(r.text)[1]);
      assert.equal(val('bayeux_history_appended_total'), 500);
      const commits = val('bayeux_store_commits_total');
      assert.equal(val('bayeux_store_records_total'), 500);
      assert.ok(commits < 500, `${commits} commits for 500 records: no grouping`);
      console.log(`# 50 concurrent publishers, 500 publishes: ${commits} commits ` +
        `(${(500 / commits).toFixed(1)} records per sync)`);
      let promtool = null;
      try {
        execFileSync('promtool', ['--version'], {stdio: 'ignore'});
        promtool = 'promtool';
      } catch { /* not installed: skip the format check */ }
      if (promtool) {
        execFileSync(promtool, ['check', 'metrics'], {input: r.text});
      }
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('an unusable --store folder is a clear startup error', async () => {
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, 'x');
    const r = await runDaemonOnce(['--retain', '/a=1', '--store', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`--store ${file}`));
  });
});

void SLOW;

// Server-Sent Events against bayeuxd, raw: Faye's eventsource exchange (GET
// <path>/<clientId> + POSTed connects answered at once), SSE framing, heartbeats, the
// max-age and max-bytes rollovers with nothing lost, Last-Event-ID resumption, a dropped
// stream detected and cleaned up, HTTP/1.0 EOF-delimited streams, the plain endpoint
// <path>/sse?subscribe=..., and examples/sse-curl.sh.
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import path from 'node:path';
import {describe, test} from 'node:test';

import {REPO, SLOW, startDaemon, stopDaemonClean, withDaemon} from './lib/daemon.mjs';
import {eventSource, http10Get, openStream} from './lib/sse.mjs';
import {RawSession, newId, request, sleep} from './lib/wire.mjs';

const T = (ms) => ms * SLOW;

/** A long-polling client that publishes. */
async function publisher(url) {
  const p = new RawSession(url);
  await p.handshake();
  return p;
}

/** A handshaken session offering eventsource, as Faye's browser client does. */
async function fayeSession(url) {
  const s = new RawSession(url);
  const reply = await s.handshake({supportedConnectionTypes: ['eventsource', 'long-polling', 'callback-polling']});
  return {s, reply};
}

const plainUrl = (d, ...subs) => `${d.url}/sse?${subs.map((c) => `subscribe=${encodeURIComponent(c)}`).join('&')}`;

describe('eventsource (Faye\'s exchange)', () => {
  test('the handshake offers eventsource; GET <path>/<clientId> streams each batch as one event of a JSON array', async () => {
    await withDaemon([], async (d) => {
      const {s, reply} = await fayeSession(d.url);
      assert.ok(reply.supportedConnectionTypes.includes('eventsource'), JSON.stringify(reply));
      const st = await openStream(`${d.url}/${s.clientId}`);
      try {
        assert.equal(st.status, 200);
        assert.match(st.headers['content-type'], /^text\/event-stream/);
        assert.match(st.headers['cache-control'], /no-cache/);
        assert.equal(st.headers['x-accel-buffering'], 'no');
        await s.subscribe('/chat/**');
        // Faye's connects over eventsource: answered at once, advice interval = the
        // poll timeout, timeout 0.
        const first = await s.connect({connectionType: 'eventsource'});
        const again = await s.connect({connectionType: 'eventsource'});
        assert.ok(again.elapsedMs < 1000 * SLOW, `connect answered in ${again.elapsedMs} ms`);
        for (const r of [first, again]) {
          const c = r.json.find((m) => m.channel === '/meta/connect');
          assert.equal(c.successful, true);
          assert.deepEqual(c.advice, {reconnect: 'retry', interval: 30000, timeout: 0});
        }
        // A batch of three publishes from another client.
        const p = await publisher(d.url);
        await p.exchange([1, 2, 3].map((n) => p.publishMessage('/chat/room', {n})));
        await st.waitFor((x) => x.events.reduce((k, e) => k + JSON.parse(e.data).length, 0) >= 3, 3000, '3 messages');
        const got = st.events.flatMap((e) => JSON.parse(e.data));
        assert.deepEqual(got.map((m) => m.data.n), [1, 2, 3]);
        for (const m of got) {
          assert.equal(m.channel, '/chat/room');
          assert.equal(m.clientId, undefined);
        }
        // Ids are the number of the event's last message, increasing.
        const ids = st.events.map((e) => Number(e.id));
        assert.ok(ids.every((n, i) => Number.isInteger(n) && (i === 0 || n > ids[i - 1])), `ids ${ids}`);
        assert.equal(ids.at(-1), 3);
        // Nothing went into a connect reply meanwhile.
        const later = await s.connect({connectionType: 'eventsource'});
        assert.deepEqual(later.json.map((m) => m.channel), ['/meta/connect']);
      } finally {
        st.close();
      }
    });
  });

  test('a long-polling connect held when the stream opens gets its ordinary reply', async () => {
    await withDaemon([], async (d) => {
      const {s} = await fayeSession(d.url);
      await s.connect(); // the first connect returns at once
      const held = s.connect({}, {timeoutMs: 10000});
      await sleep(300);
      const st = await openStream(`${d.url}/${s.clientId}`);
      try {
        const r = await held;
        assert.equal(r.status, 200);
        assert.ok(r.elapsedMs < 3000 * SLOW, `released after ${r.elapsedMs} ms`);
        assert.equal(r.json.find((m) => m.channel === '/meta/connect').successful, true);
      } finally {
        st.close();
      }
    });
  });

  test('an unknown clientId gets 404 (EventSource stops; the client handshakes again)', async () => {
    await withDaemon([], async (d) => {
      const st = await openStream(`${d.url}/AAAAAAAAAAAAAAAAAAAAAA`);
      await st.waitFor((x) => x.ended, 3000, 'end');
      assert.equal(st.status, 404);
    });
  });

  test('--sse 0: eventsource is not offered and there is no stream endpoint', async () => {
    await withDaemon(['--sse', '0'], async (d) => {
      const {reply} = await fayeSession(d.url);
      assert.ok(!reply.supportedConnectionTypes.includes('eventsource'));
      const r = await request(plainUrl(d, '/a'), {method: 'GET'});
      assert.equal(r.status, 400);
    });
  });
});

describe('streaming practices', () => {
  test('framing: every event is whole SSE text (id, data, blank line) whatever the chunks', async () => {
    await withDaemon([], async (d) => {
      const st = await openStream(plainUrl(d, '/f/*'));
      try {
        const p = await publisher(d.url);
        // Messages with line breaks, quotes and non-ASCII inside the data.
        const texts = ['a\nb', 'c\r\nd', 'é " \\ \u2028 end', 'x'.repeat(20000)];
        await p.exchange(texts.map((t) => p.publishMessage('/f/x', {t})));
        await st.waitFor((x) => x.events.length >= texts.length, 3000, 'four events');
        assert.deepEqual(st.events.map((e) => JSON.parse(e.data).data.t), texts);
        assert.match(st.raw, /^retry: \d+\n\n/);
        // The raw text: only id:, data:, retry: and comment lines, each event ending in a
        // blank line; no line break inside a data line.
        const body = st.raw.replace(/^retry: \d+\n\n/, '');
        for (const block of body.split('\n\n').filter((b) => b)) {
          const lines = block.split('\n');
          if (lines.every((l) => l.startsWith(':'))) continue;
          assert.match(lines[0], /^id: [A-Za-z0-9]{22}-\d+$/);
          assert.equal(lines.length, 2, JSON.stringify(block.slice(0, 200)));
          assert.match(lines[1], /^data: \{[^\n]*\}$/u);
        }
      } finally {
        st.close();
      }
    });
  });

  test('heartbeats: a comment line every --sse-heartbeat with nothing to send', async () => {
    await withDaemon(['--sse-heartbeat', '200'], async (d) => {
      const st = await openStream(plainUrl(d, '/quiet'));
      try {
        const t0 = Date.now();
        await st.waitFor((x) => x.comments.length >= 5, 3000, '5 heartbeats');
        const took = Date.now() - t0;
        assert.ok(took >= 800 && took < 2500 * SLOW, `5 heartbeats in ${took} ms`);
        assert.equal(st.events.length, 0);
      } finally {
        st.close();
      }
    });
  });

  test('max-age rollover: streams end and reconnect; every message arrives once, in order', async () => {
    await withDaemon(['--sse-max-age', '400', '--sse-retry', '50'], async (d) => {
      const es = eventSource(plainUrl(d, '/roll'));
      try {
        await sleep(200);
        const p = await publisher(d.url);
        const N = 120;
        for (let i = 0; i < N; i++) {
          await p.publish('/roll', {i});
          await sleep(15);
        }
        const deadline = Date.now() + T(5000);
        while (es.events.length < N && Date.now() < deadline) await sleep(50);
        const got = es.events.map((e) => JSON.parse(e.data).data.i);
        assert.deepEqual(got, [...Array(N).keys()]);
        assert.ok(es.streams >= 4, `only ${es.streams} streams: no rollover?`);
        assert.ok(es.statuses.every((s) => s === 200));
      } finally {
        await es.stop();
      }
    });
  });

  test('max-bytes rollover on a Faye stream: nothing lost across it', async () => {
    await withDaemon(['--sse-max-bytes', '2000', '--sse-retry', '50'], async (d) => {
      const {s} = await fayeSession(d.url);
      await s.subscribe('/bytes');
      const es = eventSource(`${d.url}/${s.clientId}`);
      try {
        await sleep(200);
        const p = await publisher(d.url);
        const N = 100;
        for (let i = 0; i < N; i++) await p.publish('/bytes', {i, pad: 'p'.repeat(100)});
        const deadline = Date.now() + T(5000);
        const count = () => es.events.reduce((k, e) => k + JSON.parse(e.data).length, 0);
        while (count() < N && Date.now() < deadline) await sleep(50);
        const got = es.events.flatMap((e) => JSON.parse(e.data)).map((m) => m.data.i);
        assert.deepEqual(got, [...Array(N).keys()]);
        // A stream ends after the event that reaches the limit, so ~14 KB sent one
        // message at a time must end the first stream at least once. How many streams
        // follow depends on timing: a reconnecting stream gets whatever queued while it
        // was away as one event (up to 64 KiB), so on a loaded machine the rest can come
        // in one. Asking for 3 made this test fail by luck (seen in CI runs).
        assert.ok(es.streams >= 2, `only ${es.streams} stream for ~14 KB at 2000 bytes each`);
      } finally {
        await es.stop();
      }
    });
  });

  test('Last-Event-ID: a stream dropped mid-way resumes with exactly what it missed', async () => {
    await withDaemon([], async (d) => {
      const p = await publisher(d.url);
      const a = await openStream(plainUrl(d, '/res'));
      for (let i = 1; i <= 3; i++) await p.publish('/res', {i});
      await a.waitFor((x) => x.events.length >= 3, 3000, '3 events');
      const last = a.lastEventId;
      assert.match(last, /^[A-Za-z0-9]{22}-3$/);
      a.close(); // the server does not know yet: what comes next is written to a dead socket
      for (let i = 4; i <= 6; i++) await p.publish('/res', {i});
      await sleep(100);
      const b = await openStream(plainUrl(d, '/res'), {headers: {'Last-Event-ID': last}});
      try {
        assert.equal(b.status, 200);
        await b.waitFor((x) => x.events.length >= 3, 3000, 'the 3 missed events');
        await p.publish('/res', {i: 7});
        await b.waitFor((x) => x.events.length >= 4, 3000, 'event 7');
        await sleep(200);
        assert.deepEqual(b.events.map((e) => JSON.parse(e.data).data.i), [4, 5, 6, 7]);
        assert.deepEqual(b.events.map((e) => e.id.split('-')[1]), ['4', '5', '6', '7']);
        assert.equal(b.events[0].id.split('-')[0], last.split('-')[0], 'the same session');
      } finally {
        b.close();
      }
    });
  });

  test('Last-Event-ID on a Faye stream replays from the session\'s ring', async () => {
    await withDaemon([], async (d) => {
      const {s} = await fayeSession(d.url);
      await s.subscribe('/fr');
      const p = await publisher(d.url);
      const a = await openStream(`${d.url}/${s.clientId}`);
      await p.publish('/fr', {i: 1});
      await a.waitFor((x) => x.events.length >= 1, 3000, 'event 1');
      const last = a.lastEventId;
      a.close();
      await p.publish('/fr', {i: 2});
      await p.publish('/fr', {i: 3});
      await sleep(100);
      const b = await openStream(`${d.url}/${s.clientId}`, {headers: {'Last-Event-ID': last}});
      try {
        const count = (x) => x.events.reduce((k, e) => k + JSON.parse(e.data).length, 0);
        await b.waitFor((x) => count(x) >= 2, 3000, 'messages 2 and 3');
        await sleep(200);
        assert.deepEqual(b.events.flatMap((e) => JSON.parse(e.data)).map((m) => m.data.i), [2, 3]);
      } finally {
        b.close();
      }
    });
  });

  test('a dropped stream is detected at the next heartbeat and its session cleaned up', async () => {
    await withDaemon(['--sse-heartbeat', '200', '--max-interval', '1000', '--log-level', 'debug'], async (d) => {
      const a = await openStream(plainUrl(d, '/drop'));
      await a.waitFor((x) => x.retry !== undefined, 2000, 'the opening retry field');
      let t0 = Date.now();
      while (!/plain stream opened/.test(d.stderr()) && Date.now() - t0 < T(2000)) await sleep(20);
      assert.doesNotMatch(d.stderr(), /stream closed/);
      a.close();
      t0 = Date.now();
      while (!/stream closed/.test(d.stderr()) && Date.now() - t0 < T(3000)) await sleep(50);
      assert.match(d.stderr(), /stream closed/, 'the server noticed the dropped stream');
      // Kept for --max-interval for a reconnect, then expired with its subscriptions.
      while (!/removed/.test(d.stderr()) && Date.now() - t0 < T(4000)) await sleep(50);
      assert.match(d.stderr(), /session \S+ removed/);
      // Its Last-Event-ID no longer finds it: a new session starts.
      await sleep(100);
      const b = await openStream(plainUrl(d, '/drop'), {headers: {'Last-Event-ID': `${'x'.repeat(22)}-1`}});
      b.close();
      assert.equal(b.status, 200);
    });
  });

  test('HTTP/1.0: the stream is EOF-delimited (no chunking) and ends by closing', async () => {
    await withDaemon(['--sse-max-age', '600'], async (d) => {
      const pub = (async () => {
        await sleep(200);
        const p = await publisher(d.url);
        await p.publish('/old', {hello: 1});
      })();
      const r = await http10Get(d.port, '/cometd/sse?subscribe=/old', 5000);
      await pub;
      assert.match(r.head, /^HTTP\/1\.[01] 200/);
      assert.doesNotMatch(r.head, /transfer-encoding/i);
      assert.doesNotMatch(r.head, /content-length/i);
      assert.match(r.body, /^retry: \d+\n\n/);
      assert.match(r.body, /\ndata: \{"channel":"\/old","data":\{"hello":1\},"id":"[^"]+"\}\n\n/);
    });
  });
});

describe('plain SSE endpoint', () => {
  test('<path>/sse?subscribe=... (repeatable) streams matching publishes, no Bayeux client needed', async () => {
    await withDaemon([], async (d) => {
      const st = await openStream(plainUrl(d, '/news/*', '/alerts/**'), {headers: {Accept: '*/*'}});
      try {
        assert.equal(st.status, 200);
        const p = await publisher(d.url);
        await p.publish('/news/tech', {n: 1});
        await p.publish('/sports/x', {n: 2}); // not subscribed
        await p.publish('/alerts/a/b', {n: 3});
        await st.waitFor((x) => x.events.length >= 2, 3000, '2 events');
        await sleep(200);
        // The delivered message as a Bayeux client gets it (with the publisher's id).
        assert.deepEqual(st.events.map((e) => JSON.parse(e.data)).map(({channel, data}) => ({channel, data})),
          [{channel: '/news/tech', data: {n: 1}}, {channel: '/alerts/a/b', data: {n: 3}}]);
      } finally {
        st.close();
      }
    });
  });

  test('bad requests: no subscribe, /meta channels, malformed channels', async () => {
    await withDaemon([], async (d) => {
      const none = await request(`${d.url}/sse`, {method: 'GET'});
      assert.equal(none.status, 400);
      assert.match(none.text, /subscribe=/);
      const meta = await request(plainUrl(d, '/meta/**'), {method: 'GET'});
      assert.equal(meta.status, 403);
      assert.match(meta.text, /subscribe_denied/);
      const bad = await request(plainUrl(d, 'no-slash'), {method: 'GET'});
      assert.equal(bad.status, 403);
      assert.match(bad.text, /subscription_invalid/);
      const many = await request(`${d.url}/sse?${Array(65).fill('subscribe=/a').join('&')}`, {method: 'GET'});
      assert.equal(many.status, 400);
    });
  });

  test('shutdown ends open streams and the daemon exits 0', async () => {
    const d = await startDaemon([]);
    const st = await openStream(plainUrl(d, '/bye'));
    const {s} = await fayeSession(d.url);
    const fs = await openStream(`${d.url}/${s.clientId}`);
    await st.waitFor((x) => x.retry !== undefined, 2000, 'open');
    await stopDaemonClean(d);
    await st.waitFor((x) => x.ended, 3000, 'stream end');
    await fs.waitFor((x) => x.ended, 3000, 'faye stream end');
  });

  test('examples/sse-curl.sh watches a channel with curl -N', async () => {
    await withDaemon(['--allow-local-publish'], async (d) => {
      const script = path.join(REPO, 'examples', 'sse-curl.sh');
      const proc = spawn('sh', [script, '/demo/**'], {env: {...process.env, BAYEUX_URL: d.url},
        stdio: ['ignore', 'pipe', 'pipe']});
      let out = '';
      proc.stdout.setEncoding('utf8');
      proc.stdout.on('data', (x) => { out += x; });
      try {
        const t0 = Date.now();
        while (!out.includes('retry:') && Date.now() - t0 < T(3000)) await sleep(50);
        const r = await request(`${d.origin}/publish/demo/hello`, {body: {text: 'hi from curl test'}});
        assert.equal(r.status, 200, r.text);
        while (!out.includes('hi from curl test') && Date.now() - t0 < T(5000)) await sleep(50);
        assert.match(out, /data: \{"channel":"\/demo\/hello","data":\{"text":"hi from curl test"\}/);
      } finally {
        proc.kill('SIGTERM');
      }
    });
  });
});

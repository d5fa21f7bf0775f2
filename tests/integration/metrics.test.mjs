// GET /metrics (Prometheus text format) and GET /healthz against the real daemon:
// who may read /metrics (loopback, the publish token, 403 otherwise), that promtool
// accepts the text, that the figures move with real CometD and Faye clients and raw
// Bayeux traffic (handshakes accepted and refused, publishes, deliveries, drops,
// expiry, held connects and streams, status classes, bytes, the latency histogram),
// --metrics-listen, and /healthz turning 503 when shutdown starts.
//
// A "stranger" (a non-loopback peer) cannot be made without a second network
// interface, and these tests stay on 127.0.0.1. What they check instead: a loopback
// request that came through a proxy (X-Forwarded-For, X-Real-IP, Forwarded) is not
// local and gets 403, so the refusal path runs for real; the address test itself
// (10.0.0.1, 203.0.113.9, 2001:db8::1 refused) is in tests/unit/test_metrics.c.
import {after, before, describe, test} from 'node:test';
import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import {PEER, SLOW, runDaemonOnce, startDaemon, stopDaemonClean} from './lib/daemon.mjs';
import {CometDClient, FayeClient, sleep, uniqueChannel, waitFor} from './lib/clients.mjs';
import {openStream} from './lib/sse.mjs';
import {RawSession, request} from './lib/wire.mjs';

const skip = PEER ? '/metrics is bayeuxd behaviour' : false;
const TOKEN = 'mt_' + 'Zq4Wn8Kd2Rb6Yx1Vc9Tj3Hs7'; // 27 characters
const PROMTOOL = process.env.PROMTOOL || '/usr/bin/promtool';

let tmp;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-metrics-')); });
after(() => { fs.rmSync(tmp, {recursive: true, force: true}); });

function tokenFile() {
  const f = path.join(tmp, `token-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(f, `${TOKEN}\n`, {mode: 0o600});
  return f;
}

/** Parses the text format into {name{labels}: value} with labels sorted as written. */
function parse(text) {
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^(\S+?)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    out[m[1] + (m[2] || '')] = Number(m[3]);
  }
  return out;
}

async function scrape(origin, headers = {}) {
  const r = await request(`${origin}/metrics`, {method: 'GET', headers});
  assert.equal(r.status, 200, r.text);
  return parse(r.text);
}

const LAT = 'bayeux_publish_to_write_seconds';

/** Resolves when the async pred() is true (polled every 50 ms), rejects after ms. */
async function until(pred, ms, what) {
  const end = Date.now() + ms * SLOW;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > end) throw new Error(`${what}: not true within ${ms * SLOW} ms`);
    await sleep(50);
  }
}

describe('/metrics', {skip}, () => {
  let d;
  before(async () => {
    d = await startDaemon(['--publish-token-file', tokenFile(), '--max-queue', '5',
      '--max-interval', '1000', '--max-sessions', '6', '--sse-heartbeat', '300']);
  });
  after(async () => { await stopDaemonClean(d); });

  test('answers loopback in the text format, and promtool check metrics passes', async () => {
    const r = await request(`${d.origin}/metrics`, {method: 'GET'});
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    for (const name of ['bayeux_sessions', 'bayeux_connections', 'bayeux_handshakes_total',
      'bayeux_handshakes_denied_total', 'bayeux_messages_published_total',
      'bayeux_messages_delivered_total', 'bayeux_messages_dropped_total',
      'bayeux_messages_expired_total', 'bayeux_received_bytes_total', 'bayeux_sent_bytes_total',
      'bayeux_http_requests_total', LAT, 'process_resident_memory_bytes',
      'process_cpu_seconds_total', 'process_open_fds', 'process_start_time_seconds']) {
      assert.match(r.text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} missing`);
    }
    const m = parse(r.text);
    assert.ok(m.process_resident_memory_bytes > 1e6, 'RSS is read from /proc');
    assert.ok(m.process_open_fds >= 4);
    const start = m.process_start_time_seconds;
    assert.ok(Math.abs(start - Date.now() / 1000) < 120, `start time ${start} is recent`);
    const pt = spawnSync(PROMTOOL, ['check', 'metrics'], {input: r.text, encoding: 'utf8'});
    assert.equal(pt.error, undefined, `cannot run ${PROMTOOL}: ${pt.error}`);
    assert.equal(pt.status, 0, `promtool check metrics:\n${pt.stdout}${pt.stderr}`);
    assert.equal((pt.stdout + pt.stderr).trim(), '', 'no lint warnings');
  });

  test('a proxied request (X-Forwarded-For …) is not local: 403 without the token, 200 with it',
    async () => {
      for (const h of [{'X-Forwarded-For': '203.0.113.9'}, {'X-Real-IP': '203.0.113.9'},
        {Forwarded: 'for=203.0.113.9'}]) {
        const r = await request(`${d.origin}/metrics`, {method: 'GET', headers: h});
        assert.equal(r.status, 403, JSON.stringify(h));
        assert.match(r.text, /loopback clients and holders of the publish token/);
        assert.doesNotMatch(r.text, /bayeux_/);
        const wrong = await request(`${d.origin}/metrics`, {method: 'GET',
          headers: {...h, Authorization: `Bearer ${TOKEN}x`}});
        assert.equal(wrong.status, 403);
        const ok = await request(`${d.origin}/metrics`, {method: 'GET',
          headers: {...h, Authorization: `Bearer ${TOKEN}`}});
        assert.equal(ok.status, 200);
        assert.match(ok.text, /^bayeux_sessions \d+$/m);
      }
      const post = await request(`${d.origin}/metrics`, {method: 'POST', body: '{}'});
      assert.equal(post.status, 405);
    });

  test('handshakes, deliveries, the latency histogram and held connects move', {timeout: 20000},
    async () => {
      const m0 = await scrape(d.origin);
      const ch = uniqueChannel('/metrics');
      const cometd = new CometDClient(d.url);
      const faye = new FayeClient(d.url);
      const got = [];
      try {
        await cometd.handshake();
        await cometd.subscribe(ch, (msg) => got.push(msg));
        await faye.subscribe(ch, (data) => got.push(data));
        const m1 = await scrape(d.origin);
        assert.equal(m1.bayeux_handshakes_total - m0.bayeux_handshakes_total, 2);
        assert.equal(m1.bayeux_sessions, m0.bayeux_sessions + 2);
        // Both clients park a /meta/connect between deliveries.
        await until(async () => (await scrape(d.origin))['bayeux_connections{transport="long-polling"}'] === 2,
          5000, 'two held connects');
        for (let i = 0; i < 10; i++) {
          const r = await request(`${d.origin}/publish${ch}`, {body: {n: i},
            headers: {Authorization: `Bearer ${TOKEN}`}});
          assert.equal(r.status, 200, r.text);
        }
        await waitFor(() => got.length === 20, 5000, '20 deliveries');
        await sleep(100);
        const m2 = await scrape(d.origin);
        assert.equal(m2.bayeux_messages_published_total - m1.bayeux_messages_published_total, 10);
        assert.equal(m2.bayeux_messages_delivered_total - m1.bayeux_messages_delivered_total, 20);
        const n = m2[`${LAT}_count`] - m1[`${LAT}_count`];
        assert.equal(n, 20, 'one latency observation per delivery');
        assert.equal(m2[`${LAT}_bucket{le="+Inf"}`], m2[`${LAT}_count`]);
        assert.ok(m2[`${LAT}_sum`] > m1[`${LAT}_sum`]);
        // On loopback, every one of these was written within a second.
        assert.equal(m2[`${LAT}_bucket{le="1"}`] - m1[`${LAT}_bucket{le="1"}`], 20);
        assert.ok(m2.bayeux_received_bytes_total > m1.bayeux_received_bytes_total + 10 * 6);
        assert.ok(m2.bayeux_sent_bytes_total > m1.bayeux_sent_bytes_total + 20 * 10);
      } finally {
        await cometd.disconnect().catch(() => {});
        await faye.disconnect().catch(() => {});
      }
      await until(async () => (await scrape(d.origin)).bayeux_sessions === m0.bayeux_sessions,
        5000, 'sessions back after disconnect');
    });

  test('refused handshakes are counted by reason', async () => {
    const m0 = await scrape(d.origin);
    const s = new RawSession(d.url);
    const r = await s.post([{channel: '/meta/handshake', version: '1.0',
      supportedConnectionTypes: ['carrier-pigeon'], id: '1'}]);
    assert.equal(r.json[0].successful, false);
    // --max-sessions 6: fill it, then one more is refused.
    const many = [];
    for (let i = 0; i < 7; i++) {
      const x = new RawSession(d.url);
      const res = await x.post([{channel: '/meta/handshake', version: '1.0',
        supportedConnectionTypes: ['long-polling'], id: '1'}]);
      if (res.json[0].successful) { x.clientId = res.json[0].clientId; many.push(x); }
    }
    const m1 = await scrape(d.origin);
    const denied = (reason) => m1[`bayeux_handshakes_denied_total{reason="${reason}"}`] -
      m0[`bayeux_handshakes_denied_total{reason="${reason}"}`];
    assert.equal(denied('connection_types_unsupported'), 1);
    assert.equal(denied('too_many_sessions'), 7 - many.length);
    assert.ok(many.length < 7);
    for (const x of many) await x.disconnect();
  });

  test('a full queue drops (and counts), an expired session counts what it never sent',
    {timeout: 15000}, async () => {
      const m0 = await scrape(d.origin);
      const ch = uniqueChannel('/drops');
      const s = new RawSession(d.url);
      await s.handshake();
      await s.subscribe(ch);
      // --max-queue 5 and no connect: 12 publishes leave 5 queued, 7 dropped.
      for (let i = 0; i < 12; i++) {
        await request(`${d.origin}/publish${ch}`, {body: i, headers: {Authorization: `Bearer ${TOKEN}`}});
      }
      const m1 = await scrape(d.origin);
      assert.equal(m1.bayeux_messages_dropped_total - m0.bayeux_messages_dropped_total, 7);
      // --max-interval 1000: the session expires with its 5 messages unsent.
      await until(async () => {
        const m = await scrape(d.origin);
        return m.bayeux_sessions_expired_total > m0.bayeux_sessions_expired_total;
      }, 8000, 'the session to expire');
      const m2 = await scrape(d.origin);
      assert.equal(m2.bayeux_messages_expired_total - m0.bayeux_messages_expired_total, 5);
      assert.equal(m2.bayeux_messages_delivered_total, m0.bayeux_messages_delivered_total);
    });

  test('an event stream counts as an eventsource connection while open', {timeout: 10000},
    async () => {
      const st = await openStream(`${d.url}/sse?subscribe=${encodeURIComponent('/metrics/sse')}`);
      try {
        await until(async () => (await scrape(d.origin))['bayeux_connections{transport="eventsource"}'] === 1,
          5000, 'one open stream');
      } finally {
        st.close();
      }
      // A parked stream notices a closed socket at its next write (--sse-heartbeat 300).
      await until(async () => (await scrape(d.origin))['bayeux_connections{transport="eventsource"}'] === 0,
        5000, 'the stream gone');
    });

  test('a held callback-polling (JSONP) connect counts as callback-polling, its message as bytes in',
    {timeout: 10000}, async () => {
      const get = (messages) => request(`${d.url}?jsonp=cb&message=${encodeURIComponent(JSON.stringify(messages))}`,
        {method: 'GET'});
      const hs = await get([{channel: '/meta/handshake', version: '1.0',
        supportedConnectionTypes: ['callback-polling'], id: '1'}]);
      const clientId = /"clientId":"(\w+)"/.exec(hs.text)[1];
      const connect = (id) => [{channel: '/meta/connect', clientId, connectionType: 'callback-polling', id}];
      assert.match((await get(connect('2'))).text, /"successful":true/); // the first returns at once
      const m0 = await scrape(d.origin);
      const held = get(connect('3'));
      await until(async () => (await scrape(d.origin))['bayeux_connections{transport="callback-polling"}'] === 1,
        5000, 'one held callback-polling connect');
      const m1 = await scrape(d.origin);
      assert.ok(m1.bayeux_received_bytes_total - m0.bayeux_received_bytes_total >= JSON.stringify(connect('3')).length);
      await request(`${d.origin}/publish/metrics/jsonp`, {body: 1, headers: {Authorization: `Bearer ${TOKEN}`}});
      await get([{channel: '/meta/disconnect', clientId, id: '4'}]);
      assert.equal((await held).status, 200);
      await until(async () => (await scrape(d.origin))['bayeux_connections{transport="callback-polling"}'] === 0,
        5000, 'the held connect answered');
    });

  test('requests are counted by status class', async () => {
    const m0 = await scrape(d.origin);
    await request(`${d.origin}/no-such-thing`, {method: 'GET'});
    await request(`${d.origin}/no-such-thing`, {method: 'GET'});
    await request(d.url, {body: 'not json'});
    const m1 = await scrape(d.origin);
    // The scrape m0 itself completed after it was read, so 2xx moved by at least 1.
    assert.equal(m1['bayeux_http_requests_total{class="4xx"}'] - m0['bayeux_http_requests_total{class="4xx"}'], 3);
    assert.ok(m1['bayeux_http_requests_total{class="2xx"}'] > m0['bayeux_http_requests_total{class="2xx"}']);
  });
});

describe('--metrics-listen', {skip}, () => {
  test('serves /metrics and /healthz on their own address, nothing else', async () => {
    const d = await startDaemon(['--metrics-listen', '127.0.0.1:0']);
    try {
      const m = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(d.stderr());
      assert.ok(m, `no metrics line in the log:\n${d.stderr()}`);
      const origin = `http://127.0.0.1:${m[1]}`;
      assert.notEqual(Number(m[1]), d.port);
      const r = await request(`${origin}/metrics`, {method: 'GET'});
      assert.equal(r.status, 200);
      assert.match(r.text, /^bayeux_sessions 0$/m);
      const h = await request(`${origin}/healthz`, {method: 'GET'});
      assert.equal(h.status, 200);
      assert.equal(h.text, 'ok\n');
      const other = await request(`${origin}/cometd`, {body: []});
      assert.equal(other.status, 404);
      const proxied = await request(`${origin}/metrics`, {method: 'GET',
        headers: {'X-Forwarded-For': '198.51.100.7'}});
      assert.equal(proxied.status, 403);
      // The main listener answers /metrics as well.
      assert.equal((await request(`${d.origin}/metrics`, {method: 'GET'})).status, 200);
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('--help lists --metrics-listen and --shutdown-delay', async () => {
    const r = await runDaemonOnce(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--metrics-listen HOST:PORT/);
    assert.match(r.stdout, /--shutdown-delay N/);
    const bad = await runDaemonOnce(['--shutdown-delay', '-1']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--shutdown-delay must be between 0 and 600000/);
  });

  test('a bad --metrics-listen stops the daemon with a clear message', async () => {
    const bad = await runDaemonOnce(['--metrics-listen', 'nonsense']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--metrics-listen must be HOST:PORT/);
    const port = await runDaemonOnce(['--metrics-listen', '127.0.0.1:99999']);
    assert.equal(port.code, 2);
    assert.match(port.stderr, /--metrics-listen port must be between 0 and 65535/);
    // The address is taken by the daemon's own listener.
    const d = await startDaemon([]);
    try {
      const clash = await runDaemonOnce(['--listen', '127.0.0.1:0', '--metrics-listen', `127.0.0.1:${d.port}`]);
      assert.notEqual(clash.code, 0);
      assert.match(clash.stderr, /cannot listen on --metrics-listen 127\.0\.0\.1:\d+/);
    } finally {
      await stopDaemonClean(d);
    }
  });
});

describe('/healthz', {skip}, () => {
  test('200 ok while serving, 503 from the moment shutdown starts (--shutdown-delay)',
    {timeout: 15000}, async () => {
      const d = await startDaemon(['--shutdown-delay', '1500']);
      const h = await request(`${d.origin}/healthz`, {method: 'GET'});
      assert.equal(h.status, 200);
      assert.equal(h.text, 'ok\n');
      // No secret in it: a proxied request gets it too.
      assert.equal((await request(`${d.origin}/healthz`, {method: 'GET',
        headers: {'X-Forwarded-For': '203.0.113.9'}})).status, 200);
      const t0 = performance.now();
      d.proc.kill('SIGTERM');
      await until(async () => (await request(`${d.origin}/healthz`, {method: 'GET'})).status === 503,
        1000, '/healthz to turn 503');
      const r = await request(`${d.origin}/healthz`, {method: 'GET'});
      assert.equal(r.status, 503);
      assert.equal(r.text, 'unavailable: stopping\n');
      // Bayeux is still served while the load balancer takes the node out.
      const s = new RawSession(d.url);
      await s.handshake();
      const {code} = await d.exited;
      assert.equal(code, 0);
      assert.ok(performance.now() - t0 >= 1400, 'the delay was kept');
    });

  test('without --shutdown-delay the daemon stops at once', {timeout: 10000}, async () => {
    const d = await startDaemon([]);
    const t0 = performance.now();
    await stopDaemonClean(d);
    assert.ok(performance.now() - t0 < 1400);
  });
});

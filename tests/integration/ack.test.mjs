// The ack extension (PROTOCOL.md §8) with the real CometD client's AckExtension, through
// a loopback proxy that cuts a share of the replies carrying messages in the middle of
// their body: with the extension every one of 5,000 numbered messages arrives exactly
// once, in order; without it, the same run loses what the cut replies carried (the
// figure is printed). Also: the wire (handshake and connect ext.ack) by hand.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {AckExtension} from 'cometd';
import {startDaemon, stopDaemonClean, SLOW} from './lib/daemon.mjs';
import {CometDClient, waitFor, uniqueChannel} from './lib/clients.mjs';
import {RawSession} from './lib/wire.mjs';
import {startCutProxy} from './lib/cutproxy.mjs';

const TOTAL = 5000;
const PER_BATCH = 25; // messages per publish request
const SHARE = 0.25;   // of the replies carrying messages, the share cut

let daemon;

before(async () => {
  // A short poll timeout keeps the client cycling; --max-queue holds a whole run.
  daemon = await startDaemon(['--timeout', '2000', '--max-interval', '30000', '--max-queue', '10000']);
});

after(async () => {
  await stopDaemonClean(daemon);
});

/** Publishes 0..TOTAL-1 on channel in batches, paced so that many replies carry them. */
async function publishAll(channel) {
  const pub = new RawSession(daemon.url);
  await pub.handshake();
  await pub.connect({advice: {timeout: 0}});
  for (let n = 0; n < TOTAL; n += PER_BATCH) {
    const msgs = [];
    for (let k = n; k < Math.min(TOTAL, n + PER_BATCH); k++) msgs.push(pub.publishMessage(channel, {n: k}));
    const r = await pub.exchange(msgs);
    assert.ok(r.every((m) => m.successful === true), JSON.stringify(r).slice(0, 300));
    await new Promise((res) => setTimeout(res, 4));
  }
  await pub.disconnect();
}

/** One run: a CometD client (with or without AckExtension) behind the cutting proxy. */
async function run({ack}) {
  const proxy = await startCutProxy(daemon.port, {share: SHARE, seed: ack ? 7 : 7});
  const url = daemon.url.replace(`:${daemon.port}`, `:${proxy.port}`);
  const client = new CometDClient(url, {
    // The client backs off 1 s more per failed connect by default; a cut is one
    // failure, so keep the back-off short for a run of hundreds of cuts.
    config: {backoffIncrement: 20, maxBackoff: 200, maxNetworkDelay: 5000},
  });
  if (ack) client.cometd.registerExtension('ack', new AckExtension());
  const channel = uniqueChannel('/ack');
  const got = [];
  try {
    const hs = await client.handshake();
    assert.equal(hs.ext?.ack, ack ? true : undefined, `handshake reply ext: ${JSON.stringify(hs.ext)}`);
    await client.waitConnected();
    await client.subscribe(channel, (m) => got.push(m.data.n));
    await publishAll(channel);
    const lastSeen = () => got.length && got[got.length - 1] === TOTAL - 1;
    if (ack) {
      await waitFor(lastSeen, 60000, `all ${TOTAL} messages (have ${got.length})`);
    } else {
      // Without acks nothing is sent again: wait until the stream went quiet.
      let last = -1;
      await waitFor(() => {
        const done = lastSeen() || (got.length === last);
        last = got.length;
        return done;
      }, 60000, 'the last message or silence');
      await new Promise((res) => setTimeout(res, 1500 * SLOW));
    }
  } finally {
    await client.disconnect().catch(() => {});
    await proxy.close();
  }
  return {got, stats: proxy.stats};
}

describe('ack extension through a proxy that cuts replies', () => {
  test(`with AckExtension: ${TOTAL} messages, each exactly once, in order`, {timeout: 120000}, async (t) => {
    const {got, stats} = await run({ack: true});
    t.diagnostic(`with ack: ${stats.cut} of ${stats.withData} replies with messages cut mid-body; ` +
      `received ${got.length} of ${TOTAL}`);
    console.log(`# ack: ${stats.cut}/${stats.withData} replies cut, ${got.length}/${TOTAL} received, ` +
      `0 lost, ${got.length - new Set(got).size} duplicates`);
    assert.ok(stats.cut >= 5, `the proxy cut only ${stats.cut} replies: the test proves nothing`);
    assert.equal(got.length, TOTAL, 'every message once (no loss, no duplicate)');
    for (let i = 0; i < TOTAL; i++) {
      if (got[i] !== i) assert.fail(`position ${i} holds message ${got[i]}`);
    }
  });

  test('without the extension the cut replies are lost (the figure)', {timeout: 120000}, async (t) => {
    const {got, stats} = await run({ack: false});
    const lost = TOTAL - new Set(got).size;
    t.diagnostic(`without ack: ${stats.cut} of ${stats.withData} replies cut; lost ${lost} of ${TOTAL} messages`);
    console.log(`# no ack: ${stats.cut}/${stats.withData} replies cut, ${lost}/${TOTAL} messages lost ` +
      `(${(100 * lost / TOTAL).toFixed(1)} %)`);
    assert.ok(stats.cut >= 5, `the proxy cut only ${stats.cut} replies`);
    assert.ok(lost > 0, 'cut replies lose messages without the extension');
    // What did arrive is still in order and not duplicated.
    for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `order at ${i}`);
  });
});

describe('ack on the wire', () => {
  test('handshake ext.ack both ways; each connect reply closes a numbered batch', {timeout: 30000}, async () => {
    const s = new RawSession(daemon.url);
    const hs = await s.handshake({ext: {ack: true}});
    assert.equal(hs.ext?.ack, true);
    const channel = uniqueChannel('/ackwire');
    let r = await s.connect({advice: {timeout: 0}, ext: {ack: 0}});
    const b0 = r.json.at(-1).ext?.ack;
    assert.equal(typeof b0, 'number', r.text);
    await s.subscribe(channel);
    const pub = new RawSession(daemon.url);
    await pub.handshake();
    await pub.exchange([pub.publishMessage(channel, {n: 1})]);
    r = await s.connect({ext: {ack: b0}});
    assert.deepEqual(r.json.filter((m) => m.data).map((m) => m.data.n), [1]);
    const b1 = r.json.at(-1).ext.ack;
    assert.ok(b1 > b0);
    // Pretend that reply was lost: ack b0 again; the message comes back at once.
    const t0 = Date.now();
    r = await s.connect({ext: {ack: b0}});
    assert.ok(Date.now() - t0 < 1500, 'answered at once, not held');
    assert.deepEqual(r.json.filter((m) => m.data).map((m) => m.data.n), [1]);
    // Acknowledged: the next connect is held until the poll timeout, with nothing.
    const b2 = r.json.at(-1).ext.ack;
    r = await s.connect({ext: {ack: b2}}, {timeoutMs: 10000});
    assert.equal(r.json.filter((m) => m.data).length, 0);
    assert.ok(r.elapsedMs > 1000, `held (${r.elapsedMs} ms)`);
    // Deliveries go with connect replies only: a publish by the session itself gets
    // its reply, not the message.
    const own = await s.exchange([s.publishMessage(channel, {n: 2})]);
    assert.equal(own.filter((m) => m.data).length, 0, JSON.stringify(own));
    r = await s.connect({ext: {ack: r.json.at(-1).ext.ack}});
    assert.deepEqual(r.json.filter((m) => m.data).map((m) => m.data.n), [2]);
    await s.disconnect();
    await pub.disconnect();
  });

  test('a session without the extension gets no ext.ack', {timeout: 10000}, async () => {
    const s = new RawSession(daemon.url);
    const hs = await s.handshake();
    assert.equal(hs.ext?.ack, undefined);
    const r = await s.connect({advice: {timeout: 0}, ext: {ack: 0}});
    assert.equal(r.json.at(-1).ext?.ack, undefined, r.text);
    await s.disconnect();
  });
});

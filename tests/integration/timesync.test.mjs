// The timesync extension (PROTOCOL.md §8) with the real CometD client's
// TimeSyncExtension: on loopback the clocks are the same, so the offset it computes
// from our ext.timesync replies must be within ±50 ms; and the replies carry what
// the extension reads ({tc, ts, p}, with a when the client sent l).
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {TimeSyncExtension} from 'cometd';
import {startDaemon, stopDaemonClean} from './lib/daemon.mjs';
import {CometDClient, waitFor} from './lib/clients.mjs';
import {RawSession} from './lib/wire.mjs';

let daemon;

before(async () => {
  daemon = await startDaemon(['--timeout', '150', '--max-interval', '30000']);
});

after(async () => {
  await stopDaemonClean(daemon);
});

describe('timesync', () => {
  test('the real TimeSyncExtension computes an offset within ±50 ms on loopback', {timeout: 30000}, async (t) => {
    const client = new CometDClient(daemon.url);
    const ts = new TimeSyncExtension();
    client.cometd.registerExtension('timesync', ts);
    const samples = [];
    client.cometd.registerExtension('timesync-recorder', {
      incoming: (m) => {
        if (m.ext?.timesync) samples.push({channel: m.channel, ...m.ext.timesync, at: Date.now()});
        return m;
      },
    });
    await client.handshake();
    // Handshake and ~10 connects (held 150 ms each) give the extension its samples.
    await waitFor(() => client.metaConnects.length >= 10, 15000, 'ten /meta/connect replies');
    const offset = ts.getTimeOffset();
    const lag = ts.getNetworkLag();
    t.diagnostic(`offset ${offset} ms, lag ${lag} ms, ${samples.length} replies with timesync`);
    console.log(`# timesync: offset ${offset} ms, lag ${lag} ms from ${samples.length} samples`);
    assert.ok(samples.length >= 1, 'some meta reply carried ext.timesync');
    assert.ok(samples.some((s) => s.channel === '/meta/handshake'), 'the handshake reply carried it');
    for (const s of samples) {
      assert.equal(typeof s.tc, 'number');
      assert.ok(Math.abs(s.ts - s.tc) < 1000, `ts ${s.ts} near tc ${s.tc}`);
      assert.ok(s.p >= 0 && s.p < 5000, `p ${s.p}`);
    }
    assert.ok(Math.abs(offset) <= 50, `offset ${offset} ms`);
    assert.ok(lag >= 0 && lag < 100, `lag ${lag} ms`);
    await client.disconnect();
  });

  test('a client whose clock is 7 s behind learns the offset (+7000 ms, within ±50 ms)', {timeout: 30000}, async (t) => {
    // The client process's wall clock, as the extension reads it (new Date().getTime()),
    // runs 7 s behind the daemon's; durations are unchanged.
    const SKEW = 7000;
    const RealDate = globalThis.Date;
    class BehindDate extends RealDate {
      constructor(...a) { if (a.length === 0) super(RealDate.now() - SKEW); else super(...a); }
      static now() { return RealDate.now() - SKEW; }
    }
    globalThis.Date = BehindDate;
    let client;
    try {
      client = new CometDClient(daemon.url);
      const ts = new TimeSyncExtension();
      client.cometd.registerExtension('timesync', ts);
      await client.handshake();
      await waitFor(() => client.metaConnects.length >= 5, 15000, 'five /meta/connect replies');
      const offset = ts.getTimeOffset();
      t.diagnostic(`offset ${offset} ms for a clock ${SKEW} ms behind`);
      console.log(`# timesync: offset ${offset} ms for a client clock ${SKEW} ms behind`);
      assert.ok(Math.abs(offset - SKEW) <= 50, `offset ${offset} ms, expected ${SKEW} ± 50`);
      assert.ok(Math.abs(ts.getServerTime() - RealDate.now()) <= 50, 'getServerTime() is the daemon\'s clock');
    } finally {
      globalThis.Date = RealDate;
      if (client) await client.disconnect();
    }
  });

  test('a held connect reports the time it was held as p; a wrong estimate gets a', {timeout: 15000}, async () => {
    const s = new RawSession(daemon.url);
    await s.handshake();
    await s.connect({advice: {timeout: 0}});
    const tc = Date.now();
    const r = await s.connect({ext: {timesync: {tc, l: 0, o: 0}}});
    const sync = r.json.at(-1).ext?.timesync;
    assert.ok(sync, r.text);
    assert.equal(sync.tc, tc);
    assert.ok(sync.p >= 100, `held ~150 ms: p = ${sync.p}`);
    assert.equal(sync.a, tc + 0 + 0 - sync.ts);
    // A client an hour off (o) with l != 0 is told by how much.
    const r2 = await s.exchange([{channel: '/meta/subscribe', clientId: s.clientId, subscription: '/t',
      ext: {timesync: {tc: Date.now(), l: 1, o: 3600000}}}]);
    assert.ok(Math.abs(r2[0].ext.timesync.a - 3600000) < 1000, JSON.stringify(r2));
    // An accurate one is left alone.
    const r3 = await s.exchange([{channel: '/meta/unsubscribe', clientId: s.clientId, subscription: '/t',
      ext: {timesync: {tc: Date.now(), l: 1, o: 0}}}]);
    assert.equal(r3[0].ext?.timesync, undefined, JSON.stringify(r3));
    await s.disconnect();
  });
});

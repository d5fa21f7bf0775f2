// The live dashboard (web/dashboard.html) in Chromium against bayeuxd serving the demo:
// it reads /metrics every second; after CometD and Faye subscribers join and a burst of
// backend publishes, its numbers and charts move (sessions by transport, deliveries per
// second, latency percentiles from the histogram, memory). The screenshot goes to
// $TEST_OUTPUT/browser/dashboard.png. Then the page as a stranger sees it: its requests
// made to look proxied (X-Forwarded-For added on the way, so the daemon does not take
// them as local) get 403, the page asks for the publish token, and with it reads on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {stopDaemonClean} from '../integration/lib/daemon.mjs';
import {CometDClient, FayeClient, uniqueChannel, waitFor} from '../integration/lib/clients.mjs';
import {openStream} from '../integration/lib/sse.mjs';
import {request} from '../integration/lib/wire.mjs';
import {SLOW, launchBrowser, recordConsole, screenshot, startDemo} from './lib/browser.mjs';

const T = (ms) => ms * SLOW;

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

/** Pixels of a canvas that are not background (the chart has something drawn). */
function inked(page, id) {
  return page.evaluate((i) => {
    const c = document.getElementById(i);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let k = 3; k < d.length; k += 4) if (d[k] > 0) n++;
    return n;
  }, id);
}

describe('dashboard', {timeout: T(60000)}, () => {
  test('the numbers and charts move after a burst of publishes', async () => {
    const d = await startDemo(['--allow-local-publish']);
    const ctx = await browser.newContext({viewport: {width: 1200, height: 900}});
    const clients = [];
    let stream;
    try {
      const page = await ctx.newPage();
      const log = recordConsole(page);
      await page.goto(`${d.origin}/dashboard.html`, {timeout: T(15000)});
      try {
        await page.waitForFunction(() => window.dashboard && window.dashboard.samples >= 2,
          null, {timeout: T(10000)});
      } catch (e) {
        throw new Error(`the dashboard did not read /metrics: ${e.message}\npage log:\n${log()}`);
      }
      const before0 = await page.evaluate(() => window.dashboard.last);
      assert.equal(before0.sessions, 0);
      assert.equal(await page.textContent('#status'), 'live');
      assert.ok(await page.isHidden('#auth'), 'no token asked on loopback');
      assert.match(await page.textContent('#t-memory'), /^\d+(\.\d)? MiB$/);

      // Three long-polling subscribers (CometD, CometD, Faye) and one plain SSE stream.
      const ch = uniqueChannel('/dash');
      const got = [];
      for (let i = 0; i < 2; i++) {
        const c = new CometDClient(d.url);
        clients.push(c);
        await c.handshake();
        await c.subscribe(ch, () => got.push(1));
      }
      const f = new FayeClient(d.url);
      clients.push(f);
      await f.subscribe(ch, () => got.push(1));
      stream = await openStream(`${d.url}/sse?subscribe=${encodeURIComponent(ch)}`);

      // A burst: 300 backend publishes over 3 s, each reaching 4 subscribers.
      for (let i = 0; i < 30; i++) {
        await Promise.all([...Array(10).keys()].map((k) =>
          request(`${d.origin}/publish${ch}`, {body: {i, k}})));
        await new Promise((r) => setTimeout(r, 100));
      }
      await waitFor(() => got.length === 900, T(10000), 'deliveries to the three clients');
      await stream.waitFor((s) => s.events.length >= 300, 10000, '300 stream events');

      await page.waitForFunction(() => {
        const h = window.dashboard.hist;
        const max = (a) => Math.max(0, ...a.filter((x) => x !== null));
        return max(h.deliveries) > 100 && max(h.sessions) >= 4 && max(h.lp) >= 1 &&
          max(h.es) >= 1 && h.p50.some((x) => x !== null);
      }, null, {timeout: T(10000)});
      const h = await page.evaluate(() => window.dashboard.hist);
      const max = (a) => Math.max(0, ...a.filter((x) => x !== null));
      // Deliveries per second: 1200 over about 3 s.
      assert.ok(max(h.deliveries) > 100 && max(h.deliveries) < 5000, `peak ${max(h.deliveries)}/s`);
      assert.ok(max(h.publishes) > 25, `peak ${max(h.publishes)} publishes/s`);
      // Percentiles are ordered and, on loopback, well under a second.
      const i = h.p99.findLastIndex((x) => x !== null);
      assert.ok(h.p50[i] <= h.p90[i] && h.p90[i] <= h.p99[i], `${h.p50[i]} ${h.p90[i]} ${h.p99[i]}`);
      assert.ok(h.p99[i] > 0 && h.p99[i] < 1000, `p99 ${h.p99[i]} ms`);
      assert.ok(max(h.rss) > 1, 'memory in MiB');
      // The tiles say it in words.
      assert.match(await page.textContent('#t-sessions'), /^[4-9]$/);
      assert.match(await page.textContent('#t-latency'), /^\d+\.\d\d \/ \d+\.\d\d$/);
      // Two more seconds: the rate falls back after the burst, as a person would see it.
      const n = await page.evaluate(() => window.dashboard.samples);
      await page.waitForFunction((k) => window.dashboard.samples >= k + 2, n, {timeout: T(5000)});
      assert.equal((await page.evaluate(() => window.dashboard.last)).deliveries, 0);
      for (const id of ['c-sessions', 'c-rates', 'c-latency', 'c-memory']) {
        assert.ok(await inked(page, id) > 500, `${id} has a chart drawn`);
      }
      const file = await screenshot(page, 'dashboard');
      assert.ok(file.endsWith('dashboard.png'));
    } finally {
      stream?.close();
      for (const c of clients) await c.disconnect().catch(() => {});
      await ctx.close();
      await stopDaemonClean(d);
    }
  });

  test('not local: the page asks for the publish token and reads /metrics with it', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-dash-'));
    const token = 'dash_' + 'Pq7Rw3Xk9Lm2Nv5Bt8Yc';
    fs.writeFileSync(path.join(tmp, 'token'), token, {mode: 0o600});
    const d = await startDemo(['--publish-token-file', path.join(tmp, 'token')]);
    const ctx = await browser.newContext({viewport: {width: 1200, height: 900}});
    try {
      const page = await ctx.newPage();
      const log = recordConsole(page);
      const seen = [];
      await page.route('**/metrics', async (route) => {
        const headers = {...route.request().headers(), 'x-forwarded-for': '203.0.113.9'};
        seen.push(headers.authorization || '');
        await route.continue({headers});
      });
      await page.goto(`${d.origin}/dashboard.html`, {timeout: T(15000)});
      await page.waitForFunction(() => window.dashboard && window.dashboard.status === 'denied',
        null, {timeout: T(10000)}).catch((e) => { throw new Error(`${e.message}\n${log()}`); });
      assert.ok(await page.isVisible('#auth'));
      assert.match(await page.textContent('#status'), /^403/);
      assert.equal(await page.evaluate(() => window.dashboard.samples), 0);
      await screenshot(page, 'dashboard-token');
      await page.fill('#token', 'wrong-token-of-20-chars');
      await page.click('#auth button');
      await new Promise((r) => setTimeout(r, T(1500)));
      assert.equal(await page.evaluate(() => window.dashboard.status), 'denied');
      await page.fill('#token', token);
      await page.click('#auth button');
      await page.waitForFunction(() => window.dashboard.samples >= 2, null, {timeout: T(10000)});
      assert.equal(await page.evaluate(() => window.dashboard.status), 'live');
      assert.ok(await page.isHidden('#auth'));
      assert.ok(seen.includes(`Bearer ${token}`), 'the token went in the Authorization header');
    } finally {
      await ctx.close();
      await stopDaemonClean(d);
      fs.rmSync(tmp, {recursive: true, force: true});
    }
  });
});

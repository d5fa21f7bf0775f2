// The demo chat with the replay extension (web/replay-extension.js) in real
// Chromium: the broker is stopped for longer than --max-interval (so the page's
// session is gone), started again on the same --store, and chat lines are sent
// while the page cannot reach it yet; when it gets through it re-handshakes,
// re-subscribes with the last replay id it saw, and shows every line sent
// meanwhile, once each. Screenshots under $TEST_OUTPUT/browser/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {startDaemon, stopDaemonClean} from '../integration/lib/daemon.mjs';
import {request} from '../integration/lib/wire.mjs';
import {DEMO_FLAGS, SLOW, launchBrowser, recordConsole, screenshot, waitConnected, waitLine}
  from './lib/browser.mjs';

const T = (ms) => ms * SLOW;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let browser;
let tmp;
before(async () => {
  browser = await launchBrowser();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-replay-browser-'));
});
after(async () => {
  await browser?.close();
  fs.rmSync(tmp, {recursive: true, force: true});
});

/** The chat lines the page shows, as text. */
const lines = (page) => page.$$eval('#messages li', (lis) => lis.map((li) => li.textContent));

async function send(origin, room, text) {
  const r = await request(`${origin}/publish/chat/${room}`,
    {body: {user: 'backend', id: 'backend', text}});
  assert.equal(r.status, 200, r.text);
  assert.equal(typeof r.json.ext.replayId, 'number');
}

describe('demo chat with replay', {timeout: T(120000)}, () => {
  test('the page shows every line sent while the broker was away', async () => {
    const flags = [...DEMO_FLAGS, '--allow-local-publish', '--max-interval', '1000',
      '--retain', '/chat/**=1000,1h', '--store', path.join(tmp, 'store')];
    let d = await startDaemon(flags);
    const {port, origin} = d;
    const ctx = await browser.newContext();
    try {
      const room = 'replay';
      const page = await ctx.newPage();
      const log = recordConsole(page);
      await page.goto(`${origin}/?room=${room}&name=reader`, {timeout: T(15000)});
      await waitConnected(page).catch((e) => { throw new Error(`${e.message}\n${log()}`); });
      await page.waitForFunction(() => window.chat.replay.serverReplays, null, {timeout: T(5000)});
      await send(origin, room, 'before the outage 1');
      await send(origin, room, 'before the outage 2');
      await waitLine(page, 'before the outage 2');

      // The broker goes away; the page cannot reach it until we let it.
      let blocked = true;
      await page.route((u) => new URL(u).pathname.startsWith('/cometd'),
        (route) => (blocked ? route.abort() : route.continue()));
      await stopDaemonClean(d);
      await page.waitForFunction(() => !window.chat.state.connected, null, {timeout: T(10000)});
      await sleep(1500); // longer than --max-interval: the session would be gone anyway

      d = await startDaemon([...flags, '--listen', `127.0.0.1:${port}`], {listen: false});
      const meanwhile = ['while away 1', 'while away 2', 'while away 3'];
      for (const t of meanwhile) await send(origin, room, t);
      await screenshot(page, 'replay-while-away');
      assert.ok(!(await lines(page)).some((l) => l.includes('while away')),
        'nothing could reach the page yet');

      blocked = false;
      await page.waitForFunction(() => window.chat.state.connected && window.chat.state.handshakes >= 2,
        null, {timeout: T(30000)});
      for (const t of meanwhile) await waitLine(page, t, 15000);
      await send(origin, room, 'live again');
      await waitLine(page, 'live again');
      const shown = (await lines(page)).filter((l) => l.startsWith('backend: '));
      assert.deepEqual(shown.map((l) => l.slice('backend: '.length)),
        ['before the outage 1', 'before the outage 2', ...meanwhile, 'live again'],
        'every line once, in order');
      await screenshot(page, 'replay-after');
    } finally {
      await ctx.close();
      await stopDaemonClean(d);
    }
  });
});

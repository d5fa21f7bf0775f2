// Faye's browser client (npm faye, client/faye-browser.js) in Chromium against bayeuxd,
// WebSocket disabled: it chooses eventsource (GET /cometd/<clientId> streamed, messages
// POSTed) and chats with a page of another browser on long polling. Then a rollover
// (--sse-max-age) in the middle of the chat: the browser's EventSource reconnects with
// Last-Event-ID and no line is lost. Screenshots go under $TEST_OUTPUT/browser/.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {startDaemon, stopDaemonClean} from '../integration/lib/daemon.mjs';
import {FAYE_FLAGS, SLOW, launchBrowser, openFaye, screenshot} from './lib/browser.mjs';

const T = (ms) => ms * SLOW;
const FLAGS = [...FAYE_FLAGS, '--log-level', 'debug'];

const lines = (page) => page.evaluate(() => window.chat.lines);
const waitLines = (page, n, ms = 10000) =>
  page.waitForFunction((k) => window.chat.lines.length >= k, n, {timeout: T(ms)});

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

describe('Faye over eventsource', {timeout: T(90000)}, () => {
  test('a Faye page on eventsource chats with a Faye page on long polling', async () => {
    const d = await startDaemon(FLAGS);
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const es = await openFaye(ca, d, 'ada', 'eventsource');
      const lp = await openFaye(cb, d, 'bob', 'long-polling');
      // Faye settles on its transport after the handshake: wait for eventsource.
      await es.waitForFunction(() => window.chat.transport() === 'eventsource', null, {timeout: T(10000)});
      assert.equal(await lp.evaluate(() => window.chat.transport()), 'long-polling');
      assert.match(d.stderr(), /eventsource stream opened/);
      await es.evaluate(() => window.chat.say('hello from the stream'));
      await lp.evaluate(() => window.chat.say('hello from long polling'));
      for (const p of [es, lp]) await waitLines(p, 2);
      for (const p of [es, lp]) {
        assert.deepEqual((await lines(p)).sort(), ['ada: hello from the stream', 'bob: hello from long polling']);
      }
      // A burst both ways arrives whole, each line once. (Faye sends a burst over
      // several concurrent requests: order across them is not promised, README.)
      await es.evaluate(() => { for (let i = 0; i < 20; i++) window.chat.say(`es ${i}`); });
      await lp.evaluate(() => { for (let i = 0; i < 20; i++) window.chat.say(`lp ${i}`); });
      for (const p of [es, lp]) await waitLines(p, 42);
      await new Promise((r) => setTimeout(r, 300));
      const want = [...Array(20).keys()].flatMap((i) => [`ada: es ${i}`, `bob: lp ${i}`]).sort();
      for (const p of [es, lp]) {
        const got = (await lines(p)).slice(2);
        assert.deepEqual([...got].sort(), want);
      }
      // Sequential publishes (each acknowledged before the next) arrive in order.
      await es.evaluate(async () => { for (let i = 0; i < 10; i++) await window.chat.say(`seq ${i}`); });
      await waitLines(lp, 52);
      assert.deepEqual((await lines(lp)).slice(42), [...Array(10).keys()].map((i) => `ada: seq ${i}`));
      await screenshot(es, 'sse-faye-eventsource');
      await screenshot(lp, 'sse-faye-long-polling');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });

  test('streams roll over (--sse-max-age) mid-chat and the browser loses no line', async () => {
    const d = await startDaemon([...FLAGS, '--sse-max-age', '700', '--sse-retry', '100']);
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const es = await openFaye(ca, d, 'ada', 'eventsource');
      const lp = await openFaye(cb, d, 'bob', 'long-polling');
      await es.waitForFunction(() => window.chat.transport() === 'eventsource', null, {timeout: T(10000)});
      const N = 60;
      for (let i = 0; i < N; i++) {
        await lp.evaluate(async (k) => { await window.chat.say(`m ${k}`); }, i);
        await new Promise((r) => setTimeout(r, 40));
      }
      await waitLines(es, N, 15000);
      assert.deepEqual(await lines(es), [...Array(N).keys()].map((i) => `bob: m ${i}`));
      const opened = d.stderr().split('\n').filter((l) => /eventsource stream opened/.test(l)).length;
      assert.ok(opened >= 3, `only ${opened} streams in ${N * 40} ms at --sse-max-age 700`);
      assert.match(d.stderr(), /eventsource stream opened \(resuming\)/);
      assert.equal(await es.evaluate(() => window.chat.transport()), 'eventsource');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });
});

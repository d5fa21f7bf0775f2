// WebSocket in real Chromium: the demo page with CometD's default transports (its first
// handshake succeeds over websocket, no failure shown to the page) chatting with a page on
// long polling; a broker restart mid-chat; --websocket 0 (the page falls back to long
// polling); Faye's browser client upgrading to websocket and chatting with a Faye page on
// long polling. Screenshots go under $TEST_OUTPUT/browser/.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {startDaemon, stopDaemonClean} from '../integration/lib/daemon.mjs';
import {
  DEMO_FLAGS, FAYE_FLAGS, SLOW, launchBrowser, openChat, openFaye, say, screenshot, startDemo, waitLine, waitMembers,
} from './lib/browser.mjs';

const T = (ms) => ms * SLOW;


const chatState = (page) => page.evaluate(() => {
  const s = window.chat.state;
  return {transport: s.transport, connected: s.connected, handshakes: s.handshakes,
    handshakeFailures: s.handshakeFailures};
});

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

describe('CometD demo page, default transports', {timeout: T(90000)}, () => {
  test('first handshake succeeds over websocket; chats with a long-polling page', async () => {
    const d = await startDemo();
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const ws = await openChat(ca, `${d.origin}/?room=ws`, 'wendy');
      const lp = await openChat(cb, `${d.origin}/?room=ws&transport=long-polling`, 'larry');
      assert.deepEqual(await chatState(ws), {transport: 'websocket', connected: true, handshakes: 1, handshakeFailures: 0});
      assert.equal((await chatState(lp)).transport, 'long-polling');
      await say(ws, 'hello over a socket');
      await waitLine(lp, 'hello over a socket');
      await say(lp, 'hello over long polling');
      await waitLine(ws, 'hello over long polling');
      await waitMembers(ws, ['wendy', 'larry']);
      await screenshot(ws, 'websocket-demo');
      await screenshot(lp, 'websocket-demo-long-polling-peer');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });

  test('a broker restart mid-chat: the page re-handshakes over websocket', async () => {
    let d = await startDemo();
    const port = d.port;
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const url = `${d.origin}/?room=wsrestart`;
      const page = await openChat(ca, url, 'survivor');
      assert.equal((await chatState(page)).transport, 'websocket');
      await stopDaemonClean(d);
      await page.waitForFunction(() => !window.chat.state.connected, null, {timeout: T(10000)});
      d = await startDaemon([...DEMO_FLAGS, '--listen', `127.0.0.1:${port}`], {listen: false});
      await page.waitForFunction(() => window.chat.state.connected && window.chat.state.handshakes >= 2,
        null, {timeout: T(30000)});
      assert.equal((await chatState(page)).transport, 'websocket');
      const newcomer = await openChat(cb, url, 'newcomer');
      await say(newcomer, 'after the restart');
      await waitLine(page, 'after the restart');
      await say(page, 'still here');
      await waitLine(newcomer, 'still here');
      await screenshot(page, 'websocket-restart-after');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });

  test('--websocket 0: the page falls back to long polling', async () => {
    const d = await startDemo(['--websocket', '0']);
    const ca = await browser.newContext();
    try {
      const page = await openChat(ca, `${d.origin}/?room=nows`, 'fallback');
      const st = await chatState(page);
      assert.equal(st.transport, 'long-polling');
      assert.equal(st.handshakeFailures, 1, 'CometD reports the refused upgrade once');
      await say(page, 'over long polling');
      await waitLine(page, 'over long polling');
      await screenshot(page, 'websocket-off-fallback');
    } finally {
      await ca.close();
      await stopDaemonClean(d);
    }
  });
});

describe('Faye browser client, default transports', {timeout: T(90000)}, () => {
  const FLAGS = FAYE_FLAGS;

  test('a Faye page ends up on websocket and chats with a Faye page on long polling', async () => {
    const d = await startDaemon(FLAGS);
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const ws = await openFaye(ca, d, 'ada', 'websocket', 'wsroom');
      const lp = await openFaye(cb, d, 'bob', 'long-polling', 'wsroom');
      await ws.waitForFunction(() => window.chat.transport() === 'websocket', null, {timeout: T(10000)});
      assert.equal(await lp.evaluate(() => window.chat.transport()), 'long-polling');
      await ws.evaluate(() => window.chat.say('hello from the socket'));
      await lp.evaluate(() => window.chat.say('hello from long polling'));
      for (const p of [ws, lp]) {
        await p.waitForFunction(() => window.chat.lines.length >= 2, null, {timeout: T(10000)});
        assert.deepEqual((await p.evaluate(() => window.chat.lines)).sort(),
          ['ada: hello from the socket', 'bob: hello from long polling']);
      }
      await screenshot(ws, 'websocket-faye');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });
});

// The demo chat in real Chromium against the real bayeuxd: two browsers
// chatting over long polling (?transport=long-polling; the page's default is CometD's
// default transports, WebSocket first: tests/browser/websocket.test.mjs), a page from another origin over callback polling
// and CORS long polling, two tabs of one browser (PROTOCOL.md §4), and a broker
// restart. Every test saves screenshots under $TEST_OUTPUT/browser/.
import assert from 'node:assert/strict';
import {after, before, describe, test} from 'node:test';

import {startDaemon, stopDaemonClean} from '../integration/lib/daemon.mjs';
import {
  DEMO_FLAGS, SLOW, launchBrowser, members, recordConsole, openChat, say, screenshot, startDemo, waitConnected, waitLine, waitMembers,
} from './lib/browser.mjs';

const T = (ms) => ms * SLOW;


const chatState = (page) => page.evaluate(() => {
  const s = window.chat.state;
  return {status: s.status, transport: s.transport, connected: s.connected,
    multipleClients: s.multipleClients, interval: s.interval, handshakes: s.handshakes};
});

let browser;
before(async () => { browser = await launchBrowser(); });
after(async () => { await browser?.close(); });

describe('demo chat', {timeout: T(90000)}, () => {
  test('two browsers chat over long polling and see each other in the members list', async () => {
    const d = await startDemo();
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const room = '?room=two-browsers&transport=long-polling';
      const alice = await openChat(ca, `${d.origin}/${room}`, 'alice');
      const bob = await openChat(cb, `${d.origin}/${room}`, 'bob');
      assert.equal((await chatState(alice)).transport, 'long-polling');
      assert.equal((await chatState(bob)).transport, 'long-polling');
      await say(alice, 'hello from alice');
      await waitLine(bob, 'hello from alice');
      await say(bob, 'hi alice, bob here');
      await waitLine(alice, 'hi alice, bob here');
      await waitMembers(alice, ['alice', 'bob']);
      await waitMembers(bob, ['alice', 'bob']);
      // Each browser got its own BAYEUX_BROWSER cookie, HttpOnly.
      const [ka] = (await ca.cookies()).filter((c) => c.name === 'BAYEUX_BROWSER');
      const [kb] = (await cb.cookies()).filter((c) => c.name === 'BAYEUX_BROWSER');
      assert.ok(ka && kb, 'both browsers got the cookie');
      assert.notEqual(ka.value, kb.value);
      assert.equal(ka.httpOnly, true);
      assert.equal(ka.sameSite, 'Lax');
      await screenshot(alice, 'two-browsers-alice');
      await screenshot(bob, 'two-browsers-bob');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });

  test('a page from another origin chats over callback polling, then over CORS long polling', async () => {
    // The page's origin: a second bayeuxd that only serves the files.
    const pages = await startDemo();
    const broker = await startDemo(['--allow-origin', pages.origin]);
    const cx = await browser.newContext();
    const cl = await browser.newContext();
    try {
      assert.notEqual(pages.origin, broker.origin);
      const local = await openChat(cl, `${broker.origin}/?room=xo`, 'local');
      const xo = await cx.newPage();
      const log = recordConsole(xo);
      const jsonp = [];
      const corsPosts = [];
      xo.on('response', async (r) => {
        const u = r.url();
        if (!u.startsWith(broker.url)) return;
        const req = r.request();
        if (req.method() === 'GET' && u.includes('jsonp=')) {
          jsonp.push({status: r.status(), type: r.headers()['content-type'],
            nosniff: r.headers()['x-content-type-options']});
        } else if (req.method() === 'POST') {
          const h = await req.allHeaders().catch(() => ({}));
          corsPosts.push({status: r.status(), acao: r.headers()['access-control-allow-origin'],
            acac: r.headers()['access-control-allow-credentials'], origin: h.origin});
        }
      });
      await xo.goto(`${pages.origin}/cross-origin.html?room=xo&name=remote&broker=${encodeURIComponent(broker.url)}`);
      try {
        await waitConnected(xo);
      } catch (e) {
        throw new Error(`cross-origin page did not connect: ${e.message}\n${log()}`);
      }
      let st = await chatState(xo);
      assert.equal(st.transport, 'callback-polling');
      await say(xo, 'jsonp says hi');
      await waitLine(local, 'jsonp says hi');
      await say(local, 'local answers jsonp');
      await waitLine(xo, 'local answers jsonp');
      await waitMembers(xo, ['local', 'remote']);
      assert.ok(jsonp.length >= 3, `script requests to the broker: ${jsonp.length}`);
      for (const r of jsonp) {
        assert.equal(r.status, 200);
        assert.equal(r.type, 'text/javascript; charset=utf-8');
        assert.equal(r.nosniff, 'nosniff');
      }
      assert.equal(corsPosts.length, 0, 'no XHR while on callback polling');
      await screenshot(xo, 'cross-origin-callback-polling');

      // The switch: CORS long polling to the same broker.
      await xo.check('#t-long');
      await xo.waitForFunction(() => window.chat.state.transport === 'long-polling' &&
        window.chat.state.connected, null, {timeout: T(15000)});
      await say(xo, 'cors says hi');
      await waitLine(local, 'cors says hi');
      await say(local, 'local answers cors');
      await waitLine(xo, 'local answers cors');
      st = await chatState(xo);
      assert.equal(st.transport, 'long-polling');
      assert.ok(corsPosts.length >= 3, `POSTs to the broker: ${corsPosts.length}`);
      for (const r of corsPosts) {
        assert.equal(r.origin, pages.origin);
        assert.equal(r.acao, pages.origin, 'the allowed origin is echoed');
        assert.equal(r.acac, 'true');
      }
      await screenshot(xo, 'cross-origin-cors-long-polling');
      await screenshot(local, 'cross-origin-local-page');
    } finally {
      await cx.close();
      await cl.close();
      await stopDaemonClean(broker);
      await stopDaemonClean(pages);
    }
  });

  test('without --allow-origin a page from another origin cannot use CORS long polling, but callback polling works', async () => {
    const pages = await startDemo();
    const broker = await startDemo();
    const cx = await browser.newContext();
    try {
      const xo = await cx.newPage();
      const log = recordConsole(xo);
      const base = `${pages.origin}/cross-origin.html?room=refused&broker=${encodeURIComponent(broker.url)}`;
      await xo.goto(`${base}&transport=long-polling`);
      // Give the client time for a handshake and retries; it must not connect.
      await xo.waitForTimeout(T(3000));
      let st = await chatState(xo);
      assert.equal(st.connected, false, `connected without CORS: ${JSON.stringify(st)}`);
      assert.equal(st.handshakes, 0);
      assert.ok(log().includes('Access-Control-Allow-Origin') || log().includes('CORS'),
        `the browser blocked the reply for CORS:\n${log()}`);
      await screenshot(xo, 'cross-origin-refused');
      await xo.check('#t-callback');
      await waitConnected(xo);
      st = await chatState(xo);
      assert.equal(st.transport, 'callback-polling');
    } finally {
      await cx.close();
      await stopDaemonClean(broker);
      await stopDaemonClean(pages);
    }
  });

  test('two tabs of one browser both receive: one long-polls, the other polls with multiple-clients advice', async () => {
    const d = await startDemo(['--timeout', '20000']);
    const tabs = await browser.newContext();
    const other = await browser.newContext();
    // Connect requests of a page: when sent, when answered.
    const track = (page) => {
      const list = [];
      page.on('request', (r) => {
        if (r.method() !== 'POST' || !r.url().includes('/cometd/connect')) return;
        const c = {sent: Date.now(), done: null};
        list.push(c);
        r.response().then(() => { c.done = Date.now(); }, () => {});
      });
      return list;
    };
    try {
      // No presence heartbeat: the quiet window below has no traffic at all.
      const url = `${d.origin}/?room=tabs&heartbeat=600000&transport=long-polling`;
      const tab1 = await openChat(tabs, url, 'tab1');
      // The second tab opens once the first has its cookie, as a person would.
      const tab2 = await tabs.newPage();
      recordConsole(tab2);
      const c1 = track(tab1);
      const c2 = track(tab2);
      await tab2.goto(`${url}&name=tab2`);
      await waitConnected(tab2);
      // One of the two is told it shares the browser's connection.
      const isMulti = () => window.chat.state.multipleClients;
      await Promise.any([tab1, tab2].map((t) => t.waitForFunction(isMulti, null, {timeout: T(10000)})));

      const friend = await openChat(other, url, 'friend');
      await say(friend, 'to both tabs');
      await waitLine(tab1, 'to both tabs');
      await waitLine(tab2, 'to both tabs');
      await say(tab2, 'from tab2');
      await say(tab1, 'from tab1');
      await waitLine(friend, 'from tab2');
      await waitLine(friend, 'from tab1');
      await waitLine(tab1, 'from tab2');
      await waitLine(tab2, 'from tab1');

      // A quiet window: the polling tab's connects are answered at once about
      // 2 s apart; the other tab's connect stays held.
      await tab1.waitForTimeout(T(2500));
      const t0 = Date.now();
      await tab1.waitForTimeout(T(5000));
      const t1 = Date.now();
      const inWindow = (list) => list.filter((c) => c.sent >= t0 && c.sent <= t1);
      const s1 = await chatState(tab1);
      const s2 = await chatState(tab2);
      const [poller, holder, pc, hc] = s2.multipleClients
        ? [s2, s1, inWindow(c2), c1] : [s1, s2, inWindow(c1), c2];
      assert.notEqual(s1.multipleClients, s2.multipleClients,
        `exactly one tab polls: ${JSON.stringify({s1, s2})}`);
      assert.equal(poller.interval, 2000);
      assert.equal(holder.connected, true);
      assert.ok(pc.length >= 2 && pc.length <= 4, `the polling tab sent ${pc.length} connects in 5 s`);
      for (const c of pc) {
        assert.ok(c.done && c.done - c.sent < 1000, `a polling connect took ${c.done && c.done - c.sent} ms`);
      }
      for (let i = 1; i < pc.length; i++) {
        const gap = pc[i].sent - pc[i - 1].done;
        assert.ok(gap >= 1500, `the polling tab polled again after ${gap} ms, not the 2000 ms advised`);
      }
      const last = hc[hc.length - 1];
      assert.ok(last && last.sent < t0 && (last.done === null || last.done > t1),
        'the long-polling tab kept one connect held through the window');
      await screenshot(tab1, 'two-tabs-tab1');
      await screenshot(tab2, 'two-tabs-tab2');
    } finally {
      await tabs.close();
      await other.close();
      await stopDaemonClean(d);
    }
  });

  test('a page survives a broker restart: it re-handshakes and re-subscribes', async () => {
    let d = await startDemo();
    const port = d.port;
    const ca = await browser.newContext();
    const cb = await browser.newContext();
    try {
      const url = `${d.origin}/?room=restart`;
      const page = await openChat(ca, url, 'survivor');
      assert.equal((await chatState(page)).handshakes, 1);
      await stopDaemonClean(d);
      await page.waitForFunction(() => !window.chat.state.connected, null, {timeout: T(10000)});
      await screenshot(page, 'restart-while-down');
      const shown = await page.textContent('#status');
      assert.match(shown, /reconnecting|retrying|lost/, `status while down: ${shown}`);

      d = await startDaemon([...DEMO_FLAGS, '--listen', `127.0.0.1:${port}`], {listen: false});
      await page.waitForFunction(() => window.chat.state.connected && window.chat.state.handshakes >= 2,
        null, {timeout: T(30000)});
      const newcomer = await openChat(cb, url, 'newcomer');
      await say(newcomer, 'after the restart');
      await waitLine(page, 'after the restart');
      await say(page, 'still here');
      await waitLine(newcomer, 'still here');
      await waitMembers(newcomer, ['survivor', 'newcomer']);
      assert.deepEqual((await members(page)).sort(), ['newcomer', 'survivor']);
      await screenshot(page, 'restart-after');
    } finally {
      await ca.close();
      await cb.close();
      await stopDaemonClean(d);
    }
  });
});

// Shared set-up of the browser tests: Debian's Chromium driven by npm
// playwright-core, and bayeuxd serving the demo (web/) with the CometD client
// mounted at /vendor/cometd.
//
// Environment (besides tests/integration/lib/daemon.mjs's):
//   CHROMIUM      path of the browser (default /usr/bin/chromium)
//   TEST_OUTPUT   folder for screenshots (default <repo>/test-output); they go
//                 to $TEST_OUTPUT/browser/<test>.png
import fs from 'node:fs';
import path from 'node:path';
import {chromium} from 'playwright-core';

import {REPO, SLOW, startDaemon} from '../../integration/lib/daemon.mjs';

export {REPO, SLOW};
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const OUT = path.join(process.env.TEST_OUTPUT || path.join(REPO, 'test-output'), 'browser');

/** Flags that serve the demo from the repository. */
export const DEMO_FLAGS = [
  '--web-root', path.join(REPO, 'web'),
  '--web-mount', `/vendor/cometd=${path.join(REPO, 'node_modules', 'cometd')}`,
];

/** bayeuxd serving the demo, with extra flags; see startDaemon. */
export function startDemo(flags = [], opts = {}) {
  return startDaemon([...DEMO_FLAGS, ...flags], opts);
}

/** Headless Chromium, isolated from the network and from other profiles. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000 * SLOW,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
}

/** Saves a full-page screenshot as $OUT/<name>.png. */
export async function screenshot(page, name) {
  fs.mkdirSync(OUT, {recursive: true});
  const file = path.join(OUT, `${name.replace(/[^A-Za-z0-9_.-]+/g, '-')}.png`);
  await page.screenshot({path: file, fullPage: true});
  return file;
}

/**
 * Records what a page logs and throws, so a failing test can say why.
 * Returns a function giving the log text.
 */
export function recordConsole(page) {
  const lines = [];
  page.on('console', (m) => lines.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => lines.push(`[pageerror] ${e.message}`));
  return () => lines.join('\n');
}

/** Waits until the page's chat says it is connected (window.chat.state). */
export async function waitConnected(page, timeoutMs = 15000) {
  await page.waitForFunction(() => window.chat && window.chat.state.connected,
    null, {timeout: timeoutMs * SLOW});
}

/** Types text into the chat form and sends it. */
export async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send button');
}

/** Waits until a chat line containing text shows on the page. */
export async function waitLine(page, text, timeoutMs = 10000) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages li')].some((li) => li.textContent.includes(t)),
    text, {timeout: timeoutMs * SLOW});
}

/** The member names shown on the page. */
export function members(page) {
  return page.$$eval('#members li', (lis) => lis.map((li) => li.textContent));
}

/** Waits until the members list shows every name in names. */
export async function waitMembers(page, names, timeoutMs = 10000) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('#members li')].map((li) => li.textContent);
      return want.every((n) => have.includes(n));
    },
    names, {timeout: timeoutMs * SLOW});
}

/** Sets the page's chat name (before it speaks). */
export async function setName(page, name) {
  await page.fill('#name', name);
}

/** Opens the demo chat at url (which already has a query) in a new page of ctx, as name,
 * and waits until it is connected; the page's console is in the error if it is not. */
export async function openChat(ctx, url, name) {
  const page = await ctx.newPage();
  const log = recordConsole(page);
  await page.goto(`${url}&name=${encodeURIComponent(name)}`, {timeout: 15000 * SLOW});
  try {
    await waitConnected(page);
  } catch (e) {
    throw new Error(`${name} did not connect to ${url}: ${e.message}\npage log:\n${log()}`);
  }
  return page;
}

/** Daemon flags that serve Faye's browser client and tests/browser/faye/chat.html. */
export const FAYE_FLAGS = [
  '--web-mount', `/vendor/faye=${path.join(REPO, 'node_modules', 'faye', 'client')}`,
  '--web-mount', `/faye-test=${path.join(REPO, 'tests', 'browser', 'faye')}`,
];

/** Opens the Faye chat page of daemon d as name, on transport (websocket, eventsource or
 * long-polling: what Faye may use) in room, and waits until it is up and subscribed. */
export async function openFaye(ctx, d, name, transport, room = 'room') {
  const page = await ctx.newPage();
  const log = recordConsole(page);
  await page.goto(`${d.origin}/faye-test/chat.html?name=${name}&transport=${transport}&room=${room}`,
    {timeout: 15000 * SLOW});
  try {
    await page.waitForFunction(() => window.chat && window.chat.up, null, {timeout: 15000 * SLOW});
    await page.evaluate(() => window.chat.ready);
  } catch (e) {
    throw new Error(`${name} did not connect: ${e.message}\npage log:\n${log()}`);
  }
  return page;
}

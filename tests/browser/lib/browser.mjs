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

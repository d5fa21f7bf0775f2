// A parse that cannot be made to eat memory (docs/SECURITY.md, "Parse memory"): bodies
// built to make json-c's tree huge are refused before a tree is built, and the
// daemon's resident memory (VmRSS of the real process) stays bounded while 16 of them
// arrive at once, and again afterwards.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {startDaemon, stopDaemonClean} from './lib/daemon.mjs';
import {request, RawSession} from './lib/wire.mjs';

const MB = 1024 * 1024;
let daemon;

function rss(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

/** Samples the daemon's RSS every 5 ms while fn runs; resolves [result, peak]. */
async function peakWhile(fn) {
  let peak = rss(daemon.pid);
  const timer = setInterval(() => { peak = Math.max(peak, rss(daemon.pid)); }, 5);
  try {
    const r = await fn();
    peak = Math.max(peak, rss(daemon.pid));
    return [r, peak];
  } finally {
    clearInterval(timer);
  }
}

before(async () => {
  daemon = await startDaemon(['--max-body', String(4 * MB)]);
  // Warm up: a session, a few ordinary requests, so the baseline holds the threads'
  // arenas and buffers every request needs anyway.
  const s = new RawSession(daemon.url);
  await s.handshake();
  await s.connect({advice: {timeout: 0}});
  for (let i = 0; i < 20; i++) await s.publish('/warm', {i, pad: 'x'.repeat(1000)});
});

after(async () => {
  await stopDaemonClean(daemon);
});

describe('parse memory', () => {
  test('16 concurrent bodies of 100,000 {} are refused; RSS grows by at most 50 MB', {timeout: 60000}, async (t) => {
    const body = '[' + Array(100000).fill('{}').join(',') + ']';
    const base = rss(daemon.pid);
    const [results, peak] = await peakWhile(() =>
      Promise.all(Array.from({length: 16}, () => request(daemon.url, {body, timeoutMs: 30000}))));
    for (const r of results) {
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /too many messages in one request: 100000 \(limit 4096\)/);
    }
    const after = rss(daemon.pid);
    const msg = `RSS ${(base / MB).toFixed(1)} MB before, peak ${(peak / MB).toFixed(1)} MB, ` +
      `${(after / MB).toFixed(1)} MB after (growth ${((peak - base) / MB).toFixed(1)} MB at peak)`;
    t.diagnostic(msg);
    console.log(`# 16 x 100,000 {}: ${msg}`);
    assert.ok(peak - base <= 50 * MB, msg);
  });

  test('a tree that would cost more than 64x its body is refused with 413; RSS stays bounded', {timeout: 60000}, async (t) => {
    // One message, data of 300,000 empty objects (900 KB): ~240 MB as a json-c tree.
    const body = '[{"channel":"/a","data":[' + Array(300000).fill('{}').join(',') + ']}]';
    const base = rss(daemon.pid);
    const [results, peak] = await peakWhile(() =>
      Promise.all(Array.from({length: 16}, () => request(daemon.url, {body, timeoutMs: 30000}))));
    for (const r of results) {
      assert.equal(r.status, 413, r.text);
      assert.match(r.text, /memory/);
    }
    const msg = `RSS ${(base / MB).toFixed(1)} MB before, peak ${(peak / MB).toFixed(1)} MB`;
    t.diagnostic(msg);
    console.log(`# 16 x 900 KB of nested {}: ${msg}`);
    assert.ok(peak - base <= 50 * MB, msg);
  });

  test('a large ordinary body inside the budget is parsed, and its memory is given back', {timeout: 60000}, async (t) => {
    // 2 MB of strings: cheap to parse (a few MB of tree); published to nobody.
    const s = new RawSession(daemon.url);
    await s.handshake();
    const data = Array.from({length: 20000}, (_, i) => `item ${i} ${'y'.repeat(90)}`);
    const base = rss(daemon.pid);
    let peak = base;
    for (let i = 0; i < 5; i++) {
      const [r, p] = await peakWhile(() => s.publish('/big', data));
      assert.equal(r.replies[0].successful, true);
      peak = Math.max(peak, p);
    }
    const after = rss(daemon.pid);
    const msg = `RSS ${(base / MB).toFixed(1)} MB before, peak ${(peak / MB).toFixed(1)} MB, ` +
      `${(after / MB).toFixed(1)} MB after five 2 MB publishes`;
    t.diagnostic(msg);
    console.log(`# 2 MB publishes: ${msg}`);
    // ASan's allocator keeps freed memory in its quarantine: glibc's trimming is not
    // what runs there, so only the normal build can show it.
    if (/libasan/.test(fs.readFileSync(`/proc/${daemon.pid}/maps`, 'utf8'))) {
      t.diagnostic('AddressSanitizer build: memory is not given back by design (quarantine); not checked');
    } else {
      assert.ok(after - base <= 20 * MB, `memory given back: ${msg}`);
    }
    await s.disconnect();
  });
});

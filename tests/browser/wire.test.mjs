// Raw HTTP against bayeuxd for what browsers rely on (PROTOCOL.md §4, §6):
// callback polling (JSONP) answers and refusals, CORS for allowed and other
// origins, the BAYEUX_BROWSER cookie's attributes, held connects per browser
// (the third tab), and static files (--web-root, --web-mount).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {after, before, describe, test} from 'node:test';

import {runDaemonOnce, startDaemon, stopDaemonClean} from '../integration/lib/daemon.mjs';
import {DEMO_FLAGS, REPO, SLOW} from './lib/browser.mjs';

const T = (ms) => ms * SLOW;

function handshakeMsg(type = 'long-polling') {
  return [{channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: [type], id: 'h'}];
}

/** POST a JSON body; returns {status, headers, text, json}. */
async function post(url, body, headers = {}) {
  const r = await fetch(url, {method: 'POST', headers: {'content-type': 'application/json', ...headers},
    body: JSON.stringify(body), signal: AbortSignal.timeout(T(15000))});
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return {status: r.status, headers: r.headers, text, json};
}

/** A callback-polling GET; returns {status, headers, text}. */
async function jsonp(url, cb, messages, extra = '') {
  const u = `${url}?jsonp=${encodeURIComponent(cb)}&message=${encodeURIComponent(JSON.stringify(messages))}${extra}`;
  const r = await fetch(u, {signal: AbortSignal.timeout(T(15000))});
  return {status: r.status, headers: r.headers, text: await r.text()};
}

/** Calls the JSONP body's callback and returns what it was given. */
function runJsonp(text, cb) {
  let got;
  const fn = new Function(cb, text); // eslint-disable-line no-new-func
  fn((arg) => { got = arg; });
  return got;
}

describe('callback polling (JSONP)', {timeout: T(60000)}, () => {
  let d;
  before(async () => { d = await startDaemon(['--timeout', '3000']); });
  after(async () => { await stopDaemonClean(d); });

  test('a handshake over JSONP calls the callback with the reply array', async () => {
    const r = await jsonp(`${d.url}/handshake`, '_cometd_jsonp_0', handshakeMsg('callback-polling'));
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.match(r.headers.get('cache-control'), /no-store/);
    assert.ok(r.text.startsWith('/**/_cometd_jsonp_0(['), r.text);
    assert.ok(r.text.endsWith(');'), r.text);
    const reply = runJsonp(r.text, '_cometd_jsonp_0');
    assert.equal(reply[0].successful, true);
    assert.equal(reply[0].id, 'h');
    assert.ok(reply[0].supportedConnectionTypes.includes('callback-polling'));
    assert.match(r.headers.get('set-cookie'), /^BAYEUX_BROWSER=[A-Za-z0-9]{22}; Path=\/; HttpOnly; SameSite=Lax$/);
  });

  test('a long-polling handshake is offered callback-polling too', async () => {
    const r = await post(d.url, handshakeMsg());
    const types = r.json[0].supportedConnectionTypes;
    assert.ok(types.includes('long-polling') && types.includes('callback-polling'), String(types));
  });

  test('a connect over JSONP is held until a message comes, and U+2028/U+2029 arrive escaped', async () => {
    const hs = runJsonp((await jsonp(d.url, 'cb', handshakeMsg('callback-polling'))).text, 'cb');
    const clientId = hs[0].clientId;
    const connect = {channel: '/meta/connect', clientId, connectionType: 'callback-polling'};
    runJsonp((await jsonp(d.url, 'cb', [{...connect, id: '1'}])).text, 'cb');
    const sub = runJsonp((await jsonp(d.url, 'cb', [{channel: '/meta/subscribe', clientId,
      subscription: '/jsonp/x', id: '2'}])).text, 'cb');
    assert.equal(sub[0].successful, true);
    const t0 = Date.now();
    const held = jsonp(d.url, 'cb', [{...connect, id: '3'}]);
    await new Promise((r) => setTimeout(r, 300));
    const pub = await post(d.url, [{channel: '/jsonp/x', clientId, data: {text: 'a\u2028b\u2029c'}, id: '4'}]);
    assert.equal(pub.json[0].successful, true);
    const r = await held;
    const waited = Date.now() - t0;
    assert.ok(waited >= 250 && waited < 2500, `held for ${waited} ms`);
    assert.ok(!r.text.includes('\u2028') && !r.text.includes('\u2029'), 'no raw line separators');
    assert.ok(r.text.includes('\\u2028') && r.text.includes('\\u2029'), r.text);
    const reply = runJsonp(r.text, 'cb');
    assert.equal(reply[0].channel, '/jsonp/x');
    assert.equal(reply[0].data.text, 'a\u2028b\u2029c');
    assert.equal(reply[1].channel, '/meta/connect');
    assert.equal(reply[1].id, '3');
  });

  test('bad callback names get HTTP 400 and no script', async () => {
    const bad = ['', '1cb', '.cb', 'cb;alert(1)', 'alert(document.cookie)//', 'a-b', 'a b',
      '<script>', 'x'.repeat(65), 'cb\u00e9'];
    for (const cb of bad) {
      const r = await jsonp(d.url, cb, handshakeMsg('callback-polling'));
      assert.equal(r.status, 400, `callback ${JSON.stringify(cb)}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('content-type'), /^text\/plain/);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.ok(!r.text.includes('('), r.text);
    }
    const ok = await jsonp(d.url, 'x'.repeat(64), handshakeMsg('callback-polling'));
    assert.equal(ok.status, 200, '64 characters are fine');
  });

  test('a JSONP request without a message, or with invalid JSON, gets HTTP 400', async () => {
    let r = await fetch(`${d.url}?jsonp=cb`);
    assert.equal(r.status, 400);
    r = await fetch(`${d.url}?jsonp=cb&message=${encodeURIComponent('[{"channel":')}`);
    assert.equal(r.status, 400);
    assert.match(await r.text(), /invalid JSON/);
    r = await fetch(`${d.url}`);
    assert.equal(r.status, 400, 'GET without jsonp');
  });
});

describe('CORS', {timeout: T(60000)}, () => {
  const allowed = 'http://app.example.test:3000';
  let d;
  let open; // a broker with --allow-origin '*'
  let none; // a broker with no --allow-origin
  before(async () => {
    d = await startDaemon(['--allow-origin', allowed, '--allow-origin', 'https://second.example.test',
      '--cors-max-age', '600']);
    open = await startDaemon(['--allow-origin', '*']);
    none = await startDaemon([]);
  });
  after(async () => {
    await stopDaemonClean(d);
    await stopDaemonClean(open);
    await stopDaemonClean(none);
  });

  const preflight = (url, origin) => fetch(url, {method: 'OPTIONS', headers: {
    origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type'}});

  test('a preflight from an allowed origin gets the methods, headers and max age', async () => {
    const r = await preflight(`${d.url}/handshake`, allowed);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), allowed);
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    assert.match(r.headers.get('access-control-allow-methods'), /POST/);
    const h = r.headers.get('access-control-allow-headers').toLowerCase();
    for (const want of ['content-type', 'authorization', 'x-requested-with']) assert.ok(h.includes(want), h);
    assert.equal(r.headers.get('access-control-max-age'), '600');
    assert.match(r.headers.get('vary'), /Origin/);
  });

  test('Bayeux replies to an allowed origin carry the origin, credentials and Vary', async () => {
    const r = await post(d.url, handshakeMsg(), {origin: 'https://second.example.test'});
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://second.example.test');
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    assert.match(r.headers.get('vary'), /Origin/);
  });

  test('a disallowed origin gets no CORS headers, and 403 on preflight', async () => {
    for (const origin of ['http://evil.example.test', 'http://app.example.test:3001', 'null',
      'http://app.example.test:3000.evil.test']) {
      const p = await preflight(d.url, origin);
      assert.equal(p.status, 403, origin);
      assert.equal(p.headers.get('access-control-allow-origin'), null);
      const r = await post(d.url, handshakeMsg(), {origin});
      assert.equal(r.headers.get('access-control-allow-origin'), null, origin);
      assert.equal(r.headers.get('access-control-allow-credentials'), null, origin);
    }
  });

  test('with no --allow-origin no origin is allowed; an OPTIONS without Origin is a plain 200', async () => {
    const p = await preflight(none.url, 'http://127.0.0.1:1');
    assert.equal(p.status, 403);
    const r = await post(none.url, handshakeMsg(), {origin: 'http://127.0.0.1:1'});
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    const plain = await fetch(none.url, {method: 'OPTIONS'});
    assert.equal(plain.status, 200);
  });

  test("'*' echoes any origin (never '*', which browsers refuse with credentials) but not null", async () => {
    const r = await post(open.url, handshakeMsg(), {origin: 'https://anyone.example.test'});
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://anyone.example.test');
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    const n = await preflight(open.url, 'null');
    assert.equal(n.status, 403);
  });

  test('bad --allow-origin values stop the daemon with a message', async () => {
    for (const bad of ['example.com', 'https://example.com/', 'https://example.com/app']) {
      const r = await runDaemonOnce(['--listen', '127.0.0.1:0', '--allow-origin', bad]);
      assert.notEqual(r.code, 0, bad);
      assert.match(r.stderr, /--allow-origin/, r.stderr);
    }
  });
});

describe('BAYEUX_BROWSER cookie and held connects per browser', {timeout: T(60000)}, () => {
  test('SameSite is configurable; None adds Secure; --cookie-secure adds Secure', async () => {
    const cases = [
      [['--cookie-samesite', 'Strict'], /; HttpOnly; SameSite=Strict$/],
      [['--cookie-samesite', 'None'], /; HttpOnly; SameSite=None; Secure$/],
      [['--cookie-secure'], /; HttpOnly; SameSite=Lax; Secure$/],
      [[], /; Path=\/; HttpOnly; SameSite=Lax$/],
    ];
    for (const [flags, want] of cases) {
      const d = await startDaemon(flags);
      try {
        const r = await post(d.url, handshakeMsg());
        assert.match(r.headers.get('set-cookie'), want, flags.join(' '));
        // A browser that already has a valid cookie is not given another.
        const id = /BAYEUX_BROWSER=([A-Za-z0-9]+)/.exec(r.headers.get('set-cookie'))[1];
        const again = await post(d.url, handshakeMsg(), {cookie: `BAYEUX_BROWSER=${id}`});
        assert.equal(again.headers.get('set-cookie'), null);
      } finally {
        await stopDaemonClean(d);
      }
    }
    const bad = await runDaemonOnce(['--listen', '127.0.0.1:0', '--cookie-samesite', 'sometimes']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--cookie-samesite must be Lax, Strict or None/);
  });

  /** n sessions of one browser (cookie), each past its first connect. */
  async function tabs(d, n) {
    const first = await post(d.url, handshakeMsg());
    const cookie = /BAYEUX_BROWSER=[A-Za-z0-9]+/.exec(first.headers.get('set-cookie'))[0];
    const ids = [first.json[0].clientId];
    for (let i = 1; i < n; i++) ids.push((await post(d.url, handshakeMsg(), {cookie})).json[0].clientId);
    for (const id of ids) {
      const r = await post(d.url, [{channel: '/meta/connect', clientId: id, connectionType: 'long-polling'}], {cookie});
      assert.equal(r.json[0].successful, true);
    }
    const connect = async (i) => {
      const t0 = Date.now();
      const r = await post(d.url, [{channel: '/meta/connect', clientId: ids[i],
        connectionType: 'long-polling', id: `c${i}`}], {cookie});
      return {...r, ms: Date.now() - t0};
    };
    return {cookie, ids, connect};
  }

  const isMulti = (r) => r.json?.[0]?.advice?.['multiple-clients'] === true;

  test('the second and third tab of a browser are answered at once with multiple-clients advice', async () => {
    const d = await startDaemon(['--timeout', '2000']);
    try {
      const t = await tabs(d, 3);
      const first = t.connect(0); // held
      await new Promise((r) => setTimeout(r, 200));
      const [second, third] = await Promise.all([t.connect(1), t.connect(2)]);
      for (const r of [second, third]) {
        assert.ok(r.ms < 1000, `answered after ${r.ms} ms`);
        assert.equal(r.json[0].successful, true);
        assert.deepEqual(r.json[0].advice, {reconnect: 'retry', interval: 2000, timeout: 2000,
          'multiple-clients': true});
      }
      const one = await first;
      assert.ok(one.ms >= 1500, `the first tab's connect was held ${one.ms} ms`);
      assert.ok(!isMulti(one));
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('with --max-sessions-per-browser 2 the third tab polls, at --multi-session-interval', async () => {
    const d = await startDaemon(['--timeout', '2000', '--max-sessions-per-browser', '2',
      '--multi-session-interval', '3500']);
    try {
      const t = await tabs(d, 3);
      const held = [t.connect(0), t.connect(1)];
      await new Promise((r) => setTimeout(r, 200));
      const third = await t.connect(2);
      assert.ok(third.ms < 1000);
      assert.equal(third.json[0].advice.interval, 3500);
      assert.ok(isMulti(third));
      for (const r of await Promise.all(held)) {
        assert.ok(r.ms >= 1500, `held ${r.ms} ms`);
        assert.ok(!isMulti(r));
      }
      // Both holds ended: the third tab's next connect is held, and told to
      // go back to the normal interval.
      const back = await t.connect(2);
      assert.ok(back.ms >= 1500, `held ${back.ms} ms`);
      assert.deepEqual(back.json[0].advice, {reconnect: 'retry', interval: 0, timeout: 2000});
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('--max-sessions-per-browser 0 lets every tab long-poll', async () => {
    const d = await startDaemon(['--timeout', '1500', '--max-sessions-per-browser', '0']);
    try {
      const t = await tabs(d, 3);
      const rs = await Promise.all([0, 1, 2].map((i) => t.connect(i)));
      for (const r of rs) {
        assert.ok(r.ms >= 1000, `held ${r.ms} ms`);
        assert.ok(!isMulti(r));
      }
    } finally {
      await stopDaemonClean(d);
    }
  });
});

describe('static files', {timeout: T(60000)}, () => {
  let d;
  let root;
  let outside;
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'bx-web-'));
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'bx-outside-'));
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'secret');
    fs.writeFileSync(path.join(root, 'index.html'), '<h1>root</h1>');
    fs.writeFileSync(path.join(root, 'app.js'), 'export const x = 1;');
    fs.writeFileSync(path.join(root, 'data.json'), '{}');
    fs.writeFileSync(path.join(root, 'blob.bin'), Buffer.from([0, 1, 2]));
    fs.writeFileSync(path.join(root, '.env'), 'TOKEN=1');
    fs.mkdirSync(path.join(root, 'sub'));
    fs.writeFileSync(path.join(root, 'sub', 'index.html'), '<h1>sub</h1>');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'link.txt'));
    fs.symlinkSync(outside, path.join(root, 'linkdir'));
    fs.symlinkSync(path.join(root, 'app.js'), path.join(root, 'inside-link.js'));
    d = await startDaemon(['--web-root', root, '--web-mount',
      `/vendor/cometd=${path.join(REPO, 'node_modules', 'cometd')}`]);
  });
  after(async () => {
    await stopDaemonClean(d);
    fs.rmSync(root, {recursive: true, force: true});
    fs.rmSync(outside, {recursive: true, force: true});
  });

  const get = (p, init = {}) => fetch(d.origin + p, {redirect: 'manual', ...init});
  // The exact path, not normalized as fetch and URL do ("/a/../b" -> "/b").
  const rawGet = (p) => new Promise((resolve, reject) => {
    const req = http.request({host: '127.0.0.1', port: d.port, path: p, agent: false}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, text: Buffer.concat(chunks).toString()}));
    });
    req.setTimeout(T(5000), () => req.destroy(new Error(`no answer to ${p}`)));
    req.on('error', reject);
    req.end();
  });

  test('files get their content types, folders their index.html', async () => {
    const want = {
      '/': 'text/html; charset=utf-8',
      '/index.html': 'text/html; charset=utf-8',
      '/app.js': 'text/javascript; charset=utf-8',
      '/data.json': 'application/json; charset=utf-8',
      '/blob.bin': 'application/octet-stream',
      '/sub/': 'text/html; charset=utf-8',
      '/vendor/cometd/cometd.js': 'text/javascript; charset=utf-8',
      '/inside-link.js': 'text/javascript; charset=utf-8',
    };
    for (const [p, type] of Object.entries(want)) {
      const r = await get(p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers.get('content-type'), type, p);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    }
    assert.equal(await (await get('/sub/')).text(), '<h1>sub</h1>');
    const r = await get('/sub');
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), '/sub/');
  });

  test('nothing outside the folder: .., encoded .., symlinks out, hidden files', async () => {
    const paths = ['/../../../../etc/passwd', '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '/sub/%2E%2E/%2E%2E/%2E%2E/etc/passwd', '/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/..%2f..%2fetc/passwd',
      '/link.txt', '/linkdir/secret.txt', '/.env', '/sub/..', '/sub/.', '/./index.html',
      '/vendor/cometd/../../package.json', '/vendor/cometd/%2e%2e/%2e%2e/package.json', '/nope.html'];
    for (const p of paths) {
      const r = await rawGet(p);
      const text = r.text;
      assert.ok(r.status === 404 || r.status === 400, `${p}: ${r.status}`);
      assert.ok(!text.includes('root:') && !text.includes('secret') && !text.includes('TOKEN') &&
        !text.includes('"dependencies"'), `${p} leaked: ${text.slice(0, 80)}`);
    }
    // libmicrohttpd decodes %00 and the path ends there: "/" is served.
    const nul = await rawGet('/%00/../../etc/passwd');
    assert.ok(!nul.text.includes('root:'), nul.text.slice(0, 80));
  });

  test('GET and HEAD only', async () => {
    const h = await get('/app.js', {method: 'HEAD'});
    assert.equal(h.status, 200);
    assert.equal(h.headers.get('content-length'), String('export const x = 1;'.length));
    const p = await get('/app.js', {method: 'POST', body: 'x'});
    assert.equal(p.status, 405);
    assert.match(p.headers.get('allow'), /GET/);
  });

  test('the Bayeux endpoint still answers under its mount', async () => {
    const r = await post(`${d.url}/handshake`, handshakeMsg());
    assert.equal(r.json[0].successful, true);
  });

  test('the daemon logs the demo URL; a missing --web-root stops it', async () => {
    const demo = await startDaemon(DEMO_FLAGS);
    try {
      // The line comes right after the ready line.
      for (let i = 0; i < 40 && !demo.stderr().includes('demo: open'); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(demo.stderr(), new RegExp(`demo: open ${demo.origin}/ `));
    } finally {
      await stopDaemonClean(demo);
    }
    const r = await runDaemonOnce(['--listen', '127.0.0.1:0', '--web-root', '/nonexistent/web']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--web-root: '\/nonexistent\/web' is not a folder/);
  });
});

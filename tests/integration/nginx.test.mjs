// bayeuxd behind nginx, with the configuration of docs/nginx/bayeuxd.conf (TLS lines
// dropped, ports rewritten): held connects pass unbuffered and are released at once by a
// publish, and a connect held for the whole poll timeout is not cut by the proxy; the
// CometD client's WebSocket upgrade passes through it.
// Skipped when nginx is not installed (apt-get install -y nginx-core). Loopback only.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, REPO, SLOW} from './lib/daemon.mjs';
import {RawSession, sleep} from './lib/wire.mjs';
import {CometDClient, waitFor} from './lib/clients.mjs';

function findNginx() {
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) {
    if (fs.existsSync(p)) return p;
  }
  try { return execFileSync('sh', ['-c', 'command -v nginx']).toString().trim() || null; } catch { return null; }
}

const NGINX = findNginx();
const HOLD_MS = 3000;
let daemon;
let nginx;
let dir;
let url;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => { const {port} = srv.address(); srv.close(() => resolve(port)); });
    srv.on('error', reject);
  });
}

async function waitForPort(port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nginx did not listen on ${port} within ${ms} ms`);
}

describe('behind nginx (docs/nginx/bayeuxd.conf)', {skip: NGINX ? false : 'nginx is not installed'}, () => {
  before(async () => {
    daemon = await startDaemon(['--timeout', String(HOLD_MS)]);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-nginx-'));
    fs.chmodSync(dir, 0o755);
    const port = await freePort();
    const site = fs.readFileSync(path.join(REPO, 'docs', 'nginx', 'bayeuxd.conf'), 'utf8')
      .split('\n').filter((l) => !l.includes('# TLS')).join('\n')
      .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${daemon.port};`)
      .replace('server {\n', `server {\n    listen 127.0.0.1:${port};\n`);
    fs.writeFileSync(path.join(dir, 'site.conf'), site);
    fs.writeFileSync(path.join(dir, 'nginx.conf'), [
      'worker_processes 1;',
      `pid ${dir}/nginx.pid;`,
      'error_log stderr warn;',
      'events { worker_connections 256; }',
      'http {',
      `  access_log off;`,
      `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;`,
      `  include ${dir}/site.conf;`,
      '}',
    ].join('\n'));
    nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'],
      {stdio: ['ignore', 'ignore', 'pipe']});
    let err = '';
    nginx.stderr.on('data', (d) => { err += d; });
    nginx.on('exit', (code) => { if (code) err += `\n(nginx exited ${code})`; });
    try {
      await waitForPort(port, 10000 * SLOW);
    } catch (e) {
      throw new Error(`${e.message}\n${err}`);
    }
    url = `http://127.0.0.1:${port}${new URL(daemon.url).pathname}`;
  });

  after(async () => {
    if (nginx && nginx.exitCode === null) {
      const done = new Promise((r) => nginx.on('exit', r));
      nginx.kill('SIGQUIT'); // graceful, by PID
      await Promise.race([done, sleep(5000)]);
      if (nginx.exitCode === null) nginx.kill('SIGKILL');
    }
    await stopDaemonClean(daemon);
    if (dir) fs.rmSync(dir, {recursive: true, force: true});
  });

  test('the CometD client upgrades to websocket through nginx and messages round-trip', {timeout: 30000},
    async () => {
      const c = new CometDClient(url, {websocket: true});
      try {
        await c.handshake();
        assert.equal(c.transportType(), 'websocket');
        const got = [];
        await c.subscribe('/via/nginx-ws', (m) => got.push(m.data));
        await c.publish('/via/nginx-ws', {n: 1});
        await waitFor(() => got.length === 1, 5000, 'delivery over the proxied socket');
      } finally {
        await c.disconnect();
      }
    });

  test('a held connect is released through nginx as soon as a message is published', {timeout: 30000},
    async () => {
      const a = new RawSession(url);
      const b = new RawSession(url);
      await a.handshake();
      await a.connect({advice: {timeout: 0}});
      await a.subscribe('/via/nginx');
      await b.handshake();
      const held = a.connect({}, {timeoutMs: HOLD_MS + 10000});
      await sleep(500); // parked in bayeuxd, through nginx
      const t0 = performance.now();
      const r = await b.exchange([b.publishMessage('/via/nginx', {n: 1})]);
      assert.equal(r[0].successful, true);
      const res = await held;
      const ms = performance.now() - t0;
      assert.ok(res.json?.some((m) => m.channel === '/via/nginx' && m.data?.n === 1), res.text);
      assert.ok(ms < 1000 * SLOW, `released ${ms} ms after the publish: buffered?`);
    });

  test('a connect held for the whole poll timeout comes back 200 through nginx', {timeout: 30000},
    async () => {
      const a = new RawSession(url);
      await a.handshake();
      await a.connect({advice: {timeout: 0}});
      const res = await a.connect({}, {timeoutMs: HOLD_MS + 10000});
      assert.equal(res.status, 200, res.text);
      assert.ok(res.elapsedMs >= HOLD_MS - 200, `returned after ${res.elapsedMs} ms`);
      assert.equal(res.json?.find((m) => m.channel === '/meta/connect')?.successful, true, res.text);
    });
});

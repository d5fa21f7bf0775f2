// Three bayeuxd nodes sharing one real Redis behind nginx with sticky routing on the
// BAYEUX_BROWSER cookie (docs/nginx/bayeuxd-cluster.conf): a CometD subscriber's node is
// kill -9'd while a backend keeps publishing through nginx; the subscriber lands on
// another node (402::session_unknown, re-handshake, re-subscribe with the replay
// extension, web/replay-extension.js) and, the channel's history being in Redis
// Streams (--retain), ends with every message exactly once, in order.
// Skipped when nginx is not installed. Loopback only; every process is ours, by PID.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, REPO, SLOW, PEER} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';
import {request} from './lib/wire.mjs';
import {startRedis, freePort} from './lib/redis.mjs';
import {ReplayExtension} from '../../web/replay-extension.js';

function findNginx() {
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) {
    if (fs.existsSync(p)) return p;
  }
  try { return execFileSync('sh', ['-c', 'command -v nginx']).toString().trim() || null; } catch { return null; }
}
const NGINX = findNginx();
const skip = PEER ? 'clustering is bayeuxd behaviour' : NGINX ? false : 'nginx is not installed';

let redis, nginx, dir, base;
const nodes = [];

async function waitForPort(port, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({host: '127.0.0.1', port}, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nginx did not listen on ${port} within ${ms} ms`);
}

/** Which node holds clientId: the one that knows the session answers a harmless
 * /meta/unsubscribe successfully, the others with 402::session_unknown. */
async function nodeOf(clientId) {
  const owners = [];
  for (const [i, d] of nodes.entries()) {
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) continue;
    const r = await request(d.url, {body: [{channel: '/meta/unsubscribe', clientId, subscription: '/nobody/here'}]});
    if (r.json && r.json[0] && r.json[0].successful) owners.push(i);
  }
  return owners;
}

before(async () => {
  if (skip) return;
  redis = await startRedis();
  for (const name of ['n1', 'n2', 'n3']) {
    const d = await startDaemon(['--redis', redis.url, '--node-id', name, '--allow-local-publish',
      '--max-interval', '2000', '--retain', '/cl/**=10000']);
    await waitFor(() => d.stderr().includes('redis: connected'), 10000, `${name} connected`);
    nodes.push(d);
  }
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-nginx-cluster-'));
  fs.chmodSync(dir, 0o755);
  const port = await freePort();
  let site = fs.readFileSync(path.join(REPO, 'docs', 'nginx', 'bayeuxd-cluster.conf'), 'utf8')
    .replace('listen 8080;', `listen 127.0.0.1:${port};`);
  for (const [i, d] of nodes.entries()) site = site.replace(`server 127.0.0.1:808${i + 1} `, `server 127.0.0.1:${d.port} `);
  fs.writeFileSync(path.join(dir, 'site.conf'), site);
  fs.writeFileSync(path.join(dir, 'nginx.conf'), [
    'worker_processes 1;', `pid ${dir}/nginx.pid;`, 'error_log stderr crit;',
    'events { worker_connections 256; }', 'http {', '  access_log off;',
    `  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;`,
    `  include ${dir}/site.conf;`, '}',
  ].join('\n'));
  nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {stdio: ['ignore', 'ignore', 'pipe']});
  let err = '';
  nginx.stderr.on('data', (d) => { err += d; });
  try {
    await waitForPort(port, 10000 * SLOW);
  } catch (e) {
    throw new Error(`${e.message}\n${err}`);
  }
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  if (nginx && nginx.exitCode === null) {
    const done = new Promise((r) => nginx.on('exit', r));
    nginx.kill('SIGQUIT');
    await Promise.race([done, sleep(5000)]);
    if (nginx.exitCode === null) nginx.kill('SIGKILL');
  }
  for (const d of nodes) {
    if (d.proc.exitCode === null && d.proc.signalCode === null) await stopDaemonClean(d);
  }
  if (redis) await redis.stop();
  if (dir) fs.rmSync(dir, {recursive: true, force: true});
});

describe('cluster behind nginx (docs/nginx/bayeuxd-cluster.conf)', {skip}, () => {
  test('a subscriber whose node is kill -9\'d lands on another node and, with replay, misses nothing',
    {timeout: 60000 * SLOW}, async () => {
      const ch = uniqueChannel('/cl/nginx');
      const c = new CometDClient(`${base}/cometd`);
      c.cometd.registerExtension('replay', new ReplayExtension());
      const got = [];
      // As CometD applications do: subscribe in the handshake listener, so a new session
      // (another node) subscribes again. The first handshake has no cookie yet (hashed on
      // the address): the next request, hashed on the new cookie, may reach another node
      // and get 402::session_unknown; the client then handshakes there once
      // (docs/nginx/bayeuxd-cluster.conf). The replay extension adds the last replay id
      // it saw to that subscribe.
      let subscribed = 0;
      c.cometd.addListener('/meta/handshake', (m) => {
        if (m.successful) c.cometd.subscribe(ch, (msg) => got.push(msg));
      });
      c.cometd.addListener('/meta/subscribe', (m) => { if (m.successful) subscribed++; });
      await c.handshake();
      await waitFor(() => subscribed > 0, 10000, 'subscribed');
      await c.waitConnected();
      const owners = await nodeOf(c.clientId);
      assert.equal(owners.length, 1, `exactly one node holds the session (${owners})`);
      const victim = owners[0];
      // A backend publishes through nginx (any node) all along; each attempt has its own
      // data, so a publish that a dying node took without answering is not sent twice.
      const acked = [];
      let attempt = 0;
      let stop = false;
      const publisher = (async () => {
        while (!stop) {
          attempt += 1;
          const r = await request(`${base}/publish${ch}`, {body: {attempt}}).catch(() => null);
          if (r && r.status === 200) acked.push(attempt);
          await sleep(50);
        }
      })();
      await waitFor(() => got.length >= 5, 10000, 'deliveries before the kill');
      nodes[victim].proc.kill('SIGKILL');
      await nodes[victim].exited;
      const atKill = attempt;
      const firstId = c.clientId;
      // The client's next request reaches another node: 402, re-handshake, re-subscribe.
      await waitFor(() => got.some((m) => m.data.attempt > atKill + 10), 20000,
        'deliveries after the kill');
      stop = true;
      await publisher;
      const last = acked[acked.length - 1];
      await waitFor(() => got.some((m) => m.data.attempt === last), 10000, 'the last publish');
      assert.notEqual(c.clientId, firstId, 'a new session');
      const now = await nodeOf(c.clientId);
      assert.equal(now.length, 1);
      assert.notEqual(now[0], victim);
      // Every replay id from the first received to the last, once each, in order: the
      // ones published while the client had no session came as a replay.
      const ids = got.map((m) => m.ext.replayId);
      for (let i = 1; i < ids.length; i++) {
        if (ids[i] !== ids[i - 1] + 1) assert.fail(`replay ids ${ids[i - 1]} then ${ids[i]}`);
      }
      // And every acknowledged publish after the first delivery is among them, once.
      const seen = new Map();
      for (const m of got) seen.set(m.data.attempt, (seen.get(m.data.attempt) || 0) + 1);
      const first = got[0].data.attempt;
      for (const a of acked) {
        if (a >= first) assert.equal(seen.get(a), 1, `acknowledged publish ${a}`);
      }
      assert.ok(got.some((m) => m.data.attempt > atKill && m.data.attempt < atKill + 10),
        'messages published around the kill were received');
      await c.disconnect().catch(() => {});
    });
});

// bench/compare.mjs: runs bayeuxd, Faye and cometd-nodejs-server one after the
// other on loopback, drives each with bench/bayeux-load through the same
// scenarios, samples each server's CPU time and RSS from /proc, and prints one
// table with bayeuxd's ratio to each peer.  Entry point: bench/compare.
//
// Every scenario gets a freshly started server (so sessions left by one run do
// not weigh on the next), pinned with taskset to --server-core; the generator
// (and wrk) run on --gen-core.  Rate scenarios drain for up to 4 s (ending as
// soon as every measured message arrived) inside a 15 s hard stop: a message
// later than that counts as lost in delivery_ratio.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const LOAD = path.join(root, 'bench/bayeux-load');
const MHD = path.join(root, 'bench/mhd-ceiling');
let BAYEUXD = path.join(root, 'src/bayeuxd');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const PAGE = Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()) || 4096;

// ---- Options ----

const ALL_SERVERS = ['bayeuxd', 'faye', 'cometd'];
const ALL_SCENARIOS = ['fanout', 'fanout-spaced', 'many-channels', 'ceiling', 'idle', 'wrk', 'connect-loop'];
// Server-Sent Events (Faye's eventsource): only on request, and only against
// the servers that speak it (cometd-nodejs-server does not).
const SSE_SCENARIOS = ['fanout-sse', 'idle-sse'];
const SSE_SERVERS = ['bayeuxd', 'faye'];
// WebSocket (subscribers on CometD's WebSocket wire; publishers long-poll):
// only on request; bayeuxd and Faye (cometd-nodejs-server has no WebSocket).
// With any of them, bench/ws-floor (the kernel's own cost of the fan-out's
// writes) runs too and is printed beside them.
const WS_SCENARIOS = ['fanout-ws', 'fanout-ws-spaced', 'ceiling-ws', 'idle-ws'];
const WS_SERVERS = ['bayeuxd', 'faye'];
const FLOOR = path.join(root, 'bench/ws-floor');
let floorResult = null;
const opts = {
  servers: ALL_SERVERS,
  scenarios: ALL_SCENARIOS,
  timeout: 30000,
  serverCore: 0,
  genCore: 1,
  port: 18100,
  build: true,
  json: null,
  token: process.env.BAYEUX_TOKEN || null,
  quick: false,
};

function usage() {
  return `usage: bench/compare [options]

Runs bayeuxd, Faye and cometd-nodejs-server one after the other on 127.0.0.1,
each scenario against a freshly started server pinned to one core, the load
generator pinned to another, and prints one table of results and ratios.

  --servers LIST     comma list of ${ALL_SERVERS.join(',')} (default: all)
  --scenarios LIST   comma list of ${ALL_SCENARIOS.join(',')}
                     (the default) and ${SSE_SCENARIOS.join(',')} (only when named:
                     fanout and idle with subscribers on Server-Sent Events,
                     bayeuxd and Faye only), ${WS_SCENARIOS.join(',')} (only
                     when named: subscribers on WebSocket, bayeuxd and Faye
                     only, with bench/ws-floor printed beside); wrk and connect-loop compare
                     bayeuxd with bench/mhd-ceiling, the bare libmicrohttpd
                     server
  --timeout MS       long-poll timeout given to every server (default 30000)
  --server-core N    CPU the server runs on (default 0)
  --gen-core N       CPU bayeux-load and wrk run on (default 1)
  --port N           first TCP port to use (default 18100)
  --bayeuxd PATH     bayeuxd binary to run (default src/bayeuxd, built with
                     autotools if missing)
  --token T          backend token for wrk publishes to bayeuxd (else wrk
                     publishes with the clientId of one handshake)
  --quick            shorter runs (smoke test; figures are not comparable)
  --no-build         do not build anything; use what exists
  --json FILE        also write every raw result to FILE
  --help             this text`;
}

function fail(msg) {
  console.error(`compare: ${msg}`);
  process.exit(2);
}

{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const f = a[i];
    const v = a[i + 1];
    const int = (name) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) fail(`${name} must be a non-negative integer, got '${v}'`);
      i++;
      return n;
    };
    const list = (name, all) => {
      const l = (v || '').split(',').filter(Boolean);
      for (const x of l) if (!all.includes(x)) fail(`${name}: unknown '${x}' (choose from ${all.join(',')})`);
      if (!l.length) fail(`${name} needs a comma-separated list`);
      i++;
      return l;
    };
    if (f === '--help') { console.log(usage()); process.exit(0); }
    else if (f === '--servers') opts.servers = list(f, ALL_SERVERS);
    else if (f === '--scenarios') opts.scenarios = list(f, [...ALL_SCENARIOS, ...SSE_SCENARIOS, ...WS_SCENARIOS]);
    else if (f === '--timeout') opts.timeout = int(f);
    else if (f === '--server-core') opts.serverCore = int(f);
    else if (f === '--gen-core') opts.genCore = int(f);
    else if (f === '--port') opts.port = int(f);
    else if (f === '--token') { opts.token = v; i++; }
    else if (f === '--bayeuxd') { BAYEUXD = path.resolve(v || fail('--bayeuxd needs a path')); opts.customBayeuxd = true; i++; }
    else if (f === '--json') { opts.json = v; i++; }
    else if (f === '--quick') opts.quick = true;
    else if (f === '--no-build') opts.build = false;
    else fail(`unknown option '${f}' (try --help)`);
  }
  if (opts.serverCore === opts.genCore) fail('--server-core and --gen-core must differ');
}

// ---- Build ----

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    const out = (r.stdout || '').toString() + (r.stderr || '').toString();
    return `${what} failed (exit ${r.status}):\n${out.split('\n').slice(-15).join('\n')}`;
  }
  return null;
}

function stale(bin, src) {
  if (!fs.existsSync(bin)) return true;
  return fs.statSync(src).mtimeMs > fs.statSync(bin).mtimeMs;
}

const notes = [];
function build() {
  const cflags = ['-O2', '-Wall', '-Wextra', '-std=c11'];
  if (stale(LOAD, LOAD + '.c')) {
    const e = run('gcc', [...cflags, '-o', LOAD, LOAD + '.c'], 'building bench/bayeux-load');
    if (e) fail(e);
  }
  if (stale(FLOOR, FLOOR + '.c')) {
    const e = run('gcc', [...cflags, '-o', FLOOR, FLOOR + '.c'], 'building bench/ws-floor');
    if (e) fail(e);
  }
  if (stale(MHD, MHD + '.c')) {
    const e = run('gcc', [...cflags, '-o', MHD, MHD + '.c', '-lmicrohttpd'], 'building bench/mhd-ceiling');
    if (e) fail(e);
  }
  if (opts.servers.includes('bayeuxd') && !opts.customBayeuxd) {
    let e = null;
    if (!fs.existsSync(path.join(root, 'Makefile'))) {
      if (!fs.existsSync(path.join(root, 'configure'))) e = run('autoreconf', ['-fi'], 'autoreconf -fi');
      if (!e) e = run('./configure', [], './configure');
    }
    if (!e) e = run('make', ['-j2', 'src/bayeuxd'], 'make src/bayeuxd');
    if (e && !fs.existsSync(BAYEUXD)) e = run('make', ['-j2'], 'make');
    if (e) console.error(`compare: ${e}`);
  }
  if (!fs.existsSync(path.join(root, 'node_modules/faye')) ||
      !fs.existsSync(path.join(root, 'node_modules/cometd-nodejs-server'))) {
    const e = run('npm', ['ci', '--no-audit', '--no-fund'], 'npm ci');
    if (e) fail(e);
  }
}

// ---- Servers ----

function serverCommand(name, port) {
  switch (name) {
    case 'bayeuxd': return [BAYEUXD, '--listen', `127.0.0.1:${port}`, '--timeout', String(opts.timeout)];
    case 'faye': return ['node', path.join(here, 'peers/faye-server.mjs'), '--port', String(port), '--timeout', String(opts.timeout)];
    case 'cometd': return ['node', path.join(here, 'peers/cometd-server.mjs'), '--port', String(port), '--timeout', String(opts.timeout)];
    case 'mhd': return [MHD, '--port', String(port)];
  }
  throw new Error(name);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

let portSeq = 0;
// Starts a server pinned to the server core; resolves once it accepts.
async function startServer(name) {
  const port = opts.port + (portSeq++ % 50);
  const cmd = serverCommand(name, port);
  const child = spawn('taskset', ['-c', String(opts.serverCore), ...cmd], {
    cwd: root, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  let exited = false;
  child.on('exit', () => { exited = true; });
  for (let i = 0; i < 200 && !exited; i++) {
    if (await portOpen(port)) return { name, port, child, pid: child.pid, log: () => log };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`${name} did not start on port ${port}: ${log.slice(-500)}`);
}

async function stopServer(s) {
  if (s.child.exitCode !== null) return;
  const done = new Promise((r) => s.child.on('exit', r));
  s.child.kill('SIGTERM');
  const t = setTimeout(() => s.child.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

// CPU seconds (utime+stime, all threads) and RSS bytes of a process.
function procSample(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
    return { cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK, rss: Number(f[21]) * PAGE, t: Date.now() };
  } catch {
    return null;
  }
}

// ---- Scenarios ----

const Q = () => opts.quick;
const SCEN = {
  fanout: () => ['--subscribers', '1000', '--channels', '1', '--publishers', '2', '--inflight', '8', '--rate', '20',
    '--setup', '3', '--warmup', Q() ? '1' : '2', '--duration', Q() ? '3' : '8', '--drain', '4', '--hard-stop', '15'],
  'many-channels': () => ['--subscribers', '2000', '--channels', '2000', '--publishers', '20', '--inflight', '8', '--rate', '2000',
    '--setup', '3', '--warmup', Q() ? '1' : '2', '--duration', Q() ? '3' : '8', '--drain', '4', '--hard-stop', '15'],
  ceiling: () => ['--subscribers', '100', '--channels', '1', '--publishers', '10', '--inflight', '4', '--rate', '0',
    '--setup', '3', '--warmup', Q() ? '1' : '2', '--duration', Q() ? '3' : '8', '--drain', '2', '--hard-stop', '15'],
  idle: () => ['--idle', '--subscribers', '10000', '--ramp', '500', '--setup', '5', '--warmup', '0',
    '--duration', Q() ? '3' : '10', '--drain', '0', '--hard-stop', '15'],
  // The same loads with subscribers on eventsource streams (publishers long-poll).
  'fanout-sse': () => [...SCEN.fanout(), '--transport', 'sse'],
  // Long polling with one publisher: messages 50 ms apart, so each delivery
  // is its own connect reply (in fanout the two publishers fire together).
  'fanout-spaced': () => SCEN.fanout().map((a, i, v) => (v[i - 1] === '--publishers' ? '1' : a)),
  'idle-sse': () => [...SCEN.idle(), '--transport', 'sse'],
  'fanout-ws': () => [...SCEN.fanout(), '--transport', 'websocket'],
  // One publisher: its 20 messages a second are 50 ms apart, so every delivery
  // is its own frame (in fanout the two publishers fire together and a frame
  // often carries two): the figure to set beside bench/ws-floor's per write.
  'fanout-ws-spaced': () => [...SCEN.fanout().map((a, i, v) => (v[i - 1] === '--publishers' ? '1' : a)), '--transport', 'websocket'],
  'ceiling-ws': () => [...SCEN.ceiling(), '--transport', 'websocket'],
  'idle-ws': () => [...SCEN.idle(), '--transport', 'websocket'],
  'connect-loop': () => ['--connect-loop', '--subscribers', '100', '--setup', '3', '--warmup', '1',
    '--duration', Q() ? '3' : '6', '--drain', '0', '--hard-stop', '15'],
};

// Runs bayeux-load against a server; samples the server at the measure and
// drain phase changes and every 250 ms for peak RSS.
function runLoad(server, args) {
  return new Promise((resolve) => {
    const url = `http://127.0.0.1:${server.port}/cometd`;
    const full = [LOAD, '--url', url, '--phase-events', '--no-progress', ...args];
    const cmdline = `taskset -c ${opts.genCore} bench/bayeux-load ${full.slice(1).join(' ')}`.replace(root + '/', '');
    const child = spawn('taskset', ['-c', String(opts.genCore), ...full], { cwd: root });
    const samples = { base: procSample(server.pid), measure: null, drain: null, peakRss: 0 };
    let out = '', errBuf = '', errText = '';
    const peak = setInterval(() => {
      const s = procSample(server.pid);
      if (s && s.rss > samples.peakRss) samples.peakRss = s.rss;
    }, 250);
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => {
      errBuf += d;
      let nl;
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        const line = errBuf.slice(0, nl);
        errBuf = errBuf.slice(nl + 1);
        if (line === '@phase measure') samples.measure = procSample(server.pid);
        else if (line === '@phase drain') samples.drain = procSample(server.pid);
        else if (line.trim()) errText += line + '\n';
      }
    });
    child.on('exit', (code) => {
      clearInterval(peak);
      if (!samples.drain) samples.drain = procSample(server.pid);
      let result = null;
      try { result = JSON.parse(out.trim().split('\n').pop()); } catch { /* reported below */ }
      resolve({ cmdline, code, result, samples, stderr: errText.trim() });
    });
  });
}

// One handshake (and its cookie) for wrk's publishes.
async function handshake(port) {
  const res = await fetch(`http://127.0.0.1:${port}/cometd`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify([{ channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'], id: '1' }]),
  });
  const body = await res.json();
  const cookie = (res.headers.get('set-cookie') || '').split(';')[0];
  return { clientId: body[0] && body[0].clientId, cookie, raw: JSON.stringify(body) };
}

// Sends the exact publish wrk will send once, to record how it is answered.
async function probePublish(port, env) {
  const msg = { channel: '/bench/0', id: '1', data: { t: 0, p: 'x' } };
  if (env.BAYEUX_CLIENTID) msg.clientId = env.BAYEUX_CLIENTID;
  if (env.BAYEUX_TOKEN) msg.ext = { token: env.BAYEUX_TOKEN };
  const headers = { 'Content-Type': 'application/json' };
  if (env.BAYEUX_COOKIE) headers.Cookie = env.BAYEUX_COOKIE;
  if (env.BAYEUX_TOKEN) headers.Authorization = `Bearer ${env.BAYEUX_TOKEN}`;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/cometd`, { method: 'POST', headers, body: JSON.stringify([msg]) });
    return `HTTP ${res.status} ${await res.text()}`;
  } catch (e) {
    return `error ${e.message}`;
  }
}

// wrk: 100 connections of Bayeux publishes; CPU of wrk itself via `times`.
function runWrk(server, env) {
  return new Promise((resolve) => {
    const secs = Q() ? 3 : 8;
    const url = `http://127.0.0.1:${server.port}/cometd`;
    const wrkArgs = `-t1 -c100 -d${secs}s -s bench/wrk-publish.lua ${url}`;
    const script = `wrk ${wrkArgs}; times`;
    const cmdline = `taskset -c ${opts.genCore} wrk ${wrkArgs}`;
    const child = spawn('taskset', ['-c', String(opts.genCore), 'bash', '-c', script], {
      cwd: root, env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    let s0 = null;
    // wrk connects at once; sample the server just after start and just before the end.
    setTimeout(() => { s0 = procSample(server.pid); }, 200);
    let s1 = null;
    setTimeout(() => { s1 = procSample(server.pid); }, secs * 1000 - 100);
    child.on('exit', () => {
      const rps = Number((out.match(/Requests\/sec:\s+([\d.]+)/) || [])[1] || 0);
      const non2xx = Number((out.match(/Non-2xx or 3xx responses:\s+(\d+)/) || [])[1] || 0);
      const requests = Number((out.match(/(\d+) requests in/) || [])[1] || 0);
      const lat = (out.match(/Latency\s+(\S+)/) || [])[1] || '';
      // `times` prints the shell's then the children's user/sys: take the last line.
      const tl = out.trim().split('\n').filter((l) => /^\d+m[\d.]+s \d+m[\d.]+s$/.test(l)).pop() || '';
      const sec = (x) => { const m = x.match(/(\d+)m([\d.]+)s/); return m ? Number(m[1]) * 60 + Number(m[2]) : 0; };
      const [u, sy] = tl.split(' ');
      const wrkCpuPct = tl ? (100 * (sec(u) + sec(sy))) / secs : null;
      const serverCpuPct = s0 && s1 ? (100 * (s1.cpu - s0.cpu)) / ((s1.t - s0.t) / 1000) : null;
      resolve({ cmdline, rps, requests, non2xx, lat, wrkCpuPct, serverCpuPct, raw: out });
    });
  });
}

// ---- Main ----

const results = {}; // results[scenario][server] = {...}
const commands = {};

function record(scenario, server, r) {
  (results[scenario] ||= {})[server] = r;
}

async function runScenario(scenario, serverName) {
  const server = await startServer(serverName);
  try {
    await sleep(300);
    if (scenario === 'wrk') {
      const env = {};
      if (serverName === 'bayeuxd') {
        if (opts.token) env.BAYEUX_TOKEN = opts.token;
        else {
          const hs = await handshake(server.port);
          if (hs.clientId) env.BAYEUX_CLIENTID = hs.clientId;
          if (hs.cookie) env.BAYEUX_COOKIE = hs.cookie;
        }
      }
      const probe = serverName === 'mhd' ? null : await probePublish(server.port, env);
      const r = await runWrk(server, env);
      r.probe = probe;
      commands.wrk = r.cmdline.replace(/:\d+\/cometd/, ':PORT/cometd');
      record(scenario, serverName, r);
      return;
    }
    const r = await runLoad(server, SCEN[scenario]());
    const { measure, drain, base, peakRss } = r.samples;
    r.serverCpu = measure && drain ? drain.cpu - measure.cpu : null;
    r.serverWall = measure && drain ? (drain.t - measure.t) / 1000 : null;
    r.serverRss = drain ? drain.rss : null;
    r.baseRss = base ? base.rss : null;
    r.peakRss = peakRss;
    r.serverLog = server.log().slice(-2000);
    commands[scenario] = r.cmdline.replace(/:\d+\/cometd/, ':PORT/cometd');
    record(scenario, serverName, r);
  } finally {
    await stopServer(server);
  }
}

// ---- Table ----

const fmt = (x, d = 0) => (x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
function ratio(a, b, lowerIsBetter) {
  if (a === null || b === null || a === undefined || b === undefined || !b || !a) return '-';
  const r = a / b;
  return lowerIsBetter ? `${r.toFixed(r < 0.1 ? 3 : 2)}` : `${r.toFixed(2)}x`;
}

function rows() {
  const out = [];
  const peers = opts.servers.filter((s) => s !== 'bayeuxd');
  const metric = (scenario, label, get, lowerIsBetter, digits) => {
    const res = results[scenario];
    if (!res) return;
    const v = {};
    for (const s of opts.servers) v[s] = res[s] ? get(res[s]) : null;
    out.push([scenario, label, ...opts.servers.map((s) => fmt(v[s], digits)),
      ...(opts.servers.includes('bayeuxd') ? peers.map((p) => ratio(v.bayeuxd, v[p], lowerIsBetter)) : [])]);
  };
  const R = (r) => r.result || {};
  for (const sc of ['fanout', 'fanout-spaced', 'fanout-sse', 'fanout-ws', 'fanout-ws-spaced', 'many-channels', 'ceiling', 'ceiling-ws']) {
    metric(sc, 'deliveries/s', (r) => R(r).deliveries_per_s, false, 0);
    // What carried them: connect replies (long polling) or pushed frames
    // (WebSocket); deliveries / these = messages per exchange.
    if (sc.endsWith('-ws') || sc.includes('-ws-')) metric(sc, 'pushed frames/s', (r) => R(r).push_frames_per_s, false, 0);
    else if (!sc.endsWith('-sse')) metric(sc, 'connect replies/s', (r) => R(r).connects_per_s, false, 0);
    metric(sc, 'delivery ratio', (r) => R(r).delivery_ratio, false, 4);
    metric(sc, 'latency p50 ms', (r) => R(r).latency_ms && R(r).latency_ms.p50, true, 2);
    metric(sc, 'latency p99 ms', (r) => R(r).latency_ms && R(r).latency_ms.p99, true, 2);
    metric(sc, 'latency max ms', (r) => R(r).latency_ms && R(r).latency_ms.max, true, 1);
    metric(sc, 'server CPU s', (r) => r.serverCpu, true, 2);
    metric(sc, 'server CPU us/delivery', (r) => (r.serverCpu && R(r).delivered ? (1e6 * r.serverCpu) / R(r).delivered : null), true, 2);
    metric(sc, 'server RSS MiB', (r) => r.serverRss / 1048576, true, 1);
    metric(sc, 'errors+rehandshakes', (r) => (R(r).http_errors || 0) + (R(r).rehandshakes || 0) + (R(r).bayeux_errors || 0), true, 0);
  }
  // idle-sse: "sessions held" counts open event streams.
  for (const sc of ['idle', 'idle-sse', 'idle-ws']) {
    metric(sc, 'sessions held', (r) => R(r).held, false, 0);
    metric(sc, 'errors', (r) => (R(r).http_errors || 0) + (R(r).connect_errors || 0) + (R(r).bayeux_errors || 0), true, 0);
    metric(sc, 'RSS KiB/session', (r) => (R(r).held ? (r.serverRss - r.baseRss) / 1024 / R(r).held : null), true, 2);
    metric(sc, 'server RSS MiB', (r) => r.serverRss / 1048576, true, 1);
  }
  return out;
}

function ceilingRows() {
  const out = [];
  const w = results.wrk || {};
  if (w.bayeuxd || w.mhd) {
    out.push(['wrk publish', 'requests/s', fmt(w.bayeuxd && w.bayeuxd.rps), fmt(w.mhd && w.mhd.rps),
      ratio(w.bayeuxd && w.bayeuxd.rps, w.mhd && w.mhd.rps)]);
  }
  const c = results['connect-loop'] || {};
  const cps = (r) => r && r.result && r.result.connects_per_s;
  if (c.bayeuxd || c.mhd) {
    out.push(['connect loop', 'connects/s', fmt(cps(c.bayeuxd)), fmt(cps(c.mhd)), ratio(cps(c.bayeuxd), cps(c.mhd))]);
  }
  return out;
}

function printTable(header, body) {
  const w = header.map((h, i) => Math.max(h.length, ...body.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i < 2 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ');
  console.log(line(header));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const r of body) console.log(line(r));
}

function limitNotes() {
  for (const [sc, byServer] of Object.entries(results)) {
    for (const [srv, r] of Object.entries(byServer)) {
      if (sc === 'wrk') {
        if (r.wrkCpuPct !== null && r.wrkCpuPct >= 90) notes.push(`${sc}/${srv}: wrk used ${fmt(r.wrkCpuPct)}% of its core: the generator, not the server, is the limit`);
        if (r.serverCpuPct !== null && r.serverCpuPct >= 90) notes.push(`${sc}/${srv}: server CPU ${fmt(r.serverCpuPct)}% of its core (saturated)`);
        if (r.non2xx) notes.push(`${sc}/${srv}: ${r.non2xx} non-2xx responses`);
        if (r.probe) notes.push(`${sc}/${srv}: one publish as wrk sends it was answered: ${r.probe.slice(0, 300)}`);
        if (!r.rps) notes.push(`${sc}/${srv}: wrk gave no rate; output: ${r.raw.slice(-300)}`);
        continue;
      }
      const res = r.result;
      if (!res) {
        notes.push(`${sc}/${srv}: no result (exit ${r.code}); ${r.stderr.slice(-300)}`);
        continue;
      }
      if (res.gen_cpu_pct >= 90) notes.push(`${sc}/${srv}: generator CPU ${res.gen_cpu_pct}%: the generator, not the server, is the limit`);
      if (r.serverCpu !== null && r.serverWall && r.serverCpu / r.serverWall >= 0.9) notes.push(`${sc}/${srv}: server CPU ${fmt((100 * r.serverCpu) / r.serverWall)}% of its core (saturated)`);
      if (res.max_lag_ms > 100) notes.push(`${sc}/${srv}: publishing fell ${fmt(res.max_lag_ms)} ms behind the offered rate`);
      const want = res.subscribers;
      if (res.ready_subscribers < want) notes.push(`${sc}/${srv}: only ${res.ready_subscribers}/${want} subscribers were set up in time`);
      if (res.ready_publishers < res.publishers) notes.push(`${sc}/${srv}: only ${res.ready_publishers}/${res.publishers} publishers were set up in time`);
      if (res.first_error) notes.push(`${sc}/${srv}: first error: ${res.first_error}`);
      if (res.interrupted) notes.push(`${sc}/${srv}: run interrupted`);
    }
  }
}

async function main() {
  if (opts.build) build();
  if (opts.servers.includes('bayeuxd') && !fs.existsSync(BAYEUXD)) {
    console.error('compare: src/bayeuxd is not built; running the peers only');
    opts.servers = opts.servers.filter((s) => s !== 'bayeuxd');
  }
  if (!opts.servers.length) fail('no server to run');
  const started = Date.now();
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  for (const sc of opts.scenarios) {
    const servers = sc === 'wrk' || sc === 'connect-loop'
      ? ['bayeuxd', 'mhd'].filter((s) => s === 'mhd' || opts.servers.includes(s))
      : SSE_SCENARIOS.includes(sc) ? opts.servers.filter((s) => SSE_SERVERS.includes(s))
      : WS_SCENARIOS.includes(sc) ? opts.servers.filter((s) => WS_SERVERS.includes(s))
      : opts.servers;
    if (SSE_SCENARIOS.includes(sc) && !servers.length) notes.push(`${sc}: runs on ${SSE_SERVERS.join(' or ')} only (cometd-nodejs-server has no SSE)`);
    if (WS_SCENARIOS.includes(sc) && opts.servers.includes('cometd')) notes.push(`${sc}: cometd-nodejs-server has no WebSocket transport: bayeuxd and Faye only`);
    for (const srv of servers) {
      process.stderr.write(`compare: ${sc} on ${srv} ...`);
      try {
        await runScenario(sc, srv);
        process.stderr.write(' done\n');
      } catch (e) {
        process.stderr.write(` failed: ${e.message}\n`);
        notes.push(`${sc}/${srv}: ${e.message}`);
      }
    }
  }
  // The kernel's own cost of the WebSocket fan-out's writes (bench/ws-floor).
  let floor = null;
  if (opts.scenarios.some((sc) => WS_SCENARIOS.includes(sc)) && fs.existsSync(FLOOR)) {
    const r = spawnSync('taskset', ['-c', String(opts.serverCore), FLOOR, '1000', '200', String(opts.serverCore)], { encoding: 'utf8' });
    floor = (r.stdout || '').trim();
    const m = /CPU ([0-9.]+) s/.exec(floor);
    if (m) floorResult = { cpu: Number(m[1]), us: Number((/([0-9.]+) us a write/.exec(floor) || [])[1]), line: floor };
    commands.floor = `taskset -c ${opts.serverCore} bench/ws-floor 1000 200 ${opts.serverCore}`;
  }
  const cpus = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/);
  console.log(`bayeuxd vs peers, ${new Date().toISOString()}, ${cpus ? cpus[1] : 'unknown CPU'}, ${(await import('node:os')).cpus().length} cores`);
  console.log(`server pinned to CPU ${opts.serverCore}, generator (bayeux-load, wrk) to CPU ${opts.genCore} (taskset); poll timeout ${opts.timeout} ms; fresh server per scenario${opts.quick ? '; QUICK MODE' : ''}`);
  const loadAfter = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`load average before ${loadBefore}, after ${loadAfter}`);
  const ncpu = (await import('node:os')).cpus().length;
  if (Number(loadAfter.split(' ')[1]) > ncpu || Number(loadBefore.split(' ')[0]) > ncpu) {
    notes.push(`the machine was busy with other work (load average above ${ncpu}): throughput and latency figures are noisy; rerun on a quiet machine`);
  }
  console.log('');
  const peers = opts.servers.filter((s) => s !== 'bayeuxd');
  const body = rows();
  if (body.length) {
    printTable(['scenario', 'figure', ...opts.servers, ...(opts.servers.includes('bayeuxd') ? peers.map((p) => `bayeuxd/${p}`) : [])], body);
  }
  const cb = ceilingRows();
  if (cb.length) {
    console.log('');
    printTable(['ceiling', 'figure', 'bayeuxd', 'mhd-ceiling', 'bayeuxd/mhd'], cb);
  }
  if (floorResult) {
    console.log('');
    console.log(`floor: ${floorResult.line}`);
    for (const sc of ['fanout-ws', 'fanout-ws-spaced']) {
      const fw = results[sc] || {};
      for (const s of WS_SERVERS) {
        const r = fw[s];
        const d = r && r.result && r.result.delivered;
        if (r && r.serverCpu && d && floorResult.us) {
          const us = (1e6 * r.serverCpu) / d;
          console.log(`  ${sc} ${s}: ${us.toFixed(2)} us of server CPU per delivery = ${(us / floorResult.us).toFixed(2)}x the floor's ${floorResult.us} us per write`);
        }
      }
    }
  }
  limitNotes();
  console.log('');
  console.log('commands (PORT differs per run):');
  for (const [sc, c] of Object.entries(commands)) console.log(`  ${sc}: ${c}`);
  if (notes.length) {
    console.log('');
    console.log('notes:');
    for (const n of notes) console.log(`  - ${n}`);
  }
  console.log(`\n(total ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify({ opts, results }, null, 2));
}

main().catch((e) => { console.error(e); process.exit(1); });

// bench/cluster.mjs: the cluster scenario of bench/compare (issue 13). The same
// fan-out load — publishers on node 1, subscribers spread over nodes 2 and 3 —
// against bayeuxd with --redis and against Faye with faye-redis, each beside the
// same load on one node of its own kind, in one run:
//
//   node bench/cluster.mjs [--subscribers 1000] [--rate 20] [--quick] [--json FILE]
//                          [--servers bayeuxd,bayeuxd-retained,faye] [--nodes 1,3] [--repeat N]
//
// Every process is ours, on 127.0.0.1: redis-server (no persistence) and the
// nodes pinned to --server-core, bench/bayeux-load to --gen-core. Reported per
// layout: deliveries/s, latency p50/p99 (publish send → delivery), CPU % of each
// node and of Redis over the measured window (/proc utime+stime), and Redis
// commands per publish from Redis's own INFO commandstats (PUBLISH and all).
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

const opts = {
  subscribers: 1000, rate: 20, quick: false, json: null, servers: ['bayeuxd', 'faye'],
  serverCore: 0, genCore: 1, repeat: 1, nodes: [1, 3],
  bayeuxd: path.join(root, 'build/src/bayeuxd'), load: path.join(root, 'build/bench/bayeux-load'),
};
{
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const f = a[i], v = a[i + 1];
    if (f === '--subscribers') { opts.subscribers = Number(v); i++; }
    else if (f === '--rate') { opts.rate = Number(v); i++; }
    else if (f === '--quick') opts.quick = true;
    else if (f === '--json') { opts.json = v; i++; }
    else if (f === '--servers') { opts.servers = v.split(','); i++; }
    else if (f === '--repeat') { opts.repeat = Number(v); i++; }
    else if (f === '--nodes') { opts.nodes = v.split(',').map(Number); i++; }
    else if (f === '--bayeuxd') { opts.bayeuxd = path.resolve(v); i++; }
    else if (f === '--load') { opts.load = path.resolve(v); i++; }
    else if (f === '--help') {
      console.log('usage: node bench/cluster.mjs [--subscribers N] [--rate R] [--quick] [--json FILE]\n' +
        '       [--servers bayeuxd,faye] [--nodes 1,3] [--repeat N] [--bayeuxd PATH] [--load PATH]');
      process.exit(0);
    } else { console.error(`cluster.mjs: unknown option ${f}`); process.exit(2); }
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

function cpuOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch { return NaN; }
}

const procs = new Set();
process.on('exit', () => { for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL'); });

async function startProc(cmd, port, what) {
  const child = spawn('taskset', ['-c', String(opts.serverCore), ...cmd], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(child);
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  for (let i = 0; i < 200 && child.exitCode === null; i++) {
    if (await portOpen(port)) return { child, pid: child.pid, port, log: () => log };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`${what} did not start on ${port}: ${log.slice(-400)}`);
}

async function stopProc(p) {
  if (p.child.exitCode !== null) return;
  const done = new Promise((r) => p.child.on('exit', r));
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
  procs.delete(p.child);
}

function redisCli(port, ...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8' });
}

function redisStats(port) {
  const calls = {};
  let total = 0;
  for (const line of redisCli(port, 'INFO', 'commandstats').split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) { calls[m[1]] = Number(m[2]); total += Number(m[2]); }
  }
  return { calls, total };
}

async function startLayout(kind, nodes, redisPort) {
  const out = [];
  for (let i = 0; i < nodes; i++) {
    const port = await freePort();
    let cmd;
    if (kind.startsWith('bayeuxd')) {
      cmd = [opts.bayeuxd, '--listen', `127.0.0.1:${port}`, '--timeout', '30000', '--log-level', process.env.BENCH_LOG_LEVEL || 'warn',
        '--max-sessions-per-ip', '0', '--max-handshakes-per-ip', '0'];
      // bayeuxd-retained: every channel retained (--retain), so each publish is the
      // append script (history in Redis Streams) instead of a bare PUBLISH.
      if (kind === 'bayeuxd-retained') cmd.push('--retain', '/**=1000');
      if (redisPort) cmd.push('--redis', `redis://127.0.0.1:${redisPort}`, '--node-id', `n${i + 1}`);
    } else {
      cmd = redisPort
        ? ['node', path.join(here, 'peers/faye-redis-server.mjs'), '--port', String(port), '--timeout', '30000', '--redis-port', String(redisPort)]
        : ['node', path.join(here, 'peers/faye-server.mjs'), '--port', String(port), '--timeout', '30000'];
    }
    out.push(await startProc(cmd, port, `${kind} node ${i + 1}`));
  }
  if (redisPort) await sleep(500); // the nodes connect to Redis
  return out;
}

function runLoad(nodes, onPhase) {
  const Q = opts.quick;
  const args = ['--url', `http://127.0.0.1:${nodes[0].port}/cometd`, '--phase-events', '--no-progress',
    '--subscribers', String(opts.subscribers), '--channels', '1', '--publishers', '2', '--inflight', '8',
    '--rate', String(opts.rate), '--setup', '5', '--warmup', Q ? '1' : '2', '--duration', Q ? '3' : '8',
    '--drain', '4', '--hard-stop', '20'];
  if (nodes.length > 1) {
    args.push('--pub-port', String(nodes[0].port), '--sub-ports', nodes.slice(1).map((n) => n.port).join(','));
  }
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', String(opts.genCore), opts.load, ...args], { cwd: root });
    let out = '', buf = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('@phase ')) onPhase(line.slice(7));
        else err += line + '\n';
      }
    });
    child.on('exit', () => {
      let result = null;
      try { result = JSON.parse(out.trim().split('\n').pop()); } catch { /* below */ }
      resolve({ result, err, cmdline: `bench/bayeux-load ${args.join(' ')}` });
    });
  });
}

async function layout(kind, nodes) {
  let redis = null;
  if (nodes > 1) {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-bench-redis-'));
    redis = await startProc(['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--dir', dir], port, 'redis-server');
    redis.dir = dir;
  }
  const ns = await startLayout(kind, nodes, redis && redis.port);
  const samples = {};
  const sample = () => ({
    cpu: ns.map((n) => cpuOf(n.pid)), redisCpu: redis ? cpuOf(redis.pid) : 0,
    redis: redis ? redisStats(redis.port) : null, t: Date.now(),
  });
  const { result, err, cmdline } = await runLoad(ns, (ph) => {
    if (ph === 'measure' || ph === 'drain') samples[ph] = sample();
  });
  // Each node's own count of what it delivered and received from Redis: when the
  // generator reports a loss, these say on which side it happened.
  const counts = [];
  if (kind.startsWith('bayeuxd')) {
    for (const n of ns) {
      try {
        const text = execFileSync('curl', ['-s', `http://127.0.0.1:${n.port}/metrics`], { encoding: 'utf8' });
        const pick = (name) => Number((new RegExp(`^${name} (\\d+)`, 'm').exec(text) || [])[1]);
        counts.push({ sessions: pick('bayeux_sessions'), delivered: pick('bayeux_messages_delivered_total'),
          received: pick('bayeux_cluster_received_total') });
      } catch { counts.push(null); }
    }
  }
  if (result && result.delivery_ratio < 1 && process.env.BENCH_GDB) {
    for (const [i, n] of ns.entries()) {
      try {
        const bt = execFileSync('gdb', ['-p', String(n.pid), '-batch', '-ex', 'thread apply all bt 8'],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30000 });
        fs.writeFileSync(`/tmp/bench-node${i + 1}.bt`, bt);
      } catch (e) { console.error(`gdb on node ${i + 1}: ${e.message}`); }
    }
  }
  for (const n of ns) await stopProc(n);
  if (result && result.delivery_ratio < 1 && counts.length) {
    console.error(`${kind} × ${nodes}: delivered ${(100 * result.delivery_ratio).toFixed(2)}%; the nodes' own counts: ${JSON.stringify(counts)}`);
    if (err.trim()) console.error(`generator said: ${err.trim().slice(-1500)}`);
    console.error(`generator result: ${JSON.stringify(result).slice(0, 1500)}`);
  }
  if (result && result.delivery_ratio < 1 && process.env.BENCH_SHOW_LOSS) {
    for (const [i, n] of ns.entries()) console.error(`--- node ${i + 1} log:\n${n.log().slice(-3000)}`);
  }
  if (redis) { await stopProc(redis); fs.rmSync(redis.dir, { recursive: true, force: true }); }
  if (!result || !samples.measure || !samples.drain) {
    return { kind, nodes, error: err.trim().slice(-400) || 'no result', cmdline };
  }
  const secs = (samples.drain.t - samples.measure.t) / 1000;
  const row = {
    kind, nodes, cmdline,
    deliveries_per_s: result.deliveries_per_s, delivery_ratio: result.delivery_ratio,
    publishes_per_s: result.publishes_per_s,
    p50: result.latency_ms.p50, p99: result.latency_ms.p99,
    cpu_pct: samples.drain.cpu.map((c, i) => (100 * (c - samples.measure.cpu[i])) / secs),
    gen_cpu_pct: result.gen_cpu_pct,
  };
  if (redis) {
    const d = (k) => (samples.drain.redis.calls[k] || 0) - (samples.measure.redis.calls[k] || 0);
    const total = samples.drain.redis.total - samples.measure.redis.total;
    // Measured publishes: what the generator published in the measured window.
    const pubs = result.published;
    row.redis_cpu_pct = (100 * (samples.drain.redisCpu - samples.measure.redisCpu)) / secs;
    row.redis_cpu_us_per_publish = pubs ? (1e6 * (samples.drain.redisCpu - samples.measure.redisCpu)) / pubs : NaN;
    row.redis_publish_per_publish = pubs ? d('publish') / pubs : NaN;
    row.redis_commands_per_publish = pubs ? total / pubs : NaN;
    const top = Object.keys(samples.drain.redis.calls).map((k) => [k, d(k)]).filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]).slice(0, 6);
    row.redis_top = top.map(([k, n]) => `${k} ${(n / pubs).toFixed(1)}`).join(', ');
  }
  return row;
}

const rows = [];
for (let r = 0; r < opts.repeat; r++) {
  for (const kind of opts.servers) {
    for (const nodes of opts.nodes) {
      const row = await layout(kind, nodes);
      rows.push(row);
      console.error(`${kind} × ${nodes}: ${row.error ? 'ERROR ' + row.error : `p99 ${row.p99} ms, ${row.deliveries_per_s} deliveries/s`}`);
    }
  }
}

const f = (v, d = 1) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '—');
console.log(`\ncluster fan-out: ${opts.subscribers} subscribers, ${opts.rate} publishes/s from 2 publishers; ` +
  `3 nodes = publishers on node 1, subscribers over nodes 2 and 3 (${os.cpus().length} cores, servers on CPU ${opts.serverCore}, generator on CPU ${opts.genCore})\n`);
console.log('| server | nodes | deliveries/s | delivered | p50 ms | p99 ms | CPU % per node | Redis CPU % | Redis CPU µs/publish | PUBLISH/publish | Redis cmds/publish | top Redis commands per publish |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  if (r.error) { console.log(`| ${r.kind} | ${r.nodes} | error: ${r.error.replace(/\n/g, ' ')} |`); continue; }
  console.log(`| ${r.kind === 'faye' && r.nodes > 1 ? 'faye + faye-redis' : r.kind} | ${r.nodes} | ${f(r.deliveries_per_s, 0)} | ${f(100 * r.delivery_ratio, 2)}% | ` +
    `${f(r.p50, 2)} | ${f(r.p99, 2)} | ${r.cpu_pct.map((c) => f(c)).join(' / ')} | ${f(r.redis_cpu_pct)} | ${f(r.redis_cpu_us_per_publish, 0)} | ` +
    `${f(r.redis_publish_per_publish, 2)} | ${f(r.redis_commands_per_publish, 1)} | ${r.redis_top || ''} |`);
}
if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(rows, null, 2));

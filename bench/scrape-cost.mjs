#!/usr/bin/env node
// bench/scrape-cost.mjs — what reading /metrics costs a loaded broker: the fan-out
// scenario of bench/compare (1,000 long-polling subscribers on one channel, 20
// publishes/s, bench/bayeux-load), run alternately without and with a scraper that
// GETs /metrics every --every ms (default 100: 150 times Prometheus's default 15 s
// interval), a fresh bayeuxd each run. Prints the median publish-to-delivery latency
// (p50, p99, as the generator measures it), the server's CPU per 1,000 deliveries and
// the scrape's own time, for each arm.
//
//   node bench/scrape-cost.mjs [--rounds N] [--every MS] [--build DIR]
//
// The server is pinned to CPU 0 and the generator to CPU 1 (taskset), as bench/compare
// does; the scraper runs in this process. Only 127.0.0.1 is used.
import {execFileSync, spawn} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const ROUNDS = Number(opt('--rounds', 3));
const EVERY = Number(opt('--every', 100));
const BUILD = path.resolve(root, opt('--build', 'build'));
const BAYEUXD = path.join(BUILD, 'src/bayeuxd');
const LOAD = path.join(BUILD, 'bench/bayeux-load');
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
const PORT = 18190;

for (const f of [BAYEUXD, LOAD]) {
  if (!fs.existsSync(f)) {
    console.error(`scrape-cost: ${f} is missing; build first (scripts/build ${path.relative(root, BUILD)})`);
    process.exit(2);
  }
}

function cpuSeconds(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

async function startServer() {
  const proc = spawn('taskset', ['-c', '0', BAYEUXD, '--listen', `127.0.0.1:${PORT}`, '--log-level', 'warn'],
    {stdio: ['ignore', 'ignore', 'inherit']});
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${PORT}/healthz`);
      if (r.status === 200) return proc;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error('bayeuxd did not start');
}

async function run(scrape) {
  const server = await startServer();
  const pid = server.pid; // taskset execs bayeuxd: the same process
  const load = spawn('taskset', ['-c', '1', LOAD, '--url', `http://127.0.0.1:${PORT}/cometd`,
    '--subscribers', '1000', '--channels', '1', '--publishers', '2', '--inflight', '8', '--rate', '20',
    '--setup', '3', '--warmup', '2', '--duration', '8', '--drain', '4', '--hard-stop', '15',
    '--no-progress', '--phase-events'], {stdio: ['ignore', 'pipe', 'pipe']});
  let out = '';
  let cpu0 = null;
  let cpu1 = null;
  let measuring = false;
  const scrapes = [];
  load.stdout.on('data', (d) => { out += d; });
  load.stderr.on('data', (d) => {
    for (const line of String(d).split('\n')) {
      if (line === '@phase measure') { cpu0 = cpuSeconds(pid); measuring = true; }
      if (line === '@phase drain') { cpu1 = cpuSeconds(pid); measuring = false; }
    }
  });
  let timer = null;
  if (scrape) {
    timer = setInterval(async () => {
      if (!measuring) return;
      const t = performance.now();
      const r = await fetch(`http://127.0.0.1:${PORT}/metrics`);
      await r.text();
      scrapes.push(performance.now() - t);
    }, EVERY);
  }
  await new Promise((r) => load.on('exit', r));
  clearInterval(timer);
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  const res = JSON.parse(out.trim().split('\n').pop());
  return {
    p50: res.latency_ms.p50, p99: res.latency_ms.p99, delivered: res.delivered,
    ratio: res.delivery_ratio,
    cpuPerK: cpu0 !== null && cpu1 !== null ? (1000 * 1000 * (cpu1 - cpu0)) / res.delivered : NaN,
    scrapes: scrapes.length, scrapeMs: median(scrapes),
  };
}

const arms = {off: [], on: []};
for (let i = 0; i < ROUNDS; i++) {
  for (const arm of ['off', 'on']) {
    process.stderr.write(`round ${i + 1}/${ROUNDS}, scraping ${arm}… `);
    const r = await run(arm === 'on');
    arms[arm].push(r);
    process.stderr.write(`p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.cpuPerK.toFixed(1)} ms CPU per 1k deliveries` +
      `${arm === 'on' ? `, ${r.scrapes} scrapes of ${r.scrapeMs.toFixed(2)} ms` : ''}\n`);
  }
}
console.log(`fan-out: 1,000 subscribers, 20 publishes/s, 8 s measured; ${ROUNDS} rounds each; ` +
  `scraper every ${EVERY} ms; medians`);
console.log('| scraping | p50 ms | p99 ms | server CPU ms per 1,000 deliveries | scrapes | one scrape ms |');
console.log('|---|---|---|---|---|---|');
for (const arm of ['off', 'on']) {
  const a = arms[arm];
  console.log(`| ${arm} | ${median(a.map((x) => x.p50)).toFixed(2)} | ${median(a.map((x) => x.p99)).toFixed(2)} | ` +
    `${median(a.map((x) => x.cpuPerK)).toFixed(1)} | ${arm === 'on' ? median(a.map((x) => x.scrapes)) : 0} | ` +
    `${arm === 'on' ? median(a.map((x) => x.scrapeMs)).toFixed(2) : '–'} |`);
}

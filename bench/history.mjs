#!/usr/bin/env node
// bench/history.mjs — what history costs (docs/BENCHMARKS.md, "History"):
//  1. acknowledged publishes/s and ack latency (p50/p99) with 100 concurrent
//     publishers (bench/ack-load: each waits for its ack, POST /publish/<channel>),
//     on one channel: not retained; retained in memory; retained with --store
//     (synced, and --store-sync 0). The server is pinned to CPU 0, the generator to
//     CPU 1. Each configuration runs --runs times (default 3); medians are printed.
//  2. replaying 10,000 retained messages to a new long-polling subscriber
//     (ext.replay -2): how many /meta/connect replies it takes, and how long.
//
//   node bench/history.mjs [--runs 3] [--duration 10] [--publishers 100]
//
// Needs build/src/bayeuxd (scripts/build) and compiles bench/ack-load with gcc.
// Loopback only; every process is ours and stopped by its PID.
import {execFileSync, spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import {fileURLToPath} from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('runs', 3);
const DURATION = opt('duration', 10);
const PUBLISHERS = opt('publishers', 100);
const BAYEUXD = process.env.BAYEUXD || path.join(REPO, 'build', 'src', 'bayeuxd');
const LOAD = path.join(REPO, 'build', 'bench-ack-load');

execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-D_GNU_SOURCE', '-pthread', '-o', LOAD,
  path.join(REPO, 'bench', 'ack-load.c')]);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-bench-history-'));

function start(flags) {
  return new Promise((resolve, reject) => {
    const proc = spawn('taskset', ['-c', '0', BAYEUXD, '--listen', '127.0.0.1:0',
      '--allow-local-publish', '--log-level', 'info', ...flags], {stdio: ['ignore', 'ignore', 'pipe']});
    let err = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      err += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) resolve({proc, port: Number(m[1])});
    });
    proc.on('exit', (code) => reject(new Error(`bayeuxd exited ${code}: ${err}`)));
  });
}

async function stop(d) {
  d.proc.removeAllListeners('exit');
  const done = new Promise((r) => d.proc.on('exit', r));
  d.proc.kill('SIGTERM');
  await done;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const configs = [
  {name: 'not retained', flags: () => []},
  {name: 'retained, in memory', flags: () => ['--retain', '/bench/**=100000']},
  {name: 'retained, --store (synced)', flags: (k) => ['--retain', '/bench/**=100000', '--store', path.join(tmp, `s${k}`)]},
  {name: 'retained, --store --store-sync 0', flags: (k) => ['--retain', '/bench/**=100000', '--store', path.join(tmp, `n${k}`), '--store-sync', '0']},
];

const results = [];
let k = 0;
for (const c of configs) {
  const runs = [];
  for (let r = 0; r < RUNS; r++) {
    const d = await start(c.flags(k++));
    const out = execFileSync('taskset', ['-c', '1', LOAD, '--port', String(d.port), '--channel',
      '/bench/a', '--publishers', String(PUBLISHERS), '--duration', String(DURATION), '--warmup', '2']);
    await stop(d);
    runs.push(JSON.parse(out.toString()));
  }
  results.push({name: c.name, runs,
    rate: median(runs.map((x) => x.acks_per_s)), p50: median(runs.map((x) => x.p50_ms)),
    p99: median(runs.map((x) => x.p99_ms)), errors: runs.reduce((s, x) => s + x.errors, 0)});
}

// ---- replay of 10,000 -------------------------------------------------------------
function post(port, p, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request({host: '127.0.0.1', port, path: p, method: 'POST', agent: false,
      headers: {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data)}}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function replay(flags) {
  const d = await start(flags);
  for (let i = 0; i < 10000; i += 500) {
    await post(d.port, '/cometd', Array.from({length: 500}, (_, j) => ({channel: '/bench/r', data: {i: i + j}})));
  }
  const t0 = performance.now();
  const [hs] = await post(d.port, '/cometd', [{channel: '/meta/handshake', version: '1.0',
    supportedConnectionTypes: ['long-polling']}]);
  const id = hs.clientId;
  await post(d.port, '/cometd', [{channel: '/meta/subscribe', clientId: id, subscription: '/bench/r',
    ext: {replay: {'/bench/r': -2}}}]);
  let got = 0;
  let replies = 0;
  let bytes = 0;
  while (got < 10000 && replies < 100) {
    const r = await post(d.port, '/cometd', [{channel: '/meta/connect', clientId: id,
      connectionType: 'long-polling', advice: {timeout: 1000}}]);
    replies++;
    bytes += JSON.stringify(r).length;
    got += r.filter((m) => m.channel === '/bench/r').length;
  }
  const ms = performance.now() - t0;
  await stop(d);
  return {got, replies, ms, bytes};
}

const rMem = await replay(['--retain', '/bench/**=20000']);
const rStore = await replay(['--retain', '/bench/**=20000', '--store', path.join(tmp, 'replay')]);
fs.rmSync(tmp, {recursive: true, force: true});

const base = results[0].rate;
console.log(`\nAcknowledged publishes, ${PUBLISHERS} publishers on one channel, ${DURATION} s x ${RUNS} runs (medians)\n`);
console.log('| configuration | acks/s | vs not retained | p50 ack ms | p99 ack ms | errors |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of results) {
  console.log(`| ${r.name} | ${r.rate.toFixed(0)} | ${(r.rate / base).toFixed(2)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`);
}
console.log('\nRuns (acks/s): ' + results.map((r) => `${r.name}: ${r.runs.map((x) => x.acks_per_s).join(', ')}`).join('; '));
console.log('\nReplay of 10,000 retained messages to a new long-polling subscriber (handshake to last message)\n');
console.log('| history | messages | connect replies | ms | reply bytes |');
console.log('|---|---:|---:|---:|---:|');
for (const [n, r] of [['in memory', rMem], ['--store', rStore]]) {
  console.log(`| ${n} | ${r.got} | ${r.replies} | ${r.ms.toFixed(0)} | ${r.bytes} |`);
}

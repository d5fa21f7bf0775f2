// A real redis-server for the cluster tests: started by us on a free loopback port in
// a temporary folder (no persistence), stopped (or kill -9'd) by its own PID only.
// redis-cli answers the tests' questions (PUBSUB NUMSUB, INFO commandstats).
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {SLOW} from './daemon.mjs';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

/** redis-cli against port; returns its output trimmed. */
export function cli(port, ...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args],
    {encoding: 'utf8', timeout: 5000 * SLOW}).trim();
}

async function ping(port, ms) {
  const end = Date.now() + ms * SLOW;
  for (;;) {
    try {
      if (cli(port, 'PING') === 'PONG') return;
    } catch { /* not up yet */ }
    if (Date.now() > end) throw new Error(`redis-server on ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Start redis-server; resolves {port, url, pid, stop(), kill9(), restart(), cli(...)}.
 * restart() starts a new server on the same port (after a kill9()).
 */
export async function startRedis({port} = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-redis-'));
  port = port || await freePort();
  let proc;
  let log = '';
  const launch = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
    {stdio: ['ignore', 'pipe', 'pipe']});
    live.add(proc);
    proc.on('exit', () => live.delete(proc));
    proc.stdout.on('data', (d) => { log += d; });
    proc.stderr.on('data', (d) => { log += d; });
    await ping(port, 10000);
  };
  await launch();
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() { return proc.pid; },
    log: () => log,
    cli: (...args) => cli(port, ...args),
    async kill9() {
      const exited = new Promise((res) => proc.once('exit', res));
      proc.kill('SIGKILL');
      await exited;
    },
    restart: launch,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((res) => proc.once('exit', res));
        proc.kill('SIGTERM');
        await exited;
      }
      fs.rmSync(dir, {recursive: true, force: true});
    },
  };
  return r;
}

/** Subscribers of each Redis channel: {channel: n} from PUBSUB NUMSUB. */
export function numsub(redis, ...channels) {
  const lines = redis.cli('PUBSUB', 'NUMSUB', ...channels).split('\n');
  const out = {};
  for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = Number(lines[i + 1]);
  return out;
}

/** Calls per command from INFO commandstats: {publish: n, ...}. */
export function commandCalls(redis) {
  const out = {};
  for (const line of redis.cli('INFO', 'commandstats').split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

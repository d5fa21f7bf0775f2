// Start and stop the real bayeuxd for integration tests.
//
// Environment:
//   BAYEUXD          path of the daemon binary (default <repo>/src/bayeuxd)
//   BAYEUXD_WRAPPER  command prefix, split on spaces (e.g. "valgrind --error-exitcode=99")
//   BAYEUXD_SLOW     multiplier for the start/stop time limits (e.g. 10 under valgrind)
//   BAYEUXD_SHOW_LOG=1  copy the daemon's stderr to ours as it arrives
//   BAYEUX_PEER      cometd|faye: start a peer server from peers/ instead of bayeuxd
//                    (only to check the harness; the suite targets bayeuxd)
//
// Every process here is started by us and signalled by its own PID only.
import {spawn} from 'node:child_process';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
export const SLOW = Number(process.env.BAYEUXD_SLOW || 1) || 1;
export const PEER = process.env.BAYEUX_PEER || '';

// Daemons started by this process and still running: if the test process exits without
// stopping one (a crash, an uncaught error), kill it so no daemon outlives its test.
const live = new Set();
process.on('exit', () => {
  for (const proc of live) {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  }
});

function track(proc) {
  live.add(proc);
  proc.on('exit', () => live.delete(proc));
  return proc;
}

const READY_RE = /listening on (http:\/\/([^\s/]+):(\d+)(\/[^\s]*)?)/;

/** argv (program first) used to run the daemon with the given flags. */
export function daemonArgv(flags = []) {
  if (PEER) {
    return [process.execPath, path.join(REPO, 'tests', 'integration', 'peers', `${PEER}.mjs`), ...flags];
  }
  const bin = process.env.BAYEUXD || path.join(REPO, 'src', 'bayeuxd');
  const wrapper = (process.env.BAYEUXD_WRAPPER || '').split(' ').filter(Boolean);
  return [...wrapper, bin, ...flags];
}

function tail(text, lines = 40) {
  return text.split('\n').slice(-lines).join('\n');
}

/**
 * Start the daemon on 127.0.0.1:0 with extra flags and wait for its ready line.
 * Resolves {url, port, proc, stderr(), stop(), exited}.
 *   url      e.g. http://127.0.0.1:40123/cometd (as printed by the daemon)
 *   stop()   SIGTERM; resolves with the exit code (or the signal name if it died of
 *            one); SIGKILL and rejects if it has not exited after 5 s.
 *   exited   promise of {code, signal} when the process ends.
 */
export function startDaemon(flags = [], {readyTimeoutMs = 10000, listen = true} = {}) {
  const args = listen ? ['--listen', '127.0.0.1:0', ...flags] : [...flags];
  const argv = daemonArgv(args);
  const proc = track(spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']}));
  let stderr = '';
  let stdout = '';
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => resolve({code, signal}));
  });
  const show = process.env.BAYEUXD_SHOW_LOG === '1';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.setEncoding('utf8');

  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      if (ready) return;
      proc.kill('SIGKILL');
      reject(new Error(`daemon did not print its ready line within ${readyTimeoutMs * SLOW} ms\n` +
        `command: ${argv.join(' ')}\nstderr:\n${tail(stderr)}`));
    }, readyTimeoutMs * SLOW);
    proc.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${argv.join(' ')}: ${err.message}`));
    });
    proc.stderr.on('data', (d) => {
      stderr += d;
      if (show) process.stderr.write(d);
      if (ready) return;
      const m = READY_RE.exec(stderr);
      if (!m) return;
      ready = true;
      clearTimeout(timer);
      const port = Number(m[3]);
      const url = m[1];
      let stopping = null;
      const d0 = {
        url,
        port,
        origin: `http://${m[2]}:${port}`,
        proc,
        pid: proc.pid,
        exited,
        stderr: () => stderr,
        stdout: () => stdout,
        stop: ({timeoutMs = 5000} = {}) => {
          if (stopping) return stopping;
          stopping = (async () => {
            if (proc.exitCode !== null || proc.signalCode !== null) {
              return proc.exitCode ?? proc.signalCode;
            }
            proc.kill('SIGTERM');
            let killTimer;
            const timedOut = new Promise((res) => {
              killTimer = setTimeout(() => res('timeout'), timeoutMs * SLOW);
            });
            const r = await Promise.race([exited, timedOut]);
            clearTimeout(killTimer);
            if (r === 'timeout') {
              proc.kill('SIGKILL');
              await exited;
              throw new Error(`daemon (pid ${proc.pid}) did not exit within ${timeoutMs * SLOW} ms of SIGTERM; ` +
                `killed with SIGKILL\nstderr:\n${tail(stderr)}`);
            }
            return r.code ?? r.signal;
          })();
          return stopping;
        },
      };
      resolve(d0);
    });
    exited.then(({code, signal}) => {
      if (ready) return;
      clearTimeout(timer);
      reject(new Error(`daemon exited (code ${code}, signal ${signal}) before it was ready\n` +
        `command: ${argv.join(' ')}\nstderr:\n${tail(stderr)}`));
    });
  });
}

/**
 * Stop the daemon and assert a clean exit (0). Use in after() hooks: a crash, a leak
 * reported by a wrapper (valgrind --error-exitcode) or a hang fails the file.
 */
export async function stopDaemonClean(daemon) {
  if (!daemon) return;
  const code = await daemon.stop();
  if (code !== 0) {
    throw new Error(`daemon exited with ${code} (expected 0)\nstderr:\n${tail(daemon.stderr(), 60)}`);
  }
}

/**
 * Run the daemon to completion with the given argv flags (no --listen added) and
 * collect its output. For flag-validation tests. Kills it (by PID) after timeoutMs.
 */
export function runDaemonOnce(flags, {timeoutMs = 5000} = {}) {
  const argv = daemonArgv(flags);
  const proc = track(spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'pipe', 'pipe']}));
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => { stdout += d; });
  proc.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs * SLOW);
    proc.on('error', (err) => { clearTimeout(timer); reject(err); });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({code, signal, stdout, stderr, timedOut});
    });
  });
}

/** Runs fn(d) with a daemon started with flags, and stops it cleanly (exit 0) after. */
export async function withDaemon(flags, fn) {
  const d = await startDaemon(flags);
  try {
    return await fn(d);
  } finally {
    await stopDaemonClean(d);
  }
}

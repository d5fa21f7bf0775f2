// Every program in examples/ run against the real thing, on loopback, bounded in time:
//   examples/publish.sh (curl) and examples/publish.py (urllib) publish with the token to
//   a bayeuxd, examples/subscribe.mjs (the CometD client) receives; without the token
//   both are refused and nothing is delivered;
//   examples/embed (a C program embedding libbayeux) answers /service/echo to the
//   caller only and publishes a clock on /time/tick.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, REPO, SLOW, PEER} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';

const EX = path.join(REPO, 'examples');
const TOKEN = 'ex_' + 'Hq8Zr2Vt6Wn0Kc4Pm7Ls1Dj5';
const skip = PEER ? 'the examples target bayeuxd' : false;

/** Runs a program to completion (killed by PID after ms); resolves {code, stdout, stderr}. */
function run(argv, {env = {}, ms = 10000} = {}) {
  const proc = spawn(argv[0], argv.slice(1), {env: {...process.env, ...env}, stdio: ['ignore', 'pipe', 'pipe']});
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms * SLOW);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('close', (code, signal) => { clearTimeout(timer); resolve({code, signal, stdout, stderr}); });
  });
}

/**
 * Starts examples/subscribe.mjs; resolves once it printed "subscribed" with
 * {lines, done}: lines collects its output, done resolves {code, ...} at exit.
 */
function startSubscriber(url, channel, count) {
  const proc = spawn(process.execPath, [path.join(EX, 'subscribe.mjs'), '--url', url, '--count', String(count), channel],
    {stdio: ['ignore', 'pipe', 'pipe']});
  const lines = [];
  let stderr = '';
  let buf = '';
  const done = new Promise((resolve) => proc.on('close', (code, signal) => resolve({code, signal, stderr})));
  const kill = setTimeout(() => proc.kill('SIGKILL'), 20000 * SLOW);
  done.then(() => clearTimeout(kill));
  proc.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
  proc.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  const ready = waitFor(() => lines.includes('subscribed'), 10000, `subscribe.mjs ready (stderr: ${stderr})`);
  return ready.then(() => ({proc, lines, done, messages: () => lines.filter((l) => l !== 'subscribed').map((l) => JSON.parse(l))}));
}

describe('publishing examples against bayeuxd with a publish token', {skip}, () => {
  let daemon;
  let tmp;
  let tokenFile;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-examples-'));
    tokenFile = path.join(tmp, 'token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`, {mode: 0o600});
    daemon = await startDaemon(['--publish-token-file', tokenFile]);
  });
  after(async () => {
    await stopDaemonClean(daemon);
    fs.rmSync(tmp, {recursive: true, force: true});
  });

  test('publish.sh (curl) with the token reaches subscribe.mjs (CometD client)', {timeout: 30000}, async () => {
    const ch = uniqueChannel('/demo/sh');
    const sub = await startSubscriber(daemon.url, ch, 1);
    const r = await run([path.join(EX, 'publish.sh'), ch, '{"text":"from curl","n":1}'],
      {env: {BAYEUX_URL: daemon.origin, BAYEUX_TOKEN_FILE: tokenFile}});
    assert.equal(r.code, 0, `publish.sh: ${r.stdout} ${r.stderr}`);
    assert.deepEqual(JSON.parse(r.stdout), {channel: ch, successful: true});
    const end = await sub.done;
    assert.equal(end.code, 0, end.stderr);
    assert.deepEqual(sub.messages(), [{channel: ch, data: {text: 'from curl', n: 1}}]);
  });

  test('publish.py (urllib) with the token reaches subscribe.mjs', {timeout: 30000}, async () => {
    const ch = uniqueChannel('/demo/py');
    const sub = await startSubscriber(daemon.url, ch, 2);
    const r = await run(['python3', path.join(EX, 'publish.py'), ch, '{"text":"from python"}', '[1,2,3]'],
      {env: {BAYEUX_URL: daemon.url, BAYEUX_TOKEN_FILE: tokenFile}});
    assert.equal(r.code, 0, `publish.py: ${r.stdout} ${r.stderr}`);
    const replies = JSON.parse(r.stdout);
    assert.deepEqual(replies.map((x) => [x.successful, x.id]), [[true, '1'], [true, '2']]);
    const end = await sub.done;
    assert.equal(end.code, 0, end.stderr);
    assert.deepEqual(sub.messages().map((m) => m.data), [{text: 'from python'}, [1, 2, 3]]);
  });

  test('without the token both scripts are refused and nothing is delivered', {timeout: 30000}, async () => {
    const ch = uniqueChannel('/demo/refused');
    const client = new CometDClient(daemon.url);
    try {
      await client.handshake();
      const got = [];
      await client.subscribe(ch, (m) => got.push(m));
      const sh = await run([path.join(EX, 'publish.sh'), ch, '"sh"'], {env: {BAYEUX_URL: daemon.origin, BAYEUX_TOKEN_FILE: ''}});
      assert.notEqual(sh.code, 0, 'publish.sh must fail');
      assert.match(sh.stdout, /403::publish_denied/);
      const wrong = path.join(tmp, 'wrong');
      fs.writeFileSync(wrong, 'not-the-right-token-at-all\n', {mode: 0o600});
      const sh2 = await run([path.join(EX, 'publish.sh'), ch, '"sh2"'], {env: {BAYEUX_URL: daemon.origin, BAYEUX_TOKEN_FILE: wrong}});
      assert.notEqual(sh2.code, 0);
      const py = await run(['python3', path.join(EX, 'publish.py'), ch, '"py"'], {env: {BAYEUX_URL: daemon.url, BAYEUX_TOKEN_FILE: ''}});
      assert.equal(py.code, 1, py.stderr);
      assert.match(py.stdout, /403::publish_denied/);
      const py2 = await run(['python3', path.join(EX, 'publish.py'), ch, '"py2"'], {env: {BAYEUX_URL: daemon.url, BAYEUX_TOKEN_FILE: wrong}});
      assert.equal(py2.code, 1);
      // Control: with the token the same channel does get a message.
      const ok = await run([path.join(EX, 'publish.sh'), ch, '"control"'], {env: {BAYEUX_URL: daemon.origin, BAYEUX_TOKEN_FILE: tokenFile}});
      assert.equal(ok.code, 0, ok.stderr);
      await waitFor(() => got.length >= 1, 5000, 'control delivery');
      await sleep(200);
      assert.deepEqual(got.map((m) => m.data), ['control']);
    } finally {
      await client.disconnect(5000).catch(() => {});
    }
  });
});

describe('examples/embed: a C program embedding libbayeux', {skip}, () => {
  let embed;
  before(async () => {
    // Reuse the daemon harness (ready line, stop by PID, clean exit) for the example.
    // In a build folder of its own, embed sits beside the daemon's folder.
    const besideDaemon = process.env.BAYEUXD &&
      path.resolve(path.dirname(process.env.BAYEUXD), '..', 'examples', 'embed');
    const bin = process.env.BAYEUX_EMBED ||
      (besideDaemon && fs.existsSync(besideDaemon) ? besideDaemon : path.join(EX, 'embed'));
    const saved = process.env.BAYEUXD;
    process.env.BAYEUXD = bin;
    try {
      embed = startDaemon(['--port', '0', '--tick-ms', '100'], {listen: false});
    } finally {
      if (saved === undefined) delete process.env.BAYEUXD;
      else process.env.BAYEUXD = saved;
    }
    embed = await embed;
  });
  after(async () => {
    await stopDaemonClean(embed);
  });

  test('/service/echo answers the caller only, on the same channel with the same id and data',
    {timeout: 20000}, async () => {
      const a = new CometDClient(embed.url);
      const b = new CometDClient(embed.url);
      try {
        await a.handshake();
        await b.handshake();
        await a.waitConnected();
        await b.waitConnected();
        // b listens on the service channel too: it must still get nothing of a's.
        await b.subscribe('/service/echo', () => {});
        const sent = [];
        a.cometd.registerExtension('sent-ids', {
          outgoing: (m) => { if (m.channel === '/service/echo') sent.push(m.id); return m; },
        });
        await a.publish('/service/echo', {q: 'ping', n: 7});
        await waitFor(() => a.received.some((m) => m.channel === '/service/echo'), 5000, 'echo reply');
        const reply = a.received.find((m) => m.channel === '/service/echo');
        assert.deepEqual(reply.data, {q: 'ping', n: 7});
        assert.equal(reply.id, sent[0], 'the reply carries the request id');
        await b.publish('/service/echo', 'b-only');
        await waitFor(() => b.received.some((m) => m.channel === '/service/echo'), 5000, 'b echo');
        await sleep(300);
        assert.deepEqual(a.received.filter((m) => m.channel === '/service/echo').map((m) => m.data), [{q: 'ping', n: 7}]);
        assert.deepEqual(b.received.filter((m) => m.channel === '/service/echo').map((m) => m.data), ['b-only']);
      } finally {
        await Promise.allSettled([a.disconnect(5000), b.disconnect(5000)]);
      }
    });

  test('/time/tick delivers the clock to a CometD subscriber (subscribe.mjs)', {timeout: 20000}, async () => {
    const sub = await startSubscriber(embed.url, '/time/tick', 3);
    const end = await sub.done;
    assert.equal(end.code, 0, end.stderr);
    const ticks = sub.messages();
    assert.equal(ticks.length, 3);
    for (const t of ticks) {
      assert.equal(t.channel, '/time/tick');
      assert.equal(typeof t.data.epochMs, 'number');
      assert.match(t.data.iso, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    assert.ok(ticks[0].data.epochMs < ticks[1].data.epochMs && ticks[1].data.epochMs < ticks[2].data.epochMs);
  });

  test('the session listener sees clients join and leave', {timeout: 15000}, async () => {
    const c = new CometDClient(embed.url);
    await c.handshake();
    const id = c.clientId;
    await waitFor(() => /a client joined/.test(embed.stderr()), 5000, 'joined line');
    await c.disconnect(5000);
    await waitFor(() => /a client left/.test(embed.stderr()), 5000, 'left line');
    assert.doesNotMatch(embed.stderr(), new RegExp(id), 'client ids are never logged');
  });
});

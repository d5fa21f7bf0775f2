// bayeuxd as a system daemon (issue 14): --config FILE, SIGHUP reloads of the ACL, the
// auth secret, the publish token and the log level with every session and held connect
// kept, bad files refused with FILE:LINE, readiness on NOTIFY_SOCKET (a real unix
// datagram socket), the man page against --help, and the systemd unit verified by
// systemd-analyze. Real daemon, loopback only.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {spawn, execFileSync} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {REPO, SLOW, daemonArgv, startDaemon, stopDaemonClean, runDaemonOnce} from './lib/daemon.mjs';
import {RawSession, request, newId, sleep} from './lib/wire.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-daemon-'));
after(() => fs.rmSync(dir, {recursive: true, force: true}));

let fileNo = 0;
function file(text, mode = 0o600) {
  const p = path.join(dir, `f${++fileNo}`);
  fs.writeFileSync(p, text, {mode});
  return p;
}

/** Resolves when the daemon's stderr matches re (checked every 20 ms). */
async function logMatch(d, re, ms = 5000) {
  const end = Date.now() + ms * SLOW;
  for (;;) {
    const m = re.exec(d.stderr());
    if (m) return m;
    if (Date.now() > end) throw new Error(`no log line matching ${re} within ${ms} ms:\n${d.stderr().slice(-3000)}`);
    await sleep(20);
  }
}

/** Sends SIGHUP and waits for the reload's summary line (the n-th since start). */
async function reload(d) {
  const before = (d.stderr().match(/reload: (done|refused)/g) || []).length;
  d.proc.kill('SIGHUP');
  const end = Date.now() + 5000 * SLOW;
  while ((d.stderr().match(/reload: (done|refused)/g) || []).length === before) {
    if (Date.now() > end) throw new Error(`no reload summary after SIGHUP:\n${d.stderr().slice(-3000)}`);
    await sleep(20);
  }
  return d.stderr().slice(d.stderr().lastIndexOf('reload: ', d.stderr().length));
}

async function subscribeError(s, subscription) {
  const [r] = await s.exchange([{channel: '/meta/subscribe', clientId: s.clientId, subscription, id: newId()}]);
  return r.successful ? '' : r.error;
}

async function backendPublish(d, token, channel, data) {
  return request(`${d.origin}/publish${channel}`, {body: data,
    headers: token ? {Authorization: `Bearer ${token}`} : {}});
}

describe('--config FILE at start', () => {
  test('settings apply, repeatable names repeat, and the command line wins', async () => {
    const conf = file([
      '# a sample',
      'path = /fromfile       # the command line overrides it below',
      'timeout = 1500',
      'allow-origin = https://a.example',
      'allow-origin = https://b.example',
      'cookie-secure = yes',
      '',
    ].join('\n'));
    const d = await startDaemon(['--config', conf, '--path', '/cli']);
    try {
      assert.match(d.url, /\/cli$/, 'the command line --path wins over the file');
      for (const origin of ['https://a.example', 'https://b.example']) {
        const r = await request(d.url, {method: 'OPTIONS', headers: {Origin: origin,
          'Access-Control-Request-Method': 'POST'}});
        assert.equal(r.headers['access-control-allow-origin'], origin, `allow-origin ${origin} from the file`);
      }
      const s = new RawSession(d.url);
      await s.handshake();
      await s.connect(); // the first connect is answered at once
      const c = await s.connect();
      assert.ok(c.elapsedMs >= 1200 && c.elapsedMs < 4000 * SLOW, `timeout = 1500 from the file held ${c.elapsedMs} ms`);
      const fresh = await request(d.url, {body: [{channel: '/meta/handshake', version: '1.0',
        supportedConnectionTypes: ['long-polling'], id: newId()}]});
      assert.match((fresh.headers['set-cookie'] || []).join(), /BAYEUX_BROWSER=.*;\s*Secure/i,
        'cookie-secure = yes from the file');
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('a command-line repeatable flag replaces the file\'s lines of that name', async () => {
    const conf = file('allow-origin = https://a.example\n');
    const d = await startDaemon(['--config', conf, '--allow-origin', 'https://c.example']);
    try {
      const a = await request(d.url, {method: 'OPTIONS', headers: {Origin: 'https://a.example',
        'Access-Control-Request-Method': 'POST'}});
      assert.equal(a.headers['access-control-allow-origin'], undefined);
      const c = await request(d.url, {method: 'OPTIONS', headers: {Origin: 'https://c.example',
        'Access-Control-Request-Method': 'POST'}});
      assert.equal(c.headers['access-control-allow-origin'], 'https://c.example');
    } finally {
      await stopDaemonClean(d);
    }
  });

  const bad = [
    ['an unknown name', 'listen = 127.0.0.1:0\n\ntimeuot = 5\n', /:3: unknown setting 'timeuot'/],
    ['a line without =', 'timeout 5\n', /:1: a setting is 'name = value': '=' is missing/],
    ['a value out of range', '# x\ntimeout = 99999999\n', /:2: --timeout must be between 0 and 600000 \(ms\), got '99999999'/],
    ['a value that is not a number', 'max-body = lots\n', /:1: --max-body must be between/],
    ['a bad yes/no', 'cookie-secure = sure\n', /:1: 'cookie-secure' takes yes or no, got 'sure'/],
    ['a bad log level', 'log-level = loud\n', /:1: --log-level must be error, warn, info or debug, got 'loud'/],
    ['a bad listen', 'listen = nowhere\n', /:1: --listen must be HOST:PORT, got 'nowhere'/],
    ['an empty value', 'acl =\n', /:1: the value is empty/],
    ['config inside a config', 'config = /etc/other\n', /:1: 'config' cannot be set in a config file/],
    ['a missing ACL file', 'acl = /nonexistent/acl\n', /cannot read --acl '\/nonexistent\/acl'/],
  ];
  for (const [what, text, re] of bad) {
    test(`${what} stops the daemon with FILE:LINE and exit 2`, async () => {
      const conf = file(text);
      // (--listen on the command line would win over the file's.)
      const r = await runDaemonOnce(['--config', conf, ...(/listen/.test(what) ? [] : ['--listen', '127.0.0.1:0'])]);
      assert.equal(r.code, 2, `exit status (stderr: ${r.stderr})`);
      assert.match(r.stderr, re);
      if (!/ACL/.test(what)) assert.ok(r.stderr.includes(conf), `names the file: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /listening on/);
    });
  }

  test('an unreadable config file stops the daemon with exit 2', async () => {
    const r = await runDaemonOnce(['--config', path.join(dir, 'missing.conf')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read .*missing\.conf: No such file or directory/);
    const twice = await runDaemonOnce(['--config', file(''), '--config', file('')]);
    assert.equal(twice.code, 2);
    assert.match(twice.stderr, /--config may be given once/);
  });
});

describe('SIGHUP reloads', () => {
  const aclA = [
    'allow anyone subscribe /a/**',
    'allow anyone publish /a/**',
    '',
  ].join('\n');
  const aclB = [
    'allow anyone subscribe /b/**',
    'allow anyone publish /b/** /a/**',
    '',
  ].join('\n');
  let d, acl, conf, tokenFile, held, s;
  const tokenA = 'token-A-0123456789abcdef';
  const tokenB = 'token-B-fedcba9876543210';

  before(async () => {
    acl = file(aclA, 0o644);
    tokenFile = file(`${tokenA}\n`);
    conf = file(`acl = ${acl}\npublish-token-file = ${tokenFile}\nlog-level = info\ntimeout = 20000\n`);
    d = await startDaemon(['--config', conf]);
    s = new RawSession(d.url);
    await s.handshake();
    await s.subscribe('/a/x');
    await s.connect(); // the first connect returns at once
    held = s.connect({}, {timeoutMs: 30000}); // held: nothing to deliver
    await sleep(200);
  });

  after(async () => {
    await stopDaemonClean(d);
  });

  test('new ACL rules, publish token and log level apply; the session and its held connect stay', async () => {
    const deniedBefore = await subscribeError(s, '/b/x');
    assert.notEqual(deniedBefore, '', 'the first ACL denies /b/**');
    assert.equal((await backendPublish(d, tokenA, '/a/other', {n: 0})).status, 200);

    fs.writeFileSync(acl, aclB);
    fs.writeFileSync(tokenFile, `${tokenB}\n`);
    fs.writeFileSync(conf, `acl = ${acl}\npublish-token-file = ${tokenFile}\nlog-level = debug\ntimeout = 20000\n`);
    const log = await reload(d);
    assert.match(log, /reload: done/);
    assert.match(d.stderr(), /reload: acl: .* changed/);
    assert.match(d.stderr(), /reload: publish token: changed/);
    assert.match(d.stderr(), /reload: log level: info -> debug/);
    assert.doesNotMatch(d.stderr(), new RegExp(tokenB), 'the token is never logged');

    assert.equal(await subscribeError(s, '/b/x'), '', 'the new ACL allows /b/**');
    assert.notEqual(await subscribeError(s, '/a/y'), '', 'and no longer /a/**');
    assert.equal((await backendPublish(d, tokenA, '/a/x', {n: 1})).status, 403, 'the old token is refused');
    const ok = await backendPublish(d, tokenB, '/a/x', {n: 2});
    assert.equal(ok.status, 200, ok.text);
    const res = await held;
    assert.equal(res.status, 200);
    const got = res.json.filter((m) => m.channel === '/a/x').map((m) => m.data.n);
    assert.deepEqual(got, [2], 'the connect held across the reload delivered the publish');
  });

  test('a config file that fails to parse keeps every setting and says where', async () => {
    fs.writeFileSync(conf, `acl = ${acl}\npublish-token-file = ${tokenFile}\nlog-level = info\nbogus line\n`);
    const log = await reload(d);
    assert.match(log, /reload: refused/);
    assert.match(d.stderr(), new RegExp(`${conf}:4: a setting is 'name = value'`));
    assert.equal(await subscribeError(s, '/b/y'), '', 'the rules stay');
    assert.equal((await backendPublish(d, tokenB, '/b/x', {n: 3})).status, 200, 'the token stays');
  });

  test('bad values, unknown names, a broken ACL and unreadable files are refused one by one', async () => {
    const good = `acl = ${acl}\npublish-token-file = ${tokenFile}\nlog-level = debug\n`;
    const cases = [
      [good + 'timeout = -5\n', () => {}, new RegExp(`${conf}:4: --timeout must be between`)],
      [good + 'nosuch = 1\n', () => {}, new RegExp(`${conf}:4: unknown setting 'nosuch'`)],
      [good.replace('log-level = debug', 'log-level = chatty'), () => {}, new RegExp(`${conf}:3: --log-level must be`)],
      [good, () => fs.writeFileSync(acl, 'allow anyone subscribe /b/**\npermit anyone subscribe /b/**\n'), /--acl .*:2: a rule starts with allow or deny/],
      [good, () => { fs.writeFileSync(acl, aclB); fs.writeFileSync(tokenFile, 'short\n'); }, /--publish-token-file .* must hold one token of 16 to/],
      [good, () => { fs.writeFileSync(tokenFile, `${tokenB}\n`); fs.rmSync(acl); }, /cannot read --acl/],
      [null, () => { fs.writeFileSync(acl, aclB); fs.rmSync(conf); }, /cannot read .*: No such file or directory/],
    ];
    for (const [text, prepare, re] of cases) {
      if (text !== null) fs.writeFileSync(conf, text);
      prepare();
      const log = await reload(d);
      assert.match(log, /reload: refused/, `for ${re}`);
      assert.match(d.stderr(), re);
      assert.equal(await subscribeError(s, '/b/z'), '', `the rules stay after ${re}`);
      assert.equal((await backendPublish(d, tokenB, '/b/x', {})).status, 200, `the token stays after ${re}`);
    }
    // Fixed again: the reload goes through.
    fs.writeFileSync(conf, `acl = ${acl}\npublish-token-file = ${tokenFile}\nlog-level = info\ntimeout = 1000\n`);
    const log = await reload(d);
    assert.match(log, /reload: done/);
    assert.match(d.stderr(), /reload: 'timeout' changed .*: it takes effect at the next restart/);
    assert.match(d.stderr(), /reload: log level: debug -> info/);
  });
});

describe('--auth hmac secret reload', () => {
  test('new handshakes need tokens of the new key; sessions already in keep theirs', async () => {
    const secret = file('the first secret of the test, more than 32 bytes long\n');
    const conf = file(`auth = hmac\nauth-secret-file = ${secret}\n`);
    const d = await startDaemon(['--config', conf]);
    try {
      const mint = async () => {
        const r = await runDaemonOnce(['token', '--secret-file', secret, '--sub', 'alice',
          '--subscribe', '/chat/**']);
        assert.equal(r.code, 0, r.stderr);
        return r.stdout.trim();
      };
      const hs = async (token) => {
        const s = new RawSession(d.url);
        const [r] = await s.exchange([{channel: '/meta/handshake', version: '1.0',
          supportedConnectionTypes: ['long-polling'], id: newId(), ext: {auth: {token}}}]);
        if (r.successful) s.clientId = r.clientId;
        return {s, r};
      };
      const oldToken = await mint();
      const first = await hs(oldToken);
      assert.equal(first.r.successful, true);
      fs.writeFileSync(secret, 'a second, different secret, also over 32 bytes\n');
      const log = await reload(d);
      assert.match(log, /reload: done/);
      assert.match(d.stderr(), /reload: auth secret: changed/);
      assert.equal((await hs(oldToken)).r.successful, false, 'a token of the old key is refused');
      assert.equal((await hs(await mint())).r.successful, true, 'a token of the new key is taken');
      assert.equal(await subscribeError(first.s, '/chat/x'), '', 'the session of the old key keeps its grants');
      // Too short a secret: refused, the key stays.
      fs.writeFileSync(secret, 'short\n');
      assert.match(await reload(d), /reload: refused/);
      assert.match(d.stderr(), /--auth-secret-file .* must hold 32 to/);
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('turning the ACL on while running is refused: it needs a restart', async () => {
    const conf = file('log-level = info\n');
    const d = await startDaemon(['--config', conf]);
    try {
      fs.writeFileSync(conf, `acl = ${file('allow anyone subscribe /x/**\n')}\n`);
      assert.match(await reload(d), /reload: refused/);
      assert.match(d.stderr(), /acl: turning --acl on or off needs a restart/);
    } finally {
      await stopDaemonClean(d);
    }
  });

  test('SIGHUP without --config re-reads the files the flags name', async () => {
    const acl = file('allow anyone subscribe /a/**\n', 0o644);
    const d = await startDaemon(['--acl', acl]);
    try {
      const s = new RawSession(d.url);
      await s.handshake();
      assert.notEqual(await subscribeError(s, '/b/x'), '');
      fs.writeFileSync(acl, 'allow anyone subscribe /b/**\n');
      assert.match(await reload(d), /reload: done/);
      assert.equal(await subscribeError(s, '/b/x'), '');
    } finally {
      await stopDaemonClean(d);
    }
  });
});

/** A free loopback port (bound, then closed). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

describe('systemd readiness (NOTIFY_SOCKET)', () => {
  test('READY=1 comes once the port answers; RELOADING=1/READY=1 around SIGHUP; STOPPING=1', async () => {
    const sock = path.join(dir, 'notify.sock');
    const listener = spawn('python3', [path.join(REPO, 'tests', 'integration', 'lib', 'notify-listen.py'), sock, '60'],
      {stdio: ['pipe', 'pipe', 'inherit']});
    const got = [];
    const waiters = [];
    let buf = '';
    listener.stdout.setEncoding('utf8');
    listener.stdout.on('data', (c) => {
      buf += c;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        got.push(line);
        for (const w of waiters.splice(0)) w();
      }
    });
    const next = async (re, ms = 10000) => {
      const end = Date.now() + ms * SLOW;
      for (;;) {
        const hit = got.find((l) => re.test(l));
        if (hit) {
          got.splice(got.indexOf(hit), 1);
          return hit;
        }
        if (Date.now() > end) throw new Error(`no datagram matching ${re}; got ${JSON.stringify(got)}`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 100); });
      }
    };
    let d;
    try {
      await next(/^bound$/);
      const port = await freePort();
      const argv = daemonArgv(['--listen', `127.0.0.1:${port}`]);
      d = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'pipe'],
        env: {...process.env, NOTIFY_SOCKET: sock}});
      let stderr = '';
      d.stderr.setEncoding('utf8');
      d.stderr.on('data', (c) => { stderr += c; });
      const ready = await next(/READY=1/);
      // The port must answer now: READY=1 is sent only once the listener is up.
      const r = await request(`http://127.0.0.1:${port}/cometd`, {body: [{channel: '/meta/handshake',
        version: '1.0', supportedConnectionTypes: ['long-polling'], id: '1'}]});
      assert.equal(r.status, 200);
      assert.match(ready, /STATUS=listening on http:\/\/127\.0\.0\.1:\d+\/cometd/);
      assert.match(ready, new RegExp(`MAINPID=${d.pid}`));

      d.kill('SIGHUP');
      const reloading = await next(/RELOADING=1/);
      assert.match(reloading, /MONOTONIC_USEC=\d+/);
      await next(/READY=1/);

      d.kill('SIGTERM');
      await next(/STOPPING=1/);
      const code = await new Promise((res) => d.on('exit', (c) => res(c)));
      assert.equal(code, 0, stderr);
    } finally {
      if (d && d.exitCode === null) d.kill('SIGKILL');
      listener.stdin.end();
    }
  });

  test('a NOTIFY_SOCKET nobody listens on is a warning, not a failure', async () => {
    const argv = daemonArgv(['--listen', '127.0.0.1:0']);
    const d = spawn(argv[0], argv.slice(1), {stdio: ['ignore', 'ignore', 'pipe'],
      env: {...process.env, NOTIFY_SOCKET: path.join(dir, 'nobody.sock')}});
    let stderr = '';
    d.stderr.setEncoding('utf8');
    d.stderr.on('data', (c) => { stderr += c; });
    const end = Date.now() + 10000 * SLOW;
    while (!/listening on/.test(stderr) && Date.now() < end) await sleep(20);
    assert.match(stderr, /listening on/);
    assert.match(stderr, /warn: cannot notify systemd .*nobody\.sock/);
    d.kill('SIGTERM');
    const code = await new Promise((res) => d.on('exit', (c) => res(c)));
    assert.equal(code, 0, stderr);
  });
});

describe('man page and systemd unit', () => {
  test('man/bayeuxd.8 documents every flag of bayeuxd --help', async () => {
    const r = await runDaemonOnce(['--help']);
    assert.equal(r.code, 0);
    const flags = [...new Set([...r.stdout.matchAll(/^\s+(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]))];
    assert.ok(flags.length > 20, `found only ${flags.length} flags in --help`);
    // The page's text as man renders it (roff's \- is a plain '-').
    const page = fs.readFileSync(path.join(REPO, 'man', 'bayeuxd.8'), 'utf8').replace(/\\-/g, '-');
    const documented = new Set([...page.matchAll(/^\.B[IR]?\s+(--[a-z][a-z0-9-]*)/gm)].map((m) => m[1]));
    const missing = flags.filter((f) => !documented.has(f));
    assert.deepEqual(missing, [], `flags of --help missing from man/bayeuxd.8: ${missing.join(' ')}`);
    assert.ok(documented.has('--config'));
  });

  test('systemd-analyze verify accepts the unit', (t) => {
    let analyze;
    try {
      analyze = execFileSync('sh', ['-c', 'command -v systemd-analyze'], {encoding: 'utf8'}).trim();
    } catch {
      t.skip('systemd-analyze is not installed (apt-get install systemd)');
      return;
    }
    const bin = process.env.BAYEUXD || path.join(REPO, 'src', 'bayeuxd');
    const unitDir = path.join(dir, 'unit');
    const man8 = path.join(dir, 'man', 'man8');
    fs.mkdirSync(unitDir, {recursive: true});
    fs.mkdirSync(man8, {recursive: true});
    fs.copyFileSync(path.join(REPO, 'man', 'bayeuxd.8'), path.join(man8, 'bayeuxd.8'));
    const unit = fs.readFileSync(path.join(REPO, 'dist', 'bayeuxd.service.in'), 'utf8')
      .replaceAll('@bindir@/bayeuxd', path.resolve(bin))
      .replaceAll('@sysconfdir@', '/etc');
    assert.doesNotMatch(unit, /@[a-z]+@/);
    for (const want of [/^Type=notify$/m, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m, /^DynamicUser=yes$/m,
      /^ProtectSystem=strict$/m, /^NoNewPrivileges=yes$/m, /^RestrictAddressFamilies=/m,
      /^LimitNOFILE=\d{6,}$/m, /^StateDirectory=bayeuxd$/m]) {
      assert.match(unit, want);
    }
    const p = path.join(unitDir, 'bayeuxd.service');
    fs.writeFileSync(p, unit);
    // MANPATH: Documentation=man:bayeuxd(8) is looked up with man(1).
    const out = execFileSync(analyze, ['verify', p], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      env: {...process.env, MANPATH: path.join(dir, 'man')}});
    assert.equal(out.trim(), '');
  });
});

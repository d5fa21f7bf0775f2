// --auth hmac and --acl against a real bayeuxd (docs/SECURITY.md): tokens minted by
// `bayeuxd token`, handshakes without a valid one denied, sessions held to their grants
// and to the rules, ext.auth never forwarded nor logged. Loopback only.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, runDaemonOnce} from './lib/daemon.mjs';
import {RawSession, newId, sleep} from './lib/wire.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-auth-'));
const secretFile = path.join(dir, 'secret');
const aclFile = path.join(dir, 'acl');
fs.writeFileSync(secretFile, 'an integration-test secret of more than 32 bytes\n', {mode: 0o600});
fs.writeFileSync(aclFile, [
  '# anonymous clients cannot handshake with --auth; these rules shape the subjects',
  'allow authenticated subscribe /chat/**',
  'allow authenticated publish   /chat/**',
  'deny  user:bob      subscribe /chat/admin/**   # deny rules win over allow rules',
  'allow anyone        service   /service/echo',
  '',
].join('\n'));

let daemon;

async function mint(...args) {
  const r = await runDaemonOnce(['token', '--secret-file', secretFile, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

before(async () => {
  daemon = await startDaemon(['--timeout', '3000', '--auth', 'hmac', '--auth-secret-file', secretFile,
    '--acl', aclFile]);
});

after(async () => {
  await stopDaemonClean(daemon);
  fs.rmSync(dir, {recursive: true, force: true});
});

async function handshake(ext) {
  const s = new RawSession(daemon.url);
  const res = await s.post([{channel: '/meta/handshake', version: '1.0',
    supportedConnectionTypes: ['long-polling'], id: newId(), ...(ext ? {ext} : {})}]);
  const r = res.json?.[0];
  if (r?.successful) s.clientId = r.clientId;
  return {s, r, res};
}

async function subscribeError(s, subscription) {
  const [r] = await s.exchange([{channel: '/meta/subscribe', clientId: s.clientId, subscription, id: newId()}]);
  return r.successful ? '' : r.error;
}

async function publishError(s, channel) {
  const [r] = await s.exchange([{channel, clientId: s.clientId, data: {x: 1}, id: newId()}]);
  return r.successful ? '' : r.error;
}

describe('--auth hmac', () => {
  test('bayeuxd token prints a token; bad arguments exit 2', {timeout: 20000}, async () => {
    const t = await mint('--sub', 'alice', '--subscribe', '/chat/**', '--ttl', '60');
    assert.match(t, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    const bad = await runDaemonOnce(['token', '--secret-file', secretFile, '--sub', 'x', '--subscribe', '/meta/**']);
    assert.equal(bad.code, 2, bad.stderr);
    const noSecret = await runDaemonOnce(['token', '--sub', 'x']);
    assert.equal(noSecret.code, 2);
  });

  test('no token, a forged token and an expired one: 403::handshake_denied, reconnect none',
    {timeout: 20000}, async () => {
      const good = await mint('--sub', 'alice', '--subscribe', '/chat/**');
      const forged = good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA');
      const otherKey = path.join(dir, 'other');
      fs.writeFileSync(otherKey, 'another secret, also more than 32 bytes long', {mode: 0o600});
      const r = await runDaemonOnce(['token', '--secret-file', otherKey, '--sub', 'alice', '--subscribe', '/**']);
      const wrongKey = r.stdout.trim();
      for (const ext of [undefined, {}, {auth: {}}, {auth: {token: ''}}, {auth: {token: forged}},
        {auth: {token: wrongKey}}, {auth: good}]) {
        const {r: reply, res} = await handshake(ext);
        assert.equal(reply?.successful, false, `${JSON.stringify(ext)}: ${res.text}`);
        assert.equal(reply.error, '403::handshake_denied');
        assert.deepEqual(reply.advice, {reconnect: 'none'});
      }
      const expiring = await mint('--sub', 'alice', '--subscribe', '/chat/**', '--ttl', '3');
      assert.equal((await handshake({auth: {token: expiring}})).r.successful, true, 'valid for 3 s');
      await sleep(4100);
      const {r: late} = await handshake({auth: {token: expiring}});
      assert.equal(late.error, '403::handshake_denied', 'expired');
    });

  test('a session subscribes and publishes only within its token and the ACL', {timeout: 20000}, async () => {
    const bob = await mint('--sub', 'bob', '--subscribe', '/chat/**', '--publish', '/chat/**', '--publish',
      '/service/echo');
    const {s, r} = await handshake({auth: {token: bob}});
    assert.equal(r.successful, true, JSON.stringify(r));
    assert.equal(await subscribeError(s, '/chat/room'), '');
    assert.equal(await subscribeError(s, '/chat/*'), '');
    for (const p of ['/**', '/*', '/chat', '/other/x', '/chat/admin/x', '/chat/admin/**', '/chat/**']) {
      assert.equal(await subscribeError(s, p), '403:denied_by_security_policy:subscribe_denied', p);
    }
    assert.equal(await publishError(s, '/chat/room'), '');
    assert.equal(await publishError(s, '/news'), '403:denied_by_security_policy:publish_denied');
    // Meta-looking channels are never the meta verb, with or without a session.
    for (const ch of ['/meta/subscribe/x', '/meta/subscribe/', '/meta/*', '/meta/**']) {
      const [m] = await s.exchange([{channel: ch, clientId: s.clientId, subscription: '/**', data: 1}]);
      assert.equal(m.successful, false, ch);
    }
  });

  test('alice may read /chat/admin/**; the token is never forwarded nor logged', {timeout: 20000}, async () => {
    const alice = await mint('--sub', 'alice', '--subscribe', '/chat/**', '--publish', '/chat/**');
    const {s: a} = await handshake({auth: {token: alice}});
    assert.equal(await subscribeError(a, '/chat/admin/**'), '');
    await a.connect({advice: {timeout: 0}});
    const {s: b} = await handshake({auth: {token: alice}});
    const [p] = await b.exchange([{channel: '/chat/admin/x', clientId: b.clientId, data: {hi: 1},
      ext: {auth: {token: alice}, other: 1}}]);
    assert.equal(p.successful, true);
    const res = await a.connect({advice: {timeout: 0}});
    const got = res.json.find((m) => m.channel === '/chat/admin/x');
    assert.ok(got, res.text);
    assert.ok(!res.text.includes(alice), 'the token reached a subscriber');
    assert.ok(!daemon.stderr().includes(alice), 'the token is in the log');
    assert.ok(!daemon.stderr().includes(alice.split('.')[0]), 'the token payload is in the log');
  });
});

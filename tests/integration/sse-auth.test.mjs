// The plain SSE endpoint under --auth hmac: the token comes as `?token=` (a browser's
// EventSource cannot set headers) or `Authorization: Bearer`, and goes into the
// internal handshake's ext.auth.token, so the token's grants decide as for any client.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, runDaemonOnce} from './lib/daemon.mjs';
import {RawSession, newId} from './lib/wire.mjs';
import {openStream} from './lib/sse.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeux-sse-auth-'));
const secretFile = path.join(dir, 'secret');
fs.writeFileSync(secretFile, 'a secret for the SSE auth test, more than 32 bytes\n', {mode: 0o600});

let daemon;

async function mint(...args) {
  const r = await runDaemonOnce(['token', '--secret-file', secretFile, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

const plain = (query) => `${daemon.url}/sse?${query}`;

before(async () => {
  daemon = await startDaemon(['--timeout', '3000', '--auth', 'hmac', '--auth-secret-file', secretFile]);
});

after(async () => {
  await stopDaemonClean(daemon);
  fs.rmSync(dir, {recursive: true, force: true});
});

describe('plain SSE stream with --auth hmac', () => {
  test('without a token the stream is refused with the handshake error', {timeout: 10000}, async () => {
    const st = await openStream(plain('subscribe=%2Fnews%2F**'));
    await st.waitFor((x) => x.ended, 3000, 'end');
    assert.equal(st.status, 403);
    assert.match(st.raw, /handshake_denied/);
  });

  test('a token in ?token= or Authorization opens the stream within its grants', {timeout: 15000}, async () => {
    const reader = await mint('--sub', 'reader', '--subscribe', '/news/**', '--ttl', '60');
    const writer = await mint('--sub', 'writer', '--publish', '/news/**', '--ttl', '60');
    const viaQuery = await openStream(plain(`subscribe=%2Fnews%2F**&token=${encodeURIComponent(reader)}`));
    assert.equal(viaQuery.status, 200, viaQuery.raw);
    const viaHeader = await openStream(plain('subscribe=%2Fnews%2F**'),
      {headers: {Authorization: `Bearer ${reader}`}});
    assert.equal(viaHeader.status, 200, viaHeader.raw);

    const pub = new RawSession(daemon.url);
    const hs = await pub.post([{channel: '/meta/handshake', version: '1.0', supportedConnectionTypes: ['long-polling'],
      id: newId(), ext: {auth: {token: writer}}}]);
    assert.equal(hs.json[0].successful, true, hs.text);
    pub.clientId = hs.json[0].clientId;
    const [ack] = await pub.exchange([{channel: '/news/today', clientId: pub.clientId, data: {n: 7}, id: newId()}]);
    assert.equal(ack.successful, true, JSON.stringify(ack));
    for (const st of [viaQuery, viaHeader]) {
      await st.waitFor((x) => x.events.some((e) => JSON.parse(e.data).data?.n === 7), 3000, 'the publish');
      st.close();
    }
    assert.ok(!daemon.stderr().includes(reader), 'the token is in the log');
  });

  test('a token does not open channels beyond its grants', {timeout: 10000}, async () => {
    const reader = await mint('--sub', 'reader', '--subscribe', '/news/**', '--ttl', '60');
    for (const sub of ['/**', '/other', '/news']) {
      const st = await openStream(plain(`subscribe=${encodeURIComponent(sub)}&token=${encodeURIComponent(reader)}`));
      await st.waitFor((x) => x.ended, 3000, 'end');
      assert.equal(st.status, 403, `${sub}: ${st.raw}`);
      assert.match(st.raw, /subscribe refused/);
    }
  });

  test('a forged token is refused', {timeout: 10000}, async () => {
    const reader = await mint('--sub', 'reader', '--subscribe', '/news/**', '--ttl', '60');
    const forged = reader.slice(0, -2) + (reader.endsWith('AA') ? 'BB' : 'AA');
    const st = await openStream(plain(`subscribe=%2Fnews%2F**&token=${encodeURIComponent(forged)}`));
    await st.waitFor((x) => x.ended, 3000, 'end');
    assert.equal(st.status, 403);
    assert.match(st.raw, /handshake_denied/);
  });
});

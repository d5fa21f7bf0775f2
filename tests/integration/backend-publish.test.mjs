// Backend publishing (issue 4, PROTOCOL.md §5): a publish with no clientId and no
// handshake, on POST /cometd or POST /publish/<channel>, authorized by the bearer token
// of --publish-token-file or, with --allow-local-publish, by coming from loopback.
// Deliveries are checked with the real CometD client subscribed to the channel.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {startDaemon, stopDaemonClean, runDaemonOnce, PEER} from './lib/daemon.mjs';
import {CometDClient, waitFor, sleep, uniqueChannel} from './lib/clients.mjs';
import {request} from './lib/wire.mjs';

const TOKEN = 'tk_' + 'x7Qm2LpZ9vR4sT8wY1nB5cD3'; // 27 characters, no spaces
const skip = PEER ? 'backend publishing is bayeuxd behaviour' : false;

let tmp;
function tokenFile(content, mode = 0o600) {
  const f = path.join(tmp, `token-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(f, content, {mode});
  return f;
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bayeuxd-backend-'));
});

after(() => {
  fs.rmSync(tmp, {recursive: true, force: true});
});

/** A CometD client subscribed to ch; returns {client, got}. */
async function subscriber(url, ch) {
  const client = new CometDClient(url);
  await client.handshake();
  const got = [];
  await client.subscribe(ch, (m) => got.push(m));
  return {client, got};
}

const bearer = (t) => ({Authorization: `Bearer ${t}`});

describe('with --publish-token-file', {skip}, () => {
  let daemon;
  let sub;
  before(async () => {
    daemon = await startDaemon(['--publish-token-file', tokenFile(`${TOKEN}\n`)]);
  });
  after(async () => {
    if (sub) await sub.client.disconnect(5000).catch(() => {});
    await stopDaemonClean(daemon);
  });

  test('a clientId-less publish with the token is acked and delivered to a CometD subscriber',
    {timeout: 15000}, async () => {
      const ch = uniqueChannel('/backend');
      sub = await subscriber(daemon.url, ch);
      const r = await request(daemon.url, {
        headers: bearer(TOKEN),
        body: [{channel: ch, data: {price: 10.5, sym: 'ABC'}, id: 'b1'}, {channel: ch, data: 2}],
      });
      assert.equal(r.status, 200);
      assert.equal(r.json.length, 2);
      assert.deepEqual(r.json[0], {channel: ch, successful: true, id: 'b1'});
      assert.equal(r.json[1].successful, true);
      await waitFor(() => sub.got.length >= 2, 5000, 'deliveries');
      assert.deepEqual(sub.got.map((m) => m.data), [{price: 10.5, sym: 'ABC'}, 2]);
      assert.equal(sub.got[0].clientId, undefined, 'no publisher clientId in deliveries');
      await sub.client.disconnect(5000);
      sub = undefined;
    });

  test('without the token, or with a wrong one, it is refused with 403::publish_denied and a hint, and nothing is delivered',
    {timeout: 15000}, async () => {
      const ch = uniqueChannel('/backend');
      sub = await subscriber(daemon.url, ch);
      const attempts = [
        {},
        bearer('wrong-token-of-some-length'),
        bearer(TOKEN.slice(0, -1)),
        bearer(TOKEN + 'x'),
        {Authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}`},
      ];
      for (const headers of attempts) {
        const r = await request(daemon.url, {headers, body: {channel: ch, data: 'nope', id: 'n'}});
        assert.equal(r.status, 200, 'Bayeux errors travel in a 200 reply');
        assert.equal(r.json[0].successful, false, JSON.stringify(headers));
        assert.equal(r.json[0].error, '403::publish_denied');
        assert.equal(r.json[0].id, 'n');
        assert.match(r.json[0].hint, /Authorization: Bearer/);
        const p = await request(`${daemon.origin}/publish${ch}`, {headers, body: '"nope"'});
        assert.equal(p.status, 403);
        assert.equal(p.json.error, '403::publish_denied');
      }
      // A positive control after the refusals proves the subscription was live.
      const ok = await request(`${daemon.origin}/publish${ch}`, {headers: bearer(TOKEN), body: '"yes"'});
      assert.equal(ok.status, 200, ok.text);
      await waitFor(() => sub.got.length >= 1, 5000, 'control delivery');
      await sleep(200);
      assert.deepEqual(sub.got.map((m) => m.data), ['yes'], 'only the authorized message arrived');
      await sub.client.disconnect(5000);
      sub = undefined;
    });

  test('a message with an unknown clientId still gets 402 even with the token',
    {timeout: 10000}, async () => {
      const r = await request(daemon.url, {
        headers: bearer(TOKEN),
        body: [{channel: '/x', data: 1, clientId: 'AAAAAAAAAAAAAAAAAAAAAA'}],
      });
      assert.equal(r.json[0].error, '402::session_unknown');
    });

  test('POST /publish/<channel> takes the data as body and answers a small JSON result',
    {timeout: 15000}, async () => {
      const ch = uniqueChannel('/plain/form');
      sub = await subscriber(daemon.url, ch);
      const r = await request(`${daemon.origin}/publish${ch}`, {headers: bearer(TOKEN), body: '{"a":[1,"ü"]}'});
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers['content-type'], /^application\/json/);
      assert.deepEqual(r.json, {channel: ch, successful: true});
      await waitFor(() => sub.got.length >= 1, 5000, 'delivery');
      assert.deepEqual(sub.got[0].data, {a: [1, 'ü']});

      const bad = await request(`${daemon.origin}/publish${ch}`, {headers: bearer(TOKEN), body: '{"a":'});
      assert.equal(bad.status, 400);
      assert.equal(bad.json.error, '400::data_invalid');
      // A body cannot smuggle a second message in.
      const smuggle = await request(`${daemon.origin}/publish${ch}`,
        {headers: bearer(TOKEN), body: `1},{"channel":"${ch}","data":"evil"`});
      assert.equal(smuggle.status, 400);
      const wild = await request(`${daemon.origin}/publish/a/*`, {headers: bearer(TOKEN), body: '1'});
      assert.equal(wild.status, 405);
      const meta = await request(`${daemon.origin}/publish/meta/connect`, {headers: bearer(TOKEN), body: '1'});
      assert.equal(meta.status, 400);
      const get = await request(`${daemon.origin}/publish${ch}`, {method: 'GET'});
      assert.equal(get.status, 405);
      assert.equal(get.headers.allow, 'POST');
      await sleep(200);
      assert.equal(sub.got.length, 1, 'none of the bad requests delivered anything');
      await sub.client.disconnect(5000);
      sub = undefined;
    });
});

describe('without a token', {skip}, () => {
  test('session-less publishing is refused with a hint that names the options', {timeout: 15000}, async () => {
    const daemon = await startDaemon([]);
    try {
      const r = await request(daemon.url, {headers: bearer(TOKEN), body: {channel: '/x', data: 1}});
      assert.equal(r.json[0].error, '403::publish_denied');
      assert.match(r.json[0].hint, /--publish-token-file/);
      assert.match(r.json[0].hint, /--allow-local-publish/);
    } finally {
      await stopDaemonClean(daemon);
    }
  });

  test('--allow-local-publish accepts loopback requests, but not from a browser (Origin header)',
    {timeout: 15000}, async () => {
      const daemon = await startDaemon(['--allow-local-publish']);
      let sub;
      try {
        const ch = uniqueChannel('/local');
        sub = await subscriber(daemon.url, ch);
        const browser = await request(daemon.url, {
          headers: {Origin: 'http://evil.example'}, body: {channel: ch, data: 'page'},
        });
        assert.equal(browser.json[0].error, '403::publish_denied');
        const r = await request(daemon.url, {body: {channel: ch, data: 'local'}});
        assert.equal(r.json[0].successful, true, r.text);
        await waitFor(() => sub.got.length >= 1, 5000, 'delivery');
        await sleep(200);
        assert.deepEqual(sub.got.map((m) => m.data), ['local']);
      } finally {
        if (sub) await sub.client.disconnect(5000).catch(() => {});
        await stopDaemonClean(daemon);
      }
    });
});

describe('--publish-token-file checks', {skip}, () => {
  test('a missing file, an empty or short token are usage errors (exit 2) that say why',
    {timeout: 15000}, async () => {
      const missing = await runDaemonOnce(['--publish-token-file', path.join(tmp, 'nope')]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /cannot read --publish-token-file/);
      const empty = await runDaemonOnce(['--publish-token-file', tokenFile('\n')]);
      assert.equal(empty.code, 2);
      assert.match(empty.stderr, /publish-token-file/);
      const short = await runDaemonOnce(['--listen', '127.0.0.1:0', '--publish-token-file', tokenFile('short\n')]);
      assert.equal(short.code, 2);
      assert.match(short.stderr, /16 to 4096 characters/);
    });

  test('--help documents both flags', {timeout: 10000}, async () => {
    const r = await runDaemonOnce(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--publish-token-file FILE/);
    assert.match(r.stdout, /--allow-local-publish/);
  });
});

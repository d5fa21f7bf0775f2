// Hostile input against a real bayeuxd: every case of the table gets its documented
// answer (docs/SECURITY.md, "Bad input"), and while it is being answered another client,
// whose /meta/connect is held, keeps receiving: the probe published after each case
// reaches it. Loopback only; every case is bounded in time.
import {describe, test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import {startDaemon, stopDaemonClean, SLOW} from './lib/daemon.mjs';
import {RawSession, request} from './lib/wire.mjs';

const HOLD_MS = 8000;
let daemon;
let watcher; // subscribed to WATCH, its connect held during each case
let publisher; // publishes the probes
let victim; // a session whose id the forged-id cases imitate
const WATCH = `/watch/p${process.pid}`;
let probeN = 0;
const CASES = [];
// The daemon's resident memory (docs/SECURITY.md, "Parse memory"): sampled every 5 ms
// from /proc while the table runs; its growth over the baseline must stay under 50 MB.
const MB = 1024 * 1024;
let rssBase = 0;
let rssPeak = 0;
let rssTimer;
function rssNow() {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${daemon.pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}

before(async () => {
  // --max-interval above the slowest case, so no session of ours expires mid-table.
  daemon = await startDaemon(['--timeout', String(HOLD_MS), '--max-interval', '30000']);
  watcher = new RawSession(daemon.url);
  await watcher.handshake();
  await watcher.connect({advice: {timeout: 0}});
  await watcher.subscribe(WATCH);
  publisher = new RawSession(daemon.url);
  await publisher.handshake();
  await publisher.connect({advice: {timeout: 0}});
  victim = new RawSession(daemon.url);
  await victim.handshake();
  await victim.connect({advice: {timeout: 0}});
  await victim.subscribe('/victim');
  rssBase = rssPeak = rssNow();
  rssTimer = setInterval(() => { rssPeak = Math.max(rssPeak, rssNow()); }, 5);
});

after(async () => {
  clearInterval(rssTimer);
  await stopDaemonClean(daemon);
});

/**
 * Holds the watcher's connect, runs fn (the hostile input), then publishes a probe and
 * requires the held connect to deliver it. Returns what fn returned.
 */
async function othersKeepReceiving(fn) {
  const held = watcher.connect({}, {timeoutMs: HOLD_MS + 10000});
  let result;
  try {
    result = await fn();
  } finally {
    probeN += 1;
    const n = probeN;
    // The connect may not be parked yet when the case was instant; the probe is queued
    // either way and the next connect returns it.
    const pub = await publisher.exchange([publisher.publishMessage(WATCH, {probe: n})]);
    assert.equal(pub[0]?.successful, true, `probe publish: ${JSON.stringify(pub)}`);
    let res = await held;
    let got = res.json?.find((m) => m.channel === WATCH && m.data?.probe === n);
    if (!got && res.status === 200) {
      res = await watcher.connect({advice: {timeout: 0}});
      got = res.json?.find((m) => m.channel === WATCH && m.data?.probe === n);
    }
    assert.ok(got, `the watcher did not receive probe ${n}: HTTP ${res.status} ${res.text.slice(0, 300)}`);
    assert.equal(daemon.proc.exitCode, null, 'the daemon is still running');
  }
  return result;
}

function post(body, opts = {}) {
  return request(daemon.url, {body, timeoutMs: 20000, ...opts});
}

/**
 * Sends raw bytes on a new TCP connection; resolves what came back once the server
 * closed it, or after waitMs with the connection still open (libmicrohttpd drops some
 * garbage silently, or waits for more; --connection-timeout closes those).
 */
function rawHttp(bytes, {waitMs = 3000} = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(daemon.port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => { sock.destroy(); resolve(out); }, waitMs * SLOW);
    sock.on('data', (d) => { out += d.toString('latin1'); });
    sock.on('error', () => {}); // a reset after the answer is fine
    sock.on('close', () => { clearTimeout(timer); resolve(out); });
    sock.write(bytes, () => sock.end());
  });
}

/** The replies of a 200 batch, or a failed assertion naming the case. */
function replies(res, label) {
  assert.equal(res.status, 200, `${label}: expected HTTP 200, got ${res.status} ${res.text.slice(0, 200)}`);
  assert.ok(Array.isArray(res.json) && res.json.length > 0, `${label}: ${res.text.slice(0, 200)}`);
  return res.json;
}

function expectHttp(status, re) {
  return (res, label) => {
    assert.equal(res.status, status, `${label}: ${res.text.slice(0, 200)}`);
    if (re) assert.match(res.text, re, label);
  };
}

function expectError(error, extra = () => {}) {
  return (res, label) => {
    const r = replies(res, label);
    assert.equal(r[0].successful, false, `${label}: ${res.text.slice(0, 200)}`);
    assert.equal(r[0].error, error, `${label}: ${res.text.slice(0, 200)}`);
    extra(r[0], label);
  };
}

const invalidJson = expectHttp(400, /^invalid JSON in request body/);
const sessionUnknown = expectError('402::session_unknown', (r) => {
  assert.deepEqual(r.advice, {reconnect: 'handshake', interval: 0});
});

/** Adds a case: body is bytes/string, or a function of the session ids returning one. */
function add(group, name, body, check, opts = {}) {
  CASES.push({group, name, body, check, opts});
}

const repeat = (s, n) => s.repeat(n);
const pub = (channel, data = {x: 1}) => (ids) => JSON.stringify([{channel, clientId: ids.pub, data, id: 'b1'}]);

// ---- malformed and truncated JSON ---------------------------------------------------
add('malformed', 'empty body', '', expectHttp(400, /empty body/));
add('malformed', 'truncated in a key', '[{"channel":', invalidJson);
add('malformed', 'truncated handshake', '[{"channel":"/meta/handshake","version":"1.0","supp', invalidJson);
add('malformed', 'single quotes', "[{'channel':'/a'}]", invalidJson);
add('malformed', 'trailing comma', '[{"channel":"/a",}]', invalidJson);
add('malformed', 'comment', '[/* x */{"channel":"/a"}]', invalidJson);
add('malformed', 'trailing garbage', '[{}] x', invalidJson);
add('malformed', 'two documents', '[{}][{}]', invalidJson);
add('malformed', 'byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[{}]')]), invalidJson);
add('malformed', 'unterminated string', '[{"channel":"/a', invalidJson);
add('malformed', 'bad escape', '[{"channel":"/a","data":"\\x41"}]', invalidJson);
add('malformed', 'number as body', '42', expectHttp(400, /JSON array of message objects/));
add('malformed', 'string as body', '"x"', expectHttp(400, /JSON array of message objects/));
add('malformed', 'null as body', 'null', expectHttp(400, /JSON array of message objects/));
add('malformed', 'empty array', '[]', expectHttp(400, /at least one message/));

// ---- wrong field types ----------------------------------------------------------------
add('types', 'channel is a number', '[{"channel":5}]', expectError('400::channel_missing'));
add('types', 'channel missing', '[{"data":1}]', expectError('400::channel_missing'));
add('types', 'message is a number', '[1]', expectError('400::message_invalid'));
add('types', 'message is null', '[null]', expectError('400::message_invalid'));
add('types', 'message is an array', '[[{"channel":"/a"}]]', expectError('400::message_invalid'));
add('types', 'clientId is a number', '[{"channel":"/meta/connect","clientId":5,"connectionType":"long-polling"}]',
  sessionUnknown);
add('types', 'clientId is an object',
  '[{"channel":"/meta/subscribe","clientId":{"$ne":""},"subscription":"/a"}]', sessionUnknown);
add('types', 'subscription is a number',
  (ids) => JSON.stringify([{channel: '/meta/subscribe', clientId: ids.pub, subscription: 5}]),
  expectError('403::subscription_missing'));
add('types', 'subscription holds a number',
  (ids) => JSON.stringify([{channel: '/meta/subscribe', clientId: ids.pub, subscription: ['/a', 5]}]),
  expectError('403::subscription_invalid'));
add('types', 'supportedConnectionTypes is a string',
  '[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":"long-polling"}]',
  expectError('301::connection_types_unsupported'));
add('types', 'publish without data',
  (ids) => JSON.stringify([{channel: '/a', clientId: ids.pub}]), expectError('400::data_missing'));
add('types', 'id is an object (not echoed)',
  (ids) => JSON.stringify([{channel: '/a', clientId: ids.pub, data: 1, id: {x: 1}}]),
  (res, label) => {
    const r = replies(res, label);
    assert.equal(r[0].successful, true, label);
    assert.equal('id' in r[0], false, `${label}: ${res.text}`);
  });
// A connect batched with another message is answered at once (PROTOCOL.md §3).
const andPublish = (ids) => ({channel: '/a', clientId: ids.pub, data: 1});
add('types', 'advice is a string',
  (ids) => JSON.stringify([{channel: '/meta/connect', clientId: ids.pub, connectionType: 'long-polling',
    advice: 'x'}, andPublish(ids)]),
  (res, label) => assert.equal(replies(res, label)[0].successful, true, res.text));
add('types', 'two handshakes in one request',
  '[{"channel":"/meta/handshake","supportedConnectionTypes":["long-polling"]},' +
  '{"channel":"/meta/handshake","supportedConnectionTypes":["long-polling"]}]',
  expectHttp(400, /only message/));

// ---- huge numbers ---------------------------------------------------------------------
add('numbers', 'NaN', (ids) => `[{"channel":"/a","clientId":"${ids.pub}","data":NaN}]`, invalidJson);
add('numbers', 'Infinity', (ids) => `[{"channel":"/a","clientId":"${ids.pub}","data":[-Infinity]}]`, invalidJson);
add('numbers', '1e400 (overflows a double)', (ids) => `[{"channel":"/a","clientId":"${ids.pub}","data":1e400}]`,
  invalidJson);
add('numbers', '30-digit integer', (ids) =>
  `[{"channel":"/a","clientId":"${ids.pub}","data":123456789012345678901234567890}]`,
  (res, label) => assert.equal(replies(res, label)[0].successful, true, res.text));
add('numbers', 'huge integer id (saturated, still an integer)', (ids) =>
  `[{"channel":"/a","clientId":"${ids.pub}","data":1,"id":99999999999999999999999}]`,
  (res, label) => {
    const r = replies(res, label);
    assert.equal(r[0].successful, true, res.text);
    assert.equal(typeof r[0].id, 'number', res.text);
  });
add('numbers', 'timeout advice 1e300', (ids) => JSON.stringify([{channel: '/meta/connect', clientId: ids.pub,
  connectionType: 'long-polling', advice: {timeout: 1e300}}, andPublish(ids)]),
  (res, label) => assert.equal(replies(res, label)[0].successful, true, res.text));
add('numbers', 'negative timeout advice', (ids) => JSON.stringify([{channel: '/meta/connect', clientId: ids.pub,
  connectionType: 'long-polling', advice: {timeout: -5, interval: -1e18}}, andPublish(ids)]),
  (res, label) => assert.equal(replies(res, label)[0].successful, true, res.text));

// ---- deep nesting -----------------------------------------------------------------------
add('nesting', '33 nested arrays', repeat('[', 33) + repeat(']', 33), expectHttp(400, /nesting too deep/));
add('nesting', '100 000 nested arrays (unterminated)', repeat('[', 100000), expectHttp(400, /nesting too deep/));
add('nesting', 'deep data in a publish', (ids) =>
  `[{"channel":"/a","clientId":"${ids.pub}","data":${repeat('{"a":', 40)}1${repeat('}', 40)}}]`,
  expectHttp(400, /nesting too deep/));

// ---- invalid UTF-8 --------------------------------------------------------------------------
const utf8 = (bytes) => (ids) => Buffer.concat([Buffer.from(`[{"channel":"/a","clientId":"${ids.pub}","data":"x`),
  Buffer.from(bytes), Buffer.from('"}]')]);
add('utf8', 'lone 0xFF', utf8([0xff]), invalidJson);
add('utf8', 'lone continuation byte', utf8([0x80]), invalidJson);
add('utf8', 'truncated sequence', utf8([0xe2, 0x82]), invalidJson);
add('utf8', 'overlong slash', utf8([0xc0, 0xaf]), invalidJson);
add('utf8', 'UTF-8 encoded surrogate', utf8([0xed, 0xa0, 0x80]), invalidJson);
add('utf8', 'past U+10FFFF', utf8([0xf4, 0x90, 0x80, 0x80]), invalidJson);
add('utf8', 'invalid UTF-8 in a channel name', Buffer.from([...Buffer.from('[{"channel":"/a'), 0xff,
  ...Buffer.from('"}]')]), invalidJson);

// ---- NUL bytes ---------------------------------------------------------------------------------
add('nul', 'raw NUL inside a string', (ids) => Buffer.from(`[{"channel":"/a","clientId":"${ids.pub}","data":"a\0b"}]`),
  invalidJson);
add('nul', 'raw NUL after the array', Buffer.from('[{"channel":"/a"}]\0'), invalidJson);
add('nul', 'NUL only', Buffer.from([0]), invalidJson);
add('nul', 'escaped NUL in a channel', (ids) => JSON.stringify([{channel: '/a\u0000/meta', clientId: ids.pub, data: 1}]),
  expectError('405::channel_invalid'));
add('nul', 'escaped NUL after a clientId', (ids) =>
  JSON.stringify([{channel: '/meta/connect', clientId: ids.victim + '\u0000', connectionType: 'long-polling'}]),
  sessionUnknown);
add('nul', 'escaped NUL in data reaches subscribers intact', (ids) =>
  JSON.stringify([{channel: WATCH, clientId: ids.pub, data: {nul: 'a\u0000b'}}]),
  (res, label) => assert.equal(replies(res, label)[0].successful, true, res.text));

// ---- big bodies and batches ----------------------------------------------------------------------
add('size', '10 MB body', () => Buffer.alloc(10 * 1024 * 1024, 0x20), expectHttp(413, /--max-body/));
add('size', '10 MB JSON string', (ids) => `[{"channel":"/a","clientId":"${ids.pub}","data":"${'x'.repeat(10 << 20)}"}]`,
  expectHttp(413, /--max-body/));
add('size', '100 000 empty messages', '[' + Array(100000).fill('{}').join(',') + ']',
  expectHttp(400, /too many messages in one request: 100000 \(limit 4096\)/));
add('size', '100 000 publishes (larger than --max-body)', (ids) =>
  JSON.stringify(Array.from({length: 100000}, () => ({channel: '/a', clientId: ids.pub, data: 1}))),
  expectHttp(413, /--max-body/));
add('size', '4 097 messages (one past --max-batch)', '[' + Array(4097).fill('{}').join(',') + ']',
  expectHttp(400, /too many messages/));

// ---- invalid and hostile channel names ----------------------------------------------------------
for (const ch of ['', 'a', '/', '//', '/a/', '/a//b', '/a/*/b', '/a/b*', '/a/***', '/a b', '/f\u00f6\u00f6',
  '/a\nb', '/' + 'x'.repeat(600), '/a'.repeat(40)]) {
  add('channel', `publish to ${JSON.stringify(ch.length > 40 ? ch.slice(0, 20) + '…' : ch)}`,
    pub(ch), expectError('405::channel_invalid'));
}
add('channel', '/../meta/connect is an ordinary channel (names are never normalised)', pub('/../meta/connect'),
  (res, label) => {
    const r = replies(res, label);
    assert.equal(r[0].channel, '/../meta/connect', res.text);
    assert.equal(r[0].successful, true, res.text);
  });
add('channel', 'publish to a wildcard', pub('/a/*'), expectError('405::channel_invalid'));
add('channel', 'publish to /**', pub('/**'), expectError('405::channel_invalid'));
for (const ch of ['/meta/subscribe/x', '/meta/handshake/x', '/meta', '/meta/*', '/meta/**', '/meta/foo']) {
  add('channel', `message on ${ch}`, pub(ch),
    expectError('403:denied_by_security_policy:channel_create_denied'));
}
add('channel', 'message on /meta/subscribe/ (trailing slash)', pub('/meta/subscribe/'),
  expectError('405::channel_invalid'));
for (const sub of ['/meta/**', '/meta/*', '/meta/connect', '/meta/subscribe']) {
  add('channel', `subscribe to ${sub}`,
    (ids) => JSON.stringify([{channel: '/meta/subscribe', clientId: ids.pub, subscription: sub}]),
    expectError('403:denied_by_security_policy:subscribe_denied'));
}
for (const sub of ['/a/*/b', '/a/', '', '/f\u00f6']) {
  add('channel', `subscribe to ${JSON.stringify(sub)}`,
    (ids) => JSON.stringify([{channel: '/meta/subscribe', clientId: ids.pub, subscription: sub}]),
    expectError('403::subscription_invalid'));
}

// ---- forged client ids ----------------------------------------------------------------------------
const connectAs = (idOf) => (ids) => JSON.stringify([{channel: '/meta/connect', clientId: idOf(ids),
  connectionType: 'long-polling'}]);
add('clientId', 'random 22 characters', connectAs(() => 'A'.repeat(22)), sessionUnknown);
add('clientId', 'a live id with its last character changed',
  connectAs((ids) => ids.victim.slice(0, -1) + (ids.victim.endsWith('a') ? 'b' : 'a')), sessionUnknown);
add('clientId', 'a live id without its last character', connectAs((ids) => ids.victim.slice(0, -1)), sessionUnknown);
add('clientId', 'a live id with one more character', connectAs((ids) => ids.victim + 'a'), sessionUnknown);
add('clientId', 'a live id in upper case', connectAs((ids) => ids.victim.toUpperCase() === ids.victim
  ? ids.victim.toLowerCase() : ids.victim.toUpperCase()), sessionUnknown);
add('clientId', 'empty', connectAs(() => ''), sessionUnknown);
add('clientId', '400 KB', connectAs(() => 'a'.repeat(400 * 1024)), sessionUnknown);
add('clientId', 'unsubscribe someone else (forged id)', (ids) =>
  JSON.stringify([{channel: '/meta/unsubscribe', clientId: ids.victim.slice(0, -1) + (ids.victim.endsWith('0') ? '1' : '0'), subscription: '/victim'}]),
  sessionUnknown);
add('clientId', 'disconnect with a forged id', (ids) =>
  JSON.stringify([{channel: '/meta/disconnect', clientId: (ids.victim[0] === 'x' ? 'y' : 'x') + ids.victim.slice(1)}]),
  sessionUnknown);

// ---- header floods and oversized request lines (raw sockets) ------------------------------------
const flood = (headers) => Buffer.from(`POST ${new URL(daemon.url).pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
  headers + 'Content-Type: application/json\r\nContent-Length: 2\r\n\r\n[]');
const rawCase = (name, bytes, re) => CASES.push({group: 'headers', name, raw: bytes, check: (text, label) => {
  assert.match(text, re, `${label}: ${text.slice(0, 200)}`);
}});
rawCase('2 000 headers', () => flood(Array.from({length: 2000}, (_, i) => `X-Flood-${i}: ${'v'.repeat(40)}\r\n`).join('')),
  /^HTTP\/1\.1 431 /);
rawCase('one 70 KB header', () => flood(`X-Big: ${'a'.repeat(70000)}\r\n`), /^HTTP\/1\.1 431 /);
rawCase('300 cookies', () => flood(`Cookie: ${'BAYEUX_BROWSER=x; '.repeat(300)}\r\n`), /^HTTP\/1\.1 431 /);
rawCase('20 KB URL', () => Buffer.from(`GET ${new URL(daemon.url).pathname}?jsonp=cb&message=${'a'.repeat(20000)} ` +
  'HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'), /^HTTP\/1\.1 (414|431) /);
// Not HTTP: answered 4xx/505, or dropped without an answer.
rawCase('garbage request line', () => Buffer.from('\x00\x01\x02 / HTTP/9.9\r\n\r\n'), /^(HTTP\/1\.1 (4\d\d|505) |$)/);
rawCase('unknown HTTP version', () => Buffer.from('GET / HTTP/9.9\r\nHost: x\r\n\r\n'), /^(HTTP\/1\.1 505 |$)/);
rawCase('bad Content-Length', () => Buffer.from(`POST ${new URL(daemon.url).pathname} HTTP/1.1\r\nHost: x\r\n` +
  'Content-Length: -1\r\n\r\n[]'), /^HTTP\/1\.1 400 /);

// --------------------------------------------------------------------------------------------------
describe('bad input: each case gets its documented answer and other clients keep receiving', () => {
  for (const c of CASES) {
    test(`${c.group}: ${c.name}`, {timeout: 60000}, async () => {
      const ids = {pub: publisher.clientId, victim: victim.clientId};
      const label = `${c.group}: ${c.name}`;
      await othersKeepReceiving(async () => {
        if (c.raw) {
          const text = await rawHttp(c.raw());
          c.check(text, label);
          return;
        }
        const body = typeof c.body === 'function' ? c.body(ids) : c.body;
        const res = await post(body);
        c.check(res, label);
      });
    });
  }

  test('the victim session survived every forged-id case and still receives', {timeout: 20000}, async () => {
    const r = await publisher.exchange([publisher.publishMessage('/victim', {still: 'here'})]);
    assert.equal(r[0].successful, true);
    const res = await victim.connect({advice: {timeout: 0}});
    assert.ok(res.json?.some((m) => m.channel === '/victim' && m.data?.still === 'here'), res.text);
  });

  test('the whole table raised the daemon\'s RSS by less than 50 MB', (t) => {
    clearInterval(rssTimer);
    const end = rssNow();
    rssPeak = Math.max(rssPeak, end);
    const msg = `RSS ${(rssBase / MB).toFixed(1)} MB before the table, peak ${(rssPeak / MB).toFixed(1)} MB, ` +
      `${(end / MB).toFixed(1)} MB after`;
    t.diagnostic(msg);
    console.log(`# bad input: ${msg}`);
    assert.ok(rssPeak - rssBase < 50 * MB, msg);
  });

  test('U+0000 in data reached the watcher intact', {timeout: 20000}, async () => {
    const r = await publisher.exchange([publisher.publishMessage(WATCH, {nul: 'c\u0000d'})]);
    assert.equal(r[0].successful, true);
    const res = await watcher.connect({advice: {timeout: 0}});
    assert.ok(res.json?.some((m) => m.data?.nul === 'c\u0000d'), res.text);
  });
});

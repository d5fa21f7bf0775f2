// Raw HTTP access to a Bayeux endpoint: exact bytes in, exact status/headers/body out.
// Each request uses its own TCP connection (agent: false), so a held /meta/connect never
// blocks another request. Only 127.0.0.1 is ever contacted (the daemon's own URL).
import http from 'node:http';
import {SLOW} from './daemon.mjs';

/**
 * Send one HTTP request. body: string | Buffer | object (JSON-encoded) | undefined.
 * Resolves {status, headers, text, json, elapsedMs}; json is the parsed body or undefined.
 */
export function request(url, {method = 'POST', body, headers = {}, timeoutMs = 10000, signal} = {}) {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') {
    throw new Error(`refusing to send test traffic to ${u.hostname}`);
  }
  let payload;
  if (body === undefined) payload = undefined;
  else if (typeof body === 'string' || Buffer.isBuffer(body)) payload = body;
  else payload = JSON.stringify(body);
  const hdrs = {...headers};
  if (payload !== undefined) {
    if (!Object.keys(hdrs).some((h) => h.toLowerCase() === 'content-type')) {
      hdrs['Content-Type'] = 'application/json;charset=UTF-8';
    }
    hdrs['Content-Length'] = Buffer.byteLength(payload);
  }
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      hostname: u.hostname, port: u.port, path: u.pathname + u.search, method,
      headers: hdrs, agent: false, signal,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({status: res.statusCode, headers: res.headers, text, json,
          elapsedMs: performance.now() - started});
      });
      res.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no response to ${method} ${url} within ${timeoutMs * SLOW} ms`));
    }, timeoutMs * SLOW);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

let nextId = 0;
export function newId() {
  nextId += 1;
  return `m${nextId}`;
}

/**
 * A Bayeux session driven by hand, like one browser: it keeps its own cookie jar
 * (BAYEUX_BROWSER) and sends it back on every request.
 */
export class RawSession {
  constructor(url) {
    this.url = url;
    this.cookies = new Map();
    this.clientId = undefined;
  }

  cookieHeader() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** POST messages (array or single object); return the raw response. */
  async post(messages, {path = '', timeoutMs = 10000, headers = {}} = {}) {
    const h = {...headers};
    if (this.cookies.size) h.Cookie = this.cookieHeader();
    const res = await request(this.url + path, {body: messages, headers: h, timeoutMs});
    const setCookie = res.headers['set-cookie'] || [];
    for (const c of setCookie) {
      const [nv] = c.split(';');
      const eq = nv.indexOf('=');
      if (eq > 0) this.cookies.set(nv.slice(0, eq).trim(), nv.slice(eq + 1).trim());
    }
    return res;
  }

  /** POST and require HTTP 200 with a JSON array body; return the array. */
  async exchange(messages, opts) {
    const res = await this.post(messages, opts);
    if (res.status !== 200 || !Array.isArray(res.json)) {
      throw new Error(`expected HTTP 200 with a JSON array, got ${res.status}: ${res.text.slice(0, 500)}`);
    }
    return res.json;
  }

  async handshake(extra = {}) {
    const msg = {channel: '/meta/handshake', version: '1.0', minimumVersion: '1.0',
      supportedConnectionTypes: ['long-polling'], id: newId(), ...extra};
    const replies = await this.exchange([msg], {path: '/handshake'});
    const reply = replies.find((m) => m.channel === '/meta/handshake');
    if (!reply || reply.successful !== true) {
      throw new Error(`handshake failed: ${JSON.stringify(replies)}`);
    }
    this.clientId = reply.clientId;
    return reply;
  }

  connectMessage(extra = {}) {
    return {channel: '/meta/connect', clientId: this.clientId, connectionType: 'long-polling',
      id: newId(), ...extra};
  }

  /** One /meta/connect; resolves the full response (status, json, elapsedMs). */
  connect(extra = {}, opts = {}) {
    return this.post([this.connectMessage(extra)], {path: '/connect', ...opts});
  }

  async subscribe(subscription) {
    const msg = {channel: '/meta/subscribe', clientId: this.clientId, subscription, id: newId()};
    const replies = await this.exchange([msg]);
    const reply = replies.find((m) => m.channel === '/meta/subscribe' && m.id === msg.id);
    if (!reply || reply.successful !== true) {
      throw new Error(`subscribe ${JSON.stringify(subscription)} failed: ${JSON.stringify(replies)}`);
    }
    return reply;
  }

  publishMessage(channel, data, extra = {}) {
    return {channel, data, clientId: this.clientId, id: newId(), ...extra};
  }

  async publish(channel, data) {
    const msg = this.publishMessage(channel, data);
    const replies = await this.exchange([msg]);
    return {msg, replies};
  }

  async disconnect() {
    const msg = {channel: '/meta/disconnect', clientId: this.clientId, id: newId()};
    return this.exchange([msg], {path: '/disconnect'});
  }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// A raw RFC 6455 client over a plain TCP socket, for the wire tests: our own tiny
// frame encoder and decoder, so a test can send what no library would (unmasked frames,
// invalid UTF-8, oversized messages) and see exactly what the server sends back
// (close codes, pings it does not answer). Only 127.0.0.1 is ever contacted.
import crypto from 'node:crypto';
import net from 'node:net';
import {SLOW} from './daemon.mjs';

/** Encode one frame. opts: {fin=true, mask=true, rsv=0}. payload: Buffer | string. */
export function encodeFrame(opcode, payload = Buffer.alloc(0), {fin = true, mask = true, rsv = 0} = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = data.length;
  let head;
  if (len < 126) {
    head = Buffer.alloc(2);
    head[1] = len;
  } else if (len < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([head, key, body]);
}

/** Decode as many complete frames as buf holds: {frames: [{fin, opcode, payload}], rest}. */
export function decodeFrames(buf) {
  const frames = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off];
    const b1 = buf[off + 1];
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length - p < 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    let key;
    if (masked) {
      if (buf.length - p < 4) break;
      key = buf.subarray(p, p + 4);
      p += 4;
    }
    if (buf.length - p < len) break;
    let payload = Buffer.from(buf.subarray(p, p + len));
    if (masked) for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
    frames.push({fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload});
    off = p + len;
  }
  return {frames, rest: buf.subarray(off)};
}

/**
 * Open a socket and send an upgrade request. Resolves {status, headers, ws} where ws is
 * a RawWs when the status is 101 (else the socket is closed).
 */
export function upgrade(url, {headers = {}, key = crypto.randomBytes(16).toString('base64'),
  timeoutMs = 5000} = {}) {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') {
    throw new Error(`refusing to send test traffic to ${u.hostname}`);
  }
  const hdrs = {
    Host: u.host, Upgrade: 'websocket', Connection: 'Upgrade',
    'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', ...headers,
  };
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('no upgrade answer')); },
      timeoutMs * SLOW);
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('connect', () => {
      let req = `GET ${u.pathname}${u.search} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(hdrs)) if (v !== undefined) req += `${k}: ${v}\r\n`;
      sock.write(`${req}\r\n`);
    });
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const headers = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      if (status !== 101) {
        // Read the body too (Content-Length), then close.
        const body = buf.subarray(end + 4);
        const want = Number(headers['content-length'] || 0);
        if (body.length < want) return;
        clearTimeout(timer);
        sock.off('data', onData);
        sock.destroy();
        resolve({status, headers, text: body.toString('utf8'), ws: null});
        return;
      }
      clearTimeout(timer);
      sock.off('data', onData);
      resolve({status, headers, key, ws: new RawWs(sock, buf.subarray(end + 4))});
    };
    sock.on('data', onData);
  });
}

/** An upgraded socket: send frames, await frames, see the end. */
export class RawWs {
  constructor(sock, initial) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    this.closedPromise = new Promise((resolve) => { this.onClosed = resolve; });
    sock.on('data', (d) => this.feed(d));
    sock.on('close', () => { this.closed = true; this.onClosed(); this.notify(); });
    sock.on('error', () => {});
    if (initial.length) this.feed(initial);
  }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    const {frames, rest} = decodeFrames(this.buf);
    this.buf = Buffer.from(rest);
    this.frames.push(...frames);
    this.notify();
  }

  notify() {
    this.waiters = this.waiters.filter((w) => !w());
  }

  send(opcode, payload, opts) { this.sock.write(encodeFrame(opcode, payload, opts)); }
  sendText(text, opts) { this.send(1, Buffer.from(text, 'utf8'), opts); }
  sendJson(value) { this.sendText(JSON.stringify(value)); }
  raw(bytes) { this.sock.write(bytes); }

  /** Resolve with the first frame (removed from the list) matching pred. */
  next(pred = () => true, ms = 5000, what = 'a frame') {
    const limit = ms * SLOW;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`${what}: none within ${limit} ms (frames: ${this.frames.map((f) => f.opcode).join(',')})`));
      }, limit);
      const check = () => {
        const i = this.frames.findIndex(pred);
        if (i >= 0) {
          clearTimeout(timer);
          resolve(this.frames.splice(i, 1)[0]);
          return true;
        }
        if (this.closed) {
          clearTimeout(timer);
          reject(new Error(`${what}: socket closed first`));
          return true;
        }
        return false;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  /** Next text frame as parsed JSON (an array of messages). */
  async nextJson(pred = () => true, ms = 5000, what = 'a text frame') {
    const f = await this.next((fr) => fr.opcode === 1 && pred(JSON.parse(fr.payload.toString('utf8'))), ms, what);
    return JSON.parse(f.payload.toString('utf8'));
  }

  /** The close frame's {code, reason}. */
  async nextClose(ms = 5000) {
    const f = await this.next((fr) => fr.opcode === 8, ms, 'a close frame');
    return {code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : undefined,
      reason: f.payload.subarray(2).toString('utf8')};
  }

  /** Resolve when the TCP connection is closed (or reject after ms). */
  waitClosed(ms = 5000) {
    let timer;
    return Promise.race([
      this.closedPromise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('socket not closed')), ms * SLOW); }),
    ]).finally(() => clearTimeout(timer));
  }

  destroy() { this.sock.destroy(); }
}

export function acceptFor(key) {
  return crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

// A Server-Sent Events reader for tests: opens one stream over its own TCP connection
// (127.0.0.1 only), parses the text/event-stream format as it arrives (events, comments,
// retry), and lets a test wait for what it expects. Also an EventSource-like client that
// reconnects with Last-Event-ID after the stream ends, as browsers do.
import http from 'node:http';
import net from 'node:net';
import {SLOW} from './daemon.mjs';

/** Parses SSE text incrementally; calls onEvent({id, data, event}), onComment(text), onRetry(ms). */
export class SseParser {
  constructor({onEvent, onComment, onRetry}) {
    this.buf = '';
    this.data = [];
    this.id = undefined;
    this.event = undefined;
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.onRetry = onRetry;
  }

  push(text) {
    this.buf += text;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) return;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        this.onEvent({id: this.id, event: this.event || 'message', data: this.data.join('\n')});
      }
      this.data = [];
      this.event = undefined;
      return;
    }
    if (line.startsWith(':')) {
      this.onComment(line.slice(1));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    else if (field === 'event') this.event = value;
    else if (field === 'retry') this.onRetry(Number(value));
  }
}

/**
 * Opens GET url as an event stream. Resolves once the response headers arrived with
 * {status, headers, events, comments, retry, raw, ended, waitFor(pred, ms), close()}.
 * A non-200 answer resolves too, with its body in `raw` once `ended`.
 */
export function openStream(url, {headers = {}, timeoutMs = 5000} = {}) {
  const u = new URL(url);
  if (u.hostname !== '127.0.0.1') throw new Error(`refusing to connect to ${u.hostname}`);
  return new Promise((resolve, reject) => {
    const req = http.request({hostname: u.hostname, port: u.port, path: u.pathname + u.search,
      method: 'GET', agent: false, headers: {Accept: 'text/event-stream', ...headers}}, (res) => {
      clearTimeout(timer);
      const s = {
        status: res.statusCode, headers: res.headers, events: [], comments: [], retry: undefined,
        raw: '', ended: false, error: undefined, chunks: 0, lastEventId: undefined,
        waiters: new Set(),
        check() { for (const w of s.waiters) w(); },
        /** Resolves when pred(s) is true; rejects after ms. */
        waitFor(pred, ms = 5000, what = 'condition') {
          return new Promise((res2, rej2) => {
            const w = () => {
              if (!pred(s)) return;
              s.waiters.delete(w);
              clearTimeout(t);
              res2(s);
            };
            const t = setTimeout(() => {
              s.waiters.delete(w);
              rej2(new Error(`timed out after ${ms * SLOW} ms waiting for ${what}; ` +
                `${s.events.length} events, ${s.comments.length} comments, ended ${s.ended}; ` +
                `raw tail: ${JSON.stringify(s.raw.slice(-300))}`));
            }, ms * SLOW);
            s.waiters.add(w);
            w();
          });
        },
        /** Drops the connection abruptly (no FIN handshake of the stream's end). */
        close() { req.destroy(); },
      };
      const parser = new SseParser({
        onEvent: (e) => { s.events.push(e); if (e.id !== undefined) s.lastEventId = e.id; },
        onComment: (c) => s.comments.push(c),
        onRetry: (ms) => { s.retry = ms; },
      });
      res.setEncoding('utf8');
      res.on('data', (d) => { s.raw += d; s.chunks += 1; parser.push(d); s.check(); });
      res.on('end', () => { s.ended = true; s.check(); });
      res.on('error', (e) => { s.error = e; s.ended = true; s.check(); });
      res.on('close', () => { s.ended = true; s.check(); });
      resolve(s);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer to GET ${url}`)), timeoutMs * SLOW);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end();
  });
}

/**
 * Like a browser's EventSource: reads url, and whenever the stream ends, waits for the
 * server's retry delay and reconnects with Last-Event-ID. events gathers every event of
 * every stream; streams counts the streams opened. stop() closes it.
 */
export function eventSource(url, {headers = {}} = {}) {
  const es = {events: [], streams: 0, statuses: [], stopped: false, current: null, lastEventId: undefined};
  const loop = async () => {
    while (!es.stopped) {
      const h = {...headers};
      if (es.lastEventId !== undefined) h['Last-Event-ID'] = es.lastEventId;
      let s;
      try {
        s = await openStream(url, {headers: h});
      } catch (e) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      es.current = s;
      es.streams += 1;
      es.statuses.push(s.status);
      if (s.status !== 200) return; // EventSource gives up on an HTTP error
      let seen = 0;
      const take = () => {
        for (; seen < s.events.length; seen++) {
          es.events.push(s.events[seen]);
          if (s.events[seen].id !== undefined) es.lastEventId = s.events[seen].id;
        }
      };
      s.waiters.add(take);
      take(); // events that arrived with the headers
      await s.waitFor((x) => x.ended || es.stopped, 3600000, 'stream end');
      take();
      if (es.stopped) { s.close(); return; }
      await new Promise((r) => setTimeout(r, s.retry ?? 1000));
    }
  };
  es.done = loop();
  es.stop = async () => { es.stopped = true; es.current?.close(); es.current?.check(); await es.done; };
  return es;
}

/**
 * One HTTP/1.0 GET over a raw socket; resolves {head, body, closed} once the server closes
 * the connection (or rejects after ms).
 */
export function http10Get(port, path, ms = 5000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({host: '127.0.0.1', port});
    let data = '';
    const t = setTimeout(() => { sock.destroy(); reject(new Error(`HTTP/1.0 GET ${path}: no EOF within ${ms * SLOW} ms; got ${JSON.stringify(data.slice(0, 600))}`)); }, ms * SLOW);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`GET ${path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`));
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => {
      clearTimeout(t);
      const i = data.indexOf('\r\n\r\n');
      resolve({head: data.slice(0, i), body: data.slice(i + 4), closed: true});
    });
    sock.on('error', (e) => { clearTimeout(t); reject(e); });
  });
}

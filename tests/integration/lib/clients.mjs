// The real clients our users run, wrapped in promises for the tests:
//   - the official CometD JavaScript client (npm cometd) in Node through
//     cometd-nodejs-client, WebSocket transport unregistered so it long-polls;
//   - the Faye client (npm faye) with WebSocket (and EventSource) disabled.
//
// Each CometD client gets its own cookie jar (its own BAYEUX_BROWSER), like separate
// browsers; pass {sharedCookies: true} to model several tabs of one browser instead.
import {adapt} from 'cometd-nodejs-client';
import {CometD} from 'cometd';
import faye from 'faye';
import {SLOW} from './daemon.mjs';

const globalJar = {};

function jarFor(context) {
  return (context && context.cookieStore) || globalJar;
}

// The adapter's cookie hooks: retrieveCookies() sees the transport's context, storeCookie()
// only the request's URL object, which is the same object for one request; remember the
// jar on it so Set-Cookie lands in the jar of the client that made the request.
adapt({
  cookies: {
    retrieveCookies(context, uri, callback) {
      const jar = jarFor(context);
      uri.bayeuxTestJar = jar;
      const host = jar[uri.hostname] || {};
      callback(null, Object.values(host));
    },
    storeCookie(uri, header, callback) {
      const jar = uri.bayeuxTestJar || globalJar;
      const nameValue = header.split(';')[0].trim();
      const eq = nameValue.indexOf('=');
      if (eq > 0) {
        const host = jar[uri.hostname] || (jar[uri.hostname] = {});
        host[nameValue.slice(0, eq)] = nameValue;
      }
      callback();
    },
  },
});

export function withTimeout(promise, ms, what) {
  let timer;
  const limit = ms * SLOW;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${limit} ms`)), limit);
    }),
  ]).finally(() => clearTimeout(timer));
}

let clientCounter = 0;

/** A CometD JS client with promise-returning operations. */
export class CometDClient {
  constructor(url, {sharedCookies = false, logLevel = 'warn', config = {}, websocket = false} = {}) {
    clientCounter += 1;
    this.url = url;
    this.cometd = new CometD(`test-${clientCounter}`);
    // websocket: keep CometD's default transports (WebSocket first).
    if (!websocket) this.cometd.unregisterTransport('websocket');
    const lp = this.cometd.findTransport('long-polling');
    this.cookies = sharedCookies ? globalJar : {};
    lp.context = {cookieStore: this.cookies};
    this.cometd.configure({url, logLevel, ...config});
    this.handshakeReply = undefined;
    this.metaConnects = [];
    // Every non-meta message the server sends, as it arrived on the wire (before the
    // client's own channel matching, which would hide a wrong delivery).
    this.received = [];
    this.cometd.registerExtension('test-recorder', {
      incoming: (m) => {
        if (typeof m.channel === 'string' && !m.channel.startsWith('/meta/') && m.data !== undefined) {
          this.received.push(m);
        }
        return m;
      },
    });
    this.cometd.addListener('/meta/connect', (m) => { this.metaConnects.push(m); });
  }

  get clientId() {
    return this.cometd.getClientId();
  }

  transportType() {
    const t = this.cometd.getTransport();
    return t && t.type;
  }

  /** Handshake; resolves with the successful handshake reply, rejects on failure. */
  handshake(props, ms = 10000) {
    return withTimeout(new Promise((resolve, reject) => {
      this.cometd.handshake(props, (reply) => {
        this.handshakeReply = reply;
        if (reply.successful) resolve(reply);
        else {
          this.cometd.disconnect();
          reject(new Error(`handshake failed: ${JSON.stringify(reply)}`));
        }
      });
    }), ms, 'CometD handshake');
  }

  /** Wait for the next successful /meta/connect reply (e.g. the first one after handshake). */
  waitConnected(ms = 10000) {
    if (this.metaConnects.some((m) => m.successful)) return Promise.resolve();
    return withTimeout(new Promise((resolve) => {
      const sub = this.cometd.addListener('/meta/connect', (m) => {
        if (m.successful) {
          this.cometd.removeListener(sub);
          resolve(m);
        }
      });
    }), ms, 'CometD first /meta/connect');
  }

  /**
   * Subscribe; onMessage(message) receives each delivery (full message: channel, data...).
   * Resolves with {handle, reply} when the server's subscribe reply arrives.
   */
  subscribe(channel, onMessage, ms = 10000) {
    return withTimeout(new Promise((resolve, reject) => {
      const handle = this.cometd.subscribe(channel, onMessage, (reply) => {
        if (reply.successful) resolve({handle, reply});
        else reject(Object.assign(new Error(`subscribe ${channel} failed: ${JSON.stringify(reply)}`), {reply}));
      });
    }), ms, `CometD subscribe ${channel}`);
  }

  /** Unsubscribe; resolves with the server's reply. */
  unsubscribe(handle, ms = 10000) {
    return withTimeout(new Promise((resolve, reject) => {
      this.cometd.unsubscribe(handle, (reply) => {
        if (reply.successful) resolve(reply);
        else reject(Object.assign(new Error(`unsubscribe failed: ${JSON.stringify(reply)}`), {reply}));
      });
    }), ms, 'CometD unsubscribe');
  }

  /** Publish; resolves with the publish reply (rejects if unsuccessful). */
  publish(channel, data, ms = 10000) {
    return withTimeout(new Promise((resolve, reject) => {
      this.cometd.publish(channel, data, (reply) => {
        if (reply.successful) resolve(reply);
        else reject(Object.assign(new Error(`publish ${channel} failed: ${JSON.stringify(reply)}`), {reply}));
      });
    }), ms, `CometD publish ${channel}`);
  }

  /** Disconnect; resolves with the disconnect reply. */
  disconnect(ms = 10000) {
    if (this.cometd.isDisconnected()) return Promise.resolve(undefined);
    return withTimeout(new Promise((resolve) => {
      this.cometd.disconnect((reply) => resolve(reply));
    }), ms, 'CometD disconnect');
  }
}

/** A Faye client with WebSocket/EventSource disabled, with promise-returning operations. */
export class FayeClient {
  constructor(url, {timeout = 60, retry = 1, websocket = false} = {}) {
    this.url = url;
    this.client = new faye.Client(url, {timeout, retry});
    // websocket: Faye may upgrade to its WebSocket transport after the handshake.
    for (const t of [...(websocket ? [] : ['websocket']), 'eventsource', 'callback-polling', 'in-process']) {
      this.client.disable(t);
    }
    this.incoming = [];
    // Every non-meta delivery as it arrived on the wire (before Faye's channel matching).
    this.received = [];
    this.metaWaiters = [];
    // Watch every incoming message: replies to meta channels settle waiters.
    this.client.addExtension({
      incoming: (message, callback) => {
        this.incoming.push(message);
        if (typeof message.channel === 'string' && !message.channel.startsWith('/meta/') &&
            message.data !== undefined) {
          this.received.push(message);
        }
        this.metaWaiters = this.metaWaiters.filter((w) => {
          if (w.match(message)) { w.resolve(message); return false; }
          return true;
        });
        callback(message);
      },
    });
  }

  get clientId() {
    return this.client._dispatcher.clientId;
  }

  transportType() {
    return this.client._dispatcher.connectionType;
  }

  waitIncoming(match, ms = 10000, what = 'Faye message') {
    return withTimeout(new Promise((resolve) => {
      this.metaWaiters.push({match, resolve});
    }), ms, what);
  }

  handshake(ms = 10000) {
    const hs = this.waitIncoming((m) => m.channel === '/meta/handshake', ms, 'Faye handshake');
    this.client.handshake(() => {});
    return hs.then((reply) => {
      if (!reply.successful) throw new Error(`handshake failed: ${JSON.stringify(reply)}`);
      return reply;
    });
  }

  /**
   * Subscribe; onMessage(channel, data) for each delivery. Resolves with the Faye
   * subscription wrapped as {sub} (a Faye subscription is itself a thenable) when the
   * server's subscribe reply arrives.
   */
  async subscribe(channel, onMessage, ms = 10000) {
    const sub = this.client.subscribe(channel).withChannel(onMessage);
    await withTimeout(new Promise((resolve, reject) => sub.then(resolve, reject)), ms,
      `Faye subscribe ${channel}`);
    return {sub};
  }

  /** Unsubscribe; resolves with the server's /meta/unsubscribe reply. */
  unsubscribe({sub}, channel, ms = 10000) {
    const reply = this.waitIncoming(
      (m) => m.channel === '/meta/unsubscribe' && [].concat(m.subscription).includes(channel),
      ms, `Faye unsubscribe ${channel}`);
    sub.cancel();
    return reply.then((m) => {
      if (!m.successful) throw new Error(`unsubscribe failed: ${JSON.stringify(m)}`);
      return m;
    });
  }

  publish(channel, data, ms = 10000) {
    const pub = this.client.publish(channel, data);
    return withTimeout(new Promise((resolve, reject) => pub.then(resolve, reject)), ms,
      `Faye publish ${channel}`);
  }

  async disconnect(ms = 10000) {
    const p = this.client.disconnect();
    if (p) await withTimeout(new Promise((resolve, reject) => p.then(resolve, reject)), ms, 'Faye disconnect');
  }
}

/** Resolve when pred() becomes true (polled), or reject after ms. */
export function waitFor(pred, ms = 10000, what = 'condition') {
  const limit = ms * SLOW;
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      let ok = false;
      try { ok = pred(); } catch (e) { reject(e); return; }
      if (ok) resolve();
      else if (Date.now() - start > limit) reject(new Error(`${what}: not true within ${limit} ms`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A channel name unique within this process run, e.g. /test/roundtrip/k3. */
let channelCounter = 0;
export function uniqueChannel(prefix) {
  channelCounter += 1;
  return `${prefix}/c${process.pid}x${channelCounter}`;
}

// replay-extension.js — a CometD client extension for bayeuxd's history and
// replay (README "History and replay"): it remembers the last replay id it
// received on every channel and, when the client subscribes again (after a
// new handshake: a long outage, a broker restart), asks for what came after
// it, so the page gets what it missed, in order, with no duplicate.
//
//   import {ReplayExtension} from './replay-extension.js';
//   cometd.registerExtension('replay', new ReplayExtension({initial: -1}));
//
// Wire (Salesforce's shape): the handshake reply carries ext.replay: true
// when the broker retains history; a /meta/subscribe carries
// ext.replay: {"<subscription>": id, ...} (-2: all retained, -1: only new).
// For a wildcard subscription the map also names each channel under it that
// this page has seen, with its own last id (ids are per channel). A subscribe
// reply may carry ext.replayGap: {"<channel>": {after, resumedFrom}} when what
// was asked for is no longer retained; onGap is called with it.
//
// Options:
//   initial  what a first subscription asks for: -1 (only new, the default)
//            or -2 (everything retained)
//   storage  a Storage (e.g. window.sessionStorage) to keep the ids in, so a
//            reloaded page resumes too; default none
//   key      the storage key, default 'bayeux-replay'
//   onGap    function (channel, {after, resumedFrom}) called per gap

function isWild(pattern) {
  return pattern.endsWith('/*') || pattern.endsWith('/**');
}

function matches(pattern, channel) {
  if (pattern.endsWith('/**')) return channel.startsWith(pattern.slice(0, -2));
  if (pattern.endsWith('/*')) {
    const pre = pattern.slice(0, -1);
    return channel.startsWith(pre) && channel.length > pre.length &&
      !channel.slice(pre.length).includes('/');
  }
  return pattern === channel;
}

export class ReplayExtension {
  #cometd = null;
  #serverReplays = false;
  #last = new Map(); // channel -> last replay id received
  #subscribed = new Set(); // subscriptions made since the page started
  #opts;

  constructor(opts = {}) {
    this.#opts = {initial: -1, key: 'bayeux-replay', ...opts};
    const s = this.#opts.storage;
    if (s) {
      try {
        const saved = JSON.parse(s.getItem(this.#opts.key) || '{}');
        for (const [ch, id] of Object.entries(saved.last || {})) {
          if (Number.isSafeInteger(id)) this.#last.set(ch, id);
        }
        for (const sub of saved.subscribed || []) this.#subscribed.add(String(sub));
      } catch {
        // a corrupt entry is as good as none
      }
    }
  }

  /** True once a handshake reply said the broker retains history. */
  get serverReplays() {
    return this.#serverReplays;
  }

  /** The last replay id received on channel, or undefined. */
  lastId(channel) {
    return this.#last.get(channel);
  }

  registered(name, cometd) {
    this.#cometd = cometd;
  }

  unregistered() {
    this.#cometd = null;
  }

  #save() {
    const s = this.#opts.storage;
    if (!s) return;
    try {
      s.setItem(this.#opts.key, JSON.stringify({
        last: Object.fromEntries(this.#last),
        subscribed: [...this.#subscribed],
      }));
    } catch {
      // full or forbidden storage: keep going in memory
    }
  }

  outgoing(message) {
    if (message.channel === '/meta/handshake') {
      message.ext = {...(message.ext || {}), replay: true};
    } else if (message.channel === '/meta/subscribe' && this.#serverReplays) {
      const subs = Array.isArray(message.subscription)
        ? message.subscription : [message.subscription];
      const map = {};
      for (const sub of subs) {
        if (typeof sub !== 'string') continue;
        const known = this.#last.get(sub);
        // Subscribed before and nothing received: everything retained since
        // is news to this page only if it was subscribed; ask for all (-2)
        // only then, else the initial choice.
        map[sub] = known !== undefined ? known
          : this.#subscribed.has(sub) && !isWild(sub) ? -2 : this.#opts.initial;
        if (isWild(sub)) {
          for (const [ch, id] of this.#last) if (matches(sub, ch)) map[ch] = id;
        }
        this.#subscribed.add(sub);
      }
      message.ext = {...(message.ext || {}), replay: map};
      this.#save();
    }
    return message;
  }

  incoming(message) {
    const ch = message.channel;
    if (ch === '/meta/handshake') {
      if (message.successful) this.#serverReplays = !!(message.ext && message.ext.replay === true);
    } else if (ch === '/meta/subscribe') {
      const gaps = message.ext && message.ext.replayGap;
      if (gaps && typeof this.#opts.onGap === 'function') {
        for (const [c, g] of Object.entries(gaps)) this.#opts.onGap(c, g);
      }
    } else if (typeof ch === 'string' && !ch.startsWith('/meta/')) {
      const id = message.ext && message.ext.replayId;
      if (Number.isSafeInteger(id) && !(this.#last.get(ch) >= id)) {
        this.#last.set(ch, id);
        this.#save();
      }
    }
    return message;
  }
}

// chat.js — the demo chat, shared by index.html (same origin, CometD's default
// transports: WebSocket, falling back to long polling) and
// cross-origin.html (another origin: callback polling or CORS long polling).
//
// Channels (PROTOCOL.md §5):
//   /chat/<room>       chat lines   {user, text}
//   /presence/<room>   who is here  {user, id, action: "hello" | "here" | "bye"}
// The members list is a presence channel kept by the clients themselves: each
// page says "hello" when it (re)subscribes, answers a "hello" with "here",
// repeats "here" every HEARTBEAT_MS and says "bye" when it leaves; a member not
// heard from for EXPIRE_MS is dropped. No server code is needed.
//
// The CometD client is the official one (npm "cometd"), served by bayeuxd at
// /vendor/cometd/ (--web-mount /vendor/cometd=node_modules/cometd).
import {CometD} from '/vendor/cometd/cometd.js';
// History and replay (README "History and replay"): when bayeuxd runs with
// --retain '/chat/**=...', a page that comes back after an outage (its session
// expired, the broker restarted) gets the chat lines it missed.
import {ReplayExtension} from './replay-extension.js';

// ?heartbeat=MS changes the presence heartbeat (the browser tests quiet it).
const HEARTBEAT_MS = Math.max(1000, Number(new URLSearchParams(location.search).get('heartbeat')) || 5000);
const EXPIRE_MS = HEARTBEAT_MS * 2 + 2000;
const ROOM_RE = /^[A-Za-z0-9_-]{1,40}$/;

/** The room named by ?room=, or "lobby". */
export function roomFromQuery() {
  const r = new URLSearchParams(location.search).get('room') || 'lobby';
  return ROOM_RE.test(r) ? r : 'lobby';
}

function randomName() {
  return 'guest-' + Math.floor(Math.random() * 9000 + 1000);
}

/**
 * Starts a chat in `ui` (an object of DOM elements: status, transport, members,
 * messages, form, text, name) against the Bayeux endpoint `url`, using only the
 * given transport types (undefined: CometD's defaults, WebSocket first). Returns {stop(), state}; `state` is also what the
 * browser tests read (window.chat).
 */
export function startChat({url, transports, room, ui, logLevel = 'warn'}) {
  const cometd = new CometD();
  // Only the transports asked for, if any; else CometD's defaults (bayeuxd
  // offers websocket, long-polling and callback-polling).
  for (const t of transports ? cometd.getTransportTypes() : []) {
    if (!transports.includes(t)) cometd.unregisterTransport(t);
  }
  cometd.configure({url, logLevel});
  // The last replay id per channel lives in sessionStorage, so a reloaded tab
  // resumes too; a gap (lines no longer kept) is said in the chat.
  let storage = null;
  try { storage = window.sessionStorage; } catch { /* storage off: memory only */ }
  const replay = new ReplayExtension({
    storage, key: `bayeux-replay-${room}`,
    onGap: (ch, g) => addLine('(broker)', `older lines of ${ch} are no longer kept; ` +
      `showing from #${g.resumedFrom}`, false),
  });
  cometd.registerExtension('replay', replay);

  const me = {id: Math.random().toString(36).slice(2, 10)};
  const state = {
    status: 'connecting',
    transport: '',
    room,
    handshakes: 0,
    handshakeFailures: 0, // failed handshake replies seen by the page
    connected: false,
    multipleClients: false,
    interval: 0,
    messages: [], // {user, text, mine}
    members: new Map(), // id -> {user, seen}
  };
  const subs = [];
  let heartbeat = null;

  const userName = () => (ui.name.value.trim() || randomName()).slice(0, 40);
  if (!ui.name.value) {
    ui.name.value = (new URLSearchParams(location.search).get('name') || '').slice(0, 40) ||
      randomName();
  }

  function render() {
    ui.status.textContent = state.status;
    ui.status.dataset.status = state.connected ? 'connected' : 'disconnected';
    ui.transport.textContent = state.transport
      ? state.transport + (state.multipleClients
        ? ` — another tab of this browser holds the connection; polling every ${state.interval / 1000} s`
        : '')
      : '';
    const now = Date.now();
    for (const [id, m] of state.members) {
      if (id !== me.id && now - m.seen > EXPIRE_MS) state.members.delete(id);
    }
    ui.members.replaceChildren(...[...state.members.values()]
      .map((m) => m.user).sort()
      .map((u) => {
        const li = document.createElement('li');
        li.textContent = u;
        return li;
      }));
  }

  function addLine(user, text, mine) {
    state.messages.push({user, text, mine});
    const li = document.createElement('li');
    if (mine) li.className = 'mine';
    const who = document.createElement('b');
    who.textContent = user + ': ';
    li.append(who, document.createTextNode(text)); // never innerHTML: text comes from others
    ui.messages.append(li);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function presence(action) {
    cometd.publish(`/presence/${room}`, {user: userName(), id: me.id, action});
  }

  function subscribeAll() {
    // The client forgets subscriptions on every handshake (cometd.js
    // #handshake clears them): subscribe again each time, in one batch.
    subs.length = 0;
    cometd.batch(() => {
      subs.push(cometd.subscribe(`/chat/${room}`, (m) => {
        const d = m.data || {};
        addLine(String(d.user || '?'), String(d.text || ''), d.id === me.id);
      }));
      subs.push(cometd.subscribe(`/presence/${room}`, (m) => {
        const d = m.data || {};
        if (typeof d.id !== 'string') return;
        if (d.action === 'bye') {
          state.members.delete(d.id);
        } else {
          state.members.set(d.id, {user: String(d.user || '?'), seen: Date.now()});
          if (d.action === 'hello' && d.id !== me.id) presence('here');
        }
        render();
      }));
      presence('hello');
    });
  }

  cometd.addListener('/meta/handshake', (m) => {
    if (m.successful) {
      state.handshakes++;
      state.transport = cometd.getTransport().type;
      state.status = m.reestablish ? 'connected again (new session), rejoining…' : 'joining…';
      subscribeAll();
    } else {
      state.handshakeFailures++;
      state.status = 'cannot reach the broker; retrying…';
    }
    render();
  });

  cometd.addListener('/meta/connect', (m) => {
    if (cometd.isDisconnected()) {
      state.connected = false;
      state.status = 'disconnected';
    } else if (m.successful) {
      state.connected = true;
      const advice = cometd.getAdvice() || {};
      state.multipleClients = !!advice['multiple-clients'];
      state.interval = advice.interval || 0;
      state.status = `connected to room ${room}`;
    } else {
      state.connected = false;
      state.status = 'connection lost; reconnecting…';
    }
    render();
  });

  const onSubmit = (e) => {
    e.preventDefault();
    const text = ui.text.value.trim();
    if (!text) return;
    cometd.publish(`/chat/${room}`, {user: userName(), id: me.id, text});
    ui.text.value = '';
  };
  ui.form.addEventListener('submit', onSubmit);

  heartbeat = setInterval(() => {
    if (state.connected) presence('here');
    render();
  }, HEARTBEAT_MS);

  const onHide = () => {
    if (!cometd.isDisconnected()) {
      presence('bye');
      cometd.disconnect();
    }
  };
  window.addEventListener('pagehide', onHide);

  state.members.set(me.id, {user: userName(), seen: Date.now()});
  render();
  cometd.handshake();

  return {
    state,
    cometd,
    replay,
    stop() {
      clearInterval(heartbeat);
      window.removeEventListener('pagehide', onHide);
      ui.form.removeEventListener('submit', onSubmit);
      return new Promise((resolve) => {
        if (cometd.isDisconnected()) return resolve();
        presence('bye');
        cometd.disconnect(() => resolve());
        setTimeout(resolve, 3000);
      });
    },
  };
}

/** The page's chat elements by id. */
export function chatUI() {
  const $ = (id) => document.getElementById(id);
  return {
    status: $('status'),
    transport: $('transport'),
    members: $('members'),
    messages: $('messages'),
    form: $('send'),
    text: $('text'),
    name: $('name'),
  };
}

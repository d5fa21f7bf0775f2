#!/usr/bin/env node
// subscribe.mjs — a Node.js subscriber with the official CometD client.
//
//   node examples/subscribe.mjs [--url URL] [--count N] CHANNEL...
//   node examples/subscribe.mjs --url http://127.0.0.1:8080/cometd /chat/**
//
// Prints "subscribed" once every subscription is confirmed, then one JSON line
// per message received ({"channel":…,"data":…}) on stdout; exits 0 after
// --count messages (default: run until Ctrl-C). Needs the npm packages
// cometd and cometd-nodejs-client (npm install in the repository root).
import {adapt} from 'cometd-nodejs-client';
import {CometD} from 'cometd';

adapt(); // gives the CometD client XMLHttpRequest and timers on Node

function parseArgs(argv) {
  const o = {url: 'http://127.0.0.1:8080/cometd', count: 0, channels: []};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--url') o.url = argv[++i];
    else if (argv[i] === '--count') o.count = Number(argv[++i]);
    else o.channels.push(argv[i]);
  }
  if (!o.channels.length || !(o.count >= 0)) {
    console.error('usage: subscribe.mjs [--url URL] [--count N] CHANNEL...');
    process.exit(2);
  }
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const cometd = new CometD();
// bayeuxd speaks long polling (WebSocket comes later): do not try it first.
cometd.unregisterTransport('websocket');
cometd.configure({url: opts.url, logLevel: 'warn'});

let received = 0;
function stop(code) {
  cometd.disconnect(() => process.exit(code));
  setTimeout(() => process.exit(code), 2000).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

cometd.handshake((reply) => {
  if (!reply.successful) {
    console.error(`handshake failed: ${JSON.stringify(reply)}`);
    process.exit(1);
  }
  // Subscribe in one batch; report once all are confirmed.
  let pending = opts.channels.length;
  cometd.batch(() => {
    for (const channel of opts.channels) {
      cometd.subscribe(channel, (m) => {
        console.log(JSON.stringify({channel: m.channel, data: m.data}));
        received += 1;
        if (opts.count && received >= opts.count) stop(0);
      }, (sub) => {
        if (!sub.successful) {
          console.error(`subscribe ${channel} failed: ${JSON.stringify(sub)}`);
          process.exit(1);
        }
        pending -= 1;
        if (pending === 0) console.log('subscribed');
      });
    }
  });
});

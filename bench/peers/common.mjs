// Shared flag parsing for the peer servers: --port PORT --timeout MS [--host H].
export function parseArgs(name, argv) {
  const opts = { host: '127.0.0.1', port: 0, timeout: 30000 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--help') {
      console.log(`usage: node ${name} [--host 127.0.0.1] [--port PORT] [--timeout MS]\n` +
        'Serves Bayeux at http://HOST:PORT/cometd with the given long-poll timeout\n' +
        'and prints one "ready" line on stdout once listening.');
      process.exit(0);
    } else if (flag === '--port' || flag === '--timeout') {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 0 || (flag === '--port' && n > 65535)) {
        console.error(`${name}: ${flag} must be a non-negative integer, got '${value}'`);
        process.exit(2);
      }
      opts[flag.slice(2)] = n;
      i++;
    } else if (flag === '--host') {
      opts.host = value;
      i++;
    } else {
      console.error(`${name}: unknown option '${flag}' (try --help)`);
      process.exit(2);
    }
  }
  return opts;
}

// Exits on SIGTERM/SIGINT after closing the listener.
export function exitOnSignal(server) {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
      server.close();
      process.exit(0);
    });
  }
}

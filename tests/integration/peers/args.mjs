// Shared command-line parsing for the peer servers. They accept the subset of
// bayeuxd's flags the tests use, so the suite can be pointed at a known-good
// Bayeux implementation (BAYEUX_PEER=cometd|faye) to check the harness itself.
export function parseArgs(argv) {
  const opts = {host: '127.0.0.1', port: 8080, path: '/cometd', timeout: 30000,
    interval: 0, maxInterval: 10000};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    switch (flag) {
      case '--listen': {
        const m = /^(.*):(\d+)$/.exec(value || '');
        if (!m) { console.error(`--listen: bad value '${value}'`); process.exit(2); }
        opts.host = m[1]; opts.port = Number(m[2]); i++; break;
      }
      case '--path': opts.path = value; i++; break;
      case '--timeout': opts.timeout = Number(value); i++; break;
      case '--interval': opts.interval = Number(value); i++; break;
      case '--max-interval': opts.maxInterval = Number(value); i++; break;
      case '--log-level': i++; break;
      default:
        console.error(`unknown flag ${flag}`);
        process.exit(2);
    }
  }
  return opts;
}

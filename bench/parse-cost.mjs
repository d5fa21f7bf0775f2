// The same bodies as bench/parse-cost.c, parsed by Node's JSON.parse (what Faye's and
// CometD's Node servers use): time and heap growth per body, for the side-by-side
// figure in docs/BENCHMARKS.md. Run with --expose-gc:
//   node --expose-gc bench/parse-cost.mjs [REPEATS]
const reps = Number(process.argv[2] || 20);
const shapes = [
  ['publish batch (100 chat messages)', '[', '{"channel":"/chat/lobby","data":{"user":"alice","text":"hello there, how are you?"},"id":"17","clientId":"3kd8Qm2LxP0aZr7TbN4vWy"}', ']', 100],
  ['connect', '[', '{"channel":"/meta/connect","connectionType":"long-polling","advice":{"timeout":0},"id":"5","clientId":"3kd8Qm2LxP0aZr7TbN4vWy"}', ']', 1],
  ['400 KB of strings in data', '[{"channel":"/a","data":[', '"some text of moderate length here, about a hundred bytes of it, as a log line would be...."', ']}]', 4000],
  ['4096 empty messages (at --max-batch)', '[', '{}', ']', 4096],
  ['100,000 empty messages (refused)', '[', '{}', ']', 100000],
  ['300,000 {} in data (refused, 413)', '[{"channel":"/a","data":[', '{}', ']}]', 300000],
];
console.log(`${'body'.padEnd(38)} ${'bytes'.padStart(9)} ${'parse us'.padStart(11)} ${'heap bytes'.padStart(12)} ${'heap/x'.padStart(8)}`);
for (const [name, pre, unit, suf, n] of shapes) {
  const body = pre + Array(n).fill(unit).join(',') + suf;
  let t = 0;
  let heap = 0;
  for (let r = 0; r < reps; r++) {
    globalThis.gc();
    const h0 = process.memoryUsage().heapUsed;
    const t0 = process.hrtime.bigint();
    const v = JSON.parse(body);
    t += Number(process.hrtime.bigint() - t0) / 1e3;
    heap = process.memoryUsage().heapUsed - h0;
    if (!v) throw new Error('parse');
  }
  console.log(`${name.padEnd(38)} ${String(body.length).padStart(9)} ${(t / reps).toFixed(1).padStart(11)} ` +
    `${String(heap).padStart(12)} ${(heap / body.length).toFixed(1).padStart(8)}`);
}

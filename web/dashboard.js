// dashboard.js — the live dashboard: reads bayeuxd's /metrics (Prometheus text
// format) every second and draws small charts on <canvas>. No libraries.
//
// Exports the pieces the page and the tests use: parseMetrics(), quantile(),
// drawChart() and startDashboard().

const WINDOW = 120; // samples kept (seconds)
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#555'];

/**
 * Parses the Prometheus text format into a Map of name → [{labels, value}].
 * Comment lines are skipped; label values may hold escaped \" \\ \n.
 */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3]))) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      }
    }
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({labels, value});
  }
  return out;
}

/** The value of name with these labels (or the first sample), or undefined. */
export function value(metrics, name, labels = {}) {
  const samples = metrics.get(name) || [];
  const s = samples.find((x) => Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : undefined;
}

/** A histogram's cumulative buckets as [[le, count]…], sorted by le. */
export function buckets(metrics, name) {
  return (metrics.get(`${name}_bucket`) || [])
    .map((s) => [s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value])
    .sort((a, b) => a[0] - b[0]);
}

/**
 * The q-quantile (0..1) of the observations between two readings of one
 * histogram's cumulative buckets (prev may be null: since the start), as
 * Prometheus's histogram_quantile() does: linear within the bucket; the
 * highest finite bound when it falls in +Inf. null when nothing was observed.
 */
export function quantile(cur, prev, q) {
  const d = cur.map(([le, c], i) => [le, c - (prev && prev[i] ? prev[i][1] : 0)]);
  const total = d.length ? d[d.length - 1][1] : 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [le, c] of d) {
    if (c >= rank) {
      if (le === Infinity) return lower;
      const inBucket = c - below;
      return inBucket > 0 ? lower + (le - lower) * ((rank - below) / inBucket) : le;
    }
    lower = le;
    below = c;
  }
  return lower;
}

/** A round step (1, 2, 2.5 or 5 × 10^k) for about four grid lines up to v. */
function niceStep(v) {
  const raw = v > 0 ? v / 4 : 0.25;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5]) if (raw <= m * p) return m * p;
  return 10 * p;
}

export function formatNumber(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(digits);
}

/**
 * Draws series [{name, points: [number|null…], color}] (the newest point
 * last, one per second) on canvas, with a y axis from 0 to a round maximum,
 * three grid lines, and a legend with each series' last value.
 */
export function drawChart(canvas, series, {unit = '', digits = 0, span = WINDOW} = {}) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = '12px system-ui, sans-serif';
  const left = 48;
  const right = 8;
  const bottom = 18;
  // Legend: a swatch, the name and the last value of each series, in rows.
  const items = series.map((s, k) => {
    const last = [...s.points].reverse().find((p) => p !== null);
    const label = `${s.name} ${formatNumber(last, digits)}${unit}`;
    return {color: s.color || COLORS[k % COLORS.length], label, width: g.measureText(label).width + 28};
  });
  let lx = left;
  let row = 0;
  for (const it of items) {
    if (lx > left && lx + it.width > w - right) { lx = left; row++; }
    it.x = lx;
    it.row = row;
    lx += it.width;
  }
  const top = 24 + row * 16;
  const pw = w - left - right;
  const ph = h - top - bottom;
  let max = 0;
  for (const s of series) for (const p of s.points) if (p !== null && p > max) max = p;
  const step = niceStep(max);
  const lines = Math.max(1, Math.ceil((max * 1.05) / step));
  max = lines * step;
  // Grid and y labels.
  g.strokeStyle = '#e4e4e4';
  g.fillStyle = '#666';
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  const stepDigits = step >= 1 && Number.isInteger(step) ? 0 : step >= 0.1 ? 1 : 2;
  for (let i = 0; i <= lines; i++) {
    const y = top + ph - (ph * i) / lines;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + pw, y);
    g.stroke();
    g.fillText(formatNumber(step * i, stepDigits), left - 6, y);
  }
  g.textAlign = 'left';
  g.textBaseline = 'alphabetic';
  g.fillText(`-${span} s`, left, h - 4);
  g.textAlign = 'right';
  g.fillText('now', left + pw, h - 4);
  // Lines: the newest point at the right edge, one point a second.
  const x = (i) => left + (pw * i) / (span - 1);
  const y = (v) => top + ph - (ph * v) / max;
  series.forEach((s, k) => {
    const color = s.color || COLORS[k % COLORS.length];
    const off = span - s.points.length;
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    let pen = false;
    s.points.forEach((p, i) => {
      if (p === null || off + i < 0) { pen = false; return; }
      if (pen) g.lineTo(x(off + i), y(p)); else g.moveTo(x(off + i), y(p));
      pen = true;
    });
    g.stroke();
  });
  g.textAlign = 'left';
  g.textBaseline = 'top';
  for (const it of items) {
    const ly = 3 + it.row * 16;
    g.fillStyle = it.color;
    g.fillRect(it.x, ly + 2, 10, 10);
    g.fillStyle = '#222';
    g.fillText(it.label, it.x + 14, ly);
  }
}

const LAT = 'bayeux_publish_to_write_seconds';

/**
 * Polls url every intervalMs and keeps the page's tiles and charts current.
 * Returns a state object: {samples, last, status, token} (tests read it).
 */
export function startDashboard({url, intervalMs = 1000, doc = document} = {}) {
  const $ = (id) => doc.getElementById(id);
  const state = {
    samples: 0,
    status: 'loading',
    token: '',
    last: null, // the figures of the last sample
    hist: {sessions: [], lp: [], cb: [], es: [], ws: [], deliveries: [], publishes: [],
      p50: [], p90: [], p99: [], rss: []},
  };
  let prev = null; // {t, metrics}
  const push = (k, v) => {
    const a = state.hist[k];
    a.push(v);
    if (a.length > WINDOW) a.shift();
  };
  const setStatus = (s, text) => {
    state.status = s;
    $('status').dataset.status = s;
    $('status').textContent = text;
  };
  $('auth').addEventListener('submit', (e) => {
    e.preventDefault();
    state.token = $('token').value.trim();
    tick();
  });

  function draw() {
    const H = state.hist;
    // The time axis grows with the samples, from 30 s up to the window.
    const span = Math.min(WINDOW, Math.max(30, H.sessions.length));
    drawChart($('c-sessions'), [
      {name: 'sessions', points: H.sessions, color: '#222'},
      {name: 'long-polling', points: H.lp},
      {name: 'callback-polling', points: H.cb},
      {name: 'eventsource', points: H.es},
      {name: 'websocket', points: H.ws},
    ], {span});
    drawChart($('c-rates'), [
      {name: 'deliveries/s', points: H.deliveries},
      {name: 'publishes/s', points: H.publishes},
    ], {span});
    drawChart($('c-latency'), [
      {name: 'p50', points: H.p50},
      {name: 'p90', points: H.p90},
      {name: 'p99', points: H.p99},
    ], {unit: ' ms', digits: 2, span});
    drawChart($('c-memory'), [{name: 'RSS', points: H.rss}], {unit: ' MiB', digits: 1, span});
  }

  async function tick() {
    let text;
    try {
      const headers = state.token ? {Authorization: `Bearer ${state.token}`} : {};
      const r = await fetch(url, {headers, cache: 'no-store'});
      if (r.status === 403) {
        $('auth').hidden = false;
        setStatus('denied', '403: /metrics is open to loopback only; give the publish token');
        return;
      }
      if (!r.ok) { setStatus('error', `HTTP ${r.status}`); return; }
      text = await r.text();
    } catch (e) {
      setStatus('error', `cannot reach ${url}: ${e.message}`);
      return;
    }
    $('auth').hidden = true;
    const t = performance.now();
    const m = parseMetrics(text);
    const v = (name, labels) => value(m, name, labels);
    const conn = (tr) => v('bayeux_connections', {transport: tr}) || 0;
    const cur = {
      sessions: v('bayeux_sessions') || 0,
      lp: conn('long-polling'), cb: conn('callback-polling'),
      es: conn('eventsource'), ws: conn('websocket'),
      delivered: v('bayeux_messages_delivered_total') || 0,
      published: v('bayeux_messages_published_total') || 0,
      dropped: v('bayeux_messages_dropped_total') || 0,
      denied: (m.get('bayeux_handshakes_denied_total') || []).reduce((a, s) => a + s.value, 0),
      rss: (v('process_resident_memory_bytes') || 0) / 1048576,
      buckets: buckets(m, LAT),
      version: (m.get('bayeux_build_info') || [{labels: {}}])[0].labels.version,
      start: v('process_start_time_seconds'),
    };
    let rate = {deliveries: null, publishes: null};
    let lat = {p50: null, p90: null, p99: null};
    if (prev) {
      const dt = (t - prev.t) / 1000;
      if (dt > 0) {
        rate = {deliveries: Math.max(0, cur.delivered - prev.cur.delivered) / dt,
          publishes: Math.max(0, cur.published - prev.cur.published) / dt};
      }
      for (const [k, q] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]]) {
        const s = quantile(cur.buckets, prev.cur.buckets, q);
        lat[k] = s === null ? null : s * 1000;
      }
    }
    prev = {t, cur};
    for (const k of ['sessions', 'lp', 'cb', 'es', 'ws', 'rss']) push(k, cur[k]);
    push('deliveries', rate.deliveries);
    push('publishes', rate.publishes);
    for (const k of ['p50', 'p90', 'p99']) push(k, lat[k]);
    state.samples++;
    state.last = {...cur, ...rate, ...lat};
    setStatus('live', 'live');
    const up = cur.start ? Math.max(0, Date.now() / 1000 - cur.start) : null;
    $('about').textContent = `bayeuxd ${cur.version || '?'}` +
      (up === null ? '' : `, up ${up < 3600 ? `${Math.round(up)} s` : `${(up / 3600).toFixed(1)} h`}`);
    $('t-sessions').textContent = formatNumber(cur.sessions);
    $('t-connections').textContent = formatNumber(cur.lp + cur.cb + cur.es + cur.ws);
    $('t-deliveries').textContent = formatNumber(rate.deliveries);
    $('t-publishes').textContent = formatNumber(rate.publishes);
    // The last second that had deliveries (an idle second has no latency).
    const li = state.hist.p50.findLastIndex((x) => x !== null);
    $('t-latency').textContent = li < 0 ? '–'
      : `${formatNumber(state.hist.p50[li], 2)} / ${formatNumber(state.hist.p99[li], 2)}`;
    $('t-memory').textContent = `${formatNumber(cur.rss, 1)} MiB`;
    $('t-dropped').textContent = formatNumber(cur.dropped);
    $('t-denied').textContent = formatNumber(cur.denied);
    draw();
  }

  let running = false;
  const loop = async () => {
    if (running) return; // one request at a time: a slow answer skips a beat
    running = true;
    try { await tick(); } finally { running = false; }
  };
  loop();
  state.timer = setInterval(loop, intervalMs);
  state.stop = () => clearInterval(state.timer);
  return state;
}

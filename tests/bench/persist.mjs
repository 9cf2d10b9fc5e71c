// Persistence: events committed per second and group-commit latency (from
// /metrics: tether_events_appended_total, tether_commit_seconds histogram)
// under each --sync policy (commit = fsync every commit, periodic = every
// 1000 ms, none = never). Load: S echo sessions (--echo-delay-ms 0), each
// saying a W-word text again as soon as its turn ends, for SECONDS. Meanwhile
// a second socket pings every PING_MS: its round trip p50/p99/max shows what
// the loop waits for (under `periodic` the fsync ran on the loop before
// issue 18; now it runs in the thread pool).
//
//   node tests/bench/persist.mjs [--smoke]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { SMOKE, dist, metrics, out, sleep, startTether } from './lib/common.mjs';

const S = SMOKE ? 10 : 100,
  W = 200,
  SECONDS = SMOKE ? 1.5 : 8,
  PING_MS = 10;
const text = Array.from({ length: W }, (_, i) => `word${i}`).join(' ');
const BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, Infinity];

// Quantile from histogram bucket deltas, linear inside the bucket.
function quantile(buckets, q) {
  const total = buckets[buckets.length - 1];
  if (!total) return null;
  const want = q * total;
  for (let i = 0; i < buckets.length; i++) {
    if (buckets[i] >= want) {
      const lo = i ? BOUNDS[i - 1] : 0,
        hi = BOUNDS[i] === Infinity ? lo * 2 : BOUNDS[i];
      const below = i ? buckets[i - 1] : 0;
      return lo + ((want - below) / Math.max(1, buckets[i] - below)) * (hi - lo);
    }
  }
  return null;
}
const hist = (m) => BOUNDS.map((b) => m[`tether_commit_seconds_bucket{le="${b === Infinity ? '+Inf' : b}"}`]);

// Ping round trips (ms) on their own socket until stop() is called.
function pinger(port) {
  const rtts = [];
  let on = false,
    sent = 0,
    timer = null;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
  ws.on('error', () => {});
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
  ws.on('message', (d) => {
    const m = JSON.parse(d);
    if (m.type === 'welcome') {
      const ping = () => {
        if (!on) return;
        const id = `p${++sent}`;
        const t0 = performance.now();
        pending.set(id, t0);
        ws.send(JSON.stringify({ type: 'ping', id }));
      };
      timer = setInterval(ping, PING_MS);
    } else if (m.re && pending.has(m.re)) {
      if (on) rtts.push(performance.now() - pending.get(m.re));
      pending.delete(m.re);
    }
  });
  const pending = new Map();
  return {
    start: () => (on = true),
    stop: () => {
      on = false;
      clearInterval(timer);
      ws.close();
      return dist(rtts, 3);
    },
  };
}

const results = [];
for (const sync of ['commit', 'periodic', 'none']) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-persist-'));
  const srv = await startTether([
    '--data-dir',
    dir,
    '--echo-delay-ms',
    '0',
    '--sync',
    sync,
    '--rate-msgs-per-s',
    '100000',
    '--rate-burst',
    '100000',
  ]);
  let running = true,
    turns = 0;
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
  const stopped = new Promise((resolve, reject) => {
    let active = 0;
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.type === 'welcome')
        for (let i = 0; i < S; i++) ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
      else if (m.type === 'ok' && m.re === 'o') {
        active++;
        ws.send(JSON.stringify({ type: 'say', session: m.session, text }));
      } else if (m.type === 'state' && m.state === 'idle' && m.seq > 2) {
        turns++;
        if (running) ws.send(JSON.stringify({ type: 'say', session: m.session, text }));
        else if (--active === 0) resolve();
      } else if (m.type === 'error') reject(new Error(`${m.code}: ${m.message}`));
    });
  });
  const pings = pinger(srv.port);
  await sleep(SMOKE ? 300 : 1000); // ramp up
  const m0 = await metrics(srv.port);
  const t0 = performance.now();
  pings.start();
  await sleep(SECONDS * 1000);
  const ping_ms = pings.stop();
  const m1 = await metrics(srv.port);
  const secs = (performance.now() - t0) / 1000;
  running = false;
  stopped.catch(() => {});
  ws.close();
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
  const h0 = hist(m0),
    h1 = hist(m1);
  const d = h1.map((v, i) => v - h0[i]);
  const commits = m1.tether_commit_seconds_count - m0.tether_commit_seconds_count;
  const events = m1.tether_events_appended_total - m0.tether_events_appended_total;
  const ms = (x) => (x === null ? null : +(x * 1000).toFixed(3));
  results.push({
    sync,
    sessions: S,
    words_per_turn: W,
    seconds: +secs.toFixed(2),
    turns,
    events_per_s: Math.round(events / secs),
    commits_per_s: Math.round(commits / secs),
    events_per_commit: +(events / Math.max(1, commits)).toFixed(1),
    commit_ms: {
      mean: ms((m1.tether_commit_seconds_sum - m0.tether_commit_seconds_sum) / Math.max(1, commits)),
      p50: ms(quantile(d, 0.5)),
      p99: ms(quantile(d, 0.99)),
    },
    ping_ms,
    store_syncs: (m1.tether_store_syncs_total ?? 0) - (m0.tether_store_syncs_total ?? 0),
    // what the loop waited for each second before the fsync moved to the thread pool
    store_sync_ms_per_s: +(
      ((m1.tether_store_sync_microseconds_total ?? 0) - (m0.tether_store_sync_microseconds_total ?? 0)) /
      1000 /
      secs
    ).toFixed(2),
    store_sync_max_ms: +((m1.tether_store_sync_max_microseconds ?? 0) / 1000).toFixed(2),
    commit_failures: m1.tether_commit_failures_total,
  });
}
out({ bench: 'persist', results });
if (results.some((r) => !r.events_per_s || r.commit_failures)) process.exit(1);

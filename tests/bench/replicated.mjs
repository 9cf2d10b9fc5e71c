// Replicated mode (--durability replicated) against LMDB alone, measured in
// the same run on the same machine:
//   1. streams: S echo sessions (--echo-delay-ms 0) say a W-word text again
//      as soon as their turn ends, for SECONDS: events persisted and
//      delivered per second, and the latency of `say` (sent to its `ok`,
//      which in replicated mode waits for PostgreSQL's commit) p50/p99, for
//      LMDB alone (the peer) and for replicated mode; the ratio of the two.
//      Also the server's own stage-to-commit histogram (p50/p99 bounds).
//   2. failover: two replicated nodes; F sessions on node A, each with a
//      client; A is killed (-9); the clients reconnect to B at once and
//      attach: time from the kill to the last session served by B.
//   3. adoption: a session streaming on A, no client; A is killed; time
//      until B (lease LEASE ms) has finished the answer in the database.
// PostgreSQL 15 is started in a temp dir (tests/integration/pg-lib.mjs).
//
//   node tests/bench/replicated.mjs [--smoke]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { SMOKE, UNTHROTTLED, metrics, out, sleep, startTether, stopProc } from './lib/common.mjs';
import { pgAvailable, startPostgres } from '../integration/pg-lib.mjs';

const S = SMOKE ? 5 : 100,
  W = SMOKE ? 10 : 50,
  SECONDS = SMOKE ? 1.5 : 8,
  F = SMOKE ? 10 : 200,
  LEASE = 1000;
const text = Array.from({ length: W }, (_, i) => `word${i}`).join(' ');

if (!pgAvailable) {
  out({ bench: 'replicated', skipped: 'PostgreSQL 15 is not installed (.ci/deps.sh test installs it)' });
  process.exit(0);
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2) : null;
};

/** One socket, S sessions saying again and again; resolves with the figures once stopped. */
function load(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
  const st = { received: 0, lat: [], running: true, sent: new Map(), active: 0 };
  const say = (session) => {
    const id = `s${Math.random()}`;
    st.sent.set(id, performance.now());
    ws.send(JSON.stringify({ type: 'say', id, session, text }));
  };
  st.done = new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (typeof m.seq === 'number') st.received++;
      if (m.type === 'welcome')
        for (let i = 0; i < S; i++) ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
      else if (m.type === 'ok' && m.re === 'o') {
        st.active++;
        say(m.session);
      } else if (m.type === 'ok' && st.sent.has(m.re)) {
        st.lat.push(performance.now() - st.sent.get(m.re));
        st.sent.delete(m.re);
      } else if (m.type === 'state' && m.state === 'idle' && m.seq > 2) {
        if (st.running) say(m.session);
        else if (--st.active === 0) resolve();
      } else if (m.type === 'error') reject(new Error(`${m.code}: ${m.message}`));
    });
  });
  st.ws = ws;
  return st;
}

async function streams(args) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-repl-'));
  const srv = await startTether(['--data-dir', dir, '--echo-delay-ms', '0', ...UNTHROTTLED, ...args]);
  try {
    const st = load(srv.port);
    await sleep(SMOKE ? 300 : 1000);
    const m0 = await metrics(srv.port);
    const r0 = st.received;
    st.lat.length = 0;
    const t0 = performance.now();
    await sleep(SECONDS * 1000);
    const m1 = await metrics(srv.port);
    const secs = (performance.now() - t0) / 1000;
    const lat = [...st.lat];
    st.running = false;
    await st.done;
    st.ws.close();
    return {
      persisted_per_s: Math.round((m1.tether_events_appended_total - m0.tether_events_appended_total) / secs),
      delivered_per_s: Math.round((st.received - r0) / secs),
      say_ok_ms_p50: pct(lat, 50),
      say_ok_ms_p99: pct(lat, 99),
      says: lat.length,
      server_commit: m1.tether_replica_batches_total
        ? {
            batches_per_s: Math.round((m1.tether_replica_batches_total - m0.tether_replica_batches_total) / secs),
            mean_ms: +((1000 * m1.tether_replica_commit_seconds_sum) / m1.tether_replica_commit_seconds_count).toFixed(
              2,
            ),
          }
        : undefined,
    };
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function socket(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
    const waits = new Map();
    ws.on('error', reject);
    ws.on('close', () => ws.emit('gone'));
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.re && waits.has(m.re)) {
        waits.get(m.re)(m);
        waits.delete(m.re);
      }
    });
    ws.request = (msg) =>
      new Promise((r) => {
        const id = `r${Math.random()}`;
        waits.set(id, r);
        ws.send(JSON.stringify({ ...msg, id }));
      });
    ws.on('open', async () => {
      await ws.request({ type: 'hello' });
      resolve(ws);
    });
  });
}

async function replicatedNode(url, id, dir) {
  return startTether([
    '--data-dir',
    dir,
    '--echo-delay-ms',
    '5',
    '--database-url',
    url,
    '--durability',
    'replicated',
    '--node-id',
    id,
    '--lease-ms',
    String(LEASE),
  ]);
}

async function failover(pg) {
  const url = await pg.newDatabase();
  const dirs = [0, 1].map(() => mkdtempSync(path.join(os.tmpdir(), 'tether-fo-')));
  const a = await replicatedNode(url, 'a', dirs[0]);
  const b = await replicatedNode(url, 'b', dirs[1]);
  try {
    const sessions = [];
    for (let i = 0; i < F; i++) {
      const ws = await socket(a.port);
      sessions.push((await ws.request({ type: 'session.open', agent: 'echo' })).session);
      ws.terminate();
    }
    const lone = await socket(a.port);
    const orphan = (await lone.request({ type: 'session.open', agent: 'echo' })).session;
    await lone.request({ type: 'say', session: orphan, text: Array(200).fill('x').join(' ') });
    await sleep(100);
    const t0 = performance.now();
    await stopProc(a.proc, 'SIGKILL');
    const served = await Promise.all(
      sessions.map(async (session) => {
        const ws = await socket(b.port);
        const r = await ws.request({ type: 'session.attach', session, after: 0 });
        ws.terminate();
        return r.type === 'ok';
      }),
    );
    const reconnectMs = performance.now() - t0;
    let adoptMs = null;
    while (performance.now() - t0 < 30_000) {
      const last = await pg.value(
        `SELECT body->>'state' FROM events WHERE session = '${orphan}' ORDER BY seq DESC LIMIT 1`,
        url.slice(url.lastIndexOf('/') + 1),
      );
      if (last === 'idle') {
        adoptMs = performance.now() - t0;
        break;
      }
      await sleep(50);
    }
    return {
      sessions: F,
      all_served: served.every(Boolean),
      served_elsewhere_ms: Math.round(reconnectMs),
      adoption_lease_ms: LEASE,
      adopted_and_finished_ms: adoptMs && Math.round(adoptMs),
    };
  } finally {
    await b.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

const pg = await startPostgres();
try {
  const local = await streams([]);
  const replicated = await streams(['--database-url', await pg.newDatabase(), '--durability', 'replicated']);
  const fo = await failover(pg);
  out({
    bench: 'replicated',
    sessions: S,
    words_per_turn: W,
    local_lmdb: local,
    replicated,
    replicated_vs_local: {
      persisted_per_s: +(replicated.persisted_per_s / local.persisted_per_s).toFixed(2),
      say_ok_p50: +(replicated.say_ok_ms_p50 / local.say_ok_ms_p50).toFixed(2),
    },
    failover: fo,
  });
  if (!fo.all_served || !replicated.persisted_per_s || fo.adopted_and_finished_ms === null) process.exitCode = 1;
} finally {
  await pg.destroy();
}

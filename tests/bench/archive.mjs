// Archive mode (--database-url): events archived to PostgreSQL per second,
// and a database outage under load. S echo sessions (--echo-delay-ms 0) say
// a W-word text again as soon as their turn ends, on one socket:
//   1. steady: SECONDS with the database up: committed and archived events/s,
//      the lag at the end;
//   2. outage: PostgreSQL stopped (pg_ctl -m fast) for OUTAGE seconds under
//      the same load: events/s the sockets still get (against steady), the
//      lag it leaves (events, seconds);
//   3. drain: PostgreSQL back, load stopped: time until the lag is 0, and
//      the archive rate meanwhile (a backlog read from LMDB in batches).
// At the end the events table must hold every committed event, once.
// PostgreSQL 15 is started in a temp dir (tests/integration/pg-lib.mjs).
//
//   node tests/bench/archive.mjs [--smoke] [--outage-s 30]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { SMOKE, metrics, out, sleep, startTether } from './lib/common.mjs';
import { pgAvailable, startPostgres } from '../integration/pg-lib.mjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const S = SMOKE ? 4 : 100,
  W = SMOKE ? 20 : 200,
  DELAY = SMOKE ? '1' : '0', // the smoke run: a small backlog, drained in seconds
  SECONDS = SMOKE ? 1.5 : 8,
  OUTAGE = arg('--outage-s', SMOKE ? 2 : 10);
const text = Array.from({ length: W }, (_, i) => `word${i}`).join(' ');

if (!pgAvailable) {
  out({ bench: 'archive', skipped: 'PostgreSQL 15 is not installed (.ci/deps.sh test installs it)' });
  process.exit(0);
}

const pg = await startPostgres();
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-archive-'));
let srv;
try {
  srv = await startTether([
    '--data-dir',
    dir,
    '--echo-delay-ms',
    DELAY,
    '--database-url',
    pg.url,
    '--rate-msgs-per-s',
    '100000',
    '--rate-burst',
    '100000',
  ]);
  let running = true;
  let received = 0;
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
  const stopped = new Promise((resolve, reject) => {
    let active = 0;
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (typeof m.seq === 'number') received++;
      if (m.type === 'welcome')
        for (let i = 0; i < S; i++) ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
      else if (m.type === 'ok' && m.re === 'o') {
        active++;
        ws.send(JSON.stringify({ type: 'say', session: m.session, text }));
      } else if (m.type === 'state' && m.state === 'idle' && m.seq > 2) {
        if (running) ws.send(JSON.stringify({ type: 'say', session: m.session, text }));
        else if (--active === 0) resolve();
      } else if (m.type === 'error') reject(new Error(`${m.code}: ${m.message}`));
    });
  });
  stopped.catch(() => {});
  await sleep(SMOKE ? 300 : 1000);
  const phase = async (seconds) => {
    const m0 = await metrics(srv.port),
      r0 = received,
      t0 = performance.now();
    await sleep(seconds * 1000);
    const m1 = await metrics(srv.port),
      secs = (performance.now() - t0) / 1000;
    const rate = (k) => Math.round((m1[k] - m0[k]) / secs);
    return {
      seconds: +secs.toFixed(2),
      committed_per_s: rate('tether_events_appended_total'),
      archived_per_s: rate('tether_archive_events_total'),
      received_per_s: Math.round((received - r0) / secs),
      lag_events: m1.tether_archive_lag_events,
      lag_seconds: m1.tether_archive_lag_seconds,
    };
  };
  const steady = await phase(SECONDS);
  await pg.stop();
  const outage = await phase(OUTAGE);
  await pg.start();
  running = false;
  await stopped;
  const m0 = await metrics(srv.port);
  const t0 = performance.now();
  let m = m0;
  while (m.tether_archive_lag_events > 0 && performance.now() - t0 < 120_000) {
    await sleep(50);
    m = await metrics(srv.port);
  }
  const drainS = (performance.now() - t0) / 1000;
  const inDb = Number(await pg.value('SELECT count(*) FROM events'));
  const drain = {
    backlog_events: m0.tether_archive_lag_events,
    seconds: +drainS.toFixed(2),
    archived_per_s: Math.round((m.tether_archive_events_total - m0.tether_archive_events_total) / drainS),
    reconnects: m.tether_db_reconnects_total,
  };
  ws.close();
  const committed = m.tether_events_appended_total;
  out({
    bench: 'archive',
    sessions: S,
    words_per_turn: W,
    steady,
    outage: {
      ...outage,
      seconds_down: OUTAGE,
      received_vs_steady: +(outage.received_per_s / steady.received_per_s).toFixed(2),
    },
    drain,
    committed,
    in_database: inDb,
    duplicates: m.tether_archive_duplicates_total,
  });
  if (m.tether_archive_lag_events !== 0 || inDb !== committed || !outage.received_per_s) process.exitCode = 1;
} finally {
  if (srv) await srv.stop();
  await pg.destroy();
  rmSync(dir, { recursive: true, force: true });
}

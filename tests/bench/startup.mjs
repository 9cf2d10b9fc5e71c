// Start-up: time from spawn to the first served frame (a WebSocket `welcome`
// after `hello`) with 0, 100k and 1M sessions stored. The store is filled
// through the protocol itself (session.open, then session.detach, pipelined
// on a few sockets; sessions leave memory after 1 s idle), so every stored
// session is exactly what a client would have created. Each start is
// repeated REPS times on the same store.
//
//   node tests/bench/startup.mjs [--smoke] [--sizes 0,100000,1000000] [--store DIR]
//
// --store DIR keeps the store in DIR (filled only up to what it lacks, never
// removed), so builds can be compared on the same 1M-session store.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import {
  BIN,
  SMOKE,
  dist,
  freePort,
  metrics,
  out,
  sleep,
  spawnRaised,
  startTether,
  stopProc,
  argValue,
} from './lib/common.mjs';

const SIZES = argValue('--sizes', SMOKE ? '0,2000' : '0,100000,1000000')
  .split(',')
  .map(Number);
const REPS = SMOKE ? 2 : 5;
const SOCKETS = 8,
  WINDOW = 200;
const COMMON = [
  '--log-level',
  'warn',
  '--max-sessions-per-user', // the stored sessions all belong to one user
  '0',
  '--idle-evict-s',
  '1',
  '--rate-msgs-per-s',
  '1000000',
  '--rate-burst',
  '1000000',
  '--map-size-mb',
  '1024',
];

async function fill(port, n) {
  let started = 0,
    created = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from(
      { length: SOCKETS },
      () =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
          let inflight = 0;
          const pump = () => {
            while (inflight < WINDOW && started < n) {
              started++;
              inflight++;
              ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
            }
            if (inflight === 0 && started >= n) {
              ws.close();
              resolve();
            }
          };
          ws.on('error', reject);
          ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
          ws.on('message', (d) => {
            const m = JSON.parse(d);
            if (m.type === 'welcome') pump();
            else if (m.type === 'ok' && m.re === 'o') {
              ws.send(JSON.stringify({ type: 'session.detach', session: m.session }));
              inflight--;
              created++;
              pump();
            } else if (m.type === 'error') reject(new Error(`${m.code}: ${m.message}`));
          });
        }),
    ),
  );
  return { created, seconds: (performance.now() - t0) / 1000 };
}

// spawn -> TCP connect -> upgrade -> hello -> welcome
async function timeToWelcome(dir) {
  const port = await freePort();
  const t0 = performance.now();
  const proc = spawnRaised(BIN, ['--port', port, '--data-dir', dir, ...COMMON], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  let ms = null,
    cpu = null;
  let exited = false;
  proc.on('exit', () => {
    exited = true;
  });
  for (let tries = 0; tries < 60000 && ms === null && !exited; tries++) {
    ms = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
      ws.on('error', () => resolve(null));
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
      ws.on('message', (d) => {
        if (JSON.parse(d).type === 'welcome') {
          resolve(performance.now() - t0);
          cpu = cpuMsSoFar(proc.pid);
          ws.close();
        }
      });
    });
    if (ms === null) await sleep(1);
  }
  await stopProc(proc);
  if (ms === null) throw new Error('tether did not serve a welcome');
  if (cpu !== null) cpus.push(cpu);
  return ms;
}

// The CPU time of the server's main thread so far (the loop; ns precision,
// /proc/<pid>/task/<pid>/schedstat; the pid is the shell that exec'd tether,
// so its few hundred microseconds are in; the thread pool's work, e.g. the
// libcurl preload 100 ms after listening, is not): unlike the wall time,
// barely moved by other load, so it compares builds on a shared machine.
const cpus = [];
function cpuMsSoFar(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

const dirSize = (d) => readdirSync(d).reduce((a, f) => a + statSync(path.join(d, f)).size, 0);
const results = [];
{
  // warm the client (JIT, first connections) on a throwaway store, not counted
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'tether-startup-warm-'));
  await timeToWelcome(tmp);
  await timeToWelcome(tmp);
  rmSync(tmp, { recursive: true, force: true });
}
const KEEP = argValue('--store', null);
const dir = KEEP || mkdtempSync(path.join(os.tmpdir(), 'tether-startup-'));
let stored = 0;
if (KEEP && existsSync(path.join(KEEP, 'data.mdb'))) {
  const srv = await startTether(['--data-dir', dir, ...COMMON.slice(4)]);
  stored = (await metrics(srv.port)).tether_sessions_stored;
  await srv.stop();
} else if (KEEP) mkdirSync(KEEP, { recursive: true });
for (const size of SIZES) {
  let fillInfo = null;
  if (size > stored) {
    const srv = await startTether(['--data-dir', dir, ...COMMON.slice(4)]);
    fillInfo = await fill(srv.port, size - stored);
    const m = await metrics(srv.port);
    stored = m.tether_sessions_stored;
    await srv.stop();
  }
  const times = [];
  cpus.length = 0;
  for (let r = 0; r < REPS; r++) times.push(await timeToWelcome(dir));
  results.push({
    sessions_stored: stored,
    store_bytes: dirSize(dir),
    welcome_ms: dist(times, 1),
    welcome_cpu_ms: dist(cpus, 2),
    all_ms: times.map((t) => +t.toFixed(1)),
    fill: fillInfo && {
      created: fillInfo.created,
      seconds: +fillInfo.seconds.toFixed(1),
      sessions_per_s: Math.round(fillInfo.created / fillInfo.seconds),
    },
  });
}
if (!KEEP) rmSync(dir, { recursive: true, force: true });
out({ bench: 'startup', results });
if (results.some((r) => r.welcome_ms.n !== REPS || r.welcome_ms.p50 === null)) process.exit(1);

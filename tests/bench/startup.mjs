// Start-up: time from spawn to the first served frame (a WebSocket `welcome`
// after `hello`) with 0, 100k and 1M sessions stored. The store is filled
// through the protocol itself (session.open, then session.detach, pipelined
// on a few sockets; sessions leave memory after 1 s idle), so every stored
// session is exactly what a client would have created. Each start is
// repeated REPS times on the same store. The peer, same run, same client:
// bare libwebsockets (lib/bare.mjs: same lws on a libuv loop, no store)
// from spawn to its first frame, in `bare`; the peer's starts alternate with
// Tether's at the largest size (same load).
//
// Two clocks. `welcome_ms`, `cpu_ms`: from Node's spawn to the welcome, and
// the CPU time the process ran until then (/proc/<pid>/schedstat), Node's
// fork and the launcher included. `own_ms`, `own_cpu_ms`: from the server's
// exec to the welcome, and the CPU it used after its exec: the server's own
// start-up (the dynamic loader, its initialisation, listening, the first
// hello), which is what the target is about. The launcher,
// bench_exec_at (tests/bench/exec_at.c, built beside tether; or
// BENCH_EXEC_AT), raises the fd limit as the shell did and reports the
// moment of its exec; without it the servers are spawned through
// `sh -c 'ulimit -n ...; exec ...'` and the `own_` figures are null.
// `spawn_ms`, `spawn_cpu_ms`: the difference, the benchmark's own cost.
// The target (<= 15 ms to the first welcome with 1M sessions
// stored, p50 of REPS starts) is the `targets` row: the server's own time
// (exec to welcome) when the launcher is there, else spawn to welcome,
// judged only with 1M sessions stored.
//
// --route: the timed starts are given a routes file with one OpenAI target
// (gpt-4o-mini; never called), as a deployment with a model configured,
// whose tokenizer (o200k_base) the server loads; `route` in the output.
//
//   node tests/bench/startup.mjs [--smoke] [--sizes 0,100000,1000000] [--store DIR] [--route]
//
// --store DIR keeps the store in DIR (filled only up to what it lacks, never
// removed), so builds can be compared on the same 1M-session store.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
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
  spawnVia,
  startTether,
  stopProc,
  argValue,
} from './lib/common.mjs';
import { BARE_BIN, bareArgs, bareAvailable } from './lib/bare.mjs';

const EXEC_AT = process.env.BENCH_EXEC_AT || path.join(path.dirname(BIN), 'bench_exec_at');
const LAUNCHER = existsSync(EXEC_AT) ? EXEC_AT : null;
if (!LAUNCHER) console.error(`no launcher at ${EXEC_AT}: spawning through sh, no exec-to-welcome figures`);
import { target } from './lib/targets.mjs';

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

const ROUTE = process.argv.includes('--route');
let routeArgs = [];
if (ROUTE) {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tether-startup-route-')), 'routes.json');
  const target = {
    provider: 'openai',
    base_url: 'http://127.0.0.1:9/v1',
    model: 'gpt-4o-mini',
    key_env: 'BENCH_FAKE_KEY',
  };
  writeFileSync(file, JSON.stringify({ routes: { default: [target] } }));
  process.env.BENCH_FAKE_KEY ||= 'bench-fake-key';
  routeArgs = ['--routes', file];
  process.on('exit', () => rmSync(path.dirname(file), { recursive: true, force: true }));
}

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

// The CPU time a process has run so far, in ms (ns precise, where /proc/<pid>/stat counts 10 ms ticks).
function runMs(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

// spawn -> (exec) -> TCP connect -> upgrade -> hello -> welcome; Tether on
// the store in dir, or the bare peer when dir is null. Returns {ms, cpu,
// own_ms, own_cpu} (cpu: runMs at the welcome; own_: after the exec).
async function timeToWelcome(dir) {
  const port = await freePort();
  const [bin, args] =
    dir === null ? [BARE_BIN, bareArgs(port)] : [BIN, ['--port', port, '--data-dir', dir, ...COMMON, ...routeArgs]];
  const t0 = process.hrtime.bigint();
  const proc = LAUNCHER
    ? spawnVia(LAUNCHER, bin, args, { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] })
    : spawnRaised(bin, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  const execAt = LAUNCHER
    ? new Promise((resolve) => {
        let text = '';
        proc.stdio[3].on('data', (d) => (text += d));
        proc.stdio[3].on('close', () => {
          try {
            resolve(JSON.parse(text));
          } catch {
            resolve(null);
          }
        });
      })
    : Promise.resolve(null);
  let tw = null;
  let cpu = null;
  let exited = false;
  proc.on('exit', () => {
    exited = true;
  });
  for (let tries = 0; tries < 60000 && tw === null && !exited; tries++) {
    tw = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
      ws.on('error', () => resolve(null));
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
      ws.on('message', (d) => {
        if (JSON.parse(d).type === 'welcome') {
          const t = process.hrtime.bigint();
          cpu = runMs(proc.pid);
          resolve(t);
          ws.close();
        }
      });
    });
    if (tw === null) await sleep(1);
  }
  await stopProc(proc);
  if (tw === null) throw new Error(`${dir === null ? 'bench_bare_lws' : 'tether'} did not serve a welcome`);
  const at = await execAt;
  const ms = Number(tw - t0) / 1e6;
  if (!at) return { ms, cpu, own_ms: null, own_cpu: null };
  return { ms, cpu, own_ms: Number(tw - BigInt(at.exec_mono_ns)) / 1e6, own_cpu: cpu - at.cpu_ns / 1e6 };
}

const dirSize = (d) => readdirSync(d).reduce((a, f) => a + statSync(path.join(d, f)).size, 0);
const results = [];
let bare = null;
const summary = (ts) => ({
  welcome_ms: dist(
    ts.map((t) => t.ms),
    1,
  ),
  all_ms: ts.map((t) => +t.ms.toFixed(1)),
  cpu_ms: dist(
    ts.map((t) => t.cpu ?? NaN),
    2,
  ),
  own_ms: LAUNCHER
    ? dist(
        ts.map((t) => t.own_ms ?? NaN),
        2,
      )
    : null,
  own_cpu_ms: LAUNCHER
    ? dist(
        ts.map((t) => t.own_cpu ?? NaN),
        2,
      )
    : null,
  spawn_ms: LAUNCHER
    ? dist(
        ts.map((t) => (t.own_ms === null ? NaN : t.ms - t.own_ms)),
        2,
      )
    : null,
  spawn_cpu_ms: LAUNCHER
    ? dist(
        ts.map((t) => (t.own_cpu === null || t.cpu === null ? NaN : t.cpu - t.own_cpu)),
        2,
      )
    : null,
});
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
  // At the largest size, each start is followed by one of the peer's.
  const withBare = size === SIZES[SIZES.length - 1] && bareAvailable();
  if (withBare) await timeToWelcome(null); // warm, not counted
  const times = [];
  const bareTimes = [];
  for (let r = 0; r < REPS; r++) {
    times.push(await timeToWelcome(dir));
    if (withBare) bareTimes.push(await timeToWelcome(null));
  }
  if (withBare) bare = summary(bareTimes);
  results.push({
    sessions_stored: stored,
    store_bytes: dirSize(dir),
    ...summary(times),
    fill: fillInfo && {
      created: fillInfo.created,
      seconds: +fillInfo.seconds.toFixed(1),
      sessions_per_s: Math.round(fillInfo.created / fillInfo.seconds),
    },
  });
}
if (!KEEP) rmSync(dir, { recursive: true, force: true });
const TARGET_SESSIONS = 1000000;
const big = results[results.length - 1];
const at = big.sessions_stored >= TARGET_SESSIONS ? '' : ` (run with ${big.sessions_stored.toLocaleString('en')})`;
const own = LAUNCHER !== null;
const targets = [
  target({
    name: `cold start <= 15 ms with 1M sessions, ${own ? 'exec' : 'spawn'} to welcome${at}`,
    figure: own ? big.own_ms.p50 : big.welcome_ms.p50,
    unit: 'ms (p50)',
    peer: `bare lws, ${own ? 'exec' : 'spawn'} to first frame`,
    peer_figure: (own ? bare?.own_ms.p50 : bare?.welcome_ms.p50) ?? null,
    goal: '<= 15 ms',
    met: SMOKE || big.sessions_stored < TARGET_SESSIONS ? null : (own ? big.own_ms.p50 : big.welcome_ms.p50) <= 15,
  }),
];
out({ bench: 'startup', route: ROUTE, results, bare, targets });
if (results.some((r) => r.welcome_ms.n !== REPS || r.welcome_ms.p50 === null)) process.exit(1);

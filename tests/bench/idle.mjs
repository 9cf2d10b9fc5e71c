// Idle sessions: N authenticated sockets (JWT from POST /v1/tokens), each
// attached to its own echo session with one finished turn, held open by
// several client processes on distinct loopback source addresses. Reports the
// server's RSS per socket+session (total, heap = RssAnon, file-backed =
// RssFile: LMDB pages), the time to establish them and the server's CPU
// time meanwhile. The peer, after each size with the same count and the same
// client processes: bare libwebsockets sockets (lib/bare.mjs: same lws, loop
// and buffers; the hello, session.open and say answered with frames of the
// same shape, nothing kept but lws's own per-socket state), its figures in
// `bare`. The targets at 19,000 (<= 10 KiB per socket+session, all
// established in <= 5 s) are the `targets` rows, judged at 19,000 only.
//
//   node tests/bench/idle.mjs [N ...] [--smoke]      (default 1000 5000 10000 19000)
// The server holds at most ~19.9k sockets: its hard fd limit is 20,000.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SMOKE, cpuSec, mintToken, out, rssKiB, sleep, split, startTether, workers } from './lib/common.mjs';
import { bareAvailable, startBare } from './lib/bare.mjs';
import { target } from './lib/targets.mjs';

const Ns = process.argv
  .slice(2)
  .filter((a) => /^\d+$/.test(a))
  .map(Number);
const sizes = Ns.length ? Ns : SMOKE ? [200] : [1000, 5000, 10000, 19000];
const TARGET_N = 19000;

// N sockets from ⌈N/5000⌉ client processes against srv (Tether or the peer), each with its one turn.
async function measure(srv, N, token) {
  const k = Math.max(1, Math.ceil(N / 5000));
  const w = workers(k);
  await sleep(300);
  const before = rssKiB(srv.pid);
  const parts = split(N, k);
  const t0 = performance.now();
  const cpu0 = cpuSec(srv.pid);
  const res = await w.all((i) => ({
    cmd: 'open',
    port: srv.port,
    token,
    local: w.local(i),
    n: parts[i],
    say: true,
    window: 100,
  }));
  const establishMs = performance.now() - t0;
  const establishCpu = cpuSec(srv.pid) - cpu0;
  await sleep(1000);
  const after = rssKiB(srv.pid);
  const opened = res.reduce((a, r) => a + r.opened, 0);
  const errors = res.reduce((a, r) => a + r.errors, 0);
  const errorKinds = {};
  for (const r of res)
    for (const [kind, v] of Object.entries(r.error_kinds || {})) errorKinds[kind] = (errorKinds[kind] || 0) + v;
  await w.close();
  const per = (f) => +((after[f] - before[f]) / Math.max(1, opened)).toFixed(2);
  return {
    sockets: N,
    opened,
    errors,
    error_kinds: errorKinds,
    client_processes: k,
    rss_before_kib: before,
    rss_after_kib: after,
    kib_per_session: per('total'),
    heap_kib_per_session: per('anon'),
    file_kib_per_session: per('file'),
    establish_s: +(establishMs / 1000).toFixed(2),
    sessions_per_s: Math.round(opened / (establishMs / 1000)),
    // The server's CPU time (user + system) while establishing: barely moved
    // by other load on the machine, so it compares builds on a shared one.
    establish_cpu_s: +establishCpu.toFixed(2),
    cpu_us_per_socket: Math.round((establishCpu / Math.max(1, opened)) * 1e6),
  };
}

async function measureTether(N) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-idle-'));
  const srv = await startTether([
    '--data-dir',
    dir,
    '--echo-delay-ms',
    '0',
    '--api-key',
    'benchkey',
    '--idle-evict-s',
    '0',
  ]);
  const r = await measure(srv, N, await mintToken(srv.port, 'benchkey'));
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
  return r;
}

async function measureBare(N) {
  const srv = await startBare();
  const r = await measure(srv, N, 'bare'); // the peer takes any token
  await srv.stop();
  return r;
}

// The rows, from the largest size run (judged only at 19,000 or more, never in a smoke run).
function targetRows(r, bare) {
  const at = r.sockets === TARGET_N ? '' : ` (run at ${r.sockets.toLocaleString('en')})`;
  const judge = (ok) => (SMOKE || r.sockets < TARGET_N ? null : ok && r.opened >= TARGET_N);
  return [
    target({
      name: `RSS per authenticated socket+session <= 10 KiB at 19,000${at}`,
      figure: r.kib_per_session,
      unit: 'KiB',
      peer: 'bare lws socket, same clients',
      peer_figure: bare?.kib_per_session ?? null,
      goal: '<= 10 KiB',
      met: judge(r.kib_per_session <= 10),
    }),
    target({
      name: `19,000 established in <= 5 s${at}`,
      figure: r.establish_s,
      unit: 's',
      peer: 'bare lws, same clients',
      peer_figure: bare?.establish_s ?? null,
      goal: '<= 5 s',
      met: judge(r.establish_s <= 5),
    }),
  ];
}

const withBare = bareAvailable();
const results = [];
for (const N of sizes) {
  const r = await measureTether(N);
  if (withBare) r.bare = await measureBare(N);
  results.push(r);
}
const last = results[results.length - 1];
out({ bench: 'idle', results, targets: targetRows(last, last.bare) });
// Broken, not merely at the ceiling: the smallest size must open every socket, on both.
const whole = (r) => r && !r.errors && r.opened === r.sockets;
if (!whole(results[0]) || (withBare && !whole(results[0].bare))) process.exit(1);

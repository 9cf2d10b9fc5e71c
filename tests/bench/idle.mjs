// Idle sessions: N authenticated sockets (JWT from POST /v1/tokens), each
// attached to its own echo session with one finished turn, held open by
// several client processes on distinct loopback source addresses. Reports the
// server's RSS per socket+session (total, heap = RssAnon, file-backed =
// RssFile: LMDB pages), the time to establish them and the server's CPU
// time meanwhile.
//
//   node tests/bench/idle.mjs [N ...] [--smoke]      (default 1000 5000 10000 19000)
// The server holds at most ~19.9k sockets: its hard fd limit is 20,000.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SMOKE, cpuSec, mintToken, out, rssKiB, sleep, split, startTether, workers } from './lib/common.mjs';

const Ns = process.argv
  .slice(2)
  .filter((a) => /^\d+$/.test(a))
  .map(Number);
const sizes = Ns.length ? Ns : SMOKE ? [200] : [1000, 5000, 10000, 19000];
const results = [];
for (const N of sizes) {
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
  const token = await mintToken(srv.port, 'benchkey');
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
    for (const [k, v] of Object.entries(r.error_kinds || {})) errorKinds[k] = (errorKinds[k] || 0) + v;
  await w.close();
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
  const per = (f) => +((after[f] - before[f]) / opened).toFixed(2);
  results.push({
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
  });
}
out({ bench: 'idle', results });
// Broken, not merely at the ceiling: the smallest size must open every socket.
if (results[0].errors || results[0].opened !== results[0].sockets) process.exit(1);

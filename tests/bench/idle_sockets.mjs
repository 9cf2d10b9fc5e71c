// Idle sessions: open N sockets, each authenticated and attached to its own
// echo session with one finished turn, then report the server's RSS per
// socket+session and the time to establish them. Also reports start-up time
// (spawn to the first 200 from /readyz) on an empty and on the filled store.
//
//   node tests/bench/idle_sockets.mjs [N]        (default 1000)
// Uses build/tether unless TETHER_BIN is set. Loopback only; stops by itself.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

const N = Number(process.argv[2] || 1000);
const BIN = process.env.TETHER_BIN || path.resolve('build/tether');

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function start(dataDir, port) {
  const t0 = process.hrtime.bigint();
  const proc = spawn(
    BIN,
    [
      '--port',
      String(port),
      '--data-dir',
      dataDir,
      '--echo-delay-ms',
      '0',
      '--rate-burst',
      '1000',
      '--max-sessions-per-user', // every socket opens a session as the one open-mode user
      '0',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  proc.stderr.resume();
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return { proc, startupMs: Number(process.hrtime.bigint() - t0) / 1e6 };
}

// Resident memory in KiB: total, and anonymous (heap) apart from file-backed
// pages (LMDB's map counts in RSS as the store is touched).
function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))[1]);
  return { total: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

function openOne(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1');
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d);
      if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
      else if (m.type === 'ok' && m.re === 'o')
        ws.send(JSON.stringify({ type: 'say', session: m.session, text: 'hello there' }));
      else if (m.type === 'state' && m.state === 'idle' && m.seq > 1) resolve(ws);
    });
  });
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-'));
const port = await freePort();
const empty = await start(dir, port);
await new Promise((r) => setTimeout(r, 200));
const before = rssKiB(empty.proc.pid);
const t0 = performance.now();
const sockets = [];
for (let i = 0; i < N; i += 50) {
  const batch = [];
  for (let j = i; j < Math.min(N, i + 50); j++) batch.push(openOne(port));
  sockets.push(...(await Promise.all(batch)));
}
const establishMs = performance.now() - t0;
await new Promise((r) => setTimeout(r, 500));
const after = rssKiB(empty.proc.pid);
for (const ws of sockets) ws.terminate();
empty.proc.kill('SIGTERM');
await new Promise((r) => empty.proc.on('exit', r));

const filled = await start(dir, port);
filled.proc.kill('SIGTERM');
await new Promise((r) => filled.proc.on('exit', r));
rmSync(dir, { recursive: true, force: true });

const report = {
  sockets: N,
  rss_before_kib: before,
  rss_after_kib: after,
  kib_per_socket_and_session: +((after.total - before.total) / N).toFixed(2),
  heap_kib_per_socket_and_session: +((after.anon - before.anon) / N).toFixed(2),
  establish_ms: +establishMs.toFixed(1),
  startup_ms_empty_store: +empty.startupMs.toFixed(1),
  startup_ms_with_sessions: +filled.startupMs.toFixed(1),
};
console.log(JSON.stringify(report, null, 2));

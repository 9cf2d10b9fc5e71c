// A full photo-organiser run on a library of N real JPEG photos (default
// 1,000): scan with EXIF and SHA-256, model steps answered by the fake
// provider (summary, one question, a plan moving every photo), approval,
// journaled moves, then undo. Reports the time of each phase, the server's
// CPU time in each and its peak memory, and the issue-18 targets beside
// peers measured on the same library in the same run: for the scan, every
// file read once and hashed with SHA-256 in a plain loop (one Node thread);
// for the moves, a plain rename() of every file into one folder and one
// fsync per folder touched at the end (the least a crash-safe mover pays).
//
//   node tests/bench/photos.mjs [N] [--smoke]   (--smoke: 20 photos, targets not judged)
// Needs build/tether and build-debug/tests/unit/make_photo_library (make
// build build-debug). Loopback only; stops by itself.
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { cpuSec } from './lib/common.mjs';
import { target } from './lib/targets.mjs';

const SMOKE = process.argv.includes('--smoke');
const N = SMOKE ? 20 : Number(process.argv.slice(2).find((a) => !a.startsWith('--')) || 1000);
const BIN = process.env.TETHER_BIN || path.resolve('build/tether');
const MAKER = process.env.PHOTO_MAKER || path.resolve('build-debug/tests/unit/make_photo_library');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-photobench-'));
const lib = path.join(root, 'local');
let t = performance.now();
execFileSync(MAKER, [lib, String(N), '25', '640']);
const genMs = performance.now() - t;
const files = [];
const walk = (d) => {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    e.isDirectory() ? walk(p) : files.push(path.relative(lib, p));
  }
};
walk(lib);
const bytes = files.reduce((s, f) => s + fs.statSync(path.join(lib, f)).size, 0);

// The scan's peer: every file's bytes read once and hashed, in a plain loop.
t = performance.now();
for (const f of files)
  crypto
    .createHash('sha256')
    .update(fs.readFileSync(path.join(lib, f)))
    .digest('hex');
const peerScanMs = performance.now() - t;

// The moves' peer: rename() of every file into one folder, then one fsync per
// folder touched; put back afterwards (not timed) for the run below.
const syncDir = (d) => {
  const fd = fs.openSync(d, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
};
const peerDir = path.join(root, 'peer-moves');
fs.mkdirSync(peerDir);
const touched = new Set([peerDir]);
t = performance.now();
files.forEach((f, i) => {
  fs.renameSync(path.join(lib, f), path.join(peerDir, String(i)));
  touched.add(path.dirname(path.join(lib, f)));
});
for (const d of touched) syncDir(d);
const peerMovesMs = performance.now() - t;
files.forEach((f, i) => fs.renameSync(path.join(peerDir, String(i)), path.join(lib, f)));
for (const d of touched) syncDir(d);
fs.rmdirSync(peerDir);

const fp = await startFakeProvider();
const plan = {
  explanation: 'By camera.',
  folders: ['organised'],
  moves: files.sort().map((src) => ({ src, dest: `organised/${path.basename(src)}` })),
};
fp.script([
  { text: 'A library of product photos.' },
  { text: JSON.stringify({ questions: [{ text: 'By date or camera?', choices: ['date', 'camera'] }] }) },
  { text: JSON.stringify(plan) },
]);
const routes = path.join(root, 'routes.json');
fs.writeFileSync(
  routes,
  JSON.stringify({
    routes: { default: [{ provider: 'openai', base_url: `${fp.url}/v1`, model: 'gpt-4o-mini', key_env: 'FAKE_KEY' }] },
  }),
);
const port = await new Promise((r) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => r(p));
  });
});
const srv = spawn(
  BIN,
  [
    '--port',
    String(port),
    '--data-dir',
    path.join(root, 'data'),
    '--routes',
    routes,
    '--photos-root',
    root,
    '--log-level',
    'warn',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, FAKE_KEY: 'k' } },
);
for (;;) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
  } catch {
    /* starting */
  }
  await new Promise((r) => setTimeout(r, 10));
}
const hwm = () => Number(fs.readFileSync(`/proc/${srv.pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/)[1]);
const rssBefore = hwm();

const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`);
const phases = {},
  cpu = {};
let session,
  mark = performance.now(),
  cpuMark = cpuSec(srv.pid);
const lap = (name) => {
  const now = performance.now(),
    c = cpuSec(srv.pid);
  phases[name] = +(now - mark).toFixed(1);
  cpu[name] = +((c - cpuMark) * 1000).toFixed(0);
  mark = now;
  cpuMark = c;
};
const done = new Promise((resolve) => {
  let undoing = false;
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
  ws.on('message', (d) => {
    const m = JSON.parse(d);
    if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'photo-organizer' }));
    else if (m.type === 'ok' && m.re === 'o') {
      session = m.session;
      mark = performance.now();
      cpuMark = cpuSec(srv.pid);
      ws.send(JSON.stringify({ type: 'say', session, text: 'organise my photos' }));
    } else if (m.type === 'state' && m.state === 'running' && m.step === 'summarise') lap('analyse_scan');
    else if (m.type === 'question') {
      lap('summary_and_questions');
      ws.send(JSON.stringify({ type: 'answer', session, question_id: m.question_id, value: 'camera' }));
    } else if (m.type === 'approval') {
      lap('plan_and_check');
      ws.send(JSON.stringify({ type: 'decide', session, approval_id: m.approval_id, decision: 'approve' }));
    } else if (m.type === 'state' && m.state === 'done' && !undoing) {
      lap('execute_moves');
      undoing = true;
      ws.send(JSON.stringify({ type: 'say', session, text: 'undo' }));
    } else if (m.type === 'state' && m.state === 'done' && undoing) {
      lap('undo');
      resolve();
    } else if (m.type === 'state' && m.state === 'failed') {
      console.error('run failed');
      process.exit(1);
    }
  });
});
await done;
const rssPeak = hwm();
ws.close();
srv.kill('SIGTERM');
await new Promise((r) => srv.on('exit', r));
await fp.close();
fs.rmSync(root, { recursive: true, force: true });
console.log(
  JSON.stringify(
    {
      photos: files.length,
      library_mib: +(bytes / 1048576).toFixed(1),
      generate_ms: +genMs.toFixed(0),
      phases_ms: phases,
      server_cpu_ms: cpu,
      peers_ms: { read_and_sha256: +peerScanMs.toFixed(1), rename_and_fsync_folders: +peerMovesMs.toFixed(1) },
      total_ms: +Object.values(phases)
        .reduce((a, b) => a + b, 0)
        .toFixed(1),
      server_peak_rss_kib: rssPeak,
      server_rss_before_kib: rssBefore,
      targets: [
        target({
          name: `scan ${files.length} JPEGs (EXIF, SHA-256), <= 0.5 s at 1,000`,
          figure: phases.analyse_scan / 1000,
          unit: 's',
          peer: 'read + SHA-256 of every file, one thread',
          peer_figure: peerScanMs / 1000,
          goal: '<= 0.5 s',
          met: SMOKE || files.length < 1000 ? null : phases.analyse_scan <= 500,
        }),
        target({
          name: `moves of ${files.length}, journaled, <= 2 s at 1,000`,
          figure: phases.execute_moves / 1000,
          unit: 's',
          peer: 'rename() each + fsync per folder',
          peer_figure: peerMovesMs / 1000,
          goal: '<= 2 s',
          met: SMOKE || files.length < 1000 ? null : phases.execute_moves <= 2000,
        }),
      ],
    },
    null,
    2,
  ),
);

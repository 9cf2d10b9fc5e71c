// Upgrade without a gap (server/README.md, "Upgrade"): N clients
// (web/tether-client.js in Node) each keep an echo session busy, one turn
// after another; U times a new process takes over with --takeover. Figures:
// the hand-over (spawn of the new process to the old one's exit), the time
// until every client got an event from the new process, and the longest
// pause between two consecutive events any client saw (p50 of the clients'
// longest pauses too); plus the check that every client's log is contiguous
// and no error reached a client.
//
//   node tests/bench/upgrade.mjs [--smoke]      (N=100, U=3; smoke: N=20, U=1)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { TetherClient } from '../../web/tether-client.js';
import { BIN, ROOT, SMOKE, UNTHROTTLED, dist, out, sleep, startTether, stopProc } from './lib/common.mjs';

const N = SMOKE ? 20 : 100;
const U = SMOKE ? 1 : 3;
const WORDS = 20;
const DELAY_MS = 10; // the echo agent's pause between words: a turn of about 200 ms
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-upgrade-'));
const args = ['--data-dir', dir, '--echo-delay-ms', String(DELAY_MS), '--upgrade-grace-ms', '30000'];
const first = await startTether([...args, ...UNTHROTTLED]);
const port = first.port;
let current = first.proc;

function takeover() {
  const argv = ['--port', String(port), '--log-level', 'warn', '--max-sessions-per-user', '0'];
  const proc = spawn(BIN, [...argv, '--web-dir', path.join(ROOT, 'web'), ...args, ...UNTHROTTLED, '--takeover', 'on'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  proc.stderr.resume();
  return proc;
}

const text = Array.from({ length: WORDS }, (_, i) => `w${i}`).join(' ');
const clients = [];
const errorKinds = {};
for (let i = 0; i < N; i++) {
  const c = new TetherClient({ url: `ws://127.0.0.1:${port}/v1/ws`, WebSocket, client: 'bench-upgrade/1' });
  const rec = { c, session: null, seqs: [], last: 0, maxPause: 0, errors: 0, turns: 0, gen: 0, sawGen: 0 };
  c.on('client.error', (e) => {
    rec.errors++;
    errorKinds[e.code] = (errorKinds[e.code] || 0) + 1;
  });
  c.on('*', (ev) => {
    const now = performance.now();
    if (rec.last && rec.measuring) rec.maxPause = Math.max(rec.maxPause, now - rec.last);
    rec.last = now;
    rec.seqs.push(ev.seq);
    rec.sawGen = rec.gen;
    if (ev.type === 'state' && ev.state === 'idle' && ev.seq > 2 && !rec.stop) {
      rec.turns++;
      c.say(rec.session, text).catch((e) => {
        rec.errors++;
        errorKinds[`say:${e.code}`] = (errorKinds[`say:${e.code}`] || 0) + 1;
      });
    }
  });
  clients.push(rec);
}
await Promise.all(clients.map((r) => r.c.connect()));
for (const r of clients) {
  r.session = (await r.c.open('echo')).session;
  r.c.say(r.session, text).catch(() => r.errors++);
}
await sleep(1500);
for (const r of clients) r.measuring = true;

const rounds = [];
for (let u = 0; u < U; u++) {
  for (const r of clients) r.maxPause = 0;
  await sleep(500);
  const gen = u + 1;
  const t0 = performance.now();
  current.stopping = true; // its exit is expected (startTether's watcher)
  const next = takeover();
  const exited = new Promise((res) => current.on('exit', (code) => res(code)));
  const code = await exited;
  const handover = performance.now() - t0;
  for (const r of clients) r.gen = gen; // events from now on come from the new process
  const deadline = performance.now() + 30000;
  while (clients.some((r) => r.sawGen < gen) && performance.now() < deadline) await sleep(5);
  const served = performance.now() - t0;
  await sleep(1000);
  const pauses = clients.map((r) => r.maxPause).sort((a, b) => a - b);
  rounds.push({
    old_exit_code: code,
    handover_ms: Math.round(handover),
    all_clients_served_ms: Math.round(served),
    longest_pause_ms: Math.round(pauses[pauses.length - 1]),
    clients_longest_pause_ms: dist(pauses, 0),
  });
  current = next;
}

for (const r of clients) r.stop = true;
await sleep(500);
const gaps = clients.filter((r) => r.seqs.some((s, i) => s !== r.seqs[0] + i)).length;
const errors = clients.reduce((a, r) => a + r.errors, 0);
const turns = clients.reduce((a, r) => a + r.turns, 0);
for (const r of clients) r.c.close();
await stopProc(current);
rmSync(dir, { recursive: true, force: true });
out({
  bench: 'upgrade',
  clients: N,
  upgrades: U,
  turn_words: WORDS,
  echo_delay_ms: DELAY_MS,
  turns_completed: turns,
  clients_with_a_gap_or_duplicate: gaps,
  client_errors: errors,
  client_error_kinds: errorKinds,
  rounds,
});
if (gaps || errors || rounds.some((r) => r.old_exit_code !== 0)) process.exit(1);

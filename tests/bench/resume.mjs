// Resume. (1) Replay: a session with E missed events; a fresh socket sends
// session.attach after=head-E; time from sending the attach to holding the
// last event, repeated R times. (2) Reconnect storm: M clients (spread over
// client processes and loopback source addresses) each start a turn and drop
// their socket mid-stream; then all reconnect at the same instant and
// re-attach after their last seq; time until every one has caught up, errors.
//
//   node tests/bench/resume.mjs [--smoke] [--replay-only]   (E=1000, R=30, M=10000)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { SMOKE, cpuSec, dist, mintToken, nowMs, out, sleep, split, startTether, workers } from './lib/common.mjs';

const E = SMOKE ? 200 : 1000;
const R = SMOKE ? 5 : 30;
const M = SMOKE ? 300 : 10000;
const REPLAY_ONLY = process.argv.includes('--replay-only'); // (1) alone: to compare builds
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-resume-'));
const srv = await startTether([
  '--data-dir',
  dir,
  '--echo-delay-ms',
  '0',
  '--api-key',
  'benchkey',
  '--rate-msgs-per-s',
  '100000',
  '--rate-burst',
  '100000',
]);
const token = await mintToken(srv.port, 'benchkey');

function socket() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', token })));
    ws.once('message', () => resolve(ws)); // welcome
  });
}
const next = (ws, pred) =>
  new Promise((resolve) => {
    const f = (d) => {
      const m = JSON.parse(d);
      if (pred(m)) {
        ws.off('message', f);
        resolve(m);
      }
    };
    ws.on('message', f);
  });

// (1) one session whose log holds E events after the point we resume from.
const ws = await socket();
ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
const session = (await next(ws, (m) => m.type === 'ok')).session;
// an echo turn of W words is W deltas + 5 other events (user, state, message.start/end, state)
const words = Array.from({ length: E - 5 }, (_, i) => `w${i}`).join(' ');
ws.send(JSON.stringify({ type: 'say', session, text: words }));
const end = await next(ws, (m) => m.type === 'state' && m.state === 'idle' && m.seq > 2);
ws.close();
const head = end.seq;
const replay = [];
let replayErrors = 0;
const cpu0 = cpuSec(srv.pid); // the server's CPU per replay: barely moved by other load
for (let r = 0; r < R; r++) {
  const c = await socket();
  const after = head - E;
  let last = after;
  const t0 = performance.now();
  c.send(JSON.stringify({ type: 'session.attach', id: 'a', session, after }));
  await next(c, (m) => {
    if (m.seq) {
      if (m.seq !== last + 1) replayErrors++;
      last = m.seq;
    }
    return m.seq === head;
  });
  replay.push(performance.now() - t0);
  c.close();
}

const cpuMsPerReplay = +(((cpuSec(srv.pid) - cpu0) * 1000) / R).toFixed(2);
// (2) the storm.
if (REPLAY_ONLY) {
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
  const ms = dist(replay, 2);
  out({
    bench: 'resume',
    replay: { missed_events: E, repetitions: R, errors: replayErrors, ms, server_cpu_ms: cpuMsPerReplay },
  });
  process.exit(replayErrors ? 1 : 0);
}
const k = Math.max(1, Math.ceil(M / 4000));
const w = workers(k);
const parts = split(M, k);
const opened = await w.all((i) => ({
  cmd: 'open',
  port: srv.port,
  token,
  local: w.local(i),
  n: parts[i],
  say: true,
  window: 100,
}));
await w.all(() => ({ cmd: 'drop', text: Array.from({ length: 20 }, (_, i) => `x${i}`).join(' ') }));
await sleep(2000); // the turns finish with no socket attached
const at = nowMs() + 500;
const res = await w.all((i) => ({ cmd: 'reattach', port: srv.port, token, local: w.local(i), at }));
const caught = res.reduce((a, r) => a + r.caught_up, 0);
const stormErrors = res.reduce((a, r) => a + r.errors, 0);
const lastT = Math.max(...res.map((r) => r.last || 0));
await w.close();
await srv.stop();
rmSync(dir, { recursive: true, force: true });

const result = {
  bench: 'resume',
  replay: {
    missed_events: E,
    repetitions: R,
    errors: replayErrors,
    ms: dist(replay, 2),
    server_cpu_ms: cpuMsPerReplay,
    events_per_s_p50: Math.round(E / (dist(replay).p50 / 1000)),
  },
  storm: {
    clients: M,
    established: opened.reduce((a, r) => a + r.opened, 0),
    client_processes: k,
    caught_up: caught,
    errors: stormErrors,
    replayed_events: res.reduce((a, r) => a + r.replayed, 0),
    all_caught_up_s: +((lastT - at) / 1000).toFixed(2),
  },
};
out(result);
if (replayErrors || stormErrors || caught !== M) process.exit(1);

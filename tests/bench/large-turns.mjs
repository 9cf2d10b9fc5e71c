// Large turns: what a session's growing transcript costs every commit.
// One echo session (--echo-delay-ms 0) takes TURNS turns of SIZE bytes each
// (WORDS words, so WORDS deltas per reply); a second socket meanwhile sends
// `ping` frames back to back, and a second session takes one small turn
// after each large one. Per large turn: the group-commit time spent during it
// (tether_commit_seconds_sum delta), the worst ping round trip on the other
// socket (how long the loop stalled), the small turn's say -> idle time.
// At the end: data.mdb size against the bytes sent.
//
//   node tests/bench/large-turns.mjs [--smoke] [--turns N] [--kib K]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { SMOKE, UNTHROTTLED, metrics, out, startTether } from './lib/common.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const TURNS = arg('--turns', SMOKE ? 4 : 50);
const SIZE = arg('--kib', SMOKE ? 50 : 500) * 1000;
const WORDS = 100;

function bigText(turn) {
  const word = `t${turn}`.padEnd(Math.floor(SIZE / WORDS) - 1, 'x');
  return Array.from({ length: WORDS }, () => word)
    .join(' ')
    .padEnd(SIZE, 'y');
}

// A socket with request/response by id and a waiter for the next matching frame.
function open(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', {
    perMessageDeflate: false,
    maxPayload: 8 << 20,
  });
  const waiters = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d);
    for (let i = 0; i < waiters.length; i++) {
      if (waiters[i].match(m)) {
        waiters.splice(i, 1)[0].resolve(m);
        break;
      }
    }
  });
  const wait = (match) => new Promise((resolve) => waiters.push({ match, resolve }));
  const send = (m) => ws.send(JSON.stringify(m));
  return new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('open', async () => {
      const welcome = wait((m) => m.type === 'welcome');
      send({ type: 'hello' });
      await welcome;
      resolve({ ws, wait, send });
    });
  });
}

async function session(c) {
  const opened = c.wait((m) => m.re === 'o');
  c.send({ type: 'session.open', id: 'o', agent: 'echo' });
  return (await opened).session;
}

async function turn(c, sid, text) {
  const t0 = performance.now();
  const ended = c.wait((m) => m.type === 'message.end' && m.session === sid);
  const idle = c.wait((m) => m.type === 'state' && m.state === 'idle' && m.session === sid);
  c.send({ type: 'say', session: sid, text });
  await ended;
  await idle;
  return performance.now() - t0;
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-large-turns-'));
const srv = await startTether(['--data-dir', dir, '--echo-delay-ms', '0', ...UNTHROTTLED]);
const big = await open(srv.port),
  small = await open(srv.port),
  pinger = await open(srv.port);
const bigSid = await session(big),
  smallSid = await session(small);

let pinging = true,
  worstPing = 0,
  pings = 0;
const pingLoop = (async () => {
  while (pinging) {
    const id = `p${pings++}`,
      t0 = performance.now();
    const pong = pinger.wait((m) => m.re === id);
    pinger.send({ type: 'ping', id });
    await pong;
    worstPing = Math.max(worstPing, performance.now() - t0);
  }
})();

const perTurn = [];
let sent = 0;
for (let i = 0; i < TURNS; i++) {
  const text = bigText(i);
  sent += Buffer.byteLength(text);
  const m0 = await metrics(srv.port);
  worstPing = 0;
  const turnMs = await turn(big, bigSid, text);
  const stallMs = worstPing;
  const m1 = await metrics(srv.port);
  const smallMs = await turn(small, smallSid, 'a small turn');
  perTurn.push({
    turn: i + 1,
    turn_ms: turnMs,
    stall_ms: stallMs,
    small_turn_ms: smallMs,
    commit_ms: (m1.tether_commit_seconds_sum - m0.tether_commit_seconds_sum) * 1000,
    commits: m1.tether_commit_seconds_count - m0.tether_commit_seconds_count,
  });
}
pinging = false;
await pingLoop;
const m = await metrics(srv.port);
for (const c of [big, small, pinger]) c.ws.close();
await srv.stop();
const dataBytes = statSync(path.join(dir, 'data.mdb')).size;
rmSync(dir, { recursive: true, force: true });

const r3 = (x) => +x.toFixed(3);
const pick = (t) => ({
  turn: t.turn,
  commit_ms: r3(t.commit_ms),
  commits: t.commits,
  stall_ms: r3(t.stall_ms),
  small_turn_ms: r3(t.small_turn_ms),
  turn_ms: r3(t.turn_ms),
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const q = Math.max(1, Math.floor(TURNS / 5));
out({
  bench: 'large-turns',
  turns: TURNS,
  bytes_per_turn: SIZE,
  words_per_turn: WORDS,
  first: pick(perTurn[0]),
  last: pick(perTurn[TURNS - 1]),
  commit_ms_median_first_fifth: r3(median(perTurn.slice(0, q).map((t) => t.commit_ms))),
  commit_ms_median_last_fifth: r3(median(perTurn.slice(-q).map((t) => t.commit_ms))),
  stall_ms_max: r3(Math.max(...perTurn.map((t) => t.stall_ms))),
  data_mdb_bytes: dataBytes,
  bytes_sent: sent,
  data_mdb_over_sent: +(dataBytes / sent).toFixed(2),
  commit_failures: m.tether_commit_failures_total,
});
if (m.tether_commit_failures_total) process.exit(1);

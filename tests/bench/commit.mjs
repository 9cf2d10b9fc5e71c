// Every event committed, at 100 connections (issue 18): the cheapest protocol
// round trip (ping -> pong, nothing stored) and the echo agent's turns (every
// event in a group commit before it is sent), on sessions holding 1 turn and
// 500 turns. The ratio long/short shows whether a commit's cost grows with the
// conversation (measured against new 1-turn sessions in the same store once
// it is filled, so the store's size is not in the ratio; server CPU per frame
// is the figure least moved by other load); echo/ping shows what committing
// costs against the round trip.
// Each client is closed loop: the next ping or say once the last answer came.
// The peer, in the same run and with the same clients: bare libwebsockets
// (lib/bare.mjs: same lws, loop and buffers, no application work, each frame
// written directly), answering a ping with a pong and a say with the 11
// frames of an echo turn, before and after the Tether runs; its figures are
// `bare` (the mean of the two runs), and the targets
// (ping and echo >= 0.6 of bare lws; a 500-turn commit at the 1-turn cost)
// are the `targets` rows.
//
//   node tests/bench/commit.mjs [--conns 100] [--turns 500] [--seconds 4]
//        [--bins a,b] [--smoke]
// --bins runs each phase for each binary in the same run, alternating (the
// before/after peers); otherwise TETHER_BIN (or build/tether).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { BIN, SMOKE, UNTHROTTLED, argValue, cpuSec, metrics, out, sleep, startTether } from './lib/common.mjs';
import { bareAvailable, startBare } from './lib/bare.mjs';
import { target } from './lib/targets.mjs';

const CONNS = Number(argValue('--conns', SMOKE ? 10 : 100));
const LONG = Number(argValue('--turns', SMOKE ? 20 : 500));
const SECONDS = Number(argValue('--seconds', SMOKE ? 1 : 4));
const BINS = argValue('--bins', BIN).split(',');
const TEXT = 'one two three four five';

function connect(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, 'tether.v1', { perMessageDeflate: false });
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello' })));
    ws.once('message', (d) => (JSON.parse(d).type === 'welcome' ? resolve(ws) : reject(new Error(String(d)))));
  });
}

// One client: open a session (or not), then loop `step` until stopped; counts answers and frames.
function client(ws, { session }) {
  const c = { ws, session: null, frames: 0, rounds: 0, running: false, done: null };
  ws.on('message', (d) => {
    const m = JSON.parse(d);
    c.frames++;
    if (m.type === 'error') throw new Error(`${m.code}: ${m.message}`);
    if (m.type === 'ok' && m.re === 'o') {
      c.session = m.session;
      c.onOpen();
    } else if (m.type === 'pong' || (m.type === 'state' && m.state === 'idle' && m.seq > 2)) {
      c.rounds++;
      c.onRound();
    }
  });
  c.open = () =>
    new Promise((r) => {
      c.onOpen = r;
      ws.send(JSON.stringify({ type: 'session.open', id: 'o', agent: 'echo' }));
    });
  c.step = (text) =>
    ws.send(JSON.stringify(session ? { type: 'say', session: c.session, text } : { type: 'ping', id: 'p' }));
  // n rounds back to back (filling a conversation), or until c.running is cleared when n is Infinity.
  c.loop = (n, text = TEXT) =>
    new Promise((resolve) => {
      let left = n;
      c.running = true;
      c.onRound = () => {
        if (--left > 0 && c.running) c.step(text);
        else resolve();
      };
      c.step(text);
    });
  return c;
}

async function phase(srv, clients, kind) {
  if (process.env.BENCH_SAY_PID) console.error(`${kind}: pid ${srv.pid}`);
  const m0 = srv.bare ? null : await metrics(srv.port);
  const cpu0 = cpuSec(srv.pid);
  for (const c of clients) c.frames = c.rounds = 0;
  const t0 = performance.now();
  const loops = clients.map((c) => c.loop(Infinity));
  await sleep(SECONDS * 1000);
  const secs = (performance.now() - t0) / 1000;
  const frames = clients.reduce((a, c) => a + c.frames, 0);
  const rounds = clients.reduce((a, c) => a + c.rounds, 0);
  const cpu = cpuSec(srv.pid) - cpu0;
  for (const c of clients) c.running = false;
  await Promise.all(loops);
  const r = {
    kind,
    frames_per_s: Math.round(frames / secs),
    rounds_per_s: Math.round(rounds / secs),
    server_cpu_us_per_frame: +((cpu / Math.max(1, frames)) * 1e6).toFixed(1),
  };
  if (srv.bare) return r;
  const m1 = await metrics(srv.port);
  const commits = m1.tether_commit_seconds_count - m0.tether_commit_seconds_count;
  return {
    ...r,
    commits_per_s: Math.round(commits / secs),
    commit_ms_mean: +(
      ((m1.tether_commit_seconds_sum - m0.tether_commit_seconds_sum) / Math.max(1, commits)) *
      1000
    ).toFixed(3),
  };
}

async function runBin(bin) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-commit-'));
  const srv = await startTether(['--data-dir', dir, '--echo-delay-ms', '0', '--idle-evict-s', '0', ...UNTHROTTLED], {
    bin,
  });
  const socks = await Promise.all(Array.from({ length: CONNS }, () => connect(srv.port)));
  const pings = socks.map((ws) => client(ws, { session: false }));
  const r = { bin, conns: CONNS };
  r.ping = await phase(srv, pings, 'ping');
  for (const ws of socks) ws.removeAllListeners('message');
  const says = socks.map((ws) => client(ws, { session: true }));
  await Promise.all(says.map((c) => c.open()));
  await Promise.all(says.map((c) => c.loop(1)));
  r.echo_1_turn = await phase(srv, says, 'echo, 1 turn before');
  // Fresh sessions of LONG turns each (one-word turns fill them faster).
  const fresh = async (turns, text) => {
    for (const ws of socks) ws.removeAllListeners('message');
    const cs = socks.map((ws) => client(ws, { session: true }));
    await Promise.all(cs.map((c) => c.open()));
    await Promise.all(cs.map((c) => c.loop(turns, text)));
    return cs;
  };
  const tf = performance.now();
  const longs = await fresh(LONG, 'x');
  r.fill_s = +((performance.now() - tf) / 1000).toFixed(1);
  r.echo_long = await phase(srv, longs, `echo, ${LONG} turns before`);
  // New 1-turn sessions in the same, now larger, store: what a long session
  // costs against a short one, with the store's size out of the comparison.
  r.echo_1_turn_after = await phase(srv, await fresh(1), 'echo, 1 turn before, store filled');
  const cpuRatio = (a, b) => +(a.server_cpu_us_per_frame / b.server_cpu_us_per_frame).toFixed(2);
  r.long_over_1_turn = {
    frames_per_s: +(r.echo_long.frames_per_s / r.echo_1_turn_after.frames_per_s).toFixed(2),
    cpu_per_frame: cpuRatio(r.echo_long, r.echo_1_turn_after),
  };
  r.echo_over_ping_rounds = +(r.echo_1_turn.rounds_per_s / r.ping.rounds_per_s).toFixed(3);
  for (const ws of socks) ws.close();
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
  return r;
}

// The peer: the same clients against bare lws (ping, then echo turns on 1-turn sessions).
async function runBare() {
  const srv = await startBare();
  const socks = await Promise.all(Array.from({ length: CONNS }, () => connect(srv.port)));
  const r = { bin: 'bench_bare_lws', conns: CONNS };
  r.ping = await phase(
    srv,
    socks.map((ws) => client(ws, { session: false })),
    'bare lws: ping',
  );
  for (const ws of socks) ws.removeAllListeners('message');
  const says = socks.map((ws) => client(ws, { session: true }));
  await Promise.all(says.map((c) => c.open()));
  await Promise.all(says.map((c) => c.loop(1)));
  r.echo_1_turn = await phase(srv, says, 'bare lws: echo');
  for (const ws of socks) ws.close();
  await srv.stop();
  return r;
}

// The rows for one Tether binary against the peer (named by the binary when there are several).
function targetRows(r, bare) {
  const judge = (ok) => (SMOKE || !bare ? null : ok);
  const of = BINS.length > 1 ? ` (${r.bin})` : '';
  const peer = `bare lws, ${CONNS} connections`;
  const ping = target({
    name: `ping round trip >= 0.6 of bare lws${of}`,
    figure: r.ping.rounds_per_s,
    unit: 'round trips/s',
    peer,
    peer_figure: bare?.ping.rounds_per_s ?? null,
    goal: '>= 0.6 of peer',
  });
  const echo = target({
    name: `echo agent >= 0.6 of bare lws${of}`,
    figure: r.echo_1_turn.frames_per_s,
    unit: 'frames/s',
    peer,
    peer_figure: bare?.echo_1_turn.frames_per_s ?? null,
    goal: '>= 0.6 of peer',
  });
  const long = target({
    name: `${LONG}-turn commits at the 1-turn cost${of}`,
    figure: r.echo_long.server_cpu_us_per_frame,
    unit: 'µs CPU/frame',
    peer: '1-turn sessions, same store',
    peer_figure: r.echo_1_turn_after.server_cpu_us_per_frame,
    goal: '<= 1.1 of peer',
  });
  ping.met = judge(ping.ratio >= 0.6);
  echo.met = judge(echo.ratio >= 0.6);
  long.met = SMOKE ? null : long.ratio <= 1.1;
  return [ping, echo, long];
}

// The peer runs before and after the Tether binaries; its figures are the
// mean of the two (load on a shared machine drifts over a run).
const mean = (a, b) => {
  const m = {};
  for (const k of Object.keys(a)) m[k] = typeof a[k] === 'number' ? +((a[k] + b[k]) / 2).toFixed(1) : a[k];
  return m;
};
const bareBefore = bareAvailable() ? await runBare() : null;
const results = [];
for (const bin of BINS) results.push(await runBin(bin));
const bareAfter = bareBefore && (await runBare());
const bare = bareBefore && {
  bin: bareBefore.bin,
  conns: CONNS,
  ping: mean(bareBefore.ping, bareAfter.ping),
  echo_1_turn: mean(bareBefore.echo_1_turn, bareAfter.echo_1_turn),
  before: bareBefore,
  after: bareAfter,
};
for (const r of results)
  if (bare)
    r.over_bare = {
      ping_rounds: +(r.ping.rounds_per_s / bare.ping.rounds_per_s).toFixed(3),
      echo_frames: +(r.echo_1_turn.frames_per_s / bare.echo_1_turn.frames_per_s).toFixed(3),
      ping_cpu_per_frame: +(r.ping.server_cpu_us_per_frame / bare.ping.server_cpu_us_per_frame).toFixed(2),
      echo_cpu_per_frame: +(r.echo_1_turn.server_cpu_us_per_frame / bare.echo_1_turn.server_cpu_us_per_frame).toFixed(
        2,
      ),
    };
const targets = results.flatMap((r) => targetRows(r, bare));
out({ bench: 'commit', turns: LONG, seconds: SECONDS, bare, results, targets });
const broken = (r) => !r.ping.rounds_per_s || !r.echo_1_turn.rounds_per_s;
if (
  results.some((r) => broken(r) || !r.echo_long.rounds_per_s) ||
  (bare && (broken(bare.before) || broken(bare.after)))
)
  process.exit(1);

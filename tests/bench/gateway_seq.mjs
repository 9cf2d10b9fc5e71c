// The gateway's own cost per request, closed loop: N sequential requests on
// one keep-alive client connection (plain, then streamed) to the fake
// provider directly and through Tether's /v1/chat/completions. Reported per
// mode: latency p50/p99 of each target, Tether's added p50 and p99, and
// Tether's CPU time per request (user + system from /proc over the run),
// with the issue-18 target rows (lib/targets.mjs). Unlike the
// open-loop gateway.mjs, its CPU figure barely moves with other load on the
// machine, so it compares builds (set TETHER_BIN) on a shared one.
//
//   node tests/bench/gateway_seq.mjs [--smoke] [--requests 2000]
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SMOKE, dist, out, startFake, startTether, argValue, cpuSec, fakeRoutes } from './lib/common.mjs';
import { target } from './lib/targets.mjs';

const N = Number(argValue('--requests', SMOKE ? 50 : 2000));
const WARMUP = SMOKE ? 10 : 200;

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function request(port, body) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const r = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        agent,
        headers: {
          authorization: 'Bearer bench',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () =>
          res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`)),
        );
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

async function run(port, pid, body) {
  for (let i = 0; i < WARMUP; i++) await request(port, body);
  const lat = [];
  const c0 = pid ? cpuSec(pid) : 0;
  for (let i = 0; i < N; i++) lat.push(await request(port, body));
  const res = { latency_ms: dist(lat, 3) };
  if (pid) res.cpu_us_per_request = Math.round(((cpuSec(pid) - c0) / N) * 1e6);
  return res;
}

const fake = await startFake();
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-gwseq-'));
const routes = fakeRoutes(dir, fake.port);
const tether = await startTether(['--data-dir', path.join(dir, 'data'), '--routes', routes]);
const result = { bench: 'gateway_seq', requests: N, modes: {} };
for (const mode of ['plain', 'stream']) {
  const body = JSON.stringify({
    model: 'default',
    stream: mode === 'stream',
    messages: [{ role: 'user', content: 'hello there, how are you today? one two three four five' }],
  });
  const direct = await run(fake.port, null, body);
  const via = await run(tether.port, tether.pid, body);
  result.modes[mode] = {
    direct: direct.latency_ms,
    tether: via.latency_ms,
    added_p50_ms: +(via.latency_ms.p50 - direct.latency_ms.p50).toFixed(3),
    added_p99_ms: +(via.latency_ms.p99 - direct.latency_ms.p99).toFixed(3),
    tether_cpu_us_per_request: via.cpu_us_per_request,
  };
}
// Issue 18: added latency <= 30 µs p50 and <= 150 µs p99 over the direct
// upstream's own (the peer), and the CPU per request (no goal: reported).
result.targets = [];
for (const [mode, m] of Object.entries(result.modes)) {
  for (const [q, goal] of [
    ['p50', 30],
    ['p99', 150],
  ]) {
    const added = (m.tether[q] - m.direct[q]) * 1000;
    result.targets.push(
      target({
        name: `gateway ${mode}: added latency ${q} (sequential)`,
        figure: added,
        unit: 'µs',
        peer: `direct upstream ${q}`,
        peer_figure: m.direct[q] * 1000,
        goal: `<= ${goal} µs added`,
        met: SMOKE ? null : added <= goal,
      }),
    );
  }
  result.targets.push(
    target({
      name: `gateway ${mode}: Tether CPU per request`,
      figure: m.tether_cpu_us_per_request,
      unit: 'µs',
      goal: 'reported (no goal)',
    }),
  );
}
await tether.stop();
await fake.stop();
rmSync(dir, { recursive: true, force: true });
out(result);

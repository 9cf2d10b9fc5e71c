// Gateway overhead on POST /v1/chat/completions, plain and streaming, at
// fixed arrival rates (open loop: request i is due at t0 + i/rate whatever
// happened before; latency counts from the due time, so a stalled server is
// not hidden by a waiting client). Three targets on the same fake provider:
//   direct  - the fake provider itself (the floor)
//   tether  - Tether's gateway, routes file pointing at the fake
//   portkey - the Portkey gateway from npm (@portkey-ai/gateway), started on
//             127.0.0.1, x-portkey-provider: openai + x-portkey-custom-host
// Reported per target, mode and rate: p50/p99 latency (stream: whole stream
// and first content chunk), errors, achieved rate, peak RSS and CPU of the
// gateway process; added latency over direct; max sustained rate (highest
// rate with p99 <= SLO_MS, no error, >= 99% of requests done in the window).
//
//   node tests/bench/gateway.mjs [--smoke] [--rates 50,100,250,500,1000,2000] [--seconds 5] [--no-portkey]
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  SMOKE,
  dist,
  out,
  rssKiB,
  rssSampler,
  sleep,
  startFake,
  startPortkey,
  startTether,
  argValue,
  cpuSec,
  fakeRoutes,
} from './lib/common.mjs';
import { target } from './lib/targets.mjs';

const RATES = argValue('--rates', SMOKE ? '50' : '50,100,250,500,1000,2000')
  .split(',')
  .map(Number);
const SECONDS = Number(argValue('--seconds', SMOKE ? 1 : 5));
const SLO_MS = 100;
const TIMEOUT_MS = 10000;
const MAX_CONNS = 3000;

// A lean keep-alive HTTP/1.1 client on raw sockets (a Node http client is
// heavier than the servers it measures). One request per connection at a time.
function makeClient(port, rawReq, stream) {
  const idle = [];
  let open = 0,
    opened = 0;
  function conn() {
    opened++;
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.setEncoding('latin1');
    open++;
    s.on('close', () => {
      open--;
      s.dead = true;
      if (s.job) s.job.fail('closed');
    });
    s.on('error', () => {});
    s.on('data', (d) => s.job && s.job.data(d));
    s.on('end', () => {
      s.dead = true;
      if (s.job) s.job.end();
    });
    return s;
  }
  return {
    open: () => open,
    opened: () => opened,
    request(done) {
      // done(err, totalMs from due, firstMs) ; the caller passes the due time
      let s = idle.pop();
      while (s && s.dead) s = idle.pop();
      if (!s) {
        if (open >= MAX_CONNS) return done(`client cap of ${MAX_CONNS} open connections reached`);
        s = conn();
      }
      let acc = '';
      let need = -1; // -1 headers pending, -2 chunked, -3 until close, else total length
      let first = 0;
      const timer = setTimeout(() => {
        s.job = null;
        s.destroy();
        done('timeout');
      }, TIMEOUT_MS);
      s.job = {
        fail(e) {
          clearTimeout(timer);
          s.job = null;
          done(e);
        },
        end() {
          // close-delimited body (no length, not chunked): complete at EOF
          if (need !== -3) return this.fail('closed');
          clearTimeout(timer);
          s.job = null;
          s.destroy();
          done(stream && !acc.includes('[DONE]') ? 'stream without [DONE]' : null, first);
        },
        data(d) {
          acc += d;
          if (need === -1) {
            const he = acc.indexOf('\r\n\r\n');
            if (he < 0) return;
            if (!acc.startsWith('HTTP/1.1 200')) {
              this.fail(`status ${acc.slice(9, 12)}`);
              s.destroy();
              return;
            }
            const head = acc.slice(0, he);
            const m = /\r\ncontent-length: *(\d+)/i.exec(head);
            need = m ? he + 4 + Number(m[1]) : /\r\ntransfer-encoding: *chunked/i.test(head) ? -2 : -3;
          }
          if (stream && !first && /"content":"[^"]/.test(acc)) first = performance.now();
          const complete = need === -2 ? acc.endsWith('\r\n0\r\n\r\n') : need >= 0 ? acc.length >= need : false;
          if (complete) {
            clearTimeout(timer);
            s.job = null;
            if (stream && !acc.includes('[DONE]')) return done('stream without [DONE]');
            idle.push(s);
            done(null, first);
          }
        },
      };
      s.write(rawReq);
    },
    close() {
      for (const s of idle) s.destroy();
    },
  };
}

function raw(port, headers, body) {
  const h = {
    host: `127.0.0.1:${port}`,
    'content-type': 'application/json',
    ...headers,
    'content-length': Buffer.byteLength(body),
  };
  return `POST /v1/chat/completions HTTP/1.1\r\n${Object.entries(h)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n${body}`;
}

async function step(client, rate, seconds, pid, fakePid) {
  const n = Math.round(rate * seconds);
  const lat = [],
    firsts = [],
    errs = {};
  let errors = 0,
    done = 0;
  const cpu0 = pid ? cpuSec(pid) : 0;
  const fcpu0 = fakePid ? cpuSec(fakePid) : 0;
  const opened0 = client.opened();
  const rss = pid ? rssSampler(pid) : null;
  const t0 = performance.now() + 20;
  let i = 0;
  await new Promise((resolve) => {
    const finish = () => {
      if (++done === n) resolve();
    };
    const tick = () => {
      const now = performance.now();
      while (i < n && t0 + (i * 1000) / rate <= now) {
        const due = t0 + (i * 1000) / rate;
        i++;
        client.request((err, first) => {
          if (err) {
            errors++;
            errs[err] = (errs[err] || 0) + 1;
          } else {
            const end = performance.now();
            lat.push(end - due);
            if (first) firsts.push(first - due);
          }
          finish();
        });
      }
      if (i < n) setImmediate(tick);
    };
    tick();
  });
  const wall = (performance.now() - t0) / 1000;
  const res = {
    rate,
    requests: n,
    errors,
    error_kinds: errs,
    achieved_per_s: Math.round((n - errors) / wall),
    latency_ms: dist(lat, 2),
    first_chunk_ms: firsts.length ? dist(firsts, 2) : undefined,
  };
  if (fakePid) res.fake_cpu_pct = Math.round(((cpuSec(fakePid) - fcpu0) / wall) * 100);
  res.client_connections_opened = client.opened() - opened0;
  if (pid) {
    res.peak_rss_kib = rss.stop();
    res.cpu_pct = Math.round(((cpuSec(pid) - cpu0) / wall) * 100);
  }
  res.within_window = wall <= seconds * 1.05 + SLO_MS / 1000;
  res.sustained = errors === 0 && res.latency_ms.p99 <= SLO_MS && res.within_window;
  return res;
}

// Portkey is an optional peer: without it installed the run measures direct
// and Tether only (and says so).
const HAS_PORTKEY =
  !process.argv.includes('--no-portkey') &&
  existsSync(
    path.join(
      path.dirname(new URL(import.meta.url).pathname),
      '../../node_modules/@portkey-ai/gateway/build/start-server.js',
    ),
  );
const fake = await startFake();
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-gw-'));
const routes = fakeRoutes(dir, fake.port);

const question = 'hello there, how are you today? tell me one two three four five six seven eight nine ten';
// Both gateways are started afresh for each mode, so memory one mode's
// overload leaves behind does not show in the other's figures.
let tether, portkey;
const targets = {
  direct: { port: fake.port, pid: null, headers: { authorization: 'Bearer bench' } },
  tether: { headers: { authorization: 'Bearer bench' } },
  portkey: {
    headers: {
      authorization: 'Bearer bench',
      'x-portkey-provider': 'openai',
      'x-portkey-custom-host': `http://127.0.0.1:${fake.port}/v1`,
    },
  },
};
const result = {
  bench: 'gateway',
  slo_p99_ms: SLO_MS,
  seconds_per_step: SECONDS,
  rates: RATES,
  fake_pid_role: 'child process',
  portkey: HAS_PORTKEY ? 'measured' : 'not installed (npm @portkey-ai/gateway): skipped',
  idle_rss_kib: {},
  runs: {},
};
for (const mode of ['plain', 'stream']) {
  tether = await startTether(['--data-dir', path.join(dir, `data-${mode}`), '--routes', routes]);
  portkey = HAS_PORTKEY ? await startPortkey() : null;
  if (!portkey) delete targets.portkey;
  Object.assign(targets.tether, { port: tether.port, pid: tether.pid });
  if (portkey) Object.assign(targets.portkey, { port: portkey.port, pid: portkey.pid });
  await sleep(500);
  if (mode === 'plain') result.idle_rss_kib = { tether: rssKiB(tether.pid), portkey: portkey && rssKiB(portkey.pid) };
  const body = JSON.stringify({
    model: 'default',
    stream: mode === 'stream',
    messages: [{ role: 'user', content: question }],
  });
  for (const [name, t] of Object.entries(targets)) {
    const client = makeClient(t.port, raw(t.port, t.headers, body), mode === 'stream');
    await step(client, 100, SMOKE ? 0.3 : 1, null); // warm-up (JIT, connection pool)
    const steps = [];
    for (const rate of RATES) {
      const r = await step(client, rate, SECONDS, t.pid, fake.pid);
      steps.push(r);
      if (r.errors > r.requests * 0.05 || r.latency_ms.p99 > 2000) break; // saturated: higher rates only pile up
      await sleep(300);
    }
    client.close();
    await sleep(500);
    const sustained = steps.filter((s) => s.sustained).map((s) => s.rate);
    result.runs[`${name}_${mode}`] = { steps, max_sustained_per_s: sustained.length ? Math.max(...sustained) : 0 };
  }
  for (const name of Object.keys(targets).filter((n) => n !== 'direct')) {
    const g = result.runs[`${name}_${mode}`],
      d = result.runs[`direct_${mode}`];
    // The issue's figure: the gateway's best sustained rate over the direct one's.
    g.ratio_to_direct = d.max_sustained_per_s ? +(g.max_sustained_per_s / d.max_sustained_per_s).toFixed(3) : null;
    g.added_ms = g.steps
      .map((s, i) =>
        d.steps[i]
          ? {
              rate: s.rate,
              p50: +(s.latency_ms.p50 - d.steps[i].latency_ms.p50).toFixed(2),
              p99: +(s.latency_ms.p99 - d.steps[i].latency_ms.p99).toFixed(2),
            }
          : null,
      )
      .filter(Boolean);
  }
  await Promise.all([tether.stop(), portkey?.stop()]);
}
await fake.stop();
rmSync(dir, { recursive: true, force: true });
// Issue 18: the gateway sustains >= 0.5 of the direct upstream's rate, plain
// and streamed (a smoke run's rates are too low to judge).
result.targets = ['plain', 'stream'].map((mode) => {
  const g = result.runs[`tether_${mode}`],
    d = result.runs[`direct_${mode}`];
  return target({
    name: `gateway ${mode}: max sustained rate (p99 <= ${SLO_MS} ms)`,
    figure: g.max_sustained_per_s,
    unit: 'req/s',
    peer: 'direct upstream',
    peer_figure: d.max_sustained_per_s,
    goal: '>= 0.5 of peer',
    met: SMOKE || !d.max_sustained_per_s ? null : g.max_sustained_per_s / d.max_sustained_per_s >= 0.5,
  });
});
out(result);
// Broken, not slow: the lowest rate must work on every target.
const broken = Object.entries(result.runs)
  .filter(([, r]) => r.steps[0].errors > 0)
  .map(([k]) => k);
if (broken.length) {
  console.error(`gateway bench: errors at the lowest rate on ${broken.join(', ')}`);
  process.exit(1);
}

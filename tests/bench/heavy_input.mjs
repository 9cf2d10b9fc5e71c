// Large model requests against the event loop: how long one call takes and
// how long another client's ping waits meanwhile.
//   - gateway: POST /v1/chat/completions with one user message of 1 and 8 MiB
//     (the body cap), plain, against the fake provider;
//   - chat: one session, 20 turns of 500 KB each (under --max-frame-bytes):
//     the time of each new turn (say -> idle) as the transcript grows.
// A second WebSocket client pings every 10 ms throughout; each phase reports
// the ping round trips (p50, p99, max). The fake provider runs in its own
// process, so its parsing of the bodies does not delay this one's pings.
// Prints one JSON object.
//
//   TETHER_BIN=build/tether node tests/bench/heavy_input.mjs [--turns 20] [--turn-kb 500] [--mib 1,8]
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, fakeTarget, openSession, sayAndWait, startServer, writeRoutesFile } from '../integration/harness.mjs';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const SMOKE = process.argv.includes('--smoke');
const TURNS = Number(arg('turns', SMOKE ? 3 : 20));
const TURN_KB = Number(arg('turn-kb', SMOKE ? 50 : 500));
const MIBS = String(arg('mib', SMOKE ? '1' : '1,8'))
  .split(',')
  .map(Number);

/** Deterministic text: lowercase words of 2-9 letters (or up to wordMax). */
export function prose(bytes, seed = 1, wordMax = 9) {
  let x = seed >>> 0;
  const next = () => {
    x = (x * 1103515245 + 12345) >>> 0;
    return x >>> 8;
  };
  const parts = [];
  let len = 0;
  while (len < bytes) {
    const n = 2 + (next() % (wordMax - 1));
    let w = '';
    for (let i = 0; i < n; i++) w += String.fromCharCode(97 + (next() % 26));
    parts.push(w);
    len += w.length + 1;
  }
  return parts.join(' ').slice(0, bytes);
}

function pct(sorted, p) {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Ping c every 10 ms until stop(); resolves the round trips (ms). */
export function pingProbe(c, everyMs = 10) {
  let running = true;
  const rtts = [];
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      await c.ping(60_000);
      rtts.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, everyMs));
    }
    return rtts;
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}

function summary(rtts) {
  const s = [...rtts].sort((a, b) => a - b);
  const r = (v) => Math.round(v * 10) / 10;
  return { n: s.length, p50_ms: r(pct(s, 50)), p99_ms: r(pct(s, 99)), max_ms: r(s[s.length - 1] ?? 0) };
}

/** The fake provider as a child process; resolves {url, script(step), close()}. */
export async function fakeProviderProcess() {
  const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fake-provider', 'server.mjs');
  const proc = spawn(process.execPath, [bin, '--port', '0', '--max-requests', '4'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    proc.stdout.once('data', (d) => resolve(JSON.parse(String(d)).listening));
    proc.once('exit', (code) => reject(new Error(`fake provider exited (${code})`)));
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    script: (step) => fetch(`${url}/_script`, { method: 'POST', body: JSON.stringify(step) }),
    close: () => {
      proc.kill('SIGTERM');
      return new Promise((r) => proc.once('exit', r));
    },
  };
}

/** POST a body (a string made before the clock starts). */
async function postJson(port, text) {
  const t0 = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: text,
  });
  await res.text();
  return { status: res.status, ms: performance.now() - t0 };
}

async function main() {
  const fp = await fakeProviderProcess();
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'heavy')] } });
  const srv = await startServer({ args: ['--routes', routes, '--log-level', 'warn'], env: { FAKE_KEY: 'k' } });
  const out = { bin: process.env.TETHER_BIN || 'build/tether', gateway: [], chat: [] };
  try {
    const pinger = await connect(srv.port, { hello: true });
    await fp.script({ text: 'ok', repeat: 'forever' });
    for (const mib of MIBS) {
      const body = JSON.stringify({
        model: 'default',
        messages: [{ role: 'user', content: prose(mib * 1024 * 1024 - 4096, mib) }],
      });
      const probe = pingProbe(pinger);
      await new Promise((r) => setTimeout(r, 50));
      const r = await postJson(srv.port, body);
      out.gateway.push({ mib, status: r.status, call_ms: Math.round(r.ms), ping: summary(await probe.stop()) });
    }
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'chat');
    for (let t = 0; t < TURNS; t++) {
      const text = prose(TURN_KB * 1000, 100 + t);
      const probe = pingProbe(pinger);
      const t0 = performance.now();
      await sayAndWait(c, session, text, `turn-${t}`, 600_000);
      const ms = performance.now() - t0;
      out.chat.push({
        turn: t + 1,
        transcript_kb: (t + 1) * TURN_KB,
        turn_ms: Math.round(ms),
        ping: summary(await probe.stop()),
      });
    }
    c.close();
    pinger.close();
  } finally {
    await srv.stop();
    await fp.close();
  }
  const lines = (a) => a.map((x) => `  ${JSON.stringify(x)}`).join(',\n');
  console.log(
    `{"bin": ${JSON.stringify(out.bin)},\n"gateway": [\n${lines(out.gateway)}],\n"chat": [\n${lines(out.chat)}]}`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) await main();

// Shared helpers for the benchmarks: free ports, starting Tether / the fake
// provider / the Portkey gateway on loopback, RSS from /proc, percentiles.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../../..');
export const BIN = process.env.TETHER_BIN || path.join(ROOT, 'build/tether');
export const SMOKE = process.argv.includes('--smoke');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const nowMs = () => performance.timeOrigin + performance.now(); // comparable across processes

// Every server a benchmark starts dies with it, even when it fails.
const children = new Set();
process.on('exit', () => {
  for (const c of children)
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
});
function track(proc) {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Spawn with the fd limit raised to the hard limit (20000 here).
export function spawnRaised(cmd, args, opts = {}) {
  const quoted = [cmd, ...args].map((a) => `'${String(a).replace(/'/g, "'\\''")}'`).join(' ');
  return track(spawn('/bin/sh', ['-c', `ulimit -n $(ulimit -Hn); exec ${quoted}`], opts));
}

// The same through a launcher (startup.mjs's bench_exec_at, which raises the
// fd limit itself and reports on descriptor 3 the moment it execs cmd).
export function spawnVia(launcher, cmd, args, opts = {}) {
  return track(spawn(launcher, [cmd, ...args.map(String)], opts));
}

export async function waitHttp(url, limitMs = 20000) {
  const t0 = Date.now();
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.status < 500) return;
    } catch {
      /* not yet */
    }
    if (Date.now() - t0 > limitMs) throw new Error(`${url} not up after ${limitMs} ms`);
    await sleep(5);
  }
}

export async function startTether(args, { port, bin = BIN } = {}) {
  port = port || (await freePort());
  const proc = spawnRaised(
    bin,
    // Benchmarks measure capacity with one user: no per-user session cap.
    [
      '--port',
      port,
      '--log-level',
      'warn',
      '--shutdown-grace-ms',
      '200',
      '--max-sessions-per-user',
      '0',
      '--web-dir',
      path.join(ROOT, 'web'),
      ...args,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, BENCH_FAKE_KEY: 'bench-fake-key' } },
  );
  let err = '';
  proc.stderr.on('data', (d) => {
    err = (err + d).slice(-4000);
  });
  proc.on('exit', (c, s) => {
    if (!proc.stopping) console.error(`tether exited early (${c ?? s}): ${err}`);
  });
  await waitHttp(`http://127.0.0.1:${port}/readyz`);
  return { proc, port, pid: proc.pid, stop: () => stopProc(proc) };
}

export function stopProc(proc, sig = 'SIGTERM') {
  proc.stopping = true;
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
    proc.on('exit', () => {
      clearTimeout(t);
      r();
    });
    proc.kill(sig);
  });
}

/** Server arguments that lift the per-socket message rate limit out of a benchmark's way. */
export const UNTHROTTLED = ['--rate-msgs-per-s', '100000', '--rate-burst', '100000'];

/** The value after the command-line flag name, or def when it is not given. */
export function argValue(name, def) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : def;
}

/** The CPU time a process has used so far, user + system, in seconds (from /proc). */
export function cpuSec(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** Write dir/routes.json: the route "default" to the fake provider on fakePort (startFake); returns its path. */
export function fakeRoutes(dir, fakePort) {
  const file = path.join(dir, 'routes.json');
  const target = {
    provider: 'openai',
    base_url: `http://127.0.0.1:${fakePort}/v1`,
    model: 'gpt-4o-mini',
    key_env: 'BENCH_FAKE_KEY',
  };
  writeFileSync(file, JSON.stringify({ routes: { default: [target] } }));
  return file;
}

export async function startFake() {
  const proc = track(
    spawn(
      process.execPath,
      [path.join(ROOT, 'tests/fake-provider/server.mjs'), '--port', '0', '--max-requests', '100'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    ),
  );
  const port = await new Promise((resolve, reject) => {
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)).listening);
    });
    proc.on('exit', (c) => reject(new Error(`fake provider exited ${c}`)));
  });
  return { proc, port, pid: proc.pid, stop: () => stopProc(proc) };
}

// The Portkey gateway from npm, as its own Node server (build/start-server.js,
// what `npx @portkey-ai/gateway` runs), forced onto 127.0.0.1 by the preload.
export async function startPortkey() {
  const port = await freePort();
  const entry = path.join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js');
  const proc = track(
    spawn(process.execPath, ['--import', path.join(HERE, 'peer-preload.mjs'), entry, `--port=${port}`, '--headless'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NODE_ENV: 'production' },
    }),
  );
  proc.stderr.resume();
  await waitHttp(`http://127.0.0.1:${port}/`);
  return { proc, port, pid: proc.pid, stop: () => stopProc(proc) };
}

export function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))[1]);
  return { total: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

// Peak RSS of a process while sampling runs.
export function rssSampler(pid, everyMs = 100) {
  let peak = 0;
  const tick = () => {
    try {
      peak = Math.max(peak, rssKiB(pid).total);
    } catch {
      /* gone */
    }
  };
  tick();
  const t = setInterval(tick, everyMs);
  return {
    stop: () => {
      clearInterval(t);
      tick();
      return peak;
    },
  };
}

export function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export function dist(values, digits = 2) {
  const s = Float64Array.from(values).sort();
  const r = (x) => (x === null ? null : +x.toFixed(digits));
  return {
    n: s.length,
    p50: r(pct(s, 0.5)),
    p99: r(pct(s, 0.99)),
    p999: r(pct(s, 0.999)),
    max: r(s.length ? s[s.length - 1] : null),
  };
}

export async function metrics(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out[line.slice(0, i)] = Number(line.slice(i + 1));
  }
  return out;
}

export async function mintToken(port, key) {
  const r = await fetch(`http://127.0.0.1:${port}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'bench', ttl_s: 3600 }),
  });
  if (!r.ok) throw new Error(`mint token: ${r.status} ${await r.text()}`);
  return (await r.json()).token;
}

export function out(obj) {
  process.stdout.write(JSON.stringify(obj, null, 2) + '\n');
}

// k client processes (lib/ws_worker.mjs), each with its own source address
// 127.0.0.(2+i) and the fd limit raised; ask(i, msg) -> its answer.
export function workers(k) {
  const procs = Array.from({ length: k }, () =>
    spawnRaised(process.execPath, [path.join(HERE, 'ws_worker.mjs')], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  const ask = (i, msg) =>
    new Promise((resolve, reject) => {
      procs[i].once('message', resolve);
      procs[i].once('exit', (c) => reject(new Error(`client process exited ${c}`)));
      procs[i].send(msg);
    });
  return {
    k,
    local: (i) => `127.0.0.${2 + i}`,
    all: (f) => Promise.all(procs.map((_, i) => ask(i, f(i)))),
    close: () => Promise.all(procs.map((p, i) => ask(i, { cmd: 'close' }).catch(() => {}))),
  };
}

// Split n over k parts.
export const split = (n, k) => Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));

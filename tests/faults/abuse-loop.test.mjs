// Requests that used to hold the event loop: a gateway request of 50,000
// messages (trimming recounted every token after each dropped turn), the fd
// ceiling (lws's accept loop spun on EMFILE and logged every failure), and a
// flood of 1 MiB frames inside the message rate (every byte parsed). After
// each, the loop still answers other clients within a bound.
import './env.mjs';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import {
  BIN,
  REPO,
  connect,
  fakeTarget,
  freePort,
  httpGet,
  httpRequest,
  postFresh,
  sleep,
  within,
  writeRoutesFile,
} from '../integration/harness.mjs';
import { ftest, sanitizerReport } from './lib.mjs';

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

/** POST a JSON body on a fresh connection (no keep-alive), without httpRequest's 5 s timeout. */
const post = (port, body) => postFresh(port, '/v1/chat/completions', body);

/** Ping c every 20 ms until stop(); resolves the slowest round trip (ms). */
function pinger(c) {
  let running = true;
  let worst = 0;
  const done = (async () => {
    while (running) {
      const t0 = performance.now();
      await c.ping(30_000);
      worst = Math.max(worst, performance.now() - t0);
      await sleep(20);
    }
    return worst;
  })();
  return {
    stop: () => {
      running = false;
      return done;
    },
  };
}

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (CLK_TCK = 100)
}

ftest(
  'a 50,000-message gateway request does not stall other clients',
  async ({ startServer }) => {
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'abuse-50k')] } });
    const srv = await startServer({
      args: ['--routes', routes, '--gateway-max-messages', '60000'],
      env: { FAKE_KEY: 'k' },
    });
    const c = await connect(srv.port, { hello: true });
    const messages = [{ role: 'system', content: 'be brief' }];
    for (let i = 0; i < 50_000; i++) messages.push({ role: i % 2 ? 'assistant' : 'user', content: 'word' });
    const p = pinger(c);
    await sleep(100);
    const t0 = Date.now();
    let r;
    try {
      r = await within(post(srv.port, { model: 'default', messages }), 40_000);
    } finally {
      await p.stop().catch(() => {});
    }
    const took = Date.now() - t0;
    const worst = await p.stop();
    assert.equal(r.status, 200, r.body.slice(0, 300));
    // Before the fix: 120 s of loop. Now about 1 s in the debug build, 3-4 s
    // under ASan (parsing, copying and counting 50k messages once each).
    assert.ok(took < 20_000, `the request took ${took} ms`);
    assert.ok(worst < 8000, `a ping waited ${Math.round(worst)} ms behind the request`);
  },
  { timeout: 60_000 },
);

ftest('more messages than --gateway-max-messages get a clear 400', async ({ startServer }) => {
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'abuse-cap')] } });
  const srv = await startServer({ args: ['--routes', routes, '--gateway-max-messages', '10'], env: { FAKE_KEY: 'k' } });
  const messages = Array.from({ length: 11 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'w' }));
  const r = await httpRequest(srv.port, 'POST', '/v1/chat/completions', { body: { model: 'default', messages } });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'too_many_messages');
  assert.match(r.json.error.message, /at most 10/);
  const ok = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    body: { model: 'default', messages: messages.slice(0, 9) },
  });
  assert.equal(ok.status, 200, ok.body);
});

// ------------------------------------------------------------ fd ceiling

/** tether under `prlimit --nofile=N:N`, which the harness cannot do. */
async function startLimited(nofile, args = []) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-fd-'));
  const proc = spawn(
    'prlimit',
    [`--nofile=${nofile}:${nofile}`, BIN, '--port', String(port), '--data-dir', dir, '--web-dir', 'web', ...args],
    {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH, ASAN_OPTIONS: process.env.ASAN_OPTIONS, UBSAN_OPTIONS: process.env.UBSAN_OPTIONS },
    },
  );
  const srv = {
    port,
    proc,
    stderr: '',
    exited: new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal }))),
  };
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    srv.stderr += d;
  });
  srv.stop = async () => {
    proc.kill('SIGTERM');
    const e = await within(srv.exited, 15_000);
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(sanitizerReport(srv.stderr), null);
    assert.equal(e.code, 0, `exit ${JSON.stringify(e)}\n${srv.stderr.slice(-3000)}`);
  };
  for (let i = 0; i < 100; i++) {
    try {
      if ((await httpGet(port, '/readyz')).status === 200) return srv;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`tether did not start:\n${srv.stderr}`);
}

/** Open n raw TCP connections; resolves the sockets (each records whether the server closed it). */
async function openMany(port, n) {
  const socks = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect({ host: '127.0.0.1', port });
    s.serverClosed = false;
    s.received = '';
    s.on('data', (d) => {
      s.received += d;
    });
    s.on('close', () => {
      s.serverClosed = true;
    });
    s.on('error', () => {
      s.serverClosed = true;
    });
    await new Promise((r) => {
      s.once('connect', r);
      s.once('error', r);
    });
    socks.push(s);
  }
  await sleep(300);
  return socks;
}

/** The server's CPU use (fraction of a core) over ms while more clients keep trying. */
async function cpuWhileKnocking(srv, ms) {
  const knock = setInterval(() => {
    const s = net.connect({ host: '127.0.0.1', port: srv.port });
    s.on('error', () => {});
    s.on('close', () => {});
    setTimeout(() => s.destroy(), 200);
  }, 20);
  const c0 = cpuSeconds(srv.proc.pid);
  const t0 = performance.now();
  await sleep(ms);
  clearInterval(knock);
  return (cpuSeconds(srv.proc.pid) - c0) / ((performance.now() - t0) / 1000);
}

ftest(
  'at the connection cap, clients are refused with 503 and the loop stays idle',
  async () => {
    const srv = await startLimited(128);
    try {
      const early = await connect(srv.port, { hello: true });
      const socks = await openMany(srv.port, 120);
      const refused = socks.filter((s) => s.serverClosed);
      assert.ok(refused.length > 20, `only ${refused.length} of 120 refused`);
      assert.ok(
        refused.some((s) => s.received.startsWith('HTTP/1.1 503')),
        'no 503 seen',
      );
      const stderrBefore = srv.stderr.length;
      const cpu = await cpuWhileKnocking(srv, 1000);
      assert.ok(cpu < 0.3, `server used ${(cpu * 100).toFixed(0)}% of a core while refusing`);
      assert.ok(srv.stderr.length - stderrBefore < 4096, `stderr grew by ${srv.stderr.length - stderrBefore} bytes`);
      await early.ping(); // an existing client still works
      for (const s of socks) s.destroy();
      await sleep(300);
      const m = await httpGet(srv.port, '/metrics');
      assert.match(m.body, /tether_connections_refused_total\{reason="max_connections"\} [1-9]/);
      const late = await connect(srv.port, { hello: true }); // room again
      await late.ping();
      late.close();
      early.close();
    } finally {
      await srv.stop();
    }
  },
  { timeout: 60_000 },
);

ftest(
  'out of file descriptors, the listener neither spins nor floods the log',
  async () => {
    const srv = await startLimited(128, ['--max-connections', '100000']);
    try {
      const early = await connect(srv.port, { hello: true });
      const socks = await openMany(srv.port, 140); // past the fd limit: EMFILE
      const stderrBefore = srv.stderr.length;
      const cpu = await cpuWhileKnocking(srv, 1000);
      assert.ok(cpu < 0.3, `server used ${(cpu * 100).toFixed(0)}% of a core at the fd limit`);
      assert.ok(
        srv.stderr.length - stderrBefore < 4096,
        `stderr grew by ${srv.stderr.length - stderrBefore} bytes in a second`,
      );
      assert.ok(
        socks.some((s) => s.serverClosed),
        'no connection was refused',
      );
      await early.ping();
      for (const s of socks) s.destroy();
      await sleep(300);
      const m = await httpGet(srv.port, '/metrics');
      assert.match(m.body, /tether_connections_refused_total\{reason="fd_limit"\} [1-9]/);
      const late = await connect(srv.port, { hello: true });
      await late.ping();
      late.close();
      early.close();
    } finally {
      await srv.stop();
    }
  },
  { timeout: 60_000 },
);

// ------------------------------------------------------------ byte flood

ftest('1 MiB frames within the message rate are limited by bytes before parsing', async ({ startServer }) => {
  // 64 KiB/s with a 2 MiB bucket: two 1 MB frames pass, the next ones are
  // refused unread, and a client that keeps going is closed once it owes a
  // whole bucket (the message rate, 50/s with a burst of 200, never trips).
  const srv = await startServer({ args: ['--rate-bytes-per-s', '65536', '--rate-bytes-burst', '2097152'] });
  const c = await connect(srv.port, { hello: true });
  const other = await connect(srv.port, { hello: true });
  const big = JSON.stringify({ type: 'session.list', id: 'big', pad: 'x'.repeat(1_000_000) });
  for (let i = 0; i < 8; i++) c.ws.send(big);
  const closed = await within(c.closed, 15_000);
  assert.equal(closed.code, 1008);
  const codes = c.errors.map((e) => e.code);
  assert.ok(codes.includes('rate_limited'), `no frame was rate limited by bytes: ${JSON.stringify(codes)}`);
  assert.ok(
    codes.filter((x) => x === 'bad_request').length <= 3,
    `frames over the byte rate were parsed: ${JSON.stringify(codes)}`,
  );
  assert.ok(
    c.errors.filter((e) => e.code === 'rate_limited').every((e) => e.re === undefined),
    'a rate-limited frame was parsed (its reply carries re)',
  );
  await other.ping();
  const m = await httpGet(srv.port, '/metrics');
  assert.match(m.body, /tether_sockets_dropped_rate_bytes_total [1-9]/);
});

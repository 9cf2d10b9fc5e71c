// SIGTERM while work is in flight: every pending operation ends exactly once
// (completed or cancelled), nothing is freed while the loop may still call it,
// and nothing leaks. For each kind of in-flight work — a streaming model call,
// an HTTP tool call, a photo scan in the thread pool, a waiting approval, a
// socket that does not read with output queued, a streaming gateway request
// on a slow upstream — the server must exit with code 0, print no sanitizer
// report (ASan build, detect_leaks=1) and be gone within SHUTDOWN_MAX_MS.
import './env.mjs';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import {
  BIN,
  connect,
  fakeTarget,
  httpRequest,
  openSession,
  sayAndWait,
  sessionInfo,
  sleep,
  waitState,
  writeRoutesFile,
} from '../integration/harness.mjs';
import { assertNoSanitizer, ftest } from './lib.mjs';

// The grace for sockets (--shutdown-grace-ms, 2 s by default) plus room for the rest.
const SHUTDOWN_MAX_MS = 5000;
const MAKER = path.join(path.dirname(BIN), 'tests', 'unit', 'make_photo_library');

let fp, toolServer, toolPort;
const toolHits = [];
const dirs = [];
before(async () => {
  fp = await startFakeProvider();
  // A tool that takes its time: it answers after 30 s, long after the stop.
  toolServer = http.createServer((req, res) => {
    toolHits.push(req.url);
    req.resume();
    req.on('end', () =>
      setTimeout(() => {
        if (!res.destroyed) {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
        }
      }, 30_000).unref(),
    );
  });
  await new Promise((r) => toolServer.listen(0, '127.0.0.1', r));
  toolPort = toolServer.address().port;
});
after(async () => {
  await fp?.close();
  toolServer?.closeAllConnections();
  toolServer?.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpdir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tether-shutdown-${tag}-`));
  dirs.push(d);
  return d;
}

function routes(P) {
  return writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
}

/** SIGTERM, then: exit code 0 (so LeakSanitizer ran and found nothing), no report, in time. */
async function stopInTime(srv, what) {
  const t0 = Date.now();
  await srv.stop({ timeoutMs: 15_000 });
  const ms = Date.now() - t0;
  console.log(`# shutdown with ${what}: ${ms} ms`);
  assertNoSanitizer(srv, what);
  assert.ok(/"msg":"stopped"/.test(srv.output), `no "stopped" log line (${what})`);
  assert.ok(ms < SHUTDOWN_MAX_MS, `shutdown with ${what} took ${ms} ms (max ${SHUTDOWN_MAX_MS})`);
  return ms;
}

ftest('SIGTERM during a streaming model call: the call is cancelled once, the exit is clean', async ({
  startServer,
}) => {
  const P = 'sd-stream';
  const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
  fp.script({ text: words, token_delay_ms: 100, match: { prefix: P } });
  const srv = await startServer({ args: ['--routes', routes(P)], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'chat');
  await c.ok({ type: 'say', session, text: 'talk for a while' });
  await c.waitEvent((e) => e.session === session && e.type === 'delta', 10_000);
  await stopInTime(srv, 'a streaming model call');
  await fp.waitFor(() => fp.requests({ prefix: P })[0]?.client_closed, 5000);

  // The partial reply was committed before the exit: after a restart it is withdrawn, once.
  await srv.restart();
  const c2 = await connect(srv.port, { hello: true });
  await c2.ok({ type: 'session.attach', session, after: 0 });
  await c2.waitEvent((e) => e.session === session && e.type === 'delta', 5000);
  await stopInTime(srv, 'a restarted session');
});

ftest('SIGTERM while a model call waits out a Retry-After: the timer is cancelled, not waited for', async ({
  startServer,
}) => {
  const P = 'sd-backoff';
  fp.script([
    { status: 429, retry_after: 10, match: { prefix: P } },
    { text: 'too late', match: { prefix: P } },
  ]);
  const srv = await startServer({ args: ['--routes', routes(P)], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'chat');
  await c.ok({ type: 'say', session, text: 'are you there?' });
  await fp.waitFor(() => fp.requests({ prefix: P }).length === 1, 10_000);
  await sleep(300); // the 429 is in: the call now waits on its timer
  await stopInTime(srv, 'a model call waiting to retry');
  assert.equal(fp.requests({ prefix: P }).length, 1, 'no retry was sent during the shutdown');
});

ftest('SIGTERM during an HTTP tool call: the transfer is cancelled once, the exit is clean', async ({
  startServer,
}) => {
  const P = 'sd-tool';
  const dir = tmpdir('tool');
  const tools = path.join(dir, 'tools.json');
  fs.writeFileSync(
    tools,
    JSON.stringify({
      tools: [
        {
          name: 'slow_lookup',
          description: 'A lookup that takes its time',
          url: `http://127.0.0.1:${toolPort}/slow`,
          timeout_ms: 60_000,
          parameters: { type: 'object', properties: {}, additionalProperties: false },
        },
      ],
    }),
  );
  const agents = path.join(dir, 'agents.json');
  fs.writeFileSync(
    agents,
    JSON.stringify({
      agents: [{ name: 'looker', description: 'Looks things up', tools: ['slow_lookup'], max_tool_rounds: 2 }],
    }),
  );
  fp.script({ tool_calls: [{ id: 'c1', name: 'slow_lookup', arguments: '{}' }], match: { prefix: P } });
  const srv = await startServer({
    args: ['--routes', routes(P), '--tools', tools, '--agents', agents],
    env: { FAKE_KEY: 'k' },
  });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'looker');
  const hits = toolHits.length;
  await c.ok({ type: 'say', session, text: 'look it up' });
  await c.waitEvent((e) => e.session === session && e.type === 'tool.call', 10_000);
  const deadline = Date.now() + 5000;
  while (toolHits.length === hits && Date.now() < deadline) await sleep(20);
  assert.equal(toolHits.length, hits + 1, 'the tool was called');
  await stopInTime(srv, 'an HTTP tool call in flight');
});

ftest('SIGTERM during a photo scan in the thread pool: the scan stops, the exit is clean', async ({ startServer }) => {
  const P = 'sd-scan';
  const root = tmpdir('photos');
  const lib = path.join(root, 'local');
  execFileSync(MAKER, [lib, '20', '0']);
  // Photos big enough that hashing them takes seconds: sparse files (no disk
  // used) that start as a real JPEG, each under the 256 MiB per-file cap.
  const head = fs.readFileSync(
    path.join(
      lib,
      fs.readdirSync(lib, { recursive: true }).find((n) => n.endsWith('.jpg')),
    ),
  );
  for (let i = 0; i < 16; i++) {
    const big = path.join(lib, `big${String(i).padStart(2, '0')}.jpg`);
    fs.writeFileSync(big, head);
    fs.truncateSync(big, 250 * 1024 * 1024);
  }
  const srv = await startServer({ args: ['--routes', routes(P), '--photos-root', root], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'photo-organizer');
  await c.ok({ type: 'say', session, text: 'organise my photos' });
  const prog = await c.waitEvent((e) => e.session === session && e.type === 'progress', 15_000);
  assert.ok(prog.done < prog.total, `the scan is still running: ${JSON.stringify(prog)}`);
  await stopInTime(srv, 'a photo scan in the thread pool');
});

ftest('SIGTERM while an approval waits: the exit is clean and the approval still waits after a restart', async ({
  startServer,
}) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '0'] });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'echo');
  await c.ok({ type: 'say', session, text: 'plan' });
  const approval = await c.waitEvent((e) => e.session === session && e.type === 'approval', 5000);
  await waitState(c, session, 'waiting_approval', 0, 5000);
  await stopInTime(srv, 'a waiting approval');
  await srv.restart();
  const c2 = await connect(srv.port, { hello: true });
  await c2.ok({ type: 'session.attach', session, after: approval.seq });
  assert.equal((await sessionInfo(c2, session)).state, 'waiting_approval');
  await stopInTime(srv, 'a restarted waiting approval');
});

ftest('SIGTERM with a socket that does not read and has output queued: the exit is clean and bounded; no new call starts meanwhile', async ({
  startServer,
}) => {
  const P = 'sd-grace';
  const srv = await startServer({
    args: ['--echo-delay-ms', '0', '--rate-burst', '1000', '--routes', routes(P)],
    env: { FAKE_KEY: 'k' },
  });
  const c = await connect(srv.port, { hello: true, name: 'reader' });
  const { session } = await openSession(c, 'echo');
  const slow = await connect(srv.port, { hello: true, name: 'slow' });
  await slow.ok({ type: 'session.attach', session, after: 0 });
  slow.ws._socket.pause();
  // Far more than the kernel buffers for a socket that never reads (~1 MB), in frames under the cap.
  for (let t = 0; t < 6; t++) {
    const text = Array.from({ length: 500 }, (_, i) => `t${t}w${i}-${'y'.repeat(400)}`).join(' ');
    await sayAndWait(c, session, text, `turn${t}`, 30_000);
  }
  assert.ok(slow.maxSeq(session) < c.maxSeq(session), 'the slow socket is behind');
  const stopped = stopInTime(srv, 'a slow reader with queued output');
  // The slow socket holds the stop in its grace period: a gateway request now is refused.
  await sleep(300);
  assert.ok(srv.alive, 'still in the grace period');
  const late = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    body: { model: 'default', messages: [{ role: 'user', content: 'too late' }] },
  });
  assert.equal(late.status, 503, late.body);
  assert.equal(late.json.error.code, 'shutting_down');
  await stopped;
  assert.equal(fp.requests({ prefix: P }).length, 0, 'no model call started during the stop');
  slow.ws._socket.resume();
});

ftest('SIGTERM during a streaming gateway request on a slow upstream: the exit is clean', async ({ startServer }) => {
  const P = 'sd-gateway';
  fp.script({ text: 'one two three four five six', stall_after: 2, match: { prefix: P } });
  const srv = await startServer({ args: ['--routes', routes(P)], env: { FAKE_KEY: 'k' } });
  const chunks = [];
  let ended = false;
  const req = http.request(
    {
      host: '127.0.0.1',
      port: srv.port,
      method: 'POST',
      path: '/v1/chat/completions',
      agent: false,
      headers: { 'content-type': 'application/json' },
    },
    (res) => {
      res.on('data', (d) => chunks.push(d.toString()));
      res.on('end', () => {
        ended = true;
      });
      res.on('error', () => {
        ended = true;
      });
    },
  );
  req.on('error', () => {
    ended = true;
  });
  req.end(JSON.stringify({ model: 'default', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
  const deadline = Date.now() + 10_000;
  while (!chunks.join('').includes('two') && Date.now() < deadline) await sleep(20);
  assert.match(chunks.join(''), /two/, 'the first chunks came through');
  await stopInTime(srv, 'a pending gateway request');
  await fp.waitFor(() => fp.requests({ prefix: P })[0]?.client_closed, 5000);
  const until = Date.now() + 2000;
  while (!ended && Date.now() < until) await sleep(20);
  assert.ok(ended, 'the gateway client saw its response end');
});

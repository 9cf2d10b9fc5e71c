// Back-pressure from sockets to the model (issue 18, server/flow.h): an
// unpaced provider stream (token_delay_ms 0) into a chat session while one of
// its sockets stops reading. The model call is paused rather than the socket
// dropped with 4008; memory stays flat; the slow socket gets everything in
// order once it reads again; a socket that holds the call back for
// --backpressure-hold-ms is dropped and the others carry on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import {
  BIN,
  assertContiguous,
  connect,
  fakeTarget,
  itest,
  openSession,
  sleep,
  waitState,
  within,
  writeRoutesFile,
} from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();
const MAX_LAG = 2000; // flow pauses at min(512, MAX_LAG / 2) events behind
const N = 6000; // tokens of 1,000 bytes: 6 MB of text, far more than the kernel buffers for a socket
const tokens = (tag) => Array.from({ length: N }, (_, i) => `${tag}${i}-${'x'.repeat(990)} `);

// ASan keeps freed memory in quarantine: a small one, and a looser bound (as tests/faults/slow-clients does).
const SANITIZED = /asan|sanit/i.test(BIN);
const RSS_BOUND_MB = SANITIZED ? 96 : 32;
const rssKiB = (pid) => Number(/RssAnon:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
// A fresh connection each time: a kept-alive one may have been closed by the server meanwhile.
const getMetrics = (port) =>
  new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
async function metric(port, name) {
  const m = await getMetrics(port);
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m)?.[1]);
}

async function setup(startServer, P, args = []) {
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  const srv = await startServer({
    args: ['--routes', routes, '--max-lag-events', String(MAX_LAG), '--rate-burst', '1000', ...args],
    env: {
      FAKE_KEY: 'fake-key-1',
      ...(SANITIZED ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ?? ''}:quarantine_size_mb=8` } : {}),
    },
  });
  const writer = await connect(srv.port, { hello: true, name: 'writer' });
  const { session } = await openSession(writer, 'chat');
  await writer.waitEvent((e) => e.session === session && e.seq === 1);
  const slow = await connect(srv.port, { hello: true, name: 'slow' });
  await slow.ok({ type: 'session.attach', session, after: 0 });
  const fast = await connect(srv.port, { hello: true, name: 'fast' });
  await fast.ok({ type: 'session.attach', session, after: 0 });
  await sleep(100);
  return { srv, writer, session, slow, fast };
}

itest(
  'unpaced model stream, a socket that stops reading: the call is paused, not the socket dropped; all arrives in order',
  async ({ startServer }) => {
    const P = 'flow-pause';
    const toks = tokens('a');
    fp.script({ tokens: toks, match: { prefix: P } });
    const { srv, writer, session, slow, fast } = await setup(startServer, P);
    const rss0 = rssKiB(srv.proc.pid);
    slow.ws._socket.pause();
    await writer.ok({ type: 'say', session, text: 'go', client_msg_id: 'go' });
    // Paused: the session stops growing (checked every 500 ms: a loaded machine is slow to get
    // there), far short of the stream and of the drop bound.
    let appended = -1;
    for (let t = 0; t < 30; t++) {
      await sleep(500);
      const now = await metric(srv.port, 'tether_events_appended_total');
      if (now === appended) break;
      appended = now;
    }
    const head = fast.maxSeq(session);
    const rssPaused = rssKiB(srv.proc.pid);
    // Short of the stream: what the pause lets through is 512 events plus what the
    // slow socket's kernel buffers take (loopback autotunes them to megabytes:
    // 2,800-3,040 events of 1 KB seen), so the bound is three quarters of it.
    assert.ok(appended < (N * 3) / 4, `${appended} events appended of ${N + 5} while a socket did not read`);
    assert.ok(slow.isOpen, 'the slow socket was dropped');
    console.log(`# paused at ${appended} events appended; RssAnon ${rss0} -> ${rssPaused} KiB`);
    await sleep(500);
    const more = (await metric(srv.port, 'tether_events_appended_total')) - appended;
    assert.ok(more < 50, `the stream went on while paused: ${more} events more`);
    assert.ok(head <= appended);

    // It reads again (slowly at first): everything comes, in order, and the call ends.
    slow.ws._socket.resume();
    const idle = await waitState(slow, session, 'idle', 2, 60_000);
    assert.ok(slow.isOpen, 'the slow socket was dropped');
    const evs = slow.sessionEvents(session);
    assertContiguous(assert, evs, 1, 'slow socket');
    const end = evs.find((e) => e.type === 'message.end');
    assert.ok(end, 'message.end');
    assert.equal(end.text, toks.join(''));
    assert.equal(
      evs
        .filter((e) => e.type === 'delta')
        .map((e) => e.text)
        .join(''),
      toks.join(''),
    );
    await fast.waitEvent((e) => e.session === session && e.seq === idle.seq, 10_000);
    assertContiguous(assert, fast.sessionEvents(session), 1, 'fast socket');
    assert.equal(await metric(srv.port, 'tether_sockets_dropped_lagging_total'), 0);
    assert.ok((await metric(srv.port, 'tether_model_pauses_total')) >= 1);
    assert.ok(
      (rssPaused - rss0) / 1024 < RSS_BOUND_MB,
      `server RSS grew ${((rssPaused - rss0) / 1024).toFixed(1)} MB while the call was paused`,
    );
  },
  { timeout: 90_000 },
);

itest(
  'a socket that never reads holds the paused call back only for --backpressure-hold-ms: then it is dropped (4008)',
  async ({ startServer }) => {
    const P = 'flow-hold';
    const toks = tokens('b');
    fp.script({ tokens: toks, match: { prefix: P } });
    const { srv, writer, session, slow, fast } = await setup(startServer, P, ['--backpressure-hold-ms', '1000']);
    slow.ws._socket.pause();
    const t0 = Date.now();
    await writer.ok({ type: 'say', session, text: 'go', client_msg_id: 'go' });
    // The fast socket is not starved: the stream ends for it once the slow one is dropped.
    const idle = await waitState(fast, session, 'idle', 2, 60_000);
    assert.ok(Date.now() - t0 >= 1000, 'finished before the hold time: nothing was paused');
    assertContiguous(assert, fast.sessionEvents(session), 1, 'fast socket');
    const end = fast.sessionEvents(session).find((e) => e.type === 'message.end');
    assert.equal(end.text, toks.join(''));
    assert.ok((await metric(srv.port, 'tether_model_pauses_total')) >= 1);
    assert.equal(await metric(srv.port, 'tether_sockets_dropped_lagging_total'), 1);
    slow.ws._socket.resume();
    const closed = await within(slow.closed, 10_000);
    assert.equal(closed?.code, 4008, JSON.stringify(closed));
    assert.ok(slow.maxSeq(session) < idle.seq);
  },
  { timeout: 90_000 },
);

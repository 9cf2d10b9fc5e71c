// Slow and stalled clients: a socket that stops reading while its session
// streams a lot. The server's memory stays bounded, the laggard is dropped
// with close 4008 past --max-lag-events and resumes by re-attaching
// (recovered true with the missed events, or a snapshot when beyond the
// bound); another client on the same session is unaffected.
import './env.mjs';
import assert from 'node:assert/strict';
import {
  assertContiguous,
  checkMessages,
  connect,
  openSession,
  sayAndWait,
  sleep,
  waitState,
  within,
} from '../integration/harness.mjs';
import { ftest, healthzMs, isSanitized, rssKiB } from './lib.mjs';

const MAX_LAG = 2000;
// Lag is counted on the server's side (events not yet written to the socket), so the stream
// must outgrow what the kernel buffers for a socket that never reads (~1 MB here): long words.
const words = (n, tag, w = 40) => Array.from({ length: n }, (_, i) => `${tag}${i}-${'x'.repeat(w)}`).join(' ');
// ASan keeps freed memory in quarantine (256 MB by default), so its RSS bound is looser.
// Anonymous memory (the LMDB map's file pages are not counted); ASan adds shadow and quarantine.
const RSS_BOUND_MB = isSanitized() ? 64 : 32;

async function scenario(startServer, { turns, wordsPerTurn, wordBytes }) {
  // A small ASan quarantine, so RSS shows the server's memory rather than ASan's freed-block cache.
  const env = isSanitized() ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=8` } : {};
  const srv = await startServer({
    env,
    args: [
      '--echo-delay-ms',
      '0',
      '--max-lag-events',
      String(MAX_LAG),
      '--rate-burst',
      '1000',
      '--transcript-max',
      '4',
    ],
  });
  const pid = srv.proc.pid;
  const writer = await connect(srv.port, { hello: true, name: 'writer' });
  const { session } = await openSession(writer);
  await waitState(writer, session, 'idle', 0);
  const laggard = await connect(srv.port, { hello: true, name: 'laggard' });
  await laggard.ok({ type: 'session.attach', session, after: 0 });
  const other = await connect(srv.port, { hello: true, name: 'other' });
  await other.ok({ type: 'session.attach', session, after: 0 });
  // Warm up, then the laggard stops reading.
  await sayAndWait(writer, session, words(50, 'warm'), 'warm');
  await sleep(200);
  const rss0 = rssKiB(pid);
  laggard.ws._socket.pause();
  const lagFrom = laggard.maxSeq(session);
  const t0 = Date.now();
  let rssMax = rss0;
  let healthMax = 0;
  for (let i = 0; i < turns; i++) {
    await sayAndWait(writer, session, words(wordsPerTurn, `t${i}-`, wordBytes), `t${i}`, 30_000);
    rssMax = Math.max(rssMax, rssKiB(pid));
    if (i % 5 === 0) healthMax = Math.max(healthMax, await healthzMs(srv.port));
  }
  const head = writer.maxSeq(session);
  const streamed = head - lagFrom;
  console.log(
    `# slow client: ${streamed} events in ${Date.now() - t0} ms while one socket did not read; RssAnon ${rss0} -> max ${rssMax} KiB (VmRSS now ${rssKiB(pid, 'VmRSS')} KiB); /healthz max ${healthMax.toFixed(1)} ms`,
  );
  assert.ok(streamed > MAX_LAG * 2, `the laggard fell ${streamed} events behind`);
  assert.ok(healthMax < 1000, `/healthz took ${healthMax} ms`);

  // The laggard reads again: it finds itself dropped with 4008.
  laggard.ws._socket.resume();
  const closed = await within(laggard.closed, 10_000);
  assert.ok(closed, 'the laggard was not dropped');
  assert.equal(closed.code, 4008, `laggard close: ${JSON.stringify(closed)}`);
  const had = laggard.maxSeq(session);
  assertContiguous(assert, laggard.sessionEvents(session), 1, 'laggard before the drop');
  assert.ok(had < head);

  // The other clients were unaffected.
  assert.ok(other.isOpen && writer.isOpen);
  await other.waitEvent((e) => e.session === session && e.seq === head, 10_000);
  assertContiguous(assert, other.sessionEvents(session), 1, 'other client');
  assert.equal((await other.ping()).type, 'pong');

  // Resume: re-attach after what it had.
  const back = await connect(srv.port, { hello: true, name: 'laggard-back' });
  const att = await back.ok({ type: 'session.attach', session, after: had }, 10_000);
  assert.equal(att.head, head);
  if (att.recovered) {
    await back.waitEvent((e) => e.session === session && e.seq === head, 10_000);
    const evs = back.sessionEvents(session);
    assertContiguous(assert, evs, had + 1, 'replay after the drop');
    const all = [...laggard.sessionEvents(session), ...evs];
    for (const m of checkMessages(assert, all).values())
      assert.ok(m.end, `message ${m.id} incomplete in the laggard's resumed view`);
  } else {
    const snap = await back.nextEvent((e) => e.session === session, 10_000);
    assert.equal(snap.type, 'snapshot', JSON.stringify(snap).slice(0, 300));
    assert.equal(snap.seq, head);
    assert.ok(head - had > MAX_LAG, `a snapshot although only ${head - had} events were missed`);
  }
  // Within the bound, the same re-attach replays instead (recovered true, contiguous).
  const near = await connect(srv.port, { hello: true, name: 'near' });
  const from = head - Math.floor(MAX_LAG / 2);
  const att2 = await near.ok({ type: 'session.attach', session, after: from }, 10_000);
  assert.equal(att2.recovered, true, JSON.stringify(att2));
  await near.waitEvent((e) => e.session === session && e.seq === head, 10_000);
  assertContiguous(assert, near.sessionEvents(session), from + 1, 'replay within the bound');
  // Checked last, so a failure here still shows the drop and resume worked.
  assert.ok(
    (rssMax - rss0) / 1024 < RSS_BOUND_MB,
    `server RSS grew ${((rssMax - rss0) / 1024).toFixed(1)} MB while a client stalled (bound ${RSS_BOUND_MB} MB)`,
  );
  // Live again, for everyone.
  await writer.ok({ type: 'say', session, text: 'after the storm', client_msg_id: 'after' });
  const end = await back.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > head, 10_000);
  assert.equal(end.text, 'after the storm');
  await other.waitEvent((e) => e.session === session && e.seq === end.seq, 5000);
  return { att, head, had };
}

ftest(
  'a stalled client under a long stream: memory bounded, dropped with 4008, resumes; other clients unaffected',
  async ({ startServer }) => {
    const { att, head, had } = await scenario(startServer, { turns: 30, wordsPerTurn: 200, wordBytes: 1000 });
    console.log(`# laggard held seq ${had} of ${head}; re-attach recovered=${att.recovered}`);
  },
  { timeout: 120_000 },
);

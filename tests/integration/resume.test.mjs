// Resume: re-attaching with `after` after a disconnect, and snapshots past retention.
import assert from 'node:assert/strict';
import {
  assertContiguous,
  checkEventShape,
  checkMessages,
  connect,
  httpGet,
  itest,
  openSession,
  sayAndWait,
  sleep,
  waitState,
} from './harness.mjs';

const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

/** Union of two clients' events for a session, checked to be seq 1..head with no gap or duplicate. */
function union(assert_, before, after, lastBefore) {
  for (const e of after)
    assert_.ok(
      e.seq > lastBefore,
      `replayed an event the client already had (after=${lastBefore}): ${JSON.stringify(e)}`,
    );
  const all = [...before.filter((e) => e.seq <= lastBefore), ...after];
  assertContiguous(assert_, all, 1, 'before+after');
  return all;
}

itest(
  'disconnect mid-stream, re-attach with after=last seq: no gap, no duplicate, final text intact',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '20'] });
    const text = words(30);
    const c1 = await connect(srv.port, { hello: true, name: 'before' });
    const { session } = await openSession(c1);
    await c1.ok({ type: 'say', session, text, client_msg_id: 'r1' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'w5 ');
    await c1.terminate(); // abrupt: no close handshake
    const before = c1.sessionEvents(session);
    const last = c1.maxSeq(session);
    assertContiguous(assert, before, 1, 'before');
    await sleep(100); // the turn keeps running without any socket

    const c2 = await connect(srv.port, { hello: true, name: 'after' });
    const att = await c2.request({ type: 'session.attach', session, after: last });
    assert.equal(att.type, 'ok', JSON.stringify(att));
    assert.equal(att.recovered, true, JSON.stringify(att));
    assert.ok(att.head >= last, `head ${att.head} < last seen ${last}`);
    const idle = await waitState(c2, session, 'idle', last, 5000);
    await sleep(100);
    const after = c2.sessionEvents(session);
    after.forEach((e) => checkEventShape(assert, e));
    const all = union(assert, before, after, last);
    assert.equal(all[all.length - 1].seq, idle.seq);
    const msgs = checkMessages(assert, all);
    assert.equal(msgs.size, 1);
    const [m] = msgs.values();
    assert.ok(m.end, 'the reply finished with message.end');
    assert.equal(m.end.text, text);
    assert.equal(m.deltas.map((d) => d.text).join(''), text, 'the deltas across both sockets rebuild the text');
    // The replay reached the socket before any live event: seqs in arrival order are sorted.
    assert.deepEqual(
      after.map((e) => e.seq),
      [...after.map((e) => e.seq)].sort((a, b) => a - b),
    );
  },
);

itest('reconnect after say but before the first token: nothing is lost', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '60'] });
  const text = words(6, 'early');
  const c1 = await connect(srv.port, { hello: true, name: 'before' });
  const { session } = await openSession(c1);
  await c1.ok({ type: 'say', session, text, client_msg_id: 'e1' });
  await c1.close(); // before the first delta (60 ms away)
  const before = c1.sessionEvents(session);
  const last = c1.maxSeq(session);
  assert.ok(!before.some((e) => e.type === 'delta'), 'test precondition: no delta seen yet');

  const c2 = await connect(srv.port, { hello: true, name: 'after' });
  const att = await c2.ok({ type: 'session.attach', session, after: last });
  assert.equal(att.recovered, true);
  await waitState(c2, session, 'idle', Math.max(last, 2), 5000);
  const all = union(assert, before, c2.sessionEvents(session), last);
  const msgs = checkMessages(assert, all);
  const ends = [...msgs.values()].filter((m) => m.end);
  assert.equal(ends.length, 1);
  assert.equal(ends[0].end.text, text);
});

itest('attach with after=0 replays the whole log, then continues live', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '2'] });
  const c1 = await connect(srv.port, { hello: true, name: 'writer' });
  const { session } = await openSession(c1);
  for (let i = 0; i < 5; i++) await sayAndWait(c1, session, words(20, `t${i}x`), `m${i}`);
  const head = c1.maxSeq(session);
  const c2 = await connect(srv.port, { hello: true, name: 'replayer' });
  const att = await c2.ok({ type: 'session.attach', session, after: 0 });
  assert.equal(att.head, head);
  assert.equal(att.recovered, true);
  await c2.waitEvent((e) => e.session === session && e.seq === head);
  await c1.ok({ type: 'say', session, text: 'live now', client_msg_id: 'live' });
  await waitState(c2, session, 'idle', head);
  const evs = c2.sessionEvents(session);
  assertContiguous(assert, evs, 1, 'replay+live');
  assert.deepEqual(
    evs.slice(0, head),
    c1.sessionEvents(session).slice(0, head),
    'replayed events are the very events sent live',
  );
});

itest('attach older than retention: recovered:false, a snapshot first, then live events', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '1', '--retain-events', '5'] });
  const c1 = await connect(srv.port, { hello: true, name: 'writer' });
  const { session } = await openSession(c1);
  const t1 = 'alpha beta gamma delta epsilon zeta eta theta';
  await sayAndWait(c1, session, t1, 's1');
  await c1.ok({ type: 'say', session, text: 'ask', client_msg_id: 's2' });
  const q = await c1.waitEvent((e) => e.session === session && e.type === 'question');
  await waitState(c1, session, 'waiting_input', 1);
  const head = c1.maxSeq(session);
  assert.ok(head > 15, `head ${head}`);

  // Within retention: a normal replay.
  const c3 = await connect(srv.port, { hello: true, name: 'recent' });
  const att3 = await c3.ok({ type: 'session.attach', session, after: head - 2 });
  assert.equal(att3.recovered, true, `after=head-2 is within --retain-events 5: ${JSON.stringify(att3)}`);
  await c3.waitEvent((e) => e.session === session && e.seq === head);
  assert.deepEqual(
    c3.sessionEvents(session).map((e) => e.seq),
    [head - 1, head],
  );

  // Far older than retention: snapshot.
  const c2 = await connect(srv.port, { hello: true, name: 'late' });
  const att = await c2.request({ type: 'session.attach', session, after: 1 });
  assert.equal(att.type, 'ok', JSON.stringify(att));
  assert.equal(att.recovered, false, JSON.stringify(att));
  assert.equal(att.head, head);
  const snap = await c2.nextEvent((e) => e.session === session);
  assert.equal(snap.type, 'snapshot', `first event after a non-recovered attach: ${JSON.stringify(snap)}`);
  checkEventShape(assert, snap);
  assert.equal(snap.seq, head, 'the snapshot describes the head');
  assert.equal(snap.state, 'waiting_input');
  assert.ok(snap.transcript !== undefined, 'snapshot.transcript');
  assert.ok(
    JSON.stringify(snap.transcript).includes(t1),
    `transcript holds the earlier turn: ${JSON.stringify(snap.transcript)}`,
  );
  assert.ok(
    JSON.stringify(snap.pending ?? null).includes(q.question_id),
    `pending holds the question: ${JSON.stringify(snap.pending)}`,
  );
  assert.ok('agent_state' in snap, 'snapshot.agent_state');

  // Live events follow from head+1, on both sockets alike.
  await c2.ok({ type: 'answer', session, question_id: q.question_id, value: 'no' });
  const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end');
  assert.equal(end.text, 'you said no');
  const idle = await waitState(c2, session, 'idle', head);
  await waitState(c1, session, 'idle', head);
  const live = c2.sessionEvents(session).slice(1);
  assertContiguous(assert, live, head + 1, 'live after snapshot');
  assert.deepEqual(
    live,
    c1.sessionEvents(session).filter((e) => e.seq > head && e.seq <= idle.seq),
  );
});

itest(
  'attach with after=0 while a reply is streaming: replay hands over to live with no gap or duplicate',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '3'] });
    const a = await connect(srv.port, { hello: true, name: 'live' });
    const { session } = await openSession(a);
    const text = words(150, 'race');
    await a.ok({ type: 'say', session, text, client_msg_id: 'race' });
    await a.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'race20 ');
    const b = await connect(srv.port, { hello: true, name: 'late' });
    const att = await b.ok({ type: 'session.attach', session, after: 0 });
    assert.equal(att.recovered, true);
    const idle = await waitState(b, session, 'idle', 1, 10_000);
    await waitState(a, session, 'idle', 1, 10_000);
    const eb = b.sessionEvents(session);
    assertContiguous(assert, eb, 1, 'late socket');
    assert.equal(eb[eb.length - 1].seq, idle.seq);
    assert.deepEqual(eb, a.sessionEvents(session));
    assert.equal(eb.find((e) => e.type === 'message.end').text, text);
  },
);

itest(
  'a long replay (about 3000 events) arrives complete and in order',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '0'] });
    const a = await connect(srv.port, { hello: true, name: 'writer' });
    const { session } = await openSession(a);
    const text = words(3000, 'long');
    await sayAndWait(a, session, text, 'long', 20_000);
    const head = a.maxSeq(session);
    assert.ok(head > 3000);
    const b = await connect(srv.port, { hello: true, name: 'reader' });
    const t0 = Date.now();
    const att = await b.ok({ type: 'session.attach', session, after: 0 });
    assert.equal(att.head, head);
    await b.waitEvent((e) => e.session === session && e.seq === head, 10_000);
    const replayMs = Date.now() - t0;
    const eb = b.sessionEvents(session);
    assertContiguous(assert, eb, 1, 'replay');
    assert.deepEqual(eb, a.sessionEvents(session));
    assert.ok(replayMs < 5000, `replay of ${head} events took ${replayMs} ms`);
  },
  { timeout: 40_000 },
);

itest('an evicted idle session is loaded back on attach with its whole log', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '1', '--idle-evict-s', '1'] });
  const a = await connect(srv.port, { hello: true, name: 'first' });
  const { session } = await openSession(a);
  await sayAndWait(a, session, 'remember me please', 'ev1');
  const before = a.sessionEvents(session);
  await a.close();
  // Wait (≤ 6 s) for the session to leave memory.
  let evicted = 0;
  for (let i = 0; i < 60 && evicted < 1; i++) {
    await sleep(100);
    const m = (await httpGet(srv.port, '/metrics')).body.match(/^tether_sessions_evicted_total (\d+)/m);
    evicted = m ? Number(m[1]) : 0;
  }
  assert.ok(evicted >= 1, 'tether_sessions_evicted_total should count the idle session (--idle-evict-s 1)');
  const b = await connect(srv.port, { hello: true, name: 'second' });
  const list = await b.ok({ type: 'session.list' });
  const entry = list.sessions.find((s) => s.session === session);
  assert.ok(entry, 'an evicted session is still listed');
  assert.equal(entry.head, before.length);
  const att = await b.ok({ type: 'session.attach', session, after: 0 });
  assert.equal(att.head, before.length);
  await b.waitEvent((e) => e.session === session && e.seq === att.head);
  assert.deepEqual(b.sessionEvents(session), before);
  await sayAndWait(b, session, 'and continue', 'ev2');
  assertContiguous(assert, b.sessionEvents(session), 1);
});

itest(
  'a replay of 1,000 missed events goes out coalesced: far fewer socket writes than frames, all in order',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '0'] });
    const c1 = await connect(srv.port, { hello: true, name: 'writer' });
    const { session } = await openSession(c1);
    await sayAndWait(c1, session, words(1000), 'many');
    // A reply over one write's worth (16 KiB: its message.end) goes out alone, in its place.
    await sayAndWait(c1, session, words(2500, 'long'), 'long');
    const head = c1.maxSeq(session);
    await c1.close();
    const count = async () => {
      const m = (await httpGet(srv.port, '/metrics')).body;
      const get = (name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m)[1]);
      return { frames: get('tether_frames_out_total'), writes: get('tether_socket_writes_total') };
    };
    const c2 = await connect(srv.port, { hello: true, name: 'replay' });
    const m0 = await count();
    const att = await c2.request({ type: 'session.attach', session, after: 0 });
    assert.equal(att.type, 'ok', JSON.stringify(att));
    await c2.waitEvent((e) => e.session === session && e.seq === head, 10_000);
    const m1 = await count();
    const events = c2.sessionEvents(session);
    assertContiguous(assert, events, 1, 'replay');
    assert.equal(events.length, head);
    assert.ok(head > 3500, `head ${head}`);
    const frames = m1.frames - m0.frames,
      writes = m1.writes - m0.writes;
    assert.ok(frames >= head, `frames ${frames} < ${head}`);
    console.log(`# replay of ${head} events: ${frames} frames in ${writes} socket writes`);
    // One write per frame before; now a write carries up to 16 KiB of frames.
    assert.ok(writes * 10 < frames, `${writes} writes for ${frames} frames`);
    const ends = events.filter((e) => e.type === 'message.end');
    assert.equal(ends.length, 2);
    assert.equal(ends[1].text, words(2500, 'long'));
  },
);

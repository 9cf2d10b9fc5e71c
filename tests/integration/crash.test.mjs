// Process death: kill -9 mid-stream and graceful SIGTERM, each followed by a restart
// on the same data dir.
import assert from 'node:assert/strict';
import {
  assertContiguous,
  checkEventShape,
  checkMessages,
  connect,
  itest,
  openSession,
  sayAndWait,
  sessionInfo,
  sleep,
  waitState,
} from './harness.mjs';

const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

async function crashMidStream({ startServer }, extraArgs) {
  const srv = await startServer({ args: ['--echo-delay-ms', '30', ...extraArgs] });
  const text = words(60, 'crash');
  const c1 = await connect(srv.port, { hello: true, name: 'before' });
  const { session } = await openSession(c1);
  await c1.ok({ type: 'say', session, text, client_msg_id: 'k9' });
  await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'crash9 ', 5000);
  const exit = await srv.kill9();
  assert.equal(exit.signal, 'SIGKILL');
  await c1.closed;
  const before = c1.sessionEvents(session);
  const last = c1.maxSeq(session);
  assertContiguous(assert, before, 1, 'before crash');
  assert.ok(before.filter((e) => e.type === 'delta').length >= 10);

  await srv.restart();
  const c2 = await connect(srv.port, { hello: true, name: 'after' });
  const att = await c2.request({ type: 'session.attach', session, after: last });
  assert.equal(att.type, 'ok', JSON.stringify(att));
  assert.equal(att.recovered, true, JSON.stringify(att));
  assert.ok(att.head >= last, `head after restart ${att.head} < ${last} already delivered: a seq would be reused`);

  // Wait for the re-run to finish: a message.end with the full text, then idle.
  const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end', 10_000);
  const idle = await waitState(c2, session, 'idle', end.seq, 5000);
  await sleep(150);
  const after = c2.sessionEvents(session);
  after.forEach((e) => checkEventShape(assert, e));
  for (const e of after)
    assert.ok(e.seq > last, `duplicate of an event already delivered before the crash: ${JSON.stringify(e)}`);
  const all = [...before, ...after];
  assertContiguous(assert, all, 1, 'before+after');
  assert.equal(all[all.length - 1].seq, idle.seq, 'idle is the last event');

  const msgs = checkMessages(assert, all);
  const list = [...msgs.values()];
  for (const m of list) assert.ok(m.end || m.discard, `message ${m.id} never finished`);
  const discarded = list.filter((m) => m.discard);
  assert.equal(
    discarded.length,
    1,
    `exactly the interrupted message is discarded: ${JSON.stringify(discarded.map((m) => m.discard))}`,
  );
  assert.equal(discarded[0].discard.reason, 'restart');
  assert.ok(discarded[0].start.seq < last, 'the discarded message is the one interrupted');
  const ended = list.filter((m) => m.end);
  assert.equal(ended.length, 1);
  assert.ok(ended[0].start.seq > discarded[0].discard.seq, 're-run starts after the discard');
  assert.equal(ended[0].end.text, text, 'final assistant text equals the sent text');
  assert.equal(ended[0].deltas.map((d) => d.text).join(''), text, 're-run deltas rebuild the text');
  assert.equal(all.filter((e) => e.type === 'user').length, 1, 'the user turn is not repeated');

  // The restarted server agrees with what the client saw.
  const info = await sessionInfo(c2, session);
  assert.equal(info.head, idle.seq);
  assert.equal(info.state, 'idle');
  // And the idempotency record survived the crash.
  const dup = await c2.request({ type: 'say', session, text, client_msg_id: 'k9' });
  assert.equal(dup.type, 'ok', JSON.stringify(dup));
  assert.equal(dup.duplicate, true, JSON.stringify(dup));
}

itest(
  'kill -9 mid-stream, restart, re-attach: seq continues without gap, the turn is discarded and re-run',
  (ctx) => crashMidStream(ctx, []),
  { timeout: 30_000 },
);

itest(
  'kill -9 mid-stream with --sync none: the same guarantees (process crash, not OS crash)',
  (ctx) => crashMidStream(ctx, ['--sync', 'none']),
  { timeout: 30_000 },
);

itest(
  'kill -9 while waiting for approval: the approval is still pending after restart and can be decided',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1', '--sync', 'commit'] });
    const c1 = await connect(srv.port, { hello: true, name: 'before' });
    const { session } = await openSession(c1);
    await c1.ok({ type: 'say', session, text: 'plan', client_msg_id: 'kp' });
    const ap = await c1.waitEvent((e) => e.session === session && e.type === 'approval');
    const waiting = await waitState(c1, session, 'waiting_approval', 0);
    await srv.kill9();
    await srv.restart();
    const c2 = await connect(srv.port, { hello: true, name: 'after' });
    const info = await sessionInfo(c2, session);
    assert.equal(info.state, 'waiting_approval');
    assert.equal(info.head, waiting.seq);
    const att = await c2.ok({ type: 'session.attach', session, after: waiting.seq });
    assert.equal(att.head, waiting.seq, 'nothing appended by the restart for a session at rest');
    await c2.ok({ type: 'decide', session, approval_id: ap.approval_id, decision: 'reject' });
    const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end');
    assert.equal(end.text, 'rejected');
    await waitState(c2, session, 'idle', end.seq);
    assertContiguous(assert, [...c1.sessionEvents(session), ...c2.sessionEvents(session)], 1);
  },
);

itest(
  'SIGTERM: clients see close 1001, exit code 0, sessions survive the restart',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const a = await connect(srv.port, { hello: true, name: 'a' });
    const b = await connect(srv.port, { hello: true, name: 'b' });
    const s1 = (await openSession(a)).session;
    await sayAndWait(a, s1, 'kept across restarts', 't1');
    const s2 = (await openSession(b)).session;
    await b.ok({ type: 'say', session: s2, text: 'plan', client_msg_id: 't2' }); // waits for approval
    await waitState(b, s2, 'waiting_approval', 0);
    const before = (await a.ok({ type: 'session.list' })).sessions;

    const t0 = Date.now();
    await srv.stop(); // asserts exit code 0
    const [ca, cb] = await Promise.all([a.closed, b.closed]);
    assert.equal(ca.code, 1001, `close code seen by a: ${JSON.stringify(ca)}`);
    assert.equal(cb.code, 1001, `close code seen by b: ${JSON.stringify(cb)}`);
    assert.ok(Date.now() - t0 < 5000, 'graceful stop is prompt');

    await srv.restart();
    const c = await connect(srv.port, { hello: true, name: 'c' });
    const after = (await c.ok({ type: 'session.list' })).sessions;
    for (const s of [s1, s2]) {
      const x = before.find((e) => e.session === s);
      const y = after.find((e) => e.session === s);
      assert.ok(y, `session ${s} missing after restart: ${JSON.stringify(after)}`);
      assert.equal(y.head, x.head, `head of ${s}`);
      assert.equal(y.state, x.state, `state of ${s}`);
      assert.equal(y.agent, 'echo');
    }
    const att = await c.ok({ type: 'session.attach', session: s1, after: 0 });
    assert.equal(att.head, before.find((e) => e.session === s1).head);
    await c.waitEvent((e) => e.session === s1 && e.seq === att.head);
    assertContiguous(assert, c.sessionEvents(s1), 1);
    // The pending approval survived too and can be decided.
    await c.ok({ type: 'session.attach', session: s2, after: 0 });
    const ap = await c.waitEvent((e) => e.session === s2 && e.type === 'approval');
    await c.ok({ type: 'decide', session: s2, approval_id: ap.approval_id, decision: 'approve' });
    const end = await c.waitEvent((e) => e.session === s2 && e.type === 'message.end');
    assert.equal(end.text, 'approved');
    await srv.stop();
  },
  { timeout: 30_000 },
);

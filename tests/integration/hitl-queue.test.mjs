// Human-in-the-loop edge cases (issue 14), continued, over real sockets with
// the echo agent: a busy session opened with on_busy "queue" keeps the says
// that arrive while a turn runs (bounded, acknowledged with their seq,
// stored: they survive kill -9 and run after the turn, in order; cancel runs
// the next; the snapshot shows them), and an approval with a deadline
// expires (the agent is told, a late decide is conflict with reason
// "expired", also after a restart).
import assert from 'node:assert/strict';
import { checkMessages, connect, itest, openSession, sleep, waitState } from './harness.mjs';

const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');
const ends = (c, session) =>
  c
    .sessionEvents(session)
    .filter((e) => e.type === 'message.end')
    .map((e) => e.text);

itest(
  'on_busy queue: says during a turn wait their turn, bounded, acknowledged with their seq',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '20'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo', { on_busy: 'queue' });
    await c.ok({ type: 'say', session, text: words(200, 'a'), client_msg_id: 'q0' });
    await c.waitEvent((e) => e.session === session && e.type === 'delta');
    const acks = [];
    for (let i = 1; i <= 8; i++) {
      const r = await c.ok({ type: 'say', session, text: `queued ${i}`, client_msg_id: `q${i}` });
      assert.equal(r.queued, true, JSON.stringify(r));
      assert.equal(r.position, i);
      const ev = await c.waitEvent((e) => e.session === session && e.type === 'say.queued' && e.seq === r.queued_seq);
      assert.equal(ev.queue_id, r.queue_id);
      assert.equal(ev.text, `queued ${i}`);
      assert.equal(ev.client_msg_id, `q${i}`);
      acks.push(r);
    }
    // A resend of a queued say is its duplicate, not a ninth.
    const dup = await c.ok({ type: 'say', session, text: 'queued 3', client_msg_id: 'q3' });
    assert.equal(dup.duplicate, true, JSON.stringify(dup));
    const head = c.maxSeq(session);
    const full = await c.request({ type: 'say', session, text: 'one too many', client_msg_id: 'q9' });
    assert.equal(full.type, 'error');
    assert.equal(full.code, 'limit_exceeded', JSON.stringify(full));
    assert.equal(full.reason, 'busy');
    assert.match(full.message, /queue .* is full \(8 says/);
    // The snapshot a late client gets shows the queue.
    const late = await connect(srv.port, { hello: true, name: 'late' });
    const lateAtt = await late.ok({ type: 'session.attach', session, after: 1_000_000 });
    assert.deepEqual(
      lateAtt.queue.map((q) => q.queue_id),
      acks.map((a) => a.queue_id),
    );
    const snap = await late.waitEvent((e) => e.session === session && e.type === 'snapshot');
    assert.deepEqual(
      snap.agent_state.say_queue.map((q) => [q.queue_id, q.seq, q.text]),
      acks.map((a, i) => [a.queue_id, a.queued_seq, `queued ${i + 1}`]),
    );
    // Each runs after the turn before it, in order, its user event right after its say.dequeued.
    for (let i = 1; i <= 8; i++) {
      const dq = await c.waitEvent(
        (e) => e.session === session && e.type === 'say.dequeued' && e.queue_id === acks[i - 1].queue_id,
        10_000,
      );
      assert.equal(dq.taken, true);
      const user = c.sessionEvents(session).find((e) => e.seq === dq.seq + 1);
      assert.equal(user?.type, 'user', JSON.stringify(user));
      assert.equal(user.text, `queued ${i}`);
      assert.equal(user.client_msg_id, `q${i}`);
    }
    await c.waitEvent((e) => e.session === session && e.type === 'message.end' && e.text === 'queued 8', 10_000);
    await waitState(c, session, 'idle', c.maxSeq(session) - 1);
    assert.ok(head < c.maxSeq(session));
    assert.deepEqual(ends(c, session), [words(200, 'a'), ...acks.map((_, i) => `queued ${i + 1}`)]);
    assert.ok(!c.sessionEvents(session).some((e) => e.type === 'user' && e.text === 'one too many'));
    checkMessages(assert, c.sessionEvents(session));
    // Idle with nothing queued: a say is taken at once.
    const r = await c.ok({ type: 'say', session, text: 'now', client_msg_id: 'n' });
    assert.equal(r.queued, undefined, JSON.stringify(r));
    await srv.stop(); // exit code 0: no sanitizer report, no leak
  },
);

itest(
  'on_busy queue: cancel of the running turn runs the next; the queue survives kill -9',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '30'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo', { on_busy: 'queue' });
    await c.ok({ type: 'say', session, text: words(200, 'long'), client_msg_id: 'l' });
    await c.waitEvent((e) => e.session === session && e.type === 'delta');
    const a = await c.ok({ type: 'say', session, text: words(200, 'next'), client_msg_id: 'n1' });
    const b = await c.ok({ type: 'say', session, text: 'last one', client_msg_id: 'n2' });
    assert.equal(a.queued && b.queued, true);
    // cancel: the running turn is withdrawn, the first queued say runs.
    await c.ok({ type: 'cancel', session });
    const discard = await c.waitEvent((e) => e.session === session && e.type === 'message.discard');
    assert.equal(discard.reason, 'cancelled');
    const dq = await c.waitEvent(
      (e) => e.session === session && e.type === 'say.dequeued' && e.queue_id === a.queue_id,
    );
    assert.ok(dq.seq > discard.seq);
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'next2 ');
    // kill -9 while "next" streams and "last one" waits.
    await srv.kill9();
    await c.closed;
    await srv.restart();
    const d = await connect(srv.port, { hello: true, name: 'after' });
    await d.ok({ type: 'session.attach', session, after: 1_000_000 });
    const snap = await d.waitEvent((e) => e.session === session && e.type === 'snapshot');
    assert.deepEqual(
      (snap.agent_state.say_queue ?? []).map((q) => q.queue_id),
      [b.queue_id],
      JSON.stringify(snap.agent_state),
    );
    const end = await d.waitEvent(
      (e) => e.session === session && e.type === 'message.end' && e.text === 'last one',
      15_000,
    );
    const all = await connect(srv.port, { hello: true, name: 'all' });
    await all.ok({ type: 'session.attach', session, after: 0 });
    await all.waitEvent((e) => e.session === session && e.seq === end.seq);
    const evs = all.sessionEvents(session);
    assert.deepEqual(
      evs.filter((e) => e.type === 'say.dequeued').map((e) => e.queue_id),
      [a.queue_id, b.queue_id],
      'each queued say taken once',
    );
    assert.deepEqual(
      evs.filter((e) => e.type === 'user').map((e) => e.client_msg_id),
      ['l', 'n1', 'n2'],
    );
    assert.deepEqual(
      evs.filter((e) => e.type === 'message.end').map((e) => e.text),
      [words(200, 'next'), 'last one'],
    );
    checkMessages(assert, evs);
  },
);

itest(
  'on_busy queue holds after a restart for a session that was idle, and is refused while a question is open',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo', { on_busy: 'queue', input: { delay_ms: 20 } });
    await c.ok({ type: 'say', session, text: 'ask', client_msg_id: 'a' });
    const q = await c.waitEvent((e) => e.session === session && e.type === 'question');
    await waitState(c, session, 'waiting_input');
    const r = await c.request({ type: 'say', session, text: 'not now', client_msg_id: 'x' });
    assert.equal(r.code, 'conflict', JSON.stringify(r));
    assert.ok(r.message.includes(q.question_id));
    await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
    await waitState(c, session, 'idle', q.seq);
    await srv.kill9();
    await srv.restart();
    const d = await connect(srv.port, { hello: true, name: 'after' });
    await d.ok({ type: 'session.attach', session, after: 1_000_000 });
    await d.ok({ type: 'say', session, text: words(100, 'z'), client_msg_id: 'z' });
    await d.waitEvent((e) => e.session === session && e.type === 'delta');
    // The queue is bounded in bytes too: two big says do not both fit.
    const big = 'b'.repeat(600_000);
    const first = await d.ok({ type: 'say', session, text: big, client_msg_id: 'big1' });
    assert.equal(first.queued, true);
    const tooBig = await d.request({ type: 'say', session, text: big, client_msg_id: 'big2' });
    assert.equal(tooBig.code, 'limit_exceeded', JSON.stringify(tooBig).slice(0, 300));
    assert.match(tooBig.message, /bytes/);
    const queued = await d.ok({ type: 'say', session, text: 'after z', client_msg_id: 'z2' });
    assert.equal(queued.position, 2);
    assert.equal(queued.queued, true, JSON.stringify(queued));
    await d.waitEvent((e) => e.session === session && e.type === 'message.end' && e.text === 'after z', 10_000);
  },
);

itest(
  'an approval with a deadline expires: approval.expired, the agent told, a late decide is conflict expired',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const bad = await c.request({ type: 'session.open', agent: 'echo', input: { approval_ttl_s: 0 } });
    assert.equal(bad.code, 'bad_request', JSON.stringify(bad));
    assert.match(bad.message, /approval_ttl_s/);
    const { session } = await openSession(c, 'echo', { input: { approval_ttl_s: 1 } });
    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p' });
    const ap = await c.waitEvent((e) => e.session === session && e.type === 'approval');
    const at = Date.parse(ap.expires_at);
    assert.ok(at > Date.now() - 200 && at < Date.now() + 1500, ap.expires_at);
    const att = await c.ok({ type: 'session.attach', session, after: c.maxSeq(session) });
    assert.equal(att.pending.expires_at, ap.expires_at);
    const expired = await c.waitEvent((e) => e.session === session && e.type === 'approval.expired', 4000);
    assert.equal(expired.approval_id, ap.approval_id);
    assert.equal(expired.expired_at, ap.expires_at);
    assert.ok(Date.now() >= at);
    const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > expired.seq);
    assert.equal(end.text, 'expired');
    await waitState(c, session, 'idle', expired.seq);
    const head = c.maxSeq(session);
    const late = await c.request({ type: 'decide', session, approval_id: ap.approval_id, decision: 'approve' });
    assert.equal(late.code, 'conflict', JSON.stringify(late));
    assert.equal(late.reason, 'expired');
    assert.match(late.message, /expired at/);
    await sleep(100);
    assert.equal(c.maxSeq(session), head, 'a late decide changed the session');
    const att2 = await c.ok({ type: 'session.attach', session, after: head });
    assert.equal(att2.pending, null);
    // Still expired after a restart.
    await srv.kill9();
    await srv.restart();
    const d = await connect(srv.port, { hello: true, name: 'after' });
    const again = await d.request({ type: 'decide', session, approval_id: ap.approval_id, decision: 'approve' });
    assert.equal(again.reason, 'expired', JSON.stringify(again));
  },
);

itest(
  'an approval whose deadline passes while the server is down expires at the restart; a decide before it applies',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo', { input: { approval_ttl_s: 2 } });
    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p' });
    const ap = await c.waitEvent((e) => e.session === session && e.type === 'approval');
    await waitState(c, session, 'waiting_approval');
    await srv.kill9();
    await sleep(Math.max(0, Date.parse(ap.expires_at) - Date.now()) + 100);
    await srv.restart();
    const d = await connect(srv.port, { hello: true, name: 'after' });
    const r = await d.request({ type: 'decide', session, approval_id: ap.approval_id, decision: 'approve' });
    assert.equal(r.code, 'conflict', JSON.stringify(r));
    assert.equal(r.reason, 'expired');
    await d.ok({ type: 'session.attach', session, after: 0 });
    const expired = await d.waitEvent((e) => e.session === session && e.type === 'approval.expired');
    assert.equal(expired.approval_id, ap.approval_id);
    const end = await d.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > expired.seq);
    assert.equal(end.text, 'expired');
    assert.equal(d.sessionEvents(session).filter((e) => e.type === 'approval.expired').length, 1);
    assert.ok(!d.sessionEvents(session).some((e) => e.type === 'approval.decided'));

    // In time, the decide applies and nothing expires later.
    const { session: s2 } = await openSession(d, 'echo', { input: { approval_ttl_s: 1 } });
    await d.ok({ type: 'say', session: s2, text: 'plan', client_msg_id: 'p2' });
    const ap2 = await d.waitEvent((e) => e.session === s2 && e.type === 'approval');
    await d.ok({ type: 'decide', session: s2, approval_id: ap2.approval_id, decision: 'approve' });
    await d.waitEvent((e) => e.session === s2 && e.type === 'message.end' && e.text === 'approved');
    await sleep(1300);
    assert.ok(!d.sessionEvents(s2).some((e) => e.type === 'approval.expired'));
    await srv.stop();
  },
);

// Human-in-the-loop edge cases (issue 14), over real sockets with the echo
// agent: cancel is explicit and separate from a disconnect, and reaches the
// run after a re-attach and after a restart; while a question or an approval
// is open, input that is not its answer is refused naming it; the open
// question or approval comes with every attach (whatever `after`), after a
// restart, and in the snapshot of a client attaching from far back.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { assertContiguous, checkMessages, connect, itest, openSession, sleep, waitState } from './harness.mjs';

const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

async function cancelReaches(c, session, after) {
  const r = await c.ok({ type: 'cancel', session });
  assert.equal(r.cancelled, true, JSON.stringify(r));
  const discard = await c.waitEvent(
    (e) => e.session === session && e.type === 'message.discard' && e.seq > after,
    5000,
  );
  assert.equal(discard.reason, 'cancelled');
  const idle = await waitState(c, session, 'idle', discard.seq);
  await sleep(200); // several echo intervals: nothing more may come
  assert.equal(c.maxSeq(session), idle.seq, 'events after the cancel');
  return discard;
}

itest(
  'a closed socket never cancels: the run goes on, and cancel from a re-attached socket reaches it',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '30'] });
    const a = await connect(srv.port, { hello: true, name: 'a' });
    const { session } = await openSession(a);
    await a.ok({ type: 'say', session, text: words(200), client_msg_id: 'c1' });
    await a.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'w3 ');
    const seen = a.maxSeq(session);
    await a.terminate(); // no close handshake, no cancel
    await sleep(300);
    const b = await connect(srv.port, { hello: true, name: 'b' });
    const att = await b.ok({ type: 'session.attach', session, after: seen });
    assert.ok(att.head > seen + 3, `the run stopped with the socket: head ${att.head}, seen ${seen}`);
    const info = (await b.ok({ type: 'session.list' })).sessions.find((s) => s.session === session);
    assert.equal(info.state, 'running');
    const discard = await cancelReaches(b, session, seen);
    assert.ok(!b.sessionEvents(session).some((e) => e.type === 'message.end' && e.message_id === discard.message_id));
    assertContiguous(assert, b.sessionEvents(session), seen + 1);
  },
);

itest('cancel reaches a run resumed after kill -9', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '30'] });
  const a = await connect(srv.port, { hello: true, name: 'before' });
  const { session } = await openSession(a);
  await a.ok({ type: 'say', session, text: words(200), client_msg_id: 'k1' });
  await a.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'w3 ');
  await srv.kill9();
  await a.closed;
  await srv.restart();
  const b = await connect(srv.port, { hello: true, name: 'after' });
  await b.ok({ type: 'session.attach', session, after: 0 });
  // The restart withdraws the cut message and streams it again: cancel that one.
  const restart = await b.waitEvent((e) => e.session === session && e.type === 'message.discard', 5000);
  assert.equal(restart.reason, 'restart');
  const again = await b.waitEvent((e) => e.session === session && e.type === 'message.start' && e.seq > restart.seq);
  await b.waitEvent((e) => e.session === session && e.type === 'delta' && e.seq > again.seq + 1);
  const discard = await cancelReaches(b, session, again.seq);
  assert.equal(discard.message_id, again.message_id);
  checkMessages(assert, b.sessionEvents(session));
});

itest(
  'cancel withdraws an open question and an open approval: the turn ends, nothing stays pending',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    for (const [text, state] of [
      ['ask', 'waiting_input'],
      ['plan', 'waiting_approval'],
    ]) {
      const { session } = await openSession(c);
      await c.ok({ type: 'say', session, text, client_msg_id: text });
      await waitState(c, session, state);
      const r = await c.ok({ type: 'cancel', session });
      assert.equal(r.cancelled, true, `${text}: ${JSON.stringify(r)}`);
      await waitState(c, session, 'idle');
      const att = await c.ok({ type: 'session.attach', session, after: c.maxSeq(session) });
      assert.equal(att.pending, null, `${text}: still pending after cancel`);
      // The session takes a new turn.
      await c.ok({ type: 'say', session, text: 'hello again', client_msg_id: `${text}-2` });
      const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end');
      assert.equal(end.text, 'hello again');
    }
  },
);

itest(
  'while a question or an approval is open, input that is not its answer is refused naming it',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const { session: sq } = await openSession(c);
    await c.ok({ type: 'say', session: sq, text: 'ask', client_msg_id: 'q' });
    const q = (await c.waitEvent((e) => e.session === sq && e.type === 'question')).question_id;
    await waitState(c, sq, 'waiting_input');
    const { session: sa } = await openSession(c);
    await c.ok({ type: 'say', session: sa, text: 'plan', client_msg_id: 'a' });
    const a = (await c.waitEvent((e) => e.session === sa && e.type === 'approval')).approval_id;
    await waitState(c, sa, 'waiting_approval');
    const heads = [c.maxSeq(sq), c.maxSeq(sa)];

    const refused = async (msg, id) => {
      const r = await c.request(msg);
      assert.equal(r.type, 'error', JSON.stringify(r));
      assert.equal(r.code, 'conflict', JSON.stringify(r));
      assert.ok(r.message.includes(id), `the error does not name ${id}: ${r.message}`);
    };
    await refused({ type: 'say', session: sq, text: 'something else', client_msg_id: 'x1' }, q);
    await refused({ type: 'decide', session: sq, approval_id: a, decision: 'approve' }, q);
    await refused({ type: 'say', session: sa, text: 'something else', client_msg_id: 'x2' }, a);
    await refused({ type: 'answer', session: sa, question_id: q, value: 'yes' }, a);
    await sleep(100);
    assert.deepEqual([c.maxSeq(sq), c.maxSeq(sa)], heads, 'a refused input changed a session');
    // The refused say's client_msg_id was not recorded: after the answer it is a new turn.
    await c.ok({ type: 'answer', session: sq, question_id: q, value: 'yes' });
    await waitState(c, sq, 'idle', heads[0]);
    const r = await c.ok({ type: 'say', session: sq, text: 'now then', client_msg_id: 'x1' });
    assert.equal(r.duplicate, undefined, JSON.stringify(r));
  },
);

itest(
  'an open question or approval comes with every attach, whatever after, also after a restart',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true, name: 'owner' });
    const { session } = await openSession(c);
    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p' });
    const approval = await c.waitEvent((e) => e.session === session && e.type === 'approval');
    await waitState(c, session, 'waiting_approval');
    const head = c.maxSeq(session);
    // A reload that already has every event: the approval is in the ok.
    const d = await connect(srv.port, { hello: true, name: 'reload' });
    const att = await d.ok({ type: 'session.attach', session, after: head });
    assert.equal(att.pending?.approval_id, approval.approval_id, JSON.stringify(att));
    assert.deepEqual(att.pending.plan, approval.plan);
    await srv.kill9();
    await srv.restart();
    const e = await connect(srv.port, { hello: true, name: 'restarted' });
    const att2 = await e.ok({ type: 'session.attach', session, after: head });
    assert.equal(att2.pending?.approval_id, approval.approval_id, JSON.stringify(att2));
    // And it is still the answer the session takes.
    await e.ok({ type: 'decide', session, approval_id: approval.approval_id, decision: 'approve' });
    const end = await e.waitEvent((x) => x.session === session && x.type === 'message.end');
    assert.equal(end.text, 'approved');
    const att3 = await e.ok({ type: 'session.attach', session, after: 0 });
    assert.equal(att3.pending, null);
  },
);

itest(
  'an open question is in the snapshot of a client attaching from before the retained events',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1', '--retain-events', '5'] });
    const c = await connect(srv.port, { hello: true, name: 'writer' });
    const { session } = await openSession(c);
    for (let i = 0; i < 3; i++) {
      await c.ok({ type: 'say', session, text: words(4, `t${i}`), client_msg_id: `t${i}` });
      await waitState(c, session, 'idle', c.maxSeq(session));
    }
    await c.ok({ type: 'say', session, text: 'ask', client_msg_id: 'q' });
    const question = await c.waitEvent((e) => e.session === session && e.type === 'question');
    await waitState(c, session, 'waiting_input');
    const late = await connect(srv.port, { hello: true, name: 'late' });
    const att = await late.ok({ type: 'session.attach', session, after: 0 });
    assert.equal(att.recovered, false, JSON.stringify(att));
    assert.equal(att.pending?.question_id, question.question_id);
    const snap = await late.waitEvent((e) => e.session === session && e.type === 'snapshot');
    assert.equal(snap.pending?.question_id, question.question_id, JSON.stringify(snap.pending));
    assert.deepEqual(snap.pending.choices, question.choices);
  },
);

/** The fingerprint a client can compute itself: SHA-256 of the plan as compact JSON with sorted keys. */
function fingerprintOf(plan) {
  const canon = (v) =>
    Array.isArray(v)
      ? `[${v.map(canon).join(',')}]`
      : v && typeof v === 'object'
        ? `{${Object.keys(v)
            .sort()
            .map((k) => `${JSON.stringify(k)}:${canon(v[k])}`)
            .join(',')}}`
        : JSON.stringify(v);
  return `sha256:${crypto.createHash('sha256').update(canon(plan)).digest('hex')}`;
}

itest(
  'decide with the plan fingerprint: an altered or stale plan is conflict and changes nothing',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c);
    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p' });
    const first = await c.waitEvent((e) => e.session === session && e.type === 'approval');
    await waitState(c, session, 'waiting_approval');
    assert.equal(first.fingerprint, fingerprintOf(first.plan), JSON.stringify(first));
    const att = await c.ok({ type: 'session.attach', session, after: c.maxSeq(session) });
    assert.equal(att.pending.fingerprint, first.fingerprint);

    const head = c.maxSeq(session);
    const altered = fingerprintOf({ ...first.plan, steps: ['send the reply'] });
    const r = await c.request({
      type: 'decide',
      session,
      approval_id: first.approval_id,
      decision: 'approve',
      fingerprint: altered,
    });
    assert.equal(r.code, 'conflict', JSON.stringify(r));
    assert.match(r.message, /fingerprint/);
    await sleep(100);
    assert.equal(c.maxSeq(session), head, 'a decide on an altered plan changed the session');

    // Revised: a new approval id and plan; the old id and the old fingerprint approve nothing.
    await c.ok({
      type: 'decide',
      session,
      approval_id: first.approval_id,
      decision: 'revise',
      comment: 'add tests',
      fingerprint: first.fingerprint,
    });
    const second = await c.waitEvent((e) => e.session === session && e.type === 'approval' && e.seq > head);
    assert.notEqual(second.fingerprint, first.fingerprint);
    assert.equal(second.fingerprint, fingerprintOf(second.plan));
    const stale = await c.request({ type: 'decide', session, approval_id: first.approval_id, decision: 'approve' });
    assert.equal(stale.code, 'conflict', JSON.stringify(stale));
    const old = await c.request({
      type: 'decide',
      session,
      approval_id: second.approval_id,
      decision: 'approve',
      fingerprint: first.fingerprint,
    });
    assert.equal(old.code, 'conflict', JSON.stringify(old));
    await c.ok({
      type: 'decide',
      session,
      approval_id: second.approval_id,
      decision: 'approve',
      fingerprint: second.fingerprint,
    });
    const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > second.seq);
    assert.equal(end.text, 'approved');
  },
);

itest(
  'a say while a turn runs: rejected as busy naming the turn, or with on_busy interrupt it cancels the turn and is taken',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '30'] });
    const c = await connect(srv.port, { hello: true });
    const bad = await c.request({ type: 'session.open', agent: 'echo', on_busy: 'later' }, undefined, {
      invalid: true,
    });
    assert.equal(bad.code, 'bad_request', JSON.stringify(bad));

    const { session: rej } = await openSession(c);
    await c.ok({ type: 'say', session: rej, text: words(40), client_msg_id: 'r1' });
    const user = await c.waitEvent((e) => e.session === rej && e.type === 'user');
    await c.waitEvent((e) => e.session === rej && e.type === 'delta');
    const r = await c.request({ type: 'say', session: rej, text: 'again', client_msg_id: 'r2' });
    assert.equal(r.code, 'conflict', JSON.stringify(r));
    assert.equal(r.reason, 'busy', JSON.stringify(r));
    assert.ok(r.message.includes(user.message_id), `the error does not name the turn: ${r.message}`);
    await c.ok({ type: 'cancel', session: rej });

    const { session } = await openSession(c, 'echo', { on_busy: 'interrupt' });
    await c.ok({ type: 'say', session, text: words(40), client_msg_id: 'i1' });
    const first = await c.waitEvent((e) => e.session === session && e.type === 'message.start');
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.seq > first.seq + 1);
    await c.ok({ type: 'say', session, text: 'the new question', client_msg_id: 'i2' });
    const discard = await c.waitEvent((e) => e.session === session && e.type === 'message.discard');
    assert.equal(discard.message_id, first.message_id);
    assert.equal(discard.reason, 'cancelled');
    const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end');
    assert.equal(end.text, 'the new question');
    checkMessages(assert, c.sessionEvents(session));

    // The policy is the session's: it holds after a restart.
    await c.ok({ type: 'say', session, text: words(200, 'x'), client_msg_id: 'i3' });
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'x2 ');
    await srv.kill9();
    await srv.restart();
    const d = await connect(srv.port, { hello: true, name: 'after' });
    await d.ok({ type: 'session.attach', session, after: 0 });
    const restart = await d.waitEvent(
      (e) => e.session === session && e.type === 'message.discard' && e.reason === 'restart',
    );
    await d.waitEvent((e) => e.session === session && e.type === 'delta' && e.seq > restart.seq + 2);

    await d.ok({ type: 'say', session, text: 'after the restart', client_msg_id: 'i4' });
    const cut = await d.waitEvent((e) => e.session === session && e.type === 'message.discard' && e.seq > restart.seq);
    assert.equal(cut.reason, 'cancelled');
    const end2 = await d.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > end.seq);
    assert.equal(end2.text, 'after the restart');
  },
);

itest(
  'compacted catch-up: finished messages come whole, only the message in flight token by token',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '2'] });
    const w = await connect(srv.port, { hello: true, name: 'writer' });
    const { session } = await openSession(w);
    for (let i = 0; i < 3; i++) {
      await w.ok({ type: 'say', session, text: words(30, `t${i}-`), client_msg_id: `t${i}` });
      await waitState(w, session, 'idle', w.maxSeq(session));
    }
    const long = words(300, 'live');
    await w.ok({ type: 'say', session, text: long, client_msg_id: 'live' });
    const start = await w.waitEvent((e) => e.session === session && e.type === 'message.start' && e.seq > 90);
    await w.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'live20 ');

    const late = await connect(srv.port, { hello: true, name: 'late' });
    const att = await late.ok({ type: 'session.attach', session, after: 0, compact: true });
    const end = await late.waitEvent(
      (e) => e.session === session && e.type === 'message.end' && e.seq > att.head,
      15_000,
    );
    assert.equal(end.text, long);
    const evs = late.sessionEvents(session);
    const seqs = evs.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'seqs in order',
    );
    assert.equal(new Set(seqs).size, seqs.length, 'no duplicate');
    const deltas = evs.filter((e) => e.type === 'delta');
    assert.ok(
      deltas.length > 0 && deltas.every((d) => d.message_id === start.message_id),
      'deltas of finished messages',
    );
    assert.equal(deltas.map((d) => d.text).join(''), long, 'the message in flight rebuilt from its deltas');
    const ends = evs.filter((e) => e.type === 'message.end');
    assert.deepEqual(
      ends.map((e) => e.text),
      [0, 1, 2].map((i) => words(30, `t${i}-`)).concat([long]),
    );
    assert.equal(evs.filter((e) => e.type === 'message.start').length, 4);
    assert.equal(evs.filter((e) => e.type === 'user').length, 4);
    // Without compact the same attach replays every delta.
    const full = await connect(srv.port, { hello: true, name: 'full' });
    await full.ok({ type: 'session.attach', session, after: 0 });
    await sleep(300);
    assert.equal(full.sessionEvents(session).filter((e) => e.type === 'delta').length, 90 + 300);
  },
);

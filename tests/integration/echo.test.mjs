// The echo agent over one or two sockets: streaming, idempotency, questions,
// approvals, cancel, session management.
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

/** Open an echo session and wait for its first event. */
async function open(c) {
  const r = await openSession(c);
  const first = await c.waitEvent((e) => e.session === r.session && e.seq === 1);
  return { session: r.session, reply: r, first };
}

itest(
  'full echo stream: user, running, message.start, deltas, message.end with usage, idle',
  async ({ startServer }) => {
    const srv = await startServer();
    const c = await connect(srv.port, { hello: true });
    const { session, reply, first } = await open(c);
    assert.match(session, /^s_/, `session id ${session}`);
    assert.equal(reply.head, 1, `head after open: ${JSON.stringify(reply)}`);
    checkEventShape(assert, first);
    assert.equal(first.type, 'state');
    assert.equal(first.state, 'idle');
    assert.equal(first.step, 'start');

    const say = await c.request({ type: 'say', session, text: 'hello big world', client_msg_id: 'c1' });
    assert.equal(say.type, 'ok', JSON.stringify(say));
    await waitState(c, session, 'idle', 1);
    await sleep(150); // anything extra would show up here
    const evs = c.sessionEvents(session);
    evs.forEach((e) => checkEventShape(assert, e));
    assertContiguous(assert, evs, 1);
    const types = evs.map((e) => e.type + (e.type === 'state' ? ':' + e.state : ''));
    assert.deepEqual(
      types,
      ['state:idle', 'user', 'state:running', 'message.start', 'delta', 'delta', 'delta', 'message.end', 'state:idle'],
      `event sequence: ${JSON.stringify(evs)}`,
    );
    const [, user, , start, d1, d2, d3, end] = evs;
    assert.equal(user.text, 'hello big world');
    assert.equal(user.client_msg_id, 'c1');
    assert.equal(typeof user.message_id, 'string');
    assert.equal(start.role, 'assistant');
    assert.equal(typeof start.message_id, 'string');
    assert.notEqual(start.message_id, user.message_id, 'assistant and user messages have distinct ids');
    for (const d of [d1, d2, d3, end]) assert.equal(d.message_id, start.message_id);
    assert.deepEqual([d1.text, d2.text, d3.text], ['hello ', 'big ', 'world']);
    assert.equal(end.text, 'hello big world');
    assert.equal(typeof end.usage, 'object');
    assert.ok(Number.isInteger(end.usage.prompt_tokens), `usage ${JSON.stringify(end.usage)}`);
    assert.ok(Number.isInteger(end.usage.completion_tokens), `usage ${JSON.stringify(end.usage)}`);
    assert.equal(typeof end.usage.cost_usd, 'number');
    assert.equal(end.usage.model, 'echo');
    assert.equal(typeof end.usage.cached, 'boolean');
    // ts never goes backwards
    for (let i = 1; i < evs.length; i++)
      assert.ok(evs[i].ts >= evs[i - 1].ts, `ts order ${evs[i - 1].ts} > ${evs[i].ts}`);
    // No stray frames: every frame is a welcome, an ok, or an event of this session.
    const stray = c.frames.filter((f) => !(f.type === 'welcome' || f.type === 'ok' || f.session === session));
    assert.deepEqual(stray, []);
    const info = await sessionInfo(c, session);
    assert.equal(info.head, 9);
    assert.equal(info.state, 'idle');
    assert.equal(info.agent, 'echo');
  },
);

itest(
  'idempotent say: a repeated client_msg_id is ok with duplicate:true and adds no events',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '10'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await open(c);
    const { reply } = await sayAndWait(c, session, 'once only', 'dup-1');
    assert.notEqual(reply.duplicate, true);
    const head = c.maxSeq(session);
    const again = await c.request({ type: 'say', session, text: 'once only', client_msg_id: 'dup-1' });
    assert.equal(again.type, 'ok', JSON.stringify(again));
    assert.equal(again.duplicate, true, JSON.stringify(again));
    await sleep(300);
    assert.equal(
      c.maxSeq(session),
      head,
      `no new events after the duplicate: ${JSON.stringify(c.sessionEvents(session).filter((e) => e.seq > head))}`,
    );
    assert.equal((await sessionInfo(c, session)).head, head);
    // A new client_msg_id still works.
    await sayAndWait(c, session, 'twice', 'dup-2');
    assert.equal(c.sessionEvents(session).filter((e) => e.type === 'user').length, 2);
  },
);

itest(
  'a duplicate say while its own reply is still streaming is ok duplicate (not conflict, not re-run)',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '30'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await open(c);
    const text = words(10);
    assert.equal((await c.request({ type: 'say', session, text, client_msg_id: 'retry-1' })).type, 'ok');
    await c.waitEvent((e) => e.session === session && e.type === 'delta');
    const again = await c.request({ type: 'say', session, text, client_msg_id: 'retry-1' });
    assert.equal(again.type, 'ok', `a client retrying its say mid-stream: ${JSON.stringify(again)}`);
    assert.equal(again.duplicate, true, JSON.stringify(again));
    await waitState(c, session, 'idle', 1);
    await sleep(200);
    const evs = c.sessionEvents(session);
    assert.equal(evs.filter((e) => e.type === 'user').length, 1);
    assert.equal(evs.filter((e) => e.type === 'message.end').length, 1);
  },
);

itest('say while a reply is streaming is a conflict and does not disturb the stream', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '30'] });
  const c = await connect(srv.port, { hello: true });
  const { session } = await open(c);
  const text = words(8);
  await c.ok({ type: 'say', session, text, client_msg_id: 'a' });
  await c.waitEvent((e) => e.session === session && e.type === 'delta');
  const r = await c.request({ type: 'say', session, text: 'interrupting', client_msg_id: 'b' });
  assert.equal(r.type, 'error', JSON.stringify(r));
  assert.equal(r.code, 'conflict', JSON.stringify(r));
  assert.equal(typeof r.message, 'string');
  assert.equal(typeof r.retryable, 'boolean');
  const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end', 5000);
  assert.equal(end.text, text);
  await waitState(c, session, 'idle', end.seq);
  assert.ok(!c.sessionEvents(session).some((e) => e.type === 'user' && e.client_msg_id === 'b'));
  // b may now be sent and is applied (it was never applied before).
  await sayAndWait(c, session, 'interrupting', 'b');
});

itest('two sockets on one session see identical event sequences, whoever says', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '5'] });
  const a = await connect(srv.port, { hello: true, name: 'A' });
  const b = await connect(srv.port, { hello: true, name: 'B' });
  const { session } = await open(a);
  const att = await b.ok({ type: 'session.attach', session, after: 0 });
  assert.equal(att.recovered, true);
  assert.equal(att.head, 1);
  await b.waitEvent((e) => e.session === session && e.seq === 1);

  await a.ok({ type: 'say', session, text: 'from a to all', client_msg_id: 'a1' });
  const idleA = await waitState(a, session, 'idle', 1);
  await waitState(b, session, 'idle', 1);
  await b.ok({ type: 'say', session, text: 'and back from b', client_msg_id: 'b1' });
  const idleB = await waitState(b, session, 'idle', idleA.seq);
  await waitState(a, session, 'idle', idleA.seq);
  await sleep(100);

  const ea = a.sessionEvents(session);
  const eb = b.sessionEvents(session);
  assertContiguous(assert, ea, 1, 'A');
  assertContiguous(assert, eb, 1, 'B');
  assert.equal(ea.length, idleB.seq);
  assert.deepEqual(eb, ea, 'both sockets must see the very same events');
  const users = ea.filter((e) => e.type === 'user').map((e) => e.text);
  assert.deepEqual(users, ['from a to all', 'and back from b']);
  const ends = ea.filter((e) => e.type === 'message.end').map((e) => e.text);
  assert.deepEqual(ends, ['from a to all', 'and back from b']);
});

itest(
  'ask: question with choices, waiting_input, conflicts and bad values, answer streams "you said yes"',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '5'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await open(c);

    let r = await c.request({ type: 'answer', session, question_id: 'q_nothing', value: 'yes' });
    assert.equal(r.code, 'conflict', `answer with no question pending: ${JSON.stringify(r)}`);

    await c.ok({ type: 'say', session, text: 'ask', client_msg_id: 'k1' });
    const q = await c.waitEvent((e) => e.session === session && e.type === 'question');
    await waitState(c, session, 'waiting_input', 1);
    assert.equal(typeof q.question_id, 'string');
    assert.equal(typeof q.text, 'string');
    assert.deepEqual(q.choices, ['yes', 'no']);
    const headWaiting = c.maxSeq(session);

    r = await c.request({ type: 'answer', session, question_id: q.question_id, value: 'maybe' });
    assert.equal(r.type, 'error');
    assert.equal(r.code, 'bad_request', `value not among choices: ${JSON.stringify(r)}`);
    r = await c.request({ type: 'answer', session, question_id: q.question_id + 'x', value: 'yes' });
    assert.equal(r.code, 'conflict', `unknown question_id: ${JSON.stringify(r)}`);
    await sleep(50);
    assert.equal(c.maxSeq(session), headWaiting, 'rejected answers change nothing');

    r = await c.request({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > headWaiting);
    assert.equal(end.text, 'you said yes');
    await waitState(c, session, 'idle', end.seq);

    r = await c.request({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
    assert.equal(r.code, 'conflict', `stale question_id: ${JSON.stringify(r)}`);
    const evs = c.sessionEvents(session);
    assertContiguous(assert, evs, 1);
    checkMessages(assert, evs);
    const deltas = evs
      .filter((e) => e.type === 'delta' && e.message_id === end.message_id)
      .map((e) => e.text)
      .join('');
    assert.equal(deltas, 'you said yes');
  },
);

itest(
  'plan: approval, revise (needs comment) gives a new approval, stale id conflicts, approve / reject',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '5'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await open(c);

    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p1' });
    const a1 = await c.waitEvent((e) => e.session === session && e.type === 'approval');
    await waitState(c, session, 'waiting_approval', 1);
    assert.equal(typeof a1.approval_id, 'string');
    assert.equal(typeof a1.title, 'string');
    assert.ok(a1.plan !== undefined && a1.plan !== null, 'approval carries a plan');

    let r = await c.request({ type: 'decide', session, approval_id: a1.approval_id, decision: 'revise' });
    assert.equal(r.code, 'bad_request', `revise without comment: ${JSON.stringify(r)}`);
    r = await c.request({ type: 'decide', session, approval_id: a1.approval_id, decision: 'perhaps' }, undefined, {
      invalid: true,
    });
    assert.equal(r.code, 'bad_request', `unknown decision: ${JSON.stringify(r)}`);

    r = await c.request({
      type: 'decide',
      session,
      approval_id: a1.approval_id,
      decision: 'revise',
      comment: 'add tags',
    });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    const a2 = await c.waitEvent((e) => e.session === session && e.type === 'approval' && e.seq > a1.seq);
    assert.notEqual(a2.approval_id, a1.approval_id);
    assert.ok(
      JSON.stringify(a2.plan).includes('add tags'),
      `revised plan must carry the comment: ${JSON.stringify(a2.plan)}`,
    );
    assert.equal((await sessionInfo(c, session)).state, 'waiting_approval', 'still waiting for approval after revise');

    r = await c.request({ type: 'decide', session, approval_id: a1.approval_id, decision: 'approve' });
    assert.equal(r.code, 'conflict', `stale approval_id: ${JSON.stringify(r)}`);

    r = await c.request({ type: 'decide', session, approval_id: a2.approval_id, decision: 'approve' });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    let end = await c.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > a2.seq);
    assert.equal(end.text, 'approved');
    const idle1 = await waitState(c, session, 'idle', end.seq);

    r = await c.request({ type: 'decide', session, approval_id: a2.approval_id, decision: 'approve' });
    assert.equal(r.code, 'conflict', `decide with nothing pending: ${JSON.stringify(r)}`);

    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p2' });
    const a3 = await c.waitEvent((e) => e.session === session && e.type === 'approval' && e.seq > idle1.seq);
    await c.ok({ type: 'decide', session, approval_id: a3.approval_id, decision: 'reject' });
    end = await c.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > a3.seq);
    assert.equal(end.text, 'rejected');
    await waitState(c, session, 'idle', end.seq);
    assertContiguous(assert, c.sessionEvents(session), 1);
    checkMessages(assert, c.sessionEvents(session));
  },
);

itest(
  'cancel mid-stream: message.discard reason cancelled then idle, no message.end; cancel when idle is cancelled:false',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '40'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await open(c);
    await c.ok({ type: 'say', session, text: words(20), client_msg_id: 'x1' });
    const start = await c.waitEvent((e) => e.session === session && e.type === 'message.start');
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.seq > start.seq + 1);
    const r = await c.request({ type: 'cancel', session });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    assert.notEqual(r.cancelled, false, JSON.stringify(r));
    const discard = await c.waitEvent((e) => e.session === session && e.type === 'message.discard');
    assert.equal(discard.message_id, start.message_id);
    assert.equal(discard.reason, 'cancelled');
    const idle = await waitState(c, session, 'idle', discard.seq);
    assert.equal(idle.seq, discard.seq + 1, 'state idle right after the discard');
    await sleep(250); // several echo intervals: nothing more may come
    const evs = c.sessionEvents(session);
    assert.equal(
      c.maxSeq(session),
      idle.seq,
      `events after cancel: ${JSON.stringify(evs.filter((e) => e.seq > idle.seq))}`,
    );
    assert.ok(!evs.some((e) => e.type === 'message.end' && e.message_id === start.message_id));
    assertContiguous(assert, evs, 1);
    checkMessages(assert, evs);

    const r2 = await c.request({ type: 'cancel', session });
    assert.equal(r2.type, 'ok', JSON.stringify(r2));
    assert.equal(r2.cancelled, false);
    await sleep(50);
    assert.equal(c.maxSeq(session), idle.seq, 'cancel when idle adds no events');
    // The session is usable afterwards.
    const { events } = await sayAndWait(c, session, 'still alive', 'x2');
    assert.equal(events.find((e) => e.type === 'message.end').text, 'still alive');
  },
);

itest('session.list, session.detach and session.close', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '5'] });
  const c = await connect(srv.port, { hello: true });
  const s1 = (await open(c)).session;
  const s2 = (await open(c)).session;
  assert.notEqual(s1, s2);
  await sayAndWait(c, s1, 'first session', 'l1');

  const list = await c.ok({ type: 'session.list' });
  const e1 = list.sessions.find((s) => s.session === s1);
  const e2 = list.sessions.find((s) => s.session === s2);
  assert.ok(e1 && e2, JSON.stringify(list));
  for (const e of [e1, e2]) {
    assert.equal(e.agent, 'echo');
    assert.equal(e.state, 'idle');
    assert.ok('title' in e, `title missing: ${JSON.stringify(e)}`);
    assert.ok(e.updated_at !== undefined, `updated_at missing: ${JSON.stringify(e)}`);
  }
  assert.equal(e1.head, c.maxSeq(s1));
  assert.equal(e2.head, 1);

  // detach: a second socket keeps watching, this one stops receiving s1.
  const w = await connect(srv.port, { hello: true, name: 'watcher' });
  await w.ok({ type: 'session.attach', session: s1, after: e1.head });
  const d = await c.request({ type: 'session.detach', session: s1 });
  assert.equal(d.type, 'ok', JSON.stringify(d));
  const before = c.events.length;
  await w.ok({ type: 'say', session: s1, text: 'nobody on c', client_msg_id: 'l2' });
  await waitState(w, s1, 'idle', e1.head);
  await sleep(100);
  assert.deepEqual(c.events.slice(before), [], 'a detached socket gets no events of that session');

  // close: state closed, later say is a conflict.
  const cl = await c.request({ type: 'session.close', session: s2 });
  assert.equal(cl.type, 'ok', JSON.stringify(cl));
  const closedEv = await waitState(c, s2, 'closed', 1);
  assert.equal(closedEv.seq, 2);
  const say = await c.request({ type: 'say', session: s2, text: 'too late', client_msg_id: 'l3' });
  assert.equal(say.code, 'conflict', JSON.stringify(say));
  const after = await c.ok({ type: 'session.list' });
  const s2e = after.sessions.find((s) => s.session === s2);
  if (s2e) assert.equal(s2e.state, 'closed');
});

itest(
  'unknown session is not_found for attach, say, close, answer, decide, cancel; ping gets pong',
  async ({ startServer }) => {
    const srv = await startServer();
    const c = await connect(srv.port, { hello: true });
    const ghost = 's_doesnotexist000000';
    for (const m of [
      { type: 'session.attach', session: ghost, after: 0 },
      { type: 'say', session: ghost, text: 'hi', client_msg_id: 'n1' },
      { type: 'session.close', session: ghost },
      { type: 'answer', session: ghost, question_id: 'q1', value: 'yes' },
      { type: 'decide', session: ghost, approval_id: 'a1', decision: 'approve' },
      { type: 'cancel', session: ghost },
    ]) {
      const r = await c.request(m);
      assert.equal(r.type, 'error', `${m.type}: ${JSON.stringify(r)}`);
      assert.equal(r.code, 'not_found', `${m.type}: ${JSON.stringify(r)}`);
    }
    const p = await c.ping();
    assert.equal(p.type, 'pong');
    assert.ok(c.isOpen);
  },
);

// What the user chose is in the log: question.answered and approval.decided,
// so every view (another tab, a reload) shows it on the card; a refused
// answer or decision records nothing.
import assert from 'node:assert/strict';

import { connect, itest, openSession, waitState } from './harness.mjs';

itest('answers and decisions are events; refused ones leave none', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'echo');
  const of = (type) => c.sessionEvents(session).filter((e) => e.type === type);

  await c.ok({ type: 'say', session, text: 'ask' });
  const q = await c.waitEvent((e) => e.type === 'question');
  const stale = await c.request({ type: 'answer', session, question_id: 'q_nope', value: 'yes' });
  assert.equal(stale.code, 'conflict');
  await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
  await waitState(c, session, 'idle', q.seq);
  await c.waitEvent((e) => e.type === 'question.answered');
  assert.deepEqual(
    of('question.answered').map((e) => [e.question_id, e.value]),
    [[q.question_id, 'yes']],
  );

  await c.ok({ type: 'say', session, text: 'plan' });
  const a1 = await c.waitEvent((e) => e.type === 'approval');
  await c.ok({ type: 'decide', session, approval_id: a1.approval_id, decision: 'revise', comment: 'fewer steps' });
  const a2 = await c.waitEvent((e) => e.type === 'approval' && e.seq > a1.seq);
  await c.ok({ type: 'decide', session, approval_id: a2.approval_id, decision: 'approve' });
  const late = await c.request({ type: 'decide', session, approval_id: a1.approval_id, decision: 'reject' });
  assert.equal(late.code, 'conflict');
  await waitState(c, session, 'idle', a2.seq);
  await c.waitEvent((e) => e.type === 'approval.decided' && e.approval_id === a2.approval_id);
  assert.deepEqual(
    of('approval.decided').map((e) => [e.approval_id, e.decision, e.comment]),
    [
      [a1.approval_id, 'revise', 'fewer steps'],
      [a2.approval_id, 'approve', undefined],
    ],
  );
});

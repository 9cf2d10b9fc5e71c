// Regenerate an answer and edit-and-resend a user turn (`regenerate`, `say`
// with `replaces`): the model sees the new branch only, also after a restart;
// the log keeps every event (a `rewind` says from where they stopped
// counting); stale or wrong requests are refused and change nothing. And the
// usage of a turn with tool rounds adds up to every billed call.
import assert from 'node:assert/strict';
import { connect, fakeTarget, itest, openSession, sayAndWait, waitState, writeRoutesFile } from './harness.mjs';
import { scriptToolRounds, useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const env = { FAKE_KEY: 'k' };
const PRICE = { prompt_per_mtok: 1000, completion_per_mtok: 2000 };

function routes(P) {
  return writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] }, prices: { 'gpt-4o-mini': PRICE } });
}

/** What each model call was shown: its non-system messages as "role:text". */
const shown = (P) =>
  fp
    .requests({ prefix: P })
    .map((r) => r.body.messages.filter((m) => m.role !== 'system').map((m) => `${m.role}:${m.content}`));

const ends = (c, session) => c.sessionEvents(session).filter((e) => e.type === 'message.end');

itest('chat: edit and regenerate rewind what the model sees, across a restart', async ({ startServer }) => {
  const P = 'regen-chat';
  fp.script(['A', 'B', 'B2', 'B3', 'C'].map((text) => ({ text, match: { prefix: P } })));
  const srv = await startServer({ args: ['--routes', routes(P)], env });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'chat');
  await sayAndWait(c, session, 'one', 'u1');
  const two = await sayAndWait(c, session, 'two', 'u2');

  // Edit "two": the conversation goes back to before it, "deux" is said.
  const edit = await sayAndWait(c, session, 'deux', 'u3', 10_000, { replaces: two.user.message_id });
  const rewind = c.sessionEvents(session).find((e) => e.type === 'rewind');
  assert.deepEqual([rewind.message_id, rewind.reason], [two.user.message_id, 'edit']);
  assert.ok(rewind.seq < edit.user.seq);
  assert.deepEqual(shown(P)[2], ['user:one', 'assistant:A', 'user:deux']);

  // Regenerate the last answer: the same user turn, answered anew.
  const last = ends(c, session).at(-1);
  assert.equal(last.text, 'B2');
  await c.ok({ type: 'regenerate', session, message_id: last.message_id });
  await waitState(c, session, 'idle', last.seq + 1, 10_000);
  assert.deepEqual(shown(P)[3], ['user:one', 'assistant:A', 'user:deux']);
  assert.equal(ends(c, session).at(-1).text, 'B3');

  // Refused, changing nothing: the superseded message again, a user message
  // to regenerate, an assistant message to edit, an unknown one.
  const head = c.maxSeq(session);
  for (const [req, code] of [
    [{ type: 'regenerate', session, message_id: last.message_id }, 'not_found'],
    [{ type: 'regenerate', session, message_id: edit.user.message_id }, 'bad_request'],
    [{ type: 'say', session, text: 'x', replaces: ends(c, session).at(-1).message_id }, 'bad_request'],
    [{ type: 'say', session, text: 'x', replaces: 'm_nope' }, 'not_found'],
  ]) {
    const r = await c.request(req);
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, code, JSON.stringify(r));
  }

  // The log kept every event: all five answers' message.end are there.
  assert.deepEqual(
    ends(c, session).map((e) => e.text),
    ['A', 'B', 'B2', 'B3'],
  );
  assert.equal(c.maxSeq(session), head);

  // After a restart the transcript is the new branch.
  await srv.stop();
  await srv.restart();
  const c2 = await connect(srv.port, { hello: true });
  await c2.ok({ type: 'session.attach', session, after: head });
  await sayAndWait(c2, session, 'three', 'u4');
  assert.deepEqual(shown(P)[4], ['user:one', 'assistant:A', 'user:deux', 'assistant:B3', 'user:three']);
  // A fresh view from a snapshot holds the new branch only.
  const c3 = await connect(srv.port, { hello: true });
  await c3.ok({ type: 'session.attach', session, after: 1e9 });
  const snap = await c3.waitEvent((e) => e.type === 'snapshot');
  assert.deepEqual(
    snap.transcript.map((t) => t.text),
    ['one', 'A', 'deux', 'B3', 'three', 'C'],
  );
  // Its totals keep the superseded answers' calls: they were billed.
  const billed = [...ends(c, session), ...ends(c2, session)].reduce((n, e) => n + e.usage.prompt_tokens, 0);
  assert.equal(ends(c, session).length + ends(c2, session).length, 5);
  assert.equal(snap.usage.prompt_tokens, billed);
});

itest('echo: regenerate streams the turn again; an edit is applied once per client_msg_id', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'echo');
  const first = await sayAndWait(c, session, 'hello there', 'e1');
  const answer = ends(c, session).at(-1);
  await c.ok({ type: 'regenerate', session, message_id: answer.message_id });
  await waitState(c, session, 'idle', answer.seq + 1, 5000);
  const again = ends(c, session).at(-1);
  assert.notEqual(again.message_id, answer.message_id);
  assert.equal(again.text, 'hello there');

  const edit = { type: 'say', session, text: 'bye now', client_msg_id: 'e2', replaces: first.user.message_id };
  await c.ok(edit);
  await waitState(c, session, 'idle', again.seq + 1, 5000);
  const dup = await c.ok(edit);
  assert.equal(dup.duplicate, true);
  assert.equal(c.sessionEvents(session).filter((e) => e.type === 'rewind').length, 2);
  assert.equal(ends(c, session).at(-1).text, 'bye now');
});

itest('a turn with tool rounds: the usage reported adds up to every billed call', async ({ startServer }) => {
  const P = 'regen-usage';
  const usage = { prompt_tokens: 100, completion_tokens: 10 };
  const agents = scriptToolRounds(fp, P, usage);
  const srv = await startServer({ args: ['--routes', routes(P), '--agents', agents], env });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'helper');
  await sayAndWait(c, session, 'six times seven, twice', 'u1');
  assert.equal(fp.requests({ prefix: P }).length, 3);
  const e = ends(c, session);
  assert.equal(e.length, 1, JSON.stringify(e));
  const u = e[0].usage;
  assert.equal(u.calls, 3);
  assert.equal(u.prompt_tokens, 300);
  assert.equal(u.completion_tokens, 30);
  // Three calls of 100 prompt and 10 completion tokens at $1000 and $2000 per million.
  assert.ok(Math.abs(u.cost_usd - 3 * (100 * 0.001 + 10 * 0.002)) < 1e-9, JSON.stringify(u));
  // A view rebuilt from a snapshot gets the same totals.
  const c2 = await connect(srv.port, { hello: true });
  await c2.ok({ type: 'session.attach', session, after: 1e9 });
  const snap = await c2.waitEvent((e) => e.type === 'snapshot');
  assert.equal(snap.usage.prompt_tokens, 300);
  assert.equal(snap.usage.completion_tokens, 30);
  assert.ok(Math.abs(snap.usage.cost_usd - u.cost_usd) < 1e-9, JSON.stringify(snap.usage));
});

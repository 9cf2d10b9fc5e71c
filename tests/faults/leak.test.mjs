// Leak check: a representative workload (echo turns, a question, an approval,
// a cancel, resume, bad input, a chat turn and the gateway endpoint through
// the fake provider), then SIGTERM: exit code 0 and no LeakSanitizer report.
// Meaningful with the ASan build (the default for this suite, detect_leaks=1).
import './env.mjs';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import {
  connect,
  fakeTarget,
  httpRequest,
  openSession,
  sayAndWait,
  sleep,
  waitState,
  writeRoutesFile,
} from '../integration/harness.mjs';
import { isSanitized, sanitizerReport } from './lib.mjs';
import { itest } from '../integration/harness.mjs';

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

itest(
  'representative workload, SIGTERM: exit code 0, no LeakSanitizer report',
  async ({ startServer }) => {
    if (!isSanitized()) console.log('# leak check: not an ASan build, only the exit code is checked');
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'leak')] } });
    const srv = await startServer({ args: ['--routes', routes, '--echo-delay-ms', '1'], env: { FAKE_KEY: 'k' } });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c);
    for (let i = 0; i < 5; i++) await sayAndWait(c, session, `turn ${i} with some words`, `m${i}`);
    await c.ok({ type: 'say', session, text: 'ask', client_msg_id: 'q' });
    const q = await c.waitEvent((e) => e.type === 'question');
    await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
    await waitState(c, session, 'idle', q.seq);
    await c.ok({ type: 'say', session, text: 'plan', client_msg_id: 'p' });
    const a = await c.waitEvent((e) => e.type === 'approval');
    await c.ok({ type: 'decide', session, approval_id: a.approval_id, decision: 'revise', comment: 'more' });
    const a2 = await c.waitEvent((e) => e.type === 'approval' && e.seq > a.seq);
    await c.ok({ type: 'decide', session, approval_id: a2.approval_id, decision: 'approve' });
    await waitState(c, session, 'idle', a2.seq);
    await c.ok({
      type: 'say',
      session,
      text: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' '),
      client_msg_id: 'cx',
    });
    await c.waitEvent((e) => e.type === 'delta' && e.seq > a2.seq + 5);
    await c.ok({ type: 'cancel', session });
    for (const raw of ['nope', '{"type":"x"}', '[[[[[[', '{"type":"say","session":5}']) c.sendRaw(raw);
    await c.ping();
    const chat = await openSession(c, 'chat', { input: {} });
    await sayAndWait(c, chat.session, 'hello model', 'ch1');
    const g = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
      body: { model: 'default', messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.ok(g.status === 200 || g.status === 401, `gateway ${g.status}`);
    const c2 = await connect(srv.port, { hello: true });
    await c2.ok({ type: 'session.attach', session, after: 0 });
    await c.terminate(); // abrupt drop, the server must free that socket too
    await sleep(200);
    await srv.stop({ timeoutMs: 15_000 }); // requires exit code 0
    const rep = sanitizerReport(srv.output);
    assert.equal(rep, null, `sanitizer report:\n${rep}`);
    assert.ok(!srv.output.includes('LeakSanitizer'), srv.tail());
  },
  { timeout: 60_000 },
);

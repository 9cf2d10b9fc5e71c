// AG-UI's own client (@ag-ui/client HttpAgent) against the real binary:
// POST /v1/ag-ui with a RunAgentInput answers with AG-UI events over SSE, each
// with `id: <seq>`; a POST with Last-Event-ID replays exactly after it.

import assert from 'node:assert/strict';
import { HttpAgent } from '@ag-ui/client';
import { fakeTarget, httpRequest, itest, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

/** Parse an SSE body into [{id, data}]. */
function sseEvents(text) {
  return text
    .split('\n\n')
    .filter((b) => b.includes('data: '))
    .map((b) => ({
      id: Number(/^id: (\d+)$/m.exec(b)?.[1] ?? 0),
      data: JSON.parse(/^data: (.*)$/m.exec(b)[1]),
    }));
}

itest('AG-UI HttpAgent: a streamed answer from the chat agent and the fake provider', async ({ startServer }) => {
  const P = 'agui-basic';
  fp.script({ tokens: ['Hi', ' from', ' AG', '-UI'], token_delay_ms: 20, match: { prefix: P } });
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'fake-key-1' } });
  const agent = new HttpAgent({ url: `http://127.0.0.1:${srv.port}/v1/ag-ui`, threadId: 'threadA1' });
  agent.addMessage({ id: 'u1', role: 'user', content: 'hello agent' });
  const seen = [];
  const { newMessages } = await agent.runAgent(
    { runId: 'run1' },
    {
      onEvent({ event }) {
        seen.push(event.type);
      },
    },
  );
  assert.equal(seen[0], 'RUN_STARTED');
  assert.equal(seen.at(-1), 'RUN_FINISHED');
  assert.ok(seen.includes('TEXT_MESSAGE_CONTENT'), seen.join(','));
  const reply = newMessages.find((m) => m.role === 'assistant');
  assert.equal(reply.content, 'Hi from AG-UI');
  assert.ok(JSON.stringify(fp.requests({ prefix: P })[0].body.messages).includes('hello agent'));
});

itest(
  'AG-UI over SSE: ids are seqs, a replay after Last-Event-ID is exact, bad input is refused',
  async ({ startServer }) => {
    const srv = await startServer();
    const input = (msgs) => ({ threadId: 'threadB1', runId: 'r1', messages: msgs, tools: [], context: [], state: {} });
    const words = Array.from({ length: 12 }, (_, i) => `x${i}`).join(' ');
    const first = await httpRequest(srv.port, 'POST', '/v1/ag-ui?agent=echo', {
      headers: { accept: 'text/event-stream' },
      body: input([{ id: 'u1', role: 'user', content: words }]),
    });
    assert.equal(first.status, 200);
    assert.match(first.headers['content-type'], /text\/event-stream/);
    const evs = sseEvents(first.body);
    assert.equal(evs[0].data.type, 'RUN_STARTED');
    assert.equal(evs.at(-1).data.type, 'RUN_FINISHED');
    const text = evs
      .filter((e) => e.data.type === 'TEXT_MESSAGE_CONTENT')
      .map((e) => e.data.delta)
      .join('');
    assert.equal(text.trim(), words);
    const ids = evs.map((e) => e.id).filter((x) => x > 0);
    assert.ok(
      ids.every((x, i) => i === 0 || x >= ids[i - 1]),
      `ids never go back: ${ids}`,
    );
    // Replay after the third content event: only what follows, the message re-opened.
    const cut = evs.filter((e) => e.data.type === 'TEXT_MESSAGE_CONTENT')[2];
    const again = await httpRequest(srv.port, 'POST', '/v1/ag-ui', {
      headers: { 'last-event-id': String(cut.id) },
      body: input([]),
    });
    const rest = sseEvents(again.body);
    assert.equal(rest[0].data.type, 'RUN_STARTED');
    assert.equal(rest[1].data.type, 'TEXT_MESSAGE_START');
    const before = evs.filter((e) => e.data.type === 'TEXT_MESSAGE_CONTENT' && e.id <= cut.id);
    const after2 = rest.filter((e) => e.data.type === 'TEXT_MESSAGE_CONTENT');
    assert.ok(after2.every((e) => e.id > cut.id));
    assert.equal([...before, ...after2].map((e) => e.data.delta).join(''), text);
    assert.equal(rest.at(-1).data.type, 'RUN_FINISHED');
    // A resume at the end: nothing runs, the run is reported finished at once.
    const end = await httpRequest(srv.port, 'POST', '/v1/ag-ui', {
      headers: { 'last-event-id': String(ids.at(-1)) },
      body: input([]),
    });
    assert.deepEqual(
      sseEvents(end.body).map((e) => e.data.type),
      ['RUN_STARTED', 'STATE_SNAPSHOT', 'RUN_FINISHED'],
    );
    // Bad input changes nothing.
    let r = await httpRequest(srv.port, 'POST', '/v1/ag-ui', { body: { threadId: 'a b', runId: 'r', messages: [] } });
    assert.equal(r.status, 400);
    r = await httpRequest(srv.port, 'POST', '/v1/ag-ui', {
      body: input([{ id: 'a1', role: 'assistant', content: 'x' }]),
    });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /the user's/);
  },
);

itest(
  "AG-UI HttpAgent: an approval and a question are interrupts, answered with the client's resume entries",
  async ({ startServer }) => {
    const srv = await startServer();
    const agent = new HttpAgent({ url: `http://127.0.0.1:${srv.port}/v1/ag-ui?agent=echo`, threadId: 'threadC1' });
    const run = async (params) => {
      const events = [];
      await agent.runAgent(params, {
        onEvent({ event }) {
          events.push(event);
        },
      });
      return events;
    };
    agent.addMessage({ id: 'u1', role: 'user', content: 'plan' });
    let evs = await run({ runId: 'r1' });
    let fin = evs.at(-1);
    assert.equal(fin.type, 'RUN_FINISHED');
    assert.equal(fin.outcome.type, 'interrupt', JSON.stringify(fin));
    const approval = fin.outcome.interrupts[0];
    assert.equal(approval.reason, 'approval');
    assert.match(approval.id, /^a_/);
    evs = await run({
      runId: 'r2',
      resume: [{ interruptId: approval.id, status: 'resolved', payload: { approved: true } }],
    });
    assert.equal(evs.at(-1).type, 'RUN_FINISHED');
    assert.equal(evs.at(-1).outcome?.type ?? 'success', 'success', JSON.stringify(evs.at(-1)));
    // A question: its value is the payload.
    agent.addMessage({ id: 'u2', role: 'user', content: 'ask' });
    evs = await run({ runId: 'r3' });
    fin = evs.at(-1);
    const question = fin.outcome.interrupts[0];
    assert.equal(question.reason, 'input_required');
    assert.deepEqual(question.metadata.choices, ['yes', 'no']);
    evs = await run({ runId: 'r4', resume: [{ interruptId: question.id, status: 'resolved', payload: 'yes' }] });
    assert.equal(evs.at(-1).type, 'RUN_FINISHED');
    assert.notEqual(evs.at(-1).outcome?.type, 'interrupt');
    // The same answer again: the interrupt is no longer open.
    const again = await httpRequest(srv.port, 'POST', '/v1/ag-ui', {
      body: {
        threadId: 'threadC1',
        runId: 'r5',
        messages: [],
        resume: [{ interruptId: question.id, status: 'resolved', payload: 'yes' }],
      },
    });
    assert.ok(again.status === 409 || again.status === 404, again.body);
  },
);

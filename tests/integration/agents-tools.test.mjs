// Assistants configured from a file, calling tools: the model/tool loop over
// a real socket against the fake provider — arguments validated before any
// execution, HTTP tools with a secret header, and the round limit.

import assert from 'node:assert/strict';
import { writeFileSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import {
  checkMessages,
  connect,
  fakeTarget,
  itest,
  openSession,
  shownText,
  waitState,
  writeRoutesFile,
} from './harness.mjs';

let fp, toolServer, toolPort;
const toolRequests = [];
before(async () => {
  fp = await startFakeProvider();
  toolServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      toolRequests.push({ headers: req.headers, body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ city: 'Oslo', temperature_c: 4 }));
    });
  });
  await new Promise((r) => toolServer.listen(0, '127.0.0.1', r));
  toolPort = toolServer.address().port;
});
after(async () => {
  await fp?.close();
  toolServer?.close();
});

function files(P, rounds = 2) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-tools-'));
  const tools = path.join(dir, 'tools.json');
  writeFileSync(
    tools,
    JSON.stringify({
      tools: [
        {
          name: 'weather',
          description: 'Weather in a city',
          parameters: {
            type: 'object',
            properties: { city: { type: 'string', minLength: 1 } },
            required: ['city'],
            additionalProperties: false,
          },
          url: `http://127.0.0.1:${toolPort}/weather`,
          timeout_ms: 2000,
          secret_header: 'X-Api-Key',
          secret_env: 'WEATHER_KEY',
        },
      ],
    }),
  );
  const agents = path.join(dir, 'agents.json');
  writeFileSync(
    agents,
    JSON.stringify({
      agents: [
        {
          name: 'helper',
          description: 'Helps with numbers and weather',
          tools: ['calculate', 'weather'],
          max_tool_rounds: rounds,
        },
      ],
    }),
  );
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] } });
  return ['--routes', routes, '--tools', tools, '--agents', agents];
}

const env = { FAKE_KEY: 'k', WEATHER_KEY: 'sekrit' };

itest(
  "tool-call fragments are grouped by the provider's index, wherever it starts (here at 1)",
  async ({ startServer }) => {
    const P = 't-index1';
    fp.script([
      {
        tool_calls: [{ id: 'c1', name: 'calculate', arguments: '{"expression":"6*7"}' }],
        split_args: 3,
        tool_index_base: 1,
        match: { prefix: P },
      },
      { text: 'The answer is 42.', match: { prefix: P } },
    ]);
    const srv = await startServer({ args: files(P), env });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'helper');
    await c.ok({ type: 'say', session, text: 'what is six times seven?' });
    await waitState(c, session, 'idle', 2, 10000);
    const evs = c.sessionEvents(session);
    const calls = evs.filter((e) => e.type === 'tool.call');
    assert.equal(calls.length, 1, JSON.stringify(calls));
    assert.equal(calls[0].name, 'calculate');
    const results = evs.filter((e) => e.type === 'tool.result');
    assert.equal(results.length, 1, JSON.stringify(results));
    assert.equal(results[0].result.result, 42);
  },
);

itest(
  'an assistant from the agents file calls a built-in tool, then answers with its result',
  async ({ startServer }) => {
    const P = 't-calc';
    fp.script([
      {
        tool_calls: [{ id: 'c1', name: 'calculate', arguments: '{"expression":"6*7"}' }],
        split_args: 3,
        match: { prefix: P },
      },
      { text: 'The answer is 42.', match: { prefix: P } },
    ]);
    const srv = await startServer({ args: files(P), env });
    const c = await connect(srv.port, { hello: true });
    assert.ok(c.welcome.agents.includes('helper'), JSON.stringify(c.welcome));
    const { session } = await openSession(c, 'helper');
    await c.ok({ type: 'say', session, text: 'what is six times seven?' });
    await waitState(c, session, 'idle', 2, 10000);
    const evs = c.sessionEvents(session);
    checkMessages(assert, evs);
    const call = evs.find((e) => e.type === 'tool.call');
    assert.equal(call.name, 'calculate');
    assert.deepEqual(call.args, { expression: '6*7' });
    const result = evs.find((e) => e.type === 'tool.result');
    assert.equal(result.call_id, call.call_id);
    assert.equal(result.ok, true);
    assert.equal(result.result.result, 42);
    assert.match(shownText(evs), /The answer is 42/);
    const reqs = fp.requests({ prefix: P });
    assert.equal(reqs.length, 2);
    assert.ok(reqs[0].body.tools.some((t) => t.function.name === 'calculate'));
    const toolMsg = reqs[1].body.messages.find((m) => m.role === 'tool');
    assert.equal(toolMsg.tool_call_id, 'c1');
    assert.match(toolMsg.content, /42/);
  },
);

itest('invalid tool arguments go back to the model as an error and the tool never runs', async ({ startServer }) => {
  const P = 't-invalid';
  const before = toolRequests.length;
  fp.script([
    { tool_calls: [{ id: 'w1', name: 'weather', arguments: '{"town":"Oslo"}' }], match: { prefix: P } },
    { text: 'Sorry, I could not get the weather.', match: { prefix: P } },
  ]);
  const srv = await startServer({ args: files(P), env });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'helper');
  await c.ok({ type: 'say', session, text: 'weather?' });
  await waitState(c, session, 'idle', 2, 10000);
  const result = c.sessionEvents(session).find((e) => e.type === 'tool.result');
  assert.equal(result.ok, false);
  assert.match(result.error, /invalid arguments, not executed/);
  assert.equal(toolRequests.length, before, 'the HTTP tool was not called');
  const toolMsg = fp.requests({ prefix: P })[1].body.messages.find((m) => m.role === 'tool');
  assert.match(toolMsg.content, /invalid arguments/);
});

itest(
  'an HTTP tool is called through libcurl with its secret header, its JSON result shown',
  async ({ startServer }) => {
    const P = 't-http';
    fp.script([
      { tool_calls: [{ id: 'w2', name: 'weather', arguments: '{"city":"Oslo"}' }], match: { prefix: P } },
      { text: 'It is 4 degrees in Oslo.', match: { prefix: P } },
    ]);
    const srv = await startServer({ args: files(P), env });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'helper');
    await c.ok({ type: 'say', session, text: 'weather in Oslo?' });
    await waitState(c, session, 'idle', 2, 10000);
    const result = c.sessionEvents(session).find((e) => e.type === 'tool.result');
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.result.temperature_c, 4);
    const req = toolRequests.at(-1);
    assert.equal(req.headers['x-api-key'], 'sekrit');
    assert.deepEqual(req.body, { city: 'Oslo' });
    assert.ok(!srv.output.includes('sekrit'), 'the secret never reaches the log');
  },
);

itest('the last allowed round offers no tools, so the turn ends in text', async ({ startServer }) => {
  const P = 't-rounds';
  fp.script([
    { tool_calls: [{ id: 'a', name: 'calculate', arguments: '{"expression":"1+1"}' }], match: { prefix: P } },
    { text: 'Two.', match: { prefix: P } },
  ]);
  const srv = await startServer({ args: files(P, 1), env });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'helper');
  await c.ok({ type: 'say', session, text: '1+1?' });
  await waitState(c, session, 'idle', 2, 10000);
  const reqs = fp.requests({ prefix: P });
  assert.equal(reqs.length, 2);
  assert.ok(reqs[0].body.tools?.length > 0);
  assert.ok(!reqs[1].body.tools || reqs[1].body.tools.length === 0, 'no tools in the last round');
});

itest('a bad agents file stops the start-up with a message naming the problem', async ({ startServer }) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-badagents-'));
  const agents = path.join(dir, 'agents.json');
  writeFileSync(agents, JSON.stringify({ agents: [{ name: 'x', tools: ['rm_rf'] }] }));
  await assert.rejects(startServer({ args: ['--agents', agents] }));
});

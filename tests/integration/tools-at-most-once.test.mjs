// HTTP tools act at most once across kill -9. The call's intent is committed
// before the request leaves, every request carries an Idempotency-Key stable
// across restarts, and a call cut short by a crash is not re-sent silently:
// it is reported as "may have run", unless the tools file declares the tool
// "idempotent", and then it is sent again with the same key. Over real
// sockets, against the fake provider and a loopback counting tool server
// that holds the first request of each path open, so the kill lands while
// the call is in flight.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { connect, fakeTarget, itest, openSession, sleep, waitState, writeRoutesFile } from './harness.mjs';

let fp, toolServer, toolPort;
const seen = {}; // path -> [{key, body}] of every request that reached it
const held = new Set(); // paths whose first request was held open
const arrived = []; // resolvers waiting for a request
before(async () => {
  fp = await startFakeProvider();
  toolServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      (seen[req.url] ??= []).push({ key: req.headers['idempotency-key'], body: JSON.parse(body) });
      for (const r of arrived.splice(0)) r();
      if (!held.has(req.url)) {
        held.add(req.url); // the first one never answers: the server dies under it
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ done: true }));
    });
  });
  await new Promise((r) => toolServer.listen(0, '127.0.0.1', r));
  toolPort = toolServer.address().port;
});
after(async () => {
  await fp?.close();
  toolServer?.closeAllConnections();
  toolServer?.close();
});

/** A tools file with the one tool named, and an assistant that may call it. */
function files(P, tool) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-once-'));
  const params = {
    type: 'object',
    additionalProperties: false,
    properties: { amount: { type: 'integer' } },
    required: ['amount'],
  };
  const defs = {
    pay: { name: 'pay', description: 'Pay', url: `http://127.0.0.1:${toolPort}/${P}/pay`, timeout_ms: 60000 },
    put_record: {
      name: 'put_record',
      description: 'Store a record (safe to repeat)',
      url: `http://127.0.0.1:${toolPort}/${P}/put`,
      method: 'PUT',
      timeout_ms: 60000,
      idempotent: true,
    },
  };
  const tools = path.join(dir, 'tools.json');
  writeFileSync(tools, JSON.stringify({ tools: [{ ...defs[tool], parameters: params }] }));
  const agents = path.join(dir, 'agents.json');
  writeFileSync(
    agents,
    JSON.stringify({ agents: [{ name: 'payer', description: 'Pays', tools: [tool], max_tool_rounds: 3 }] }),
  );
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] } });
  return ['--routes', routes, '--tools', tools, '--agents', agents];
}

/** The model calls `tool` once, then ends in text; the server is killed while the call is held open. */
async function crashMidCall(startServer, P, tool) {
  fp.script([
    { tool_calls: [{ id: 'c1', name: tool, arguments: '{"amount":42}' }], match: { prefix: P } },
    { text: 'Done.', match: { prefix: P } },
  ]);
  const key = `/${P}/${tool === 'pay' ? 'pay' : 'put'}`;
  const srv = await startServer({ args: files(P, tool), env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'payer');
  const reached = new Promise((r) => arrived.push(r));
  await c.ok({ type: 'say', session, text: `${P} do it` });
  await Promise.race([reached, sleep(10000)]);
  assert.equal(seen[key]?.length, 1, 'the call reached the tool');
  await srv.kill9();
  await srv.restart();
  const c2 = await connect(srv.port, { hello: true });
  const att = await c2.ok({ type: 'session.attach', session, after: 0 });
  await c2.waitEvent((e) => e.session === session && e.seq >= att.head); // the replay has arrived
  const call = c2.sessionEvents(session).find((e) => e.type === 'tool.call' && e.call_id === 'c1');
  assert.ok(call, 'the call was shown before the crash');
  await waitState(c2, session, 'idle', call.seq, 15000);
  await sleep(300);
  const result = c2.sessionEvents(session).find((e) => e.type === 'tool.result' && e.call_id === 'c1');
  return { srv, requests: seen[key], result, toModel: fp.requests({ prefix: P }) };
}

itest(
  'kill -9 while a non-idempotent HTTP tool is in flight: it is not sent again and is reported as "may have run"',
  async ({ startServer }) => {
    const { srv, requests, result, toModel } = await crashMidCall(startServer, 'once-pay', 'pay');
    assert.equal(requests.length, 1, 'the counting server saw exactly one call');
    assert.match(requests[0].key, /^tk_[0-9a-f]{32}$/, 'an Idempotency-Key was sent');
    assert.deepEqual(requests[0].body, { amount: 42 });
    assert.equal(result.ok, false);
    assert.equal(result.may_have_run, true);
    assert.match(result.error, /may have run/);
    // The model is told too, and answered after the restart.
    const last = toModel.at(-1).body.messages.find((m) => m.role === 'tool');
    assert.match(last.content, /may have run/);
    await srv.stop();
  },
);

itest(
  'kill -9 while an idempotent HTTP tool is in flight: it is sent again with the same Idempotency-Key',
  async ({ startServer }) => {
    const { srv, requests, result } = await crashMidCall(startServer, 'once-put', 'put_record');
    assert.equal(requests.length, 2, 'sent again after the restart');
    assert.match(requests[0].key, /^tk_[0-9a-f]{32}$/);
    assert.equal(requests[1].key, requests[0].key, 'the same key on the retry');
    assert.deepEqual(requests[1].body, requests[0].body);
    assert.equal(result.ok, true);
    assert.equal(result.may_have_run, undefined);
    assert.deepEqual(result.result, { done: true });
    await srv.stop();
  },
);

itest('two calls with the same model id in one session get different Idempotency-Keys', async ({ startServer }) => {
  const P = 'once-keys';
  const step = { tool_calls: [{ id: 'same', name: 'pay', arguments: '{"amount":1}' }], match: { prefix: P } };
  fp.script([step, { text: 'a', match: { prefix: P } }, step, { text: 'b', match: { prefix: P } }]);
  held.add(`/${P}/pay`); // answer every request at once
  const srv = await startServer({ args: files(P, 'pay'), env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'payer');
  for (const text of [`${P} one`, `${P} two`]) {
    const before = c.maxSeq(session);
    await c.ok({ type: 'say', session, text });
    await waitState(c, session, 'idle', before + 1, 10000);
  }
  const keys = seen[`/${P}/pay`].map((r) => r.key);
  assert.equal(keys.length, 2);
  assert.notEqual(keys[0], keys[1]);
  await srv.stop();
});

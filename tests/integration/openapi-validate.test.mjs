// The HTTP half of the contract check (openapi-validate.mjs): the validator
// refuses answers off protocol/openapi.yaml (a wrong body, an undeclared
// status or content type, a bad SSE event, [DONE] where none is declared),
// and the harness records a wrong answer seen through each of its HTTP
// paths (httpRequest, postFresh, fetch) so itest fails the test it came in;
// a real server's answers pass.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { httpRequest, itest, postFresh } from './harness.mjs';
import {
  answersChecked,
  httpSchemaError,
  offSpecAnswers,
  pathTemplate,
  sseEvents,
  tetherPorts,
} from './openapi-validate.mjs';

const json = (method, path, status, body) => ({
  method,
  path,
  status,
  contentType: 'application/json',
  body: JSON.stringify(body),
});
const sse = (path, events, method = 'POST') => ({
  method,
  path,
  status: 200,
  contentType: 'text/event-stream',
  body: events.map((e) => `id: 1\ndata: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join(''),
});

test('the validator accepts answers as declared and refuses every kind of mismatch', () => {
  const token = { token: 'x.y.z', expires_at: 1, user: 'ann', tenant: 't' };
  assert.equal(httpSchemaError(json('POST', '/v1/tokens', 200, token)), null);
  // A wrong body: a field missing, a field of the wrong type.
  let e = httpSchemaError(json('POST', '/v1/tokens', 200, { ...token, tenant: undefined }));
  assert.match(e, /POST \/v1\/tokens 200.*required property 'tenant'/);
  e = httpSchemaError(json('POST', '/v1/tokens', 200, { ...token, expires_at: 'soon' }));
  assert.match(e, /\/expires_at must be integer/);
  // An error body not in the Error shape; the gateway's must be OpenAI's.
  assert.match(httpSchemaError(json('POST', '/v1/tokens', 400, { error: 'bad' })), /\/error must be object/);
  const wire = { error: { code: 'bad_request', message: 'm' } };
  assert.equal(httpSchemaError(json('POST', '/v1/tokens', 400, wire)), null);
  assert.match(httpSchemaError(json('GET', '/v1/models', 401, wire)), /required property 'type'/);
  // Not JSON, an undeclared status, an undeclared content type, an undeclared method.
  assert.match(
    httpSchemaError({ method: 'POST', path: '/v1/tokens', status: 200, contentType: 'application/json', body: '{' }),
    /not JSON/,
  );
  assert.match(httpSchemaError(json('POST', '/v1/tokens', 418, wire)), /status 418 is not declared/);
  assert.match(
    httpSchemaError({ ...json('POST', '/v1/tokens', 200, token), contentType: 'text/html' }),
    /content type text\/html is not declared/,
  );
  assert.match(httpSchemaError(json('DELETE', '/v1/tokens', 200, {})), /has no delete operation/);
  // The promised ones: 405 for GET where POST is the path's, 404 for other
  // methods and unknown paths (an HTML page for a GET), 429 on /v1/, OPTIONS.
  assert.equal(httpSchemaError(json('GET', '/v1/tokens', 405, wire)), null);
  assert.equal(httpSchemaError(json('DELETE', '/v1/tokens', 404, wire)), null);
  assert.match(httpSchemaError(json('DELETE', '/v1/tokens', 405, wire)), /status 405 is not declared/);
  assert.equal(httpSchemaError(json('GET', '/v1/nope', 404, wire)), null);
  const page = { method: 'GET', path: '/v1/nope', status: 404, contentType: 'text/html', body: '<p>no</p>' };
  assert.equal(httpSchemaError(page), null);
  const preflight = { method: 'OPTIONS', path: '/v1/tokens', status: 204, contentType: '', body: '' };
  assert.equal(httpSchemaError(preflight), null);
  assert.match(httpSchemaError({ ...preflight, body: 'x' }), /a body .* where none is declared/);
  assert.equal(httpSchemaError(json('POST', '/v1/tokens', 429, wire)), null);
  assert.match(httpSchemaError(json('GET', '/healthz', 429, wire)), /status 429 is not declared/);
  // Text checked against a string schema; an empty body where content is declared.
  const text = (body) => ({ method: 'GET', path: '/healthz', status: 200, contentType: 'text/plain', body });
  assert.equal(httpSchemaError(text('ok\n')), null);
  assert.match(httpSchemaError(text('fine\n')), /must be equal to constant/);
  assert.match(httpSchemaError(text('')), /an empty body/);
  // Templated paths.
  assert.equal(pathTemplate('/v1/ai-sdk/chat/c1/stream?after=3'), '/v1/ai-sdk/chat/{id}/stream');
  assert.equal(pathTemplate('/v1/ai-sdk/chat/c1/other'), null);
});

test('SSE streams: every complete event checked against x-sse-data; [DONE] only where declared', () => {
  const ui = [{ type: 'start' }, { type: 'text-start', id: 'm' }, { type: 'text-delta', id: 'm', delta: 'hi' }];
  assert.equal(httpSchemaError(sse('/v1/ai-sdk/chat', [...ui, '[DONE]'])), null);
  // A declared header, when the answer's headers are given.
  const v1 = { 'x-vercel-ai-ui-message-stream': 'v1' };
  assert.equal(httpSchemaError({ ...sse('/v1/ai-sdk/chat', ui), headers: v1 }), null);
  assert.match(httpSchemaError({ ...sse('/v1/ai-sdk/chat', ui), headers: {} }), /header .* is required/);
  const v2 = { 'x-vercel-ai-ui-message-stream': 'v2' };
  assert.match(httpSchemaError({ ...sse('/v1/ai-sdk/chat', ui), headers: v2 }), /header .*: v2: .*constant/);
  assert.match(
    httpSchemaError(sse('/v1/ai-sdk/chat', [{ type: 'text-delta', id: 'm' }])),
    /x-sse-data.*required property 'delta'/,
  );
  assert.match(httpSchemaError(sse('/v1/ai-sdk/chat', [{ type: 'tool-call' }])), /x-sse-data/);
  assert.equal(httpSchemaError(sse('/v1/ai-sdk/chat', [{ type: 'data-tether-question', data: {} }])), null);
  assert.match(httpSchemaError(sse('/v1/ai-sdk/chat', ['{"type":'])), /not JSON/);
  const run = { type: 'RUN_STARTED', threadId: 't', runId: 'r' };
  assert.equal(httpSchemaError(sse('/v1/ag-ui', [run])), null);
  assert.match(httpSchemaError(sse('/v1/ag-ui', [run, '[DONE]'])), /does not declare x-sse-done/);
  assert.match(httpSchemaError(sse('/v1/ag-ui', [{ ...run, runId: undefined }])), /required property 'runId'/);
  const chunk = { id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [] };
  assert.equal(httpSchemaError(sse('/v1/chat/completions', [chunk, '[DONE]'])), null);
  assert.match(httpSchemaError(sse('/v1/chat/completions', [{ ...chunk, object: 'chat.completion' }])), /x-sse-data/);
  // An event cut off by a dropped connection is not an event.
  assert.deepEqual(
    sseEvents('id: 1\ndata: {"a":1}\n\ndata: {"b"').map((e) => e.data),
    ['{"a":1}'],
  );
});

test('the harness records a wrong answer seen through httpRequest, postFresh and fetch', async () => {
  const wrong = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: 42 })); // /v1/tokens answered off the document
  });
  await new Promise((r) => wrong.listen(0, '127.0.0.1', r));
  const { port } = wrong.address();
  const before = offSpecAnswers.length;
  try {
    await httpRequest(port, 'POST', '/v1/tokens', { body: { user: 'ann' } });
    assert.equal(offSpecAnswers.length, before, 'a port the harness did not start is not checked');
    tetherPorts.add(port); // as if the harness had started a server there
    await httpRequest(port, 'POST', '/v1/tokens', { body: { user: 'ann' } });
    await postFresh(port, '/v1/tokens', { user: 'ann' });
    const r = await fetch(`http://127.0.0.1:${port}/v1/tokens`, { method: 'POST', body: '{"user":"ann"}' });
    assert.deepEqual(await r.json(), { token: 42 }, 'the caller still gets the body');
    const mine = offSpecAnswers.slice(before);
    assert.equal(mine.length, 3, JSON.stringify(mine));
    for (const m of mine) assert.match(m, /POST \/v1\/tokens 200.*\/token must be string/);
  } finally {
    offSpecAnswers.splice(before); // this test's own, on purpose
    tetherPorts.delete(port);
    await new Promise((r) => wrong.close(r));
  }
});

itest('a real server: its answers pass, and the checks saw them', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'k1'] });
  const before = offSpecAnswers.length;
  const checked = answersChecked.n;
  const auth = { authorization: 'Bearer k1' };
  assert.equal((await httpRequest(srv.port, 'GET', '/healthz')).status, 200);
  assert.equal(
    (await httpRequest(srv.port, 'POST', '/v1/tokens', { headers: auth, body: { user: 'ann' } })).status,
    200,
  );
  assert.equal((await httpRequest(srv.port, 'POST', '/v1/tokens', { headers: auth, body: {} })).status, 400);
  assert.equal((await httpRequest(srv.port, 'POST', '/v1/tokens', { body: { user: 'ann' } })).status, 401);
  const r = await fetch(`${srv.url}/v1/ai-sdk/chat?agent=echo`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'oa1', messages: [{ id: 'u', role: 'user', parts: [{ type: 'text', text: 'hi' }] }] }),
  });
  assert.match(await r.text(), /"type":"finish"/);
  assert.deepEqual(offSpecAnswers.slice(before), []);
  assert.equal(answersChecked.n - checked, 5, 'four through httpRequest, one through fetch');
});

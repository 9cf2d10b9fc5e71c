// The passage route a citation links to (GET /v1/documents/{id}?position=N),
// and the documents routes taking the web page's token as well as an API
// key: per tenant, a clear 400/404, and agent_info naming the collection of
// an assistant given the retrieve tool.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, httpRequest, itest, mintViaApi } from './harness.mjs';
import { twoTenants } from './llm-lib.mjs';

const { KEY_A, KEY_B, keyArgs } = twoTenants('passage');
const auth = (key) => ({ authorization: `Bearer ${key}` });
const get = (srv, key, p) => httpRequest(srv.port, 'GET', p, { headers: auth(key) });

const PARAS = Array.from(
  { length: 12 },
  (_, i) => `Paragraph ${i} of the travel policy says receipts numbered ${i * 7} are refunded in ${i + 2} days.`,
);

itest('a passage by document id and position, per tenant, with a key or a token', async ({ startServer }) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-passage-'));
  const agents = path.join(dir, 'agents.json');
  writeFileSync(
    agents,
    JSON.stringify({
      agents: [
        { name: 'librarian', description: 'Answers from the handbook', tools: ['retrieve'], collection: 'handbook' },
        { name: 'helper', description: 'No documents', tools: ['calculate'] },
      ],
    }),
  );
  const srv = await startServer({ args: ['--retrieval-route', 'none', '--agents', agents, ...keyArgs] });
  const r = await httpRequest(srv.port, 'POST', '/v1/documents', {
    headers: auth(KEY_A),
    body: {
      collection: 'handbook',
      title: 'Travel',
      type: 'text',
      content: PARAS.join('\n\n'),
      chunk_tokens: 32,
      chunk_overlap: 0,
    },
  });
  assert.equal(r.status, 201, r.body);
  const id = r.json.id;
  assert.ok(r.json.chunks >= 3, `several chunks: ${r.json.chunks}`);

  const p0 = await get(srv, KEY_A, `/v1/documents/${id}?collection=handbook&position=0`);
  assert.equal(p0.status, 200, p0.body);
  assert.equal(p0.json.document_id, id);
  assert.equal(p0.json.title, 'Travel');
  assert.equal(p0.json.collection, 'handbook');
  assert.equal(p0.json.position, 0);
  assert.equal(p0.json.chunks, r.json.chunks);
  assert.match(p0.json.text, /^Paragraph 0 of the travel policy/);
  const last = r.json.chunks - 1;
  const pl = await get(srv, KEY_A, `/v1/documents/${id}?collection=handbook&position=${last}`);
  assert.equal(pl.status, 200);
  assert.match(pl.json.text, /Paragraph 11 /);
  assert.doesNotMatch(pl.json.text, /Paragraph 0 /);

  // a token minted from the key reads the same tenant's passage, lists and deletes
  const token = await mintViaApi(srv.port, KEY_A, 'alice');
  const pt = await get(srv, token, `/v1/documents/${id}?collection=handbook&position=${last}`);
  assert.equal(pt.status, 200, pt.body);
  assert.equal(pt.json.text, pl.json.text);
  assert.deepEqual(
    (await get(srv, token, '/v1/documents?collection=handbook')).json.documents.map((d) => d.title),
    ['Travel'],
  );

  // the other tenant, by key or token, never sees it
  assert.equal((await get(srv, KEY_B, `/v1/documents/${id}?collection=handbook&position=0`)).status, 404);
  const tokenB = await mintViaApi(srv.port, KEY_B, 'bob');
  assert.equal((await get(srv, tokenB, `/v1/documents/${id}?collection=handbook&position=0`)).status, 404);
  assert.deepEqual((await get(srv, tokenB, '/v1/documents')).json.documents, []);

  // bad input: a clear error, nothing changed
  for (const [q, status, re] of [
    [`/v1/documents/${id}?collection=handbook`, 400, /position/],
    [`/v1/documents/${id}?collection=handbook&position=-1`, 400, /position/],
    [`/v1/documents/${id}?collection=handbook&position=1x`, 400, /position/],
    [`/v1/documents/${id}?collection=handbook&position=99999999999`, 400, /position/],
    [`/v1/documents/${id}?collection=handbook&position=${last + 1}`, 404, /no such document or position/],
    [`/v1/documents/${id}?position=0`, 404, /no such document/],
    ['/v1/documents/d_nope?collection=handbook&position=0', 404, /no such document/],
    [`/v1/documents/${id}?collection=bad%07name&position=0`, 400, /usable name/],
  ]) {
    const a = await get(srv, KEY_A, q);
    assert.equal(a.status, status, `${q}: ${a.body}`);
    assert.match(a.json.error.message, re, q);
  }
  assert.equal((await get(srv, 'not-a-key-or-token', `/v1/documents/${id}?position=0`)).status, 401);
  assert.equal((await httpRequest(srv.port, 'GET', `/v1/documents/${id}?position=0`)).status, 401);

  // agent_info names the collection of the assistant with the retrieve tool only
  const c = await connect(srv.port, { token });
  const info = c.welcome.agent_info;
  assert.equal(info.find((a) => a.name === 'librarian').collection, 'handbook');
  assert.equal(info.find((a) => a.name === 'helper').collection, undefined);
  assert.equal(info.find((a) => a.name === 'echo').collection, undefined);

  // deleted with the token: the passage is gone
  const d = await httpRequest(srv.port, 'DELETE', `/v1/documents/${id}?collection=handbook`, { headers: auth(token) });
  assert.equal(d.status, 200, d.body);
  assert.equal((await get(srv, KEY_A, `/v1/documents/${id}?collection=handbook&position=0`)).status, 404);
});

// Embeddings calls are model calls too: retrieval's (a document's chunks
// at ingestion, a search's query, an assistant's retrieve tool) and the
// gateway's POST /v1/embeddings each reach the cost ledger with their
// attribution, and /v1/usage sums equal the fake provider's own counts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import {
  connect,
  fakeTarget,
  httpGet,
  httpRequest,
  itest,
  mintViaApi,
  openSession,
  sleep,
  waitState,
  writeRoutesFile,
} from './harness.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider({ dims: 64 });
const { KEY_A, KEY_B, keyArgs } = twoTenants('embusage');
const EMBED_MODEL = 'text-embedding-3-small';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-embusage-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const auth = (key, extra = {}) => ({ authorization: `Bearer ${key}`, ...extra });
const usage = (srv, key, q) => httpGet(srv.port, `/v1/usage${q}`, { headers: auth(key) });

/** The fake provider's embeddings requests of prefix and the tokens it counted (its rule: words). */
function providerEmbeds(P) {
  const reqs = fp.requests({ prefix: `${P}-embed` });
  let tokens = 0;
  for (const r of reqs) {
    const inputs = Array.isArray(r.body.input) ? r.body.input : [r.body.input];
    for (const t of inputs) tokens += Math.max(1, t.split(/\s+/).filter(Boolean).length);
  }
  return { calls: reqs.length, tokens };
}

itest(
  'embeddings of retrieval and of the gateway are in the ledger, attributed, equal to the provider counts',
  async ({ startServer }) => {
    const P = 'embusage';
    const agents = path.join(dir, 'agents.json');
    writeFileSync(
      agents,
      JSON.stringify({
        agents: [
          {
            name: 'librarian',
            description: 'Answers from the handbook',
            tools: ['retrieve'],
            collection: 'handbook',
            min_similarity: 0,
            feature: 'handbook-qa',
          },
        ],
      }),
    );
    const routes = writeRoutesFile({
      routes: {
        default: [fakeTarget(fp.url, P)],
        embed: [fakeTarget(fp.url, `${P}-embed`, { model: EMBED_MODEL })],
      },
      prices: { [EMBED_MODEL]: { prompt_per_mtok: 1000, completion_per_mtok: 0 } },
      retry: { max_attempts: 1 },
    });
    const srv = await startServer({
      args: [
        '--routes',
        routes,
        '--retrieval-route',
        'embed',
        '--agents',
        agents,
        '--usage-flush-ms',
        '50',
        ...keyArgs,
      ],
      env: { FAKE_KEY: 'fake-key' },
    });

    // Ingestion and a search over HTTP: feature and agent "documents".
    const doc = {
      collection: 'handbook',
      title: 'Leave',
      type: 'text',
      content: 'Staff get twenty five days of leave.',
    };
    const ing = await httpRequest(srv.port, 'POST', '/v1/documents', { headers: auth(KEY_A), body: doc });
    assert.equal(ing.status, 201, ing.body);
    const s = await httpRequest(srv.port, 'POST', '/v1/documents/search', {
      headers: auth(KEY_A),
      body: { query: 'days of leave', collection: 'handbook' },
    });
    assert.equal(s.status, 200, s.body);
    const afterHttp = providerEmbeds(P);
    assert.equal(afterHttp.calls, 2, 'one batch of chunks, one query');

    // The retrieve tool of an assistant: the session's attribution.
    fp.script([
      {
        tool_calls: [{ id: 'r1', name: 'retrieve', arguments: '{"query":"annual leave"}' }],
        match: { prefix: P, path: '/v1/chat/completions' },
      },
      { text: 'Twenty five days.', match: { prefix: P, path: '/v1/chat/completions' } },
    ]);
    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
    const { session } = await openSession(c, 'librarian');
    await c.ok({ type: 'say', session, text: 'How much leave?' });
    await waitState(c, session, 'idle', 2, 15000);
    c.close();

    // The gateway's /v1/embeddings: its key, user and feature headers.
    const g = await httpRequest(srv.port, 'POST', '/v1/embeddings', {
      headers: auth(KEY_A, { 'x-tether-feature': 'vectors', 'x-tether-user': 'bob' }),
      body: { model: 'embed', input: ['one two three', 'four'] },
    });
    assert.equal(g.status, 200, g.body);
    await sleep(150);

    const all = providerEmbeds(P);
    assert.equal(all.calls, 4);
    const byModel = await usage(srv, KEY_A, '?group_by=model');
    const em = byModel.json.groups.find((x) => x.model === EMBED_MODEL);
    assert.ok(em, byModel.body);
    assert.equal(em.calls, all.calls, 'one ledger row per embeddings call');
    assert.equal(em.prompt_tokens, all.tokens, 'the tokens the provider counted');
    assert.equal(em.completion_tokens, 0);
    assert.ok(Math.abs(em.cost_usd - all.tokens * 0.001) < 1e-9, byModel.body);

    const byFeature = await usage(srv, KEY_A, '?group_by=feature');
    const f = Object.fromEntries(byFeature.json.groups.map((x) => [x.feature, x.calls]));
    assert.equal(f.documents, 2, byFeature.body); // ingestion + search over HTTP
    assert.equal(f.vectors, 1, byFeature.body); // the gateway's
    assert.equal(f['handbook-qa'], 3, byFeature.body); // two chat calls + the retrieve query's embedding
    const byUser = await usage(srv, KEY_A, '?group_by=user');
    const users = Object.fromEntries(byUser.json.groups.map((x) => [x.user, x.calls]));
    assert.equal(users.alice, 3, byUser.body);
    assert.equal(users.bob, 1, byUser.body);
    // Nothing of it is another tenant's.
    assert.equal((await usage(srv, KEY_B, '?group_by=model')).json.groups.length, 0);
  },
  { timeout: 40_000 },
);

// Documents with PostgreSQL as the shared index (issue 17, --database-url):
// two nodes sharing one database, each with its own LMDB. A document ingested
// on node A is found, with its title and position, by a search on node B;
// its citation's passage is read on B too; a delete on B removes it for A; a
// re-ingest on B replaces it for A; another tenant sees nothing on either
// node; the rows in PostgreSQL say the same.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  checkMessages,
  connect,
  fakeTarget,
  httpRequest,
  itest,
  mintViaApi,
  openSession,
  shownText,
  waitState,
  writeRoutesFile,
} from './harness.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';
import { destroyAllPostgres, pgAvailable, startPostgres } from './pg-lib.mjs';

const skip = pgAvailable ? false : 'PostgreSQL (postgresql-15) is not installed';
let pg;
before(async () => {
  if (!skip) pg = await startPostgres();
});
after(destroyAllPostgres);

const fp = useFakeProvider({ dims: 256 });
const { KEY_A, KEY_B, keyArgs } = twoTenants('docspg');
const dbName = (url) => url.slice(url.lastIndexOf('/') + 1);

async function node(startServer, P, url, args = []) {
  const routes = writeRoutesFile({
    routes: {
      default: [fakeTarget(fp.url, P)],
      embed: [fakeTarget(fp.url, `${P}-embed`, { model: 'text-embedding-3-small' })],
    },
    retry: { max_attempts: 1 },
  });
  return startServer({
    args: ['--routes', routes, '--retrieval-route', 'embed', '--database-url', url, ...keyArgs, ...args],
    env: { FAKE_KEY: 'fake-key' },
  });
}

const auth = (key) => ({ authorization: `Bearer ${key}` });
const ingest = (srv, key, body) => httpRequest(srv.port, 'POST', '/v1/documents', { headers: auth(key), body });
const search = (srv, key, body) => httpRequest(srv.port, 'POST', '/v1/documents/search', { headers: auth(key), body });
const list = (srv, key, q = '') => httpRequest(srv.port, 'GET', `/v1/documents${q}`, { headers: auth(key) });
const passage = (srv, key, id, q) =>
  httpRequest(srv.port, 'GET', `/v1/documents/${encodeURIComponent(id)}${q}`, { headers: auth(key) });
const del = (srv, key, id, q = '') =>
  httpRequest(srv.port, 'DELETE', `/v1/documents/${encodeURIComponent(id)}${q}`, { headers: auth(key) });

const DOCS = {
  'Annual leave':
    'Every employee receives twenty five days of annual leave each calendar year.\n\n' +
    'Unused annual leave days may be carried over until the end of March.',
  'Travel expenses':
    'Travel expenses are refunded within thirty days when receipts are attached.\n\n' +
    'Economy class flights are booked for journeys under six hours.',
  'Laptop security':
    'Company laptops use full disk encryption and lock after five idle minutes.\n\n' +
    'Report a lost or stolen laptop to the security desk immediately.',
};

const titles = (r) => r.json.hits.map((h) => h.title);

itest(
  'PostgreSQL index: ingest on A is found on B with title and position; tenant isolation; re-ingest on B replaces for A; delete on B removes for A',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const P = 'docs-pg';
    const a = await node(startServer, P, url);
    const b = await node(startServer, P, url);
    const ids = {};
    for (const [title, content] of Object.entries(DOCS)) {
      const r = await ingest(a, KEY_A, {
        collection: 'hr',
        title,
        type: 'text',
        content,
        chunk_tokens: 16,
        chunk_overlap: 0,
      });
      assert.equal(r.status, 201, r.body);
      assert.equal(r.json.replaced, false);
      assert.ok(r.json.chunks >= 2, `${title}: ${r.json.chunks} chunks`);
      ids[title] = r.json.id;
    }
    const rows = await pg.query(
      `SELECT document, count(*), count(embedding), bool_and(tsv <> ''::tsvector) FROM rag_chunks
       WHERE tenant = 'acme' AND collection = 'hr' GROUP BY document ORDER BY document`,
      dbName(url),
    );
    assert.equal(rows.length, 3, JSON.stringify(rows));
    for (const [, n, withVec, tsv] of rows) {
      assert.equal(n, withVec, 'every chunk has its embedding');
      assert.equal(tsv, 't');
    }

    // node B never saw the ingest: its search reads PostgreSQL
    const r = await search(b, KEY_A, {
      query: 'what to do with a stolen laptop',
      collection: 'hr',
      min_similarity: 0.1,
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(titles(r)[0], 'Laptop security', titles(r).join(' | '));
    const best = r.json.hits[0];
    assert.equal(best.document_id, ids['Laptop security']);
    assert.equal(best.collection, 'hr');
    assert.equal(typeof best.position, 'number');
    assert.match(best.text, /stolen laptop/);
    assert.ok(best.cosine > 0.1, 'the vector list found it');
    assert.ok(best.bm25 > 0, 'the keyword list found it');
    assert.ok(best.position >= 1, 'the second paragraph (a later chunk) holds "stolen"');
    const leave = await search(b, KEY_A, {
      query: 'annual leave days carried over',
      collection: 'hr',
      min_similarity: 0.1,
    });
    assert.equal(titles(leave)[0], 'Annual leave');
    // keyword only (the floor keeps every vector out) still finds by words
    const kw = await search(b, KEY_A, { query: 'receipts', collection: 'hr', min_similarity: 1 });
    assert.deepEqual(titles(kw), ['Travel expenses']);
    assert.equal(kw.json.hits[0].cosine, null);
    assert.equal((await list(b, KEY_A, '?collection=hr')).json.documents.length, 3);

    // tenant isolation, on both nodes
    for (const n of [a, b]) {
      const other = await search(n, KEY_B, { query: 'stolen laptop', collection: 'hr', min_similarity: 0 });
      assert.equal(other.status, 200);
      assert.deepEqual(other.json.hits, []);
      assert.deepEqual((await list(n, KEY_B)).json.documents, []);
      assert.equal((await del(n, KEY_B, ids['Laptop security'], '?collection=hr')).status, 404);
    }
    // a citation's passage, read on B (which never saw the ingest): PostgreSQL's
    const cite = await passage(b, KEY_A, best.document_id, `?position=${best.position}&collection=hr`);
    assert.equal(cite.status, 200, cite.body);
    assert.equal(cite.json.document_id, ids['Laptop security']);
    assert.equal(cite.json.title, 'Laptop security');
    assert.equal(cite.json.collection, 'hr');
    assert.equal(cite.json.position, best.position);
    assert.equal(cite.json.text, best.text);
    assert.match(cite.json.text, /stolen laptop/);
    assert.ok(cite.json.chunks >= 2, JSON.stringify(cite.json));
    assert.ok(Number.isInteger(cite.json.tokens) && cite.json.tokens > 0, JSON.stringify(cite.json));
    const first = await passage(b, KEY_A, best.document_id, '?position=0&collection=hr');
    assert.equal(first.status, 200, first.body);
    assert.match(first.json.text, /full disk encryption/);
    assert.equal((await passage(b, KEY_A, best.document_id, '?position=0')).status, 404, 'not in "default"');
    assert.equal((await passage(b, KEY_A, best.document_id, '?position=99&collection=hr')).status, 404);
    assert.equal((await passage(b, KEY_A, 'no-such-doc', '?position=0&collection=hr')).status, 404);
    assert.equal((await passage(b, KEY_A, best.document_id, '?position=-1&collection=hr')).status, 400);
    assert.equal((await passage(b, KEY_A, best.document_id, '?position=x&collection=hr')).status, 400);
    assert.equal((await passage(b, KEY_A, best.document_id, '?collection=hr')).status, 400);
    for (const n of [a, b]) {
      const other = await passage(n, KEY_B, best.document_id, `?position=${best.position}&collection=hr`);
      assert.equal(other.status, 404, 'another tenant never reads it');
      assert.equal(other.json.error.code, 'not_found');
    }
    // tenant B's own document of the same title stays B's
    const mine = await ingest(b, KEY_B, {
      collection: 'hr',
      title: 'Laptop security',
      type: 'text',
      content: 'Tenant B laptops are rented.',
    });
    assert.equal(mine.status, 201, mine.body);
    assert.equal(mine.json.replaced, false);
    const aStill = await search(a, KEY_A, { query: 'rented laptops', collection: 'hr', min_similarity: 0 });
    assert.ok(!aStill.json.hits.some((h) => /rented/.test(h.text)), 'A never sees B');

    // re-ingest on B replaces the document for A
    const re = await ingest(b, KEY_A, {
      collection: 'hr',
      title: 'Annual leave',
      type: 'text',
      content: 'Annual leave is now thirty days. Sabbaticals of three months open after five years.',
    });
    assert.equal(re.status, 201, re.body);
    assert.equal(re.json.id, ids['Annual leave']);
    assert.equal(re.json.replaced, true, 'PostgreSQL had it (B had not)');
    assert.equal(re.json.chunks, 1);
    const sab = await search(a, KEY_A, { query: 'sabbaticals', collection: 'hr', min_similarity: 0 });
    assert.equal(titles(sab)[0], 'Annual leave');
    const old = await search(a, KEY_A, { query: 'carried over until March', collection: 'hr', min_similarity: 0 });
    assert.ok(!old.json.hits.some((h) => /March/.test(h.text)), 'the old chunks are gone for A');
    const leaveRows = await pg.value(
      `SELECT count(*) FROM rag_chunks WHERE tenant = 'acme' AND document = '${ids['Annual leave']}'`,
      dbName(url),
    );
    assert.equal(leaveRows, '1');

    // delete on B removes the document for A
    const d = await del(b, KEY_A, ids['Laptop security'], '?collection=hr');
    assert.equal(d.status, 200, d.body);
    assert.equal((await passage(a, KEY_A, ids['Laptop security'], '?position=0&collection=hr')).status, 404);
    assert.equal(d.json.deleted, true);
    const gone = await search(a, KEY_A, { query: 'stolen laptop', collection: 'hr', min_similarity: 0 });
    assert.ok(!gone.json.hits.some((h) => h.title === 'Laptop security'), titles(gone).join(' | '));
    assert.deepEqual((await list(a, KEY_A, '?collection=hr')).json.documents.map((x) => x.title).sort(), [
      'Annual leave',
      'Travel expenses',
    ]);
    assert.equal((await del(a, KEY_A, ids['Laptop security'], '?collection=hr')).status, 404);
    assert.equal(
      await pg.value(
        `SELECT count(*) FROM rag_chunks WHERE document = '${ids['Laptop security']}' AND tenant = 'acme'`,
        dbName(url),
      ),
      '0',
    );
    // B's own tenant document is untouched by A's delete
    assert.equal((await list(a, KEY_B)).json.documents.length, 1);
  },
  { skip, timeout: 60_000 },
);

itest(
  'PostgreSQL index: with the database stopped, ingest, search, list and passage answer 503 and change nothing',
  async ({ startServer }) => {
    const solo = await startPostgres();
    const P = 'docs-pg-down';
    const a = await node(startServer, P, solo.url);
    const ok = await ingest(a, KEY_A, { title: 'Kept', type: 'text', content: 'Kept document about gardens.' });
    assert.equal(ok.status, 201, ok.body);
    await solo.stop();
    const r = await ingest(a, KEY_A, { title: 'Lost', type: 'text', content: 'A document about rivers.' });
    assert.equal(r.status, 503, r.body);
    assert.equal(r.json.error.code, 'unavailable');
    const s = await search(a, KEY_A, { query: 'gardens', min_similarity: 0 });
    assert.equal(s.status, 503, s.body);
    assert.equal((await list(a, KEY_A)).status, 503);
    const p = await passage(a, KEY_A, ok.json.id, '?position=0');
    assert.equal(p.status, 503, "not an answer from this node's LMDB copy: " + p.body);
    assert.equal(p.json.error.code, 'unavailable');
    await solo.start();
    let docs;
    for (let i = 0; i < 100; i++) {
      const l = await list(a, KEY_A);
      if (l.status === 200) {
        docs = l.json.documents;
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.deepEqual(
      docs.map((x) => x.title),
      ['Kept'],
      'the refused document was not written',
    );
    const back = await passage(a, KEY_A, ok.json.id, '?position=0');
    assert.equal(back.status, 200, back.body);
    assert.match(back.json.text, /gardens/);
  },
  { skip, timeout: 60_000 },
);

itest(
  'PostgreSQL index: an assistant on node B answers from a document ingested on node A and cites it in message.end',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const P = 'docs-pg-cite';
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-docs-pg-'));
    const agents = path.join(dir, 'agents.json');
    writeFileSync(
      agents,
      JSON.stringify({
        agents: [
          {
            name: 'librarian',
            description: 'Answers from the handbook',
            tools: ['retrieve'],
            collection: 'hr',
            top_k: 3,
            min_similarity: 0.1,
          },
        ],
      }),
    );
    try {
      const a = await node(startServer, P, url, ['--agents', agents]);
      const b = await node(startServer, P, url, ['--agents', agents]);
      for (const [title, content] of Object.entries(DOCS)) {
        const r = await ingest(a, KEY_A, { collection: 'hr', title, type: 'text', content });
        assert.equal(r.status, 201, r.body);
      }
      fp.script([
        {
          tool_calls: [{ id: 'r1', name: 'retrieve', arguments: '{"query":"stolen laptop"}' }],
          match: { prefix: P, path: '/v1/chat/completions' },
        },
        {
          text: 'Report it to the security desk [Laptop security].',
          match: { prefix: P, path: '/v1/chat/completions' },
        },
      ]);
      const token = await mintViaApi(b.port, KEY_A, 'alice');
      const c = await connect(b.port, { token });
      const { session } = await openSession(c, 'librarian');
      await c.ok({ type: 'say', session, text: 'My laptop was stolen, what now?' });
      await waitState(c, session, 'idle', 2, 15000);
      const evs = c.sessionEvents(session);
      checkMessages(assert, evs);
      const result = evs.find((e) => e.type === 'tool.result');
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.equal(result.result.passages[0].title, 'Laptop security');
      const end = evs.filter((e) => e.type === 'message.end').at(-1);
      assert.equal(end.text, 'Report it to the security desk [Laptop security].');
      assert.ok(Array.isArray(end.citations) && end.citations.length >= 1, JSON.stringify(end));
      assert.equal(end.citations[0].title, 'Laptop security');
      assert.equal(end.citations[0].collection, 'hr');
      assert.equal(typeof end.citations[0].position, 'number');
      assert.match(end.citations[0].document_id, /^d_[0-9a-f]{16}$/);
      c.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  { skip, timeout: 60_000 },
);

itest(
  "PostgreSQL index: the document analyst on node B names the tenant's most similar documents ingested on node A, never another tenant's",
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const P = 'docs-pg-sim';
    const a = await node(startServer, P, url);
    const b = await node(startServer, P, url);
    for (const [title, content] of Object.entries(DOCS)) {
      const r = await ingest(a, KEY_A, { collection: 'hr', title, type: 'text', content });
      assert.equal(r.status, 201, r.body);
    }
    const theirs = await ingest(a, KEY_B, {
      title: 'Umbrella laptops',
      type: 'text',
      content: 'Report a lost or stolen laptop to the security desk immediately.',
    });
    assert.equal(theirs.status, 201, theirs.body);
    const emb = await pg.value(
      `SELECT array_length(embedding, 1) FROM rag_documents WHERE tenant = 'acme' AND title = 'Laptop security'`,
      dbName(url),
    );
    assert.equal(emb, '256', "the document's mean vector is stored");
    fp.script([
      { text: '- security', match: { prefix: P, path: '/v1/chat/completions' } },
      { text: JSON.stringify({ tags: ['laptops'] }), match: { prefix: P, path: '/v1/chat/completions' } },
      { text: 'About lost laptops.', match: { prefix: P, path: '/v1/chat/completions' } },
    ]);
    const c = await connect(b.port, { token: await mintViaApi(b.port, KEY_A, 'alice') });
    const { session } = await openSession(c, 'doc-analyst', {
      input: {
        document: 'Company laptops use disk encryption. Report a lost or stolen laptop to the security desk.',
        format: 'text',
      },
      metadata: { title: 'Memo' },
    });
    const done = await waitState(c, session, 'done', 0, 15000);
    const text = shownText(c.sessionEvents(session).filter((e) => e.seq <= done.seq));
    const m = /Similar documents: (.*)/.exec(text);
    assert.ok(m, text);
    const named = [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]);
    assert.equal(named[0], 'Laptop security', m[1]);
    assert.ok(!named.includes('Umbrella laptops'), 'never another tenant');
    c.close();
  },
  { skip, timeout: 60_000 },
);

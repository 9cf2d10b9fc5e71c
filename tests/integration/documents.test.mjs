// Documents and retrieval (issue 17) over real sockets, against the fake
// provider's hashed bag-of-words embeddings: ingest -> search with a small
// labelled ranking set (recall@5 printed), tenant isolation, re-ingest
// replaces, delete removes, embeddings in batches, a real PDF (written here,
// read by poppler's pdftotext) and an HTML page, bad files refused with a
// clear error.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
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
  waitState,
  writeRoutesFile,
} from './harness.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider({ dims: 256 });

const { KEY_A, KEY_B, keyArgs } = twoTenants('docs');

async function server(startServer, P, args = []) {
  const routes = writeRoutesFile({
    routes: {
      default: [fakeTarget(fp.url, P)],
      embed: [fakeTarget(fp.url, `${P}-embed`, { model: 'text-embedding-3-small' })],
    },
    retry: { max_attempts: 1 },
  });
  return startServer({
    args: ['--routes', routes, '--retrieval-route', 'embed', ...keyArgs, ...args],
    env: { FAKE_KEY: 'fake-key' },
  });
}

const auth = (key) => ({ authorization: `Bearer ${key}` });
const ingest = (srv, key, body) => httpRequest(srv.port, 'POST', '/v1/documents', { headers: auth(key), body });
const search = (srv, key, body) => httpRequest(srv.port, 'POST', '/v1/documents/search', { headers: auth(key), body });
const list = (srv, key, q = '') => httpRequest(srv.port, 'GET', `/v1/documents${q}`, { headers: auth(key) });
const del = (srv, key, id, q = '') =>
  httpRequest(srv.port, 'DELETE', `/v1/documents/${encodeURIComponent(id)}${q}`, { headers: auth(key) });

// A labelled set: each document is about one thing, each query names its
// relevant document. Paragraphs are long enough for several chunks each.
const CORPUS = {
  'Annual leave': [
    'Every employee receives twenty five days of annual leave each calendar year.',
    'Unused annual leave days may be carried over until the end of March.',
    'Annual leave requests go to your manager at least two weeks ahead.',
  ],
  'Travel expenses': [
    'Travel expenses are refunded within thirty days when receipts are attached.',
    'Economy class flights are booked for journeys under six hours.',
    'Hotel costs above the city limit need approval from finance.',
  ],
  'Laptop security': [
    'Company laptops use full disk encryption and lock after five idle minutes.',
    'Report a lost or stolen laptop to the security desk immediately.',
    'Install software only from the approved catalogue on your laptop.',
  ],
  'Parental benefits': [
    'Parents receive sixteen weeks of paid parental leave after a birth or adoption.',
    'Childcare vouchers are offered to parents of children under twelve.',
    'Flexible hours help parents during the first year back at work.',
  ],
  'Office parking': [
    'The garage under the office has two hundred parking spaces.',
    'Parking permits are renewed every January through the facilities portal.',
    'Electric car chargers are free for staff in the parking garage.',
  ],
  'Pension plan': [
    'The company pension plan matches contributions up to six percent of salary.',
    'Pension contributions vest fully after two years of employment.',
    'You can change your pension fund choice once every quarter.',
  ],
  'Quarterly revenue': [
    'Quarterly revenue grew by twelve percent driven by subscriptions.',
    'Operating margin improved while revenue from hardware declined.',
    'The revenue forecast for next quarter assumes stable churn.',
  ],
  'Incident response': [
    'During an outage the incident commander opens a war room channel.',
    'Every incident gets a blameless postmortem within five working days.',
    'Severity one incidents page the on call engineer at any hour.',
  ],
};

const QUERIES = [
  ['how many days of annual leave do I get', 'Annual leave'],
  ['when are travel receipts refunded', 'Travel expenses'],
  ['what to do with a stolen laptop', 'Laptop security'],
  ['paid parental leave weeks after adoption', 'Parental benefits'],
  ['renew my parking permit', 'Office parking'],
  ['does the pension plan match my contributions', 'Pension plan'],
  ['how did revenue grow this quarter', 'Quarterly revenue'],
  ['postmortem after an incident', 'Incident response'],
];

const markdown = (title, paras) => `# ${title}\n\n${paras.join('\n\n')}\n`;

itest(
  'ingest, hybrid search with recall@5 on a labelled set, tenant isolation, re-ingest replaces, delete removes',
  async ({ startServer }) => {
    const P = 'docs-rank';
    const srv = await server(startServer, P);
    const ids = {};
    for (const [title, paras] of Object.entries(CORPUS)) {
      const r = await ingest(srv, KEY_A, {
        collection: 'handbook',
        title,
        type: 'markdown',
        content: markdown(title, paras),
        chunk_tokens: 24,
        chunk_overlap: 6,
      });
      assert.equal(r.status, 201, r.body);
      assert.equal(r.json.title, title);
      assert.equal(r.json.collection, 'handbook');
      assert.equal(r.json.replaced, false);
      assert.equal(r.json.dims, 256, 'embedded by the route');
      assert.ok(r.json.chunks >= 2, `${title}: ${r.json.chunks} chunks`);
      assert.match(r.json.id, /^d_[0-9a-f]{16}$/);
      ids[title] = r.json.id;
    }
    // embeddings were asked in batches (one call per document here), never per chunk
    const embedCalls = fp.requests({ prefix: `${P}-embed` });
    assert.equal(embedCalls.length, Object.keys(CORPUS).length);
    assert.ok(embedCalls.every((c) => Array.isArray(c.body.input) && c.body.input.length >= 2));

    let found = 0;
    for (const [query, want] of QUERIES) {
      const r = await search(srv, KEY_A, { query, collection: 'handbook', min_similarity: 0.1 });
      assert.equal(r.status, 200, r.body);
      assert.ok(r.json.hits.length <= 5);
      const titles = r.json.hits.map((h) => h.title);
      if (titles.includes(want)) found++;
      for (const h of r.json.hits) {
        assert.equal(typeof h.text, 'string');
        assert.equal(typeof h.position, 'number');
        assert.equal(h.collection, 'handbook');
      }
      // the best hit is the relevant document: keyword and vector lists agree
      assert.equal(titles[0], want, `${query}: ${titles.join(' | ')}`);
    }
    const recall = found / QUERIES.length;
    console.log(`# recall@5 on ${QUERIES.length} labelled queries: ${recall.toFixed(3)}`);
    assert.equal(recall, 1);

    // the default floor (0.7) keeps weak vector matches out
    const strict = await search(srv, KEY_A, { query: 'zebra crossing', collection: 'handbook' });
    assert.equal(strict.status, 200);
    assert.deepEqual(strict.json.hits, []);

    // tenant isolation: the other tenant sees nothing, deletes nothing
    const other = await search(srv, KEY_B, { query: QUERIES[0][0], collection: 'handbook', min_similarity: 0 });
    assert.equal(other.status, 200);
    assert.deepEqual(other.json.hits, []);
    assert.deepEqual((await list(srv, KEY_B)).json.documents, []);
    assert.equal((await del(srv, KEY_B, ids['Annual leave'], '?collection=handbook')).status, 404);
    assert.equal((await list(srv, KEY_A, '?collection=handbook')).json.documents.length, 8);
    assert.equal((await list(srv, KEY_A, '?collection=other')).json.documents.length, 0);

    // re-ingest under the same title replaces the document's chunks
    const re = await ingest(srv, KEY_A, {
      collection: 'handbook',
      title: 'Annual leave',
      type: 'text',
      content: 'Annual leave is now thirty days. Sabbaticals of three months open after five years.',
    });
    assert.equal(re.status, 201, re.body);
    assert.equal(re.json.id, ids['Annual leave']);
    assert.equal(re.json.replaced, true);
    assert.equal(re.json.chunks, 1);
    const sab = await search(srv, KEY_A, { query: 'sabbaticals', collection: 'handbook', min_similarity: 0 });
    assert.equal(sab.json.hits[0].title, 'Annual leave');
    const old = await search(srv, KEY_A, { query: 'carried over until March', collection: 'handbook' });
    assert.ok(!old.json.hits.some((h) => h.title === 'Annual leave'), 'the old chunks are gone');
    assert.equal((await list(srv, KEY_A, '?collection=handbook')).json.documents.length, 8);

    // delete removes it from the list and from search
    const d = await del(srv, KEY_A, ids['Quarterly revenue'], '?collection=handbook');
    assert.equal(d.status, 200, d.body);
    assert.equal(d.json.deleted, true);
    const gone = await search(srv, KEY_A, { query: 'quarterly revenue', collection: 'handbook', min_similarity: 0 });
    assert.ok(!gone.json.hits.some((h) => h.title === 'Quarterly revenue'));
    assert.equal((await list(srv, KEY_A, '?collection=handbook')).json.documents.length, 7);
    assert.equal((await del(srv, KEY_A, ids['Quarterly revenue'], '?collection=handbook')).status, 404);

    // /metrics counts what happened: 9 documents stored, every search answered, one index cached
    const m = (await httpRequest(srv.port, 'GET', '/metrics')).body;
    const value = (name) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m)?.[1]);
    assert.equal(value('tether_documents_ingested_total'), 9);
    assert.equal(value('tether_document_ingest_failures_total'), 0);
    assert.equal(value('tether_retrieval_searches_total'), QUERIES.length + 5);
    assert.equal(value('tether_retrieval_embedding_calls_total'), 9 + QUERIES.length + 5);
    assert.ok(value('tether_retrieval_indexes') >= 1 && value('tether_retrieval_index_bytes') > 0);
  },
  { timeout: 60_000 },
);

/** A one-page PDF whose page draws `lines` in Helvetica, offsets computed. */
function makePdf(lines) {
  const esc = (s) => s.replace(/[\\()]/g, (c) => `\\${c}`);
  const stream = `BT /F1 12 Tf 72 720 Td 14 TL ${lines.map((l) => `(${esc(l)}) '`).join(' ')} ET`;
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objs.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

itest(
  'a real PDF and an HTML page are read; bad files are refused with a clear error and change nothing',
  async ({ startServer }) => {
    const srv = await server(startServer, 'docs-files', ['--max-document-bytes', '65536']);
    const pdf = makePdf(['Quarterly revenue grew by twelve percent.', 'Margins widened in the north region.']);
    let r = await ingest(srv, KEY_A, { title: 'Q3 report', type: 'pdf', content_base64: pdf.toString('base64') });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.type, 'pdf');
    assert.equal(r.json.collection, 'default');
    let s = await search(srv, KEY_A, { query: 'twelve percent revenue', min_similarity: 0 });
    assert.equal(s.json.hits[0].title, 'Q3 report');
    assert.match(s.json.hits[0].text, /Quarterly revenue grew by twelve percent\.\s+Margins widened/);

    const html =
      '<!doctype html><html><head><title>Cafeteria</title><style>.menu{color:red}</style>' +
      '<script>var secretword = "pineapple";</script></head><body><h1>Menu &amp; hours</h1>' +
      '<p>Soup is served from noon&nbsp;until two.</p><!-- hidden lasagna --></body></html>';
    r = await ingest(srv, KEY_A, { title: 'Cafeteria', type: 'html', content: html });
    assert.equal(r.status, 201, r.body);
    s = await search(srv, KEY_A, { query: 'soup served noon', min_similarity: 0 });
    assert.equal(s.json.hits[0].title, 'Cafeteria');
    assert.equal(s.json.hits[0].text, 'Cafeteria\n\n# Menu & hours\n\nSoup is served from noon until two.');
    for (const word of ['pineapple', 'lasagna', 'color']) {
      s = await search(srv, KEY_A, { query: word, min_similarity: 0.99 });
      assert.deepEqual(s.json.hits, [], `${word} was script, comment or style`);
    }

    const bad = [
      [
        { title: 'x', type: 'pdf', content_base64: Buffer.from('%PDF-1.4 garbage').toString('base64') },
        422,
        /PDF could not be read/,
      ],
      [{ title: 'x', type: 'pdf', content_base64: Buffer.from('hello').toString('base64') }, 422, /not a PDF/],
      [{ title: 'x', type: 'pdf', content: 'inline' }, 400, /content_base64/],
      [
        { title: 'x', type: 'text', content_base64: Buffer.from([0xff, 0xfe, 0x41]).toString('base64') },
        422,
        /not UTF-8/,
      ],
      [{ title: 'x', type: 'text', content_base64: 'not*base64' }, 400, /not valid base64/],
      [{ title: 'x', type: 'text', content: 'y'.repeat(70000) }, 413, /size limit/],
      [{ title: 'x', type: 'docx', content: 'a' }, 400, /type must be/],
      [{ type: 'text', content: 'a' }, 400, /body must be/],
      [{ title: 'x', type: 'text', content: '   \n\n ' }, 422, /no text/],
      [{ title: 'x', type: 'text', content: 'a', chunk_tokens: 100, chunk_overlap: 80 }, 400, /chunk_overlap/],
      [{ title: 'x', type: 'text', content: 'a', collection: 'bad\u0007name' }, 400, /collection/],
    ];
    for (const [body, status, message] of bad) {
      r = await ingest(srv, KEY_A, body);
      assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 80)}: ${r.body}`);
      assert.match(r.json.error.message, message);
      assert.equal(r.json.error.code, status === 413 ? 'too_large' : 'bad_request');
    }
    // one failed embeddings call is asked again; three are a clear 502, nothing stored
    fp.script({ status: 503, match: { prefix: 'docs-files-embed', path: '/v1/embeddings' } });
    const before = fp.requests({ prefix: 'docs-files-embed' }).length;
    r = await ingest(srv, KEY_A, { title: 'Retried', type: 'text', content: 'retried text' });
    assert.equal(r.status, 201, r.body);
    assert.equal(fp.requests({ prefix: 'docs-files-embed' }).length, before + 2);
    assert.equal((await del(srv, KEY_A, r.json.id)).status, 200);
    fp.script({ status: 500, repeat: 3, match: { prefix: 'docs-files-embed', path: '/v1/embeddings' } });
    r = await ingest(srv, KEY_A, { title: 'Provider down', type: 'text', content: 'some text' });
    assert.equal(r.status, 502, r.body);
    assert.equal(r.json.error.code, 'unavailable');
    assert.match(r.json.error.message, /embeddings call failed \(status 500\)/);
    r = await httpRequest(srv.port, 'POST', '/v1/documents', { body: { title: 'x', type: 'text', content: 'a' } });
    assert.equal(r.status, 401, 'an API key is required');
    assert.deepEqual(
      (await list(srv, KEY_A)).json.documents.map((d) => d.title).sort(),
      ['Cafeteria', 'Q3 report'],
      'nothing refused was stored',
    );
    r = await httpRequest(srv.port, 'PUT', '/v1/documents', { headers: auth(KEY_A), body: {} });
    assert.ok(r.status >= 400);
    r = await search(srv, KEY_A, { query: '' });
    assert.equal(r.status, 400);
  },
  { timeout: 60_000 },
);

itest(
  'an assistant with the retrieve tool answers from its collection and cites the passages in message.end',
  async ({ startServer }) => {
    const P = 'docs-cite';
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-docs-'));
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
            top_k: 3,
            min_similarity: 0.1,
          },
        ],
      }),
    );
    const srv = await server(startServer, P, ['--agents', agents]);
    for (const title of ['Annual leave', 'Travel expenses', 'Pension plan']) {
      const r = await ingest(srv, KEY_A, {
        collection: 'handbook',
        title,
        type: 'markdown',
        content: markdown(title, CORPUS[title]),
      });
      assert.equal(r.status, 201, r.body);
    }
    // the other tenant's handbook says something else: never retrieved for acme
    await ingest(srv, KEY_B, {
      collection: 'handbook',
      title: 'Umbrella leave',
      type: 'text',
      content: 'Umbrella staff get forty days of annual leave.',
    });
    fp.script([
      {
        tool_calls: [{ id: 'r1', name: 'retrieve', arguments: '{"query":"days of annual leave"}' }],
        match: { prefix: P, path: '/v1/chat/completions' },
      },
      {
        text: 'You get twenty five days of annual leave [Annual leave].',
        match: { prefix: P, path: '/v1/chat/completions' },
      },
    ]);
    const token = await mintViaApi(srv.port, KEY_A, 'alice');
    const c = await connect(srv.port, { token });
    const { session } = await openSession(c, 'librarian');
    await c.ok({ type: 'say', session, text: 'How much annual leave do I get?' });
    await waitState(c, session, 'idle', 2, 15000);
    const evs = c.sessionEvents(session);
    checkMessages(assert, evs);
    const result = evs.find((e) => e.type === 'tool.result');
    assert.equal(result.ok, true, JSON.stringify(result));
    const titles = result.result.passages.map((p) => p.title);
    assert.equal(titles[0], 'Annual leave');
    assert.ok(!titles.includes('Umbrella leave'), 'no other tenant passage');
    const end = evs.filter((e) => e.type === 'message.end').at(-1);
    assert.equal(end.text, 'You get twenty five days of annual leave [Annual leave].');
    assert.ok(Array.isArray(end.citations) && end.citations.length >= 1, JSON.stringify(end));
    assert.deepEqual(end.citations[0], {
      document_id: result.result.passages.length && end.citations[0].document_id,
      title: 'Annual leave',
      collection: 'handbook',
      position: 0,
    });
    assert.match(end.citations[0].document_id, /^d_[0-9a-f]{16}$/);
    // the passages went to the model between tool_result tags
    const second = fp
      .requests({ prefix: P })
      .filter((r) => r.path.endsWith('/chat/completions'))
      .at(-1);
    const toolMsg = second.body.messages.find((m) => m.role === 'tool');
    assert.match(toolMsg.content, /<tool_result>[\s\S]*twenty five days of annual leave[\s\S]*<\/tool_result>/);
    // the next turn without retrieval carries no citations
    fp.script({ text: 'Anything else?', match: { prefix: P, path: '/v1/chat/completions' } });
    const before = c.sessionEvents(session).at(-1).seq;
    await c.ok({ type: 'say', session, text: 'thanks' });
    await waitState(c, session, 'idle', before, 15000);
    const last = c
      .sessionEvents(session)
      .filter((e) => e.type === 'message.end')
      .at(-1);
    assert.equal(last.text, 'Anything else?');
    assert.equal(last.citations, undefined);
  },
  { timeout: 60_000 },
);

itest(
  'documents survive a restart; a stop while an ingest and a search are in flight exits cleanly',
  async ({ startServer }) => {
    const srv = await server(startServer, 'docs-stop');
    let r = await ingest(srv, KEY_A, {
      title: 'Pension plan',
      type: 'markdown',
      content: markdown('Pension plan', CORPUS['Pension plan']),
    });
    assert.equal(r.status, 201, r.body);
    // about 2 MB of text: still being chunked (and embedded) when the stop comes
    const big = Array.from({ length: 20000 }, (_, i) => `Line ${i} of the long appendix about pensions.`).join('\n\n');
    const inflight = [
      ingest(srv, KEY_A, { title: 'Appendix', type: 'text', content: big }).catch((e) => e),
      search(srv, KEY_A, { query: 'pension contributions', min_similarity: 0 }).catch((e) => e),
    ];
    await new Promise((res) => setTimeout(res, 50));
    await srv.stop(); // requires exit code 0 within 10 s
    await Promise.all(inflight);
    await srv.restart();
    const docs = (await list(srv, KEY_A)).json.documents.map((d) => d.title);
    assert.ok(docs.includes('Pension plan'), JSON.stringify(docs));
    r = await search(srv, KEY_A, { query: 'pension plan matches contributions', min_similarity: 0 });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.hits[0].title, 'Pension plan');
  },
  { timeout: 60_000 },
);

itest(
  'documents and searches count against the API key request limits (they call the embeddings model)',
  async ({ startServer }) => {
    const srv = await server(startServer, 'docs-limit', ['--key-requests-per-min', '2']);
    let r = await ingest(srv, KEY_A, { title: 'One', type: 'text', content: 'alpha beta' });
    assert.equal(r.status, 201, r.body);
    r = await search(srv, KEY_A, { query: 'alpha', min_similarity: 0 });
    assert.equal(r.status, 200, r.body);
    r = await ingest(srv, KEY_A, { title: 'Two', type: 'text', content: 'gamma' });
    assert.equal(r.status, 429, r.body);
    assert.equal(r.json.error.code, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal((await list(srv, KEY_A)).json.documents.length, 1, 'the refused one was not stored');
    r = await ingest(srv, KEY_B, { title: 'Two', type: 'text', content: 'gamma' });
    assert.equal(r.status, 201, 'another key has its own limit');
  },
);

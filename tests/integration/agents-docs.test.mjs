// The document analyst end to end over a real socket against the fake
// provider: five persisted steps (extract, themes, tags, summary, related:
// the team's most similar documents by embedding),
// structured output with one self-correction, a reconnect in the middle of
// the analysis, and kill -9 in the middle of a model step.

import assert from 'node:assert/strict';
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

const fp = useFakeProvider({ dims: 256 });

function routesFor(P) {
  return writeRoutesFile({
    routes: {
      default: [
        fakeTarget(fp.url, P, {
          region: 'a',
          timeout_ms: { connect: 1000, first_byte: 4000, idle: 4000, total: 20000 },
        }),
      ],
    },
    retry: { max_attempts: 3, base_ms: 50, max_backoff_ms: 200, max_total_ms: 8000 },
  });
}

const DOC =
  '<html><head><style>p{}</style><script>alert(1)</script></head><body>' +
  '<h1>Solar panels</h1><p>Panels on the roof &amp; batteries in the garage.</p></body></html>';

function script(P, tags, { themesDelay = 0 } = {}) {
  fp.script([
    { text: '- energy\n- storage', token_delay_ms: themesDelay, match: { prefix: P } },
    { text: JSON.stringify({ tags }), match: { prefix: P } },
    { text: 'A short summary of the document.', match: { prefix: P } },
  ]);
}

async function analyse(c, doc, title) {
  const r = await openSession(c, 'doc-analyst', { input: { document: doc, format: 'html' }, metadata: { title } });
  return r.session;
}

itest(
  'document analyst: five steps stream and persist, tags validated, HTML reduced to text',
  async ({ startServer }) => {
    const P = 'd-full';
    script(P, ['solar', 'batteries', 'home energy']);
    const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
    const c = await connect(srv.port, { hello: true });
    const session = await analyse(c, DOC, 'Solar');
    const done = await waitState(c, session, 'done', 0, 15000);
    const evs = c.sessionEvents(session).filter((e) => e.seq <= done.seq);
    checkMessages(assert, evs);
    const steps = evs.filter((e) => e.type === 'state' && e.state === 'running').map((e) => e.step);
    assert.deepEqual(steps, ['extract', 'themes', 'tags', 'summary', 'related']);
    const progress = evs.filter((e) => e.type === 'progress').map((e) => e.done);
    assert.deepEqual(progress, [1, 2, 3, 4, 5]);
    const text = shownText(evs);
    assert.match(text, /- energy/);
    assert.match(text, /Tags: solar, batteries, home energy/);
    assert.match(text, /A short summary/);
    const all = fp.requests({ prefix: P });
    const reqs = all.filter((r) => !r.path.endsWith('/embeddings'));
    assert.equal(reqs.length, 3);
    // the related step embeds the text once (the team has no documents: none named)
    assert.equal(all.filter((r) => r.path.endsWith('/embeddings')).length, 1);
    assert.match(text, /No similar documents among your team's documents/);
    const user = reqs[0].body.messages.find((m) => m.role === 'user').content;
    assert.match(user, /<user_data>/);
    assert.match(user, /Panels on the roof & batteries/);
    assert.doesNotMatch(user, /alert\(1\)|<p>|p\{\}/, 'scripts, styles and tags are not text');
    assert.ok(reqs[1].body.response_format, 'the tags step asks for JSON with a schema');
  },
);

itest(
  'document analyst: invalid structured output is corrected once with the validation error',
  async ({ startServer }) => {
    const P = 'd-correct';
    fp.script([
      { text: '- a theme', match: { prefix: P } },
      { text: '{"tags": "not an array"}', match: { prefix: P } },
      { text: '{"tags": ["fixed"]}', match: { prefix: P } },
      { text: 'Summary.', match: { prefix: P } },
    ]);
    const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
    const c = await connect(srv.port, { hello: true });
    const session = await analyse(c, 'plain text document', 'T');
    await waitState(c, session, 'done', 0, 15000);
    const reqs = fp.requests({ prefix: P }).filter((r) => !r.path.endsWith('/embeddings'));
    assert.equal(reqs.length, 4);
    const correction = reqs[2].body.messages.at(-1).content;
    assert.match(correction, /did not match the required JSON schema/);
    assert.match(correction, /\$\.tags/);
    assert.match(shownText(c.sessionEvents(session)), /Tags: fixed/);
  },
);

itest('document analyst: a second invalid reply fails the run with a clear error', async ({ startServer }) => {
  const P = 'd-fail';
  fp.script([
    { text: '- a theme', match: { prefix: P } },
    { text: 'no json here', match: { prefix: P } },
    { text: 'still no json', match: { prefix: P } },
  ]);
  const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const session = await analyse(c, 'plain text document', 'T');
  const failed = await waitState(c, session, 'failed', 0, 15000);
  const err = c.sessionEvents(session).find((e) => e.type === 'error' && e.seq < failed.seq);
  assert.match(err.message, /invalid twice/);
  assert.equal(err.code, 'model_output', 'a model problem, not a server fault');
  assert.match(err.message, /Use a model that supports JSON output/);
});

itest(
  "document analyst: related documents are the team's most similar documents by embedding, named by title, never another tenant's",
  async ({ startServer }) => {
    const P = 'd-related';
    const { KEY_A, KEY_B, keyArgs } = twoTenants('dsim');
    const srv = await startServer({ args: ['--routes', routesFor(P), ...keyArgs], env: { FAKE_KEY: 'k' } });
    const ingest = async (key, title, content) => {
      const r = await httpRequest(srv.port, 'POST', '/v1/documents', {
        headers: { authorization: `Bearer ${key}` },
        body: { collection: title.length % 2 ? 'a' : 'b', title, type: 'text', content },
      });
      assert.equal(r.status, 201, r.body);
    };
    await ingest(KEY_A, 'Roof solar guide', 'Solar panels on the roof charge batteries in the garage.');
    await ingest(KEY_A, 'Solar batteries FAQ', 'Batteries store what the solar panels on the roof make.');
    await ingest(KEY_A, 'Canteen menu', 'Soup, bread and coffee are served at noon in the canteen.');
    // the other tenant holds the closest document of all: never named for acme
    await ingest(KEY_B, 'Umbrella solar', 'Solar panels on the roof & batteries in the garage.');
    script(P, ['solar', 'batteries']); // after the ingests' embeddings calls
    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
    const session = await analyse(c, DOC, 'Solar');
    const done = await waitState(c, session, 'done', 0, 15000);
    const evs = c.sessionEvents(session).filter((e) => e.seq <= done.seq);
    const text = shownText(evs);
    const m = /Similar documents: (.*)/.exec(text);
    assert.ok(m, text);
    const named = [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]);
    assert.deepEqual(named.slice().sort(), ['Roof solar guide', 'Solar batteries FAQ'], m[1]);
    assert.ok(!named.includes('Umbrella solar') && !named.includes('Canteen menu'));
    const embeds = fp.requests({ prefix: P }).filter((r) => r.path.endsWith('/embeddings'));
    assert.ok(
      embeds.some((r) => JSON.stringify(r.body.input).includes('Panels on the roof')),
      'the text is embedded',
    );
    // the embedding is the analyst's call in the ledger: its three model steps and it
    let analyst;
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await new Promise((r) => setTimeout(r, 100))) {
      const u = await httpRequest(srv.port, 'GET', '/v1/usage?group_by=agent', {
        headers: { authorization: `Bearer ${KEY_A}` },
      });
      analyst = u.json.groups.find((g) => g.agent === 'doc-analyst');
      if (analyst?.calls >= 4) break;
    }
    assert.equal(analyst?.calls, 4, JSON.stringify(analyst));
  },
);

itest('document analyst: a reconnect in the middle of the analysis misses nothing', async ({ startServer }) => {
  const P = 'd-reconnect';
  script(P, ['a', 'b'], { themesDelay: 60 });
  const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const session = await analyse(c, DOC, 'R');
  await c.waitEvent((e) => e.session === session && e.type === 'delta');
  const seen = c.sessionEvents(session);
  const last = seen.at(-1).seq;
  c.close();
  const c2 = await connect(srv.port, { hello: true });
  await c2.ok({ type: 'session.attach', session, after: last });
  await waitState(c2, session, 'done', last, 15000);
  const all = [...seen, ...c2.sessionEvents(session)];
  all.forEach((e, i) => assert.equal(e.seq, i + 1, 'contiguous, no duplicate'));
  checkMessages(assert, all);
  assert.match(shownText(all), /A short summary/);
});

itest(
  'document analyst: kill -9 during a model step, restart: the step runs again, its partial output withdrawn',
  async ({ startServer }) => {
    const P = 'd-crash';
    fp.script([
      { text: Array.from({ length: 40 }, (_, i) => `t${i}`).join(' '), token_delay_ms: 50, match: { prefix: P } },
    ]);
    script(P, ['x', 'y']);
    const routes = routesFor(P);
    const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'k' } });
    let c = await connect(srv.port, { hello: true });
    const session = await analyse(c, DOC, 'Crash');
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && /t5/.test(e.text));
    const seen = c.sessionEvents(session);
    await srv.kill9();
    await srv.restart();
    c = await connect(srv.port, { hello: true });
    const last = seen.at(-1).seq;
    await c.ok({ type: 'session.attach', session, after: last });
    await waitState(c, session, 'done', last, 20000);
    const all = [...seen, ...c.sessionEvents(session)];
    all.forEach((e, i) => assert.equal(e.seq, i + 1, 'contiguous across the crash'));
    checkMessages(assert, all);
    assert.ok(all.some((e) => e.type === 'message.discard' && e.reason === 'restart'));
    assert.match(shownText(all), /A short summary/);
  },
);

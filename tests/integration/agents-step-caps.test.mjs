// Per-step output caps of the engine's agents: each model step asks the
// provider for its own max_tokens (the `max_tokens: M` of its prompt's
// header, agents/prompt.h), not the route's max_completion_tokens; an
// operator changes it per step in --prompts-dir; the route's cap still
// bounds it; a malformed cap stops the start-up naming the file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { connect, fakeTarget, freePort, itest, openSession, waitState, writeRoutesFile } from './harness.mjs';
import { runToExit } from './exit-lib.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();
const PROMPTS = new URL('../../agents/prompts/', import.meta.url).pathname;
const dirs = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function routesFor(P, limits) {
  return writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] },
    retry: { max_attempts: 1, base_ms: 50, max_backoff_ms: 100, max_total_ms: 4000 },
    ...(limits ? { limits } : {}),
  });
}

/** A copy of the shipped prompts with docs.summary's header line replaced. */
function promptsWithSummaryHeader(header) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-prompts-'));
  dirs.push(dir);
  for (const f of fs.readdirSync(PROMPTS)) fs.copyFileSync(path.join(PROMPTS, f), path.join(dir, f));
  const file = path.join(dir, 'docs.summary.md');
  const text = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, header + text.slice(text.indexOf('\n')));
  return dir;
}

/** Run the document analyst once; the three model requests' max_tokens. */
async function analyseCaps(srv, P) {
  fp.script([
    { text: '- energy\n- storage', match: { prefix: P } },
    { text: JSON.stringify({ tags: ['solar', 'batteries', 'home'] }), match: { prefix: P } },
    { text: 'A short summary.', match: { prefix: P } },
  ]);
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'doc-analyst', {
    input: { document: 'Panels on the roof and batteries in the garage.', format: 'text' },
    metadata: { title: 'Solar' },
  });
  await waitState(c, session, 'done', 0, 15000);
  c.close();
  // the model's three steps (the similar documents' embedding is no model step)
  const reqs = fp.requests({ prefix: P }).filter((r) => !r.path.endsWith('/embeddings'));
  assert.equal(reqs.length, 3);
  return reqs.map((r) => r.body.max_tokens);
}

const header = (m) => `<!-- prompt: docs.summary version: 1${m === undefined ? '' : ` max_tokens: ${m}`} -->`;

itest('each model step of the document analyst asks for its own output cap', async ({ startServer }) => {
  const P = 'caps-default';
  const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
  // themes, tags, summary: the caps in agents/prompts/, not the route's 8,192.
  assert.deepEqual(await analyseCaps(srv, P), [600, 200, 300]);
});

itest(
  'a step cap set in --prompts-dir is what the provider receives, within the route cap',
  async ({ startServer }) => {
    let P = 'caps-custom';
    let srv = await startServer({
      args: ['--routes', routesFor(P), '--prompts-dir', promptsWithSummaryHeader(header(77))],
      env: { FAKE_KEY: 'k' },
    });
    assert.deepEqual(await analyseCaps(srv, P), [600, 200, 77]);
    await srv.stop();

    P = 'caps-route';
    srv = await startServer({
      args: [
        '--routes',
        routesFor(P, { max_completion_tokens: 250 }),
        '--prompts-dir',
        promptsWithSummaryHeader(header()),
      ],
      env: { FAKE_KEY: 'k' },
    });
    // No cap in the summary's header: the route's; the themes' 600 is cut to the route's 250.
    assert.deepEqual(await analyseCaps(srv, P), [250, 200, 250]);
  },
);

itest('a malformed step cap stops the start-up, naming the file', async () => {
  for (const bad of ['0', '-5', 'many', '1000001', '12x']) {
    const dir = promptsWithSummaryHeader(header(bad));
    const r = await runToExit(['--port', String(await freePort()), '--prompts-dir', dir]);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /docs\.summary\.md/, r.output);
    assert.match(r.output, /max_tokens: M/, r.output);
  }
});

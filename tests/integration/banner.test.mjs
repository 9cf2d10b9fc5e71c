// The start-up banner: plain words on stderr (the URL to open, the mode, the
// data directory, the model routes), besides the JSON log lines.
import assert from 'node:assert/strict';
import fs from 'node:fs';

import { connect, itest } from './harness.mjs';

/** The output lines that are not JSON log lines. */
function plainLines(output) {
  return output
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('{') && !l.startsWith('==='))
    .map((l) => l.trim());
}

itest('open mode: the banner says where to open the page, the mode, the data and no model', async ({ startServer }) => {
  const srv = await startServer();
  const lines = plainLines(srv.output);
  assert.ok(lines.includes(`open http://127.0.0.1:${srv.port} in a browser`), lines.join('\n'));
  assert.ok(
    lines.some((l) => l.startsWith('mode: open')),
    lines.join('\n'),
  );
  assert.ok(lines.includes(`data: ${fs.realpathSync(srv.dataDir)}`), lines.join('\n'));
  assert.ok(
    lines.some((l) => l.startsWith('models: none') && l.includes('OPENAI_API_KEY')),
    lines.join('\n'),
  );
  assert.ok(lines.length <= 6, `a few lines only: ${lines.join('\n')}`);
  // The JSON log line is still there.
  assert.match(srv.output, /"msg":"listening"/);
});

itest('API-key mode with a model route: the banner names the mode and the route', async ({ startServer }) => {
  const srv = await startServer({
    args: ['--api-key', 'key-a:t1'],
    env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: 'http://127.0.0.1:9/v1' },
  });
  const lines = plainLines(srv.output);
  assert.ok(
    lines.some((l) => l.startsWith('mode: API keys (1)')),
    lines.join('\n'),
  );
  assert.ok(lines.includes('models: default'), lines.join('\n'));
});

itest('welcome: agent_info says what each agent does and whether it needs a model', async ({ startServer }) => {
  const srv = await startServer();
  const c = await connect(srv.port, { hello: true });
  const info = c.welcome.agent_info;
  assert.deepEqual(
    info.map((a) => a.name),
    c.welcome.agents,
    'the same agents, in the same order',
  );
  const by = Object.fromEntries(info.map((a) => [a.name, a]));
  assert.equal(by.echo.needs_model, false);
  assert.equal(by['doc-analyst'].needs_model, true);
  assert.match(by['doc-analyst'].description, /document/);
  for (const a of info) assert.ok(a.description.length > 10, `${a.name} says what it does`);
});

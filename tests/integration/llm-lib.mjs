// Start-up shared by the tests that drive Tether against the fake provider
// (tests/fake-provider): the provider itself for a file's tests, and the two
// tenants with an API key each that the tenant-scoped tests use, and a
// scripted turn of tool rounds.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { forTheTests } from './harness.mjs';

/**
 * The fake provider for this file's tests: started before them (with opts,
 * as startFakeProvider takes them), closed after (see forTheTests): used as
 * the provider itself (fp.url, fp.script(...), fp.requests(...)).
 */
export function useFakeProvider(opts = {}) {
  return forTheTests(() => startFakeProvider(opts), 'the fake provider');
}

/**
 * Two tenants, "acme" and "umbrella", with an API key each, named after the
 * test file (`${name}-key-acme-0123456789`): { KEY_A, KEY_B, keyArgs }, where
 * keyArgs are the server arguments that make both keys.
 */
export function twoTenants(name) {
  const KEY_A = `${name}-key-acme-0123456789`;
  const KEY_B = `${name}-key-umbrella-0123456789`;
  return { KEY_A, KEY_B, keyArgs: ['--api-key', `${KEY_A}:acme`, '--api-key', `${KEY_B}:umbrella`] };
}

const agentDirs = [];
after(() => {
  for (const d of agentDirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A turn of three billed model calls, scripted at the fake provider fp under
 * the prefix P: two rounds of the calculate tool, then "It is 42.", each call
 * with usage. Returns the path of an agents file (removed when the file's
 * tests end) defining "helper", the agent that can take those rounds.
 */
export function scriptToolRounds(fp, P, usage) {
  const call = (id) => ({
    tool_calls: [{ id, name: 'calculate', arguments: '{"expression":"6*7"}' }],
    usage,
    match: { prefix: P },
  });
  fp.script([call('c1'), call('c2'), { text: 'It is 42.', usage, match: { prefix: P } }]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-agents-'));
  agentDirs.push(dir);
  const agents = path.join(dir, 'agents.json');
  const helper = { name: 'helper', description: 'Numbers', tools: ['calculate'], max_tool_rounds: 3 };
  writeFileSync(agents, JSON.stringify({ agents: [helper] }));
  return agents;
}

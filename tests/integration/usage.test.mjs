// Who pays for each model call: attribution in the log lines, the cost
// ledger behind GET /v1/usage (scoped to the API key's tenant), the
// Prometheus counters, and the rate limits per API key shared by sockets and
// the gateway. Two tenants have a user of the same name.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  connect,
  fakeTarget,
  httpGet,
  httpRequest,
  itest,
  llmCallLines,
  mintViaApi,
  openSession,
  sayAndWait,
  sleep,
  writeRoutesFile,
} from './harness.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const { KEY_A, KEY_B, keyArgs } = twoTenants('usage');
const PRICE = { prompt_per_mtok: 1000, completion_per_mtok: 2000 }; // $0.001 a prompt token
const USAGE = { prompt_tokens: 100, completion_tokens: 10 };

async function usageServer(startServer, P, args = []) {
  fp.script({ text: 'fine thanks', usage: USAGE, match: { prefix: P }, repeat: 'forever' });
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] },
    prices: { 'gpt-4o-mini': PRICE },
    retry: { max_attempts: 1, base_ms: 50, max_backoff_ms: 100, max_total_ms: 2000 },
  });
  return startServer({
    args: ['--routes', routes, ...keyArgs, ...args],
    env: { FAKE_KEY: 'fake-key' },
  });
}

const gateway = (srv, key, headers = {}) =>
  httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    headers: { Authorization: `Bearer ${key}`, ...headers },
    body: { model: 'default', messages: [{ role: 'user', content: 'how are you?' }] },
  });

const usage = (srv, key, query, headers = {}) =>
  httpGet(srv.port, `/v1/usage${query}`, { headers: { Authorization: `Bearer ${key}`, ...headers } });

async function chatTurn(srv, key, user, input, agent = 'chat') {
  const c = await connect(srv.port, { token: await mintViaApi(srv.port, key, user) });
  const { session } = await openSession(c, agent, { input });
  await c.waitEvent((e) => e.session === session && e.seq === 1);
  const { events } = await sayAndWait(c, session, 'hello', `m-${user}-${Date.now()}`);
  const end = events.find((e) => e.type === 'message.end');
  assert.ok(end, JSON.stringify(events));
  c.close();
  return session;
}

itest(
  'every call is attributed (log line with cache_hit) and /v1/usage sums it per tenant, feature and user',
  async ({ startServer }) => {
    const P = 'usage-attr';
    const srv = await usageServer(startServer, P, ['--usage-flush-ms', '50']);
    const sA = await chatTurn(srv, KEY_A, 'alice', { feature: 'support' });
    const sB = await chatTurn(srv, KEY_B, 'alice', {});
    const g = await gateway(srv, KEY_A, { 'x-tether-feature': 'search', 'x-tether-user': 'bob' });
    assert.equal(g.status, 200, g.body);
    assert.equal(fp.requests({ prefix: P }).length, 3, 'the provider saw three calls');

    await sleep(100);
    const lines = llmCallLines(srv.output);
    assert.equal(lines.length, 3, srv.output);
    const byFeature = Object.fromEntries(lines.map((l) => [`${l.tenant}/${l.feature}`, l]));
    const a = byFeature['acme/support'];
    assert.ok(a, JSON.stringify(lines));
    assert.equal(a.user, 'alice');
    assert.equal(a.agent, 'chat');
    assert.equal(a.session, sA);
    assert.match(a.key_id, /^k_[0-9a-f]{12}$/);
    assert.equal(a.cache_hit, false);
    const b = byFeature['umbrella/chat'];
    assert.ok(b, 'without input.feature the feature is the agent name');
    assert.equal(b.session, sB);
    assert.notEqual(b.key_id, a.key_id);
    const gl = byFeature['acme/search'];
    assert.equal(gl.agent, 'gateway');
    assert.equal(gl.user, 'bob');
    assert.equal(gl.key_id, a.key_id, 'the same key, on a socket and the gateway');

    // Tenant acme by feature: only its own two calls; sums = the provider's counts.
    const rA = await usage(srv, KEY_A, '?group_by=feature');
    assert.equal(rA.status, 200, rA.body);
    assert.equal(rA.json.tenant, 'acme');
    assert.deepEqual(
      rA.json.groups.map((x) => [x.feature, x.calls, x.prompt_tokens, x.completion_tokens]),
      [
        ['search', 1, 100, 10],
        ['support', 1, 100, 10],
      ],
    );
    assert.equal(rA.json.total.calls, 2);
    assert.ok(Math.abs(rA.json.total.cost_usd - 2 * (100 * 0.001 + 10 * 0.002)) < 1e-9, rA.body);

    // Tenant umbrella by user: its alice only, never acme's.
    const rB = await usage(srv, KEY_B, '?group_by=user');
    assert.deepEqual(
      rB.json.groups.map((x) => [x.tenant, x.user, x.calls]),
      [['umbrella', 'alice', 1]],
    );
    const today = new Date().toISOString().slice(0, 10);
    const rDay = await usage(srv, KEY_B, `?from=${today}&to=${today}&group_by=day`);
    assert.deepEqual(
      rDay.json.groups.map((x) => [x.day, x.calls]),
      [[today, 1]],
    );

    // CSV.
    const csv = await usage(srv, KEY_A, '?group_by=agent', { Accept: 'text/csv' });
    assert.equal(csv.status, 200);
    assert.match(String(csv.headers['content-type']), /text\/csv/);
    const rows = csv.body.trim().split('\n');
    assert.equal(rows[0], 'agent,calls,errors,cache_hits,prompt_tokens,completion_tokens,cost_usd,latency_ms_avg');
    assert.deepEqual(
      rows.slice(1).map((r) => r.split(',').slice(0, 2)),
      [
        ['chat', '1'],
        ['gateway', '1'],
      ],
    );

    // Bad input: clear errors.
    assert.equal((await usage(srv, KEY_A, '?group_by=colour')).status, 400);
    assert.equal((await usage(srv, KEY_A, '?from=2026-02-30')).status, 400);
    assert.equal((await usage(srv, KEY_A, '?from=2026-03-02&to=2026-03-01')).status, 400);
    assert.equal((await httpGet(srv.port, '/v1/usage')).status, 401);
    assert.equal((await usage(srv, 'not-a-key', '')).status, 401);
    const bad = await gateway(srv, KEY_A, { 'x-tether-feature': 'f'.repeat(64) });
    assert.equal(bad.status, 400, bad.body);

    // Prometheus: tokens and cost by tenant and model.
    const m = (await httpGet(srv.port, '/metrics')).body;
    assert.match(m, /tether_llm_tokens_total\{tenant="acme",model="gpt-4o-mini",direction="prompt"\} 200\n/);
    assert.match(m, /tether_llm_tokens_total\{tenant="umbrella",model="gpt-4o-mini",direction="completion"\} 10\n/);
    assert.match(m, /tether_llm_calls_total\{tenant="acme",model="gpt-4o-mini"\} 2\n/);
    assert.match(m, /tether_llm_cost_usd_total\{tenant="acme",model="gpt-4o-mini"\} 0\.24\n/);
  },
  { timeout: 30_000 },
);

itest('the ledger is written at shutdown and read after a restart', async ({ startServer }) => {
  const P = 'usage-restart';
  // A flush interval far longer than the test: only the shutdown writes it.
  const srv = await usageServer(startServer, P, ['--usage-flush-ms', '60000']);
  assert.equal((await gateway(srv, KEY_A, { 'x-tether-feature': 'nightly' })).status, 200);
  await srv.stop();
  await srv.restart();
  const r = await usage(srv, KEY_A, '?group_by=feature');
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(
    r.json.groups.map((x) => [x.feature, x.calls, x.prompt_tokens]),
    [['nightly', 1, 100]],
  );
});

itest(
  'requests per minute per API key: shared by the gateway and every socket, 429 with Retry-After, rate_limited with retry_after_s',
  async ({ startServer }) => {
    const P = 'usage-rpm';
    const srv = await usageServer(startServer, P, ['--key-requests-per-min', '3']);
    for (let i = 0; i < 3; i++) assert.equal((await gateway(srv, KEY_A)).status, 200);
    const over = await gateway(srv, KEY_A);
    assert.equal(over.status, 429, over.body);
    const ra = Number(over.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 60, `Retry-After ${over.headers['retry-after']}`);
    assert.equal(over.json.error.code, 'rate_limited');
    assert.match(over.json.error.message, /API key k_[0-9a-f]{12} is over its requests per minute/);
    assert.equal(fp.requests({ prefix: P }).length, 3, 'the refused call never reached the provider');

    // A new socket of the same key starts no fresher.
    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
    const r = await c.request({ type: 'session.open', agent: 'chat' });
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'rate_limited');
    assert.equal(r.retryable, true);
    assert.ok(r.retry_after_s >= 1 && r.retry_after_s <= 60, JSON.stringify(r));

    // Another key (another tenant) is not affected.
    assert.equal((await gateway(srv, KEY_B)).status, 200);
    assert.match((await httpGet(srv.port, '/metrics')).body, /tether_rate_limited_total 2\n/);
  },
);

itest('tokens per minute per API key: a key that used its tokens waits', async ({ startServer }) => {
  const P = 'usage-tpm';
  const srv = await usageServer(startServer, P, ['--key-tokens-per-min', '150']);
  assert.equal((await gateway(srv, KEY_A)).status, 200); // 110 tokens: 40 left
  assert.equal((await gateway(srv, KEY_A)).status, 200); // in debt now (-70)
  const over = await gateway(srv, KEY_A);
  assert.equal(over.status, 429, over.body);
  assert.match(over.json.error.message, /tokens per minute/);
  assert.ok(Number(over.headers['retry-after']) >= 1);
  assert.equal((await gateway(srv, KEY_B)).status, 200);
});

itest('a malformed limit option is refused at start-up', async ({ startServer }) => {
  await assert.rejects(usageServer(startServer, 'usage-bad', ['--key-requests-per-min', '-5']));
});

itest(
  'a daily budget per API key: calls pass while it has room for their estimate, then 429 budget_exceeded (and budget_exceeded on a socket), also after a restart',
  async ({ startServer }) => {
    const P = 'usage-budget';
    // A call is estimated at its prompt (about 18 tokens at $0.001) + max_tokens 10 at $0.002,
    // and really costs $0.12 (100 prompt tokens, 10 completion): 20 cents start two.
    const srv = await usageServer(startServer, P, ['--key-daily-budget-cents', '20']);
    const capped = (key) =>
      httpRequest(srv.port, 'POST', '/v1/chat/completions', {
        headers: { Authorization: `Bearer ${key}` },
        body: { model: 'default', max_tokens: 10, messages: [{ role: 'user', content: 'how are you?' }] },
      });
    assert.equal((await capped(KEY_A)).status, 200);
    assert.equal((await capped(KEY_A)).status, 200);
    const over = await capped(KEY_A);
    assert.equal(over.status, 429, over.body);
    assert.equal(over.json.error.code, 'budget_exceeded');
    assert.match(
      over.json.error.message,
      /API key k_[0-9a-f]{12} has spent \$0\.2400 \(and reserved \$0\.0000\) of its daily budget of \$0\.2000/,
    );
    assert.equal(fp.requests({ prefix: P }).length, 2, 'the refused call never reached the provider');

    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
    const r = await c.request({ type: 'session.open', agent: 'chat' });
    assert.equal(r.code, 'budget_exceeded', JSON.stringify(r));
    assert.equal(r.reason, 'budget_exceeded');
    assert.equal(r.retryable, false);
    c.close();

    // Another key of another tenant still has its budget; a call without
    // max_tokens is estimated at the route's completion cap (8192 tokens: $16) and refused.
    assert.equal((await capped(KEY_B)).status, 200);
    const big = await gateway(srv, KEY_B);
    assert.equal(big.status, 429, big.body);
    assert.match(big.json.error.message, /this call may cost up to \$16\.\d{4}/);
    assert.match((await httpGet(srv.port, '/metrics')).body, /tether_budget_refused_total 3\n/);

    // The spend is read back from the ledger: a restart does not reset it.
    await srv.stop();
    await srv.restart();
    assert.equal((await capped(KEY_A)).status, 429);
    assert.equal((await capped(KEY_B)).status, 200);
  },
);

itest(
  'under concurrent load the ledger equals the provider: 40 gateway calls, plain and streamed, one feature',
  async ({ startServer }) => {
    const P = 'usage-load';
    const srv = await usageServer(startServer, P, ['--usage-flush-ms', '20']);
    const calls = [];
    for (let i = 0; i < 40; i++) {
      calls.push(
        httpRequest(srv.port, 'POST', '/v1/chat/completions', {
          headers: { Authorization: `Bearer ${KEY_B}`, 'x-tether-feature': 'load' },
          body: {
            model: 'default',
            messages: [{ role: 'user', content: `q${i}` }],
            ...(i % 2 ? { stream: true, stream_options: { include_usage: true } } : {}),
          },
        }),
      );
    }
    const res = await Promise.all(calls);
    assert.ok(
      res.every((r) => r.status === 200),
      res.map((r) => r.status).join(','),
    );
    const seen = fp.requests({ prefix: P }).length;
    assert.equal(seen, 40);
    const u = await usage(srv, KEY_B, '?group_by=feature');
    assert.deepEqual(
      u.json.groups.map((x) => [x.feature, x.calls, x.prompt_tokens, x.completion_tokens, x.errors]),
      [['load', seen, seen * USAGE.prompt_tokens, seen * USAGE.completion_tokens, 0]],
    );
    assert.equal(
      (await usage(srv, KEY_A, '?group_by=feature')).json.groups.length,
      0,
      'nothing of tenant umbrella for acme',
    );
  },
);

itest("an assistant's feature from --agents; a bad input.feature is refused", async ({ startServer }) => {
  const P = 'usage-assistant';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-usage-agents-'));
  try {
    const agents = path.join(dir, 'agents.json');
    writeFileSync(agents, JSON.stringify({ agents: [{ name: 'helper', feature: 'helpdesk' }] }));
    const srv = await usageServer(startServer, P, ['--agents', agents]);
    await chatTurn(srv, KEY_A, 'carol', {}, 'helper');
    await sleep(100);
    const line = llmCallLines(srv.output).find((l) => l.user === 'carol');
    assert.equal(line?.feature, 'helpdesk', srv.output);
    assert.equal(line.agent, 'helper');

    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'carol') });
    for (const feature of [5, '', 'f'.repeat(64), 'a\u202eb']) {
      const r = await c.request({ type: 'session.open', agent: 'chat', input: { feature } });
      assert.equal(r.code, 'bad_request', JSON.stringify(r));
      assert.match(r.message, /input\.feature/);
    }
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Budgets with reservation and the rate limits of the --limits file, over
// real sockets and HTTP against the fake provider: 100 concurrent gateway
// calls against room for 10 let exactly 10 through; a run cap stops a
// runaway tool loop with a budget_exceeded event; GET /v1/budgets shows a
// tenant its own budgets only; a limit per client IP is shared by every
// socket and the gateway; a malformed limits file stops the start-up.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import {
  BIN,
  connect,
  fakeTarget,
  freePort,
  httpGet,
  itest,
  openSession,
  postFresh,
  waitState,
  writeRoutesFile,
} from './harness.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const { KEY_A, KEY_B, keyArgs } = twoTenants('budget');
// Only completion tokens are priced ($0.001 each): a call capped at 100
// completion tokens may cost $0.10, whatever its prompt.
const PRICE = { prompt_per_mtok: 0, completion_per_mtok: 1000 };

const tmp = mkdtempSync(path.join(os.tmpdir(), 'tether-budgets-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let nfile = 0;
function limitsFile(obj) {
  const f = path.join(tmp, `limits-${nfile++}.json`);
  writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

function routes(P) {
  return writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] },
    prices: { 'gpt-4o-mini': PRICE },
    limits: { max_completion_tokens: 100 },
    retry: { max_attempts: 1, base_ms: 50, max_backoff_ms: 100, max_total_ms: 5000 },
  });
}

/** One gateway POST on its own connection (no shared agent: truly concurrent); its body parsed in json. */
async function post(port, key, body) {
  const headers = { authorization: `Bearer ${key}` };
  const r = await postFresh(port, '/v1/chat/completions', body, { headers, timeoutMs: 15000 });
  return { status: r.status, headers: r.headers, json: JSON.parse(r.body) };
}

itest(
  '100 concurrent gateway calls against a budget with room for 10: exactly 10 reach the provider',
  async ({ startServer }) => {
    const P = 'budget-race';
    // Each call may cost $0.10 (100 completion tokens); the tenant may spend $1.05 a day.
    // The provider waits before answering, so every call is decided while the 10 are in flight.
    fp.script({
      text: 'ok',
      usage: { prompt_tokens: 5, completion_tokens: 10 },
      delay_ms: 1500,
      match: { prefix: P },
      repeat: 'forever',
    });
    const limits = limitsFile({ tenants: { acme: { daily_usd: 1.05 } } });
    const srv = await startServer({
      args: ['--routes', routes(P), '--limits', limits, ...keyArgs],
      env: { FAKE_KEY: 'fake-key' },
    });
    const body = { model: 'default', max_tokens: 100, messages: [{ role: 'user', content: 'hello' }] };
    const inFlight = Array.from({ length: 100 }, () => post(srv.port, KEY_A, body));
    const all = Promise.allSettled(inFlight);
    try {
      // While they run, the reservations are visible.
      await fp.waitFor(() => fp.requests({ prefix: P }).length === 10, 10000);
      const mid = await httpGet(srv.port, '/v1/budgets', { headers: { Authorization: `Bearer ${KEY_A}` } });
      assert.equal(mid.status, 200, mid.body);
      const t = mid.json.budgets.find((b) => b.scope === 'tenant' && b.name === 'acme');
      assert.ok(t, mid.body);
      assert.ok(Math.abs(t.reserved_usd - 1.0) < 1e-6, mid.body);
      assert.equal(t.daily_usd, 1.05);
      assert.match((await httpGet(srv.port, '/metrics')).body, /^tether_budget_reservations 10$/m);
    } catch (e) {
      await all;
      throw e;
    }

    const res = await Promise.all(inFlight);
    const ok = res.filter((r) => r.status === 200);
    const refused = res.filter((r) => r.status === 429);
    assert.equal(ok.length, 10, res.map((r) => r.status).join(','));
    assert.equal(refused.length, 90);
    for (const r of refused) {
      assert.equal(r.json.error.code, 'budget_exceeded');
      assert.equal(r.json.error.type, 'insufficient_quota');
      assert.match(
        r.json.error.message,
        /tenant acme has spent \$\d\.\d{4} \(and reserved \$\d\.\d{4}\) of its daily budget of \$1\.0500/,
      );
    }
    assert.equal(fp.requests({ prefix: P }).length, 10, 'the refused calls never reached the provider');

    // Settled: the real cost ($0.01 each) is spent, nothing is reserved.
    const after = await httpGet(srv.port, '/v1/budgets', { headers: { Authorization: `Bearer ${KEY_A}` } });
    const t2 = after.json.budgets.find((b) => b.scope === 'tenant');
    assert.ok(Math.abs(t2.spent_today_usd - 0.1) < 1e-6, after.body);
    assert.equal(t2.reserved_usd, 0);
    const metrics = (await httpGet(srv.port, '/metrics')).body;
    assert.match(metrics, /^tether_budget_reservations 0$/m);
    assert.match(metrics, /^tether_budget_refused_total 90$/m);
    // Another tenant's key sees none of acme's budgets.
    const other = await httpGet(srv.port, '/v1/budgets', { headers: { Authorization: `Bearer ${KEY_B}` } });
    assert.equal(other.status, 200);
    assert.equal(other.json.tenant, 'umbrella');
    assert.deepEqual(other.json.budgets, []);
    assert.equal((await httpGet(srv.port, '/v1/budgets')).status, 401);
  },
  { timeout: 40_000 },
);

function agentsFile() {
  const f = path.join(tmp, `agents-${nfile++}.json`);
  writeFileSync(
    f,
    JSON.stringify({
      agents: [{ name: 'looper', description: 'Calls tools', tools: ['calculate'], max_tool_rounds: 10 }],
    }),
  );
  return f;
}

itest(
  'a run cap reached mid-run stops a runaway tool loop cleanly with a budget_exceeded event',
  async ({ startServer }) => {
    const P = 'budget-run';
    // The model asks for a tool on every call ($0.05 each, $0.10 reserved); the run may spend $0.26.
    fp.script({
      tool_calls: [{ id: 'c1', name: 'calculate', arguments: '{"expression":"1+1"}' }],
      usage: { prompt_tokens: 10, completion_tokens: 50 },
      delay_ms: 100,
      match: { prefix: P },
      repeat: 'forever',
    });
    const limits = limitsFile({ default: { run: { usd: 0.26 } } });
    const srv = await startServer({
      args: ['--routes', routes(P), '--limits', limits, '--agents', agentsFile()],
      env: { FAKE_KEY: 'fake-key' },
    });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'looper');
    await c.ok({ type: 'say', session, text: 'loop forever' });
    // A say while the run goes on is refused and does not start the run's budget again.
    await c.waitEvent((e) => e.session === session && e.type === 'tool.result', 10000);
    const busy = await c.request({ type: 'say', session, text: 'and again' });
    assert.equal(busy.type, 'error', JSON.stringify(busy));
    const end = await c.waitEvent((e) => e.session === session && e.type === 'error', 10000);
    assert.equal(end.code, 'budget_exceeded', JSON.stringify(end));
    assert.equal(end.retryable, false);
    assert.match(end.message, new RegExp(`run ${session} has spent \\$0\\.2000 .* of its total budget of \\$0\\.2600`));
    await waitState(c, session, 'idle', end.seq, 5000);
    // Four calls fit ($0.15 spent + $0.10 reserved <= $0.26); the fifth did not start.
    assert.equal(fp.requests({ prefix: P }).length, 4);
    const results = c.sessionEvents(session).filter((e) => e.type === 'tool.result');
    assert.equal(results.length, 4);

    // The next turn is a new run: it may spend again.
    await c.ok({ type: 'say', session, text: 'again' });
    await c.waitEvent((e) => e.session === session && e.type === 'error' && e.seq > end.seq, 10000);
    assert.equal(fp.requests({ prefix: P }).length, 8);
    c.close();
  },
  { timeout: 30_000 },
);

itest(
  'a say queued during a run (on_busy queue) starts a new run when its turn comes: its budget starts from zero',
  async ({ startServer }) => {
    const P = 'budget-queue';
    fp.script({
      tool_calls: [{ id: 'c1', name: 'calculate', arguments: '{"expression":"1+1"}' }],
      usage: { prompt_tokens: 10, completion_tokens: 50 },
      delay_ms: 100,
      match: { prefix: P },
      repeat: 'forever',
    });
    const limits = limitsFile({ default: { run: { usd: 0.26 } } });
    const srv = await startServer({
      args: ['--routes', routes(P), '--limits', limits, '--agents', agentsFile()],
      env: { FAKE_KEY: 'fake-key' },
    });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'looper', { on_busy: 'queue' });
    await c.ok({ type: 'say', session, text: 'loop forever' });
    await c.waitEvent((e) => e.session === session && e.type === 'tool.result', 10000);
    const queued = await c.ok({ type: 'say', session, text: 'and again' });
    assert.equal(queued.queued, true, JSON.stringify(queued));
    const first = await c.waitEvent((e) => e.session === session && e.type === 'error', 10000);
    assert.equal(first.code, 'budget_exceeded', JSON.stringify(first));
    const dq = await c.waitEvent((e) => e.session === session && e.type === 'say.dequeued', 10000);
    assert.equal(dq.queue_id, queued.queue_id);
    const second = await c.waitEvent((e) => e.session === session && e.type === 'error' && e.seq > dq.seq, 10000);
    assert.equal(second.code, 'budget_exceeded');
    assert.equal(fp.requests({ prefix: P }).length, 8, 'the queued turn spent a budget of its own');
    c.close();
  },
  { timeout: 30_000 },
);

itest('a limit per client IP is shared by a second socket and the gateway (Retry-After)', async ({ startServer }) => {
  const limits = limitsFile({ default: { ip: { rpm: 3 } } });
  const srv = await startServer({ args: ['--limits', limits] });
  const c1 = await connect(srv.port, { hello: true });
  const { session } = await openSession(c1, 'echo'); // 1
  await c1.ok({ type: 'say', session, text: 'hi' }); // 2
  const c2 = await connect(srv.port, { hello: true });
  await openSession(c2, 'echo'); // 3: the IP's last
  const r = await c2.request({ type: 'say', session, text: 'more' });
  assert.equal(r.type, 'error', JSON.stringify(r));
  assert.equal(r.code, 'rate_limited');
  assert.equal(r.retryable, true);
  assert.ok(r.retry_after_s >= 1 && r.retry_after_s <= 60, JSON.stringify(r));
  assert.match(r.message, /client IP 127\.0\.0\.1 is over its requests per minute/);

  const g = await post(srv.port, 'none', { model: 'x', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(g.status, 429);
  assert.equal(g.json.error.code, 'rate_limited');
  const ra = Number(g.headers['retry-after']);
  assert.ok(ra >= 1 && ra <= 60, `Retry-After ${g.headers['retry-after']}`);
  const m = await httpGet(srv.port, '/v1/models');
  assert.equal(m.status, 429, 'every /v1/ route');
  assert.equal((await httpGet(srv.port, '/healthz')).status, 200, 'health checks are not limited');
  c1.close();
  c2.close();
});

itest('a malformed limits file is refused at start-up, naming the JSON path', async () => {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmp, 'data-'));
  const cases = [
    [{ tenants: { acme: { rpm: -5 } } }, 'limits.tenants.acme.rpm: must be a positive integer'],
    [{ default: { session: { rpm: 1 } } }, 'limits.default.session.rpm: unknown field'],
    ['{"keys": {', 'limits-'],
  ];
  for (const [content, want] of cases) {
    const f = limitsFile(content);
    const r = spawnSync(BIN, ['--port', String(port), '--data-dir', dir, '--limits', f], {
      encoding: 'utf8',
      timeout: 10000,
    });
    assert.notEqual(r.status, 0, r.stderr);
    assert.ok(r.stderr.includes(want), r.stderr);
    assert.ok(r.stderr.includes(f), 'the file is named');
    const check = spawnSync(BIN, ['--check-config', '--data-dir', dir, '--limits', f], {
      encoding: 'utf8',
      timeout: 10000,
    });
    assert.equal(check.status, 1, check.stdout);
    assert.match(check.stdout, /^FAIL +limits /m);
    assert.ok(check.stdout.includes(want), check.stdout);
  }
});

itest(
  'a session cap reached between two model steps of a step agent fails the run with budget_exceeded',
  async ({ startServer }) => {
    const P = 'budget-steps';
    const usage = { prompt_tokens: 10, completion_tokens: 50 }; // $0.05 spent, $0.10 reserved a call
    fp.script([
      { text: '- energy\n- storage', usage, match: { prefix: P } },
      { text: JSON.stringify({ tags: ['solar'] }), usage, match: { prefix: P } },
      { text: 'A short summary.', usage, match: { prefix: P } },
    ]);
    const limits = limitsFile({ default: { session: { usd: 0.16 } } });
    const srv = await startServer({
      args: ['--routes', routes(P), '--limits', limits],
      env: { FAKE_KEY: 'fake-key' },
    });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'doc-analyst', {
      input: { document: 'Panels on the roof and batteries in the garage.', format: 'text' },
    });
    const failed = await waitState(c, session, 'failed', 0, 15000);
    const err = c.sessionEvents(session).find((e) => e.type === 'error');
    assert.ok(err, JSON.stringify(c.sessionEvents(session)));
    assert.equal(err.code, 'budget_exceeded');
    assert.match(
      err.message,
      new RegExp(`session ${session} has spent \\$0\\.1000 .* of its total budget of \\$0\\.1600`),
    );
    assert.equal(failed.step, 'summary', 'themes and tags ran; the summary did not start');
    assert.equal(fp.requests({ prefix: P }).length, 2);
    c.close();
  },
);

// The cost ledger archived to PostgreSQL's `usage` table (--database-url):
// calls through the fake provider, then SQL sums by feature equal GET
// /v1/usage and the provider's own counts; a database outage, then the
// catch-up, and rows sent again (a store restored from a copy) never
// doubled. PostgreSQL is started by the tests (pg-lib.mjs) on loopback.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { fakeTarget, httpGet, httpRequest, itest, sleep, writeRoutesFile } from './harness.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';
import { destroyAllPostgres, pgAvailable, startPostgres } from './pg-lib.mjs';

const skip = pgAvailable ? false : 'PostgreSQL (postgresql-15) is not installed';
const fp = useFakeProvider();
let pg;
before(async () => {
  if (!skip) pg = await startPostgres();
});
after(destroyAllPostgres);

const { KEY_A, KEY_B, keyArgs } = twoTenants('pgusage');
const PRICE = { prompt_per_mtok: 1000, completion_per_mtok: 2000 };
const USAGE = { prompt_tokens: 100, completion_tokens: 10 };
const dbName = (url) => url.slice(url.lastIndexOf('/') + 1);

function routesFor(P) {
  fp.script({ text: 'fine thanks', usage: USAGE, match: { prefix: P }, repeat: 'forever' });
  return writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] },
    prices: { 'gpt-4o-mini': PRICE },
    retry: { max_attempts: 1, base_ms: 50, max_backoff_ms: 100, max_total_ms: 2000 },
  });
}

const call = (srv, key, feature) =>
  httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    headers: { Authorization: `Bearer ${key}`, 'x-tether-feature': feature },
    body: { model: 'default', messages: [{ role: 'user', content: `about ${feature}` }] },
  });

async function calls(srv, list) {
  for (const [key, feature] of list) {
    const r = await call(srv, key, feature);
    assert.equal(r.status, 200, r.body);
  }
}

async function readyz(srv) {
  const r = await httpGet(srv.port, '/readyz');
  return Object.fromEntries(
    r.body
      .split('\n')
      .filter((l) => l.includes(': '))
      .map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
  );
}

async function metric(srv, name) {
  const r = await httpGet(srv.port, '/metrics');
  const m = r.body.match(new RegExp(`^${name} ([0-9.]+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

/** Wait for the usage archive to drain (every ledger row in PostgreSQL). */
async function waitUsageArchived(srv, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await readyz(srv);
    if (last.usage_database === 'up' && last.usage_archive_lag_rows === '0') return last;
    await sleep(100);
  }
  throw new Error(`usage archive lag did not drain: ${JSON.stringify(last)}`);
}

/** SQL: per feature of tenant, [feature, calls, prompt, completion, cost]. */
async function sqlByFeature(url, tenant) {
  const rows = await pg.query(
    `SELECT feature, count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd) FROM usage ` +
      `WHERE tenant = '${tenant}' AND day = (now() AT TIME ZONE 'UTC')::date GROUP BY feature ORDER BY feature`,
    dbName(url),
  );
  return rows.map(([f, n, p, c, cost]) => [f, Number(n), Number(p), Number(c), Number(cost)]);
}

async function apiByFeature(srv, key) {
  const r = await httpGet(srv.port, '/v1/usage?group_by=feature', {
    headers: { Authorization: `Bearer ${key}` },
  });
  assert.equal(r.status, 200, r.body);
  return r.json.groups.map((g) => [g.feature, g.calls, g.prompt_tokens, g.completion_tokens, g.cost_usd]);
}

function assertSameSums(sql, api) {
  assert.deepEqual(
    sql.map((r) => r.slice(0, 4)),
    api.map((r) => r.slice(0, 4)),
  );
  for (let i = 0; i < sql.length; i++) assert.ok(Math.abs(sql[i][4] - api[i][4]) < 1e-9, `${sql[i]} vs ${api[i]}`);
}

itest(
  'ledger rows reach the usage table: SQL sums by feature equal /v1/usage and the provider counts',
  async ({ startServer }) => {
    const P = 'pgu-sums';
    const url = await pg.newDatabase();
    const srv = await startServer({
      args: ['--routes', routesFor(P), ...keyArgs, '--usage-flush-ms', '50'],
      env: { FAKE_KEY: 'fake-key', TETHER_DATABASE_URL: url },
    });
    await calls(srv, [
      [KEY_A, 'support'],
      [KEY_A, 'support'],
      [KEY_A, 'search'],
      [KEY_B, 'support'],
    ]);
    assert.equal(fp.requests({ prefix: P }).length, 4);
    await waitUsageArchived(srv);

    const sqlA = await sqlByFeature(url, 'acme');
    assert.deepEqual(
      sqlA.map((r) => r.slice(0, 4)),
      [
        ['search', 1, 100, 10],
        ['support', 2, 200, 20],
      ],
    );
    assertSameSums(sqlA, await apiByFeature(srv, KEY_A));
    assertSameSums(await sqlByFeature(url, 'umbrella'), await apiByFeature(srv, KEY_B));
    const total = await pg.value('SELECT count(*) FROM usage', dbName(url));
    assert.equal(Number(total), fp.requests({ prefix: P }).length, 'one row per provider call');
    const row = await pg.query(
      `SELECT agent, model, outcome, cache_hit, key_id <> '' FROM usage WHERE tenant = 'umbrella'`,
      dbName(url),
    );
    assert.deepEqual(row, [['gateway', 'gpt-4o-mini', 'ok', 'f', 't']]);
    assert.equal(await metric(srv, 'tether_usage_archive_rows_total'), 4);
    assert.equal(await metric(srv, 'tether_usage_archive_lag_rows'), 0);
    assert.equal(await pg.value('SELECT max(version) FROM schema_version', dbName(url)), '4'); // events, replicated mode's tables, usage, retrieval
  },
  { skip, timeout: 40_000 },
);

itest(
  'a database outage: the lag grows, then drains; rows sent again (a restored copy) are never doubled',
  async ({ startServer }) => {
    const P = 'pgu-outage';
    const url = await pg.newDatabase();
    const args = ['--routes', routesFor(P), ...keyArgs, '--usage-flush-ms', '50', '--database-timeout-ms', '2000'];
    const env = { FAKE_KEY: 'fake-key', TETHER_DATABASE_URL: url };
    const srv = await startServer({ args, env });
    await calls(srv, [
      [KEY_A, 'support'],
      [KEY_A, 'search'],
    ]);
    await waitUsageArchived(srv);

    await pg.stop();
    await calls(srv, [
      [KEY_A, 'support'],
      [KEY_A, 'support'],
      [KEY_A, 'search'],
    ]); // served while the database is away
    let lag;
    for (let i = 0; i < 50; i++) {
      lag = await readyz(srv);
      if (lag.usage_archive_lag_rows === '3') break;
      await sleep(100);
    }
    assert.equal(lag.usage_archive_lag_rows, '3', JSON.stringify(lag));
    assert.notEqual(lag.usage_database, 'up');
    await srv.stop();
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-it-copy-'));
    try {
      fs.cpSync(srv.dataDir, copy, { recursive: true }); // the three rows still pending in it

      await pg.start();
      await srv.restart();
      await waitUsageArchived(srv);
      assertSameSums(await sqlByFeature(url, 'acme'), await apiByFeature(srv, KEY_A));
      assert.equal(Number(await pg.value('SELECT count(*) FROM usage', dbName(url))), 5);
      assert.equal(fp.requests({ prefix: P }).length, 5);
      await srv.stop();

      // The copy's marker is behind the database: its three rows go again, and are not doubled.
      const again = await startServer({ dataDir: copy, args, env });
      await waitUsageArchived(again);
      assert.equal(Number(await pg.value('SELECT count(*) FROM usage', dbName(url))), 5);
      assert.equal(await metric(again, 'tether_usage_archive_duplicates_total'), 3);
      assert.equal(await metric(again, 'tether_usage_archive_rows_total'), 0);
      assertSameSums(await sqlByFeature(url, 'acme'), await apiByFeature(again, KEY_A));
      await again.stop();
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  },
  { skip, timeout: 60_000 },
);

itest(
  'replicated mode archives the ledger too',
  async ({ startServer }) => {
    const P = 'pgu-repl';
    const url = await pg.newDatabase();
    const srv = await startServer({
      args: [
        '--routes',
        routesFor(P),
        ...keyArgs,
        '--usage-flush-ms',
        '50',
        '--database-url',
        url,
        '--durability',
        'replicated',
        '--node-id',
        'n1',
      ],
      env: { FAKE_KEY: 'fake-key' },
    });
    await calls(srv, [
      [KEY_A, 'support'],
      [KEY_B, 'search'],
    ]);
    await waitUsageArchived(srv);
    assertSameSums(await sqlByFeature(url, 'acme'), await apiByFeature(srv, KEY_A));
    assertSameSums(await sqlByFeature(url, 'umbrella'), await apiByFeature(srv, KEY_B));
    assert.equal(Number(await pg.value('SELECT count(*) FROM usage', dbName(url))), 2);
  },
  { skip, timeout: 40_000 },
);

/**
 * The README's "What the models cost" section: its curl requests ({url,
 * headers}) and its SQL, as written there (so the doc cannot drift from
 * what the server answers).
 */
function readmeUsageDoc() {
  const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('### What the models cost');
  assert.ok(start >= 0, 'the README has its "What the models cost" section');
  const next = readme.slice(start + 4).search(/\n#{2,3} /); // the next heading (## or ###)
  const section = readme.slice(start, next < 0 ? undefined : start + 4 + next);
  const sh = section.match(/```sh\n([\s\S]*?)```/);
  const sql = section.match(/```sql\n([\s\S]*?)```/);
  assert.ok(sh && sql, 'the section has an sh and an sql block');
  const commands = sh[1]
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim().startsWith('curl '));
  const curls = commands.map((c) => {
    const quoted = [...c.matchAll(/(-H\s+)?"([^"]*)"/g)];
    const url = quoted.find((q) => !q[1] && q[2].startsWith('http'))?.[2];
    const headers = Object.fromEntries(
      quoted
        .filter((q) => q[1])
        .map((q) => [q[2].slice(0, q[2].indexOf(':')), q[2].slice(q[2].indexOf(':') + 1).trim()]),
    );
    return { url, headers };
  });
  return { curls, sql: sql[1] };
}

itest(
  "the README's spend by feature per day: its curl requests and its SQL, run against a live server",
  async ({ startServer }) => {
    const P = 'pgu-readme';
    const url = await pg.newDatabase();
    const srv = await startServer({
      args: ['--routes', routesFor(P), ...keyArgs, '--usage-flush-ms', '50'],
      env: { FAKE_KEY: 'fake-key', TETHER_DATABASE_URL: url },
    });
    await calls(srv, [
      [KEY_A, 'support'],
      [KEY_A, 'support'],
      [KEY_A, 'search'],
      [KEY_B, 'support'],
    ]);
    await waitUsageArchived(srv);
    const today = new Date().toISOString().slice(0, 10);
    const doc = readmeUsageDoc();
    assert.ok(doc.curls.length >= 2, JSON.stringify(doc.curls));
    const byFeature = [];
    for (const { url: u, headers } of doc.curls) {
      const live = new URL(u);
      assert.equal(live.pathname, '/v1/usage');
      assert.match(live.search, /from=\d{4}-\d\d-\d\d&to=\d{4}-\d\d-\d\d&group_by=(feature|day)$/);
      // The documented dates, moved to today (the day the calls were made).
      const query = live.search.replace(/\d{4}-\d\d-\d\d/g, today);
      const r = await httpGet(srv.port, `/v1/usage${query}`, {
        headers: { ...headers, Authorization: headers.Authorization.replace('$KEY', KEY_A) },
      });
      assert.equal(r.status, 200, `${u}: ${r.body}`);
      if (headers.Accept === 'text/csv') {
        const rows = r.body.trim().split('\n');
        assert.match(rows[0], /^feature,calls,/);
        assert.deepEqual(
          rows.slice(1).map((x) => x.split(',').slice(0, 2)),
          [
            ['search', '1'],
            ['support', '2'],
          ],
        );
      } else if (live.search.includes('group_by=feature')) {
        byFeature.push(
          ...r.json.groups.map((g) => [today, g.feature, g.calls, g.prompt_tokens, g.completion_tokens, g.cost_usd]),
        );
      } else {
        assert.deepEqual(
          r.json.groups.map((g) => [g.day, g.calls]),
          [[today, 3]],
        );
      }
    }
    assert.deepEqual(
      byFeature.map((g) => g.slice(1, 3)),
      [
        ['search', 1],
        ['support', 2],
      ],
    );
    // The SQL as documented: the key's tenant is acme; the dates moved to today.
    const sql = doc.sql.replace(/\d{4}-\d\d-\d\d/g, today);
    assert.match(sql, /tenant = 'acme'/);
    const rows = (await pg.query(sql, dbName(url))).map(([d, f, n, p, c, cost]) => [
      d,
      f,
      Number(n),
      Number(p),
      Number(c),
      Number(cost),
    ]);
    assert.deepEqual(
      rows.map((r) => r.slice(0, 5)),
      byFeature.map((g) => g.slice(0, 5)),
    );
    for (let i = 0; i < rows.length; i++) assert.ok(Math.abs(rows[i][5] - byFeature[i][5]) < 1e-9);
  },
  { skip, timeout: 40_000 },
);

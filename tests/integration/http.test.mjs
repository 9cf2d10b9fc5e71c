// HTTP endpoints: health, readiness, metrics, the web UI, POST /v1/tokens.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, connect, httpGet, httpRequest, itest, openSession, sayAndWait, sleep, verifyJwt } from './harness.mjs';

const SECRET = 'http-test-secret-0123456789abcdef-0123456789';

/** Parse Prometheus text into [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\d+)?$/);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const labels = {};
    if (m[3]) {
      for (const kv of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `labels`; undefined if none. */
function metric(samples, name, labels = {}) {
  let sum;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
    sum = (sum ?? 0) + s.value;
  }
  return sum;
}

async function scrape(port) {
  const r = await httpGet(port, '/metrics');
  assert.equal(r.status, 200, `/metrics status ${r.status}: ${r.body.slice(0, 300)}`);
  assert.match(String(r.headers['content-type']), /^text\/plain/, 'metrics content-type');
  return parseMetrics(r.body);
}

itest('GET /healthz, /readyz and / (web/index.html) answer 200', async ({ startServer }) => {
  const srv = await startServer();
  assert.equal((await httpGet(srv.port, '/healthz')).status, 200);
  assert.equal((await httpGet(srv.port, '/readyz')).status, 200);
  const root = await httpGet(srv.port, '/');
  assert.equal(root.status, 200);
  assert.match(String(root.headers['content-type']), /text\/html/);
  const index = fs.readFileSync(path.join(REPO, 'web', 'index.html'), 'utf8');
  assert.equal(root.body, index, 'GET / must serve web/index.html');
});

itest(
  '--node-id is announced in welcome.node, the node: line of /readyz and X-Tether-Node',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--node-id', 'eu-west.n_7'] });
    const c = await connect(srv.port, { hello: true });
    assert.equal(c.welcome.node, 'eu-west.n_7');
    const ready = await httpGet(srv.port, '/readyz');
    assert.equal(ready.body, 'ready\nnode: eu-west.n_7\n');
    for (const p of ['/healthz', '/readyz', '/metrics', '/v1/tokens', '/v1/models'])
      assert.equal((await httpGet(srv.port, p)).headers['x-tether-node'], 'eu-west.n_7', p);
    // Without the flag: <hostname>-<pid>, the same in all three places.
    const dflt = await startServer();
    const d = await connect(dflt.port, { hello: true });
    assert.match(d.welcome.node, new RegExp(`^[A-Za-z0-9._-]+-${dflt.proc.pid}$`));
    assert.equal((await httpGet(dflt.port, '/healthz')).headers['x-tether-node'], d.welcome.node);
  },
);

itest('metrics expose the documented families and the counters move with traffic', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
  const m0 = await scrape(srv.port);
  for (const name of [
    'tether_connections',
    'tether_sessions_memory',
    'tether_sessions_stored',
    'tether_events_appended_total',
    'tether_frames_in_total',
    'tether_frames_out_total',
    'tether_commit_seconds_bucket',
  ]) {
    assert.notEqual(metric(m0, name), undefined, `metric ${name} missing from /metrics`);
  }
  assert.ok(
    m0.some((s) => s.name === 'tether_commit_seconds_bucket' && s.labels.le === '+Inf'),
    'tether_commit_seconds histogram needs an le="+Inf" bucket',
  );

  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c);
  await sayAndWait(c, session, 'count these words', 'm1');
  const bad = await c.request({ type: 'no.such.type' }, undefined, { invalid: true });
  assert.equal(bad.type, 'error');
  assert.equal(bad.code, 'bad_request');

  const m1 = await scrape(srv.port);
  assert.ok(metric(m1, 'tether_connections') >= 1, 'tether_connections counts the open socket');
  assert.ok(metric(m1, 'tether_sessions_memory') >= 1, 'tether_sessions_memory counts the open session');
  // 1 (opening state) + user, running, start, 3 deltas, end, idle = 9 events at least
  assert.ok(
    metric(m1, 'tether_events_appended_total') - metric(m0, 'tether_events_appended_total') >= 9,
    'tether_events_appended_total must grow by the events of one turn',
  );
  assert.ok(
    metric(m1, 'tether_frames_in_total') - metric(m0, 'tether_frames_in_total') >= 4,
    'tether_frames_in_total must count hello, open, say, the bad frame',
  );
  assert.ok(
    metric(m1, 'tether_frames_out_total') - metric(m0, 'tether_frames_out_total') >= 13,
    'tether_frames_out_total must count replies and events sent',
  );
  assert.ok(
    metric(m1, 'tether_commit_seconds_bucket', { le: '+Inf' }) >
      metric(m0, 'tether_commit_seconds_bucket', { le: '+Inf' }),
    'commits happened, so the +Inf bucket of tether_commit_seconds must grow',
  );
  const e0 = metric(m0, 'tether_errors_total', { code: 'bad_request' }) ?? 0;
  const e1 = metric(m1, 'tether_errors_total', { code: 'bad_request' });
  assert.ok(
    e1 !== undefined && e1 >= e0 + 1,
    `tether_errors_total{code="bad_request"} must count the error (before ${e0}, after ${e1})`,
  );

  // Stored sessions are counted once committed.
  let stored = metric(m1, 'tether_sessions_stored');
  for (let i = 0; i < 20 && !(stored >= 1); i++) {
    await sleep(50);
    stored = metric(await scrape(srv.port), 'tether_sessions_stored');
  }
  assert.ok(stored >= 1, 'tether_sessions_stored counts the session');

  await c.close();
  let conns = metric(await scrape(srv.port), 'tether_connections');
  for (let i = 0; i < 20 && conns !== 0; i++) {
    await sleep(50);
    conns = metric(await scrape(srv.port), 'tether_connections');
  }
  assert.equal(conns, 0, 'tether_connections returns to 0 after the socket closes');
});

itest(
  'POST /v1/tokens: a good API key mints an HS256 JWT that verifies with the shared secret',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--api-key', 'key-one:acme', '--jwt-secret', SECRET] });
    const now = Math.floor(Date.now() / 1000);
    const r = await httpRequest(srv.port, 'POST', '/v1/tokens', {
      headers: { Authorization: 'Bearer key-one' },
      body: { user: 'u1', ttl_s: 3600 },
    });
    assert.equal(r.status, 200, r.body);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.equal(typeof r.json.token, 'string');
    assert.ok(Number.isInteger(r.json.expires_at), `expires_at: ${r.body}`);
    assert.ok(
      Math.abs(r.json.expires_at - (now + 3600)) <= 5,
      `expires_at ${r.json.expires_at} vs now+3600 ${now + 3600}`,
    );
    // Independent verification with node's crypto.
    const { header, payload } = verifyJwt(r.json.token, SECRET);
    assert.equal(header.alg, 'HS256');
    assert.equal(payload.sub, 'u1');
    assert.equal(payload.tenant, 'acme');
    assert.equal(payload.exp, r.json.expires_at);
    // And the server accepts its own token.
    const c = await connect(srv.port, { token: r.json.token });
    assert.equal(c.welcome.type, 'welcome');
  },
);

itest('POST /v1/tokens: wrong or missing API key is 401 unauthenticated', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'key-one', '--jwt-secret', SECRET] });
  for (const headers of [
    { Authorization: 'Bearer key-two' },
    {},
    { Authorization: 'Basic a2V5LW9uZTo=' },
    { Authorization: 'Bearer ' },
  ]) {
    const r = await httpRequest(srv.port, 'POST', '/v1/tokens', { headers, body: { user: 'u1', ttl_s: 60 } });
    assert.equal(r.status, 401, `headers ${JSON.stringify(headers)} → ${r.status} ${r.body}`);
    assert.equal(r.json?.error?.code, 'unauthenticated', `body ${r.body}`);
    assert.equal(typeof r.json.error.message, 'string');
  }
});

itest('POST /v1/tokens: a bad body is 400 bad_request', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'key-one', '--jwt-secret', SECRET] });
  const bodies = [
    'not json',
    '[]',
    '{}',
    JSON.stringify({ user: 5, ttl_s: 60 }),
    JSON.stringify({ user: 'u1', ttl_s: 'x' }),
    JSON.stringify({ user: '', ttl_s: 60 }),
    JSON.stringify({ user: 'u1', ttl_s: -5 }),
  ];
  for (const body of bodies) {
    const r = await httpRequest(srv.port, 'POST', '/v1/tokens', { headers: { Authorization: 'Bearer key-one' }, body });
    assert.equal(r.status, 400, `body ${body} → ${r.status} ${r.body}`);
    assert.equal(r.json?.error?.code, 'bad_request', `body ${body} → ${r.body}`);
  }
});

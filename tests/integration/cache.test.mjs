// The exact response cache (issue 13): a deterministic request asked again
// is answered from the cache, through the gateway (the official `openai`
// client, and raw bodies with their keys in another order and 1.0 for 1) and
// over the socket (a chat agent on a route with "always"); a streamed hit is
// replayed as SSE; entries expire; tenants never share; temperature > 0 is
// not cached. The fake provider counts what reached it.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
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

const { KEY_A, KEY_B, keyArgs } = twoTenants('cache');
const PRICE = { prompt_per_mtok: 1000, completion_per_mtok: 2000 };
const USAGE = { prompt_tokens: 12, completion_tokens: 3 };

async function cacheServer(startServer, P, { cache, text = 'the answer is four', args = [] } = {}) {
  fp.script({ text, usage: USAGE, match: { prefix: P }, repeat: 'forever' });
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P)] },
    prices: { 'gpt-4o-mini': PRICE },
    retry: { max_attempts: 1 },
    ...(cache ? { cache } : {}),
  });
  return startServer({
    args: ['--routes', routes, ...keyArgs, ...args],
    env: { FAKE_KEY: 'fake-key' },
  });
}

const calls = (P) => fp.requests({ prefix: P }).length;

const post = (srv, body, key = KEY_A) =>
  httpRequest(srv.port, 'POST', '/v1/chat/completions', {
    headers: { Authorization: `Bearer ${key}` },
    body,
  });

function metricValue(page, name) {
  let sum = 0;
  let found = false;
  for (const line of page.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      found = true;
    }
  }
  return found ? sum : undefined;
}

itest(
  'gateway: a request with its keys in another order and 1.0 for 1 hits; cached usage costs 0',
  async ({ startServer }) => {
    const P = 'cache-order';
    const srv = await cacheServer(startServer, P, { args: ['--log-level', 'debug', '--usage-flush-ms', '50'] });
    // The same request written twice by hand: keys reordered at every depth,
    // numbers written differently.
    const first =
      '{"model":"default","temperature":0,"max_tokens":50,"messages":[{"role":"user","content":"2+2?"}],' +
      '"tools":[{"type":"function","function":{"name":"calc","parameters":{"type":"object","properties":{"x":{"type":"number","minimum":1}}}}}]}';
    const second =
      '{"tools":[{"function":{"parameters":{"properties":{"x":{"minimum":1.0,"type":"number"}},"type":"object"},"name":"calc"},"type":"function"}],' +
      '"messages":[{"content":"2+2?","role":"user"}],"max_tokens":50,"temperature":0.0,"model":"default"}';
    const a = await post(srv, first);
    assert.equal(a.status, 200, a.body);
    assert.equal(a.json.usage.cached, undefined);
    assert.ok(a.json.usage.cost_usd > 0);
    assert.equal(calls(P), 1);
    const b = await post(srv, second);
    assert.equal(b.status, 200, b.body);
    assert.equal(calls(P), 1, 'the second request never reached the provider');
    assert.equal(b.json.choices[0].message.content, a.json.choices[0].message.content);
    assert.equal(b.json.usage.cached, true);
    assert.equal(b.json.usage.cost_usd, 0);
    assert.equal(b.json.usage.prompt_tokens, a.json.usage.prompt_tokens);

    // The official client, objects built in two key orders.
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY_A, maxRetries: 0, timeout: 8000 });
    const c1 = await client.chat.completions.create({
      model: 'default',
      temperature: 0,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'capital of France?' },
      ],
    });
    const c2 = await client.chat.completions.create({
      messages: [
        { content: 'be brief', role: 'system' },
        { content: 'capital of France?', role: 'user' },
      ],
      temperature: 0,
      model: 'default',
    });
    assert.equal(calls(P), 2);
    assert.equal(c2.choices[0].message.content, c1.choices[0].message.content);
    assert.equal(c2.usage.cached, true);

    // Attribution: a log line with cache_hit true, a ledger row, the counters.
    await sleep(150);
    const hits = llmCallLines(srv.output).filter((l) => l.cache_hit === true);
    assert.equal(hits.length, 2, srv.output);
    assert.equal(hits[0].tenant, 'acme');
    assert.equal(hits[0].agent, 'gateway');
    assert.equal(hits[0].cost_usd, 0);
    const u = await httpGet(srv.port, '/v1/usage?group_by=tenant', { headers: { Authorization: `Bearer ${KEY_A}` } });
    assert.equal(u.status, 200, u.body);
    assert.equal(u.json.total.calls, 4);
    assert.equal(u.json.total.cache_hits, 2);
    assert.equal(u.json.total.prompt_tokens, 2 * USAGE.prompt_tokens, 'a hit spends no tokens');
    const m = await httpGet(srv.port, '/metrics');
    assert.equal(metricValue(m.body, 'tether_cache_hits_total'), 2, m.body);
    assert.equal(metricValue(m.body, 'tether_cache_misses_total'), 2);
    assert.match(m.body, /tether_cache_hits_total\{route="default"\} 2/);
    assert.equal(metricValue(m.body, 'tether_cache_entries'), 2);
    assert.ok(metricValue(m.body, 'tether_cache_bytes') > 0);
    assert.equal(metricValue(m.body, 'tether_cache_evictions_total'), 0);
  },
);

itest('gateway: a streamed request that hits is replayed as the same SSE chunks', async ({ startServer }) => {
  const P = 'cache-stream';
  const srv = await cacheServer(startServer, P, { text: 'one two three four five' });
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY_A, maxRetries: 0, timeout: 8000 });
  const ask = async () => {
    const stream = await client.chat.completions.create({
      model: 'default',
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'count to five' }],
    });
    const deltas = [];
    let usage;
    let finish;
    for await (const ch of stream) {
      if (ch.usage) usage = ch.usage;
      const c = ch.choices[0];
      if (c?.delta?.content) deltas.push(c.delta.content);
      if (c?.finish_reason) finish = c.finish_reason;
    }
    return { deltas, usage, finish };
  };
  const miss = await ask();
  assert.equal(calls(P), 1);
  assert.ok(miss.deltas.length > 1, 'the provider streamed several chunks');
  const hit = await ask();
  assert.equal(calls(P), 1, 'the replay never reached the provider');
  assert.deepEqual(hit.deltas, miss.deltas, 'the same chunks, in order');
  assert.equal(hit.finish, miss.finish);
  assert.equal(hit.usage.cached, true);
  assert.equal(hit.usage.cost_usd, 0);
  // Raw bytes: SSE framing, [DONE] at the end.
  const raw = await post(srv, {
    model: 'default',
    temperature: 0,
    stream: true,
    messages: [{ role: 'user', content: 'count to five' }],
  });
  assert.equal(raw.status, 200);
  assert.match(raw.headers['content-type'], /text\/event-stream/);
  assert.match(raw.body, /^data: \{/);
  assert.match(raw.body, /data: \[DONE\]\n\n$/);
  assert.equal(calls(P), 1);
  // A plain request is served by the streamed answer too (stream is not in the key).
  const plain = await post(srv, {
    model: 'default',
    temperature: 0,
    messages: [{ role: 'user', content: 'count to five' }],
  });
  assert.equal(plain.json.choices[0].message.content, miss.deltas.join(''));
  assert.equal(calls(P), 1);
});

itest('an entry expires after the route TTL', async ({ startServer }) => {
  const P = 'cache-ttl';
  const srv = await cacheServer(startServer, P, { cache: { ttl_s: 3600, routes: { default: { ttl_s: 1 } } } });
  const body = { model: 'default', temperature: 0, messages: [{ role: 'user', content: 'ttl?' }] };
  assert.equal((await post(srv, body)).status, 200);
  assert.equal((await post(srv, body)).json.usage.cached, true);
  assert.equal(calls(P), 1);
  await sleep(1300);
  const late = await post(srv, body);
  assert.equal(late.json.usage.cached, undefined, 'expired: asked again');
  assert.equal(calls(P), 2);
  assert.equal((await post(srv, body)).json.usage.cached, true, 'and kept again');
  assert.equal(calls(P), 2);
});

itest(
  'tenants never share entries; temperature > 0 is not cached; a route can turn it off',
  async ({ startServer }) => {
    const P = 'cache-tenants';
    const srv = await cacheServer(startServer, P);
    const body = { model: 'default', temperature: 0, messages: [{ role: 'user', content: 'secret plan?' }] };
    assert.equal((await post(srv, body, KEY_A)).status, 200);
    const other = await post(srv, body, KEY_B);
    assert.equal(other.status, 200);
    assert.equal(other.json.usage.cached, undefined, 'another tenant misses');
    assert.equal(calls(P), 2);
    assert.equal((await post(srv, body, KEY_B)).json.usage.cached, true, 'its own entry hits');
    assert.equal((await post(srv, body, KEY_A)).json.usage.cached, true);
    assert.equal(calls(P), 2);

    const warm = { model: 'default', temperature: 0.7, messages: [{ role: 'user', content: 'a poem' }] };
    await post(srv, warm);
    const again = await post(srv, warm);
    assert.equal(again.json.usage.cached, undefined);
    const unset = { model: 'default', messages: [{ role: 'user', content: 'a poem' }] };
    await post(srv, unset);
    await post(srv, unset);
    assert.equal(calls(P), 6, 'temperature 0.7 and no temperature: every call reaches the provider');

    const P2 = 'cache-off';
    const off = await cacheServer(startServer, P2, { cache: { routes: { default: { enabled: false } } } });
    await post(off, body);
    await post(off, body);
    assert.equal(calls(P2), 2);
  },
);

itest('a routes file with a bad cache setting is refused at start-up, naming the path', async ({ startServer }) => {
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, 'cache-bad')] },
    cache: { routes: { nope: { ttl_s: 5 } } },
  });
  await assert.rejects(startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'k' } }), (e) =>
    /cache\.routes: \\"nope\\" is not a route|cache\.routes: "nope" is not a route/.test(String(e.message)),
  );
});

itest(
  'socket: a chat agent on a route with "always" gets a repeated question from the cache',
  async ({ startServer }) => {
    const P = 'cache-agent';
    const srv = await cacheServer(startServer, P, { cache: { routes: { default: { always: true } } } });
    const ask = async (n) => {
      const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
      const { session } = await openSession(c, 'chat');
      await c.waitEvent((e) => e.session === session && e.seq === 1);
      const { events } = await sayAndWait(c, session, 'what is 2+2?', `m-cache-${n}`);
      c.close();
      const text = events
        .filter((e) => e.type === 'delta')
        .map((e) => e.text)
        .join('');
      const deltas = events.filter((e) => e.type === 'delta').length;
      return { end: events.find((e) => e.type === 'message.end'), text, deltas };
    };
    const first = await ask(1);
    assert.ok(first.end, 'a message.end');
    assert.equal(first.end.usage.cached, false);
    assert.equal(calls(P), 1);
    const second = await ask(2);
    assert.equal(calls(P), 1, 'the second session was answered from the cache');
    assert.equal(second.end.usage.cached, true);
    assert.equal(second.end.usage.cost_usd, 0);
    assert.equal(second.text, first.text);
    assert.equal(second.deltas, first.deltas, 'replayed as the same deltas');
  },
);

itest(
  'gateway: a long streamed answer replays whole under back-pressure (more SSE than the stream buffer)',
  async ({ startServer }) => {
    const P = 'cache-long';
    // 2,500 chunks of 500 bytes: 1.6 MB of SSE, over the gateway's 1 MiB
    // stream buffer: the replay must pause and resume as an upstream would.
    const words = Array.from({ length: 2500 }, (_, i) => `${i}`.padEnd(500, 'x')).join(' ');
    const srv = await cacheServer(startServer, P, { text: words, cache: { entry_max_bytes: 4 << 20 } });
    const body = { model: 'default', temperature: 0, stream: true, messages: [{ role: 'user', content: 'long' }] };
    const collect = (raw) =>
      raw.body
        .split('\n\n')
        .filter((l) => l.startsWith('data: {'))
        .map((l) => JSON.parse(l.slice(6)).choices[0]?.delta?.content ?? '')
        .join('');
    const miss = await post(srv, body);
    assert.equal(miss.status, 200);
    const hit = await post(srv, body);
    assert.equal(hit.status, 200);
    assert.equal(calls(P), 1);
    assert.ok(hit.body.length > 1.5 * 1024 * 1024, `${hit.body.length} bytes of SSE`);
    assert.match(hit.body, /data: \[DONE\]\n\n$/);
    assert.equal(collect(hit), words);
    assert.equal(collect(miss), words);
  },
  { timeout: 60_000 },
);

itest(
  'socket: an assistant with "cache": true opts in on a route without "always"; others do not',
  async ({ startServer }) => {
    const P = 'cache-assistant';
    fp.script({ text: 'cached help', usage: USAGE, match: { prefix: P }, repeat: 'forever' });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-cache-agents-'));
    const agents = path.join(dir, 'agents.json');
    writeFileSync(agents, JSON.stringify({ agents: [{ name: 'faq', cache: true }, { name: 'fresh' }] }));
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] }, retry: { max_attempts: 1 } });
    const srv = await startServer({
      args: ['--routes', routes, '--agents', agents, '--api-key', `${KEY_A}:acme`],
      env: { FAKE_KEY: 'fake-key' },
    });
    const ask = async (agent, n) => {
      const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
      const { session } = await openSession(c, agent);
      await c.waitEvent((e) => e.session === session && e.seq === 1);
      const { events } = await sayAndWait(c, session, 'opening hours?', `m-${agent}-${n}`);
      c.close();
      return events.find((e) => e.type === 'message.end');
    };
    assert.equal((await ask('faq', 1)).usage.cached, false);
    assert.equal((await ask('faq', 2)).usage.cached, true);
    assert.equal(calls(P), 1);
    assert.equal((await ask('fresh', 1)).usage.cached, false);
    assert.equal((await ask('fresh', 2)).usage.cached, false);
    assert.equal(calls(P), 3);
  },
);

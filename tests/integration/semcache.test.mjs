// The semantic cache (issue 13): a question asked again in other words is
// answered from the cache through the gateway and over the socket; an
// unrelated question, another tenant's, a call with tools and a multi-turn
// conversation are not (unless opted in); the threshold is the route's; a
// streamed hit is replayed as SSE; entries survive a restart. The fake
// provider's embeddings are a hashed bag of words (texts sharing their
// words are close), and it counts what reached it.

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

const { KEY_A, KEY_B, keyArgs } = twoTenants('semcache');
const USAGE = { prompt_tokens: 12, completion_tokens: 3 };
const PRICE = { prompt_per_mtok: 1000, completion_per_mtok: 2000 };

// Questions and their bag-of-words cosine with Q (stop words left out):
const Q = 'What is the capital of France?'; // {capital, france}
const SAME = 'Capital of France: what is it?'; // {capital, france}: 1.0
const NEAR = 'The capital of France, please'; // {capital, france, please}: 0.816
const UNRELATED = 'How do I reset my password?'; // nothing shared: ~0

function semRoutes(P, { route = { enabled: true }, extra = {} } = {}) {
  return writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P)], embed: [fakeTarget(fp.url, `${P}-emb`)] },
    prices: { 'gpt-4o-mini': PRICE },
    retry: { max_attempts: 1 },
    semantic_cache: { embed_route: 'embed', dimensions: 256, routes: route ? { default: route } : {}, ...extra },
  });
}

async function semServer(startServer, P, { text = 'Paris.', args = [], route, extra, dataDir } = {}) {
  fp.script({ text, usage: USAGE, match: { prefix: P }, repeat: 'forever' });
  return startServer({
    dataDir,
    args: ['--routes', semRoutes(P, { route, extra }), ...keyArgs, '--usage-flush-ms', '50', ...args],
    env: { FAKE_KEY: 'fake-key' },
  });
}

const calls = (P) => fp.requests({ prefix: P }).length;
const embeds = (P) => fp.requests({ prefix: `${P}-emb` }).length;

const post = (srv, body, key = KEY_A) =>
  httpRequest(srv.port, 'POST', '/v1/chat/completions', { headers: { Authorization: `Bearer ${key}` }, body });

const ask = (srv, content, { key, ...more } = {}) =>
  post(srv, { model: 'default', temperature: 0.7, messages: [{ role: 'user', content }], ...more }, key);

function metricValue(page, name) {
  const line = page.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

itest(
  'gateway: a paraphrase hits (cached, cost 0, ledger and log); an unrelated question misses',
  async ({ startServer }) => {
    const P = 'sem-hit';
    const srv = await semServer(startServer, P, { args: ['--log-level', 'debug'] });
    const a = await ask(srv, Q);
    assert.equal(a.status, 200, a.body);
    assert.equal(a.json.usage.cached, undefined);
    assert.equal(calls(P), 1);
    assert.equal(embeds(P), 1, 'the question was embedded');
    await sleep(100); // the insert runs in the thread pool
    const b = await ask(srv, SAME);
    assert.equal(b.status, 200, b.body);
    assert.equal(calls(P), 1, 'the paraphrase never reached the provider');
    assert.equal(b.json.choices[0].message.content, 'Paris.');
    assert.equal(b.json.usage.cached, true);
    assert.equal(b.json.usage.cost_usd, 0);
    assert.equal(b.json.usage.prompt_tokens, a.json.usage.prompt_tokens);

    // The false hit: nothing in common, asked of the provider.
    const c = await ask(srv, UNRELATED);
    assert.equal(c.status, 200);
    assert.equal(c.json.usage.cached, undefined);
    assert.equal(calls(P), 2);

    await sleep(150);
    const hits = llmCallLines(srv.output).filter((l) => l.cache_hit === true);
    assert.equal(hits.length, 1, srv.output);
    assert.equal(hits[0].cache, 'semantic');
    assert.ok(hits[0].similarity >= 0.92, `similarity ${hits[0].similarity}`);
    assert.equal(hits[0].tenant, 'acme');
    assert.equal(hits[0].cost_usd, 0);
    const u = await httpGet(srv.port, '/v1/usage?group_by=tenant', { headers: { Authorization: `Bearer ${KEY_A}` } });
    assert.equal(u.status, 200, u.body);
    // two answers, one hit, and the three lookups' embeddings, attributed to the asking tenant
    assert.equal(u.json.total.calls, 6, u.body);
    assert.equal(u.json.total.cache_hits, 1);
    assert.equal(calls(`${P}-emb`), 3, 'one embedding per lookup');
    const embTokens = u.json.total.prompt_tokens - 2 * USAGE.prompt_tokens;
    assert.ok(embTokens > 0, 'the embeddings are in the ledger; a hit spends no tokens');
    const m = await httpGet(srv.port, '/metrics');
    assert.equal(metricValue(m.body, 'tether_semcache_hits_total'), 1, m.body);
    assert.equal(metricValue(m.body, 'tether_semcache_misses_total'), 2);
    assert.equal(metricValue(m.body, 'tether_semcache_entries'), 2);
    assert.equal(metricValue(m.body, 'tether_semcache_embed_errors_total'), 0);
  },
);

itest('another tenant asking the same question misses; its own entry then hits', async ({ startServer }) => {
  const P = 'sem-tenants';
  const srv = await semServer(startServer, P);
  assert.equal((await ask(srv, Q)).status, 200);
  await sleep(100);
  const other = await ask(srv, Q, { key: KEY_B });
  assert.equal(other.json.usage.cached, undefined, 'another tenant misses');
  assert.equal(calls(P), 2);
  await sleep(100);
  assert.equal((await ask(srv, SAME, { key: KEY_B })).json.usage.cached, true);
  assert.equal((await ask(srv, SAME)).json.usage.cached, true);
  assert.equal(calls(P), 2);
});

itest('calls with tools and multi-turn conversations are not looked up unless opted in', async ({ startServer }) => {
  const P = 'sem-scope';
  const srv = await semServer(startServer, P);
  const tools = [{ type: 'function', function: { name: 'calc', parameters: { type: 'object', properties: {} } } }];
  await ask(srv, Q, { tools });
  await sleep(100);
  const t = await ask(srv, SAME, { tools });
  assert.equal(t.json.usage.cached, undefined);
  assert.equal(embeds(P), 0, 'a call with tools is never embedded');
  const turns = (last) => [
    { role: 'user', content: 'hello' },
    { role: 'assistant', content: 'hi' },
    { role: 'user', content: last },
  ];
  await post(srv, { model: 'default', temperature: 0.7, messages: turns(Q) });
  await sleep(100);
  const mt = await post(srv, { model: 'default', temperature: 0.7, messages: turns(SAME) });
  assert.equal(mt.json.usage.cached, undefined);
  assert.equal(embeds(P), 0, 'nor a conversation with two user messages');
  assert.equal(calls(P), 4);

  // Opted in on the route: both are looked up (the earlier turns must match).
  const P2 = 'sem-scope-in';
  const srv2 = await semServer(startServer, P2, { route: { enabled: true, multi_turn: true, tools: true } });
  await ask(srv2, Q, { tools });
  await sleep(100);
  assert.equal((await ask(srv2, SAME, { tools })).json.usage.cached, true);
  await post(srv2, { model: 'default', temperature: 0.7, messages: turns(Q) });
  await sleep(100);
  assert.equal(
    (await post(srv2, { model: 'default', temperature: 0.7, messages: turns(SAME) })).json.usage.cached,
    true,
  );
  assert.equal(calls(P2), 2);
});

itest(
  'the threshold is respected: 0.82 close misses at the default 0.92, hits at a route 0.8',
  async ({ startServer }) => {
    const P = 'sem-threshold';
    const srv = await semServer(startServer, P);
    await ask(srv, Q);
    await sleep(100);
    assert.equal((await ask(srv, NEAR)).json.usage.cached, undefined, '0.816 < 0.92');
    assert.equal(calls(P), 2);

    const P2 = 'sem-threshold-low';
    const low = await semServer(startServer, P2, { route: { enabled: true, threshold: 0.8 } });
    await ask(low, Q);
    await sleep(100);
    assert.equal((await ask(low, NEAR)).json.usage.cached, true, '0.816 >= 0.8');
    assert.equal(calls(P2), 1);

    const P3 = 'sem-off';
    const off = await semServer(startServer, P3, { route: { enabled: false } });
    await ask(off, Q);
    await sleep(100);
    assert.equal((await ask(off, Q)).json.usage.cached, undefined, 'enabled: false');
    assert.equal(embeds(P3), 0);
  },
);

itest('gateway: a streamed request that hits is replayed as SSE chunks', async ({ startServer }) => {
  const P = 'sem-stream';
  const srv = await semServer(startServer, P, { text: 'one two three four five' });
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: KEY_A, maxRetries: 0, timeout: 8000 });
  const streamed = async (content) => {
    const stream = await client.chat.completions.create({
      model: 'default',
      temperature: 0.7,
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content }],
    });
    const deltas = [];
    let usage;
    for await (const ch of stream) {
      if (ch.usage) usage = ch.usage;
      if (ch.choices[0]?.delta?.content) deltas.push(ch.choices[0].delta.content);
    }
    return { deltas, usage };
  };
  const miss = await streamed(Q);
  assert.ok(miss.deltas.length > 1);
  await sleep(100);
  const hit = await streamed(SAME);
  assert.equal(calls(P), 1, 'the replay never reached the provider');
  assert.deepEqual(hit.deltas, miss.deltas, 'the same chunks, in order');
  assert.equal(hit.usage.cached, true);
  assert.equal(hit.usage.cost_usd, 0);
  const raw = await ask(srv, SAME, { stream: true });
  assert.match(raw.headers['content-type'], /text\/event-stream/);
  assert.match(raw.body, /data: \[DONE\]\n\n$/);
  assert.equal(calls(P), 1);
});

itest('entries survive a restart', async ({ startServer }) => {
  const P = 'sem-restart';
  const srv = await semServer(startServer, P);
  assert.equal((await ask(srv, Q)).status, 200);
  await sleep(300); // inserted, and flushed to LMDB
  await srv.stop();
  await srv.restart();
  // read back in the thread pool once it listens: waited for
  for (let i = 0; i < 500 && !/semantic cache ready.*"entries":1/.test(srv.output); i++) await sleep(10);
  assert.match(srv.output, /semantic cache ready.*"entries":1/);
  assert.equal(metricValue((await httpGet(srv.port, '/metrics')).body, 'tether_semcache_loading'), 0);
  const b = await ask(srv, SAME);
  assert.equal(b.json.usage.cached, true);
  assert.equal(b.json.choices[0].message.content, 'Paris.');
  assert.equal(calls(P), 1);
});

itest('socket: an assistant with "semantic_cache": true is answered from the cache', async ({ startServer }) => {
  const P = 'sem-agent';
  fp.script({ text: 'We open at nine.', usage: USAGE, match: { prefix: P }, repeat: 'forever' });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-sem-agents-'));
  const agents = path.join(dir, 'agents.json');
  writeFileSync(agents, JSON.stringify({ agents: [{ name: 'faq', semantic_cache: true }, { name: 'fresh' }] }));
  const srv = await startServer({
    args: ['--routes', semRoutes(P, { route: null }), '--agents', agents, ...keyArgs],
    env: { FAKE_KEY: 'fake-key' },
  });
  const turn = async (agent, text, n) => {
    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_A, 'alice') });
    const { session } = await openSession(c, agent);
    await c.waitEvent((e) => e.session === session && e.seq === 1);
    const { events } = await sayAndWait(c, session, text, `m-${agent}-${n}`);
    c.close();
    const deltas = events.filter((e) => e.type === 'delta').map((e) => e.text);
    return { end: events.find((e) => e.type === 'message.end'), text: deltas.join('') };
  };
  const first = await turn('faq', 'When do you open in the morning?', 1);
  assert.equal(first.end.usage.cached, false);
  await sleep(100);
  const second = await turn('faq', 'In the morning, when do you open?', 2);
  assert.equal(second.end.usage.cached, true);
  assert.equal(second.end.usage.cost_usd, 0);
  assert.equal(second.text, first.text);
  assert.equal(calls(P), 1);
  assert.equal((await turn('fresh', 'When do you open in the morning?', 1)).end.usage.cached, false);
  assert.equal(calls(P), 2, 'an assistant without the opt-in is not looked up');
});

itest('a bad semantic_cache setting is refused at start-up, naming the path', async ({ startServer }) => {
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, 'sem-bad')] },
    semantic_cache: { embed_route: 'default', threshold: 2 },
  });
  await assert.rejects(startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'k' } }), (e) =>
    /semantic_cache\.threshold: must be a number from 0.5 to 1/.test(String(e.message)),
  );
});

itest('a slow embedding is dropped after lookup_timeout_ms: the call goes on as a miss', async ({ startServer }) => {
  const P = 'sem-slow';
  fp.script({ delay_ms: 3000, match: { prefix: `${P}-emb` } });
  const srv = await semServer(startServer, P, { extra: { lookup_timeout_ms: 200 } });
  const t0 = Date.now();
  const a = await ask(srv, Q);
  assert.equal(a.status, 200, a.body);
  assert.equal(a.json.choices[0].message.content, 'Paris.');
  assert.ok(Date.now() - t0 < 2000, `answered in ${Date.now() - t0} ms`);
  assert.equal(calls(P), 1);
  const m = await httpGet(srv.port, '/metrics');
  assert.equal(metricValue(m.body, 'tether_semcache_timeouts_total'), 1, m.body);
  assert.equal(metricValue(m.body, 'tether_semcache_misses_total'), 1);
});

itest('a client that hangs up while the lookup waits: the call ends, nothing is sent', async ({ startServer }) => {
  const P = 'sem-cancel';
  fp.script({ delay_ms: 1500, match: { prefix: `${P}-emb` } });
  const srv = await semServer(startServer, P, { extra: { lookup_timeout_ms: 5000 } });
  const ac = new AbortController();
  const pending = fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST',
    signal: ac.signal,
    headers: { Authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      model: 'default',
      temperature: 0.7,
      stream: true,
      messages: [{ role: 'user', content: Q }],
    }),
  }).then((r) => r.text());
  await sleep(300);
  ac.abort();
  await assert.rejects(pending);
  await sleep(1800); // the embedding's answer would have come back by now
  assert.equal(calls(P), 0, 'the cancelled call never reached the provider');
  const b = await ask(srv, SAME);
  assert.equal(b.status, 200, b.body);
  assert.equal(b.json.usage.cached, undefined);
  assert.equal(calls(P), 1);
});

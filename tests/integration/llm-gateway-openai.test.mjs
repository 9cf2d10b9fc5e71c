// OpenAI compatibility of the gateway (issue 14), with the official `openai`
// npm client against the real binary and the fake provider: GET /v1/models,
// model names that are not route aliases (--gateway-models), the real model
// in every reply, usage with cost_usd in streams, POST /v1/embeddings.

import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { fakeEmbedding } from '../fake-provider/server.mjs';
import { fakeTarget, httpRequest, itest, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const API_KEY = 'gw-openai-key-0123456789';

/** default → P (gpt-4o-mini), cheap → `${P}-cheap` (gpt-4.1-nano), embed → `${P}-embed`. */
async function server(startServer, P, { models, apiKey = true } = {}) {
  const routes = writeRoutesFile({
    routes: {
      default: [fakeTarget(fp.url, P)],
      cheap: [fakeTarget(fp.url, `${P}-cheap`, { model: 'gpt-4.1-nano' })],
      embed: [fakeTarget(fp.url, `${P}-embed`, { model: 'text-embedding-3-small' })],
      claude: [
        {
          provider: 'anthropic',
          base_url: `${fp.url}/${P}-ant`,
          model: 'claude-3-5-haiku-latest',
          key_env: 'FAKE_KEY',
        },
      ],
    },
    prices: {
      'gpt-4o-mini': { prompt_per_mtok: 0.15, completion_per_mtok: 0.6 },
      'gpt-4o': { prompt_per_mtok: 2.5, completion_per_mtok: 10 },
    },
    retry: { max_attempts: 1 },
  });
  const args = ['--routes', routes];
  if (apiKey) args.push('--api-key', API_KEY);
  if (models !== undefined) args.push('--gateway-models', models);
  const srv = await startServer({ args, env: { FAKE_KEY: 'fake-key' } });
  const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 8000 });
  return { srv, client };
}

const say = (content) => [{ role: 'user', content }];

itest('models.list(): the route aliases, the models behind them, the allow-list names', async ({ startServer }) => {
  const { srv, client } = await server(startServer, 'oa-models', { models: 'gpt-4o, o3-mini' });
  const ids = [];
  for await (const m of client.models.list()) {
    assert.equal(m.object, 'model');
    assert.equal(typeof m.created, 'number');
    assert.equal(typeof m.owned_by, 'string');
    ids.push(m.id);
  }
  assert.deepEqual(ids, [
    'default',
    'cheap',
    'embed',
    'claude',
    'gpt-4o-mini',
    'gpt-4.1-nano',
    'text-embedding-3-small',
    'claude-3-5-haiku-latest',
    'gpt-4o',
    'o3-mini',
  ]);
  const one = await client.models.retrieve('cheap');
  assert.equal(one.id, 'cheap');
  assert.deepEqual(one.tether.targets, [{ provider: 'openai', model: 'gpt-4.1-nano' }]);
  await assert.rejects(client.models.retrieve('nope'), (e) => e instanceof OpenAI.NotFoundError);
  const bad = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
  const raw = await httpRequest(srv.port, 'GET', '/v1/models');
  assert.equal(raw.status, 401, 'the key is required like on the gateway');
});

itest(
  'a model that is not an alias: allowed names go to the default route under their own name; others are 404',
  async ({ startServer }) => {
    const P = 'oa-pass';
    fp.script({ text: 'plain four oh', usage: { prompt_tokens: 1000, completion_tokens: 100 }, match: { prefix: P } });
    fp.script({
      text: 'streamed four oh',
      usage: { prompt_tokens: 1000, completion_tokens: 100 },
      match: { prefix: P },
    });
    const { client } = await server(startServer, P, { models: 'gpt-4o' });
    const plain = await client.chat.completions.create({ model: 'gpt-4o', messages: say('hi') });
    assert.equal(plain.choices[0].message.content, 'plain four oh');
    assert.equal(plain.model, 'gpt-4o');
    assert.ok(Math.abs(plain.usage.cost_usd - 0.0035) < 1e-9, JSON.stringify(plain.usage));

    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: say('hi'),
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    const models = new Set();
    for await (const chunk of stream) {
      models.add(chunk.model);
      if (chunk.usage) usage = chunk.usage;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    assert.equal(text, 'streamed four oh');
    assert.deepEqual([...models], ['gpt-4o'], 'every chunk carries the model');
    assert.equal(usage.total_tokens, 1100);
    assert.ok(Math.abs(usage.cost_usd - 0.0035) < 1e-9, `cost_usd in the stream: ${JSON.stringify(usage)}`);
    const sent = fp.requests({ prefix: P }).map((r) => r.body.model);
    assert.deepEqual(sent, ['gpt-4o', 'gpt-4o'], 'the default route was asked for the named model');

    await assert.rejects(
      client.chat.completions.create({ model: 'gpt-nope', messages: say('x') }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found',
    );
    assert.equal(fp.requests({ prefix: P }).length, 2, 'a name off the list reaches no provider');
  },
);

itest(
  'replies carry the real model: an alias answers with its route model, a route model picks its route',
  async ({ startServer }) => {
    const P = 'oa-real';
    fp.script({ text: 'from cheap', match: { prefix: `${P}-cheap` }, repeat: 2 });
    fp.script({ tokens: ['def', 'ault'], match: { prefix: P } });
    const { client } = await server(startServer, P, { models: '' });
    const byAlias = await client.chat.completions.create({ model: 'cheap', messages: say('x') });
    assert.equal(byAlias.model, 'gpt-4.1-nano');
    const byModel = await client.chat.completions.create({ model: 'gpt-4.1-nano', messages: say('x') });
    assert.equal(byModel.choices[0].message.content, 'from cheap', 'a model behind a route is served by it');
    const stream = await client.chat.completions.create({ model: 'default', messages: say('x'), stream: true });
    const models = new Set();
    for await (const chunk of stream) models.add(chunk.model);
    assert.deepEqual([...models], ['gpt-4o-mini'], 'not the alias');
  },
);

itest(
  "with '*' any model goes through; the provider's 404 for a model it lacks comes back as a 404",
  async ({ startServer }) => {
    const P = 'oa-star';
    fp.script({ status: 404, match: { prefix: P, model: 'no-such-model' } });
    fp.script({ text: 'local model here', match: { prefix: P, model: 'llama3.2' } });
    const { client } = await server(startServer, P); // --gateway-models defaults to '*'
    const ok = await client.chat.completions.create({ model: 'llama3.2', messages: say('x') });
    assert.equal(ok.choices[0].message.content, 'local model here');
    assert.equal(ok.model, 'llama3.2');
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: say('x') }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && /upstream/.test(e.message),
    );
  },
);

itest('embeddings.create() through the routes: an alias, a pass-through name, errors', async ({ startServer }) => {
  const P = 'oa-emb';
  const { srv, client } = await server(startServer, P);
  const r = await client.embeddings.create({ model: 'embed', input: ['alpha', 'beta'] });
  assert.equal(r.object, 'list');
  assert.equal(r.data.length, 2);
  for (const [i, text] of ['alpha', 'beta'].entries()) {
    assert.equal(r.data[i].index, i);
    const want = fakeEmbedding(text, 8);
    assert.equal(r.data[i].embedding.length, 8);
    r.data[i].embedding.forEach((x, k) => assert.ok(Math.abs(x - want[k]) < 1e-6, `${text}[${k}]`));
  }
  const sent = fp.requests({ prefix: `${P}-embed` });
  assert.equal(sent.length, 1);
  assert.equal(sent[0].body.model, 'text-embedding-3-small', "the route's model");
  assert.equal(sent[0].headers.authorization, 'Bearer fake-key', "the route's key, not the client's");

  const one = await client.embeddings.create({ model: 'text-embedding-3-large', input: 'gamma', dimensions: 4 });
  assert.equal(one.data[0].embedding.length, 4);
  assert.equal(fp.requests({ prefix: P }).at(-1).body.model, 'text-embedding-3-large', 'passed through to default');

  const bad = await httpRequest(srv.port, 'POST', '/v1/embeddings', {
    body: { model: 'embed' },
    headers: { authorization: `Bearer ${API_KEY}` },
  });
  assert.equal(bad.status, 400, bad.body);
  assert.equal(bad.json.error.type, 'invalid_request_error');
  const noKey = await httpRequest(srv.port, 'POST', '/v1/embeddings', { body: { model: 'embed', input: 'x' } });
  assert.equal(noKey.status, 401);
  await assert.rejects(
    client.embeddings.create({ model: 'claude', input: 'x' }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'embeddings_unsupported',
  );
  assert.equal(fp.requests({ prefix: `${P}-ant` }).length, 0, 'nothing was sent to a provider without embeddings');
});

// POST /v1/chat/completions: the OpenAI-compatible gateway over the same
// routes, driven with raw HTTP and with the official `openai` npm client.

import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import { fakeTarget, httpRequest, itest, keepAliveAgent, llmCallLines, sleep, writeRoutesFile } from './harness.mjs';
import { checkAnswer } from './openapi-validate.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const TIMEOUTS = { connect: 1000, first_byte: 2000, idle: 1000, total: 10000 };
const API_KEY = 'gw-test-key-0123456789';

/** A server with alias "default" → prefix P (and alias "other" → `${P}-other`). */
async function gwServer(startServer, P, { apiKey = false } = {}) {
  const routes = writeRoutesFile({
    routes: {
      default: [fakeTarget(fp.url, P, { region: 'a', timeout_ms: TIMEOUTS })],
      other: [fakeTarget(fp.url, `${P}-other`, { region: 'a', timeout_ms: TIMEOUTS })],
    },
    prices: { 'gpt-4o-mini': { prompt_per_mtok: 0.15, completion_per_mtok: 0.6 } },
    retry: { max_attempts: 3, base_ms: 50, max_backoff_ms: 200, max_total_ms: 5000 },
  });
  // Route aliases only: the pass-through of other names is llm-gateway-openai.test.mjs's.
  const args = ['--routes', routes, '--gateway-models', ''];
  if (apiKey) args.push('--api-key', API_KEY);
  return startServer({ args, env: { FAKE_KEY: 'fake-key' } });
}

const post = (srv, body, headers = {}) => httpRequest(srv.port, 'POST', '/v1/chat/completions', { body, headers });

/** POST a streamed completion; resolves {status, headers, body, datas: [parsed JSON | '[DONE]' | raw string]}. */
function postSSE(port, body, headers = {}, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        agent: keepAliveAgent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => {
          const contentType = res.headers['content-type'];
          checkAnswer(port, {
            method: 'POST',
            path: '/v1/chat/completions',
            status: res.statusCode,
            contentType,
            body: text,
          });
          const datas = [];
          for (const block of text.split(/\r?\n\r?\n/)) {
            const lines = block.split(/\r?\n/).filter((l) => l.startsWith('data:'));
            if (!lines.length) continue;
            const payload = lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n');
            if (payload === '[DONE]') {
              datas.push('[DONE]');
              continue;
            }
            try {
              datas.push(JSON.parse(payload));
            } catch {
              datas.push(payload);
            }
          }
          resolve({ status: res.statusCode, headers: res.headers, body: text, datas });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('SSE request timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

const contentOf = (datas) =>
  datas
    .filter((d) => typeof d === 'object' && d.choices?.[0]?.delta?.content)
    .map((d) => d.choices[0].delta.content)
    .join('');

itest(
  'plain completion: {id, object:"chat.completion", choices[0].message.content, finish_reason, usage}',
  async ({ startServer }) => {
    const P = 'g-plain';
    fp.script({
      text: 'The capital is Paris.',
      usage: { prompt_tokens: 12, completion_tokens: 5 },
      match: { prefix: P },
    });
    const srv = await gwServer(startServer, P);
    const r = await post(srv, {
      model: 'default',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'capital of France?' },
      ],
    });
    assert.equal(r.status, 200, r.body);
    assert.match(String(r.headers['content-type']), /application\/json/);
    const j = r.json;
    assert.equal(typeof j.id, 'string');
    assert.equal(j.object, 'chat.completion');
    assert.equal(typeof j.created, 'number');
    assert.equal(j.choices.length, 1);
    assert.equal(j.choices[0].index, 0);
    assert.equal(j.choices[0].message.role, 'assistant');
    assert.equal(j.choices[0].message.content, 'The capital is Paris.');
    assert.equal(j.choices[0].finish_reason, 'stop');
    assert.equal(j.usage.prompt_tokens, 12, JSON.stringify(j.usage));
    assert.equal(j.usage.completion_tokens, 5);
    assert.equal(j.usage.total_tokens, 17);
    const reqs = fp.requests({ prefix: P });
    assert.equal(reqs.length, 1);
    const sent = reqs[0].body.messages.map((m) => [m.role, m.content]);
    assert.deepEqual(
      sent,
      [
        ['system', 'be brief'],
        ['user', 'capital of France?'],
      ],
      "the caller's messages go through as given",
    );
    assert.equal(reqs[0].body.model, 'gpt-4o-mini', "the alias is mapped to the route's model");
    await sleep(100);
    const lines = llmCallLines(srv.output);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].route, 'default');
    assert.ok(!srv.output.includes('capital of France'), 'the prompt text is not logged');
  },
);

itest(
  'streamed completion: OpenAI chunks, the text, finish_reason, a usage chunk with include_usage, then [DONE]',
  async ({ startServer }) => {
    const P = 'g-stream';
    fp.script({
      tokens: ['Once', ' upon', ' a', ' time'],
      usage: { prompt_tokens: 7, completion_tokens: 4 },
      match: { prefix: P },
    });
    const srv = await gwServer(startServer, P);
    const r = await postSSE(srv.port, {
      model: 'default',
      messages: [{ role: 'user', content: 'story' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(r.status, 200, r.body);
    assert.match(String(r.headers['content-type']), /text\/event-stream/);
    assert.equal(r.datas.at(-1), '[DONE]', r.body);
    assert.equal(r.datas.filter((d) => d === '[DONE]').length, 1);
    const chunks = r.datas.slice(0, -1);
    assert.ok(
      chunks.every((d) => typeof d === 'object'),
      r.body,
    );
    for (const ch of chunks) {
      assert.equal(ch.object, 'chat.completion.chunk', JSON.stringify(ch));
      assert.equal(typeof ch.id, 'string');
      assert.equal(ch.id, chunks[0].id, 'all chunks share one id');
      assert.ok(Array.isArray(ch.choices));
      assert.ok(!ch.error, JSON.stringify(ch));
    }
    assert.equal(contentOf(chunks), 'Once upon a time');
    const fin = chunks.filter((c) => c.choices[0]?.finish_reason);
    assert.equal(fin.length, 1, r.body);
    assert.equal(fin[0].choices[0].finish_reason, 'stop');
    const usage = chunks.filter((c) => c.usage);
    assert.equal(usage.length, 1, `one usage chunk: ${r.body}`);
    assert.deepEqual(usage[0].choices, []);
    assert.equal(usage[0].usage.prompt_tokens, 7);
    assert.equal(usage[0].usage.completion_tokens, 4);
    assert.equal(usage[0].usage.total_tokens, 11);
    assert.ok(chunks.indexOf(usage[0]) > chunks.indexOf(fin[0]), 'the usage chunk comes after the finish chunk');
  },
);

itest('streamed completion without stream_options: no usage chunk', async ({ startServer }) => {
  const P = 'g-stream-nousage';
  fp.script({ text: 'just text', match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  const r = await postSSE(srv.port, { model: 'default', messages: [{ role: 'user', content: 'x' }], stream: true });
  assert.equal(r.status, 200, r.body);
  assert.equal(contentOf(r.datas), 'just text');
  assert.equal(r.datas.at(-1), '[DONE]');
  assert.ok(!r.datas.some((d) => typeof d === 'object' && d.usage), r.body);
});

itest(
  'model is a route alias: "other" goes to its own target; an unknown alias is 404 model_not_found',
  async ({ startServer }) => {
    const P = 'g-alias';
    fp.script({ text: 'from other', match: { prefix: `${P}-other` } });
    const srv = await gwServer(startServer, P);
    const ok = await post(srv, { model: 'other', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.json.choices[0].message.content, 'from other');
    assert.equal(fp.requests({ prefix: `${P}-other` }).length, 1);
    const r = await post(srv, { model: 'gpt-nonexistent', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(r.status, 404, r.body);
    assert.equal(r.json?.error?.code, 'model_not_found', r.body);
    assert.equal(typeof r.json.error.message, 'string');
    assert.equal(fp.requests({ prefix: P }).length, 0, 'nothing reached the provider');
  },
);

itest(
  'bad bodies are 400 with an OpenAI-style error: invalid JSON, no messages, messages not an array, no model',
  async ({ startServer }) => {
    const P = 'g-bad';
    const srv = await gwServer(startServer, P);
    const cases = [
      ['invalid JSON', '{"model":"default","messages":[', 400],
      ['no messages', { model: 'default' }, 400],
      ['messages not an array', { model: 'default', messages: 'hi' }, 400],
      ['a message without role', { model: 'default', messages: [{ content: 'hi' }] }, 400],
      ['not an object', '[1,2,3]', 400],
    ];
    for (const [what, body, want] of cases) {
      const r = await post(srv, body);
      assert.equal(r.status, want, `${what}: ${r.status} ${r.body}`);
      assert.equal(typeof r.json?.error?.message, 'string', `${what}: ${r.body}`);
    }
    const noModel = await post(srv, { messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(noModel.status === 400 || noModel.status === 404, `no model: ${noModel.status} ${noModel.body}`);
    assert.equal(fp.requests({ prefix: P }).length, 0);
    // Still serving.
    const ok = await post(srv, { model: 'default', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(ok.status, 200, ok.body);
  },
);

itest('upstream rate limited throughout: HTTP 429 with an error body, plain and streamed', async ({ startServer }) => {
  const P = 'g-429';
  fp.script({ status: 429, repeat: 'forever', match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  const r = await post(srv, { model: 'default', messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 429, r.body);
  assert.equal(typeof r.json?.error?.message, 'string', r.body);
  const n = fp.requests({ prefix: P }).length;
  assert.ok(n >= 1, 'the provider was asked');
  const s = await postSSE(srv.port, { model: 'default', messages: [{ role: 'user', content: 'hi' }], stream: true });
  assert.equal(s.status, 429, `streamed, failing before any output: ${s.status} ${s.body}`);
  fp.reset();
});

itest('upstream failing (500) throughout before any output: an HTTP 5xx error, not a 200', async ({ startServer }) => {
  const P = 'g-500';
  fp.script({ status: 500, repeat: 'forever', match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  const r = await post(srv, { model: 'default', messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(r.status >= 500 && r.status <= 599, `${r.status} ${r.body}`);
  assert.equal(typeof r.json?.error?.message, 'string', r.body);
  const s = await postSSE(srv.port, { model: 'default', messages: [{ role: 'user', content: 'hi' }], stream: true });
  assert.ok(s.status >= 500 && s.status <= 599, `streamed: ${s.status} ${s.body}`);
  fp.reset();
});

itest('500 then success before any output: retried silently, a normal 200', async ({ startServer }) => {
  const P = 'g-500-ok';
  fp.script([
    { status: 500, match: { prefix: P } },
    { text: 'second time lucky', match: { prefix: P } },
  ]);
  const srv = await gwServer(startServer, P);
  const s = await postSSE(srv.port, { model: 'default', messages: [{ role: 'user', content: 'hi' }], stream: true });
  assert.equal(s.status, 200, s.body);
  assert.equal(contentOf(s.datas), 'second time lucky');
  assert.equal(s.datas.at(-1), '[DONE]');
  assert.equal(fp.requests({ prefix: P }).length, 2);
});

itest('failure after output was streamed: an error chunk then [DONE], no silent retry', async ({ startServer }) => {
  const P = 'g-midstream';
  fp.script({ text: 'partial answer that breaks', reset_after: 2, repeat: 'forever', match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  const s = await postSSE(srv.port, { model: 'default', messages: [{ role: 'user', content: 'hi' }], stream: true });
  assert.equal(s.status, 200, s.body);
  assert.equal(s.datas.at(-1), '[DONE]', s.body);
  assert.equal(contentOf(s.datas), 'partial answer', 'what was streamed before the failure');
  const errs = s.datas.filter((d) => typeof d === 'object' && d.error);
  assert.equal(errs.length, 1, `one error chunk: ${s.body}`);
  assert.equal(typeof errs[0].error.message, 'string');
  assert.ok(s.datas.indexOf(errs[0]) === s.datas.length - 2, 'the error chunk is right before [DONE]');
  assert.ok(
    !s.datas.some((d) => typeof d === 'object' && d.choices?.[0]?.finish_reason === 'stop'),
    'no normal finish',
  );
  await sleep(300);
  assert.equal(fp.requests({ prefix: P }).length, 1, 'not retried after output went out');
  fp.reset();
});

itest(
  'tool calls pass through, streamed (arguments in fragments, reassembled by the client) and plain',
  async ({ startServer }) => {
    const P = 'g-tools';
    const args = { city: 'Paris', units: 'celsius', days: 3 };
    const tools = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          description: 'weather',
          parameters: { type: 'object', properties: { city: { type: 'string' } } },
        },
      },
    ];
    fp.script({
      text: 'Let me check.',
      tool_calls: [{ id: 'call_w1', name: 'get_weather', arguments: args }],
      split_args: 5,
      match: { prefix: P },
    });
    fp.script({ tool_calls: [{ id: 'call_w2', name: 'get_weather', arguments: args }], match: { prefix: P } });
    const srv = await gwServer(startServer, P);
    const messages = [{ role: 'user', content: 'weather in Paris?' }];
    const s = await postSSE(srv.port, { model: 'default', messages, tools, stream: true });
    assert.equal(s.status, 200, s.body);
    assert.equal(s.datas.at(-1), '[DONE]');
    const calls = new Map();
    for (const d of s.datas) {
      for (const tc of (typeof d === 'object' && d.choices?.[0]?.delta?.tool_calls) || []) {
        const cur = calls.get(tc.index) ?? { id: null, name: null, args: '' };
        if (tc.id) cur.id = tc.id;
        if (tc.function?.name) cur.name = tc.function.name;
        if (tc.function?.arguments) cur.args += tc.function.arguments;
        calls.set(tc.index, cur);
      }
    }
    assert.equal(calls.size, 1, s.body);
    const call = calls.get(0);
    assert.equal(call.id, 'call_w1');
    assert.equal(call.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.args), args);
    assert.equal(contentOf(s.datas), 'Let me check.');
    const fin = s.datas.filter((d) => typeof d === 'object' && d.choices?.[0]?.finish_reason);
    assert.equal(fin.at(-1)?.choices[0].finish_reason, 'tool_calls', s.body);
    const up = fp.requests({ prefix: P });
    assert.equal(up[0].body.tools?.[0]?.function?.name, 'get_weather', 'tools are passed to the provider');

    const p = await post(srv, { model: 'default', messages, tools });
    assert.equal(p.status, 200, p.body);
    const m = p.json.choices[0].message;
    assert.equal(p.json.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.tool_calls.length, 1, p.body);
    assert.equal(m.tool_calls[0].id, 'call_w2');
    assert.equal(m.tool_calls[0].type, 'function');
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.equal(typeof m.tool_calls[0].function.arguments, 'string');
    assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), args);
  },
);

itest('auth: with --api-key the gateway wants Authorization: Bearer <api key>', async ({ startServer }) => {
  const P = 'g-auth';
  const srv = await gwServer(startServer, P, { apiKey: true });
  const body = { model: 'default', messages: [{ role: 'user', content: 'hi' }] };
  const none = await post(srv, body);
  assert.equal(none.status, 401, none.body);
  const wrong = await post(srv, body, { authorization: 'Bearer not-the-key' });
  assert.equal(wrong.status, 401, wrong.body);
  assert.equal(fp.requests({ prefix: P }).length, 0);
  const good = await post(srv, body, { authorization: `Bearer ${API_KEY}` });
  assert.equal(good.status, 200, good.body);
  assert.equal(good.json.choices[0].message.content, 'echo: hi');
});

itest(
  'official openai client: streamed create() iterated to completion gives the text; non-streamed works too',
  async ({ startServer }) => {
    const P = 'g-sdk';
    fp.script({ text: 'Streaming through the SDK works fine', match: { prefix: P } });
    fp.script({
      text: 'Plain through the SDK',
      usage: { prompt_tokens: 9, completion_tokens: 4 },
      match: { prefix: P },
    });
    const srv = await gwServer(startServer, P, { apiKey: true });
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: API_KEY, maxRetries: 0, timeout: 8000 });
    const stream = await client.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'stream please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const ch = chunk.choices[0];
      if (ch?.delta?.content) text += ch.delta.content;
      if (ch?.finish_reason) finish = ch.finish_reason;
    }
    assert.equal(text, 'Streaming through the SDK works fine');
    assert.equal(finish, 'stop');
    assert.ok(usage && usage.completion_tokens > 0, JSON.stringify(usage));

    const plain = await client.chat.completions.create({
      model: 'default',
      messages: [{ role: 'user', content: 'plain please' }],
    });
    assert.equal(plain.object, 'chat.completion');
    assert.equal(plain.choices[0].message.content, 'Plain through the SDK');
    assert.equal(plain.choices[0].finish_reason, 'stop');
    assert.equal(plain.usage.total_tokens, 13);

    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-alias', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === 'model_not_found',
    );
    const bad = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'wrong', maxRetries: 0 });
    await assert.rejects(
      bad.chat.completions.create({ model: 'default', messages: [{ role: 'user', content: 'x' }] }),
      (e) => e instanceof OpenAI.AuthenticationError && e.status === 401,
    );
    assert.equal(fp.requests({ prefix: P }).length, 2);
  },
);

itest('a gateway client that hangs up mid-stream: the upstream provider call is aborted', async ({ startServer }) => {
  const P = 'g-hangup';
  fp.script({ text: 'one two three four five six seven eight nine ten', token_delay_ms: 100, match: { prefix: P } });
  const srv = await gwServer(startServer, P);
  await new Promise((resolve, reject) => {
    const data = JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const req = http.request(
      {
        host: '127.0.0.1',
        port: srv.port,
        method: 'POST',
        path: '/v1/chat/completions',
        agent: keepAliveAgent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        let got = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          got += d;
          if (got.includes('three')) {
            req.destroy();
            resolve();
          }
        });
        res.on('error', () => {});
      },
    );
    req.on('error', () => {});
    req.setTimeout(5000, () => {
      req.destroy();
      reject(new Error('no output'));
    });
    req.end(data);
  });
  const rec = fp.requests({ prefix: P })[0];
  await fp.waitFor(() => rec.client_closed || rec.finished_at, 3000);
  assert.equal(
    rec.client_closed,
    true,
    `upstream closed after the client left (chunks_sent=${rec.chunks_sent}, finished_at=${rec.finished_at})`,
  );
  assert.ok(rec.chunks_sent < 10, `chunks_sent ${rec.chunks_sent}`);
  // Still serving.
  const ok = await post(srv, { model: 'default', messages: [{ role: 'user', content: 'after' }] });
  assert.equal(ok.status, 200, ok.body);
});

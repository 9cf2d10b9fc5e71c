// Tests of the fake provider: every endpoint, the stream formats (parsed as a
// client would), every fault, request recording, route keys and prefixes.
// Run: node --test tests/fake-provider/

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fakeEmbedding, splitWords, startFakeProvider } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp.close();
});
beforeEach(() => fp.reset());

// ------------------------------------------------------------------ clients

const OAI = { authorization: 'Bearer sk-test', 'content-type': 'application/json' };
const ANT = { 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' };

function chatBody(text = 'hello big world', extra = {}) {
  return {
    model: 'gpt-4o',
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: text },
    ],
    ...extra,
  };
}
function msgBody(text = 'hello big world', extra = {}) {
  return { model: 'claude-sonnet-4-5', max_tokens: 1024, messages: [{ role: 'user', content: text }], ...extra };
}

function post(p, body, headers = OAI, signal) {
  return fetch(fp.url + p, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal,
  });
}
const chat = (body, headers = OAI, p = '/v1/chat/completions', signal) => post(p, body, headers, signal);
const messages = (body, headers = ANT, p = '/v1/messages', signal) => post(p, body, headers, signal);

async function control(method, p, body) {
  const r = await fetch(fp.url + p, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: await r.json() };
}

/** An SSE parser that follows the WHATWG event-stream rules, fed incrementally. */
class SSEParser {
  constructor() {
    this.buf = '';
    this.events = [];
    this.event = '';
    this.data = [];
  }
  push(text) {
    this.buf += text;
    let m;
    const re = /\r\n|\r|\n/g;
    let start = 0;
    while ((m = re.exec(this.buf)) !== null) {
      // A lone trailing \r might be the first half of \r\n: wait for more.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      this.line(this.buf.slice(start, m.index));
      start = m.index + m[0].length;
    }
    this.buf = this.buf.slice(start);
    return this.events;
  }
  line(line) {
    if (line === '') {
      if (this.data.length) this.events.push({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}

/** Read a whole SSE response: {events, raw, error}. `error` is set if the body failed mid-way. */
async function readSSE(res) {
  const p = new SSEParser();
  const dec = new TextDecoder();
  let raw = '';
  let error = null;
  try {
    for await (const chunk of res.body) {
      const t = dec.decode(chunk, { stream: true });
      raw += t;
      p.push(t);
    }
  } catch (e) {
    error = e;
  }
  return { events: p.events, raw, error, trailing: p.buf };
}

/** OpenAI stream -> parsed chunks (JSON) and whether [DONE] came last. */
function openaiChunks(events) {
  const out = [];
  let done = false;
  for (const e of events) {
    assert.equal(e.event, 'message', 'OpenAI streams use unnamed events');
    assert.equal(done, false, 'nothing may follow [DONE]');
    if (e.data === '[DONE]') {
      done = true;
      continue;
    }
    out.push(JSON.parse(e.data));
  }
  return { chunks: out, done };
}

/** What a client assembles from an OpenAI stream. */
function assembleOpenAI(chunks) {
  let content = '';
  let role = null;
  let finish = null;
  let usage = null;
  const tools = [];
  for (const c of chunks) {
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    const ch = c.choices[0];
    if (ch.delta.role) role = ch.delta.role;
    if (typeof ch.delta.content === 'string') content += ch.delta.content;
    for (const tc of ch.delta.tool_calls || []) {
      if (!tools[tc.index]) tools[tc.index] = { id: tc.id, type: tc.type, name: tc.function.name, arguments: '' };
      if (tc.function && tc.function.arguments) tools[tc.index].arguments += tc.function.arguments;
    }
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { role, content, finish, usage, tools };
}

/** What a client assembles from an Anthropic stream; also checks event: == data.type. */
function assembleAnthropic(events) {
  const blocks = [];
  let message = null;
  let stop = null;
  let outputTokens = null;
  const names = [];
  for (const e of events) {
    const d = JSON.parse(e.data);
    assert.equal(d.type, e.event, 'event name equals data.type');
    names.push(e.event);
    if (d.type === 'message_start') message = d.message;
    else if (d.type === 'content_block_start') blocks[d.index] = { ...d.content_block, partial: '' };
    else if (d.type === 'content_block_delta') {
      if (d.delta.type === 'text_delta') blocks[d.index].text += d.delta.text;
      else if (d.delta.type === 'input_json_delta') blocks[d.index].partial += d.delta.partial_json;
    } else if (d.type === 'message_delta') {
      stop = d.delta.stop_reason;
      outputTokens = d.usage.output_tokens;
    }
  }
  return { names, message, blocks, stop, outputTokens };
}

// ------------------------------------------------------------------ CLI

test('CLI: prints {"listening":PORT}, serves, stops on SIGTERM', async () => {
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const port = await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)).listening);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}`)));
  });
  assert.ok(Number.isInteger(port) && port > 0);
  assert.match(out, /^\{"listening":\d+\}\n$/);
  const h = await (await fetch(`http://127.0.0.1:${port}/_health`)).json();
  assert.equal(h.ok, true);
  assert.equal(h.port, port);
  const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: OAI,
    body: JSON.stringify(chatBody('hi')),
  });
  assert.equal((await r.json()).choices[0].message.content, 'echo: hi');
  // a stalled stream must not keep the process alive
  await fetch(`http://127.0.0.1:${port}/_script`, { method: 'POST', body: JSON.stringify({ stall_after: 1 }) });
  const stalled = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: OAI,
    body: JSON.stringify(chatBody('a b', { stream: true })),
  });
  assert.equal(stalled.status, 200);
  const t0 = Date.now();
  const code = await new Promise((resolve) => {
    child.on('exit', (c, sig) => resolve(c ?? sig));
    child.kill('SIGTERM');
  });
  await assert.rejects(stalled.text());
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 1500);
});

test('listens on 127.0.0.1 only', () => {
  assert.equal(fp.server.address().address, '127.0.0.1');
  assert.equal(fp.url, `http://127.0.0.1:${fp.port}`);
});

// ------------------------------------------------------------------ OpenAI chat

describe('OpenAI /v1/chat/completions', () => {
  test('non-streamed default echo', async () => {
    const r = await chat(chatBody('hello big world'));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    const j = await r.json();
    assert.match(j.id, /^chatcmpl-/);
    assert.equal(j.object, 'chat.completion');
    assert.ok(Number.isInteger(j.created) && Math.abs(j.created - Date.now() / 1000) < 5);
    assert.equal(j.model, 'gpt-4o');
    assert.equal(j.choices.length, 1);
    assert.equal(j.choices[0].index, 0);
    assert.deepEqual(j.choices[0].message, { role: 'assistant', content: 'echo: hello big world', refusal: null });
    assert.equal(j.choices[0].finish_reason, 'stop');
    assert.equal(j.usage.completion_tokens, 4);
    assert.equal(j.usage.prompt_tokens, 5); // "be brief" + "hello big world"
    assert.equal(j.usage.total_tokens, 9);
  });

  test('echo uses the last user message, including content-part arrays', async () => {
    const body = {
      model: 'm',
      messages: [
        { role: 'user', content: 'first' },
        { role: 'assistant', content: 'x' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'second' },
            { type: 'image_url', image_url: { url: 'data:' } },
            { type: 'text', text: 'part' },
          ],
        },
      ],
    };
    const j = await (await chat(body)).json();
    assert.equal(j.choices[0].message.content, 'echo: second part');
  });

  test('auth: missing or empty bearer -> 401 in OpenAI format', async () => {
    for (const headers of [
      { 'content-type': 'application/json' },
      { authorization: 'Bearer ', 'content-type': 'application/json' },
      { authorization: 'Basic abc' },
    ]) {
      const r = await chat(chatBody(), headers);
      assert.equal(r.status, 401);
      const j = await r.json();
      assert.equal(j.error.type, 'invalid_request_error');
      assert.ok(j.error.message.length > 0);
      assert.ok('param' in j.error && 'code' in j.error);
    }
    const [rec] = fp.requests();
    assert.equal(rec.status, 401);
    assert.equal(rec.served_by, 'auth');
  });

  test('bad JSON and missing fields -> 400 in OpenAI format', async () => {
    let r = await chat('{nope');
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.type, 'invalid_request_error');
    r = await chat({ model: 'm' });
    assert.equal(r.status, 400);
    assert.equal((await r.json()).error.param, 'messages');
    r = await chat({ messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.status, 400);
    assert.match((await r.json()).error.message, /model/);
  });

  test('unknown URL -> 404 in OpenAI format', async () => {
    const r = await post('/v1/completions', chatBody());
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, 'unknown_url');
  });

  test('streamed: role chunk, content chunks, finish chunk, usage chunk, [DONE]', async () => {
    const r = await chat(chatBody('hello big world', { stream: true, stream_options: { include_usage: true } }));
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const { events, raw, error } = await readSSE(r);
    assert.equal(error, null);
    assert.ok(raw.endsWith('data: [DONE]\n\n'));
    const { chunks, done } = openaiChunks(events);
    assert.ok(done);
    const ids = new Set(chunks.map((c) => c.id));
    assert.equal(ids.size, 1);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.model, 'gpt-4o');
      assert.ok(Number.isInteger(c.created));
      assert.ok('usage' in c, 'with include_usage every chunk carries usage');
    }
    // role chunk
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
    assert.equal(chunks[0].choices[0].finish_reason, null);
    // content chunks: one per word token
    const content = chunks.slice(1, -2).map((c) => c.choices[0].delta.content);
    assert.deepEqual(content, ['echo:', ' hello', ' big', ' world']);
    for (const c of chunks.slice(0, -2)) {
      assert.equal(c.usage, null);
      assert.equal(c.choices[0].finish_reason, null);
    }
    // finish chunk
    const fin = chunks.at(-2);
    assert.deepEqual(fin.choices[0].delta, {});
    assert.equal(fin.choices[0].finish_reason, 'stop');
    // usage chunk
    const u = chunks.at(-1);
    assert.deepEqual(u.choices, []);
    assert.deepEqual(u.usage, { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 });
  });

  test('streamed without include_usage: no usage chunk, no usage field', async () => {
    const r = await chat(chatBody('x y', { stream: true }));
    const { chunks, done } = openaiChunks((await readSSE(r)).events);
    assert.ok(done);
    for (const c of chunks) {
      assert.ok(!('usage' in c));
      assert.equal(c.choices.length, 1);
    }
    assert.equal(assembleOpenAI(chunks).content, 'echo: x y');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'stop');
  });

  test('scripted tokens, usage, finish_reason, model', async () => {
    fp.script({
      tokens: ['Hel', 'lo', '!'],
      usage: { prompt_tokens: 11, completion_tokens: 7 },
      finish_reason: 'length',
      model: 'gpt-4o-2024-08-06',
    });
    const { chunks } = openaiChunks(
      (await readSSE(await chat(chatBody('q', { stream: true, stream_options: { include_usage: true } })))).events,
    );
    const a = assembleOpenAI(chunks);
    assert.equal(a.content, 'Hello!');
    assert.equal(a.finish, 'length');
    assert.deepEqual(a.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
    assert.equal(chunks[0].model, 'gpt-4o-2024-08-06');

    fp.script({ text: 'The quick  fox.' });
    const j = await (await chat(chatBody())).json();
    assert.equal(j.choices[0].message.content, 'The quick  fox.');
    assert.equal(j.usage.completion_tokens, 3);
  });

  test('streamed tool calls: header chunk then argument fragments', async () => {
    const args = { city: 'Paris', unit: 'celsius', note: 'naïve 🌍' };
    fp.script({
      text: 'Checking.',
      tool_calls: [
        { id: 'call_abc', name: 'get_weather', arguments: args },
        { name: 'get_time', arguments: '{"tz":"UTC"}', split_args: 2 },
      ],
      split_args: 4,
    });
    const { chunks, done } = openaiChunks((await readSSE(await chat(chatBody('q', { stream: true })))).events);
    assert.ok(done);
    const toolChunks = chunks.filter((c) => c.choices[0]?.delta.tool_calls);
    // 2 headers + 4 + 2 fragments
    assert.equal(toolChunks.length, 8);
    const h0 = toolChunks[0].choices[0].delta.tool_calls[0];
    assert.deepEqual(h0, {
      index: 0,
      id: 'call_abc',
      type: 'function',
      function: { name: 'get_weather', arguments: '' },
    });
    for (const c of toolChunks.slice(1, 5)) {
      const tc = c.choices[0].delta.tool_calls[0];
      assert.equal(tc.index, 0);
      assert.deepEqual(Object.keys(tc).sort(), ['function', 'index']);
      assert.ok(tc.function.arguments.length > 0);
    }
    const h1 = toolChunks[5].choices[0].delta.tool_calls[0];
    assert.equal(h1.index, 1);
    assert.match(h1.id, /^call_/);
    assert.equal(h1.function.name, 'get_time');
    const a = assembleOpenAI(chunks);
    assert.equal(a.content, 'Checking.');
    assert.equal(a.finish, 'tool_calls');
    assert.deepEqual(JSON.parse(a.tools[0].arguments), args);
    assert.deepEqual(JSON.parse(a.tools[1].arguments), { tz: 'UTC' });
  });

  test('non-streamed tool calls', async () => {
    fp.script({ tool_calls: [{ id: 'call_1', name: 'f', arguments: { a: 1 } }] });
    const j = await (await chat(chatBody())).json();
    const m = j.choices[0].message;
    assert.equal(m.content, null);
    assert.deepEqual(m.tool_calls, [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }]);
    assert.equal(j.choices[0].finish_reason, 'tool_calls');
  });

  test('tool-only stream: role chunk has content null', async () => {
    fp.script({ tool_calls: [{ name: 'f', arguments: '' }] });
    const { chunks } = openaiChunks((await readSSE(await chat(chatBody('q', { stream: true })))).events);
    assert.equal(chunks[0].choices[0].delta.content, null);
    const a = assembleOpenAI(chunks);
    assert.equal(a.tools.length, 1);
    assert.equal(a.tools[0].arguments, '');
  });
});

// ------------------------------------------------------------------ Anthropic

describe('Anthropic /v1/messages', () => {
  test('non-streamed default echo', async () => {
    const r = await messages(msgBody('hello there'));
    assert.equal(r.status, 200);
    assert.ok(r.headers.get('request-id'));
    const j = await r.json();
    assert.match(j.id, /^msg_/);
    assert.equal(j.type, 'message');
    assert.equal(j.role, 'assistant');
    assert.equal(j.model, 'claude-sonnet-4-5');
    assert.deepEqual(j.content, [{ type: 'text', text: 'echo: hello there' }]);
    assert.equal(j.stop_reason, 'end_turn');
    assert.equal(j.stop_sequence, null);
    assert.equal(j.usage.input_tokens, 2);
    assert.equal(j.usage.output_tokens, 3);
  });

  test('echo skips tool_result-only user turns and reads text blocks', async () => {
    const body = msgBody('', {
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'what is the weather' }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'w', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'sunny' }] },
      ],
    });
    const j = await (await messages(body)).json();
    assert.equal(j.content[0].text, 'echo: what is the weather');
  });

  test('x-api-key and anthropic-version are required (401, Anthropic format)', async () => {
    for (const drop of ['x-api-key', 'anthropic-version']) {
      const h = { ...ANT };
      delete h[drop];
      const r = await messages(msgBody(), h);
      assert.equal(r.status, 401);
      const j = await r.json();
      assert.equal(j.type, 'error');
      assert.equal(j.error.type, 'authentication_error');
      assert.match(j.error.message, new RegExp(drop));
    }
    // a Bearer token alone is not enough here
    assert.equal((await messages(msgBody(), OAI)).status, 401);
  });

  test('missing max_tokens -> 400 invalid_request_error', async () => {
    const b = msgBody();
    delete b.max_tokens;
    const r = await messages(b);
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), {
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens: Field required' },
    });
  });

  test('streamed text: exact event sequence and payloads', async () => {
    fp.script({ tokens: ['Hel', 'lo'], usage: { prompt_tokens: 25, completion_tokens: 15 } });
    const r = await messages(msgBody('q', { stream: true }));
    assert.match(r.headers.get('content-type'), /^text\/event-stream/);
    const { events, error, raw } = await readSSE(r);
    assert.equal(error, null);
    assert.match(raw, /^event: message_start\ndata: /);
    const a = assembleAnthropic(events);
    assert.deepEqual(a.names, [
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    assert.equal(a.message.role, 'assistant');
    assert.deepEqual(a.message.content, []);
    assert.equal(a.message.stop_reason, null);
    assert.equal(a.message.usage.input_tokens, 25);
    assert.equal(a.blocks[0].type, 'text');
    assert.equal(a.blocks[0].text, 'Hello');
    assert.equal(a.stop, 'end_turn');
    assert.equal(a.outputTokens, 15);
  });

  test('streamed tool_use with input_json_delta', async () => {
    fp.script({
      text: 'Let me look.',
      tool_calls: [{ id: 'toolu_01', name: 'get_weather', arguments: { city: 'Paris' } }],
      split_args: 3,
    });
    const { events } = await readSSE(await messages(msgBody('q', { stream: true })));
    const a = assembleAnthropic(events);
    assert.deepEqual(a.names, [
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    assert.equal(a.blocks[0].text, 'Let me look.');
    assert.equal(a.blocks[1].type, 'tool_use');
    assert.equal(a.blocks[1].id, 'toolu_01');
    assert.equal(a.blocks[1].name, 'get_weather');
    assert.deepEqual(a.blocks[1].input, {});
    assert.deepEqual(JSON.parse(a.blocks[1].partial), { city: 'Paris' });
    assert.equal(a.stop, 'tool_use');
    const starts = events.filter((e) => e.event === 'content_block_start').map((e) => JSON.parse(e.data).index);
    assert.deepEqual(starts, [0, 1]);
  });

  test('non-streamed tool_use; finish_reason maps to stop_reason', async () => {
    fp.script([
      { tool_calls: [{ id: 'toolu_9', name: 'f', arguments: '{"a":[1,2]}' }] },
      { text: 'cut', finish_reason: 'length' },
    ]);
    let j = await (await messages(msgBody())).json();
    assert.deepEqual(j.content, [{ type: 'tool_use', id: 'toolu_9', name: 'f', input: { a: [1, 2] } }]);
    assert.equal(j.stop_reason, 'tool_use');
    j = await (await messages(msgBody())).json();
    assert.equal(j.stop_reason, 'max_tokens');
  });
});

// ------------------------------------------------------------------ embeddings

describe('OpenAI /v1/embeddings', () => {
  test('deterministic unit vectors, default 8 dims, requires auth', async () => {
    const get = async (input, extra = {}) =>
      (await post('/v1/embeddings', { model: 'text-embedding-3-small', input, ...extra })).json();
    const a = await get('hello');
    assert.equal(a.object, 'list');
    assert.equal(a.model, 'text-embedding-3-small');
    assert.equal(a.data.length, 1);
    assert.equal(a.data[0].object, 'embedding');
    assert.equal(a.data[0].index, 0);
    assert.equal(a.data[0].embedding.length, 8);
    assert.ok(Math.abs(Math.hypot(...a.data[0].embedding) - 1) < 1e-5);
    assert.deepEqual(a.data[0].embedding, fakeEmbedding('hello'));
    assert.ok(a.usage.prompt_tokens >= 1 && a.usage.total_tokens === a.usage.prompt_tokens);
    const b = await get('hello');
    assert.deepEqual(b.data[0].embedding, a.data[0].embedding);
    const many = await get(['hello', 'world'], { dimensions: 16 });
    assert.deepEqual(
      many.data.map((d) => d.index),
      [0, 1],
    );
    assert.equal(many.data[1].embedding.length, 16);
    assert.notDeepEqual(many.data[0].embedding, many.data[1].embedding);
    const b64 = await get('hello', { encoding_format: 'base64' });
    const f = new Float32Array(new Uint8Array(Buffer.from(b64.data[0].embedding, 'base64')).buffer);
    assert.equal(f.length, 8);
    assert.ok(Math.abs(f[0] - a.data[0].embedding[0]) < 1e-6);
    fp.script({ dims: 3, match: { path: '/v1/embeddings' } });
    assert.equal((await get('x')).data[0].embedding.length, 3);
    const r = await post('/v1/embeddings', { model: 'm', input: 'x' }, { 'content-type': 'application/json' });
    assert.equal(r.status, 401);
  });
});

// ------------------------------------------------------------------ faults

describe('faults: HTTP statuses', () => {
  test('429 with retry_after seconds / retry_after_date / retry_after_ms', async () => {
    fp.script([
      { status: 429, retry_after: 2 },
      { status: 429, retry_after_date: 30 },
      { status: 429, retry_after_ms: 150, retry_after: 1 },
    ]);
    let r = await chat(chatBody());
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '2');
    const j = await r.json();
    assert.equal(j.error.code, 'rate_limit_exceeded');
    assert.equal(j.error.type, 'requests');
    r = await chat(chatBody());
    const d = Date.parse(r.headers.get('retry-after'));
    assert.match(r.headers.get('retry-after'), /GMT$/);
    assert.ok(d - Date.now() > 25000 && d - Date.now() <= 31000);
    await r.arrayBuffer();
    r = await chat(chatBody());
    assert.equal(r.headers.get('retry-after-ms'), '150');
    await r.arrayBuffer();
    fp.script({ status: 429, retry_after_date: 'Wed, 21 Oct 2037 07:28:00 GMT' });
    r = await messages(msgBody());
    assert.equal(r.headers.get('retry-after'), 'Wed, 21 Oct 2037 07:28:00 GMT');
    assert.equal((await r.json()).error.type, 'rate_limit_error');
  });

  test('400 context length, exact bodies per provider', async () => {
    fp.script([{ status: 400 }, { status: 400 }]);
    let r = await chat(chatBody());
    assert.equal(r.status, 400);
    const j = await r.json();
    assert.equal(j.error.type, 'invalid_request_error');
    assert.equal(j.error.param, 'messages');
    assert.equal(j.error.code, 'context_length_exceeded');
    assert.match(j.error.message, /^This model's maximum context length is 8192 tokens/);
    r = await messages(msgBody());
    assert.deepEqual(await r.json(), {
      type: 'error',
      error: { type: 'invalid_request_error', message: 'prompt is too long: 210000 tokens > 200000 maximum' },
    });
  });

  test('500, 502 (HTML), 503, 529 per provider', async () => {
    fp.script([{ status: 500 }, { status: 502 }, { status: 503 }, { status: 529 }], { key: 'oai' });
    fp.script([{ status: 500 }, { status: 502 }, { status: 529 }], { key: 'ant' });
    const o = { ...OAI, 'x-fake-key': 'oai' };
    const an = { ...ANT, 'x-fake-key': 'ant' };
    let r = await chat(chatBody(), o);
    assert.equal(r.status, 500);
    assert.equal((await r.json()).error.type, 'server_error');
    r = await chat(chatBody(), o);
    assert.equal(r.status, 502);
    assert.match(r.headers.get('content-type'), /text\/html/);
    assert.match(await r.text(), /502 Bad Gateway/);
    r = await chat(chatBody(), o);
    assert.equal(r.status, 503);
    assert.equal((await r.json()).error.type, 'server_error');
    r = await chat(chatBody(), o);
    assert.equal(r.status, 529);
    await r.arrayBuffer();
    r = await messages(msgBody(), an);
    assert.equal(r.status, 500);
    assert.deepEqual(await r.json(), { type: 'error', error: { type: 'api_error', message: 'Internal server error' } });
    r = await messages(msgBody(), an);
    assert.equal(r.status, 502);
    await r.arrayBuffer();
    r = await messages(msgBody(), an);
    assert.equal(r.status, 529);
    assert.deepEqual(await r.json(), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
  });

  test('custom body and headers', async () => {
    fp.script({ status: 418, body: { custom: true }, headers: { 'x-extra': 'yes' } });
    const r = await chat(chatBody());
    assert.equal(r.status, 418);
    assert.equal(r.headers.get('x-extra'), 'yes');
    assert.deepEqual(await r.json(), { custom: true });
  });
});

describe('faults: timing and broken streams', () => {
  test('delay_ms delays the first byte; token_delay_ms spaces the chunks', async () => {
    fp.script({ delay_ms: 150, tokens: ['a', 'b', 'c', 'd'], token_delay_ms: 40 });
    const t0 = Date.now();
    const r = await chat(chatBody('q', { stream: true }));
    const tHeaders = Date.now() - t0;
    assert.ok(tHeaders >= 140, `headers after ${tHeaders} ms`);
    const times = [];
    const p = new SSEParser();
    const dec = new TextDecoder();
    for await (const c of r.body) {
      const n = p.events.length;
      p.push(dec.decode(c, { stream: true }));
      for (let i = n; i < p.events.length; i++) times.push(Date.now() - t0);
    }
    const { chunks } = openaiChunks(p.events);
    assert.equal(assembleOpenAI(chunks).content, 'abcd');
    // role+a together, then b, c, d each ~40 ms apart, then finish ~40 ms later
    const span = times.at(-1) - times[0];
    assert.ok(span >= 4 * 40 - 10, `stream spans ${span} ms`);
  });

  test('stall_after: N tokens, then silence until the client closes (recorded)', async () => {
    fp.script({ tokens: ['a', 'b', 'c', 'd'], stall_after: 2, name: 'stall-me' });
    const ac = new AbortController();
    const r = await chat(chatBody('q', { stream: true }), OAI, undefined, ac.signal);
    const p = new SSEParser();
    const dec = new TextDecoder();
    const reader = r.body.getReader();
    const readWithin = (ms) => Promise.race([reader.read(), sleep(ms).then(() => 'timeout')]);
    let x;
    while ((x = await readWithin(300)) !== 'timeout') {
      assert.ok(!x.done, 'stream must not end');
      p.push(dec.decode(x.value, { stream: true }));
    }
    const { chunks, done } = openaiChunks(p.events);
    assert.equal(done, false);
    assert.equal(assembleOpenAI(chunks).content, 'ab');
    const [rec] = fp.requests();
    assert.equal(rec.client_closed, false);
    assert.equal(rec.chunks_sent, 2);
    assert.equal(rec.fault, 'stall');
    const tAbort = Date.now();
    ac.abort();
    await fp.waitFor(() => rec.client_closed);
    assert.ok(rec.closed_at >= tAbort - 5 && rec.closed_at - tAbort < 1000);
    assert.equal(rec.step_name, 'stall-me');
    assert.equal(rec.finished_at, null);
  });

  test('stall_after on Anthropic stream and stall before headers', async () => {
    fp.script([{ tokens: ['x', 'y'], stall_after: 1 }, { stall: true }]);
    const ac = new AbortController();
    const r = await messages(msgBody('q', { stream: true }), ANT, undefined, ac.signal);
    const p = new SSEParser();
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    const first = await reader.read();
    p.push(dec.decode(first.value));
    const more = await Promise.race([reader.read(), sleep(200).then(() => 'timeout')]);
    assert.equal(more, 'timeout');
    const a = assembleAnthropic(p.events);
    assert.deepEqual(a.names, ['message_start', 'content_block_start', 'ping', 'content_block_delta']);
    ac.abort();
    const ac2 = new AbortController();
    const pending = messages(msgBody(), ANT, undefined, ac2.signal);
    const res = await Promise.race([pending, sleep(200).then(() => 'timeout')]);
    assert.equal(res, 'timeout', 'no headers may arrive');
    ac2.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    const recs = fp.requests();
    await fp.waitFor(() => recs.every((q) => q.client_closed));
  });

  test('client closing during delay_ms is recorded', async () => {
    fp.script({ delay_ms: 5000 });
    const ac = new AbortController();
    const pending = chat(chatBody(), OAI, undefined, ac.signal);
    await sleep(50);
    ac.abort();
    await assert.rejects(pending);
    const [rec] = fp.requests();
    await fp.waitFor(() => rec.client_closed);
    assert.ok(rec.closed_at - rec.time < 1000);
  });

  test('reset_after: N tokens, then the connection is reset', async () => {
    fp.script({ tokens: ['a', 'b', 'c'], reset_after: 2 });
    const res = await new Promise((resolve) => {
      const req = http.request(fp.url + '/v1/chat/completions', { method: 'POST', headers: OAI }, (r) => {
        let data = '';
        r.on('data', (c) => {
          data += c;
        });
        r.on('error', (e) => resolve({ data, error: e }));
        r.on('end', () => resolve({ data, error: null }));
      });
      req.on('error', noop);
      req.end(JSON.stringify(chatBody('q', { stream: true })));
    });
    assert.ok(res.error, 'the body must fail');
    assert.match(`${res.error.code} ${res.error.message}`, /ECONNRESET|aborted/);
    const p = new SSEParser();
    p.push(res.data);
    const { chunks, done } = openaiChunks(p.events);
    assert.equal(done, false);
    assert.equal(assembleOpenAI(chunks).content, 'ab');
    const [rec] = fp.requests();
    assert.equal(rec.fault, 'reset');
    assert.equal(rec.client_closed, false);
  });

  test('reset before any byte, and non-streamed reset_after', async () => {
    fp.script([{ reset: true }, { reset_after: 0 }]);
    await assert.rejects(chat(chatBody()), (e) =>
      /ECONNRESET|other side closed|socket/i.test(`${e.cause?.code} ${e.cause?.message}`),
    );
    let err = null;
    try {
      const r = await chat(chatBody());
      await r.text();
    } catch (e) {
      err = e;
    }
    assert.ok(err, 'non-streamed reset_after must fail the request');
  });

  test('reset_after with token_delay_ms delivers exactly N tokens first', async () => {
    fp.script({ tokens: ['a', 'b', 'c'], reset_after: 1, token_delay_ms: 20 }, { key: 'r' });
    const r = await messages(msgBody('q', { stream: true }), { ...ANT, 'x-fake-key': 'r' });
    const { events, error } = await readSSE(r);
    assert.ok(error);
    const a = assembleAnthropic(events);
    assert.equal(a.blocks[0].text, 'a');
    assert.ok(!a.names.includes('message_stop'));
  });

  test('malformed_after: N tokens then a chunk of invalid JSON (both providers)', async () => {
    fp.script({ tokens: ['a', 'b', 'c'], malformed_after: 1 });
    let { events, error } = await readSSE(await chat(chatBody('q', { stream: true })));
    assert.equal(error, null);
    assert.equal(events.length, 3); // role, "a", malformed
    assert.equal(JSON.parse(events[1].data).choices[0].delta.content, 'a');
    assert.throws(() => JSON.parse(events[2].data), SyntaxError);
    assert.ok(!events.some((e) => e.data === '[DONE]'));

    fp.script({ tokens: ['a', 'b', 'c'], malformed_after: 2 });
    ({ events, error } = await readSSE(await messages(msgBody('q', { stream: true }))));
    assert.equal(error, null);
    const last = events.at(-1);
    assert.equal(last.event, 'content_block_delta');
    assert.throws(() => JSON.parse(last.data), SyntaxError);
    assert.equal(events.filter((e) => e.event === 'content_block_delta').length, 3);

    fp.script({ malformed_after: 0 });
    const r = await chat(chatBody());
    assert.equal(r.status, 200);
    await assert.rejects(r.json(), SyntaxError);
  });

  test('end_after: N tokens, then a clean end without the finish events', async () => {
    fp.script([
      { tokens: ['a', 'b'], end_after: 1 },
      { tokens: ['a', 'b'], end_after: 1 },
    ]);
    let { events, error } = await readSSE(await chat(chatBody('q', { stream: true })));
    assert.equal(error, null);
    const { chunks, done } = openaiChunks(events);
    assert.equal(done, false);
    assert.equal(assembleOpenAI(chunks).finish, null);
    ({ events, error } = await readSSE(await messages(msgBody('q', { stream: true }))));
    assert.equal(error, null);
    assert.ok(!events.some((e) => e.event === 'message_stop'));
  });

  test('in_stream_error: OpenAI data: {"error":...}, Anthropic event: error', async () => {
    fp.script([
      { tokens: ['a', 'b', 'c'], in_stream_error: 2 },
      { tokens: ['a'], in_stream_error: true },
      { in_stream_error: true },
    ]);
    let { events } = await readSSE(await chat(chatBody('q', { stream: true })));
    const last = JSON.parse(events.at(-1).data);
    assert.equal(last.error.type, 'server_error');
    assert.ok(last.error.message);
    assert.equal(events.filter((e) => e.data.includes('"content"')).length, 3); // role + a + b
    assert.ok(!events.some((e) => e.data === '[DONE]'));

    ({ events } = await readSSE(await messages(msgBody('q', { stream: true }))));
    const err = events.at(-1);
    assert.equal(err.event, 'error');
    assert.deepEqual(JSON.parse(err.data), {
      type: 'error',
      error: { type: 'overloaded_error', message: 'Overloaded' },
    });
    assert.equal(assembleAnthropic(events.slice(0, -1)).blocks[0].text, 'a');

    const r = await chat(chatBody());
    assert.equal(r.status, 500);
    await r.arrayBuffer();

    fp.script({
      tokens: ['a', 'b'],
      in_stream_error: { after: 1, type: 'api_error', message: 'Internal server error' },
    });
    ({ events } = await readSSE(await messages(msgBody('q', { stream: true }))));
    assert.deepEqual(JSON.parse(events.at(-1).data), {
      type: 'error',
      error: { type: 'api_error', message: 'Internal server error' },
    });
    assert.equal(events.filter((e) => e.event === 'content_block_delta').length, 1);
  });

  test('non-streamed stall_after sends headers then hangs', async () => {
    fp.script({ stall_after: 0 });
    const ac = new AbortController();
    const r = await chat(chatBody(), OAI, undefined, ac.signal);
    assert.equal(r.status, 200);
    const body = r.text();
    const x = await Promise.race([body, sleep(200).then(() => 'timeout')]);
    assert.equal(x, 'timeout');
    ac.abort();
    await assert.rejects(body);
    const [rec] = fp.requests();
    await fp.waitFor(() => rec.client_closed);
  });
});

// ------------------------------------------------------------------ script, routes, recording

describe('script queue, route keys, prefixes, recording', () => {
  test('steps are consumed in order; repeat serves K requests; then default echo', async () => {
    const ids = fp.script([{ text: 'one', repeat: 2 }, { text: 'two' }]);
    assert.equal(ids.length, 2);
    const texts = [];
    for (let i = 0; i < 4; i++) texts.push((await (await chat(chatBody('zz'))).json()).choices[0].message.content);
    assert.deepEqual(texts, ['one', 'one', 'two', 'echo: zz']);
    assert.deepEqual(
      fp.requests().map((r) => r.step),
      [ids[0], ids[0], ids[1], null],
    );
    assert.deepEqual(
      fp.requests().map((r) => r.served_by),
      ['script', 'script', 'script', 'default'],
    );
  });

  test('repeat forever', async () => {
    fp.script({ text: 'always', repeat: 'forever' });
    for (let i = 0; i < 3; i++)
      assert.equal((await (await chat(chatBody())).json()).choices[0].message.content, 'always');
    assert.equal(fp.queued().length, 1);
  });

  test('x-fake-key isolates parallel tests', async () => {
    fp.script({ text: 'for t1', key: 't1' });
    fp.script({ text: 'for t2', key: 't2' });
    const say = async (k) =>
      (await (await chat(chatBody('plain'), k ? { ...OAI, 'x-fake-key': k } : OAI)).json()).choices[0].message.content;
    assert.equal(await say(null), 'echo: plain'); // un-keyed requests never take keyed steps
    assert.equal(await say('t3'), 'echo: plain');
    assert.equal(await say('t2'), 'for t2');
    assert.equal(await say('t1'), 'for t1');
    assert.equal(fp.requests({ key: 't1' }).length, 1);
    fp.script({ text: 'un-keyed' });
    assert.equal(await say('t1'), 'echo: plain'); // keyed requests never take un-keyed steps
    assert.equal(await say(null), 'un-keyed');
  });

  test('match by model and path', async () => {
    fp.script([
      { text: 'for mini', match: { model: 'gpt-4o-mini' } },
      { status: 503, match: { path: '/v1/messages' } },
    ]);
    assert.equal((await (await chat(chatBody('q'))).json()).choices[0].message.content, 'echo: q');
    assert.equal(
      (await (await chat({ ...chatBody(), model: 'gpt-4o-mini' })).json()).choices[0].message.content,
      'for mini',
    );
    assert.equal((await messages(msgBody())).status, 503);
  });

  test('path prefixes: region A fails, region B serves (failover)', async () => {
    fp.script([
      { status: 503, match: { prefix: 'a' }, repeat: 2 },
      { text: 'from B', match: { prefix: 'b' } },
    ]);
    assert.equal(
      (await chat(chatBody(), OAI, '/b/v1/chat/completions').then((r) => r.json())).choices[0].message.content,
      'from B',
    );
    assert.equal((await chat(chatBody(), OAI, '/a/v1/chat/completions')).status, 503);
    assert.equal((await messages(msgBody(), ANT, '/a/v1/messages')).status, 503);
    // un-prefixed requests are not region A
    assert.equal((await chat(chatBody())).status, 200);
    const recs = fp.requests();
    assert.deepEqual(
      recs.map((r) => [r.prefix, r.route]),
      [
        ['b', '/v1/chat/completions'],
        ['a', '/v1/chat/completions'],
        ['a', '/v1/messages'],
        ['', '/v1/chat/completions'],
      ],
    );
    assert.equal(fp.requests({ prefix: 'a' }).length, 2);
    // multi-segment prefixes work too
    assert.equal(
      (await chat(chatBody('deep'), OAI, '/t7/b/v1/chat/completions').then((r) => r.json())).choices[0].message.content,
      'echo: deep',
    );
    assert.equal(fp.requests().at(-1).prefix, 't7/b');
  });

  test('control API over HTTP: /_script, /_requests, /_reset, /_health', async () => {
    let c = await control('POST', '/_script', {
      key: 'h',
      steps: [{ text: 'via http', name: 'first' }, { status: 500 }],
    });
    assert.equal(c.status, 200);
    assert.equal(c.json.ids.length, 2);
    c = await control('POST', '/_script', [{ text: 'x', bogus: 1 }]);
    assert.equal(c.status, 400);
    assert.match(c.json.error, /bogus/);
    c = await control('POST', '/_script', { text: 'single' });
    assert.equal(c.status, 200);
    c = await control('GET', '/_script?key=h');
    assert.deepEqual(
      c.json.map((s) => s.name),
      ['first', null],
    );

    const hdr = { ...OAI, 'x-fake-key': 'h', 'x-trace': 'abc' };
    const t0 = Date.now();
    const j = await (await chat(chatBody('q', { temperature: 0.5 }), hdr)).json();
    assert.equal(j.choices[0].message.content, 'via http');
    c = await control('GET', '/_requests?key=h');
    assert.equal(c.json.length, 1);
    const rec = c.json[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/chat/completions');
    assert.equal(rec.headers['x-trace'], 'abc');
    assert.equal(rec.headers.authorization, 'Bearer sk-test');
    assert.equal(rec.body.temperature, 0.5);
    assert.deepEqual(rec.body.messages, chatBody('q').messages);
    assert.equal(rec.step_name, 'first');
    assert.equal(rec.status, 200);
    assert.equal(rec.stream, false);
    assert.equal(rec.client_closed, false);
    assert.ok(rec.time >= t0 - 5 && rec.time <= Date.now());
    assert.ok(rec.finished_at >= rec.time);

    c = await control('GET', '/_health');
    assert.equal(c.json.ok, true);
    assert.equal(c.json.queued, 2);

    c = await control('POST', '/_reset', { key: 'h' });
    assert.equal(c.status, 200);
    assert.equal((await control('GET', '/_requests?key=h')).json.length, 0);
    assert.equal((await control('GET', '/_script')).json.length, 1); // the un-keyed step survives
    await control('POST', '/_reset');
    assert.equal((await control('GET', '/_script')).json.length, 0);
    assert.equal((await control('GET', '/_requests')).json.length, 0);
  });

  test('script validation names the problem', () => {
    assert.throws(() => fp.script({ tokenz: ['a'] }), /unknown step field "tokenz"/);
    assert.throws(() => fp.script({ delay_ms: -1 }), /delay_ms/);
    assert.throws(() => fp.script({ match: { modle: 'x' } }), /unknown match field/);
    assert.throws(() => fp.script({ tokens: ['a'], text: 'b' }), /not both/);
    assert.throws(() => fp.script({ repeat: 0 }), /repeat/);
    assert.equal(fp.queued().length, 0);
  });

  test('splitWords concatenates back to the text', () => {
    for (const s of ['a', ' a b  c ', 'hello\nworld', '', 'x  ']) assert.equal(splitWords(s).join(''), s);
    assert.deepEqual(splitWords('echo: a b'), ['echo:', ' a', ' b']);
  });
});

function noop() {}

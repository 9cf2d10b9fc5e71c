// The AI SDK's own client (`ai`: AbstractChat with DefaultChatTransport)
// against the real binary: POST /v1/ai-sdk/chat answers with the UI message
// stream, GET /v1/ai-sdk/chat/{id}/stream resumes (a snapshot of the message in
// flight, or exactly after Last-Event-ID), across a kill -9 too.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AbstractChat, DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';
import { connect, fakeTarget, httpRequest, itest, sleep, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

/** The smallest ChatState: what @ai-sdk/react keeps in React state, in plain fields. */
class State {
  constructor(messages = []) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage(m) {
    this.messages = [...this.messages, m];
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(i, m) {
    this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)];
  }
  snapshot(x) {
    return structuredClone(x);
  }
}

class Chat extends AbstractChat {
  constructor(opts) {
    super({ ...opts, state: new State(opts.messages ?? []) });
  }
}

/** A fetch that keeps every SSE event's `id:` as it passes, in order (the SDK ignores them). */
function recordingFetch() {
  const ids = [];
  const headers = [];
  const f = async (url, init) => {
    const res = await fetch(url, init);
    headers.push(res.headers);
    if (!res.body) return res;
    let carry = '';
    const dec = new TextDecoder();
    const body = res.body.pipeThrough(
      new TransformStream({
        transform(chunk, ctl) {
          carry += dec.decode(chunk, { stream: true });
          let i;
          while ((i = carry.indexOf('\n\n')) >= 0) {
            const ev = carry.slice(0, i);
            carry = carry.slice(i + 2);
            const m = /^id: (\d+)$/m.exec(ev);
            const data = /^data: (.*)$/m.exec(ev)?.[1];
            if (data && data !== '[DONE]') ids.push(m ? Number(m[1]) : 0);
          }
          ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(body, { status: res.status, headers: res.headers });
  };
  return { fetch: f, ids, headers };
}

const api = (srv) => `http://127.0.0.1:${srv.port}/v1/ai-sdk/chat`;
const userMsg = (id, text) => ({ id, role: 'user', parts: [{ type: 'text', text }] });
const textOf = (m) =>
  m.parts
    .filter((p) => p.type === 'text')
    .map((p) => p.text)
    .join('');

/** Read n chunks of a stream, then cancel it (a dropped connection). */
async function readSome(stream, n) {
  const reader = stream.getReader();
  const got = [];
  while (got.length < n) {
    const { value, done } = await reader.read();
    if (done) break;
    got.push(value);
  }
  await reader.cancel();
  return got;
}

async function readAll(stream) {
  const got = [];
  for await (const c of stream) got.push(c);
  return got;
}

const deltas = (chunks) =>
  chunks
    .filter((c) => c.type === 'text-delta')
    .map((c) => c.delta)
    .join('');

const WORDS = Array.from({ length: 24 }, (_, i) => `w${i}`);
const ECHO_TEXT = WORDS.join(' ');

itest('useChat over HTTP: a streamed answer from the chat agent and the fake provider', async ({ startServer }) => {
  const P = 'aisdk-basic';
  fp.script({ tokens: ['Hel', 'lo', ' from', ' Tether'], token_delay_ms: 20, match: { prefix: P } });
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'fake-key-1' } });
  const rec = recordingFetch();
  const chat = new Chat({ id: 'chatA1', transport: new DefaultChatTransport({ api: api(srv), fetch: rec.fetch }) });
  await chat.sendMessage({ text: 'hi there' });
  assert.equal(chat.status, 'ready', String(chat.error));
  assert.equal(chat.messages.length, 2);
  assert.equal(chat.messages[1].role, 'assistant');
  assert.equal(textOf(chat.messages[1]), 'Hello from Tether');
  assert.equal(rec.headers[0].get('x-vercel-ai-ui-message-stream'), 'v1');
  const seqs = rec.ids.filter((x) => x > 0);
  assert.ok(
    seqs.every((s, i) => i === 0 || s > seqs[i - 1]),
    `ids increase: ${seqs}`,
  );
  // The provider was asked with the user's text; the chat id is the session.
  const sent = fp.requests({ prefix: P })[0];
  assert.ok(JSON.stringify(sent.body.messages).includes('hi there'));
  // A second turn on the same chat continues the same session.
  fp.script({ text: 'Second', match: { prefix: P } });
  await chat.sendMessage({ text: 'again' });
  assert.equal(textOf(chat.messages[3]), 'Second');
  const ctx = JSON.stringify(fp.requests({ prefix: P })[1].body.messages);
  assert.ok(ctx.includes('hi there') && ctx.includes('Hello from Tether'), ctx);
  // Nothing active now: the resume route says 204.
  const r = await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/chatA1/stream');
  assert.equal(r.status, 204);
});

itest(
  'useChat over HTTP: a drop mid-stream, then resume after Last-Event-ID: nothing lost or doubled',
  async ({ startServer }) => {
    const srv = await startServer();
    const rec = recordingFetch();
    const transport = new DefaultChatTransport({ api: `${api(srv)}?agent=echo`, fetch: rec.fetch });
    const stream = await transport.sendMessages({
      chatId: 'chatB1',
      messages: [userMsg('u1', ECHO_TEXT)],
      trigger: 'submit-message',
      abortSignal: undefined,
    });
    const first = await readSome(stream, 6);
    const last = rec.ids[first.length - 1];
    assert.ok(last > 0, `an id on the last chunk read: ${rec.ids}`);
    const resumed = await transport.reconnectToStream({ chatId: 'chatB1', headers: { 'Last-Event-ID': String(last) } });
    assert.ok(resumed, 'a stream is active');
    const rest = await readAll(resumed);
    assert.equal(rest[0].type, 'start');
    assert.equal(rest.at(-1).type, 'finish');
    const restIds = rec.ids.slice(rec.ids.length - rest.length).filter((x) => x > 0);
    assert.ok(restIds[0] > last, `resumed ids ${restIds} start after ${last}`);
    assert.equal((deltas(first) + deltas(rest)).trim(), ECHO_TEXT);
    // Resuming again from before the end replays only the missed tail.
    const tail = await transport.reconnectToStream({
      chatId: 'chatB1',
      headers: { 'Last-Event-ID': String(restIds.at(-2)) },
    });
    const tailChunks = await readAll(tail);
    assert.deepEqual(
      tailChunks.map((c) => c.type),
      ['start', 'finish'],
    );
    assert.equal(await transport.reconnectToStream({ chatId: 'chatB1' }), null, 'idle: 204');
  },
);

itest(
  'useChat: stop() mid-stream leaves the run going; resumeStream() after a reload shows it whole',
  async ({ startServer }) => {
    const srv = await startServer();
    const transport = new DefaultChatTransport({ api: `${api(srv)}?agent=echo` });
    const chat = new Chat({ id: 'chatC1', transport });
    const done = chat.sendMessage({ text: ECHO_TEXT });
    while (textOf(chat.messages[1] ?? { parts: [] }).length < 8) await sleep(20);
    await chat.stop();
    await done;
    assert.ok(textOf(chat.messages[1]).length < ECHO_TEXT.length, 'stopped before the end');
    // A reload: the app's saved messages (the user's), then resumeStream().
    const reloaded = new Chat({ id: 'chatC1', transport, messages: [chat.messages[0]] });
    await reloaded.resumeStream();
    assert.equal(reloaded.status, 'ready', String(reloaded.error));
    assert.equal(reloaded.messages.length, 2, JSON.stringify(reloaded.messages));
    assert.equal(textOf(reloaded.messages[1]).trim(), ECHO_TEXT);
  },
);

itest(
  'useChat: resume after kill -9 mid-stream continues from Last-Event-ID with seqs never reused',
  async ({ startServer }) => {
    const srv = await startServer();
    const rec = recordingFetch();
    const transport = new DefaultChatTransport({ api: `${api(srv)}?agent=echo`, fetch: rec.fetch });
    const stream = await transport.sendMessages({
      chatId: 'chatD1',
      messages: [userMsg('u1', ECHO_TEXT)],
      trigger: 'submit-message',
    });
    const reader = stream.getReader();
    const first = [];
    while (first.length < 6) first.push((await reader.read()).value);
    const last = rec.ids[first.length - 1];
    await srv.kill9();
    await reader.cancel().catch(() => {});
    await srv.restart();
    const resumed = await transport.reconnectToStream({ chatId: 'chatD1', headers: { 'Last-Event-ID': String(last) } });
    assert.ok(resumed, 'the turn is still active after the restart');
    const rest = await readAll(resumed);
    const restIds = rec.ids.slice(rec.ids.length - rest.length).filter((x) => x > 0);
    assert.ok(restIds[0] > last, `resumed ids ${restIds} after ${last}`);
    // The interrupted message is withdrawn (a data part), then streamed again whole.
    const discard = rest.find((c) => c.type === 'data-tether-discard');
    assert.ok(discard, JSON.stringify(rest.map((c) => c.type)));
    assert.equal(discard.data.reason, 'restart');
    const after = rest.slice(rest.indexOf(discard));
    assert.equal(deltas(after).trim(), ECHO_TEXT);
    assert.equal(rest.at(-1).type, 'finish');
  },
);

itest(
  'AI SDK routes: bad input is a clear error and creates nothing; other users are refused',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--api-key', 'k1'] });
    const auth = { authorization: 'Bearer k1' };
    const post = (body, headers = auth, q = '?agent=echo') =>
      httpRequest(srv.port, 'POST', `/v1/ai-sdk/chat${q}`, { headers, body });
    assert.equal((await post({ id: 'x1', messages: [userMsg('u', 'hi')] }, {})).status, 401);
    let r = await post({ id: 'bad id!', messages: [userMsg('u', 'hi')] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /id must be/);
    r = await post({ id: 'x1', messages: [] });
    assert.equal(r.status, 400);
    r = await post({ id: 'x1', messages: [userMsg('u', 'hi')], trigger: 'regenerate-message' });
    assert.equal(r.status, 400);
    r = await post({ id: 'x1', messages: [userMsg('u', 'hi')] }, auth, '?agent=nope');
    assert.equal(r.status, 404);
    assert.equal((await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/x1/stream', { headers: auth })).status, 404);
    r = await post({ id: 'x1', messages: [userMsg('u', 'hi')] });
    assert.equal(r.status, 200);
    assert.match(r.body, /"type":"finish"/);
    // A JWT for another user may not read or write that chat.
    const tok = await httpRequest(srv.port, 'POST', '/v1/tokens', { headers: auth, body: { user: 'bob' } });
    const bob = { authorization: `Bearer ${tok.json.token}` };
    assert.equal((await post({ id: 'x1', messages: [userMsg('u2', 'hi')] }, bob)).status, 403);
    assert.equal((await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/x1/stream', { headers: bob })).status, 403);
    r = await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/x1/stream?after=abc', { headers: auth });
    assert.equal(r.status, 400);
  },
);

itest(
  'a chat deleted over the WebSocket while its stream is open: the stream is cut, the server goes on',
  async ({ startServer }) => {
    const srv = await startServer();
    const transport = new DefaultChatTransport({ api: `${api(srv)}?agent=echo` });
    const stream = await transport.sendMessages({
      chatId: 'chatE1',
      messages: [userMsg('u1', ECHO_TEXT)],
      trigger: 'submit-message',
    });
    const reader = stream.getReader();
    await reader.read();
    await reader.read();
    // The page's socket (open mode: the same user) sees the chat as a session and deletes it.
    const c = await connect(srv.port, { hello: true });
    const del = await c.ok({ type: 'session.delete', session: 'chatE1' });
    assert.equal(del.deleted, true);
    let failed = false;
    try {
      while (!(await reader.read()).done);
    } catch {
      failed = true;
    }
    assert.ok(failed, 'a cut stream ends in an error, never as a finished answer');
    assert.equal((await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/chatE1/stream')).status, 404);
    assert.equal((await httpRequest(srv.port, 'GET', '/readyz')).status, 200);
  },
);

/** An assistant "mailer" whose tool send_mail waits for approval (no tool server is reached when rejected). */
function mailerFiles(P) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-aisdk-'));
  const tools = path.join(dir, 'tools.json');
  const obj = { type: 'object', additionalProperties: false };
  writeFileSync(
    tools,
    JSON.stringify({
      tools: [
        {
          name: 'send_mail',
          description: 'Send an e-mail',
          url: 'http://127.0.0.1:9/mail',
          timeout_ms: 1000,
          approval: true,
          parameters: { ...obj, properties: { to: { type: 'string' } }, required: ['to'] },
        },
      ],
    }),
  );
  const agents = path.join(dir, 'agents.json');
  writeFileSync(
    agents,
    JSON.stringify({
      agents: [{ name: 'mailer', description: 'Sends mail', tools: ['send_mail'], max_tool_rounds: 2 }],
    }),
  );
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  return ['--routes', routes, '--tools', tools, '--agents', agents];
}

itest(
  "useChat: a tool approval answered with the SDK's addToolApprovalResponse reaches the agent",
  async ({ startServer }) => {
    const P = 'aisdk-approval';
    fp.script([
      { tool_calls: [{ id: 'm1', name: 'send_mail', arguments: '{"to":"a@example.com"}' }], match: { prefix: P } },
      { text: 'Not sent.', match: { prefix: P } },
    ]);
    const srv = await startServer({ args: mailerFiles(P), env: { FAKE_KEY: 'k' } });
    const chat = new Chat({
      id: 'chatF1',
      transport: new DefaultChatTransport({ api: `${api(srv)}?agent=mailer` }),
      sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    });
    await chat.sendMessage({ text: 'mail a@example.com' });
    assert.equal(chat.status, 'ready', String(chat.error));
    const reply = chat.messages[1];
    const tool = reply.parts.find((p) => p.type === 'tool-send_mail');
    assert.ok(tool, JSON.stringify(reply.parts));
    assert.equal(tool.state, 'approval-requested');
    assert.deepEqual(tool.input, { to: 'a@example.com' });
    assert.match(tool.approval.id, /^a_[0-9a-f]{32}$/);
    await chat.addToolApprovalResponse({ id: tool.approval.id, approved: false, reason: 'no mail today' });
    for (let i = 0; i < 200 && !textOf(chat.messages.at(-1)).includes('Not sent.'); i++) await sleep(25);
    assert.equal(chat.status, 'ready', String(chat.error));
    assert.ok(textOf(chat.messages.at(-1)).includes('Not sent.'), JSON.stringify(chat.messages.at(-1)));
    // The model was told of the rejection; the call did not run.
    const second = JSON.stringify(fp.requests({ prefix: P })[1].body.messages);
    assert.match(second, /the user refused this call; it was not run/);
    // The same answer again is a conflict: it was applied once.
    const again = await httpRequest(srv.port, 'POST', '/v1/ai-sdk/chat', {
      body: {
        id: 'chatF1',
        messages: [
          chat.messages[0],
          {
            ...reply,
            parts: [{ ...tool, state: 'approval-responded', approval: { id: tool.approval.id, approved: true } }],
          },
        ],
      },
    });
    assert.equal(again.status, 409, again.body);
  },
);

itest('useChat: a question comes as a data part named by its question id', async ({ startServer }) => {
  const srv = await startServer();
  const chat = new Chat({ id: 'chatH1', transport: new DefaultChatTransport({ api: `${api(srv)}?agent=echo` }) });
  await chat.sendMessage({ text: 'ask' });
  assert.equal(chat.status, 'ready', String(chat.error));
  const q = chat.messages[1].parts.find((p) => p.type === 'data-tether-question');
  assert.ok(q, JSON.stringify(chat.messages[1]));
  assert.match(q.id, /^q_/);
  assert.equal(q.data.question_id, q.id);
  assert.deepEqual(q.data.choices, ['yes', 'no']);
});

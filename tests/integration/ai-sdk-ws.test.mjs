// The AI SDK over one WebSocket (/v1/ai-sdk/ws). The installed `ai` package
// has no WebSocketChatTransport, so this file holds a small ChatTransport
// (the SDK's own interface) speaking the frames of protocol/PROTOCOL.md,
// "AI SDK over a WebSocket", driven by the SDK's AbstractChat: a streamed
// answer, a dropped socket resumed by lastSequence with nothing lost or
// doubled, an explicit abort that cancels the run, no-active.

import assert from 'node:assert/strict';
import { AbstractChat } from 'ai';
import WebSocket from 'ws';
import { CheckedAiSdkWebSocket, httpRequest, itest, sleep } from './harness.mjs';

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

/** A ChatTransport over one socket; remembers the last sequence seen per chat. */
class WsTransport {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.lastSequence = new Map();
    this.resumeStreamIsReplay = false; // a resume continues after lastSequence
  }
  async socket() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return this.ws;
    this.ws = new CheckedAiSdkWebSocket(this.url); // every frame checked against protocol/schema
    await new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
    return this.ws;
  }
  /** The chunks of chatId's next stream; null on no-active. */
  async stream(chatId, frame, abortSignal) {
    const ws = await this.socket();
    let ctl;
    let resolveFirst;
    const first = new Promise((r) => (resolveFirst = r));
    const onMessage = (data) => {
      try {
        handle(JSON.parse(String(data)));
      } catch {
        ws.off('message', onMessage); // the reader went away (stop)
      }
    };
    const handle = (f) => {
      if (f.chatId !== chatId) return;
      if (f.type === 'start') resolveFirst(true);
      else if (f.type === 'no-active') {
        resolveFirst(false);
        ws.off('message', onMessage);
      } else if (f.type === 'chunk') {
        if (f.sequence > 0) this.lastSequence.set(chatId, f.sequence);
        ctl.enqueue(f.chunk);
      } else if (f.type === 'end') {
        ws.off('message', onMessage);
        ctl.close();
      } else if (f.type === 'error') {
        ws.off('message', onMessage);
        resolveFirst(true);
        ctl.error(new Error(f.message));
      }
    };
    const body = new ReadableStream({
      start(c) {
        ctl = c;
      },
    });
    ws.on('message', onMessage);
    ws.once('close', () => {
      try {
        ctl.error(new Error('socket closed'));
      } catch {
        /* already closed */
      }
    });
    abortSignal?.addEventListener('abort', () => {
      ws.send(JSON.stringify({ type: 'abort', chatId }));
    });
    ws.send(JSON.stringify(frame));
    return (await first) ? body : null;
  }
  sendMessages({ chatId, messages, trigger, abortSignal, body }) {
    return this.stream(chatId, { type: 'send', chatId, messages, trigger, ...body }, abortSignal);
  }
  reconnectToStream({ chatId }) {
    const last = this.lastSequence.get(chatId);
    return this.stream(chatId, { type: 'resume', chatId, ...(last ? { lastSequence: last } : {}) });
  }
}

const WORDS = Array.from({ length: 24 }, (_, i) => `v${i}`).join(' ');
const textOf = (m) =>
  m.parts
    .filter((p) => p.type === 'text')
    .map((p) => p.text)
    .join('');

itest('AI SDK over a WebSocket: a streamed answer, then no-active', async ({ startServer }) => {
  const srv = await startServer();
  const t = new WsTransport(`ws://127.0.0.1:${srv.port}/v1/ai-sdk/ws`);
  const chat = new Chat({ id: 'wsA1', transport: t });
  await chat.sendMessage({ text: 'hello over the socket' }, { body: { agent: 'echo' } });
  assert.equal(chat.status, 'ready', String(chat.error));
  assert.equal(textOf(chat.messages[1]), 'hello over the socket');
  assert.equal(await t.reconnectToStream({ chatId: 'wsA1' }), null);
  t.ws.close();
});

itest(
  'AI SDK over a WebSocket: a dropped socket resumes by lastSequence, nothing lost or doubled',
  async ({ startServer }) => {
    const srv = await startServer();
    const t = new WsTransport(`ws://127.0.0.1:${srv.port}/v1/ai-sdk/ws`);
    const chat = new Chat({ id: 'wsB1', transport: t });
    const sent = chat.sendMessage({ text: WORDS }, { body: { agent: 'echo' } });
    while (textOf(chat.messages[1] ?? { parts: [] }).length < 10) await sleep(10);
    t.ws.terminate(); // the network goes
    await sent;
    assert.equal(chat.status, 'error');
    const partial = textOf(chat.messages[1]);
    assert.ok(partial.length < WORDS.length, partial);
    await chat.resumeStream();
    assert.equal(chat.status, 'ready', String(chat.error));
    // The SDK shows the continuation as its own assistant message: together
    // they are the answer, each word once.
    const answer = chat.messages.slice(1).map(textOf).join('');
    assert.equal(answer.trim(), WORDS, JSON.stringify(chat.messages));

    t.ws.close();
  },
);

itest('AI SDK over a WebSocket: stop() sends abort, which cancels the run', async ({ startServer }) => {
  const srv = await startServer();
  const t = new WsTransport(`ws://127.0.0.1:${srv.port}/v1/ai-sdk/ws`);
  const chat = new Chat({ id: 'wsC1', transport: t });
  const sent = chat.sendMessage({ text: WORDS }, { body: { agent: 'echo' } });
  while (textOf(chat.messages[1] ?? { parts: [] }).length < 6) await sleep(10);
  await chat.stop();
  await sent;
  // The run is withdrawn as cancelled and ends: soon nothing is active, and
  // the log (the turn replayed, after the session's first event) shows the cancellation.
  let status = 200;
  for (let i = 0; i < 100 && status !== 204; i++) {
    status = (await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/wsC1/stream')).status;
    if (status !== 204) await sleep(50);
  }
  assert.equal(status, 204, 'the run stopped');
  const log = await httpRequest(srv.port, 'GET', '/v1/ai-sdk/chat/wsC1/stream?after=1');
  assert.match(log.body, /"type":"data-tether-discard"[^\n]*"reason":"cancelled"/);
  assert.ok(!log.body.includes('v23'), 'the answer was cut short');
  t.ws.close();
});

itest('AI SDK over a WebSocket: with API keys a token is required; bad frames are errors', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'k1'] });
  // Refused in the socket's own error frame (checked against its schema), then closed.
  const bare = new CheckedAiSdkWebSocket(`ws://127.0.0.1:${srv.port}/v1/ai-sdk/ws`);
  const said = [];
  bare.on('message', (d) => said.push(JSON.parse(String(d))));
  const code = await new Promise((r) => bare.once('close', (c) => r(c)));
  assert.equal(code, 4001);
  assert.deepEqual(said, [{ type: 'error', chatId: '', message: 'a token is required (Authorization or ?token=)' }]);
  const badToken = new CheckedAiSdkWebSocket(`ws://127.0.0.1:${srv.port}/v1/ai-sdk/ws?token=not.a.token`);
  const said2 = [];
  badToken.on('message', (d) => said2.push(JSON.parse(String(d))));
  assert.equal(await new Promise((r) => badToken.once('close', (c) => r(c))), 4001);
  assert.deepEqual(said2, [{ type: 'error', chatId: '', message: 'invalid or expired token' }]);
  const tok = await httpRequest(srv.port, 'POST', '/v1/tokens', {
    headers: { authorization: 'Bearer k1' },
    body: { user: 'ann' },
  });
  const t = new WsTransport(`ws://127.0.0.1:${srv.port}/v1/ai-sdk/ws?token=${tok.json.token}`);
  const ws = await t.socket();
  const replies = [];
  ws.on('message', (d) => replies.push(JSON.parse(String(d))));
  ws.sendUnchecked(JSON.stringify({ type: 'send', chatId: 'bad id' }));
  ws.sendUnchecked(JSON.stringify({ type: 'jump', chatId: 'ok1' }));
  ws.sendUnchecked(JSON.stringify({ type: 'resume', chatId: 'ok1', lastSequence: -3 }));
  ws.send(JSON.stringify({ type: 'send', chatId: 'ok1', agent: 'echo', messages: [] }));
  while (replies.length < 4) await sleep(20);
  assert.deepEqual(
    replies.map((r) => r.type),
    ['error', 'error', 'error', 'error'],
  );
  assert.match(replies[3].message, /last element is the user's message/);
  const chat = new Chat({ id: 'ok1', transport: t });
  await chat.sendMessage({ text: 'hi ann' }, { body: { agent: 'echo' } });
  assert.equal(textOf(chat.messages[1]), 'hi ann');
  ws.close();
});

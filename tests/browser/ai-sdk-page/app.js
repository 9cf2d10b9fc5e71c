// A chat page on the official `ai` package (bundled for the browser by the
// test with esbuild): the SDK's Chat (AbstractChat, what useChat wraps) with
// a state that draws the messages into the page, over the default HTTP
// transport or the WebSocket transport (?transport=http|ws&chat=ID&agent=NAME).
// Like an app with resume, it keeps the chat's finished messages (localStorage
// here, a database in a real app) and calls resumeStream() when it loads.

import { AbstractChat, DefaultChatTransport, lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';
import { WebSocketChatTransport } from './ws-transport.js';

const params = new URLSearchParams(location.search);
const kind = params.get('transport') ?? 'http';
const chatId = params.get('chat');
const agent = params.get('agent') ?? undefined; // none: the server's default agent
const KEY = `aisdk-chat:${chatId}`;
const $ = (id) => document.getElementById(id);
let chat = null; // drawn from the state's first change on

const textOf = (m) =>
  m.parts
    .filter((p) => p.type === 'text')
    .map((p) => p.text)
    .join('');

/** The chat's state, drawn into the page on every change (what @ai-sdk/react keeps in React state). */
class PageState {
  constructor(messages) {
    this._status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }
  get status() {
    return this._status;
  }
  set status(s) {
    this._status = s;
    draw();
  }
  pushMessage(m) {
    this.messages = [...this.messages, m];
    if (m.role === 'user') save(this.messages); // the user's message is kept at once
    draw();
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
    draw();
  }
  replaceMessage(i, m) {
    this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)];
    draw();
  }
  snapshot(x) {
    return structuredClone(x);
  }
}

class Chat extends AbstractChat {
  constructor(opts) {
    const state = new PageState(opts.messages ?? []);
    super({ ...opts, state });
    this.pageState = state;
  }
}

const save = (messages) => localStorage.setItem(KEY, JSON.stringify(messages));

const transport =
  kind === 'ws'
    ? new WebSocketChatTransport({ url: `ws://${location.host}/v1/ai-sdk/ws`, agent })
    : new DefaultChatTransport({ api: '/v1/ai-sdk/chat', body: { agent } });

const saved = JSON.parse(localStorage.getItem(KEY) ?? '[]');
chat = new Chat({
  id: chatId,
  transport,
  messages: saved,
  sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  // A finished answer is kept; one cut short (a reload, a drop) is not: resume brings it.
  onFinish: ({ messages, isAbort, isDisconnect, isError }) => {
    if (!isAbort && !isDisconnect && !isError) save(messages);
  },
});

function toolPart(p) {
  const li = document.createElement('div');
  li.className = 'tool';
  li.dataset.state = p.state;
  li.dataset.tool = p.type.slice('tool-'.length);
  li.textContent = `${p.type.slice('tool-'.length)}(${JSON.stringify(p.input)}) ${p.state}`;
  if (p.state === 'approval-requested') {
    for (const [label, approved] of [
      ['Approve', true],
      ['Deny', false],
    ]) {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.className = label.toLowerCase();
      b.onclick = () => chat.addToolApprovalResponse({ id: p.approval.id, approved, reason: `${label} in the page` });
      li.append(' ', b);
    }
  }
  return li;
}

function draw() {
  if (!chat) return; // the state is made before the chat
  $('status').textContent = chat.status;
  $('error').textContent = chat.error ? String(chat.error.message ?? chat.error) : '';
  const ol = $('messages');
  ol.replaceChildren(
    ...chat.messages.map((m) => {
      const li = document.createElement('li');
      li.className = `msg ${m.role}`;
      li.dataset.id = m.id;
      const p = document.createElement('p');
      p.className = 'text';
      p.textContent = textOf(m);
      li.append(p);
      for (const part of m.parts) {
        if (part.type.startsWith('tool-')) li.append(toolPart(part));
        else if (part.type === 'data-tether-question') {
          const q = document.createElement('div');
          q.className = 'question';
          q.textContent = part.data.text ?? part.data.question ?? JSON.stringify(part.data);
          li.append(q);
        }
      }
      return li;
    }),
  );
}

$('form').onsubmit = (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  $('text').value = '';
  return chat.sendMessage({ text });
};
$('stop').onclick = () => chat.stop();

// What the test reads and drives, besides the DOM.
window.app = { chat, transport, kind, textOf, resumed: null };
draw();
// A chat the page knows may have an answer in flight: take it up.
window.app.resumed = saved.length ? chat.resumeStream().then(() => chat.status) : Promise.resolve('none');

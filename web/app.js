// The Tether web UI: a session list, a chat view per session, question and
// approval cards. All state comes from the server through tether-client.js;
// the page keeps only the current session id (in the URL hash and
// localStorage) and rebuilds the view by attaching after seq 0. Text from
// users and models reaches the DOM only through textContent (markdown.js
// builds elements, never HTML strings).
import { SessionView, TetherClient } from './tether-client.js';
import { renderMarkdown } from './markdown.js';
import { h, renderPlan, shortJson } from './dom.js';
import { SessionList } from './session-list.js';
import { DocInput } from './doc-input.js';
import { citationLinks, setupDocuments } from './documents.js';
import { setupSignIn, storedToken } from './signin.js';
import { thumbFor } from './thumbs.js';
import { actionButtons, actionsOf, editForm } from './message-actions.js';

const $ = (id) => document.getElementById(id);

// What each agent does and needs: the server's agent_info (welcome), with a
// word of our own on how to use the built-in ones from this page.
let agentInfo = new Map([['echo', { name: 'echo', description: 'Streams your words back.', needs_model: false }]]);
const AGENT_USE = {
  'doc-analyst': 'Needs a model and a document: paste it, choose a file or drop one below.',
  'photo-organizer':
    'Needs a model and your photo library on the server, in the photos folder (--photos-root) under your user name; nothing moves before you approve the plan.',
};
const CONN_LABEL = {
  idle: 'connecting…',
  connecting: 'connecting…',
  open: 'live',
  reconnecting: 'reconnecting…',
  held: 'signed out',
  closed: 'offline',
};

const wsUrl = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/v1/ws`;
const client = new TetherClient({
  url: wsUrl,
  client: 'tether-web/1',
  token: storedToken,
  routeSession: true, // ?session= of the session shown: a cluster's haproxy routes by it
});

const views = new Map(); // session -> SessionView
let current = null; // the session shown
let sessions = []; // the last session.list
let agentPref = localStorage.getItem('tether.agent') || 'echo'; // the agent picked last (remembered)

function view(session) {
  let v = views.get(session);
  if (!v) {
    v = new SessionView(session);
    views.set(session, v);
  }
  return v;
}

// ------------------------------------------------------------ helpers

function fmtCost(usd) {
  if (!usd) return '$0';
  if (usd < 0.01) return '$' + usd.toPrecision(2);
  return '$' + usd.toFixed(4);
}

/**
 * "model · 12 in · 30 out · $0.0001", or null where no model ran: a model is
 * always prompted, so no prompt tokens and no cost means none did (the echo
 * agent, a step of the photo organiser without a model, model "none").
 */
function usageLine(u) {
  if (!u || u.model === 'none' || !(u.prompt_tokens > 0 || u.cost_usd > 0)) return null;
  const parts = [];
  if (u.model) parts.push(u.model);
  parts.push(`${u.prompt_tokens ?? 0} in · ${u.completion_tokens ?? 0} out`);
  parts.push(fmtCost(u.cost_usd));
  if (u.calls > 1) parts.push(`${u.calls} model calls`);
  if (u.cached) parts.push('cached');
  return parts.join(' · ');
}

// ------------------------------------------------------------ connection

client.on('connection', (state, info) => {
  const c = $('conn');
  // A server upgrade (close 1012) is no failure: said quietly while the client resumes.
  const restart = state === 'reconnecting' && info?.restart;
  c.dataset.state = restart ? 'updating' : state;
  c.textContent = restart ? 'updating…' : CONN_LABEL[state] || state;
  schedule(); // turns not yet sent say whether they wait for the connection
});

client.on('session.deleted', (session) => {
  sessions = sessions.filter((s) => s.session !== session);
  views.delete(session);
  if (session === current) {
    forgetCurrent();
    alertInline('The session you had open was deleted (in another tab or on another device).');
  } else renderList();
});

const signIn = setupSignIn(client, {
  signedOut() {
    forgetCurrent();
    docs.panel.show(null); // nothing of the signed-out tenant's documents stays
    sessions = [];
    views.clear();
    renderList();
  },
});

client.on('welcome', (w) => {
  signIn.welcome(w);
  fillAgents(w);
  refreshList();
});

client.on('client.error', (e, info) => {
  if (e.code === 'unauthenticated') {
    signIn.refused(e.message);
    return;
  }
  if (info && info.session && info.session === current && (e.code === 'not_found' || e.code === 'forbidden'))
    forgetCurrent();
});

client.on('*', (ev) => {
  const v = views.get(ev.session);
  if (!v) return;
  const hadPending = v.pending;
  v.apply(ev);
  if (ev.type === 'state' || ev.type === 'user' || ev.type === 'snapshot') noteSession(ev.session, v);
  if (ev.session === current) {
    schedule();
    if (v.pending && v.pending !== hadPending) focusPendingSoon = true;
  }
});

function fillAgents(w) {
  const sel = $('agent');
  sel.textContent = '';
  const models = Array.isArray(w.models) ? w.models : [];
  if (Array.isArray(w.agent_info)) agentInfo = new Map(w.agent_info.map((a) => [a.name, a]));
  let blocked = 0;
  for (const name of w.agents || []) {
    const usable = agentInfo.get(name)?.needs_model === false || models.length > 0;
    if (!usable) blocked++;
    // An option holds text only: the name goes between FSI and PDI, the plain-text isolates.
    const o = h('option', {
      value: name,
      disabled: !usable,
      text: usable ? name : `\u2068${name}\u2069 (needs a model)`,
    });
    sel.append(o);
  }
  const usable = [...sel.options].filter((o) => !o.disabled).map((o) => o.value);
  if (!usable.includes(agentPref)) agentPref = usable[0] || '';
  sel.value = agentPref;
  $('new').disabled = usable.length === 0;
  const hint = $('model-hint');
  hint.hidden = blocked === 0;
  hint.textContent =
    blocked === 0
      ? ''
      : 'No model is configured, so model agents are unavailable. Restart the server with OPENAI_API_KEY or ' +
        'ANTHROPIC_API_KEY set (OPENAI_BASE_URL for any OpenAI-compatible server), or with --routes FILE.';
  showAgentHint();
}

function showAgentHint() {
  const name = $('agent').value;
  const info = agentInfo.get(name);
  const needs = AGENT_USE[name] || (info?.needs_model ? 'Needs a model.' : '');
  $('agent-hint').textContent = [info?.description, needs].filter(Boolean).join(' ');
  docInput.show(name === 'doc-analyst');
  docs.panel.show(info?.collection); // an assistant over documents: its collection
}

const docs = setupDocuments();
const docInput = new DocInput({
  panel: $('doc-panel'),
  text: $('doc-text'),
  file: $('doc-file'),
  status: $('doc-status'),
});

// ------------------------------------------------------------ session list

let listTimer = null;
function refreshListSoon() {
  if (!listTimer)
    listTimer = setTimeout(() => {
      listTimer = null;
      refreshList();
    }, 300);
}

async function refreshList() {
  try {
    sessions = await client.list();
  } catch {
    return;
  }
  sessions.sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
  for (const s of sessions) if (s.title && views.has(s.session)) views.get(s.session).title = s.title; // renamed elsewhere
  renderList();
  if (current) schedule();
}

function noteSession(id, v) {
  const s = sessions.find((x) => x.session === id);
  if (!s) {
    refreshListSoon();
    return;
  }
  if (v.state) s.state = v.state;
  if (v.title) s.title = v.title;
  if (v.updatedAt) s.updated_at = v.updatedAt;
  renderList();
}

const list = new SessionList($('sessions'), {
  select(session) {
    select(session);
    closeMenu();
    $('text').focus();
  },
  async rename(session, title) {
    const r = await client.rename(session, title);
    const s = sessions.find((x) => x.session === session);
    if (s) s.title = r.title;
    if (views.has(session)) views.get(session).title = r.title;
    if (session === current) render();
  },
  async remove(session) {
    await client.deleteSession(session);
    sessions = sessions.filter((x) => x.session !== session);
    views.delete(session);
    if (session === current) forgetCurrent();
  },
});

function renderList() {
  list.render(sessions, current);
}

// ------------------------------------------------------------ selection

async function select(session) {
  if (current && current !== session) client.detach(current).catch(() => {});
  current = session;
  if (location.hash !== '#' + session) history.replaceState(null, '', '#' + session);
  localStorage.setItem('tether.session', session);
  view(session);
  nodes.clear();
  $('timeline').textContent = '';
  $('empty').hidden = true;
  $('chat').hidden = false;
  render();
  renderList();
  try {
    await client.attach(session);
  } catch (e) {
    if (e.code === 'not_found' || e.code === 'forbidden') forgetCurrent();
  }
}

function forgetCurrent() {
  localStorage.removeItem('tether.session');
  if (current) views.delete(current);
  current = null;
  history.replaceState(null, '', location.pathname + location.search);
  $('chat').hidden = true;
  $('empty').hidden = false;
  renderList();
}

async function newSession(agent) {
  try {
    const r = await client.open(agent, agent === 'doc-analyst' ? { input: docInput.value() } : {});
    if (agent === 'doc-analyst') docInput.reset();
    view(r.session).agent = r.agent || agent;
    if (!sessions.some((s) => s.session === r.session)) {
      sessions.unshift({
        session: r.session,
        agent: r.agent || agent,
        state: 'idle',
        title: '',
        updated_at: new Date().toISOString(),
        head: r.head,
      });
    }
    const attached = select(r.session);
    $('text').focus();
    refreshListSoon();
    await attached;
  } catch (e) {
    alertInline('Could not start ', h('bdi', { text: agent }), `: ${e.message}`);
  }
}

function alertInline(...parts) {
  const hint = $('agent-hint');
  hint.replaceChildren(...parts);
  hint.classList.add('warn');
  setTimeout(() => {
    hint.classList.remove('warn');
    showAgentHint();
  }, 6000);
}

// ------------------------------------------------------------ rendering

const nodes = new Map(); // item key -> {node, rev, conn, act}
let editing = null; // the key of the user message being edited
let renderQueued = false;
let focusPendingSoon = false;

function schedule() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render();
  }, 0);
}

function render() {
  if (!current) return;
  const v = view(current);
  $('title').textContent = v.title || '(new session)';
  $('chat-agent').textContent = v.agent || sessions.find((s) => s.session === current)?.agent || '';
  const st = $('chat-state');
  st.textContent = v.state || '';
  st.dataset.state = v.state || '';
  const u = v.usage;
  $('total-usage').textContent =
    u.prompt_tokens > 0 || u.cost_usd > 0 // a model ran (see usageLine)
      ? `${u.prompt_tokens + u.completion_tokens} tokens · ${fmtCost(u.cost_usd)}`
      : '';
  const busy = v.streaming || v.state === 'running';
  $('stop').hidden = !busy;
  const closed = v.state === 'closed';
  $('text').disabled = closed;
  $('send').disabled = closed;
  $('close-session').disabled = closed;

  const tl = $('timeline');
  const nearBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 80;
  const seen = new Set();
  let prev = null;
  const agent = v.agent || sessions.find((s) => s.session === current)?.agent;
  const canRewind = agentInfo.get(agent)?.rewind === true;
  for (const it of v.items) {
    seen.add(it.key);
    let rec = nodes.get(it.key);
    const conn = it.local ? client.state : null; // a turn not yet sent shows the connection
    const act = actionsOf(it, v, canRewind, agent) + (editing === it.key ? ':editing' : '');
    if (!rec || rec.rev !== it.rev || rec.conn !== conn || rec.act !== act) {
      const node = it.kind === 'message' ? renderMessage(it, act) : renderItem(it, v);
      if (rec) rec.node.replaceWith(node);
      rec = { node, rev: it.rev, conn, act };
      nodes.set(it.key, rec);
    }
    const want = prev ? prev.nextSibling : tl.firstChild;
    if (want !== rec.node) tl.insertBefore(rec.node, want);
    prev = rec.node;
  }
  for (const [k, rec] of nodes)
    if (!seen.has(k)) {
      rec.node.remove();
      nodes.delete(k);
    }
  if (nearBottom) tl.scrollTop = tl.scrollHeight;
  if (focusEditSoon) {
    focusEditSoon = false;
    tl.querySelector('.edit-text')?.focus();
  }
  if (focusPendingSoon) {
    focusPendingSoon = false;
    const composing = document.activeElement === $('text') && $('text').value;
    const target = tl.querySelector('.card.pending button, .card.pending input, .card.pending textarea');
    if (target && !composing) target.focus({ preventScroll: false });
  }
}

function renderItem(it, v) {
  switch (it.kind) {
    case 'message':
      return renderMessage(it);
    case 'question':
      return renderQuestion(it, v);
    case 'approval':
      return renderApproval(it, v);
    case 'progress':
      return renderProgress(it);
    case 'tool':
      return renderTool(it);
    case 'error':
      return h('li', { class: 'item error', role: 'alert', text: `Error (${it.code}): ${it.message}` });
    case 'notice':
      return h('li', { class: 'item notice', text: it.text });
    default:
      return h('li', { class: 'item notice', text: it.kind });
  }
}

function renderMessage(m, act = '') {
  const body = h('div', { class: 'body' });
  if (act === 'edit:editing')
    body.append(
      editForm(m, {
        send: (text) => sendEdit(m, text),
        cancel: () => {
          editing = null;
          schedule();
          $('text').focus();
        },
      }),
    );
  else if (m.role === 'user') body.textContent = m.text;
  else body.append(renderMarkdown(m.text));
  const flags = `${m.streaming ? ' streaming' : ''}${m.stopped ? ' stopped' : ''}${m.local ? ' pending' : ''}`;
  const li = h(
    'li',
    {
      class: `item msg ${m.role === 'user' ? 'user' : 'assistant'}${flags}`,
      'data-message-id': m.id,
      'data-client-msg-id': m.local ? m.client_msg_id : null,
      'data-role': m.role,
      'aria-busy': m.streaming ? 'true' : null,
    },
    h('div', { class: 'who', text: m.role === 'user' ? 'You' : 'Assistant' }),
    body,
  );
  if (m.stopped)
    li.append(
      h('div', { class: 'meta stopped-mark', text: 'Stopped: this partial answer is not kept in the conversation.' }),
    );
  if (m.local)
    li.append(
      h('div', {
        class: 'meta pending-mark',
        text: client.state === 'open' ? 'Sending…' : 'Not sent yet: it goes out when the connection is back.',
      }),
    );
  if (m.citations?.length) li.append(citationLinks(m.citations, docs.open));
  const u = usageLine(m.usage);
  if (u) li.append(h('div', { class: 'meta usage-line', text: u }));
  const acts = actionButtons(act, {
    onRegenerate: () => regenerate(m),
    onUndo: () => {
      const session = current;
      client.say(session, 'undo').catch((e) => composerError(e.message));
    },
    onEdit: () => {
      editing = 'm:' + m.id;
      focusEditSoon = true;
      schedule();
    },
  });
  if (acts) li.append(acts);
  return li;
}

function renderQuestion(q, v) {
  const li = h(
    'li',
    { class: `item card question${q.resolved ? ' resolved' : ' pending'}`, 'data-question-id': q.question_id },
    h('div', { class: 'card-kind', text: 'Question' }),
    h('p', { class: 'card-text', text: q.text || '' }),
  );
  const send = async (value, controls) => {
    controls.forEach((c) => {
      c.disabled = true;
    });
    try {
      await client.answer(v.session, q.question_id, value);
    } catch (e) {
      controls.forEach((c) => {
        c.disabled = false;
      });
      li.append(h('p', { class: 'card-error', role: 'alert', text: e.message }));
    }
  };
  if (q.choices && q.choices.length) {
    const row = h('div', { class: 'buttons' });
    const chosen = (c) => q.resolved && 'answer' in q && JSON.stringify(c) === JSON.stringify(q.answer);
    const buttons = q.choices.map((c) =>
      h('button', {
        type: 'button',
        class: chosen(c) ? 'choice chosen' : 'choice',
        disabled: q.resolved,
        'aria-pressed': q.resolved ? String(chosen(c)) : null,
        text: typeof c === 'string' ? c : JSON.stringify(c),
      }),
    );
    buttons.forEach((b, i) => b.addEventListener('click', () => send(q.choices[i], buttons)));
    row.append(...buttons);
    li.append(row);
  } else {
    const input = h('input', { type: 'text', class: 'answer', 'aria-label': 'Your answer', disabled: q.resolved });
    const btn = h('button', { type: 'submit', disabled: q.resolved, text: 'Answer' });
    const form = h('form', { class: 'buttons' }, input, btn);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (input.value.trim()) send(input.value, [input, btn]);
    });
    li.append(form);
  }
  if (q.resolved) li.append(h('div', { class: 'meta answer-mark', text: answeredText(q) }));
  return li;
}

const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
const answeredText = (q) => ('answer' in q ? `Your answer: ${show(q.answer)}` : 'Answered');
const DECIDED = { approve: 'Approved', reject: 'Rejected', revise: 'Changes requested', expired: 'Expired unanswered' };

/** What was decided on an approval card, in words. */
function decidedText(a) {
  const what = DECIDED[a.decision];
  if (!what) return 'Decided';
  return a.comment ? `${what}: “${a.comment}”` : what;
}

/** A photo-organizer session: its plan preview shows thumbnails. */
const photosOf = (v) =>
  v.session && (v.agent || sessions.find((s) => s.session === v.session)?.agent) === 'photo-organizer';

function renderApproval(a, v) {
  const li = h(
    'li',
    { class: `item card approval${a.resolved ? ' resolved' : ' pending'}`, 'data-approval-id': a.approval_id },
    h('div', { class: 'card-kind', text: 'Approval' }),
    h('p', { class: 'card-text card-title', dir: 'auto', text: a.title || 'Approve this plan?' }),
    renderPlan(a.plan, photosOf(v) ? { thumb: (src) => thumbFor(v.session, src) } : {}),
  );
  if (a.resolved) {
    li.dataset.decision = a.decision || '';
    li.append(h('div', { class: `meta decision-mark ${a.decision || ''}`, text: decidedText(a) }));
    return li;
  }
  const approve = h('button', { type: 'button', class: 'primary', text: 'Approve' });
  const changes = h('button', { type: 'button', 'aria-expanded': 'false', text: 'Request changes' });
  const reject = h('button', { type: 'button', class: 'danger', text: 'Reject' });
  const comment = h('textarea', {
    class: 'comment',
    rows: '2',
    'aria-label': 'What should change?',
    placeholder: 'What should change?',
  });
  const sendChanges = h('button', { type: 'submit', text: 'Send changes' });
  const form = h('form', { class: 'changes', hidden: true }, comment, sendChanges);
  const all = [approve, changes, reject, comment, sendChanges];
  const decide = async (decision, text) => {
    all.forEach((c) => {
      c.disabled = true;
    });
    try {
      await client.decide(v.session, a.approval_id, decision, text);
    } catch (e) {
      all.forEach((c) => {
        c.disabled = false;
      });
      li.append(h('p', { class: 'card-error', role: 'alert', text: e.message }));
    }
  };
  approve.addEventListener('click', () => decide('approve'));
  reject.addEventListener('click', () => decide('reject'));
  changes.addEventListener('click', () => {
    form.hidden = !form.hidden;
    changes.setAttribute('aria-expanded', String(!form.hidden));
    if (!form.hidden) {
      comment.focus();
      form.scrollIntoView({ block: 'nearest' });
    }
  });
  comment.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!comment.value.trim()) {
      comment.focus();
      return;
    }
    decide('revise', comment.value.trim());
  });
  li.append(h('div', { class: 'buttons' }, approve, changes, reject), form);
  return li;
}

function renderProgress(p) {
  const total = Number(p.total) || 0;
  const done = Number(p.done) || 0;
  const bar = h('progress', {
    max: total > 0 ? String(total) : null,
    value: total > 0 ? String(Math.min(done, total)) : null,
    'aria-label': p.label || p.step || 'progress',
  });
  return h(
    'li',
    { class: `item progress${p.finished ? ' finished' : ''}` },
    h('div', {
      class: 'progress-label',
      text: `${p.label || p.step || 'Working'}${total > 0 ? ` — ${done}/${total}` : ''}`,
    }),
    bar,
  );
}

function renderTool(t) {
  const status = !t.done ? '…' : t.may_have_run ? '?' : t.ok === false ? '✗' : '✓';
  const summary = h(
    'summary',
    {},
    h('span', { class: 'tool-name', dir: 'auto', text: t.name || 'tool' }),
    h('span', { class: 'tool-args', text: `(${shortJson(t.args ?? '', 60)})` }),
    h('span', { class: `tool-status ${t.done ? (t.ok === false ? 'bad' : 'good') : ''}`, text: status }),
  );
  const det = h(
    'details',
    { class: 'tool' },
    summary,
    h('div', { class: 'meta', text: 'arguments' }),
    h('pre', { text: JSON.stringify(t.args, null, 2) ?? '' }),
  );
  if (t.may_have_run)
    det.append(
      h('div', {
        class: 'meta may-have-run',
        text: 'May have run: the server restarted while this call was in flight. It was not repeated; check its effect.',
      }),
    );
  if (t.done)
    det.append(
      h('div', { class: 'meta', text: t.ok === false ? 'error' : 'result' }),
      h('pre', { text: JSON.stringify(t.ok === false ? t.error : t.result, null, 2) ?? '' }),
    );
  return h('li', { class: 'item tool-item', 'data-call-id': t.call_id }, det);
}

// ------------------------------------------------------------ composer

const newMsgId = () => 'c_' + Math.random().toString(36).slice(2) + Date.now().toString(36);
let focusEditSoon = false;

async function regenerate(m) {
  try {
    await client.regenerate(current, m.id);
  } catch (e) {
    composerError(e.message);
  }
}

/** Edit and resend: shown at once as a pending turn, like a say. */
async function sendEdit(m, text) {
  const session = current;
  const v = view(session);
  editing = null;
  const clientMsgId = newMsgId();
  v.addLocal(clientMsgId, text);
  schedule();
  try {
    const r = await client.edit(session, m.id, text, { clientMsgId });
    if (r.duplicate && v.dropLocal(clientMsgId)) schedule();
  } catch (e) {
    if (e.code === 'disconnected' || e.code === 'timeout') return; // sent again on reconnect
    if (v.dropLocal(clientMsgId)) schedule();
    composerError(e.message);
  }
}

async function sendText() {
  const ta = $('text');
  const text = ta.value;
  if (!text.trim() || !current) return;
  ta.value = '';
  const session = current;
  const v = view(session);
  // Shown at once, marked pending until the server has it; the client keeps
  // the frame and sends it again (same id, applied once) after a reconnect.
  const clientMsgId = newMsgId();
  v.addLocal(clientMsgId, text);
  schedule();
  try {
    const r = await client.say(session, text, { clientMsgId });
    if (r.duplicate && v.dropLocal(clientMsgId)) schedule(); // its user event came before
  } catch (e) {
    if (e.code === 'disconnected' || e.code === 'timeout') return; // sent again on reconnect
    if (v.dropLocal(clientMsgId)) schedule();
    if (session === current && !ta.value) ta.value = text;
    composerError(e.message);
  }
}

let composerTimer = null;
function composerError(text) {
  const el = $('composer-error');
  el.textContent = text;
  el.hidden = false;
  clearTimeout(composerTimer);
  composerTimer = setTimeout(() => {
    el.hidden = true;
  }, 6000);
}

function closeMenu() {
  document.body.classList.remove('menu-open');
  $('menu').setAttribute('aria-expanded', 'false');
}

function init() {
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    sendText();
  });
  $('text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendText();
    }
  });
  $('stop').addEventListener('click', () => {
    if (current) client.cancel(current).catch(() => {});
    $('text').focus();
  });
  $('new-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const agent = $('agent').value;
    if (!agent) return;
    agentPref = agent;
    localStorage.setItem('tether.agent', agent);
    closeMenu();
    newSession(agent);
  });
  $('agent').addEventListener('change', () => {
    agentPref = $('agent').value;
    localStorage.setItem('tether.agent', agentPref);
    showAgentHint();
  });
  $('close-session').addEventListener('click', async () => {
    if (!current) return;
    try {
      await client.closeSession(current);
    } catch (e) {
      alertInline(e.message);
    }
    refreshListSoon();
  });
  $('menu').addEventListener('click', () => {
    const open = document.body.classList.toggle('menu-open');
    $('menu').setAttribute('aria-expanded', String(open));
    if (open) $('agent').focus();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') closeMenu();
  });
  window.addEventListener('hashchange', () => {
    const id = location.hash.slice(1);
    if (id && id !== current) select(id);
  });
  setInterval(() => {
    if (client.state === 'open') refreshList();
  }, 15_000);

  const start = location.hash.slice(1) || localStorage.getItem('tether.session');
  const valid = start && /^[A-Za-z0-9_-]{1,128}$/.test(start);
  if (valid) client.focus(start); // the first socket is routed to its node already
  client.connect().catch(() => {}); // a refused token shows the sign-in (client.error)
  if (valid) select(start);
}

// For debugging from the console (and the browser tests): the client and the views.
window.tether = {
  client,
  views,
  get current() {
    return current;
  },
};
init();

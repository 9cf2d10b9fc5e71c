// web/tether-client.js in Node, against the real server: requests and events,
// the view model, reconnect after kill -9 + restart, dedupe, snapshot
// rebuild, and a say whose reply was lost being retried exactly once.
import assert from 'node:assert/strict';
import { SessionView, TetherClient, backoffDelay } from '../../web/tether-client.js';
import { CheckedWebSocket, FlakyWS, connect, itest, sleep, until, waitState } from './helpers.mjs';

function makeClient(srv, extra = {}) {
  const c = new TetherClient({
    url: () => srv.wsUrl,
    WebSocket: CheckedWebSocket, // every frame the client sends and receives checked against protocol/schema
    client: 'client-test/1',
    backoffBaseMs: 50,
    backoffMaxMs: 400,
    ackIntervalMs: 50,
    ...extra,
  });
  const log = { states: [], events: [], resets: [] };
  c.on('connection', (s) => log.states.push(s));
  c.on('*', (ev) => log.events.push(ev));
  c.on('reset', (ev) => log.resets.push(ev));
  c.log = log;
  return c;
}

function bindView(c, session) {
  const v = new SessionView(session);
  c.on('*', (ev) => v.apply(ev));
  return v;
}

const seqsOf = (evs, session) => evs.filter((e) => e.session === session).map((e) => e.seq);
const contiguous = (seqs, from = 1) => seqs.every((s, i) => s === from + i);

itest(
  'connect, open, say: events as callbacks and as an async iterator; the view model folds them',
  async ({ startServer }) => {
    const srv = await startServer();
    const c = makeClient(srv);
    try {
      const w = await c.connect();
      assert.equal(w.type, 'welcome');
      assert.ok(w.agents.includes('echo'));
      assert.equal(c.state, 'open');
      const { session } = await c.open('echo', { input: { delay_ms: 5 } });
      const v = bindView(c, session);
      const seen = [];
      const iter = (async () => {
        for await (const ev of c.events(session)) {
          seen.push(ev);
          if (ev.type === 'state' && ev.state === 'idle' && seen.some((e) => e.type === 'message.end')) break;
        }
      })();
      const r = await c.say(session, 'one two three');
      assert.equal(r.type, 'ok');
      await iter;
      assert.equal(v.assistantText(), 'one two three');
      assert.equal(v.messages.length, 2);
      assert.deepEqual(
        v.messages.map((m) => [m.role, m.text, m.streaming]),
        [
          ['user', 'one two three', false],
          ['assistant', 'one two three', false],
        ],
      );
      assert.equal(v.messages[1].usage.model, 'echo');
      assert.equal(v.state, 'idle');
      const iseqs = seqsOf(seen, session);
      assert.ok(contiguous(iseqs, iseqs[0]), JSON.stringify(iseqs));

      // ask -> question pending, answered; plan -> approval, revise then approve
      await c.say(session, 'ask');
      await until(() => v.pending?.kind === 'question', 3000, 'question');
      assert.deepEqual(v.pending.choices, ['yes', 'no']);
      await c.answer(session, v.pending.question_id, 'yes');
      await until(
        () => v.state === 'idle' && !v.pending && v.assistantText().endsWith('you said yes'),
        3000,
        'answer echoed',
      );
      await c.say(session, 'plan');
      await until(() => v.pending?.kind === 'approval', 3000, 'approval');
      await c.decide(session, v.pending.approval_id, 'revise', 'shorter please');
      await until(() => v.pending?.kind === 'approval' && v.pending.plan.revision === 1, 3000, 'revised plan');
      assert.deepEqual(v.pending.plan.comments, ['shorter please']);
      // edits reach the server: the echo plan takes none (conflict); the fingerprint binds the plan shown
      await assert.rejects(
        c.decide(session, v.pending.approval_id, 'approve', undefined, { edits: { steps: ['x'] } }),
        (e) => e.code === 'conflict' && /takes no edits/.test(e.message),
      );
      await assert.rejects(
        c.decide(session, v.pending.approval_id, 'approve', undefined, { fingerprint: `sha256:${'0'.repeat(64)}` }),
        (e) => e.code === 'conflict' && /fingerprint/.test(e.message),
      );
      await c.decide(session, v.pending.approval_id, 'approve', undefined, { fingerprint: v.pending.fingerprint });
      await until(() => v.state === 'idle' && v.assistantText().endsWith('approved'), 3000, 'approved');

      // errors come back as TetherError with the protocol code
      await assert.rejects(
        c.answer(session, 'q_nope', 'x'),
        (e) => e.code === 'conflict' || e.code === 'not_found' || e.code === 'bad_request',
      );
      const list = await c.list();
      assert.ok(list.some((s) => s.session === session && s.agent === 'echo'));
      await c.closeSession(session);
      await until(() => v.state === 'closed', 3000, 'closed state');
      // acks were sent
      assert.deepEqual(c.log.states, ['connecting', 'open']);
    } finally {
      c.close();
    }
    assert.equal(c.state, 'closed');
  },
);

itest('backoff: full jitter within [0, min(max, base*2^n)]', async () => {
  for (let n = 0; n < 12; n++) {
    const cap = Math.min(10_000, 250 * 2 ** n);
    assert.equal(
      backoffDelay(n, 250, 10_000, () => 0),
      0,
    );
    assert.ok(backoffDelay(n, 250, 10_000, () => 0.999999) <= cap);
    assert.ok(backoffDelay(n, 250, 10_000, () => 0.999999) >= cap - 1);
  }
});

itest(
  'kill -9 and restart mid-stream: reconnecting, then open; re-attached after the last seq; the text completes, every seq once',
  async ({ startServer }) => {
    const srv = await startServer();
    const c = makeClient(srv);
    try {
      await c.connect();
      const words = Array.from({ length: 30 }, (_, i) => `w${i}`).join(' ');
      const { session } = await c.open('echo', { input: { delay_ms: 40 } });
      const v = bindView(c, session);
      await c.say(session, words);
      await until(() => v.assistantText().split(' ').length >= 6, 3000, 'a few words');
      await srv.kill9();
      await until(() => c.state === 'reconnecting', 3000, 'reconnecting');
      await sleep(200);
      await srv.restart();
      await until(() => c.state === 'open', 8000, 'open again');
      await until(
        () => v.state === 'idle' && v.messages.length === 2 && !v.streaming,
        8000,
        `stream to finish: ${v.assistantText()}`,
      );
      assert.equal(v.assistantText(), words);
      const seqs = seqsOf(c.log.events, session);
      assert.ok(contiguous(seqs), `seqs delivered once each, in order: ${JSON.stringify(seqs)}`);
      assert.ok(
        c.log.events.some((e) => e.type === 'message.discard' && e.reason === 'restart'),
        'the cut stream was discarded',
      );
      assert.deepEqual(c.log.states.slice(0, 2), ['connecting', 'open']);
      assert.ok(c.log.states.includes('reconnecting'));
      assert.equal(c.log.states.at(-1), 'open');
    } finally {
      c.close();
    }
  },
);

itest('dedupe: replayed and doubled frames are dropped; each seq reaches handlers once', async ({ startServer }) => {
  const srv = await startServer();
  const c = makeClient(srv, { WebSocket: FlakyWS });
  FlakyWS.reset();
  try {
    await c.connect();
    const { session } = await c.open('echo', { input: { delay_ms: 5 } });
    const v = bindView(c, session);
    await c.say(session, 'alpha beta');
    await until(() => v.state === 'idle' && v.messages.length === 2, 3000, 'turn');
    const n = c.log.events.length;
    // The server replays everything (after 0) on this socket: all already held.
    const r = await c.request({ type: 'session.attach', session, after: 0 });
    assert.equal(r.type, 'ok');
    await sleep(200);
    assert.equal(c.log.events.length, n, 'replayed events were dropped');
    // Every frame delivered twice by the transport: still once each.
    FlakyWS.duplicate = true;
    await c.say(session, 'gamma delta');
    await until(() => v.state === 'idle' && v.messages.length === 4, 3000, 'second turn');
    FlakyWS.duplicate = false;
    const seqs = seqsOf(c.log.events, session);
    assert.ok(contiguous(seqs), JSON.stringify(seqs));
    assert.equal(v.assistantText(), 'alpha betagamma delta');
    // A dropped socket re-attaches after the last seq: nothing is delivered again.
    const nStates = c.log.states.length;
    FlakyWS.dropAll();
    await until(() => c.log.states.slice(nStates).join() === 'reconnecting,open', 5000, 'reconnecting, then open');
    await c.say(session, 'eps');
    await until(() => v.messages.length === 6 && v.state === 'idle', 3000, 'third turn');
    assert.ok(contiguous(seqsOf(c.log.events, session)));
    const attach = FlakyWS.sent.filter((m) => m?.type === 'session.attach').at(-1);
    assert.ok(attach.after >= seqs.at(-1), `re-attached after the last seq: ${JSON.stringify(attach)}`);
  } finally {
    c.close();
    FlakyWS.reset();
  }
});

itest(
  'snapshot: after more than --retain-events missed, recovered:false rebuilds the view from the snapshot (reset emitted)',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--retain-events', '5'] });
    const c = makeClient(srv, { WebSocket: FlakyWS });
    FlakyWS.reset();
    try {
      await c.connect();
      const { session } = await c.open('echo', { input: { delay_ms: 2 } });
      const v = bindView(c, session);
      await c.say(session, 'ask');
      await until(() => v.pending?.kind === 'question', 3000, 'question');
      const held = c.lastSeq(session);
      // Cut this client off; another client answers and talks on.
      FlakyWS.down = true;
      FlakyWS.dropAll();
      await until(() => c.state === 'reconnecting', 2000, 'reconnecting');
      const other = await connect(srv.port, { hello: true });
      await other.ok({ type: 'session.attach', session, after: 0 });
      await other.ok({ type: 'answer', session, question_id: v.pending.question_id, value: 'no' });
      let seq = await waitState(other, session, 'idle', held);
      await other.ok({ type: 'say', session, text: 'more words here', client_msg_id: 'o1' });
      seq = await waitState(other, session, 'idle', seq.seq);
      assert.ok(seq.seq - held > 5, 'more than the retained events were missed');
      FlakyWS.down = false;
      await until(() => c.log.resets.length === 1, 5000, 'a snapshot');
      const snap = c.log.resets[0];
      assert.equal(snap.type, 'snapshot');
      assert.equal(v.pending, null, 'the answered question is gone');
      assert.equal(v.state, 'idle');
      assert.deepEqual(
        v.messages.map((m) => [m.role, m.text]),
        [
          ['user', 'ask'],
          ['assistant', 'you said no'],
          ['user', 'more words here'],
          ['assistant', 'more words here'],
        ],
      );
      assert.equal(c.lastSeq(session), snap.seq);
      // Live events continue after the snapshot.
      await c.say(session, 'after');
      await until(() => v.messages.length === 6 && v.state === 'idle', 3000, 'live turn after the snapshot');
      assert.equal(v.messages.at(-1).text, 'after');
      other.close();
    } finally {
      c.close();
      FlakyWS.reset();
    }
  },
);

itest(
  'say: the reply is lost with the socket; re-sent with the same client_msg_id after reconnecting, applied once',
  async ({ startServer }) => {
    const srv = await startServer();
    const c = makeClient(srv, { WebSocket: FlakyWS });
    FlakyWS.reset();
    try {
      await c.connect();
      const { session } = await c.open('echo', { input: { delay_ms: 5 } });
      const v = bindView(c, session);
      // 1) sent, then the connection dies before the ok
      FlakyWS.dropAfter = (m) => m.type === 'say';
      const p1 = c.say(session, 'lost reply');
      const r1 = await p1;
      assert.equal(r1.type, 'ok');
      await until(() => v.state === 'idle' && v.messages.length === 2, 5000, 'turn 1');
      const says1 = FlakyWS.sent.filter((m) => m?.type === 'say');
      assert.equal(says1.length, 2, 'sent twice');
      assert.equal(says1[0].client_msg_id, says1[1].client_msg_id);
      assert.equal(r1.duplicate, true, `second send acknowledged as a duplicate: ${JSON.stringify(r1)}`);
      // 2) said while the network is down: queued, sent once it is back
      FlakyWS.down = true;
      FlakyWS.dropAll();
      await until(() => c.state === 'reconnecting', 2000, 'reconnecting');
      const p2 = c.say(session, 'said offline');
      assert.equal(c.pendingSays().length, 1);
      await sleep(300);
      FlakyWS.down = false;
      const r2 = await p2;
      assert.equal(r2.type, 'ok');
      await until(() => v.state === 'idle' && v.messages.length === 4, 5000, 'turn 2');
      // 3) server killed right after a say: re-sent to the restarted server, applied once
      FlakyWS.dropAfter = null;
      const p3 = c.say(session, 'across a crash');
      const r3 = await p3.catch((e) => e);
      await srv.kill9();
      await srv.restart();
      await until(() => c.state === 'open', 8000, 'open after restart');
      await until(
        () => v.state === 'idle' && v.messages.filter((m) => m.role === 'user').length === 3 && !v.streaming,
        8000,
        'turn 3',
      ).catch((e) => {
        throw new Error(
          e.message +
            '\n' +
            JSON.stringify({
              r3: String(r3?.code ?? '') + JSON.stringify(r3),
              evs: c.log.events.map((e) => [e.seq, e.type, e.text ?? e.state ?? '']),
              state: v.state,
              conn: c.state,
              states: c.log.states,
              sent: FlakyWS.sent.slice(-6),
            }),
        );
      });
      await sleep(300);
      const users = c.log.events.filter((e) => e.session === session && e.type === 'user');
      assert.deepEqual(
        users.map((u) => u.text),
        ['lost reply', 'said offline', 'across a crash'],
      );
      assert.equal(new Set(users.map((u) => u.client_msg_id)).size, 3);
      assert.ok(contiguous(seqsOf(c.log.events, session)));
      assert.deepEqual(
        v.messages.filter((m) => m.role === 'user').map((m) => m.text),
        ['lost reply', 'said offline', 'across a crash'],
      );
      assert.equal(c.pendingSays().length, 0);
    } finally {
      c.close();
      FlakyWS.reset();
    }
  },
);

itest(
  'SessionView: discard removes a message, tools and progress fold in place, snapshot replaces everything',
  async () => {
    const S = 's_x';
    let seq = 0;
    const ev = (type, f = {}) => ({ type, session: S, seq: ++seq, ts: '2026-01-01T00:00:00Z', ...f });
    const v = new SessionView(S);
    v.apply(ev('user', { message_id: 'u1', text: 'hi', client_msg_id: 'c1' }));
    v.apply(ev('state', { state: 'running', step: 'reply' }));
    v.apply(ev('message.start', { message_id: 'm1', role: 'assistant' }));
    v.apply(ev('delta', { message_id: 'm1', text: 'par' }));
    assert.equal(v.streaming, true);
    v.apply(ev('message.discard', { message_id: 'm1', reason: 'retry' }));
    assert.deepEqual(
      v.messages.map((m) => m.id),
      ['u1'],
    );
    // Stopped by the user: the text shown so far stays, marked stopped, out of assistantText.
    v.apply(ev('message.start', { message_id: 'm0', role: 'assistant' }));
    v.apply(ev('delta', { message_id: 'm0', text: 'partial' }));
    v.apply(ev('message.discard', { message_id: 'm0', reason: 'cancelled' }));
    const stopped = v.messages.find((m) => m.id === 'm0');
    assert.equal(stopped.stopped, true);
    assert.equal(stopped.text, 'partial');
    assert.equal(v.streaming, false);
    assert.equal(v.assistantText(), '');
    v._remove('m:m0'); // the rest of this test counts items without it
    // A turn sent from the page shows until its user event arrives.
    v.addLocal('c2', 'on its way');
    assert.equal(v.messages.at(-1).local, true);
    v.apply(ev('user', { message_id: 'u2', text: 'on its way', client_msg_id: 'c2' }));
    assert.deepEqual(
      v.messages.map((m) => [m.id, Boolean(m.local)]),
      [
        ['u1', false],
        ['u2', false],
      ],
    );
    v._remove('m:u2');
    v.apply(ev('tool.call', { call_id: 't1', name: 'scan', args: { dir: '/photos' } }));
    v.apply(ev('progress', { step: 'scan', done: 1, total: 4, label: 'Scanning' }));
    v.apply(ev('progress', { step: 'scan', done: 3, total: 4, label: 'Scanning' }));
    v.apply(ev('tool.result', { call_id: 't1', ok: true, result: { files: 4 } }));
    assert.deepEqual(
      v.items.map((i) => i.kind),
      ['message', 'tool', 'progress'],
    );
    assert.equal(v.items[1].done, true);
    assert.deepEqual(v.items[1].result, { files: 4 });
    assert.equal(v.items[1].may_have_run, false);
    assert.equal(v.items[2].done, 3);
    assert.equal(
      v.apply({ ...ev('delta', { message_id: 'm9', text: 'old' }), seq: 2 }),
      false,
      'an old seq is ignored',
    );
    v.apply(ev('message.start', { message_id: 'm2', role: 'assistant' }));
    v.apply(ev('delta', { message_id: 'm2', text: 'Hel' }));
    v.apply(ev('delta', { message_id: 'm2', text: 'lo' }));
    v.apply(
      ev('message.end', {
        message_id: 'm2',
        text: 'Hello',
        usage: { prompt_tokens: 5, completion_tokens: 2, cost_usd: 0.001, model: 'm' },
      }),
    );
    v.apply(
      ev('approval', {
        approval_id: 'a1',
        title: 'Move files',
        plan: { tree: [{ name: '2024', count: 3, children: [] }] },
      }),
    );
    v.apply(ev('state', { state: 'waiting_approval', step: 'plan' }));
    assert.equal(v.pending.kind, 'approval');
    assert.equal(v.assistantText(), 'Hello');
    assert.deepEqual(v.usage, { prompt_tokens: 5, completion_tokens: 2, cost_usd: 0.001 });
    v.apply(ev('state', { state: 'running', step: 'move' }));
    assert.equal(v.pending, null);
    assert.equal(v.items.find((i) => i.kind === 'approval').resolved, true);
    v.apply({
      type: 'snapshot',
      session: S,
      seq: 40,
      ts: '2026-01-01T00:00:01Z',
      state: 'waiting_input',
      step: 'ask',
      agent: 'echo',
      title: 'hi',
      transcript: [
        { role: 'user', message_id: 'u1', text: 'hi' },
        { role: 'assistant', message_id: 'm2', text: 'Hello' },
      ],
      pending: { question_id: 'q1', text: 'Sure?', choices: ['yes', 'no'] },
      agent_state: {},
    });
    assert.deepEqual(
      v.items.map((i) => i.kind),
      ['message', 'message', 'question'],
    );
    assert.equal(v.pending.question_id, 'q1');
    assert.equal(v.state, 'waiting_input');
    assert.equal(v.seq, 40);
    v.apply({ ...ev('delta', { message_id: 'm3', text: 'x' }), seq: 41 });
    assert.equal(v.messages.at(-1).text, 'x');
  },
);

itest('SessionView: a tool call cut short by a restart is kept as "may have run"', async () => {
  const S = 's_mayhaverun';
  let seq = 0;
  const ev = (type, f = {}) => ({ type, session: S, seq: ++seq, ts: '2026-01-01T00:00:00Z', ...f });
  const v = new SessionView(S);
  v.apply(ev('tool.call', { call_id: 'p1', name: 'pay', args: { amount: 42 } }));
  v.apply(ev('tool.result', { call_id: 'p1', ok: false, may_have_run: true, error: 'may have run: interrupted' }));
  const t = v.items.find((i) => i.kind === 'tool');
  assert.equal(t.done, true);
  assert.equal(t.ok, false);
  assert.equal(t.may_have_run, true);
  assert.match(t.error, /may have run/);
});

itest('SessionView: approval.expired resolves its card as expired and clears the pending approval', async () => {
  const S = 's_exp';
  let seq = 0;
  const ev = (type, f = {}) => ({ type, session: S, seq: ++seq, ts: '2026-01-01T00:00:00Z', ...f });
  const v = new SessionView(S);
  v.apply(ev('approval', { approval_id: 'a_1', title: 'Echo plan', plan: { steps: [] } }));
  const card = v.items.find((i) => i.kind === 'approval');
  assert.equal(v.pending, card);
  v.apply(ev('approval.expired', { approval_id: 'a_other', expired_at: '2026-01-01T00:00:01.000Z' }));
  assert.equal(card.resolved, false, 'another approval expired');
  v.apply(ev('approval.expired', { approval_id: 'a_1', expired_at: '2026-01-01T00:00:01.000Z' }));
  assert.equal(card.resolved, true);
  assert.equal(card.decision, 'expired');
  assert.equal(v.pending, null);
});

// Crash loop: kill -9 at seeded random moments during echo streams, questions
// (ask/answer), approvals (plan/decide) and chat turns against the fake
// provider; after each, restart on the same data dir and re-attach several
// clients from the last seq each holds. Invariants over every client's view:
// seq exactly +1 from what the client had (no loss, no duplicate), every
// message.start closed by exactly one message.end or message.discard, the
// transcript every client saw identical to the server's log, each turn's
// final text as expected, each client_msg_id applied once, pending questions
// and approvals answerable after restart, the session list intact.
import './env.mjs';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { checkMessages, connect, fakeTarget, openSession, sleep, writeRoutesFile } from '../integration/harness.mjs';
import { ftest, rng, seedFor } from './lib.mjs';

const KILLS = Number(process.env.FAULT_KILLS ?? 40);
const N_ECHO = 5;
const N_CHAT = 2;
const N_VIEWS = 3;
const REST = new Set(['idle', 'waiting_input', 'waiting_approval']);

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

/** One client's view: what it holds per session, checked as it arrives. */
class View {
  constructor(name) {
    this.name = name;
    this.last = new Map();
    this.logs = new Map();
    this.violations = [];
    this.c = null;
    this._i = 0;
  }
  absorb() {
    if (!this.c) return;
    const evs = this.c.events;
    for (; this._i < evs.length; this._i++) {
      const e = evs[this._i];
      const s = e.session;
      const last = this.last.get(s) ?? 0;
      if (e.type === 'snapshot') {
        this.violations.push(`${this.name}: unexpected snapshot for ${s} at ${e.seq} (had ${last})`);
        continue;
      }
      if (e.seq !== last + 1) {
        this.violations.push(
          `${this.name}: ${s} got seq ${e.seq} (${e.type}) after ${last}: ${e.seq <= last ? 'duplicate' : 'gap'}`,
        );
        if (e.seq <= last) continue;
      }
      this.last.set(s, e.seq);
      if (!this.logs.has(s)) this.logs.set(s, []);
      this.logs.get(s).push(e);
    }
  }
  async attach(port, sessions) {
    this.absorb();
    this.c = await connect(port, { hello: true, name: this.name });
    this._i = 0;
    for (const s of sessions) {
      const have = this.last.get(s) ?? 0;
      const r = await this.c.request({ type: 'session.attach', session: s, after: have }, 10_000);
      if (r.type !== 'ok') {
        this.violations.push(`${this.name}: attach ${s} after ${have}: ${JSON.stringify(r)}`);
        continue;
      }
      if (r.head < have)
        this.violations.push(`${this.name}: ${s} head ${r.head} after restart < ${have} already delivered (seq reuse)`);
      if (r.recovered !== true)
        this.violations.push(`${this.name}: ${s} attach after ${have}: recovered ${r.recovered}`);
    }
  }
  lastEvent(s) {
    const l = this.logs.get(s);
    return l?.[l.length - 1];
  }
}

/** Walk a session's full log and check each turn's outcome against what was asked. */
function checkOutcomes(s, log, kind, answers, decisions) {
  const bad = [];
  let pending = null;
  const cm = new Map();
  for (const e of log) {
    if (e.type === 'user') {
      if (e.client_msg_id) cm.set(e.client_msg_id, (cm.get(e.client_msg_id) ?? 0) + 1);
      if (pending) bad.push(`${s}@${e.seq}: a new user turn while ${JSON.stringify(pending)} had no outcome`);
      pending =
        kind === 'chat'
          ? { text: `echo: ${e.text}` }
          : e.text === 'ask'
            ? { q: true }
            : e.text === 'plan'
              ? { a: true }
              : { text: e.text };
    } else if (e.type === 'question') {
      if (!pending?.q) bad.push(`${s}@${e.seq}: unexpected question (pending ${JSON.stringify(pending)})`);
      pending = { answerOf: e.question_id };
    } else if (e.type === 'approval') {
      const revised = pending?.decisionOf && decisions.get(pending.decisionOf) === 'revise';
      if (!pending?.a && !revised) bad.push(`${s}@${e.seq}: unexpected approval (pending ${JSON.stringify(pending)})`);
      pending = { decisionOf: e.approval_id };
    } else if (e.type === 'message.end') {
      let want;
      if (pending?.text !== undefined) want = pending.text;
      else if (pending?.answerOf) want = `you said ${answers.get(pending.answerOf)}`;
      else if (pending?.decisionOf)
        want = { approve: 'approved', reject: 'rejected' }[decisions.get(pending.decisionOf)];
      if (want === undefined || e.text !== want)
        bad.push(
          `${s}@${e.seq}: message.end ${JSON.stringify(e.text)}, expected ${JSON.stringify(want)} (pending ${JSON.stringify(pending)})`,
        );
      pending = null;
    } else if (e.type === 'error') {
      bad.push(`${s}@${e.seq}: error event ${JSON.stringify(e)}`);
      pending = null;
    }
  }
  for (const [k, n] of cm) if (n > 1) bad.push(`${s}: client_msg_id ${k} applied ${n} times`);
  return { bad, cm };
}

ftest(
  `crash loop: ${KILLS} x kill -9 during streams, questions, approvals and chat turns; restart and re-attach`,
  async ({ startServer }) => {
    const seed = seedFor('crash loop');
    const R = rng(seed);
    const P = 'crashloop';
    fp.script({ token_delay_ms: 12, repeat: 'forever', match: { prefix: P } });
    const routes = writeRoutesFile({
      routes: {
        default: [fakeTarget(fp.url, P, { timeout_ms: { connect: 1000, first_byte: 3000, idle: 2000, total: 30000 } })],
      },
      retry: { max_attempts: 4, base_ms: 50, max_backoff_ms: 400, max_total_ms: 8000 },
    });
    const srv = await startServer({
      args: ['--routes', routes, '--echo-delay-ms', '6'],
      env: { FAKE_KEY: 'fake-key' },
    });
    const opener = await connect(srv.port, { hello: true, name: 'opener' });
    const kinds = new Map();
    for (let i = 0; i < N_ECHO; i++) kinds.set((await openSession(opener, 'echo')).session, 'echo');
    for (let i = 0; i < N_CHAT; i++) kinds.set((await openSession(opener, 'chat', { input: {} })).session, 'chat');
    await opener.close();
    const sessions = [...kinds.keys()];
    const views = Array.from({ length: N_VIEWS }, (_, i) => new View(`v${i}`));
    for (const v of views) await v.attach(srv.port, sessions);

    const answers = new Map(); // question_id -> value sent
    const decisions = new Map(); // approval_id -> decision sent
    const sentCm = new Map(); // session -> Set of client_msg_ids sent
    let nCm = 0;
    const stats = {
      kills: 0,
      says: 0,
      asks: 0,
      plans: 0,
      answers: 0,
      decides: 0,
      chats: 0,
      killedWhileRunning: 0,
      resent: { ok: 0, duplicate: 0, conflict: 0 },
    };
    const word = () =>
      R.pick(['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet']) +
      R.int(0, 99);

    const listed = new Map(); // session -> state, from the last settle
    const settle = async (label) => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        for (const v of views) v.absorb();
        const list = (await views[0].c.ok({ type: 'session.list' }, 10_000)).sessions;
        const heads = new Map(list.map((x) => [x.session, x]));
        let done = true;
        for (const s of sessions) {
          const info = heads.get(s);
          assert.ok(info, `${label}: session ${s} missing from session.list: ${JSON.stringify(list)}`);
          for (const v of views) {
            assert.ok(
              info.head >= (v.last.get(s) ?? 0),
              `${label}: ${s} listed head ${info.head} < ${v.name} holds ${v.last.get(s)}`,
            );
            if ((v.last.get(s) ?? 0) !== info.head) done = false;
          }
          const le = views[0].lastEvent(s);
          // A choice's record (question.answered, approval.decided) comes
          // after the events the choice caused at once: a revise's new
          // approval, or a turn already over.
          const atRest =
            (le?.type === 'state' && REST.has(le.state)) ||
            (le?.type === 'approval' && info.state === 'waiting_approval') ||
            ((le?.type === 'question.answered' || le?.type === 'approval.decided') && REST.has(info.state));
          if (!REST.has(info.state) || !atRest) done = false;
          listed.set(s, info.state);
        }
        if (done) return;
        if (Date.now() > deadline) {
          const st = sessions.map(
            (s) =>
              `${s}: listed ${JSON.stringify(heads.get(s))} views ${views.map((v) => v.last.get(s)).join('/')} last ${JSON.stringify(views[0].lastEvent(s))}`,
          );
          throw new Error(`${label}: sessions did not settle within 30 s:\n${st.join('\n')}`);
        }
        await sleep(50);
      }
    };

    await settle('start');
    for (let k = 1; k <= KILLS; k++) {
      // 1. Start work on a random subset of the sessions.
      const ops = [];
      for (const s of sessions) {
        if (R() < 0.35) continue;
        const state = listed.get(s);
        const v = R.pick(views);
        if (state === 'idle') {
          const cm = `k${k}-${++nCm}`;
          let text;
          if (kinds.get(s) === 'chat') {
            text = Array.from({ length: R.int(4, 20) }, word).join(' ');
            stats.chats++;
          } else {
            const x = R();
            if (x < 0.2) {
              text = 'ask';
              stats.asks++;
            } else if (x < 0.4) {
              text = 'plan';
              stats.plans++;
            } else {
              text = Array.from({ length: R.int(3, 60) }, word).join(' ');
              stats.says++;
            }
          }
          if (!sentCm.has(s)) sentCm.set(s, new Set());
          sentCm.get(s).add(cm);
          ops.push({ v, msg: { type: 'say', session: s, text, client_msg_id: cm } });
        } else if (state === 'waiting_input') {
          const q = [...views[0].logs.get(s)].reverse().find((e) => e.type === 'question');
          const value = R() < 0.5 ? 'yes' : 'no';
          answers.set(q.question_id, value);
          stats.answers++;
          ops.push({ v, msg: { type: 'answer', session: s, question_id: q.question_id, value } });
        } else if (state === 'waiting_approval') {
          const a = [...views[0].logs.get(s)].reverse().find((e) => e.type === 'approval');
          const x = R();
          const decision = x < 0.4 ? 'approve' : x < 0.8 ? 'reject' : 'revise';
          decisions.set(a.approval_id, decision);
          stats.decides++;
          const msg = { type: 'decide', session: s, approval_id: a.approval_id, decision };
          if (decision === 'revise') msg.comment = `revision ${k}`;
          ops.push({ v, msg });
        }
      }
      for (const op of ops) op.reply = op.v.c.request(op.msg, 10_000).catch(() => null);
      // 2. Kill at a random moment: before the replies, mid-stream, or after.
      await sleep(R.int(0, 250));
      for (const v of views) v.absorb();
      if (sessions.some((s) => views[0].lastEvent(s)?.type !== 'state' || views[0].lastEvent(s)?.state === 'running'))
        stats.killedWhileRunning++;
      const exit = await srv.kill9();
      assert.equal(
        exit.signal,
        'SIGKILL',
        `tether died on its own before the kill: ${JSON.stringify(exit)}\n${srv.tail()}`,
      );
      stats.kills++;
      const replies = await Promise.all(ops.map((o) => o.reply));
      await Promise.all(views.map((v) => v.c.closed));
      // 3. Restart on the same data dir, re-attach every view from what it holds.
      await srv.restart();
      for (const v of views) await v.attach(srv.port, sessions);
      // 4. Send every op of this round again: a say is applied once (client_msg_id),
      //    an answer or decide already applied is refused with conflict.
      for (let i = 0; i < ops.length; i++) {
        const r = await views[0].c.request(ops[i].msg, 10_000);
        if (r.type === 'ok') stats.resent[r.duplicate ? 'duplicate' : 'ok']++;
        else if (r.code === 'conflict') stats.resent.conflict++;
        else
          assert.fail(
            `round ${k}: resending ${JSON.stringify(ops[i].msg)} after the restart got ${JSON.stringify(r)} (first reply ${JSON.stringify(replies[i])})`,
          );
      }
      await settle(`round ${k} (seed ${seed})`);
      for (const v of views)
        assert.deepEqual(v.violations, [], `round ${k} (seed ${seed}): ${v.name} saw:\n${v.violations.join('\n')}`);
    }

    // Final: a fresh client replays every session from 0; each view's log must equal it.
    const fresh = new View('fresh');
    await fresh.attach(srv.port, sessions);
    await sleep(300);
    const heads = new Map((await fresh.c.ok({ type: 'session.list' })).sessions.map((x) => [x.session, x.head]));
    for (const s of sessions) await fresh.c.waitEvent((e) => e.session === s && e.seq === heads.get(s), 10_000);
    fresh.absorb();
    assert.deepEqual(fresh.violations, []);
    const problems = [];
    for (const s of sessions) {
      const log = fresh.logs.get(s);
      assert.equal(log.length, heads.get(s));
      for (const v of views) {
        const vl = v.logs.get(s);
        if (JSON.stringify(vl) !== JSON.stringify(log)) {
          const i = vl.findIndex((e, j) => JSON.stringify(e) !== JSON.stringify(log[j]));
          problems.push(
            `${v.name} ${s}: its view differs from the server's log at index ${i}: saw ${JSON.stringify(vl[i])}, log has ${JSON.stringify(log[i])}`,
          );
        }
      }
      let msgs;
      try {
        msgs = checkMessages(assert, log);
      } catch (e) {
        const seq = Number(/"seq":(\d+)/.exec(e.message)?.[1] ?? 0);
        const ctx = log
          .filter((x) => x.seq >= seq - 12 && x.seq <= seq + 3)
          .map((x) => '    ' + JSON.stringify(x).slice(0, 260))
          .join('\n');
        problems.push(`${s} (${kinds.get(s)}): ${e.message}\n  around it:\n${ctx}`);
        continue;
      }
      for (const m of msgs.values())
        if (!m.end && !m.discard) problems.push(`${s}: message ${m.id} neither ended nor discarded`);
      for (const m of msgs.values())
        if (m.discard && !['restart', 'retry'].includes(m.discard.reason))
          problems.push(`${s}: discard reason ${m.discard.reason}`);
      const { bad, cm } = checkOutcomes(s, log, kinds.get(s), answers, decisions);
      problems.push(...bad);
      for (const id of sentCm.get(s) ?? [])
        if (cm.get(id) !== 1) problems.push(`${s}: say ${id} applied ${cm.get(id) ?? 0} times`);
    }
    const discards = sessions.reduce(
      (n, s) => n + fresh.logs.get(s).filter((e) => e.type === 'message.discard').length,
      0,
    );
    console.log(
      `# crash loop (seed ${seed}): ${JSON.stringify(stats)}, ${discards} message.discard, heads ${JSON.stringify([...heads.values()])}`,
    );
    assert.deepEqual(problems, [], `seed ${seed}:\n${problems.join('\n')}`);
    assert.ok(stats.kills >= KILLS);
    assert.ok(stats.killedWhileRunning >= KILLS / 4, `only ${stats.killedWhileRunning} kills landed during work`);
  },
  { timeout: 200_000 },
);

// The photo organiser end to end over a real socket against the fake
// provider, on a library of real JPEG files with EXIF made by the tests:
// analyse, questions, a proposal revised then approved, journaled moves,
// undo, kill -9 in the middle of the moves, and a plan that tries to escape.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAKER, planFor, snapshot } from './photos-lib.mjs';
import { checkMessages, connect, fakeTarget, itest, openSession, waitState, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

function library(n, dup = 0) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-photos-'));
  execFileSync(MAKER, [path.join(root, 'local'), String(n), String(dup)]);
  return root;
}

function script(P, files) {
  fp.script([
    { text: 'Your library holds product photos from several cameras.', match: { prefix: P } },
    {
      text: JSON.stringify({ questions: [{ text: 'Organise by date or by camera?', choices: ['date', 'camera'] }] }),
      match: { prefix: P },
    },
    { text: JSON.stringify(planFor(files, 'first-try')), match: { prefix: P } },
    { text: JSON.stringify(planFor(files, 'organised')), match: { prefix: P } },
  ]);
}

function routes(P) {
  return writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] } });
}

const sorted = (o) => Object.values(o).sort();

itest(
  'photo organiser: analyse, ask, propose, revise, approve, move with a journal, then undo',
  async ({ startServer }) => {
    const P = 'p-full';
    const root = library(24, 6);
    const lib = path.join(root, 'local');
    const original = snapshot(lib);
    script(P, original);
    const srv = await startServer({ args: ['--routes', routes(P), '--photos-root', root], env: { FAKE_KEY: 'k' } });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'photo-organizer');
    await c.ok({ type: 'say', session, text: 'help me organise my product photos' });

    const q = await c.waitEvent((e) => e.session === session && e.type === 'question', 15000);
    assert.deepEqual(q.choices, ['date', 'camera']);
    await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'camera' });

    const a1 = await c.waitEvent((e) => e.session === session && e.type === 'approval', 15000);
    assert.equal(a1.plan.moves, 24);
    assert.equal(a1.plan.tree[0].name, 'first-try');
    assert.equal(a1.plan.tree[0].count, 24);
    // The preview lists every file the folder gets, where from and where to.
    const listed = a1.plan.tree[0].files;
    assert.equal(listed.length, 24);
    assert.deepEqual(listed.map((f) => f.src).sort(), Object.keys(original).sort());
    assert.ok(listed.every((f) => f.dest === `first-try/${path.basename(f.src)}`));
    assert.equal(a1.plan.tree[0].files_more, undefined);
    await c.ok({
      type: 'decide',
      session,
      approval_id: a1.approval_id,
      decision: 'revise',
      comment: 'call the folder organised',
    });

    const a2 = await c.waitEvent((e) => e.session === session && e.type === 'approval' && e.seq > a1.seq, 15000);
    assert.equal(a2.plan.tree[0].name, 'organised');
    const planReq = fp
      .requests({ prefix: P })
      .at(-1)
      .body.messages.find((m) => m.role === 'user').content;
    assert.match(planReq, /call the folder organised/, 'the revision comment reaches the model');
    assert.match(planReq, /"answer": "camera"/);
    await c.ok({ type: 'decide', session, approval_id: a2.approval_id, decision: 'approve' });
    const done = await waitState(c, session, 'done', a2.seq, 20000);

    const evs = c.sessionEvents(session).filter((e) => e.seq <= done.seq);
    checkMessages(assert, evs);
    const summary = evs.filter((e) => e.type === 'message.end').at(-1).text;
    assert.match(summary, /Done: 24 photos moved/, 'folders made are not counted as photos');
    const moving = evs.filter((e) => e.type === 'progress' && e.step === 'execute').at(-1);
    assert.deepEqual([moving.done, moving.total], [24, 24], 'progress counts photos too, not folders');
    assert.ok(
      evs.some((e) => e.type === 'progress' && e.step === 'analyse'),
      'scan progress',
    );
    const after = snapshot(lib);
    assert.deepEqual(
      Object.keys(after).sort(),
      Object.keys(original)
        .map((p) => `organised/${path.basename(p)}`)
        .sort(),
    );
    assert.deepEqual(sorted(after), sorted(original), 'every file moved once, bytes intact');

    await c.ok({ type: 'say', session, text: 'undo' });
    await waitState(c, session, 'done', done.seq, 20000);
    assert.deepEqual(snapshot(lib), original, 'undo restores the original layout');
    // A second undo has nothing left: it says so, asks no model, moves nothing.
    const calls = fp.requests({ prefix: P }).length;
    const undone = c.maxSeq(session);
    await c.ok({ type: 'say', session, text: 'undo' });
    await waitState(c, session, 'done', undone, 10000);
    const said = c.sessionEvents(session).filter((e) => e.type === 'message.end' && e.seq > undone);
    assert.match(said.at(-1).text, /nothing to undo/);
    assert.equal(fp.requests({ prefix: P }).length, calls, 'no new run, no model call');
    assert.deepEqual(snapshot(lib), original);
    fs.rmSync(root, { recursive: true, force: true });
  },
);

itest(
  'photo organiser: kill -9 during the moves, restart: the plan finishes, each file moved exactly once',
  async ({ startServer }) => {
    const P = 'p-crash';
    const root = library(600);
    const lib = path.join(root, 'local');
    const original = snapshot(lib);
    fp.script([
      { text: 'A summary.', match: { prefix: P } },
      { text: JSON.stringify({ questions: [{ text: 'Go?', choices: ['yes', 'no'] }] }), match: { prefix: P } },
      { text: JSON.stringify(planFor(original, 'organised')), match: { prefix: P } },
    ]);
    const srv = await startServer({ args: ['--routes', routes(P), '--photos-root', root], env: { FAKE_KEY: 'k' } });
    let c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'photo-organizer');
    await c.ok({ type: 'say', session, text: 'organise' });
    const q = await c.waitEvent((e) => e.session === session && e.type === 'question', 15000);
    await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
    const a = await c.waitEvent((e) => e.session === session && e.type === 'approval', 15000);
    await c.ok({ type: 'decide', session, approval_id: a.approval_id, decision: 'approve' });
    // Wait until some files have moved, then kill.
    for (let i = 0; i < 500 && !fs.existsSync(path.join(lib, 'organised')); i++)
      await new Promise((r) => setTimeout(r, 2));
    await srv.kill9();
    const moved = fs.existsSync(path.join(lib, 'organised')) ? fs.readdirSync(path.join(lib, 'organised')).length : 0;
    await srv.restart();
    c = await connect(srv.port, { hello: true });
    await c.ok({ type: 'session.attach', session, after: 0 });
    await waitState(c, session, 'done', 0, 30000);
    const after = snapshot(lib);
    assert.equal(Object.keys(after).length, 600, `moved before the kill: ${moved}`);
    assert.ok(
      Object.keys(after).every((p) => p.startsWith('organised/')),
      'nothing left behind',
    );
    assert.deepEqual(sorted(after), sorted(original), 'no file lost, none duplicated');
    const done = c
      .sessionEvents(session)
      .filter((e) => e.type === 'message.end')
      .at(-1);
    assert.match(done.text, /Done: 600 photos moved/, "the count is the run's, across the crash");
    fs.rmSync(root, { recursive: true, force: true });
  },
);

// kill -9 at chosen points of a batch of 512 moves (TETHER_PHOTOS_FAULT makes
// the server kill itself there, organizer_execute.c): before the first move
// (intents committed), after the 1st, 300th and 512th move of the first
// batch, after its moves but before its folders are synced, after the sync
// but before the batch is committed, at the start of the second batch, and
// mid-way through it. After each: restart without the fault, the run
// finishes, every photo is exactly once in the new layout, and undo puts
// every photo back exactly where it was.
const FAULTS = [
  'batch:1',
  'rename:1',
  'rename:300',
  'rename:511',
  'rename:512',
  'before_sync:1',
  'after_sync:1',
  'batch:2',
  'rename:700',
];

itest(
  `photo organiser: kill -9 inside a batch of 512 moves (${FAULTS.join(', ')}): each photo exactly once, undo restores`,
  async ({ startServer }) => {
    const P = 'p-batch';
    const root = library(800);
    const lib = path.join(root, 'local');
    const original = snapshot(lib);
    for (const fault of FAULTS) {
      const script = [
        { text: 'A summary.', match: { prefix: P } },
        { text: JSON.stringify({ questions: [{ text: 'Go?', choices: ['yes', 'no'] }] }), match: { prefix: P } },
        { text: JSON.stringify(planFor(original, 'organised')), match: { prefix: P } },
      ];
      fp.script(script);
      const srv = await startServer({
        args: ['--routes', routes(P), '--photos-root', root],
        env: { FAKE_KEY: 'k', TETHER_PHOTOS_FAULT: fault },
      });
      let c = await connect(srv.port, { hello: true });
      const { session } = await openSession(c, 'photo-organizer');
      await c.ok({ type: 'say', session, text: 'organise' });
      const q = await c.waitEvent((e) => e.session === session && e.type === 'question', 15000);
      await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
      const a = await c.waitEvent((e) => e.session === session && e.type === 'approval', 15000);
      await c.ok({ type: 'decide', session, approval_id: a.approval_id, decision: 'approve' });
      const exit = await srv.exited;
      assert.equal(exit.signal, 'SIGKILL', `${fault}: the server killed itself at the fault point`);
      const mid = snapshot(lib);
      const moved = Object.keys(mid).filter((p) => p.startsWith('organised/')).length;
      assert.deepEqual(
        sorted(mid),
        sorted(original),
        `${fault}: no photo lost or doubled at the kill (${moved} moved)`,
      );
      srv.env = { FAKE_KEY: 'k' }; // the restart runs without the fault
      await srv.restart();
      c = await connect(srv.port, { hello: true });
      await c.ok({ type: 'session.attach', session, after: 0 });
      await waitState(c, session, 'done', 0, 30000);
      const after = snapshot(lib);
      assert.ok(
        Object.keys(after).every((p) => p.startsWith('organised/')),
        `${fault}: nothing left behind (${moved} moved before the kill)`,
      );
      assert.deepEqual(sorted(after), sorted(original), `${fault}: each photo exactly once`);
      const done = c
        .sessionEvents(session)
        .filter((e) => e.type === 'message.end')
        .at(-1);
      assert.match(done.text, /Done: 800 photos moved/, `${fault}: the count is the run's, across the crash`);
      const last = c.maxSeq(session);
      await c.ok({ type: 'say', session, text: 'undo' });
      await waitState(c, session, 'done', last, 30000);
      assert.deepEqual(snapshot(lib), original, `${fault}: undo puts every photo back`);
      await srv.stop();
      console.log(`# ${fault}: ${moved} of 800 moved at the kill; finished after the restart, undone`);
    }
    fs.rmSync(root, { recursive: true, force: true });
  },
  { timeout: 180_000 },
);

itest('photo organiser: a plan that leaves the library is refused and nothing moves', async ({ startServer }) => {
  const P = 'p-escape';
  const root = library(3);
  const lib = path.join(root, 'local');
  const original = snapshot(lib);
  const evil = planFor(original, 'organised');
  evil.moves[0].dest = '../outside.jpg';
  fp.script([
    { text: 'A summary.', match: { prefix: P } },
    { text: JSON.stringify({ questions: [{ text: 'Go?', choices: ['yes', 'no'] }] }), match: { prefix: P } },
    { text: JSON.stringify(evil), match: { prefix: P } },
  ]);
  const srv = await startServer({ args: ['--routes', routes(P), '--photos-root', root], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'photo-organizer');
  await c.ok({ type: 'say', session, text: 'organise' });
  const q = await c.waitEvent((e) => e.session === session && e.type === 'question', 15000);
  await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
  const failed = await waitState(c, session, 'failed', 0, 15000);
  const err = c.sessionEvents(session).find((e) => e.type === 'error' && e.seq < failed.seq);
  assert.match(err.message, /bad destination/);
  assert.equal(err.code, 'model_output', 'a model problem, not a server fault');
  assert.match(err.message, /nothing was moved.*Say "retry"/);
  assert.deepEqual(snapshot(lib), original);
  assert.ok(!fs.existsSync(path.join(root, 'outside.jpg')));

  // "retry" runs the plan step again, with the request as it was.
  fp.script([{ text: JSON.stringify(planFor(original, 'organised')), match: { prefix: P } }]);
  const calls = fp.requests({ prefix: P }).length;
  await c.ok({ type: 'say', session, text: 'retry' });
  const a = await c.waitEvent((e) => e.session === session && e.type === 'approval' && e.seq > failed.seq, 15000);
  assert.equal(a.plan.tree[0].name, 'organised');
  assert.equal(fp.requests({ prefix: P }).length, calls + 1, 'only the plan step ran again');
  const ctx = fp
    .requests({ prefix: P })
    .at(-1)
    .body.messages.find((m) => m.role === 'user').content;
  assert.match(ctx, /"request": "organise"/);
  fs.rmSync(root, { recursive: true, force: true });
});

itest(
  'photo organiser: a proposal left past --wait-expiry-s expires: approval.expired, the run ends, nothing moves, a late approve is conflict expired',
  async ({ startServer }) => {
    const P = 'p-expire';
    const root = library(6);
    const lib = path.join(root, 'local');
    const original = snapshot(lib);
    script(P, original);
    const srv = await startServer({
      args: ['--routes', routes(P), '--photos-root', root, '--wait-expiry-s', '2'],
      env: { FAKE_KEY: 'k' },
    });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'photo-organizer');
    await c.ok({ type: 'say', session, text: 'help me organise my product photos' });
    const q = await c.waitEvent((e) => e.session === session && e.type === 'question', 15000);
    await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'camera' });
    const a = await c.waitEvent((e) => e.session === session && e.type === 'approval', 15000);
    const at = Date.parse(a.expires_at);
    assert.ok(at > Date.now() && at <= Date.now() + 2000, a.expires_at);
    const expired = await c.waitEvent((e) => e.session === session && e.type === 'approval.expired', 6000);
    assert.equal(expired.approval_id, a.approval_id);
    const err = await c.waitEvent((e) => e.session === session && e.type === 'error' && e.seq > expired.seq);
    assert.equal(err.code, 'timeout');
    await waitState(c, session, 'failed', expired.seq);
    const late = await c.request({ type: 'decide', session, approval_id: a.approval_id, decision: 'approve' });
    assert.equal(late.code, 'conflict', JSON.stringify(late));
    assert.equal(late.reason, 'expired');
    assert.deepEqual(snapshot(lib), original, 'nothing moved');
    await srv.stop();
  },
);

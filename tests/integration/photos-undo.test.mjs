// Undo in the photo organiser over a real socket, checked on disk: run, undo,
// run again, undo again; two runs then one undo; an undo that meets conflicts
// says exactly what it could not restore and can be said again; names with
// bidi controls are refused when created and escaped when shown.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAKER, planFor, snapshot } from './photos-lib.mjs';
import { connect, fakeTarget, itest, openSession, waitState, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

function library(n) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-photos-'));
  execFileSync(MAKER, [path.join(root, 'local'), String(n)]);
  return { root, lib: path.join(root, 'local') };
}

async function start(startServer, P, root) {
  const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
  const srv = await startServer({ args: ['--routes', routes, '--photos-root', root], env: { FAKE_KEY: 'k' } });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c, 'photo-organizer');
  return { c, session };
}

/* One run to the end with plan; returns the summary message. */
async function run(c, session, P, plan) {
  fp.script([
    { text: 'A summary.', match: { prefix: P } },
    { text: JSON.stringify({ questions: [{ text: 'Go?', choices: ['yes', 'no'] }] }), match: { prefix: P } },
    { text: JSON.stringify(plan), match: { prefix: P } },
  ]);
  const from = c.maxSeq(session);
  await c.ok({ type: 'say', session, text: 'organise my photos' });
  const q = await c.waitEvent((e) => e.session === session && e.type === 'question' && e.seq > from, 15000);
  await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
  const a = await c.waitEvent((e) => e.session === session && e.type === 'approval' && e.seq > q.seq, 15000);
  await c.ok({ type: 'decide', session, approval_id: a.approval_id, decision: 'approve' });
  const done = await waitState(c, session, 'done', a.seq, 20000);
  return lastText(c, session, done.seq);
}

function lastText(c, session, upTo) {
  return c
    .sessionEvents(session)
    .filter((e) => e.type === 'message.end' && e.seq < upTo)
    .at(-1).text;
}

async function undo(c, session) {
  const from = c.maxSeq(session);
  await c.ok({ type: 'say', session, text: 'undo' });
  const done = await waitState(c, session, 'done', from, 20000);
  assert.ok(
    !c.sessionEvents(session).some((e) => e.seq > from && e.type === 'question'),
    'undo starts no new analysis',
  );
  return lastText(c, session, done.seq);
}

itest('photo undo: run, undo, run again, undo again: both runs are undone on disk', async ({ startServer }) => {
  const P = 'p-undo-twice';
  const { root, lib } = library(3);
  const original = snapshot(lib);
  const { c, session } = await start(startServer, P, root);

  assert.match(await run(c, session, P, planFor(original, 'first')), /Done: 3 photos moved/);
  assert.match(await undo(c, session), /Undone: every photo is back where it was.*\(3 moves put back\)/);
  assert.deepEqual(snapshot(lib), original);

  const second = await run(c, session, P, planFor(original, 'second'));
  assert.match(second, /Done: 3 photos moved/, 'the second run counts its own moves only');
  assert.deepEqual(
    Object.keys(snapshot(lib)).sort(),
    Object.keys(original)
      .map((p) => `second/${path.basename(p)}`)
      .sort(),
  );
  assert.match(await undo(c, session), /Undone: every photo is back where it was.*\(3 moves put back\)/);
  assert.deepEqual(snapshot(lib), original, 'the second undo puts the files back');
  assert.ok(!fs.existsSync(path.join(lib, 'second')), 'the folder it made is removed');
  fs.rmSync(root, { recursive: true, force: true });
});

itest(
  'photo undo: two runs without an undo between them, then undo restores the layout before both',
  async ({ startServer }) => {
    const P = 'p-undo-stack';
    const { root, lib } = library(3);
    const original = snapshot(lib);
    const { c, session } = await start(startServer, P, root);
    await run(c, session, P, planFor(original, 'first'));
    const moved = Object.fromEntries(Object.keys(original).map((p) => [`first/${path.basename(p)}`, 1]));
    assert.match(await run(c, session, P, planFor(moved, 'second')), /Done: 3 photos moved/);
    assert.match(await undo(c, session), /Undone: every photo is back where it was.*\(6 moves put back\)/);
    assert.deepEqual(snapshot(lib), original, "the first run's journal was kept, not dropped");
    fs.rmSync(root, { recursive: true, force: true });
  },
);

itest('photo undo: conflicts are reported with their paths, kept, and undo can be retried', async ({ startServer }) => {
  const P = 'p-undo-conflict';
  const { root, lib } = library(4);
  const original = snapshot(lib);
  const srcs = Object.keys(original).sort();
  const { c, session } = await start(startServer, P, root);
  await run(c, session, P, planFor(original, 'sorted'));

  // The user puts a file at one original path, deletes one moved file, edits another.
  fs.writeFileSync(path.join(lib, srcs[0]), 'a new file at the old name');
  const gone = fs.readFileSync(path.join(lib, 'sorted', path.basename(srcs[1])));
  fs.rmSync(path.join(lib, 'sorted', path.basename(srcs[1])));
  fs.appendFileSync(path.join(lib, 'sorted', path.basename(srcs[2])), 'edited');

  const report = await undo(c, session);
  assert.doesNotMatch(report, /Undone: every photo/);
  assert.match(report, /only partly restored: 1 move put back/);
  assert.match(
    report,
    new RegExp(
      `"sorted/${path.basename(srcs[0])}" \\(from "${srcs[0]}"\\) - 1 files not moved back because a file is at the original path again`,
    ),
  );
  assert.match(
    report,
    new RegExp(`"sorted/${path.basename(srcs[1])}" \\(from "${srcs[1]}"\\) - 1 moved files are no longer there`),
  );
  assert.match(
    report,
    new RegExp(`"sorted/${path.basename(srcs[2])}" \\(from "${srcs[2]}"\\) - 1 moved files were changed`),
  );
  assert.match(report, /"sorted" - 1 folders the organiser made were kept/);
  assert.match(report, /say "undo" again/);
  assert.ok(!report.includes(root), 'paths are relative to the library');
  assert.ok(fs.existsSync(path.join(lib, srcs[3])), 'what could be restored was');

  // Resolved: the intruder moved away, the deleted file put back by hand, the edited one too.
  fs.renameSync(path.join(lib, srcs[0]), path.join(root, 'intruder'));
  fs.writeFileSync(path.join(lib, srcs[1]), gone);
  fs.renameSync(path.join(lib, 'sorted', path.basename(srcs[2])), path.join(lib, srcs[2]));
  assert.match(await undo(c, session), /Undone: every photo is back where it was.*\(3 moves put back\)/);
  const after = snapshot(lib);
  assert.deepEqual(Object.keys(after).sort(), srcs);
  assert.equal(after[srcs[0]], original[srcs[0]]);
  assert.equal(after[srcs[1]], original[srcs[1]]);
  assert.ok(!fs.existsSync(path.join(lib, 'sorted')));
  fs.rmSync(root, { recursive: true, force: true });
});

itest(
  'photo names: bidi controls are refused in created folders and escaped in what is shown',
  async ({ startServer }) => {
    const P = 'p-bidi';
    const { root, lib } = library(2);
    // A source name from the user's disk with a right-to-left override in it.
    const [first] = Object.keys(snapshot(lib)).sort();
    const tricky = path.join(path.dirname(first), 'photo\u202Eexe.jpg');
    fs.renameSync(path.join(lib, first), path.join(lib, tricky));
    const original = snapshot(lib);
    const { c, session } = await start(startServer, P, root);

    for (const bad of ['ev\u202Eil', 'a\u2066b', 'zero\u200Bwidth', 'mark\u200F', 'arabic\u061Cmark']) {
      fp.script([
        { text: 'A summary.', match: { prefix: P } },
        { text: JSON.stringify({ questions: [{ text: 'Go?', choices: ['yes', 'no'] }] }), match: { prefix: P } },
        { text: JSON.stringify(planFor(original, bad)), match: { prefix: P } },
      ]);
      const from = c.maxSeq(session);
      await c.ok({ type: 'say', session, text: 'organise' });
      const q = await c.waitEvent((e) => e.session === session && e.type === 'question' && e.seq > from, 15000);
      await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
      const failed = await waitState(c, session, 'failed', q.seq, 15000);
      const err = c.sessionEvents(session).find((e) => e.type === 'error' && e.seq > q.seq && e.seq < failed.seq);
      assert.match(
        err.message,
        /bad folder name \(control character, or an invisible or bidi one, in path\)/,
        JSON.stringify(bad),
      );
      assert.match(err.message, /\\u\{(202E|2066|200B|200F|061C)\}/, 'the refused name is shown escaped');
      assert.doesNotMatch(err.message, /[\u202E\u2066\u200B\u200F\u061C]/);
    }
    assert.deepEqual(snapshot(lib), original);

    const plan = planFor(original, 'sorted');
    plan.moves.find((m) => m.src === tricky).dest = 'sorted/clean.jpg'; // a name it creates: clean
    await run(c, session, P, plan);
    fs.writeFileSync(path.join(lib, tricky), 'in the way');
    const report = await undo(c, session);
    assert.match(report, /photo\\u\{202E\}exe\.jpg/, 'a name from the disk is shown escaped');
    assert.doesNotMatch(report, /\u202E/);
    fs.rmSync(root, { recursive: true, force: true });
  },
);

// Large turns (review finding 8): a session's transcript used to live inside
// its record, so every commit that touched the record rewrote the whole
// transcript. Commits grew with the session (29 ms to 1.07 s per turn over 50
// turns of 500 KB), every other session stalled behind them, and data.mdb
// reached 16x what was said. Transcript entries now go to their own database,
// each written once.
//  - The store grows with what is said: data.mdb stays under 8x the text
//    sent. Each turn's text is in the event log three times (the user event,
//    the deltas, message.end) and in the transcript twice (user, assistant):
//    5x is the floor. It used to be 13.7x here, and growing with every turn.
//  - A small turn of another session, committed alongside a small turn of the
//    session with the large transcript, takes about as long as before that
//    transcript grew (a ratio of medians, no absolute time). It used to take
//    hundreds of times longer (x260 here): the large session's record,
//    transcript and all, was rewritten in the same commits.
//  - After a restart the snapshot carries the whole transcript, read back
//    from its database.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { connect, itest, openSession, sayAndWait, waitState } from './harness.mjs';

const TURNS = 20;
const SIZE = 500_000;
const ARGS = ['--echo-delay-ms', '0', '--rate-burst', '100000', '--rate-msgs-per-s', '100000'];

// SIZE bytes in 50 words: 50 deltas per reply.
function bigText(turn) {
  const word = `turn${turn}-`.padEnd(SIZE / 50 - 1, 'x');
  return Array.from({ length: 50 }, () => word)
    .join(' ')
    .padEnd(SIZE, 'y');
}

async function growTranscript(c, session) {
  let said = 0;
  for (let i = 0; i < TURNS; i++) {
    const text = bigText(i);
    said += Buffer.byteLength(text);
    const { events } = await sayAndWait(c, session, text, `big${i}`, 60_000);
    assert.equal(events.find((e) => e.type === 'message.end').text, text);
  }
  return said;
}

// One small turn in each session, sent together so that they are committed
// in the same passes; returns how long the second session's turn took.
async function smallTurnsTogether(c, big, small, round) {
  const from = c.events.length;
  const t0 = performance.now();
  c.send({ type: 'say', session: big, text: 'a small turn', client_msg_id: `sa${round}` });
  c.send({ type: 'say', session: small, text: 'a small turn', client_msg_id: `sb${round}` });
  const user = await c.waitEvent((e) => e.session === small && e.type === 'user', 30_000, from);
  await waitState(c, small, 'idle', user.seq, 30_000);
  const ms = performance.now() - t0;
  const bigUser = await c.waitEvent((e) => e.session === big && e.type === 'user', 30_000, from);
  await waitState(c, big, 'idle', bigUser.seq, 30_000);
  return ms;
}

async function medianSmallTurn(c, big, small, label) {
  const times = [];
  for (let i = 0; i < 7; i++) times.push(await smallTurnsTogether(c, big, small, `${label}${i}`));
  times.sort((a, b) => a - b);
  return { median: times[3], times };
}

itest(
  'data.mdb grows with what is said, not with every turn rewriting the transcript',
  async ({ startServer, t }) => {
    const srv = await startServer({ args: ARGS });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    const said = await growTranscript(c, session);
    const bytes = fs.statSync(path.join(srv.dataDir, 'data.mdb')).size;
    t.diagnostic(`data.mdb ${(bytes / said).toFixed(2)}x the bytes said`);
    assert.ok(bytes < 8 * said, `data.mdb is ${(bytes / said).toFixed(1)}x the ${said} bytes said (${bytes} bytes)`);

    // The transcript comes back from the store after a restart, whole and in order.
    const head = c.maxSeq(session);
    c.close();
    await srv.stop();
    await srv.restart();
    const c2 = await connect(srv.port, { hello: true });
    const att = await c2.ok({ type: 'session.attach', session, after: head + 10 });
    assert.equal(att.recovered, false);
    const snap = await c2.nextEvent((e) => e.session === session, 30_000);
    assert.equal(snap.type, 'snapshot');
    assert.equal(snap.transcript.length, 2 * TURNS);
    for (let i = 0; i < TURNS; i++) {
      const text = bigText(i);
      assert.deepEqual(
        [snap.transcript[2 * i].role, snap.transcript[2 * i].text === text],
        ['user', true],
        `entry ${2 * i}`,
      );
      assert.deepEqual(
        [snap.transcript[2 * i + 1].role, snap.transcript[2 * i + 1].text === text],
        ['assistant', true],
        `entry ${2 * i + 1}`,
      );
    }
  },
  { timeout: 300_000 },
);

itest(
  "a small turn of another session does not slow down as one session's transcript grows",
  async ({ startServer, t }) => {
    const srv = await startServer({ args: ARGS });
    const c = await connect(srv.port, { hello: true });
    const big = (await openSession(c, 'echo')).session;
    const small = (await openSession(c, 'echo')).session;
    const before = await medianSmallTurn(c, big, small, 'before');
    await growTranscript(c, big);
    const after = await medianSmallTurn(c, big, small, 'after');
    const ratio = after.median / before.median;
    t.diagnostic(
      `small turn x${ratio.toFixed(2)}: before ${before.times.map((x) => x.toFixed(1))}, after ${after.times.map((x) => x.toFixed(1))}`,
    );
    assert.ok(
      ratio < 20,
      `small turn median ${before.median.toFixed(1)} ms before, ${after.median.toFixed(1)} ms after ` +
        `${TURNS} turns of ${SIZE} bytes in the other session (x${ratio.toFixed(1)}); ` +
        `times before ${before.times.map((t) => t.toFixed(1))}, after ${after.times.map((t) => t.toFixed(1))}`,
    );
  },
  { timeout: 300_000 },
);

// What an `ok` promises, and what a snapshot carries.
//  - The ok of a request that changed a session (say, answer, decide,
//    cancel, close) goes out only once that change is committed: a kill -9
//    right after the ok never loses the turn. (It used to be sent before the
//    commit: 7 runs in 8 lost the turn.)
//  - A snapshot taken while a message streams carries that message's text so
//    far, and the deltas that follow continue it. (It used to leave it out.)

import assert from 'node:assert/strict';
import { connect, itest, openSession, waitState } from './harness.mjs';

itest('a say acknowledged with ok survives a kill -9 right after the ok', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '0', '--sync', 'none'] });
  for (let round = 0; round < 6; round++) {
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    await waitState(c, session, 'idle', 0);
    await c.ok({ type: 'say', session, text: `turn ${round}`, client_msg_id: `k${round}` });
    await srv.kill9();
    await srv.restart();
    const c2 = await connect(srv.port, { hello: true });
    await c2.ok({ type: 'session.attach', session, after: 0 });
    const user = await c2.waitEvent((e) => e.session === session && e.type === 'user', 5000);
    assert.equal(user.text, `turn ${round}`);
    const again = await c2.ok({ type: 'say', session, text: `turn ${round}`, client_msg_id: `k${round}` });
    assert.equal(again.duplicate, true, 'the acknowledged turn is known after the restart');
    c2.close();
  }
});

itest(
  'every say acknowledged before a kill -9 is there after the restart (a burst over many sessions)',
  async ({ startServer }) => {
    const srv = await startServer({
      args: ['--echo-delay-ms', '0', '--sync', 'none', '--rate-burst', '5000', '--rate-msgs-per-s', '5000'],
    });
    const c = await connect(srv.port, { hello: true });
    const sessions = [];
    for (let i = 0; i < 150; i++) sessions.push((await openSession(c, 'echo')).session);
    const acked = new Set();
    const pending = sessions.map((session, i) =>
      c.request({ type: 'say', session, text: `burst ${i}`, client_msg_id: `b${i}` }).then(
        (r) => {
          if (r.type === 'ok') acked.add(session);
        },
        () => {},
      ),
    );
    // Kill as soon as the first acknowledgement arrives, while the rest are in flight.
    for (let i = 0; i < 2000 && acked.size === 0; i++) await new Promise((r) => setImmediate(r));
    await srv.kill9();
    await Promise.allSettled(pending);
    await srv.restart();
    const c2 = await connect(srv.port, { hello: true });
    for (const session of acked) {
      const r = await c2.ok({ type: 'session.attach', session, after: 0 });
      assert.ok(r.head >= 2, `an acknowledged say was lost (session ${session}, head ${r.head}, ${acked.size} acked)`);
    }
  },
);

itest(
  'a snapshot taken mid-stream carries the partial message, and the deltas continue it',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '40', '--retain-events', '5'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    const text = Array.from({ length: 30 }, (_, i) => `w${i}`).join(' ');
    await c.ok({ type: 'say', session, text });
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.text.startsWith('w8'), 5000);
    const late = await connect(srv.port, { hello: true });
    const r = await late.ok({ type: 'session.attach', session, after: 0 });
    assert.equal(r.recovered, false);
    const snap = await late.waitEvent((e) => e.session === session && e.type === 'snapshot', 5000);
    assert.ok(snap.streaming, JSON.stringify(snap));
    assert.ok(text.startsWith(snap.streaming.text) && snap.streaming.text.length > 0, snap.streaming.text);
    const end = await late.waitEvent((e) => e.session === session && e.type === 'message.end', 10000);
    const deltas = late
      .sessionEvents(session)
      .filter((e) => e.type === 'delta' && e.seq > snap.seq && e.message_id === snap.streaming.message_id);
    assert.equal(
      snap.streaming.text + deltas.map((d) => d.text).join(''),
      end.text,
      'snapshot text + later deltas = the whole message, once',
    );
  },
);

// Issue 18, small socket buffers and heartbeats of our own:
//  - lws hands a message to the server in pieces of its rx buffer (256 bytes);
//    the server reassembles them, so a say of close to --max-frame-bytes
//    (1 MiB by default) is still accepted whole and echoed back whole, and
//    one just over the cap is refused.
//  - heartbeats come from one timer that walks every socket (not one lws
//    timer per socket): among many sockets, the ones that answer pings stay,
//    the silent ones are dropped after about three intervals and counted in
//    tether_sockets_closed_heartbeat_total.
import assert from 'node:assert/strict';
import { connect, httpGet, itest, openSession, sayAndWait, sessionInfo, sleep, waitState, within } from './harness.mjs';

const ARGS = ['--echo-delay-ms', '0', '--rate-burst', '100000', '--rate-msgs-per-s', '100000'];
const MAX = 1 << 20; // --max-frame-bytes default

// A text of n bytes in 20 words (20 deltas in the echo).
function bigText(n, tag) {
  const word = `${tag}-`.padEnd(Math.floor(n / 20) - 1, 'x');
  return Array.from({ length: 20 }, () => word)
    .join(' ')
    .padEnd(n, 'y');
}

async function echoedText(c, session, afterSeq) {
  const idle = await waitState(c, session, 'idle', afterSeq, 20_000);
  const end = c.sessionEvents(session).find((e) => e.type === 'message.end' && e.seq > afterSeq && e.seq < idle.seq);
  assert.ok(end, 'the echo ended its message');
  return { text: end.text, idle };
}

itest(
  'a say of almost 1 MiB (four thousand rx buffers) is accepted and echoed whole; one over the cap is refused',
  async ({ startServer }) => {
    const srv = await startServer({ args: ARGS });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c);
    await waitState(c, session, 'idle', 0);

    const base = JSON.stringify({ type: 'say', session, text: '', client_msg_id: 'one', id: 'one' }).length;
    const text = bigText(MAX - base - 16, 'one');
    const before = c.maxSeq(session);
    const r = await c.request({ type: 'say', session, text, client_msg_id: 'one', id: 'one' }, 20_000);
    assert.equal(r.type, 'ok', JSON.stringify(r).slice(0, 300));
    const first = await echoedText(c, session, before);
    assert.equal(first.text.length, text.length);
    assert.equal(first.text, text, 'the echo carries the whole text back');

    // Over the cap: too_large, the socket stays, nothing is said.
    const head = c.maxSeq(session);
    const from = c.frames.length;
    c.send({ type: 'say', session, text: bigText(MAX + 1000, 'over'), client_msg_id: 'over', id: 'over' });
    const err = await c.waitFrame((f) => f.type === 'error', 10_000, from);
    assert.equal(err.code, 'too_large', JSON.stringify(err));
    assert.equal((await c.ping()).type, 'pong');
    await sleep(50);
    assert.equal(c.maxSeq(session), head, 'the oversized say changed nothing');
  },
  { timeout: 60_000 },
);

itest(
  '--heartbeat-s 1 with 40 sockets: the 20 answering pings stay, the 20 silent ones are dropped and counted',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--heartbeat-s', '1'] });
    const live = [],
      silent = [];
    for (let i = 0; i < 20; i++) {
      live.push(await connect(srv.port, { hello: true }));
      silent.push(await connect(srv.port, { hello: true, wsOptions: { autoPong: false } }));
    }
    let pings = 0;
    for (const c of live) c.ws.on('ping', () => pings++);
    const t0 = Date.now();
    const closed = await within(Promise.all(silent.map((c) => c.closed)), 6000);
    assert.ok(closed, 'every silent socket must be closed within 6 s with --heartbeat-s 1');
    assert.ok(Date.now() - t0 >= 2000, `closed too early (${Date.now() - t0} ms): three intervals are 3 s`);
    for (const c of live) assert.ok(c.isOpen, 'a socket that answers pings is not dropped');
    assert.ok(pings >= 2 * live.length, `server pings seen by the live sockets: ${pings}`);
    assert.equal((await live[0].ping()).type, 'pong');
    const m = await httpGet(srv.port, '/metrics');
    const n = Number(/^tether_sockets_closed_heartbeat_total (\d+)$/m.exec(m.body)?.[1]);
    assert.equal(n, 20, 'each silent socket counted once');
  },
  { timeout: 30_000 },
);

// A session at rest whose sockets have every event drops its in-memory ring
// of events (issue 18): a socket attaching afterwards gets the same events
// from the store, the session's info and transcript unchanged, and the next
// turn goes on with the next seqs.
itest('a session at rest replays the same events from the store, then goes on', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const a = await connect(srv.port, { hello: true });
  const { session } = await openSession(a);
  await waitState(a, session, 'idle', 0);
  const turn = await sayAndWait(a, session, 'hello there', 'c1');
  const seen = a.sessionEvents(session);
  assert.equal(seen.at(-1).seq, turn.idle.seq);
  const info = await sessionInfo(a, session);

  const b = await connect(srv.port, { hello: true });
  const r = await b.ok({ type: 'session.attach', session, after: 0 });
  assert.equal(r.head, turn.idle.seq);
  await b.waitEvent((e) => e.session === session && e.seq === turn.idle.seq, 5000);
  assert.deepEqual(b.sessionEvents(session), seen, 'the same events, seq for seq');
  assert.deepEqual(await sessionInfo(b, session), info);

  const next = await sayAndWait(b, session, 'again', 'c2');
  assert.equal(next.user.seq, turn.idle.seq + 1);
  await a.waitEvent((e) => e.session === session && e.seq === next.idle.seq, 5000);
  assert.deepEqual(a.sessionEvents(session), b.sessionEvents(session));
});

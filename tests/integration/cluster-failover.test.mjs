// A cluster in replicated mode losing a node, or its database, mid-stream:
// three nodes on one PostgreSQL behind haproxy (cluster-lib.mjs runs
// server/haproxy.cfg), all on loopback and started by the tests. Clients
// reach the nodes through haproxy with ?session=<id>, as the web page does;
// a node that dies has its sessions served by the node haproxy picks next,
// which takes them over. Each test ends with every client's log contiguous
// and identical to the database's: no event lost, duplicated or reused.

import assert from 'node:assert/strict';
import { assertContiguous, connect, itest, openSession, sayAndWait, sleep, waitState } from './harness.mjs';
import { haproxyAvailable, pgAvailable, startCluster } from './cluster-lib.mjs';

const skip = !haproxyAvailable
  ? 'haproxy is not installed (apt-get install haproxy; .ci/deps.sh test installs it)'
  : !pgAvailable
    ? 'PostgreSQL is not installed (postgresql-15; .ci/deps.sh test installs it)'
    : false;

const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

function cluster(extra = []) {
  return startCluster({
    nodes: 3,
    args: ['--durability', 'replicated', '--lease-ms', '1000', '--echo-delay-ms', '20', ...extra],
  });
}

const dbName = (cl) => cl.databaseUrl.slice(cl.databaseUrl.lastIndexOf('/') + 1);

async function dbEvents(cl, session) {
  const rows = await cl.pg.query(`SELECT body FROM events WHERE session = '${session}' ORDER BY seq`, dbName(cl));
  return rows.map(([body]) => JSON.parse(body));
}

/** Every event the clients saw of session is the database's, and the database's log is contiguous. */
async function assertLogsMatch(cl, session, clients) {
  const db = await dbEvents(cl, session);
  assertContiguous(assert, db, 1, `database log of ${session}`);
  const bySeq = new Map(db.map((e) => [e.seq, e]));
  for (const c of clients) {
    const mine = c.events.filter((e) => e.session === session);
    for (const e of mine) assert.deepEqual(e, bySeq.get(e.seq), `${c.name} saw seq ${e.seq} unlike the database`);
  }
  return db;
}

/** Through haproxy, retried as a client does when a connection is refused (a 502/503 in a storm). */
async function connectRetrying(cl, session, name) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await cl.connect(session, { name });
    } catch (e) {
      if (attempt === 5 || ![502, 503].includes(e.statusCode)) throw e;
      await sleep(100 * attempt);
    }
  }
}

/** A session opened on node i directly, then used through haproxy (routed by its id). */
async function sessionThroughLb(cl, i, name) {
  const opener = await connect(cl.nodes[i].port, { hello: true });
  const { session } = await openSession(opener);
  opener.terminate();
  const c = await cl.connect(session, { name });
  await c.ok({ type: 'session.attach', session, after: 0 }, 15_000);
  return { session, c };
}

itest(
  'kill -9 the owner mid-stream: another node serves the session, the interrupted answer is re-run, logs match the database',
  async () => {
    const cl = await cluster();
    const { session, c: c1 } = await sessionThroughLb(cl, 0, 'first');
    await c1.ok({ type: 'say', session, text: words(60, 'k'), client_msg_id: 'k9' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'k9 ', 10_000);
    const owner = c1.welcome.node;
    await cl.kill9(owner);
    await c1.closed;
    const last = c1.maxSeq(session);

    const c2 = await cl.connect(session, { name: 'second' });
    assert.notEqual(c2.welcome.node, owner);
    const att = await c2.ok({ type: 'session.attach', session, after: last }, 15_000);
    assert.ok(att.head >= last, `head ${att.head} behind what a client saw (${last}): a seq would be reused`);
    const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end', 20_000);
    await waitState(c2, session, 'idle', end.seq, 10_000);
    await sleep(200);
    const db = await assertLogsMatch(cl, session, [c1, c2]);
    const all = [...c1.events, ...c2.events].filter((e) => e.session === session);
    assertContiguous(assert, all, 1, 'the two clients together');
    assert.equal(all.at(-1).seq, db.at(-1).seq);
    assert.equal(end.text, words(60, 'k'), 'the answer was streamed whole by the new owner');
  },
  { skip, timeout: 90_000 },
);

itest(
  'SIGSTOP the owner past its lease: another node takes over; after SIGCONT nothing the old owner appended reaches a client',
  async () => {
    const cl = await cluster();
    const { session, c: c1 } = await sessionThroughLb(cl, 0, 'via-lb');
    const owner = cl.node(c1.welcome.node);
    // A second device straight on the owner (not through haproxy, which cuts
    // its sockets when it marks the node down): it must see nothing after.
    const direct = await connect(owner.port, { hello: true, name: 'direct' });
    await direct.ok({ type: 'session.attach', session, after: 0 });
    await sayAndWait(c1, session, 'one', 'p1');
    c1.send({ type: 'say', session, text: words(30, 'p'), client_msg_id: 'p2' });
    // The second turn is streaming (and in the database) when the owner stops.
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'p2 ', 10_000);
    cl.stop(owner);
    try {
      await cl.waitStatus(owner.nodeId, 'DOWN', 10_000);
      await sleep(1200); // past the lease
      const c2 = await cl.connect(session, { name: 'taker' });
      assert.notEqual(c2.welcome.node, owner.nodeId);
      await c2.ok({ type: 'session.attach', session, after: 0 }, 15_000);
      const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end' && e.seq > 8, 20_000);
      await waitState(c2, session, 'idle', end.seq, 10_000);
      await sayAndWait(c2, session, 'three', 't1', 15_000);
      cl.cont(owner);
      assert.equal((await direct.closed).code, 1012, 'the old owner closes its sockets once fenced');
      await sleep(300);
      await assertLogsMatch(cl, session, [c1, direct, c2]);
    } finally {
      if (owner.alive) owner.proc.kill('SIGCONT');
    }
  },
  { skip, timeout: 90_000 },
);

itest(
  'a running session of a dead node is adopted by another once the lease expires, with no client asking',
  async () => {
    const cl = await cluster();
    const c1 = await connect(cl.nodes[0].port, { hello: true });
    const { session } = await openSession(c1);
    await c1.ok({ type: 'say', session, text: words(80, 'o'), client_msg_id: 'o' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'o3 ', 10_000);
    const t0 = Date.now();
    await cl.kill9(0);
    let last;
    for (;;) {
      last = (await dbEvents(cl, session)).at(-1);
      if (last.type === 'state' && last.state === 'idle') break;
      assert.ok(Date.now() - t0 < 30_000, `not finished elsewhere within 30 s: ${JSON.stringify(last)}`);
      await sleep(200);
    }
    console.log(`# adopted and finished ${Date.now() - t0} ms after the owner died (lease 1000 ms)`);
    const who = await cl.pg.value(`SELECT node FROM owners WHERE session = '${session}'`, dbName(cl));
    assert.notEqual(who, 'node1');
    await assertLogsMatch(cl, session, [c1]);
  },
  { skip, timeout: 90_000 },
);

itest(
  'PostgreSQL restarted during 20 streams: every turn finishes, every log matches the database',
  async () => {
    const cl = await cluster(['--database-timeout-ms', '3000']);
    const clients = [];
    for (let i = 0; i < 20; i++) {
      const { session, c } = await sessionThroughLb(cl, i % 3, `s${i}`);
      c.session = session;
      await c.ok({ type: 'say', session, text: words(40, `r${i}-`), client_msg_id: 'r' });
      clients.push(c);
    }
    await sleep(200);
    await cl.restartPostgres({ downMs: 1000 });
    for (const c of clients) {
      const end = await c.waitEvent((e) => e.session === c.session && e.type === 'message.end', 30_000);
      await waitState(c, c.session, 'idle', end.seq, 10_000);
    }
    await sleep(200);
    for (const c of clients) {
      const db = await assertLogsMatch(cl, c.session, [c]);
      assert.deepEqual(
        c.events.filter((e) => e.session === c.session),
        db,
      );
    }
  },
  { skip, timeout: 120_000 },
);

itest(
  '1,000 clients of a node that dies reconnect through haproxy: each session is served elsewhere, its log resumes exactly',
  async () => {
    // Clients, not leases, move these sessions: a lease of 10 s (the default)
    // so that 1,000 clients on 2 loaded cores cannot delay the victim's
    // renewals past a lease and have its running sessions adopted while the
    // test still talks to it (seen once in CI with 1 s: a 1012 in the first phase).
    const cl = await cluster(['--echo-delay-ms', '0', '--lease-ms', '10000']);
    const N = 1000;
    const victim = cl.nodes[0];
    const clients = [];
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, N - i) }, async (_, j) => {
          const c = await connect(victim.port, { hello: true, name: `k${i + j}` });
          const { session } = await openSession(c);
          c.session = session;
          await sayAndWait(c, session, `hi ${i + j}`, 'h', 20_000);
          return c;
        }),
      );
      clients.push(...batch);
    }
    await cl.kill9(victim);
    const t0 = Date.now();
    // Until haproxy marks the node down, a connection it refuses is sent to
    // any node (redispatch), and one session's clients could be split over
    // two nodes that take it from each other (each move a 1012 and a resume).
    await cl.waitStatus(victim.nodeId, 'DOWN', 10_000);
    const again = await Promise.all(
      clients.map(async (old, i) => {
        await old.closed;
        await sleep(i % 10); // as clients with jittered reconnects would
        const c = await connectRetrying(cl, old.session, `${old.name}-again`);
        assert.notEqual(c.welcome.node, victim.nodeId);
        const last = old.maxSeq(old.session);
        const att = await c.ok({ type: 'session.attach', session: old.session, after: last }, 60_000);
        assert.ok(att.head >= last);
        await sayAndWait(c, old.session, 'after', 'a', 30_000);
        return c;
      }),
    );
    console.log(`# ${N} sessions of the dead node served again, with a turn each, in ${Date.now() - t0} ms`);
    const spread = new Set(again.map((c) => c.welcome.node));
    assert.equal(spread.size, 2, 'haproxy spread them over the two live nodes');
    for (let i = 0; i < N; i += 37) await assertLogsMatch(cl, clients[i].session, [clients[i], again[i]]);
    for (const c of [...clients, ...again]) c.terminate();
  },
  { skip, timeout: 300_000 },
);

itest(
  'two devices on one session both see every event, through a takeover and the death of the owner',
  async () => {
    const cl = await cluster();
    // The first device on node 1 directly; the second through haproxy, which
    // may route it to another node: that node takes the session over and the
    // first device is sent (1012) to reconnect, through haproxy too.
    const first = await connect(cl.nodes[0].port, { hello: true, name: 'phone' });
    const { session } = await openSession(first);
    await sayAndWait(first, session, 'from the phone', 'p');
    const devices = [];
    const join = async (name, after) => {
      const c = await cl.connect(session, { name });
      await c.ok({ type: 'session.attach', session, after }, 15_000);
      devices.push(c);
      return c;
    };
    const laptop = await join('laptop', 0);
    first.terminate();
    const phone = await join('phone-again', first.maxSeq(session));
    await sayAndWait(laptop, session, 'from the laptop', 'l');
    await sayAndWait(phone, session, 'from the phone again', 'p2');
    assert.equal(phone.welcome.node, laptop.welcome.node);
    await cl.kill9(laptop.welcome.node);
    await cl.waitStatus(laptop.welcome.node, 'DOWN', 10_000);
    const laptop2 = await join('laptop-again', laptop.maxSeq(session));
    const phone2 = await join('phone-again-2', phone.maxSeq(session));
    await sayAndWait(laptop2, session, 'after the death', 'l2');
    await phone2.waitEvent((e) => e.session === session && e.type === 'user' && e.client_msg_id === 'l2', 10_000);
    await sleep(300);
    const db = await assertLogsMatch(cl, session, [first, ...devices]);
    for (const pair of [
      [first, laptop, laptop2],
      [first, phone, phone2],
    ]) {
      const seen = new Map();
      for (const c of pair) for (const e of c.events) if (e.session === session) seen.set(e.seq, e);
      const mine = [...seen.values()].sort((a, b) => a.seq - b.seq);
      assert.deepEqual(mine.map((e) => e.seq).slice(0, db.length), db.map((e) => e.seq).slice(0, mine.length));
    }
  },
  { skip, timeout: 90_000 },
);

// Replicated mode (--durability replicated): PostgreSQL is the system of
// record and the output gate (a client sees only what it committed), and a
// session is owned by one node at a time, with an epoch checked by every
// append. Two nodes on one database here; the three-node cluster behind
// haproxy is in cluster-*.test.mjs. PostgreSQL is started by the tests
// (pg-lib.mjs) on loopback and removed after.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { assertContiguous, connect, httpGet, itest, openSession, sayAndWait, sleep } from './harness.mjs';
import { runToExit } from './exit-lib.mjs';
import { destroyAllPostgres, pgAvailable, startPostgres } from './pg-lib.mjs';

const skip = pgAvailable ? false : 'PostgreSQL (postgresql-15) is not installed';
let pg;
before(async () => {
  if (!skip) pg = await startPostgres();
});
after(destroyAllPostgres);

const dbName = (url) => url.slice(url.lastIndexOf('/') + 1);

function replicated(url, node, extra = []) {
  return ['--database-url', url, '--durability', 'replicated', '--node-id', node, '--echo-delay-ms', '0', ...extra];
}

/** Every event of `session` in the database, parsed, in seq order. */
async function dbEvents(url, session) {
  const rows = await pg.query(`SELECT body FROM events WHERE session = '${session}' ORDER BY seq`, dbName(url));
  return rows.map(([body]) => JSON.parse(body));
}

async function owner(url, session) {
  const rows = await pg.query(`SELECT node, epoch FROM owners WHERE session = '${session}'`, dbName(url));
  return rows.length ? { node: rows[0][0], epoch: Number(rows[0][1]) } : null;
}

/** What the client saw of `session`, de-duplicated by seq (a resume may replay). */
function seen(clients, session) {
  const bySeq = new Map();
  for (const c of clients) for (const e of c.events) if (e.session === session) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

itest(
  'replicated mode needs a database; with one, every event a client saw is in PostgreSQL, owned at epoch 1',
  async ({ startServer }) => {
    const r = await runToExit(['--durability', 'replicated']);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /--durability replicated needs --database-url/);

    const url = await pg.newDatabase();
    const srv = await startServer({ args: replicated(url, 'n1') });
    const ready = await httpGet(srv.port, '/readyz');
    assert.equal(ready.status, 200);
    assert.match(ready.body, /durability: replicated/);
    assert.match(ready.body, /node: n1/);
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    for (let i = 0; i < 3; i++) await sayAndWait(c, session, `hello ${i}`, `m${i}`);
    const mine = c.events.filter((e) => e.session === session);
    assert.deepEqual(await dbEvents(url, session), mine);
    assert.deepEqual(await owner(url, session), { node: 'n1', epoch: 1 });
    const rec = await pg.value(`SELECT record->>'agent' FROM records WHERE session = '${session}'`, dbName(url));
    assert.equal(rec, 'echo');
  },
  { skip, timeout: 30_000 },
);

itest(
  'the output gate: while PostgreSQL is stopped no event and no ok reaches the client; all arrive once it is back',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const srv = await startServer({ args: replicated(url, 'gate', ['--database-timeout-ms', '2000']) });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    await sayAndWait(c, session, 'before', 'a');
    const before = c.events.length;
    const maxBefore = c.maxSeq(session);
    let okAt = 0;
    await pg.stop();
    let pending;
    try {
      pending = c.ok({ type: 'say', session, text: 'while stopped', client_msg_id: 'b' }, 30_000).then(() => {
        okAt = Date.now();
      });
      await sleep(1500);
      assert.equal(c.events.length, before, 'an event reached the client before PostgreSQL had it');
      assert.equal(okAt, 0, 'the ok of a say went out before PostgreSQL had it');
    } finally {
      await pg.start();
    }
    await pending;
    await c.waitEvent(
      (e) => e.session === session && e.type === 'state' && e.state === 'idle' && e.seq > maxBefore + 1,
      20_000,
    );
    const mine = c.events.filter((e) => e.session === session);
    assertContiguous(assert, mine, 1);
    assert.deepEqual(await dbEvents(url, session), mine);
  },
  { skip, timeout: 60_000 },
);

itest(
  'a session moves between two nodes: the new owner raises the epoch, the old one closes its sockets with 1012, nothing is lost or reused',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const a = await startServer({ args: replicated(url, 'a') });
    const b = await startServer({ args: replicated(url, 'b') });
    const c1 = await connect(a.port, { hello: true, name: 'on-a' });
    const { session } = await openSession(c1, 'echo');
    await sayAndWait(c1, session, 'first on a', 'a1');

    const c2 = await connect(b.port, { hello: true, name: 'on-b' });
    await c2.ok({ type: 'session.attach', session, after: 0 });
    const closed = await c1.closed;
    assert.equal(closed.code, 1012, JSON.stringify(closed));
    assert.deepEqual(await owner(url, session), { node: 'b', epoch: 2 });
    await sayAndWait(c2, session, 'then on b', 'b1');

    // Back to a: it acquires again (epoch 3) and b's client is told to go.
    const c3 = await connect(a.port, { hello: true, name: 'on-a-again' });
    await c3.ok({ type: 'session.attach', session, after: 0 });
    assert.equal((await c2.closed).code, 1012);
    await sayAndWait(c3, session, 'and on a again', 'a2');
    assert.deepEqual(await owner(url, session), { node: 'a', epoch: 3 });

    const all = seen([c1, c2, c3], session);
    assertContiguous(assert, all, 1);
    assert.deepEqual(await dbEvents(url, session), all);
    // Each client's own view agrees with the database where they overlap.
    const db = new Map((await dbEvents(url, session)).map((e) => [e.seq, e]));
    for (const c of [c1, c2, c3])
      for (const e of c.events.filter((x) => x.session === session)) assert.deepEqual(e, db.get(e.seq));
  },
  { skip, timeout: 60_000 },
);

itest(
  'a paused owner is fenced: after SIGSTOP another node takes over; after SIGCONT nothing the old owner appended reaches a client',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const a = await startServer({ args: replicated(url, 'paused', ['--lease-ms', '1000']) });
    const b = await startServer({ args: replicated(url, 'taker', ['--lease-ms', '1000']) });
    const c1 = await connect(a.port, { hello: true, name: 'on-paused' });
    const { session } = await openSession(c1, 'echo');
    await sayAndWait(c1, session, 'one', 'p1');
    // A turn the paused owner will try to finish: sent, then the process stops.
    c1.send({ type: 'say', session, text: 'two two two two two two', client_msg_id: 'p2' });
    a.proc.kill('SIGSTOP');
    try {
      await sleep(1500); // past the lease
      const c2 = await connect(b.port, { hello: true, name: 'on-taker' });
      await c2.ok({ type: 'session.attach', session, after: 0 });
      const took = await owner(url, session);
      assert.equal(took.node, 'taker');
      await sayAndWait(c2, session, 'three', 't1');
      a.proc.kill('SIGCONT');
      const code = (await c1.closed).code;
      assert.equal(code, 1012);
      const db = new Map((await dbEvents(url, session)).map((e) => [e.seq, e]));
      for (const e of c1.events.filter((x) => x.session === session))
        assert.deepEqual(
          e,
          db.get(e.seq),
          `the paused owner's client saw seq ${e.seq} that the database does not hold`,
        );
      assertContiguous(assert, seen([c2], session), 1);
      assert.deepEqual([...db.values()], seen([c2], session));
    } finally {
      a.proc.kill('SIGCONT');
    }
  },
  { skip, timeout: 60_000 },
);

itest(
  'a session deleted on one node is gone from the database and from every node',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const a = await startServer({ args: replicated(url, 'del-a') });
    const b = await startServer({ args: replicated(url, 'del-b') });
    const c1 = await connect(a.port, { hello: true });
    const { session } = await openSession(c1, 'echo');
    await sayAndWait(c1, session, 'soon gone', 'g');
    const r = await c1.ok({ type: 'session.delete', session });
    assert.equal(r.deleted, true);
    for (const table of ['owners', 'records', 'transcript'])
      assert.equal(await pg.value(`SELECT count(*) FROM ${table} WHERE session = '${session}'`, dbName(url)), '0');
    assert.equal(await pg.value(`SELECT count(*) FROM events WHERE session = '${session}'`, dbName(url)), '0');
    assert.equal(await pg.value(`SELECT count(*) FROM sessions WHERE id = '${session}'`, dbName(url)), '0');
    const c2 = await connect(b.port, { hello: true });
    const att = await c2.request({ type: 'session.attach', session, after: 0 });
    assert.equal(att.type, 'error');
    assert.equal(att.code, 'not_found');
  },
  { skip, timeout: 30_000 },
);

itest(
  "session.list on any node shows the user's sessions of the whole cluster, paged",
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const a = await startServer({ args: replicated(url, 'list-a') });
    const b = await startServer({ args: replicated(url, 'list-b') });
    const ca = await connect(a.port, { hello: true });
    const cb = await connect(b.port, { hello: true });
    const ids = [];
    for (const c of [ca, ca, cb]) {
      const { session } = await openSession(c, 'echo');
      await sayAndWait(c, session, `title ${ids.length}`, 't');
      ids.push(session);
    }
    for (const c of [ca, cb]) {
      const r = await c.ok({ type: 'session.list' });
      assert.deepEqual(r.sessions.map((s) => s.session).sort(), [...ids].sort());
      const first = await c.ok({ type: 'session.list', limit: 2 });
      assert.equal(first.sessions.length, 2);
      const rest = await c.ok({ type: 'session.list', limit: 2, after: first.next });
      assert.deepEqual(
        [...first.sessions, ...rest.sessions].map((s) => s.session),
        [...ids].sort(),
      );
      assert.ok(!rest.next, `no page after the last: ${rest.next}`);
    }
  },
  { skip, timeout: 30_000 },
);

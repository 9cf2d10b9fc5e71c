// A cluster in replicated mode losing a node, or its database, mid-stream:
// three nodes on one PostgreSQL (started by the tests on loopback). Each
// test ends with every client's log contiguous and identical to the
// database's: no event lost, duplicated or reused.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { assertContiguous, connect, itest, openSession, sayAndWait, sleep, waitState } from './harness.mjs';
import { destroyAllPostgres, pgAvailable, startPostgres } from './pg-lib.mjs';

const skip = pgAvailable ? false : 'PostgreSQL (postgresql-15) is not installed';
let pg;
before(async () => {
  if (!skip) pg = await startPostgres();
});
after(destroyAllPostgres);

const dbName = (url) => url.slice(url.lastIndexOf('/') + 1);
const words = (n, tag = 'w') => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

async function startNodes(startServer, url, n, extra = []) {
  const nodes = [];
  for (let i = 0; i < n; i++) {
    const args = ['--database-url', url, '--durability', 'replicated', '--node-id', `n${i + 1}`];
    nodes.push(await startServer({ args: [...args, '--lease-ms', '1000', '--echo-delay-ms', '20', ...extra] }));
  }
  return nodes;
}

async function dbEvents(url, session) {
  const rows = await pg.query(`SELECT body FROM events WHERE session = '${session}' ORDER BY seq`, dbName(url));
  return rows.map(([body]) => JSON.parse(body));
}

/** Every event any of clients saw of session agrees with the database, and together they are contiguous. */
async function assertLogsMatch(url, session, clients) {
  const db = await dbEvents(url, session);
  assertContiguous(assert, db, 1, `database log of ${session}`);
  const bySeq = new Map(db.map((e) => [e.seq, e]));
  for (const c of clients) {
    const mine = c.events.filter((e) => e.session === session);
    for (const e of mine) assert.deepEqual(e, bySeq.get(e.seq), `${c.name} saw seq ${e.seq} unlike the database`);
  }
  return db;
}

itest(
  'kill -9 the owner mid-stream: another node serves the session, the interrupted answer is re-run, logs match the database',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const [n1, n2] = await startNodes(startServer, url, 3);
    const c1 = await connect(n1.port, { hello: true, name: 'on-n1' });
    const { session } = await openSession(c1);
    await c1.ok({ type: 'say', session, text: words(60, 'k'), client_msg_id: 'k9' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'k9 ', 10_000);
    await n1.kill9();
    await c1.closed;
    const last = c1.maxSeq(session);

    const c2 = await connect(n2.port, { hello: true, name: 'on-n2' });
    const att = await c2.ok({ type: 'session.attach', session, after: last }, 15_000);
    assert.ok(att.head >= last, `head ${att.head} behind what a client saw (${last}): a seq would be reused`);
    const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end', 20_000);
    await waitState(c2, session, 'idle', end.seq, 10_000);
    await sleep(200);
    const db = await assertLogsMatch(url, session, [c1, c2]);
    const all = [...c1.events, ...c2.events].filter((e) => e.session === session);
    assertContiguous(assert, all, 1, 'the two clients together');
    assert.equal(all.at(-1).seq, db.at(-1).seq);
    assert.equal(end.text, words(60, 'k'), 'the answer was streamed whole by the new owner');
  },
  { skip, timeout: 90_000 },
);

itest(
  'a running session of a dead node is adopted by another once the lease expires, with no client asking',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const [n1] = await startNodes(startServer, url, 2);
    const c1 = await connect(n1.port, { hello: true });
    const { session } = await openSession(c1);
    await c1.ok({ type: 'say', session, text: words(80, 'o'), client_msg_id: 'o' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text === 'o3 ', 10_000);
    const t0 = Date.now();
    await n1.kill9();
    let last;
    for (;;) {
      last = (await dbEvents(url, session)).at(-1);
      if (last.type === 'state' && last.state === 'idle') break;
      assert.ok(Date.now() - t0 < 30_000, `not finished elsewhere within 30 s: ${JSON.stringify(last)}`);
      await sleep(200);
    }
    const who = await pg.value(`SELECT node FROM owners WHERE session = '${session}'`, dbName(url));
    assert.equal(who, 'n2');
    await assertLogsMatch(url, session, [c1]);
  },
  { skip, timeout: 90_000 },
);

itest(
  'PostgreSQL restarted during 20 streams on two nodes: every turn finishes, every log matches the database',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const nodes = await startNodes(startServer, url, 2, ['--database-timeout-ms', '3000']);
    const clients = [];
    for (let i = 0; i < 20; i++) {
      const c = await connect(nodes[i % 2].port, { hello: true, name: `s${i}` });
      const { session } = await openSession(c);
      c.session = session;
      await c.ok({ type: 'say', session, text: words(40, `r${i}-`), client_msg_id: 'r' });
      clients.push(c);
    }
    await sleep(200);
    await pg.stop();
    await sleep(1000);
    await pg.start();
    for (const c of clients) {
      const end = await c.waitEvent((e) => e.session === c.session && e.type === 'message.end', 30_000);
      await waitState(c, c.session, 'idle', end.seq, 10_000);
    }
    await sleep(200);
    for (const c of clients) {
      const db = await assertLogsMatch(url, c.session, [c]);
      assert.deepEqual(
        c.events.filter((e) => e.session === c.session),
        db,
      );
    }
  },
  { skip, timeout: 120_000 },
);

itest(
  '1,000 clients reconnect after their node dies: each session is served elsewhere, its log resumes exactly',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const [n1, n2, n3] = await startNodes(startServer, url, 3, ['--echo-delay-ms', '0']);
    const N = 1000;
    const clients = [];
    for (let i = 0; i < N; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, N - i) }, async (_, j) => {
          const c = await connect(n1.port, { hello: true, name: `k${i + j}` });
          const { session } = await openSession(c);
          c.session = session;
          await sayAndWait(c, session, `hi ${i + j}`, 'h', 20_000);
          return c;
        }),
      );
      clients.push(...batch);
    }
    await n1.kill9();
    const t0 = Date.now();
    const again = await Promise.all(
      clients.map(async (old, i) => {
        const c = await connect((i % 2 ? n2 : n3).port, { hello: true, name: `${old.name}-again` });
        const last = old.maxSeq(old.session);
        const att = await c.ok({ type: 'session.attach', session: old.session, after: last }, 60_000);
        assert.ok(att.head >= last);
        await sayAndWait(c, old.session, 'after', 'a', 30_000);
        c.session = old.session;
        return c;
      }),
    );
    const ms = Date.now() - t0;
    console.log(`# ${N} sessions served again by two nodes in ${ms} ms`);
    for (let i = 0; i < N; i += 97) await assertLogsMatch(url, clients[i].session, [clients[i], again[i]]);
    for (const c of [...clients, ...again]) c.terminate();
  },
  { skip, timeout: 240_000 },
);

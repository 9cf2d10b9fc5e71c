// Archive mode (--database-url, --durability local): every committed event
// reaches PostgreSQL's events table, queryable with SQL, idempotent by
// (session, seq), resumed after a restart, and a database that goes away is
// a visible state that never stalls a socket. PostgreSQL is started by the
// tests (pg-lib.mjs) on loopback and removed after.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { connect, freePort, httpGet, itest, openSession, sayAndWait, sleep } from './harness.mjs';
import { runToExit } from './exit-lib.mjs';
import { destroyAllPostgres, pgAvailable, startPostgres } from './pg-lib.mjs';

const skip = pgAvailable ? false : 'PostgreSQL (postgresql-15) is not installed';
let pg;
before(async () => {
  if (!skip) pg = await startPostgres();
});
after(destroyAllPostgres);

const dbName = (url) => url.slice(url.lastIndexOf('/') + 1);

async function readyz(srv) {
  const r = await httpGet(srv.port, '/readyz');
  const detail = Object.fromEntries(
    r.body
      .split('\n')
      .filter((l) => l.includes(': '))
      .map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)]),
  );
  return { status: r.status, first: r.body.split('\n')[0], ...detail };
}

async function metric(srv, name) {
  const r = await httpGet(srv.port, '/metrics');
  const m = r.body.match(new RegExp(`^${name} ([0-9.]+)$`, 'm'));
  return m ? Number(m[1]) : null;
}

async function waitArchived(srv, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await readyz(srv);
    if (last.database === 'up' && last.archive_lag_events === '0') return last;
    await sleep(100);
  }
  throw new Error(`archive lag did not drain: ${JSON.stringify(last)}`);
}

/** Every event of `session` in the database, as [seq, type, body]. */
async function dbEvents(url, session) {
  const rows = await pg.query(
    `SELECT seq, type, body FROM events WHERE session = '${session}' ORDER BY seq`,
    dbName(url),
  );
  return rows.map(([seq, type, body]) => ({ seq: Number(seq), type, body: JSON.parse(body) }));
}

itest(
  'a wrong or unreachable database URL stops the start-up with a clear message',
  async () => {
    let r = await runToExit([
      '--port',
      String(await freePort()),
      '--database-url',
      'postgresql://h/db?no_such_option=1',
    ]);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /--database-url is not a PostgreSQL connection string/);

    const closed = await freePort(); // nothing listens there
    r = await runToExit([
      '--port',
      String(await freePort()),
      '--database-url',
      `postgresql://tether@127.0.0.1:${closed}/x`,
    ]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /cannot use the database \(--database-url\); refusing to start/);
    assert.match(r.output, /Connection refused/);
    assert.doesNotMatch(r.output, /"msg":"listening"/);

    r = await runToExit([
      '--port',
      String(await freePort()),
      '--database-url',
      `postgresql://tether@127.0.0.1:${pg.port}/nope`,
    ]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /database \\"nope\\" does not exist|database "nope" does not exist/);

    // A server that accepts and never answers: the attempt's timeout (5 s) ends it.
    const mute = net.createServer(() => {});
    await new Promise((res) => mute.listen(0, '127.0.0.1', res));
    try {
      r = await runToExit([
        '--port',
        String(await freePort()),
        '--database-url',
        `postgresql://t@127.0.0.1:${mute.address().port}/x`,
      ]);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, /connection attempt timed out/);
      assert.ok(r.ms < 9000, `took ${r.ms} ms`);
    } finally {
      mute.close();
    }
  },
  { skip, timeout: 40_000 },
);

itest(
  'committed events are archived, queryable with SQL, identical to what the client saw',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const srv = await startServer({ args: ['--echo-delay-ms', '0'], env: { TETHER_DATABASE_URL: url } });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    for (let i = 0; i < 5; i++) await sayAndWait(c, session, `hello ${i} "quoted" \\ back`, `m${i}`);
    await waitArchived(srv);
    const seen = c.events.filter((e) => e.session === session);
    const rows = await dbEvents(url, session);
    assert.deepEqual(
      rows.map((r) => r.seq),
      seen.map((e) => e.seq),
    );
    for (let i = 0; i < rows.length; i++) {
      assert.deepEqual(rows[i].body, seen[i], `event ${rows[i].seq}`);
      assert.equal(rows[i].type, seen[i].type);
    }
    const s = await pg.query(
      `SELECT tenant, user_name, agent, archived_seq FROM sessions WHERE id = '${session}'`,
      dbName(url),
    );
    assert.deepEqual(s, [['local', 'local', 'echo', String(seen.at(-1).seq)]]);
    assert.equal(await pg.value('SELECT max(version) FROM schema_version', dbName(url)), '4'); // events, replicated mode's tables, usage, retrieval
    assert.equal(await metric(srv, 'tether_db_up'), 1);
    assert.equal(await metric(srv, 'tether_archive_events_total'), rows.length);
    const texts = await pg.query(
      `SELECT body->>'text' FROM events WHERE session = '${session}' AND type = 'user' ORDER BY seq`,
      dbName(url),
    );
    assert.equal(texts[0][0], 'hello 0 "quoted" \\ back');
  },
  { skip, timeout: 30_000 },
);

itest(
  'events committed while the database was away are archived after a restart, once (idempotent)',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const srv = await startServer({ args: ['--database-url', url, '--echo-delay-ms', '0'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    await sayAndWait(c, session, 'before', 'a');
    await waitArchived(srv);
    await pg.stop();
    for (let i = 0; i < 3; i++) await sayAndWait(c, session, `while away ${i}`, `b${i}`);
    const lag = await readyz(srv);
    assert.ok(Number(lag.archive_lag_events) > 0, JSON.stringify(lag));
    assert.equal(lag.status, 200); // LMDB serves on
    c.terminate();
    await srv.stop();
    // The same store twice: the copy re-sends what the first already archived.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-it-copy-'));
    fs.cpSync(srv.dataDir, copy, { recursive: true });
    fs.rmSync(path.join(copy, 'tether.lock'), { force: true });
    try {
      await pg.start();
      await srv.restart();
      await waitArchived(srv);
      const want = c.events.filter((e) => e.session === session).map((e) => e.seq);
      assert.deepEqual(
        (await dbEvents(url, session)).map((r) => r.seq),
        want,
      );
      await srv.stop();
      const twin = await startServer({ dataDir: copy, args: ['--database-url', url] });
      await waitArchived(twin);
      assert.equal(await metric(twin, 'tether_archive_events_total'), 0);
      assert.ok((await metric(twin, 'tether_archive_duplicates_total')) >= 3 * 4);
      assert.equal(
        Number(await pg.value(`SELECT count(*) FROM events WHERE session = '${session}'`, dbName(url))),
        want.length,
      );
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  },
  { skip, timeout: 60_000 },
);

itest(
  'PostgreSQL stopped under load: sockets keep streaming, the lag grows, then drains to zero',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const srv = await startServer({ args: ['--database-url', url, '--echo-delay-ms', '1'] });
    const clients = [];
    for (let i = 0; i < 4; i++) {
      const c = await connect(srv.port, { hello: true });
      const { session } = await openSession(c, 'echo');
      clients.push({ c, session });
    }
    let stop = false;
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const loops = clients.map(async ({ c, session }, k) => {
      for (let i = 0; !stop; i++) await sayAndWait(c, session, words, `k${k}-${i}`, 20_000);
    });
    await sleep(500);
    await pg.stop();
    const countAt = () => clients.reduce((n, { c }) => n + c.events.length, 0);
    const atStop = countAt();
    await sleep(1500);
    const down = await readyz(srv);
    assert.notEqual(down.database, 'up', JSON.stringify(down));
    assert.equal(down.status, 200);
    await sleep(2500);
    assert.ok(countAt() > atStop + 100, `sockets stalled: ${atStop} -> ${countAt()}`);
    const lagged = await readyz(srv);
    assert.ok(Number(lagged.archive_lag_events) > 100, JSON.stringify(lagged));
    assert.ok(Number(lagged.archive_lag_seconds) >= 3, JSON.stringify(lagged));
    assert.equal(await metric(srv, 'tether_db_up'), 0);
    await pg.start();
    await sleep(1000);
    stop = true;
    await Promise.all(loops);
    await waitArchived(srv, 20_000);
    assert.ok(srv.alive);
    for (const { c, session } of clients) {
      const seen = c.events.filter((e) => e.session === session).map((e) => e.seq);
      assert.deepEqual(
        (await dbEvents(url, session)).map((r) => r.seq),
        seen,
      );
    }
    assert.ok((await metric(srv, 'tether_db_reconnects_total')) >= 1);
    assert.match(srv.output, /"msg":"database","from":"up","to":"down"/);
  },
  { skip, timeout: 60_000 },
);

itest(
  'a database that stops answering (its backend SIGSTOPped) times out, reconnects, and the archive completes',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const app = 'tether_it_stopped';
    const srv = await startServer({
      args: [
        '--database-url',
        `${url}?application_name=${app}`,
        '--database-timeout-ms',
        '500',
        '--echo-delay-ms',
        '0',
      ],
    });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    await sayAndWait(c, session, 'first', 'a');
    await waitArchived(srv);
    // every backend of the server: the archive's, the usage archive's and retrieval's connections
    const pids = (await pg.query(`SELECT pid FROM pg_stat_activity WHERE application_name = '${app}'`)).map((r) =>
      Number(r[0]),
    );
    assert.equal(pids.length, 3, JSON.stringify(pids));
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    try {
      for (let i = 0; i < 3; i++) await sayAndWait(c, session, `while stopped ${i}`, `b${i}`);
      const t0 = Date.now();
      while (!/"error":"query timed out"/.test(srv.output) && Date.now() - t0 < 5000) await sleep(50);
      assert.match(srv.output, /"msg":"database","from":"up","to":"down","error":"query timed out"/);
      assert.equal((await readyz(srv)).status, 200);
      await sayAndWait(c, session, 'still served', 'c'); // the socket never waited for the database
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    await waitArchived(srv, 20_000);
    assert.deepEqual(
      (await dbEvents(url, session)).map((r) => r.seq),
      c.events.filter((e) => e.session === session).map((e) => e.seq),
    );
    assert.ok((await metric(srv, 'tether_db_query_failures_total')) >= 1);
  },
  { skip, timeout: 40_000 },
);

itest('without --database-url: no database, no archive, /readyz and /metrics as before', async ({ startServer }) => {
  const srv = await startServer();
  const r = await httpGet(srv.port, '/readyz');
  assert.match(r.body, /^ready\nnode: [A-Za-z0-9._-]{1,64}\n$/);
  const m = await httpGet(srv.port, '/metrics');
  assert.doesNotMatch(m.body, /tether_db_|tether_archive_/);
  assert.doesNotMatch(srv.output, /"msg":"database"/);
});

itest(
  'a batch the database refuses is logged, shown in /readyz, counted, and sent again until it is taken',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const srv = await startServer({ args: ['--database-url', url, '--echo-delay-ms', '0'] });
    const db = dbName(url);
    await pg.query(
      `CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'archive refused by the test'; END $$ LANGUAGE plpgsql;
       CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse();`,
      db,
    );
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo');
    await sayAndWait(c, session, 'refused at first', 'a');
    const t0 = Date.now();
    while (!/"msg":"database refused a statement"/.test(srv.output) && Date.now() - t0 < 5000) await sleep(50);
    assert.match(srv.output, /"msg":"database refused a statement","error":"ERROR: {2}archive refused by the test/);
    const r = await readyz(srv);
    assert.equal(r.status, 200);
    assert.equal(r.database, 'up');
    assert.match(r.database_error, /archive refused by the test/);
    assert.ok(Number(r.archive_lag_events) > 0);
    assert.ok((await metric(srv, 'tether_archive_batch_failures_total')) >= 1);
    await pg.query('DROP TRIGGER refuse ON events', db);
    await waitArchived(srv);
    assert.deepEqual(
      (await dbEvents(url, session)).map((x) => x.seq),
      c.events.filter((e) => e.session === session).map((e) => e.seq),
    );
  },
  { skip, timeout: 30_000 },
);

itest(
  'kill -9 with events not yet archived: the restarted server archives them all',
  async ({ startServer }) => {
    const url = await pg.newDatabase();
    const srv = await startServer({ args: ['--database-url', url, '--echo-delay-ms', '0'] });
    const c = await connect(srv.port, { hello: true });
    const sessions = [];
    for (let k = 0; k < 3; k++) sessions.push((await openSession(c, 'echo')).session);
    await waitArchived(srv);
    await pg.stop();
    for (const [k, s] of sessions.entries()) await sayAndWait(c, s, `pending ${k}`, `p${k}`);
    await srv.kill9();
    await pg.start();
    await srv.restart();
    await waitArchived(srv);
    for (const s of sessions)
      assert.deepEqual(
        (await dbEvents(url, s)).map((x) => x.seq),
        c.events.filter((e) => e.session === s).map((e) => e.seq),
      );
  },
  { skip, timeout: 40_000 },
);

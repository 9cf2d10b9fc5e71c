// Commit safety (issue 10): text cut in the middle of a UTF-8 character, a
// store that is full, and users with very many sessions must not stop the
// group commit, hang clients or make a user's listing impossible.
import assert from 'node:assert/strict';
import {
  connect,
  fakeTarget,
  httpGet,
  httpRequest,
  itest,
  mintJwt,
  openSession,
  sayAndWait,
  sleep,
  waitState,
  within,
  writeRoutesFile,
} from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const SECRET = 'commit-safety-secret-0123456789abcdef0123';
const AUTH = ['--jwt-secret', SECRET, '--api-key', 'key-one:t1', '--api-key', 'key-two:t2'];
const now = () => Math.floor(Date.now() / 1000);
const token = (sub, tenant) => mintJwt(SECRET, { sub, tenant, exp: now() + 600 });
// 79 ASCII bytes, then a 2-byte character straddling byte 80 (the title limit).
const POISON = `${'a'.repeat(79)}é`;

/** The promise's value; fails the test when it takes longer than ms (a hang). */
async function answered(promise, ms, what) {
  const v = await within(promise, ms);
  assert.ok(v !== null, `${what}: no answer within ${ms} ms`);
  return v;
}

async function user(srv, sub, tenant = 't1') {
  return connect(srv.port, { token: token(sub, tenant), name: `${sub}@${tenant}` });
}

async function listAll(c, limit) {
  const all = [];
  let after;
  let pages = 0;
  for (;;) {
    const r = await c.ok({ type: 'session.list', ...(limit ? { limit } : {}), ...(after ? { after } : {}) });
    assert.ok(Array.isArray(r.sessions), JSON.stringify(r));
    all.push(...r.sessions);
    pages++;
    if (r.next === null) return { all, pages };
    assert.equal(typeof r.next, 'string', JSON.stringify(r));
    after = r.next;
  }
}

itest(
  'a title cut at byte 80 inside a character: opens, commits, and nobody else is stopped; restart keeps everything',
  async ({ startServer }) => {
    const srv = await startServer({ args: [...AUTH, '--echo-delay-ms', '0'] });
    const bob = await user(srv, 'bob');
    const mallory = await user(srv, 'mallory');
    const b = await openSession(bob);
    await sayAndWait(bob, b.session, 'before', 'b1');

    const poisoned = await answered(
      mallory.request({ type: 'session.open', agent: 'echo', metadata: { title: POISON } }),
      3000,
      'poisoned open',
    );
    assert.equal(poisoned.type, 'ok', JSON.stringify(poisoned));
    // The title from the first user turn goes through the same cut.
    const m2 = await openSession(mallory);
    await answered(sayAndWait(mallory, m2.session, `${POISON} and more`, 'm1'), 5000, 'poisoned first turn');

    // Everyone else keeps committing.
    await answered(sayAndWait(bob, b.session, 'after', 'b2'), 5000, "another user's turn");
    assert.equal((await httpGet(srv.port, '/readyz')).status, 200);
    const { all } = await answered(listAll(mallory), 3000, 'session.list');
    const titles = Object.fromEntries(all.map((s) => [s.session, s.title]));
    assert.equal(titles[poisoned.session], 'a'.repeat(79));
    assert.equal(titles[m2.session], 'a'.repeat(79));

    await bob.close();
    await mallory.close();
    await srv.stop();
    await srv.restart();
    const bob2 = await user(srv, 'bob');
    const mallory2 = await user(srv, 'mallory');
    const att = await bob2.ok({ type: 'session.attach', session: b.session, after: 0 });
    await bob2.waitEvent((e) => e.session === b.session && e.seq === att.head);
    const said = bob2
      .sessionEvents(b.session)
      .filter((e) => e.type === 'user')
      .map((e) => e.text);
    assert.deepEqual(said, ['before', 'after']);
    const after = (await listAll(mallory2)).all.map((s) => s.session).sort();
    assert.deepEqual(after, [poisoned.session, m2.session].sort());
  },
);

itest(
  'an error message naming a model cut inside a character is still sent (gateway, 404)',
  async ({ startServer }) => {
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'cs', { region: 'a' })] } });
    // Aliases only: a name that is not one is refused, naming it.
    const srv = await startServer({
      args: ['--routes', routes, '--gateway-models', ''],
      env: { FAKE_KEY: 'fake-key' },
    });
    const model = `${'m'.repeat(63)}é`;
    const r = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
      body: { model, messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(r.status, 404, r.body);
    const body = JSON.parse(r.body);
    assert.ok(body.error.message.includes(`\`${'m'.repeat(63)}\``), body.error.message);
  },
);

itest(
  'a full store: the say is answered unavailable at once, reads keep working, others are answered, a larger map recovers',
  async ({ startServer }) => {
    const args = [...AUTH, '--echo-delay-ms', '0', '--map-size-mb', '1'];
    const srv = await startServer({ args: [...args, '--map-size-max-mb', '1'] });
    const alice = await user(srv, 'alice');
    const bob = await user(srv, 'bob');
    const a = await openSession(alice);
    const b = await openSession(bob);
    await waitState(alice, a.session, 'idle');
    const big = 'x'.repeat(120_000);
    const acked = [];
    let refused = null;
    for (let i = 0; i < 40 && !refused; i++) {
      const t0 = Date.now();
      const r = await answered(
        alice.request({ type: 'say', session: a.session, text: `${i}${big}`, client_msg_id: `a${i}` }),
        3000,
        `say a${i}`,
      );
      if (r.type === 'ok') {
        acked.push(`a${i}`);
        await answered(
          alice.waitFrame(
            (f) =>
              (f.type === 'state' &&
                f.session === a.session &&
                f.state === 'idle' &&
                f.seq > 0 &&
                alice.sessionEvents(a.session).some((e) => e.client_msg_id === `a${i}`)) ||
              (f.type === 'error' && !f.re && f.session === a.session),
            3000,
            0,
          ),
          3500,
          `turn a${i}`,
        );
        await sleep(20);
      } else {
        refused = { r, ms: Date.now() - t0 };
      }
    }
    assert.ok(refused, 'the store never filled');
    assert.equal(refused.r.code, 'unavailable', JSON.stringify(refused.r));
    assert.equal(refused.r.retryable, true);
    assert.ok(refused.ms < 2000, `answered after ${refused.ms} ms`);

    // Another user is answered (ok if it still fits, else unavailable), never left waiting.
    const other = await answered(
      bob.request({ type: 'say', session: b.session, text: big, client_msg_id: 'b1' }),
      3000,
      "another user's say",
    );
    assert.ok(other.type === 'ok' || other.code === 'unavailable', JSON.stringify(other));
    // Reads: the listing, and a replay of what was committed.
    const listed = await answered(alice.ok({ type: 'session.list' }), 3000, 'session.list');
    assert.ok(listed.sessions.some((s) => s.session === a.session));
    const reader = await user(srv, 'alice');
    const att = await answered(reader.ok({ type: 'session.attach', session: a.session, after: 0 }), 3000, 'attach');
    await answered(
      reader.waitEvent((e) => e.session === a.session && e.seq === att.head),
      3000,
      'replay',
    );
    const metrics = (await httpGet(srv.port, '/metrics')).body;
    assert.match(metrics, /tether_commit_store_full_total [1-9]/);

    // Space returns: the operator raises the map's maximum and restarts.
    await alice.close();
    await bob.close();
    await reader.close();
    await srv.stop();
    const srv2 = await startServer({ dataDir: srv.dataDir, args: [...args, '--map-size-max-mb', '16'] });
    const alice2 = await user(srv2, 'alice');
    const att2 = await alice2.ok({ type: 'session.attach', session: a.session, after: 0 });
    await alice2.waitEvent((e) => e.session === a.session && e.seq === att2.head, 5000);
    const kept = alice2
      .sessionEvents(a.session)
      .filter((e) => e.type === 'user')
      .map((e) => e.client_msg_id);
    for (const id of acked) assert.ok(kept.includes(id), `acknowledged ${id} was lost`);
    const s2 = await openSession(alice2);
    await answered(sayAndWait(alice2, s2.session, 'space again', 'r1'), 5000, 'say after recovery');
  },
);

itest(
  'sessions per user are capped per tenant and user; session.list pages under the output cap',
  async ({ startServer }) => {
    const srv = await startServer({ args: [...AUTH, '--max-sessions-per-user', '20', '--max-output-bytes', '4096'] });
    const a1 = await user(srv, 'alice', 't1');
    const a2 = await user(srv, 'alice', 't2');
    const mine = [];
    for (let i = 0; i < 20; i++)
      mine.push((await openSession(a1, 'echo', { metadata: { title: `${'é'.repeat(40)}${i}` } })).session);
    const over = await a1.request({ type: 'session.open', agent: 'echo' });
    assert.equal(over.type, 'error', JSON.stringify(over));
    assert.equal(over.code, 'limit_exceeded');
    assert.equal(over.retryable, false);
    assert.match(over.message, /max-sessions-per-user/);
    // The same user name in another tenant has a count of its own, and sees none of t1's.
    const theirs = [];
    for (let i = 0; i < 3; i++) theirs.push((await openSession(a2)).session);
    assert.deepEqual((await listAll(a2)).all.map((s) => s.session).sort(), theirs.sort());

    for (const limit of [undefined, 1, 3]) {
      const { all, pages } = await listAll(a1, limit);
      assert.deepEqual(all.map((s) => s.session).sort(), mine.sort(), `limit ${limit}`);
      if (limit) assert.equal(pages, Math.ceil(20 / limit));
    }
    // 20 summaries with 80-byte titles (about 4.4 KB) do not fit in half of
    // 4096 bytes: a page is cut by size, and the socket is never dropped.
    const first = await a1.ok({ type: 'session.list' });
    assert.ok(first.sessions.length < 20 && typeof first.next === 'string', JSON.stringify(first).slice(0, 200));
    assert.ok(a1.isOpen);
    for (const bad of [{ limit: 0 }, { limit: 201 }, { limit: 'x' }, { after: 5 }]) {
      const r = await a1.request({ type: 'session.list', ...bad }, undefined, { invalid: true });
      assert.equal(r.code, 'bad_request', JSON.stringify(bad));
    }
  },
);

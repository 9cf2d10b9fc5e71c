// session.rename and session.delete: ownership (tenant and user), bad input
// refused, other devices told, the store's data removed, the per-user cap freed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { startFakeProvider } from '../fake-provider/server.mjs';
import {
  connect,
  fakeTarget,
  itest,
  mintViaApi,
  openSession,
  sayAndWait,
  sessionInfo,
  sleep,
  writeRoutesFile,
} from './harness.mjs';

/** Every key and value of the stopped server's LMDB store, printable. */
function storeDump(dataDir) {
  return execFileSync('mdb_dump', ['-a', '-p', dataDir], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

itest(
  'rename: the title changes, survives a restart; bad titles are refused and change nothing',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'echo', { metadata: { title: 'first' } });
    const r = await c.ok({ type: 'session.rename', session, title: 'Trip to Lisbon' });
    assert.equal(r.title, 'Trip to Lisbon');
    assert.equal((await sessionInfo(c, session)).title, 'Trip to Lisbon');

    for (const [title, why] of [
      ['', /must not be empty/],
      ['   ', /blank/],
      ['x'.repeat(81), /too long/],
      ['bad\u0007bell', /control/],
      ['evil\u202Eflip', /bidi|invisible/],
      [42, /must be a string/],
    ]) {
      const e = await c.request({ type: 'session.rename', session, title }, undefined, { invalid: true });
      assert.equal(e.type, 'error', JSON.stringify(e));
      assert.equal(e.code, 'bad_request', JSON.stringify(e));
      assert.match(e.message, why);
    }
    const nf = await c.request({ type: 'session.rename', session: 's_nope', title: 'x' });
    assert.equal(nf.code, 'not_found');
    // A first user turn no longer replaces a title given by rename.
    await sayAndWait(c, session, 'hello there', 'm1');
    assert.equal((await sessionInfo(c, session)).title, 'Trip to Lisbon');

    await srv.stop();
    await srv.restart();
    const c2 = await connect(srv.port, { hello: true });
    assert.equal((await sessionInfo(c2, session)).title, 'Trip to Lisbon');
  },
);

itest(
  'delete: other devices are told and detached, the data leaves the store, the cap is freed',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1', '--max-sessions-per-user', '2'] });
    const phone = await connect(srv.port, { hello: true, name: 'phone' });
    const laptop = await connect(srv.port, { hello: true, name: 'laptop' });
    const { session } = await openSession(phone);
    const keep = (await openSession(phone)).session;
    await sayAndWait(phone, session, 'some words to store', 'm1');
    await laptop.ok({ type: 'session.attach', session, after: 0 });
    const full = await phone.request({ type: 'session.open', agent: 'echo' });
    assert.equal(full.code, 'limit_exceeded');

    const r = await phone.ok({ type: 'session.delete', session });
    assert.equal(r.deleted, true);
    const told = await laptop.waitFrame((f) => f.type === 'session.deleted');
    assert.equal(told.session, session);
    assert.ok(laptop.isOpen, 'the other device stays connected');
    // Nothing of it is left: not listed, not attachable, a second delete is not_found.
    assert.equal(await sessionInfo(phone, session), undefined);
    assert.equal((await laptop.request({ type: 'session.attach', session, after: 0 })).code, 'not_found');
    assert.equal((await phone.request({ type: 'session.delete', session })).code, 'not_found');
    assert.equal((await phone.request({ type: 'say', session, text: 'x' })).code, 'not_found');
    // The cap counts it no more.
    const again = await openSession(phone);
    assert.notEqual(again.session, session);

    await srv.stop();
    const dump = storeDump(srv.dataDir);
    assert.ok(dump.includes(keep), 'the dump shows the sessions that remain');
    assert.ok(!dump.includes(session), 'no key or value of the deleted session is left in the store');
    assert.ok(!dump.includes('some words to store'), 'its transcript and events are gone');
    await srv.restart();
    const c = await connect(srv.port, { hello: true });
    assert.equal((await c.request({ type: 'session.attach', session, after: 0 })).code, 'not_found');
  },
);

itest('delete of a running session created in the same pass', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '200'] });
  const c = await connect(srv.port, { hello: true });
  // Sent back to back: the delete may find the session not yet committed.
  c.send({ type: 'session.open', agent: 'echo', id: 'o1' });
  const opened = await c.waitFrame((f) => f.re === 'o1');
  const { session } = opened;
  c.send({ type: 'say', session, text: 'slow reply', id: 's1' });
  const del = await c.request({ type: 'session.delete', session });
  assert.equal(del.type, 'ok', JSON.stringify(del));
  await new Promise((r) => setTimeout(r, 400)); // the echo timer would have fired
  assert.equal(await sessionInfo(c, session), undefined);
  assert.equal((await c.ping()).type, 'pong');
});

itest('a user of another tenant with the same name may neither rename nor delete', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'key-a:t1', '--api-key', 'key-b:t2'] });
  const alice1 = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-a', 'alice'), name: 'alice@t1' });
  const alice2 = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-b', 'alice'), name: 'alice@t2' });
  const { session } = await openSession(alice1, 'echo', { metadata: { title: 'mine' } });
  for (const m of [
    { type: 'session.delete', session },
    { type: 'session.rename', session, title: 'taken' },
  ]) {
    const e = await alice2.request(m);
    assert.equal(e.code, 'forbidden', `${m.type}: ${JSON.stringify(e)}`);
  }
  const info = await sessionInfo(alice1, session);
  assert.equal(info.title, 'mine', 'unchanged');
  assert.ok(alice2.isOpen);
});

itest(
  'delete during a model call: the call is aborted, nothing is written after, the server stops cleanly',
  async ({ startServer }) => {
    const fp = await startFakeProvider();
    try {
      const P = 'del-mid';
      fp.script({
        text: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '),
        token_delay_ms: 50,
        match: { prefix: P },
      });
      const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
      const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'k' } });
      const c = await connect(srv.port, { hello: true });
      const { session } = await openSession(c, 'chat', { input: {} });
      await c.ok({ type: 'say', session, text: 'talk slowly', client_msg_id: 'c1' });
      await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.text.includes('w3'));
      assert.equal((await c.ok({ type: 'session.delete', session })).deleted, true);
      const seen = c.events.length;
      await sleep(500); // the stream would have gone on
      assert.equal(c.events.length, seen, 'no event of the deleted session after its delete');
      assert.equal(await sessionInfo(c, session), undefined);
      await srv.stop(); // exit code 0: under ASan, no leak and no use after free
      assert.ok(!storeDump(srv.dataDir).includes(session));
    } finally {
      await fp.close();
    }
  },
  { timeout: 30_000 },
);

// Isolation between users: another user's session is forbidden, the socket stays open.
import assert from 'node:assert/strict';
import { connect, itest, mintJwt, mintViaApi, openSession, sayAndWait, sessionInfo, sleep } from './harness.mjs';

const SECRET = 'forbidden-test-secret-0123456789abcdef0123';

itest(
  "another user's session: attach, say, close, answer, decide, cancel, detach are forbidden; socket stays open",
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--api-key', 'k1:t1', '--jwt-secret', SECRET, '--echo-delay-ms', '1'] });
    const alice = await connect(srv.port, { token: await mintViaApi(srv.port, 'k1', 'alice'), name: 'alice' });
    // bob's token minted independently with node crypto
    const bobToken = mintJwt(SECRET, { sub: 'bob', tenant: 't1', exp: Math.floor(Date.now() / 1000) + 600 });
    const bob = await connect(srv.port, { token: bobToken, name: 'bob' });

    const { session } = await openSession(alice);
    await sayAndWait(alice, session, 'private words', 'al1');
    const head = (await sessionInfo(alice, session)).head;

    for (const m of [
      { type: 'session.attach', session, after: 0 },
      { type: 'say', session, text: 'intrusion', client_msg_id: 'b1' },
      { type: 'session.close', session },
      { type: 'answer', session, question_id: 'q1', value: 'yes' },
      { type: 'decide', session, approval_id: 'a1', decision: 'approve' },
      { type: 'cancel', session },
    ]) {
      const r = await bob.request(m);
      assert.equal(r.type, 'error', `${m.type}: ${JSON.stringify(r)}`);
      assert.equal(r.code, 'forbidden', `${m.type}: ${JSON.stringify(r)}`);
    }
    assert.ok(bob.isOpen, 'forbidden does not close the socket');
    assert.equal((await bob.ping()).type, 'pong');
    assert.deepEqual(bob.events, [], `bob received events: ${JSON.stringify(bob.events)}`);
    const bobList = await bob.ok({ type: 'session.list' });
    assert.ok(!bobList.sessions.some((s) => s.session === session), "alice's session is not in bob's list");

    await sleep(50);
    const info = await sessionInfo(alice, session);
    assert.equal(info.head, head, "alice's session unchanged");
    assert.equal(info.state, 'idle');
    // And alice can still use it.
    await sayAndWait(alice, session, 'still mine', 'al2');
  },
);

itest('the same user name in another tenant is another user', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'k1:t1', '--api-key', 'k2:t2', '--jwt-secret', SECRET] });
  const a = await connect(srv.port, { token: await mintViaApi(srv.port, 'k1', 'sam'), name: 'sam@t1' });
  const b = await connect(srv.port, { token: await mintViaApi(srv.port, 'k2', 'sam'), name: 'sam@t2' });
  const { session } = await openSession(a);
  const r = await b.request({ type: 'session.attach', session, after: 0 });
  assert.equal(r.code, 'forbidden', JSON.stringify(r));
  const list = await b.ok({ type: 'session.list' });
  assert.ok(!list.sessions.some((s) => s.session === session), JSON.stringify(list));
});

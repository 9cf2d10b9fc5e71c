// Explicit limits: the per-socket message rate, and ack (no reply).
import assert from 'node:assert/strict';
import { connect, itest, openSession, sessionInfo, sleep, waitState } from './harness.mjs';

itest(
  'over the message rate: rate_limited with retry_after_s, the socket stays open and recovers',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--rate-msgs-per-s', '5', '--rate-burst', '10'] });
    const c = await connect(srv.port, { hello: true });
    for (let i = 0; i < 40; i++) c.send({ type: 'ping', id: `burst${i}` });
    await sleep(300);
    const pongs = c.frames.filter((f) => f.type === 'pong').length;
    const limited = c.frames.filter((f) => f.type === 'error' && f.code === 'rate_limited');
    assert.ok(limited.length > 0, `no rate_limited among ${c.frames.length} frames (pongs ${pongs})`);
    assert.ok(pongs <= 12, `at most the burst (10, plus refill) is served: ${pongs} pongs`);
    assert.equal(pongs + limited.length, 40, 'every ping is answered, by a pong or an error');
    for (const e of limited) {
      assert.equal(e.retryable, true, JSON.stringify(e));
      assert.ok(typeof e.retry_after_s === 'number' && e.retry_after_s > 0, JSON.stringify(e));
    }
    assert.ok(c.isOpen);
    await sleep(1200);
    assert.equal((await c.ping()).type, 'pong', 'served again after the bucket refills');
    // The refused requests carried ids: their errors must carry re, or a client cannot match them.
    const withoutRe = limited.filter((e) => typeof e.re !== 'string' || !/^burst\d+$/.test(e.re));
    assert.deepEqual(
      withoutRe.slice(0, 2),
      [],
      `${withoutRe.length} of ${limited.length} rate_limited replies lack re`,
    );
  },
);

itest('ack is accepted silently (no reply, no error) and changes nothing', async ({ startServer }) => {
  const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c);
  await waitState(c, session, 'idle', 0);
  const head = (await sessionInfo(c, session)).head;
  const n = c.frames.length;
  c.send({ type: 'ack', session, seq: head });
  const p = await c.ping();
  assert.equal(p.type, 'pong');
  assert.deepEqual(
    c.frames.slice(n).filter((f) => f.type !== 'pong'),
    [],
    'ack gets no reply',
  );
  assert.equal((await sessionInfo(c, session)).head, head);
});

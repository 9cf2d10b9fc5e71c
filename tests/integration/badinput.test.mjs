// Bad input is answered, not obeyed: malformed frames and oversized frames.
import assert from 'node:assert/strict';
import { connect, itest, openSession, sessionInfo, sleep, waitState, within } from './harness.mjs';

itest(
  'a burst of 200 malformed frames: 200 bad_request errors, socket alive, session unchanged',
  async ({ startServer }) => {
    // The token bucket (default burst 200) is not what this test is about.
    const srv = await startServer({ args: ['--rate-burst', '2000', '--rate-msgs-per-s', '2000'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c);
    await waitState(c, session, 'idle', 0);
    const infoBefore = await sessionInfo(c, session);
    const eventsBefore = c.events.length;

    const S = JSON.stringify(session);
    const kinds = [
      { raw: 'not json at all' },
      { raw: '{"type":"say",' }, // truncated JSON
      { raw: '{"type":"say" "session":1}' }, // syntax error
      { raw: '[1,2,3]' }, // array
      { raw: '"just a string"' },
      { raw: '42' },
      { raw: 'null' },
      { raw: 'true' },
      { raw: '' }, // empty frame
      { raw: '{}' }, // missing type
      { raw: '{"session":' + S + ',"text":"x"}' }, // missing type
      { raw: '{"type":"does.not.exist"}' }, // unknown type
      { raw: '{"type":"SAY","session":' + S + ',"text":"x","client_msg_id":"u"}' }, // unknown (case)
      { raw: '{"type":123}' }, // type not a string
      { raw: '{"type":null}' },
      { raw: '{"type":"say","session":' + S + ',"text":5,"client_msg_id":"b1"}' }, // text wrong type
      { raw: '{"type":"say","session":' + S + ',"text":"x","client_msg_id":7}' }, // client_msg_id wrong type
      { raw: '{"type":"say","session":42,"text":"x","client_msg_id":"b2"}' }, // session wrong type
      { raw: '{"type":"say","session":' + S + ',"text":["x"],"client_msg_id":"b3"}' }, // text array
      { raw: '{"type":"session.attach","session":' + S + ',"after":"zero"}' }, // after wrong type
      { raw: '{"type":"session.attach","session":' + S + ',"after":-1}' }, // after negative
      { raw: '{"type":"session.open","agent":7}' }, // agent wrong type
      { raw: '{"type":"session.close","session":{"id":' + S + '}}' }, // session object
      { raw: '{"type":"cancel","session":null}' }, // session null
      { raw: '{"type":"decide","session":' + S + ',"approval_id":"a1","decision":1}' }, // decision wrong type
      { raw: '{"type":"say","id":5,"session":' + S + ',"text":"x","client_msg_id":"b4"}' }, // id not a string
      { binary: JSON.stringify({ type: 'say', session, text: 'binary', client_msg_id: 'bin' }) },
      { binary: '\x00\x01\x02\xff' },
    ];
    const N = 200;
    for (let i = 0; i < N; i++) {
      const k = kinds[i % kinds.length];
      if (k.binary !== undefined) c.sendRaw(Buffer.from(k.binary, 'latin1'), { binary: true });
      else c.sendRaw(k.raw);
    }
    // Then a ping: the socket answers it after the 200 errors (frames are handled in order).
    const pong = await c.ping(10_000);
    assert.equal(pong.type, 'pong');
    await sleep(100);
    const errs = c.frames.filter((f) => f.type === 'error');
    const codes = {};
    for (const e of errs) codes[e.code] = (codes[e.code] ?? 0) + 1;
    assert.equal(errs.length, N, `expected ${N} errors, got ${errs.length}: ${JSON.stringify(codes)}`);
    assert.deepEqual(codes, { bad_request: N });
    for (const e of errs) {
      assert.equal(typeof e.message, 'string');
      assert.equal(e.retryable, false);
    }
    assert.ok(c.isOpen, 'socket stays open');
    assert.equal(c.events.length, eventsBefore, `no session events: ${JSON.stringify(c.events.slice(eventsBefore))}`);
    const infoAfter = await sessionInfo(c, session);
    assert.equal(infoAfter.head, infoBefore.head, 'session head unchanged');
    assert.equal(infoAfter.state, infoBefore.state);
    const list = await c.ok({ type: 'session.list' });
    assert.equal(list.sessions.length, 1, `no session was opened by the bad frames: ${JSON.stringify(list)}`);
    // A late attach sees the same single event.
    const c2 = await connect(srv.port, { hello: true });
    const att = await c2.ok({ type: 'session.attach', session, after: 0 });
    assert.equal(att.head, infoBefore.head);
  },
);

itest('an erroneous request with an id gets its error with re', async ({ startServer }) => {
  const srv = await startServer();
  const c = await connect(srv.port, { hello: true });
  const r = await c.request({ type: 'say', session: 's_x', text: 5, client_msg_id: 'c' }, undefined, { invalid: true });
  assert.equal(r.type, 'error');
  assert.equal(r.code, 'bad_request');
  assert.equal(r.retryable, false);
  const r2 = await c.request({ type: 'nope' }, undefined, { invalid: true });
  assert.equal(r2.code, 'bad_request');
});

itest(
  'oversized frames: over the limit → too_large (socket stays), far over (>8x) → close 1009',
  async ({ startServer }) => {
    const LIMIT = 4096;
    const srv = await startServer({ args: ['--max-frame-bytes', String(LIMIT), '--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c);
    await waitState(c, session, 'idle', 0);
    assert.equal(typeof c.welcome.limits, 'object');

    // Just under the limit: accepted.
    const base = JSON.stringify({ type: 'say', session, text: '', client_msg_id: 'fit', id: 'fit' }).length;
    const fit = 'a'.repeat(LIMIT - base - 10);
    const okr = await c.request({ type: 'say', session, text: fit, client_msg_id: 'fit', id: 'fit' });
    assert.equal(
      okr.type,
      'ok',
      `a ${base + fit.length}-byte frame under the ${LIMIT} limit: ${JSON.stringify(okr).slice(0, 300)}`,
    );
    await waitState(c, session, 'idle', 2);
    const head = c.maxSeq(session);

    // 2x over: too_large, nothing changes, socket usable.
    const from = c.frames.length;
    c.send({ type: 'say', session, text: 'b'.repeat(2 * LIMIT), client_msg_id: 'big', id: 'big' });
    const err = await c.waitFrame((f) => f.type === 'error', 3000, from);
    assert.equal(err.code, 'too_large', JSON.stringify(err));
    assert.equal((await c.ping()).type, 'pong');
    assert.ok(c.isOpen);
    await sleep(50);
    assert.equal(c.maxSeq(session), head, 'the oversized say changed nothing');

    // Exactly 8x: still only too_large.
    const from2 = c.frames.length;
    c.sendRaw('x'.repeat(8 * LIMIT));
    const err2 = await c.waitFrame((f) => f.type === 'error', 3000, from2);
    assert.equal(err2.code, 'too_large');
    assert.equal((await c.ping()).type, 'pong');

    // Far over: 1009.
    c.sendRaw('y'.repeat(16 * LIMIT));
    const closed = await within(c.closed, 3000);
    assert.ok(closed, 'socket closed after a frame 16x over the limit');
    assert.equal(closed.code, 1009);

    // The server is fine and the session unchanged.
    const c2 = await connect(srv.port, { hello: true });
    const att = await c2.ok({ type: 'session.attach', session, after: head });
    assert.equal(att.head, head);
  },
);

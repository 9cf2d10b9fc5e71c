// A token's lifetime is enforced for as long as the socket is open, not only
// at hello: the socket closes with 4001 at the token's exp (a quiet client
// included), and a token that is not valid yet (nbf, or iat in the future
// beyond the clock leeway) is refused at hello.
import assert from 'node:assert/strict';
import { connect, itest, mintJwt, openSession, sleep, within } from './harness.mjs';

const SECRET = 'token-expiry-secret-abcdefghijklmnopqrstuvwxyz-01';
const ARGS = ['--api-key', 'key-exp:t1', '--jwt-secret', SECRET];
const now = () => Math.floor(Date.now() / 1000);
const LEEWAY_S = 60; // TT_JWT_CLOCK_LEEWAY_S (server/jwt.h)

itest('a quiet socket closes with 4001 when its token expires', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const exp = now() + 2;
  const c = await connect(srv.port);
  const w = await c.hello(mintJwt(SECRET, { sub: 'u-exp', tenant: 't1', iat: now(), exp }));
  assert.equal(w.type, 'welcome');
  await openSession(c, 'echo');
  await c.ping();
  const closed = await within(c.closed, 6000);
  assert.equal(closed.code, 4001);
  assert.match(closed.reason, /expired/);
  assert.ok(Date.now() / 1000 >= exp, 'closed before exp');
  assert.ok(Date.now() / 1000 < exp + 3, 'closed long after exp');
  assert.ok(
    c.errors.some((e) => e.code === 'unauthenticated'),
    'an unauthenticated error came first',
  );
});

itest('a token given on the upgrade request also closes the socket at exp', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const token = mintJwt(SECRET, { sub: 'u-exp2', tenant: 't1', iat: now(), exp: now() + 2 });
  const c = await connect(srv.port, { header: token });
  assert.equal((await c.hello()).type, 'welcome');
  const closed = await within(c.closed, 6000);
  assert.equal(closed.code, 4001);
});

itest('a request after exp is refused even before the timer', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const c = await connect(srv.port);
  await c.hello(mintJwt(SECRET, { sub: 'u-exp3', tenant: 't1', iat: now(), exp: now() + 1 }));
  await sleep(1100);
  c.send({ type: 'session.list', id: 'late' });
  const closed = await within(c.closed, 4000);
  assert.equal(closed.code, 4001);
  assert.ok(!c.frames.some((f) => f.re === 'late' && f.type === 'ok'), 'a request after exp was served');
});

itest('a token before its nbf is refused at hello', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const c = await connect(srv.port);
  const r = await c.hello(
    mintJwt(SECRET, { sub: 'u-nbf', tenant: 't1', exp: now() + 3600, nbf: now() + LEEWAY_S + 120 }),
  );
  assert.equal(r.type, 'error');
  assert.equal(r.code, 'unauthenticated');
  assert.equal((await within(c.closed, 3000)).code, 4001);
});

itest('a token issued in the future is refused; a clock a little ahead is not', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const future = await connect(srv.port);
  const r = await future.hello(
    mintJwt(SECRET, { sub: 'u-iat', tenant: 't1', iat: now() + LEEWAY_S + 600, exp: now() + 3600 }),
  );
  assert.equal(r.code, 'unauthenticated');
  assert.equal((await within(future.closed, 3000)).code, 4001);
  const skewed = await connect(srv.port);
  const w = await skewed.hello(
    mintJwt(SECRET, { sub: 'u-iat', tenant: 't1', iat: now() + 20, nbf: now() + 20, exp: now() + 3600 }),
  );
  assert.equal(w.type, 'welcome');
  await skewed.ping();
});

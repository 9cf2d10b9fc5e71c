// hello and authentication: the first frame, JWT checks, header/query tokens, open mode.
import assert from 'node:assert/strict';
import os from 'node:os';
import { connect, itest, mintJwt, mintViaApi, openSession, within } from './harness.mjs';

const SECRET = 'auth-test-secret-abcdefghijklmnopqrstuvwxyz-0123';
const AUTH_ARGS = ['--api-key', 'key-a:t1', '--jwt-secret', SECRET];
const now = () => Math.floor(Date.now() / 1000);

let n = 0;
/** Send `msg` with an id and return the first error/welcome frame (checking its re). */
async function firstReply(c, msg) {
  const id = `a${++n}`;
  c.send({ ...msg, id });
  const f = await c.waitFrame(
    (x) => x.type === 'error' || x.type === 'welcome' || x.type === 'ok' || x.type === 'pong',
    3000,
  );
  assert.equal(f.re, id, `reply must carry re=${id}: ${JSON.stringify(f)}`);
  return f;
}

/** Expect an unauthenticated error and then close code 4001. */
async function expectRejected(c, reply) {
  assert.equal(reply.type, 'error', `expected error, got ${JSON.stringify(reply)}`);
  assert.equal(reply.code, 'unauthenticated', `expected unauthenticated, got ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.message, 'string');
  const closed = await within(c.closed, 3000);
  assert.ok(closed, 'socket must be closed after unauthenticated');
  assert.equal(closed.code, 4001, `close code ${JSON.stringify(closed)}`);
}

itest(
  'hello with a valid token gets welcome (protocol 1, server, heartbeat_s, limits, re) on tether.v1',
  async ({ startServer }) => {
    const srv = await startServer({ args: AUTH_ARGS });
    const token = await mintViaApi(srv.port, 'key-a', 'u1');
    const c = await connect(srv.port);
    assert.equal(c.protocol, 'tether.v1', 'subprotocol tether.v1 selected');
    const w = await c.request({ type: 'hello', token, client: 'tether-it/1', id: 'h1' });
    assert.equal(w.type, 'welcome', JSON.stringify(w));
    assert.equal(w.re, 'h1');
    assert.equal(w.protocol, 1);
    assert.equal(w.server, 'tether/0.1.0');
    assert.ok(Number.isInteger(w.heartbeat_s) && w.heartbeat_s > 0, `heartbeat_s ${w.heartbeat_s}`);
    assert.equal(typeof w.limits, 'object');
    assert.ok(w.limits !== null && !Array.isArray(w.limits));
    // The socket now works.
    assert.equal((await c.ping()).type, 'pong');

    // A client offering no subprotocol is accepted too.
    const c2 = await connect(srv.port, { protocols: [], token });
    assert.equal(c2.protocol, '');
    assert.equal(c2.welcome.type, 'welcome');
  },
);

itest('anything but hello first gets unauthenticated and close 4001', async ({ startServer }) => {
  const srv = await startServer({ args: AUTH_ARGS });
  for (const first of [{ type: 'ping' }, { type: 'session.list' }, { type: 'session.open', agent: 'echo' }]) {
    const c = await connect(srv.port);
    await expectRejected(c, await firstReply(c, first));
  }
  // hello without a token, when API keys are configured
  const c = await connect(srv.port);
  await expectRejected(c, await firstReply(c, { type: 'hello', client: 'x/1' }));
});

itest('a token with a bad signature is rejected with 4001', async ({ startServer }) => {
  const srv = await startServer({ args: AUTH_ARGS });
  const wrong = mintJwt('some-other-secret-of-sufficient-length-0000', { sub: 'u1', tenant: 't1', exp: now() + 600 });
  let c = await connect(srv.port);
  await expectRejected(c, await firstReply(c, { type: 'hello', client: 'x/1', token: wrong }));
  // Tampered payload on a genuine token.
  const good = await mintViaApi(srv.port, 'key-a', 'u1');
  const [h, , s] = good.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', tenant: 't1', exp: now() + 600 })).toString('base64url')}.${s}`;
  c = await connect(srv.port);
  await expectRejected(c, await firstReply(c, { type: 'hello', client: 'x/1', token: forged }));
  c = await connect(srv.port);
  await expectRejected(c, await firstReply(c, { type: 'hello', client: 'x/1', token: 'not-a-jwt' }));
});

itest(
  'a token minted with the shared secret by node crypto is accepted; expired is rejected with 4001',
  async ({ startServer }) => {
    const srv = await startServer({ args: AUTH_ARGS });
    const fresh = mintJwt(SECRET, { sub: 'u-node', tenant: 't1', iat: now(), exp: now() + 600 });
    const ok = await connect(srv.port, { token: fresh });
    assert.equal(ok.welcome.type, 'welcome');
    await openSession(ok);

    const expired = mintJwt(SECRET, { sub: 'u-node', tenant: 't1', iat: now() - 7200, exp: now() - 3600 });
    const c = await connect(srv.port);
    await expectRejected(c, await firstReply(c, { type: 'hello', client: 'x/1', token: expired }));
  },
);

itest('alg none is rejected with 4001', async ({ startServer }) => {
  const srv = await startServer({ args: AUTH_ARGS });
  const claims = { sub: 'u1', tenant: 't1', exp: now() + 600 };
  for (const alg of ['none', 'None', 'NONE']) {
    const c = await connect(srv.port);
    await expectRejected(
      c,
      await firstReply(c, {
        type: 'hello',
        client: 'x/1',
        token: mintJwt(SECRET, claims, { alg: 'none', header: { alg } }),
      }),
    );
  }
  // none-header but carrying a valid HS256 signature is still not HS256.
  const h = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
  const hs = mintJwt(SECRET, claims).split('.');
  const c = await connect(srv.port);
  await expectRejected(c, await firstReply(c, { type: 'hello', client: 'x/1', token: `${h}.${hs[1]}.${hs[2]}` }));
});

itest('a token in the Authorization header authenticates the upgrade (no hello needed)', async ({ startServer }) => {
  const srv = await startServer({ args: AUTH_ARGS });
  const token = await mintViaApi(srv.port, 'key-a', 'u-header');
  const c = await connect(srv.port, { header: token });
  const { session } = await openSession(c);
  const r = await c.ok({ type: 'session.list' });
  assert.ok(r.sessions.some((s) => s.session === session));
});

itest('a token in ?token= authenticates the upgrade (no hello needed)', async ({ startServer }) => {
  const srv = await startServer({ args: AUTH_ARGS });
  const token = await mintViaApi(srv.port, 'key-a', 'u-query');
  const c = await connect(srv.port, { query: token });
  const { session } = await openSession(c);
  const r = await c.ok({ type: 'session.list' });
  assert.ok(r.sessions.some((s) => s.session === session));
});

itest('a bad token in ?token= is refused (HTTP 401 or unauthenticated/4001)', async ({ startServer }) => {
  const srv = await startServer({ args: AUTH_ARGS });
  const bad = mintJwt('x'.repeat(40), { sub: 'u1', tenant: 't1', exp: now() + 600 });
  let c;
  try {
    c = await connect(srv.port, { query: bad });
  } catch (e) {
    assert.equal(e.statusCode, 401, `upgrade refused with ${e.message}`);
    return;
  }
  // Accepted at the HTTP level: the socket must not be usable.
  const r = await c.request({ type: 'session.list' }).catch(() => null);
  if (r) assert.equal(r.code, 'unauthenticated', JSON.stringify(r));
  const closed = await within(c.closed, 3000);
  assert.ok(closed, 'socket must be closed after a bad ?token=');
  assert.equal(closed.code, 4001, `close code ${JSON.stringify(closed)}`);
});

itest('open mode: no API key, hello needs no token, user is local', async ({ startServer }) => {
  const srv = await startServer();
  assert.match(srv.output, /open[ _-]?mode/i, 'the server must say loudly that it runs in open mode');
  const c = await connect(srv.port);
  const w = await c.hello(undefined);
  assert.equal(w.type, 'welcome', JSON.stringify(w));
  assert.equal(w.protocol, 1);
  assert.equal(w.user, 'local');
  const { session } = await openSession(c);
  const list = await c.ok({ type: 'session.list' });
  assert.ok(list.sessions.some((s) => s.session === session));
});

const externalV4 = Object.values(os.networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

itest(
  'open mode serves loopback clients only: a non-loopback client is refused',
  async ({ startServer }) => {
    const srv = await startServer({ host: '0.0.0.0' });
    const local = await connect(srv.port, { hello: true });
    assert.equal(local.welcome.type, 'welcome');
    let c;
    try {
      c = await connect(srv.port, { host: externalV4 });
    } catch (e) {
      assert.ok(e.statusCode === undefined || e.statusCode >= 400, `refused: ${e.message}`);
      return; // refused at the upgrade (or the TCP level): fine
    }
    // Upgraded: hello must not succeed and the socket must close.
    const r = await c.request({ type: 'hello', client: 'remote/1' }).catch(() => null);
    assert.notEqual(r?.type, 'welcome', `a non-loopback client got a welcome in open mode: ${JSON.stringify(r)}`);
    const closed = await within(c.closed, 3000);
    assert.ok(closed, 'the non-loopback socket must be closed');
  },
  { skip: externalV4 ? false : 'no non-loopback IPv4 interface on this machine' },
);

itest(
  'a token whose agents allow-list lacks the agent gets forbidden on session.open; the socket stays open',
  async ({ startServer }) => {
    const srv = await startServer({ args: AUTH_ARGS });
    const exp = now() + 600;
    const limited = await connect(srv.port, {
      token: mintJwt(SECRET, { sub: 'u-lim', tenant: 't1', exp, agents: ['photo-organizer'] }),
    });
    const r = await limited.request({ type: 'session.open', agent: 'echo' });
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'forbidden', JSON.stringify(r));
    assert.equal((await limited.ping()).type, 'pong');
    assert.deepEqual((await limited.ok({ type: 'session.list' })).sessions, []);
    const allowed = await connect(srv.port, {
      token: mintJwt(SECRET, { sub: 'u-lim', tenant: 't1', exp, agents: ['echo'] }),
    });
    await openSession(allowed);
  },
);

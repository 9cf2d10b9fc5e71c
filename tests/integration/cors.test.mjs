// CORS for the HTTP API (issue 15), over raw HTTP: a preflight from an
// --allowed-origin is answered with that origin echoed, Vary, methods,
// headers and max-age, never credentials; a foreign origin's preflight is
// refused (403, no CORS headers); ordinary answers to an allowed origin carry
// Access-Control-Allow-Origin, to a foreign one nothing but the refusal.

import assert from 'node:assert/strict';
import { itest } from './harness.mjs';
import { rawHttp } from './deploy-lib.mjs';

const APP = 'https://app.example';
const EVIL = 'https://evil.example';
const KEY = 'cors-test-key-0123456789';

const preflight = (port, path, origin, method = 'POST', extra = '') =>
  rawHttp(
    '127.0.0.1',
    port,
    `OPTIONS ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${origin}\r\n` +
      `Access-Control-Request-Method: ${method}\r\n` +
      `Access-Control-Request-Headers: authorization, content-type\r\n${extra}Connection: close\r\n\r\n`,
  );

function post(port, path, origin, body) {
  const o = origin ? `Origin: ${origin}\r\n` : '';
  return rawHttp(
    '127.0.0.1',
    port,
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${o}Authorization: Bearer ${KEY}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

const args = ['--allowed-origin', APP, '--api-key', KEY];

itest(
  'preflight from an allowed origin: 204, the origin echoed, Vary, methods, headers, max-age, no credentials',
  async ({ startServer }) => {
    const srv = await startServer({ args });
    for (const path of ['/v1/tokens', '/v1/chat/completions', '/healthz']) {
      const r = await preflight(srv.port, path, APP);
      assert.equal(r.status, 204, `${path}: ${JSON.stringify(r)}`);
      assert.equal(r.headers['access-control-allow-origin'], APP);
      assert.match(r.headers.vary, /Origin/);
      assert.match(r.headers['access-control-allow-methods'], /POST/);
      assert.match(r.headers['access-control-allow-methods'], /GET/);
      assert.match(r.headers['access-control-allow-headers'], /authorization/);
      assert.match(r.headers['access-control-allow-headers'], /content-type/);
      assert.equal(r.headers['access-control-max-age'], '600');
      assert.equal(r.headers['access-control-allow-credentials'], undefined, 'never credentials');
    }
    const put = await preflight(srv.port, '/v1/tokens', APP, 'PUT');
    assert.equal(put.status, 405);
    assert.equal(put.headers['access-control-allow-origin'], undefined);
    const unknown = await preflight(srv.port, '/nope', APP);
    assert.equal(unknown.status, 404);
  },
);

itest('preflight from a foreign origin: 403 with a JSON error and no CORS headers', async ({ startServer }) => {
  const srv = await startServer({ args });
  for (const origin of [EVIL, 'null', `${APP}:8443`, 'http://app.example']) {
    const r = await preflight(srv.port, '/v1/tokens', origin);
    assert.equal(r.status, 403, `${origin}: ${JSON.stringify(r)}`);
    assert.equal(JSON.parse(r.body).error.code, 'forbidden');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal(r.headers['access-control-allow-methods'], undefined);
  }
});

itest(
  'ordinary answers: ACAO for an allowed origin, none without Origin, a foreign POST refused',
  async ({ startServer }) => {
    const srv = await startServer({ args });
    const ok = await post(srv.port, '/v1/tokens', APP, JSON.stringify({ user: 'u1' }));
    assert.equal(ok.status, 200, JSON.stringify(ok));
    assert.equal(ok.headers['access-control-allow-origin'], APP);
    assert.match(ok.headers.vary, /Origin/);
    assert.match(ok.headers['access-control-expose-headers'], /Retry-After/);
    assert.equal(ok.headers['access-control-allow-credentials'], undefined);
    const err = await post(srv.port, '/v1/tokens', APP, '{bad');
    assert.equal(err.status, 400);
    assert.equal(err.headers['access-control-allow-origin'], APP, 'errors are readable by the page too');
    const gw = await post(srv.port, '/v1/chat/completions', APP, JSON.stringify({ model: 'x', messages: [] }));
    assert.ok(gw.status >= 400, JSON.stringify(gw));
    assert.equal(gw.headers['access-control-allow-origin'], APP, 'the gateway answers with ACAO');
    const none = await post(srv.port, '/v1/tokens', null, JSON.stringify({ user: 'u1' }));
    assert.equal(none.status, 200);
    assert.equal(none.headers['access-control-allow-origin'], undefined);
    const evil = await post(srv.port, '/v1/tokens', EVIL, JSON.stringify({ user: 'u1' }));
    assert.equal(evil.status, 403);
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    const get = await rawHttp(
      '127.0.0.1',
      srv.port,
      `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nOrigin: ${APP}\r\nConnection: close\r\n\r\n`,
    );
    assert.equal(get.status, 200);
    assert.equal(get.headers['access-control-allow-origin'], APP);
  },
);

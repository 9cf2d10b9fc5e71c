// Which browser pages may use the server (issue 10, finding 4): a page on
// another origin must not open /v1/ws or POST, and in open mode a foreign
// Host (DNS rebinding) is refused. Clients without Origin (curl, SDKs) pass.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { httpRequest, itest, mintJwt, SUBPROTOCOL } from './harness.mjs';

const SECRET = 'origin-test-secret-0123456789abcdef';
const EVIL = 'https://evil.example';

/** Open /v1/ws with extra headers; resolves {welcome} or {status, json} when the upgrade is refused. */
function upgrade(port, headers, { token, protocol = SUBPROTOCOL } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws`, protocol, { headers, handshakeTimeout: 5000 });
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        ws.terminate();
        let json;
        try {
          json = JSON.parse(body);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode, json });
      });
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'hello', id: 'h', ...(token ? { token } : {}) })));
    ws.once('message', (d) => {
      ws.close();
      resolve({ welcome: JSON.parse(d.toString()) });
    });
    ws.once('error', reject);
  });
}

const tokens = (port, headers = {}) => httpRequest(port, 'POST', '/v1/tokens', { headers, body: { user: 'u1' } });

itest(
  'open mode: a page on another origin cannot open /v1/ws; 403 with a JSON error, no welcome',
  async ({ startServer }) => {
    const srv = await startServer();
    for (const origin of [EVIL, 'null', `http://127.0.0.1:${srv.port + 1}`, `http://localhost:${srv.port}`]) {
      const r = await upgrade(srv.port, { Origin: origin });
      assert.equal(r.status, 403, `${origin}: ${JSON.stringify(r)}`);
      assert.equal(r.json.error.code, 'forbidden');
      assert.match(r.json.error.message, /Origin/);
    }
    const same = await upgrade(srv.port, { Origin: `http://127.0.0.1:${srv.port}` });
    assert.equal(same.welcome.type, 'welcome', 'the same origin (the web page) is welcome');
    const none = await upgrade(srv.port, {});
    assert.equal(none.welcome.type, 'welcome', 'no Origin: not a browser, welcome');
    const m = await httpRequest(srv.port, 'GET', '/metrics');
    assert.match(m.body, /tether_errors_total\{code="forbidden"\} 4/);
  },
);

itest(
  'open mode: a foreign Host is refused on the upgrade and on every HTTP route (DNS rebinding)',
  async ({ startServer }) => {
    const srv = await startServer();
    const host = `rebound.example:${srv.port}`;
    for (const headers of [{ Host: host }, { Host: host, Origin: `http://${host}` }]) {
      const r = await upgrade(srv.port, headers);
      assert.equal(r.status, 403, JSON.stringify(r));
      assert.match(r.json.error.message, /Host/);
      for (const [method, p] of [
        ['POST', '/v1/tokens'],
        ['GET', '/healthz'],
        ['GET', '/metrics'],
        ['POST', '/v1/chat/completions'],
      ]) {
        const h = await httpRequest(srv.port, method, p, { headers, body: method === 'POST' ? {} : undefined });
        assert.equal(h.status, 403, `${method} ${p} with ${JSON.stringify(headers)}: ${h.status} ${h.body}`);
      }
    }
    for (const name of ['localhost', '127.0.0.1', '127.1.2.3']) {
      const r = await tokens(srv.port, { Host: `${name}:${srv.port}`, Origin: `http://${name}:${srv.port}` });
      assert.equal(r.status, 200, `${name}: ${r.body}`);
    }
  },
);

itest(
  "open mode: POSTs from a foreign Origin are 403 (tokens in Tether's shape, the gateway in OpenAI's); same-origin and no-Origin pass",
  async ({ startServer }) => {
    const srv = await startServer();
    const t = await tokens(srv.port, { Origin: EVIL });
    assert.equal(t.status, 403, t.body);
    assert.equal(t.json.error.code, 'forbidden');
    const g = await httpRequest(srv.port, 'POST', '/v1/chat/completions', {
      headers: { Origin: EVIL },
      body: { model: 'default', messages: [] },
    });
    assert.equal(g.status, 403, g.body);
    assert.equal(g.json.error.type, 'invalid_request_error');
    assert.equal(g.json.error.code, 'forbidden');
    assert.equal((await tokens(srv.port, { Origin: `http://127.0.0.1:${srv.port}` })).status, 200);
    assert.equal((await tokens(srv.port)).status, 200);
  },
);

itest(
  '--allowed-origin, TETHER_ALLOWED_ORIGINS and the config file admit a listed origin, and only it',
  async ({ startServer }) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-origin-'));
    const file = path.join(dir, 'config.json');
    fs.writeFileSync(file, JSON.stringify({ 'allowed-origin': ['https://file.example'] }));
    const servers = [
      [
        await startServer({
          args: ['--allowed-origin', 'https://app.example', '--allowed-origin', 'http://other.example:3000'],
        }),
        ['https://app.example', 'http://other.example:3000'],
      ],
      [
        await startServer({ env: { TETHER_ALLOWED_ORIGINS: 'https://env.example,https://env2.example' } }),
        ['https://env.example', 'https://env2.example'],
      ],
      [await startServer({ args: ['--config', file] }), ['https://file.example']],
    ];
    for (const [srv, allowed] of servers) {
      for (const origin of allowed) {
        assert.equal((await upgrade(srv.port, { Origin: origin })).welcome?.type, 'welcome', origin);
        assert.equal((await tokens(srv.port, { Origin: origin })).status, 200, origin);
      }
      assert.equal((await upgrade(srv.port, { Origin: EVIL })).status, 403);
      assert.equal((await tokens(srv.port, { Origin: 'https://app.example.evil' })).status, 403);
    }
    // An allowed origin's host is a name the server answers to (a reverse proxy in front).
    const [proxied] = servers[0];
    assert.equal((await tokens(proxied.port, { Host: 'app.example', Origin: 'https://app.example' })).status, 200);
    fs.rmSync(dir, { recursive: true, force: true });
  },
);

itest('a malformed --allowed-origin stops the start-up with a message naming the option', async ({ startServer }) => {
  for (const bad of ['app.example', 'https://app.example/', 'ftp://app.example', 'https://app.example:x', 'https://']) {
    await assert.rejects(
      startServer({ args: ['--allowed-origin', bad] }),
      (e) => /--allowed-origin/.test(e.message),
      bad,
    );
  }
});

itest(
  'with API keys: a foreign Origin is refused even with a valid token; a foreign Host without Origin is served',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--api-key', 'k-origin', '--jwt-secret', SECRET] });
    const token = mintJwt(SECRET, { sub: 'alice', tenant: 't', exp: Math.floor(Date.now() / 1000) + 600 });
    const evil = await upgrade(srv.port, { Origin: EVIL, Authorization: `Bearer ${token}` });
    assert.equal(evil.status, 403);
    const ok = await upgrade(srv.port, { Host: 'tether.internal:8080' }, { token });
    assert.equal(ok.welcome.type, 'welcome', JSON.stringify(ok));
    const t = await tokens(srv.port, { Host: 'tether.internal', Authorization: 'Bearer k-origin' });
    assert.equal(t.status, 200, t.body);
    const f = await tokens(srv.port, { Origin: EVIL, Authorization: 'Bearer k-origin' });
    assert.equal(f.status, 403, f.body);
  },
);

itest('"tether-http" (the HTTP protocol\'s name) is no WebSocket subprotocol', async ({ startServer }) => {
  const srv = await startServer();
  await assert.rejects(upgrade(srv.port, {}, { protocol: 'tether-http' }));
  assert.equal((await upgrade(srv.port, {})).welcome.type, 'welcome', 'the server is fine');
});

// Tokens per minute per client IP and per user (the --limits file), over
// real sockets and HTTP: the tokens a call used are charged to its client's
// IP whichever API key, socket or route it came through, and to its user;
// refusals carry Retry-After / retry_after_s; another IP (a second loopback
// source address) or another user is not held; a malformed limit is
// refused at start-up naming its JSON path.

import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import {
  connect,
  fakeTarget,
  freePort,
  httpRequest,
  itest,
  mintViaApi,
  openSession,
  sayAndWait,
  writeRoutesFile,
} from './harness.mjs';
import { runToExit } from './exit-lib.mjs';
import { twoTenants, useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();
const { KEY_A, KEY_B, keyArgs } = twoTenants('tpmip');
const USAGE = { prompt_tokens: 100, completion_tokens: 10 }; // 110 tokens a call
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-limits-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function limitsFile(name, obj) {
  const f = path.join(dir, name);
  writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

async function tpmServer(startServer, P, limits) {
  fp.script({ text: 'fine thanks', usage: USAGE, match: { prefix: P }, repeat: 'forever' });
  const routes = writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P, { region: 'a' })] },
    retry: { max_attempts: 1, base_ms: 50, max_backoff_ms: 100, max_total_ms: 2000 },
  });
  return startServer({
    args: ['--routes', routes, ...keyArgs, '--limits', limitsFile(`${P}.json`, limits)],
    env: { FAKE_KEY: 'fake-key' },
  });
}

/** A gateway call from source address `from` (a loopback address). */
function gatewayFrom(srv, key, from, headers = {}) {
  const body = JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'how are you?' }] });
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: srv.port,
        localAddress: from,
        method: 'POST',
        path: '/v1/chat/completions',
        agent: false,
        headers: {
          Authorization: `Bearer ${key}`,
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode, headers: res.headers, body: text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

itest(
  'tokens per minute per client IP: charged across API keys, the socket and the gateway; another IP passes',
  async ({ startServer }) => {
    const P = 'tpm-ip';
    const srv = await tpmServer(startServer, P, { default: { ip: { tpm: 150 } } });
    // 110 tokens through the gateway with one key ...
    assert.equal((await gatewayFrom(srv, KEY_A, '127.0.0.1')).status, 200);
    // ... 110 more through a socket of another tenant's key, from the same IP: in debt now.
    const c = await connect(srv.port, { token: await mintViaApi(srv.port, KEY_B, 'carol') });
    const { session } = await openSession(c, 'chat');
    const { events } = await sayAndWait(c, session, 'hello', 'm1');
    assert.ok(
      events.find((e) => e.type === 'message.end'),
      JSON.stringify(events),
    );
    assert.equal(fp.requests({ prefix: P }).length, 2);

    // The IP is over its tokens: the gateway refuses (whatever key) ...
    const over = await gatewayFrom(srv, KEY_B, '127.0.0.1');
    assert.equal(over.status, 429, over.body);
    assert.equal(over.json.error.code, 'rate_limited');
    assert.match(over.json.error.message, /client IP 127\.0\.0\.1 is over its tokens per minute/);
    const ra = Number(over.headers['retry-after']);
    assert.ok(ra >= 1 && ra <= 60, `Retry-After ${over.headers['retry-after']}`);
    // ... and so does the socket, with retry_after_s.
    const r = await c.request({ type: 'say', session, text: 'again', client_msg_id: 'm2' });
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'rate_limited');
    assert.ok(r.retry_after_s >= 1 && r.retry_after_s <= 60, JSON.stringify(r));
    assert.equal(fp.requests({ prefix: P }).length, 2, 'refused calls never reached the provider');

    // Another client IP is not held.
    assert.equal((await gatewayFrom(srv, KEY_A, '127.0.0.2')).status, 200);
    c.close();
  },
);

itest('tokens per minute per user: one user waits, another user of the same key passes', async ({ startServer }) => {
  const P = 'tpm-user';
  const srv = await tpmServer(startServer, P, { default: { user: { tpm: 150 } } });
  const as = (user) => gatewayFrom(srv, KEY_A, '127.0.0.1', { 'x-tether-user': user });
  assert.equal((await as('alice')).status, 200);
  assert.equal((await as('alice')).status, 200); // in debt now
  const over = await as('alice');
  assert.equal(over.status, 429, over.body);
  assert.match(over.json.error.message, /user acme.alice is over its tokens per minute/);
  assert.ok(Number(over.headers['retry-after']) >= 1);
  assert.equal((await as('bob')).status, 200);
  // A named user's override: umbrella/dave may use more.
  const srv2 = await tpmServer(startServer, `${P}-2`, {
    default: { user: { tpm: 150 } },
    users: { 'umbrella/dave': { tpm: 100000 } },
  });
  for (let i = 0; i < 3; i++) {
    const r = await httpRequest(srv2.port, 'POST', '/v1/chat/completions', {
      headers: { Authorization: `Bearer ${KEY_B}`, 'x-tether-user': 'dave' },
      body: { model: 'default', messages: [{ role: 'user', content: 'hi' }] },
    });
    assert.equal(r.status, 200, r.body);
  }
});

itest('a malformed tokens-per-minute limit stops the start-up, naming its JSON path', async () => {
  const cases = [
    [{ default: { ip: { tpm: 0 } } }, /limits\.default\.ip\.tpm: must be a positive integer/],
    [{ ips: { '127.0.0.1': { tpm: 'lots' } } }, /limits\.ips\.127\.0\.0\.1\.tpm: must be a positive integer/],
    [{ users: { 'acme/alice': { tpm: -1 } } }, /limits\.users\.acme\/alice\.tpm: must be a positive integer/],
  ];
  for (const [i, [limits, re]] of cases.entries()) {
    const r = await runToExit(['--port', String(await freePort()), '--limits', limitsFile(`bad${i}.json`, limits)]);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, re);
  }
});

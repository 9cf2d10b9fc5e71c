// Names that say who someone is (tenants, users) and names people read
// (session titles, assistant and tool names). A user's sessions are listed by
// tenant + "\x1f" + user: a name holding "\x1f" or another control character
// could make two tenants share that key, and a bidi control makes a name
// reorder the text around it. Such names are refused where they come in —
// API key config, POST /v1/tokens, a token's claims, session.open metadata,
// the agents and tools files — and removed from titles made from a message.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, httpRequest, itest, mintJwt, mintViaApi, openSession, sayAndWait, within } from './harness.mjs';

const SECRET = 'names-test-secret-abcdefghijklmnopqrstuvwxyz-0123';
const ARGS = ['--api-key', 'key-a:acme', '--api-key', 'key-b:globex', '--jwt-secret', SECRET];
const now = () => Math.floor(Date.now() / 1000);

// Each crafted name, with what is wrong with it.
const BAD_NAMES = {
  'unit separator': 'b\x1fc',
  'control character': 'b\x01c',
  newline: 'b\nc',
  DEL: 'b\x7fc',
  'C1 control': 'b\u0085c',
  'right-to-left override': 'b\u202ec',
  'right-to-left isolate': 'b\u2067c',
  'zero-width space': 'b\u200bc',
  'Arabic letter mark': 'b\u061cc',
};

async function mint(port, key, user) {
  return httpRequest(port, 'POST', '/v1/tokens', {
    headers: { Authorization: `Bearer ${key}` },
    body: { user, ttl_s: 600 },
  });
}

/** hello with token; resolves with the reply, and checks the socket closes with 4001 when refused. */
async function helloRefused(port, token) {
  const c = await connect(port);
  const r = await c.hello(token);
  assert.equal(r.type, 'error', `expected a refusal, got ${JSON.stringify(r)}`);
  assert.equal(r.code, 'unauthenticated', JSON.stringify(r));
  const closed = await within(c.closed, 3000);
  assert.equal(closed?.code, 4001, `close code ${JSON.stringify(closed)}`);
}

itest(
  'POST /v1/tokens refuses a user name with a control, bidi or invisible character (400), and an empty one',
  async ({ startServer }) => {
    const srv = await startServer({ args: ARGS });
    for (const [what, user] of Object.entries({ ...BAD_NAMES, empty: '' })) {
      const r = await mint(srv.port, 'key-a', user);
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.body}`);
      assert.equal(r.json?.error?.code, 'bad_request', `${what}: ${r.body}`);
      assert.match(
        r.json.error.message,
        /user must be 1-127 bytes of UTF-8 without control, bidi or invisible characters/,
        what,
      );
    }
    const long = await mint(srv.port, 'key-a', 'u'.repeat(128));
    assert.equal(long.status, 400, long.body);
    // Letters of any script are names.
    for (const user of ['alice', 'Zoë Ådahl', 'שלום', '東京', 'a:b@c.d']) {
      const r = await mint(srv.port, 'key-a', user);
      assert.equal(r.status, 200, `${user}: ${r.body}`);
      assert.equal(r.json.user, user);
    }
  },
);

itest(
  'a token signed with the shared secret whose sub or tenant holds a control, bidi or invisible character is refused',
  async ({ startServer }) => {
    const srv = await startServer({ args: ARGS });
    // The collision: tenant "a" with user "b\x1fc" and tenant "a\x1fb" with user "c" had one key.
    const victim = mintJwt(SECRET, { sub: 'b\x1fc', tenant: 'a', exp: now() + 600 });
    const intruder = mintJwt(SECRET, { sub: 'c', tenant: 'a\x1fb', exp: now() + 600 });
    await helloRefused(srv.port, victim);
    await helloRefused(srv.port, intruder);
    for (const [what, name] of Object.entries(BAD_NAMES)) {
      await helloRefused(srv.port, mintJwt(SECRET, { sub: name, tenant: 'acme', exp: now() + 600 })).catch((e) => {
        throw new Error(`sub with ${what}: ${e.message}`);
      });
      await helloRefused(srv.port, mintJwt(SECRET, { sub: 'alice', tenant: name, exp: now() + 600 })).catch((e) => {
        throw new Error(`tenant with ${what}: ${e.message}`);
      });
    }
    // The same token with clean names is accepted.
    const c = await connect(srv.port, {
      token: mintJwt(SECRET, { sub: 'b c', tenant: 'a', exp: now() + 600 }),
      hello: true,
    });
    assert.equal(c.welcome.type, 'welcome', JSON.stringify(c.welcome));
    assert.equal(c.welcome.user, 'b c');
  },
);

itest('two tenants with a user of the same name each list only their own sessions', async ({ startServer }) => {
  const srv = await startServer({ args: ARGS });
  const acme = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-a', 'alice'), hello: true });
  const globex = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-b', 'alice'), hello: true });
  const signed = await connect(srv.port, {
    token: mintJwt(SECRET, { sub: 'alice', tenant: 'initech', exp: now() + 600 }),
    hello: true,
  });
  const mine = {
    acme: [(await openSession(acme)).session, (await openSession(acme)).session],
    globex: [(await openSession(globex)).session],
    signed: [(await openSession(signed)).session],
  };
  for (const [who, c] of Object.entries({ acme, globex, signed })) {
    const list = (await c.ok({ type: 'session.list' })).sessions.map((s) => s.session).sort();
    assert.deepEqual(list, [...mine[who]].sort(), `${who} sees ${JSON.stringify(list)}`);
    const other = who === 'acme' ? mine.globex[0] : mine.acme[0];
    const r = await c.request({ type: 'session.attach', session: other });
    assert.equal(r.type, 'error', `${who} attached another tenant's session: ${JSON.stringify(r)}`);
  }
});

itest(
  'a tenant with a control, bidi or invisible character in --api-key stops the start-up with a message',
  async ({ startServer }) => {
    for (const [flag, key] of [
      ['--api-key', 'key-a'],
      ['--api-key-hash', 'a'.repeat(64)],
    ]) {
      for (const [what, tenant] of Object.entries({
        'unit separator': 'a\x1fb',
        'right-to-left override': 'a\u202eb',
      })) {
        const err = await startServer({ args: [flag, `${key}:${tenant}`] }).then(
          () => null,
          (e) => e,
        );
        assert.ok(err, `${flag} with a tenant holding a ${what} must not start`);
        assert.match(
          err.message,
          /a tenant is 1-63 bytes of UTF-8 without control, bidi or invisible characters/,
          err.message,
        );
      }
    }
  },
);

itest(
  'session titles: a bidi control in metadata.title is bad_request naming the field; in a first message it is removed',
  async ({ startServer }) => {
    const srv = await startServer({ args: ARGS });
    const c = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-a', 'alice'), hello: true });
    for (const title of ['photo\u202egpj.exe', 'a\u2066b\u2069', 'zero\u200bwidth', 'line\nbreak']) {
      const r = await c.request({ type: 'session.open', agent: 'echo', metadata: { title } });
      assert.equal(r.type, 'error', `title ${JSON.stringify(title)}: ${JSON.stringify(r)}`);
      assert.equal(r.code, 'bad_request');
      assert.match(r.message, /metadata\.title/);
    }
    assert.deepEqual((await c.ok({ type: 'session.list' })).sessions, [], 'a refused open creates nothing');
    const named = await openSession(c, 'echo', { metadata: { title: 'Trip to תל אביב' } });
    const { session } = await openSession(c);
    await sayAndWait(c, session, 'invoice\u202efdp.exe and\u200b more\u2067 text\u2069\nsecond line', 'm1');
    const list = (await c.ok({ type: 'session.list' })).sessions;
    assert.equal(list.find((s) => s.session === named.session).title, 'Trip to תל אביב');
    assert.equal(list.find((s) => s.session === session).title, 'invoicefdp.exe and more text second line');
  },
);

itest(
  'an assistant or tool name with a bidi control in --agents or --tools stops the start-up naming the entry',
  async ({ startServer }) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-names-'));
    // the message is in a JSON log line, where its backslash is escaped
    const cases = [
      [
        'agents',
        { agents: [{ name: 'help\u202eer' }] },
        /agent help\\\\u\{202E\}er: its name and description must be UTF-8 without control, bidi or invisible characters/,
      ],
      [
        'agents',
        { agents: [{ name: 'helper', description: 'Helps \u2067you\u2069' }] },
        /agent helper: its name and description/,
      ],
      [
        'tools',
        { tools: [{ name: 'wea\u200bther', parameters: { type: 'object' }, url: 'http://127.0.0.1:9/x' }] },
        /tool wea\\\\u\{200B\}ther: the name must be UTF-8 without control, bidi or invisible characters/,
      ],
    ];
    for (const [kind, content, message] of cases) {
      const file = path.join(dir, `${kind}.json`);
      writeFileSync(file, JSON.stringify(content));
      const err = await startServer({ args: [`--${kind}`, file] }).then(
        () => null,
        (e) => e,
      );
      assert.ok(err, `${JSON.stringify(content)} must not start`);
      assert.match(err.message, message, err.message);
    }
  },
);

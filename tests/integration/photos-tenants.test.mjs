// Photo libraries are per tenant and user: ROOT/<tenant>/<user>, or
// ROOT/<user> for a user without a tenant. Two tenants with a user of the
// same name each see and move only their own photos; names that cannot be a
// single safe folder name are refused with a clear error and nothing moves.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAKER, planFor, snapshot } from './photos-lib.mjs';
import {
  connect,
  fakeTarget,
  itest,
  mintJwt,
  mintViaApi,
  openSession,
  waitState,
  writeRoutesFile,
} from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const SECRET = 'photos-tenants-secret-0123456789abcdef';

/* Run the organiser to the end for the client c with the plan plan; returns
 * the scan summary the model was sent. */
async function organise(c, P, plan) {
  const before = fp.requests({ prefix: P }).length;
  fp.script([
    { text: 'A summary.', match: { prefix: P } },
    { text: JSON.stringify({ questions: [{ text: 'Go?', choices: ['yes', 'no'] }] }), match: { prefix: P } },
    { text: JSON.stringify(plan), match: { prefix: P } },
  ]);
  const { session } = await openSession(c, 'photo-organizer');
  await c.ok({ type: 'say', session, text: 'organise my photos' });
  const q = await c.waitEvent((e) => e.session === session && e.type === 'question', 15000);
  await c.ok({ type: 'answer', session, question_id: q.question_id, value: 'yes' });
  const a = await c.waitEvent((e) => e.session === session && e.type === 'approval', 15000);
  await c.ok({ type: 'decide', session, approval_id: a.approval_id, decision: 'approve' });
  await waitState(c, session, 'done', a.seq, 20000);
  return fp.requests({ prefix: P })[before].body.messages.find((m) => m.role === 'user').content;
}

async function failureOf(c) {
  const { session } = await openSession(c, 'photo-organizer');
  await c.ok({ type: 'say', session, text: 'organise my photos' });
  const failed = await waitState(c, session, 'failed', 0, 10000);
  return c.sessionEvents(session).find((e) => e.type === 'error' && e.seq < failed.seq);
}

itest(
  'photo libraries: two tenants with the same user name each organise only their own photos',
  async ({ startServer }) => {
    const P = 'p-tenants';
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-photos-'));
    const libs = {
      acme: path.join(root, 'acme', 'alice'),
      globex: path.join(root, 'globex', 'alice'),
      none: path.join(root, 'alice'),
    };
    execFileSync(MAKER, [libs.acme, '3']);
    execFileSync(MAKER, [libs.globex, '2']);
    execFileSync(MAKER, [libs.none, '4']);
    const orig = Object.fromEntries(Object.entries(libs).map(([k, d]) => [k, snapshot(d)]));
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, P)] } });
    const srv = await startServer({
      args: [
        '--routes',
        routes,
        '--photos-root',
        root,
        '--api-key',
        'key-acme:acme',
        '--api-key',
        'key-globex:globex',
        '--api-key',
        'key-plain',
        '--jwt-secret',
        SECRET,
      ],
      env: { FAKE_KEY: 'k' },
    });

    const globex = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-globex', 'alice'), hello: true });
    const seen = await organise(globex, P, planFor(orig.globex, 'sorted'));
    assert.match(seen, /Photo library: 2 photos/, "globex alice scans her own 2 photos, not acme's 3");
    assert.deepEqual(
      Object.keys(snapshot(libs.globex)).sort(),
      Object.keys(orig.globex)
        .map((p) => `sorted/${path.basename(p)}`)
        .sort(),
    );
    assert.deepEqual(snapshot(libs.acme), orig.acme, "acme's alice is untouched");
    assert.deepEqual(snapshot(libs.none), orig.none, 'the tenant-less alice is untouched');

    const acme = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-acme', 'alice'), hello: true });
    assert.match(await organise(acme, P, planFor(orig.acme, 'mine')), /Photo library: 3 photos/);
    assert.deepEqual(
      Object.keys(snapshot(libs.acme)).sort(),
      Object.keys(orig.acme)
        .map((p) => `mine/${path.basename(p)}`)
        .sort(),
    );

    // A key without a tenant keeps ROOT/<user>, which must not hold the tenants' folders.
    const plain = await connect(srv.port, { token: await mintViaApi(srv.port, 'key-plain', 'alice'), hello: true });
    assert.match(await organise(plain, P, planFor(orig.none, 'flat')), /Photo library: 4 photos/);
    assert.ok(fs.existsSync(path.join(libs.globex, 'sorted')), "globex's result stays");
    fs.rmSync(root, { recursive: true, force: true });
  },
);

const RE = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

itest(
  'photo libraries: tenant and user names that are not one safe folder name are refused, nothing moves',
  async ({ startServer }) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-photos-'));
    execFileSync(MAKER, [path.join(root, 'acme', 'alice'), '2']);
    execFileSync(MAKER, [path.join(root, 'globex', 'x'), '2']);
    const orig = snapshot(root);
    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'p-names')] } });
    const srv = await startServer({
      args: [
        '--routes',
        routes,
        '--photos-root',
        root,
        '--api-key',
        'key-acme:acme',
        '--api-key',
        'key-plain',
        '--jwt-secret',
        SECRET,
      ],
      env: { FAKE_KEY: 'k' },
    });
    const exp = Math.floor(Date.now() / 1000) + 600;
    const cases = [
      [{ sub: '../globex/x', tenant: 'acme' }, 'bad_request', /user name "\.\.\/globex\/x" cannot be a folder name/],
      [{ sub: '..', tenant: 'acme' }, 'bad_request', /cannot be a folder name: the name starts with '\.'/],
      [{ sub: 'al\\ice', tenant: 'acme' }, 'bad_request', /holds a character other than/],
      [{ sub: 'alice', tenant: '../globex' }, 'bad_request', /tenant name "\.\.\/globex" cannot be a folder name/],
      [{ sub: 'alice', tenant: '.' }, 'bad_request', /tenant name "\." cannot be a folder name/],
      [{ sub: 'acme' }, 'forbidden', /also the name of a tenant/],
      [{ sub: 'bob', tenant: 'acme' }, 'not_found', /looks for the folder acme\/bob under --photos-root/],
      // The real path, and what to do.
      [
        { sub: 'bob', tenant: 'acme' },
        'not_found',
        new RegExp(`no photo library for you at ${RE(path.join(root, 'acme', 'bob'))} \\(no such folder\\).*Create it`),
      ],
    ];
    for (const [claims, code, message] of cases) {
      const c = await connect(srv.port, { token: mintJwt(SECRET, { ...claims, exp }), hello: true });
      const err = await failureOf(c);
      assert.equal(err.code, code, JSON.stringify(claims));
      assert.match(err.message, message);
      assert.ok(!/\u202e/.test(err.message), 'a bidi control is never shown as it is');
      c.close();
    }
    // A bidi control in a name is refused before any agent sees it (protocol/names.h).
    const c = await connect(srv.port);
    const refused = await c.hello(mintJwt(SECRET, { sub: 'al\u202eice', tenant: 'acme', exp }));
    assert.equal(refused.code, 'unauthenticated', JSON.stringify(refused));
    assert.deepEqual(snapshot(root), orig, 'nothing moved anywhere');
    fs.rmSync(root, { recursive: true, force: true });
  },
);

// A corpus of hostile inputs (corpus/hostile.jsonl), each with its expected
// error; after each one: no session changed (session.list heads and states of
// both users identical, no event reached an attached observer) and the socket
// is still usable unless a close was expected. Plus floods of say and
// session.open against the default rate limit.
import './env.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, mintJwt, openSession, sleep, waitState, within } from '../integration/harness.mjs';
import { ftest, RawWs } from './lib.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CORPUS = fs
  .readFileSync(path.join(HERE, 'corpus', 'hostile.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const SECRET = 'faults-hostile-secret-0123456789abcdefghijkl';
const now = () => Math.floor(Date.now() / 1000);
const LIMIT = 1 << 20; // the default --max-frame-bytes

function tokens() {
  const claims = { sub: 'mallory', tenant: 't1', exp: now() + 600 };
  const good = mintJwt(SECRET, claims);
  const [h, p, s] = good.split('.');
  const flipped = Buffer.from(s, 'base64url');
  flipped[0] ^= 1;
  return {
    none: mintJwt(SECRET, claims, { alg: 'none' }),
    badsig: `${h}.${p}.${flipped.toString('base64url')}`,
    expired: mintJwt(SECRET, { ...claims, exp: now() - 120 }),
    hs512: mintJwt(SECRET, claims, { header: { alg: 'HS512' } }),
    garbage: 'garbage',
    empty: '',
    noexp: mintJwt(SECRET, { sub: 'mallory', tenant: 't1' }),
    nosub: mintJwt(SECRET, { tenant: 't1', exp: now() + 600 }),
    tampered: `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'alice' })).toString('base64url')}.${s}`,
    huge: `${h}.${'A'.repeat(20000)}.${s}`,
    othersecret: mintJwt('another-secret-of-sufficient-length-000000', claims),
    twodots: 'a.b',
  };
}

function substitute(v, vars) {
  if (typeof v === 'string') {
    if (v.startsWith('$TOK:')) return vars.tok[v.slice(5)];
    return v.replace(/\$(SQ|SA|S|Q|A)\b/g, (_, k) => vars[k]);
  }
  if (Array.isArray(v)) return v.map((x) => substitute(x, vars));
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, substitute(x, vars)]));
  return v;
}

/** The bytes (and opcode) an entry sends, and the id its reply must carry (or null). */
function payloadOf(e, vars, n) {
  if (e.frame) {
    const f = substitute(e.frame, vars);
    let id = null;
    if (!e.noid && !('id' in f)) {
      id = `h${n}`;
      f.id = id;
    } else if (typeof f.id === 'string') id = f.id;
    return { op: 1, data: Buffer.from(JSON.stringify(f)), id };
  }
  if (e.text !== undefined) return { op: 1, data: Buffer.from(substitute(e.text, vars)), id: null };
  if (e.hex !== undefined) {
    const s = Buffer.from(e.hex, 'hex').toString('latin1').replace(/\$S\b/g, vars.S);
    return { op: 1, data: Buffer.from(s, 'latin1'), id: null };
  }
  if (e.binary !== undefined) return { op: 2, data: Buffer.from(substitute(e.binary, vars)), id: null };
  const [kind, arg] = e.gen.split(':');
  const k = Number(arg);
  if (kind === 'deep') return { op: 1, data: Buffer.from('['.repeat(k) + ']'.repeat(k)), id: null };
  if (kind === 'deepobj') return { op: 1, data: Buffer.from('{"a":'.repeat(k) + '1' + '}'.repeat(k)), id: null };
  if (kind === 'deepmeta') {
    const id = `h${n}`;
    return {
      op: 1,
      data: Buffer.from(
        `{"type":"session.open","id":"${id}","agent":"echo","metadata":${'{"a":'.repeat(k)}1${'}'.repeat(k)}}`,
      ),
      id,
    };
  }
  if (kind === 'deepvalue') {
    const id = `h${n}`;
    return {
      op: 1,
      data: Buffer.from(
        `{"type":"answer","id":"${id}","session":"${vars.SQ}","question_id":"${vars.Q}","value":${'['.repeat(k)}"yes"${']'.repeat(k)}}`,
      ),
      id,
    };
  }
  if (kind === 'over') {
    const pre = `{"type":"say","session":"${vars.S}","client_msg_id":"big","text":"`;
    return { op: 1, data: Buffer.from(pre + 'x'.repeat(k * LIMIT - pre.length - 2) + '"}'), id: null };
  }
  throw new Error(`unknown gen ${e.gen}`);
}

async function rawAuthed(port, token, attach = []) {
  const r = await RawWs.connect(port);
  const w = await r.request({ type: 'hello', client: 'hostile/1', token, id: 'hello' });
  assert.equal(w?.type, 'welcome', JSON.stringify(w));
  for (const s of attach) {
    const a = await r.request({ type: 'session.attach', session: s, id: `att-${s}`, after: 0 });
    assert.equal(a?.type, 'ok', JSON.stringify(a));
  }
  return r;
}

const view = (list) =>
  list.sessions
    .map(({ session, agent, state, head, title }) => ({ session, agent, state, head, title }))
    .sort((a, b) => a.session.localeCompare(b.session));

ftest(
  `hostile corpus (${CORPUS.length} inputs): each gets its expected error, no session changes, the socket stays usable`,
  async ({ startServer }) => {
    const srv = await startServer({
      args: [
        '--api-key',
        'k1:t1',
        '--jwt-secret',
        SECRET,
        '--echo-delay-ms',
        '1',
        '--rate-msgs-per-s',
        '100000',
        '--rate-burst',
        '100000',
      ],
    });
    const aliceTok = mintJwt(SECRET, { sub: 'alice', tenant: 't1', exp: now() + 3600 });
    const malTok = mintJwt(SECRET, { sub: 'mallory', tenant: 't1', exp: now() + 3600 });
    const owner = await connect(srv.port, { token: aliceTok, name: 'owner' });
    const S = (await openSession(owner)).session;
    await waitState(owner, S, 'idle', 0);
    await owner.ok({ type: 'say', session: S, text: 'hello there', client_msg_id: 'h1' });
    await waitState(owner, S, 'idle', 2);
    const SQ = (await openSession(owner)).session;
    await owner.ok({ type: 'say', session: SQ, text: 'ask', client_msg_id: 'q1' });
    const Q = (await owner.waitEvent((e) => e.session === SQ && e.type === 'question')).question_id;
    await waitState(owner, SQ, 'waiting_input', 0);
    const SA = (await openSession(owner)).session;
    await owner.ok({ type: 'say', session: SA, text: 'plan', client_msg_id: 'a1' });
    const A = (await owner.waitEvent((e) => e.session === SA && e.type === 'approval')).approval_id;
    await waitState(owner, SA, 'waiting_approval', 0);
    const vars = { S, SQ, SA, Q, A, tok: tokens() };

    // The observer: another socket of alice's, attached to all three sessions.
    const watch = await connect(srv.port, { token: aliceTok, name: 'watch' });
    for (const s of [S, SQ, SA])
      await watch.ok({ type: 'session.attach', session: s, after: 1_000_000 }).catch(async () =>
        watch.ok({
          type: 'session.attach',
          session: s,
          after: (await owner.ok({ type: 'session.list' })).sessions.find((x) => x.session === s).head,
        }),
      );
    await sleep(100);
    let watchEvents0 = watch.events.length;
    const before = view(await watch.ok({ type: 'session.list' }));
    assert.equal(before.length, 3);
    const malList = async (sock) => (await sock.request({ type: 'session.list', id: `ml${Math.random()}` }))?.sessions;

    let self = await rawAuthed(srv.port, aliceTok, [S, SQ, SA]);
    let other = await rawAuthed(srv.port, malTok);
    const failures = [];
    const summary = {};
    let n = 0;
    for (const e of CORPUS) {
      n++;
      let sock;
      if (e.as === 'fresh') sock = await RawWs.connect(srv.port);
      else if (e.as === 'other') sock = other;
      else sock = self;
      const { op, data, id } = payloadOf(e, vars, n);
      const from = sock.frames.length;
      const fail = (msg) => failures.push(`#${n} ${e.name}: ${msg}`);
      sock.sendFrame(op, data);
      if (e.expect.code) {
        const r = await sock.waitFrame(
          (f) => f.type === 'error' || f.type === 'ok' || f.type === 'welcome' || (id && f.re === id),
          8000,
          from,
        );
        if (!r) fail(`no reply (closed=${sock.ended} code=${sock.closeCode})`);
        else {
          summary[r.code ?? r.type] = (summary[r.code ?? r.type] ?? 0) + 1;
          const codes = [e.expect.code].flat();
          if (r.type !== 'error' || !codes.includes(r.code))
            fail(`expected error ${e.expect.code}, got ${JSON.stringify(r).slice(0, 300)}`);
          else {
            if (id && e.expect.re !== false && r.re !== id) fail(`error without re=${id}: ${JSON.stringify(r)}`);
            if (typeof r.message !== 'string' || typeof r.retryable !== 'boolean')
              fail(`error lacks message/retryable: ${JSON.stringify(r)}`);
          }
        }
      }
      if (e.expect.close) {
        const c = await within(sock.closed, 8000);
        if (!c) fail(`socket not closed (expected ${e.expect.close})`);
        else if (sock.closeCode !== e.expect.close) fail(`close code ${sock.closeCode}, expected ${e.expect.close}`);
        sock.destroy();
        if (e.as === 'self') self = await rawAuthed(srv.port, aliceTok, [S, SQ, SA]);
        if (e.as === 'other') other = await rawAuthed(srv.port, malTok);
      } else if (e.expect.then === 'unauthenticated') {
        const p = await sock.ping(`p${n}`, 5000);
        if (p?.code !== 'unauthenticated') fail(`a ping afterwards got ${JSON.stringify(p)}, expected unauthenticated`);
        const c = await within(sock.closed, 5000);
        if (!c || sock.closeCode !== 4001) fail(`then close ${sock.closeCode}, expected 4001`);
      } else {
        const p = await sock.ping(`p${n}`, 5000);
        if (p?.type !== 'pong')
          fail(
            `socket not usable afterwards: ping got ${JSON.stringify(p)} (closed=${sock.ended} code=${sock.closeCode})`,
          );
        const extra = sock.frames.slice(from).filter((f) => f.type !== 'error' && f.type !== 'pong');
        if (extra.length) fail(`unexpected frames: ${JSON.stringify(extra).slice(0, 300)}`);
        const errs = sock.frames.slice(from).filter((f) => f.type === 'error');
        if (errs.length > 1) fail(`${errs.length} errors for one frame: ${JSON.stringify(errs).slice(0, 300)}`);
      }
      if (e.as === 'fresh') sock.destroy();
      // Nothing changed.
      const after = view(await watch.ok({ type: 'session.list' }));
      try {
        assert.deepEqual(after, before);
      } catch {
        fail(`alice's sessions changed: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
        before.splice(0, before.length, ...after);
      }
      if (watch.events.length !== watchEvents0) {
        fail(`the observer received events: ${JSON.stringify(watch.events.slice(watchEvents0)).slice(0, 400)}`);
        watchEvents0 = watch.events.length;
      }
      if (e.as === 'other') {
        const ml = await malList(other);
        if (!Array.isArray(ml) || ml.length !== 0) fail(`mallory's sessions: ${JSON.stringify(ml)}`);
      }
    }
    console.log(`# hostile corpus: ${CORPUS.length} inputs, replies by code ${JSON.stringify(summary)}`);
    assert.ok(watch.isOpen && owner.isOpen);
    assert.deepEqual(
      failures,
      [],
      `${failures.length} of ${CORPUS.length} hostile inputs misbehaved:\n${failures.join('\n')}`,
    );
  },
  { timeout: 120_000 },
);

ftest(
  'flood of say (default rate limit): rate_limited with retry_after_s and re; every accepted say applied exactly once',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '0'] });
    const c = await connect(srv.port, { hello: true, name: 'flooder' });
    const { session } = await openSession(c);
    await waitState(c, session, 'idle', 0);
    const N = 600;
    const replies = [];
    for (let i = 0; i < N; i++)
      replies.push(c.request({ type: 'say', session, text: `f${i}`, client_msg_id: `f${i}` }, 20_000));
    const rs = await Promise.all(replies);
    const ok = rs.filter((r) => r.type === 'ok');
    const limited = rs.filter((r) => r.type === 'error' && r.code === 'rate_limited');
    const other = rs.filter((r) => r.type === 'error' && r.code !== 'rate_limited');
    console.log(
      `# say flood: ${ok.length} ok, ${limited.length} rate_limited, other ${JSON.stringify(other.map((r) => r.code))}`,
    );
    assert.ok(limited.length > 0, 'the flood is rate limited');
    assert.ok(ok.length <= 260, `${ok.length} accepted: the burst is 200`);
    for (const r of limited) {
      assert.equal(r.retryable, true);
      assert.ok(typeof r.retry_after_s === 'number' && r.retry_after_s > 0, JSON.stringify(r));
    }
    // Refused says can be turned down with conflict (a turn in flight) but never applied.
    for (const r of other) assert.equal(r.code, 'conflict', JSON.stringify(r));
    await sleep(1500);
    await waitState(c, session, 'idle', c.maxSeq(session) - 1, 10_000).catch(() => {});
    const users = c.sessionEvents(session).filter((e) => e.type === 'user');
    const okIds = new Set(ok.map((r) => r.re));
    const applied = users.map((u) => u.client_msg_id);
    assert.equal(new Set(applied).size, applied.length, 'no say applied twice');
    assert.equal(
      applied.length,
      ok.filter((r) => !r.duplicate).length,
      `user events ${applied.length} vs accepted says ${ok.length}`,
    );
    assert.ok(c.isOpen);
    assert.ok(okIds.size === ok.length);
    // And the socket recovers.
    await sleep(1000);
    assert.equal((await c.ping()).type, 'pong');
  },
  { timeout: 60_000 },
);

ftest(
  'flood of session.open: rate_limited beyond the burst; the list holds exactly the sessions whose open got ok',
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--echo-delay-ms', '1'] });
    const c = await connect(srv.port, { hello: true, name: 'opener' });
    const N = 500;
    const rs = await Promise.all(
      Array.from({ length: N }, () => c.request({ type: 'session.open', agent: 'echo' }, 20_000)),
    );
    const ok = rs.filter((r) => r.type === 'ok');
    const limited = rs.filter((r) => r.code === 'rate_limited');
    console.log(`# session.open flood: ${ok.length} ok, ${limited.length} rate_limited`);
    assert.equal(
      ok.length + limited.length,
      N,
      JSON.stringify(rs.filter((r) => r.type !== 'ok' && r.code !== 'rate_limited').slice(0, 3)),
    );
    assert.ok(limited.length > 0);
    await sleep(1200);
    const c2 = await connect(srv.port, { hello: true, name: 'lister' });
    const listed = []; // session.list is paged: follow `next` to the end
    for (let after; ;) {
      const page = await c2.ok({ type: 'session.list', limit: 200, ...(after ? { after } : {}) });
      listed.push(...page.sessions.map((x) => x.session));
      if (page.next === null) break;
      after = page.next;
    }
    assert.deepEqual(listed.sort(), ok.map((r) => r.session).sort());
  },
  { timeout: 60_000 },
);

// Upgrade without a gap on one machine (server/README.md, "Upgrade"): a new
// binary started with --takeover on the same port and data directory takes
// over from the running one while 100 chat sessions stream. Every client's
// log is contiguous (no gap, no duplicate), every answer is finished by the
// process that began it and never asked of the model twice, no client gets
// an error frame, and the sockets are closed with 1012 only. Then a second
// upgrade straight after the first.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTether, startTakeover } from './takeover.mjs';
import { checkMessages, connect, fakeTarget, itest, openSession, sleep, writeRoutesFile } from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const N = 100;
const WORDS = 30;
const TOKEN_DELAY_MS = 50; // a stream of about 1.5 s
const TEXT = Array.from({ length: WORDS }, (_, i) => `w${i + 1}`).join(' ');

const fp = useFakeProvider();

function routesFor(P) {
  return writeRoutesFile({
    routes: {
      default: [fakeTarget(fp.url, P, { timeout_ms: { connect: 2000, first_byte: 10000, idle: 10000, total: 60000 } })],
    },
    retry: { max_attempts: 1 },
  });
}

/** One user with one session, reconnecting at once on 1012 and resuming by seq. */
class Rider {
  constructor(port, i) {
    this.port = port;
    this.name = `u${i}`;
    this.conns = [];
    this.session = null;
    this.done = false;
    this.resumes = []; // ms from a 1012 close to the attach's ok
    this.failures = [];
  }
  get events() {
    return this.conns.flatMap((c) => c.events);
  }
  get errors() {
    return this.conns.flatMap((c) => c.errors);
  }
  get lastSeq() {
    return this.events.reduce((m, e) => Math.max(m, e.seq), 0);
  }
  async _connect() {
    for (let attempt = 0; ; attempt++) {
      try {
        const c = await connect(this.port, { hello: true, name: `${this.name}.${this.conns.length}` });
        this.conns.push(c);
        c.closed.then((info) => this._onClose(info));
        return c;
      } catch (e) {
        if (attempt >= 200) throw e;
        await sleep(10);
      }
    }
  }
  async open() {
    const c = await this._connect();
    this.session = (await openSession(c, 'chat', { input: {} })).session;
    return c;
  }
  _onClose(info) {
    if (this.done) return;
    if (info.code !== 1012) {
      this.failures.push(`closed with ${info.code} ${info.reason}`);
      return;
    }
    const t0 = Date.now();
    this._connect()
      .then((c) => c.ok({ type: 'session.attach', session: this.session, after: this.lastSeq }, 20_000))
      .then(() => this.resumes.push(Date.now() - t0))
      .catch((e) => this.failures.push(`resume: ${e.message}`));
  }
  get conn() {
    return this.conns[this.conns.length - 1];
  }
  /** Say on the current socket (again on the next one if it closes before the ok). */
  async say(text, id) {
    for (let i = 0; i < 5; i++) {
      try {
        return await this.conn.ok({ type: 'say', session: this.session, text, client_msg_id: id }, 20_000);
      } catch (e) {
        if (i === 4) throw e;
        await sleep(100);
      }
    }
  }
  turnsEnded() {
    return this.events.filter((e) => e.type === 'message.end').length;
  }
  sawDeltaOfTurn(k) {
    const starts = this.events.filter((e) => e.type === 'message.start');
    return (
      starts.length >= k && this.events.some((e) => e.type === 'delta' && e.message_id === starts[k - 1].message_id)
    );
  }
}

async function waitAll(riders, pred, what, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const missing = riders.filter((r) => !pred(r));
    if (missing.length === 0) return;
    const failed = riders.find((r) => r.failures.length);
    if (failed) throw new Error(`${failed.name}: ${failed.failures.join('; ')}`);
    if (Date.now() > deadline)
      throw new Error(`${missing.length} clients still waiting for ${what}; e.g. ${missing[0].conn.lastFrames(8)}`);
    await sleep(25);
  }
}

function checkRider(r, turns) {
  const seqs = r.events.map((e) => e.seq);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => i + 1),
    `${r.name}: log not contiguous from 1: ${JSON.stringify(seqs)}`,
  );
  assert.deepEqual(r.errors, [], `${r.name}: error frames`);
  assert.deepEqual(r.failures, [], `${r.name}: failures`);
  const msgs = [...checkMessages(assert, r.events).values()];
  assert.equal(msgs.length, turns, `${r.name}: ${msgs.length} answers for ${turns} turns`);
  for (const m of msgs) {
    assert.ok(m.end && !m.discard, `${r.name}: answer ${m.id} not finished: ${JSON.stringify(m.discard)}`);
    assert.equal(m.end.text, TEXT, `${r.name}: answer ${m.id}`);
    assert.equal(m.deltas.map((d) => d.text).join(''), TEXT, `${r.name}: streamed text of ${m.id}`);
  }
}

/** Start turn k on every rider, wait until each streams, hand over to a new process. */
async function upgradeDuringTurn(riders, k, port, dataDir, args, old) {
  await Promise.all(riders.map((r) => r.say(`turn ${k}`, `${r.name}-t${k}`)));
  await waitAll(riders, (r) => r.sawDeltaOfTurn(k), `a delta of turn ${k}`, 30_000);
  const t0 = Date.now();
  const next = startTakeover(port, dataDir, args);
  const exit = await old.exited;
  const handoverMs = Date.now() - t0;
  assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, 'the old process exits 0');
  await waitAll(riders, (r) => r.turnsEnded() >= k && r.resumes.length >= k, `turn ${k} ended and resumed`, 60_000);
  return { next, handoverMs };
}

itest(
  `upgrade during ${N} streaming sessions: nothing lost, no answer re-run, no error; then a second upgrade`,
  async ({ startServer }) => {
    const P = 'upgrade';
    fp.script({ text: TEXT, token_delay_ms: TOKEN_DELAY_MS, repeat: 'forever', match: { prefix: P } });
    const args = ['--routes', routesFor(P), '--upgrade-grace-ms', '30000', '--log-level', 'warn'];
    const a = await startServer({ args: [...args, '--max-sessions-per-user', '1000'], env: { FAKE_KEY: 'k' } });
    const riders = Array.from({ length: N }, (_, i) => new Rider(a.port, i));
    const procs = [];
    try {
      await Promise.all(riders.map((r) => r.open()));
      const first = await upgradeDuringTurn(riders, 1, a.port, a.dataDir, args, a);
      procs.push(first.next);
      assert.equal(fp.requests({ prefix: P }).length, N, 'one model call per answer after the first upgrade');
      const second = await upgradeDuringTurn(riders, 2, a.port, a.dataDir, args, first.next);
      procs.push(second.next);
      assert.equal(fp.requests({ prefix: P }).length, 2 * N, 'one model call per answer after the second upgrade');
      await sleep(200); // anything late would show up now
      for (const r of riders) checkRider(r, 2);
      for (const r of riders) r.done = true;
      const resumes = riders.flatMap((r) => r.resumes).sort((x, y) => x - y);
      console.log(
        `# upgrade: hand-over ${first.handoverMs} ms, ${second.handoverMs} ms; ` +
          `resume after 1012 p50 ${resumes[resumes.length >> 1]} ms, max ${resumes[resumes.length - 1]} ms`,
      );
      second.next.proc.kill('SIGTERM');
      const end = await second.next.exited;
      assert.equal(end.code, 0, second.next.output.slice(-4000));
    } catch (e) {
      for (const p of procs) console.error(`--- takeover process output:\n${p.output.slice(-6000)}`);
      throw e;
    } finally {
      for (const r of riders) r.done = true;
      for (const p of procs) if (p.alive()) p.proc.kill('SIGKILL');
      await Promise.all(procs.map((p) => p.exited));
    }
  },
  { timeout: 240_000 },
);

itest('--takeover with nobody holding the data directory starts as usual', async ({ startServer }) => {
  const a = await startServer({ args: ['--takeover', 'on'] });
  assert.match(a.output, /takeover: no running tether holds the data directory/);
  const c = await connect(a.port, { hello: true });
  await openSession(c, 'echo');
});

itest(
  'a plain start on the port of a running tether fails: SO_REUSEPORT is joined only by --takeover',
  async ({ startServer }) => {
    const a = await startServer();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-upgrade-'));
    try {
      const p = spawnTether(a.port, dir, []);
      const exit = await p.exited;
      assert.equal(exit.code, 1, p.output);
      assert.match(p.output, /"cannot listen".*Address already in use/);
      assert.ok(a.alive);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

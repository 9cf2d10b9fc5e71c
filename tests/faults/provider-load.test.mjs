// Provider faults under load: 50 concurrent chat sessions while the fake
// provider serves 429 storms (retry_after), stalls, resets and malformed
// chunks. No session hangs (every turn ends with message.end or an error
// event, then idle, within a bound), /healthz stays fast, and RSS after a
// second identical wave stays within a bound of the first.
import './env.mjs';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { checkMessages, connect, fakeTarget, openSession, sleep, writeRoutesFile } from '../integration/harness.mjs';
import { ftest, healthzProbe, isSanitized, percentile, rssKiB } from './lib.mjs';

const N = 50;
const TURN_BOUND_MS = 25_000;
const RSS_GROWTH_MB = isSanitized() ? 48 : 16;

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

function queueFaults(P) {
  const m = (x) => ({ ...x, match: { prefix: `${P}-a` } });
  fp.script([
    m({ status: 429, retry_after: 1, repeat: 20 }),
    m({ text: 'one two three four five', stall_after: 2, repeat: 8 }),
    m({ text: 'one two three four five', reset_after: 2, repeat: 8 }),
    m({ text: 'one two three four five', malformed_after: 1, repeat: 8 }),
    m({ status: 503, repeat: 6 }),
    m({ stall: true, repeat: 4 }),
  ]);
  fp.script({ status: 429, retry_after: 1, repeat: 10, match: { prefix: `${P}-b` } });
}

async function wave(clients, sessions, tag) {
  const t0 = Date.now();
  const results = await Promise.all(
    clients.map(async (c, i) => {
      const s = sessions[i];
      const from = c.maxSeq(s);
      await c.ok({ type: 'say', session: s, text: `${tag} question ${i}`, client_msg_id: `${tag}-${i}` }, 10_000);
      const user = await c.waitEvent((e) => e.session === s && e.type === 'user' && e.seq > from, TURN_BOUND_MS);
      const idle = await c
        .waitEvent(
          (e) => e.session === s && e.type === 'state' && e.state === 'idle' && e.seq > user.seq,
          TURN_BOUND_MS,
        )
        .catch((e) => {
          throw new Error(
            `session ${i} hung: no idle within ${TURN_BOUND_MS} ms of its say (${e.message.slice(0, 1500)})`,
          );
        });
      const evs = c.sessionEvents(s).filter((e) => e.seq >= user.seq && e.seq <= idle.seq);
      const msgs = checkMessages(assert, evs);
      for (const m of msgs.values()) assert.ok(m.end || m.discard, `session ${i}: message ${m.id} unfinished`);
      const ends = evs.filter((e) => e.type === 'message.end');
      const errs = evs.filter((e) => e.type === 'error');
      assert.equal(
        ends.length + errs.length,
        1,
        `session ${i}: a turn ends with one message.end or one error: ${JSON.stringify(evs).slice(0, 800)}`,
      );
      if (ends.length) assert.equal(ends[0].text, `echo: ${tag} question ${i}`);
      return { ok: ends.length === 1, ms: Date.now() - t0, err: errs[0]?.code };
    }),
  );
  return results;
}

async function load(startServer, { P, breaker, minOk }) {
  const routes = writeRoutesFile({
    routes: {
      default: [
        fakeTarget(fp.url, `${P}-a`, {
          region: 'a',
          timeout_ms: { connect: 1000, first_byte: 1500, idle: 500, total: 8000 },
        }),
        fakeTarget(fp.url, `${P}-b`, {
          region: 'b',
          timeout_ms: { connect: 1000, first_byte: 1500, idle: 500, total: 8000 },
        }),
      ],
    },
    retry: { max_attempts: 4, base_ms: 50, max_backoff_ms: 400, max_total_ms: 10000 },
    ...(breaker ? { breaker } : {}),
  });
  const env = {
    FAKE_KEY: 'fake-key',
    ...(isSanitized() ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=8` } : {}),
  };
  const srv = await startServer({ args: ['--routes', routes], env });
  const clients = [];
  const sessions = [];
  for (let i = 0; i < N; i++) {
    const c = await connect(srv.port, { hello: true, name: `load${i}` });
    const { session } = await openSession(c, 'chat', { input: {} });
    clients.push(c);
    sessions.push(session);
  }
  const stats = [];
  let rss1 = 0;
  for (const w of [1, 2]) {
    queueFaults(P);
    const probe = healthzProbe(srv.port, 100);
    const res = await wave(clients, sessions, `w${w}`);
    const { samples, failures } = await probe.stop();
    await sleep(500);
    const rss = rssKiB(srv.proc.pid);
    if (w === 1) rss1 = rss;
    const s = {
      wave: w,
      ok: res.filter((r) => r.ok).length,
      errors: res.filter((r) => !r.ok).map((r) => r.err),
      slowest_ms: Math.max(...res.map((r) => r.ms)),
      healthz_p50_ms: +percentile(samples, 0.5).toFixed(1),
      healthz_max_ms: +Math.max(...samples).toFixed(1),
      rss_kib: rss,
    };
    const seen = {};
    for (const q of fp.requests().filter((x) => x.prefix.startsWith(P))) {
      const k = `${q.prefix}:${q.fault ?? 'ok'}:${q.status}`;
      seen[k] = (seen[k] ?? 0) + 1;
    }
    fp.reset();
    const errs = {};
    for (const e of s.errors) errs[e] = (errs[e] ?? 0) + 1;
    s.errors = errs;
    stats.push(s);
    console.log(`# provider load: ${JSON.stringify(s)}; provider requests ${JSON.stringify(seen)}`);
    assert.deepEqual(failures, [], '/healthz failed during the wave');
    assert.ok(Math.max(...samples) < 1000, `/healthz took up to ${Math.max(...samples)} ms under load`);
    // Giving up is fine (the faults outnumber the retries); hanging or an odd code is not.
    for (const e of Object.keys(s.errors))
      assert.ok(['rate_limited', 'unavailable', 'timeout'].includes(e), `turn ended with error ${e}`);
    assert.ok(
      s.ok >= minOk,
      `only ${s.ok} of ${N} turns completed (errors ${JSON.stringify(s.errors)}, provider requests ${JSON.stringify(seen)})`,
    );
  }
  const growth = (stats[1].rss_kib - rss1) / 1024;
  assert.ok(
    growth < RSS_GROWTH_MB,
    `RSS grew ${growth.toFixed(1)} MB from wave 1 to wave 2 (bound ${RSS_GROWTH_MB} MB)`,
  );
  return { srv, clients, sessions };
}

ftest(
  `${N} concurrent chat sessions through 429 storms, stalls, resets and malformed streams (lenient breaker): turns complete, no hang, bounded memory`,
  async ({ startServer }) => {
    // With the default breaker (5 failures open a target for 30 s) the storm opens both
    // targets; here retries happen, so nearly every turn must complete.
    const { clients, sessions } = await load(startServer, {
      P: 'load',
      breaker: { failures: 200, cooldown_ms: 500 },
      minOk: Math.ceil(N * 0.9),
    });
    const r = await wave(clients.slice(0, 5), sessions.slice(0, 5), 'after');
    assert.ok(
      r.every((x) => x.ok),
      'plain turns after the storm',
    );
  },
  { timeout: 150_000 },
);

ftest(
  `${N} concurrent chat sessions through the same storm with the default breaker: every turn ends (message.end or error), none hangs`,
  async ({ startServer }) => {
    await load(startServer, { P: 'loadb', breaker: null, minOk: 0 });
  },
  { timeout: 150_000 },
);

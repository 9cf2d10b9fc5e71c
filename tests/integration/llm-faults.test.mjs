// Provider faults seen through the chat agent: retries, failover between two
// regions, timeouts, context trimming, and giving up. Each test has its own
// base-URL prefixes at the fake provider, so steps are never shared.

import assert from 'node:assert/strict';
import {
  checkMessages,
  connect,
  fakeTarget,
  itest,
  llmCallLines,
  openSession,
  sayAndWait,
  shownText,
  sleep,
  writeRoutesFile,
} from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const TIMEOUTS = { connect: 1000, first_byte: 2000, idle: 500, total: 10000 };
const RETRY = { max_attempts: 4, base_ms: 50, max_backoff_ms: 400, max_total_ms: 8000 };

/** A chat server whose route "default" has region a (and b, unless single) at prefixes `${P}-a`, `${P}-b`. */
async function faultServer(startServer, P, { single = false } = {}) {
  const targets = [fakeTarget(fp.url, `${P}-a`, { region: 'a', timeout_ms: TIMEOUTS })];
  if (!single) targets.push(fakeTarget(fp.url, `${P}-b`, { region: 'b', timeout_ms: TIMEOUTS }));
  const routes = writeRoutesFile({
    routes: { default: targets },
    prices: { 'gpt-4o-mini': { prompt_per_mtok: 0.15, completion_per_mtok: 0.6 } },
    retry: RETRY,
  });
  const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'fake-key' } });
  const c = await connect(srv.port, { hello: true });
  const r = await openSession(c, 'chat', { input: {} });
  await c.waitEvent((e) => e.session === r.session && e.seq === 1);
  return { srv, c, session: r.session };
}

const reqsOf = (P) => fp.requests().filter((r) => r.prefix === `${P}-a` || r.prefix === `${P}-b`);
const regions = (P) => reqsOf(P).map((r) => r.prefix.slice(P.length + 1));
const ends = (evs) => evs.filter((e) => e.type === 'message.end');

/** The turn ended with one message.end of `text`, shown exactly once, no error. */
function assertCompleted(events, text) {
  const msgs = checkMessages(assert, events);
  const e = ends(events);
  assert.equal(e.length, 1, `one message.end: ${JSON.stringify(events)}`);
  assert.equal(e[0].text, text);
  assert.equal(shownText(events), text, 'deltas of non-discarded messages give the text exactly once');
  assert.ok(!events.some((x) => x.type === 'error'), JSON.stringify(events));
  for (const m of msgs.values()) assert.ok(m.end || m.discard, `message ${m.id} neither ended nor discarded`);
  return msgs;
}

itest(
  'retry after partial output: message.discard {reason:"retry"}, then a new message id streams the whole text once',
  async ({ startServer }) => {
    const P = 'f-partial';
    const text = 'alpha beta gamma delta epsilon';
    fp.script([
      { text, reset_after: 2, match: { prefix: `${P}-a` } },
      { text, match: { prefix: `${P}-a` } },
    ]);
    const { c, session } = await faultServer(startServer, P, { single: true });
    const { events } = await sayAndWait(c, session, 'tell me', 'c1');
    const msgs = assertCompleted(events, text);
    assert.equal(msgs.size, 2, `two assistant messages: ${JSON.stringify(events)}`);
    const [first, second] = [...msgs.values()];
    assert.equal(first.discard?.reason, 'retry', JSON.stringify(first.discard));
    assert.equal(first.deltas.map((d) => d.text).join(''), 'alpha beta');
    assert.notEqual(second.id, first.id);
    assert.ok(first.discard.seq < second.start.seq, 'the discard comes before the new message.start');
    assert.equal(second.end.text, text);
    assert.equal(reqsOf(P).length, 2);
  },
);

itest('429 with retry_after on region a: the next attempt goes to region b at once', async ({ startServer }) => {
  const P = 'f-429-failover';
  fp.script({ status: 429, retry_after: 5, match: { prefix: `${P}-a` } });
  fp.script({ text: 'answer from b', match: { prefix: `${P}-b` } });
  const { c, session } = await faultServer(startServer, P);
  const t0 = Date.now();
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  assertCompleted(events, 'answer from b');
  assert.ok(!events.some((e) => e.type === 'message.discard'), 'no output was shown before the 429');
  const reqs = reqsOf(P);
  assert.deepEqual(regions(P), ['a', 'b']);
  const gap = reqs[1].time - reqs[0].time;
  assert.ok(gap < 1000, `b asked ${gap} ms after a: failover must not wait out a's retry_after`);
  assert.ok(Date.now() - t0 < 3000);
});

itest(
  '429 with retry_after 1 on a single-target route: the second attempt comes at least 1 s later',
  async ({ startServer }) => {
    const P = 'f-429-wait';
    fp.script([
      { status: 429, retry_after: 1, match: { prefix: `${P}-a` } },
      { text: 'after the wait', match: { prefix: `${P}-a` } },
    ]);
    const { c, session } = await faultServer(startServer, P, { single: true });
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    assertCompleted(events, 'after the wait');
    const reqs = reqsOf(P);
    assert.equal(reqs.length, 2);
    const gap = reqs[1].time - reqs[0].time;
    assert.ok(gap >= 1000, `second attempt ${gap} ms after the first, retry-after was 1 s`);
    assert.ok(gap < 3000, `second attempt ${gap} ms after the first`);
  },
);

itest('500 then success: retried on the route, one message, no discard', async ({ startServer }) => {
  const P = 'f-500';
  fp.script([
    { status: 500, match: { prefix: `${P}-a` } },
    { text: 'fine now', match: { prefix: `${P}-a` } },
  ]);
  const { c, session } = await faultServer(startServer, P, { single: true });
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  const msgs = assertCompleted(events, 'fine now');
  assert.equal(msgs.size, 1, JSON.stringify(events));
  assert.ok(!events.some((e) => e.type === 'message.discard'));
  assert.equal(reqsOf(P).length, 2);
});

itest(
  'stream stalls past the idle timeout: the connection is dropped and the turn retried',
  async ({ startServer }) => {
    const P = 'f-stall';
    const text = 'one two three four five';
    fp.script([
      { text, stall_after: 2, name: `${P}-stall`, match: { prefix: `${P}-a` } },
      { text, match: { prefix: `${P}-a` } },
    ]);
    const { c, session } = await faultServer(startServer, P, { single: true });
    const { events } = await sayAndWait(c, session, 'hi', 'c1');
    const msgs = assertCompleted(events, text);
    assert.equal([...msgs.values()][0].discard?.reason, 'retry', JSON.stringify(events));
    const reqs = reqsOf(P);
    assert.equal(reqs.length, 2);
    assert.equal(reqs[0].step_name, `${P}-stall`);
    assert.equal(reqs[0].client_closed, true, 'Tether hung up on the stalled stream');
    const stalledFor = reqs[0].closed_at - reqs[0].time;
    assert.ok(stalledFor >= 450, `closed ${stalledFor} ms after the request: the idle timeout is 500 ms`);
    assert.ok(stalledFor < 2500, `closed ${stalledFor} ms after the request: the idle timeout is 500 ms`);
  },
);

itest('connection reset mid-stream: retried, the partial message discarded', async ({ startServer }) => {
  const P = 'f-reset';
  const text = 'red green blue yellow';
  fp.script([
    { text, reset_after: 1, match: { prefix: `${P}-a` } },
    { text, match: { prefix: `${P}-a` } },
  ]);
  const { c, session } = await faultServer(startServer, P, { single: true });
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  const msgs = assertCompleted(events, text);
  assert.equal(msgs.size, 2);
  assert.equal([...msgs.values()][0].discard?.reason, 'retry');
  assert.equal(reqsOf(P).length, 2);
});

itest('malformed stream on region a: retried on region b', async ({ startServer }) => {
  const P = 'f-malformed';
  const text = 'served by b region';
  fp.script({ text: 'broken stream here', malformed_after: 1, match: { prefix: `${P}-a` } });
  fp.script({ text, match: { prefix: `${P}-b` } });
  const { c, session } = await faultServer(startServer, P);
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  assertCompleted(events, text);
  assert.deepEqual(regions(P), ['a', 'b']);
});

itest('401 on region a: failover to region b', async ({ startServer }) => {
  const P = 'f-401';
  fp.script({ status: 401, repeat: 'forever', match: { prefix: `${P}-a` } });
  fp.script({ text: 'b answers', match: { prefix: `${P}-b` } });
  const { c, session } = await faultServer(startServer, P);
  const { events } = await sayAndWait(c, session, 'hi', 'c1');
  assertCompleted(events, 'b answers');
  assert.deepEqual(regions(P), ['a', 'b']);
  fp.reset(); // drop the forever step of this test
});

itest(
  'context-length error: the oldest turns are dropped, one retry, a context.trimmed event',
  async ({ startServer }) => {
    const P = 'f-context';
    const { c, session } = await faultServer(startServer, P, { single: true });
    // Three turns answered by the fake's default echo.
    for (let i = 1; i <= 3; i++) await sayAndWait(c, session, `earlier turn number ${i}`, `c${i}`);
    const before = reqsOf(P).length;
    assert.equal(before, 3);
    fp.script([
      { status: 400, match: { prefix: `${P}-a` } },
      { text: 'short enough now', match: { prefix: `${P}-a` } },
    ]);
    const { events } = await sayAndWait(c, session, 'the latest question', 'c4');
    assertCompleted(events, 'short enough now');
    const trimmed = events.filter((e) => e.type === 'context.trimmed');
    assert.equal(trimmed.length, 1, `one context.trimmed: ${JSON.stringify(events)}`);
    assert.ok(
      Number.isInteger(trimmed[0].dropped_messages) && trimmed[0].dropped_messages >= 1,
      JSON.stringify(trimmed[0]),
    );
    assert.equal(typeof trimmed[0].reason, 'string');
    const reqs = reqsOf(P).slice(before);
    assert.equal(reqs.length, 2, 'one retry after the context error');
    const [m1, m2] = [reqs[0].body.messages, reqs[1].body.messages];
    assert.equal(m1.length, 1 + 7, 'system + 3 × (user, assistant) + the new user turn');
    assert.equal(
      m2.length,
      m1.length - trimmed[0].dropped_messages,
      `dropped ${trimmed[0].dropped_messages}: ${JSON.stringify(m2)}`,
    );
    assert.equal(m2[0].role, 'system', 'the system prompt is kept');
    assert.deepEqual(m2.at(-1), m1.at(-1), 'the newest user turn is kept');
    assert.equal(m2.at(-1).content, 'the latest question');
    assert.deepEqual(m2.slice(1), m1.slice(1 + trimmed[0].dropped_messages), 'the oldest turns are the ones dropped');
    assert.equal(m2[1].role, 'user', 'whole turns are dropped: the trimmed transcript starts with a user turn');
  },
);

itest(
  'context trimming on an Anthropic route keeps the transcript starting with a user turn (Anthropic refuses an assistant first)',
  async ({ startServer }) => {
    const P = 'f-context-anthropic';
    const routes = writeRoutesFile({
      routes: {
        default: [
          {
            provider: 'anthropic',
            base_url: `${fp.url}/${P}-a`,
            model: 'claude-3-5-haiku-latest',
            key_env: 'FAKE_KEY',
            region: 'a',
            timeout_ms: TIMEOUTS,
          },
        ],
      },
      retry: RETRY,
    });
    const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'fake-key' } });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'chat', { input: {} });
    for (let i = 1; i <= 3; i++) await sayAndWait(c, session, `earlier turn number ${i}`, `c${i}`);
    const before = reqsOf(P).length;
    assert.equal(before, 3);
    fp.script([
      { status: 400, match: { prefix: `${P}-a` } },
      { text: 'short enough now', match: { prefix: `${P}-a` } },
    ]);
    const { events } = await sayAndWait(c, session, 'the latest question', 'c4');
    assert.ok(
      events.some((e) => e.type === 'context.trimmed'),
      `context.trimmed after Anthropic's "prompt is too long": ${JSON.stringify(events)}`,
    );
    const reqs = reqsOf(P).slice(before);
    assert.equal(reqs.length, 2, 'one retry after the context error');
    const roles = reqs[1].body.messages.map((m) => m.role);
    assert.ok(roles.length < reqs[0].body.messages.length, JSON.stringify(roles));
    assert.equal(
      roles[0],
      'user',
      `the trimmed Anthropic request starts with ${JSON.stringify(roles)}; the real API answers 400 "messages: first message must use the \\"user\\" role"`,
    );
    assertCompleted(events, 'short enough now');
  },
);

itest('context-length error twice: retried only once, then an error event', async ({ startServer }) => {
  const P = 'f-context2';
  const { c, session } = await faultServer(startServer, P, { single: true });
  for (let i = 1; i <= 3; i++) await sayAndWait(c, session, `earlier turn number ${i}`, `c${i}`);
  const before = reqsOf(P).length;
  fp.script({ status: 400, repeat: 3, match: { prefix: `${P}-a` } });
  const { events } = await sayAndWait(c, session, 'the latest question', 'c4');
  await sleep(300);
  assert.equal(reqsOf(P).length - before, 2, 'one retry after the context error, no more');
  const errs = events.filter((e) => e.type === 'error');
  assert.equal(errs.length, 1, JSON.stringify(events));
  assert.equal(errs[0].code, 'bad_request', JSON.stringify(errs[0]));
  assert.equal(errs[0].retryable, false);
  assert.equal(ends(events).length, 0);
  fp.reset();
});

itest(
  'every attempt fails: an error event {code, message, retryable}, state idle, no message.end; one log line per attempt',
  async ({ startServer }) => {
    const P = 'f-allfail';
    fp.script({ status: 500, repeat: 'forever', match: { prefix: `${P}-a` } });
    fp.script({ status: 503, repeat: 'forever', match: { prefix: `${P}-b` } });
    const { srv, c, session } = await faultServer(startServer, P);
    const { events, idle } = await sayAndWait(c, session, 'doomed question ZX-SPECTRUM-48K', 'c1');
    const errs = events.filter((e) => e.type === 'error');
    assert.equal(errs.length, 1, JSON.stringify(events));
    assert.equal(errs[0].code, 'unavailable', JSON.stringify(errs[0]));
    assert.equal(typeof errs[0].message, 'string');
    assert.ok(errs[0].message.length > 0);
    assert.equal(typeof errs[0].retryable, 'boolean');
    assert.ok(errs[0].seq < idle.seq, 'the error comes before the idle state');
    assert.equal(ends(events).length, 0, JSON.stringify(events));
    assert.equal(idle.state, 'idle');
    const n = reqsOf(P).length;
    assert.equal(n, RETRY.max_attempts, `retry.max_attempts attempts, got ${n}: ${JSON.stringify(regions(P))}`);
    assert.ok(regions(P).includes('a') && regions(P).includes('b'), JSON.stringify(regions(P)));
    await sleep(200);
    const lines = llmCallLines(srv.output);
    assert.equal(lines.length, n, `one llm call line per attempt:\n${srv.output}`);
    assert.ok(
      lines.every((l) => l.outcome !== 'ok'),
      JSON.stringify(lines),
    );
    assert.deepEqual(
      lines.map((l) => l.attempt),
      [...Array(n).keys()].map((i) => i + 1),
    );
    assert.deepEqual(
      lines.map((l) => l.region),
      regions(P),
      'each line names the region it tried',
    );
    assert.ok(
      lines.every((l) => l.http_status === 500 || l.http_status === 503),
      JSON.stringify(lines.map((l) => l.http_status)),
    );
    assert.ok(!srv.output.includes('ZX-SPECTRUM-48K'), `the user text appears on stderr:\n${srv.output}`);
    // The session still works afterwards.
    fp.reset();
    fp.script({ text: 'recovered', match: { prefix: `${P}-a` } });
    const again = await sayAndWait(c, session, 'again', 'c2');
    assertCompleted(again.events, 'recovered');
  },
);

itest(
  'failover across providers: OpenAI region a overloaded, the Anthropic target b answers the same turn',
  async ({ startServer }) => {
    const P = 'f-mixed';
    const routes = writeRoutesFile({
      routes: {
        default: [
          fakeTarget(fp.url, `${P}-a`, { region: 'a', timeout_ms: TIMEOUTS }),
          {
            provider: 'anthropic',
            base_url: `${fp.url}/${P}-b`,
            model: 'claude-3-5-haiku-latest',
            key_env: 'FAKE_KEY',
            region: 'b',
            timeout_ms: TIMEOUTS,
          },
        ],
      },
      retry: RETRY,
    });
    fp.script({ status: 503, repeat: 'forever', match: { prefix: `${P}-a` } });
    fp.script({ text: 'Claude takes over', match: { prefix: `${P}-b`, path: '/v1/messages' } });
    const srv = await startServer({ args: ['--routes', routes], env: { FAKE_KEY: 'fake-key' } });
    const c = await connect(srv.port, { hello: true });
    const { session } = await openSession(c, 'chat', { input: {} });
    const { events } = await sayAndWait(c, session, 'hello there', 'c1');
    assertCompleted(events, 'Claude takes over');
    assert.equal(ends(events)[0].usage.model, 'claude-3-5-haiku-latest');
    assert.deepEqual(regions(P), ['a', 'b']);
    const b = reqsOf(P)[1];
    assert.equal(b.route, '/v1/messages');
    assert.equal(b.served_by, 'script');
    assert.deepEqual(
      b.body.messages.map((m) => m.role),
      ['user'],
    );
    assert.match(JSON.stringify(b.body.system), /helpful assistant inside Tether/);
    await sleep(100);
    assert.deepEqual(
      llmCallLines(srv.output).map((l) => [l.provider, l.region]),
      [
        ['openai', 'a'],
        ['anthropic', 'b'],
      ],
    );
    fp.reset();
  },
);

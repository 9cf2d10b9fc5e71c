// A model call's life around the client and the process: cancel, a client
// that goes away mid-generation, and a server killed mid-generation.

import assert from 'node:assert/strict';
import {
  checkMessages,
  connect,
  fakeTarget,
  itest,
  openSession,
  shownText,
  sleep,
  waitState,
  writeRoutesFile,
} from './harness.mjs';
import { useFakeProvider } from './llm-lib.mjs';

const fp = useFakeProvider();

const TIMEOUTS = { connect: 1000, first_byte: 2000, idle: 2000, total: 20000 };

function routesFor(P) {
  return writeRoutesFile({
    routes: { default: [fakeTarget(fp.url, P, { region: 'a', timeout_ms: TIMEOUTS })] },
    prices: { 'gpt-4o-mini': { prompt_per_mtok: 0.15, completion_per_mtok: 0.6 } },
    retry: { max_attempts: 4, base_ms: 50, max_backoff_ms: 400, max_total_ms: 8000 },
  });
}

async function openChat(c) {
  const r = await openSession(c, 'chat', { input: {} });
  await c.waitEvent((e) => e.session === r.session && e.seq === 1);
  return r.session;
}

const words = (n, w = 'word') => Array.from({ length: n }, (_, i) => `${w}${i + 1}`).join(' ');

itest(
  'cancel during generation: ok {cancelled:true}, message.discard {reason:"cancelled"}, idle, upstream connection closed',
  async ({ startServer }) => {
    const P = 'l-cancel';
    const text = words(12);
    fp.script({ text, token_delay_ms: 100, name: `${P}-slow`, match: { prefix: P } });
    const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
    const c = await connect(srv.port, { hello: true });
    const session = await openChat(c);
    await c.ok({ type: 'say', session, text: 'go slowly', client_msg_id: 'c1' });
    await c.waitEvent((e) => e.session === session && e.type === 'delta' && e.text.includes('word2'));
    const r = await c.ok({ type: 'cancel', session });
    assert.equal(r.cancelled, true, JSON.stringify(r));
    const discard = await c.waitEvent((e) => e.session === session && e.type === 'message.discard');
    assert.equal(discard.reason, 'cancelled', JSON.stringify(discard));
    const idle = await waitState(c, session, 'idle', discard.seq - 1);
    assert.ok(idle.seq > discard.seq);
    const rec = fp.requests({ prefix: P })[0];
    await fp.waitFor(() => rec.client_closed, 2000);
    assert.equal(rec.client_closed, true, 'the provider request was aborted');
    assert.ok(rec.chunks_sent < 12, `chunks_sent ${rec.chunks_sent}`);
    assert.equal(rec.finished_at, null);
    await sleep(400);
    const evs = c.sessionEvents(session);
    checkMessages(assert, evs);
    assert.ok(!evs.some((e) => e.type === 'message.end'), `no message.end after a cancel: ${JSON.stringify(evs)}`);
    assert.ok(!evs.some((e) => e.type === 'error'), JSON.stringify(evs));
    assert.equal(fp.requests({ prefix: P }).length, 1, 'a cancel is not retried');
    assert.equal(shownText(evs), '', 'nothing of the cancelled message remains shown');
    // The session takes a new turn afterwards.
    fp.script({ text: 'after cancel', match: { prefix: P } });
    await c.ok({ type: 'say', session, text: 'again', client_msg_id: 'c2' });
    const end = await c.waitEvent((e) => e.session === session && e.type === 'message.end');
    assert.equal(end.text, 'after cancel');
  },
);

itest(
  'a client that disconnects mid-generation does not stop it: reattach with after gets the complete message',
  async ({ startServer }) => {
    const P = 'l-detach';
    const text = words(10, 'tok');
    fp.script({ text, token_delay_ms: 60, match: { prefix: P } });
    const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
    const c1 = await connect(srv.port, { hello: true });
    const session = await openChat(c1);
    await c1.ok({ type: 'say', session, text: 'keep going', client_msg_id: 'c1' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta');
    await c1.terminate();
    const seen = c1.maxSeq(session);
    const rec = fp.requests({ prefix: P })[0];
    await fp.waitFor(() => rec.finished_at || rec.client_closed, 5000);
    assert.ok(
      rec.finished_at,
      `the provider stream ran to its end (client_closed=${rec.client_closed}, chunks_sent=${rec.chunks_sent})`,
    );
    assert.equal(rec.client_closed, false);
    const c2 = await connect(srv.port, { hello: true });
    const att = await c2.ok({ type: 'session.attach', session, after: seen });
    assert.equal(att.recovered, true, JSON.stringify(att));
    await waitState(c2, session, 'idle', seen);
    const all = [...c1.sessionEvents(session), ...c2.sessionEvents(session)];
    assert.ok(
      c2.sessionEvents(session).every((e) => e.seq > seen),
      'replay starts after `after`',
    );
    const ends = all.filter((e) => e.type === 'message.end');
    assert.equal(ends.length, 1);
    assert.equal(ends[0].text, text);
    assert.equal(shownText(all), text);
    assert.ok(!all.some((e) => e.type === 'message.discard'), JSON.stringify(all));
    assert.equal(fp.requests({ prefix: P }).length, 1);
  },
);

itest(
  'kill -9 during a slow generation, restart: message.discard {reason:"restart"}, then the turn is generated again to completion',
  async ({ startServer }) => {
    const P = 'l-restart';
    const text = words(10, 'slow');
    fp.script([
      { text, token_delay_ms: 250, name: `${P}-first`, match: { prefix: P } },
      { text, token_delay_ms: 10, name: `${P}-second`, match: { prefix: P } },
    ]);
    const srv = await startServer({ args: ['--routes', routesFor(P)], env: { FAKE_KEY: 'k' } });
    const c1 = await connect(srv.port, { hello: true });
    const session = await openChat(c1);
    await c1.ok({ type: 'say', session, text: 'write slowly', client_msg_id: 'c1' });
    await c1.waitEvent((e) => e.session === session && e.type === 'delta' && e.text.includes('slow2'), 5000);
    await sleep(50); // let the store catch up with what was sent
    const firstMsg = c1.sessionEvents(session).find((e) => e.type === 'message.start').message_id;
    await srv.kill9();
    const seen = c1.maxSeq(session);
    await c1.closed;
    const first = fp.requests({ prefix: P })[0];
    await fp.waitFor(() => first.client_closed, 2000);
    assert.equal(first.client_closed, true, 'the dead process dropped the upstream connection');

    await srv.restart();
    const c2 = await connect(srv.port, { hello: true });
    const att = await c2.ok({ type: 'session.attach', session, after: seen });
    assert.equal(typeof att.head, 'number');
    const discard = await c2.waitEvent((e) => e.session === session && e.type === 'message.discard', 5000);
    assert.equal(discard.reason, 'restart', JSON.stringify(discard));
    assert.equal(discard.message_id, firstMsg, 'the message cut by the crash is the one discarded');
    const end = await c2.waitEvent((e) => e.session === session && e.type === 'message.end', 8000);
    assert.equal(end.text, text);
    assert.notEqual(end.message_id, firstMsg);
    await waitState(c2, session, 'idle', end.seq);
    await sleep(100);
    // One client seeing everything: c1's events, then c2's (each seq once).
    const byseq = new Map();
    for (const e of [...c1.sessionEvents(session), ...c2.sessionEvents(session)]) byseq.set(e.seq, e);
    const all = [...byseq.values()].sort((a, b) => a.seq - b.seq);
    assert.deepEqual(
      all.map((e) => e.seq),
      all.map((_, i) => i + 1),
      'no seq gap across the restart',
    );
    checkMessages(assert, all);
    assert.equal(shownText(all), text, 'the client shows the final text exactly once');
    assert.equal(all.filter((e) => e.type === 'user').length, 1, 'the user turn is not repeated');
    const reqs = fp.requests({ prefix: P });
    assert.equal(reqs.length, 2, `generated again once: ${reqs.map((r) => r.step_name)}`);
    assert.deepEqual(reqs[1].body.messages, reqs[0].body.messages, 'the same prompt is sent again');
  },
);

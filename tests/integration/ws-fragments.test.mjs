// Fragmented messages (RFC 6455 5.4): lws hands every message over in 1 KiB
// rx pieces and ws.c reassembles them up to --max-frame-bytes, whether they
// came as one frame or as a text frame with FIN=0 and continuation frames.
// Each message must be reassembled from its own pieces only: nothing left
// over from the message before (a big one, one refused over the cap, a
// binary one) may change how the next is taken.
//  - cut at every size class: 1-byte fragments, inside a multi-byte UTF-8
//    character, exactly at and around the 1 KiB rx pieces, empty fragments;
//  - after a say of almost 1 MiB, after a message refused over the cap
//    (whole or only in its fragments' sum), after a binary message;
//  - pings between the fragments (control frames may come between them);
//  - over the cap only in its sum: too_large, the socket stays; far over
//    (8x): close 1009; binary: bad_request; a continuation with no message
//    started, or a new message before the last one's FIN: close 1002;
//  - the same reassembly on /v1/ai-sdk/ws.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { CheckedAiSdkWebSocket, connect, itest, openSession, sleep, waitState } from './harness.mjs';

const ARGS = ['--echo-delay-ms', '0', '--rate-burst', '100000', '--rate-msgs-per-s', '100000'];
const MAX = 1 << 20; // --max-frame-bytes default
let seq = 0;

/** buf cut at the given offsets (sorted, inside the buffer; repeats give empty fragments). */
function cutAt(buf, offsets) {
  const parts = [];
  let from = 0;
  for (const at of offsets) {
    parts.push(buf.subarray(from, at));
    from = at;
  }
  parts.push(buf.subarray(from));
  return parts;
}

/** buf cut into n fragments of about the same size. */
function cutInto(buf, n) {
  const step = Math.ceil(buf.length / n);
  return Array.from({ length: n - 1 }, (_, i) => (i + 1) * step).filter((x) => x < buf.length);
}

/**
 * Send parts as one message: the first a text (or binary) frame with FIN=0,
 * the rest continuation frames, the last with FIN=1. between(i) runs after
 * fragment i (not after the last): a ping there goes out between them.
 */
function sendFragments(ws, parts, { binary = false, between } = {}) {
  // A fragment is no JSON by itself: a CheckedWebSocket sends it unchecked.
  const send = ws.sendUnchecked ? ws.sendUnchecked.bind(ws) : ws.send.bind(ws);
  parts.forEach((p, i) => {
    send(p, { fin: i === parts.length - 1, binary });
    if (between && i < parts.length - 1) between(i);
  });
}

function sayFrame(session, text, tag) {
  return { type: 'say', session, text, client_msg_id: tag, id: tag };
}

/**
 * A say sent in fragments (cuts: offsets into its JSON's UTF-8 bytes, or a
 * function of its length); resolves with the reply and checks the user
 * event carries the text whole.
 */
async function saySplit(c, session, text, cuts, opts = {}) {
  const tag = `frag${++seq}`;
  const buf = Buffer.from(JSON.stringify(sayFrame(session, text, tag)));
  const offsets = typeof cuts === 'function' ? cuts(buf) : cuts;
  const before = c.maxSeq(session);
  const from = c.frames.length;
  sendFragments(c.ws, cutAt(buf, offsets), opts);
  const r = await c.waitFrame((f) => f.re === tag || (f.type === 'error' && !f.re), 20_000, from);
  assert.equal(r.type, 'ok', `${offsets.length + 1} fragments: ${JSON.stringify(r).slice(0, 300)}`);
  const user = await c.waitEvent(
    (e) => e.session === session && e.type === 'user' && e.client_msg_id === tag && e.seq > before,
    20_000,
  );
  assert.equal(user.text.length, text.length, 'the text arrives whole');
  assert.ok(user.text === text, 'the text arrives unchanged');
  await waitState(c, session, 'idle', user.seq, 20_000);
  return r;
}

/** The next error without `re` (a message refused before decoding) from frame index `from`. */
function nextBareError(c, from) {
  return c.waitFrame((f) => f.type === 'error' && f.re === undefined, 10_000, from);
}

async function setup(startServer, args = ARGS) {
  const srv = await startServer({ args });
  const c = await connect(srv.port, { hello: true });
  const { session } = await openSession(c);
  await waitState(c, session, 'idle', 0);
  return { srv, c, session };
}

/** Text of n UTF-8 bytes mixing 1-, 2-, 3- and 4-byte characters. */
function mixedText(n) {
  const chars = ['a', 'é', '€', '😀'];
  let s = '';
  let bytes = 0;
  for (let i = 0; bytes < n; i++) {
    const ch = chars[i % chars.length];
    s += ch;
    bytes += Buffer.byteLength(ch);
  }
  return s;
}

itest(
  'fragments of every size class are reassembled: 1 byte each, inside UTF-8 characters, at and around 1 KiB pieces, empty ones',
  async ({ startServer }) => {
    const { c, session } = await setup(startServer);
    // 1-byte fragments (about 150 frames).
    await saySplit(c, session, 'one byte at a time', (b) => Array.from({ length: b.length - 1 }, (_, i) => i + 1));
    // Every cut inside a multi-byte character: after the first byte of each
    // 2-, 3- and 4-byte character of the text.
    const mixed = mixedText(300);
    await saySplit(c, session, mixed, (b) => {
      const at = [];
      for (let i = 1; i < b.length; i++) if ((b[i] & 0xc0) === 0x80 && (b[i - 1] & 0xc0) !== 0x80) at.push(i);
      assert.ok(at.length > 80, 'cuts inside characters');
      return at;
    });
    // A 4-byte character cut into four 1-byte fragments.
    await saySplit(c, session, 'x😀y', (b) => {
      const i = b.indexOf(Buffer.from('😀'));
      return [i + 1, i + 2, i + 3];
    });
    // Exactly at the 1 KiB rx pieces, and a byte either side of them.
    const big = mixedText(20_000);
    await saySplit(c, session, big, (b) =>
      Array.from({ length: Math.floor((b.length - 1) / 1024) }, (_, i) => (i + 1) * 1024),
    );
    await saySplit(c, session, big, (b) =>
      Array.from({ length: Math.floor(b.length / 1024) - 1 }, (_, i) => (i + 1) * 1024 - 1),
    );
    await saySplit(c, session, big, (b) =>
      Array.from({ length: Math.floor(b.length / 1024) - 1 }, (_, i) => (i + 1) * 1024 + 1),
    );
    // Fragments of 2 KiB + 1 byte, 3 KiB: more than one rx piece each.
    await saySplit(c, session, big, (b) => cutInto(b, Math.ceil(b.length / 2049)));
    // Empty fragments: first, middle and last.
    await saySplit(c, session, 'empty fragments', (b) => [0, 10, 10, 10, b.length]);
    // And unfragmented still works afterwards.
    assert.equal((await c.ping()).type, 'pong');
  },
  { timeout: 90_000 },
);

itest(
  'after a say of almost 1 MiB, a 0.5 MiB say in 7 fragments is accepted whole (not closed 1006)',
  async ({ startServer }) => {
    const { c, session } = await setup(startServer);
    const base = JSON.stringify(sayFrame(session, '', 'big')).length;
    const r = await c.request(sayFrame(session, 'b'.repeat(MAX - base - 16), 'big'), 20_000);
    assert.equal(r.type, 'ok', JSON.stringify(r).slice(0, 300));
    await saySplit(c, session, 'h'.repeat(512 * 1024), (b) => cutInto(b, 7));
    // Again at once, without waiting for the big one's turn: the fragments
    // arrive while the echo of the big one is still being written.
    const from = c.frames.length;
    c.send(sayFrame(session, 'c'.repeat(MAX - base - 16), 'big2'));
    const tag = `frag${++seq}`;
    const buf = Buffer.from(JSON.stringify(sayFrame(session, mixedText(512 * 1024), tag)));
    sendFragments(c.ws, cutAt(buf, cutInto(buf, 7)));
    const ok = await c.waitFrame((f) => f.re === tag, 20_000, from);
    assert.equal(ok.type, 'ok', JSON.stringify(ok).slice(0, 300));
    // Close to the cap in fragments too, after the two.
    await saySplit(c, session, 'd'.repeat(MAX - base - 64), (b) => cutInto(b, 7));
    assert.equal((await c.ping()).type, 'pong');
  },
  { timeout: 120_000 },
);

itest(
  'over the cap only in the sum of its fragments: too_large, nothing said, the socket stays; the next message is taken whole',
  async ({ startServer }) => {
    const { c, session } = await setup(startServer);
    const head = c.maxSeq(session);
    // Seven fragments of 160 KiB: each far under the cap, the sum over it.
    let from = c.frames.length;
    const over = Buffer.from(JSON.stringify(sayFrame(session, 'o'.repeat(MAX + 64 * 1024), 'over')));
    sendFragments(c.ws, cutAt(over, cutInto(over, 7)));
    let err = await nextBareError(c, from);
    assert.equal(err.code, 'too_large', JSON.stringify(err));
    assert.match(err.message, /max_frame_bytes/);
    assert.ok(c.isOpen);
    await sleep(50);
    assert.equal(c.maxSeq(session), head, 'the refused say changed nothing');
    // The next message, fragmented and small, then one just under the cap.
    await saySplit(c, session, 'after the refused one', (b) => cutInto(b, 3));
    const base = JSON.stringify(sayFrame(session, '', 'x')).length;
    await saySplit(c, session, 'u'.repeat(MAX - base - 64), (b) => cutInto(b, 7));
    // Refused whole (one frame over the cap), then fragmented again.
    from = c.frames.length;
    c.send(sayFrame(session, 'w'.repeat(MAX + 10), 'whole'));
    err = await nextBareError(c, from);
    assert.equal(err.code, 'too_large', JSON.stringify(err));
    await saySplit(c, session, 'h'.repeat(512 * 1024), (b) => cutInto(b, 7));
    // Just over the cap by one byte in its sum, the cut at a 1 KiB piece.
    from = c.frames.length;
    const one = Buffer.alloc(MAX + 1, 'z');
    sendFragments(c.ws, cutAt(one, [1024, MAX]));
    err = await nextBareError(c, from);
    assert.equal(err.code, 'too_large', JSON.stringify(err));
    await saySplit(c, session, 'still fine', (b) => cutInto(b, 2));
    assert.equal((await c.ping()).type, 'pong');
  },
  { timeout: 120_000 },
);

itest(
  'far over the cap in its sum (more than 8x): close 1009, with the close frame (not 1006)',
  async ({ startServer }) => {
    const { c } = await setup(startServer);
    const chunk = Buffer.alloc(1 << 20, 'f');
    const parts = Array.from({ length: 9 }, () => chunk);
    parts.push(Buffer.from('x'));
    sendFragments(c.ws, parts);
    const closed = await c.closed;
    assert.equal(closed.code, 1009, JSON.stringify(closed));
  },
  { timeout: 60_000 },
);

itest(
  'pings between the fragments are answered and the message is still taken whole',
  async ({ startServer }) => {
    const { c, session } = await setup(startServer);
    // lws answers a ping, or drops one that comes while its pong for the
    // one before is not sent yet (RFC 6455 5.5.3 allows answering only the
    // latest): at least one pong for each message's pings.
    let pongs = 0;
    c.ws.on('pong', () => pongs++);
    const between = (i) => c.ws.ping(Buffer.from(`p${i}`));
    const base = JSON.stringify(sayFrame(session, '', 'x')).length;
    const cases = [
      [mixedText(5000), (b) => cutInto(b, 6)],
      // after a big one, across 1 KiB pieces
      ['q'.repeat(MAX - base - 64), (b) => cutInto(b, 7)],
      ['r'.repeat(512 * 1024), (b) => cutInto(b, 7)],
      ['tiny', () => [1, 2, 3]],
    ];
    for (const [text, cuts] of cases) {
      const seen = pongs;
      await saySplit(c, session, text, cuts, { between });
      for (let i = 0; i < 50 && pongs === seen; i++) await sleep(20);
      assert.ok(pongs > seen, 'the pings between the fragments are answered');
    }
  },
  { timeout: 120_000 },
);

itest(
  'binary messages, whole or fragmented: bad_request, the socket stays, the next text message is taken whole',
  async ({ startServer }) => {
    const { c, session } = await setup(startServer);
    let from = c.frames.length;
    c.ws.send(Buffer.from(JSON.stringify({ type: 'ping', id: 'bin1' })), { binary: true });
    let err = await nextBareError(c, from);
    assert.equal(err.code, 'bad_request', JSON.stringify(err));
    assert.match(err.message, /binary/);
    await saySplit(c, session, 'after binary', (b) => cutInto(b, 4));
    // A fragmented binary message, with a ping between; then fragmented text.
    from = c.frames.length;
    const bin = Buffer.from(JSON.stringify(sayFrame(session, 'b'.repeat(300 * 1024), 'bin2')));
    sendFragments(c.ws, cutAt(bin, cutInto(bin, 7)), { binary: true, between: () => c.ws.ping() });
    err = await nextBareError(c, from);
    assert.equal(err.code, 'bad_request', JSON.stringify(err));
    await saySplit(c, session, 't'.repeat(300 * 1024), (b) => cutInto(b, 7));
    // A binary message over the cap: too_large (the size is judged first).
    from = c.frames.length;
    sendFragments(c.ws, cutAt(Buffer.alloc(MAX + 100, 1), [1000, 500_000]), { binary: true });
    err = await nextBareError(c, from);
    assert.equal(err.code, 'too_large', JSON.stringify(err));
    await saySplit(c, session, 'and text again', (b) => cutInto(b, 2));
    await sleep(50);
    assert.equal(c.sessionEvents(session).filter((e) => e.type === 'user').length, 3, 'no binary say was taken');
  },
  { timeout: 90_000 },
);

/** A client frame (masked), written on the socket as is. */
function rawFrame(opcode, payload, fin = true) {
  const mask = crypto.randomBytes(4);
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | len])
      : Buffer.from([(fin ? 0x80 : 0) | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([head, mask, body]);
}

itest(
  'a continuation frame with no message started, or a new message before the FIN: close 1002 with the close frame',
  async ({ startServer }) => {
    const { srv, c, session } = await setup(startServer);
    // First a big message and a fragmented one, so the state of a finished
    // message is there to be (wrongly) continued.
    await saySplit(c, session, 'h'.repeat(200 * 1024), (b) => cutInto(b, 7));
    c.ws._socket.write(rawFrame(0x0, Buffer.from('{"type":"ping","id":"cont"}')));
    const closed = await c.closed;
    assert.equal(closed.code, 1002, JSON.stringify(closed));
    assert.ok(!c.frames.some((f) => f.re === 'cont'), 'the stray continuation was not taken as a message');

    const d = await connect(srv.port, { hello: true });
    d.ws._socket.write(rawFrame(0x1, Buffer.from('{"type":"ping",'), false));
    d.ws._socket.write(rawFrame(0x1, Buffer.from('{"type":"ping","id":"new"}')));
    const closed2 = await d.closed;
    assert.equal(closed2.code, 1002, JSON.stringify(closed2));
    assert.ok(!d.frames.some((f) => f.re === 'new'));
  },
  { timeout: 60_000 },
);

/** Open /v1/ai-sdk/ws; resolves with the socket and the frames it receives (each checked against its schema). */
async function aisdkSocket(port) {
  const ws = new CheckedAiSdkWebSocket(`ws://127.0.0.1:${port}/v1/ai-sdk/ws`, { maxPayload: 64 << 20 });
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d))));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, frames };
}

async function waitFor(frames, pred, ms = 20_000) {
  for (let t = 0; t < ms; t += 20) {
    const f = frames.find(pred);
    if (f) return f;
    await sleep(20);
  }
  throw new Error(`timed out; frames: ${JSON.stringify(frames).slice(0, 500)}`);
}

itest(
  '/v1/ai-sdk/ws: a big send, then fragmented sends (cut in UTF-8, pings between) are each taken whole',
  async ({ startServer }) => {
    const srv = await startServer({ args: ARGS });
    const { ws, frames } = await aisdkSocket(srv.port);
    const send = (chatId, text) =>
      JSON.stringify({
        type: 'send',
        chatId,
        agent: 'echo',
        messages: [{ id: `m-${chatId}`, role: 'user', parts: [{ type: 'text', text }] }],
      });
    const big = 'B'.repeat(MAX - 400);
    ws.send(send('big1', big));
    await waitFor(frames, (f) => f.chatId === 'big1' && (f.type === 'end' || f.type === 'error'));
    assert.ok(!frames.some((f) => f.type === 'error'), JSON.stringify(frames.filter((f) => f.type === 'error')));
    for (const [chatId, text, n] of [
      ['frag1', mixedText(512 * 1024), 7],
      ['frag2', 'one at a time', 0],
    ]) {
      const buf = Buffer.from(send(chatId, text));
      const cuts = n ? cutInto(buf, n) : Array.from({ length: buf.length - 1 }, (_, i) => i + 1);
      sendFragments(ws, cutAt(buf, cuts), { between: () => ws.ping() });
      const end = await waitFor(frames, (f) => f.chatId === chatId && (f.type === 'end' || f.type === 'error'));
      assert.equal(end.type, 'end', JSON.stringify(end));
      const deltas = frames
        .filter((f) => f.chatId === chatId && f.type === 'chunk' && f.chunk.type === 'text-delta')
        .map((f) => f.chunk.delta)
        .join('');
      assert.equal(deltas.trim(), text.trim(), 'echoed whole');
    }
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
  },
  { timeout: 120_000 },
);

itest(
  '/v1/ai-sdk/ws: a message over the cap in its fragments, or binary, is refused with an AI SDK error frame; the socket stays',
  async ({ startServer }) => {
    const srv = await startServer({ args: ARGS });
    const { ws, frames } = await aisdkSocket(srv.port);
    const errors = () => frames.filter((f) => f.type === 'error');
    const over = Buffer.from(JSON.stringify({ type: 'send', chatId: 'over1', messages: [], pad: 'o'.repeat(MAX) }));
    sendFragments(ws, cutAt(over, cutInto(over, 7)));
    await waitFor(frames, (f) => f.type === 'error');
    assert.deepEqual(Object.keys(errors()[0]).sort(), ['chatId', 'message', 'type'], JSON.stringify(errors()[0]));
    assert.equal(errors()[0].chatId, '');
    assert.match(errors()[0].message, /larger than 1048576 bytes/);
    sendFragments(ws, cutAt(Buffer.from('{"type":"abort","chatId":"bin1"}'), [3, 9]), { binary: true });
    await waitFor(frames, () => errors().length === 2);
    assert.match(errors()[1].message, /binary/);
    assert.equal(errors()[1].chatId, '');
    // The next send, fragmented, is taken whole.
    const buf = Buffer.from(
      JSON.stringify({
        type: 'send',
        chatId: 'after1',
        agent: 'echo',
        messages: [{ id: 'm-after1', role: 'user', parts: [{ type: 'text', text: 'after the refusals' }] }],
      }),
    );
    sendFragments(ws, cutAt(buf, cutInto(buf, 5)));
    const end = await waitFor(frames, (f) => f.chatId === 'after1' && (f.type === 'end' || f.type === 'error'));
    assert.equal(end.type, 'end', JSON.stringify(end));
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
  },
  { timeout: 60_000 },
);

itest(
  '/v1/ai-sdk/ws: a send whose echo is one chunk larger than --max-output-bytes is streamed whole to a reading client (not dropped, 1006)',
  async ({ startServer }) => {
    // The chunks a stream pulls are bounded by its own pull limit (64 KiB
    // queued, then one event); --max-output-bytes is for replies not read.
    const srv = await startServer({ args: [...ARGS, '--max-output-bytes', '65536'] });
    const { ws, frames } = await aisdkSocket(srv.port);
    const closed = new Promise((r) => ws.once('close', (code) => r(code)));
    const send = (chatId, text) =>
      JSON.stringify({
        type: 'send',
        chatId,
        agent: 'echo',
        messages: [{ id: `m-${chatId}`, role: 'user', parts: [{ type: 'text', text }] }],
      });
    for (const [chatId, text, n] of [
      ['wide1', 'W'.repeat(200 * 1024), 1],
      ['wide2', 'V'.repeat(300 * 1024), 7],
    ]) {
      const buf = Buffer.from(send(chatId, text));
      sendFragments(ws, cutAt(buf, cutInto(buf, n)));
      const end = await Promise.race([
        waitFor(frames, (f) => f.chatId === chatId && (f.type === 'end' || f.type === 'error')),
        closed.then((code) => ({ closed: code })),
      ]);
      assert.equal(end.type, 'end', JSON.stringify(end));
      const deltas = frames
        .filter((f) => f.chatId === chatId && f.type === 'chunk' && f.chunk.type === 'text-delta')
        .map((f) => f.chunk.delta)
        .join('');
      assert.equal(deltas, text);
    }
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.close();
  },
  { timeout: 60_000 },
);

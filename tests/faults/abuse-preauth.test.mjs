// Input held before a socket has authenticated (issue 10, the class of
// finding 10 on the WebSocket side): until a valid hello, a socket may send
// frames of at most 16 KiB (enough for a hello carrying a token); a larger
// one is refused `too_large` unread, so unauthenticated sockets cannot make
// the server hold --max-frame-bytes (1 MiB) each.
import './env.mjs';
import assert from 'node:assert/strict';
import { connect, mintViaApi } from '../integration/harness.mjs';
import { ftest, isSanitized, rssKiB } from './lib.mjs';

const KiB = 1024;
const env = isSanitized() ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=8` } : {};

/** Send `bytes` as the first fragment of a text message that never ends. */
const sendUnfinished = (c, bytes) =>
  new Promise((resolve, reject) =>
    c.ws.send(Buffer.alloc(bytes, 0x61), { fin: false, binary: false }, (e) => (e ? reject(e) : resolve())),
  );

ftest('before hello a frame over 16 KiB is refused too_large, unread', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'preauth-key'] });
  const c = await connect(srv.port);
  const pad = 'x'.repeat(40 * KiB);
  c.sendRaw(JSON.stringify({ type: 'hello', id: 'h1', token: 'not-a-token', pad }));
  const e = await c.waitFrame((f) => f.type === 'error');
  assert.equal(e.code, 'too_large', JSON.stringify(e));
  // A normal hello still works on the same socket afterwards.
  const token = await mintViaApi(srv.port, 'preauth-key', 'alice');
  const w = await c.hello(token);
  assert.equal(w.type, 'welcome', JSON.stringify(w));
  // Once authenticated, frames up to --max-frame-bytes are read as usual.
  const r = await c.request({ type: 'session.list', pad: 'y'.repeat(40 * KiB) }, undefined, { invalid: true });
  assert.equal(r.code, 'bad_request', JSON.stringify(r)); // an unknown field, not too_large
});

ftest('200 unauthenticated sockets each sending 900 KiB of an unfinished frame: RSS stays flat', async ({
  startServer,
}) => {
  const srv = await startServer({ args: ['--api-key', 'preauth-key'], env });
  const pid = srv.proc.pid;
  const rss0 = rssKiB(pid);
  const clients = await Promise.all(Array.from({ length: 200 }, () => connect(srv.port)));
  await Promise.all(clients.map((c) => sendUnfinished(c, 900 * KiB).catch(() => {})));
  await new Promise((r) => setTimeout(r, 500));
  const growthMiB = (rssKiB(pid) - rss0) / 1024;
  console.log(`# RssAnon +${growthMiB.toFixed(1)} MiB for 176 MiB of unauthenticated partial frames`);
  assert.ok(growthMiB < 40, `RSS grew ${growthMiB.toFixed(1)} MiB`);
  for (const c of clients) c.terminate();
});

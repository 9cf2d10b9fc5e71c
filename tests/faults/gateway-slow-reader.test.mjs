// A gateway client that reads a long streamed completion slowly: the server
// pauses the upstream while the response waits unsent (CURLPAUSE_RECV) and
// drops what it sent, so its memory stays bounded however long the stream.
import './env.mjs';
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { fakeTarget, sleep, writeRoutesFile } from '../integration/harness.mjs';
import { ftest, isSanitized, rssKiB } from './lib.mjs';

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

const TOKENS = 40_000;
const WORD = 'y'.repeat(1000); // ~40 MB of text in all, ~60 MB of SSE out
const RSS_GROWTH_MB = isSanitized() ? 40 : 16;

ftest('a slow reader of a long streamed completion keeps the server memory bounded', async ({ startServer }) => {
  const P = 'gw-slow';
  fp.script({ tokens: Array.from({ length: TOKENS }, (_, i) => `${i}${WORD}`), match: { prefix: P } });
  const routes = writeRoutesFile({
    routes: {
      default: [
        fakeTarget(fp.url, P, {
          region: 'a',
          timeout_ms: { connect: 1000, first_byte: 5000, idle: 60_000, total: 300_000 },
        }),
      ],
    },
  });
  const env = {
    FAKE_KEY: 'fake-key',
    ...(isSanitized() ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=8` } : {}),
  };
  const srv = await startServer({ env, args: ['--routes', routes] });
  const pid = srv.proc.pid;
  const rss0 = rssKiB(pid);
  const body = JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'long' }], stream: true });
  const sock = net.connect(srv.port, '127.0.0.1');
  await new Promise((resolve) => sock.once('connect', resolve));
  sock.write(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  let received = 0,
    done = false;
  sock.on('data', (d) => {
    received += d.length;
    if (d.includes('[DONE]')) done = true;
  });
  // Slow: read 2 s worth at a time, then stop reading for a second.
  let rssMax = rss0;
  const t0 = Date.now();
  while (!done && Date.now() - t0 < 120_000) {
    sock.pause();
    await sleep(1000);
    rssMax = Math.max(rssMax, rssKiB(pid));
    sock.resume();
    await sleep(300);
  }
  sock.destroy();
  console.log(
    `# gateway slow reader: ${received} bytes in ${Date.now() - t0} ms; RssAnon ${rss0} -> max ${rssMax} KiB`,
  );
  assert.ok(done, `the stream did not finish: ${received} bytes`);
  assert.ok(received > TOKENS * WORD.length, `${received} bytes`);
  assert.ok(rssMax - rss0 < RSS_GROWTH_MB * 1024, `RSS grew ${rssMax - rss0} KiB while a client read slowly`);
});

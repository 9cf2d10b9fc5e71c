// Requests an attacker writes by hand on a raw socket: bodies framed in ways
// lws 4.1 reads differently from the client (chunked, two lengths, a signed
// or hex length), bodies sent a byte a second, bodies for the web page's
// files, a CORS preflight with a body. Each must get its answer (or be
// closed) at once, never hold a connection or body memory for ever, and
// leave the server serving everybody else.

import assert from 'node:assert/strict';
import net from 'node:net';
import { itest, httpGet, sleep } from './harness.mjs';
import { pipeline, raw } from './pipeline.mjs';

const HOST = 'Host: 127.0.0.1\r\n';
const bodyGauge = (metrics) => Number(/^tether_http_body_bytes (\d+)$/m.exec(metrics)?.[1]);

/** A POST of `path` with the given framing headers and raw body text. */
const post = (path, framing, body) =>
  `POST ${path} HTTP/1.1\r\n${HOST}Content-Type: application/json\r\n${framing}\r\n${body}`;

async function stillServes(port, what) {
  const get = await pipeline(port, [raw('GET', '/healthz')]);
  const minted = await pipeline(port, [raw('POST', '/v1/tokens', '{"user":"next"}')]);
  assert.deepEqual([get[0].status, minted[0].status], [200, 200], `${what}: another client is served`);
}

const USER = '{"user":"ab"}'; // 13 bytes

// [what, framing headers, body, status]
const FRAMINGS = [
  ['chunked', 'Transfer-Encoding: chunked\r\n', `d\r\n${USER}\r\n0\r\n\r\n`, 411],
  ['chunked with an extension', 'Transfer-Encoding: chunked\r\n', `d;x=y\r\n${USER}\r\n0\r\n\r\n`, 411],
  ['a huge chunk size', 'Transfer-Encoding: chunked\r\n', `ffffffffffffffffff\r\n${USER}\r\n`, 411],
  ['a malformed chunk size', 'Transfer-Encoding: chunked\r\n', `zz\r\n${USER}\r\n0\r\n\r\n`, 411],
  ['Transfer-Encoding: gzip', 'Transfer-Encoding: gzip\r\n', USER, 411],
  ['no Content-Length', '', USER, 411],
  ['a space before the colon', 'Content-Length : 13\r\n', USER, 411],
  [
    'Content-Length and chunked',
    'Content-Length: 13\r\nTransfer-Encoding: chunked\r\n',
    `d\r\n${USER}\r\n0\r\n\r\n`,
    400,
  ],
  ['two Content-Lengths', 'Content-Length: 13\r\nContent-Length: 5\r\n', USER, 400],
  ['a negative Content-Length', 'Content-Length: -1\r\n', USER, 400],
  ['a signed Content-Length', 'Content-Length: +13\r\n', USER, 400],
  ['a hex Content-Length', 'Content-Length: 0x0d\r\n', USER, 400],
  ['an overflowing Content-Length', 'Content-Length: 18446744073709551629\r\n', USER, 413],
  ['a Content-Length of 30 digits', `Content-Length: ${'9'.repeat(30)}\r\n`, USER, 413],
];

itest(
  'a POST body framed other than by one decimal Content-Length: 411, 400 or 413 at once with connection: close, then closed; every POST route; the server goes on',
  async ({ startServer }) => {
    // lws 4.1 does not decode chunked bodies (it hands the chunk framing on
    // and never completes: no answer, the connection held until its timeout),
    // reads a body only by a Content-Length it parses with atoll (-1: waits
    // for ever; "0x0d": no body, the body parsed as the next request; with
    // chunked too: 13 bytes of the chunked body, the rest the next request).
    const srv = await startServer();
    for (const [what, framing, body, status] of FRAMINGS) {
      const rs = await pipeline(srv.port, [post('/v1/tokens', framing, body), raw('GET', '/readyz')], 2, {
        untilClose: true,
      });
      assert.deepEqual(
        rs.map((r) => r.status),
        [status],
        `${what}: one answer, nothing of the body read as a request`,
      );
      assert.equal(rs[0].headers.connection, 'close', what);
      assert.ok(rs.closed, `${what}: the connection is closed`);
      assert.equal(JSON.parse(rs[0].body).error.code, status === 413 ? 'too_large' : 'bad_request', what);
    }
    await stillServes(srv.port, 'after every framing');
    // Every POST route judges the framing first (before its key, route or size).
    const routes = [
      '/v1/chat/completions',
      '/v1/embeddings',
      '/v1/ai-sdk/chat',
      '/v1/ag-ui',
      '/v1/documents',
      '/v1/documents/search',
      '/healthz',
    ];
    for (const path of routes) {
      const rs = await pipeline(srv.port, [post(path, FRAMINGS[0][1], FRAMINGS[0][2]), raw('GET', '/readyz')], 2, {
        untilClose: true,
      });
      assert.deepEqual(
        rs.map((r) => r.status),
        [411],
        path,
      );
      assert.ok(rs.closed, `${path}: closed`);
    }
    await stillServes(srv.port, 'after every route');
    const m = await httpGet(srv.port, '/metrics');
    assert.equal(bodyGauge(m.body), 0, 'no body bytes left reserved');
  },
  { timeout: 60_000 },
);

itest(
  'a refused body too long to read and drop (over 16 MiB announced) is answered 413 at once, then closed (it waited for the body, unanswered)',
  async ({ startServer }) => {
    const srv = await startServer();
    for (const path of ['/v1/chat/completions', '/v1/tokens', '/v1/documents']) {
      const t0 = Date.now();
      const rs = await pipeline(srv.port, [post(path, 'Content-Length: 100000000\r\n', '{')], 1, { untilClose: true });
      assert.deepEqual(
        rs.map((r) => r.status),
        [413],
        path,
      );
      assert.ok(Date.now() - t0 < 2000, `${path}: answered at once`);
      assert.equal(rs[0].headers.connection, 'close', path);
    }
    await stillServes(srv.port, 'after the 413s');
  },
);

/** A socket that writes `head`, then one byte of `fill` a second until stopped. */
function trickle(port, head, fill = 'x') {
  const s = net.connect(port, '127.0.0.1');
  const t = { data: '', closedAt: null, start: Date.now() };
  s.on('error', () => {});
  s.on('data', (d) => (t.data += d.toString('latin1')));
  s.on('close', () => (t.closedAt ??= Date.now() - t.start));
  s.on('connect', () => s.write(head));
  t.timer = setInterval(() => !s.destroyed && s.write(fill), 1000);
  t.stop = () => {
    clearInterval(t.timer);
    s.destroy();
  };
  return t;
}

itest(
  'a slowloris of 500 connections (300 bodies and 200 headers a byte a second): others are served, bodies reserve what came, each is cut off after ~10 s (bodies were held for ever, 8 MiB each)',
  async ({ startServer }) => {
    const srv = await startServer();
    const socks = [];
    try {
      for (let i = 0; i < 300; i++)
        socks.push(trickle(srv.port, post('/v1/chat/completions', 'Content-Length: 8000000\r\n', '')));
      for (let i = 0; i < 200; i++) socks.push(trickle(srv.port, `GET /healthz HTTP/1.1\r\n${HOST}X-Slow: `));
      await sleep(4000);
      // Every body reserved what arrived (16 KiB pieces), not the 8 MiB
      // announced: 8 such sockets took the whole --max-body-memory (64 MiB),
      // and every other body was refused with 503.
      const m = await httpGet(srv.port, '/metrics');
      assert.ok(bodyGauge(m.body) <= 300 * 32 * 1024, `body bytes held: ${bodyGauge(m.body)}`);
      await stillServes(srv.port, 'during the slowloris');
      await sleep(9000);
      const open = socks.filter((t) => t.closedAt === null).length;
      assert.equal(open, 0, `${open} slow sockets still open after 13 s`);
      const bodies = socks.slice(0, 300);
      for (const t of bodies) {
        assert.match(t.data, /^HTTP\/1\.1 408 /, 'a body too slow gets 408');
        assert.match(t.data, /connection: close/i);
        assert.ok(t.closedAt >= 9000 && t.closedAt < 13000, `closed after ${t.closedAt} ms`);
      }
      await stillServes(srv.port, 'after the slowloris');
      const after = await httpGet(srv.port, '/metrics');
      assert.equal(bodyGauge(after.body), 0, 'no body bytes left reserved');
    } finally {
      for (const t of socks) t.stop();
    }
  },
  { timeout: 40_000 },
);

itest(
  'a body sent in one-byte pieces is reserved as it grows (every piece doubled the reservation up to the route cap: a 40-byte body held 64 KiB)',
  async ({ startServer }) => {
    const srv = await startServer();
    const t = trickle(srv.port, post('/v1/tokens', 'Content-Length: 40\r\n', '{'), ' ');
    try {
      await sleep(3500); // four pieces: 1, 2, 3, 4 bytes of 40
      const m = await httpGet(srv.port, '/metrics');
      assert.ok(bodyGauge(m.body) < 1024, `body bytes held for a 40-byte body: ${bodyGauge(m.body)}`);
    } finally {
      t.stop();
    }
  },
);

itest(
  'a CORS preflight with a body: 204 with connection: close, then closed (closed without saying so)',
  async ({ startServer }) => {
    const srv = await startServer();
    const preflight =
      `OPTIONS /v1/tokens HTTP/1.1\r\n${HOST}Origin: http://127.0.0.1\r\n` +
      'Access-Control-Request-Method: POST\r\nContent-Length: 3\r\n\r\nabc';
    for (const requests of [[preflight], [raw('GET', '/healthz'), preflight]]) {
      const rs = await pipeline(srv.port, [...requests, raw('GET', '/readyz')], requests.length + 1, {
        untilClose: true,
      });
      const last = rs.at(-1);
      assert.equal(rs.length, requests.length, 'nothing answered after the preflight');
      assert.equal(last.status, 204);
      assert.equal(last.headers.connection, 'close');
      assert.ok(rs.closed);
    }
    await stillServes(srv.port, 'after the preflights');
  },
);

itest(
  "a body for the web page's files, on a POST too: closed before any answer; the body is never read as a request (it was: 200, then 403 for the body)",
  async ({ startServer }) => {
    const srv = await startServer();
    for (const path of ['/index.html', '/', '/nowhere']) {
      const smuggled = `abcGET /readyz HTTP/1.1\r\n${HOST}\r\n`;
      const rs = await pipeline(srv.port, [post(path, 'Content-Length: 3\r\n', smuggled)], 2, { untilClose: true });
      assert.deepEqual(rs, Object.assign([], { closed: true }), path);
      // Without a body it is served as before.
      const plain = await pipeline(srv.port, [post(path, 'Content-Length: 0\r\n', '')], 1);
      assert.equal(plain[0].status, path === '/nowhere' ? 404 : 200, path);
    }
    await stillServes(srv.port, 'after the bodies');
  },
);

/** Raw socket: write `head`, resolve the text received within `ms`, the socket still open. */
function exchange(port, head) {
  const s = net.connect(port, '127.0.0.1', () => s.write(head));
  const c = { text: '', closed: false, sock: s };
  s.on('data', (d) => (c.text += d.toString('latin1')));
  s.on('close', () => (c.closed = true));
  s.on('error', () => {});
  c.until = async (re, ms = 2000) => {
    const end = Date.now() + ms;
    while (!re.test(c.text) && Date.now() < end) await sleep(20);
    return re.test(c.text);
  };
  return c;
}

itest(
  'Expect: 100-continue: an accepted POST gets 100 Continue before its body (none came: curl waits a second); a refused one its answer at once, then closed',
  async ({ startServer }) => {
    const srv = await startServer();
    const body = '{"user":"expects"}';
    const c = exchange(
      srv.port,
      `POST /v1/tokens HTTP/1.1\r\n${HOST}Content-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    try {
      assert.ok(await c.until(/^HTTP\/1\.1 100 Continue\r\n\r\n/, 500), `100 Continue at once: ${c.text}`);
      c.sock.write(body);
      assert.ok(await c.until(/HTTP\/1\.1 200 [\s\S]*"user":"expects"/), c.text);
    } finally {
      c.sock.destroy();
    }
    // Refused on its headers (too large for /v1/tokens): the answer, not 100.
    const r = exchange(
      srv.port,
      `POST /v1/tokens HTTP/1.1\r\n${HOST}Content-Length: 70000\r\nExpect: 100-continue\r\n\r\n`,
    );
    try {
      assert.ok(await r.until(/^HTTP\/1\.1 413 /, 500), `413 at once: ${r.text}`);
      assert.match(r.text, /connection: close/i);
      assert.ok((await r.until(/$/)) && (await sleep(200), r.closed), 'closed');
    } finally {
      r.sock.destroy();
    }
    await stillServes(srv.port, 'after the expectations');
  },
);

itest(
  'HEAD, PUT and PATCH on an endpoint, pipelined before a GET: answered with connection: close, then closed (a HEAD answer carries a body; behind a PUT or PATCH the GET stalled until the timeout)',
  async ({ startServer }) => {
    const srv = await startServer();
    for (const method of ['HEAD', 'PUT', 'PATCH'])
      for (const path of ['/v1/tokens', '/healthz', '/v1/chat/completions']) {
        const what = `${method} ${path}`;
        const rs = await pipeline(srv.port, [raw(method, path), raw('GET', '/readyz')], 2, { untilClose: true });
        assert.deepEqual(
          rs.map((r) => r.status),
          [404],
          what,
        );
        assert.equal(rs[0].headers.connection, 'close', what);
        assert.ok(rs.closed, `${what}: closed`);
      }
    // DELETE (the documents route's method) and GET stay kept alive.
    const rs = await pipeline(srv.port, [raw('DELETE', '/v1/tokens'), raw('GET', '/readyz')]);
    assert.deepEqual(
      rs.map((r) => r.status),
      [404, 200],
    );
    await stillServes(srv.port, 'after the methods');
  },
);

itest(
  "a body shorter than announced, then silence: closed by lws's timeout (5 s) with its reservation released, others served meanwhile",
  async ({ startServer }) => {
    const srv = await startServer();
    const held = [
      exchange(srv.port, post('/v1/tokens', 'Content-Length: 100\r\n', USER)),
      exchange(srv.port, post('/v1/chat/completions', 'Content-Length: 8000000\r\n', '{"model":"x"')),
    ];
    try {
      await sleep(500);
      await stillServes(srv.port, 'while the bodies wait');
      const during = await httpGet(srv.port, '/metrics');
      assert.ok(bodyGauge(during.body) < 64 * 1024, `held: ${bodyGauge(during.body)}`);
      await sleep(6500);
      assert.ok(
        held.every((c) => c.closed),
        'both closed',
      );
      const after = await httpGet(srv.port, '/metrics');
      assert.equal(bodyGauge(after.body), 0, 'no body bytes left reserved');
      await stillServes(srv.port, 'after the timeouts');
    } finally {
      for (const c of held) c.sock.destroy();
    }
  },
);

itest(
  "lws's own limits hold (guards): headers over 4 KiB or hundreds of them are closed at once, HTTP/1.0 without Host is answered, an upgrade carrying a body or a pipelined request gets its 101 and is then closed; the server goes on",
  async ({ startServer }) => {
    const srv = await startServer({ args: ['--api-key', 'key-a:t1'] });
    const closedAtOnce = [
      `GET /healthz HTTP/1.1\r\n${HOST}X-Long: ${'a'.repeat(9000)}\r\n\r\n`,
      `GET /healthz HTTP/1.1\r\n${HOST}${Array.from({ length: 500 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
    ];
    for (const req of closedAtOnce) {
      const rs = await pipeline(srv.port, [req], 1, { untilClose: true });
      assert.deepEqual(rs, Object.assign([], { closed: true }));
    }
    const old = await pipeline(srv.port, ['GET /healthz HTTP/1.0\r\n\r\n'], 1);
    assert.equal(old[0].status, 200);
    assert.equal(old[0].body, 'ok\n');
    const upgrade =
      `GET /v1/ws HTTP/1.1\r\n${HOST}Upgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tether.v1\r\n';
    for (const extra of ['Content-Length: 5\r\n\r\nhello', `\r\nGET /healthz HTTP/1.1\r\n${HOST}\r\n`]) {
      const c = exchange(srv.port, upgrade + extra);
      try {
        assert.ok(await c.until(/^HTTP\/1\.1 101 /), c.text);
        await sleep(300);
        assert.ok(c.closed, 'closed: what followed is no WebSocket frame');
        assert.doesNotMatch(c.text, /200 OK/);
      } finally {
        c.sock.destroy();
      }
    }
    const get = await pipeline(srv.port, [raw('GET', '/healthz')]);
    assert.equal(get[0].status, 200, 'another client is served');
  },
);

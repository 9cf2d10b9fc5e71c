// HTTP answers larger than 4 KiB with requests pipelined behind them. lws
// 4.1 writes at most its tx_packet_size of an answer at once (4 KiB when a
// protocol names none) and keeps the rest as a partial; it then defers the
// end of the transaction but goes on parsing the next pipelined request into
// it, and the connection stalls. /metrics crossed 4 KiB when the listener's
// counters were added, which broke the six-GET pipelining test.

import assert from 'node:assert/strict';
import net from 'node:net';
import { itest } from './harness.mjs';

const raw = (method, path, body) => {
  const b = body === undefined ? '' : body;
  const len = method === 'POST' ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n` : '';
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${len}\r\n${b}`;
};

/** Write every request at once on one socket; resolve the responses (framed by Content-Length) in order. */
function pipeline(port, requests) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(requests.join('')));
    let buf = Buffer.alloc(0);
    const out = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new Error(
          `${out.length} of ${requests.length} responses after 5 s: ${JSON.stringify(out.map((r) => r.status))}`,
        ),
      );
    }, 5000);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const cl = lines.find((l) => /^content-length:/i.test(l));
        assert.ok(cl, `response without content-length: ${lines.join(' | ')}`);
        const len = Number(cl.slice(cl.indexOf(':') + 1).trim());
        if (buf.length < end + 4 + len) break;
        out.push({
          status: Number(lines[0].split(' ')[1]),
          body: buf.subarray(end + 4, end + 4 + len).toString('utf8'),
        });
        buf = buf.subarray(end + 4 + len);
      }
      if (out.length >= requests.length) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

itest('pipelining: a minted token over 4 KiB, then GETs, written at once', async ({ startServer }) => {
  const srv = await startServer();
  const agents = Array.from({ length: 60 }, (_, i) => `agent-${String(i).padStart(2, '0')}-${'x'.repeat(50)}`);
  const rs = await pipeline(srv.port, [
    raw('POST', '/v1/tokens', JSON.stringify({ user: 'big', agents })),
    raw('GET', '/healthz'),
    raw('GET', '/readyz'),
  ]);
  assert.deepEqual(
    rs.map((r) => r.status),
    [200, 200, 200],
  );
  assert.ok(rs[0].body.length > 4096, `the token answer is ${rs[0].body.length} bytes, not over 4 KiB`);
  assert.equal(JSON.parse(rs[0].body).user, 'big');
  assert.equal(rs[1].body, 'ok\n');
  assert.equal(rs[2].body, 'ready\n');
});

itest('pipelining: three /metrics answers (over 4 KiB each) then a static file and a 404', async ({ startServer }) => {
  const srv = await startServer();
  const rs = await pipeline(srv.port, [
    raw('GET', '/metrics'),
    raw('GET', '/metrics'),
    raw('GET', '/metrics'),
    raw('GET', '/index.html'),
    raw('GET', '/nope'),
  ]);
  assert.deepEqual(
    rs.map((r) => r.status),
    [200, 200, 200, 200, 404],
  );
  for (const r of rs.slice(0, 3)) {
    assert.ok(r.body.length > 4096, `/metrics is ${r.body.length} bytes, not over 4 KiB`);
    assert.match(r.body, /tether_http_requests_total/);
  }
  assert.match(rs[3].body, /<html/i);
});

// HTTP answers larger than 4 KiB with requests pipelined behind them. lws
// 4.1 writes at most its tx_packet_size of an answer at once (4 KiB when a
// protocol names none) and keeps the rest as a partial; it then defers the
// end of the transaction but goes on parsing the next pipelined request into
// it, and the connection stalls. /metrics crossed 4 KiB when the listener's
// counters were added, which broke the six-GET pipelining test.

import assert from 'node:assert/strict';
import { itest } from './harness.mjs';
import { pipeline, raw } from './pipeline.mjs';

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
  assert.match(rs[2].body, /^ready\n(node: \S+\n)?$/);
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

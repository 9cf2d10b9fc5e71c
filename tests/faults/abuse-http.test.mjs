// HTTP request bodies under abuse (issue 10, findings 10 and 18a): a POST is
// judged on its headers before its body is read, so unauthenticated bodies
// are never kept; the bodies kept at once are bounded by --max-body-memory
// (503 + Retry-After beyond it, 413 over the per-request cap); an empty body
// is an ordinary bad request. RSS from /proc/<pid>/status.
import './env.mjs';
import assert from 'node:assert/strict';
import http from 'node:http';
import { httpRequest } from '../integration/harness.mjs';
import { ftest, isSanitized, rssKiB } from './lib.mjs';

const MiB = 1 << 20;
const BIG = Buffer.alloc(8 * MiB - 1024, 0x20); // under the gateway's 8 MiB cap
// A small ASan quarantine, so RSS shows the server's memory rather than ASan's freed-block cache.
const env = isSanitized() ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=8` } : {};

/** POST `body` on its own connection; resolves {status, headers, body} (or {error} if the socket fails). */
function post(port, path, body, headers = {}) {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': body.length, ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ error: e.message }));
    req.end(body);
  });
}

/** Sample RssAnon every 20 ms while `work` runs; resolves [result, peak KiB]. */
async function peakRss(pid, work) {
  let peak = rssKiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssKiB(pid));
  }, 20);
  try {
    return [await work(), peak];
  } finally {
    clearInterval(timer);
  }
}

const bodyBytes = async (port) =>
  Number(/tether_http_body_bytes (\d+)/.exec((await httpRequest(port, 'GET', '/metrics')).body)[1]);

ftest('100 unauthenticated 8 MiB POSTs at once: all 401, no body kept, RSS stays flat', async ({ startServer }) => {
  const srv = await startServer({ args: ['--api-key', 'abuse-key'], env });
  const pid = srv.proc.pid;
  const rss0 = rssKiB(pid);
  const [rs, peak] = await peakRss(pid, () =>
    Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        post(
          srv.port,
          i % 2 ? '/v1/chat/completions' : '/v1/tokens',
          BIG,
          i % 3 ? { authorization: 'Bearer wrong' } : {},
        ),
      ),
    ),
  );
  const statuses = rs.map((r) => r.status ?? r.error);
  assert.ok(
    statuses.every((s) => s === 401),
    JSON.stringify(statuses),
  );
  const growthMiB = (peak - rss0) / 1024;
  console.log(`# RssAnon ${rss0} KiB → peak ${peak} KiB (+${growthMiB.toFixed(1)} MiB) for 800 MiB of refused bodies`);
  assert.ok(growthMiB < 48, `RSS grew ${growthMiB.toFixed(1)} MiB`);
  assert.equal(await bodyBytes(srv.port), 0);
});

ftest('bodies kept at once stay within --max-body-memory: 503 with Retry-After beyond it, memory given back', async ({
  startServer,
}) => {
  const srv = await startServer({ args: ['--max-body-memory', String(24 * MiB)], env });
  const pid = srv.proc.pid;
  const rss0 = rssKiB(pid);
  // Open mode: authorised; no model configured, so an accepted body ends in 503 no_model_configured.
  const [rs, peak] = await peakRss(pid, () =>
    Promise.all(Array.from({ length: 40 }, () => post(srv.port, '/v1/chat/completions', BIG))),
  );
  const budget = rs.filter((r) => r.status === 503 && /retry shortly/.test(r.body));
  const accepted = rs.filter((r) => r.status === 503 && /no_model_configured/.test(r.body));
  assert.equal(budget.length + accepted.length, 40, JSON.stringify(rs.map((r) => r.status ?? r.error)));
  assert.ok(budget.length >= 1, 'some bodies were over the budget');
  assert.ok(accepted.length >= 3, `the budget still admits bodies (${accepted.length})`);
  for (const r of budget) assert.equal(r.headers['retry-after'], '1');
  const growthMiB = (peak - rss0) / 1024;
  console.log(
    `# ${accepted.length} accepted, ${budget.length} refused; RssAnon +${growthMiB.toFixed(1)} MiB (budget 24 MiB)`,
  );
  assert.ok(growthMiB < 24 + 40, `RSS grew ${growthMiB.toFixed(1)} MiB`);
  assert.equal(await bodyBytes(srv.port), 0, 'every reservation returned');
  // And afterwards a body fits again.
  assert.equal((await post(srv.port, '/v1/tokens', Buffer.from('{"user":"after"}'))).status, 200);
});

ftest('a body over the per-request cap is 413, announced or not; a refused body keeps the connection usable', async ({
  startServer,
}) => {
  const srv = await startServer({ env });
  const over = Buffer.alloc(8 * MiB + 1, 0x20);
  const r = await post(srv.port, '/v1/chat/completions', over);
  assert.equal(r.status, 413, r.body ?? r.error);
  const t = await post(srv.port, '/v1/tokens', Buffer.alloc(64 * 1024 + 1, 0x20));
  assert.equal(t.status, 413, t.body ?? t.error);
  assert.equal(JSON.parse(t.body).error.code, 'too_large');
  assert.equal(await bodyBytes(srv.port), 0);
});

ftest('an empty POST body is a 400 on every POST route, with no undefined behaviour', async ({ startServer }) => {
  const srv = await startServer({ env });
  const empty = Buffer.alloc(0);
  const t = await post(srv.port, '/v1/tokens', empty);
  assert.equal(t.status, 400, t.body);
  assert.equal(JSON.parse(t.body).error.code, 'bad_request');
  const keyed = await startServer({ args: ['--api-key', 'k'], env });
  assert.equal((await post(keyed.port, '/v1/tokens', empty, { authorization: 'Bearer k' })).status, 400);
  assert.equal((await post(keyed.port, '/v1/chat/completions', empty, { authorization: 'Bearer k' })).status, 503);
  // ftest stops both servers and fails on any sanitizer report (UBSan: memcpy from NULL).
});

// The exact response cache through the gateway (issue 13), closed loop: N
// sequential requests of temperature 0 on one keep-alive connection to
// /v1/chat/completions, each a new question (a miss: the fake provider
// answers), then the same N again (each a hit: answered from LMDB), plain
// then streamed, in the same run against the same fake provider. Reported
// per mode: miss and hit latency p50/p99 as the client sees them, the ratio
// miss p50 / hit p50, the fake provider's request count (it must not grow
// during the hits) and Tether's CPU time per hit.
//
// With --semantic, the semantic cache instead (routes file "semantic_cache",
// an "embed" route on the same fake): questions of temperature 0.7 (the
// exact cache does not apply), the hits their words in reverse order (a
// paraphrase to the fake's bag-of-words embeddings: cosine 1), so each hit
// costs an embeddings call to the fake provider and a search; the only
// provider requests during the hits are those N embeddings.
//
//   TETHER_BIN=build/tether node tests/bench/cache.mjs [--smoke] [--requests 2000] [--semantic]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { SMOKE, dist, metrics, out, startFake, startTether, argValue, cpuSec, fakeRoutes } from './lib/common.mjs';

const N = Number(argValue('--requests', SMOKE ? 50 : 2000));
const SEMANTIC = process.argv.includes('--semantic');

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function request(port, body) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const r = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          else resolve({ ms, text: Buffer.concat(parts).toString() });
        });
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

const fake = await startFake();
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-cache-bench-'));
const routes = fakeRoutes(dir, fake.port);
if (SEMANTIC) {
  const r = JSON.parse(readFileSync(routes, 'utf8'));
  r.routes.embed = r.routes.default;
  r.semantic_cache = { embed_route: 'embed', dimensions: 256, routes: { default: { enabled: true } } };
  writeFileSync(routes, JSON.stringify(r));
}
const tether = await startTether(['--data-dir', path.join(dir, 'data'), '--routes', routes]);
// requests_total counts every request (the kept log is capped at 100).
const fakeCount = async () => (await (await fetch(`http://127.0.0.1:${fake.port}/_health`)).json()).requests_total;
const result = { bench: SEMANTIC ? 'semcache' : 'cache', requests: N, modes: {} };
for (const mode of ['plain', 'stream']) {
  const body = (words) =>
    JSON.stringify({
      model: 'default',
      temperature: SEMANTIC ? 0.7 : 0,
      stream: mode === 'stream',
      messages: [{ role: 'user', content: words.join(' ') }],
    });
  const words = (i) =>
    SEMANTIC
      ? [`q${i}`, `w${i}`, `x${i}`, `y${i}`, mode]
      : ['question', mode, `q${i}`, 'one', 'two', 'three', 'four', 'five'];
  const bodies = Array.from({ length: N }, (_, i) => body(words(i)));
  const asked = SEMANTIC ? Array.from({ length: N }, (_, i) => body(words(i).reverse())) : bodies;
  const miss = [];
  for (const b of bodies) miss.push((await request(tether.port, b)).ms);
  if (SEMANTIC) await new Promise((r) => setTimeout(r, 200)); // the last inserts, in the pool
  const before = await fakeCount();
  const c0 = cpuSec(tether.pid);
  const hit = [];
  for (const b of asked) {
    const r = await request(tether.port, b);
    hit.push(r.ms);
  }
  const cpu = cpuSec(tether.pid) - c0;
  const after = await fakeCount();
  const m = dist(miss, 3);
  const h = dist(hit, 3);
  result.modes[mode] = {
    miss_ms: m,
    hit_ms: h,
    miss_over_hit_p50: +(m.p50 / h.p50).toFixed(2),
    provider_requests_during_hits: after - before,
    tether_cpu_us_per_hit: Math.round((cpu / N) * 1e6),
  };
}
const mt = await metrics(tether.port);
result.metrics = SEMANTIC
  ? {
      hits: mt.tether_semcache_hits_total,
      misses: mt.tether_semcache_misses_total,
      entries: mt.tether_semcache_entries,
    }
  : {
      hits: mt['tether_cache_hits_total{route="default"}'],
      misses: mt['tether_cache_misses_total{route="default"}'],
      entries: mt.tether_cache_entries,
      bytes: mt.tether_cache_bytes,
    };
await tether.stop();
await fake.stop();
rmSync(dir, { recursive: true, force: true });
if (result.metrics.hits !== 2 * N) throw new Error(`expected ${2 * N} hits, /metrics says ${result.metrics.hits}`);
for (const m of Object.values(result.modes))
  if (m.provider_requests_during_hits !== (SEMANTIC ? N : 0)) throw new Error('a hit reached the provider');
out(result);

// Retrieval with PostgreSQL as the index (--database-url; issue 17): search
// latency at N chunks in one tenant's collection. PostgreSQL 15 is started
// in a temp dir (tests/integration/pg-lib.mjs) and filled by SQL with what
// ingestion writes: documents of 100 chunks of 150 words (a vocabulary of
// 5,000), each chunk's tsvector and a random unit embedding of DIMS floats.
// Tether runs with --database-url and an embeddings route to the fake
// provider (hashed bag of words, DIMS), so every search asks the query's
// embedding over HTTP, then runs PostgreSQL's full-text search, cosine over
// the collection's vectors (loaded from PostgreSQL on the first search, then
// cached until the collection's version changes) and RRF.
//   first: the first search (the vectors loaded), ms
//   search: Q searches of 3 random words, one at a time, over HTTP, ms
//   query_embedding_alone: the fake provider's answer for the same query, asked
//     directly just before each search (the part of a search that is not Tether's)
//   keyword_sql: PostgreSQL's execution time of the keyword statement (EXPLAIN ANALYZE)
//   after_write: the first search after a document was deleted (a reload)
//
//   node tests/bench/retrieval_pg.mjs [--smoke] [--chunks 10000] [--dims 256] [--queries 300]
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SMOKE, argValue, dist, out, rssKiB, startTether } from './lib/common.mjs';
import { pgAvailable, startPostgres } from '../integration/pg-lib.mjs';
import { startFakeProvider } from '../fake-provider/server.mjs';

const N = Number(argValue('--chunks', SMOKE ? 1000 : 10000));
const DIMS = Number(argValue('--dims', 256));
const Q = Number(argValue('--queries', SMOKE ? 30 : 300));
const KEY = 'bench-retrieval-key-0123456789';

if (!pgAvailable) {
  out({ bench: 'retrieval_pg', skipped: 'PostgreSQL 15 is not installed (.ci/deps.sh test installs it)' });
  process.exit(0);
}

async function fill(pg) {
  // the schema comes from Tether's migration: start once, then fill, 5,000
  // chunks a statement (psql's calls time out after 60 s)
  const docs = Math.ceil(N / 100);
  await pg.query(`
    INSERT INTO rag_collections VALUES ('bench', 'c', 1);
    INSERT INTO rag_documents (tenant, collection, id, title, record)
      SELECT 'bench', 'c', 'd' || lpad(i::text, 6, '0'), 'Document ' || i,
             json_build_object('id', 'd' || lpad(i::text, 6, '0'), 'title', 'Document ' || i,
                               'collection', 'c', 'chunks', 100, 'dims', ${DIMS})
      FROM generate_series(0, ${docs - 1}) i;`);
  for (let from = 0; from < N; from += 5000) {
    const to = Math.min(N, from + 5000) - 1;
    await pg.query(`
    INSERT INTO rag_chunks (tenant, collection, document, pos, title, text, tsv, embedding)
      SELECT 'bench', 'c', 'd' || lpad((i / 100)::text, 6, '0'), i % 100, 'Document ' || (i / 100), t,
             to_tsvector('english', t), v
      FROM generate_series(${from}, ${to}) i,
      LATERAL (SELECT string_agg('w' || floor(random() * 5000)::int, ' ') AS t
               FROM generate_series(1, 150) WHERE i >= 0) w,
      LATERAL (SELECT array_agg(x / norm) AS v FROM
                 (SELECT array_agg(random() - 0.5) AS a FROM generate_series(1, ${DIMS}) WHERE i >= 0) r,
                 LATERAL (SELECT sqrt(sum(y * y)) AS norm FROM unnest(r.a) y) n,
                 LATERAL unnest(r.a) x) e;`);
  }
  await pg.query('VACUUM ANALYZE rag_chunks');
}

async function timed(port, body) {
  const t0 = performance.now();
  const r = await fetch(`http://127.0.0.1:${port}/v1/documents/search`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`search: ${r.status} ${JSON.stringify(j)}`);
  return { ms: performance.now() - t0, hits: j.hits };
}

const pg = await startPostgres();
const fp = await startFakeProvider({ dims: DIMS, maxRequests: 1_000_000 });
const dir = mkdtempSync(path.join(os.tmpdir(), 'tether-rpg-'));
const routes = path.join(dir, 'routes.json');
const { writeFileSync } = await import('node:fs');
writeFileSync(
  routes,
  JSON.stringify({
    routes: {
      default: [{ provider: 'openai', base_url: `${fp.url}/b/v1`, model: 'm', key_env: 'BENCH_FAKE_KEY' }],
      embed: [
        { provider: 'openai', base_url: `${fp.url}/b/v1`, model: 'text-embedding-3-small', key_env: 'BENCH_FAKE_KEY' },
      ],
    },
  }),
);
const args = ['--data-dir', dir, '--database-url', pg.url, '--routes', routes, '--retrieval-route', 'embed'];
args.push('--api-key', `${KEY}:bench`, '--rate-msgs-per-s', '100000', '--rate-burst', '100000');
let srv;
try {
  srv = await startTether(args); // migrates the schema
  const t0 = performance.now();
  await fill(pg);
  const fillS = (performance.now() - t0) / 1000;
  const words = () => Array.from({ length: 3 }, () => `w${Math.floor(Math.random() * 5000)}`).join(' ');
  const first = await timed(srv.port, { query: words(), collection: 'c', min_similarity: 0 });
  const lat = [],
    embed = [];
  let hits = 0;
  for (let i = 0; i < Q; i++) {
    const query = words();
    // the query's embedding alone, asked of the fake provider as Tether asks it: the floor under a search
    const t0 = performance.now();
    const e = await fetch(`${fp.url}/b/v1/embeddings`, {
      method: 'POST',
      headers: { authorization: 'Bearer x', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'text-embedding-3-small', input: [query] }),
    });
    await e.json();
    embed.push(performance.now() - t0);
    const r = await timed(srv.port, { query, collection: 'c', min_similarity: 0 });
    lat.push(r.ms);
    hits += r.hits.length;
  }
  // PostgreSQL's own time for the keyword statement (EXPLAIN ANALYZE's execution time, no
  // per-node timing: its clock reads would dominate)
  const kwSql = [];
  for (let i = 0; i < (SMOKE ? 5 : 30); i++) {
    const plan =
      await pg.query(`EXPLAIN (ANALYZE, TIMING OFF) SELECT 'k', document, pos, ts_rank(tsv, q) FROM rag_chunks,
      CAST(NULLIF(replace(plainto_tsquery('english', '${words()}')::text, '&', '|'), '') AS tsquery) q
      WHERE tenant = 'bench' AND collection = 'c' AND tsv @@ q ORDER BY 4 DESC, 2, 3 LIMIT 50`);
    kwSql.push(Number(/Execution Time: ([\d.]+)/.exec(plan.map((r) => r[0]).join('\n'))[1]));
  }
  await fetch(`http://127.0.0.1:${srv.port}/v1/documents/d000000?collection=c`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${KEY}` },
  });
  const afterWrite = await timed(srv.port, { query: words(), collection: 'c', min_similarity: 0 });
  out({
    bench: 'retrieval_pg',
    chunks: N,
    dims: DIMS,
    fill_s: +fillS.toFixed(1),
    first_ms: +first.ms.toFixed(1),
    search_ms: dist(lat),
    query_embedding_alone_ms: dist(embed),
    keyword_sql_ms: dist(kwSql),
    mean_hits: +(hits / Q).toFixed(2),
    after_write_ms: +afterWrite.ms.toFixed(1),
    tether_rss_mib: +(rssKiB(srv.pid).total / 1024).toFixed(1),
  });
} finally {
  await srv?.stop();
  await fp.close?.();
  await pg.destroy();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);

// Runs every benchmark and writes tests/bench/report/REPORT.md with PNG
// charts (gnuplot; installed with apt-get when missing).
//
//   node tests/bench/run.mjs            full run (~20-30 min on 2 cores)
//   node tests/bench/run.mjs --smoke    each benchmark at tiny size (<60 s);
//                                       exits non-zero when a benchmark breaks
//                                       (never on slowness alone); the report
//                                       goes to a temporary directory.
//   node tests/bench/run.mjs --render   charts and REPORT.md again from
//                                       report/results.json (no run)
//   node tests/bench/run.mjs --only idle,resume   rerun those, keep the rest
// Loopback only; every child stops by itself.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const SMOKE = process.argv.includes('--smoke');
const REPORT = SMOKE ? mkdtempSync(path.join(os.tmpdir(), 'tether-bench-smoke-')) : path.join(HERE, 'report');
const S = SMOKE ? ['--smoke'] : [];

const benches = [
  {
    key: 'fake',
    script: 'tests/fake-provider/bench.mjs',
    args: SMOKE ? ['--duration', '0.3', '--warmup', '0.1'] : ['--duration', '3', '--warmup', '1'],
  },
  { key: 'idle', script: 'tests/bench/idle.mjs', args: S },
  { key: 'relay1', script: 'tests/bench/relay.mjs', args: SMOKE ? ['1', '100', '1', ...S] : ['1', '2000', '1'] },
  // 100 streams, a chunk every 2 ms each: 50k chunks/s offered (the issue's rate)
  {
    key: 'relay100',
    script: 'tests/bench/relay.mjs',
    args: SMOKE ? ['10', '20', '5', '--target=100', ...S] : ['100', '1000', '2', '--target=100'],
  },
  {
    key: 'relay1000',
    script: 'tests/bench/relay.mjs',
    args: SMOKE ? ['50', '10', '20', '--target=1000', ...S] : ['1000', '50', '50', '--target=1000'],
  },
  {
    key: 'relay_cap',
    script: 'tests/bench/relay.mjs',
    args: SMOKE ? ['--capacity', '4', '256', ...S] : ['--capacity', '100', '2000'],
  },
  { key: 'gateway', script: 'tests/bench/gateway.mjs', args: S },
  { key: 'gateway_seq', script: 'tests/bench/gateway_seq.mjs', args: S },
  { key: 'cache', script: 'tests/bench/cache.mjs', args: S },
  { key: 'resume', script: 'tests/bench/resume.mjs', args: S },
  { key: 'startup', script: 'tests/bench/startup.mjs', args: S },
  { key: 'persist', script: 'tests/bench/persist.mjs', args: S },
  { key: 'commit', script: 'tests/bench/commit.mjs', args: S },
  { key: 'archive', script: 'tests/bench/archive.mjs', args: S },
  { key: 'replicated', script: 'tests/bench/replicated.mjs', args: S },
  { key: 'large_turns', script: 'tests/bench/large-turns.mjs', args: S },
  { key: 'upgrade', script: 'tests/bench/upgrade.mjs', args: S },
  // needs build-debug/tests/unit/make_photo_library (make build-debug)
  { key: 'photos', script: 'tests/bench/photos.mjs', args: SMOKE ? ['--smoke'] : ['1000'] },
];

function runOne(b) {
  const cmd = `node ${b.script}${b.args.length ? ' ' + b.args.join(' ') : ''}`;
  const limit = (SMOKE ? 60 : 15 * 60) * 1000;
  process.stderr.write(`[bench] ${cmd}\n`);
  const t0 = performance.now();
  const load0 = os.loadavg()[0];
  const started = new Date().toISOString();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [b.script, ...b.args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let so = '',
      se = '';
    p.stdout.on('data', (d) => {
      so += d;
    });
    p.stderr.on('data', (d) => {
      se = (se + d).slice(-8000);
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), limit);
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      const seconds = +((performance.now() - t0) / 1000).toFixed(1);
      let data = null;
      try {
        data = JSON.parse(so.slice(so.indexOf('{')));
      } catch {
        /* broken */
      }
      const ok = code === 0 && data !== null;
      if (!ok) process.stderr.write(`[bench] FAILED ${cmd} (exit ${code ?? sig})\n${se}\n${so.slice(-2000)}\n`);
      resolve({
        ...b,
        cmd,
        started,
        seconds,
        ok,
        code: code ?? sig,
        data,
        stderr: se,
        load: [+load0.toFixed(2), +os.loadavg()[0].toFixed(2)],
      });
    });
  });
}

function ensureGnuplot() {
  if (spawnSync('gnuplot', ['--version']).status === 0) return true;
  if (SMOKE) return false; // the smoke run does not install anything
  const sudo = process.getuid && process.getuid() !== 0 ? ['sudo'] : [];
  const apt = (args) =>
    spawnSync(sudo[0] || 'apt-get', sudo.length ? ['apt-get', ...args] : args, {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  if (apt(['install', '-y', 'gnuplot-nox']).status !== 0) {
    apt(['update']);
    apt(['install', '-y', 'gnuplot-nox']);
  }
  return spawnSync('gnuplot', ['--version']).status === 0;
}

const t0 = Date.now();
let results = {};
let totalSeconds;
if (process.argv.includes('--render')) {
  // charts and REPORT.md again from report/results.json, no benchmark run
  const saved = JSON.parse(readFileSync(path.join(REPORT, 'results.json'), 'utf8'));
  results = saved.results;
  totalSeconds = saved.total_seconds;
} else if (process.argv.includes('--only')) {
  // rerun some benchmarks, keep the others from report/results.json
  const only = process.argv[process.argv.indexOf('--only') + 1].split(',');
  const saved = JSON.parse(readFileSync(path.join(REPORT, 'results.json'), 'utf8'));
  results = saved.results;
  for (const b of benches.filter((x) => only.includes(x.key))) results[b.key] = await runOne(b);
  totalSeconds = saved.total_seconds;
} else {
  for (const b of benches) results[b.key] = await runOne(b);
  totalSeconds = (Date.now() - t0) / 1000;
}
const failed = Object.values(results).filter((r) => !r.ok);

// ------------------------------------------------------------------ charts
mkdirSync(REPORT, { recursive: true });
const dat = mkdtempSync(path.join(os.tmpdir(), 'tether-bench-dat-'));
const charts = [];
function plot(name, script, data) {
  for (const [f, rows] of Object.entries(data))
    writeFileSync(path.join(dat, f), rows.map((r) => r.join(' ')).join('\n') + '\n');
  const png = path.join(REPORT, `${name}.png`);
  const r = spawnSync('gnuplot', [], {
    cwd: dat,
    input: `set terminal pngcairo size 900,520 font "sans,10"\nset output '${png}'\nset grid ytics\nset key top left\n${script}\n`,
  });
  if (r.status === 0) charts.push(name);
  else process.stderr.write(`[bench] gnuplot ${name}: ${r.stderr}\n`);
}
const g = (k) => (results[k]?.ok ? results[k].data : null);
const haveGnuplot = ensureGnuplot();
if (haveGnuplot) {
  const idle = g('idle');
  if (idle)
    plot(
      'idle',
      `set title 'Idle sessions: server RSS per socket+session'\nset xlabel 'sockets (each attached to a session)'\nset ylabel 'KiB per session'\nset y2label 'seconds to establish'\nset y2tics\nset style data linespoints\nplot 'idle.dat' u 1:2 t 'total RSS' lw 2, '' u 1:3 t 'heap (RssAnon)', '' u 1:4 t 'file-backed (RssFile, LMDB)', '' u 1:5 axes x1y2 t 'time to establish (s, right)' dt 2`,
      {
        'idle.dat': idle.results.map((r) => [
          r.sockets,
          r.kib_per_session,
          r.heap_kib_per_session,
          r.file_kib_per_session,
          r.establish_s,
        ]),
      },
    );
  const relays = ['relay1', 'relay100', 'relay1000'].map(g).filter(Boolean);
  if (relays.length)
    plot(
      'relay',
      `set title 'Relay: provider chunk -> client frame (microseconds, log scale)'\nset bmargin 4\nset logscale y\nset style data histogram\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset ylabel 'us'\nset key top left\nplot 'relay.dat' u 2:xtic(1) t 'p50', '' u 3 t 'p99', '' u 4 t 'p999'`,
      {
        'relay.dat': relays.flatMap((r) =>
          ['direct', 'session', 'gateway'].map((p) => [
            `"${p}\\n${r.streams} str"`,
            r[p].p50_us,
            r[p].p99_us,
            r[p].p999_us,
          ]),
        ),
      },
    );
  const gw = g('gateway');
  if (gw) {
    const rows = {};
    for (const [k, v] of Object.entries(gw.runs))
      rows[`${k}.dat`] = v.steps.map((s) => [
        s.rate,
        s.latency_ms.p50 ?? 'NaN',
        s.latency_ms.p99 ?? 'NaN',
        s.peak_rss_kib ? s.peak_rss_kib / 1024 : 'NaN',
      ]);
    const line = (mode) =>
      ['direct', 'tether', 'portkey']
        .filter((t) => gw.runs[`${t}_${mode}`])
        .map((t) => `'${t}_${mode}.dat' u 1:3 t '${t} p99' lw 2, '' u 1:2 t '${t} p50' dt 2`)
        .join(', ');
    plot(
      'gateway',
      `set key below maxrows 3\nset multiplot layout 1,2 title 'POST /v1/chat/completions at fixed arrival rates (latency from due time)'\nset logscale y\nset xlabel 'offered req/s'\nset ylabel 'ms'\nset style data linespoints\nset title 'plain'\nplot ${line('plain')}\nset title 'stream (whole stream)'\nplot ${line('stream')}\nunset multiplot`,
      rows,
    );
    plot(
      'gateway_rss',
      `set title 'Gateway peak RSS under load'\nset xlabel 'offered req/s'\nset ylabel 'MiB'\nset key below\nset style data linespoints\nplot ${[
        'tether',
        'portkey',
      ]
        .filter((t) => gw.runs[`${t}_plain`])
        .flatMap((t) => ['plain', 'stream'].map((m) => `'${t}_${m}.dat' u 1:4 t '${t} ${m}' lw 2`))
        .join(', ')}`,
      rows,
    );
  }
  const st = g('startup');
  if (st)
    plot(
      'startup',
      `set title 'Start-up: spawn -> first WebSocket welcome (p50, ms)'\nset style data histogram\nset style fill solid 0.8 border -1\nset ylabel 'ms'\nset boxwidth 0.6\nplot 'startup.dat' u 2:xtic(1) t 'p50', '' u 3 t 'max'`,
      { 'startup.dat': st.results.map((r) => [`"${r.sessions_stored} stored"`, r.welcome_ms.p50, r.welcome_ms.max]) },
    );
  const ps = g('persist');
  if (ps)
    plot(
      'persist',
      `set title 'Persistence by --sync policy'\nset style data histogram\nset style fill solid 0.8 border -1\nset ylabel 'events/s'\nset y2label 'commit ms'\nset y2tics\nset yrange [0:*]\nset y2range [0:*]\nplot 'persist.dat' u 2:xtic(1) t 'events/s (left)', '' u 3 axes x1y2 t 'commit p50 ms (right)', '' u 4 axes x1y2 t 'commit p99 ms (right)'`,
      { 'persist.dat': ps.results.map((r) => [r.sync, r.events_per_s, r.commit_ms.p50, r.commit_ms.p99]) },
    );
}
rmSync(dat, { recursive: true, force: true });

// ------------------------------------------------------------------ report
const { renderReport } = await import('./lib/report.mjs');
writeFileSync(
  path.join(REPORT, 'results.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      total_seconds: totalSeconds,
      results: Object.fromEntries(
        Object.entries(results).map(([k, r]) => [
          k,
          {
            key: k,
            cmd: r.cmd,
            started: r.started,
            seconds: r.seconds,
            load: r.load,
            ok: r.ok,
            code: r.code,
            data: r.data,
          },
        ]),
      ),
    },
    null,
    2,
  ) + '\n',
);
writeFileSync(path.join(REPORT, 'REPORT.md'), renderReport({ results, charts, smoke: SMOKE, totalSeconds }));
const { targetsTable } = await import('./lib/targets.mjs');
const targets = targetsTable(results);
if (targets) process.stdout.write(`\nTargets (issue 18), each beside its peer in this run:\n\n${targets}\n`);
process.stderr.write(
  `[bench] ${failed.length ? `${failed.length} FAILED: ${failed.map((f) => f.key).join(', ')}` : 'all benchmarks ran'}; report: ${path.join(REPORT, 'REPORT.md')} (${Math.round((Date.now() - t0) / 1000)} s)\n`,
);
if (SMOKE && !process.env.TETHER_BENCH_KEEP) rmSync(REPORT, { recursive: true, force: true });
process.exit(failed.length ? 1 : 0);

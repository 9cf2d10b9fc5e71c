// Renders REPORT.md from the benchmarks' JSON (see run.mjs).
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { BIN } from './common.mjs';
import { targetsTable } from './targets.mjs';

const f = (x, d = 1) =>
  x === null || x === undefined || Number.isNaN(x)
    ? '–'
    : Number(x).toLocaleString('en-US', { maximumFractionDigits: d });
const us = (x) => (x >= 1000 ? `${f(x / 1000, 2)} ms` : `${f(x, 0)} µs`);
const sg = (x, fmt) => (x < 0 ? '−' : '+') + fmt(Math.abs(x));
const cmdline = (r) => `\`${r.cmd}\``;

function machine() {
  let version = '?';
  try {
    version = execFileSync(BIN, ['--version']).toString().trim();
  } catch {
    /* none */
  }
  let distro = '';
  try {
    distro = execFileSync('sh', ['-c', '. /etc/os-release && echo $PRETTY_NAME']).toString().trim();
  } catch {
    /* none */
  }
  return (
    `${os.cpus().length} × ${os.cpus()[0]?.model}, ${f(os.totalmem() / 2 ** 30, 1)} GiB RAM, ${distro}, Linux ${os.release()}, ` +
    `Node ${process.version}, ${version} (build/tether, RelWithDebInfo), fd hard limit per process ${execFileSync('sh', ['-c', 'ulimit -Hn']).toString().trim()}`
  );
}

const sustained = (gw, k) =>
  !gw.runs[k]
    ? 'not run'
    : gw.runs[k].max_sustained_per_s
      ? `${f(gw.runs[k].max_sustained_per_s, 0)} req/s`
      : `below ${f(gw.rates[0], 0)} req/s (the lowest rate tried)`;
function cpuPer(gw, k) {
  if (!gw.runs[k]) return '–';
  const s = gw.runs[k].steps.find((x) => x.rate === gw.runs[k].max_sustained_per_s) || gw.runs[k].steps[0];
  return s.cpu_pct === undefined
    ? '–'
    : `${f((s.cpu_pct * 10) / s.rate, 2)} ms (${s.cpu_pct}% of a core at ${f(s.rate, 0)} req/s)`;
}
function headline(results, ok) {
  const H = ['## Headline figures (this run)', ''];
  const idle = ok('idle');
  if (idle) {
    const top = idle.results[idle.results.length - 1];
    H.push(
      `- Idle: **${f(top.kib_per_session, 1)} KiB of server RSS per authenticated socket+session** at ${f(top.opened, 0)} sockets (${f(top.heap_kib_per_session, 1)} KiB heap); established in ${f(top.establish_s, 1)} s.`,
    );
  }
  const gw = ok('gateway');
  if (gw)
    for (const mode of ['plain', 'stream']) {
      const t = gw.runs[`tether_${mode}`],
        p = gw.runs[`portkey_${mode}`];
      const a = t.added_ms?.[0],
        b = p?.added_ms?.[0];
      if (!p)
        H.push(
          `- Gateway ${mode}: Tether's max sustained rate ${f(t.ratio_to_direct, 3)} of direct's (Portkey not installed).`,
        );
      const rss = (r) => Math.max(...r.steps.map((s) => s.peak_rss_kib || 0)) / 1024;
      if (a && b)
        H.push(
          `- Gateway ${mode} at ${a.rate} req/s, added over direct p50/p99: Tether ${sg(a.p50, (x) => f(x, 2))}/${sg(a.p99, (x) => f(x, 2))} ms, Portkey ${sg(b.p50, (x) => f(x, 2))}/${sg(b.p99, (x) => f(x, 2))} ms; max sustained ${sustained(gw, `tether_${mode}`)} vs ${sustained(gw, `portkey_${mode}`)}; CPU per request ${cpuPer(gw, `tether_${mode}`).split(' (')[0]} vs ${cpuPer(gw, `portkey_${mode}`).split(' (')[0]}; RSS at ${a.rate} req/s ${f(t.steps[0].peak_rss_kib / 1024, 1)} vs ${f(p.steps[0].peak_rss_kib / 1024, 1)} MiB (${f(p.steps[0].peak_rss_kib / t.steps[0].peak_rss_kib, 1)}×), peak under overload ${f(rss(t), 1)} vs ${f(rss(p), 1)} MiB.`,
        );
    }
  const gs = ok('gateway_seq');
  if (gs)
    for (const [mode, m] of Object.entries(gs.modes))
      H.push(
        `- Gateway ${mode}, ${f(gs.requests, 0)} sequential keep-alive requests: Tether CPU ${f(m.tether_cpu_us_per_request, 0)} µs per request, added p50 ${f(m.added_p50_ms * 1000, 0)} µs over direct.`,
      );
  const ca = ok('cache');
  if (ca)
    for (const [mode, m] of Object.entries(ca.modes))
      H.push(
        `- Exact cache, gateway ${mode}, ${f(ca.requests, 0)} sequential requests: hit p50/p99 ${f(m.hit_ms.p50 * 1000, 0)}/${f(m.hit_ms.p99 * 1000, 0)} µs, miss p50/p99 ${f(m.miss_ms.p50 * 1000, 0)}/${f(m.miss_ms.p99 * 1000, 0)} µs (${f(m.miss_over_hit_p50, 1)}× at p50), Tether CPU ${f(m.tether_cpu_us_per_hit, 0)} µs per hit.`,
      );
  const r1 = ok('relay1'),
    r1000 = ok('relay1000');
  if (r1)
    H.push(
      `- Relay, 1 stream: session path +${us(r1.session.p50_us - r1.direct.p50_us)} p50 over direct, gateway +${us(r1.gateway.p50_us - r1.direct.p50_us)}.`,
    );
  if (r1000)
    H.push(
      `- Relay, 1,000 streams: p99 direct ${us(r1000.direct.p99_us)}, session ${us(r1000.session.p99_us)}, gateway ${us(r1000.gateway.p99_us)}.`,
    );
  const rs = ok('resume');
  if (rs)
    H.push(
      `- Resume: ${f(rs.replay.missed_events, 0)} missed events replayed in ${f(rs.replay.ms.p50, 1)} ms (p50); ${f(rs.storm.caught_up, 0)}/${f(rs.storm.clients, 0)} storm clients caught up in ${f(rs.storm.all_caught_up_s, 1)} s, ${rs.storm.errors} errors.`,
    );
  const st = ok('startup');
  if (st)
    H.push(
      `- Start-up to first welcome: ${st.results.map((r) => `${f(r.welcome_ms.p50, 0)} ms with ${f(r.sessions_stored, 0)} stored${r.own_ms ? ` (the server's own, exec to welcome: ${f(r.own_ms.p50, 0)} ms, ${f(r.own_cpu_ms.p50, 1)} ms CPU)` : ''}`).join(', ')} (p50).`,
    );
  const ps = ok('persist');
  if (ps)
    H.push(
      `- Persistence: ${ps.results.map((r) => `${r.sync} ${f(r.events_per_s, 0)} events/s (commit p99 ${f(r.commit_ms.p99, 1)} ms)`).join(', ')}.`,
    );
  const cm = ok('commit')?.results?.[0];
  if (cm)
    H.push(
      `- Every event committed, ${cm.conns} connections: ping ${f(cm.ping.rounds_per_s, 0)} round trips/s, echo ${f(cm.echo_1_turn.frames_per_s, 0)} frames/s (${f(cm.echo_1_turn.server_cpu_us_per_frame, 1)} µs server CPU a frame); sessions of ${ok('commit').turns} turns against new 1-turn ones in the same store: ${f(cm.long_over_1_turn.frames_per_s, 2)}x the frames/s, ${f(cm.long_over_1_turn.cpu_per_frame, 2)}x the CPU per frame.`,
    );
  const lt = ok('large_turns');
  if (lt)
    H.push(
      `- Large turns: ${lt.turns} turns of ${f(lt.bytes_per_turn / 1000, 0)} KB, commit time per turn ${f(lt.first.commit_ms, 1)} ms (first) to ${f(lt.last.commit_ms, 1)} ms (last), data.mdb ${f(lt.data_mdb_over_sent, 1)}x the bytes sent.`,
    );
  return H;
}

export function renderReport({ results, charts, smoke, totalSeconds }) {
  const L = [];
  const ok = (k) => (results[k]?.ok ? results[k].data : null);
  const img = (n) => (charts.includes(n) ? `![${n}](${n}.png)\n` : '');
  L.push(`# Tether benchmark report${smoke ? ' (SMOKE run: tiny sizes, figures meaningless)' : ''}`, '');
  L.push(
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${machine()}`,
    `- Whole run: \`node tests/bench/run.mjs${smoke ? ' --smoke' : ''}\` (${f(totalSeconds / 60, 1)} min). Every figure below comes from one run of one benchmark (when each ran is listed below); the command under each reproduces it alone.`,
    '- All traffic is on loopback; load generators share the 2 cores with the servers they measure, so every absolute figure is a lower bound on the server and every comparison is under the same handicap.',
    '',
  );
  L.push(
    `- Machine load (1-min load average at start → end of each benchmark; other work on the machine shares the 2 cores): ${Object.values(
      results,
    )
      .map(
        (r) =>
          `${r.key} ${r.load ? r.load.join(' → ') : '?'} (${r.started ? r.started.slice(11, 19) + ' UTC, ' : ''}${f(r.seconds, 0)} s)`,
      )
      .join(', ')}`,
    '',
  );
  const failed = Object.values(results).filter((r) => !r.ok);
  if (failed.length)
    L.push(`**Failed benchmarks:** ${failed.map((r) => `${r.key} (${cmdline(r)}, exit ${r.code})`).join('; ')}`, '');

  const targets = targetsTable(results);
  if (targets)
    L.push(
      '## Targets (issue 18): each beside its peer in this run',
      '',
      '`met` is judged by the benchmark itself; `n/a` where a run cannot judge (smoke sizes, no peer).',
      '',
      targets,
    );
  L.push(...headline(results, ok), '');
  const fk = ok('fake');
  L.push("## 0. The fake provider's own ceiling", '', `Command: ${cmdline(results.fake)}`, '');
  if (fk) {
    L.push('| load | rate | p50 | p99 | fake CPU |', '| --- | --- | --- | --- | --- |');
    for (const [k, v] of Object.entries(fk)) {
      if (!v || typeof v !== 'object' || (!v.latency_ms && !v.stream_ms)) continue;
      const lat = v.latency_ms || v.stream_ms;
      L.push(
        `| ${k} | ${v.requests_per_s ? `${f(v.requests_per_s, 0)} req/s` : `${f(v.chunks_per_s, 0)} chunks/s (${f(v.streams_per_s, 0)} streams/s)`} | ${f(lat.p50, 2)} ms | ${f(lat.p99, 2)} ms | ${v.server_cpu_pct}% |`,
      );
    }
    L.push(
      '',
      "The gateway benchmark's `direct` rows measure the fake under the very same client: a gateway figure is only about the gateway while `direct` at that rate stays flat.",
      '',
    );
  }

  const idle = ok('idle');
  L.push(
    '## 1. Idle sessions',
    '',
    `Command: ${cmdline(results.idle)}`,
    '',
    'N sockets, each authenticated with a JWT minted by `POST /v1/tokens`, attached to its own echo session with one finished turn, spread over ⌈N/5000⌉ client processes each on its own source address (127.0.0.2, .3, ...). RSS from `/proc/PID/status` before and 1 s after.',
    '',
  );
  if (idle) {
    L.push(
      '| sockets | KiB/session total | heap (RssAnon) | file-backed (RssFile) | server RSS after | time to establish | sessions/s |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of idle.results)
      L.push(
        `| ${f(r.opened, 0)}${r.errors ? ` (${r.errors} errors)` : ''} | ${f(r.kib_per_session, 2)} | ${f(r.heap_kib_per_session, 2)} | ${f(r.file_kib_per_session, 2)} | ${f(r.rss_after_kib.total / 1024, 1)} MiB | ${f(r.establish_s, 2)} s | ${f(r.sessions_per_s, 0)} |`,
      );
    L.push(
      '',
      "Establishing slows down as N grows (per-socket cost is flat, time is not): a profile of the server while 10,000 sockets were being established (`perf record -g -p PID` during `node tests/bench/idle.mjs 10000`, 2026-11-23) put 22% of its CPU in libwebsockets' `lws_dll2_add_sorted`, the O(n) insertion into its sorted timer list, which runs per socket as timers are rescheduled.",
    );
    L.push(
      '',
      'The top size is the per-process ceiling: the hard fd limit is 20,000 and root cannot raise it here, so one server process holds at most ~19.9k sockets; larger N needs more processes or a machine with a higher limit.',
      '',
      img('idle'),
    );
  }

  L.push(
    '## 2. Relay overhead',
    '',
    "An in-process OpenAI-compatible upstream stamps every chunk with its send time (the client's own monotonic clock). Paths: direct (reading the upstream, the floor), session (upstream → Tether → LMDB commit → WebSocket delta, `--sync periodic`), gateway (`/v1/chat/completions` SSE).",
    '',
  );
  L.push(
    '| streams | command | path | p50 | p99 | p999 | added p50 / p99 over direct |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const k of ['relay1', 'relay100', 'relay1000']) {
    const r = ok(k);
    if (!r) {
      L.push(`| ${k} | ${cmdline(results[k])} | FAILED | | | | |`);
      continue;
    }
    for (const p of ['direct', 'session', 'gateway']) {
      const o =
        p === 'direct' ? '–' : `${sg(r[p].p50_us - r.direct.p50_us, us)} / ${sg(r[p].p99_us - r.direct.p99_us, us)}`;
      L.push(
        `| ${f(r.streams, 0)} | ${p === 'direct' ? cmdline(results[k]) : ''} | ${p} | ${us(r[p].p50_us)} | ${us(r[p].p99_us)} | ${us(r[p].p999_us)} | ${o} |`,
      );
    }
  }
  L.push(
    '',
    'Arguments are streams, chunks per stream and the gap between chunks (ms); at 1,000 streams the gap is 50 ms, i.e. 20,000 chunks/s in total, all generated and received by one Node process.',
    '',
    img('relay'),
  );

  const gw = ok('gateway');
  L.push(
    '## 3. Gateway overhead: Tether vs Portkey on the same fake provider',
    '',
    `Command: ${cmdline(results.gateway)}`,
    '',
  );
  if (gw) {
    L.push(
      `Open-loop load at fixed arrival rates, ${gw.seconds_per_step} s per step, latency counted from each request's due time. Portkey \`@portkey-ai/gateway\` (npm, its Node server \`build/start-server.js\`, \`x-portkey-provider: openai\` + \`x-portkey-custom-host\` → the fake); Tether with a routes file → the fake. A step is *sustained* when p99 ≤ ${gw.slo_p99_ms} ms, no request failed and all completed within the window. Stream latency is the whole stream (~20 chunks); *first chunk* is time to the first content chunk. Both gateways are started afresh for each mode; RSS is sampled every 100 ms, and memory an overloaded step took is not given back, so it carries into that mode's later rows. *client conns opened* counts new TCP connections from the load generator (keep-alive reuse otherwise; Tether sends streams chunked on the kept connection). When a target falls behind, open-loop requests pile up until the generator's cap of 3,000 open connections, and further requests count as errors.`,
      '',
    );
    for (const mode of ['plain', 'stream']) {
      L.push(`### ${mode === 'plain' ? 'Plain JSON' : 'Streaming (SSE)'}`, '');
      L.push(
        `| target | offered req/s | done/s | errors | p50 | p99 | ${mode === 'stream' ? 'first chunk p50 / p99 | ' : ''}added p50 / p99 over direct | gateway peak RSS | gateway CPU | fake CPU | client conns opened |`,
        `| --- | --- | --- | --- | --- | --- | ${mode === 'stream' ? '--- | ' : ''}--- | --- | --- | --- | --- |`,
      );
      for (const t of ['direct', 'tether', 'portkey'].filter((n) => gw.runs[`${n}_${mode}`])) {
        const run = gw.runs[`${t}_${mode}`];
        for (const s of run.steps) {
          const add = run.added_ms?.find((a) => a.rate === s.rate);
          L.push(
            `| ${t} | ${f(s.rate, 0)} | ${f(s.achieved_per_s, 0)} | ${s.errors}${s.errors ? ` (${Object.keys(s.error_kinds).join(', ')})` : ''} | ${f(s.latency_ms.p50, 2)} ms | ${f(s.latency_ms.p99, 2)} ms | ${mode === 'stream' ? `${f(s.first_chunk_ms?.p50, 2)} / ${f(s.first_chunk_ms?.p99, 2)} ms | ` : ''}${add ? `${sg(add.p50, (x) => f(x, 2))} / ${sg(add.p99, (x) => f(x, 2))} ms` : '–'} | ${s.peak_rss_kib ? `${f(s.peak_rss_kib / 1024, 1)} MiB` : '(fake)'} | ${s.cpu_pct !== undefined ? `${s.cpu_pct}%` : ''} | ${s.fake_cpu_pct ?? '–'}% | ${f(s.client_connections_opened, 0)} |`,
          );
        }
      }
      L.push(
        '',
        '| | direct | Tether | Portkey |',
        '| --- | --- | --- | --- |',
        `| max sustained rate (${mode}) | ${['direct', 'tether', 'portkey'].map((t) => sustained(gw, `${t}_${mode}`)).join(' | ')} |`,
        `| gateway CPU per request at the highest sustained rate | – | ${cpuPer(gw, `tether_${mode}`)} | ${cpuPer(gw, `portkey_${mode}`)} |`,
        `| ratio of the max sustained rate to direct's | 1 | ${f(gw.runs[`tether_${mode}`].ratio_to_direct, 3)} | ${f(gw.runs[`portkey_${mode}`]?.ratio_to_direct, 3)} |`,
        '',
      );
    }
    L.push(
      `Idle RSS before load: Tether ${f(gw.idle_rss_kib.tether.total / 1024, 1)} MiB, Portkey ${gw.idle_rss_kib.portkey ? `${f(gw.idle_rss_kib.portkey.total / 1024, 1)} MiB` : 'not installed'}.`,
      '',
      "Notes on Portkey: it is run unmodified except for a preload (`tests/bench/lib/peer-preload.mjs`) that binds it to 127.0.0.1 and, as its upstream PR #1390 does, skips appending its `x-portkey-*` response headers when Node's fetch made them immutable (without it every streamed request fails on Node 20: Portkey issues #1389/#1550); `@hono/node-server` is pinned to 1.14.2 via `overrides` as #1389 advises. Its stream path also waits 25 ms before forwarding the first chunk (in its own code), which shows in its first-chunk figures.",
      '',
      img('gateway'),
      img('gateway_rss'),
    );
  }

  const rs = ok('resume');
  L.push('## 4. Resume', '', `Command: ${cmdline(results.resume)}`, '');
  if (rs) {
    L.push(
      `- Replay of ${f(rs.replay.missed_events, 0)} missed events (attach sent → last event held; ${rs.replay.repetitions} repetitions, fresh socket each): p50 **${f(rs.replay.ms.p50, 2)} ms**, p99 ${f(rs.replay.ms.p99, 2)} ms, max ${f(rs.replay.ms.max, 2)} ms (≈${f(rs.replay.events_per_s_p50, 0)} events/s); ${rs.replay.errors} ordering errors. Events older than the in-memory window (256) come from LMDB.`,
      `- Reconnect storm: ${f(rs.storm.clients, 0)} clients (${rs.storm.client_processes} client processes, one source address each), each dropped its socket mid-turn; all reconnected at the same instant (new TCP + upgrade + hello with JWT + session.attach after their last seq): **${f(rs.storm.caught_up, 0)} caught up in ${f(rs.storm.all_caught_up_s, 2)} s**, ${rs.storm.errors} errors, ${f(rs.storm.replayed_events, 0)} missed events replayed.`,
      '',
    );
  }

  const st = ok('startup');
  L.push(
    '## 5. Start-up',
    '',
    `Command: ${cmdline(results.startup)}`,
    '',
    "Spawn → TCP connect → upgrade → `hello` → `welcome` received, polled every ms. The store is filled through the protocol (session.open + session.detach pipelined on 8 sockets), so each stored session is a real one. 'Own' is the server's part: from its exec (reported by the launcher, `bench_exec_at`) to the welcome, and the CPU it used after the exec; the rest is the benchmark's spawn.",
    '',
  );
  if (st) {
    L.push(
      '| sessions stored | store size | welcome p50 | max | own p50 (CPU) | all runs (ms) | fill time |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of st.results)
      L.push(
        `| ${f(r.sessions_stored, 0)} | ${r.store_bytes < 2 ** 20 ? `${f(r.store_bytes / 1024, 0)} KiB` : `${f(r.store_bytes / 2 ** 20, 1)} MiB`} | ${f(r.welcome_ms.p50, 1)} ms | ${f(r.welcome_ms.max, 1)} ms | ${r.own_ms ? `${f(r.own_ms.p50, 1)} ms (${f(r.own_cpu_ms.p50, 1)} ms)` : '–'} | ${r.all_ms.join(', ')} | ${r.fill ? `${f(r.fill.created, 0)} in ${f(r.fill.seconds, 1)} s (${f(r.fill.sessions_per_s, 0)}/s)` : '–'} |`,
      );
    L.push('', img('startup'));
  }

  const ps = ok('persist');
  L.push('## 6. Persistence', '', `Command: ${cmdline(results.persist)}`, '');
  if (ps) {
    L.push(
      `${ps.results[0].sessions} echo sessions (\`--echo-delay-ms 0\`) on one socket, each saying a ${ps.results[0].words_per_turn}-word text again as soon as its turn ends; counters from \`/metrics\` over ${ps.results[0].seconds} s. Commit latency percentiles are interpolated inside the \`tether_commit_seconds\` buckets.`,
      '',
      '| --sync | events/s | commits/s | events per commit | commit mean | p50 | p99 |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of ps.results)
      L.push(
        `| ${r.sync} | ${f(r.events_per_s, 0)} | ${f(r.commits_per_s, 0)} | ${f(r.events_per_commit, 1)} | ${f(r.commit_ms.mean, 2)} ms | ${f(r.commit_ms.p50, 2)} ms | ${f(r.commit_ms.p99, 2)} ms |`,
      );
    L.push('', img('persist'));
  }
  const lt = ok('large_turns');
  if (results.large_turns) L.push('## 7. Large turns', '', `Command: ${cmdline(results.large_turns)}`, '');
  if (lt) {
    L.push(
      `One echo session takes ${lt.turns} turns of ${lt.bytes_per_turn} bytes (${lt.words_per_turn} words); another socket pings meanwhile, and a second session takes a small turn after each. Commit time per turn is the \`tether_commit_seconds_sum\` delta over the turn; the stall is the worst ping round trip during it.`,
      '',
      '| | commit time | commits | stall | small turn |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const [name, r] of [
      ['first turn', lt.first],
      ['last turn', lt.last],
    ])
      L.push(
        `| ${name} | ${f(r.commit_ms, 1)} ms | ${r.commits} | ${f(r.stall_ms, 1)} ms | ${f(r.small_turn_ms, 1)} ms |`,
      );
    L.push(
      '',
      `data.mdb: ${f(lt.data_mdb_bytes / 1e6, 1)} MB for ${f(lt.bytes_sent / 1e6, 1)} MB sent (${f(lt.data_mdb_over_sent, 2)}x).`,
      '',
    );
  }
  const ar = ok('archive');
  if (results.archive) L.push('## 8. Archive to PostgreSQL', '', `Command: ${cmdline(results.archive)}`, '');
  if (ar?.skipped) L.push(`Skipped: ${ar.skipped}.`, '');
  else if (ar) {
    L.push(
      `${ar.sessions} echo sessions on one socket with \`--database-url\` (archive mode, a PostgreSQL 15 started for the run); PostgreSQL stopped for ${ar.outage.seconds_down} s under the same load, then started again with the load stopped.`,
      '',
      '| phase | committed/s | received by the socket/s | archived/s | lag at the end |',
      '| --- | --- | --- | --- | --- |',
      `| steady | ${f(ar.steady.committed_per_s, 0)} | ${f(ar.steady.received_per_s, 0)} | ${f(ar.steady.archived_per_s, 0)} | ${f(ar.steady.lag_events, 0)} events, ${f(ar.steady.lag_seconds, 1)} s |`,
      `| database stopped | ${f(ar.outage.committed_per_s, 0)} | ${f(ar.outage.received_per_s, 0)} | 0 | ${f(ar.outage.lag_events, 0)} events, ${f(ar.outage.lag_seconds, 1)} s |`,
      `| drain (no load) | – | – | ${f(ar.drain.archived_per_s, 0)} | 0 after ${f(ar.drain.seconds, 1)} s (${f(ar.drain.backlog_events, 0)} events) |`,
      '',
      `The events table held ${f(ar.in_database, 0)} of ${f(ar.committed, 0)} committed events at the end.`,
      '',
    );
  }
  L.push('## Raw data', '', "`results.json` next to this file holds every benchmark's full JSON output.", '');
  return L.join('\n');
}
